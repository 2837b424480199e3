/* kpictl manager and team: one manager's figures for a period (counters, targets and
 * their pacing, score, pipeline, firing alerts, latest activity), and one team's with a
 * line per manager. Both read everything in one pipeline after kpid's "now". */
#include <stdlib.h>
#include <string.h>

#include "kpictl_impl.h"

static const char *const rolling_metrics[] = {"calls", "emails", "meetings_held", "touches"};
static const char *const rolling_windows[] = {"24h", "7d", "30d"};

static void unknown(const struct ctl *x, const char *what, const char *name)
{
    fprintf(stderr, "kpictl: unknown %s '%s' (not in %s and no data in redis)\n", what, name,
            x->config_path);
}

/* ---- manager ---- */

enum { M_COUNTERS, M_KPI, M_PIPELINE, M_ALERTS, M_LAST, M_ROLLING, M_MEMBER, M_EXISTS, M_N };

static void manager_append(struct pipe *p, const config_t *cfg, const char *m, const char *period)
{
    char key[M_N][KEYS_MAX], kpi[KEYS_MAX + 4], set[KEYS_MAX];
    keys_scope(key[M_COUNTERS], KEYS_MAX, cfg->redis_prefix, SCOPE_MANAGER, m, period);
    snprintf(kpi, sizeof kpi, "%s:kpi", key[M_COUNTERS]);
    keys_scope(key[M_PIPELINE], KEYS_MAX, cfg->redis_prefix, SCOPE_MANAGER, m, "pipeline");
    keys_scope(key[M_ALERTS], KEYS_MAX, cfg->redis_prefix, SCOPE_MANAGER, m, "alerts");
    keys_scope(key[M_LAST], KEYS_MAX, cfg->redis_prefix, SCOPE_MANAGER, m, "last");
    keys_scope(key[M_ROLLING], KEYS_MAX, cfg->redis_prefix, SCOPE_MANAGER, m, "rolling");
    keys_global(set, sizeof set, cfg->redis_prefix, "managers");
    pipe_hgetall(p, key[M_COUNTERS]);
    pipe_hgetall(p, kpi);
    pipe_hgetall(p, key[M_PIPELINE]);
    pipe_hgetall(p, key[M_ALERTS]);
    const char *last[] = {"ZREVRANGE", key[M_LAST], "0", "-1", "WITHSCORES"};
    pipe_cmd(p, 5, last);
    pipe_hgetall(p, key[M_ROLLING]);
    const char *member[] = {"SISMEMBER", set, m};
    pipe_cmd(p, 3, member);
    /* Any of its keys: a manager kpid knew under another configuration still has data. */
    const char *exists[] = {"EXISTS", key[M_COUNTERS], key[M_PIPELINE], key[M_ALERTS],
                            key[M_LAST], key[M_ROLLING]};
    pipe_cmd(p, 6, exists);
}

/* The firing alerts, rule names sorted, each with its parsed object (NULL when it is
 * not a JSON object). */
struct firing_alert {
    const char *rule;
    json_node_t *doc;
};

static int cmp_rule(const void *a, const void *b)
{
    return strcmp(((const struct firing_alert *)a)->rule, ((const struct firing_alert *)b)->rule);
}

static struct firing_alert *firing_parse(const redisReply *h, size_t *n)
{
    size_t cap = reply_is_array(h) ? h->elements / 2 : 0;
    struct firing_alert *out = calloc(cap + 1, sizeof *out);
    *n = 0;
    for (size_t i = 0; out && i < cap; i++) {
        const char *rule = reply_str(h->element[2 * i]), *text = reply_str(h->element[2 * i + 1]);
        if (!rule)
            continue;
        char err[128];
        json_node_t *doc = text ? json_parse(text, strlen(text), false, err, sizeof err) : NULL;
        if (doc && json_kind(doc) != JSON_OBJECT) {
            json_free(doc);
            doc = NULL;
        }
        out[(*n)++] = (struct firing_alert){rule, doc};
    }
    if (out)
        qsort(out, *n, sizeof *out, cmp_rule);
    return out;
}

static void firing_free_all(struct firing_alert *a, size_t n)
{
    for (size_t i = 0; a && i < n; i++)
        json_free(a[i].doc);
    free(a);
}

static const char *doc_str(const json_node_t *doc, const char *name)
{
    const char *s = json_string(json_object_get(doc, name), NULL);
    return s && s[0] ? s : "?";
}

static void manager_text(const struct ctl *x, const char *m, const char *period,
                         redisReply **rep, const struct firing_alert *fa, size_t nfa)
{
    const config_t *cfg = x->cfg;
    const char *team = manager_team(cfg, m);
    printf("manager %s: team %s, role %s%s; %s (%s)\n", m, team, manager_role(cfg, m),
           config_manager_find(cfg, m) ? "" : " (not configured)", period, team_zone(cfg, team));
    const redisReply *last = rep[M_LAST];
    if (reply_is_array(last) && last->elements >= 2) {
        char ts[32];
        fmt_utc(ts, sizeof ts, (int64_t)reply_ll(last->element[1]));
        printf("last activity %s (%s)\n\n", ts, reply_str(last->element[0]));
    } else {
        printf("last activity -\n\n");
    }
    struct figures f = {rep[M_COUNTERS], rep[M_KPI], rep[M_PIPELINE]};
    figures_text(cfg, &f);
    printf("rolling (24h / 7d / 30d):");
    for (size_t i = 0; i < sizeof rolling_metrics / sizeof rolling_metrics[0]; i++) {
        printf("%s %s", i ? "," : "", rolling_metrics[i]);
        for (size_t j = 0; j < 3; j++) {
            char field[64];
            snprintf(field, sizeof field, "%s:%s", rolling_metrics[i], rolling_windows[j]);
            printf("%s%lld", j ? "/" : " ", hash_ll(rep[M_ROLLING], field));
        }
    }
    printf("\n\nfiring alerts: %zu\n", nfa);
    int wr = 4;
    for (size_t i = 0; i < nfa; i++)
        wr = (int)strlen(fa[i].rule) > wr ? (int)strlen(fa[i].rule) : wr;
    for (size_t i = 0; i < nfa; i++) {
        printf("  %-*s ", wr, fa[i].rule);
        if (!fa[i].doc) {
            printf("(not an alert object)\n");
            continue;
        }
        printf("%-8s %-12s ", doc_str(fa[i].doc, "severity"), doc_str(fa[i].doc, "period"));
        put_clean(doc_str(fa[i].doc, "message"), 0);
        putchar('\n');
    }
    if (reply_is_array(last) && last->elements >= 2) {
        printf("\nlast activity by counter (UTC)\n");
        for (size_t i = 0; i + 1 < last->elements; i += 2) {
            char ts[32];
            fmt_utc(ts, sizeof ts, (int64_t)reply_ll(last->element[i + 1]));
            printf("  %-24s %s\n", reply_str(last->element[i]) ? last->element[i]->str : "?", ts);
        }
    }
}

static void manager_json(const struct ctl *x, const char *m, const char *period,
                         redisReply **rep, const struct firing_alert *fa, size_t nfa)
{
    const config_t *cfg = x->cfg;
    const char *team = manager_team(cfg, m);
    struct jw w = {0};
    jw_begin(&w, NULL, '{');
    jw_str(&w, "manager", m);
    jw_str(&w, "team", team);
    jw_str(&w, "role", manager_role(cfg, m));
    jw_bool(&w, "configured", config_manager_find(cfg, m) != NULL);
    jw_str(&w, "period", period);
    jw_str(&w, "zone", team_zone(cfg, team));
    struct figures f = {rep[M_COUNTERS], rep[M_KPI], rep[M_PIPELINE]};
    figures_json(&w, cfg, &f);
    jw_begin(&w, "rolling", '{');
    for (size_t i = 0; i < sizeof rolling_metrics / sizeof rolling_metrics[0]; i++) {
        jw_begin(&w, rolling_metrics[i], '{');
        for (size_t j = 0; j < 3; j++) {
            char field[64];
            snprintf(field, sizeof field, "%s:%s", rolling_metrics[i], rolling_windows[j]);
            jw_int(&w, rolling_windows[j], hash_ll(rep[M_ROLLING], field));
        }
        jw_end(&w, '}');
    }
    jw_end(&w, '}');
    jw_begin(&w, "alerts", '[');
    for (size_t i = 0; i < nfa; i++) {
        jw_begin(&w, NULL, '{');
        jw_str(&w, "rule", fa[i].rule);
        if (fa[i].doc)
            jw_node(&w, "alert", fa[i].doc);
        else
            jw_null(&w, "alert");
        jw_end(&w, '}');
    }
    jw_end(&w, ']');
    const redisReply *last = rep[M_LAST];
    jw_begin(&w, "last_activity", '{');
    if (reply_is_array(last) && last->elements >= 2) {
        char ts[32];
        fmt_utc(ts, sizeof ts, (int64_t)reply_ll(last->element[1]));
        jw_str(&w, "counter", reply_str(last->element[0]));
        jw_int(&w, "ts_ms", reply_ll(last->element[1]));
        jw_str(&w, "ts", ts);
    } else {
        jw_null(&w, "counter");
        jw_null(&w, "ts_ms");
        jw_null(&w, "ts");
    }
    jw_begin(&w, "by_counter", '{');
    for (size_t i = 0; reply_is_array(last) && i + 1 < last->elements; i += 2)
        if (reply_str(last->element[i]))
            jw_int(&w, last->element[i]->str, reply_ll(last->element[i + 1]));
    jw_end(&w, '}');
    jw_end(&w, '}');
    jw_end(&w, '}');
    jw_done(&w);
}

int view_manager(const struct ctl *x, const struct periods_now *pn, redisReply *members)
{
    (void)members;
    const config_t *cfg = x->cfg;
    const char *m = x->o->arg;
    const char *period = period_pick(x->o, periods_now_team(pn, cfg, manager_team(cfg, m)),
                                     PERIOD_DAY);
    struct pipe p = {x->c, 0, 0};
    manager_append(&p, cfg, m, period);
    redisReply *rep[M_N] = {0};
    if (pipe_read(&p, rep) != 0)
        return 1;
    if (!config_manager_find(cfg, m) && rep[M_MEMBER]->integer == 0 &&
        rep[M_EXISTS]->integer == 0) {
        unknown(x, "manager", m);
        replies_free(rep, M_N);
        return 1;
    }
    size_t nfa = 0;
    struct firing_alert *fa = firing_parse(rep[M_ALERTS], &nfa);
    if (x->o->json)
        manager_json(x, m, period, rep, fa, nfa);
    else
        manager_text(x, m, period, rep, fa, nfa);
    firing_free_all(fa, nfa);
    replies_free(rep, M_N);
    return 0;
}

/* ---- team ---- */

enum { T_COUNTERS, T_KPI, T_PIPELINE, T_EXISTS, T_N };
enum { TM_COUNTERS, TM_KPI, TM_PIPELINE, TM_ALERTS, TM_N };

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The team's managers: configured ones with that team, and for "unassigned" those kpid
 * saw in events without a configuration; sorted, borrowed from cfg and members. */
static const char **team_managers(const config_t *cfg, const char *team,
                                  const redisReply *members, size_t *n)
{
    const char **ids = calloc(members->elements + cfg->n_managers + 1, sizeof *ids);
    *n = 0;
    for (size_t i = 0; ids && i < cfg->n_managers; i++)
        if (!strcmp(cfg->managers[i].team, team))
            ids[(*n)++] = cfg->managers[i].id;
    for (size_t i = 0; ids && i < members->elements; i++) {
        const char *m = reply_str(members->element[i]);
        if (m && !config_manager_find(cfg, m) && !strcmp(team, CONFIG_UNASSIGNED_TEAM))
            ids[(*n)++] = m;
    }
    if (ids)
        qsort(ids, *n, sizeof *ids, cmp_name);
    return ids;
}

static void team_append(struct pipe *p, const config_t *cfg, const char *team,
                        const char *period, const char **ids, size_t n)
{
    char key[KEYS_MAX], kpi[KEYS_MAX + 4], pipeline[KEYS_MAX], alerts[KEYS_MAX];
    keys_scope(key, sizeof key, cfg->redis_prefix, SCOPE_TEAM, team, period);
    snprintf(kpi, sizeof kpi, "%s:kpi", key);
    keys_scope(pipeline, sizeof pipeline, cfg->redis_prefix, SCOPE_TEAM, team, "pipeline");
    pipe_hgetall(p, key);
    pipe_hgetall(p, kpi);
    pipe_hgetall(p, pipeline);
    const char *exists[] = {"EXISTS", key, pipeline};
    pipe_cmd(p, 3, exists);
    for (size_t i = 0; i < n; i++) {
        /* A manager's periods are the team's: the same zone. */
        keys_scope(key, sizeof key, cfg->redis_prefix, SCOPE_MANAGER, ids[i], period);
        snprintf(kpi, sizeof kpi, "%s:kpi", key);
        keys_scope(pipeline, sizeof pipeline, cfg->redis_prefix, SCOPE_MANAGER, ids[i],
                   "pipeline");
        keys_scope(alerts, sizeof alerts, cfg->redis_prefix, SCOPE_MANAGER, ids[i], "alerts");
        pipe_hgetall(p, key);
        pipe_hgetall(p, kpi);
        pipe_hget(p, pipeline, "open_amount_cents");
        const char *hlen[] = {"HLEN", alerts};
        pipe_cmd(p, 2, hlen);
    }
}

static void team_rows_text(const config_t *cfg, const char **ids, size_t n, redisReply **rep)
{
    int wm = 7, wr = 4;
    for (size_t i = 0; i < n; i++) {
        wm = (int)strlen(ids[i]) > wm ? (int)strlen(ids[i]) : wm;
        wr = (int)strlen(manager_role(cfg, ids[i])) > wr ? (int)strlen(manager_role(cfg, ids[i]))
                                                          : wr;
    }
    printf("\n%-*s %-*s %6s %6s %5s %7s %4s %11s %11s %6s  %s\n", wm, "manager", wr, "role",
           "calls", "emails", "meet", "touches", "won", "revenue", "pipeline", "alerts", "state");
    for (size_t i = 0; i < n; i++) {
        redisReply **r = rep + T_N + TM_N * i;
        char revenue[32], pipeline[32];
        const char *state = figures_worst_state(r[TM_KPI]);
        fmt_units(revenue, sizeof revenue, hash_ll(r[TM_COUNTERS], "revenue_won_cents"));
        fmt_units(pipeline, sizeof pipeline, reply_ll(r[TM_PIPELINE]));
        printf("%-*s %-*s %6lld %6lld %5lld %7lld %4lld %11s %11s %6lld  %s\n", wm, ids[i], wr,
               manager_role(cfg, ids[i]), hash_ll(r[TM_COUNTERS], "calls"),
               hash_ll(r[TM_COUNTERS], "emails"), hash_ll(r[TM_COUNTERS], "meetings_held"),
               hash_ll(r[TM_COUNTERS], "touches"), hash_ll(r[TM_COUNTERS], "deals_won"), revenue,
               pipeline, reply_ll(r[TM_ALERTS]), state ? state : "-");
    }
    if (n == 0)
        printf("(no managers)\n");
}

static void team_json(const struct ctl *x, const char *team, const char *period,
                      const char **ids, size_t n, redisReply **rep)
{
    const config_t *cfg = x->cfg;
    const struct config_team *t = config_team_find(cfg, team);
    struct jw w = {0};
    jw_begin(&w, NULL, '{');
    jw_str(&w, "team", team);
    jw_str(&w, "lead", t ? t->lead : NULL);
    jw_bool(&w, "configured", t != NULL);
    jw_str(&w, "period", period);
    jw_str(&w, "zone", team_zone(cfg, team));
    struct figures f = {rep[T_COUNTERS], rep[T_KPI], rep[T_PIPELINE]};
    figures_json(&w, cfg, &f);
    jw_begin(&w, "managers", '[');
    for (size_t i = 0; i < n; i++) {
        redisReply **r = rep + T_N + TM_N * i;
        jw_begin(&w, NULL, '{');
        jw_str(&w, "manager", ids[i]);
        jw_str(&w, "role", manager_role(cfg, ids[i]));
        jw_bool(&w, "configured", config_manager_find(cfg, ids[i]) != NULL);
        figures_counters_json(&w, cfg, r[TM_COUNTERS]);
        figures_targets_json(&w, r[TM_COUNTERS], r[TM_KPI]);
        jw_num(&w, "kpi_score", hash_str(r[TM_KPI], "kpi_score"));
        jw_num(&w, "bonus", hash_str(r[TM_KPI], "bonus"));
        jw_str(&w, "state", figures_worst_state(r[TM_KPI]));
        jw_int(&w, "open_amount_cents", reply_ll(r[TM_PIPELINE]));
        jw_int(&w, "alerts_firing", reply_ll(r[TM_ALERTS]));
        jw_end(&w, '}');
    }
    jw_end(&w, ']');
    jw_end(&w, '}');
    jw_done(&w);
}

int view_team(const struct ctl *x, const struct periods_now *pn, redisReply *members)
{
    const config_t *cfg = x->cfg;
    const char *team = x->o->arg;
    const char *period = period_pick(x->o, periods_now_team(pn, cfg, team), PERIOD_DAY);
    size_t n = 0;
    const char **ids = team_managers(cfg, team, members, &n);
    redisReply **rep = calloc(T_N + TM_N * n, sizeof *rep);
    if (!ids || !rep) {
        fprintf(stderr, "kpictl: out of memory\n");
        free(rep);
        free(ids);
        return 1;
    }
    struct pipe p = {x->c, 0, 0};
    team_append(&p, cfg, team, period, ids, n);
    int rc = 1;
    if (pipe_read(&p, rep) == 0) {
        rc = 0;
        const struct config_team *t = config_team_find(cfg, team);
        if (!t && strcmp(team, CONFIG_UNASSIGNED_TEAM) && rep[T_EXISTS]->integer == 0 && n == 0) {
            unknown(x, "team", team);
            rc = 1;
        } else if (x->o->json) {
            team_json(x, team, period, ids, n, rep);
        } else {
            printf("team %s%s%s%s: %zu manager%s; %s (%s)\n\n", team, t && t->lead ? " (lead " : "",
                   t && t->lead ? t->lead : "", t && t->lead ? ")" : "", n, n == 1 ? "" : "s",
                   period, team_zone(cfg, team));
            struct figures f = {rep[T_COUNTERS], rep[T_KPI], rep[T_PIPELINE]};
            figures_text(cfg, &f);
            team_rows_text(cfg, ids, n, rep);
        }
        replies_free(rep, T_N + TM_N * n);
    }
    free(rep);
    free(ids);
    return rc;
}
