/* kpictl: the figures of one scope and period (a counters hash, its :kpi hash and the
 * scope's pipeline) as text and as JSON, shared by `manager` and `team`. Field order is
 * fixed (README order, stages in configured order, the rest sorted), never Redis' hash
 * order, so the output of two runs over the same data is the same. */
#include <stdlib.h>
#include <string.h>

#include "kpictl_impl.h"

/* The counters of README "What counts", before and after the stage entries. */
static const char *const activity_counters[] = {
    "calls",          "calls_connected",  "call_seconds",       "calls_in",
    "emails",         "emails_in",        "meetings_scheduled", "meetings_held",
    "meetings_no_show", "meetings_cancelled", "meetings_first", "meetings_next_step",
    "touches",        "internal_filtered"};
static const char *const deal_counters[] = {"deals_won", "deals_lost", "revenue_won_cents",
                                            "cycle_seconds_won"};
static const char *const derived_known[] = {"win_rate", "avg_deal_cents", "avg_cycle_days",
                                            "touches_per_first_meeting", "next_step_rate"};
static const char *const target_suffixes[] = {"target", "expected", "pct", "state"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Every field name of an HGETALL reply, sorted; NULL-terminated, borrowed strings. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char **fields_sorted(const redisReply *h, size_t *n)
{
    size_t cap = reply_is_array(h) ? h->elements / 2 : 0;
    const char **out = calloc(cap + 1, sizeof *out);
    *n = 0;
    for (size_t i = 0; out && i < cap; i++)
        if (reply_str(h->element[2 * i]) && reply_str(h->element[2 * i + 1]))
            out[(*n)++] = h->element[2 * i]->str;
    if (out)
        qsort(out, *n, sizeof *out, cmp_str);
    return out;
}

static int in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s, list[i]))
            return 1;
    return 0;
}

static int is_known_counter(const config_t *cfg, const char *f)
{
    if (in_list(f, activity_counters, COUNT(activity_counters)) ||
        in_list(f, deal_counters, COUNT(deal_counters)))
        return 1;
    return !strncmp(f, "stage:", 6) && config_stage_find(cfg, f + 6) >= 0;
}

/* The calls back for each counter in the fixed order: known ones (0 when absent), then
 * any other field of the hash. */
typedef void counter_fn(void *ctx, const char *field, const char *value);

static void counters_each(const config_t *cfg, const redisReply *h, counter_fn *fn, void *ctx)
{
    char field[96];
    for (size_t i = 0; i < COUNT(activity_counters); i++) {
        const char *v = hash_str(h, activity_counters[i]);
        fn(ctx, activity_counters[i], v ? v : "0");
    }
    for (size_t i = 0; i < cfg->n_stages; i++) {
        snprintf(field, sizeof field, "stage:%s", cfg->stages[i].name);
        const char *v = hash_str(h, field);
        fn(ctx, field, v ? v : "0");
    }
    for (size_t i = 0; i < COUNT(deal_counters); i++) {
        const char *v = hash_str(h, deal_counters[i]);
        fn(ctx, deal_counters[i], v ? v : "0");
    }
    size_t n = 0;
    const char **all = fields_sorted(h, &n);
    for (size_t i = 0; all && i < n; i++)
        if (!is_known_counter(cfg, all[i]))
            fn(ctx, all[i], hash_str(h, all[i]));
    free(all);
}

/* "meetings_held:pct" -> 14 (the metric's length) when the suffix is a target figure. */
static size_t target_metric_len(const char *field)
{
    const char *colon = strrchr(field, ':');
    if (!colon || colon == field || !in_list(colon + 1, target_suffixes, COUNT(target_suffixes)))
        return 0;
    return (size_t)(colon - field);
}

/* The metrics with a target figure in the :kpi hash, sorted, each once; "" ends. The
 * names are copies: free the array and each name with targets_free. */
static char **targets_list(const redisReply *kpi, size_t *n)
{
    size_t nf = 0;
    const char **all = fields_sorted(kpi, &nf);
    char **out = calloc(nf + 1, sizeof *out);
    *n = 0;
    for (size_t i = 0; all && out && i < nf; i++) {
        size_t len = target_metric_len(all[i]);
        if (!len)
            continue;
        char *m = strndup(all[i], len);
        int dup = 0;
        for (size_t j = 0; m && j < *n && !dup; j++)
            dup = !strcmp(out[j], m);
        if (m && !dup)
            out[(*n)++] = m;
        else
            free(m);
    }
    free(all);
    if (out)
        qsort(out, *n, sizeof *out, cmp_str);
    return out;
}

static void targets_free(char **t, size_t n)
{
    for (size_t i = 0; t && i < n; i++)
        free(t[i]);
    free(t);
}

static const char *target_field(const redisReply *kpi, const char *metric, const char *suffix)
{
    char field[160];
    snprintf(field, sizeof field, "%s:%s", metric, suffix);
    return hash_str(kpi, field);
}

static int is_derived_other(const char *f)
{
    return !target_metric_len(f) && strcmp(f, "kpi_score") && strcmp(f, "bonus") &&
           !in_list(f, derived_known, COUNT(derived_known));
}

const char *figures_worst_state(const redisReply *kpi)
{
    int worst = -1;
    static const char *const states[] = {"ok", "warn", "critical"};
    for (size_t i = 0; reply_is_array(kpi) && i + 1 < kpi->elements; i += 2) {
        const char *f = reply_str(kpi->element[i]), *v = reply_str(kpi->element[i + 1]);
        const char *colon = f ? strrchr(f, ':') : NULL;
        if (!colon || strcmp(colon, ":state") || !v)
            continue;
        for (int s = 0; s < 3; s++)
            if (!strcmp(v, states[s]) && s > worst)
                worst = s;
    }
    return worst < 0 ? NULL : states[worst];
}

/* ---- text ---- */

static void counter_line(void *ctx, const char *field, const char *value)
{
    (void)ctx;
    printf("  %-24s %12s\n", field, value);
}

static void pipeline_text(const config_t *cfg, const redisReply *pl)
{
    char amount[32], weighted[32];
    fmt_units(amount, sizeof amount, hash_ll(pl, "open_amount_cents"));
    fmt_units(weighted, sizeof weighted, hash_ll(pl, "weighted_amount_cents"));
    printf("pipeline now: %lld open deals, amount %s, weighted %s\n", hash_ll(pl, "open_count"),
           amount, weighted);
    int any = 0;
    for (size_t i = 0; i < cfg->n_stages; i++) {
        char field[96];
        snprintf(field, sizeof field, "open:%s", cfg->stages[i].name);
        long long v = hash_ll(pl, field);
        if (cfg->stages[i].terminal || !v)
            continue;
        printf("%s %s %lld", any ? "," : "  open by stage:", cfg->stages[i].name, v);
        any = 1;
    }
    if (any)
        putchar('\n');
}

void figures_text(const config_t *cfg, const struct figures *f)
{
    printf("counters\n");
    counters_each(cfg, f->counters, counter_line, NULL);
    size_t nt = 0;
    char **t = targets_list(f->kpi, &nt);
    if (nt) {
        int wm = 6;
        for (size_t i = 0; i < nt; i++)
            wm = (int)strlen(t[i]) > wm ? (int)strlen(t[i]) : wm;
        printf("\n  %-*s %10s %10s %10s %9s  %s\n", wm, "target", "actual", "target", "expected",
               "pct", "state");
        for (size_t i = 0; i < nt; i++) {
            const char *actual = hash_str(f->counters, t[i]);
            const char *target = target_field(f->kpi, t[i], "target");
            const char *expected = target_field(f->kpi, t[i], "expected");
            const char *pct = target_field(f->kpi, t[i], "pct");
            const char *state = target_field(f->kpi, t[i], "state");
            printf("  %-*s %10s %10s %10s %9s  %s\n", wm, t[i], actual ? actual : "0",
                   target ? target : "-", expected ? expected : "-", pct ? pct : "-",
                   state ? state : "-");
        }
    }
    targets_free(t, nt);
    const char *score = hash_str(f->kpi, "kpi_score"), *bonus = hash_str(f->kpi, "bonus");
    if (score || bonus)
        printf("\nkpi score %s, bonus %s\n", score ? score : "-", bonus ? bonus : "-");
    size_t nf = 0;
    const char **all = fields_sorted(f->kpi, &nf);
    int header = 0;
    for (size_t i = 0; i < COUNT(derived_known) + nf; i++) {
        const char *name = i < COUNT(derived_known) ? derived_known[i] : all ? all[i - COUNT(derived_known)] : NULL;
        if (!name || (i >= COUNT(derived_known) && !is_derived_other(name)))
            continue;
        const char *v = hash_str(f->kpi, name);
        if (!v)
            continue;
        if (!header++)
            printf("\nderived\n");
        printf("  %-24s %12s\n", name, v);
    }
    free(all);
    putchar('\n');
    pipeline_text(cfg, f->pipeline);
}

/* ---- JSON ---- */

static void counter_json(void *ctx, const char *field, const char *value)
{
    jw_auto(ctx, field, value);
}

void figures_counters_json(struct jw *w, const config_t *cfg, const redisReply *counters)
{
    jw_begin(w, "counters", '{');
    counters_each(cfg, counters, counter_json, w);
    jw_end(w, '}');
}

void figures_targets_json(struct jw *w, const redisReply *counters, const redisReply *kpi)
{
    size_t nt = 0;
    char **t = targets_list(kpi, &nt);
    jw_begin(w, "targets", '{');
    for (size_t i = 0; i < nt; i++) {
        const char *actual = hash_str(counters, t[i]);
        jw_begin(w, t[i], '{');
        jw_num(w, "actual", actual ? actual : "0");
        jw_num(w, "target", target_field(kpi, t[i], "target"));
        jw_num(w, "expected", target_field(kpi, t[i], "expected"));
        jw_num(w, "pct", target_field(kpi, t[i], "pct"));
        jw_str(w, "state", target_field(kpi, t[i], "state"));
        jw_end(w, '}');
    }
    jw_end(w, '}');
    targets_free(t, nt);
}

void figures_json(struct jw *w, const config_t *cfg, const struct figures *f)
{
    figures_counters_json(w, cfg, f->counters);
    figures_targets_json(w, f->counters, f->kpi);
    jw_num(w, "kpi_score", hash_str(f->kpi, "kpi_score"));
    jw_num(w, "bonus", hash_str(f->kpi, "bonus"));
    jw_begin(w, "derived", '{');
    for (size_t i = 0; i < COUNT(derived_known); i++)
        if (hash_str(f->kpi, derived_known[i]))
            jw_num(w, derived_known[i], hash_str(f->kpi, derived_known[i]));
    size_t nf = 0;
    const char **all = fields_sorted(f->kpi, &nf);
    for (size_t i = 0; all && i < nf; i++)
        if (is_derived_other(all[i]))
            jw_auto(w, all[i], hash_str(f->kpi, all[i]));
    free(all);
    jw_end(w, '}');
    jw_begin(w, "pipeline", '{');
    jw_int(w, "open_count", hash_ll(f->pipeline, "open_count"));
    jw_int(w, "open_amount_cents", hash_ll(f->pipeline, "open_amount_cents"));
    jw_int(w, "weighted_amount_cents", hash_ll(f->pipeline, "weighted_amount_cents"));
    jw_begin(w, "open", '{');
    for (size_t i = 0; i < cfg->n_stages; i++) {
        char field[96];
        snprintf(field, sizeof field, "open:%s", cfg->stages[i].name);
        if (!cfg->stages[i].terminal)
            jw_int(w, cfg->stages[i].name, hash_ll(f->pipeline, field));
    }
    jw_end(w, '}');
    jw_end(w, '}');
}
