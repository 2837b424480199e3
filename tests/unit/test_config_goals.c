/* Contract section 7 of the configuration: calendar, targets, plans, kpi_score, alerts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "fixtures.h"
#include "period.h"

#define KAFKA_MIN "\"kafka\": {\"brokers\": \"b:9092\", \"topics\": [\"t\"]}"
#define TEAMS "\"teams\": {\"moscow-smb\": {}, \"berlin\": {}}"
#define MANAGERS "\"managers\": {\"ivanov\": {\"team\": \"moscow-smb\", \"role\": \"hunter\"}," \
                 " \"petrova\": {\"team\": \"berlin\", \"role\": \"farmer\"}}"

static char errbuf[16384];

static config_t *load_text(const char *text)
{
    config_t *cfg = NULL;
    errbuf[0] = '\0';
    if (config_load_string(text, strlen(text), &cfg, errbuf, sizeof errbuf) != 0 || !cfg)
        fail_msg("load failed for %s:\n%s", text, errbuf);
    return cfg;
}

/* Loads KAFKA_MIN plus extra top-level members ("" for none). */
static config_t *load_with(const char *extra)
{
    char text[8192];
    snprintf(text, sizeof text, "{" KAFKA_MIN "%s%s}", *extra ? ", " : "", extra);
    return load_text(text);
}

/* KAFKA_MIN + TEAMS + MANAGERS + extra must fail with n_errors lines, one starting with want. */
static void expect_errors(const char *extra, const char *want, size_t n_errors)
{
    char text[8192];
    snprintf(text, sizeof text, "{" KAFKA_MIN ", " TEAMS ", " MANAGERS ", %s}", extra);
    config_t *cfg = (config_t *)1;
    errbuf[0] = '\0';
    if (config_load_string(text, strlen(text), &cfg, errbuf, sizeof errbuf) == 0) {
        config_free(cfg);
        fail_msg("loaded but should fail (%s): %s", want, text);
    }
    assert_null(cfg);
    if (!fixture_has_line(errbuf, want))
        fail_msg("want a line starting \"%s\" for %s\ngot:\n%s", want, text, errbuf);
    if (fixture_count_lines(errbuf) != n_errors)
        fail_msg("want %zu error(s) for %s, got:\n%s", n_errors, text, errbuf);
}

static void expect_fail(const char *extra, const char *want)
{
    expect_errors(extra, want, 1);
}

struct bad_case {
    const char *extra;
    const char *want;
};

static void run_cases(const struct bad_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        expect_fail(cases[i].extra, cases[i].want);
}

/* CONTRACT.md section 6's block with section 7's members added, both verbatim. */
static void test_contract_example(void **state)
{
    (void)state;
    const char *text =
        CONTRACT_SECTION6_OPEN
        ",\n"
    "  \"calendar\": {                          // working time; teams.<t>.calendar overrides per team\n"
    "    \"work_days\": [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"],\n"
    "    \"work_hours\": [\"09:00\", \"18:00\"],    // local time of the scope's zone\n"
    "    \"holidays\": [\"2026-11-04\", \"2027-01-01\"]\n"
    "  },\n"
    "  \"targets\": {                           // metric -> period letter (d, w, m, q) -> target\n"
    "    \"default\":  { \"touches\": {\"d\": 40}, \"meetings_held\": {\"w\": 5} },\n"
    "    \"roles\":    { \"farmer\": { \"meetings_held\": {\"w\": 3} } },      // later levels override\n"
    "    \"teams\":    { \"moscow-smb\": { \"calls\": {\"d\": 50} } },\n"
    "    \"managers\": { \"ivanov\": { \"meetings_held\": {\"w\": 6} } }\n"
    "  },\n"
    "  \"plans\": [                             // lagging plan back-solved into leading targets\n"
    "    { \"metric\": \"deals_won\", \"period\": \"m\", \"target\": 3, \"role\": \"hunter\",\n"
    "      \"chain\": [ {\"metric\": \"stage:proposal\", \"need\": 3},          // proposals per deal won\n"
    "                 {\"metric\": \"meetings_held\",  \"need\": 2} ] },      // meetings per proposal\n"
    "    { \"metric\": \"revenue_won_cents\", \"period\": \"m\", \"target\": 10000000, \"role\": \"farmer\",\n"
    "      \"chain\": [ {\"metric\": \"deals_won\", \"per\": 500000},           // average deal, cents\n"
    "                 {\"metric\": \"stage:lead\", \"per\": 0.1} ] }          // deals won per lead\n"
    "  ],\n"
    "  \"kpi_score\": {                         // weighted KPI score and bonus (period: one letter)\n"
    "    \"period\": \"m\", \"budget\": 30000,\n"
    "    \"weights\": { \"meetings_held\": 0.45, \"touches\": 0.30, \"stage:proposal\": 0.25 },\n"
    "    \"bands\": [ {\"from\": 80, \"coef\": 0.9}, {\"from\": 100, \"coef\": 1.0}, {\"above\": 120, \"coef\": 1.2} ]\n"
    "  },\n"
    "  \"alerts\": {\n"
    "    \"clock\": \"wall\",                     // or \"event\": now = the latest event time applied\n"
    "    \"eval_interval_s\": 60,\n"
    "    \"repeat_s\": 14400,                   // re-send a still-firing alert after this long\n"
    "    \"rules\": [\n"
    "      { \"name\": \"weekly-meetings\", \"metric\": \"meetings_held\", \"period\": \"w\",\n"
    "        \"warn_pct\": 80, \"critical_pct\": 50, \"min_elapsed_pct\": 20, \"escalate_after_s\": 86400 },\n"
    "      { \"name\": \"silent\", \"kind\": \"inactivity\", \"metric\": \"touches\", \"idle_s\": 7200 }\n"
    "    ],\n"
    "    \"webhook\": { \"url\": null, \"timeout_ms\": 2000 }\n"
    "  }\n"
        "}\n";
    config_t *c = load_text(text);

    assert_int_equal(c->calendar.work_days, 0x3e);
    assert_int_equal(c->calendar.start_min, 9 * 60);
    assert_int_equal(c->calendar.end_min, 18 * 60);
    assert_int_equal(c->calendar.n_holidays, 2);
    assert_int_equal(c->calendar.holidays[0], period_days_from_civil(2026, 11, 4));
    assert_int_equal(c->calendar.holidays[1], period_days_from_civil(2027, 1, 1));
    assert_ptr_equal(config_calendar_of(c, "moscow-smb"), &c->calendar);

    assert_int_equal(c->n_targets_default, 2);
    assert_string_equal(c->targets_default[0].metric, "touches");
    assert_int_equal(c->targets_default[0].period, PERIOD_DAY);
    assert_int_equal(c->targets_default[0].value, 40);
    assert_string_equal(c->targets_default[1].metric, "meetings_held");
    assert_int_equal(c->targets_default[1].period, PERIOD_WEEK);
    assert_int_equal(c->targets_default[1].value, 5);
    assert_int_equal(c->n_targets_roles, 1);
    assert_string_equal(c->targets_roles[0].name, "farmer");
    assert_int_equal(c->targets_roles[0].n_targets, 1);
    assert_string_equal(c->targets_roles[0].targets[0].metric, "meetings_held");
    assert_int_equal(c->targets_roles[0].targets[0].period, PERIOD_WEEK);
    assert_int_equal(c->targets_roles[0].targets[0].value, 3);
    assert_int_equal(c->n_targets_teams, 1);
    assert_string_equal(c->targets_teams[0].name, "moscow-smb");
    assert_string_equal(c->targets_teams[0].targets[0].metric, "calls");
    assert_int_equal(c->targets_teams[0].targets[0].period, PERIOD_DAY);
    assert_int_equal(c->targets_teams[0].targets[0].value, 50);
    assert_int_equal(c->n_targets_managers, 1);
    assert_string_equal(c->targets_managers[0].name, "ivanov");
    assert_int_equal(c->targets_managers[0].targets[0].value, 6);

    assert_int_equal(c->n_plans, 2);
    const struct config_plan *p = &c->plans[0];
    assert_string_equal(p->metric, "deals_won");
    assert_int_equal(p->period, PERIOD_MONTH);
    assert_true(p->target == 3);
    assert_string_equal(p->role, "hunter");
    assert_null(p->team);
    assert_null(p->manager);
    assert_int_equal(p->n_chain, 2);
    assert_string_equal(p->chain[0].metric, "stage:proposal");
    assert_true(p->chain[0].factor == 3);
    assert_false(p->chain[0].by_per);
    assert_false(p->chain[0].observed);
    assert_string_equal(p->chain[1].metric, "meetings_held");
    assert_true(p->chain[1].factor == 2);
    p = &c->plans[1];
    assert_string_equal(p->metric, "revenue_won_cents");
    assert_true(p->target == 10000000);
    assert_string_equal(p->role, "farmer");
    assert_string_equal(p->chain[0].metric, "deals_won");
    assert_true(p->chain[0].by_per);
    assert_true(p->chain[0].factor == 500000);
    assert_string_equal(p->chain[1].metric, "stage:lead");
    assert_true(p->chain[1].by_per);
    assert_true(p->chain[1].factor == 0.1);

    assert_true(c->has_score);
    assert_int_equal(c->score_period, PERIOD_MONTH);
    assert_true(c->score_budget == 30000);
    assert_int_equal(c->n_score_weights, 3);
    assert_string_equal(c->score_weights[0].metric, "meetings_held");
    assert_true(c->score_weights[0].weight == 0.45);
    assert_string_equal(c->score_weights[2].metric, "stage:proposal");
    assert_true(c->score_weights[2].weight == 0.25);
    assert_int_equal(c->n_score_bands, 3);
    assert_true(c->score_bands[0].threshold == 80 && !c->score_bands[0].above);
    assert_true(c->score_bands[0].coef == 0.9);
    assert_true(c->score_bands[1].threshold == 100 && c->score_bands[1].coef == 1.0);
    assert_true(c->score_bands[2].threshold == 120 && c->score_bands[2].above);
    assert_true(c->score_bands[2].coef == 1.2);

    assert_false(c->alerts_event_clock);
    assert_int_equal(c->alerts_eval_interval_s, 60);
    assert_int_equal(c->alerts_repeat_s, 14400);
    assert_int_equal(c->alerts_stream_maxlen, 100000);
    assert_int_equal(c->n_rules, 2);
    const struct config_rule *r = &c->rules[0];
    assert_string_equal(r->name, "weekly-meetings");
    assert_int_equal(r->kind, RULE_THRESHOLD);
    assert_string_equal(r->metric, "meetings_held");
    assert_int_equal(r->period, PERIOD_WEEK);
    assert_int_equal(r->warn_pct, 80);
    assert_int_equal(r->critical_pct, 50);
    assert_true(r->min_elapsed_pct == 20);
    assert_int_equal(r->escalate_after_s, 86400);
    r = &c->rules[1];
    assert_string_equal(r->name, "silent");
    assert_int_equal(r->kind, RULE_INACTIVITY);
    assert_string_equal(r->metric, "touches");
    assert_int_equal(r->idle_s, 7200);
    assert_int_equal(r->escalate_after_s, 0);
    assert_null(c->webhook_url);
    assert_int_equal(c->webhook_timeout_ms, 2000);
    config_free(c);
}

static void test_defaults(void **state)
{
    (void)state;
    config_t *c = load_with("");
    assert_int_equal(c->calendar.work_days, 0x3e);
    assert_int_equal(c->calendar.start_min, 540);
    assert_int_equal(c->calendar.end_min, 1080);
    assert_int_equal(c->calendar.n_holidays, 0);
    assert_null(c->calendar.holidays);
    assert_ptr_equal(config_calendar_of(c, NULL), &c->calendar);
    assert_ptr_equal(config_calendar_of(c, "nowhere"), &c->calendar);
    assert_int_equal(c->n_targets_default + c->n_targets_roles + c->n_targets_teams +
                     c->n_targets_managers, 0);
    assert_int_equal(c->n_plans, 0);
    assert_false(c->has_score);
    assert_false(c->alerts_event_clock);
    assert_int_equal(c->alerts_eval_interval_s, 60);
    assert_int_equal(c->alerts_repeat_s, 14400);
    assert_int_equal(c->alerts_stream_maxlen, 100000);
    assert_int_equal(c->n_rules, 0);
    assert_null(c->webhook_url);
    assert_int_equal(c->webhook_timeout_ms, 2000);
    config_free(c);

    /* Rule defaults, and every alerts key at an edge of its range. */
    c = load_with("\"alerts\": {\"clock\": \"event\", \"eval_interval_s\": 86400, \"repeat_s\": 0,"
                  " \"stream_maxlen\": 100, \"webhook\": {\"url\": \"https://h/x\", \"timeout_ms\": 60000},"
                  " \"rules\": [{\"name\": \"A.b_c-1\", \"metric\": \"stage:won\", \"period\": \"q\"},"
                  " {\"name\": \"i\", \"kind\": \"inactivity\", \"metric\": \"calls\", \"idle_s\": 2592000,"
                  "  \"escalate_after_s\": 31536000}]}");
    assert_true(c->alerts_event_clock);
    assert_int_equal(c->alerts_eval_interval_s, 86400);
    assert_int_equal(c->alerts_repeat_s, 0);
    assert_int_equal(c->alerts_stream_maxlen, 100);
    assert_string_equal(c->webhook_url, "https://h/x");
    assert_int_equal(c->webhook_timeout_ms, 60000);
    assert_int_equal(c->rules[0].kind, RULE_THRESHOLD);
    assert_int_equal(c->rules[0].period, PERIOD_QUARTER);
    assert_int_equal(c->rules[0].warn_pct, 80);
    assert_int_equal(c->rules[0].critical_pct, 50);
    assert_true(c->rules[0].min_elapsed_pct == 10);
    assert_int_equal(c->rules[0].escalate_after_s, 0);
    assert_int_equal(c->rules[1].idle_s, 2592000);
    assert_int_equal(c->rules[1].escalate_after_s, 31536000);
    config_free(c);

    c = load_with("\"alerts\": {\"webhook\": {\"url\": null}}, \"kpi_score\": {\"period\": \"w\","
                  " \"budget\": 0, \"weights\": {\"calls\": 0}, \"bands\": [{\"above\": 0, \"coef\": 0}]}");
    assert_null(c->webhook_url);
    assert_true(c->has_score);
    assert_int_equal(c->score_period, PERIOD_WEEK);
    config_free(c);
}

static void test_team_calendar(void **state)
{
    (void)state;
    config_t *c = load_with(
        "\"teams\": {\"a\": {\"calendar\": {\"work_hours\": [\"10:00\", \"24:00\"]}},"
        "            \"b\": {\"calendar\": {\"work_days\": [\"sun\", \"sat\"], \"holidays\": []}},"
        "            \"c\": {}},"
        /* the global calendar after the teams: still their base */
        " \"calendar\": {\"work_days\": [\"mon\", \"tue\"], \"holidays\": [\"2026-01-01\"]}");
    const struct config_calendar *g = &c->calendar;
    assert_int_equal(g->work_days, 0x6);
    assert_int_equal(g->n_holidays, 1);

    const struct config_calendar *a = config_calendar_of(c, "a");
    assert_true(config_team_find(c, "a")->has_calendar);
    assert_ptr_not_equal(a, g);
    assert_int_equal(a->work_days, 0x6);         /* from the global calendar */
    assert_int_equal(a->start_min, 600);
    assert_int_equal(a->end_min, 1440);
    assert_int_equal(a->n_holidays, 1);          /* a copy of the global list */
    assert_ptr_not_equal(a->holidays, g->holidays);
    assert_int_equal(a->holidays[0], period_days_from_civil(2026, 1, 1));

    const struct config_calendar *b = config_calendar_of(c, "b");
    assert_int_equal(b->work_days, (1u << 6) | (1u << 7));
    assert_int_equal(b->start_min, 540);
    assert_int_equal(b->end_min, 1080);
    assert_int_equal(b->n_holidays, 0);          /* replaced by its own, empty list */

    assert_false(config_team_find(c, "c")->has_calendar);
    assert_ptr_equal(config_calendar_of(c, "c"), g);
    assert_ptr_equal(config_calendar_of(c, CONFIG_UNASSIGNED_TEAM), g);
    config_free(c);
}

static void test_holidays_sorted_unique(void **state)
{
    (void)state;
    config_t *c = load_with("\"calendar\": {\"holidays\": [\"2027-01-01\", \"2026-11-04\","
                            " \"2027-01-01\", \"2024-02-29\", \"1969-12-31\", \"2026-11-04\"],"
                            " \"work_days\": [\"sun\", \"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\"],"
                            " \"work_hours\": [\"00:00\", \"24:00\"]}");
    const struct config_calendar *g = &c->calendar;
    assert_int_equal(g->work_days, 0xfe);
    assert_int_equal(g->start_min, 0);
    assert_int_equal(g->end_min, 1440);
    assert_int_equal(g->n_holidays, 4);
    assert_int_equal(g->holidays[0], -1);
    assert_int_equal(g->holidays[1], period_days_from_civil(2024, 2, 29));
    assert_int_equal(g->holidays[2], period_days_from_civil(2026, 11, 4));
    assert_int_equal(g->holidays[3], period_days_from_civil(2027, 1, 1));
    config_free(c);
}

static void test_calendar_errors(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"\"calendar\": []", "$.calendar: must be an object"},
        {"\"calendar\": {\"work_days\": []}", "$.calendar.work_days: must be a non-empty array of weekdays"},
        {"\"calendar\": {\"work_days\": \"mon\"}", "$.calendar.work_days: must be a non-empty array"},
        {"\"calendar\": {\"work_days\": [\"mon\", \"Tue\"]}", "$.calendar.work_days[1]: must be one of \"mon\", \"tue\""},
        {"\"calendar\": {\"work_days\": [\"mon\", \"tue\", \"mon\"]}", "$.calendar.work_days[2]: duplicate day \"mon\""},
        {"\"calendar\": {\"work_hours\": [\"09:00\"]}", "$.calendar.work_hours: must be [\"HH:MM\", \"HH:MM\"]"},
        {"\"calendar\": {\"work_hours\": [\"9:00\", \"18:00\"]}", "$.calendar.work_hours[0]: must be a time \"HH:MM\""},
        {"\"calendar\": {\"work_hours\": [\"09:00\", \"24:01\"]}", "$.calendar.work_hours[1]: must be a time"},
        {"\"calendar\": {\"work_hours\": [\"09:60\", \"18:00\"]}", "$.calendar.work_hours[0]: must be a time"},
        {"\"calendar\": {\"work_hours\": [\"09:00\", 18]}", "$.calendar.work_hours[1]: must be a time"},
        {"\"calendar\": {\"work_hours\": [\"18:00\", \"09:00\"]}", "$.calendar.work_hours: the start must be before the end"},
        {"\"calendar\": {\"work_hours\": [\"09:00\", \"09:00\"]}", "$.calendar.work_hours: the start must be before the end"},
        {"\"calendar\": {\"holidays\": \"2026-01-01\"}", "$.calendar.holidays: must be an array of dates"},
        {"\"calendar\": {\"holidays\": [\"2026-02-29\"]}", "$.calendar.holidays[0]: must be a date \"YYYY-MM-DD\""},
        {"\"calendar\": {\"holidays\": [\"2026-01-01\", \"2026-1-02\"]}", "$.calendar.holidays[1]: must be a date"},
        {"\"calendar\": {\"holidays\": [\"2026-04-31\"]}", "$.calendar.holidays[0]: must be a date"},
        {"\"calendar\": {\"holidays\": [\"0000-01-01\"]}", "$.calendar.holidays[0]: must be a date"},
        {"\"calendar\": {\"holiday\": []}", "$.calendar.holiday: unknown key (known keys: work_days, work_hours, holidays)"},
        {"\"teams\": {\"a\": {\"calendar\": {\"work_hours\": [\"10:00\", \"10:00\"]}}}", "$.teams.a.calendar.work_hours: the start must be before the end"},
        {"\"teams\": {\"a\": {\"calendar\": {\"hours\": 1}}}", "$.teams.a.calendar.hours: unknown key"},
        {"\"teams\": {\"a\": {\"calendar\": null}}", "$.teams.a.calendar: must be an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* These replace TEAMS, so load them without it. */
        char text[4096];
        snprintf(text, sizeof text, "{" KAFKA_MIN ", %s}", cases[i].extra);
        config_t *c = (config_t *)1;
        assert_int_equal(config_load_string(text, strlen(text), &c, errbuf, sizeof errbuf), -1);
        if (!fixture_has_line(errbuf, cases[i].want) || fixture_count_lines(errbuf) != 1)
            fail_msg("want one line starting \"%s\" for %s\ngot:\n%s", cases[i].want, text, errbuf);
    }
}

static void test_target_errors(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"\"targets\": []", "$.targets: must be an object"},
        {"\"targets\": {\"default\": {\"tuches\": {\"d\": 1}}}", "$.targets.default.tuches: unknown metric \"tuches\" (a counter: calls,"},
        {"\"targets\": {\"default\": {\"stage:demo\": {\"d\": 1}}}", "$.targets.default[\"stage:demo\"]: unknown metric \"stage:demo\""},
        {"\"targets\": {\"default\": {\"touches\": {\"y\": 1}}}", "$.targets.default.touches.y: unknown key (known keys: d, w, m, q)"},
        {"\"targets\": {\"default\": {\"touches\": {\"d\": 1, \"d\": 2}}}", "$.targets.default.touches.d: duplicate key"},
        {"\"targets\": {\"default\": {\"touches\": {\"d\": 1}, \"touches\": {\"w\": 2}}}", "$.targets.default.touches: duplicate key"},
        {"\"targets\": {\"default\": {\"touches\": {\"d\": -1}}}", "$.targets.default.touches.d: must be between 0 and 9007199254740992"},
        {"\"targets\": {\"default\": {\"touches\": {\"d\": 9007199254740993}}}", "$.targets.default.touches.d: must be between 0 and 9007199254740992"},
        {"\"targets\": {\"default\": {\"touches\": {\"d\": 1.5}}}", "$.targets.default.touches.d: must be an integer"},
        {"\"targets\": {\"default\": {\"touches\": {\"d\": \"40\"}}}", "$.targets.default.touches.d: must be an integer"},
        {"\"targets\": {\"default\": {\"touches\": 40}}", "$.targets.default.touches: must be an object"},
        {"\"targets\": {\"default\": []}", "$.targets.default: must be an object"},
        {"\"targets\": {\"teams\": {\"moskow-smb\": {}}}", "$.targets.teams.moskow-smb: unknown team \"moskow-smb\""},
        {"\"targets\": {\"managers\": {\"a b\": {}}}", "$.targets.managers[\"a b\"]: manager id must match"},
        {"\"targets\": {\"roles\": {\"hunter\": []}}", "$.targets.roles.hunter: must be an object"},
        {"\"targets\": {\"roles\": {\"\": {}}}", "$.targets.roles[\"\"]: role name must not be empty"},
        {"\"targets\": {\"role\": {}}", "$.targets.role: unknown key (known keys: default, roles, teams, managers)"},
    };
    run_cases(cases, sizeof cases / sizeof cases[0]);

    /* Accepted: team "unassigned", unconfigured managers and roles, the 2^53 bound. */
    config_t *c = load_with(TEAMS ", \"targets\": {\"teams\": {\"unassigned\": {\"calls\": {\"d\": 1}}},"
                            " \"managers\": {\"nobody@x\": {\"calls\": {\"q\": 9007199254740992}}},"
                            " \"roles\": {\"sdr\": {\"cycle_seconds_won\": {\"m\": 0}}}}");
    assert_string_equal(c->targets_teams[0].name, "unassigned");
    assert_int_equal(c->targets_managers[0].targets[0].value, 9007199254740992LL);
    assert_int_equal(c->targets_managers[0].targets[0].period, PERIOD_QUARTER);
    assert_int_equal(c->targets_roles[0].targets[0].value, 0);
    config_free(c);
}

#define PLAN_OK "\"metric\": \"deals_won\", \"period\": \"m\", \"target\": 3"
#define STEP_OK "{\"metric\": \"meetings_held\", \"need\": 2}"

static void test_plan_errors(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"\"plans\": {}", "$.plans: must be an array of plans"},
        {"\"plans\": [1]", "$.plans[0]: must be an object"},
        {"\"plans\": [{" PLAN_OK "}]", "$.plans[0].chain: is required"},
        {"\"plans\": [{" PLAN_OK ", \"chain\": []}]", "$.plans[0].chain: must be a non-empty array"},
        {"\"plans\": [{\"period\": \"m\", \"target\": 3, \"chain\": [" STEP_OK "]}]", "$.plans[0].metric: is required"},
        {"\"plans\": [{\"metric\": \"deal_won\", \"period\": \"m\", \"target\": 3, \"chain\": [" STEP_OK "]}]", "$.plans[0].metric: unknown metric \"deal_won\""},
        {"\"plans\": [{\"metric\": \"deals_won\", \"period\": \"month\", \"target\": 3, \"chain\": [" STEP_OK "]}]", "$.plans[0].period: must be one of \"d\", \"w\", \"m\", \"q\""},
        {"\"plans\": [{\"metric\": \"deals_won\", \"period\": \"m\", \"target\": -1, \"chain\": [" STEP_OK "]}]", "$.plans[0].target: must be a number >= 0"},
        {"\"plans\": [{\"metric\": \"deals_won\", \"period\": \"m\", \"chain\": [" STEP_OK "]}]", "$.plans[0].target: is required"},
        {"\"plans\": [{" PLAN_OK ", \"team\": \"moskow\", \"chain\": [" STEP_OK "]}]", "$.plans[0].team: unknown team \"moskow\""},
        {"\"plans\": [{" PLAN_OK ", \"manager\": \"a/b\", \"chain\": [" STEP_OK "]}]", "$.plans[0].manager: must match"},
        {"\"plans\": [{" PLAN_OK ", \"role\": 1, \"chain\": [" STEP_OK "]}]", "$.plans[0].role: must be a non-empty string"},
        {"\"plans\": [{" PLAN_OK ", \"roles\": \"x\", \"chain\": [" STEP_OK "]}]", "$.plans[0].roles: unknown key"},
        {"\"plans\": [{" PLAN_OK ", \"chain\": [{\"metric\": \"meetings_held\"}]}]", "$.plans[0].chain[0]: must have exactly one of \"need\" and \"per\""},
        {"\"plans\": [{" PLAN_OK ", \"chain\": [{\"metric\": \"meetings_held\", \"need\": 2, \"per\": 2}]}]", "$.plans[0].chain[0]: must have exactly one of"},
        {"\"plans\": [{" PLAN_OK ", \"chain\": [{\"metric\": \"meetings_held\", \"need\": 0}]}]", "$.plans[0].chain[0].need: must be a number > 0"},
        {"\"plans\": [{" PLAN_OK ", \"chain\": [{\"metric\": \"meetings_held\", \"per\": -2}]}]", "$.plans[0].chain[0].per: must be a number > 0"},
        {"\"plans\": [{" PLAN_OK ", \"chain\": [{\"metric\": \"meetings_held\", \"per\": \"seen\"}]}]", "$.plans[0].chain[0].per: must be a number > 0 or \"observed\""},
        {"\"plans\": [{" PLAN_OK ", \"chain\": [{\"need\": 2}]}]", "$.plans[0].chain[0].metric: is required"},
        {"\"plans\": [{" PLAN_OK ", \"chain\": [{\"metric\": \"stage:nope\", \"need\": 2}]}]", "$.plans[0].chain[0].metric: unknown metric"},
        {"\"plans\": [{" PLAN_OK ", \"chain\": [{\"metric\": \"deals_won\", \"need\": 2}]}]", "$.plans[0].chain[0].metric: \"deals_won\" is the plan's own metric"},
        {"\"plans\": [{" PLAN_OK ", \"chain\": [" STEP_OK ", " STEP_OK "]}]", "$.plans[0].chain[1].metric: \"meetings_held\" is already in chain[0]"},
        {"\"plans\": [{" PLAN_OK ", \"chain\": [" STEP_OK ", {\"metric\": \"touches\", \"need\": 1, \"ratio\": 2}]}]", "$.plans[0].chain[1].ratio: unknown key"},
    };
    run_cases(cases, sizeof cases / sizeof cases[0]);

    config_t *c = load_with("\"plans\": [{" PLAN_OK ", \"team\": \"unassigned\", \"manager\": \"x@y\","
                            " \"chain\": [{\"metric\": \"stage:won\", \"per\": \"observed\"}]}]");
    assert_string_equal(c->plans[0].team, "unassigned");
    assert_string_equal(c->plans[0].manager, "x@y");
    assert_true(c->plans[0].chain[0].by_per && c->plans[0].chain[0].observed);
    config_free(c);
}

static void test_plan_conflicts(void **state)
{
    (void)state;
    /* Both plans apply to ivanov (a hunter): the hunters' plan derives meetings_held m. */
    expect_fail("\"plans\": [{" PLAN_OK ", \"role\": \"hunter\", \"chain\": [" STEP_OK "]},"
                " {\"metric\": \"meetings_held\", \"period\": \"m\", \"target\": 10,"
                "  \"chain\": [{\"metric\": \"touches\", \"need\": 5}]}]",
                "$.plans[1]: derives meetings_held per m for manager ivanov, as $.plans[0] does");

    /* Different roles (or periods) never meet. */
    config_t *c = load_with(TEAMS ", " MANAGERS ", \"plans\": ["
                            "{" PLAN_OK ", \"role\": \"hunter\", \"chain\": [" STEP_OK "]},"
                            "{" PLAN_OK ", \"role\": \"farmer\", \"chain\": [" STEP_OK "]},"
                            "{\"metric\": \"meetings_held\", \"period\": \"w\", \"target\": 1,"
                            " \"chain\": [{\"metric\": \"touches\", \"need\": 5}]},"
                            /* ivanov is a hunter, not a farmer: this one applies to nobody */
                            "{" PLAN_OK ", \"manager\": \"ivanov\", \"role\": \"farmer\","
                            " \"chain\": [" STEP_OK "]}]");
    assert_int_equal(c->n_plans, 4);
    config_free(c);

    /* Plans without selectors meet at the managers nobody configured. */
    c = NULL;
    const char *text = "{" KAFKA_MIN ", \"plans\": [{" PLAN_OK ", \"chain\": [" STEP_OK "]},"
                       " {" PLAN_OK ", \"chain\": [{\"metric\": \"touches\", \"need\": 5}]}]}";
    assert_int_equal(config_load_string(text, strlen(text), &c, errbuf, sizeof errbuf), -1);
    assert_true(fixture_has_line(errbuf, "$.plans[1]: derives deals_won per m for managers not in "
                                 "\"managers\" (team unassigned, role default), as $.plans[0] does"));
    assert_int_equal(fixture_count_lines(errbuf), 1);

    /* A plan naming an unconfigured manager meets the plans for team "unassigned". */
    expect_fail("\"plans\": [{" PLAN_OK ", \"team\": \"unassigned\", \"chain\": [" STEP_OK "]},"
                " {\"metric\": \"revenue_won_cents\", \"period\": \"m\", \"target\": 1,"
                "  \"manager\": \"sidorov\", \"chain\": [" STEP_OK "]}]",
                "$.plans[1]: derives meetings_held per m for manager sidorov, as $.plans[0] does");

    /* Each conflicting pair once; a plan with its own errors takes no part. */
    expect_errors("\"plans\": [{" PLAN_OK ", \"chain\": [" STEP_OK "]},"
                  " {" PLAN_OK ", \"team\": \"berlin\", \"chain\": [" STEP_OK "]},"
                  " {" PLAN_OK ", \"role\": \"farmer\", \"chain\": [" STEP_OK "]},"
                  " {" PLAN_OK ", \"target\": -1, \"chain\": [" STEP_OK "]}]",
                  "$.plans[2]: derives deals_won per m for manager petrova, as $.plans[1] does", 4);
    assert_true(fixture_has_line(errbuf, "$.plans[1]: derives deals_won per m for manager petrova, as $.plans[0] does"));
    assert_true(fixture_has_line(errbuf, "$.plans[2]: derives deals_won per m for manager petrova, as $.plans[0] does"));
    assert_true(fixture_has_line(errbuf, "$.plans[3].target: duplicate key"));
}

static void test_score_errors(void **state)
{
    (void)state;
#define BANDS "\"bands\": [{\"from\": 100, \"coef\": 1}]"
#define WEIGHTS "\"weights\": {\"touches\": 1}"
    static const struct bad_case cases[] = {
        {"\"kpi_score\": 1", "$.kpi_score: must be an object"},
        {"\"kpi_score\": {\"budget\": 1, " WEIGHTS ", " BANDS "}", "$.kpi_score.period: is required"},
        {"\"kpi_score\": {\"period\": \"x\", \"budget\": 1, " WEIGHTS ", " BANDS "}", "$.kpi_score.period: must be one of"},
        {"\"kpi_score\": {\"period\": \"m\", " WEIGHTS ", " BANDS "}", "$.kpi_score.budget: is required"},
        {"\"kpi_score\": {\"period\": \"m\", \"budget\": -0.5, " WEIGHTS ", " BANDS "}", "$.kpi_score.budget: must be a number >= 0"},
        {"\"kpi_score\": {\"period\": \"m\", \"budget\": 1, " BANDS "}", "$.kpi_score.weights: is required"},
        {"\"kpi_score\": {\"period\": \"m\", \"budget\": 1, \"weights\": {}, " BANDS "}", "$.kpi_score.weights: must name at least one metric"},
        {"\"kpi_score\": {\"period\": \"m\", \"budget\": 1, \"weights\": {\"touches\": -1}, " BANDS "}", "$.kpi_score.weights.touches: must be a number >= 0"},
        {"\"kpi_score\": {\"period\": \"m\", \"budget\": 1, \"weights\": {\"touches\": \"1\"}, " BANDS "}", "$.kpi_score.weights.touches: must be a number >= 0"},
        {"\"kpi_score\": {\"period\": \"m\", \"budget\": 1, \"weights\": {\"tuches\": 1}, " BANDS "}", "$.kpi_score.weights.tuches: unknown metric"},
        {"\"kpi_score\": {\"period\": \"m\", \"budget\": 1, " WEIGHTS "}", "$.kpi_score.bands: is required"},
        {"\"kpi_score\": {\"period\": \"m\", \"budget\": 1, " WEIGHTS ", \"bands\": []}", "$.kpi_score.bands: must be a non-empty array"},
        {"\"kpi_score\": {\"period\": \"m\", \"budget\": 1, " WEIGHTS ", \"bands\": [{\"from\": 80, \"above\": 90, \"coef\": 1}]}", "$.kpi_score.bands[0]: must have exactly one of \"from\" and \"above\""},
        {"\"kpi_score\": {\"period\": \"m\", \"budget\": 1, " WEIGHTS ", \"bands\": [{\"coef\": 1}]}", "$.kpi_score.bands[0]: must have exactly one of"},
        {"\"kpi_score\": {\"period\": \"m\", \"budget\": 1, " WEIGHTS ", \"bands\": [{\"from\": 80}]}", "$.kpi_score.bands[0].coef: is required"},
        {"\"kpi_score\": {\"period\": \"m\", \"budget\": 1, " WEIGHTS ", \"bands\": [{\"above\": -1, \"coef\": 1}]}", "$.kpi_score.bands[0].above: must be a number >= 0"},
        {"\"kpi_score\": {\"period\": \"m\", \"budget\": 1, " WEIGHTS ", \"bands\": [{\"from\": 1, \"coef\": 1, \"to\": 2}]}", "$.kpi_score.bands[0].to: unknown key"},
        {"\"kpi_score\": {\"period\": \"m\", \"budget\": 1e999, " WEIGHTS ", " BANDS "}", "$.kpi_score.budget: must be a number >= 0"},
    };
    run_cases(cases, sizeof cases / sizeof cases[0]);
#undef BANDS
#undef WEIGHTS
}

#define RULE_OK "\"name\": \"r\", \"metric\": \"touches\", \"period\": \"d\""
#define IDLE_OK "\"name\": \"i\", \"kind\": \"inactivity\", \"metric\": \"touches\", \"idle_s\": 3600"

static void test_alert_errors(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"\"alerts\": []", "$.alerts: must be an object"},
        {"\"alerts\": {\"clock\": \"local\"}", "$.alerts.clock: must be \"wall\" or \"event\""},
        {"\"alerts\": {\"eval_interval_s\": 0}", "$.alerts.eval_interval_s: must be between 1 and 86400"},
        {"\"alerts\": {\"repeat_s\": 2592001}", "$.alerts.repeat_s: must be between 0 and 2592000"},
        {"\"alerts\": {\"stream_maxlen\": 99}", "$.alerts.stream_maxlen: must be between 100 and 100000000"},
        {"\"alerts\": {\"webhook\": {\"url\": \"ftp://x\"}}", "$.alerts.webhook.url: must be an http:// or https:// URL"},
        {"\"alerts\": {\"webhook\": {\"url\": \"http://\"}}", "$.alerts.webhook.url: must be an http:// or https:// URL"},
        {"\"alerts\": {\"webhook\": {\"url\": \"http://a b\"}}", "$.alerts.webhook.url: must be an http:// or https:// URL"},
        {"\"alerts\": {\"webhook\": {\"url\": \"\"}}", "$.alerts.webhook.url: must be a non-empty string or null"},
        {"\"alerts\": {\"webhook\": {\"timeout_ms\": 99}}", "$.alerts.webhook.timeout_ms: must be between 100 and 60000"},
        {"\"alerts\": {\"webhook\": {\"uri\": null}}", "$.alerts.webhook.uri: unknown key"},
        {"\"alerts\": {\"rules\": {}}", "$.alerts.rules: must be an array of rules"},
        {"\"alerts\": {\"rules\": [{\"metric\": \"touches\", \"period\": \"d\"}]}", "$.alerts.rules[0].name: is required"},
        {"\"alerts\": {\"rules\": [{" RULE_OK ", \"name\": \"a b\"}]}", "$.alerts.rules[0].name: duplicate key"},
        {"\"alerts\": {\"rules\": [{\"name\": \"a b\", \"metric\": \"touches\", \"period\": \"d\"}]}", "$.alerts.rules[0].name: must match ^[A-Za-z0-9_.-]{1,64}$"},
        {"\"alerts\": {\"rules\": [{" RULE_OK "}, {" RULE_OK "}]}", "$.alerts.rules[1].name: duplicate rule name \"r\" (also $.alerts.rules[0])"},
        {"\"alerts\": {\"rules\": [{" RULE_OK ", \"kind\": \"idle\"}]}", "$.alerts.rules[0].kind: must be \"threshold\" or \"inactivity\""},
        {"\"alerts\": {\"rules\": [{\"name\": \"r\", \"metric\": \"touches\"}]}", "$.alerts.rules[0].period: is required"},
        {"\"alerts\": {\"rules\": [{\"name\": \"r\", \"period\": \"d\"}]}", "$.alerts.rules[0].metric: is required"},
        {"\"alerts\": {\"rules\": [{\"name\": \"r\", \"metric\": \"tuches\", \"period\": \"d\"}]}", "$.alerts.rules[0].metric: unknown metric \"tuches\""},
        {"\"alerts\": {\"rules\": [{" RULE_OK ", \"warn_pct\": 1001}]}", "$.alerts.rules[0].warn_pct: must be between 0 and 1000"},
        {"\"alerts\": {\"rules\": [{" RULE_OK ", \"warn_pct\": 80.5}]}", "$.alerts.rules[0].warn_pct: must be an integer"},
        {"\"alerts\": {\"rules\": [{" RULE_OK ", \"critical_pct\": -1}]}", "$.alerts.rules[0].critical_pct: must be between 0 and 1000"},
        {"\"alerts\": {\"rules\": [{" RULE_OK ", \"critical_pct\": 90}]}", "$.alerts.rules[0].critical_pct: must not exceed warn_pct (80)"},
        {"\"alerts\": {\"rules\": [{" RULE_OK ", \"warn_pct\": 40}]}", "$.alerts.rules[0].warn_pct: must not be below critical_pct (50 by default)"},
        {"\"alerts\": {\"rules\": [{" RULE_OK ", \"min_elapsed_pct\": 100.5}]}", "$.alerts.rules[0].min_elapsed_pct: must be a number between 0 and 100"},
        {"\"alerts\": {\"rules\": [{" RULE_OK ", \"escalate_after_s\": -1}]}", "$.alerts.rules[0].escalate_after_s: must be between 0 and 31536000"},
        {"\"alerts\": {\"rules\": [{" RULE_OK ", \"idle_s\": 3600}]}", "$.alerts.rules[0].idle_s: only for inactivity rules"},
        {"\"alerts\": {\"rules\": [{" RULE_OK ", \"warn\": 80}]}", "$.alerts.rules[0].warn: unknown key"},
        {"\"alerts\": {\"rules\": [{" IDLE_OK ", \"period\": \"d\"}]}", "$.alerts.rules[0].period: only for threshold rules"},
        {"\"alerts\": {\"rules\": [{" IDLE_OK ", \"min_elapsed_pct\": 5}]}", "$.alerts.rules[0].min_elapsed_pct: only for threshold rules"},
        {"\"alerts\": {\"rules\": [{\"name\": \"i\", \"kind\": \"inactivity\", \"metric\": \"calls\"}]}", "$.alerts.rules[0].idle_s: is required"},
        {"\"alerts\": {\"rules\": [{\"name\": \"i\", \"kind\": \"inactivity\", \"metric\": \"calls\", \"idle_s\": 59}]}", "$.alerts.rules[0].idle_s: must be between 60 and 2592000"},
        {"\"alerts\": {\"rules\": [{" IDLE_OK ", \"escalate_after_s\": 31536001}]}", "$.alerts.rules[0].escalate_after_s: must be between 0 and 31536000"},
    };
    run_cases(cases, sizeof cases / sizeof cases[0]);

    /* Both threshold-only keys are reported, not just the first. */
    expect_errors("\"alerts\": {\"rules\": [{" IDLE_OK ", \"warn_pct\": 80, \"critical_pct\": 50}]}",
                  "$.alerts.rules[0].warn_pct: only for threshold rules", 2);
    assert_true(fixture_has_line(errbuf, "$.alerts.rules[0].critical_pct: only for threshold rules"));
}

static void test_inactivity_metric(void **state)
{
    (void)state;
    static const char *const not_activity[] = {"deals_won", "revenue_won_cents", "stage:lead",
                                               "cycle_seconds_won", "tuches"};
    for (size_t i = 0; i < sizeof not_activity / sizeof not_activity[0]; i++) {
        char extra[512], want[128];
        snprintf(extra, sizeof extra, "\"alerts\": {\"rules\": [{\"name\": \"i\", \"kind\":"
                 " \"inactivity\", \"metric\": \"%s\", \"idle_s\": 3600}]}", not_activity[i]);
        snprintf(want, sizeof want, "$.alerts.rules[0].metric: \"%s\" is not an activity counter",
                 not_activity[i]);
        expect_fail(extra, want);
    }
    static const char *const activity[] = {"calls", "emails", "meetings_held", "touches",
                                           "call_seconds"};
    for (size_t i = 0; i < sizeof activity / sizeof activity[0]; i++) {
        char extra[512];
        snprintf(extra, sizeof extra, "\"alerts\": {\"rules\": [{\"name\": \"i\", \"kind\":"
                 " \"inactivity\", \"metric\": \"%s\", \"idle_s\": 60}]}", activity[i]);
        config_t *c = load_with(extra);
        assert_string_equal(c->rules[0].metric, activity[i]);
        config_free(c);
    }
}

static void test_metrics_and_stages(void **state)
{
    (void)state;
    /* "stages" after the targets in the file: the check still sees the configured list. */
    config_t *c = load_with(
        "\"targets\": {\"default\": {\"stage:demo\": {\"w\": 2}}},"
        " \"stages\": [{\"name\": \"demo\", \"p\": 0.5}, {\"name\": \"won\", \"p\": 1, \"terminal\": true},"
        "  {\"name\": \"lost\", \"p\": 0, \"terminal\": true}]");
    assert_true(config_metric_known(c, "stage:demo"));
    assert_true(config_metric_known(c, "stage:won"));
    assert_false(config_metric_known(c, "stage:proposal"));
    assert_false(config_metric_known(c, "stage:"));
    assert_true(config_metric_known(c, "touches"));
    assert_true(config_metric_known(c, "internal_filtered"));
    assert_true(config_metric_known(c, "deals_lost"));
    assert_true(config_metric_known(c, "revenue_won_cents"));
    assert_true(config_metric_known(c, "cycle_seconds_won"));
    assert_false(config_metric_known(c, "win_rate"));
    assert_false(config_metric_known(c, NULL));
    config_free(c);

    /* A stage missing from a custom list is unknown. */
    expect_fail("\"stages\": [{\"name\": \"demo\", \"p\": 0.5}, {\"name\": \"won\", \"p\": 1, \"terminal\": true},"
                " {\"name\": \"lost\", \"p\": 0, \"terminal\": true}],"
                " \"targets\": {\"default\": {\"stage:proposal\": {\"w\": 2}}}",
                "$.targets.default[\"stage:proposal\"]: unknown metric");
    /* A bad stage list is reported once, not again by every stage:<name> that used it. */
    expect_fail("\"stages\": [{\"name\": \"Demo\", \"p\": 0.5}, {\"name\": \"won\", \"p\": 1, \"terminal\": true},"
                " {\"name\": \"lost\", \"p\": 0, \"terminal\": true}],"
                " \"targets\": {\"default\": {\"stage:demo\": {\"w\": 2}}}",
                "$.stages[0].name: must match");
}

static void test_many_errors_at_once(void **state)
{
    (void)state;
    const char *text =
        "{\n"
        "  \"kafka\": {\"brokers\": \"b\", \"topics\": [\"t\"]},\n"
        "  \"calendar\": {\"work_days\": [\"mon\", \"mon\"], \"work_hours\": [\"18:00\", \"09:00\"]},\n"
        "  \"targets\": {\"default\": {\"tuches\": {\"d\": 1}}, \"teams\": {\"x\": {}}},\n"
        "  \"plans\": [{\"metric\": \"deals_won\", \"period\": \"m\", \"target\": 1, \"chain\": []}],\n"
        "  \"kpi_score\": {\"period\": \"m\", \"budget\": 1, \"weights\": {}, \"bands\": []},\n"
        "  \"alerts\": {\"clock\": \"x\", \"rules\": [{\"name\": \"r\", \"metric\": \"touches\",\n"
        "              \"period\": \"d\", \"warn_pct\": 1001}]}\n"
        "}";
    config_t *c = (config_t *)1;
    assert_int_equal(config_load_string(text, strlen(text), &c, errbuf, sizeof errbuf), -1);
    assert_null(c);
    const char *want =
        "$.calendar.work_days[1]: duplicate day \"mon\" (line 3, column 37)\n"
        "$.calendar.work_hours: the start must be before the end (line 3, column 59)\n"
        "$.targets.default.tuches: unknown metric \"tuches\" (a counter: calls, calls_connected, "
        "call_seconds, calls_in, emails, emails_in, meetings_scheduled, meetings_held, "
        "meetings_no_show, meetings_cancelled, meetings_first, meetings_next_step, touches, "
        "internal_filtered, deals_won, deals_lost, revenue_won_cents, cycle_seconds_won, or "
        "stage:<name> of a configured stage) (line 4, column 27)\n"
        "$.targets.teams.x: unknown team \"x\" (line 4, column 58)\n"
        "$.plans[0].chain: must be a non-empty array of steps {\"metric\", \"need\" or \"per\"} "
        "(line 5, column 74)\n"
        "$.kpi_score.weights: must name at least one metric (line 6, column 56)\n"
        "$.kpi_score.bands: must be a non-empty array of bands {\"from\" or \"above\", \"coef\"} "
        "(line 6, column 69)\n"
        "$.alerts.clock: must be \"wall\" or \"event\" (line 7, column 23)\n"
        "$.alerts.rules[0].warn_pct: must be between 0 and 1000 (line 8, column 42)";
    assert_string_equal(errbuf, want);
}

/* Every shipped configuration still loads. */
static void test_shipped_files(void **state)
{
    (void)state;
    const char *src = getenv("KPI_SRC");
    static const char *const files[] = {"config/kpid.example.jsonc", "config/test-minimal.json",
                                        "config/demo.jsonc"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", src ? src : "..", files[i]);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        static char text[1 << 20], out[1 << 20];
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = '\0';
        /* demo.jsonc is a template: fill its placeholders as tools/demo.sh does. */
        size_t o = 0;
        for (const char *p = text; *p && o + 16 < sizeof out;) {
            if (strncmp(p, "@BROKERS@", 9) == 0) {
                o += (size_t)snprintf(out + o, sizeof out - o, "b:9092");
                p += 9;
            } else if (strncmp(p, "@REDIS_PORT@", 12) == 0) {
                o += (size_t)snprintf(out + o, sizeof out - o, "6379");
                p += 12;
            } else {
                out[o++] = *p++;
            }
        }
        config_t *c = NULL;
        if (config_load_string(out, o, &c, errbuf, sizeof errbuf) != 0)
            fail_msg("%s:\n%s", files[i], errbuf);
        config_free(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contract_example),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_team_calendar),
        cmocka_unit_test(test_holidays_sorted_unique),
        cmocka_unit_test(test_calendar_errors),
        cmocka_unit_test(test_target_errors),
        cmocka_unit_test(test_plan_errors),
        cmocka_unit_test(test_plan_conflicts),
        cmocka_unit_test(test_score_errors),
        cmocka_unit_test(test_alert_errors),
        cmocka_unit_test(test_inactivity_metric),
        cmocka_unit_test(test_metrics_and_stages),
        cmocka_unit_test(test_many_errors_at_once),
        cmocka_unit_test(test_shipped_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
