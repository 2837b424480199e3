#include "evaluate.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evaluate_impl.h"
#include "log.h"
#include "score.h"

/* The thresholds a metric's :state uses: those of the first threshold rule watching that
 * metric and period, else 80 / 50. */
static void thresholds_of(const config_t *cfg, const char *metric, enum period_kind kind,
                          int *warn, int *critical)
{
    *warn = DEFAULT_WARN_PCT;
    *critical = DEFAULT_CRITICAL_PCT;
    for (size_t r = 0; r < cfg->n_rules; r++) {
        const struct config_rule *rule = &cfg->rules[r];
        if (rule->kind == RULE_THRESHOLD && rule->period == kind && strcmp(rule->metric, metric) == 0) {
            *warn = rule->warn_pct;
            *critical = rule->critical_pct;
            return;
        }
    }
}

/* ---- pacing fields ------------------------------------------------------------------ */

static int64_t expiry_of(const config_t *cfg, enum period_kind kind, int64_t end_ms)
{
    int64_t keep = kind == PERIOD_DAY    ? cfg->retention_day_s
                   : kind == PERIOD_WEEK ? cfg->retention_week_s
                                         : 0;
    return keep ? end_ms / 1000 + keep : 0;
}

/* HSET of <metric>:target/:expected/:pct/:state for one scope's period, then EXPIREAT. */
void eval_queue_pacing(evaluator_t *e, const char *counters_key, enum period_kind kind,
                         int64_t start_ms, int64_t end_ms, const pacing_calendar_t *cal,
                         int64_t now, const struct targets_entry *targets, size_t n_targets,
                         const struct kind_view *values)
{
    if (!n_targets)
        return;
    struct cmdbuf *c = &e->cmd;
    const char *key = eval_printf(&e->arena, "%s:kpi", counters_key);
    eval_arg(c, "HSET");
    eval_arg(c, key);
    for (size_t i = 0; i < n_targets; i++) {
        const char *metric = targets[i].metric;
        int warn, critical;
        thresholds_of(e->w.cfg, metric, kind, &warn, &critical);
        pacing_result_t r;
        pacing_evaluate(cal, start_ms, end_ms, now, targets[i].target,
                        eval_field(values, metric), warn, critical, &r);
        eval_arg(c, eval_printf(&e->arena, "%s:target", metric));
        eval_arg(c, eval_printf(&e->arena, "%" PRId64, targets[i].target));
        eval_arg(c, eval_printf(&e->arena, "%s:expected", metric));
        eval_arg(c, eval_printf(&e->arena, "%s", r.expected));
        if (r.has_pct) {
            eval_arg(c, eval_printf(&e->arena, "%s:pct", metric));
            eval_arg(c, eval_printf(&e->arena, "%s", r.pct));
        }
        eval_arg(c, eval_printf(&e->arena, "%s:state", metric));
        eval_arg(c, pacing_state_name(r.state));
    }
    eval_send(e->redis, c);
    int64_t at = expiry_of(e->w.cfg, kind, end_ms);
    if (at) {
        eval_arg(c, "EXPIREAT");
        eval_arg(c, key);
        eval_arg(c, eval_printf(&e->arena, "%" PRId64, at));
        eval_send(e->redis, c);
    }
}

void eval_queue_score(evaluator_t *e, const struct mview *v)
{
    const config_t *cfg = e->w.cfg;
    if (!cfg->has_score)
        return;
    const struct kind_view *k = &v->k[cfg->score_period];
    score_input_t inputs[FIELDS_MAX];
    score_band_t bands[FIELDS_MAX];
    size_t n = 0, nb = 0;
    for (size_t i = 0; i < cfg->n_score_weights && n < FIELDS_MAX; i++) {
        bool found;
        int64_t target = eval_target_of(k, cfg->score_weights[i].metric, &found);
        inputs[n++] = (score_input_t){cfg->score_weights[i].weight, target,
                                      eval_field(k, cfg->score_weights[i].metric)};
    }
    for (size_t i = 0; i < cfg->n_score_bands && nb < FIELDS_MAX; i++)
        bands[nb++] = (score_band_t){cfg->score_bands[i].threshold, cfg->score_bands[i].above,
                                     cfg->score_bands[i].coef};
    score_result_t res;
    char err[128];
    if (score_compute(inputs, n, bands, nb, cfg->score_budget, &res, err, sizeof err) != 0)
        return; /* the configuration check refuses such bands */
    const char *key;
    if (eval_key(e, SCOPE_MANAGER, v->id, k->id, &key) != 0)
        return;
    struct cmdbuf *c = &e->cmd;
    eval_arg(c, "HSET");
    eval_arg(c, eval_printf(&e->arena, "%s:kpi", key));
    eval_arg(c, "kpi_score");
    eval_arg(c, eval_printf(&e->arena, "%s", res.kpi_score));
    eval_arg(c, "bonus");
    eval_arg(c, eval_printf(&e->arena, "%s", res.bonus));
    eval_send(e->redis, c);
}

/* ---- alerts ------------------------------------------------------------------------- */

static bool working_at(const pacing_calendar_t *cal, int64_t now)
{
    return pacing_work_s(cal, now, now + 1000) > 0;
}

static double elapsed_pct(const pacing_calendar_t *cal, int64_t start, int64_t end, int64_t now)
{
    int64_t whole = pacing_work_s(cal, start, end);
    if (whole <= 0)
        return 100.0;
    int64_t done = pacing_work_s(cal, start, now < start ? start : now > end ? end : now);
    return 100.0 * (double)done / (double)whole;
}

static void figures_of(const pacing_calendar_t *cal, const struct config_rule *rule,
                       const char *period, int64_t start, int64_t end, int64_t now,
                       int64_t target, int64_t actual, pacing_result_t *pr,
                       struct alert_figures *fig)
{
    pacing_evaluate(cal, start, end, now, target, actual, rule->warn_pct, rule->critical_pct, pr);
    *fig = (struct alert_figures){
        .period = period,
        .kind = rule->period,
        .actual = actual,
        .target = target,
        .expected = pr->expected,
        .pct = pr->pct,
        .has_pct = pr->has_pct,
        .state = pr->state,
        .elapsed_pct = elapsed_pct(cal, start, end, now),
    };
}

/* Bounds of a period of the manager's zone from its id (a closing alert's period). */
static int bounds_of(const pacing_calendar_t *cal, const char *id, int64_t *start, int64_t *end)
{
    enum period_kind kind;
    int y, m, d;
    if (period_id_first_day(id, &kind, &y, &m, &d) != 0)
        return -1;
    const period_set_t *ps = period_of(cal->zone, period_local_to_utc(cal->zone, y, m, d, 12, 0));
    *start = ps->start_ms[kind];
    *end = ps->end_ms[kind];
    return 0;
}

/* One rule for one manager: the transitions, as outputs, and the new state. */
static size_t step_rule(evaluator_t *e, struct mview *v, size_t r, int64_t now, bool working,
                        struct alert_out *out, size_t cap)
{
    const config_t *cfg = e->w.cfg;
    const struct config_rule *rule = &cfg->rules[r];
    alert_state_t *st = &v->states[r];
    struct alert_subject who = {v->id, v->team, v->lead};
    struct alert_clock clk = {now, working, cfg->alerts_repeat_s};
    size_t n = 0;
    if (rule->kind == RULE_INACTIVITY) {
        const struct kind_view *day = &v->k[PERIOD_DAY];
        int64_t since = v->last_ms[r] >= 0 ? v->last_ms[r] : day->start_ms;
        struct alert_idle idle = {
            .idle_work_s = since < now ? pacing_work_s(&v->cal, since, now) : 0,
            .last_ms = v->last_ms[r],
            .day = day->id,
            .actual_today = eval_field(day, rule->metric),
        };
        return alert_step_inactivity(rule, st, &who, &idle, &clk, out, cap);
    }
    const struct kind_view *k = &v->k[rule->period];
    pacing_result_t pr;
    struct alert_figures fig;
    if (st->open && strcmp(st->period, k->id) != 0) {
        int64_t start, end;
        if (bounds_of(&v->cal, st->period, &start, &end) == 0) {
            struct targets_entry t[FIELDS_MAX];
            struct targets_period tp = {rule->period, start, end};
            size_t nt = targets_of_manager(e->w.targets, v->id, &tp, &v->cal, eval_observed_ratio, e, t,
                                           FIELDS_MAX);
            int64_t target = 0;
            for (size_t i = 0; i < nt && i < FIELDS_MAX; i++)
                if (strcmp(t[i].metric, rule->metric) == 0)
                    target = t[i].target;
            figures_of(&v->cal, rule, st->period, start, end, end, target, v->final_actual[r],
                       &pr, &fig);
            n += alert_close_period(rule, st, &who, &fig, &clk, out, cap);
        } else {
            log_warn("alert state of %s rule %s names period \"%s\"; closing it unsent",
                     v->id, rule->name, st->period);
            st->open = false;
        }
    }
    bool found;
    int64_t target = eval_target_of(k, rule->metric, &found);
    figures_of(&v->cal, rule, k->id, k->start_ms, k->end_ms, now, target,
               eval_field(k, rule->metric), &pr, &fig);
    return n + alert_step_threshold(rule, st, &who, &fig, &clk, out + n, cap - n);
}


/* The alert object's state (alert.c writes the key once, unescaped; inside a string
 * value the quotes would be escaped). */
static bool is_resolved_json(const char *json)
{
    return strstr(json, "\"state\":\"resolved\"") != NULL;
}

/* Queues (inside MULTI) what one manager's rules produce. */
void eval_queue_alerts(evaluator_t *e, struct mview *v, const char *const *keys, int64_t now,
                         struct chunk_totals *tot, bool *any)
{
    const config_t *cfg = e->w.cfg;
    struct cmdbuf *c = &e->cmd;
    bool working = working_at(&v->cal, now);
    const char *maxlen = eval_printf(&e->arena, "%" PRId64, cfg->alerts_stream_maxlen);
    /* keys: alertstate, digest, alerts (firing), stream */
    /* The digest: entries are "<rule>\n<alert json>". Delivering it counts as sending
     * those rules' alerts, so their repeat timers restart now rather than repeating right
     * after the digest. */
    if (working && v->digest && v->digest->type == REDIS_REPLY_ARRAY && v->digest->elements) {
        for (size_t i = 0; i < v->digest->elements; i++) {
            const redisReply *j = v->digest->element[i];
            const char *nl = j->type == REDIS_REPLY_STRING ? memchr(j->str, '\n', j->len) : NULL;
            if (!nl)
                continue;
            for (size_t r = 0; r < cfg->n_rules; r++)
                if (strlen(cfg->rules[r].name) == (size_t)(nl - j->str) &&
                    memcmp(cfg->rules[r].name, j->str, (size_t)(nl - j->str)) == 0 &&
                    v->states[r].open)
                    v->states[r].sent_ms = now;
            const char *argv[] = {"XADD", keys[3], "MAXLEN", "~", maxlen, "*", "json", nl + 1,
                                  "manager", v->id};
            for (size_t a = 0; a < 10; a++)
                eval_arg(c, argv[a]);
            eval_send(e->redis, c);
            tot->alerts++;
            tot->resolved += is_resolved_json(nl + 1);
        }
        eval_arg(c, "DEL");
        eval_arg(c, keys[1]);
        eval_send(e->redis, c);
        *any = true;
    }
    for (size_t r = 0; r < cfg->n_rules; r++) {
        char after[ALERT_STATE_MAX];
        const char *before = v->stored[r];
        bool was_open = v->states[r].open;
        struct alert_out out[4];
        size_t n = step_rule(e, v, r, now, working, out, 4);
        if (alert_state_encode(&v->states[r], after, sizeof after) < 0)
            continue;
        if (strcmp(before, after) != 0) {
            eval_arg(c, "HSET");
            eval_arg(c, keys[0]);
            eval_arg(c, cfg->rules[r].name);
            eval_arg(c, eval_printf(&e->arena, "%s", after));
            eval_send(e->redis, c);
        }
        if (n)
            log_debug("%s %s: %s -> %s", v->id, cfg->rules[r].name, before, after);
        for (size_t i = 0; i < n; i++) {
            const char *json = eval_printf(&e->arena, "%s", out[i].json);
            if (out[i].digest) {
                eval_arg(c, "RPUSH");
                eval_arg(c, keys[1]);
                eval_arg(c, eval_printf(&e->arena, "%s\n%s", cfg->rules[r].name, out[i].json));
                tot->queued++;
            } else {
                const char *argv[] = {"XADD", keys[3], "MAXLEN", "~", maxlen, "*", "json",
                                      json, "manager", v->id};
                for (size_t a = 0; a < 10; a++)
                    eval_arg(c, argv[a]);
                tot->alerts++;
                tot->resolved += is_resolved_json(out[i].json);
            }
            eval_send(e->redis, c);
            *any = true;
        }
        if (v->states[r].open && n) {
            eval_arg(c, "HSET");
            eval_arg(c, keys[2]);
            eval_arg(c, cfg->rules[r].name);
            eval_arg(c, eval_printf(&e->arena, "%s", out[n - 1].json));
            eval_send(e->redis, c);
        } else if (was_open && !v->states[r].open) {
            eval_arg(c, "HDEL");
            eval_arg(c, keys[2]);
            eval_arg(c, cfg->rules[r].name);
            eval_send(e->redis, c);
        }
    }
}
