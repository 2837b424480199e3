/* config_goals: contract section 7 of the configuration file, the part alerting reads:
 * targets, plans and the KPI score here; the calendar in config_calendar.c and the alert
 * rules in config_alerts.c, which share the metric, period-letter and number readers below.
 *
 * Same discipline as config.c, whose readers it shares through config_impl.h: every
 * problem is reported with its JSON path, all of them are collected, unknown keys are
 * errors. What only the whole file can tell is checked here too: metric names against the
 * final stage list ("stages" is read before this section, wherever it sits in the file),
 * and plans that would derive the same target twice for one manager. */
#include "config_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "pacing.h"
#include "period.h"

#define TARGET_MAX ((int64_t)1 << 53) /* every target stays exact as a double */
#define LETTERS_RULE "must be one of \"d\", \"w\", \"m\", \"q\" (day, ISO week, month, quarter)"

static const char *const funnel_metrics[] = {"deals_won", "deals_lost", "revenue_won_cents",
                                             "cycle_seconds_won"};
#define N_FUNNEL (sizeof funnel_metrics / sizeof funnel_metrics[0])

void cfg_goals_defaults(config_t *c)
{
    c->calendar.work_days = PACING_WEEKDAYS;
    c->calendar.start_min = 9 * 60;
    c->calendar.end_min = 18 * 60;
    c->alerts_eval_interval_s = 60;
    c->alerts_repeat_s = 14400;
    c->alerts_stream_maxlen = 100000;
    c->webhook_timeout_ms = 2000;
}

/* A string node equal to want (a decoded "\u0000" never matches). */
bool cfg_str_is(const json_node_t *n, const char *want)
{
    size_t len;
    const char *s = json_string(n, &len);
    return s && len == strlen(want) && memcmp(s, want, len) == 0;
}

/* ---- shared readers: metrics, period letters, numbers --------------------------------- */

static bool is_activity(const char *m)
{
    for (int i = 0; i < COUNTER_ACTIVITY_COUNT; i++)
        if (strcmp(agg_counter_name((enum counter)i), m) == 0)
            return true;
    return false;
}

bool config_metric_known(const config_t *cfg, const char *m)
{
    if (!m)
        return false;
    if (is_activity(m))
        return true;
    for (size_t i = 0; i < N_FUNNEL; i++)
        if (strcmp(funnel_metrics[i], m) == 0)
            return true;
    return strncmp(m, "stage:", 6) == 0 && config_stage_find(cfg, m + 6) >= 0;
}

/* After a bad "stages" list any stage:<name> is let through: the stage it names may be
 * the one that was rejected, and one error about it is enough. */
static bool metric_ok(const struct vctx *v, const char *m, bool activity_only)
{
    if (activity_only)
        return is_activity(m);
    return config_metric_known(v->cfg, m) || (v->stages_bad && strncmp(m, "stage:", 6) == 0);
}

static void metric_err(struct vctx *v, int line, int col, const char *m, bool activity_only)
{
    char list[512] = "", q[160];
    size_t len = 0, n = COUNTER_ACTIVITY_COUNT + (activity_only ? 0 : N_FUNNEL);
    for (size_t i = 0; i < n; i++) {
        const char *name = i < COUNTER_ACTIVITY_COUNT ? agg_counter_name((enum counter)i)
                                                      : funnel_metrics[i - COUNTER_ACTIVITY_COUNT];
        int w = snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", name);
        if (w > 0 && len + (size_t)w < sizeof list)
            len += (size_t)w;
    }
    cfg_quote(m, strlen(m), q, sizeof q);
    if (activity_only)
        cfg_err_at(v, line, col, "%s is not an activity counter (one of: %s)", q, list);
    else
        cfg_err_at(v, line, col, "unknown metric %s (a counter: %s, or stage:<name> of a "
                   "configured stage)", q, list);
}

/* A required metric-name member. */
void cfg_read_metric(struct vctx *v, const json_node_t *obj, const char *key,
                     bool activity_only, char **out)
{
    if (cfg_read_str(v, obj, key, true, false, out) != 1 || metric_ok(v, *out, activity_only))
        return;
    size_t s = cfg_path_key(v, key, strlen(key));
    const json_node_t *n = json_object_get(obj, key);
    metric_err(v, json_line(n), json_column(n), *out, activity_only);
    cfg_path_pop(v, s);
}

static bool letter_kind(const char *s, size_t len, enum period_kind *out)
{
    static const char letters[] = "dwmq"; /* in enum period_kind order */
    const char *p = len == 1 ? memchr(letters, s[0], 4) : NULL;
    if (p)
        *out = (enum period_kind)(p - letters);
    return p != NULL;
}

void cfg_read_period(struct vctx *v, const json_node_t *obj, const char *key,
                     enum period_kind *out)
{
    size_t saved, len;
    const json_node_t *n = cfg_enter(v, obj, key, true, &saved);
    const char *s = json_string(n, &len);
    if (n && !(s && letter_kind(s, len, out)))
        ERR(v, n, LETTERS_RULE);
    cfg_path_pop(v, saved);
}

/* A finite number >= lo (> lo when above_lo) and <= hi (HUGE_VAL: unbounded). */
static int node_num(struct vctx *v, const json_node_t *n, double lo, bool above_lo, double hi,
                    double *out)
{
    double x = 0;
    if (json_number_double(n, &x) == 0 && isfinite(x) && (above_lo ? x > lo : x >= lo) &&
        x <= hi) {
        *out = x;
        return 0;
    }
    if (isinf(hi))
        ERR(v, n, "must be a number %s %g", above_lo ? ">" : ">=", lo);
    else
        ERR(v, n, "must be a number between %g and %g", lo, hi);
    return -1;
}

void cfg_read_num(struct vctx *v, const json_node_t *obj, const char *key, bool required,
                  double lo, bool above_lo, double hi, double *out)
{
    size_t saved;
    const json_node_t *n = cfg_enter(v, obj, key, required, &saved);
    if (n)
        node_num(v, n, lo, above_lo, hi, out);
    cfg_path_pop(v, saved);
}

static bool team_known(const config_t *c, const char *team)
{
    return strcmp(team, CONFIG_UNASSIGNED_TEAM) == 0 || config_team_find(c, team) != NULL;
}

static void team_err(struct vctx *v, int line, int col, const char *team)
{
    char q[160];
    cfg_err_at(v, line, col, "unknown team %s", cfg_quote(team, strlen(team), q, sizeof q));
}

/* ---- targets -------------------------------------------------------------------------- */

/* metric -> {letter: value}; duplicate metrics were reported by the caller. */
static void read_target_list(struct vctx *v, const json_node_t *obj, struct config_target **out,
                             size_t *n_out)
{
    static const char *const letters[] = {"d", "w", "m", "q", NULL};
    size_t cap = 0;
    for (size_t i = 0; i < json_object_len(obj); i++)
        cap += json_object_len(json_object_value_at(obj, i));
    struct config_target *ts = cap ? calloc(cap, sizeof *ts) : NULL;
    if (cap && !ts) {
        v->oom = true;
        return;
    }
    *out = ts;
    for (size_t i = 0; i < json_object_len(obj); i++) {
        size_t klen;
        const char *metric = json_object_key_at(obj, i, &klen);
        const json_node_t *per = json_object_value_at(obj, i);
        int line, col;
        json_object_key_position(obj, i, &line, &col);
        if (json_object_key_is_dup(obj, i))
            continue;
        size_t saved = cfg_path_key(v, metric, klen);
        if (strlen(metric) != klen || !metric_ok(v, metric, false)) {
            metric_err(v, line, col, metric, false);
        } else if (json_kind(per) != JSON_OBJECT) {
            ERR(v, per, "must be an object: period letter (d, w, m, q) -> target");
        } else {
            cfg_check_keys(v, per, letters);
            for (size_t j = 0; j < json_object_len(per); j++) {
                size_t llen;
                const char *l = json_object_key_at(per, j, &llen);
                enum period_kind k;
                int64_t x;
                if (json_object_key_is_dup(per, j) || !letter_kind(l, llen, &k))
                    continue;
                size_t s2 = cfg_path_key(v, l, llen);
                if (cfg_node_int(v, json_object_value_at(per, j), 0, TARGET_MAX, &x) == 0)
                    ts[(*n_out)++] = (struct config_target){cfg_dup(v, metric), k, x};
                cfg_path_pop(v, s2);
            }
        }
        cfg_path_pop(v, saved);
    }
}

static void add_set(struct vctx *v, struct config_target_set *sets, size_t *n, const char *name,
                    const json_node_t *body)
{
    struct config_target_set *s = &sets[(*n)++];
    s->name = cfg_dup(v, name);
    read_target_list(v, body, &s->targets, &s->n_targets);
}

static void role_set(struct vctx *v, const char *name, const json_node_t *body, int line, int col)
{
    if (!*name)
        cfg_err_at(v, line, col, "role name must not be empty");
    add_set(v, v->cfg->targets_roles, &v->cfg->n_targets_roles, name, body);
}

/* Teams must be configured: targets for a team nobody belongs to are a typo. */
static void team_set(struct vctx *v, const char *name, const json_node_t *body, int line, int col)
{
    if (!team_known(v->cfg, name))
        team_err(v, line, col, name);
    add_set(v, v->cfg->targets_teams, &v->cfg->n_targets_teams, name, body);
}

/* Managers need not be configured (they are known from their events), but the id must be
 * one an event could carry. */
static void manager_set(struct vctx *v, const char *name, const json_node_t *body, int line,
                        int col)
{
    if (!cfg_charset_ok(CS_ID, name))
        cfg_err_at(v, line, col, "manager id must match %s", cfg_charset_rule(CS_ID));
    add_set(v, v->cfg->targets_managers, &v->cfg->n_targets_managers, name, body);
}

static void read_sets(struct vctx *v, const json_node_t *t, const char *key,
                      struct config_target_set **sets,
                      void (*each)(struct vctx *, const char *, const json_node_t *, int, int))
{
    size_t saved;
    const json_node_t *m = cfg_read_obj(v, t, key, false, &saved);
    size_t n = json_object_len(m);
    *sets = n ? calloc(n, sizeof **sets) : NULL;
    if (n && !*sets)
        v->oom = true;
    else if (m)
        cfg_read_map(v, m, NULL, each);
    cfg_path_pop(v, saved);
}

static void read_targets(struct vctx *v, const json_node_t *root)
{
    static const char *const keys[] = {"default", "roles", "teams", "managers", NULL};
    config_t *c = v->cfg;
    size_t saved, s2;
    const json_node_t *t = cfg_read_obj(v, root, "targets", false, &saved);
    if (t) {
        cfg_check_keys(v, t, keys);
        const json_node_t *d = cfg_read_obj(v, t, "default", false, &s2);
        cfg_check_keys(v, d, NULL);
        if (d)
            read_target_list(v, d, &c->targets_default, &c->n_targets_default);
        cfg_path_pop(v, s2);
        read_sets(v, t, "roles", &c->targets_roles, role_set);
        read_sets(v, t, "teams", &c->targets_teams, team_set);
        read_sets(v, t, "managers", &c->targets_managers, manager_set);
    }
    cfg_path_pop(v, saved);
}

/* ---- plans ---------------------------------------------------------------------------- */

static void read_step(struct vctx *v, const json_node_t *e, struct config_plan_step *st)
{
    static const char *const keys[] = {"metric", "need", "per", NULL};
    if (json_kind(e) != JSON_OBJECT) {
        ERR(v, e, "must be an object {\"metric\", \"need\" or \"per\"}");
        return;
    }
    cfg_check_keys(v, e, keys);
    cfg_read_metric(v, e, "metric", false, &st->metric);
    const json_node_t *per = json_object_get(e, "per");
    if (!json_object_get(e, "need") == !per) {
        ERR(v, e, "must have exactly one of \"need\" and \"per\"");
    } else if (!per) {
        cfg_read_num(v, e, "need", true, 0, true, HUGE_VAL, &st->factor);
    } else {
        size_t saved;
        cfg_enter(v, e, "per", true, &saved);
        st->by_per = true;
        st->observed = cfg_str_is(per, "observed");
        if (!st->observed && json_kind(per) != JSON_NUMBER)
            ERR(v, per, "must be a number > 0 or \"observed\"");
        else if (!st->observed)
            node_num(v, per, 0, true, HUGE_VAL, &st->factor);
        cfg_path_pop(v, saved);
    }
}

/* A chain metric must be new to its plan, or the plan would derive it twice. The path is
 * at the chain. */
static void check_chain_distinct(struct vctx *v, const json_node_t *chain,
                                 const struct config_plan *p)
{
    for (size_t j = 0; j < p->n_chain; j++) {
        const char *m = p->chain[j].metric;
        size_t k = 0;
        while (m && k < j && !(p->chain[k].metric && strcmp(p->chain[k].metric, m) == 0))
            k++;
        bool is_plans = m && p->metric && strcmp(p->metric, m) == 0;
        if (!m || (!is_plans && k == j))
            continue;
        size_t s = cfg_path_index(v, j);
        cfg_path_key(v, "metric", 6);
        const json_node_t *n = json_object_get(json_array_at(chain, j), "metric");
        if (is_plans)
            ERR(v, n, "\"%s\" is the plan's own metric", m);
        else
            ERR(v, n, "\"%s\" is already in chain[%zu]", m, k);
        cfg_path_pop(v, s);
    }
}

/* True when the plan came through without an error. */
static bool read_plan(struct vctx *v, const json_node_t *e, struct config_plan *p)
{
    static const char *const keys[] = {"metric", "period", "target", "role", "team", "manager",
                                       "chain", NULL};
    size_t before = v->n_errs, saved;
    if (json_kind(e) != JSON_OBJECT) {
        ERR(v, e, "must be an object");
        return false;
    }
    cfg_check_keys(v, e, keys);
    cfg_read_metric(v, e, "metric", false, &p->metric);
    cfg_read_period(v, e, "period", &p->period);
    cfg_read_num(v, e, "target", true, 0, false, HUGE_VAL, &p->target);
    cfg_read_str(v, e, "role", false, false, &p->role);
    const json_node_t *n = json_object_get(e, "team");
    if (cfg_read_str(v, e, "team", false, false, &p->team) == 1 && !team_known(v->cfg, p->team)) {
        saved = cfg_path_key(v, "team", 4);
        team_err(v, json_line(n), json_column(n), p->team);
        cfg_path_pop(v, saved);
    }
    n = json_object_get(e, "manager");
    if (cfg_read_str(v, e, "manager", false, false, &p->manager) == 1 &&
        !cfg_charset_ok(CS_ID, p->manager)) {
        saved = cfg_path_key(v, "manager", 7);
        ERR(v, n, "must match %s", cfg_charset_rule(CS_ID));
        cfg_path_pop(v, saved);
    }
    const json_node_t *chain = cfg_enter(v, e, "chain", true, &saved);
    size_t len = json_array_len(chain);
    if (chain && (json_kind(chain) != JSON_ARRAY || len == 0)) {
        ERR(v, chain, "must be a non-empty array of steps {\"metric\", \"need\" or \"per\"}");
    } else if (chain) {
        p->chain = calloc(len, sizeof *p->chain);
        p->n_chain = p->chain ? len : 0;
        v->oom |= !p->chain;
        for (size_t i = 0; i < p->n_chain; i++) {
            size_t s = cfg_path_index(v, i);
            read_step(v, json_array_at(chain, i), &p->chain[i]);
            cfg_path_pop(v, s);
        }
        check_chain_distinct(v, chain, p);
    }
    cfg_path_pop(v, saved);
    return v->n_errs == before;
}

struct who { /* a manager as plan selectors see one */
    const char *id; /* NULL: any manager not in "managers" */
    const char *team, *role;
};

static bool plan_applies(const struct config_plan *p, const struct who *w)
{
    return (!p->role || strcmp(p->role, w->role) == 0) &&
           (!p->team || strcmp(p->team, w->team) == 0) &&
           (!p->manager || (w->id && strcmp(p->manager, w->id) == 0));
}

/* The first metric both plans derive (their own metric or a chain's) for one period. */
static const char *shared_metric(const struct config_plan *a, const struct config_plan *b)
{
    if (a->period != b->period)
        return NULL;
    for (size_t i = 0; i <= a->n_chain; i++) {
        const char *m = i ? a->chain[i - 1].metric : a->metric;
        for (size_t j = 0; j <= b->n_chain; j++)
            if (strcmp(m, j ? b->chain[j - 1].metric : b->metric) == 0)
                return m;
    }
    return NULL;
}

/* A manager both plans apply to, or false. Plans naming a manager only meet there; others
 * may meet at any configured manager or at the managers nobody configured. */
static bool common_manager(const config_t *c, const struct config_plan *a,
                           const struct config_plan *b, struct who *w)
{
    const char *id = a->manager ? a->manager : b->manager;
    if (id) {
        const struct config_manager *m = config_manager_find(c, id);
        *w = (struct who){id, m ? m->team : CONFIG_UNASSIGNED_TEAM,
                          m ? m->role : CONFIG_DEFAULT_ROLE};
        return plan_applies(a, w) && plan_applies(b, w);
    }
    for (size_t i = 0; i < c->n_managers; i++) {
        *w = (struct who){c->managers[i].id, c->managers[i].team, c->managers[i].role};
        if (plan_applies(a, w) && plan_applies(b, w))
            return true;
    }
    *w = (struct who){NULL, CONFIG_UNASSIGNED_TEAM, CONFIG_DEFAULT_ROLE};
    return plan_applies(a, w) && plan_applies(b, w);
}

/* Two plans deriving one (metric, period) for one manager: reported once per pair, at the
 * later plan, naming the first such manager. Only plans read without errors take part.
 * The path is at "plans". */
static void check_conflicts(struct vctx *v, const json_node_t *plans, const bool *ok)
{
    const config_t *c = v->cfg;
    for (size_t j = 1; j < c->n_plans; j++) {
        for (size_t i = 0; ok[j] && i < j; i++) {
            const char *m = ok[i] ? shared_metric(&c->plans[i], &c->plans[j]) : NULL;
            struct who w;
            if (!m || !common_manager(c, &c->plans[i], &c->plans[j], &w))
                continue;
            char whom[128];
            if (w.id)
                snprintf(whom, sizeof whom, "manager %s", w.id);
            else
                snprintf(whom, sizeof whom, "managers not in \"managers\" (team "
                         CONFIG_UNASSIGNED_TEAM ", role " CONFIG_DEFAULT_ROLE ")");
            size_t s = cfg_path_index(v, j);
            ERR(v, json_array_at(plans, j), "derives %s per %c for %s, as $.plans[%zu] does", m,
                "dwmq"[c->plans[j].period], whom, i);
            cfg_path_pop(v, s);
        }
    }
}

static void read_plans(struct vctx *v, const json_node_t *root)
{
    config_t *c = v->cfg;
    size_t saved;
    const json_node_t *a = cfg_enter(v, root, "plans", false, &saved);
    size_t n = json_array_len(a);
    if (a && json_kind(a) != JSON_ARRAY) {
        ERR(v, a, "must be an array of plans");
    } else if (n) {
        c->plans = calloc(n, sizeof *c->plans);
        bool *ok = calloc(n, sizeof *ok);
        if (!c->plans || !ok) {
            v->oom = true;
        } else {
            c->n_plans = n;
            for (size_t i = 0; i < n; i++) {
                size_t s = cfg_path_index(v, i);
                ok[i] = read_plan(v, json_array_at(a, i), &c->plans[i]);
                cfg_path_pop(v, s);
            }
            check_conflicts(v, a, ok);
        }
        free(ok);
    }
    cfg_path_pop(v, saved);
}

/* ---- kpi_score ------------------------------------------------------------------------ */

static void read_weights(struct vctx *v, const json_node_t *sc)
{
    config_t *c = v->cfg;
    size_t saved;
    const json_node_t *w = cfg_read_obj(v, sc, "weights", true, &saved);
    size_t n = json_object_len(w);
    if (w && n == 0)
        ERR(v, w, "must name at least one metric");
    cfg_check_keys(v, w, NULL);
    c->score_weights = n ? calloc(n, sizeof *c->score_weights) : NULL;
    v->oom |= n && !c->score_weights;
    for (size_t i = 0; c->score_weights && i < n; i++) {
        size_t klen;
        const char *m = json_object_key_at(w, i, &klen);
        int line, col;
        json_object_key_position(w, i, &line, &col);
        if (json_object_key_is_dup(w, i))
            continue;
        size_t s = cfg_path_key(v, m, klen);
        struct config_score_weight *sw = &c->score_weights[c->n_score_weights];
        if (strlen(m) != klen || !metric_ok(v, m, false)) {
            metric_err(v, line, col, m, false);
        } else if (node_num(v, json_object_value_at(w, i), 0, false, HUGE_VAL, &sw->weight) == 0) {
            sw->metric = cfg_dup(v, m);
            c->n_score_weights++;
        }
        cfg_path_pop(v, s);
    }
    cfg_path_pop(v, saved);
}

static void read_band(struct vctx *v, const json_node_t *e, struct config_score_band *b)
{
    static const char *const keys[] = {"from", "above", "coef", NULL};
    if (json_kind(e) != JSON_OBJECT) {
        ERR(v, e, "must be an object {\"from\" or \"above\", \"coef\"}");
        return;
    }
    cfg_check_keys(v, e, keys);
    const json_node_t *above = json_object_get(e, "above");
    if (!json_object_get(e, "from") == !above) {
        ERR(v, e, "must have exactly one of \"from\" and \"above\"");
    } else {
        b->above = above != NULL;
        cfg_read_num(v, e, above ? "above" : "from", true, 0, false, HUGE_VAL, &b->threshold);
    }
    cfg_read_num(v, e, "coef", true, 0, false, HUGE_VAL, &b->coef);
}

static void read_score(struct vctx *v, const json_node_t *root)
{
    static const char *const keys[] = {"period", "budget", "weights", "bands", NULL};
    config_t *c = v->cfg;
    size_t saved, s2;
    const json_node_t *sc = cfg_read_obj(v, root, "kpi_score", false, &saved);
    if (sc) {
        c->has_score = true;
        cfg_check_keys(v, sc, keys);
        cfg_read_period(v, sc, "period", &c->score_period);
        cfg_read_num(v, sc, "budget", true, 0, false, HUGE_VAL, &c->score_budget);
        read_weights(v, sc);
        const json_node_t *b = cfg_enter(v, sc, "bands", true, &s2);
        size_t n = json_array_len(b);
        if (b && (json_kind(b) != JSON_ARRAY || n == 0)) {
            ERR(v, b, "must be a non-empty array of bands {\"from\" or \"above\", \"coef\"}");
        } else if (n) {
            c->score_bands = calloc(n, sizeof *c->score_bands);
            c->n_score_bands = c->score_bands ? n : 0;
            v->oom |= !c->score_bands;
            for (size_t i = 0; i < c->n_score_bands; i++) {
                size_t s = cfg_path_index(v, i);
                read_band(v, json_array_at(b, i), &c->score_bands[i]);
                cfg_path_pop(v, s);
            }
        }
        cfg_path_pop(v, s2);
    }
    cfg_path_pop(v, saved);
}

/* ---- entry points --------------------------------------------------------------------- */

void cfg_read_goals(struct vctx *v, const json_node_t *root)
{
    read_targets(v, root);
    read_plans(v, root);
    read_score(v, root);
    cfg_read_alerts(v, root);
}

static void free_targets(struct config_target *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i].metric);
    free(t);
}

static void free_sets(struct config_target_set *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].name);
        free_targets(s[i].targets, s[i].n_targets);
    }
    free(s);
}

void cfg_goals_free(config_t *c)
{
    cfg_calendar_free(&c->calendar);
    free_targets(c->targets_default, c->n_targets_default);
    free_sets(c->targets_roles, c->n_targets_roles);
    free_sets(c->targets_teams, c->n_targets_teams);
    free_sets(c->targets_managers, c->n_targets_managers);
    for (size_t i = 0; i < c->n_plans; i++) {
        struct config_plan *p = &c->plans[i];
        free(p->metric);
        free(p->role);
        free(p->team);
        free(p->manager);
        for (size_t j = 0; j < p->n_chain; j++)
            free(p->chain[j].metric);
        free(p->chain);
    }
    free(c->plans);
    for (size_t i = 0; i < c->n_score_weights; i++)
        free(c->score_weights[i].metric);
    free(c->score_weights);
    free(c->score_bands);
    cfg_alerts_free(c);
}
