#include "targets.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* One configured target of a level, its metric as an index into targets.metrics. */
struct level_entry {
    size_t metric;
    enum period_kind kind;
    int64_t value;
    size_t seq; /* position in the config: of two equal (metric, kind), the later wins */
};

/* The default targets, or one role's, team's or manager's. */
struct level {
    const char *name;
    struct level_entry *e; /* sorted by (metric, kind), unique */
    size_t n;
};

/* Plan `plan` derives metric ids[step]: step 0 is the plan's metric, step s its chain[s-1]. */
struct derivation {
    size_t plan, step;
};

struct plan_info {
    int64_t *value;  /* n_chain + 1 plan-period targets, -1 absent; valid below n_static */
    size_t n_static; /* steps before the first observed one: the same for every manager */
};

struct targets {
    const config_t *cfg;
    const char **metrics; /* every metric named anywhere, sorted, unique; borrowed */
    size_t n_metrics;
    struct level deflt;
    struct level *roles, *teams, *managers; /* sorted by name */
    size_t n_roles, n_teams, n_managers;
    struct plan_info *plans;                /* cfg->n_plans */
    size_t *deriv_start;                    /* n_metrics + 1: metric m's derivations */
    struct derivation *deriv;               /* by metric, then configuration order */
    const char **by_kind[PERIOD_KINDS];     /* targets_metrics */
    size_t n_by_kind[PERIOD_KINDS];
    const char *(*pairs)[2];
    size_t n_pairs;
};

/* calloc that treats 0 elements as success with NULL, and notes a failure in *oom. */
static void *alloc_array(size_t n, size_t size, bool *oom)
{
    if (n == 0)
        return NULL;
    void *p = calloc(n, size);
    if (!p)
        *oom = true;
    return p;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static size_t metric_id(const targets_t *t, const char *name)
{
    const char **hit = bsearch(&name, t->metrics, t->n_metrics, sizeof *t->metrics, cmp_str);
    return (size_t)(hit - t->metrics); /* every metric was collected first */
}

/* ---- building -------------------------------------------------------------------------- */

static void collect_level(const struct config_target *v, size_t n, const char **out, size_t *k)
{
    for (size_t i = 0; i < n; i++)
        out[(*k)++] = v[i].metric;
}

static size_t count_metric_names(const config_t *c)
{
    size_t n = c->n_targets_default;
    for (size_t i = 0; i < c->n_targets_roles; i++)
        n += c->targets_roles[i].n_targets;
    for (size_t i = 0; i < c->n_targets_teams; i++)
        n += c->targets_teams[i].n_targets;
    for (size_t i = 0; i < c->n_targets_managers; i++)
        n += c->targets_managers[i].n_targets;
    for (size_t i = 0; i < c->n_plans; i++)
        n += 1 + c->plans[i].n_chain;
    return n;
}

static int build_metrics(targets_t *t, bool *oom)
{
    const config_t *c = t->cfg;
    size_t k = 0, total = count_metric_names(c);
    t->metrics = alloc_array(total, sizeof *t->metrics, oom);
    if (*oom)
        return -1;
    collect_level(c->targets_default, c->n_targets_default, t->metrics, &k);
    for (size_t i = 0; i < c->n_targets_roles; i++)
        collect_level(c->targets_roles[i].targets, c->targets_roles[i].n_targets, t->metrics, &k);
    for (size_t i = 0; i < c->n_targets_teams; i++)
        collect_level(c->targets_teams[i].targets, c->targets_teams[i].n_targets, t->metrics, &k);
    for (size_t i = 0; i < c->n_targets_managers; i++)
        collect_level(c->targets_managers[i].targets, c->targets_managers[i].n_targets,
                      t->metrics, &k);
    for (size_t i = 0; i < c->n_plans; i++) {
        t->metrics[k++] = c->plans[i].metric;
        for (size_t s = 0; s < c->plans[i].n_chain; s++)
            t->metrics[k++] = c->plans[i].chain[s].metric;
    }
    if (total)
        qsort(t->metrics, total, sizeof *t->metrics, cmp_str);
    for (size_t i = 0; i < total; i++)
        if (t->n_metrics == 0 || strcmp(t->metrics[t->n_metrics - 1], t->metrics[i]) != 0)
            t->metrics[t->n_metrics++] = t->metrics[i];
    return 0;
}

static int cmp_entry(const void *a, const void *b)
{
    const struct level_entry *x = a, *y = b;
    if (x->metric != y->metric)
        return x->metric < y->metric ? -1 : 1;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int build_level(const targets_t *t, const char *name, const struct config_target *v,
                       size_t n, struct level *out, bool *oom)
{
    out->name = name;
    out->e = alloc_array(n, sizeof *out->e, oom);
    if (*oom)
        return -1;
    for (size_t i = 0; i < n; i++)
        out->e[i] = (struct level_entry){metric_id(t, v[i].metric), v[i].period, v[i].value, i};
    if (n)
        qsort(out->e, n, sizeof *out->e, cmp_entry);
    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        struct level_entry *last = out->n ? &out->e[out->n - 1] : NULL;
        if (last && last->metric == out->e[i].metric && last->kind == out->e[i].kind)
            *last = out->e[i]; /* sorted by seq within equals: the later one stays */
        else
            out->e[out->n++] = out->e[i];
    }
    return 0;
}

static int cmp_level_name(const void *a, const void *b)
{
    return strcmp(((const struct level *)a)->name, ((const struct level *)b)->name);
}

static int build_sets(const targets_t *t, const struct config_target_set *sets, size_t n,
                      struct level **out, size_t *n_out, bool *oom)
{
    *out = alloc_array(n, sizeof **out, oom);
    if (*oom)
        return -1;
    *n_out = n;
    for (size_t i = 0; i < n; i++)
        if (build_level(t, sets[i].name, sets[i].targets, sets[i].n_targets, &(*out)[i], oom))
            return -1;
    if (n)
        qsort(*out, n, sizeof **out, cmp_level_name);
    return 0;
}

/* The chain up to the first observed step, which is the same for every manager. */
static int build_plan(const struct config_plan *plan, struct plan_info *info, bool *oom)
{
    info->value = alloc_array(plan->n_chain + 1, sizeof *info->value, oom);
    if (*oom)
        return -1;
    info->value[0] = pacing_plan_step(plan->target, 1, false);
    info->n_static = 1;
    for (size_t s = 1; s <= plan->n_chain; s++) {
        const struct config_plan_step *step = &plan->chain[s - 1];
        if (step->observed)
            break;
        double prev = s == 1 ? plan->target : (double)info->value[s - 1];
        int64_t v = pacing_plan_step(prev, step->factor, step->by_per);
        info->value[s] = info->value[s - 1] < 0 ? -1 : v;
        info->n_static = s + 1;
    }
    return 0;
}

static int build_derivations(targets_t *t, bool *oom)
{
    const config_t *c = t->cfg;
    size_t total = 0;
    t->deriv_start = alloc_array(t->n_metrics + 1, sizeof *t->deriv_start, oom);
    for (size_t i = 0; i < c->n_plans; i++)
        total += 1 + c->plans[i].n_chain;
    t->deriv = alloc_array(total, sizeof *t->deriv, oom);
    if (*oom)
        return -1;
    /* counting sort by metric, stable, so configuration order holds within a metric */
    for (size_t i = 0; i < c->n_plans; i++)
        for (size_t s = 0; s <= c->plans[i].n_chain; s++) {
            const char *m = s ? c->plans[i].chain[s - 1].metric : c->plans[i].metric;
            t->deriv_start[metric_id(t, m) + 1]++;
        }
    for (size_t m = 0; m < t->n_metrics; m++)
        t->deriv_start[m + 1] += t->deriv_start[m];
    size_t *fill = alloc_array(t->n_metrics, sizeof *fill, oom);
    if (*oom)
        return -1;
    for (size_t i = 0; i < c->n_plans; i++)
        for (size_t s = 0; s <= c->plans[i].n_chain; s++) {
            const char *m = s ? c->plans[i].chain[s - 1].metric : c->plans[i].metric;
            size_t id = metric_id(t, m);
            t->deriv[t->deriv_start[id] + fill[id]++] = (struct derivation){i, s};
        }
    free(fill);
    return 0;
}

static void mark_level(const struct level *l, bool *has)
{
    for (size_t i = 0; i < l->n; i++)
        has[l->e[i].metric * PERIOD_KINDS + l->e[i].kind] = true;
}

static int build_by_kind(targets_t *t, bool *oom)
{
    bool *has = alloc_array(t->n_metrics * PERIOD_KINDS, sizeof *has, oom);
    for (int k = 0; k < PERIOD_KINDS; k++)
        t->by_kind[k] = alloc_array(t->n_metrics, sizeof **t->by_kind, oom);
    if (*oom) {
        free(has);
        return -1;
    }
    mark_level(&t->deflt, has);
    for (size_t i = 0; i < t->n_roles; i++)
        mark_level(&t->roles[i], has);
    for (size_t i = 0; i < t->n_teams; i++)
        mark_level(&t->teams[i], has);
    for (size_t i = 0; i < t->n_managers; i++)
        mark_level(&t->managers[i], has);
    for (size_t m = 0; m < t->n_metrics; m++) {
        bool derived = t->deriv_start[m + 1] > t->deriv_start[m]; /* plans derive every kind */
        for (int k = 0; k < PERIOD_KINDS; k++)
            if (derived || has[m * PERIOD_KINDS + (size_t)k])
                t->by_kind[k][t->n_by_kind[k]++] = t->metrics[m];
    }
    free(has);
    return 0;
}

static int build_pairs(targets_t *t, bool *oom)
{
    const config_t *c = t->cfg;
    size_t total = 0;
    for (size_t i = 0; i < c->n_plans; i++)
        total += c->plans[i].n_chain;
    t->pairs = alloc_array(total, sizeof *t->pairs, oom);
    if (*oom)
        return -1;
    for (size_t i = 0; i < c->n_plans; i++)
        for (size_t s = 0; s < c->plans[i].n_chain; s++) {
            if (!c->plans[i].chain[s].observed)
                continue;
            const char *prev = s ? c->plans[i].chain[s - 1].metric : c->plans[i].metric;
            const char *metric = c->plans[i].chain[s].metric;
            bool seen = false;
            for (size_t j = 0; j < t->n_pairs && !seen; j++)
                seen = !strcmp(t->pairs[j][0], prev) && !strcmp(t->pairs[j][1], metric);
            if (!seen) {
                t->pairs[t->n_pairs][0] = prev;
                t->pairs[t->n_pairs++][1] = metric;
            }
        }
    return 0;
}

targets_t *targets_new(const config_t *cfg, char *err, size_t errlen)
{
    bool oom = false;
    targets_t *t = calloc(1, sizeof *t);
    if (!t) {
        log_errbuf(err, errlen, "targets: out of memory");
        return NULL;
    }
    t->cfg = cfg;
    int rc = build_metrics(t, &oom);
    if (!rc)
        rc = build_level(t, "", cfg->targets_default, cfg->n_targets_default, &t->deflt, &oom);
    if (!rc)
        rc = build_sets(t, cfg->targets_roles, cfg->n_targets_roles, &t->roles, &t->n_roles, &oom);
    if (!rc)
        rc = build_sets(t, cfg->targets_teams, cfg->n_targets_teams, &t->teams, &t->n_teams, &oom);
    if (!rc)
        rc = build_sets(t, cfg->targets_managers, cfg->n_targets_managers, &t->managers,
                        &t->n_managers, &oom);
    if (!rc)
        t->plans = alloc_array(cfg->n_plans, sizeof *t->plans, &oom);
    for (size_t i = 0; !rc && !oom && i < cfg->n_plans; i++)
        rc = build_plan(&cfg->plans[i], &t->plans[i], &oom);
    if (!rc && !oom)
        rc = build_derivations(t, &oom);
    if (!rc && !oom)
        rc = build_by_kind(t, &oom);
    if (!rc && !oom)
        rc = build_pairs(t, &oom);
    if (rc || oom) {
        targets_free(t);
        log_errbuf(err, errlen, "targets: out of memory");
        return NULL;
    }
    return t;
}

static void free_sets(struct level *sets, size_t n)
{
    for (size_t i = 0; sets && i < n; i++)
        free(sets[i].e);
    free(sets);
}

void targets_free(targets_t *t)
{
    if (!t)
        return;
    free(t->metrics);
    free(t->deflt.e);
    free_sets(t->roles, t->n_roles);
    free_sets(t->teams, t->n_teams);
    free_sets(t->managers, t->n_managers);
    for (size_t i = 0; t->plans && i < t->cfg->n_plans; i++)
        free(t->plans[i].value);
    free(t->plans);
    free(t->deriv_start);
    free(t->deriv);
    for (int k = 0; k < PERIOD_KINDS; k++)
        free(t->by_kind[k]);
    free(t->pairs);
    free(t);
}

/* ---- lookups --------------------------------------------------------------------------- */

static const struct level *find_set(const struct level *sets, size_t n, const char *name)
{
    struct level key = {.name = name};
    return n ? bsearch(&key, sets, n, sizeof *sets, cmp_level_name) : NULL;
}

static const struct level_entry *level_find(const struct level *l, size_t metric,
                                            enum period_kind kind)
{
    if (!l || !l->n)
        return NULL;
    struct level_entry key = {.metric = metric, .kind = kind};
    size_t lo = 0, hi = l->n;
    while (lo < hi) { /* entries are unique per (metric, kind): seq plays no part */
        size_t mid = lo + (hi - lo) / 2;
        const struct level_entry *e = &l->e[mid];
        if (e->metric < key.metric || (e->metric == key.metric && e->kind < key.kind))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < l->n && l->e[lo].metric == metric && l->e[lo].kind == kind ? &l->e[lo] : NULL;
}

/* Who a manager is, for levels and plan selectors. */
struct who {
    const char *id, *role, *team;
    const struct level *levels[4]; /* manager, team, role, default: the first hit wins */
};

static bool plan_applies(const struct config_plan *plan, const struct who *w)
{
    return (!plan->role || !strcmp(plan->role, w->role)) &&
           (!plan->team || !strcmp(plan->team, w->team)) &&
           (!plan->manager || !strcmp(plan->manager, w->id));
}

/* Working-day weights of the plan periods of one kind overlapping the period instance:
 * the partial ones at either end as they are, the ones wholly inside folded into one
 * (count, 1) entry, since each of those with any working day weighs exactly 1. */
struct share {
    bool ready;
    size_t n;
    int part[3], whole[3];
};

static void share_compute(struct share *sh, const pacing_calendar_t *cal, enum period_kind kind,
                          const struct targets_period *p)
{
    int full = 0;
    sh->ready = true;
    sh->n = 0;
    for (int64_t at = p->start_ms; at < p->end_ms;) {
        const period_set_t *ps = period_of(cal->zone, at);
        int64_t ps_start = ps->start_ms[kind], ps_end = ps->end_ms[kind];
        if (ps_end <= at) /* clamped out of years 1..9999 */
            break;
        int whole = pacing_work_days(cal, ps_start, ps_end);
        if (ps_start >= p->start_ms && ps_end <= p->end_ms) {
            full += whole > 0;
        } else if (sh->n < 2) {
            int64_t lo = ps_start > p->start_ms ? ps_start : p->start_ms;
            int64_t hi = ps_end < p->end_ms ? ps_end : p->end_ms;
            sh->part[sh->n] = pacing_work_days(cal, lo, hi);
            sh->whole[sh->n++] = whole;
        }
        at = ps_end;
    }
    if (full) {
        sh->part[sh->n] = full;
        sh->whole[sh->n++] = 1;
    }
}

/* The plan-period target of a plan's step for one manager, or -1 when absent. */
static int64_t plan_value(const targets_t *t, size_t pi, size_t step, const struct who *w,
                          targets_observed_fn obs, void *obs_ctx)
{
    const struct config_plan *plan = &t->cfg->plans[pi];
    const struct plan_info *info = &t->plans[pi];
    if (step < info->n_static)
        return info->value[step];
    int64_t v = info->value[info->n_static - 1];
    for (size_t s = info->n_static; s <= step && v >= 0; s++) {
        const struct config_plan_step *cs = &plan->chain[s - 1];
        const char *prev_metric = s == 1 ? plan->metric : plan->chain[s - 2].metric;
        double prev = s == 1 ? plan->target : (double)v;
        double factor = cs->factor;
        if (cs->observed) {
            factor = obs ? obs(obs_ctx, w->id, prev_metric, cs->metric) : 0;
            if (!(factor > 0))
                return -1;
        }
        v = pacing_plan_step(prev, factor, cs->by_per || cs->observed);
    }
    return v;
}

/* The derived target of metric m for the period, or -1 when no applying plan gives one. */
static int64_t derived_value(const targets_t *t, size_t m, const struct targets_period *p,
                             const pacing_calendar_t *cal, const struct who *w,
                             targets_observed_fn obs, void *obs_ctx, struct share *shares)
{
    const struct derivation *pick = NULL;
    for (size_t i = t->deriv_start[m]; i < t->deriv_start[m + 1]; i++) {
        const struct config_plan *plan = &t->cfg->plans[t->deriv[i].plan];
        if (!plan_applies(plan, w))
            continue;
        if (!pick)
            pick = &t->deriv[i];
        if (plan->period == p->kind) {
            pick = &t->deriv[i];
            break;
        }
    }
    if (!pick)
        return -1;
    const struct config_plan *plan = &t->cfg->plans[pick->plan];
    if (plan->period != p->kind && (!cal || !cal->zone))
        return -1;
    int64_t v = plan_value(t, pick->plan, pick->step, w, obs, obs_ctx);
    if (v < 0 || plan->period == p->kind)
        return v;
    struct share *sh = &shares[plan->period];
    if (!sh->ready)
        share_compute(sh, cal, plan->period, p);
    return pacing_prorate((double)v, sh->part, sh->whole, sh->n);
}

size_t targets_of_manager(const targets_t *t, const char *manager, const struct targets_period *p,
                          const pacing_calendar_t *cal, targets_observed_fn obs, void *obs_ctx,
                          struct targets_entry *out, size_t cap)
{
    const struct config_manager *cm = config_manager_find(t->cfg, manager);
    struct who w = {manager, cm ? cm->role : CONFIG_DEFAULT_ROLE,
                    cm ? cm->team : CONFIG_UNASSIGNED_TEAM, {NULL, NULL, NULL, &t->deflt}};
    w.levels[0] = find_set(t->managers, t->n_managers, manager);
    w.levels[1] = find_set(t->teams, t->n_teams, w.team);
    w.levels[2] = find_set(t->roles, t->n_roles, w.role);
    struct share shares[PERIOD_KINDS] = {{0}};
    size_t n = 0;
    for (size_t m = 0; m < t->n_metrics; m++) { /* metric ids run in name order */
        const struct level_entry *e = NULL;
        for (int l = 0; l < 4 && !e; l++)
            e = level_find(w.levels[l], m, p->kind);
        int64_t v = e ? e->value : derived_value(t, m, p, cal, &w, obs, obs_ctx, shares);
        if (v < 0)
            continue;
        if (n < cap)
            out[n] = (struct targets_entry){t->metrics[m], v, e == NULL};
        n++;
    }
    return n;
}

size_t targets_metrics(const targets_t *t, enum period_kind kind, const char **out, size_t cap)
{
    if ((int)kind < 0 || kind >= PERIOD_KINDS)
        return 0;
    size_t n = t->n_by_kind[kind];
    for (size_t i = 0; i < n && i < cap; i++)
        out[i] = t->by_kind[kind][i];
    return n;
}

size_t targets_observed_pairs(const targets_t *t, const char *(*out)[2], size_t cap)
{
    for (size_t i = 0; i < t->n_pairs && i < cap; i++) {
        out[i][0] = t->pairs[i][0];
        out[i][1] = t->pairs[i][1];
    }
    return t->n_pairs;
}

pacing_calendar_t targets_calendar(const struct config_calendar *c, period_zone_t *zone)
{
    pacing_calendar_t cal = {zone, c->work_days, c->start_min, c->end_min, c->holidays,
                             c->n_holidays};
    return cal;
}
