/* kpictl: the Redis connection, pipelined reads and kpid's "now". */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kpictl_impl.h"
#include "rconn.h"

redisContext *ctl_connect(const config_t *cfg, const char *config_path, char *err, size_t errlen)
{
    /* Timeouts, AUTH, SELECT and the Sentinel lookup exactly as kpid does them. */
    redisContext *c = rconn_open(cfg, err, errlen);
    if (c)
        return c;
    size_t n = strlen(err);
    if (strstr(err, ": AUTH: ") || strstr(err, ": SELECT: "))
        snprintf(err + n, errlen - n, "; check redis.user, redis.password and redis.db in %s",
                 config_path);
    else
        snprintf(err + n, errlen - n, "; is kpid's redis running?");
    return NULL;
}

void pipe_cmd(struct pipe *p, int argc, const char **argv)
{
    if (redisAppendCommandArgv(p->c, argc, argv, NULL) == REDIS_OK)
        p->n++;
    else
        p->failed = 1;
}

void pipe_hget(struct pipe *p, const char *key, const char *field)
{
    const char *argv[] = {"HGET", key, field};
    pipe_cmd(p, 3, argv);
}

void pipe_hgetall(struct pipe *p, const char *key)
{
    const char *argv[] = {"HGETALL", key};
    pipe_cmd(p, 2, argv);
}

void replies_free(redisReply **r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (r[i])
            freeReplyObject(r[i]);
        r[i] = NULL;
    }
}

int pipe_read(struct pipe *p, redisReply **out)
{
    int rc = p->failed ? -1 : 0;
    if (p->failed)
        fprintf(stderr, "kpictl: redis: %s\n", p->c->err ? p->c->errstr : "out of memory");
    for (size_t i = 0; i < p->n; i++) {
        void *r = NULL;
        if (redisGetReply(p->c, &r) != REDIS_OK) {
            fprintf(stderr, "kpictl: redis: %s\n", p->c->errstr);
            replies_free(out, i);
            return -1;
        }
        out[i] = r;
        if (out[i]->type == REDIS_REPLY_ERROR && rc == 0) {
            fprintf(stderr, "kpictl: redis: %s\n", out[i]->str);
            rc = -1;
        }
    }
    if (rc)
        replies_free(out, p->n);
    return rc;
}

const char *reply_str(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING ? r->str : NULL;
}

long long reply_ll(const redisReply *r)
{
    const char *s = reply_str(r);
    return s ? strtoll(s, NULL, 10) : r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
}

int reply_is_array(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ARRAY;
}

const char *hash_str(const redisReply *all, const char *field)
{
    for (size_t i = 0; reply_is_array(all) && i + 1 < all->elements; i += 2)
        if (all->element[i]->type == REDIS_REPLY_STRING && !strcmp(all->element[i]->str, field))
            return reply_str(all->element[i + 1]);
    return NULL;
}

long long hash_ll(const redisReply *all, const char *field)
{
    const char *s = hash_str(all, field);
    return s ? strtoll(s, NULL, 10) : 0;
}

int reply_want_array(const redisReply *r, const char *what)
{
    if (reply_is_array(r))
        return 0;
    fprintf(stderr, "kpictl: redis: %s did not return an array\n", what);
    return -1;
}

/* ---- where "now" falls ---- */

static int period_now_in(const char *zone_name, int64_t now_ms, period_set_t *out, char *err,
                         size_t errlen)
{
    period_zone_t *z = period_zone_open(zone_name, err, errlen);
    if (!z)
        return -1;
    *out = *period_of(z, now_ms);
    period_zone_free(z);
    return 0;
}

void periods_now_free(struct periods_now *pn)
{
    free(pn->team);
    pn->team = NULL;
}

int periods_now_init(struct periods_now *pn, const config_t *cfg, int64_t now_ms)
{
    char err[256];
    pn->team = calloc(cfg->n_teams ? cfg->n_teams : 1, sizeof *pn->team);
    if (!pn->team) {
        fprintf(stderr, "kpictl: out of memory\n");
        return -1;
    }
    /* A zone that does not open here would put every figure under the wrong day: fail
     * rather than fall back to another zone. */
    int rc = period_now_in(cfg->time_zone, now_ms, &pn->org, err, sizeof err);
    for (size_t i = 0; rc == 0 && i < cfg->n_teams; i++) {
        const char *zone = cfg->teams[i].time_zone ? cfg->teams[i].time_zone : cfg->time_zone;
        rc = period_now_in(zone, now_ms, &pn->team[i], err, sizeof err);
    }
    if (rc) {
        fprintf(stderr, "kpictl: %s\n", err);
        periods_now_free(pn);
    }
    return rc;
}

/* Teams not configured (unassigned) and teams without a zone use the global zone. */
const period_set_t *periods_now_team(const struct periods_now *pn, const config_t *cfg,
                                     const char *team)
{
    const struct config_team *t = config_team_find(cfg, team);
    return t ? &pn->team[t - cfg->teams] : &pn->org;
}

const char *team_zone(const config_t *cfg, const char *team)
{
    const struct config_team *t = config_team_find(cfg, team);
    return t && t->time_zone ? t->time_zone : cfg->time_zone;
}

const char *manager_team(const config_t *cfg, const char *manager)
{
    const struct config_manager *m = config_manager_find(cfg, manager);
    return m ? m->team : CONFIG_UNASSIGNED_TEAM;
}

const char *manager_role(const config_t *cfg, const char *manager)
{
    const struct config_manager *m = config_manager_find(cfg, manager);
    return m ? m->role : CONFIG_DEFAULT_ROLE;
}

const char *period_pick(const struct opts *o, const period_set_t *ps, enum period_kind dflt)
{
    if (o->period_id)
        return o->period_id;
    return ps->id[o->kind < 0 ? dflt : (enum period_kind)o->kind];
}

int64_t wall_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Before kpid applied any event the event clock falls back to the wall clock. */
int read_now(redisContext *c, const config_t *cfg, redisReply **members, int64_t *now_ms)
{
    char meta[KEYS_MAX], set[KEYS_MAX];
    keys_global(meta, sizeof meta, cfg->redis_prefix, "meta");
    keys_global(set, sizeof set, cfg->redis_prefix, "managers");
    struct pipe p = {c, 0, 0};
    if (members) {
        const char *smembers_argv[] = {"SMEMBERS", set};
        pipe_cmd(&p, 2, smembers_argv);
    }
    if (cfg->alerts_event_clock)
        pipe_hget(&p, meta, "last_event_ts");
    redisReply *rep[2] = {NULL, NULL};
    *now_ms = wall_now_ms();
    if (p.n && pipe_read(&p, rep) != 0)
        return -1;
    if (members && reply_want_array(rep[0], "SMEMBERS") != 0) {
        replies_free(rep, p.n);
        return -1;
    }
    const char *ts = cfg->alerts_event_clock ? reply_str(rep[members ? 1 : 0]) : NULL;
    if (ts)
        *now_ms = strtoll(ts, NULL, 10);
    if (members)
        *members = rep[0];
    if (cfg->alerts_event_clock)
        freeReplyObject(rep[members ? 1 : 0]);
    return 0;
}
