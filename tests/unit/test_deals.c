/* Deal state transitions: stage counters once ever per stage, won/lost, revenue, cycle, and
 * exact pipeline deltas through moves, returns, amount updates, reassignment and reopening;
 * weighted rounding; the Redis hash form. Numbers are worked by hand in the comments.
 * Default stages: lead .05, mql .1, sql .2, proposal .4, negotiation .6, won 1 T, lost 0 T. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "deals.h"

enum { LEAD, MQL, SQL, PROPOSAL, NEGOTIATION, WON, LOST };
#define NONE (-1) /* no amount in the event */
#define HOUR 3600000LL
#define DAY (24 * HOUR)
#define T0 1795132800000LL /* 2026-11-16T00:00:00Z */

static const struct config_stage default_stages[] = {
    {"lead", 0.05, false},     {"mql", 0.1, false}, {"sql", 0.2, false}, {"proposal", 0.4, false},
    {"negotiation", 0.6, false}, {"won", 1, true},  {"lost", 0, true},
};

static deals_rules_t *rules;
static deals_effects_t fx;
static char err[256];

static int setup(void **state)
{
    (void)state;
    rules = deals_rules_new(default_stages, 7, err, sizeof err);
    return rules ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    deals_rules_free(rules);
    return 0;
}

/* One deal in a test: its state and whether it exists yet. */
typedef struct deal {
    deal_state_t st;
    bool exists;
} deal_t;

static void apply(deal_t *d, const char *manager, int64_t ts, int stage, int64_t amount)
{
    event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.type = EVENT_DEAL_STAGE;
    snprintf(ev.event_id, sizeof ev.event_id, "e-%lld", (long long)ts);
    snprintf(ev.manager_id, sizeof ev.manager_id, "%s", manager);
    snprintf(ev.deal_id, sizeof ev.deal_id, "D-1");
    ev.ts_ms = ts;
    ev.stage = stage;
    ev.has_amount = amount != NONE;
    ev.amount_cents = amount == NONE ? 0 : amount;
    /* In place (next == state), as the lead's cache will do. */
    if (deals_apply(d->exists ? &d->st : NULL, &ev, rules, &d->st, &fx, err, sizeof err) != 0)
        fail_msg("deals_apply: %s", err);
    d->exists = true;
}

/* "name=value ..." by field name: exactly these are non-zero. */
static void check_vector(const int64_t *v, size_t n, const char *(*name)(const deals_rules_t *, size_t),
                         const char *spec)
{
    int64_t want[DEALS_PIPE_MAX > DEALS_COUNTERS_MAX ? DEALS_PIPE_MAX : DEALS_COUNTERS_MAX] = {0};
    char buf[512];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
        char *eq = strchr(tok, '=');
        assert_non_null(eq);
        *eq = '\0';
        size_t i;
        for (i = 0; i < n; i++)
            if (strcmp(name(rules, i), tok) == 0)
                break;
        if (i == n)
            fail_msg("no field %s", tok);
        want[i] = strtoll(eq + 1, NULL, 10);
    }
    for (size_t i = 0; i < n; i++)
        if (want[i] != v[i])
            fail_msg("%s: want %lld got %lld", name(rules, i), (long long)want[i],
                     (long long)v[i]);
}

static void expect_counters(const char *spec)
{
    check_vector(fx.counters, deals_counter_count(rules), deals_counter_name, spec);
    assert_int_equal(fx.counted, spec[0] != '\0');
}

static void expect_no_pipe(void) { assert_int_equal(fx.n_pipe, 0); }

static void expect_pipe(size_t i, const char *manager, const char *spec)
{
    assert_true(i < fx.n_pipe);
    assert_string_equal(fx.pipe[i].manager, manager);
    check_vector(fx.pipe[i].values, deals_pipe_count(rules), deals_pipe_name, spec);
}

static void test_names(void **state)
{
    (void)state;
    assert_int_equal(deals_counter_count(rules), 11);
    assert_int_equal(deals_pipe_count(rules), 10);
    assert_string_equal(deals_counter_name(rules, DEALS_C_WON), "deals_won");
    assert_string_equal(deals_counter_name(rules, DEALS_C_LOST), "deals_lost");
    assert_string_equal(deals_counter_name(rules, DEALS_C_REVENUE_WON), "revenue_won_cents");
    assert_string_equal(deals_counter_name(rules, DEALS_C_CYCLE_WON), "cycle_seconds_won");
    assert_string_equal(deals_counter_name(rules, DEALS_C_STAGE0 + SQL), "stage:sql");
    assert_string_equal(deals_counter_name(rules, DEALS_C_STAGE0 + LOST), "stage:lost");
    assert_null(deals_counter_name(rules, 11));
    assert_string_equal(deals_pipe_name(rules, DEALS_P_OPEN_COUNT), "open_count");
    assert_string_equal(deals_pipe_name(rules, DEALS_P_OPEN_AMOUNT), "open_amount_cents");
    assert_string_equal(deals_pipe_name(rules, DEALS_P_WEIGHTED), "weighted_amount_cents");
    assert_string_equal(deals_pipe_name(rules, DEALS_P_OPEN_STAGE0 + PROPOSAL), "open:proposal");
    assert_null(deals_pipe_name(rules, 10));
    assert_int_equal(deals_rules_stage_find(rules, "negotiation", 11), NEGOTIATION);
    assert_int_equal(deals_rules_stage_find(rules, "negotiatio", 10), -1);
}

static void test_straight_run(void **state)
{
    (void)state;
    deal_t d = {0};
    apply(&d, "ivanov", T0, LEAD, 100000); /* 1000.00, weighted 100000 x .05 = 5000 */
    expect_counters("stage:lead=1");
    assert_int_equal(fx.n_pipe, 1);
    expect_pipe(0, "ivanov", "open_count=1 open_amount_cents=100000 weighted_amount_cents=5000 "
                             "open:lead=1");
    assert_true(fx.state_changed);
    assert_int_equal(d.st.first_ts, T0);
    assert_int_equal(d.st.stage_ts, T0);
    assert_int_equal(d.st.reached, 1);

    apply(&d, "ivanov", T0 + HOUR, MQL, NONE); /* amount kept: 100000 x .1 = 10000, +5000 */
    expect_counters("stage:mql=1");
    expect_pipe(0, "ivanov", "weighted_amount_cents=5000 open:lead=-1 open:mql=1");
    assert_int_equal(d.st.amount_cents, 100000);

    apply(&d, "ivanov", T0 + 2 * HOUR, SQL, 150000); /* 150000 x .2 = 30000, +20000 */
    expect_counters("stage:sql=1");
    expect_pipe(0, "ivanov", "open_amount_cents=50000 weighted_amount_cents=20000 open:mql=-1 "
                             "open:sql=1");

    apply(&d, "ivanov", T0 + 3 * HOUR, PROPOSAL, 200000); /* 80000, +50000 */
    expect_counters("stage:proposal=1");
    expect_pipe(0, "ivanov", "open_amount_cents=50000 weighted_amount_cents=50000 open:sql=-1 "
                             "open:proposal=1");

    apply(&d, "ivanov", T0 + 4 * HOUR, NEGOTIATION, NONE); /* 120000, +40000 */
    expect_counters("stage:negotiation=1");
    expect_pipe(0, "ivanov", "weighted_amount_cents=40000 open:proposal=-1 open:negotiation=1");

    /* Won 10 days, 3 h 25 min 45.678 s after the first event: 876345.678 s -> 876345. */
    apply(&d, "ivanov", T0 + 10 * DAY + 12345678, WON, NONE);
    expect_counters("stage:won=1 deals_won=1 revenue_won_cents=200000 cycle_seconds_won=876345");
    expect_pipe(0, "ivanov", "open_count=-1 open_amount_cents=-200000 "
                             "weighted_amount_cents=-120000 open:negotiation=-1");
    assert_int_equal(d.st.reached, 0x3f);
    assert_int_equal(d.st.stage_ts, T0 + 10 * DAY + 12345678);
    assert_int_equal(d.st.first_ts, T0);

    /* An amount-only update of a won deal: no entry, no pipeline (not open), new state. */
    apply(&d, "ivanov", T0 + 11 * DAY, WON, 250000);
    expect_counters("");
    expect_no_pipe();
    assert_true(fx.state_changed);
    assert_int_equal(d.st.amount_cents, 250000);
    assert_int_equal(d.st.stage_ts, T0 + 10 * DAY + 12345678);
}

static void test_skip_stages(void **state)
{
    (void)state;
    deal_t d = {0};
    apply(&d, "ivanov", T0, LEAD, NONE);
    expect_counters("stage:lead=1");
    expect_pipe(0, "ivanov", "open_count=1 open:lead=1"); /* unknown amount counts 0 */
    apply(&d, "ivanov", T0 + HOUR, SQL, NONE); /* lead -> sql does not enter mql */
    expect_counters("stage:sql=1");
    expect_pipe(0, "ivanov", "open:lead=-1 open:sql=1");
    apply(&d, "ivanov", T0 + 2 * HOUR, WON, NONE); /* won without any amount: revenue 0 */
    expect_counters("stage:won=1 deals_won=1 cycle_seconds_won=7200");
    expect_pipe(0, "ivanov", "open_count=-1 open:sql=-1");
    assert_int_equal(d.st.reached, 1 | 4 | 32);
    assert_false(d.st.has_amount);
}

static void test_back_and_forth(void **state)
{
    (void)state;
    deal_t d = {0};
    apply(&d, "ivanov", T0, LEAD, 100000);
    apply(&d, "ivanov", T0 + HOUR, PROPOSAL, NONE);
    expect_counters("stage:proposal=1");
    expect_pipe(0, "ivanov", "weighted_amount_cents=35000 open:lead=-1 open:proposal=1");
    /* Back to sql, first time there: an entry. Weighted 40000 -> 20000. */
    apply(&d, "ivanov", T0 + 2 * HOUR, SQL, NONE);
    expect_counters("stage:sql=1");
    expect_pipe(0, "ivanov", "weighted_amount_cents=-20000 open:proposal=-1 open:sql=1");
    assert_int_equal(d.st.stage_ts, T0 + 2 * HOUR);
    /* Forward again: proposal was reached, not counted again in any period. */
    apply(&d, "ivanov", T0 + 30 * DAY, PROPOSAL, NONE);
    expect_counters("");
    expect_pipe(0, "ivanov", "weighted_amount_cents=20000 open:sql=-1 open:proposal=1");
    assert_int_equal(d.st.stage_ts, T0 + 30 * DAY); /* a stage change, even without entry */
    apply(&d, "ivanov", T0 + 31 * DAY, SQL, NONE);
    expect_counters("");
    expect_pipe(0, "ivanov", "weighted_amount_cents=-20000 open:proposal=-1 open:sql=1");
    apply(&d, "ivanov", T0 + 32 * DAY, LEAD, NONE); /* all the way back */
    expect_counters("");
    expect_pipe(0, "ivanov", "weighted_amount_cents=-15000 open:sql=-1 open:lead=1");
    assert_int_equal(d.st.reached, 1 | 4 | 8);
}

static void test_amount_only(void **state)
{
    (void)state;
    deal_t d = {0};
    apply(&d, "ivanov", T0, PROPOSAL, 100000);
    expect_counters("stage:proposal=1");
    expect_pipe(0, "ivanov", "open_count=1 open_amount_cents=100000 weighted_amount_cents=40000 "
                             "open:proposal=1");
    /* 125050 x .4 = 50020: +25050 amount, +10020 weighted; no entry, stage_ts kept. */
    apply(&d, "ivanov", T0 + DAY, PROPOSAL, 125050);
    expect_counters("");
    expect_pipe(0, "ivanov", "open_amount_cents=25050 weighted_amount_cents=10020");
    assert_int_equal(d.st.stage_ts, T0);
    assert_true(fx.state_changed);
    /* The same again changes nothing at all. */
    apply(&d, "ivanov", T0 + 2 * DAY, PROPOSAL, 125050);
    expect_counters("");
    expect_no_pipe();
    assert_false(fx.state_changed);
    /* No amount: the last known one stays. */
    apply(&d, "ivanov", T0 + 3 * DAY, PROPOSAL, NONE);
    expect_no_pipe();
    assert_false(fx.state_changed);
    assert_int_equal(d.st.amount_cents, 125050);
    /* Down to 0 is a known amount of 0, not "unknown". */
    apply(&d, "ivanov", T0 + 4 * DAY, PROPOSAL, 0);
    expect_pipe(0, "ivanov", "open_amount_cents=-125050 weighted_amount_cents=-50020");
    assert_true(d.st.has_amount);
}

static void test_reassignment(void **state)
{
    (void)state;
    deal_t d = {0};
    apply(&d, "ivanov", T0, LEAD, NONE);
    apply(&d, "ivanov", T0 + HOUR, PROPOSAL, 100000);
    /* petrov moves it on: the entry counts for petrov (the event's manager); ivanov's
     * pipeline loses the deal as it was, petrov's gains it as it is. */
    apply(&d, "petrov", T0 + DAY, NEGOTIATION, 120000);
    expect_counters("stage:negotiation=1");
    assert_int_equal(fx.n_pipe, 2);
    expect_pipe(0, "ivanov", "open_count=-1 open_amount_cents=-100000 weighted_amount_cents=-40000 "
                             "open:proposal=-1");
    expect_pipe(1, "petrov", "open_count=1 open_amount_cents=120000 weighted_amount_cents=72000 "
                             "open:negotiation=1");
    assert_string_equal(d.st.manager, "petrov");
    /* sidorov takes it over with an amount-only update: no entry, the whole contribution moves. */
    apply(&d, "sidorov", T0 + 2 * DAY, NEGOTIATION, NONE);
    expect_counters("");
    assert_int_equal(fx.n_pipe, 2);
    expect_pipe(0, "petrov", "open_count=-1 open_amount_cents=-120000 weighted_amount_cents=-72000 "
                             "open:negotiation=-1");
    expect_pipe(1, "sidorov", "open_count=1 open_amount_cents=120000 weighted_amount_cents=72000 "
                              "open:negotiation=1");
    assert_true(fx.state_changed);
    /* ivanov closes it: won counts for ivanov; only sidorov's pipeline changes (a won deal
     * contributes nothing to ivanov's). */
    apply(&d, "ivanov", T0 + 3 * DAY, WON, NONE);
    expect_counters("stage:won=1 deals_won=1 revenue_won_cents=120000 cycle_seconds_won=259200");
    assert_int_equal(fx.n_pipe, 1);
    expect_pipe(0, "sidorov", "open_count=-1 open_amount_cents=-120000 weighted_amount_cents=-72000 "
                              "open:negotiation=-1");
    assert_string_equal(d.st.manager, "ivanov");
    /* Reassigning a closed deal moves no pipeline. */
    apply(&d, "petrov", T0 + 4 * DAY, WON, NONE);
    expect_counters("");
    expect_no_pipe();
    assert_true(fx.state_changed);
}

static void test_reopen_lost(void **state)
{
    (void)state;
    deal_t d = {0};
    apply(&d, "ivanov", T0, LEAD, 50000);
    apply(&d, "ivanov", T0 + DAY, LOST, NONE);
    expect_counters("stage:lost=1 deals_lost=1");
    expect_pipe(0, "ivanov", "open_count=-1 open_amount_cents=-50000 weighted_amount_cents=-2500 "
                             "open:lead=-1");
    /* Reopened straight into negotiation: 50000 x .6 = 30000. */
    apply(&d, "ivanov", T0 + 2 * DAY, NEGOTIATION, NONE);
    expect_counters("stage:negotiation=1");
    expect_pipe(0, "ivanov", "open_count=1 open_amount_cents=50000 weighted_amount_cents=30000 "
                             "open:negotiation=1");
    /* Lost again: once ever, so no counter, but the pipeline drops it again. */
    apply(&d, "ivanov", T0 + 3 * DAY, LOST, NONE);
    expect_counters("");
    expect_pipe(0, "ivanov", "open_count=-1 open_amount_cents=-50000 weighted_amount_cents=-30000 "
                             "open:negotiation=-1");
    /* Reopened by petrov and won: counted as won once, although also lost once. */
    apply(&d, "petrov", T0 + 4 * DAY, NEGOTIATION, NONE);
    expect_counters("");
    expect_pipe(0, "petrov", "open_count=1 open_amount_cents=50000 weighted_amount_cents=30000 "
                             "open:negotiation=1");
    apply(&d, "petrov", T0 + 5 * DAY + 999, WON, NONE);
    expect_counters("stage:won=1 deals_won=1 revenue_won_cents=50000 cycle_seconds_won=432000");
    assert_int_equal(d.st.reached, 1 | 16 | 32 | 64);
    /* Won is once ever too, even after a reopening. */
    apply(&d, "petrov", T0 + 6 * DAY, NEGOTIATION, NONE);
    apply(&d, "petrov", T0 + 7 * DAY, WON, 70000);
    expect_counters("");
    expect_pipe(0, "petrov", "open_count=-1 open_amount_cents=-50000 weighted_amount_cents=-30000 "
                             "open:negotiation=-1");
}

static void test_won_amounts(void **state)
{
    (void)state;
    deal_t d = {0};
    /* The won event's amount overrides the last known one, for revenue and the state; the
     * pipeline removes what was there (100000, 5000 weighted). */
    apply(&d, "ivanov", T0, LEAD, 100000);
    apply(&d, "ivanov", T0 + 1500, WON, 90000);
    expect_counters("stage:won=1 deals_won=1 revenue_won_cents=90000 cycle_seconds_won=1");
    expect_pipe(0, "ivanov", "open_count=-1 open_amount_cents=-100000 weighted_amount_cents=-5000 "
                             "open:lead=-1");
    assert_int_equal(d.st.amount_cents, 90000);

    /* A deal first seen as won: cycle 0, revenue from its amount, never in a pipeline. */
    deal_t w = {0};
    apply(&w, "petrov", T0, WON, 77700);
    expect_counters("stage:won=1 deals_won=1 revenue_won_cents=77700");
    expect_no_pipe();
    assert_true(fx.state_changed);
    assert_int_equal(w.st.first_ts, T0);

    /* Won 0 cents explicitly overrides a known amount. */
    deal_t z = {0};
    apply(&z, "petrov", T0, SQL, 5000);
    apply(&z, "petrov", T0 + 999, WON, 0);
    expect_counters("stage:won=1 deals_won=1"); /* revenue 0, cycle 0.999 s -> 0 */
    /* A deal first seen as lost. */
    deal_t l = {0};
    apply(&l, "petrov", T0, LOST, 100);
    expect_counters("stage:lost=1 deals_lost=1");
    expect_no_pipe();
}

static void test_cycle(void **state)
{
    (void)state;
    /* First seen at proposal: the cycle starts at that first applied event. 1 day - 1 ms
     * is 86399.999 s, truncated to 86399. */
    deal_t d = {0};
    apply(&d, "ivanov", T0 + 1000, PROPOSAL, NONE);
    apply(&d, "ivanov", T0 + 1000 + DAY - 1, WON, NONE);
    expect_counters("stage:won=1 deals_won=1 cycle_seconds_won=86399");

    /* Out of order: a won event older than the first event adds 0, not a negative cycle. */
    deal_t o = {0};
    apply(&o, "ivanov", T0, NEGOTIATION, NONE);
    apply(&o, "ivanov", T0 - DAY, WON, NONE);
    expect_counters("stage:won=1 deals_won=1");
    assert_int_equal(o.st.first_ts, T0); /* the first applied, not the earliest */
}

static void test_out_of_order(void **state)
{
    (void)state;
    /* Processing order decides: an event older than stage_ts still moves the deal. */
    deal_t d = {0};
    apply(&d, "ivanov", T0, LEAD, NONE);
    apply(&d, "ivanov", T0 + DAY, PROPOSAL, NONE);
    apply(&d, "ivanov", T0 + HOUR, SQL, NONE);
    expect_counters("stage:sql=1");
    expect_pipe(0, "ivanov", "open:proposal=-1 open:sql=1");
    assert_int_equal(d.st.stage, SQL);
    assert_int_equal(d.st.stage_ts, T0 + HOUR);
    assert_int_equal(d.st.first_ts, T0);
    /* An older event is first_ts only if it is applied first. */
    deal_t e = {0};
    apply(&e, "ivanov", T0 + DAY, SQL, NONE);
    apply(&e, "ivanov", T0, LEAD, NONE);
    expect_counters("stage:lead=1");
    assert_int_equal(e.st.first_ts, T0 + DAY);
}

static void test_weighted_rounding(void **state)
{
    (void)state;
    /* Half away from zero per deal. */
    assert_int_equal(deals_weighted_cents(rules, LEAD, 10), 1);  /* .05 x 10 = 0.5 -> 1 */
    assert_int_equal(deals_weighted_cents(rules, LEAD, 9), 0);   /* 0.45 -> 0 */
    assert_int_equal(deals_weighted_cents(rules, LEAD, 30), 2);  /* 1.5 -> 2 */
    assert_int_equal(deals_weighted_cents(rules, LEAD, 50), 3);  /* 2.5 -> 3, not banker's 2 */
    assert_int_equal(deals_weighted_cents(rules, MQL, 25), 3);   /* 2.5 -> 3 */
    assert_int_equal(deals_weighted_cents(rules, MQL, 24), 2);   /* 2.4 -> 2 */
    assert_int_equal(deals_weighted_cents(rules, PROPOSAL, 125050), 50020);
    assert_int_equal(deals_weighted_cents(rules, NEGOTIATION, 1), 1); /* 0.6 -> 1 */
    assert_int_equal(deals_weighted_cents(rules, LOST, 123456), 0);   /* p 0 */
    assert_int_equal(deals_weighted_cents(rules, WON, 123456), 123456); /* p 1 */
    assert_int_equal(deals_weighted_cents(rules, LEAD, 0), 0);
    /* The largest valid amount, 10^12 units = 10^14 cents: 5 x 10^12 exactly. */
    assert_int_equal(deals_weighted_cents(rules, LEAD, 100000000000000LL), 5000000000000LL);
    assert_int_equal(deals_weighted_cents(rules, WON, INT64_MAX), INT64_MAX); /* no overflow */

    /* p given with decimals a double cannot hold: 0.15 (the double is 0.1499999..), 0.5
     * ties on an amount above 10^9 (exercises the split), p 1/3. */
    static const struct config_stage odd[] = {
        {"a", 0.15, false}, {"b", 0.5, false}, {"c", 1.0 / 3.0, false},
        {"d", 0.333, false}, {"won", 1, true}, {"lost", 0, true}};
    char e[128];
    deals_rules_t *r = deals_rules_new(odd, 6, e, sizeof e);
    assert_non_null(r);
    assert_int_equal(deals_weighted_cents(r, 0, 10), 2);   /* 1.5 -> 2 (a double says 1.4999) */
    assert_int_equal(deals_weighted_cents(r, 0, 30), 5);   /* 4.5 -> 5 */
    assert_int_equal(deals_weighted_cents(r, 0, 70), 11);  /* 10.5 -> 11 */
    assert_int_equal(deals_weighted_cents(r, 1, 1), 1);    /* 0.5 -> 1 */
    assert_int_equal(deals_weighted_cents(r, 1, 100000000000005LL), 50000000000003LL); /* .5 up */
    assert_int_equal(deals_weighted_cents(r, 1, 1999999999), 1000000000); /* 999999999.5 */
    assert_int_equal(deals_weighted_cents(r, 2, 3), 1);    /* 1/3 to 9 places: 0.999999999 */
    assert_int_equal(deals_weighted_cents(r, 2, 100), 33);
    assert_int_equal(deals_weighted_cents(r, 3, 1000000000000LL), 333000000000LL);
    assert_int_equal(deals_weighted_cents(r, 3, 1500), 500); /* 499.5 -> 500 */
    deals_rules_free(r);

    /* Rounded per deal, then summed: two deals of 30 cents at lead are 2 + 2 = 4 (1.5 -> 2
     * each), while rounding the sum would give round(60 x .05) = 3. */
    deal_t a = {0}, b = {0};
    apply(&a, "ivanov", T0, LEAD, 30);
    int64_t wa = fx.pipe[0].values[DEALS_P_WEIGHTED];
    apply(&b, "ivanov", T0, LEAD, 30);
    assert_int_equal(wa + fx.pipe[0].values[DEALS_P_WEIGHTED], 4);
}

static void test_contribution(void **state)
{
    (void)state;
    deal_state_t s = {.manager = "ivanov", .stage = SQL, .has_amount = true,
                      .amount_cents = 12345, .reached = 4};
    int64_t v[DEALS_PIPE_MAX];
    deals_contribution(rules, &s, v);
    assert_int_equal(v[DEALS_P_OPEN_COUNT], 1);
    assert_int_equal(v[DEALS_P_OPEN_AMOUNT], 12345);
    assert_int_equal(v[DEALS_P_WEIGHTED], 2469); /* 2469.0 */
    assert_int_equal(v[DEALS_P_OPEN_STAGE0 + SQL], 1);
    s.stage = LOST;
    deals_contribution(rules, &s, v);
    for (size_t i = 0; i < DEALS_PIPE_MAX; i++)
        assert_int_equal(v[i], 0);
}

/* A seeded random walk over many deals and managers: the pipeline sums built from the
 * effects equal the contributions of the final states, and the counters equal what the
 * reached masks say. Catches any delta that is not exact. */
static uint64_t rng = 0x9e3779b97f4a7c15u;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void test_random_histories(void **state)
{
    (void)state;
    enum { DEALS = 200, MANAGERS = 4, STEPS = 5000 };
    static const char *const mgr[MANAGERS] = {"m0", "m1", "m2", "m3"};
    static deal_t d[DEALS];
    int64_t pipe[MANAGERS][DEALS_PIPE_MAX] = {{0}}, counters[DEALS_COUNTERS_MAX] = {0};
    memset(d, 0, sizeof d);
    for (int step = 0; step < STEPS; step++) {
        deal_t *x = &d[rnd(DEALS)];
        int64_t amount = rnd(3) == 0 ? NONE : (int64_t)rnd(1000000);
        apply(x, mgr[rnd(MANAGERS)], T0 + rnd(100) * HOUR, (int)rnd(7), amount);
        for (size_t i = 0; i < fx.n_pipe; i++) {
            int m = fx.pipe[i].manager[1] - '0';
            for (size_t k = 0; k < DEALS_PIPE_MAX; k++)
                pipe[m][k] += fx.pipe[i].values[k];
        }
        assert_true(fx.n_pipe < 2 || strcmp(fx.pipe[0].manager, fx.pipe[1].manager) != 0);
        for (size_t k = 0; k < DEALS_COUNTERS_MAX; k++)
            counters[k] += fx.counters[k];
    }
    int64_t want[MANAGERS][DEALS_PIPE_MAX] = {{0}}, stage_want[7] = {0}, won = 0, lost = 0;
    for (int i = 0; i < DEALS; i++) {
        if (!d[i].exists)
            continue;
        int64_t v[DEALS_PIPE_MAX];
        deals_contribution(rules, &d[i].st, v);
        int m = d[i].st.manager[1] - '0';
        for (size_t k = 0; k < DEALS_PIPE_MAX; k++)
            want[m][k] += v[k];
        for (int s = 0; s < 7; s++)
            stage_want[s] += (d[i].st.reached >> s) & 1;
        won += (d[i].st.reached >> WON) & 1;
        lost += (d[i].st.reached >> LOST) & 1;
    }
    for (int m = 0; m < MANAGERS; m++)
        for (size_t k = 0; k < DEALS_PIPE_MAX; k++)
            assert_int_equal(pipe[m][k], want[m][k]);
    for (int s = 0; s < 7; s++)
        assert_int_equal(counters[DEALS_C_STAGE0 + s], stage_want[s]);
    assert_int_equal(counters[DEALS_C_WON], won);
    assert_int_equal(counters[DEALS_C_LOST], lost);
    assert_true(won > 0 && lost > 0);
}

static void test_errors(void **state)
{
    (void)state;
    event_t ev;
    memset(&ev, 0, sizeof ev);
    deal_state_t next;
    ev.type = EVENT_CALL;
    assert_int_equal(deals_apply(NULL, &ev, rules, &next, &fx, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a deal_stage"));
    ev.type = EVENT_DEAL_STAGE;
    ev.stage = 7;
    assert_int_equal(deals_apply(NULL, &ev, rules, &next, &fx, err, sizeof err), -1);
    ev.stage = -1;
    assert_int_equal(deals_apply(NULL, &ev, rules, &next, &fx, err, sizeof err), -1);
    ev.stage = LEAD;
    deal_state_t bad = {.manager = "x", .stage = 9, .reached = 1};
    assert_int_equal(deals_apply(&bad, &ev, rules, &next, &fx, err, sizeof err), -1);
    assert_non_null(strstr(err, "stored stage"));

    struct config_stage s[DEALS_MAX_STAGES + 1];
    for (size_t i = 0; i < DEALS_MAX_STAGES + 1; i++)
        s[i] = (struct config_stage){"x", 0.5, false};
    assert_null(deals_rules_new(s, DEALS_MAX_STAGES + 1, err, sizeof err));
    assert_null(deals_rules_new(s, 0, err, sizeof err));
    struct config_stage no_lost[] = {{"a", 0.5, false}, {"won", 1, true}, {"lost", 0, false}};
    assert_null(deals_rules_new(no_lost, 3, err, sizeof err));
    assert_non_null(strstr(err, "\"lost\""));
    struct config_stage bad_p[] = {{"a", 1.5, false}, {"won", 1, true}, {"lost", 0, true}};
    assert_null(deals_rules_new(bad_p, 3, err, sizeof err));
    assert_non_null(strstr(err, "stages[0]: p"));
    struct config_stage long_name[] = {{"abcdefghijklmnopqrstuvwxyz0123456", 0.5, false},
                                       {"won", 1, true}, {"lost", 0, true}};
    assert_null(deals_rules_new(long_name, 3, err, sizeof err));
}

/* ---- the Redis hash form ---- */

static int read_pairs(const char *const *kv, size_t n, deal_state_t *out)
{
    deals_reader_t r;
    deals_reader_init(&r);
    for (size_t i = 0; i + 1 < n; i += 2)
        if (deals_reader_field(&r, rules, kv[i], strlen(kv[i]), kv[i + 1], strlen(kv[i + 1]), err,
                               sizeof err) != 0)
            return -1;
    return deals_reader_finish(&r, out, err, sizeof err);
}

static void test_hash_round_trip(void **state)
{
    (void)state;
    deal_state_t s = {.manager = "ivanov", .stage = PROPOSAL, .has_amount = true,
                      .amount_cents = 12500050, .first_ts = T0, .stage_ts = T0 + DAY,
                      .reached = 1 | 4 | 8};
    deals_hash_t h;
    assert_int_equal(deals_state_format(rules, &s, &h, err, sizeof err), 0);
    static const char *const want[][2] = {
        {"manager", "ivanov"},          {"stage", "proposal"},
        {"amount_cents", "12500050"},   {"first_ts", "1795132800000"},
        {"stage_ts", "1795219200000"}, {"reached", "13"}};
    assert_int_equal(h.n, 6);
    const char *kv[12];
    for (size_t i = 0; i < 6; i++) {
        assert_string_equal(h.field[i], want[i][0]);
        assert_string_equal(h.value[i], want[i][1]);
        assert_int_equal(h.value_len[i], strlen(want[i][1]));
        kv[2 * i] = h.field[i];
        kv[2 * i + 1] = h.value[i];
    }
    deal_state_t back;
    assert_int_equal(read_pairs(kv, 12, &back), 0);
    assert_string_equal(back.manager, "ivanov");
    assert_int_equal(back.stage, PROPOSAL);
    assert_true(back.has_amount);
    assert_int_equal(back.amount_cents, 12500050);
    assert_int_equal(back.first_ts, T0);
    assert_int_equal(back.stage_ts, T0 + DAY);
    assert_int_equal(back.reached, 13);

    /* Without an amount there is no amount_cents field; all 64 reached bits survive. */
    deal_state_t u = {.manager = "a.b@c-d_e", .stage = LOST, .first_ts = -5, .stage_ts = 0,
                      .reached = UINT64_MAX};
    assert_int_equal(deals_state_format(rules, &u, &h, err, sizeof err), 0);
    assert_int_equal(h.n, 5);
    assert_string_equal(h.field[2], "first_ts");
    assert_string_equal(h.value[2], "-5");
    assert_string_equal(h.value[4], "18446744073709551615");
    for (size_t i = 0; i < 5; i++) {
        kv[2 * i] = h.field[i];
        kv[2 * i + 1] = h.value[i];
    }
    assert_int_equal(read_pairs(kv, 10, &back), 0);
    assert_false(back.has_amount);
    assert_int_equal(back.first_ts, -5);
    assert_int_equal(back.reached, 0x7f); /* bits past the 7 stages dropped */

    /* A state applied after a round trip behaves as the original. */
    deal_t d = {0};
    apply(&d, "ivanov", T0, LEAD, 1000);
    apply(&d, "ivanov", T0 + HOUR, SQL, NONE);
    assert_int_equal(deals_state_format(rules, &d.st, &h, err, sizeof err), 0);
    for (size_t i = 0; i < h.n; i++) {
        kv[2 * i] = h.field[i];
        kv[2 * i + 1] = h.value[i];
    }
    assert_int_equal(read_pairs(kv, 2 * h.n, &d.st), 0);
    apply(&d, "ivanov", T0 + 2 * HOUR, LEAD, NONE);
    expect_counters("");
    expect_pipe(0, "ivanov", "weighted_amount_cents=-150 open:sql=-1 open:lead=1");

    s.stage = 7;
    assert_int_equal(deals_state_format(rules, &s, &h, err, sizeof err), -1);
}

static void test_hash_reader_errors(void **state)
{
    (void)state;
    deal_state_t out = {.stage = 99};
    /* An empty HGETALL: the deal is new. */
    assert_int_equal(read_pairs(NULL, 0, &out), 1);
    assert_int_equal(out.stage, 99);

    /* Unknown fields are ignored. */
    const char *ok[] = {"manager", "m", "stage", "lead", "first_ts", "1", "stage_ts", "2",
                        "reached", "1", "future", "x"};
    assert_int_equal(read_pairs(ok, 12, &out), 0);

    struct { const char *field, *value, *msg; } bad[] = {
        {"manager", "", "manager"},
        {"manager", "has space", "manager"},
        {"manager", "x12345678901234567890123456789012345678901234567890123456789012345", "manager"},
        {"stage", "Lead", "stage"},
        {"stage", "lea", "stage"},
        {"amount_cents", "-1", "amount_cents"},
        {"amount_cents", "+1", "amount_cents"},
        {"amount_cents", "1.5", "amount_cents"},
        {"amount_cents", "", "amount_cents"},
        {"amount_cents", "9223372036854775808", "amount_cents"},
        {"first_ts", "-", "first_ts"},
        {"first_ts", " 1", "first_ts"},
        {"stage_ts", "-9223372036854775809", "stage_ts"},
        {"reached", "18446744073709551616", "reached"},
        {"reached", "-1", "reached"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        deals_reader_t r;
        deals_reader_init(&r);
        if (deals_reader_field(&r, rules, bad[i].field, strlen(bad[i].field), bad[i].value,
                               strlen(bad[i].value), err, sizeof err) != -1)
            fail_msg("%s=%s accepted", bad[i].field, bad[i].value);
        assert_non_null(strstr(err, bad[i].msg));
    }
    /* The extremes that are valid. */
    const char *edge[] = {"manager", "m", "stage", "won", "first_ts", "-9223372036854775808",
                          "stage_ts", "9223372036854775807", "reached", "32",
                          "amount_cents", "9223372036854775807"};
    assert_int_equal(read_pairs(edge, 12, &out), 0);
    assert_int_equal(out.first_ts, INT64_MIN);
    assert_int_equal(out.amount_cents, INT64_MAX);

    /* Each required field missing in turn. */
    static const char *const names[] = {"manager", "stage", "first_ts", "stage_ts", "reached"};
    for (size_t skip = 0; skip < 5; skip++) {
        const char *kv[10];
        size_t n = 0;
        for (size_t i = 0; i < 5; i++) {
            if (i == skip)
                continue;
            kv[n++] = ok[2 * i];
            kv[n++] = ok[2 * i + 1];
        }
        assert_int_equal(read_pairs(kv, n, &out), -1);
        assert_non_null(strstr(err, names[skip]));
        assert_non_null(strstr(err, "missing"));
    }
    /* reached must include the current stage. */
    const char *incons[] = {"manager", "m", "stage", "sql", "first_ts", "1", "stage_ts", "2",
                            "reached", "3"};
    assert_int_equal(read_pairs(incons, 10, &out), -1);
    assert_non_null(strstr(err, "current stage"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_straight_run),
        cmocka_unit_test(test_skip_stages),
        cmocka_unit_test(test_back_and_forth),
        cmocka_unit_test(test_amount_only),
        cmocka_unit_test(test_reassignment),
        cmocka_unit_test(test_reopen_lost),
        cmocka_unit_test(test_won_amounts),
        cmocka_unit_test(test_cycle),
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_weighted_rounding),
        cmocka_unit_test(test_contribution),
        cmocka_unit_test(test_random_histories),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_hash_round_trip),
        cmocka_unit_test(test_hash_reader_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
