/* The alert lifecycle and its JSON (contract sections 5 and 7), with expected objects
 * written out by hand. Unless said otherwise: rule weekly-meetings (meetings_held per
 * week, warn 80, critical 50, min_elapsed 20 %, escalate after 24 h), manager ivanov of
 * moscow-smb led by sidorov, repeat every 4 h, working hours. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "alert.h"
#include "json.h"

#define H (3600 * 1000LL)
#define MIN (60 * 1000LL)

static int64_t utc(int y, int m, int d, int h, int mi)
{
    return (period_days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60) * 1000;
}

static struct config_rule weekly = {
    .name = "weekly-meetings", .kind = RULE_THRESHOLD, .metric = "meetings_held",
    .period = PERIOD_WEEK, .warn_pct = 80, .critical_pct = 50, .min_elapsed_pct = 20,
    .escalate_after_s = 86400};
static struct config_rule silent = {
    .name = "silent", .kind = RULE_INACTIVITY, .metric = "touches", .idle_s = 7200};
static const struct alert_subject ivanov = {"ivanov", "moscow-smb", "sidorov"};

#define T0 utc(2026, 11, 19, 12, 0) /* Thursday noon */

static struct alert_figures figs(int64_t actual, const char *expected, const char *pct,
                                 enum pacing_state state)
{
    struct alert_figures f = {"w:2026-W47", PERIOD_WEEK, actual, 5, expected, pct, pct != NULL,
                              state, 70};
    return f;
}

static struct alert_clock at(int64_t now_ms)
{
    struct alert_clock c = {now_ms, true, 14400};
    return c;
}

static struct alert_clock night(int64_t now_ms)
{
    struct alert_clock c = {now_ms, false, 14400};
    return c;
}

/* Every output must be one valid JSON object on one line. */
static void valid(const struct alert_out *o)
{
    char err[128];
    assert_true(strlen(o->json) < ALERT_JSON_MAX);
    assert_null(strchr(o->json, '\n'));
    json_node_t *root = json_parse(o->json, strlen(o->json), false, err, sizeof err);
    if (!root)
        fail_msg("invalid JSON (%s): %s", err, o->json);
    assert_int_equal(json_kind(root), JSON_OBJECT);
    json_free(root);
}

static size_t step(const struct config_rule *r, alert_state_t *st, const struct alert_figures *f,
                   struct alert_clock c, struct alert_out *o)
{
    memset(o, 0, sizeof *o);
    size_t n = alert_step_threshold(r, st, &ivanov, f, &c, o, 1);
    if (n)
        valid(o);
    return n;
}

static const char *member(const char *json, const char *key, char *buf, size_t cap)
{
    char err[128];
    json_node_t *root = json_parse(json, strlen(json), false, err, sizeof err);
    assert_non_null(root);
    const json_node_t *v = json_object_get(root, key);
    const char *s = !v                             ? "<absent>"
                    : json_kind(v) == JSON_STRING  ? json_string(v, NULL)
                    : json_kind(v) == JSON_NUMBER  ? json_number_literal(v)
                    : json_kind(v) == JSON_BOOL    ? (json_bool(v) ? "true" : "false")
                                                   : "null";
    snprintf(buf, cap, "%s", s);
    json_free(root);
    return buf;
}

#define assert_member(json, key, want)                                                    \
    do {                                                                                  \
        char mb_[1024];                                                                   \
        assert_string_equal(member((json), (key), mb_, sizeof mb_), (want));              \
    } while (0)

/* Field by field: struct padding is not part of the state. */
static void assert_state_eq(const alert_state_t *a, const alert_state_t *b)
{
    assert_int_equal(a->open, b->open);
    assert_string_equal(a->period, b->period);
    assert_int_equal(a->seq, b->seq);
    assert_int_equal(a->severity, b->severity);
    assert_true(a->fired_ms == b->fired_ms);
    assert_true(a->sent_ms == b->sent_ms);
    assert_int_equal(a->escalated, b->escalated);
}

/* ------------------------------------------------------------------ state encoding */

static void test_state_roundtrip(void **state)
{
    (void)state;
    alert_state_t st = {true, "w:2026-W47", 3, ALERT_CRITICAL, 1763553600000, -5, true}, back;
    char buf[ALERT_STATE_MAX];
    int n = alert_state_encode(&st, buf, sizeof buf);
    assert_string_equal(buf, "v1|1|w:2026-W47|3|c|1763553600000|-5|1");
    assert_int_equal(n, (int)strlen(buf));
    assert_int_equal(alert_state_decode(buf, (size_t)n, &back), 0);
    assert_state_eq(&st, &back);

    alert_state_t closed = {false, "d:2026-11-19", 2, ALERT_WARN, 1, 2, false};
    n = alert_state_encode(&closed, buf, sizeof buf);
    assert_string_equal(buf, "v1|0|d:2026-11-19|2|w|1|2|0");
    assert_int_equal(alert_state_decode(buf, (size_t)n, &back), 0);
    assert_state_eq(&closed, &back);

    /* extremes survive */
    alert_state_t ext = {true, "q:2026-Q4", 2147483647, ALERT_WARN, INT64_MIN, INT64_MAX, false};
    n = alert_state_encode(&ext, buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal(alert_state_decode(buf, (size_t)n, &back), 0);
    assert_state_eq(&ext, &back);

    /* empty: closed and zero */
    alert_state_t zero;
    memset(&zero, 0, sizeof zero);
    memset(&back, 0x55, sizeof back);
    assert_int_equal(alert_state_decode(NULL, 0, &back), 0);
    assert_state_eq(&zero, &back);
    memset(&back, 0x55, sizeof back);
    assert_int_equal(alert_state_decode("", 0, &back), 0);
    assert_state_eq(&zero, &back);
    n = alert_state_encode(&zero, buf, sizeof buf);
    assert_string_equal(buf, "v1|0||0|n|0|0|0");
    assert_int_equal(alert_state_decode(buf, (size_t)n, &back), 0);
    assert_state_eq(&zero, &back);

    /* decode honours len (no NUL needed) */
    assert_int_equal(alert_state_decode("v1|0||0|n|0|0|0XYZ", 15, &back), 0);

    /* too small a buffer, a period that could not be decoded */
    assert_int_equal(alert_state_encode(&st, buf, 10), -1);
    alert_state_t bad = st;
    strcpy(bad.period, "a|b");
    assert_int_equal(alert_state_encode(&bad, buf, sizeof buf), -1);
}

static void test_state_garbage(void **state)
{
    (void)state;
    static const char *const garbage[] = {
        "x",
        "v2|1|w:2026-W47|1|w|0|0|0",         /* unknown version */
        "v1|1|w:2026-W47|1|w|0|0",           /* 7 fields */
        "v1|1|w:2026-W47|1|w|0|0|0|",        /* 9 fields */
        "v1|2|w:2026-W47|1|w|0|0|0",         /* open not 0/1 */
        "v1|1|w:2026-W47|-1|w|0|0|0",        /* negative seq */
        "v1|1|w:2026-W47|2147483648|w|0|0|0", /* seq beyond int */
        "v1|1|w:2026-W47|1|x|0|0|0",         /* severity */
        "v1|1|w:2026-W47|1|ww|0|0|0",
        "v1|1|w:2026-W47|1||0|0|0",
        "v1|1|w:2026-W47|1|w|12a|0|0",       /* bad number */
        "v1|1|w:2026-W47|1|w||0|0",
        "v1|1|w:2026-W47|1|w|-|0|0",
        "v1|1|w:2026-W47|1|w|9223372036854775808|0|0", /* int64 overflow */
        "v1|1|w:2026-W47|1|w|0|+1|0",
        "v1|1|w:2026-W47|1|w|0|0|yes",
        "v1|1|0123456789abcdef|1|w|0|0|0",   /* period of 16 bytes */
        "v1|1|w 2026|1|w|0|0|0",             /* space in period */
        "v1|1||1|w|0|0|0",                   /* open without period */
        "v1|1|w:2026-W47|0|w|0|0|0",         /* open without seq */
        "v1|1|w:2026-W47|1|n|0|0|0",         /* open without severity */
    };
    alert_state_t zero, out;
    memset(&zero, 0, sizeof zero);
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        memset(&out, 0x55, sizeof out);
        if (alert_state_decode(garbage[i], strlen(garbage[i]), &out) != -1)
            fail_msg("decoded garbage: %s", garbage[i]);
        assert_state_eq(&zero, &out); /* fresh after garbage */
    }
    assert_int_equal(alert_state_decode("v1|0||0|n|0\0|0|0", 16, &out), -1); /* NUL inside */
    char longer[200];
    memset(longer, '1', sizeof longer);
    assert_int_equal(alert_state_decode(longer, sizeof longer, &out), -1);
}

/* ------------------------------------------------------------------ threshold */

#define FIRE_JSON                                                                          \
    "{\"alert_id\":\"ivanov/weekly-meetings/w:2026-W47/1\",\"state\":\"firing\","         \
    "\"severity\":\"warn\",\"rule\":\"weekly-meetings\",\"manager\":\"ivanov\","          \
    "\"team\":\"moscow-smb\",\"metric\":\"meetings_held\",\"period\":\"w:2026-W47\","     \
    "\"actual\":2,\"expected\":3.5,\"target\":5,\"pct\":57.1429,"                       \
    "\"ts\":\"2026-11-19T12:00:00Z\","                                                    \
    "\"message\":\"ivanov: 2 meetings held this week, 3.5 expected by now (target 5)\"}"

static void test_fire_upgrade_resolve(void **state)
{
    (void)state;
    alert_state_t st = {0};
    struct alert_out o;
    struct alert_figures f = figs(2, "3.5", "57.1429", PACING_WARN);
    assert_int_equal(step(&weekly, &st, &f, at(T0), &o), 1);
    assert_string_equal(o.json, FIRE_JSON);
    assert_false(o.digest);
    assert_true(st.open);
    assert_string_equal(st.period, "w:2026-W47");
    assert_int_equal(st.seq, 1);
    assert_int_equal(st.severity, ALERT_WARN);
    assert_true(st.fired_ms == T0 && st.sent_ms == T0);
    assert_false(st.escalated);

    /* still warn ten minutes later: nothing (fires once) */
    assert_int_equal(step(&weekly, &st, &f, at(T0 + 10 * MIN), &o), 0);

    /* falls to critical: sent again, same id, critical */
    f = figs(1, "3.6", "27.7778", PACING_CRITICAL);
    assert_int_equal(step(&weekly, &st, &f, at(T0 + H), &o), 1);
    assert_string_equal(
        o.json,
        "{\"alert_id\":\"ivanov/weekly-meetings/w:2026-W47/1\",\"state\":\"firing\","
        "\"severity\":\"critical\",\"rule\":\"weekly-meetings\",\"manager\":\"ivanov\","
        "\"team\":\"moscow-smb\",\"metric\":\"meetings_held\",\"period\":\"w:2026-W47\","
        "\"actual\":1,\"expected\":3.6,\"target\":5,\"pct\":27.7778,"
        "\"ts\":\"2026-11-19T13:00:00Z\","
        "\"message\":\"ivanov (critical): 1 meeting held this week, 3.6 expected by now "
        "(target 5)\"}");
    assert_int_equal(st.severity, ALERT_CRITICAL);
    assert_true(st.sent_ms == T0 + H && st.fired_ms == T0);

    /* back to warn: the alert stays critical and silent */
    f = figs(2, "3.7", "54.0541", PACING_WARN);
    assert_int_equal(step(&weekly, &st, &f, at(T0 + H + MIN), &o), 0);
    assert_int_equal(st.severity, ALERT_CRITICAL);

    /* back on pace: resolved with the worst severity */
    f = figs(4, "3.8", "105.2632", PACING_OK);
    assert_int_equal(step(&weekly, &st, &f, at(T0 + 2 * H), &o), 1);
    assert_string_equal(
        o.json,
        "{\"alert_id\":\"ivanov/weekly-meetings/w:2026-W47/1\",\"state\":\"resolved\","
        "\"severity\":\"critical\",\"rule\":\"weekly-meetings\",\"manager\":\"ivanov\","
        "\"team\":\"moscow-smb\",\"metric\":\"meetings_held\",\"period\":\"w:2026-W47\","
        "\"actual\":4,\"expected\":3.8,\"target\":5,\"pct\":105.2632,"
        "\"ts\":\"2026-11-19T14:00:00Z\","
        "\"message\":\"ivanov is back on pace: 4 meetings held this week, 3.8 expected by "
        "now (target 5)\"}");
    assert_false(st.open);
    assert_string_equal(st.period, "w:2026-W47");
    assert_int_equal(st.seq, 1);

    /* ok and closed: nothing */
    assert_int_equal(step(&weekly, &st, &f, at(T0 + 3 * H), &o), 0);
}

static void test_fire_critical_directly(void **state)
{
    (void)state;
    alert_state_t st = {0};
    struct alert_out o;
    struct alert_figures f = figs(0, "3.5", "0", PACING_CRITICAL);
    assert_int_equal(step(&weekly, &st, &f, at(T0), &o), 1);
    assert_int_equal(st.severity, ALERT_CRITICAL);
    assert_member(o.json, "severity", "critical");
    assert_member(o.json, "message",
                  "ivanov (critical): 0 meetings held this week, 3.5 expected by now (target 5)");
    /* already critical: nothing more to upgrade */
    assert_int_equal(step(&weekly, &st, &f, at(T0 + MIN), &o), 0);
}

static void test_no_fire(void **state)
{
    (void)state;
    alert_state_t st = {0}, zero = {0};
    struct alert_out o;
    /* too early in the period */
    struct alert_figures f = figs(0, "0.5", "0", PACING_CRITICAL);
    f.elapsed_pct = 19.99;
    assert_int_equal(step(&weekly, &st, &f, at(T0), &o), 0);
    f.elapsed_pct = 20;
    assert_int_equal(step(&weekly, &st, &f, at(T0), &o), 1); /* at min_elapsed: fires */

    /* on pace */
    st = zero;
    f = figs(3, "3.5", "85.7143", PACING_OK);
    assert_int_equal(step(&weekly, &st, &f, at(T0), &o), 0);
    /* no target */
    f = figs(0, "0", NULL, PACING_OK);
    f.target = 0;
    assert_int_equal(step(&weekly, &st, &f, at(T0), &o), 0);
    f.state = PACING_CRITICAL; /* whatever the state says */
    assert_int_equal(step(&weekly, &st, &f, at(T0), &o), 0);
    assert_state_eq(&st, &zero);

    /* min_elapsed does not hold back an upgrade or a resolution */
    f = figs(2, "0.7", "285", PACING_WARN);
    assert_int_equal(step(&weekly, &st, &f, at(T0), &o), 1);
    f = figs(0, "0.7", "0", PACING_CRITICAL);
    f.elapsed_pct = 1;
    assert_int_equal(step(&weekly, &st, &f, at(T0 + MIN), &o), 1);
    assert_member(o.json, "severity", "critical");
}

static void test_target_removed(void **state)
{
    (void)state;
    alert_state_t st = {0};
    struct alert_out o;
    struct alert_figures f = figs(2, "3.5", "57.1429", PACING_WARN);
    assert_int_equal(step(&weekly, &st, &f, at(T0), &o), 1);
    f = figs(2, "0", NULL, PACING_OK);
    f.target = 0;
    assert_int_equal(step(&weekly, &st, &f, at(T0 + H), &o), 1);
    assert_false(st.open);
    assert_string_equal(
        o.json,
        "{\"alert_id\":\"ivanov/weekly-meetings/w:2026-W47/1\",\"state\":\"resolved\","
        "\"severity\":\"warn\",\"rule\":\"weekly-meetings\",\"manager\":\"ivanov\","
        "\"team\":\"moscow-smb\",\"metric\":\"meetings_held\",\"period\":\"w:2026-W47\","
        "\"actual\":2,\"expected\":0,\"target\":0,\"ts\":\"2026-11-19T13:00:00Z\","
        "\"message\":\"ivanov: the target for meetings held this week was removed "
        "(2 so far)\"}");
}

static void test_repeat(void **state)
{
    (void)state;
    struct config_rule r = weekly;
    r.escalate_after_s = 0; /* never escalated */
    alert_state_t st = {0};
    struct alert_out o;
    struct alert_figures f = figs(2, "3.5", "57.1429", PACING_WARN);
    assert_int_equal(step(&r, &st, &f, at(T0), &o), 1);
    assert_int_equal(step(&r, &st, &f, at(T0 + 4 * H - 1), &o), 0);
    assert_int_equal(step(&r, &st, &f, at(T0 + 4 * H), &o), 1);
    assert_member(o.json, "alert_id", "ivanov/weekly-meetings/w:2026-W47/1");
    assert_member(o.json, "state", "firing");
    assert_member(o.json, "ts", "2026-11-19T16:00:00Z");
    assert_member(o.json, "escalated_to", "<absent>");
    assert_member(o.json, "message", "ivanov: 2 meetings held this week, 3.5 expected by now "
                                     "(target 5); open for 4 h");
    assert_true(st.sent_ms == T0 + 4 * H);
    /* the timer restarts from the repeat */
    assert_int_equal(step(&r, &st, &f, at(T0 + 8 * H - MIN), &o), 0);
    assert_int_equal(step(&r, &st, &f, at(T0 + 8 * H + 5 * MIN), &o), 1);
    assert_member(o.json, "message", "ivanov: 2 meetings held this week, 3.5 expected by now "
                                     "(target 5); open for 8 h 5 min");

    /* repeat_s 0: never */
    struct alert_clock c = at(T0 + 100 * H);
    c.repeat_s = 0;
    assert_int_equal(alert_step_threshold(&r, &st, &ivanov, &f, &c, &o, 1), 0);
}

static void test_escalation(void **state)
{
    (void)state;
    alert_state_t st = {0};
    struct alert_out o;
    struct alert_figures f = figs(2, "3.5", "57.1429", PACING_WARN);
    struct alert_clock c = at(T0);
    c.repeat_s = 0;
    assert_int_equal(alert_step_threshold(&weekly, &st, &ivanov, &f, &c, &o, 1), 1);
    c.now_ms = T0 + 24 * H - 1000;
    assert_int_equal(alert_step_threshold(&weekly, &st, &ivanov, &f, &c, &o, 1), 0);
    c.now_ms = T0 + 26 * H;
    f = figs(3, "5.5", "54.5455", PACING_WARN);
    assert_int_equal(alert_step_threshold(&weekly, &st, &ivanov, &f, &c, &o, 1), 1);
    valid(&o);
    assert_string_equal(
        o.json,
        "{\"alert_id\":\"ivanov/weekly-meetings/w:2026-W47/1\",\"state\":\"firing\","
        "\"severity\":\"warn\",\"rule\":\"weekly-meetings\",\"manager\":\"ivanov\","
        "\"team\":\"moscow-smb\",\"metric\":\"meetings_held\",\"period\":\"w:2026-W47\","
        "\"actual\":3,\"expected\":5.5,\"target\":5,\"pct\":54.5455,"
        "\"ts\":\"2026-11-20T14:00:00Z\",\"escalated_to\":\"sidorov\","
        "\"message\":\"ivanov: 3 meetings held this week, 5.5 expected by now (target 5); "
        "open for 26 h, escalated to sidorov\"}");
    assert_true(st.escalated);
    assert_true(st.sent_ms == T0 + 26 * H);
    /* once only */
    c.now_ms = T0 + 50 * H;
    assert_int_equal(alert_step_threshold(&weekly, &st, &ivanov, &f, &c, &o, 1), 0);

    /* repeats after the escalation still name the lead */
    c.repeat_s = 3600;
    assert_int_equal(alert_step_threshold(&weekly, &st, &ivanov, &f, &c, &o, 1), 1);
    assert_member(o.json, "escalated_to", "sidorov");
    assert_member(o.json, "message", "ivanov: 3 meetings held this week, 5.5 expected by now "
                                     "(target 5); open for 2 d 2 h, escalated to sidorov");
    /* an upgrade after the escalation names the lead too */
    f = figs(1, "5.5", "18.1818", PACING_CRITICAL);
    c.now_ms += MIN;
    assert_int_equal(alert_step_threshold(&weekly, &st, &ivanov, &f, &c, &o, 1), 1);
    assert_member(o.json, "message", "ivanov (critical): 1 meeting held this week, 5.5 "
                                     "expected by now (target 5); escalated to sidorov");
    /* and the resolution tells the lead it ended */
    f = figs(5, "5.6", "89.2857", PACING_OK);
    c.now_ms += MIN;
    assert_int_equal(alert_step_threshold(&weekly, &st, &ivanov, &f, &c, &o, 1), 1);
    assert_member(o.json, "state", "resolved");
    assert_member(o.json, "escalated_to", "sidorov");
    assert_member(o.json, "message", "ivanov is back on pace: 5 meetings held this week, "
                                     "5.6 expected by now (target 5)");
}

static void test_escalation_wins_over_repeat(void **state)
{
    (void)state;
    alert_state_t st = {0};
    struct alert_out o;
    struct alert_figures f = figs(2, "3.5", "57.1429", PACING_WARN);
    assert_int_equal(step(&weekly, &st, &f, at(T0), &o), 1);
    /* both due at +24 h: one output, the escalation */
    assert_int_equal(step(&weekly, &st, &f, at(T0 + 24 * H), &o), 1);
    assert_member(o.json, "escalated_to", "sidorov");
    assert_int_equal(step(&weekly, &st, &f, at(T0 + 24 * H + MIN), &o), 0);
    /* an upgrade due together with the escalation goes first, the escalation next */
    alert_state_t st2 = {0};
    assert_int_equal(step(&weekly, &st2, &f, at(T0), &o), 1);
    struct alert_figures crit = figs(0, "3.5", "0", PACING_CRITICAL);
    assert_int_equal(step(&weekly, &st2, &crit, at(T0 + 25 * H), &o), 1);
    assert_member(o.json, "escalated_to", "<absent>");
    assert_member(o.json, "severity", "critical");
    assert_int_equal(step(&weekly, &st2, &crit, at(T0 + 25 * H + MIN), &o), 1);
    assert_member(o.json, "escalated_to", "sidorov");
    assert_member(o.json, "severity", "critical");
}

static void test_no_escalation_without_other_lead(void **state)
{
    (void)state;
    static const struct alert_subject self = {"sidorov", "moscow-smb", "sidorov"};
    static const struct alert_subject nolead = {"petrov", "kazan", NULL};
    static const struct alert_subject emptylead = {"petrov", "kazan", ""};
    const struct alert_subject *who[] = {&self, &nolead, &emptylead};
    struct alert_figures f = figs(2, "3.5", "57.1429", PACING_WARN);
    for (size_t i = 0; i < 3; i++) {
        alert_state_t st = {0};
        struct alert_out o;
        struct alert_clock c = at(T0);
        c.repeat_s = 0;
        assert_int_equal(alert_step_threshold(&weekly, &st, who[i], &f, &c, &o, 1), 1);
        c.now_ms = T0 + 30 * H;
        assert_int_equal(alert_step_threshold(&weekly, &st, who[i], &f, &c, &o, 1), 0);
        assert_false(st.escalated);
        /* repeats go on, to the manager only */
        c.repeat_s = 14400;
        assert_int_equal(alert_step_threshold(&weekly, &st, who[i], &f, &c, &o, 1), 1);
        valid(&o);
        assert_member(o.json, "escalated_to", "<absent>");
    }
}

static void test_night(void **state)
{
    (void)state;
    struct config_rule r = weekly;
    r.min_elapsed_pct = 0;
    alert_state_t st = {0};
    struct alert_out o;
    int64_t t23 = utc(2026, 11, 19, 20, 0); /* 23:00 in Moscow */
    struct alert_figures f = figs(2, "3.5", "57.1429", PACING_WARN);
    assert_int_equal(step(&r, &st, &f, night(t23), &o), 1);
    assert_true(o.digest);
    assert_true(st.open);
    assert_string_equal(
        o.json,
        "{\"alert_id\":\"ivanov/weekly-meetings/w:2026-W47/1\",\"state\":\"firing\","
        "\"severity\":\"warn\",\"rule\":\"weekly-meetings\",\"manager\":\"ivanov\","
        "\"team\":\"moscow-smb\",\"metric\":\"meetings_held\",\"period\":\"w:2026-W47\","
        "\"actual\":2,\"expected\":3.5,\"target\":5,\"pct\":57.1429,"
        "\"ts\":\"2026-11-19T20:00:00Z\",\"digest\":true,"
        "\"message\":\"ivanov: 2 meetings held this week, 3.5 expected by now (target 5)\"}");

    /* all night and the next night: no repeat, no escalation though both fall due */
    for (int64_t t = t23 + H; t <= t23 + 34 * H; t += H)
        assert_int_equal(step(&r, &st, &f, night(t), &o), 0);
    assert_false(st.escalated);
    assert_true(st.sent_ms == t23);
    /* an upgrade at night still changes the state, into the digest */
    struct alert_figures crit = figs(1, "3.5", "28.5714", PACING_CRITICAL);
    assert_int_equal(step(&r, &st, &crit, night(t23 + 35 * H), &o), 1);
    assert_true(o.digest);
    assert_member(o.json, "digest", "true");
    assert_int_equal(st.severity, ALERT_CRITICAL);
    /* first working evaluation: the overdue escalation */
    assert_int_equal(step(&r, &st, &crit, at(t23 + 37 * H), &o), 1);
    assert_false(o.digest);
    assert_member(o.json, "digest", "<absent>");
    assert_member(o.json, "escalated_to", "sidorov");
    /* then, next working evaluation past repeat_s: the repeat */
    assert_int_equal(step(&r, &st, &crit, at(t23 + 41 * H), &o), 1);
    assert_false(o.digest);
    /* resolution at night goes to the digest */
    struct alert_figures ok = figs(5, "3.5", "142.8571", PACING_OK);
    assert_int_equal(step(&r, &st, &ok, night(t23 + 48 * H), &o), 1);
    assert_true(o.digest);
    assert_member(o.json, "state", "resolved");
    assert_false(st.open);
}

static void test_seq(void **state)
{
    (void)state;
    alert_state_t st = {0};
    struct alert_out o;
    struct alert_figures warn = figs(2, "3.5", "57.1429", PACING_WARN);
    struct alert_figures ok = figs(3, "3.5", "85.7143", PACING_OK);
    for (int i = 1; i <= 3; i++) {
        char id[64];
        snprintf(id, sizeof id, "ivanov/weekly-meetings/w:2026-W47/%d", i);
        assert_int_equal(step(&weekly, &st, &warn, at(T0 + i * H), &o), 1);
        assert_member(o.json, "alert_id", id);
        assert_int_equal(step(&weekly, &st, &ok, at(T0 + i * H + MIN), &o), 1);
        assert_member(o.json, "alert_id", id);
    }
    /* a new period restarts at 1 */
    warn.period = "w:2026-W48";
    assert_int_equal(step(&weekly, &st, &warn, at(T0 + 7 * 24 * H), &o), 1);
    assert_member(o.json, "alert_id", "ivanov/weekly-meetings/w:2026-W48/1");
    assert_member(o.json, "period", "w:2026-W48");
    assert_int_equal(st.seq, 1);

    /* the state survives its encoding between evaluations */
    char buf[ALERT_STATE_MAX];
    int n = alert_state_encode(&st, buf, sizeof buf);
    alert_state_t back;
    assert_int_equal(alert_state_decode(buf, (size_t)n, &back), 0);
    ok.period = "w:2026-W48";
    assert_int_equal(step(&weekly, &back, &ok, at(T0 + 7 * 24 * H + H), &o), 1);
    assert_member(o.json, "alert_id", "ivanov/weekly-meetings/w:2026-W48/1");
}

static void test_period_close(void **state)
{
    (void)state;
    alert_state_t st = {0};
    struct alert_out o;
    struct alert_figures f = figs(3, "5", "60", PACING_WARN);
    assert_int_equal(step(&weekly, &st, &f, at(T0), &o), 1);

    /* Monday of the next week: the old period must be closed first */
    int64_t mon = utc(2026, 11, 22, 21, 0) + MIN;
    struct alert_figures next = figs(0, "0", "0", PACING_OK);
    next.period = "w:2026-W48";
    next.elapsed_pct = 0;
    assert_true(alert_needs_close(&weekly, &st, "w:2026-W48"));
    assert_false(alert_needs_close(&weekly, &st, "w:2026-W47"));
    assert_false(alert_needs_close(&silent, &st, "w:2026-W48"));
    alert_state_t before = st;
    assert_int_equal(step(&weekly, &st, &next, night(mon), &o), 0); /* refused, untouched */
    assert_state_eq(&st, &before);

    struct alert_figures fin = figs(4, NULL, "80", PACING_OK); /* expected is not read */
    struct alert_clock c = night(mon);
    memset(&o, 0, sizeof o);
    assert_int_equal(alert_close_period(&weekly, &st, &ivanov, &fin, &c, &o, 1), 1);
    valid(&o);
    assert_string_equal(
        o.json,
        "{\"alert_id\":\"ivanov/weekly-meetings/w:2026-W47/1\",\"state\":\"resolved\","
        "\"severity\":\"warn\",\"rule\":\"weekly-meetings\",\"manager\":\"ivanov\","
        "\"team\":\"moscow-smb\",\"metric\":\"meetings_held\",\"period\":\"w:2026-W47\","
        "\"actual\":4,\"expected\":5,\"target\":5,\"pct\":80,"
        "\"ts\":\"2026-11-22T21:01:00Z\",\"final\":true,\"digest\":true,"
        "\"message\":\"ivanov: week w:2026-W47 closed with 4 meetings held of 5 targeted\"}");
    assert_true(o.digest);
    assert_false(st.open);
    assert_false(alert_needs_close(&weekly, &st, "w:2026-W48"));
    /* closing again: nothing */
    assert_int_equal(alert_close_period(&weekly, &st, &ivanov, &fin, &c, &o, 1), 0);

    /* the new week starts its own alerts at 1 */
    next = figs(0, "1", "0", PACING_CRITICAL);
    next.period = "w:2026-W48";
    assert_int_equal(step(&weekly, &st, &next, at(mon + 2 * 24 * H), &o), 1);
    assert_member(o.json, "alert_id", "ivanov/weekly-meetings/w:2026-W48/1");

    /* in working hours the final resolution is sent at once */
    struct alert_clock day = at(mon + 7 * 24 * H);
    assert_int_equal(alert_close_period(&weekly, &st, &ivanov, &fin, &day, &o, 1), 1);
    assert_false(o.digest);
}

/* ------------------------------------------------------------------ inactivity */

static size_t idle_step(alert_state_t *st, const struct alert_idle *idle, struct alert_clock c,
                        struct alert_out *o)
{
    memset(o, 0, sizeof *o);
    size_t n = alert_step_inactivity(&silent, st, &ivanov, idle, &c, o, 1);
    if (n)
        valid(o);
    return n;
}

static void test_inactivity(void **state)
{
    (void)state;
    alert_state_t st = {0};
    struct alert_out o;
    int64_t last = utc(2026, 11, 19, 7, 0); /* 10:00 in Moscow */
    struct alert_idle idle = {7199, last, "d:2026-11-19", 4};
    assert_int_equal(idle_step(&st, &idle, at(T0), &o), 0);
    idle.idle_work_s = 7500;
    assert_int_equal(idle_step(&st, &idle, at(T0 + 5 * MIN), &o), 1);
    assert_string_equal(
        o.json,
        "{\"alert_id\":\"ivanov/silent/d:2026-11-19/1\",\"state\":\"firing\","
        "\"severity\":\"warn\",\"rule\":\"silent\",\"manager\":\"ivanov\","
        "\"team\":\"moscow-smb\",\"metric\":\"touches\",\"period\":\"d:2026-11-19\","
        "\"actual\":4,\"ts\":\"2026-11-19T12:05:00Z\",\"idle_s\":7500,"
        "\"last_activity_ts\":\"2026-11-19T07:00:00Z\","
        "\"message\":\"ivanov: no touches for 2 h 5 min of working time "
        "(last at 2026-11-19 07:00 UTC)\"}");
    assert_true(st.open);
    assert_int_equal(st.severity, ALERT_WARN);

    /* the day ends, the silence goes on: same alert, repeated, then escalated */
    idle.day = "d:2026-11-20";
    idle.actual_today = 0;
    idle.idle_work_s = 7500 + 3 * 3600;
    assert_int_equal(idle_step(&st, &idle, night(T0 + 12 * H), &o), 0);
    assert_int_equal(idle_step(&st, &idle, at(T0 + 21 * H), &o), 1);
    assert_member(o.json, "alert_id", "ivanov/silent/d:2026-11-19/1");
    assert_member(o.json, "period", "d:2026-11-19");
    assert_member(o.json, "message", "ivanov: no touches for 5 h 5 min of working time "
                                     "(last at 2026-11-19 07:00 UTC); open for 20 h 55 min");
    struct config_rule esc = silent;
    esc.escalate_after_s = 86400;
    struct alert_clock c = at(T0 + 24 * H + 5 * MIN);
    assert_int_equal(alert_step_inactivity(&esc, &st, &ivanov, &idle, &c, &o, 1), 1);
    assert_member(o.json, "escalated_to", "sidorov");

    /* activity: resolved, the day it fired stays its period */
    idle.idle_work_s = 0;
    idle.last_ms = T0 + 24 * H + 5 * MIN;
    idle.actual_today = 1;
    assert_int_equal(idle_step(&st, &idle, at(T0 + 24 * H + 6 * MIN), &o), 1);
    assert_string_equal(
        o.json,
        "{\"alert_id\":\"ivanov/silent/d:2026-11-19/1\",\"state\":\"resolved\","
        "\"severity\":\"warn\",\"rule\":\"silent\",\"manager\":\"ivanov\","
        "\"team\":\"moscow-smb\",\"metric\":\"touches\",\"period\":\"d:2026-11-19\","
        "\"actual\":1,\"ts\":\"2026-11-20T12:06:00Z\",\"escalated_to\":\"sidorov\","
        "\"idle_s\":0,\"last_activity_ts\":\"2026-11-20T12:05:00Z\","
        "\"message\":\"ivanov is active again: 1 touch today, the last at "
        "2026-11-20 12:05 UTC\"}");
    assert_false(st.open);

    /* silent again the same day: seq 1 of the new day; and again: seq 2 */
    idle.idle_work_s = 7200;
    assert_int_equal(idle_step(&st, &idle, at(T0 + 27 * H), &o), 1);
    assert_member(o.json, "alert_id", "ivanov/silent/d:2026-11-20/1");
    assert_false(st.escalated);
    idle.idle_work_s = 10;
    assert_int_equal(idle_step(&st, &idle, at(T0 + 28 * H), &o), 1);
    idle.idle_work_s = 7200;
    assert_int_equal(idle_step(&st, &idle, at(T0 + 30 * H), &o), 1);
    assert_member(o.json, "alert_id", "ivanov/silent/d:2026-11-20/2");

    /* period close does not touch inactivity alerts */
    struct alert_figures f = figs(0, "0", NULL, PACING_OK);
    assert_int_equal(alert_close_period(&silent, &st, &ivanov, &f, &c, &o, 1), 0);
    assert_true(st.open);
}

static void test_inactivity_no_history(void **state)
{
    (void)state;
    alert_state_t st = {0};
    struct alert_out o;
    struct alert_idle idle = {9000, -1, "d:2026-11-19", 0};
    assert_int_equal(idle_step(&st, &idle, at(T0), &o), 1);
    assert_member(o.json, "last_activity_ts", "<absent>");
    assert_member(o.json, "message",
                  "ivanov: no touches for 2 h 30 min of working time (none on record)");
    /* a rule whose idle_s is not positive never fires, and resolves what is open */
    struct config_rule off = silent;
    off.idle_s = 0;
    struct alert_clock c = at(T0 + MIN);
    assert_int_equal(alert_step_inactivity(&off, &st, &ivanov, &idle, &c, &o, 1), 1);
    assert_member(o.json, "state", "resolved");
    assert_member(o.json, "message", "ivanov is active again: 0 touches today");
    assert_int_equal(alert_step_inactivity(&off, &st, &ivanov, &idle, &c, &o, 1), 0);
}

/* ------------------------------------------------------------------ text */

static void test_escaping(void **state)
{
    (void)state;
    /* quote, backslash, newline, a control byte, DEL, Cyrillic, an invalid byte, a lone
     * continuation byte, a surrogate encoded in UTF-8 */
    static const struct alert_subject odd = {"iv\"an\\o\nv\x01\x7f\xd0\xb8\xff\x80\xed\xa0\x80",
                                             "t\te", "le\"ad"};
    alert_state_t st = {0};
    struct alert_out o;
    struct alert_figures f = figs(2, "3.5", "57.1429", PACING_WARN);
    struct alert_clock c = at(T0);
    assert_int_equal(alert_step_threshold(&weekly, &st, &odd, &f, &c, &o, 1), 1);
    valid(&o);
    const char *esc = "iv\\\"an\\\\o\\nv\\u0001\\u007f\xd0\xb8\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd";
    char want[512];
    snprintf(want, sizeof want, "{\"alert_id\":\"%s/weekly-meetings/w:2026-W47/1\"", esc);
    assert_memory_equal(o.json, want, strlen(want));
    snprintf(want, sizeof want, "\"manager\":\"%s\",\"team\":\"t\\te\"", esc);
    assert_non_null(strstr(o.json, want));
    snprintf(want, sizeof want, "\"message\":\"%s: 2 meetings held", esc);
    assert_non_null(strstr(o.json, want));
    /* decoded back, the valid characters are the manager's own */
    assert_member(o.json, "team", "t\te");
    c.now_ms += 25 * H;
    assert_int_equal(alert_step_threshold(&weekly, &st, &odd, &f, &c, &o, 1), 1);
    valid(&o);
    assert_member(o.json, "escalated_to", "le\"ad");
}

static void test_huge_ids_fit(void **state)
{
    (void)state;
    static char big[3000], ctl[3000], rule_name[3000], metric[3000];
    memset(big, 'm', sizeof big - 1);
    memset(ctl, '\x01', sizeof ctl - 1);
    memset(rule_name, '"', sizeof rule_name - 1);
    memcpy(metric, "stage:", 6);
    memset(metric + 6, '\\', sizeof metric - 7);
    const struct alert_subject subjects[] = {{big, big, "lead"}, {ctl, ctl, ctl}, {big, ctl, big}};
    for (size_t i = 0; i < 3; i++) {
        struct config_rule r = weekly;
        r.name = i == 0 ? "r" : rule_name;
        r.metric = i == 2 ? metric : "meetings_held";
        alert_state_t st = {0};
        struct alert_out o;
        struct alert_figures f = figs(INT64_MIN, "-99999999999999999999999.9999",
                                      "99999999999999999999999.9999", PACING_WARN);
        f.period = "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01";
        f.target = INT64_MAX;
        struct alert_clock c = at(INT64_MAX);
        assert_int_equal(alert_step_threshold(&r, &st, &subjects[i], &f, &c, &o, 1), 1);
        valid(&o);
        c.now_ms = INT64_MAX; /* escalation due only if time moves: force it via fired_ms */
        st.fired_ms = INT64_MIN;
        st.sent_ms = INT64_MIN;
        assert_int_equal(alert_step_threshold(&r, &st, &subjects[i], &f, &c, &o, 1), 1);
        valid(&o);
        assert_int_equal(alert_close_period(&r, &st, &subjects[i], &f, &c, &o, 1), 1);
        valid(&o);
        /* the manager id is cut, with "..." */
        char m[2048];
        member(o.json, "manager", m, sizeof m);
        assert_true(strlen(m) <= 128);
        assert_string_equal(m + strlen(m) - 3, "...");

        struct alert_idle idle = {INT64_MAX, INT64_MIN, f.period, INT64_MIN};
        alert_state_t st2 = {0};
        assert_int_equal(alert_step_inactivity(&silent, &st2, &subjects[i], &idle, &c, &o, 1), 1);
        valid(&o);
    }
}

static void test_bad_decimals(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "3.", ".5", "03", "1e3", "NaN", "3.5\"}", "-", "+1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        alert_state_t st = {0};
        struct alert_out o;
        struct alert_figures f = figs(2, bad[i], bad[i], PACING_WARN);
        assert_int_equal(step(&weekly, &st, &f, at(T0), &o), 1);
        assert_member(o.json, "expected", "null");
        assert_member(o.json, "pct", "null");
    }
    alert_state_t st = {0};
    struct alert_out o;
    struct alert_figures f = figs(2, NULL, NULL, PACING_WARN);
    f.has_pct = true;
    assert_int_equal(step(&weekly, &st, &f, at(T0), &o), 1);
    assert_member(o.json, "message", "ivanov: 2 meetings held this week, ? expected by now "
                                     "(target 5)");
    /* "-0.5", "0", "12.0001" pass */
    struct alert_figures g = figs(2, "-0.5", "12.0001", PACING_WARN);
    alert_state_t st2 = {0};
    assert_int_equal(step(&weekly, &st2, &g, at(T0), &o), 1);
    assert_member(o.json, "expected", "-0.5");
    assert_member(o.json, "pct", "12.0001");
}

static void test_nouns(void **state)
{
    (void)state;
    static const struct {
        const char *metric;
        int64_t actual, target;
        const char *expected, *message;
    } cases[] = {
        {"revenue_won_cents", 123456, 1000000, "333333.3333",
         "ivanov: 1234.56 revenue won this week, 3333.33 expected by now (target 10000.00)"},
        {"revenue_won_cents", 5, 100, "50.5",
         "ivanov: 0.05 revenue won this week, 0.51 expected by now (target 1.00)"},
        {"stage:proposal", 1, 9, "4.5",
         "ivanov: 1 deal reaching proposal this week, 4.5 expected by now (target 9)"},
        {"touches", 1, 40, "20", "ivanov: 1 touch this week, 20 expected by now (target 40)"},
        {"emails", 2, 40, "20", "ivanov: 2 e-mails this week, 20 expected by now (target 40)"},
        {"calls_connected", 1, 40, "20",
         "ivanov: 1 connected call this week, 20 expected by now (target 40)"},
        {"meetings_first", 0, 4, "2",
         "ivanov: 0 first meetings this week, 2 expected by now (target 4)"},
        {"deals_won", 1, 4, "2", "ivanov: 1 deal won this week, 2 expected by now (target 4)"},
        {"odd_metric", 1, 4, "2", "ivanov: 1 odd_metric this week, 2 expected by now (target 4)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config_rule r = weekly;
        r.metric = (char *)cases[i].metric;
        alert_state_t st = {0};
        struct alert_out o;
        struct alert_figures f = figs(cases[i].actual, cases[i].expected, "1", PACING_WARN);
        f.target = cases[i].target;
        assert_int_equal(step(&r, &st, &f, at(T0), &o), 1);
        assert_member(o.json, "message", cases[i].message);
        assert_member(o.json, "metric", cases[i].metric);
    }
    /* period words and a money period end */
    static const char *const words[] = {"today", "this week", "this month", "this quarter"};
    for (int k = PERIOD_DAY; k < PERIOD_KINDS; k++) {
        alert_state_t st = {0};
        struct alert_out o;
        struct alert_figures f = figs(1, "2", "50", PACING_WARN);
        f.kind = (enum period_kind)k;
        assert_int_equal(step(&weekly, &st, &f, at(T0), &o), 1);
        char want[128];
        snprintf(want, sizeof want, "ivanov: 1 meeting held %s, 2 expected by now (target 5)",
                 words[k]);
        assert_member(o.json, "message", want);
    }
    struct config_rule money = weekly;
    money.metric = "revenue_won_cents";
    alert_state_t st = {0};
    struct alert_out o;
    struct alert_figures f = figs(123456, "1", "1", PACING_WARN);
    f.period = "m:2026-11";
    f.kind = PERIOD_MONTH;
    f.target = 10000000;
    assert_int_equal(step(&money, &st, &f, at(T0), &o), 1);
    struct alert_clock c = at(T0);
    assert_int_equal(alert_close_period(&money, &st, &ivanov, &f, &c, &o, 1), 1);
    assert_member(o.json, "message",
                  "ivanov: month m:2026-11 closed with 1234.56 revenue won of 100000.00 targeted");
    assert_member(o.json, "expected", "10000000");
}

static void test_cap_zero_and_defaults(void **state)
{
    (void)state;
    /* cap 0: the decision still stands, nothing written */
    alert_state_t st = {0};
    struct alert_figures f = figs(2, "3.5", "57.1429", PACING_WARN);
    struct alert_clock c = at(T0);
    assert_int_equal(alert_step_threshold(&weekly, &st, &ivanov, &f, &c, NULL, 0), 0);
    assert_true(st.open);
    /* no team: unassigned */
    static const struct alert_subject lone = {"petrov", NULL, NULL};
    alert_state_t st2 = {0};
    struct alert_out o;
    assert_int_equal(alert_step_threshold(&weekly, &st2, &lone, &f, &c, &o, 1), 1);
    valid(&o);
    assert_member(o.json, "team", "unassigned");
    assert_string_equal(alert_severity_name(ALERT_WARN), "warn");
    assert_string_equal(alert_severity_name(ALERT_CRITICAL), "critical");
    assert_string_equal(alert_severity_name(ALERT_NONE), "none");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_roundtrip),
        cmocka_unit_test(test_state_garbage),
        cmocka_unit_test(test_fire_upgrade_resolve),
        cmocka_unit_test(test_fire_critical_directly),
        cmocka_unit_test(test_no_fire),
        cmocka_unit_test(test_target_removed),
        cmocka_unit_test(test_repeat),
        cmocka_unit_test(test_escalation),
        cmocka_unit_test(test_escalation_wins_over_repeat),
        cmocka_unit_test(test_no_escalation_without_other_lead),
        cmocka_unit_test(test_night),
        cmocka_unit_test(test_seq),
        cmocka_unit_test(test_period_close),
        cmocka_unit_test(test_inactivity),
        cmocka_unit_test(test_inactivity_no_history),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_huge_ids_fit),
        cmocka_unit_test(test_bad_decimals),
        cmocka_unit_test(test_nouns),
        cmocka_unit_test(test_cap_zero_and_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
