/* The repeat limiter behind log.c: bursts pass, the rest is counted and reported once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ratelimit.h"

static const uint64_t key_a = 1, key_b = 2;

static int check(ratelimit_t *rl, uint64_t key, const char *line, int64_t now,
                 struct ratelimit_report *closed, int *has_closed)
{
    return ratelimit_check(rl, key, 4, line, now, closed, has_closed);
}

static void test_burst_then_suppressed_then_reported_by_next_line(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(8, 60000, 3);
    struct ratelimit_report r;
    int closed;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(check(rl, key_a, "x", 1000 + i, &r, &closed), 1);
        assert_int_equal(closed, 0);
    }
    char line[32];
    for (int i = 0; i < 812; i++) {
        snprintf(line, sizeof line, "held %d", i);
        assert_int_equal(check(rl, key_a, line, 2000 + i, &r, &closed), 0);
        assert_int_equal(closed, 0);
    }
    /* Another key is independent. */
    assert_int_equal(check(rl, key_b, "y", 3000, &r, &closed), 1);
    /* 59.999 s after the window opened: still held. */
    assert_int_equal(check(rl, key_a, "held last", 1000 + 59999, &r, &closed), 0);
    /* The window is over: the report comes first, then this line prints. */
    assert_int_equal(check(rl, key_a, "fresh", 1000 + 60000, &r, &closed), 1);
    assert_int_equal(closed, 1);
    assert_int_equal(r.key, key_a);
    assert_int_equal(r.suppressed, 813);
    assert_int_equal(r.window_ms, 60000);
    assert_string_equal(r.last, "held last");
    /* Nothing is left to report, and the new window has its own burst. */
    assert_int_equal(ratelimit_expired(rl, 1000000, &r), 0);
    ratelimit_free(rl);
}

static void test_timer_reports_expired_windows_once(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(8, 60000, 1);
    struct ratelimit_report r;
    int closed;
    assert_int_equal(check(rl, key_a, "a1", 0, &r, &closed), 1);
    assert_int_equal(check(rl, key_a, "a2", 10, &r, &closed), 0);
    assert_int_equal(check(rl, key_b, "b1", 100, &r, &closed), 1); /* nothing held back */
    assert_int_equal(ratelimit_expired(rl, 59999, &r), 0);
    assert_int_equal(ratelimit_expired(rl, 60000, &r), 1);
    assert_int_equal(r.suppressed, 1);
    assert_string_equal(r.last, "a2");
    assert_int_equal(ratelimit_expired(rl, 60000, &r), 0);
    /* After a timer report the key starts afresh: its next line prints. */
    assert_int_equal(check(rl, key_a, "a3", 60001, &r, &closed), 1);
    assert_int_equal(closed, 0);
    ratelimit_free(rl);
}

static void test_quiet_key_prints_again_after_the_window(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(8, 60000, 1);
    struct ratelimit_report r;
    int closed;
    assert_int_equal(check(rl, key_a, "once", 0, &r, &closed), 1);
    assert_int_equal(check(rl, key_a, "a day later", 86400000, &r, &closed), 1);
    assert_int_equal(closed, 0);
    ratelimit_free(rl);
}

static void test_full_table_forgets_the_least_recent_key(void **state)
{
    (void)state;
    static const uint64_t keys[3] = {7, 8, 9};
    ratelimit_t *rl = ratelimit_new(2, 60000, 1);
    struct ratelimit_report r;
    int closed;
    assert_int_equal(check(rl, keys[0], "k0", 0, &r, &closed), 1);
    assert_int_equal(check(rl, keys[1], "k1", 1, &r, &closed), 1);
    assert_int_equal(check(rl, keys[0], "k0 again", 2, &r, &closed), 0);
    /* A third key takes the slot of keys[1], seen least recently (nothing held back). */
    assert_int_equal(check(rl, keys[2], "k2", 3, &r, &closed), 1);
    assert_int_equal(closed, 0);
    assert_int_equal(check(rl, keys[0], "k0 held", 4, &r, &closed), 0);
    /* keys[1] comes back and takes the slot of keys[2], seen least recently. */
    assert_int_equal(check(rl, keys[1], "k1 is new again", 5, &r, &closed), 1);
    assert_int_equal(closed, 0);
    /* keys[2] again takes keys[0]'s slot: its held-back lines are reported, not lost. */
    assert_int_equal(check(rl, keys[2], "k2 again", 6, &r, &closed), 1);
    assert_int_equal(closed, 1);
    assert_int_equal(r.key, keys[0]);
    assert_int_equal(r.suppressed, 2);
    assert_string_equal(r.last, "k0 held");
    ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_suppressed_then_reported_by_next_line),
        cmocka_unit_test(test_timer_reports_expired_windows_once),
        cmocka_unit_test(test_quiet_key_prints_again_after_the_window),
        cmocka_unit_test(test_full_table_forgets_the_least_recent_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
