/* kpictl watch: follows <prefix>:updates and prints one line per message (one per kpid
 * flush that applied events, or alert evaluation that sent alerts): the managers it names
 * with their current figures. A Redis restart costs the updates published meanwhile, not
 * the watch: it reconnects and subscribes again every second until Redis is back.
 *
 * Two connections: a subscribed one can only (un)subscribe, so the figures are read on a
 * second one, pipelined (kpid's "now", then every named manager's keys). The subscribed
 * socket is polled rather than read blocking, so SIGINT and SIGTERM end the watch within
 * half a second however quiet the channel is. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kpictl_impl.h"
#include "rconn.h"

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static const char *const watch_fields[] = {"touches",   "calls",     "emails",
                                           "meetings_held", "deals_won", "revenue_won_cents"};
enum { WF_N = sizeof watch_fields / sizeof watch_fields[0] };
enum { W_COUNTERS, W_KPI, W_ALERTS, W_N };

struct watch {
    const struct ctl *x;
    redisContext *sub, *data;
    char channel[KEYS_MAX];
};

static void watch_close(struct watch *w)
{
    if (w->sub)
        redisFree(w->sub);
    if (w->data)
        redisFree(w->data);
    w->sub = w->data = NULL;
}

/* Both connections, subscribed; 0, or -1 with the reason in err. */
static int watch_open(struct watch *w, char *err, size_t errlen)
{
    const config_t *cfg = w->x->cfg;
    w->sub = ctl_connect(cfg, w->x->config_path, err, errlen);
    w->data = w->sub ? ctl_connect(cfg, w->x->config_path, err, errlen) : NULL;
    if (!w->data) {
        watch_close(w);
        return -1;
    }
    redisReply *r = redisCommand(w->sub, "SUBSCRIBE %s", w->channel);
    int ok = r && r->type == REDIS_REPLY_ARRAY;
    char addr[400];
    rconn_address(cfg, addr, sizeof addr);
    if (!ok)
        snprintf(err, errlen, "redis %s: SUBSCRIBE %s: %s", addr, w->channel,
                 r && r->str ? r->str : w->sub->errstr);
    if (r)
        freeReplyObject(r);
    if (!ok)
        watch_close(w);
    return ok ? 0 : -1;
}

/* Sleeps up to ms, less when a signal arrives. */
static void nap(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void line_text(const struct ctl *x, int64_t ts, const char **ids, const char **periods,
                      size_t n, redisReply **rep)
{
    char when[32];
    fmt_utc(when, sizeof when, ts);
    printf("%s", when);
    for (size_t i = 0; i < n; i++) {
        redisReply **r = rep + W_N * i;
        const char *state = figures_worst_state(r[W_KPI]);
        printf("%s %s %s", i ? ";" : "", ids[i], periods[i]);
        for (size_t f = 0; f < WF_N; f++)
            printf(" %s=%lld", watch_fields[f],
                   reply_is_array(r[W_COUNTERS]) && f < r[W_COUNTERS]->elements
                       ? reply_ll(r[W_COUNTERS]->element[f])
                       : 0);
        printf(" alerts=%lld state=%s", reply_ll(r[W_ALERTS]), state ? state : "-");
    }
    if (n == 0)
        printf(" (no managers named: re-read everything, e.g. after kpid --rebuild)");
    (void)x;
    putchar('\n');
    fflush(stdout);
}

static void line_json(const struct ctl *x, int64_t ts, const char **ids, const char **periods,
                      size_t n, redisReply **rep)
{
    struct jw w = {0};
    jw_begin(&w, NULL, '{');
    jw_int(&w, "ts", ts);
    jw_begin(&w, "managers", '[');
    for (size_t i = 0; i < n; i++) {
        redisReply **r = rep + W_N * i;
        jw_begin(&w, NULL, '{');
        jw_str(&w, "manager", ids[i]);
        jw_str(&w, "team", manager_team(x->cfg, ids[i]));
        jw_str(&w, "period", periods[i]);
        for (size_t f = 0; f < WF_N; f++)
            jw_int(&w, watch_fields[f],
                   reply_is_array(r[W_COUNTERS]) && f < r[W_COUNTERS]->elements
                       ? reply_ll(r[W_COUNTERS]->element[f])
                       : 0);
        jw_int(&w, "alerts_firing", reply_ll(r[W_ALERTS]));
        jw_str(&w, "state", figures_worst_state(r[W_KPI]));
        jw_end(&w, '}');
    }
    jw_end(&w, ']');
    jw_end(&w, '}');
    jw_done(&w);
}

/* Reads and prints the figures of the managers a message names. 0; -1 when the data
 * connection failed (the caller reconnects); 1 for a message that is not an update. */
static int watch_update(struct watch *w, const char *payload)
{
    const struct ctl *x = w->x;
    const config_t *cfg = x->cfg;
    char err[128];
    json_node_t *doc = json_parse(payload, strlen(payload), false, err, sizeof err);
    const json_node_t *list = json_object_get(doc, "managers");
    if (!doc || json_kind(list) != JSON_ARRAY) {
        fprintf(stderr, "kpictl: %s: ignored a message that is not an update: %.80s\n",
                w->channel, payload);
        json_free(doc);
        return 1;
    }
    int64_t ts = 0, now_ms = 0;
    if (json_number_int64(json_object_get(doc, "ts"), &ts) != 0)
        ts = wall_now_ms();
    size_t n = json_array_len(list);
    const char **ids = calloc(n + 1, sizeof *ids), **periods = calloc(n + 1, sizeof *periods);
    redisReply **rep = calloc(W_N * n + 1, sizeof *rep);
    struct periods_now pn = {0};
    int rc = -1;
    if (!ids || !periods || !rep) {
        fprintf(stderr, "kpictl: out of memory\n");
        rc = 1;
    } else if (read_now(w->data, cfg, NULL, &now_ms) == 0) {
        rc = periods_now_init(&pn, cfg, now_ms) == 0 ? 0 : 1;
    } else {
        rc = w->data->err ? -1 : 1;
    }
    size_t k = 0;
    struct pipe p = {w->data, 0, 0};
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *m = json_string(json_array_at(list, i), NULL);
        if (!m || !m[0])
            continue;
        ids[k] = m;
        periods[k] = period_pick(x->o, periods_now_team(&pn, cfg, manager_team(cfg, m)),
                                 PERIOD_DAY);
        char key[KEYS_MAX], kpi[KEYS_MAX + 4], alerts[KEYS_MAX];
        keys_scope(key, sizeof key, cfg->redis_prefix, SCOPE_MANAGER, m, periods[k]);
        snprintf(kpi, sizeof kpi, "%s:kpi", key);
        keys_scope(alerts, sizeof alerts, cfg->redis_prefix, SCOPE_MANAGER, m, "alerts");
        const char *argv[2 + WF_N] = {"HMGET", key};
        for (size_t f = 0; f < WF_N; f++)
            argv[2 + f] = watch_fields[f];
        pipe_cmd(&p, 2 + WF_N, argv);
        pipe_hgetall(&p, kpi);
        const char *hlen[] = {"HLEN", alerts};
        pipe_cmd(&p, 2, hlen);
        k++;
    }
    /* An error reply (a key of another type) skips the message; a dead socket reconnects. */
    if (rc == 0 && pipe_read(&p, rep) != 0)
        rc = w->data->err ? -1 : 1;
    if (rc == 0) {
        if (x->o->json)
            line_json(x, ts, ids, periods, k, rep);
        else
            line_text(x, ts, ids, periods, k, rep);
        replies_free(rep, W_N * k);
    }
    periods_now_free(&pn);
    free(rep);
    free(periods);
    free(ids);
    json_free(doc);
    return rc;
}

/* One reply of the subscribed connection: a message, or the (re)subscription's answer. */
static int watch_reply(struct watch *w, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || !reply_str(r->element[0]) ||
        strcmp(r->element[0]->str, "message") || !reply_str(r->element[2]))
        return 0;
    return watch_update(w, r->element[2]->str) < 0 ? -1 : 0;
}

/* Waits for the next reply of the subscribed connection: 1 and *out, 0 on timeout or a
 * signal, -1 when the connection is gone. */
static int watch_next(struct watch *w, redisReply **out)
{
    void *reply = NULL;
    if (redisGetReplyFromReader(w->sub, &reply) != REDIS_OK)
        return -1;
    if (reply) {
        *out = reply;
        return 1;
    }
    struct pollfd pfd = {.fd = w->sub->fd, .events = POLLIN};
    int n = poll(&pfd, 1, 500);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    if (n == 0)
        return 0;
    return redisBufferRead(w->sub) == REDIS_OK ? 0 : -1;
}

int view_watch(const struct ctl *x)
{
    const config_t *cfg = x->cfg;
    struct watch w = {.x = x};
    char err[1200], addr[400];
    rconn_address(cfg, addr, sizeof addr);
    keys_global(w.channel, sizeof w.channel, cfg->redis_prefix, "updates");
    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (watch_open(&w, err, sizeof err) != 0) {
        fprintf(stderr, "kpictl: %s\n", err);
        return 1;
    }
    fprintf(stderr, "kpictl: watching %s on redis %s (Ctrl-C stops)\n", w.channel, addr);
    while (!stop_requested) {
        redisReply *r = NULL;
        int got = watch_next(&w, &r);
        if (got > 0) {
            got = watch_reply(&w, r);
            freeReplyObject(r);
        }
        if (got >= 0)
            continue;
        fprintf(stderr, "kpictl: redis %s: connection lost (%s); reconnecting every second,"
                " updates published meanwhile are not shown\n", addr,
                w.sub && w.sub->err ? w.sub->errstr
                : w.data && w.data->err ? w.data->errstr : "no reply");
        watch_close(&w);
        while (!stop_requested) {
            nap(1000);
            if (!stop_requested && watch_open(&w, err, sizeof err) == 0) {
                fprintf(stderr, "kpictl: redis %s: back; re-subscribed to %s\n", addr,
                        w.channel);
                break;
            }
        }
    }
    watch_close(&w);
    return 0;
}
