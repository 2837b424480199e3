/* The hashes of the flush: counters, derived figures, deal states, pipelines, leaderboards,
 * per-hour sums and rolling windows. Reads go out with the batch's other reads (sink.c's
 * begin), writes are appended inside its MULTI, so all of it is as atomic as the offsets:
 * a crash or a second kpid can neither count a deal's entry twice nor lose one.
 *
 * A field of a counters, per-hour or window hash whose current value kpid knows is written
 * as base + delta in one multi-field HSET per hash (a fraction of the Redis time of the
 * HINCRBYs it replaces); any other field with HINCRBY, whose answer in EXEC's reply then
 * tells kpid the value. Known means read at begin (only the inputs of figures that may
 * change are read) or cached from this process's own last flush, trusted while kpi:meta
 * flush_seq shows no other writer since; every flush WATCHes kpi:meta, so what was read or
 * trusted is still true at EXEC. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "derived.h"
#include "log.h"
#include "sink_impl.h"

#define ROLLING_WINDOWS 3
static const int64_t window_hours[ROLLING_WINDOWS] = {24, 7 * 24, 30 * 24};
static const char *const window_names[ROLLING_WINDOWS] = {"24h", "7d", "30d"};
#define HOURS_KEPT (30 * 24)
/* Hashes remembered between flushes, per family; past this the cache starts over. */
#define CACHE_MAX_HASHES 50000

void sink_set_funnel(sink_t *s, const deals_rules_t *rules, const struct config_stage *stages,
                     size_t n_stages)
{
    static const size_t activity_inputs[] = {COUNTER_TOUCHES, COUNTER_MEETINGS_FIRST,
                                             COUNTER_MEETINGS_NEXT_STEP};
    s->rules = rules;
    s->stages = stages;
    s->n_stages = n_stages;
    s->n_inputs = 0;
    for (size_t i = 0; i < sizeof activity_inputs / sizeof *activity_inputs; i++)
        s->inputs[s->n_inputs++] = activity_inputs[i];
    for (size_t i = 0; rules && i < deals_counter_count(rules); i++)
        s->inputs[s->n_inputs++] = TALLY_DEAL_BASE + i;
    for (size_t i = 0; i < s->n_inputs; i++)
        s->input_names[i] = tally_counter_name(rules, s->inputs[i]);
    /* The counters may have changed with the rules: start the cache over, sized to them. */
    agg_free(s->cache_counters);
    /* One more value: whether this process already set the :kpi hash's expiry. */
    s->cache_counters = agg_new(tally_counter_count(rules) + 1);
    sink_funnel_forget(s);
}

void sink_funnel_forget(sink_t *s)
{
    if (s->cache_counters)
        agg_reset(s->cache_counters);
    if (s->cache_hours)
        agg_reset(s->cache_hours);
    if (s->cache_rolling)
        agg_reset(s->cache_rolling);
    s->cache_seq = -1;
    s->cache_trusted = false;
    s->n_learn = 0;
}

void sink_funnel_learn(sink_t *s, const redisReply *exec)
{
    for (size_t i = 0; i < s->n_learn; i++) {
        const struct sink_learn *l = &s->learn[i];
        const redisReply *r = l->index < exec->elements ? exec->element[l->index] : NULL;
        *l->slot = r && r->type == REDIS_REPLY_INTEGER ? r->integer : SINK_UNKNOWN;
    }
    s->n_learn = 0;
}

static int learn_later(sink_t *s, size_t index, int64_t *slot)
{
    if (s->n_learn == s->learn_cap) {
        size_t cap = s->learn_cap ? s->learn_cap * 2 : 1024;
        struct sink_learn *l = realloc(s->learn, cap * sizeof *l);
        if (!l)
            return -1;
        s->learn = l;
        s->learn_cap = cap;
    }
    s->learn[s->n_learn++] = (struct sink_learn){index, slot};
    return 0;
}

void sink_funnel_commit_done(sink_t *s, bool committed)
{
    if (!committed) {
        sink_funnel_forget(s); /* it cached values the EXEC did not write */
        return;
    }
    s->cache_seq = s->pending_seq;
    /* Bounded: a family past its size starts over (hours pass, days pass). */
    agg_t *families[] = {s->cache_counters, s->cache_hours, s->cache_rolling};
    for (size_t i = 0; i < 3; i++)
        if (families[i] && agg_bucket_count(families[i]) > CACHE_MAX_HASHES)
            agg_reset(families[i]);
}

/* A cached hash knows all of `want` (n values). */
static bool cached(const sink_t *s, const agg_t *cache, enum scope_kind kind, const char *scope,
                   const char *id, const bool *want, size_t n)
{
    if (!s->cache_trusted || !cache)
        return false;
    const agg_bucket_t *c = agg_find(cache, kind, scope, id);
    if (!c)
        return false;
    for (size_t k = 0; k < n; k++)
        if ((!want || want[k]) && c->values[k] == SINK_UNKNOWN)
            return false;
    return true;
}

dealset_t *sink_deals(sink_t *s) { return s->deals; }

size_t sink_funnel_read_count(const sink_t *s)
{
    return s->n_deal_reads + s->n_base_reads;
}

static int reserve_requests(sink_t *s, size_t n_reads, size_t per_read)
{
    size_t need = n_reads * per_read;
    if (need > s->req_cap) {
        size_t *req = realloc(s->req, need * sizeof *req);
        if (!req)
            return -1;
        s->req = req;
        s->req_cap = need;
    }
    if (n_reads + 1 > s->req_start_cap) {
        size_t *start = realloc(s->req_start, (n_reads + 1) * sizeof *start);
        if (!start)
            return -1;
        s->req_start = start;
        s->req_start_cap = n_reads + 1;
    }
    return 0;
}

static int64_t hour_of(int64_t ms)
{
    return ms >= 0 ? ms / TALLY_HOUR_MS : -((-ms + TALLY_HOUR_MS - 1) / TALLY_HOUR_MS);
}

static void window_field(char *buf, size_t size, size_t index)
{
    snprintf(buf, size, "%s:%s", tally_rolling_metric_names[index % TALLY_ROLLING_METRICS],
             window_names[index / TALLY_ROLLING_METRICS]);
}

int sink_funnel_begin_send(sink_t *s, batch_t *batch, const tally_t *tally)
{
    char key[KEYS_MAX + 8];
    dealset_reset(s->deals);
    agg_reset(s->base);
    s->n_deal_reads = s->n_base_reads = s->n_skipped = 0;
    for (size_t i = 0; i < batch_event_count(batch); i++) {
        const event_t *ev = &batch_event_at(batch, i)->event;
        if (ev->type == EVENT_DEAL_STAGE && !dealset_add(s->deals, ev->deal_id))
            return -1;
    }
    for (size_t i = 0; i < dealset_count(s->deals); i++) {
        if (keys_deal(key, sizeof key, s->prefix, dealset_at(s->deals, i)->deal_id) < 0)
            return -1; /* cannot happen: ids are at most 128 bytes */
        redisAppendCommand(s->redis, "HGETALL %s", key);
        s->n_deal_reads++;
    }
    s->commands += s->n_deal_reads;
    if (!tally)
        return (int)sink_funnel_read_count(s);
    /* Of every hash the batch touches, the counters it may change: the base of the
     * absolute writes; and the inputs of the figures that may change with them. */
    size_t n_counters = tally_counter_count(s->rules);
    if (sink_argv_reserve(s, n_counters + 2 + TALLY_ROLLING_METRICS * ROLLING_WINDOWS) != 0)
        return -1;
    const agg_t *counters = tally_counters(tally);
    if (reserve_requests(s, agg_bucket_count(counters), n_counters) != 0)
        return -1;
    s->n_req = 0;
    bool want[TALLY_COUNTERS];
    for (size_t b = 0; b < agg_bucket_count(counters); b++) {
        const agg_bucket_t *c = agg_bucket_at(counters, b);
        if (keys_scope(key, sizeof key, s->prefix, c->kind, c->scope, c->period_id) < 0)
            continue;
        bool activity_inputs = c->values[COUNTER_TOUCHES] || c->values[COUNTER_MEETINGS_FIRST] ||
                               c->values[COUNTER_MEETINGS_NEXT_STEP];
        bool any = false;
        for (size_t k = 0; k < n_counters; k++) {
            want[k] = (activity_inputs && (k == COUNTER_TOUCHES || k == COUNTER_MEETINGS_FIRST ||
                                           k == COUNTER_MEETINGS_NEXT_STEP)) ||
                      (c->values[TALLY_DEAL_MARK] && k >= TALLY_DEAL_BASE);
            any |= want[k];
        }
        if (!any)
            continue; /* no figure can change: counters are incremented, nothing to read */
        if (cached(s, s->cache_counters, c->kind, c->scope, c->period_id, want, n_counters)) {
            s->n_skipped++;
            continue;
        }
        agg_bucket_t *base = agg_bucket_id(s->base, c->kind, c->scope, c->period_kind,
                                           c->period_id, c->period_end_ms);
        if (!base)
            return -1;
        for (size_t k = 0; k < n_counters; k++)
            base->values[k] = SINK_UNKNOWN;
        size_t argc = 0;
        sink_arg(s, argc++, "HMGET");
        sink_arg(s, argc++, key);
        s->req_start[s->n_base_reads] = s->n_req;
        for (size_t k = 0; k < n_counters; k++) {
            if (!want[k])
                continue;
            s->req[s->n_req++] = k;
            sink_arg(s, argc++, tally_counter_name(s->rules, k));
        }
        sink_append_argv(s, (int)argc);
        s->n_base_reads++;
    }
    s->req_start[s->n_base_reads] = s->n_req;
    return (int)sink_funnel_read_count(s);
}

static void load_deal(sink_t *s, dealset_entry_t *e, const redisReply *r)
{
    char err[256];
    e->exists = false;
    e->changed = false;
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0)
        return;
    deals_reader_t reader;
    deals_reader_init(&reader);
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            deals_reader_field(&reader, s->rules, f->str, f->len, v->str, v->len, err,
                               sizeof err) != 0)
            goto unreadable;
    }
    switch (deals_reader_finish(&reader, &e->state, err, sizeof err)) {
    case 0: e->exists = true; return;
    case 1: return;
    default: goto unreadable;
    }
unreadable:
    /* Someone edited the hash by hand or the stages were reordered: the deal restarts. */
    log_error("redis %s: %s:deal:{%s} cannot be read (%s); the deal is treated as new and the "
              "hash will be overwritten",
              s->address, s->prefix, e->deal_id, err);
}

/* Reads the HMGET reply of each counters hash asked about, in order: counter
 * req[req_start[b] + j] of hash b is the reply's element j, 0 when the field does not exist.
 * A reply that is not the expected array (a key of the wrong type) leaves the hash
 * SINK_UNKNOWN, so its writes fall back to HINCRBY (whose error EXEC then reports). */
static int read_counters(sink_t *s, char *err, size_t errlen)
{
    for (size_t b = 0; b < s->n_base_reads; b++) {
        redisReply *r = sink_read(s, err, errlen);
        if (!r)
            return -1;
        const agg_bucket_t *bucket = agg_bucket_at(s->base, b);
        size_t first = s->req_start[b], n = s->req_start[b + 1] - first;
        if (bucket && r->type == REDIS_REPLY_ARRAY && r->elements >= n) {
            for (size_t j = 0; j < n; j++) {
                const redisReply *v = r->element[j];
                bucket->values[s->req[first + j]] =
                    v->type == REDIS_REPLY_STRING ? strtoll(v->str, NULL, 10) : 0;
            }
        }
        freeReplyObject(r);
    }
    return 0;
}

int sink_funnel_begin_read(sink_t *s, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->n_deal_reads; i++) {
        redisReply *r = sink_read(s, err, errlen);
        if (!r)
            return -1;
        load_deal(s, dealset_at(s->deals, i), r);
        freeReplyObject(r);
    }
    if (read_counters(s, err, errlen) != 0)
        return -1;
    if (s->cache_seq < 0 || s->seen_seq != s->cache_seq) {
        /* Someone else flushed since our last commit (or we have none): what we cached may
         * be stale. Without skipped reads everything needed was just read. */
        bool skipped = s->n_skipped > 0;
        sink_funnel_forget(s);
        if (skipped)
            return 1;
    } else {
        s->cache_trusted = true;
    }
    s->pending_seq = (s->seen_seq < 0 ? 0 : s->seen_seq) + 1;
    return 0;
}

/* The current values of a hash as far as known: read at begin (base may be NULL: per-hour
 * sums and windows are never read), else cached; SINK_UNKNOWN where neither knows. False
 * when the hash is unknown altogether. */
static bool base_of(const sink_t *s, const agg_t *base, const agg_t *cache, enum scope_kind kind,
                    const char *scope, const char *id, size_t n, int64_t *out)
{
    const agg_bucket_t *read = base ? agg_find(base, kind, scope, id) : NULL;
    const agg_bucket_t *kept = s->cache_trusted && cache ? agg_find(cache, kind, scope, id) : NULL;
    if (!read && !kept)
        return false;
    for (size_t k = 0; k < n; k++)
        out[k] = read && read->values[k] != SINK_UNKNOWN ? read->values[k]
                 : kept                                  ? kept->values[k]
                                                         : SINK_UNKNOWN;
    return true;
}

/* After a hash is written: what it holds now, as far as known. The cache is filled from
 * the values of the transaction being sent; sink_funnel_commit_done keeps or drops it. */
static int remember(agg_t *cache, enum scope_kind kind, const char *scope, enum period_kind pk,
                    const char *id, int64_t end_ms, const int64_t *base, const int64_t *delta,
                    size_t n, int64_t **slots)
{
    *slots = NULL;
    if (!cache)
        return 0;
    agg_bucket_t *c = agg_find(cache, kind, scope, id);
    if (!c && !(c = agg_bucket_id(cache, kind, scope, pk, id, end_ms)))
        return -1;
    for (size_t k = 0; k < n; k++)
        c->values[k] = base && base[k] != SINK_UNKNOWN ? base[k] + delta[k] : SINK_UNKNOWN;
    *slots = c->values; /* arena memory: stays put until the cache is reset */
    return 0;
}

/* CMD key a b: without hiredis' format parser, which is most of what a command costs kpid.
 * The argument vector is separate from s->argv, which may hold a command being built. */
static void append4(sink_t *s, const char *cmd, const char *key, const char *a, const char *b)
{
    const char *argv[4] = {cmd, key, a, b};
    size_t lens[4] = {strlen(cmd), strlen(key), strlen(a), strlen(b)};
    redisAppendCommandArgv(s->redis, 4, argv, lens);
}

/* Appends the changed fields of one hash: one HSET of base + delta for the fields whose
 * value is known, one HINCRBY for each other (its result, command number `at` + i of the
 * transaction, is learnt into slots[field] when slots is given). Returns the commands
 * queued, or -1 on OOM. */
static long write_fields(sink_t *s, const char *key, const char *const *names,
                         const int64_t *base, const int64_t *delta, size_t n, int64_t *slots,
                         long at)
{
    char nums[TALLY_COUNTERS][24];
    long q = 0;
    size_t argc = 2, n_set = 0;
    for (size_t i = 0; i < n && n_set < TALLY_COUNTERS; i++) {
        if (!delta[i])
            continue;
        if (!base || base[i] == SINK_UNKNOWN) {
            char num[24];
            snprintf(num, sizeof num, "%" PRId64, delta[i]);
            append4(s, "HINCRBY", key, names[i], num);
            if (slots && learn_later(s, (size_t)(at + q), &slots[i]) != 0)
                return -1;
            q++;
            continue;
        }
        snprintf(nums[n_set], sizeof nums[0], "%" PRId64, base[i] + delta[i]);
        sink_arg(s, argc++, names[i]);
        sink_arg(s, argc++, nums[n_set++]);
    }
    if (n_set) {
        sink_arg(s, 0, "HSET");
        sink_arg(s, 1, key);
        sink_append_argv(s, (int)argc);
        q++;
    }
    return q;
}

/* ---- writes, appended inside the flush's MULTI ---- */

struct figures_ctx {
    const sink_t *s;
    const int64_t *base, *delta; /* delta NULL: the figures before this flush */
    size_t next;                 /* where the last name was found, plus one */
};

static int64_t figures_lookup(void *ctx, const char *name)
{
    struct figures_ctx *f = ctx;
    size_t n = f->s->n_inputs;
    /* Figures ask in nearly the inputs' order: start after the last hit. */
    for (size_t i = 0; i < n; i++) {
        size_t k = (f->next + i) % n;
        if (strcmp(f->s->input_names[k], name) == 0) {
            /* Inputs of figures that cannot change were not read: 0 before and after. */
            int64_t base = f->base[f->s->inputs[k]];
            f->next = k + 1;
            return (base == SINK_UNKNOWN ? 0 : base) + (f->delta ? f->delta[f->s->inputs[k]] : 0);
        }
    }
    return 0;
}

/* Whether figure `fig` has the same value in `before` (figures come in a fixed order, and
 * counters only grow, so a figure present before is present after). */
static bool figure_unchanged(const derived_t *before, size_t *cursor, const derived_figure_t *fig)
{
    while (*cursor < before->n && strcmp(before->fig[*cursor].field, fig->field) != 0)
        (*cursor)++;
    return *cursor < before->n && strcmp(before->fig[*cursor].value, fig->value) == 0;
}

static int64_t expiry_of(const sink_t *s, enum period_kind kind, int64_t end_ms)
{
    int64_t keep = kind == PERIOD_DAY    ? s->retention_day_s
                   : kind == PERIOD_WEEK ? s->retention_week_s
                                         : 0;
    return keep ? end_ms / 1000 + keep : 0;
}

/* The :kpi figures of one counters hash whose inputs changed; only figures whose value
 * changed are written: most flushes move touches of managers without a first meeting,
 * which changes no figure at all. */
static long append_figures(sink_t *s, const agg_bucket_t *c, const int64_t *base,
                           const char *counters_key, int64_t *expiry_set)
{
    char key[KEYS_MAX + 8], err[256];
    derived_t d, before;
    snprintf(key, sizeof key, "%s:kpi", counters_key);
    struct figures_ctx now = {s, base, c->values, 0}, then = {s, base, NULL, 0};
    if (derived_compute(s->stages, s->n_stages, figures_lookup, &now, &d, err, sizeof err) ||
        derived_compute(s->stages, s->n_stages, figures_lookup, &then, &before, err,
                        sizeof err)) {
        log_error("derived figures of %s: %s", key, err);
        return 0;
    }
    size_t argc = 0, cursor = 0;
    sink_arg(s, argc++, "HSET");
    sink_arg(s, argc++, key);
    for (size_t i = 0; i < d.n; i++) {
        if (figure_unchanged(&before, &cursor, &d.fig[i]))
            continue;
        sink_arg(s, argc++, d.fig[i].field);
        sink_arg(s, argc++, d.fig[i].value);
    }
    if (argc == 2)
        return 0;
    sink_append_argv(s, (int)argc);
    int64_t at = expiry_of(s, c->period_kind, c->period_end_ms);
    if (!at || (expiry_set && *expiry_set))
        return 1;
    redisAppendCommand(s->redis, "EXPIREAT %s %lld", key, (long long)at);
    if (expiry_set)
        *expiry_set = 1;
    return 2;
}

/* Counters (day and week keys expire) and their figures. */
static long append_counters(sink_t *s, const agg_t *counters)
{
    long q = 0;
    char key[KEYS_MAX];
    const char *names[TALLY_COUNTERS];
    size_t n_counters = tally_counter_count(s->rules);
    for (size_t i = 0; i < n_counters; i++)
        names[i] = tally_counter_name(s->rules, i);
    if (sink_argv_reserve(s, 2 + 2 * (TALLY_COUNTERS + DERIVED_MAX_FIGURES)) != 0)
        return -1;
    for (size_t b = 0; b < agg_bucket_count(counters); b++) {
        const agg_bucket_t *c = agg_bucket_at(counters, b);
        if (keys_scope(key, sizeof key, s->prefix, c->kind, c->scope, c->period_id) < 0)
            continue;
        int64_t base[TALLY_COUNTERS], *slots;
        bool known = base_of(s, s->base, s->cache_counters, c->kind, c->scope, c->period_id,
                             n_counters, base);
        bool changed = false;
        for (size_t k = 0; k < n_counters; k++)
            changed |= c->values[k] != 0;
        if (!changed)
            continue;
        /* A hash this process wrote before (nobody else since) already has its expiry. */
        bool expiry_set = s->cache_trusted &&
                          agg_find(s->cache_counters, c->kind, c->scope, c->period_id);
        if (remember(s->cache_counters, c->kind, c->scope, c->period_kind, c->period_id,
                     c->period_end_ms, known ? base : NULL, c->values, n_counters, &slots) != 0)
            return -1;
        long written = write_fields(s, key, names, known ? base : NULL, c->values, n_counters,
                                    slots, s->mq + q);
        if (written < 0)
            return -1;
        q += written;
        int64_t at = expiry_of(s, c->period_kind, c->period_end_ms);
        if (at && !expiry_set) {
            redisAppendCommand(s->redis, "EXPIREAT %s %lld", key, (long long)at);
            q++;
        }
        bool inputs_changed = false;
        for (size_t k = 0; k < s->n_inputs; k++)
            inputs_changed |= c->values[s->inputs[k]] != 0;
        if (!inputs_changed)
            continue;
        if (!known) {
            log_error("no current values read for %s; its derived figures are left as they were",
                      key);
            continue;
        }
        q += append_figures(s, c, base, key, slots ? &slots[n_counters] : NULL);
    }
    return q;
}

static long append_pipelines(sink_t *s, const agg_t *pipeline)
{
    long q = 0;
    char key[KEYS_MAX];
    for (size_t b = 0; b < agg_bucket_count(pipeline); b++) {
        const agg_bucket_t *p = agg_bucket_at(pipeline, b);
        if (keys_scope(key, sizeof key, s->prefix, p->kind, p->scope, "pipeline") < 0)
            continue;
        for (size_t i = 0; i < deals_pipe_count(s->rules); i++) {
            if (!p->values[i])
                continue;
            redisAppendCommand(s->redis, "HINCRBY %s %s %lld", key, deals_pipe_name(s->rules, i),
                               (long long)p->values[i]);
            q++;
        }
    }
    return q;
}

static long append_deals(sink_t *s)
{
    long q = 0;
    char key[KEYS_MAX], err[256];
    deals_hash_t h;
    if (sink_argv_reserve(s, 2 + 2 * DEALS_HASH_FIELDS) != 0)
        return -1;
    for (size_t i = 0; i < dealset_count(s->deals); i++) {
        const dealset_entry_t *e = dealset_at(s->deals, i);
        if (!e->changed)
            continue;
        if (keys_deal(key, sizeof key, s->prefix, e->deal_id) < 0 ||
            deals_state_format(s->rules, &e->state, &h, err, sizeof err) != 0) {
            log_error("deal %s: state not written: %s", e->deal_id, err);
            continue;
        }
        size_t argc = 0;
        sink_arg(s, argc++, "HSET");
        sink_arg(s, argc++, key);
        for (size_t f = 0; f < h.n; f++) {
            sink_arg(s, argc++, h.field[f]);
            sink_arg(s, argc++, h.value[f]);
        }
        sink_append_argv(s, (int)argc);
        q++;
    }
    return q;
}

/* One manager's entry on one board: ZINCRBY, and the board's expiry noted (once per
 * flush, not once per manager). */
static long board_entry(sink_t *s, size_t metric, const agg_bucket_t *b, int64_t value)
{
    char key[KEYS_MAX];
    if (!value || keys_leaderboard(key, sizeof key, s->prefix, tally_lb_metric_names[metric],
                                   b->period_id) < 0)
        return 0;
    char num[24];
    snprintf(num, sizeof num, "%" PRId64, value);
    append4(s, "ZINCRBY", key, num, b->scope);
    if (expiry_of(s, b->period_kind, b->period_end_ms) &&
        !agg_bucket_id(s->scratch, SCOPE_ORG, tally_lb_metric_names[metric], b->period_kind,
                       b->period_id, b->period_end_ms))
        return -1;
    return 1;
}

static long append_leaderboards(sink_t *s, const agg_t *leaders, const agg_t *counters)
{
    long q = 0, n;
    char key[KEYS_MAX];
    agg_reset(s->scratch);
    for (size_t b = 0; b < agg_bucket_count(leaders); b++) {
        const agg_bucket_t *l = agg_bucket_at(leaders, b);
        for (size_t m = 0; m < TALLY_LB_METRICS; m++) {
            if ((n = board_entry(s, m, l, l->values[m])) < 0)
                return -1;
            q += n;
        }
    }
    /* Managers in the organisation's zone: their own period buckets are the boards'. */
    for (size_t b = 0; b < agg_bucket_count(counters); b++) {
        const agg_bucket_t *c = agg_bucket_at(counters, b);
        if (c->kind != SCOPE_MANAGER || !(c->flags & TALLY_FLAG_BOARDS))
            continue;
        for (size_t m = 0; m < TALLY_LB_METRICS; m++) {
            if ((n = board_entry(s, m, c, c->values[tally_lb_counter(m)])) < 0)
                return -1;
            q += n;
        }
    }
    for (size_t b = 0; b < agg_bucket_count(s->scratch); b++) {
        const agg_bucket_t *k = agg_bucket_at(s->scratch, b);
        if (keys_leaderboard(key, sizeof key, s->prefix, k->scope, k->period_id) < 0)
            continue;
        redisAppendCommand(s->redis, "EXPIREAT %s %lld", key,
                           (long long)expiry_of(s, k->period_kind, k->period_end_ms));
        q++;
    }
    return q;
}

/* Per-hour sums, and the windows' running totals for the stored hour W: an event's hour
 * h is inside window N while h > W - N, and sink_rolling_advance takes it out later. */
static long append_rolling(sink_t *s, const agg_t *hourly, int64_t now_ms)
{
    long q = 0;
    char key[KEYS_MAX], fields[TALLY_ROLLING_METRICS * ROLLING_WINDOWS][48];
    const char *names[TALLY_ROLLING_METRICS * ROLLING_WINDOWS];
    int64_t w_ms = s->rolling_hour_ms;
    if (w_ms < 0) {
        w_ms = hour_of(now_ms) * TALLY_HOUR_MS;
        redisAppendCommand(s->redis, "HSET %s rolling_hour_ms %lld", s->key_meta, (long long)w_ms);
        q++;
    }
    int64_t wh = hour_of(w_ms);
    agg_reset(s->windows);
    for (size_t b = 0; b < agg_bucket_count(hourly); b++) {
        const agg_bucket_t *h = agg_bucket_at(hourly, b);
        int64_t hour = h->period_end_ms; /* tally keeps the hour number there */
        if (hour <= wh - HOURS_KEPT ||
            keys_scope(key, sizeof key, s->prefix, SCOPE_MANAGER, h->scope, "hourly") < 0)
            continue;
        for (size_t m = 0; m < TALLY_ROLLING_METRICS; m++) {
            snprintf(fields[m], sizeof fields[m], "%s:%" PRId64, tally_rolling_metric_names[m],
                     hour);
            names[m] = fields[m];
        }
        int64_t base[TALLY_ROLLING_METRICS], *slots;
        bool known = base_of(s, NULL, s->cache_hours, SCOPE_MANAGER, h->scope,
                             h->period_id, TALLY_ROLLING_METRICS, base);
        if (remember(s->cache_hours, SCOPE_MANAGER, h->scope, PERIOD_DAY, h->period_id, hour,
                     known ? base : NULL, h->values, TALLY_ROLLING_METRICS, &slots) != 0)
            return -1;
        long written = write_fields(s, key, names, known ? base : NULL, h->values,
                                    TALLY_ROLLING_METRICS, slots, s->mq + q);
        if (written < 0)
            return -1;
        q += written;
        agg_bucket_t *win =
            agg_bucket_id(s->windows, SCOPE_MANAGER, h->scope, PERIOD_DAY, "rolling", 0);
        if (!win)
            return -1;
        for (size_t w = 0; w < ROLLING_WINDOWS; w++)
            if (hour > wh - window_hours[w])
                for (size_t m = 0; m < TALLY_ROLLING_METRICS; m++)
                    win->values[w * TALLY_ROLLING_METRICS + m] += h->values[m];
    }
    for (size_t i = 0; i < TALLY_ROLLING_METRICS * ROLLING_WINDOWS; i++) {
        window_field(fields[i], sizeof fields[i], i);
        names[i] = fields[i];
    }
    for (size_t b = 0; b < agg_bucket_count(s->windows); b++) {
        const agg_bucket_t *win = agg_bucket_at(s->windows, b);
        if (keys_scope(key, sizeof key, s->prefix, SCOPE_MANAGER, win->scope, "rolling") < 0)
            continue;
        int64_t base[TALLY_ROLLING_METRICS * ROLLING_WINDOWS], *slots;
        bool known = base_of(s, NULL, s->cache_rolling, SCOPE_MANAGER, win->scope,
                             "rolling", TALLY_ROLLING_METRICS * ROLLING_WINDOWS, base);
        if (remember(s->cache_rolling, SCOPE_MANAGER, win->scope, PERIOD_DAY, "rolling", 0,
                     known ? base : NULL, win->values, TALLY_ROLLING_METRICS * ROLLING_WINDOWS,
                     &slots))
            return -1;
        long written = write_fields(s, key, names, known ? base : NULL, win->values,
                                    TALLY_ROLLING_METRICS * ROLLING_WINDOWS, slots, s->mq + q);
        if (written < 0)
            return -1;
        q += written;
    }
    return q;
}

/* Latest activity per manager and counter (kpi:mgr:{m}:last, a sorted set scored by event
 * ms): GT keeps the newest time whatever order batches and kpid write in. */
static long append_last(sink_t *s, const agg_t *last)
{
    long q = 0;
    char key[KEYS_MAX], scores[COUNTER_ACTIVITY_COUNT][24];
    const char *argv[3 + 2 * COUNTER_ACTIVITY_COUNT];
    for (size_t b = 0; b < agg_bucket_count(last); b++) {
        const agg_bucket_t *m = agg_bucket_at(last, b);
        if (keys_scope(key, sizeof key, s->prefix, SCOPE_MANAGER, m->scope, "last") < 0)
            continue;
        int argc = 0;
        argv[argc++] = "ZADD";
        argv[argc++] = key;
        argv[argc++] = "GT";
        for (size_t i = 0; i < COUNTER_ACTIVITY_COUNT; i++) {
            if (m->values[i] <= 0)
                continue;
            snprintf(scores[i], sizeof scores[i], "%" PRId64, m->values[i]);
            argv[argc++] = scores[i];
            argv[argc++] = agg_counter_name((enum counter)i);
        }
        if (argc == 3)
            continue;
        redisAppendCommandArgv(s->redis, argc, argv, NULL);
        q++;
    }
    return q;
}

long sink_funnel_commit_append(sink_t *s, const tally_t *tally, int64_t now_ms)
{
    long part;
    uint64_t before = s->commands;
    /* These are the first commands after MULTI: s->mq is each one's index in EXEC's reply.
     * One after the other, so the order stays fixed. */
    s->mq = 0;
    s->n_learn = 0;
    if ((part = append_counters(s, tally_counters(tally))) < 0)
        return -1;
    s->mq += part;
    if ((part = append_pipelines(s, tally_pipeline(tally))) < 0)
        return -1;
    s->mq += part;
    if ((part = append_deals(s)) < 0)
        return -1;
    s->mq += part;
    if ((part = append_leaderboards(s, tally_leaders(tally), tally_counters(tally))) < 0)
        return -1;
    s->mq += part;
    if ((part = append_rolling(s, tally_hourly(tally), now_ms)) < 0)
        return -1;
    s->mq += part;
    if ((part = append_last(s, tally_last(tally))) < 0)
        return -1;
    s->mq += part;
    s->commands = before + (uint64_t)s->mq;
    return s->mq;
}

/* ---- moving the rolling windows when the hour turns ---- */

/* Splits "touches:492345" into a metric index and an hour. */
static int parse_hour_field(const char *f, size_t len, size_t *metric, int64_t *hour)
{
    const char *colon = memchr(f, ':', len);
    if (!colon)
        return -1;
    for (size_t m = 0; m < TALLY_ROLLING_METRICS; m++) {
        const char *name = tally_rolling_metric_names[m];
        if (strlen(name) == (size_t)(colon - f) && memcmp(f, name, (size_t)(colon - f)) == 0) {
            char *end;
            *hour = strtoll(colon + 1, &end, 10);
            *metric = m;
            return end == f + len ? 0 : -1;
        }
    }
    return -1;
}

/* Queues, inside the MULTI, one manager's windows for hour th and the removal of hours
 * that no window needs any more. */
static long queue_manager_windows(sink_t *s, const char *manager, const redisReply *hourly,
                                  int64_t th)
{
    char key[KEYS_MAX], fields[ROLLING_WINDOWS * TALLY_ROLLING_METRICS][48],
        values[ROLLING_WINDOWS * TALLY_ROLLING_METRICS][24];
    int64_t sums[ROLLING_WINDOWS * TALLY_ROLLING_METRICS] = {0};
    long q = 0;
    size_t n_old = 0;
    if (keys_scope(key, sizeof key, s->prefix, SCOPE_MANAGER, manager, "hourly") < 0)
        return 0;
    if (hourly->type == REDIS_REPLY_ARRAY &&
        sink_argv_reserve(s, 2 + hourly->elements / 2 + 2 * ROLLING_WINDOWS *
                                                         TALLY_ROLLING_METRICS) != 0)
        return -1;
    size_t argc = 2;
    for (size_t i = 0; hourly->type == REDIS_REPLY_ARRAY && i + 1 < hourly->elements; i += 2) {
        const redisReply *f = hourly->element[i], *v = hourly->element[i + 1];
        size_t metric;
        int64_t hour;
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            parse_hour_field(f->str, f->len, &metric, &hour) != 0)
            continue;
        if (hour <= th - HOURS_KEPT) {
            s->argv[argc] = f->str; /* the reply outlives the queued HDEL */
            s->argvlen[argc++] = f->len;
            n_old++;
            continue;
        }
        int64_t value = strtoll(v->str, NULL, 10);
        for (size_t w = 0; w < ROLLING_WINDOWS; w++)
            if (hour > th - window_hours[w])
                sums[w * TALLY_ROLLING_METRICS + metric] += value;
    }
    if (n_old) {
        sink_arg(s, 0, "HDEL");
        sink_arg(s, 1, key);
        sink_append_argv(s, (int)argc);
        q++;
    }
    if (keys_scope(key, sizeof key, s->prefix, SCOPE_MANAGER, manager, "rolling") < 0)
        return q;
    argc = 0;
    sink_arg(s, argc++, "HSET");
    sink_arg(s, argc++, key);
    for (size_t w = 0; w < ROLLING_WINDOWS; w++)
        for (size_t m = 0; m < TALLY_ROLLING_METRICS; m++) {
            size_t i = w * TALLY_ROLLING_METRICS + m;
            snprintf(fields[i], sizeof fields[i], "%s:%s", tally_rolling_metric_names[m],
                     window_names[w]);
            snprintf(values[i], sizeof values[i], "%" PRId64, sums[i]);
            sink_arg(s, argc++, fields[i]);
            sink_arg(s, argc++, values[i]);
        }
    sink_append_argv(s, (int)argc);
    return q + 1;
}

int sink_rolling_advance(sink_t *s, int64_t now_ms, char *err, size_t errlen)
{
    if (s->in_flight || s->begin_pending) {
        snprintf(err, errlen, "internal error: a flush is still in flight");
        return -1;
    }
    if (sink_connect(s, err, errlen) != 0)
        return -1;
    int64_t target = hour_of(now_ms) * TALLY_HOUR_MS;
    redisAppendCommand(s->redis, "WATCH %s", s->key_meta);
    redisAppendCommand(s->redis, "HGET %s rolling_hour_ms", s->key_meta);
    redisAppendCommand(s->redis, "SMEMBERS %s", s->key_managers);
    s->commands += 3;
    redisReply *watch = sink_read(s, err, errlen);
    if (!watch)
        return -1;
    freeReplyObject(watch);
    s->watching = true;
    redisReply *stored = sink_read(s, err, errlen);
    if (!stored)
        return -1;
    redisReply *managers = sink_read(s, err, errlen);
    if (!managers) {
        freeReplyObject(stored);
        return -1;
    }
    int rc = 0;
    if ((stored->type == REDIS_REPLY_STRING && strtoll(stored->str, NULL, 10) >= target) ||
        managers->type != REDIS_REPLY_ARRAY) {
        sink_abort(s); /* not due (another kpid did it), or nothing to compute */
        goto out;
    }
    char key[KEYS_MAX];
    for (size_t i = 0; i < managers->elements; i++) {
        /* Manager ids are at most 64 bytes: the key always fits. */
        keys_scope(key, sizeof key, s->prefix, SCOPE_MANAGER, managers->element[i]->str,
                   "hourly");
        redisAppendCommand(s->redis, "HGETALL %s", key);
    }
    redisAppendCommand(s->redis, "MULTI");
    s->commands += managers->elements + 1;
    long queued = 0;
    for (size_t i = 0; i < managers->elements; i++) {
        redisReply *hourly = sink_read(s, err, errlen);
        if (!hourly) {
            rc = -1;
            goto out;
        }
        long q = queue_manager_windows(s, managers->element[i]->str, hourly, hour_of(target));
        freeReplyObject(hourly);
        if (q < 0) {
            /* Commands are half queued: drop the connection, nothing was applied. */
            snprintf(err, errlen, "out of memory moving the rolling windows");
            sink_disconnect(s);
            rc = -1;
            goto out;
        }
        queued += q;
    }
    redisAppendCommand(s->redis, "HSET %s rolling_hour_ms %lld", s->key_meta, (long long)target);
    redisAppendCommand(s->redis, "HINCRBY %s flush_seq 1", s->key_meta);
    queued += 2;
    /* Every manager's windows changed: say so on the change feed, like a flush does. */
    size_t cap = 64 + managers->elements * (EVENT_MANAGER_MAX + 3);
    char *json = malloc(cap);
    if (json && managers->elements) {
        size_t pos = (size_t)snprintf(json, cap, "{\"managers\":[");
        for (size_t i = 0; i < managers->elements; i++)
            pos += (size_t)snprintf(json + pos, cap - pos, "%s\"%s\"", i ? "," : "",
                                    managers->element[i]->str);
        snprintf(json + pos, cap - pos, "],\"ts\":%lld}", (long long)now_ms);
        redisAppendCommand(s->redis, "PUBLISH %s %s", s->key_updates, json);
        queued++;
    }
    free(json);
    redisAppendCommand(s->redis, "EXEC");
    s->commands += (uint64_t)queued + 1;
    char why[256] = ""; /* the first queued error says why (NOPERM, OOM); EXEC only EXECABORT */
    for (long i = 0; i < queued + 1; i++) { /* +OK, then +QUEUED each */
        redisReply *r = sink_read(s, err, errlen);
        if (!r) {
            rc = -1;
            goto out;
        }
        if (r->type == REDIS_REPLY_ERROR && !why[0])
            snprintf(why, sizeof why, "%s", r->str);
        freeReplyObject(r);
    }
    redisReply *exec = sink_read(s, err, errlen);
    if (!exec) {
        rc = -1;
        goto out;
    }
    s->watching = false;
    sink_funnel_forget(s); /* windows and hours rewritten */
    if (exec->type == REDIS_REPLY_NIL) {
        rc = 1;
    } else if (exec->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "redis %s: moving the rolling windows: %s", s->address,
                 why[0] ? why : exec->type == REDIS_REPLY_ERROR ? exec->str : "unexpected reply");
        rc = -1;
    }
    freeReplyObject(exec);
out:
    freeReplyObject(stored);
    freeReplyObject(managers);
    return rc;
}
