/* kpictl: read kpid's KPIs from Redis, for people and scripts.
 *
 *   kpictl -c FILE board  [--period d|w|m|q] [--watch SECONDS]
 *   kpictl -c FILE funnel [--scope org|team:<t>|mgr:<m>] [--period d|w|m|q] [--watch SECONDS]
 *   kpictl -c FILE top    [--metric touches|meetings_held|deals_won|revenue_won_cents]
 *                         [--period d|w|m|q] [-n N] [--watch SECONDS]
 *   kpictl -c FILE alerts [-n N] [--watch SECONDS]
 *   kpictl -c FILE meta
 *
 * Periods are the current ones in the zone kpid files each key in (a manager's and a
 * team's: the team's zone; the organisation's and the leaderboards': the global zone),
 * resolved with the same period and key code as kpid. "Now" is kpid's: the wall clock, or
 * with "alerts": {"clock": "event"} the latest event time kpid applied (kpi:meta
 * last_event_ts), so a replayed history shows the day it has reached, like kpid's pacing.
 * Each screen is read with pipelined commands (at most two round trips), so --watch stays
 * cheap with many managers.
 *
 * alerts shows the last N entries of the <prefix>:alerts stream, newest last, and how many
 * alerts fire now (the managers' <prefix>:mgr:{<m>}:alerts hashes). Times are the UTC
 * times of the alert objects: alerts of teams in several zones share one clock that way. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "json.h"
#include "keys.h"
#include "period.h"

/* ---- options ---- */

struct opts {
    const char *config_path, *command;
    int kind;            /* enum period_kind, or -1: the command's default */
    int watch;           /* seconds between refreshes, 0: once */
    const char *scope;   /* funnel */
    const char *metric;  /* top */
    long top_n;          /* top, alerts; 0: not given */
};

static const char *const lb_metrics[] = {"touches", "meetings_held", "deals_won",
                                         "revenue_won_cents"};

static void usage(void)
{
    fprintf(stderr,
            "usage: kpictl -c FILE board  [--period d|w|m|q] [--watch SECONDS]\n"
            "       kpictl -c FILE funnel [--scope org|team:<t>|mgr:<m>] [--period d|w|m|q]"
            " [--watch SECONDS]\n"
            "       kpictl -c FILE top    [--metric touches|meetings_held|deals_won|"
            "revenue_won_cents]\n"
            "                             [--period d|w|m|q] [-n N] [--watch SECONDS]\n"
            "       kpictl -c FILE alerts [-n N] [--watch SECONDS]\n"
            "       kpictl -c FILE meta\n");
}

static int period_parse(const char *s)
{
    static const char ids[] = "dwmq";
    const char *p = s[0] && !s[1] ? strchr(ids, s[0]) : NULL;
    return p ? (int)(p - ids) : -1;
}

static int metric_known(const char *m)
{
    for (size_t i = 0; i < sizeof lb_metrics / sizeof lb_metrics[0]; i++)
        if (!strcmp(m, lb_metrics[i]))
            return 1;
    return 0;
}

static int opt_bad(const char *opt, const char *want, const char *got)
{
    fprintf(stderr, "kpictl: %s: %s, not %s\n", opt, want, got);
    return -1;
}

/* 0, or -1 after printing why the command line is wrong. */
static int opts_parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.kind = -1};
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "-c") && v) {
            o->config_path = argv[++i];
        } else if (!strcmp(a, "--period") && v) {
            if ((o->kind = period_parse(argv[++i])) < 0)
                return opt_bad(a, "d, w, m or q", v);
        } else if (!strcmp(a, "--watch") && v) {
            o->watch = atoi(argv[++i]);
        } else if (!strcmp(a, "--scope") && v) {
            o->scope = argv[++i];
        } else if (!strcmp(a, "--metric") && v) {
            if (!metric_known(o->metric = argv[++i]))
                return opt_bad(a, "touches, meetings_held, deals_won or revenue_won_cents", v);
        } else if (!strcmp(a, "-n") && v) {
            o->top_n = strtol(argv[++i], &end, 10);
            if (*end || o->top_n < 1 || o->top_n > 100000)
                return opt_bad(a, "a count from 1 to 100000", v);
        } else if (!o->command && a[0] != '-') {
            o->command = a;
        } else {
            break;
        }
    }
    const char *cmd = o->command ? o->command : "";
    /* An option another command takes is a mistake, not something to ignore. */
    if (i == argc && o->config_path && o->command && (!o->scope || !strcmp(cmd, "funnel")) &&
        (!o->metric || !strcmp(cmd, "top")) &&
        (!o->top_n || !strcmp(cmd, "top") || !strcmp(cmd, "alerts")) &&
        (o->kind < 0 || strcmp(cmd, "alerts")))
        return 0;
    usage();
    return -1;
}

/* ---- redis ---- */

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
    /* The connect timeout alone would let a stalled server hang --watch forever. */
    redisSetTimeout(c, tv);
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

/* Commands appended to one connection, their replies read together afterwards. */
struct pipe {
    redisContext *c;
    size_t n;     /* commands appended */
    int failed;   /* an append failed: the screen is not shown */
};

static void pipe_cmd(struct pipe *p, int argc, const char **argv)
{
    if (redisAppendCommandArgv(p->c, argc, argv, NULL) == REDIS_OK)
        p->n++;
    else
        p->failed = 1;
}

static void pipe_hget(struct pipe *p, const char *key, const char *field)
{
    const char *argv[] = {"HGET", key, field};
    pipe_cmd(p, 3, argv);
}

static void pipe_hgetall(struct pipe *p, const char *key)
{
    const char *argv[] = {"HGETALL", key};
    pipe_cmd(p, 2, argv);
}

static void replies_free(redisReply **r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (r[i])
            freeReplyObject(r[i]);
        r[i] = NULL;
    }
}

/* Reads the p->n replies into out (p->n slots). Every reply is read even after an error
 * reply, so the connection stays in step for the next --watch round; then all or nothing:
 * 0 with every reply, or -1 with none (the error printed). */
static int pipe_read(struct pipe *p, redisReply **out)
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

/* A bulk string reply's text; NULL for nil and anything else. */
static const char *reply_str(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING ? r->str : NULL;
}

/* A counter: absent fields are 0 (kpid need not write zeros). */
static long long reply_ll(const redisReply *r)
{
    const char *s = reply_str(r);
    return s ? strtoll(s, NULL, 10) : r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
}

/* A field of an HGETALL reply, NULL when absent. */
static const char *hash_str(const redisReply *all, const char *field)
{
    for (size_t i = 0; all && all->type == REDIS_REPLY_ARRAY && i + 1 < all->elements; i += 2)
        if (all->element[i]->type == REDIS_REPLY_STRING && !strcmp(all->element[i]->str, field))
            return reply_str(all->element[i + 1]);
    return NULL;
}

static long long hash_ll(const redisReply *all, const char *field)
{
    const char *s = hash_str(all, field);
    return s ? strtoll(s, NULL, 10) : 0;
}

/* ---- formatting ---- */

/* 1234567 -> "1,234,567". */
static void fmt_grouped(char *buf, size_t size, long long v)
{
    char digits[24], out[40];
    unsigned long long m = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    int n = snprintf(digits, sizeof digits, "%llu", m), o = 0;
    if (v < 0)
        out[o++] = '-';
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
    snprintf(buf, size, "%s", out);
}

/* Cents as whole currency units, rounded half away from zero, grouped. */
static void fmt_units(char *buf, size_t size, long long cents)
{
    long long units = cents / 100, rest = cents % 100;
    units += rest >= 50 ? 1 : rest <= -50 ? -1 : 0;
    fmt_grouped(buf, size, units);
}

/* A decimal string kpid wrote (avg_deal_cents "5835850.3333") as whole units; "-" when
 * absent. Display only, so a double is exact enough. */
static void fmt_units_decimal(char *buf, size_t size, const char *cents)
{
    if (!cents) {
        snprintf(buf, size, "-");
        return;
    }
    double u = strtod(cents, NULL) / 100;
    fmt_grouped(buf, size, (long long)(u < 0 ? u - 0.5 : u + 0.5));
}

/* A ratio kpid wrote ("0.3448") as a percentage with one decimal ("34.5"); "-" when
 * absent (its denominator was 0). */
static void fmt_percent(char *buf, size_t size, const char *ratio)
{
    if (ratio)
        snprintf(buf, size, "%.1f", strtod(ratio, NULL) * 100);
    else
        snprintf(buf, size, "-");
}

/* ---- where "now" falls ---- */

/* The current periods of the organisation and of every configured team, each in the zone
 * kpid files it in. Built once per screen, so --watch follows the day turning. */
struct periods_now {
    period_set_t org;
    period_set_t *team;   /* one per cfg->teams[i] */
};

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

static void periods_now_free(struct periods_now *pn)
{
    free(pn->team);
    pn->team = NULL;
}

static int periods_now_init(struct periods_now *pn, const config_t *cfg, int64_t now_ms)
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
static const period_set_t *periods_now_team(const struct periods_now *pn, const config_t *cfg,
                                            const char *team)
{
    const struct config_team *t = config_team_find(cfg, team);
    return t ? &pn->team[t - cfg->teams] : &pn->org;
}

static const char *team_zone(const config_t *cfg, const char *team)
{
    const struct config_team *t = config_team_find(cfg, team);
    return t && t->time_zone ? t->time_zone : cfg->time_zone;
}

static const char *manager_team(const config_t *cfg, const char *manager)
{
    const struct config_manager *m = config_manager_find(cfg, manager);
    return m ? m->team : CONFIG_UNASSIGNED_TEAM;
}

/* ---- meta ---- */

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

/* ---- board ---- */

static const char *const board_fields[] = {"calls",         "calls_connected", "call_seconds",
                                           "emails",        "meetings_held",   "touches",
                                           "internal_filtered", "meetings_first", "deals_won"};
enum { F_CALLS, F_CONNECTED, F_SECONDS, F_EMAILS, F_HELD, F_TOUCHES, F_INTERNAL, F_FIRST,
       F_WON, F_N };

/* Per manager: HMGET counters, HGET :kpi win_rate, HGET pipeline, HGET rolling. */
enum { BOARD_CMDS = 4 };
/* Name columns are as wide as the longest name up to these caps, so the line stays within
 * 120 columns; longer names are cut. */
enum { BOARD_MANAGER_MAX = 18, BOARD_TEAM_MAX = 12 };

struct row {
    const char *manager, *team;  /* borrowed: the SMEMBERS reply and the configuration */
    long long v[F_N];
    const char *win_rate;        /* borrowed from a reply; NULL when absent */
    long long pipeline_cents, touches_24h;
};

static int cmp_touches(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    if (x->v[F_TOUCHES] != y->v[F_TOUCHES])
        return x->v[F_TOUCHES] < y->v[F_TOUCHES] ? 1 : -1;
    return strcmp(x->manager, y->manager);
}

static void board_append(struct pipe *p, const char *prefix, enum scope_kind kind,
                         const char *scope, const char *period_id)
{
    char key[KEYS_MAX], kpi[KEYS_MAX + 4], pipeline[KEYS_MAX];
    keys_scope(key, sizeof key, prefix, kind, scope, period_id);
    snprintf(kpi, sizeof kpi, "%s:kpi", key);
    keys_scope(pipeline, sizeof pipeline, prefix, kind, scope, "pipeline");
    const char *argv[2 + F_N] = {"HMGET", key};
    for (int f = 0; f < F_N; f++)
        argv[2 + f] = board_fields[f];
    pipe_cmd(p, 2 + F_N, argv);
    pipe_hget(p, kpi, "win_rate");
    pipe_hget(p, pipeline, "open_amount_cents");
    /* Rolling windows exist per manager only; the organisation's is their sum. */
    if (kind == SCOPE_MANAGER) {
        char rolling[KEYS_MAX];
        keys_scope(rolling, sizeof rolling, prefix, kind, scope, "rolling");
        pipe_hget(p, rolling, "touches:24h");
    }
}

static void board_fill(struct row *row, redisReply *const *rep, int with_rolling)
{
    for (int f = 0; f < F_N; f++)
        row->v[f] = rep[0]->type == REDIS_REPLY_ARRAY && (size_t)f < rep[0]->elements
                        ? reply_ll(rep[0]->element[f])
                        : 0;
    row->win_rate = reply_str(rep[1]);
    row->pipeline_cents = reply_ll(rep[2]);
    if (with_rolling)
        row->touches_24h = reply_ll(rep[3]);
}

static void board_cells(const struct row *r)
{
    char win[16], pipeline[32];
    fmt_percent(win, sizeof win, r->win_rate);
    fmt_units(pipeline, sizeof pipeline, r->pipeline_cents);
    printf(" %6lld %5lld %6lld %6lld %5lld %5lld %7lld %8lld %4lld %5s %11s %9lld\n",
           r->v[F_CALLS], r->v[F_CONNECTED], r->v[F_SECONDS] / 60, r->v[F_EMAILS], r->v[F_HELD],
           r->v[F_FIRST], r->v[F_TOUCHES], r->v[F_INTERNAL], r->v[F_WON], win, pipeline,
           r->touches_24h);
}

static int clamp_width(size_t w, int lo, int hi)
{
    return w < (size_t)lo ? lo : w > (size_t)hi ? hi : (int)w;
}

static void board_show(const struct row *rows, size_t n, const struct row *org,
                       const char *org_label, redisReply *meta)
{
    size_t lm = 0, lt = 0;
    for (size_t i = 0; i < n; i++) {
        lm = strlen(rows[i].manager) > lm ? strlen(rows[i].manager) : lm;
        lt = strlen(rows[i].team) > lt ? strlen(rows[i].team) : lt;
    }
    int wm = clamp_width(lm, 7, BOARD_MANAGER_MAX), wt = clamp_width(lt, 4, BOARD_TEAM_MAX);
    int label = (int)strlen(org_label);
    if (wm + 1 + wt < label)
        wm = label - 1 - wt;
    printf("%-*s %-*s %6s %5s %6s %6s %5s %5s %7s %8s %4s %5s %11s %9s\n", wm, "manager", wt,
           "team", "calls", "conn", "talk_m", "emails", "meet", "first", "touches", "internal",
           "won", "win%", "pipeline", "touch 24h");
    for (size_t i = 0; i < n; i++) {
        printf("%-*.*s %-*.*s", wm, wm, rows[i].manager, wt, wt, rows[i].team);
        board_cells(&rows[i]);
    }
    printf("%-*s", wm + 1 + wt, org_label);
    board_cells(org);
    printf("\nevents applied %lld, invalid %lld (dead-lettered), duplicate %lld, internal %lld\n",
           reply_ll(meta->element[0]), reply_ll(meta->element[1]), reply_ll(meta->element[2]),
           reply_ll(meta->element[3]));
}

static int print_board(redisContext *c, const config_t *cfg, const struct periods_now *pn,
                       enum period_kind kind, redisReply *members)
{
    size_t n = members->elements, n_rep = BOARD_CMDS * n + 4;
    struct row *rows = calloc(n ? n : 1, sizeof *rows), org = {0};
    redisReply **rep = calloc(n_rep, sizeof *rep);
    struct pipe p = {c, 0, 0};
    char meta[KEYS_MAX];
    if (!rows || !rep) {
        fprintf(stderr, "kpictl: out of memory\n");
        free(rep);
        free(rows);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        rows[i].manager = members->element[i]->str;
        rows[i].team = manager_team(cfg, rows[i].manager);
        const period_set_t *ps = periods_now_team(pn, cfg, rows[i].team);
        board_append(&p, cfg->redis_prefix, SCOPE_MANAGER, rows[i].manager, ps->id[kind]);
    }
    board_append(&p, cfg->redis_prefix, SCOPE_ORG, "", pn->org.id[kind]);
    keys_global(meta, sizeof meta, cfg->redis_prefix, "meta");
    const char *meta_argv[] = {"HMGET", meta, "events_applied", "events_invalid",
                               "events_duplicate", "events_internal"};
    pipe_cmd(&p, 6, meta_argv);
    int rc = 1;
    if (pipe_read(&p, rep) == 0) {
        for (size_t i = 0; i < n; i++) {
            board_fill(&rows[i], rep + BOARD_CMDS * i, 1);
            org.touches_24h += rows[i].touches_24h;
        }
        board_fill(&org, rep + BOARD_CMDS * n, 0);
        qsort(rows, n, sizeof *rows, cmp_touches);
        char org_label[32];
        snprintf(org_label, sizeof org_label, "org %s", pn->org.id[kind]);
        board_show(rows, n, &org, org_label, rep[n_rep - 1]);
        replies_free(rep, n_rep);
        rc = 0;
    }
    free(rep);
    free(rows);
    return rc;
}

/* ---- funnel ---- */

struct scope {
    enum scope_kind kind;
    const char *name;      /* "" for the organisation */
    const char *team;      /* decides the zone; NULL for the organisation */
};

static int scope_parse(const config_t *cfg, const char *arg, struct scope *out)
{
    if (!arg || !strcmp(arg, "org")) {
        *out = (struct scope){SCOPE_ORG, "", NULL};
    } else if (!strncmp(arg, "team:", 5) && arg[5]) {
        *out = (struct scope){SCOPE_TEAM, arg + 5, arg + 5};
        /* kpid writes team keys only for configured teams and unassigned. */
        if (!config_team_find(cfg, out->name) && strcmp(out->name, CONFIG_UNASSIGNED_TEAM)) {
            fprintf(stderr, "kpictl: --scope: no team %s in the configuration\n", out->name);
            return -1;
        }
    } else if (!strncmp(arg, "mgr:", 4) && arg[4]) {
        *out = (struct scope){SCOPE_MANAGER, arg + 4, manager_team(cfg, arg + 4)};
    } else {
        fprintf(stderr, "kpictl: --scope: org, team:<team> or mgr:<manager>, not %s\n", arg);
        return -1;
    }
    return 0;
}

/* The conversion step into stage i as derived.c names it: from the previous open stage
 * for an open stage, from the last open stage for "won"; none for the first open stage
 * and other terminal stages (field stays ""). */
static void funnel_conv_field(const config_t *cfg, size_t i, char *field, size_t size)
{
    const char *from = NULL;
    int won = cfg->stages[i].terminal && !strcmp(cfg->stages[i].name, "won");
    size_t end = won ? cfg->n_stages : i;
    for (size_t j = 0; j < end; j++)
        if (!cfg->stages[j].terminal)
            from = cfg->stages[j].name;
    field[0] = '\0';
    if (from && (won || !cfg->stages[i].terminal))
        snprintf(field, size, "conv:%s>%s", from, cfg->stages[i].name);
}

static void funnel_stages(const config_t *cfg, redisReply *counters, redisReply *kpi,
                          redisReply *pipeline)
{
    int ws = 5;
    for (size_t i = 0; i < cfg->n_stages; i++)
        ws = (int)strlen(cfg->stages[i].name) > ws ? (int)strlen(cfg->stages[i].name) : ws;
    printf("%-*s %8s %7s %9s\n", ws, "stage", "entered", "conv%", "open now");
    for (size_t i = 0; i < cfg->n_stages; i++) {
        const char *name = cfg->stages[i].name;
        char field[80], conv[16] = "", open[24] = "";
        snprintf(field, sizeof field, "stage:%s", name);
        long long entered = hash_ll(counters, field);
        funnel_conv_field(cfg, i, field, sizeof field);
        if (field[0])
            fmt_percent(conv, sizeof conv, hash_str(kpi, field));
        if (!cfg->stages[i].terminal) {
            snprintf(field, sizeof field, "open:%s", name);
            snprintf(open, sizeof open, "%lld", hash_ll(pipeline, field));
        }
        /* Terminal stages have no open column: no trailing blanks on their lines. */
        char line[160];
        int len = snprintf(line, sizeof line, "%-*s %8lld %7s %9s", ws, name, entered, conv, open);
        while (len > 0 && line[len - 1] == ' ')
            line[--len] = '\0';
        puts(line);
    }
}

static void funnel_summary(redisReply *kpi, redisReply *pipeline)
{
    char win[16], deal[32], amount[32], weighted[32];
    const char *cycle = hash_str(kpi, "avg_cycle_days");
    fmt_percent(win, sizeof win, hash_str(kpi, "win_rate"));
    fmt_units_decimal(deal, sizeof deal, hash_str(kpi, "avg_deal_cents"));
    fmt_units(amount, sizeof amount, hash_ll(pipeline, "open_amount_cents"));
    fmt_units(weighted, sizeof weighted, hash_ll(pipeline, "weighted_amount_cents"));
    printf("win rate %s%s   avg deal %s   avg cycle ", win, hash_str(kpi, "win_rate") ? "%" : "",
           deal);
    if (cycle)
        printf("%.1f days\n", strtod(cycle, NULL));
    else
        printf("-\n");
    printf("open now %lld deals   amount %s   weighted %s\n", hash_ll(pipeline, "open_count"),
           amount, weighted);
}

static int print_funnel(redisContext *c, const config_t *cfg, const struct periods_now *pn,
                        enum period_kind kind, const char *scope_arg)
{
    struct scope s;
    if (scope_parse(cfg, scope_arg, &s) != 0)
        return 2;
    const period_set_t *ps = s.team ? periods_now_team(pn, cfg, s.team) : &pn->org;
    const char *zone = s.team ? team_zone(cfg, s.team) : cfg->time_zone;
    char key[KEYS_MAX], kpi[KEYS_MAX + 4], pipeline[KEYS_MAX];
    keys_scope(key, sizeof key, cfg->redis_prefix, s.kind, s.name, ps->id[kind]);
    snprintf(kpi, sizeof kpi, "%s:kpi", key);
    keys_scope(pipeline, sizeof pipeline, cfg->redis_prefix, s.kind, s.name, "pipeline");
    struct pipe p = {c, 0, 0};
    pipe_hgetall(&p, key);
    pipe_hgetall(&p, kpi);
    pipe_hgetall(&p, pipeline);
    redisReply *rep[3] = {NULL, NULL, NULL};
    if (pipe_read(&p, rep) != 0)
        return 1;
    printf("funnel %s, %s (%s)\n", scope_arg ? scope_arg : "org", ps->id[kind], zone);
    funnel_stages(cfg, rep[0], rep[1], rep[2]);
    funnel_summary(rep[1], rep[2]);
    replies_free(rep, 3);
    return 0;
}

/* ---- top ---- */

static void top_show(const config_t *cfg, const char *metric, const redisReply *z)
{
    int money = !strcmp(metric, "revenue_won_cents");
    size_t wm = 7;
    for (size_t i = 0; i + 1 < z->elements; i += 2)
        wm = strlen(z->element[i]->str) > wm ? strlen(z->element[i]->str) : wm;
    printf("%4s  %-*s %-12s %14s\n", "#", (int)wm, "manager", "team",
           money ? "revenue won" : metric);
    long long prev = 0;
    size_t rank = 0;
    for (size_t i = 0; i + 1 < z->elements; i += 2) {
        const char *s = reply_str(z->element[i + 1]);
        double d = s ? strtod(s, NULL) : 0;
        long long score = (long long)(d < 0 ? d - 0.5 : d + 0.5);
        char value[32];
        /* Equal scores share a rank (1, 2, 2, 4). */
        if (i == 0 || score != prev)
            rank = i / 2 + 1;
        prev = score;
        if (money)
            fmt_units(value, sizeof value, score);
        else
            fmt_grouped(value, sizeof value, score);
        printf("%4zu  %-*s %-12s %14s\n", rank, (int)wm, z->element[i]->str,
               manager_team(cfg, z->element[i]->str), value);
    }
    if (z->elements == 0)
        printf("      (nobody yet)\n");
}

static int print_top(redisContext *c, const config_t *cfg, const struct periods_now *pn,
                     enum period_kind kind, const char *metric, long n)
{
    char key[KEYS_MAX], stop[24];
    keys_leaderboard(key, sizeof key, cfg->redis_prefix, metric, pn->org.id[kind]);
    snprintf(stop, sizeof stop, "%ld", n - 1);
    const char *range[] = {"ZREVRANGE", key, "0", stop, "WITHSCORES"}, *card[] = {"ZCARD", key};
    struct pipe p = {c, 0, 0};
    pipe_cmd(&p, 5, range);
    pipe_cmd(&p, 2, card);
    redisReply *rep[2] = {NULL, NULL};
    if (pipe_read(&p, rep) != 0)
        return 1;
    printf("top %ld by %s, %s (%s): %lld ranked\n", n, metric, pn->org.id[kind], cfg->time_zone,
           rep[1]->integer);
    top_show(cfg, metric, rep[0]);
    replies_free(rep, 2);
    return 0;
}

/* ---- alerts ---- */

/* Manager column: as wide as the longest name shown, within these bounds; a longer name
 * is shown whole (its line shifts) rather than cut, as an alert must name its manager. */
enum { ALERT_MANAGER_MIN = 7, ALERT_MANAGER_MAX = 18 };

/* What one line shows of a stream entry; "?" for whatever the entry lacks. */
struct alert_row {
    json_node_t *doc;           /* owned; NULL: the entry is not an alert object */
    const char *id;             /* stream entry id, borrowed from the reply */
    char time[10];              /* "12:00:00Z" or "?" */
    const char *state, *severity, *manager, *message, *escalated_to; /* borrowed */
    int digest;
};

static const char *field_or(const json_node_t *obj, const char *name, const char *dflt)
{
    const char *s = json_string(json_object_get(obj, name), NULL);
    return s && s[0] ? s : dflt;
}

/* "2026-11-19T12:00:00Z" -> "12:00:00Z"; kpid writes UTC, so anything else is "?". */
static void alert_time(char *out, size_t size, const char *ts)
{
    size_t n = ts ? strlen(ts) : 0;
    if (n >= 20 && ts[10] == 'T' && ts[13] == ':' && ts[16] == ':' && ts[n - 1] == 'Z')
        snprintf(out, size, "%.8sZ", ts + 11);
    else
        snprintf(out, size, "?");
}

/* entry: [id, [field, value, ...]] as XREVRANGE returns it. */
static void alert_row_fill(struct alert_row *row, const redisReply *entry)
{
    *row = (struct alert_row){.state = "?", .severity = "?", .manager = "?", .message = "?"};
    snprintf(row->time, sizeof row->time, "?");
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2)
        return;
    row->id = reply_str(entry->element[0]);
    const char *text = hash_str(entry->element[1], "json");
    char err[128];
    row->doc = text ? json_parse(text, strlen(text), false, err, sizeof err) : NULL;
    if (row->doc && json_kind(row->doc) != JSON_OBJECT) {
        json_free(row->doc);
        row->doc = NULL;
    }
    if (!row->doc)
        return;
    alert_time(row->time, sizeof row->time, field_or(row->doc, "ts", NULL));
    row->state = field_or(row->doc, "state", "?");
    row->severity = field_or(row->doc, "severity", "?");
    /* The stream entry names the manager too: the fallback when the object does not. */
    row->manager = field_or(row->doc, "manager", hash_str(entry->element[1], "manager"));
    if (!row->manager || !row->manager[0])
        row->manager = "?";
    row->message = field_or(row->doc, "message", "?");
    row->escalated_to = field_or(row->doc, "escalated_to", NULL);
    row->digest = json_bool(json_object_get(row->doc, "digest"));
}

/* Text from Redis printed on one terminal line: control characters (an escaped "\n" in
 * the JSON decodes to one) become spaces. */
static void put_clean(const char *s, int width)
{
    int n = 0;
    for (; *s; s++, n++)
        putchar((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s);
    for (; n < width; n++)
        putchar(' ');
}

/* kpid's messages start with the manager ("ivanov: 2 meetings held ...", "ivanov
 * (critical): ...", "ivanov is back on pace: ..."); the manager has a column of its own
 * and the severity too, so they are not said twice. Other text is shown whole. */
static const char *message_rest(const char *msg, const char *manager, const char *severity)
{
    size_t n = strlen(manager);
    if (strncmp(msg, manager, n) || (msg[n] != ':' && msg[n] != ' '))
        return msg;
    const char *s = msg + n;
    char sev[40];
    snprintf(sev, sizeof sev, " (%s)", severity);
    if (!strncmp(s, sev, strlen(sev)))
        s += strlen(sev);
    if (s[0] == ':')
        s++;
    return s[0] == ' ' ? s + 1 : s;
}

static void alert_row_show(const struct alert_row *row, int wm)
{
    if (!row->doc) {
        printf("%-9s entry %s is not an alert\n", "?", row->id ? row->id : "?");
        return;
    }
    printf("%-9s %-8s %-8s ", row->time,
           !strcmp(row->state, "firing") ? "FIRING" : !strcmp(row->state, "resolved") ? "RESOLVED"
                                                                                        : "?",
           row->severity);
    put_clean(row->manager, wm);
    putchar(' ');
    if (row->escalated_to) {
        printf("[→ ");
        put_clean(row->escalated_to, 0);
        printf("] ");
    }
    if (row->digest)
        printf("[digest] ");
    put_clean(message_rest(row->message, row->manager, row->severity), 0);
    putchar('\n');
}

/* The managers whose firing hashes are counted: those seen in events and those
 * configured (kpid evaluates both), each once. Pointers borrowed from members and cfg. */
static const char **alert_managers(const config_t *cfg, const redisReply *members, size_t *n)
{
    const char **ids = calloc(members->elements + cfg->n_managers + 1, sizeof *ids);
    *n = 0;
    for (size_t i = 0; ids && i < cfg->n_managers; i++)
        ids[(*n)++] = cfg->managers[i].id;
    for (size_t i = 0; ids && i < members->elements; i++) {
        const char *m = reply_str(members->element[i]);
        if (m && !config_manager_find(cfg, m))
            ids[(*n)++] = m;
    }
    return ids;
}

/* One round trip for the firing hashes: "firing now: K alerts for M managers". */
static int alerts_firing(redisContext *c, const config_t *cfg, const redisReply *members)
{
    size_t n = 0;
    const char **ids = alert_managers(cfg, members, &n);
    redisReply **rep = calloc(n ? n : 1, sizeof *rep);
    if (!ids || !rep) {
        fprintf(stderr, "kpictl: out of memory\n");
        free(rep);
        free(ids);
        return 1;
    }
    struct pipe p = {c, 0, 0};
    for (size_t i = 0; i < n; i++) {
        char key[KEYS_MAX];
        keys_scope(key, sizeof key, cfg->redis_prefix, SCOPE_MANAGER, ids[i], "alerts");
        const char *argv[] = {"HLEN", key};
        pipe_cmd(&p, 2, argv);
    }
    int rc = 1;
    if (pipe_read(&p, rep) == 0) {
        long long alerts = 0, managers = 0;
        for (size_t i = 0; i < n; i++) {
            alerts += rep[i]->integer;
            managers += rep[i]->integer > 0;
        }
        printf("firing now: %lld alert%s for %lld manager%s\n", alerts, alerts == 1 ? "" : "s",
               managers, managers == 1 ? "" : "s");
        replies_free(rep, n);
        rc = 0;
    }
    free(rep);
    free(ids);
    return rc;
}

static int print_alerts(redisContext *c, const config_t *cfg, long n)
{
    char stream[KEYS_MAX], members[KEYS_MAX], count[24];
    keys_global(stream, sizeof stream, cfg->redis_prefix, "alerts");
    keys_global(members, sizeof members, cfg->redis_prefix, "managers");
    snprintf(count, sizeof count, "%ld", n);
    const char *range[] = {"XREVRANGE", stream, "+", "-", "COUNT", count},
               *len[] = {"XLEN", stream}, *smembers_argv[] = {"SMEMBERS", members};
    struct pipe p = {c, 0, 0};
    pipe_cmd(&p, 6, range);
    pipe_cmd(&p, 2, len);
    pipe_cmd(&p, 2, smembers_argv);
    redisReply *rep[3] = {NULL, NULL, NULL};
    if (pipe_read(&p, rep) != 0)
        return 1;
    size_t shown = rep[0]->type == REDIS_REPLY_ARRAY ? rep[0]->elements : 0;
    struct alert_row *rows = calloc(shown ? shown : 1, sizeof *rows);
    int rc = 1;
    if (rows && rep[2]->type == REDIS_REPLY_ARRAY) {
        size_t wm = 0;
        for (size_t i = 0; i < shown; i++) {
            /* XREVRANGE gives the newest first; the screen reads down to the newest. */
            alert_row_fill(&rows[i], rep[0]->element[shown - 1 - i]);
            if (rows[i].doc && strlen(rows[i].manager) > wm)
                wm = strlen(rows[i].manager);
        }
        printf("last %zu of %lld alerts, newest last (times UTC)\n", shown, rep[1]->integer);
        for (size_t i = 0; i < shown; i++)
            alert_row_show(&rows[i], clamp_width(wm, ALERT_MANAGER_MIN, ALERT_MANAGER_MAX));
        if (shown == 0)
            printf("          (no alerts yet)\n");
        rc = alerts_firing(c, cfg, rep[2]);
    } else {
        fprintf(stderr, "kpictl: %s\n", rows ? "redis: SMEMBERS did not return a set"
                                             : "out of memory");
    }
    for (size_t i = 0; rows && i < shown; i++)
        json_free(rows[i].doc);
    free(rows);
    replies_free(rep, 3);
    return rc;
}

/* ---- main ---- */

static int64_t wall_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* The first round trip of a screen: kpid's "now" (one HGET, with the event clock only)
 * and, when members is given, every manager seen (SMEMBERS, the board's rows). Before
 * kpid applied any event the event clock falls back to the wall clock. 0, or -1 after
 * printing why. */
static int read_now(redisContext *c, const config_t *cfg, redisReply **members, int64_t *now_ms)
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
    if (members && rep[0]->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "kpictl: redis: SMEMBERS did not return a set\n");
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

static int run_once(redisContext *c, const config_t *cfg, const struct opts *o)
{
    if (!strcmp(o->command, "meta"))
        return print_meta(c, cfg);
    if (!strcmp(o->command, "alerts"))
        return print_alerts(c, cfg, o->top_n ? o->top_n : 10);
    int board = !strcmp(o->command, "board");
    redisReply *members = NULL;
    int64_t now_ms;
    if (read_now(c, cfg, board ? &members : NULL, &now_ms) != 0)
        return 1;
    struct periods_now pn;
    if (periods_now_init(&pn, cfg, now_ms) != 0) {
        if (members)
            freeReplyObject(members);
        return 1;
    }
    int rc;
    if (board)
        rc = print_board(c, cfg, &pn, o->kind < 0 ? PERIOD_DAY : (enum period_kind)o->kind,
                         members);
    else if (!strcmp(o->command, "funnel"))
        rc = print_funnel(c, cfg, &pn, o->kind < 0 ? PERIOD_MONTH : (enum period_kind)o->kind,
                          o->scope);
    else
        rc = print_top(c, cfg, &pn, o->kind < 0 ? PERIOD_DAY : (enum period_kind)o->kind,
                       o->metric ? o->metric : "touches", o->top_n ? o->top_n : 10);
    periods_now_free(&pn);
    if (members)
        freeReplyObject(members);
    return rc;
}

int main(int argc, char **argv)
{
    struct opts o;
    if (opts_parse(argc, argv, &o) != 0)
        return 2;
    if (strcmp(o.command, "meta") && strcmp(o.command, "board") && strcmp(o.command, "funnel") &&
        strcmp(o.command, "top") && strcmp(o.command, "alerts")) {
        usage();
        return 2;
    }
    static char err[16384];
    config_t *cfg = NULL;
    if (config_load_file(o.config_path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s\nkpictl: %s: configuration rejected\n", err, o.config_path);
        return 2;
    }
    redisContext *c = connect_redis(cfg);
    if (!c) {
        config_free(cfg);
        return 1;
    }
    int rc;
    do {
        if (o.watch)
            printf("\033[H\033[2J");
        rc = run_once(c, cfg, &o);
        fflush(stdout);
        if (o.watch && rc == 0)
            sleep((unsigned)o.watch);
    } while (o.watch && rc == 0);
    redisFree(c);
    config_free(cfg);
    return rc;
}
