/* What a batch changes besides the activity counters: the tally's leaderboard, hourly and
 * pipeline hashes, counter naming across activity and deal counters, agg lookups, and the
 * batch's deal set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixtures.h"

#include "dealset.h"
#include "tally.h"

static const struct config_stage default_stages[] = {
    {"lead", 0.05, false},       {"mql", 0.1, false}, {"sql", 0.2, false}, {"proposal", 0.4, false},
    {"negotiation", 0.6, false}, {"won", 1, true},    {"lost", 0, true},
};

static const agg_bucket_t *find(const agg_t *agg, enum scope_kind kind, const char *scope,
                                const char *period_id)
{
    const agg_bucket_t *b = agg_find(agg, kind, scope, period_id);
    assert_non_null(b);
    return b;
}

static void test_counter_names(void **state)
{
    (void)state;
    char err[128];
    deals_rules_t *rules = deals_rules_new(default_stages, 7, err, sizeof err);
    assert_non_null(rules);
    assert_int_equal(tally_counter_count(rules), COUNTER_ACTIVITY_COUNT + 4 + 7);
    assert_string_equal(tally_counter_name(rules, COUNTER_TOUCHES), "touches");
    assert_string_equal(tally_counter_name(rules, TALLY_DEAL_BASE + DEALS_C_WON), "deals_won");
    assert_string_equal(tally_counter_name(rules, TALLY_DEAL_BASE + DEALS_C_STAGE0 + 3),
                        "stage:proposal");
    assert_null(tally_counter_name(rules, tally_counter_count(rules)));
    assert_string_equal(tally_counter_name(rules, tally_lb_counter(3)), "revenue_won_cents");
    assert_string_equal(tally_counter_name(rules, tally_rolling_counter(2)), "meetings_held");
    deals_rules_free(rules);
}

/* Two managers in different zones: team periods from the team's zone, boards from the
 * organisation's; hours by UTC epoch, negative ones floored. */
static void test_tally_tables(void **state)
{
    (void)state;
    tally_t *t = tally_new();
    assert_non_null(t);
    period_set_t msk = fixture_periods("d:2026-11-17", "w:2026-W47", 1);
    period_set_t org = fixture_periods("d:2026-11-16", "w:2026-W47", 2);
    int64_t d[TALLY_VALUES] = {[COUNTER_TOUCHES] = 1, [COUNTER_EMAILS] = 1};
    int64_t won[TALLY_VALUES] = {[TALLY_DEAL_BASE + DEALS_C_WON] = 1,
                                   [TALLY_DEAL_BASE + DEALS_C_REVENUE_WON] = 12500050};
    int64_t mark[TALLY_VALUES] = {[TALLY_DEAL_MARK] = 1};
    /* 1795300200000 ms is hour 498694 (floor of ms / 3600000); -1000 ms is hour -1 */
    struct tally_scope a = {"ivanov", "msk", &msk, &org, 1795300200000LL, false};
    struct tally_scope b = {"petrov", "msk", &msk, &org, -1000, false};
    for (int round = 0; round < 2; round++) {
        assert_int_equal(tally_add(t, &a, d), 0);
        assert_int_equal(tally_add(t, &a, d), 0);
        assert_int_equal(tally_add(t, &a, won), 0);
        assert_int_equal(tally_add(t, &b, d), 0);
        const agg_t *c = tally_counters(t);
        assert_int_equal(find(c, SCOPE_MANAGER, "ivanov", "d:2026-11-17")->values[COUNTER_TOUCHES], 2);
        assert_int_equal(find(c, SCOPE_TEAM, "msk", "w:2026-W47")->values[COUNTER_TOUCHES], 3);
        assert_int_equal(find(c, SCOPE_ORG, "", "d:2026-11-16")
                             ->values[TALLY_DEAL_BASE + DEALS_C_REVENUE_WON],
                         12500050);
        /* Boards: one per org period, values by board metric */
        const agg_t *lb = tally_leaders(t);
        assert_int_equal(agg_bucket_count(lb), 8);
        const agg_bucket_t *iv = find(lb, SCOPE_MANAGER, "ivanov", "d:2026-11-16");
        assert_int_equal(iv->values[0], 2);        /* touches */
        assert_int_equal(iv->values[1], 0);        /* meetings_held */
        assert_int_equal(iv->values[2], 1);        /* deals_won */
        assert_int_equal(iv->values[3], 12500050); /* revenue_won_cents */
        assert_int_equal(iv->period_end_ms, 2);
        assert_null(agg_find(lb, SCOPE_MANAGER, "ivanov", "d:2026-11-17"));
        /* Hours: the won event adds nothing to the rolling metrics */
        const agg_t *h = tally_hourly(t);
        assert_int_equal(agg_bucket_count(h), 2);
        const agg_bucket_t *hi = find(h, SCOPE_MANAGER, "ivanov", "498694");
        assert_int_equal(hi->period_end_ms, 498694);
        assert_int_equal(hi->values[1], 2); /* emails */
        assert_int_equal(hi->values[3], 2); /* touches */
        assert_int_equal(hi->values[0], 0); /* calls */
        assert_int_equal(find(h, SCOPE_MANAGER, "petrov", "-1")->period_end_ms, -1);
        /* A deal event counted before its state is known still marks its hashes */
        struct tally_scope c2 = {"sidorov", "unassigned", &msk, &org, 0, false};
        assert_int_equal(tally_add(t, &c2, mark), 0);
        assert_int_equal(find(c, SCOPE_MANAGER, "sidorov", "q:2026-Q4")->values[TALLY_DEAL_MARK], 1);
        assert_null(agg_find(lb, SCOPE_MANAGER, "sidorov", "q:2026-Q4"));
        tally_reset(t);
        assert_int_equal(agg_bucket_count(tally_counters(t)), 0);
    }
    tally_free(t);
}

/* A manager in the organisation's zone: the manager's own buckets are the boards' (no
 * leaderboard buckets of their own), flagged so the flush writes both from them. */
static void test_org_zone_boards(void **state)
{
    (void)state;
    tally_t *t = tally_new();
    period_set_t p = fixture_periods("d:2026-11-16", "w:2026-W47", 1);
    int64_t d[TALLY_VALUES] = {[COUNTER_TOUCHES] = 1, [COUNTER_MEETINGS_HELD] = 1};
    struct tally_scope w = {"ivanov", "msk", &p, &p, 0, true};
    assert_int_equal(tally_add(t, &w, d), 0);
    assert_int_equal(agg_bucket_count(tally_leaders(t)), 0);
    const agg_bucket_t *b = find(tally_counters(t), SCOPE_MANAGER, "ivanov", "w:2026-W47");
    assert_true(b->flags & TALLY_FLAG_BOARDS);
    assert_int_equal(b->values[tally_lb_counter(1)], 1); /* meetings_held */
    assert_false(find(tally_counters(t), SCOPE_TEAM, "msk", "w:2026-W47")->flags);
    tally_free(t);
}

static void test_pipeline(void **state)
{
    (void)state;
    tally_t *t = tally_new();
    int64_t out[DEALS_PIPE_MAX] = {[DEALS_P_OPEN_COUNT] = -1, [DEALS_P_OPEN_AMOUNT] = -500};
    int64_t in[DEALS_PIPE_MAX] = {[DEALS_P_OPEN_COUNT] = 1, [DEALS_P_OPEN_AMOUNT] = 500};
    /* A deal moves from ivanov (msk) to weber (ber): the org nets to zero */
    assert_int_equal(tally_add_pipeline(t, "ivanov", "msk", out), 0);
    assert_int_equal(tally_add_pipeline(t, "weber", "ber", in), 0);
    const agg_t *p = tally_pipeline(t);
    assert_int_equal(agg_bucket_count(p), 5);
    assert_int_equal(find(p, SCOPE_MANAGER, "ivanov", "pipeline")->values[DEALS_P_OPEN_AMOUNT], -500);
    assert_int_equal(find(p, SCOPE_TEAM, "ber", "pipeline")->values[DEALS_P_OPEN_COUNT], 1);
    assert_int_equal(find(p, SCOPE_ORG, "", "pipeline")->values[DEALS_P_OPEN_COUNT], 0);
    assert_int_equal(find(p, SCOPE_ORG, "", "pipeline")->values[DEALS_P_OPEN_AMOUNT], 0);
    tally_reset_pipeline(t);
    assert_int_equal(agg_bucket_count(tally_pipeline(t)), 0);
    tally_free(t);
}

static void test_dealset(void **state)
{
    (void)state;
    dealset_t *set = dealset_new();
    char id[32];
    for (int round = 0; round < 2; round++) {
        for (int rep = 0; rep < 2; rep++)
            for (int i = 0; i < 3000; i++) { /* grows the table several times */
                snprintf(id, sizeof id, "D-%d", i);
                dealset_entry_t *e = dealset_add(set, id);
                assert_non_null(e);
                assert_string_equal(e->deal_id, id);
                if (rep == 0)
                    assert_false(e->exists || e->changed);
                e->changed = true;
                e->state.amount_cents = i;
            }
        assert_int_equal(dealset_count(set), 3000);
        assert_int_equal(dealset_find(set, "D-2999")->state.amount_cents, 2999);
        assert_string_equal(dealset_at(set, 17)->deal_id, "D-17");
        assert_null(dealset_find(set, "D-3000"));
        dealset_reset(set);
        assert_int_equal(dealset_count(set), 0);
        assert_null(dealset_find(set, "D-5"));
    }
    dealset_free(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_names),
        cmocka_unit_test(test_tally_tables),
        cmocka_unit_test(test_org_zone_boards),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_dealset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
