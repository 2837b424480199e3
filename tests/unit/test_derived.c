/* Derived figures of a scope and period: the methodology examples, conversion steps,
 * absent figures on zero denominators, and the decimal rounding at its edges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "derived.h"

static const struct config_stage stages[] = {
    {"lead", 0.05, false},     {"mql", 0.1, false}, {"sql", 0.2, false}, {"proposal", 0.4, false},
    {"negotiation", 0.6, false}, {"won", 1, true},  {"lost", 0, true},
};

/* A counter hash as "name=value" pairs; absent names read 0. */
struct counters {
    const char *names[32];
    int64_t values[32];
    size_t n;
    unsigned lookups;
};

static int64_t lookup(void *ctx, const char *name)
{
    struct counters *c = ctx;
    c->lookups++;
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->names[i], name) == 0)
            return c->values[i];
    return 0;
}

static void set(struct counters *c, const char *name, int64_t v)
{
    c->names[c->n] = name;
    c->values[c->n++] = v;
}

static derived_t out;

static void compute(struct counters *c)
{
    char err[128];
    if (derived_compute(stages, 7, lookup, c, &out, err, sizeof err) != 0)
        fail_msg("derived_compute: %s", err);
}

/* Exactly these figures, in this order: "field=value ...". */
static void expect(const char *spec)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", spec);
    size_t i = 0;
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " "), i++) {
        char *eq = strchr(tok, '=');
        assert_non_null(eq);
        *eq = '\0';
        if (i >= out.n)
            fail_msg("missing %s", tok);
        assert_string_equal(out.fig[i].field, tok);
        assert_string_equal(out.fig[i].value, eq + 1);
    }
    if (i != out.n)
        fail_msg("%zu figures, want %zu (extra %s)", out.n, i, out.fig[i].field);
}

static void ratio(int64_t num, int64_t den, const char *want)
{
    char buf[DERIVED_VALUE_MAX];
    int len = derived_format_ratio(num, den, buf, sizeof buf);
    if (len < 0)
        fail_msg("%lld/%lld: -1", (long long)num, (long long)den);
    if (strcmp(buf, want) != 0)
        fail_msg("%lld/%lld: want %s got %s", (long long)num, (long long)den, want, buf);
    assert_int_equal(len, strlen(want));
}

static void test_win_rate(void **state)
{
    (void)state;
    /* Methodology: 5 won of 30 closed is 0.1666.. -> 0.1667. */
    struct counters c = {0};
    set(&c, "deals_won", 5);
    set(&c, "deals_lost", 25);
    set(&c, "revenue_won_cents", 1000000);
    set(&c, "cycle_seconds_won", 5 * 86400 * 7); /* 7 days each */
    compute(&c);
    expect("win_rate=0.1667 avg_deal_cents=200000 avg_cycle_days=7");

    struct counters c2 = {0}; /* 2 of 3: 0.6666.. -> 0.6667 */
    set(&c2, "deals_won", 2);
    set(&c2, "deals_lost", 1);
    compute(&c2);
    expect("win_rate=0.6667 avg_deal_cents=0 avg_cycle_days=0");

    struct counters c3 = {0}; /* 1 of 8: 0.125 exactly */
    set(&c3, "deals_won", 1);
    set(&c3, "deals_lost", 7);
    set(&c3, "revenue_won_cents", 12345);
    set(&c3, "cycle_seconds_won", 129600); /* 1.5 days */
    compute(&c3);
    expect("win_rate=0.125 avg_deal_cents=12345 avg_cycle_days=1.5");

    struct counters c4 = {0}; /* only lost: win rate 0; nothing won, no averages */
    set(&c4, "deals_lost", 3);
    compute(&c4);
    expect("win_rate=0");
}

static void test_averages(void **state)
{
    (void)state;
    struct counters c = {0};
    set(&c, "deals_won", 3);
    set(&c, "revenue_won_cents", 100000);  /* 33333.333.. */
    set(&c, "cycle_seconds_won", 864000);  /* 10 days over 3 deals: 3.333.. */
    compute(&c);
    expect("win_rate=1 avg_deal_cents=33333.3333 avg_cycle_days=3.3333");

    struct counters c2 = {0};
    set(&c2, "deals_won", 7);
    set(&c2, "revenue_won_cents", 2000000);  /* 285714.2857142.. */
    set(&c2, "cycle_seconds_won", 100000);   /* 100000 / 604800 = 0.16534.. */
    compute(&c2);
    expect("win_rate=1 avg_deal_cents=285714.2857 avg_cycle_days=0.1653");
}

static void test_conversions(void **state)
{
    (void)state;
    struct counters c = {0};
    set(&c, "stage:lead", 10);
    set(&c, "stage:mql", 4);
    set(&c, "stage:sql", 5); /* more sql than mql entries: deals skip mql */
    set(&c, "stage:negotiation", 3);
    set(&c, "stage:won", 2);
    set(&c, "stage:lost", 9);
    compute(&c);
    /* proposal is 0: sql>proposal is 0, proposal>negotiation has no denominator. No lost
     * step, nothing out of won. */
    expect("conv:lead>mql=0.4 conv:mql>sql=1.25 conv:sql>proposal=0 "
           "conv:negotiation>won=0.6667");

    struct counters c2 = {0};
    set(&c2, "stage:lead", 3);
    set(&c2, "stage:mql", 1);
    set(&c2, "stage:sql", 1);
    set(&c2, "stage:proposal", 1);
    set(&c2, "stage:negotiation", 8);
    set(&c2, "stage:won", 1);
    compute(&c2);
    expect("conv:lead>mql=0.3333 conv:mql>sql=1 conv:sql>proposal=1 "
           "conv:proposal>negotiation=8 conv:negotiation>won=0.125");
}

static void test_conversion_steps_of_other_configs(void **state)
{
    (void)state;
    /* A terminal stage in the middle is skipped over; the last open stage leads to won. */
    static const struct config_stage odd[] = {
        {"a", 0.1, false}, {"dq", 0, true}, {"b", 0.5, false}, {"lost", 0, true}, {"won", 1, true}};
    struct counters c = {0};
    set(&c, "stage:a", 4);
    set(&c, "stage:b", 2);
    set(&c, "stage:dq", 1);
    set(&c, "stage:won", 1);
    char err[128];
    assert_int_equal(derived_compute(odd, 5, lookup, &c, &out, err, sizeof err), 0);
    expect("conv:a>b=0.5 conv:b>won=0.5");

    /* No won stage: only the open steps. */
    static const struct config_stage nowon[] = {{"a", 0.1, false}, {"b", 0.5, false},
                                                {"closed", 1, true}};
    set(&c, "stage:closed", 2);
    assert_int_equal(derived_compute(nowon, 3, lookup, &c, &out, err, sizeof err), 0);
    expect("conv:a>b=0.5");

    /* 32-byte stage names make the longest field. */
    static const struct config_stage longest[] = {
        {"abcdefghijklmnopqrstuvwxyz012345", 0.1, false}, {"won", 1, true}, {"lost", 0, true}};
    struct counters l = {0};
    set(&l, "stage:abcdefghijklmnopqrstuvwxyz012345", 2);
    set(&l, "stage:won", 1);
    assert_int_equal(derived_compute(longest, 3, lookup, &l, &out, err, sizeof err), 0);
    expect("conv:abcdefghijklmnopqrstuvwxyz012345>won=0.5");

    static const struct config_stage too_long[] = {
        {"abcdefghijklmnopqrstuvwxyz0123456", 0.1, false}, {"won", 1, true}};
    assert_int_equal(derived_compute(too_long, 2, lookup, &l, &out, err, sizeof err), -1);
    assert_int_equal(out.n, 0);
}

static void test_meetings(void **state)
{
    (void)state;
    struct counters c = {0};
    set(&c, "touches", 17);
    set(&c, "meetings_first", 4);
    set(&c, "meetings_next_step", 1);
    compute(&c);
    expect("touches_per_first_meeting=4.25 next_step_rate=0.25");

    struct counters c2 = {0};
    set(&c2, "touches", 100);
    set(&c2, "meetings_first", 3);
    set(&c2, "meetings_next_step", 2);
    compute(&c2);
    expect("touches_per_first_meeting=33.3333 next_step_rate=0.6667");

    struct counters c3 = {0}; /* touches without first meetings: absent, never inf */
    set(&c3, "touches", 50);
    set(&c3, "meetings_next_step", 1);
    compute(&c3);
    expect("");
}

static void test_all_together(void **state)
{
    (void)state;
    struct counters c = {0};
    set(&c, "deals_won", 1);
    set(&c, "deals_lost", 2);
    set(&c, "revenue_won_cents", 999999);
    set(&c, "cycle_seconds_won", 86399); /* 0.99998.. days -> 1 */
    set(&c, "stage:lead", 6);
    set(&c, "stage:mql", 2);
    set(&c, "stage:negotiation", 2);
    set(&c, "stage:won", 1);
    set(&c, "touches", 9);
    set(&c, "meetings_first", 2);
    compute(&c);
    expect("win_rate=0.3333 avg_deal_cents=999999 avg_cycle_days=1 conv:lead>mql=0.3333 "
           "conv:mql>sql=0 conv:negotiation>won=0.5 touches_per_first_meeting=4.5 "
           "next_step_rate=0");
    assert_true(c.lookups > 0);
}

static void test_empty(void **state)
{
    (void)state;
    struct counters c = {0};
    compute(&c);
    assert_int_equal(out.n, 0); /* every denominator is 0: nothing, no nan, no inf */
}

static void test_overflow_guards(void **state)
{
    (void)state;
    /* won + lost and won x 86400 overflow: those figures are left out, never wrong. */
    struct counters c = {0};
    set(&c, "deals_won", INT64_MAX);
    set(&c, "deals_lost", 1);
    set(&c, "revenue_won_cents", INT64_MAX);
    compute(&c);
    expect("avg_deal_cents=1");
}

static void test_ratio_format(void **state)
{
    (void)state;
    ratio(5, 100000, "0.0001");          /* 0.00005: the half rounds away from zero */
    ratio(4999, 100000000, "0");         /* 0.00004999 */
    ratio(-5, 100000, "-0.0001");
    ratio(-4999, 100000000, "0");        /* never "-0" */
    ratio(15, 100000, "0.0002");         /* 0.00015 -> 0.0002 (not to even) */
    ratio(25, 100000, "0.0003");         /* 0.00025 -> 0.0003 */
    ratio(-25, 100000, "-0.0003");
    ratio(99995, 100000, "1");           /* carries into the integer part */
    ratio(199995, 100000, "2");
    ratio(99994, 100000, "0.9999");
    ratio(1, 3, "0.3333");
    ratio(2, 3, "0.6667");
    ratio(1, 2, "0.5");
    ratio(1, 8, "0.125");
    ratio(22, 7, "3.1429");
    ratio(1, 10, "0.1");
    ratio(101, 100, "1.01");
    ratio(0, 5, "0");
    ratio(6, 3, "2");
    ratio(1, -4, "-0.25");
    ratio(-1, -4, "0.25");
    ratio(INT64_MAX, 1, "9223372036854775807");
    ratio(INT64_MIN, 1, "-9223372036854775808");
    ratio(INT64_MIN, -1, "9223372036854775808");
    ratio(1, INT64_MAX, "0");
    ratio(INT64_MAX - 1, INT64_MAX, "1");
    ratio(INT64_MAX / 2 + 1, INT64_MAX, "0.5"); /* just over a half */
    ratio(INT64_MAX, INT64_MAX / 3, "3");
    ratio(INT64_MIN, 3, "-3074457345618258602.6667");

    char buf[8];
    assert_int_equal(derived_format_ratio(1, 0, buf, sizeof buf), -1);
    assert_int_equal(derived_format_ratio(0, 0, buf, sizeof buf), -1);
    assert_int_equal(derived_format_ratio(1, 3, buf, 6), -1);  /* "0.3333" needs 7 bytes */
    assert_int_equal(derived_format_ratio(1, 3, buf, 7), 6);
    assert_string_equal(buf, "0.3333");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_win_rate),
        cmocka_unit_test(test_averages),
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_conversion_steps_of_other_configs),
        cmocka_unit_test(test_meetings),
        cmocka_unit_test(test_all_together),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_overflow_guards),
        cmocka_unit_test(test_ratio_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
