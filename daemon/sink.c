#include "sink.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dedup.h"
#include "keys.h"
#include "log.h"
#include "sink_impl.h"

static int sink_scratch_reserve(sink_t *s, size_t n_events, size_t n_parts)
{
    if (n_parts > s->part_ids_cap) {
        char(*ids)[12] = realloc(s->part_ids, n_parts * sizeof *ids);
        if (!ids)
            return -1;
        s->part_ids = ids;
        s->part_ids_cap = n_parts;
    }
    if (n_events > s->candidates_cap) {
        size_t *c = realloc(s->candidates, n_events * sizeof *c);
        if (!c)
            return -1;
        s->candidates = c;
        s->candidates_cap = n_events;
    }
    return 0;
}

sink_t *sink_new(const struct sink_params *p)
{
    sink_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (rconn_target_copy(p->redis, &s->target) != 0) {
        free(s);
        return NULL;
    }
    s->prefix = strdup(p->prefix);
    s->group = strdup(p->group);
    s->timeout_ms = s->target.timeout_ms;
    s->dedup_window_ms = p->dedup_window_ms;
    s->retention_day_s = p->retention_day_s;
    s->retention_week_s = p->retention_week_s;
    s->n_topics = p->n_topics;
    s->topics = calloc(p->n_topics ? p->n_topics : 1, sizeof *s->topics);
    s->key_offsets = calloc(p->n_topics ? p->n_topics : 1, sizeof *s->key_offsets);
    s->key_fence = calloc(p->n_topics ? p->n_topics : 1, sizeof *s->key_fence);
    s->seen = dedup_new();
    s->managers = dedup_new();
    s->present = calloc(p->n_topics ? p->n_topics : 1, sizeof *s->present);
    s->deals = dealset_new();
    s->base = agg_new(TALLY_COUNTERS);
    s->windows = agg_new(3 * TALLY_ROLLING_METRICS);
    s->scratch = agg_new(1);
    s->rolling_hour_ms = -1;
    s->cache_hours = agg_new(TALLY_ROLLING_METRICS);
    s->cache_rolling = agg_new(3 * TALLY_ROLLING_METRICS);
    s->cache_seq = -1;
    if (!s->cache_hours || !s->cache_rolling || !s->deals || !s->base || !s->windows || !s->scratch || !s->prefix || !s->group || !s->topics || !s->key_offsets || !s->key_fence ||
        !s->seen || !s->managers || !s->present) {
        sink_free(s);
        return NULL;
    }
    int bad = keys_global(s->key_meta, KEYS_MAX, s->prefix, "meta") < 0 ||
              keys_global(s->key_dedup, KEYS_MAX, s->prefix, "dedup") < 0 ||
              keys_global(s->key_managers, KEYS_MAX, s->prefix, "managers") < 0 ||
              keys_global(s->key_updates, KEYS_MAX, s->prefix, "updates") < 0;
    for (size_t i = 0; i < p->n_topics; i++) {
        s->topics[i] = strdup(p->topics[i]);
        bad |= !s->topics[i] ||
               keys_offsets(s->key_offsets[i], KEYS_MAX, s->prefix, s->group, p->topics[i]) < 0 ||
               keys_fence(s->key_fence[i], KEYS_MAX, s->prefix, s->group, p->topics[i]) < 0;
    }
    rconn_target_address(&s->target, s->address, sizeof s->address);
    if (bad) {
        sink_free(s);
        return NULL;
    }
    return s;
}

void sink_disconnect(sink_t *s)
{
    /* An EXEC may or may not have been applied: what we cached is no longer known. */
    sink_funnel_forget(s);
    if (s->redis) {
        s->errors++; /* every disconnect but the final one follows a failure */
        redisFree(s->redis);
    }
    s->redis = NULL;
    s->watching = false;
    s->in_flight = false;
    s->begin_pending = false;
}

void sink_free(sink_t *s)
{
    if (!s)
        return;
    sink_disconnect(s);
    for (size_t i = 0; s->topics && i < s->n_topics; i++)
        free(s->topics[i]);
    free(s->topics);
    free(s->key_offsets);
    free(s->key_fence);
    rconn_target_free(&s->target);
    free(s->prefix);
    free(s->group);
    free(s->argv);
    free(s->argvlen);
    dedup_free(s->seen);
    dedup_free(s->managers);
    free(s->json);
    free(s->part_ids);
    free(s->candidates);
    free(s->present);
    dealset_free(s->deals);
    agg_free(s->base);
    free(s->req);
    free(s->req_start);
    agg_free(s->cache_counters);
    agg_free(s->cache_hours);
    agg_free(s->cache_rolling);
    free(s->learn);
    agg_free(s->windows);
    agg_free(s->scratch);
    free(s);
}

bool sink_connected(const sink_t *s) { return s->redis != NULL; }
const char *sink_address(const sink_t *s) { return s->address; }
uint64_t sink_commands_sent(const sink_t *s) { return s->commands; }

/* Reads one reply; on a transport error the connection is dropped so the next attempt
 * reconnects, and err says what happened. */
redisReply *sink_read(sink_t *s, char *err, size_t errlen)
{
    void *reply = NULL;
    if (redisGetReply(s->redis, &reply) != REDIS_OK || !reply) {
        /* hiredis reports a read timeout as EAGAIN's text; say what happened. */
        if (s->redis->err == REDIS_ERR_IO && strstr(s->redis->errstr, "temporarily unavailable"))
            snprintf(err, errlen, "redis %s: no answer within %d ms (redis.timeout_ms)",
                     s->address, s->timeout_ms);
        else
            snprintf(err, errlen, "redis %s: %s", s->address,
                     s->redis->errstr[0] ? s->redis->errstr : "connection lost");
        sink_disconnect(s);
        return NULL;
    }
    if (rconn_is_readonly_error(reply))
        s->readonly_seen = true;
    return reply;
}

/* Sends a command and checks its reply is not an error. */
int sink_simple(sink_t *s, char *err, size_t errlen, int argc, const char **argv)
{
    if (redisAppendCommandArgv(s->redis, argc, argv, NULL) != REDIS_OK) {
        snprintf(err, errlen, "redis %s: out of memory", s->address);
        return -1;
    }
    s->commands++;
    redisReply *r = sink_read(s, err, errlen);
    if (!r)
        return -1;
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "redis %s: %s: %s", s->address, argv[0], r->str);
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

int sink_connect(sink_t *s, char *err, size_t errlen)
{
    if (s->redis && s->readonly_seen)
        sink_disconnect(s);
    s->readonly_seen = false;
    if (s->redis)
        return 0;
    if (!(s->redis = rconn_connect(&s->target, s->address, sizeof s->address, err, errlen)))
        return -1;
    if (s->ever_connected)
        s->reconnects++;
    s->ever_connected = true;
    return 0;
}

void sink_get_stats(const sink_t *s, struct sink_stats *out)
{
    out->errors = s->errors;
    out->reconnects = s->reconnects;
}

bool sink_idle(const sink_t *s) { return !s->in_flight && !s->begin_pending && !s->watching; }

int sink_read_owned(sink_t *s, int topic, const int32_t *partitions, size_t n, int64_t *tokens,
                    int64_t *offsets, char *err, size_t errlen)
{
    if (!sink_idle(s)) {
        snprintf(err, errlen, "internal error: a flush is still in flight");
        return -1;
    }
    if (n == 0)
        return 0;
    if (sink_connect(s, err, errlen) != 0)
        return -1;
    char (*ids)[16] = calloc(n, sizeof *ids);
    if (!ids || sink_argv_reserve(s, n + 2) != 0) {
        free(ids);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int which = 0; which < 2; which++) {
        sink_arg(s, 0, "HMGET");
        sink_arg(s, 1, which == 0 ? s->key_fence[topic] : s->key_offsets[topic]);
        for (size_t i = 0; i < n; i++) {
            snprintf(ids[i], sizeof ids[i], "%" PRId32, partitions[i]);
            sink_arg(s, i + 2, ids[i]);
        }
        sink_append_argv(s, (int)n + 2);
    }
    free(ids);
    int rc = 0;
    for (int which = 0; which < 2; which++) {
        redisReply *r = sink_read(s, err, errlen);
        if (!r)
            return -1;
        int64_t *out = which == 0 ? tokens : offsets;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
            snprintf(err, errlen, "redis %s: HMGET: %s", s->address,
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            rc = -1;
        }
        for (size_t i = 0; rc == 0 && i < n; i++)
            out[i] = r->element[i]->type == REDIS_REPLY_STRING
                         ? strtoll(r->element[i]->str, NULL, 10)
                         : -1;
        freeReplyObject(r);
    }
    return rc;
}

int sink_ping(sink_t *s, char *err, size_t errlen)
{
    if (s->redis && !sink_idle(s))
        return 0;
    if (sink_connect(s, err, errlen) != 0)
        return -1;
    const char *ping[] = {"PING"};
    return sink_simple(s, err, errlen, 1, ping);
}

int sink_argv_reserve(sink_t *s, size_t n)
{
    if (n <= s->argv_cap)
        return 0;
    size_t cap = s->argv_cap ? s->argv_cap : 1024;
    while (cap < n)
        cap *= 2;
    const char **argv = realloc(s->argv, cap * sizeof *argv);
    if (!argv)
        return -1;
    s->argv = argv;
    size_t *lens = realloc(s->argvlen, cap * sizeof *lens);
    if (!lens)
        return -1;
    s->argvlen = lens;
    s->argv_cap = cap;
    return 0;
}

int sink_append_argv(sink_t *s, int argc)
{
    s->commands++;
    return redisAppendCommandArgv(s->redis, argc, s->argv, s->argvlen) == REDIS_OK ? 0 : -1;
}

void sink_arg(sink_t *s, size_t i, const char *str)
{
    s->argv[i] = str;
    s->argvlen[i] = strlen(str);
}

int sink_claim(sink_t *s, int topic, const int32_t *partitions, size_t n, int64_t *tokens,
               int64_t *offsets, char *err, size_t errlen)
{
    if (s->in_flight || s->begin_pending) {
        snprintf(err, errlen, "internal error: a flush is still in flight");
        return -1;
    }
    if (sink_connect(s, err, errlen) != 0)
        return -1;
    if (n == 0)
        return 0;
    char (*ids)[16] = calloc(n, sizeof *ids);
    if (!ids || sink_argv_reserve(s, n + 2) != 0) {
        free(ids);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = -1;
    redisAppendCommand(s->redis, "MULTI");
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "%" PRId32, partitions[i]);
        redisAppendCommand(s->redis, "HINCRBY %s %s 1", s->key_fence[topic], ids[i]);
    }
    sink_arg(s, 0, "HMGET");
    sink_arg(s, 1, s->key_offsets[topic]);
    for (size_t i = 0; i < n; i++)
        sink_arg(s, i + 2, ids[i]);
    sink_append_argv(s, (int)n + 2);
    redisAppendCommand(s->redis, "EXEC");
    s->commands += n + 2;

    redisReply *r = NULL;
    bool queued_error = false; /* the first one says why (NOPERM, OOM); EXEC only EXECABORT */
    for (size_t i = 0; i < n + 2; i++) { /* +OK and QUEUED replies */
        if (!(r = sink_read(s, err, errlen)))
            goto out;
        if (r->type == REDIS_REPLY_ERROR) {
            if (!queued_error)
                snprintf(err, errlen, "redis %s: claiming partitions: %s", s->address, r->str);
            queued_error = true;
            freeReplyObject(r);
            r = NULL;
            /* Keep reading so the connection stays in step; EXEC will report EXECABORT. */
            continue;
        }
        freeReplyObject(r);
    }
    if (!(r = sink_read(s, err, errlen)))
        goto out;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n + 1 ||
        r->element[n]->type != REDIS_REPLY_ARRAY || r->element[n]->elements != n) {
        if (r->type == REDIS_REPLY_ERROR && !queued_error)
            snprintf(err, errlen, "redis %s: claiming partitions: %s", s->address, r->str);
        else if (!queued_error)
            snprintf(err, errlen, "redis %s: unexpected reply while claiming partitions",
                     s->address);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        tokens[i] = r->element[i]->integer;
        redisReply *o = r->element[n]->element[i];
        offsets[i] = o->type == REDIS_REPLY_STRING ? strtoll(o->str, NULL, 10) : -1;
    }
    rc = 0;
out:
    if (r)
        freeReplyObject(r);
    free(ids);
    return rc;
}

/* Topics present in the batch, as a bitmap over topic indices (topics are few). */
static void batch_topics(batch_t *batch, size_t n_topics, bool *present)
{
    memset(present, 0, n_topics * sizeof *present);
    for (size_t i = 0; i < batch_partition_count(batch); i++)
        present[batch_partition_at(batch, i)->topic] = true;
}

int sink_write_all(sink_t *s, char *err, size_t errlen)
{
    int done = 0;
    while (!done)
        if (redisBufferWrite(s->redis, &done) != REDIS_OK) {
            snprintf(err, errlen, "redis %s: %s", s->address,
                     s->redis->errstr[0] ? s->redis->errstr : "write failed");
            sink_disconnect(s);
            return -1;
        }
    return 0;
}

int sink_begin_send(sink_t *s, batch_t *batch, const tally_t *tally, char *err, size_t errlen)
{
    if (s->begin_pending) {
        snprintf(err, errlen, "internal error: a read is already pending");
        return -1;
    }
    if (sink_connect(s, err, errlen) != 0)
        return -1;
    size_t n_events = batch_event_count(batch);
    size_t n_parts = batch_partition_count(batch);
    if (sink_argv_reserve(s, n_events + n_parts + s->n_topics + 4) != 0 ||
        sink_scratch_reserve(s, n_events, n_parts) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    batch_topics(batch, s->n_topics, s->present);

    /* A duplicate inside the batch needs no question to Redis: the first copy wins. */
    dedup_reset(s->seen);
    s->n_candidates = 0;
    for (size_t i = 0; i < n_events; i++) {
        batch_event_t *rec = batch_event_at(batch, i);
        rec->duplicate = dedup_seen(s->seen, rec->event.event_id);
        if (!rec->duplicate)
            s->candidates[s->n_candidates++] = i;
    }

    size_t argc = 0;
    sink_arg(s, argc++, "WATCH");
    sink_arg(s, argc++, s->key_dedup);
    sink_arg(s, argc++, s->key_meta);
    for (size_t t = 0; t < s->n_topics; t++)
        if (s->present[t])
            sink_arg(s, argc++, s->key_fence[t]);
    sink_append_argv(s, (int)argc);
    redisAppendCommand(s->redis, "HMGET %s last_event_ts rolling_hour_ms flush_seq", s->key_meta);
    s->commands++;
    if (s->n_candidates) {
        sink_arg(s, 0, "ZMSCORE");
        sink_arg(s, 1, s->key_dedup);
        for (size_t i = 0; i < s->n_candidates; i++)
            sink_arg(s, i + 2, batch_event_at(batch, s->candidates[i])->event.event_id);
        sink_append_argv(s, (int)s->n_candidates + 2);
    }
    /* Per topic: the fence tokens, then the stored offsets, of the batch's partitions. */
    s->n_hmget = 0;
    for (size_t t = 0; t < s->n_topics; t++) {
        if (!s->present[t])
            continue;
        for (int which = 0; which < 2; which++) {
            argc = 0;
            sink_arg(s, argc++, "HMGET");
            sink_arg(s, argc++, which == 0 ? s->key_fence[t] : s->key_offsets[t]);
            for (size_t i = 0; i < n_parts; i++) {
                const batch_partition_t *p = batch_partition_at(batch, i);
                if (p->topic != (int)t)
                    continue;
                snprintf(s->part_ids[i], sizeof s->part_ids[i], "%" PRId32, p->partition);
                sink_arg(s, argc++, s->part_ids[i]);
            }
            sink_append_argv(s, (int)argc);
            s->n_hmget++;
        }
    }
    if (sink_funnel_begin_send(s, batch, tally) < 0) {
        /* Commands are already buffered: drop the connection rather than half-send. */
        snprintf(err, errlen, "out of memory");
        sink_disconnect(s);
        return -1;
    }
    if (sink_write_all(s, err, errlen) != 0)
        return -1;
    s->watching = true;
    s->begin_pending = true;
    s->begin_batch = batch;
    return 0;
}

/* Reads and drops every reply of a pending begin (the batch will be begun again). */
static void sink_begin_drain(sink_t *s, size_t already_read)
{
    char err[256];
    size_t total = 2 + (s->n_candidates ? 1 : 0) + s->n_hmget + sink_funnel_read_count(s);
    for (size_t i = already_read; i < total && s->redis; i++) {
        redisReply *r = sink_read(s, err, sizeof err);
        if (r)
            freeReplyObject(r);
    }
    s->begin_pending = false;
}

void sink_begin_discard(sink_t *s)
{
    if (!s->begin_pending)
        return;
    sink_begin_drain(s, 0);
    sink_abort(s);
}

int sink_begin_read(sink_t *s, batch_t *batch, sink_owner_fn owner_of, void *owner_ctx,
                    int64_t now_ms, struct sink_fenced *fenced, size_t max_fenced,
                    size_t *n_fenced, char *err, size_t errlen)
{
    *n_fenced = 0;
    if (!s->begin_pending || s->begin_batch != batch || !s->redis) {
        snprintf(err, errlen, "redis %s: connection lost before the read was answered",
                 s->address);
        s->begin_pending = false;
        return -1;
    }
    if (s->in_flight) {
        snprintf(err, errlen, "internal error: the previous flush must be read first");
        return -1;
    }
    size_t n_parts = batch_partition_count(batch);
    size_t n_read = 0;
    redisReply *r;
    if (!(r = sink_read(s, err, errlen))) /* WATCH */
        goto lost;
    n_read++;
    freeReplyObject(r);
    if (!(r = sink_read(s, err, errlen))) /* HMGET last_event_ts rolling_hour_ms flush_seq */
        goto lost;
    n_read++;
    s->last_event_ts = 0;
    s->rolling_hour_ms = s->seen_seq = -1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
        if (r->element[0]->type == REDIS_REPLY_STRING)
            s->last_event_ts = strtoll(r->element[0]->str, NULL, 10);
        if (r->element[1]->type == REDIS_REPLY_STRING)
            s->rolling_hour_ms = strtoll(r->element[1]->str, NULL, 10);
        if (r->element[2]->type == REDIS_REPLY_STRING)
            s->seen_seq = strtoll(r->element[2]->str, NULL, 10);
    }
    freeReplyObject(r);
    if (s->n_candidates) {
        if (!(r = sink_read(s, err, errlen)))
            goto lost;
        n_read++;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != s->n_candidates) {
            snprintf(err, errlen, "redis %s: ZMSCORE: %s", s->address,
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            freeReplyObject(r);
            sink_begin_drain(s, n_read);
            sink_abort(s);
            return -1;
        }
        int64_t horizon = now_ms - s->dedup_window_ms;
        for (size_t i = 0; i < s->n_candidates; i++) {
            redisReply *score = r->element[i];
            if (score->type == REDIS_REPLY_STRING && strtoll(score->str, NULL, 10) > horizon)
                batch_event_at(batch, s->candidates[i])->duplicate = true;
        }
        freeReplyObject(r);
    }
    for (size_t t = 0, h = 0; t < s->n_topics && h < s->n_hmget; t++) {
        if (!s->present[t])
            continue;
        redisReply *tokens = sink_read(s, err, errlen);
        if (!tokens)
            goto lost;
        redisReply *stored = sink_read(s, err, errlen);
        if (!stored) {
            freeReplyObject(tokens);
            goto lost;
        }
        h += 2;
        size_t k = 0;
        for (size_t i = 0; i < n_parts; i++) {
            const batch_partition_t *p = batch_partition_at(batch, i);
            if (p->topic != (int)t)
                continue;
            int64_t token = -1, offset = -1;
            if (tokens->type == REDIS_REPLY_ARRAY && k < tokens->elements &&
                tokens->element[k]->type == REDIS_REPLY_STRING)
                token = strtoll(tokens->element[k]->str, NULL, 10);
            if (stored->type == REDIS_REPLY_ARRAY && k < stored->elements &&
                stored->element[k]->type == REDIS_REPLY_STRING)
                offset = strtoll(stored->element[k]->str, NULL, 10);
            k++;
            struct sink_owned mine;
            bool skip = true;
            enum sink_fence_kind kind = SINK_OTHER_OWNER;
            /* Tokens only grow, so a smaller one than ours means Redis forgot our claim. */
            if (owner_of(owner_ctx, p->topic, p->partition, &mine) && token <= mine.token) {
                if (token < mine.token || offset < mine.written)
                    kind = SINK_REDIS_BEHIND;
                /* We own it, so nobody else moved its offset: only our own commit of these
                 * very messages can have put it at or past the batch's end. */
                else if (offset >= p->next_offset)
                    kind = SINK_ALREADY_WRITTEN;
                else
                    skip = false;
            }
            if (skip && *n_fenced < max_fenced)
                fenced[(*n_fenced)++] =
                    (struct sink_fenced){p->topic, p->partition, kind, token, offset};
        }
        freeReplyObject(tokens);
        freeReplyObject(stored);
    }
    int funnel = sink_funnel_begin_read(s, err, errlen);
    if (funnel < 0)
        goto lost;
    s->begin_pending = false;
    return funnel;
lost:
    s->begin_pending = false;
    return -1;
}

int sink_begin(sink_t *s, batch_t *batch, const tally_t *tally, sink_owner_fn owner_of,
               void *owner_ctx,
               int64_t now_ms, struct sink_fenced *fenced, size_t max_fenced, size_t *n_fenced,
               char *err, size_t errlen)
{
    *n_fenced = 0;
    if (s->in_flight) {
        snprintf(err, errlen, "internal error: a flush is still in flight");
        return -1;
    }
    if (sink_begin_send(s, batch, tally, err, errlen) != 0)
        return -1;
    return sink_begin_read(s, batch, owner_of, owner_ctx, now_ms, fenced, max_fenced, n_fenced,
                           err, errlen);
}

void sink_abort(sink_t *s)
{
    if (!s->redis || !s->watching)
        return;
    char err[256];
    const char *unwatch[] = {"UNWATCH"};
    if (sink_simple(s, err, sizeof err, 1, unwatch) != 0)
        sink_disconnect(s);
    s->watching = false;
}

static int json_reserve(sink_t *s, size_t need)
{
    if (need <= s->json_cap)
        return 0;
    size_t cap = s->json_cap ? s->json_cap : 4096;
    while (cap < need)
        cap *= 2;
    char *p = realloc(s->json, cap);
    if (!p)
        return -1;
    s->json = p;
    s->json_cap = cap;
    return 0;
}

int sink_commit_send(sink_t *s, batch_t *batch, const tally_t *tally, int64_t now_ms,
                     char *err, size_t errlen)
{
    struct sink_totals *totals = &s->in_flight_totals;
    memset(totals, 0, sizeof *totals);
    if (!s->redis) {
        snprintf(err, errlen, "redis %s: not connected", s->address);
        return -1;
    }
    size_t n_events = batch_event_count(batch);
    size_t queued = 0;
    char now[24], horizon[24], num[24];
    snprintf(now, sizeof now, "%" PRId64, now_ms);
    snprintf(horizon, sizeof horizon, "%" PRId64, now_ms - s->dedup_window_ms);
    if (sink_argv_reserve(s, 2 * n_events + batch_partition_count(batch) * 2 + 8) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    redisAppendCommand(s->redis, "MULTI");
    s->commands++;

    /* Counters and everything built on them (sink_funnel.c). */
    long funnel = sink_funnel_commit_append(s, tally, now_ms);
    if (funnel < 0) {
        snprintf(err, errlen, "out of memory");
        sink_disconnect(s);
        return -1;
    }
    queued += (size_t)funnel;

    /* Remember applied ids atomically with the counters they changed. */
    dedup_reset(s->managers);
    size_t argc = 0, n_managers = 0;
    int64_t max_ts = s->last_event_ts;
    sink_arg(s, argc++, "ZADD");
    sink_arg(s, argc++, s->key_dedup);
    for (size_t i = 0; i < n_events; i++) {
        batch_event_t *rec = batch_event_at(batch, i);
        if (rec->duplicate) {
            totals->duplicate++;
            continue;
        }
        totals->applied++;
        if (rec->event.internal && rec->event.type != EVENT_DEAL_STAGE)
            totals->internal++;
        if (rec->event.ts_ms > max_ts)
            max_ts = rec->event.ts_ms;
        s->argv[argc] = now;
        s->argvlen[argc++] = strlen(now);
        sink_arg(s, argc++, rec->event.event_id);
        if (!dedup_seen(s->managers, rec->event.manager_id))
            n_managers++;
    }
    totals->invalid = batch_invalid_count(batch);
    if (totals->applied) {
        sink_append_argv(s, (int)argc);
        queued++;
    }
    redisAppendCommand(s->redis, "ZREMRANGEBYSCORE %s -inf %s", s->key_dedup, horizon);
    queued++;

    /* Managers seen, for kpi:managers and the change feed. */
    if (n_managers) {
        if (json_reserve(s, 64 + n_managers * (EVENT_MANAGER_MAX + 3)) != 0) {
            /* Commands are already buffered: drop the connection rather than half-send. */
            snprintf(err, errlen, "out of memory");
            sink_disconnect(s);
            return -1;
        }
        dedup_reset(s->managers);
        argc = 0;
        sink_arg(s, argc++, "SADD");
        sink_arg(s, argc++, s->key_managers);
        size_t pos = (size_t)snprintf(s->json, s->json_cap, "{\"managers\":[");
        for (size_t i = 0; i < n_events; i++) {
            batch_event_t *rec = batch_event_at(batch, i);
            if (rec->duplicate || dedup_seen(s->managers, rec->event.manager_id))
                continue;
            sink_arg(s, argc++, rec->event.manager_id);
            /* Manager ids are [A-Za-z0-9._@-]: nothing to escape in JSON. */
            pos += (size_t)snprintf(s->json + pos, s->json_cap - pos, "%s\"%s\"",
                                    argc > 3 ? "," : "", rec->event.manager_id);
        }
        snprintf(s->json + pos, s->json_cap - pos, "],\"ts\":%s}", now);
        sink_append_argv(s, (int)argc);
        queued++;
    }

    /* Meta counters. */
    redisAppendCommand(s->redis, "HSET %s schema 1 last_flush_ms %s", s->key_meta, now);
    snprintf(num, sizeof num, "%" PRId64, max_ts);
    if (totals->applied)
        redisAppendCommand(s->redis, "HSET %s last_event_ts %s", s->key_meta, num);
    redisAppendCommand(s->redis, "HINCRBY %s events_applied %llu", s->key_meta,
                       (unsigned long long)totals->applied);
    redisAppendCommand(s->redis, "HINCRBY %s events_invalid %llu", s->key_meta,
                       (unsigned long long)totals->invalid);
    redisAppendCommand(s->redis, "HINCRBY %s events_duplicate %llu", s->key_meta,
                       (unsigned long long)totals->duplicate);
    redisAppendCommand(s->redis, "HINCRBY %s events_internal %llu", s->key_meta,
                       (unsigned long long)totals->internal);
    /* Tells every writer (our cache included) that the hashes may have changed. */
    redisAppendCommand(s->redis, "HINCRBY %s flush_seq 1", s->key_meta);
    queued += totals->applied ? 7 : 6;

    /* Offsets of every partition the batch covers, in the same transaction. */
    for (size_t i = 0; i < batch_partition_count(batch); i++) {
        const batch_partition_t *p = batch_partition_at(batch, i);
        redisAppendCommand(s->redis, "HSET %s %d %lld", s->key_offsets[p->topic],
                           (int)p->partition, (long long)p->next_offset);
        queued++;
    }
    if (n_managers) {
        redisAppendCommand(s->redis, "PUBLISH %s %s", s->key_updates, s->json);
        queued++;
    }
    redisAppendCommand(s->redis, "EXEC");
    s->commands += queued + 1;

    /* Send now, read later: Redis applies this batch while the next one is consumed. */
    if (sink_write_all(s, err, errlen) != 0)
        return -1;
    s->in_flight = true;
    s->in_flight_queued = queued;
    return 0;
}

bool sink_commit_pending(const sink_t *s) { return s->in_flight; }

enum sink_commit_result sink_commit_wait(sink_t *s, struct sink_totals *totals, char *err,
                                         size_t errlen)
{
    memset(totals, 0, sizeof *totals);
    if (!s->in_flight || !s->redis) {
        snprintf(err, errlen, "redis %s: connection lost before the flush was answered",
                 s->address);
        return SINK_FAILED;
    }
    size_t queued = s->in_flight_queued;
    s->in_flight = false;

    /* Replies: +OK for MULTI, +QUEUED (or an error) per command, then EXEC's. */
    char first_error[256] = "";
    redisReply *r;
    for (size_t i = 0; i < queued + 1; i++) {
        if (!(r = sink_read(s, err, errlen)))
            return SINK_FAILED;
        if (r->type == REDIS_REPLY_ERROR && !first_error[0])
            snprintf(first_error, sizeof first_error, "%s", r->str);
        freeReplyObject(r);
    }
    if (!(r = sink_read(s, err, errlen)))
        return SINK_FAILED;
    s->watching = false;
    enum sink_commit_result result = SINK_COMMITTED;
    if (r->type == REDIS_REPLY_NIL) {
        result = SINK_CONFLICT;
    } else if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "redis %s: transaction refused: %s%s", s->address,
                 first_error[0] ? first_error : r->str,
                 s->readonly_seen ? " (a replica now; reconnecting)" : "");
        result = SINK_FAILED;
    } else if (r->type == REDIS_REPLY_ARRAY) {
        sink_funnel_learn(s, r);
        /* Runtime errors inside EXEC do not roll back; the offsets were written with the
         * rest, so retrying would double count. Report loudly and move on. */
        for (size_t i = 0; i < r->elements; i++)
            if (r->element[i]->type == REDIS_REPLY_ERROR) {
                log_error("redis %s: a command inside the flush transaction failed: %s "
                          "(a key kpid owns has been changed by someone else?)",
                          s->address, r->element[i]->str);
                break;
            }
    }
    freeReplyObject(r);
    sink_funnel_commit_done(s, result == SINK_COMMITTED);
    if (result == SINK_COMMITTED)
        *totals = s->in_flight_totals;
    return result;
}

enum sink_commit_result sink_commit(sink_t *s, batch_t *batch, const tally_t *tally,
                                    int64_t now_ms, struct sink_totals *totals, char *err,
                                    size_t errlen)
{
    if (sink_commit_send(s, batch, tally, now_ms, err, errlen) != 0) {
        memset(totals, 0, sizeof *totals);
        return SINK_FAILED;
    }
    return sink_commit_wait(s, totals, err, errlen);
}
