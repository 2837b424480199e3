#include "evaluate.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evaluate_impl.h"
#include "log.h"
#include "rconn.h"

/* ---- strings that live until the chunk's commands are sent ---------------------------- */

char *eval_printf(struct arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= ARENA_BLOCK) {
        a->oom = true;
        return NULL;
    }
    if (!a->head || a->head->used + (size_t)n + 1 > ARENA_BLOCK) {
        struct arena_block *b = malloc(sizeof *b);
        if (!b) {
            a->oom = true;
            return NULL;
        }
        b->next = a->head;
        b->used = 0;
        a->head = b;
    }
    char *s = a->head->data + a->head->used;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    a->head->used += (size_t)n + 1;
    return s;
}

void eval_arena_clear(struct arena *a)
{
    while (a->head) {
        struct arena_block *next = a->head->next;
        free(a->head);
        a->head = next;
    }
    a->oom = false;
}

/* ---- the commands of a chunk: an argv list per command, sent as one pipeline ---------- */

void eval_arg(struct cmdbuf *c, const char *s)
{
    if (!s) {
        c->oom = true;
        return;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        const char **p = realloc(c->argv, cap * sizeof *p);
        if (!p) {
            c->oom = true;
            return;
        }
        c->argv = p;
        c->cap = cap;
    }
    c->argv[c->n++] = s;
}

/* Sends the arguments collected since the last call as one command. */
int eval_send(redisContext *rc, struct cmdbuf *c)
{
    int argc = (int)(c->n - c->start);
    int rv = argc > 0 && !c->oom ? redisAppendCommandArgv(rc, argc, c->argv + c->start, NULL) : -1;
    c->n = c->start = 0;
    if (rv != REDIS_OK) {
        /* Replies are read by count: a command not sent must abort the whole pipeline. */
        c->oom = true;
        return -1;
    }
    c->sent++;
    return 0;
}

/* ---- per-manager view of a pass ---------------------------------------------------- */

evaluator_t *evaluate_new(void) { return calloc(1, sizeof(evaluator_t)); }

static void views_release(evaluator_t *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e->views[i].states);
        free(e->views[i].stored);
        free(e->views[i].last_ms);
        free(e->views[i].final_actual);
        if (e->views[i].digest)
            freeReplyObject(e->views[i].digest);
        memset(&e->views[i], 0, sizeof e->views[i]);
    }
}

void evaluate_free(evaluator_t *e)
{
    if (!e)
        return;
    if (e->redis)
        redisFree(e->redis);
    eval_arena_clear(&e->arena);
    free(e->cmd.argv);
    free(e->views);
    eval_observed_clear(e);
    free(e->pairs);
    free(e);
}

void evaluate_set_world(evaluator_t *e, const struct evaluate_world *world)
{
    e->w = *world;
    e->org_cal = targets_calendar(&world->cfg->calendar, world->org_zone);
    eval_observed_clear(e);
    free(e->pairs);
    e->pairs = NULL;
    const char *metric;
    e->has_work = world->cfg->n_rules > 0 || world->cfg->has_score;
    for (int k = 0; k < PERIOD_KINDS; k++)
        e->has_work |= targets_metrics(world->targets, (enum period_kind)k, &metric, 1) > 0;
    e->n_pairs = targets_observed_pairs(world->targets, NULL, 0);
    if (e->n_pairs && !(e->pairs = calloc(e->n_pairs, sizeof *e->pairs)))
        e->n_pairs = 0;
    if (e->n_pairs)
        targets_observed_pairs(world->targets, e->pairs, e->n_pairs);
}

/* Also the way out of a half-built pipeline: a new connection starts clean. */
void eval_disconnect(evaluator_t *e)
{
    if (e->redis)
        redisFree(e->redis);
    e->redis = NULL;
    e->cmd.n = e->cmd.start = 0;
    e->cmd.oom = false;
}

redisReply *eval_read(evaluator_t *e, char *err, size_t errlen)
{
    void *r = NULL;
    if (redisGetReply(e->redis, &r) != REDIS_OK || !r) {
        snprintf(err, errlen, "redis %s: %s", e->address, e->redis->errstr[0] ? e->redis->errstr : "no reply");
        eval_disconnect(e);
        return NULL;
    }
    e->readonly_seen |= rconn_is_readonly_error(r);
    return r;
}

int64_t eval_int(const redisReply *r)
{
    if (!r)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    return 0;
}
/* ---- who, where, and what is read ---------------------------------------------------- */

period_zone_t *eval_zone_of_team(const evaluator_t *e, const char *team,
                                   const struct config_team **t_out)
{
    const struct config_team *t = config_team_find(e->w.cfg, team);
    *t_out = t;
    return t ? e->w.team_zones[t - e->w.cfg->teams] : e->w.default_zone;
}

void eval_add_field(struct kind_view *k, const char *metric)
{
    for (size_t i = 0; i < k->n_fields; i++)
        if (strcmp(k->fields[i], metric) == 0)
            return;
    if (k->n_fields < FIELDS_MAX)
        k->fields[k->n_fields++] = metric;
}

int64_t eval_field(const struct kind_view *k, const char *metric)
{
    for (size_t i = 0; i < k->n_fields; i++)
        if (strcmp(k->fields[i], metric) == 0)
            return k->values[i];
    return 0;
}

int64_t eval_target_of(const struct kind_view *k, const char *metric, bool *found)
{
    for (size_t i = 0; i < k->n_targets; i++)
        if (strcmp(k->targets[i].metric, metric) == 0) {
            *found = true;
            return k->targets[i].target;
        }
    *found = false;
    return 0;
}

static void view_prepare(evaluator_t *e, struct mview *v, const char *id, int64_t now)
{
    const config_t *cfg = e->w.cfg;
    const struct config_manager *m = config_manager_find(cfg, id);
    const struct config_team *t;
    v->id = id;
    v->team = m ? m->team : CONFIG_UNASSIGNED_TEAM;
    period_zone_t *zone = eval_zone_of_team(e, v->team, &t);
    v->lead = t ? t->lead : NULL;
    v->cal = targets_calendar(config_calendar_of(cfg, v->team), zone);
    const period_set_t *ps = period_of(zone, now);
    for (int p = 0; p < PERIOD_KINDS; p++) {
        struct kind_view *k = &v->k[p];
        memcpy(k->id, ps->id[p], sizeof k->id);
        k->start_ms = ps->start_ms[p];
        k->end_ms = ps->end_ms[p];
    }
    for (int p = 0; p < PERIOD_KINDS; p++) {
        struct kind_view *k = &v->k[p];
        struct targets_period tp = {(enum period_kind)p, k->start_ms, k->end_ms};
        size_t n = targets_of_manager(e->w.targets, id, &tp, &v->cal, eval_observed_ratio, e, k->targets,
                                      FIELDS_MAX);
        k->n_targets = n < FIELDS_MAX ? n : FIELDS_MAX;
        for (size_t i = 0; i < k->n_targets; i++)
            eval_add_field(k, k->targets[i].metric);
    }
    for (size_t r = 0; r < cfg->n_rules; r++) {
        const struct config_rule *rule = &cfg->rules[r];
        eval_add_field(&v->k[rule->kind == RULE_THRESHOLD ? rule->period : PERIOD_DAY], rule->metric);
    }
    if (cfg->has_score)
        for (size_t i = 0; i < cfg->n_score_weights; i++)
            eval_add_field(&v->k[cfg->score_period], cfg->score_weights[i].metric);
    for (int p = 0; p < PERIOD_KINDS; p++)
        v->k[p].used = v->k[p].n_fields > 0;
}

int eval_key(evaluator_t *e, enum scope_kind kind, const char *scope, const char *period,
                   const char **out)
{
    char key[KEYS_MAX];
    if (keys_scope(key, sizeof key, e->w.cfg->redis_prefix, kind, scope, period) < 0)
        return -1;
    *out = eval_printf(&e->arena, "%s", key);
    return *out ? 0 : -1;
}
/* ---- one chunk of managers --------------------------------------------------------- */

static int views_reserve(evaluator_t *e, size_t n)
{
    if (n <= e->views_cap)
        return 0;
    struct mview *p = realloc(e->views, n * sizeof *p);
    if (!p)
        return -1;
    memset(p + e->views_cap, 0, (n - e->views_cap) * sizeof *p);
    e->views = p;
    e->views_cap = n;
    return 0;
}

static void read_states(const config_t *cfg, struct mview *v, const redisReply *r)
{
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *val = r->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING)
            continue;
        for (size_t k = 0; k < cfg->n_rules; k++) {
            if (strcmp(cfg->rules[k].name, f->str) != 0)
                continue;
            if (alert_state_decode(val->str, val->len, &v->states[k]) != 0) {
                log_warn("alert state of %s rule %s is unreadable (\"%.40s\"); starting it over",
                         v->id, f->str, val->str);
                memset(&v->states[k], 0, sizeof v->states[k]);
            }
        }
    }
    for (size_t k = 0; k < cfg->n_rules; k++)
        if (alert_state_encode(&v->states[k], v->stored[k], sizeof v->stored[k]) < 0)
            v->stored[k][0] = '\0';
}

static void read_last(const config_t *cfg, struct mview *v, const redisReply *r)
{
    for (size_t k = 0; k < cfg->n_rules; k++) {
        v->last_ms[k] = -1;
        if (cfg->rules[k].kind != RULE_INACTIVITY || !r || r->type != REDIS_REPLY_ARRAY)
            continue;
        for (size_t i = 0; i + 1 < r->elements; i += 2)
            if (r->element[i]->type == REDIS_REPLY_STRING &&
                strcmp(r->element[i]->str, cfg->rules[k].metric) == 0)
                v->last_ms[k] = eval_int(r->element[i + 1]);
    }
}

static bool closing(const config_t *cfg, const struct mview *v, size_t r)
{
    const struct config_rule *rule = &cfg->rules[r];
    return rule->kind == RULE_THRESHOLD && v->states[r].open &&
           strcmp(v->states[r].period, v->k[rule->period].id) != 0;
}

/* Reads everything the chunk's managers need, inside their WATCH. */
static int chunk_read(evaluator_t *e, struct mview *views, const char *(*keys)[4], size_t n,
                      char *err, size_t errlen)
{
    const config_t *cfg = e->w.cfg;
    struct cmdbuf *c = &e->cmd;
    bool inactivity = false;
    for (size_t r = 0; r < cfg->n_rules; r++)
        inactivity |= cfg->rules[r].kind == RULE_INACTIVITY;
    c->sent = 0;
    eval_arg(c, "WATCH");
    for (size_t i = 0; i < n; i++) {
        eval_arg(c, keys[i][0]);
        eval_arg(c, keys[i][1]);
    }
    eval_send(e->redis, c);
    for (size_t i = 0; i < n; i++) {
        struct mview *v = &views[i];
        for (int p = 0; p < PERIOD_KINDS; p++) {
            if (!v->k[p].used)
                continue;
            const char *key;
            if (eval_key(e, SCOPE_MANAGER, v->id, v->k[p].id, &key) != 0)
                goto oom;
            eval_arg(c, "HMGET");
            eval_arg(c, key);
            for (size_t f = 0; f < v->k[p].n_fields; f++)
                eval_arg(c, v->k[p].fields[f]);
            eval_send(e->redis, c);
        }
        eval_arg(c, "HGETALL");
        eval_arg(c, keys[i][0]);
        eval_send(e->redis, c);
        if (inactivity) {
            const char *key;
            if (eval_key(e, SCOPE_MANAGER, v->id, "last", &key) != 0)
                goto oom;
            const char *argv[] = {"ZRANGE", key, "0", "-1", "WITHSCORES"};
            for (size_t a = 0; a < 5; a++)
                eval_arg(c, argv[a]);
            eval_send(e->redis, c);
        }
        eval_arg(c, "LRANGE");
        eval_arg(c, keys[i][1]);
        eval_arg(c, "0");
        eval_arg(c, "-1");
        eval_send(e->redis, c);
    }
    if (c->oom)
        goto oom;
    redisReply *r = eval_read(e, err, errlen);
    if (!r)
        return -1;
    freeReplyObject(r);
    for (size_t i = 0; i < n; i++) {
        struct mview *v = &views[i];
        for (int p = 0; p < PERIOD_KINDS; p++) {
            if (!v->k[p].used)
                continue;
            if (!(r = eval_read(e, err, errlen)))
                return -1;
            for (size_t f = 0; f < v->k[p].n_fields; f++)
                v->k[p].values[f] = r->type == REDIS_REPLY_ARRAY && f < r->elements
                                        ? eval_int(r->element[f])
                                        : 0;
            freeReplyObject(r);
        }
        if (!(r = eval_read(e, err, errlen)))
            return -1;
        read_states(cfg, v, r);
        freeReplyObject(r);
        redisReply *last = NULL;
        if (inactivity && !(last = eval_read(e, err, errlen)))
            return -1;
        read_last(cfg, v, last);
        if (last)
            freeReplyObject(last);
        if (!(v->digest = eval_read(e, err, errlen)))
            return -1;
    }
    /* Alerts of periods that ended need those periods' final figures. */
    c->sent = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < cfg->n_rules; k++) {
            if (!closing(cfg, &views[i], k))
                continue;
            const char *key;
            if (eval_key(e, SCOPE_MANAGER, views[i].id, views[i].states[k].period, &key) != 0)
                goto oom;
            eval_arg(c, "HGET");
            eval_arg(c, key);
            eval_arg(c, cfg->rules[k].metric);
            eval_send(e->redis, c);
        }
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < cfg->n_rules; k++) {
            if (!closing(cfg, &views[i], k))
                continue;
            if (!(r = eval_read(e, err, errlen)))
                return -1;
            views[i].final_actual[k] = eval_int(r);
            freeReplyObject(r);
        }
    return c->oom ? -1 : 0;
oom:
    /* Commands may be half-queued: only a new connection is in a known state. */
    snprintf(err, errlen, "out of memory");
    c->n = c->start = 0;
    c->oom = false;
    eval_disconnect(e);
    return -1;
}

/* 1: committed, 0: another kpid changed a watched state (redo), -1: error. */
static int chunk_write(evaluator_t *e, struct mview *views, const char *(*keys)[4], size_t n,
                       int64_t now, struct chunk_totals *tot, char *err, size_t errlen)
{
    const config_t *cfg = e->w.cfg;
    struct cmdbuf *c = &e->cmd;
    c->sent = 0;
    eval_arg(c, "MULTI");
    eval_send(e->redis, c);
    char *feed = NULL;
    size_t feed_len = 0, feed_cap = 0;
    for (size_t i = 0; i < n; i++) {
        struct mview *v = &views[i];
        for (int p = 0; p < PERIOD_KINDS; p++) {
            const struct kind_view *k = &v->k[p];
            const char *key;
            if (!k->n_targets || eval_key(e, SCOPE_MANAGER, v->id, k->id, &key) != 0)
                continue;
            eval_queue_pacing(e, key, (enum period_kind)p, k->start_ms, k->end_ms, &v->cal, now,
                         k->targets, k->n_targets, k);
        }
        eval_queue_score(e, v);
        bool any = false;
        eval_queue_alerts(e, v, keys[i], now, tot, &any);
        size_t need = feed_len + strlen(v->id) + 64;
        if (any && need > feed_cap) {
            char *p = realloc(feed, need * 2);
            if (!p) {
                c->oom = true;
                continue;
            }
            feed = p;
            feed_cap = need * 2;
        }
        if (any)
            feed_len += (size_t)snprintf(feed + feed_len, feed_cap - feed_len, "%s\"%s\"",
                                         feed_len ? "," : "{\"managers\":[", v->id);
    }
    if (feed_len) {
        char updates[KEYS_MAX];
        keys_global(updates, sizeof updates, cfg->redis_prefix, "updates");
        eval_arg(c, "PUBLISH");
        eval_arg(c, eval_printf(&e->arena, "%s", updates));
        eval_arg(c, eval_printf(&e->arena, "%s],\"ts\":%" PRId64 "}", feed, now));
        eval_send(e->redis, c);
    }
    free(feed);
    eval_arg(c, "EXEC");
    eval_send(e->redis, c);
    if (c->oom || e->arena.oom) {
        snprintf(err, errlen, "out of memory");
        eval_disconnect(e);
        return -1;
    }
    size_t replies = c->sent;
    int rc = 1;
    for (size_t i = 0; i < replies; i++) {
        redisReply *r = eval_read(e, err, errlen);
        if (!r)
            return -1;
        if (i + 1 == replies) {
            if (r->type == REDIS_REPLY_NIL)
                rc = 0;
            else if (r->type != REDIS_REPLY_ARRAY) {
                snprintf(err, errlen, "redis %s: alert evaluation not written: %s", e->address,
                         r->type == REDIS_REPLY_ERROR ? r->str : "unexpected EXEC reply");
                rc = -1;
            }
        }
        freeReplyObject(r);
    }
    return rc;
}

static int run_chunk(evaluator_t *e, const char *const *ids, size_t n, int64_t now,
                     struct chunk_totals *tot, char *err, size_t errlen)
{
    const config_t *cfg = e->w.cfg;
    size_t nr = cfg->n_rules ? cfg->n_rules : 1;
    if (views_reserve(e, n) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *(*keys)[4] = calloc(n, sizeof *keys);
    if (!keys) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = -1;
    for (int attempt = 0; attempt < CONFLICT_RETRIES; attempt++) {
        views_release(e, n);
        eval_arena_clear(&e->arena);
        struct chunk_totals mine = {0};
        bool oom = false;
        char stream[KEYS_MAX];
        keys_global(stream, sizeof stream, cfg->redis_prefix, "alerts");
        const char *stream_key = eval_printf(&e->arena, "%s", stream);
        for (size_t i = 0; i < n && !oom; i++) {
            struct mview *v = &e->views[i];
            view_prepare(e, v, ids[i], now);
            v->states = calloc(nr, sizeof *v->states);
            v->stored = calloc(nr, sizeof *v->stored);
            v->last_ms = calloc(nr, sizeof *v->last_ms);
            v->final_actual = calloc(nr, sizeof *v->final_actual);
            oom = !v->states || !v->stored || !v->last_ms || !v->final_actual ||
                  eval_key(e, SCOPE_MANAGER, v->id, "alertstate", &keys[i][0]) != 0 ||
                  eval_key(e, SCOPE_MANAGER, v->id, "digest", &keys[i][1]) != 0 ||
                  eval_key(e, SCOPE_MANAGER, v->id, "alerts", &keys[i][2]) != 0;
            keys[i][3] = stream_key;
        }
        if (oom || !stream_key) {
            snprintf(err, errlen, "out of memory");
            break;
        }
        if (chunk_read(e, e->views, keys, n, err, errlen) != 0)
            break;
        rc = chunk_write(e, e->views, keys, n, now, &mine, err, errlen);
        if (rc == 1) {
            tot->alerts += mine.alerts;
            tot->queued += mine.queued;
            tot->resolved += mine.resolved;
            rc = 0;
            break;
        }
        if (rc < 0)
            break;
        log_debug("alert states of %zu managers changed under this pass (another kpid): redoing",
                  n);
        rc = -1;
        snprintf(err, errlen, "redis %s: alert states kept changing under %d attempts",
                 e->address, CONFLICT_RETRIES);
    }
    views_release(e, n);
    free(keys);
    return rc;
}
/* ---- the pass ------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted, without repeats. */
static size_t unique(const char **v, size_t n)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof *v, cmp_str);
    size_t o = 1;
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[i], v[o - 1]) != 0)
            v[o++] = v[i];
    return o;
}

static int connect_if_needed(evaluator_t *e, char *err, size_t errlen)
{
    if (e->redis && e->readonly_seen)
        eval_disconnect(e);
    e->readonly_seen = false;
    if (e->redis)
        return 0;
    struct rconn_target t;
    rconn_target_view(e->w.cfg, &t);
    e->redis = rconn_connect(&t, e->address, sizeof e->address, err, errlen);
    return e->redis ? 0 : -1;
}

static int simple_command(evaluator_t *e, redisReply **out, char *err, size_t errlen,
                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(e->redis, fmt, ap);
    va_end(ap);
    if (!r) {
        snprintf(err, errlen, "redis %s: %s", e->address, e->redis->errstr);
        eval_disconnect(e);
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "redis %s: %s", e->address, r->str);
        e->readonly_seen |= rconn_is_readonly_error(r);
        freeReplyObject(r);
        return -1;
    }
    if (out)
        *out = r;
    else
        freeReplyObject(r);
    return 0;
}

int evaluate_pass(evaluator_t *e, const char *const *managers, size_t n, int64_t wall_ms,
                  struct evaluate_result *res, char *err, size_t errlen)
{
    const config_t *cfg = e->w.cfg;
    memset(res, 0, sizeof *res);
    res->now_ms = -1;
    if (!e->has_work) /* no targets, score or rules: nothing to evaluate, no round trip */
        return 0;
    if (connect_if_needed(e, err, errlen) != 0)
        return -1;
    char meta[KEYS_MAX], set[KEYS_MAX];
    keys_global(meta, sizeof meta, cfg->redis_prefix, "meta");
    keys_global(set, sizeof set, cfg->redis_prefix, "managers");
    int64_t now = wall_ms;
    redisReply *r = NULL;
    if (cfg->alerts_event_clock) {
        if (simple_command(e, &r, err, errlen, "HGET %s last_event_ts", meta) != 0)
            return -1;
        bool none = r->type != REDIS_REPLY_STRING;
        now = eval_int(r);
        freeReplyObject(r);
        r = NULL;
        if (none)
            return 0;
    }
    res->now_ms = now;
    const char **ids = NULL;
    size_t n_ids = 0;
    if (managers) {
        ids = malloc((n ? n : 1) * sizeof *ids);
        if (ids)
            memcpy(ids, managers, n * sizeof *ids);
        n_ids = n;
    } else {
        if (simple_command(e, &r, err, errlen, "SMEMBERS %s", set) != 0)
            return -1;
        size_t seen = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
        ids = malloc((seen + cfg->n_managers + 1) * sizeof *ids);
        for (size_t i = 0; ids && i < seen; i++)
            if (r->element[i]->type == REDIS_REPLY_STRING)
                ids[n_ids++] = r->element[i]->str;
        for (size_t i = 0; ids && i < cfg->n_managers; i++)
            ids[n_ids++] = cfg->managers[i].id;
    }
    if (!ids) {
        if (r)
            freeReplyObject(r);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    n_ids = unique(ids, n_ids);
    struct chunk_totals tot = {0};
    int rc = managers ? 0 : eval_observed_refresh(e, ids, n_ids, now, err, errlen);
    for (size_t at = 0; at < n_ids && rc == 0; at += CHUNK_MANAGERS)
        rc = run_chunk(e, ids + at, n_ids - at < CHUNK_MANAGERS ? n_ids - at : CHUNK_MANAGERS,
                       now, &tot, err, errlen);
    /* The teams of these managers (every configured team in a full pass), and the org. */
    const char **teams = rc == 0 ? malloc((n_ids + cfg->n_teams + 1) * sizeof *teams) : NULL;
    if (teams) {
        size_t n_teams = 0;
        for (size_t i = 0; managers && i < n_ids; i++) {
            const struct config_manager *m = config_manager_find(cfg, ids[i]);
            if (m && config_team_find(cfg, m->team))
                teams[n_teams++] = m->team;
        }
        for (size_t i = 0; !managers && i < cfg->n_teams; i++)
            teams[n_teams++] = cfg->teams[i].name;
        n_teams = unique(teams, n_teams);
        rc = eval_scopes(e, teams, n_teams, now, err, errlen);
        free(teams);
    } else if (rc == 0) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    if (rc == 0 && !managers)
        rc = simple_command(e, NULL, err, errlen, "HSET %s eval_ts %lld", meta, (long long)now);
    free(ids);
    if (r)
        freeReplyObject(r);
    eval_arena_clear(&e->arena);
    res->managers = n_ids;
    res->alerts = tot.alerts;
    res->queued = tot.queued;
    res->resolved = tot.resolved;
    return rc;
}

