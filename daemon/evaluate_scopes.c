#include "evaluate.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evaluate_impl.h"
#include "log.h"

/* ---- teams and the organisation: target fields only -------------------------------- */

struct scope_view {
    enum scope_kind kind;
    const char *name;          /* team name, "" for the organisation */
    pacing_calendar_t cal;
    struct kind_view k[PERIOD_KINDS];
};

static void sum_into(struct kind_view *k, const struct targets_entry *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < k->n_targets && strcmp(k->targets[j].metric, t[i].metric) != 0)
            j++;
        if (j == k->n_targets) {
            if (k->n_targets == FIELDS_MAX)
                continue;
            k->targets[k->n_targets++] = (struct targets_entry){t[i].metric, 0, t[i].derived};
            eval_add_field(k, t[i].metric);
        }
        k->targets[j].target += t[i].target;
    }
}

/* A team's (or with team NULL the organisation's) targets: the sums over its configured
 * managers, each for the scope's own periods. */
static void scope_prepare(evaluator_t *e, struct scope_view *s, const char *team, int64_t now)
{
    const config_t *cfg = e->w.cfg;
    memset(s, 0, sizeof *s);
    period_zone_t *zone = e->w.org_zone;
    s->kind = team ? SCOPE_TEAM : SCOPE_ORG;
    s->name = team ? team : "";
    s->cal = e->org_cal;
    if (team) {
        const struct config_team *t;
        zone = eval_zone_of_team(e, team, &t);
        s->cal = targets_calendar(config_calendar_of(cfg, team), zone);
    }
    const period_set_t *ps = period_of(zone, now);
    for (int p = 0; p < PERIOD_KINDS; p++) {
        memcpy(s->k[p].id, ps->id[p], sizeof s->k[p].id);
        s->k[p].start_ms = ps->start_ms[p];
        s->k[p].end_ms = ps->end_ms[p];
    }
    struct targets_entry t[FIELDS_MAX];
    for (size_t m = 0; m < cfg->n_managers; m++) {
        if (team && strcmp(cfg->managers[m].team, team) != 0)
            continue;
        for (int p = 0; p < PERIOD_KINDS; p++) {
            struct targets_period tp = {(enum period_kind)p, s->k[p].start_ms, s->k[p].end_ms};
            size_t n = targets_of_manager(e->w.targets, cfg->managers[m].id, &tp, &s->cal,
                                          eval_observed_ratio, e, t, FIELDS_MAX);
            sum_into(&s->k[p], t, n < FIELDS_MAX ? n : FIELDS_MAX);
        }
    }
}

int eval_scopes(evaluator_t *e, const char *const *teams, size_t n_teams, int64_t now,
                      char *err, size_t errlen)
{
    struct scope_view *views = calloc(n_teams + 1, sizeof *views);
    if (!views) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    eval_arena_clear(&e->arena);
    struct cmdbuf *c = &e->cmd;
    for (size_t i = 0; i <= n_teams; i++)
        scope_prepare(e, &views[i], i < n_teams ? teams[i] : NULL, now);
    c->sent = 0;
    for (size_t i = 0; i <= n_teams; i++)
        for (int p = 0; p < PERIOD_KINDS; p++) {
            const char *key;
            if (!views[i].k[p].n_targets ||
                eval_key(e, views[i].kind, views[i].name, views[i].k[p].id, &key) != 0)
                continue;
            eval_arg(c, "HMGET");
            eval_arg(c, key);
            for (size_t f = 0; f < views[i].k[p].n_fields; f++)
                eval_arg(c, views[i].k[p].fields[f]);
            eval_send(e->redis, c);
        }
    int rc = 0;
    if (c->oom || e->arena.oom) {
        snprintf(err, errlen, "out of memory");
        eval_disconnect(e);
        rc = -1;
    }
    for (size_t i = 0; i <= n_teams && rc == 0; i++)
        for (int p = 0; p < PERIOD_KINDS && rc == 0; p++) {
            struct kind_view *k = &views[i].k[p];
            const char *key;
            if (!k->n_targets ||
                eval_key(e, views[i].kind, views[i].name, k->id, &key) != 0)
                continue;
            redisReply *r = eval_read(e, err, errlen);
            if (!r) {
                rc = -1;
                break;
            }
            for (size_t f = 0; f < k->n_fields; f++)
                k->values[f] = r->type == REDIS_REPLY_ARRAY && f < r->elements
                                   ? eval_int(r->element[f])
                                   : 0;
            freeReplyObject(r);
        }
    if (rc == 0) {
        c->sent = 0;
        for (size_t i = 0; i <= n_teams; i++)
            for (int p = 0; p < PERIOD_KINDS; p++) {
                const struct kind_view *k = &views[i].k[p];
                const char *key;
                if (!k->n_targets || eval_key(e, views[i].kind, views[i].name, k->id, &key) != 0)
                    continue;
                eval_queue_pacing(e, key, (enum period_kind)p, k->start_ms, k->end_ms, &views[i].cal,
                             now, k->targets, k->n_targets, k);
            }
        size_t replies = c->sent;
        if (c->oom || e->arena.oom) {
            /* Some commands were not queued: the replies cannot be matched any more. */
            snprintf(err, errlen, "out of memory");
            eval_disconnect(e);
            rc = -1;
        }
        for (size_t i = 0; i < replies && rc == 0; i++) {
            redisReply *r = eval_read(e, err, errlen);
            if (!r)
                rc = -1;
            else
                freeReplyObject(r);
        }
    }
    free(views);
    return rc;
}
void eval_observed_clear(evaluator_t *e)
{
    for (size_t i = 0; i < e->n_observed; i++) {
        free(e->observed[i].scope);
        free(e->observed[i].ratio);
    }
    free(e->observed);
    e->observed = NULL;
    e->n_observed = 0;
    e->observed_at_ms = 0;
}

static int cmp_observed(const void *a, const void *b)
{
    return strcmp(((const struct observed *)a)->scope, ((const struct observed *)b)->scope);
}

static double observed_of(const evaluator_t *e, const char *scope, size_t pair)
{
    struct observed key = {.scope = (char *)scope};
    const struct observed *o = e->n_observed ? bsearch(&key, e->observed, e->n_observed,
                                                       sizeof key, cmp_observed)
                                             : NULL;
    return o ? o->ratio[pair] : 0;
}

/* targets_observed_fn: the manager's own ratio, else the team's, else the organisation's. */
double eval_observed_ratio(void *ctx, const char *manager, const char *prev, const char *metric)
{
    const evaluator_t *e = ctx;
    size_t pair = 0;
    while (pair < e->n_pairs && (strcmp(e->pairs[pair][0], prev) || strcmp(e->pairs[pair][1], metric)))
        pair++;
    if (pair == e->n_pairs)
        return 0;
    char scope[256];
    snprintf(scope, sizeof scope, "m:%s", manager);
    double r = observed_of(e, scope, pair);
    if (r > 0)
        return r;
    const struct config_manager *m = config_manager_find(e->w.cfg, manager);
    snprintf(scope, sizeof scope, "t:%s", m ? m->team : CONFIG_UNASSIGNED_TEAM);
    if ((r = observed_of(e, scope, pair)) > 0)
        return r;
    return observed_of(e, "o:", pair);
}

/* ---- observed ratios ---------------------------------------------------------------- */

#define OBSERVED_DAYS 90
#define OBSERVED_MIN_UNITS 10 /* of the step's metric in 90 days, or the scope falls back */
#define OBSERVED_REFRESH_MS 3600000

/* Sums a scope's pair metrics over the 90 whole days before today and keeps the ratios. */
static int observed_scope(evaluator_t *e, enum scope_kind kind, const char *name,
                          period_zone_t *zone, int64_t now, struct observed *out, char *err,
                          size_t errlen)
{
    enum period_kind pk;
    int y, m, d;
    if (period_id_first_day(period_of(zone, now)->id[PERIOD_DAY], &pk, &y, &m, &d) != 0)
        return -1;
    int64_t today = period_days_from_civil(y, m, d);
    struct cmdbuf *c = &e->cmd;
    c->sent = 0;
    for (int back = 1; back <= OBSERVED_DAYS; back++) {
        char day[16], key[KEYS_MAX];
        period_civil_from_days(today - back, &y, &m, &d);
        snprintf(day, sizeof day, "d:%04d-%02d-%02d", y, m, d);
        if (keys_scope(key, sizeof key, e->w.cfg->redis_prefix, kind, name, day) < 0)
            return -1;
        eval_arg(c, "HMGET");
        eval_arg(c, eval_printf(&e->arena, "%s", key));
        for (size_t p = 0; p < e->n_pairs; p++) {
            eval_arg(c, e->pairs[p][0]);
            eval_arg(c, e->pairs[p][1]);
        }
        eval_send(e->redis, c);
    }
    if (c->oom || e->arena.oom) {
        snprintf(err, errlen, "out of memory");
        eval_disconnect(e);
        return -1;
    }
    /* sums[2p] of pair p's previous metric, sums[2p + 1] of its own */
    double *sums = calloc(2 * e->n_pairs, sizeof *sums);
    int rc = sums ? 0 : -1;
    if (!sums)
        snprintf(err, errlen, "out of memory");
    for (int back = 1; back <= OBSERVED_DAYS; back++) {
        redisReply *r = eval_read(e, err, errlen);
        if (!r) {
            free(sums);
            return -1;
        }
        for (size_t f = 0; sums && r->type == REDIS_REPLY_ARRAY && f < r->elements &&
                           f < 2 * e->n_pairs;
             f++)
            sums[f] += (double)eval_int(r->element[f]);
        freeReplyObject(r);
    }
    for (size_t p = 0; sums && p < e->n_pairs; p++)
        out->ratio[p] = sums[2 * p + 1] >= OBSERVED_MIN_UNITS && sums[2 * p] > 0
                            ? sums[2 * p] / sums[2 * p + 1]
                            : 0;
    free(sums);
    return rc;
}

int eval_observed_refresh(evaluator_t *e, const char *const *ids, size_t n_ids, int64_t now,
                            char *err, size_t errlen)
{
    const config_t *cfg = e->w.cfg;
    if (!e->n_pairs || (e->observed_at_ms && now - e->observed_at_ms < OBSERVED_REFRESH_MS &&
                        now >= e->observed_at_ms))
        return 0;
    eval_observed_clear(e);
    size_t cap = n_ids + cfg->n_teams + 2;
    e->observed = calloc(cap, sizeof *e->observed);
    if (!e->observed) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < cap && rc == 0; i++) {
        enum scope_kind kind;
        const char *name;
        period_zone_t *zone;
        const struct config_team *t;
        if (i < n_ids) {
            const struct config_manager *m = config_manager_find(cfg, ids[i]);
            kind = SCOPE_MANAGER, name = ids[i];
            zone = eval_zone_of_team(e, m ? m->team : CONFIG_UNASSIGNED_TEAM, &t);
        } else if (i < n_ids + cfg->n_teams) {
            kind = SCOPE_TEAM, name = cfg->teams[i - n_ids].name;
            zone = eval_zone_of_team(e, name, &t);
        } else if (i == n_ids + cfg->n_teams) {
            kind = SCOPE_TEAM, name = CONFIG_UNASSIGNED_TEAM, zone = e->w.default_zone;
        } else {
            kind = SCOPE_ORG, name = "", zone = e->w.org_zone;
        }
        struct observed *o = &e->observed[e->n_observed];
        char scope[256];
        snprintf(scope, sizeof scope, "%s:%s",
                 kind == SCOPE_MANAGER ? "m" : kind == SCOPE_TEAM ? "t" : "o", name);
        o->scope = strdup(scope);
        o->ratio = calloc(e->n_pairs, sizeof *o->ratio);
        if (!o->scope || !o->ratio) {
            free(o->scope);
            free(o->ratio);
            snprintf(err, errlen, "out of memory");
            rc = -1;
            break;
        }
        e->n_observed++;
        rc = observed_scope(e, kind, name, zone, now, o, err, errlen);
        eval_arena_clear(&e->arena);
    }
    if (rc != 0) {
        eval_observed_clear(e);
        return -1;
    }
    qsort(e->observed, e->n_observed, sizeof *e->observed, cmp_observed);
    e->observed_at_ms = now;
    return 0;
}
