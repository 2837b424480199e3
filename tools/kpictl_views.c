/* kpictl views over many managers: meta, board, funnel and top. */
#include <stdlib.h>
#include <string.h>

#include "kpictl_impl.h"

/* ---- meta ---- */

int view_meta(const struct ctl *x)
{
    char key[KEYS_MAX];
    keys_global(key, sizeof key, x->cfg->redis_prefix, "meta");
    const char *argv[] = {"HGETALL", key};
    struct pipe p = {x->c, 0, 0};
    redisReply *r = NULL;
    pipe_cmd(&p, 2, argv);
    if (pipe_read(&p, &r) != 0)
        return 1;
    if (reply_want_array(r, "HGETALL") != 0) {
        freeReplyObject(r);
        return 1;
    }
    struct jw w = {0};
    if (x->o->json)
        jw_begin(&w, NULL, '{');
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *f = reply_str(r->element[i]), *v = reply_str(r->element[i + 1]);
        if (!f || !v)
            continue;
        if (x->o->json)
            jw_auto(&w, f, v);
        else
            printf("%-18s %s\n", f, v);
    }
    if (x->o->json) {
        jw_end(&w, '}');
        jw_done(&w);
    }
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
    const char *period;          /* borrowed: the periods of the screen */
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
        row->v[f] = reply_is_array(rep[0]) && (size_t)f < rep[0]->elements
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

static const char *const meta_fields[] = {"events_applied", "events_invalid",
                                          "events_duplicate", "events_internal"};

static void board_row_json(struct jw *w, const struct row *r)
{
    for (int f = 0; f < F_N; f++)
        jw_int(w, board_fields[f], r->v[f]);
    jw_num(w, "win_rate", r->win_rate);
    jw_int(w, "open_amount_cents", r->pipeline_cents);
    jw_int(w, "touches_24h", r->touches_24h);
}

static void board_json(const struct row *rows, size_t n, const struct row *org,
                       const char *org_zone, redisReply *meta)
{
    struct jw w = {0};
    jw_begin(&w, NULL, '{');
    jw_begin(&w, "managers", '[');
    for (size_t i = 0; i < n; i++) {
        jw_begin(&w, NULL, '{');
        jw_str(&w, "manager", rows[i].manager);
        jw_str(&w, "team", rows[i].team);
        jw_str(&w, "period", rows[i].period);
        board_row_json(&w, &rows[i]);
        jw_end(&w, '}');
    }
    jw_end(&w, ']');
    jw_begin(&w, "org", '{');
    jw_str(&w, "period", org->period);
    jw_str(&w, "zone", org_zone);
    board_row_json(&w, org);
    jw_end(&w, '}');
    jw_begin(&w, "meta", '{');
    for (size_t f = 0; f < 4; f++)
        jw_int(&w, meta_fields[f], reply_ll(meta->element[f]));
    jw_end(&w, '}');
    jw_end(&w, '}');
    jw_done(&w);
}

int view_board(const struct ctl *x, const struct periods_now *pn, redisReply *members)
{
    const config_t *cfg = x->cfg;
    size_t n = members->elements, n_rep = BOARD_CMDS * n + 4;
    struct row *rows = calloc(n ? n : 1, sizeof *rows), org = {0};
    redisReply **rep = calloc(n_rep, sizeof *rep);
    struct pipe p = {x->c, 0, 0};
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
        rows[i].period = period_pick(x->o, periods_now_team(pn, cfg, rows[i].team), PERIOD_DAY);
        board_append(&p, cfg->redis_prefix, SCOPE_MANAGER, rows[i].manager, rows[i].period);
    }
    org.period = period_pick(x->o, &pn->org, PERIOD_DAY);
    board_append(&p, cfg->redis_prefix, SCOPE_ORG, "", org.period);
    keys_global(meta, sizeof meta, cfg->redis_prefix, "meta");
    const char *meta_argv[] = {"HMGET", meta, meta_fields[0], meta_fields[1], meta_fields[2],
                               meta_fields[3]};
    pipe_cmd(&p, 6, meta_argv);
    int rc = 1;
    if (pipe_read(&p, rep) == 0) {
        for (size_t i = 0; i < n; i++) {
            board_fill(&rows[i], rep + BOARD_CMDS * i, 1);
            org.touches_24h += rows[i].touches_24h;
        }
        board_fill(&org, rep + BOARD_CMDS * n, 0);
        qsort(rows, n, sizeof *rows, cmp_touches);
        if (x->o->json) {
            board_json(rows, n, &org, cfg->time_zone, rep[n_rep - 1]);
        } else {
            char org_label[32];
            snprintf(org_label, sizeof org_label, "org %s", org.period);
            board_show(rows, n, &org, org_label, rep[n_rep - 1]);
        }
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
                          redisReply *pipeline, struct jw *w)
{
    int ws = 5;
    for (size_t i = 0; i < cfg->n_stages; i++)
        ws = (int)strlen(cfg->stages[i].name) > ws ? (int)strlen(cfg->stages[i].name) : ws;
    if (w)
        jw_begin(w, "stages", '[');
    else
        printf("%-*s %8s %7s %9s\n", ws, "stage", "entered", "conv%", "open now");
    for (size_t i = 0; i < cfg->n_stages; i++) {
        const char *name = cfg->stages[i].name;
        char field[80], conv[16] = "", open[24] = "", open_field[80];
        snprintf(field, sizeof field, "stage:%s", name);
        long long entered = hash_ll(counters, field);
        snprintf(open_field, sizeof open_field, "open:%s", name);
        funnel_conv_field(cfg, i, field, sizeof field);
        if (w) {
            jw_begin(w, NULL, '{');
            jw_str(w, "stage", name);
            jw_int(w, "entered", entered);
            if (field[0]) {
                jw_str(w, "conversion_field", field);
                jw_num(w, "conversion", hash_str(kpi, field));
            }
            if (!cfg->stages[i].terminal)
                jw_int(w, "open", hash_ll(pipeline, open_field));
            jw_end(w, '}');
            continue;
        }
        if (field[0])
            fmt_percent(conv, sizeof conv, hash_str(kpi, field));
        if (!cfg->stages[i].terminal)
            snprintf(open, sizeof open, "%lld", hash_ll(pipeline, open_field));
        /* Terminal stages have no open column: no trailing blanks on their lines. */
        char line[160];
        int len = snprintf(line, sizeof line, "%-*s %8lld %7s %9s", ws, name, entered, conv, open);
        while (len > 0 && line[len - 1] == ' ')
            line[--len] = '\0';
        puts(line);
    }
    if (w)
        jw_end(w, ']');
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

static void funnel_json(const config_t *cfg, const char *scope, const char *period,
                        const char *zone, redisReply **rep)
{
    struct jw w = {0};
    jw_begin(&w, NULL, '{');
    jw_str(&w, "scope", scope);
    jw_str(&w, "period", period);
    jw_str(&w, "zone", zone);
    funnel_stages(cfg, rep[0], rep[1], rep[2], &w);
    jw_num(&w, "win_rate", hash_str(rep[1], "win_rate"));
    jw_num(&w, "avg_deal_cents", hash_str(rep[1], "avg_deal_cents"));
    jw_num(&w, "avg_cycle_days", hash_str(rep[1], "avg_cycle_days"));
    jw_begin(&w, "pipeline", '{');
    jw_int(&w, "open_count", hash_ll(rep[2], "open_count"));
    jw_int(&w, "open_amount_cents", hash_ll(rep[2], "open_amount_cents"));
    jw_int(&w, "weighted_amount_cents", hash_ll(rep[2], "weighted_amount_cents"));
    jw_end(&w, '}');
    jw_end(&w, '}');
    jw_done(&w);
}

int view_funnel(const struct ctl *x, const struct periods_now *pn)
{
    const config_t *cfg = x->cfg;
    struct scope s;
    if (scope_parse(cfg, x->o->scope, &s) != 0)
        return 2;
    const period_set_t *ps = s.team ? periods_now_team(pn, cfg, s.team) : &pn->org;
    const char *zone = s.team ? team_zone(cfg, s.team) : cfg->time_zone;
    const char *period = period_pick(x->o, ps, PERIOD_MONTH);
    char key[KEYS_MAX], kpi[KEYS_MAX + 4], pipeline[KEYS_MAX];
    keys_scope(key, sizeof key, cfg->redis_prefix, s.kind, s.name, period);
    snprintf(kpi, sizeof kpi, "%s:kpi", key);
    keys_scope(pipeline, sizeof pipeline, cfg->redis_prefix, s.kind, s.name, "pipeline");
    struct pipe p = {x->c, 0, 0};
    pipe_hgetall(&p, key);
    pipe_hgetall(&p, kpi);
    pipe_hgetall(&p, pipeline);
    redisReply *rep[3] = {NULL, NULL, NULL};
    if (pipe_read(&p, rep) != 0)
        return 1;
    const char *scope = x->o->scope ? x->o->scope : "org";
    if (x->o->json) {
        funnel_json(cfg, scope, period, zone, rep);
    } else {
        printf("funnel %s, %s (%s)\n", scope, period, zone);
        funnel_stages(cfg, rep[0], rep[1], rep[2], NULL);
        funnel_summary(rep[1], rep[2]);
    }
    replies_free(rep, 3);
    return 0;
}

/* ---- top ---- */

static long long score_of(const redisReply *r)
{
    const char *s = reply_str(r);
    double d = s ? strtod(s, NULL) : 0;
    return (long long)(d < 0 ? d - 0.5 : d + 0.5);
}

static void top_show(const config_t *cfg, const char *metric, const redisReply *z, struct jw *w)
{
    int money = !strcmp(metric, "revenue_won_cents");
    size_t wm = 7;
    for (size_t i = 0; i + 1 < z->elements; i += 2)
        wm = strlen(z->element[i]->str) > wm ? strlen(z->element[i]->str) : wm;
    if (!w)
        printf("%4s  %-*s %-12s %14s\n", "#", (int)wm, "manager", "team",
               money ? "revenue won" : metric);
    long long prev = 0;
    size_t rank = 0;
    for (size_t i = 0; i + 1 < z->elements; i += 2) {
        long long score = score_of(z->element[i + 1]);
        char value[32];
        /* Equal scores share a rank (1, 2, 2, 4). */
        if (i == 0 || score != prev)
            rank = i / 2 + 1;
        prev = score;
        const char *m = z->element[i]->str;
        if (w) {
            jw_begin(w, NULL, '{');
            jw_int(w, "rank", (long long)rank);
            jw_str(w, "manager", m);
            jw_str(w, "team", manager_team(cfg, m));
            jw_int(w, "value", score);
            jw_end(w, '}');
            continue;
        }
        if (money)
            fmt_units(value, sizeof value, score);
        else
            fmt_grouped(value, sizeof value, score);
        printf("%4zu  %-*s %-12s %14s\n", rank, (int)wm, m, manager_team(cfg, m), value);
    }
    if (!w && z->elements == 0)
        printf("      (nobody yet)\n");
}

int view_top(const struct ctl *x, const struct periods_now *pn)
{
    const config_t *cfg = x->cfg;
    const char *metric = x->o->metric ? x->o->metric : "touches";
    const char *period = period_pick(x->o, &pn->org, PERIOD_DAY);
    long n = x->o->top_n ? x->o->top_n : 10;
    char key[KEYS_MAX], stop[24];
    keys_leaderboard(key, sizeof key, cfg->redis_prefix, metric, period);
    snprintf(stop, sizeof stop, "%ld", n - 1);
    const char *range[] = {"ZREVRANGE", key, "0", stop, "WITHSCORES"}, *card[] = {"ZCARD", key};
    struct pipe p = {x->c, 0, 0};
    pipe_cmd(&p, 5, range);
    pipe_cmd(&p, 2, card);
    redisReply *rep[2] = {NULL, NULL};
    if (pipe_read(&p, rep) != 0)
        return 1;
    if (reply_want_array(rep[0], "ZREVRANGE") != 0) {
        replies_free(rep, 2);
        return 1;
    }
    if (x->o->json) {
        struct jw w = {0};
        jw_begin(&w, NULL, '{');
        jw_str(&w, "metric", metric);
        jw_str(&w, "period", period);
        jw_str(&w, "zone", cfg->time_zone);
        jw_int(&w, "ranked", rep[1]->integer);
        jw_begin(&w, "rows", '[');
        top_show(cfg, metric, rep[0], &w);
        jw_end(&w, ']');
        jw_end(&w, '}');
        jw_done(&w);
    } else {
        printf("top %ld by %s, %s (%s): %lld ranked\n", n, metric, period, cfg->time_zone,
               rep[1]->integer);
        top_show(cfg, metric, rep[0], NULL);
    }
    replies_free(rep, 2);
    return 0;
}
