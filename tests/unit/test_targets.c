/* Targets of a manager for a period instance: configured levels and plans (contract
 * section 7), with hand-worked numbers.
 *
 * Managers and teams come from config_load_string (so config_manager_find works); targets
 * and plans are attached by hand from static arrays and detached before config_free.
 * Calendar: Europe/Moscow (UTC+3, no DST), Mon-Fri, with Wednesday 4 November 2026 a
 * holiday, so November 2026 has 20 working days (21 weekdays less one) and December 23. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "targets.h"

static char err[16384];

#define BASE                                                                                  \
    "{\"kafka\": {\"brokers\": \"b:9092\", \"topics\": [\"t\"]},"                             \
    " \"teams\": {\"moscow-smb\": {}, \"spb\": {}},"                                          \
    " \"managers\": {\"ivanov\": {\"team\": \"moscow-smb\", \"role\": \"hunter\"},"           \
    "  \"petrov\": {\"team\": \"moscow-smb\", \"role\": \"farmer\"},"                         \
    "  \"sidorov\": {\"team\": \"spb\", \"role\": \"hunter\"}}}"

/* What the parser may have put in the goal fields, kept aside while the test's are in. */
struct fixture {
    config_t *cfg;
    config_t saved;
    period_zone_t *zone;
    int64_t holidays[1];
    pacing_calendar_t cal;
};

static void fixture_open(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    if (config_load_string(BASE, strlen(BASE), &f->cfg, err, sizeof err) != 0)
        fail_msg("%s", err);
    f->saved = *f->cfg;
    f->cfg->targets_default = NULL;
    f->cfg->n_targets_default = 0;
    f->cfg->targets_roles = f->cfg->targets_teams = f->cfg->targets_managers = NULL;
    f->cfg->n_targets_roles = f->cfg->n_targets_teams = f->cfg->n_targets_managers = 0;
    f->cfg->plans = NULL;
    f->cfg->n_plans = 0;
    f->zone = period_zone_open("Europe/Moscow", err, sizeof err);
    assert_non_null(f->zone);
    f->holidays[0] = period_days_from_civil(2026, 11, 4);
    struct config_calendar cc = {PACING_WEEKDAYS, 9 * 60, 18 * 60, f->holidays, 1};
    f->cal = targets_calendar(&cc, f->zone);
    assert_int_equal(pacing_calendar_check(&f->cal, err, sizeof err), 0);
}

static void fixture_close(struct fixture *f)
{
    config_t *c = f->cfg;
    c->targets_default = f->saved.targets_default;
    c->n_targets_default = f->saved.n_targets_default;
    c->targets_roles = f->saved.targets_roles;
    c->n_targets_roles = f->saved.n_targets_roles;
    c->targets_teams = f->saved.targets_teams;
    c->n_targets_teams = f->saved.n_targets_teams;
    c->targets_managers = f->saved.targets_managers;
    c->n_targets_managers = f->saved.n_targets_managers;
    c->plans = f->saved.plans;
    c->n_plans = f->saved.n_plans;
    config_free(c);
    period_zone_free(f->zone);
}

/* The period of a kind containing local noon of a date. */
static struct targets_period at(struct fixture *f, enum period_kind kind, int y, int m, int d)
{
    const period_set_t *ps = period_of(f->zone, period_local_to_utc(f->zone, y, m, d, 12, 0));
    return (struct targets_period){kind, ps->start_ms[kind], ps->end_ms[kind]};
}

static struct targets_entry got[32];
static size_t n_got;

static void query(const targets_t *t, const char *manager, struct fixture *f,
                  struct targets_period p, targets_observed_fn obs, void *ctx)
{
    n_got = targets_of_manager(t, manager, &p, &f->cal, obs, ctx, got, 32);
    assert_true(n_got <= 32);
}

/* The target of a metric in the last query, or -1 when it has none. */
static int64_t target_of(const char *metric, bool derived)
{
    for (size_t i = 0; i < n_got; i++)
        if (!strcmp(got[i].metric, metric)) {
            assert_int_equal(got[i].derived, derived);
            return got[i].target;
        }
    return -1;
}

static struct config_plan_step hunter_chain[] = {
    {"stage:proposal", 3, false, false}, /* proposals per deal won */
    {"meetings_held", 2, false, false},  /* meetings per proposal */
};
static struct config_plan_step farmer_chain[] = {
    {"deals_won", 500000, true, false}, /* average deal, cents */
    {"stage:lead", 0.1, true, false},   /* deals won per lead */
};
static struct config_plan contract_plans[] = {
    {"deals_won", PERIOD_MONTH, 3, "hunter", NULL, NULL, hunter_chain, 2},
    {"revenue_won_cents", PERIOD_MONTH, 10000000, "farmer", NULL, NULL, farmer_chain, 2},
};

static targets_t *with_plans(struct fixture *f, struct config_plan *plans, size_t n)
{
    f->cfg->plans = plans;
    f->cfg->n_plans = n;
    targets_t *t = targets_new(f->cfg, err, sizeof err);
    assert_non_null(t);
    return t;
}

/* 3 deals a month, 3 proposals per deal, 2 meetings per proposal: 9 proposals and 18
 * meetings a month; a full week of the 20-working-day month: 18 x 5/20 = 4.5 -> 5. */
static void test_contract_example(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    targets_t *t = with_plans(&f, contract_plans, 2);
    struct targets_period nov = at(&f, PERIOD_MONTH, 2026, 11, 16);
    assert_int_equal(pacing_work_days(&f.cal, nov.start_ms, nov.end_ms), 20);
    query(t, "ivanov", &f, nov, NULL, NULL);
    assert_int_equal(n_got, 3); /* sorted by name */
    assert_string_equal(got[0].metric, "deals_won");
    assert_string_equal(got[1].metric, "meetings_held");
    assert_string_equal(got[2].metric, "stage:proposal");
    assert_int_equal(target_of("deals_won", true), 3);
    assert_int_equal(target_of("stage:proposal", true), 9);
    assert_int_equal(target_of("meetings_held", true), 18);
    struct targets_period w47 = at(&f, PERIOD_WEEK, 2026, 11, 18);
    assert_int_equal(pacing_work_days(&f.cal, w47.start_ms, w47.end_ms), 5);
    query(t, "ivanov", &f, w47, NULL, NULL);
    assert_int_equal(target_of("meetings_held", true), 5);  /* 4.5 */
    assert_int_equal(target_of("stage:proposal", true), 3); /* 2.25 */
    assert_int_equal(target_of("deals_won", true), 1);      /* 0.75 */
    /* Revenue 10,000,000 cents at 500,000 a deal: 20 deals; 0.1 deal per lead: 200 leads. */
    query(t, "petrov", &f, nov, NULL, NULL);
    assert_int_equal(n_got, 3);
    assert_int_equal(target_of("revenue_won_cents", true), 10000000);
    assert_int_equal(target_of("deals_won", true), 20);
    assert_int_equal(target_of("stage:lead", true), 200);
    assert_int_equal(target_of("meetings_held", true), -1); /* the hunter plan is not his */
    targets_free(t);
    fixture_close(&f);
}

/* W49 (Mon 30 Nov - Sun 6 Dec 2026): 1 of November's 20 working days and 4 of December's 23.
 * W45, with the holiday, takes 4 of November's 20. */
static void test_week_across_months(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    targets_t *t = with_plans(&f, contract_plans, 2);
    struct targets_period dec = at(&f, PERIOD_MONTH, 2026, 12, 1);
    assert_int_equal(pacing_work_days(&f.cal, dec.start_ms, dec.end_ms), 23);
    struct targets_period w49 = at(&f, PERIOD_WEEK, 2026, 12, 2);
    query(t, "ivanov", &f, w49, NULL, NULL);
    assert_int_equal(target_of("meetings_held", true), 5);  /* 18 x (1/20 + 4/23) = 4.03 */
    assert_int_equal(target_of("stage:proposal", true), 3); /* 9 x 0.2239 = 2.02 */
    assert_int_equal(target_of("deals_won", true), 1);
    query(t, "petrov", &f, w49, NULL, NULL);
    assert_int_equal(target_of("deals_won", true), 5);                   /* 4.48 */
    assert_int_equal(target_of("stage:lead", true), 45);                 /* 44.78 */
    assert_int_equal(target_of("revenue_won_cents", true), 2239131);     /* 2239130.43 */
    /* W45 (2-8 Nov) has the holiday: 4 of 20 days. */
    query(t, "ivanov", &f, at(&f, PERIOD_WEEK, 2026, 11, 2), NULL, NULL);
    assert_int_equal(target_of("meetings_held", true), 4); /* 3.6 */
    targets_free(t);
    fixture_close(&f);
}

/* A working day gets 1/20 of the month; a Saturday and the holiday get 0. */
static void test_days(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    targets_t *t = with_plans(&f, contract_plans, 2);
    query(t, "petrov", &f, at(&f, PERIOD_DAY, 2026, 11, 5), NULL, NULL);
    assert_int_equal(target_of("stage:lead", true), 10);
    assert_int_equal(target_of("deals_won", true), 1);
    query(t, "ivanov", &f, at(&f, PERIOD_DAY, 2026, 11, 5), NULL, NULL);
    assert_int_equal(target_of("meetings_held", true), 1); /* 0.9 */
    for (int d = 4; d <= 8; d += 3) { /* Wednesday the 4th (holiday), Saturday the 7th */
        query(t, "ivanov", &f, at(&f, PERIOD_DAY, 2026, 11, d), NULL, NULL);
        assert_int_equal(n_got, 3);
        for (size_t i = 0; i < n_got; i++)
            assert_int_equal(got[i].target, 0);
    }
    targets_free(t);
    fixture_close(&f);
}

/* A quarter sums its months, whatever their working days; a weekly plan seen monthly takes
 * the weeks inside whole and its share of the partial ones. */
static void test_longer_periods(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    static struct config_plan plans[] = {
        {"deals_won", PERIOD_MONTH, 3, "hunter", NULL, NULL, hunter_chain, 2},
        {"calls", PERIOD_WEEK, 5, NULL, NULL, "petrov", NULL, 0},
        {"touches", PERIOD_DAY, 10, NULL, NULL, "sidorov", NULL, 0},
    };
    targets_t *t = with_plans(&f, plans, 3);
    query(t, "ivanov", &f, at(&f, PERIOD_QUARTER, 2026, 11, 16), NULL, NULL);
    assert_int_equal(target_of("deals_won", true), 9);
    assert_int_equal(target_of("stage:proposal", true), 27);
    assert_int_equal(target_of("meetings_held", true), 54);
    /* November: W44 has 0 of its days in it (1 Nov is a Sunday), W45-W48 whole (W45 with
     * its holiday still weighs 1), W49 1 of 5: 5 x 4.2 = 21. */
    query(t, "petrov", &f, at(&f, PERIOD_MONTH, 2026, 11, 16), NULL, NULL);
    assert_int_equal(n_got, 1);
    assert_int_equal(target_of("calls", true), 21);
    query(t, "petrov", &f, at(&f, PERIOD_WEEK, 2026, 11, 16), NULL, NULL);
    assert_int_equal(target_of("calls", true), 5);
    query(t, "petrov", &f, at(&f, PERIOD_DAY, 2026, 11, 5), NULL, NULL);
    assert_int_equal(target_of("calls", true), 2); /* 5 x 1/4 = 1.25 in the holiday week */
    /* A daily plan: a week is its working days (weekend days and holidays weigh nothing). */
    query(t, "sidorov", &f, at(&f, PERIOD_WEEK, 2026, 11, 16), NULL, NULL);
    assert_int_equal(target_of("touches", true), 50);
    query(t, "sidorov", &f, at(&f, PERIOD_WEEK, 2026, 11, 4), NULL, NULL);
    assert_int_equal(target_of("touches", true), 40);
    query(t, "sidorov", &f, at(&f, PERIOD_DAY, 2026, 11, 7), NULL, NULL);
    assert_int_equal(target_of("touches", true), 10); /* its own kind: the plan's target */
    targets_free(t);
    fixture_close(&f);
}

struct obs_ctx {
    double ratio;
    int calls;
    char last[3][32];
};

static double observed(void *ctx, const char *manager, const char *prev, const char *metric)
{
    struct obs_ctx *o = ctx;
    o->calls++;
    snprintf(o->last[0], sizeof o->last[0], "%s", manager);
    snprintf(o->last[1], sizeof o->last[1], "%s", prev);
    snprintf(o->last[2], sizeof o->last[2], "%s", metric);
    return o->ratio;
}

static void test_observed(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    static struct config_plan_step first[] = {
        {"stage:proposal", 0, true, true}, /* deals won per proposal, observed */
        {"meetings_held", 2, false, false},
    };
    static struct config_plan_step later[] = {
        {"stage:sql", 3, false, false},
        {"calls", 0, true, true},
    };
    static struct config_plan plans[] = {
        {"deals_won", PERIOD_MONTH, 3, "hunter", NULL, NULL, first, 2},
        {"deals_lost", PERIOD_MONTH, 2, "farmer", NULL, NULL, later, 2},
        {"deals_won", PERIOD_QUARTER, 9, "closer", NULL, NULL, first, 1}, /* a repeated pair */
        {"revenue_won_cents", PERIOD_MONTH, 2.5, NULL, NULL, "sidorov", later + 1, 1},
    };
    targets_t *t = with_plans(&f, plans, 4);
    struct targets_period nov = at(&f, PERIOD_MONTH, 2026, 11, 16);
    struct obs_ctx o = {0.25, 0, {""}};
    query(t, "ivanov", &f, nov, observed, &o);
    assert_int_equal(n_got, 3);
    assert_int_equal(target_of("stage:proposal", true), 12); /* 3 / 0.25 */
    assert_int_equal(target_of("meetings_held", true), 24);
    assert_true(o.calls >= 1);
    assert_string_equal(o.last[0], "ivanov");
    assert_string_equal(o.last[1], "deals_won");
    assert_string_equal(o.last[2], "stage:proposal");
    o.ratio = 0; /* unknown: the step and everything after it are absent */
    query(t, "ivanov", &f, nov, observed, &o);
    assert_int_equal(n_got, 1);
    assert_int_equal(target_of("deals_won", true), 3);
    query(t, "ivanov", &f, nov, NULL, NULL);
    assert_int_equal(n_got, 1);
    /* An observed step after a fixed one: the fixed part stays. */
    o.ratio = 0.5; /* sql deals per call */
    query(t, "petrov", &f, nov, observed, &o);
    assert_int_equal(target_of("stage:sql", true), 6);
    assert_int_equal(target_of("calls", true), 12);
    assert_string_equal(o.last[1], "stage:sql");
    assert_string_equal(o.last[2], "calls");
    o.ratio = -1;
    query(t, "petrov", &f, nov, observed, &o);
    assert_int_equal(target_of("stage:sql", true), 6);
    assert_int_equal(target_of("calls", true), -1);
    /* An observed first step divides the plan target as configured: 2.5 / 0.25, not 3 / 0.25. */
    o.ratio = 0.25;
    query(t, "sidorov", &f, nov, observed, &o);
    assert_int_equal(target_of("calls", true), 10);
    assert_int_equal(target_of("revenue_won_cents", true), 3);
    const char *pairs[4][2];
    assert_int_equal(targets_observed_pairs(t, pairs, 4), 3);
    assert_string_equal(pairs[0][0], "deals_won");
    assert_string_equal(pairs[0][1], "stage:proposal");
    assert_string_equal(pairs[1][0], "stage:sql");
    assert_string_equal(pairs[1][1], "calls");
    assert_string_equal(pairs[2][0], "revenue_won_cents");
    assert_int_equal(targets_observed_pairs(t, pairs, 1), 3);
    targets_free(t);
    fixture_close(&f);
}

static struct config_target defaults[] = {
    {"touches", PERIOD_DAY, 40}, {"meetings_held", PERIOD_WEEK, 5}};
static struct config_target farmer_targets[] = {
    {"meetings_held", PERIOD_WEEK, 3}, {"touches", PERIOD_DAY, 30}};
static struct config_target hunter_targets[] = {{"calls", PERIOD_DAY, 60}};
static struct config_target team_targets[] = {/* a repeated entry: the later one wins */
    {"calls", PERIOD_DAY, 49}, {"touches", PERIOD_DAY, 45}, {"calls", PERIOD_DAY, 50}};
static struct config_target ivanov_targets[] = {
    {"meetings_held", PERIOD_WEEK, 6}, {"emails", PERIOD_DAY, 0}};
static struct config_target_set roles[] = {
    {"hunter", hunter_targets, 1}, {"farmer", farmer_targets, 2}};
static struct config_target_set teams[] = {{"moscow-smb", team_targets, 3}};
static struct config_target_set managers[] = {{"ivanov", ivanov_targets, 2}};

static targets_t *with_levels(struct fixture *f)
{
    config_t *c = f->cfg;
    c->targets_default = defaults;
    c->n_targets_default = 2;
    c->targets_roles = roles;
    c->n_targets_roles = 2;
    c->targets_teams = teams;
    c->n_targets_teams = 1;
    c->targets_managers = managers;
    c->n_targets_managers = 1;
    return with_plans(f, NULL, 0);
}

/* default -> role -> team -> manager, each later level winning per metric and period. */
static void test_levels(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    targets_t *t = with_levels(&f);
    struct targets_period day = at(&f, PERIOD_DAY, 2026, 11, 16);
    struct targets_period week = at(&f, PERIOD_WEEK, 2026, 11, 16);
    query(t, "ivanov", &f, day, NULL, NULL); /* hunter, moscow-smb */
    assert_int_equal(n_got, 3);
    assert_int_equal(target_of("calls", false), 50);  /* team over role */
    assert_int_equal(target_of("touches", false), 45); /* team over default */
    assert_int_equal(target_of("emails", false), 0);   /* an explicit 0 is a target */
    query(t, "ivanov", &f, week, NULL, NULL);
    assert_int_equal(n_got, 1);
    assert_int_equal(target_of("meetings_held", false), 6); /* manager over default */
    query(t, "petrov", &f, day, NULL, NULL); /* farmer, moscow-smb */
    assert_int_equal(target_of("touches", false), 45); /* team over role */
    assert_int_equal(target_of("calls", false), 50);
    query(t, "petrov", &f, week, NULL, NULL);
    assert_int_equal(target_of("meetings_held", false), 3); /* role over default */
    query(t, "sidorov", &f, day, NULL, NULL); /* hunter, spb */
    assert_int_equal(target_of("calls", false), 60);
    assert_int_equal(target_of("touches", false), 40);
    query(t, "nobody", &f, day, NULL, NULL); /* default role, unassigned */
    assert_int_equal(n_got, 1);
    assert_int_equal(target_of("touches", false), 40);
    query(t, "nobody", &f, at(&f, PERIOD_MONTH, 2026, 11, 16), NULL, NULL);
    assert_int_equal(n_got, 0);
    struct targets_entry one;
    assert_int_equal(targets_of_manager(t, "ivanov", &day, &f.cal, NULL, NULL, &one, 1), 3);
    assert_string_equal(one.metric, "calls");
    assert_int_equal(targets_of_manager(t, "ivanov", &day, &f.cal, NULL, NULL, NULL, 0), 3);
    targets_free(t);
    fixture_close(&f);
}

/* A configured target beats a derived one for the same metric and period only. */
static void test_configured_beats_derived(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    f.cfg->targets_default = defaults; /* meetings_held w 5 */
    f.cfg->n_targets_default = 2;
    targets_t *t = with_plans(&f, contract_plans, 2);
    query(t, "ivanov", &f, at(&f, PERIOD_WEEK, 2026, 11, 16), NULL, NULL);
    assert_int_equal(n_got, 3);
    assert_int_equal(target_of("meetings_held", false), 5);
    assert_int_equal(target_of("stage:proposal", true), 3);
    query(t, "ivanov", &f, at(&f, PERIOD_MONTH, 2026, 11, 16), NULL, NULL);
    assert_int_equal(target_of("meetings_held", true), 18);
    query(t, "ivanov", &f, at(&f, PERIOD_DAY, 2026, 11, 16), NULL, NULL);
    assert_int_equal(n_got, 4);
    assert_int_equal(target_of("touches", false), 40);
    assert_int_equal(target_of("meetings_held", true), 1);
    targets_free(t);
    fixture_close(&f);
}

/* A plan applies where all its given selectors match. */
static void test_selectors(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    static struct config_plan_step mql_chain[] = {{"stage:mql", 3, false, false}};
    static struct config_plan plans[] = {
        {"deals_won", PERIOD_MONTH, 3, "hunter", NULL, NULL, NULL, 0},
        {"calls", PERIOD_MONTH, 100, "hunter", "spb", NULL, NULL, 0},
        {"emails", PERIOD_MONTH, 50, NULL, "moscow-smb", NULL, NULL, 0},
        {"touches", PERIOD_MONTH, 70, NULL, NULL, "petrov", NULL, 0},
        {"meetings_held", PERIOD_MONTH, 8, "default", "unassigned", NULL, NULL, 0},
        {"stage:lead", PERIOD_MONTH, 2.5, NULL, NULL, NULL, mql_chain, 1},
        {"calls", PERIOD_QUARTER, 30, NULL, NULL, "ivanov", NULL, 0},
        {"calls", PERIOD_MONTH, 8, "hunter", NULL, NULL, NULL, 0},
    };
    targets_t *t = with_plans(&f, plans, 8);
    struct targets_period nov = at(&f, PERIOD_MONTH, 2026, 11, 16);
    query(t, "ivanov", &f, nov, NULL, NULL);
    assert_int_equal(n_got, 5);
    assert_int_equal(target_of("deals_won", true), 3);
    assert_int_equal(target_of("emails", true), 50);
    assert_int_equal(target_of("stage:lead", true), 3); /* rounded up */
    assert_int_equal(target_of("stage:mql", true), 8);  /* 2.5 x 3 = 7.5, not 3 x 3 */
    /* Two plans derive calls for him: the one of the asked period's kind wins, else the
     * first in configuration order (a quarter of 30 over 20 of Q4's 65 working days). */
    assert_int_equal(target_of("calls", true), 8);
    query(t, "ivanov", &f, at(&f, PERIOD_QUARTER, 2026, 11, 16), NULL, NULL);
    assert_int_equal(target_of("calls", true), 30);
    query(t, "ivanov", &f, at(&f, PERIOD_WEEK, 2026, 11, 16), NULL, NULL);
    assert_int_equal(target_of("calls", true), 3); /* 30 x 5/65 = 2.31 */
    query(t, "sidorov", &f, nov, NULL, NULL);
    assert_int_equal(n_got, 4);
    assert_int_equal(target_of("calls", true), 100);
    query(t, "petrov", &f, nov, NULL, NULL);
    assert_int_equal(n_got, 4);
    assert_int_equal(target_of("touches", true), 70);
    assert_int_equal(target_of("deals_won", true), -1);
    query(t, "nobody", &f, nov, NULL, NULL);
    assert_int_equal(n_got, 3);
    assert_int_equal(target_of("meetings_held", true), 8);
    targets_free(t);
    fixture_close(&f);
}

static void test_metrics(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    f.cfg->targets_default = defaults;
    f.cfg->n_targets_default = 2;
    f.cfg->targets_roles = roles;
    f.cfg->n_targets_roles = 2;
    f.cfg->targets_managers = managers;
    f.cfg->n_targets_managers = 1;
    targets_t *t = with_plans(&f, contract_plans, 2);
    const char *m[16];
    size_t n = targets_metrics(t, PERIOD_DAY, m, 16);
    const char *want_day[] = {"calls",          "deals_won",         "emails",
                              "meetings_held",  "revenue_won_cents", "stage:lead",
                              "stage:proposal", "touches"};
    assert_int_equal(n, 8);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(m[i], want_day[i]);
    const char *want_q[] = {"deals_won", "meetings_held", "revenue_won_cents", "stage:lead",
                            "stage:proposal"};
    n = targets_metrics(t, PERIOD_QUARTER, m, 16);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(m[i], want_q[i]);
    assert_int_equal(targets_metrics(t, PERIOD_WEEK, m, 2), 5);
    assert_string_equal(m[1], "meetings_held");
    const char *pairs[1][2];
    assert_int_equal(targets_observed_pairs(t, pairs, 1), 0);
    targets_free(t);
    /* nothing configured at all */
    f.cfg->targets_default = NULL;
    f.cfg->n_targets_default = f.cfg->n_targets_roles = f.cfg->n_targets_managers = 0;
    f.cfg->targets_roles = f.cfg->targets_managers = NULL;
    t = with_plans(&f, NULL, 0);
    assert_int_equal(targets_metrics(t, PERIOD_MONTH, m, 16), 0);
    query(t, "ivanov", &f, at(&f, PERIOD_MONTH, 2026, 11, 16), NULL, NULL);
    assert_int_equal(n_got, 0);
    targets_free(t);
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contract_example), cmocka_unit_test(test_week_across_months),
        cmocka_unit_test(test_days),             cmocka_unit_test(test_longer_periods),
        cmocka_unit_test(test_observed),         cmocka_unit_test(test_levels),
        cmocka_unit_test(test_configured_beats_derived),
        cmocka_unit_test(test_selectors),        cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
