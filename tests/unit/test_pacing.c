/* Pacing on a working calendar and plans, with hand-worked numbers (contract section 7).
 * Calendar unless said otherwise: Europe/Moscow (UTC+3, no DST), Mon-Fri 09:00-18:00, so a
 * full week has 45 working hours. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pacing.h"

#define H 3600
static char err[256];

/* ms of a UTC wall time */
static int64_t utc(int y, int m, int d, int h, int mi)
{
    return (period_days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60) * 1000;
}

static pacing_calendar_t moscow(period_zone_t *z, const int64_t *holidays, size_t n)
{
    pacing_calendar_t c = {z, PACING_WEEKDAYS, 9 * 60, 18 * 60, holidays, n};
    assert_int_equal(pacing_calendar_check(&c, err, sizeof err), 0);
    return c;
}

static void expect_pacing(const pacing_calendar_t *cal, int64_t start, int64_t end, int64_t now,
                          int64_t target, int64_t actual, const char *expected, const char *pct,
                          enum pacing_state state)
{
    pacing_result_t r;
    pacing_evaluate(cal, start, end, now, target, actual, 80, 50, &r);
    assert_string_equal(r.expected, expected);
    if (pct)
        assert_string_equal(r.pct, pct);
    else
        assert_false(r.has_pct);
    assert_int_equal(r.state, state);
}

/* Week 2026-W47 (Mon 16 - Sun 22 November): 00:00 MSK Monday is 21:00Z Sunday. */
static void test_week_pacing(void **state)
{
    (void)state;
    period_zone_t *z = period_zone_open("Europe/Moscow", err, sizeof err);
    assert_non_null(z);
    pacing_calendar_t c = moscow(z, NULL, 0);
    int64_t start = utc(2026, 11, 15, 21, 0), end = utc(2026, 11, 22, 21, 0);
    assert_int_equal(pacing_work_s(&c, start, end), 45 * H);
    assert_int_equal(pacing_work_days(&c, start, end), 5);
    /* Wed 13:30 MSK: 9 + 9 + 4.5 = 22.5 h of 45: half of 10 is due */
    int64_t wed = utc(2026, 11, 18, 10, 30);
    expect_pacing(&c, start, end, wed, 10, 4, "5", "80", PACING_OK);      /* 80 >= warn 80 */
    expect_pacing(&c, start, end, wed, 10, 3, "5", "60", PACING_WARN);
    expect_pacing(&c, start, end, wed, 10, 2, "5", "40", PACING_CRITICAL);
    expect_pacing(&c, start, end, wed, 7, 1, "3.5", "28.5714", PACING_CRITICAL);
    /* Tue 23:00 MSK and Wed 08:59: the night stands still at 18 h: 10 x 18/45 = 4 */
    expect_pacing(&c, start, end, utc(2026, 11, 17, 20, 0), 10, 4, "4", "100", PACING_OK);
    expect_pacing(&c, start, end, utc(2026, 11, 18, 5, 59), 10, 4, "4", "100", PACING_OK);
    /* Saturday: the whole week is due */
    expect_pacing(&c, start, end, utc(2026, 11, 21, 9, 0), 10, 9, "10", "90", PACING_OK);
    /* Monday 08:00 MSK, before any working time: pct against the whole target */
    expect_pacing(&c, start, end, utc(2026, 11, 16, 5, 0), 10, 1, "0", "10", PACING_CRITICAL);
    /* Monday 09:01: one minute of 2700 */
    expect_pacing(&c, start, end, utc(2026, 11, 16, 6, 1), 2700, 1, "1", "100", PACING_OK);
    /* No target: nothing to pace against */
    expect_pacing(&c, start, end, wed, 0, 5, "0", NULL, PACING_OK);
    period_zone_free(z);
}

/* 2026-W45 with Wednesday 4 November a holiday: 36 working hours. Thursday 12:00 MSK:
 * 9 + 9 + 0 + 3 = 21 h; 12 x 21/36 = 7. */
static void test_holiday_week(void **state)
{
    (void)state;
    period_zone_t *z = period_zone_open("Europe/Moscow", err, sizeof err);
    const int64_t holidays[] = {period_days_from_civil(2026, 11, 4), period_days_from_civil(2027, 1, 1)};
    pacing_calendar_t c = moscow(z, holidays, 2);
    int64_t start = utc(2026, 11, 1, 21, 0), end = utc(2026, 11, 8, 21, 0);
    assert_int_equal(pacing_work_s(&c, start, end), 36 * H);
    assert_int_equal(pacing_work_days(&c, start, end), 4);
    expect_pacing(&c, start, end, utc(2026, 11, 5, 9, 0), 12, 7, "7", "100", PACING_OK);
    /* the holiday itself stands still: Wed 15:00 MSK = Tue 18:00 = 18 h: 12 x 18/36 = 6 */
    expect_pacing(&c, start, end, utc(2026, 11, 4, 12, 0), 12, 3, "6", "50", PACING_WARN);
    /* ISO week 53 of 2026 (Mon 28 Dec - Sun 3 Jan) with 1 January off: 4 working days */
    int64_t w53 = utc(2026, 12, 27, 21, 0), w53_end = utc(2027, 1, 3, 21, 0);
    assert_int_equal(pacing_work_days(&c, w53, w53_end), 4);
    assert_int_equal(pacing_work_s(&c, w53, w53_end), 36 * H);
    period_zone_free(z);
}

/* DST weeks: working hours are the wall-clock hours each day really has. */
static void test_dst_weeks(void **state)
{
    (void)state;
    period_zone_t *ber = period_zone_open("Europe/Berlin", err, sizeof err);
    period_zone_t *ny = period_zone_open("America/New_York", err, sizeof err);
    assert_non_null(ber);
    assert_non_null(ny);
    /* Every day, all day: Berlin's week with Sunday 25 Oct 2026 (25 h) has 169 h; New York's
     * week with Sunday 8 Mar 2026 (23 h) has 167 h. */
    pacing_calendar_t all = {ber, 0xfe, 0, 1440, NULL, 0};
    assert_int_equal(pacing_calendar_check(&all, err, sizeof err), 0);
    assert_int_equal(pacing_work_s(&all, utc(2026, 10, 18, 22, 0), utc(2026, 10, 25, 23, 0)),
                     169 * H);
    all.zone = ny;
    assert_int_equal(pacing_work_s(&all, utc(2026, 3, 2, 5, 0), utc(2026, 3, 9, 4, 0)), 167 * H);
    /* Office hours across the change: Mon-Fri 09-18 in New York is 45 h in both weeks, and
     * Monday 9 March 10:00 EDT (14:00Z) is 1 h into the week. */
    pacing_calendar_t office = {ny, PACING_WEEKDAYS, 9 * 60, 18 * 60, NULL, 0};
    assert_int_equal(pacing_work_s(&office, utc(2026, 3, 2, 5, 0), utc(2026, 3, 9, 4, 0)), 45 * H);
    assert_int_equal(pacing_work_s(&office, utc(2026, 3, 9, 4, 0), utc(2026, 3, 9, 14, 0)), H);
    period_zone_free(ber);
    period_zone_free(ny);
}

static void test_calendar_check(void **state)
{
    (void)state;
    period_zone_t *z = period_zone_open("UTC", err, sizeof err);
    const int64_t unsorted[] = {5, 3};
    pacing_calendar_t c = {z, PACING_WEEKDAYS, 18 * 60, 9 * 60, NULL, 0};
    assert_int_equal(pacing_calendar_check(&c, err, sizeof err), -1);
    c = (pacing_calendar_t){z, PACING_WEEKDAYS, 0, 1441, NULL, 0};
    assert_int_equal(pacing_calendar_check(&c, err, sizeof err), -1);
    c = (pacing_calendar_t){z, 1u, 0, 60, NULL, 0}; /* bit 0 is no weekday */
    assert_int_equal(pacing_calendar_check(&c, err, sizeof err), -1);
    c = (pacing_calendar_t){z, PACING_WEEKDAYS, 0, 60, unsorted, 2};
    assert_int_equal(pacing_calendar_check(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "ascending"));
    period_zone_free(z);
}

/* The contract's example: 3 deals a month, 3 proposals per deal won, 2 meetings per
 * proposal: 9 proposals and 18 meetings a month; in a 20-working-day month (February
 * 2027) a full week gets 18 x 5/20 = 4.5 -> 5 meetings. */
static void test_plans(void **state)
{
    (void)state;
    int64_t proposals = pacing_plan_step(3, 3, false);
    int64_t meetings = pacing_plan_step((double)proposals, 2, false);
    assert_int_equal(proposals, 9);
    assert_int_equal(meetings, 18);
    period_zone_t *z = period_zone_open("Europe/Moscow", err, sizeof err);
    pacing_calendar_t c = moscow(z, NULL, 0);
    int feb = pacing_work_days(&c, utc(2027, 1, 31, 21, 0), utc(2027, 2, 28, 21, 0));
    assert_int_equal(feb, 20);
    int week = 5;
    assert_int_equal(pacing_prorate((double)meetings, &week, &feb, 1), 5);
    /* A week across two months takes its share of each: Mon 29 Mar - Sun 4 Apr 2027, 3 of
     * March's 23 working days and 2 of April's 22: 18 x (3/23 + 2/22) = 3.98 -> 4. */
    int parts[] = {3, 2}, wholes[] = {23, 22};
    assert_int_equal(pacing_work_days(&c, utc(2027, 2, 28, 21, 0), utc(2027, 3, 31, 21, 0)), 23);
    assert_int_equal(pacing_work_days(&c, utc(2027, 3, 31, 21, 0), utc(2027, 4, 30, 21, 0)), 22);
    assert_int_equal(pacing_prorate(18, parts, wholes, 2), 4);
    /* Revenue 10,000,000 cents at 500,000 per deal: 20 deals; a lead yields 0.1 deal: 200
     * leads. 3 / 0.1 is 29.999999999999996 in binary: 6 decimals first make it 30. */
    assert_int_equal(pacing_plan_step(10000000, 500000, true), 20);
    assert_int_equal(pacing_plan_step(20, 0.1, true), 200);
    assert_int_equal(pacing_plan_step(3, 0.1, true), 30);
    assert_int_equal(pacing_plan_step(3, 0, true), -1);
    assert_int_equal(pacing_plan_step(10, 0.33, false), 4); /* 3.3 -> 4 */
    period_zone_free(z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_week_pacing), cmocka_unit_test(test_holiday_week),
        cmocka_unit_test(test_dst_weeks),   cmocka_unit_test(test_calendar_check),
        cmocka_unit_test(test_plans),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
