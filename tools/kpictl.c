/* kpictl: read kpid's KPIs from Redis, for people and scripts.
 *
 *   kpictl -c FILE board [--period d|w|m|q] [--watch SECONDS]
 *   kpictl -c FILE meta
 *
 * Periods are resolved in each manager's team zone, exactly as kpid files them, using
 * the same period and key code. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "keys.h"
#include "period.h"

struct row {
    char manager[72];
    const char *team;
    long long v[8];
};

static const char *const board_fields[] = {"calls",         "calls_connected", "call_seconds",
                                           "emails",        "meetings_held",   "touches",
                                           "internal_filtered", "meetings_first"};
enum { F_CALLS, F_CONNECTED, F_SECONDS, F_EMAILS, F_HELD, F_TOUCHES, F_INTERNAL, F_FIRST, F_N };

static int cmp_touches(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    if (x->v[F_TOUCHES] != y->v[F_TOUCHES])
        return x->v[F_TOUCHES] < y->v[F_TOUCHES] ? 1 : -1;
    return strcmp(x->manager, y->manager);
}

static void usage(void)
{
    fprintf(stderr, "usage: kpictl -c FILE board [--period d|w|m|q] [--watch SECONDS]\n"
                    "       kpictl -c FILE meta\n");
}

static redisContext *connect_redis(const config_t *cfg)
{
    struct timeval tv = {cfg->redis_timeout_ms / 1000, (cfg->redis_timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(cfg->redis_host, cfg->redis_port, tv);
    if (!c || c->err) {
        fprintf(stderr, "kpictl: redis %s:%d: %s\n", cfg->redis_host, cfg->redis_port,
                c ? c->errstr : "cannot allocate");
        if (c)
            redisFree(c);
        return NULL;
    }
    redisReply *r = NULL;
    if (cfg->redis_password)
        r = cfg->redis_user ? redisCommand(c, "AUTH %s %s", cfg->redis_user, cfg->redis_password)
                            : redisCommand(c, "AUTH %s", cfg->redis_password);
    if (r)
        freeReplyObject(r);
    if (cfg->redis_db && (r = redisCommand(c, "SELECT %d", cfg->redis_db)))
        freeReplyObject(r);
    return c;
}

static long long hget_ll(redisContext *c, const char *key, const char *field)
{
    redisReply *r = redisCommand(c, "HGET %s %s", key, field);
    long long v = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    if (r)
        freeReplyObject(r);
    return v;
}

static int print_meta(redisContext *c, const config_t *cfg)
{
    char key[KEYS_MAX];
    keys_global(key, sizeof key, cfg->redis_prefix, "meta");
    redisReply *r = redisCommand(c, "HGETALL %s", key);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "kpictl: redis: %s\n", r && r->str ? r->str : c->errstr);
        if (r)
            freeReplyObject(r);
        return 1;
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        printf("%-18s %s\n", r->element[i]->str, r->element[i + 1]->str);
    freeReplyObject(r);
    return 0;
}

static int print_board(redisContext *c, const config_t *cfg, enum period_kind kind)
{
    char key[KEYS_MAX], err[256];
    keys_global(key, sizeof key, cfg->redis_prefix, "managers");
    redisReply *members = redisCommand(c, "SMEMBERS %s", key);
    if (!members || members->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "kpictl: redis %s:%d: %s\n", cfg->redis_host, cfg->redis_port,
                members && members->str ? members->str : c->errstr);
        if (members)
            freeReplyObject(members);
        return 1;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    size_t n = members->elements;
    struct row *rows = calloc(n ? n : 1, sizeof *rows);
    period_zone_t *fallback = period_zone_open(cfg->time_zone, err, sizeof err);
    if (!rows || !fallback) {
        fprintf(stderr, "kpictl: %s\n", rows ? err : "out of memory");
        free(rows);
        freeReplyObject(members);
        period_zone_free(fallback);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        struct row *row = &rows[i];
        snprintf(row->manager, sizeof row->manager, "%s", members->element[i]->str);
        const struct config_manager *m = config_manager_find(cfg, row->manager);
        row->team = m ? m->team : CONFIG_UNASSIGNED_TEAM;
        const struct config_team *t = config_team_find(cfg, row->team);
        period_zone_t *zone = t && t->time_zone ? period_zone_open(t->time_zone, err, sizeof err)
                                                : NULL;
        const period_set_t *p = period_of(zone ? zone : fallback, now_ms);
        keys_scope(key, sizeof key, cfg->redis_prefix, SCOPE_MANAGER, row->manager, p->id[kind]);
        for (int f = 0; f < F_N; f++)
            row->v[f] = hget_ll(c, key, board_fields[f]);
        period_zone_free(zone);
    }
    qsort(rows, n, sizeof *rows, cmp_touches);
    const period_set_t *org = period_of(fallback, now_ms);
    printf("%-16s %-14s %6s %6s %7s %6s %6s %7s %8s %8s\n", "manager", "team", "calls",
           "conn", "talk_m", "emails", "meet", "first", "touches", "internal");
    for (size_t i = 0; i < n; i++)
        printf("%-16s %-14s %6lld %6lld %7lld %6lld %6lld %7lld %8lld %8lld\n", rows[i].manager,
               rows[i].team, rows[i].v[F_CALLS], rows[i].v[F_CONNECTED],
               rows[i].v[F_SECONDS] / 60, rows[i].v[F_EMAILS], rows[i].v[F_HELD],
               rows[i].v[F_FIRST], rows[i].v[F_TOUCHES], rows[i].v[F_INTERNAL]);
    keys_scope(key, sizeof key, cfg->redis_prefix, SCOPE_ORG, "", org->id[kind]);
    printf("%-31s %6lld %6lld %7lld %6lld %6lld %7lld %8lld %8lld\n", org->id[kind],
           hget_ll(c, key, "calls"), hget_ll(c, key, "calls_connected"),
           hget_ll(c, key, "call_seconds") / 60, hget_ll(c, key, "emails"),
           hget_ll(c, key, "meetings_held"), hget_ll(c, key, "meetings_first"),
           hget_ll(c, key, "touches"), hget_ll(c, key, "internal_filtered"));
    keys_global(key, sizeof key, cfg->redis_prefix, "meta");
    printf("\nevents applied %lld, invalid %lld (dead-lettered), duplicate %lld, internal %lld\n",
           hget_ll(c, key, "events_applied"), hget_ll(c, key, "events_invalid"),
           hget_ll(c, key, "events_duplicate"), hget_ll(c, key, "events_internal"));
    free(rows);
    freeReplyObject(members);
    period_zone_free(fallback);
    return 0;
}

int main(int argc, char **argv)
{
    const char *config_path = NULL, *command = NULL;
    enum period_kind kind = PERIOD_DAY;
    int watch = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-c") && i + 1 < argc) {
            config_path = argv[++i];
        } else if (!strcmp(argv[i], "--period") && i + 1 < argc) {
            const char *p = argv[++i];
            kind = *p == 'w' ? PERIOD_WEEK : *p == 'm' ? PERIOD_MONTH
                 : *p == 'q' ? PERIOD_QUARTER : PERIOD_DAY;
        } else if (!strcmp(argv[i], "--watch") && i + 1 < argc) {
            watch = atoi(argv[++i]);
        } else if (!command && argv[i][0] != '-') {
            command = argv[i];
        } else {
            usage();
            return 2;
        }
    }
    if (!config_path || !command) {
        usage();
        return 2;
    }
    static char err[16384];
    config_t *cfg = NULL;
    if (config_load_file(config_path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s\nkpictl: %s: configuration rejected\n", err, config_path);
        return 2;
    }
    redisContext *c = connect_redis(cfg);
    if (!c) {
        config_free(cfg);
        return 1;
    }
    int rc;
    if (!strcmp(command, "meta")) {
        rc = print_meta(c, cfg);
    } else if (!strcmp(command, "board")) {
        do {
            if (watch)
                printf("\033[H\033[2J");
            rc = print_board(c, cfg, kind);
            fflush(stdout);
            if (watch)
                sleep((unsigned)watch);
        } while (watch && rc == 0);
    } else {
        usage();
        rc = 2;
    }
    redisFree(c);
    config_free(cfg);
    return rc;
}
