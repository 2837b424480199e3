/* config_alerts: "alerts" (contract section 7): how often and on which clock rules are
 * evaluated, the webhook, and the rules themselves. A rule is a threshold on a paced
 * target (warn/critical percentages) or an inactivity watch on an activity counter; keys
 * of the other kind are errors rather than silently ignored. */
#include "config_impl.h"

#include <stdlib.h>
#include <string.h>

#define DAY_S 86400

/* ^[A-Za-z0-9_.-]{1,64}$: the name travels in alert JSON and Redis field names. */
static bool rule_name_ok(const char *s)
{
    size_t len = strlen(s);
    return len >= 1 && len <= 64 &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == len;
}

static void read_rule_name(struct vctx *v, const json_node_t *e, size_t idx)
{
    config_t *c = v->cfg;
    char **name = &c->rules[idx].name;
    if (cfg_read_str(v, e, "name", true, false, name) != 1)
        return;
    size_t s = cfg_path_key(v, "name", 4);
    const json_node_t *n = json_object_get(e, "name");
    size_t i = 0;
    while (i < idx && !(c->rules[i].name && strcmp(c->rules[i].name, *name) == 0))
        i++;
    if (!rule_name_ok(*name))
        ERR(v, n, "must match ^[A-Za-z0-9_.-]{1,64}$");
    else if (i < idx)
        ERR(v, n, "duplicate rule name \"%s\" (also $.alerts.rules[%zu])", *name, i);
    cfg_path_pop(v, s);
}

static void read_threshold(struct vctx *v, const json_node_t *e, struct config_rule *r)
{
    size_t s;
    if (json_object_get(e, "idle_s")) {
        s = cfg_path_key(v, "idle_s", 6);
        ERR(v, json_object_get(e, "idle_s"), "only for inactivity rules");
        cfg_path_pop(v, s);
    }
    cfg_read_period(v, e, "period", &r->period);
    int64_t warn = 80, crit = 50;
    int wrc = cfg_read_int(v, e, "warn_pct", 0, 1000, &warn);
    int crc = cfg_read_int(v, e, "critical_pct", 0, 1000, &crit);
    if (wrc >= 0 && crc >= 0 && crit > warn) {
        const char *key = crc == 1 ? "critical_pct" : "warn_pct";
        s = cfg_path_key(v, key, strlen(key));
        if (crc == 1)
            ERR(v, json_object_get(e, key), "must not exceed warn_pct (%lld)", (long long)warn);
        else
            ERR(v, json_object_get(e, key), "must not be below critical_pct (%lld by default)",
                (long long)crit);
        cfg_path_pop(v, s);
    }
    r->warn_pct = (int)warn;
    r->critical_pct = (int)crit;
    cfg_read_num(v, e, "min_elapsed_pct", false, 0, false, 100, &r->min_elapsed_pct);
}

static void read_inactivity(struct vctx *v, const json_node_t *e, struct config_rule *r)
{
    static const char *const threshold_only[] = {"period", "warn_pct", "critical_pct",
                                                 "min_elapsed_pct", NULL};
    for (size_t i = 0; threshold_only[i]; i++) {
        const json_node_t *n = json_object_get(e, threshold_only[i]);
        if (!n)
            continue;
        size_t s = cfg_path_key(v, threshold_only[i], strlen(threshold_only[i]));
        ERR(v, n, "only for threshold rules");
        cfg_path_pop(v, s);
    }
    size_t s;
    const json_node_t *n = cfg_enter(v, e, "idle_s", true, &s);
    if (n)
        cfg_node_int(v, n, 60, 30 * DAY_S, &r->idle_s);
    cfg_path_pop(v, s);
}

static void read_rule(struct vctx *v, const json_node_t *e, size_t idx)
{
    static const char *const keys[] = {"name", "kind", "metric", "period", "warn_pct",
                                       "critical_pct", "min_elapsed_pct", "escalate_after_s",
                                       "idle_s", NULL};
    struct config_rule *r = &v->cfg->rules[idx];
    r->warn_pct = 80;
    r->critical_pct = 50;
    r->min_elapsed_pct = 10;
    if (json_kind(e) != JSON_OBJECT) {
        ERR(v, e, "must be an object");
        return;
    }
    cfg_check_keys(v, e, keys);
    read_rule_name(v, e, idx);
    size_t s;
    const json_node_t *k = cfg_enter(v, e, "kind", false, &s);
    bool kind_ok = !k || cfg_str_is(k, "threshold") || cfg_str_is(k, "inactivity");
    r->kind = cfg_str_is(k, "inactivity") ? RULE_INACTIVITY : RULE_THRESHOLD;
    if (!kind_ok)
        ERR(v, k, "must be \"threshold\" or \"inactivity\"");
    cfg_path_pop(v, s);
    cfg_read_metric(v, e, "metric", r->kind == RULE_INACTIVITY, &r->metric);
    cfg_read_int(v, e, "escalate_after_s", 0, 365 * DAY_S, &r->escalate_after_s);
    if (kind_ok && r->kind == RULE_INACTIVITY)
        read_inactivity(v, e, r);
    else if (kind_ok)
        read_threshold(v, e, r);
}

static void read_webhook(struct vctx *v, const json_node_t *a)
{
    static const char *const keys[] = {"url", "timeout_ms", NULL};
    config_t *c = v->cfg;
    size_t saved;
    const json_node_t *w = cfg_read_obj(v, a, "webhook", false, &saved);
    cfg_check_keys(v, w, keys);
    const char *u = cfg_read_str(v, w, "url", false, true, &c->webhook_url) == 1
                        ? c->webhook_url : NULL;
    size_t scheme = !u ? 0 : strncmp(u, "http://", 7) == 0 ? 7
                           : strncmp(u, "https://", 8) == 0 ? 8 : 0;
    bool clean = true;
    for (const char *p = u; p && *p; p++)
        clean &= (unsigned char)*p > 0x20 && *p != 0x7f;
    if (u && (!scheme || !u[scheme] || !clean)) {
        size_t s = cfg_path_key(v, "url", 3);
        ERR(v, json_object_get(w, "url"), "must be an http:// or https:// URL without spaces, "
            "or null");
        cfg_path_pop(v, s);
    }
    int64_t x;
    if (cfg_read_int(v, w, "timeout_ms", 100, 60000, &x) == 1)
        c->webhook_timeout_ms = (int)x;
    cfg_path_pop(v, saved);
}

void cfg_read_alerts(struct vctx *v, const json_node_t *root)
{
    static const char *const keys[] = {"clock", "eval_interval_s", "repeat_s", "stream_maxlen",
                                       "rules", "webhook", NULL};
    config_t *c = v->cfg;
    size_t saved, s2;
    const json_node_t *a = cfg_read_obj(v, root, "alerts", false, &saved);
    if (a) {
        cfg_check_keys(v, a, keys);
        const json_node_t *clock = cfg_enter(v, a, "clock", false, &s2);
        c->alerts_event_clock = cfg_str_is(clock, "event");
        if (clock && !c->alerts_event_clock && !cfg_str_is(clock, "wall"))
            ERR(v, clock, "must be \"wall\" or \"event\"");
        cfg_path_pop(v, s2);
        cfg_read_int(v, a, "eval_interval_s", 1, DAY_S, &c->alerts_eval_interval_s);
        cfg_read_int(v, a, "repeat_s", 0, 30 * DAY_S, &c->alerts_repeat_s);
        cfg_read_int(v, a, "stream_maxlen", 100, 100000000, &c->alerts_stream_maxlen);
        read_webhook(v, a);

        const json_node_t *r = cfg_enter(v, a, "rules", false, &s2);
        size_t n = json_array_len(r);
        if (r && json_kind(r) != JSON_ARRAY) {
            ERR(v, r, "must be an array of rules");
        } else if (n) {
            c->rules = calloc(n, sizeof *c->rules);
            c->n_rules = c->rules ? n : 0;
            v->oom |= !c->rules;
            for (size_t i = 0; i < c->n_rules; i++) {
                size_t s = cfg_path_index(v, i);
                read_rule(v, json_array_at(r, i), i);
                cfg_path_pop(v, s);
            }
        }
        cfg_path_pop(v, s2);
    }
    cfg_path_pop(v, saved);
}

void cfg_alerts_free(config_t *c)
{
    for (size_t i = 0; i < c->n_rules; i++) {
        free(c->rules[i].name);
        free(c->rules[i].metric);
    }
    free(c->rules);
    free(c->webhook_url);
}
