#include "rebuild.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keys.h"
#include "log.h"
#include "rconn.h"

#define SWITCH_ATTEMPTS 20
#define DEL_CHUNK 512

struct keylist {
    char **keys; /* owned */
    size_t n, cap;
};

static void keylist_free(struct keylist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->keys[i]);
    free(l->keys);
    memset(l, 0, sizeof *l);
}

static int keylist_add(struct keylist *l, const char *key, size_t len)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        char **k = realloc(l->keys, cap * sizeof *k);
        if (!k)
            return -1;
        l->keys = k;
        l->cap = cap;
    }
    if (!(l->keys[l->n] = strndup(key, len)))
        return -1;
    l->n++;
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Keys of the alerting side: the history and the states that decide whether an alert is
 * new. They stay with the live prefix: a rebuild must not page anyone again, nor forget
 * what was sent. Fence tokens stay too (they are bumped instead). */
static bool key_is_kept(const char *key, const char *prefix)
{
    size_t p = strlen(prefix);
    const char *rest = key + p + 1;
    return !strcmp(rest, "alerts") || !strncmp(rest, "fence:", 6) || ends_with(rest, "}:alerts") ||
           ends_with(rest, "}:alertstate") || ends_with(rest, "}:digest");
}

static int redis_failed(redisContext *c, redisReply *r, const char *what, char *err, size_t errlen)
{
    if (!r)
        snprintf(err, errlen, "redis: %s: %s", what, c->errstr[0] ? c->errstr : "no reply");
    else
        snprintf(err, errlen, "redis: %s: %s", what, r->type == REDIS_REPLY_ERROR ? r->str
                                                                                : "unexpected reply");
    if (r)
        freeReplyObject(r);
    return -1;
}

/* Every key under "<prefix>:", split into the kept (alerting) ones and the others. */
static int scan_prefix(redisContext *c, const char *prefix, struct keylist *other,
                       struct keylist *kept, char *err, size_t errlen)
{
    char match[KEYS_MAX], cursor[32] = "0";
    snprintf(match, sizeof match, "%s:*", prefix);
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, match);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY)
            return redis_failed(c, r, "SCAN", err, errlen);
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        const redisReply *ks = r->element[1];
        for (size_t i = 0; i < ks->elements; i++) {
            const redisReply *k = ks->element[i];
            if (k->type != REDIS_REPLY_STRING)
                continue;
            struct keylist *to = key_is_kept(k->str, prefix) ? kept : other;
            if (to && keylist_add(to, k->str, k->len) != 0) {
                freeReplyObject(r);
                snprintf(err, errlen, "out of memory listing %s keys", prefix);
                return -1;
            }
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

int rebuild_configure(config_t *cfg, char *err, size_t errlen)
{
    size_t n = strlen(cfg->redis_prefix) + strlen(REBUILD_SUFFIX);
    if (n > 32) {
        snprintf(err, errlen,
                 "redis.prefix \"%s\" is too long for a rebuild: \"%s%s\" would exceed 32 "
                 "characters",
                 cfg->redis_prefix, cfg->redis_prefix, REBUILD_SUFFIX);
        return -1;
    }
    char *prefix = malloc(n + 1);
    char *group = malloc(strlen(cfg->kafka_group) + sizeof REBUILD_SUFFIX);
    if (!prefix || !group) {
        free(prefix);
        free(group);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sprintf(prefix, "%s%s", cfg->redis_prefix, REBUILD_SUFFIX);
    sprintf(group, "%s%s", cfg->kafka_group, REBUILD_SUFFIX);
    free(cfg->redis_prefix);
    cfg->redis_prefix = prefix;
    free(cfg->kafka_group_id);
    cfg->kafka_group_id = group;
    /* The live kpid holds the metrics port; a rebuild reports through its log. */
    free(cfg->metrics_listen);
    cfg->metrics_listen = NULL;
    return 0;
}

static int del_keys(redisContext *c, const struct keylist *l, char *err, size_t errlen)
{
    for (size_t i = 0; i < l->n; i += DEL_CHUNK) {
        size_t m = l->n - i;
        if (m > DEL_CHUNK)
            m = DEL_CHUNK;
        const char *argv[DEL_CHUNK + 1];
        argv[0] = "UNLINK";
        for (size_t j = 0; j < m; j++)
            argv[j + 1] = l->keys[i + j];
        redisReply *r = redisCommandArgv(c, (int)m + 1, argv, NULL);
        if (!r || r->type != REDIS_REPLY_INTEGER)
            return redis_failed(c, r, "UNLINK", err, errlen);
        freeReplyObject(r);
    }
    return 0;
}

int rebuild_wipe(const config_t *cfg, size_t *removed, char *err, size_t errlen)
{
    redisContext *c = rconn_open(cfg, err, errlen);
    if (!c)
        return -1;
    struct keylist all = {0};
    /* Nothing is kept here: alert keys under the rebuild prefix are leftovers too. */
    int rc = scan_prefix(c, cfg->redis_prefix, &all, &all, err, errlen);
    if (rc == 0)
        rc = del_keys(c, &all, err, errlen);
    *removed = all.n;
    keylist_free(&all);
    redisFree(c);
    return rc;
}

/* Appends one command to the pipeline; counts it so the replies can be read back. An
 * append fails only when out of memory: the context's err says so, and the transaction
 * is abandoned when its replies are read. */
static void pipe_cmd(redisContext *c, size_t *queued, int argc, const char **argv)
{
    if (redisAppendCommandArgv(c, argc, argv, NULL) == REDIS_OK)
        (*queued)++;
}

/* The live fence fields to bump: every partition the rebuild claimed. Read before the
 * transaction is queued (a reply read in between would be taken for a queued one's). */
static int fence_bumps(redisContext *c, const config_t *live, const char *rb_prefix,
                       struct keylist *out, char *err, size_t errlen)
{
    for (size_t t = 0; t < live->n_kafka_topics; t++) {
        char fence[KEYS_MAX], rb_fence[KEYS_MAX];
        keys_fence(fence, sizeof fence, live->redis_prefix, live->kafka_group,
                   live->kafka_topics[t]);
        keys_fence(rb_fence, sizeof rb_fence, rb_prefix, live->kafka_group, live->kafka_topics[t]);
        redisReply *fields = redisCommand(c, "HKEYS %s", rb_fence);
        if (!fields || fields->type != REDIS_REPLY_ARRAY)
            return redis_failed(c, fields, "HKEYS", err, errlen);
        for (size_t i = 0; i < fields->elements; i++) {
            const redisReply *f = fields->element[i];
            if (keylist_add(out, fence, strlen(fence)) != 0 ||
                keylist_add(out, f->str, f->len) != 0 || keylist_add(out, "1", 1) != 0) {
                freeReplyObject(fields);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
        }
        freeReplyObject(fields);
    }
    return 0;
}

/* Bumps the live fence tokens before the switch: a running kpid stops writing (its flushes
 * find foreign tokens), so the switch's WATCH of meta is not tripped by flush after flush.
 * The switch bumps them once more, for a kpid that claimed its partitions again since. */
static int fence_out(redisContext *c, const config_t *live, const char *rb_prefix, char *err,
                     size_t errlen)
{
    struct keylist cmds = {0};
    int rc = fence_bumps(c, live, rb_prefix, &cmds, err, errlen);
    for (size_t i = 0; rc == 0 && i < cmds.n; i += 3) {
        redisReply *r = redisCommand(c, "HINCRBY %s %s %s", cmds.keys[i], cmds.keys[i + 1],
                                     cmds.keys[i + 2]);
        if (!r || r->type != REDIS_REPLY_INTEGER)
            rc = redis_failed(c, r, "HINCRBY", err, errlen);
        else
            freeReplyObject(r);
    }
    keylist_free(&cmds);
    if (rc == 0)
        log_info("rebuild: caught up; the running kpid is fenced out from now on (restart it "
                 "after the switch)");
    return rc;
}

/* One attempt: 1 switched, 0 a live flush came in between (WATCH), -1 failure. */
static int switch_once(redisContext *c, const config_t *live, const char *rb_prefix,
                       struct rebuild_stats *st, char *err, size_t errlen)
{
    char meta[KEYS_MAX];
    keys_global(meta, sizeof meta, live->redis_prefix, "meta");
    struct keylist live_other = {0}, live_kept = {0}, rb_other = {0}, rb_kept = {0};
    struct keylist fence_cmds = {0}; /* (key, field, increment) triples */
    int rc = -1;
    redisReply *r = redisCommand(c, "WATCH %s", meta);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        redis_failed(c, r, "WATCH", err, errlen);
        goto out;
    }
    freeReplyObject(r);
    if (scan_prefix(c, live->redis_prefix, &live_other, &live_kept, err, errlen) != 0 ||
        scan_prefix(c, rb_prefix, &rb_other, &rb_kept, err, errlen) != 0 ||
        fence_bumps(c, live, rb_prefix, &fence_cmds, err, errlen) != 0)
        goto out;

    size_t queued = 0;
    const char *multi[] = {"MULTI"};
    pipe_cmd(c, &queued, 1, multi);
    for (size_t i = 0; i < live_other.n; i += DEL_CHUNK) {
        size_t m = live_other.n - i;
        if (m > DEL_CHUNK)
            m = DEL_CHUNK;
        const char *argv[DEL_CHUNK + 1];
        argv[0] = "DEL";
        for (size_t j = 0; j < m; j++)
            argv[j + 1] = live_other.keys[i + j];
        pipe_cmd(c, &queued, (int)m + 1, argv);
    }
    size_t rb_len = strlen(rb_prefix);
    for (size_t i = 0; i < rb_other.n; i++) {
        char to[KEYS_MAX];
        snprintf(to, sizeof to, "%s%s", live->redis_prefix, rb_other.keys[i] + rb_len);
        const char *argv[] = {"RENAME", rb_other.keys[i], to};
        pipe_cmd(c, &queued, 3, argv);
    }
    /* A kpid still running on the old data holds the old tokens: it is fenced out of
     * every partition and can never write into the rebuilt numbers. */
    for (size_t i = 0; i < fence_cmds.n; i += 3) {
        const char *argv[] = {"HINCRBY", fence_cmds.keys[i], fence_cmds.keys[i + 1],
                              fence_cmds.keys[i + 2]};
        pipe_cmd(c, &queued, 4, argv);
    }
    for (size_t i = 0; i < rb_kept.n; i++) {
        const char *argv[] = {"DEL", rb_kept.keys[i]};
        pipe_cmd(c, &queued, 2, argv);
    }
    char updates[KEYS_MAX], msg[96];
    keys_global(updates, sizeof updates, live->redis_prefix, "updates");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    /* No manager list: everything changed, dashboards re-read all they show. */
    snprintf(msg, sizeof msg, "{\"managers\":[],\"rebuilt\":true,\"ts\":%lld}",
             (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    const char *pub[] = {"PUBLISH", updates, msg};
    pipe_cmd(c, &queued, 3, pub);
    const char *exec[] = {"EXEC"};
    pipe_cmd(c, &queued, 1, exec);

    redisReply *last = NULL;
    bool failed = false;
    for (size_t i = 0; i < queued; i++) {
        redisReply *q = NULL;
        if (redisGetReply(c, (void **)&q) != REDIS_OK) {
            redis_failed(c, NULL, "switch transaction", err, errlen);
            goto out;
        }
        if (i + 1 == queued) {
            last = q;
        } else {
            if (q->type == REDIS_REPLY_ERROR && !failed) {
                snprintf(err, errlen, "redis: switch transaction refused: %s", q->str);
                failed = true;
            }
            freeReplyObject(q);
        }
    }
    if (c->err) {
        snprintf(err, errlen, "redis: switch transaction: %s", c->errstr);
        failed = true;
    }
    if (failed || !last) {
        if (last)
            freeReplyObject(last);
        goto out;
    }
    if (last->type == REDIS_REPLY_NIL) {
        rc = 0; /* a live flush touched meta: list the keys again */
    } else if (last->type == REDIS_REPLY_ARRAY) {
        /* A command that failed inside EXEC does not undo the others (a rebuilt key that
         * expired since it was listed cannot be renamed): say so, the switch stands. */
        size_t failed_cmds = 0;
        const char *first = NULL;
        for (size_t i = 0; i < last->elements; i++)
            if (last->element[i]->type == REDIS_REPLY_ERROR && failed_cmds++ == 0)
                first = last->element[i]->str;
        if (failed_cmds)
            log_warn("rebuild: %zu commands of the switch failed, e.g. %s", failed_cmds, first);
        rc = 1;
        st->renamed = rb_other.n;
        st->deleted = live_other.n;
        st->kept = live_kept.n;
    } else {
        snprintf(err, errlen, "redis: switch transaction: %s",
                 last->type == REDIS_REPLY_ERROR ? last->str : "unexpected reply");
    }
    freeReplyObject(last);
out:
    keylist_free(&live_other);
    keylist_free(&live_kept);
    keylist_free(&rb_other);
    keylist_free(&rb_kept);
    keylist_free(&fence_cmds);
    return rc;
}

int rebuild_switch(const config_t *live, struct rebuild_stats *st, char *err, size_t errlen)
{
    char rb_prefix[64];
    snprintf(rb_prefix, sizeof rb_prefix, "%s%s", live->redis_prefix, REBUILD_SUFFIX);
    memset(st, 0, sizeof *st);
    redisContext *c = rconn_open(live, err, errlen);
    if (!c)
        return -1;
    int rc = fence_out(c, live, rb_prefix, err, errlen) == 0 ? 0 : -1;
    for (int attempt = 1; attempt <= SWITCH_ATTEMPTS && rc == 0; attempt++) {
        rc = switch_once(c, live, rb_prefix, st, err, errlen);
        if (rc == 0)
            log_info("rebuild: a live flush came in between; listing the keys again");
    }
    redisFree(c);
    if (rc == 0)
        snprintf(err, errlen, "redis: %d switch attempts in a row met a live flush; stop the "
                              "running kpid and run kpid --rebuild again",
                 SWITCH_ATTEMPTS);
    return rc == 1 ? 0 : -1;
}
