/* alert: the lifecycle of one (manager, rule) alert and its JSON (contract sections 5, 7).
 * Pure: the caller reads the stored state, passes the figures and now_ms, and writes back
 * the state and sends (or queues) whatever JSON comes out. No clock reads, no I/O.
 *
 * Threshold rules, one step against the current period's figures:
 *   not open, target <= 0 or elapsed_pct < min_elapsed_pct or state ok    nothing
 *   not open, state warn/critical   FIRE: open, seq = seq + 1 in the same period as the
 *                                   last alert, else 1 with the new period; severity from
 *                                   the state; fired_ms = sent_ms = now
 *   open, target <= 0               RESOLVED with the current figures (a reload removed the
 *                                   target; nothing is left to be behind on)
 *   open, state ok                  RESOLVED with the current figures
 *   open, severity warn, critical   UPGRADE: sent again as critical, sent_ms = now
 *   open, still behind              ESCALATE once when escalate_after_s > 0 has passed
 *                                   since fired_ms and the team has a lead who is not the
 *                                   manager: "escalated_to": lead, sent_ms = now;
 *                                   else REPEAT when repeat_s > 0 has passed since sent_ms
 * One output per call at most: an upgrade due together with an escalation wins, the
 * escalation follows on the next evaluation (its timer is still due).
 * The period ended while open: alert_close_period resolves with the final figures
 * ("final": true, expected printed as the target); alert_step_threshold refuses (returns 0,
 * state untouched) while the state is open for another period, so a caller that forgets
 * to close cannot re-fire under a stale id. alert_needs_close says when to close.
 *
 * Inactivity rules (one per day at most opens, but they are not period-bound):
 *   not open, idle_work_s >= idle_s  FIRE as warn, period = the current day id, seq as above
 *   open, idle_work_s < idle_s       RESOLVED (activity came back)
 *   open, still idle                 ESCALATE / REPEAT as above
 * A day's end does not close an inactivity alert, only activity (or a rule whose idle_s
 * is not positive) does: a manager silent since yesterday afternoon is still silent. The
 * alert keeps the id and period of the day it fired.
 *
 * Outside working hours (clk->working false) FIRE, UPGRADE and RESOLVED still change the
 * state and come out with digest = true and "digest": true in their JSON, so the caller
 * queues that JSON unchanged for the manager's start-of-day digest (no further marking
 * is needed). REPEAT and ESCALATE are not produced then: their timers stay due and fire at
 * the first evaluation in working hours. A digest output also restarts the repeat timer,
 * so an alert fired at 23:00 with repeat_s 4 h repeats at the first working evaluation.
 *
 * alert_id = "<manager>/<rule>/<period>/<seq>", the same for every message of one alert
 * (fire, upgrade, repeat, escalation, resolution). The severity of every message is the
 * worst one sent while open, so a critical alert does not drop back to warn in a repeat or
 * its resolution. A resolution of an escalated alert carries "escalated_to" too, so the
 * lead hears that it ended.
 *
 * JSON, one line, members in this order: alert_id, state ("firing"/"resolved"), severity
 * ("warn"/"critical"), rule, manager, team, metric, period, actual, expected (threshold
 * only; the decimal string unquoted), target (threshold only), pct (when has_pct), ts
 * (now, "2026-11-19T12:00:00Z"), then when they apply escalated_to, final (true),
 * idle_s (inactivity: working seconds idle), last_activity_ts (inactivity, when known),
 * digest (true), and message. Strings are escaped (quote, backslash, control characters;
 * invalid UTF-8 becomes U+FFFD). Any string is cut (with "...") so the object always fits
 * ALERT_JSON_MAX: first at 128 bytes per id, then shorter if still too long. A decimal
 * that is not a JSON number prints as null. Money (revenue_won_cents) is in cents in the
 * figures and in units with 2 decimals in the message. */
#ifndef KPI_ALERT_H
#define KPI_ALERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "pacing.h"
#include "period.h"

enum alert_severity { ALERT_NONE, ALERT_WARN, ALERT_CRITICAL };

/* Stored per (manager, rule) in Redis between evaluations, encoded as a short string. */
typedef struct alert_state {
    bool open;                  /* an alert is firing */
    char period[16];            /* period id of the current/last alert ("w:2026-W47"; inactivity: the day "d:..." it fired) */
    int seq;                    /* alerts opened for this (manager, rule, period) so far: part of alert_id */
    enum alert_severity severity; /* worst severity sent while open */
    int64_t fired_ms;           /* when it opened */
    int64_t sent_ms;            /* last time it was sent (repeat timer) */
    bool escalated;             /* already sent to the team lead */
} alert_state_t;

/* Longest encoding plus NUL: "v1|1|<15>|<int>|c|<int64>|<int64>|1". */
#define ALERT_STATE_MAX 96

/* Encoding: "v1|<open 0/1>|<period>|<seq>|<n/w/c>|<fired_ms>|<sent_ms>|<escalated 0/1>".
 * "" / NULL decodes to a closed, empty state. Decode returns -1 on garbage (a wrong field
 * count, a bad number, a period with '|' or non-printable bytes, an open state without a
 * period, seq or severity) and then leaves *out closed and empty (caller logs and starts
 * fresh). Encode returns the length, or -1 when cap is too small. */
int alert_state_encode(const alert_state_t *st, char *buf, size_t cap);
int alert_state_decode(const char *s, size_t len, alert_state_t *out);

struct alert_subject { const char *manager, *team, *lead; };  /* lead NULL or "": none */

struct alert_figures {          /* one threshold rule's metric in one period */
    const char *period;         /* "w:2026-W47" */
    enum period_kind kind;
    int64_t actual, target;
    const char *expected;       /* decimal string, <= 4 fraction digits */
    const char *pct; bool has_pct;
    enum pacing_state state;
    double elapsed_pct;         /* working time elapsed in the period, 0..100 */
};

struct alert_idle {             /* an inactivity rule's metric */
    int64_t idle_work_s;        /* working seconds since the last counted activity */
    int64_t last_ms;            /* that activity's event time, -1: none known */
    const char *day;            /* the current day id "d:2026-11-19" (the period of a new inactivity alert) */
    int64_t actual_today;       /* the metric's count today */
};

struct alert_clock { int64_t now_ms; bool working; /* the manager's working hours at now */ int64_t repeat_s; /* 0: never */ };

#define ALERT_JSON_MAX 1024
struct alert_out {
    char json[ALERT_JSON_MAX];  /* the contract's alert object, one line */
    bool digest;                /* outside working hours: queue for the manager's start-of-day digest instead of sending now */
};

/* Every step and close produces at most this many outputs; pass cap >= it. With a smaller
 * cap the state still changes but the output is lost. */
#define ALERT_OUT_MAX 1

/* A threshold rule against the current period's figures. If st is open for ANOTHER period the caller must
 * first call alert_close_period with that period's final figures. Returns the number of outputs (0..cap), updates st. */
size_t alert_step_threshold(const struct config_rule *rule, alert_state_t *st, const struct alert_subject *who,
                            const struct alert_figures *fig, const struct alert_clock *clk, struct alert_out *out, size_t cap);
/* The open alert's period has ended: resolve it with the period's final figures (expected = target).
 * Nothing for a closed state or an inactivity rule. */
size_t alert_close_period(const struct config_rule *rule, alert_state_t *st, const struct alert_subject *who,
                          const struct alert_figures *final_fig, const struct alert_clock *clk, struct alert_out *out, size_t cap);
size_t alert_step_inactivity(const struct config_rule *rule, alert_state_t *st, const struct alert_subject *who,
                             const struct alert_idle *idle, const struct alert_clock *clk, struct alert_out *out, size_t cap);

/* True when st is an open threshold alert of a period other than `period`: call
 * alert_close_period with that period's final figures before stepping. */
bool alert_needs_close(const struct config_rule *rule, const alert_state_t *st, const char *period);

/* "warn", "critical"; "none" for ALERT_NONE. */
const char *alert_severity_name(enum alert_severity sev);

#endif
