#include "notify.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "notify_impl.h"
#include "rconn.h"

/* ---- entries ------------------------------------------------------------------------ */

static void entry_free(struct entry *e)
{
    free(e->json);
    free(e->manager);
    free(e);
}

static struct entry *held_find(struct channel *ch, const char *id)
{
    for (size_t i = 0; i < ch->n_held; i++)
        if (strcmp(ch->held[i]->id, id) == 0)
            return ch->held[i];
    return NULL;
}

void notify_held_remove(struct channel *ch, struct entry *e)
{
    size_t i = 0;
    while (i < ch->n_held && ch->held[i] != e)
        i++;
    if (i == ch->n_held)
        return;
    memmove(&ch->held[i], &ch->held[i + 1], (ch->n_held - i - 1) * sizeof ch->held[0]);
    ch->n_held--;
    entry_free(e);
}

/* Claimed entries are older than what was read before them: keep stream order. */
static void held_insert(struct channel *ch, struct entry *e)
{
    size_t i = ch->n_held;
    while (i > 0 && (ch->held[i - 1]->id_ms > e->id_ms ||
                     (ch->held[i - 1]->id_ms == e->id_ms && ch->held[i - 1]->id_seq > e->id_seq)))
        i--;
    memmove(&ch->held[i + 1], &ch->held[i], (ch->n_held - i) * sizeof ch->held[0]);
    ch->held[i] = e;
    ch->n_held++;
}

static const redisReply *field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(fields->element[i]->str, name) == 0 &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING)
            return fields->element[i + 1];
    return NULL;
}

/* Takes one stream entry ([id, [field, value, ...]]) into the channel. An entry whose
 * fields are gone was trimmed away before delivery: it is held only to be acknowledged. */
static void take(notify_t *n, struct channel *ch, const redisReply *r, int64_t now)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= NOTIFY_ID_MAX ||
        held_find(ch, r->element[0]->str) || ch->n_held == HOLD_MAX)
        return;
    struct entry *e = calloc(1, sizeof *e);
    if (!e)
        return; /* stays pending: taken over again by XAUTOCLAIM */
    snprintf(e->id, sizeof e->id, "%s", r->element[0]->str);
    char *dash;
    e->id_ms = strtoull(e->id, &dash, 10);
    e->id_seq = *dash == '-' ? strtoull(dash + 1, NULL, 10) : 0;
    e->touched_ms = now;
    const redisReply *f = r->element[1];
    const redisReply *json = f->type == REDIS_REPLY_ARRAY ? field(f, "json") : NULL;
    const redisReply *mgr = f->type == REDIS_REPLY_ARRAY ? field(f, "manager") : NULL;
    if (json) {
        e->json = malloc(json->len + 1);
        e->manager = strdup(mgr ? mgr->str : "");
        if (!e->json || !e->manager) {
            entry_free(e);
            return;
        }
        memcpy(e->json, json->str, json->len + 1);
        e->json_len = json->len;
    } else {
        e->state = DONE;
        ch->lost++;
        log_warn("alert %s: %s before channel %s delivered it; acknowledged, counted as lost",
                 e->id, f->type == REDIS_REPLY_ARRAY ? "has no json field"
                                                     : "deleted from the stream (MAXLEN)",
                 ch->group);
    }
    held_insert(ch, e);
}

/* ---- Redis -------------------------------------------------------------------------- */

static void redis_drop(notify_t *n, int64_t now, const char *why)
{
    if (!n->outage)
        log_warn("%s; alert delivery paused, retrying in %d s", why,
                 (n->redis_backoff_ms ? n->redis_backoff_ms : RETRY_FIRST_MS) / 1000);
    n->outage = true;
    if (n->redis)
        redisFree(n->redis);
    n->redis = NULL;
    n->redis_retry_ms = now + (n->redis_backoff_ms ? n->redis_backoff_ms : RETRY_FIRST_MS);
    n->redis_backoff_ms = n->redis_backoff_ms ? n->redis_backoff_ms * 2 : RETRY_FIRST_MS * 2;
    if (n->redis_backoff_ms > REDIS_RETRY_MAX_MS)
        n->redis_backoff_ms = REDIS_RETRY_MAX_MS;
    for (int c = 0; c < CH_COUNT; c++)
        n->ch[c].group_ready = false; /* a restarted Redis may have lost them */
}

/* One command. NULL when the connection failed (then it is closed); an error reply is
 * returned for the caller to judge. */
static redisReply *rcmd(notify_t *n, int64_t now, int argc, const char **argv)
{
    if (!n->redis)
        return NULL;
    redisReply *r = redisCommandArgv(n->redis, argc, argv, NULL);
    if (!r) {
        char why[640];
        if (n->redis->err == REDIS_ERR_IO && strstr(n->redis->errstr, "temporarily unavailable"))
            snprintf(why, sizeof why, "redis %s: no answer within %d ms (redis.timeout_ms)",
                     n->redis_addr, n->redis_target.timeout_ms);
        else
            snprintf(why, sizeof why, "redis %s: %s", n->redis_addr,
                     n->redis->errstr[0] ? n->redis->errstr : "connection lost");
        redis_drop(n, now, why);
    }
    return r;
}

/* An error reply: said once until the channel works again, and not retried for a while.
 * NOGROUP (the stream or group was deleted) just re-creates the group. READONLY (the
 * server was demoted to a replica) drops the connection: retrying on it would fail
 * forever, while reconnecting asks the sentinels for the new primary. */
static void trouble(notify_t *n, struct channel *ch, int64_t now, const char *what,
                    const redisReply *r)
{
    if (rconn_is_readonly_error(r)) {
        char why[1400];
        snprintf(why, sizeof why, "redis %s: %s %s: %s (a replica now; reconnecting)",
                 n->redis_addr, what, n->stream, r->str);
        redis_drop(n, now, why);
        return;
    }
    if (strncmp(r->str, "NOGROUP", 7) == 0) {
        ch->group_ready = false;
        return;
    }
    if (!ch->trouble)
        log_warn("redis %s: %s %s (group %s): %s; alert delivery of this channel retried "
                 "every %d s",
                 n->redis_addr, what, n->stream, ch->group, r->str, TROUBLE_PAUSE_MS / 1000);
    ch->trouble = true;
    ch->paused_until_ms = now + TROUBLE_PAUSE_MS;
}

static bool redis_ready(notify_t *n, int64_t now)
{
    if (n->redis)
        return true;
    if (now < n->redis_retry_ms)
        return false;
    char err[512];
    n->redis = rconn_connect(&n->redis_target, n->redis_addr, sizeof n->redis_addr, err, sizeof err);
    if (!n->redis) {
        redis_drop(n, now, err);
        return false;
    }
    if (n->outage)
        log_info("redis %s: answering again; alert delivery resumed", n->redis_addr);
    n->outage = false;
    n->redis_backoff_ms = 0;
    return true;
}

static void group_create(notify_t *n, struct channel *ch, int64_t now)
{
    /* "$": a channel delivers what is added from its first start on, not the history. */
    const char *argv[] = {"XGROUP", "CREATE", n->stream, ch->group, "$", "MKSTREAM"};
    redisReply *r = rcmd(n, now, 6, argv);
    if (!r)
        return;
    if (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "BUSYGROUP", 9) == 0)
        ch->group_ready = true;
    else
        trouble(n, ch, now, "XGROUP CREATE", r);
    freeReplyObject(r);
}

static void channel_ack(notify_t *n, struct channel *ch, int64_t now)
{
    const char *argv[3 + HOLD_MAX] = {"XACK", n->stream, ch->group};
    int argc = 3;
    for (size_t i = 0; i < ch->n_held; i++)
        if (ch->held[i]->state == DONE)
            argv[argc++] = ch->held[i]->id;
    if (argc == 3)
        return;
    redisReply *r = rcmd(n, now, argc, argv);
    if (!r)
        return;
    bool gone = r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7) == 0;
    if (r->type == REDIS_REPLY_ERROR)
        trouble(n, ch, now, "XACK", r);
    /* Without the group there is nothing left to acknowledge. */
    if (r->type != REDIS_REPLY_ERROR || gone)
        for (size_t i = ch->n_held; i-- > 0;)
            if (ch->held[i]->state == DONE)
                notify_held_remove(ch, ch->held[i]);
    freeReplyObject(r);
}

/* An entry held for a while (webhook down) gets its idle time reset, so no other kpid
 * takes it over. The min-idle argument makes this a check as well: if someone else
 * claimed it since we last touched it, its idle time is shorter and XCLAIM skips it. */
static void channel_refresh(notify_t *n, struct channel *ch, int64_t now)
{
    for (size_t i = 0; i < ch->n_held && n->redis; i++) {
        struct entry *e = ch->held[i];
        if (e->state == DONE || e->orphan || now - e->touched_ms < REFRESH_AFTER_MS)
            continue;
        char idle[24];
        snprintf(idle, sizeof idle, "%" PRId64, now - e->touched_ms - REFRESH_SLACK_MS);
        const char *argv[] = {"XCLAIM", n->stream, ch->group, n->consumer, idle, e->id, "JUSTID"};
        redisReply *r = rcmd(n, now, 7, argv);
        if (!r)
            return;
        if (r->type == REDIS_REPLY_ERROR) {
            trouble(n, ch, now, "XCLAIM", r);
        } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
            e->touched_ms = now;
        } else {
            log_info("alert %s (%s): taken over by another kpid while this one was not "
                     "answering; leaving it to them", e->id, ch->group);
            if (e->state == SENDING) {
                e->orphan = true;
            } else {
                notify_held_remove(ch, e);
                i--;
            }
        }
        freeReplyObject(r);
    }
}

/* Entries another consumer (a crashed kpid) left pending for CLAIM_IDLE_MS. */
static void channel_claim(notify_t *n, struct channel *ch, int64_t now)
{
    size_t room = HOLD_MAX - ch->n_held;
    if (!room) {
        ch->next_claim_ms = now + CLAIM_EVERY_MS;
        return;
    }
    char idle[24], count[24];
    snprintf(idle, sizeof idle, "%d", CLAIM_IDLE_MS);
    snprintf(count, sizeof count, "%zu", room);
    const char *argv[] = {"XAUTOCLAIM", n->stream, ch->group, n->consumer, idle,
                          ch->cursor, "COUNT", count};
    redisReply *r = rcmd(n, now, 8, argv);
    if (!r)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        trouble(n, ch, now, "XAUTOCLAIM", r);
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
               r->element[0]->type == REDIS_REPLY_STRING &&
               r->element[0]->len < NOTIFY_ID_MAX) {
        const redisReply *got = r->element[1];
        for (size_t i = 0; got->type == REDIS_REPLY_ARRAY && i < got->elements; i++) {
            const redisReply *x = got->element[i];
            struct entry *mine = x->type == REDIS_REPLY_ARRAY && x->elements == 2 &&
                                         x->element[0]->type == REDIS_REPLY_STRING
                                     ? held_find(ch, x->element[0]->str)
                                     : NULL;
            if (mine)
                mine->touched_ms = now; /* ours all along, idle since an outage */
            else
                take(n, ch, x, now);
        }
        /* Redis 7 lists pending entries trimmed from the stream apart (and drops them from
         * the pending list itself); acknowledging them again is harmless. */
        const redisReply *deleted = r->elements >= 3 ? r->element[2] : NULL;
        for (size_t i = 0; deleted && deleted->type == REDIS_REPLY_ARRAY && i < deleted->elements;
             i++) {
            redisReply *fake[2] = {deleted->element[i], &(redisReply){.type = REDIS_REPLY_NIL}};
            take(n, ch, &(redisReply){.type = REDIS_REPLY_ARRAY, .elements = 2, .element = fake},
                 now);
        }
        memcpy(ch->cursor, r->element[0]->str, r->element[0]->len + 1);
        /* A scan is finished when the cursor is back at the start. */
        ch->next_claim_ms = strcmp(ch->cursor, "0-0") == 0 ? now + CLAIM_EVERY_MS : now;
    }
    freeReplyObject(r);
}

static void channel_read(notify_t *n, struct channel *ch, int64_t now)
{
    size_t room = HOLD_MAX - ch->n_held;
    ch->next_read_ms = now + READ_EVERY_MS;
    ch->read_now = false;
    if (!room)
        return;
    char count[24];
    snprintf(count, sizeof count, "%zu", room);
    /* No BLOCK: an empty answer comes back at once. */
    const char *argv[] = {"XREADGROUP", "GROUP", ch->group, n->consumer, "COUNT", count,
                          "STREAMS", n->stream, ">"};
    redisReply *r = rcmd(n, now, 9, argv);
    if (!r)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        trouble(n, ch, now, "XREADGROUP", r);
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
               r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2) {
        const redisReply *entries = r->element[0]->element[1];
        for (size_t i = 0; entries->type == REDIS_REPLY_ARRAY && i < entries->elements; i++)
            take(n, ch, entries->element[i], now);
        /* A full answer: more may be waiting. */
        ch->read_now = entries->elements == room;
    }
    if (r->type != REDIS_REPLY_ERROR)
        ch->trouble = false;
    freeReplyObject(r);
}

static void redis_round(notify_t *n, int64_t now)
{
    if (!redis_ready(n, now))
        return;
    for (int c = 0; c < CH_COUNT && n->redis; c++) {
        struct channel *ch = &n->ch[c];
        if (!ch->enabled || now < ch->paused_until_ms)
            continue;
        if (!ch->group_ready)
            group_create(n, ch, now);
        if (!ch->group_ready)
            continue;
        channel_ack(n, ch, now);
        if (n->draining)
            continue;
        channel_refresh(n, ch, now);
        if (n->redis && now >= ch->next_claim_ms)
            channel_claim(n, ch, now);
        if (n->redis && (ch->read_now || now >= ch->next_read_ms))
            channel_read(n, ch, now);
    }
}

/* Drops what the webhook channel holds (turned off): undelivered entries stay pending. */
static void webhook_release(notify_t *n)
{
    struct channel *ch = &n->ch[CH_WEBHOOK];
    for (size_t i = 0; i < ch->n_held; i++) {
        if (ch->held[i]->easy)
            notify_webhook_end(n, ch->held[i]);
        entry_free(ch->held[i]);
    }
    ch->n_held = 0;
}

/* ---- the module ----------------------------------------------------------------------- */

/* The next entries due: one manager's alerts one at a time, in stream order. While
 * draining only entries never tried: those failing already are left to the next kpid. */
static void channel_start(notify_t *n, struct channel *ch, int64_t now)
{
    for (size_t i = 0; i < ch->n_held; i++) {
        struct entry *e = ch->held[i];
        if (e->state != WAITING || now < e->retry_at_ms || (n->draining && e->failures))
            continue;
        bool earlier = false;
        for (size_t k = 0; k < i && !earlier; k++)
            earlier = ch->held[k]->state != DONE && strcmp(ch->held[k]->manager, e->manager) == 0;
        if (earlier)
            continue;
        if (ch == &n->ch[CH_KAFKA])
            notify_kafka_start(n, ch, e, now);
        else
            notify_webhook_start(n, ch, e, now);
    }
}

void notify_poll(notify_t *n, int64_t now_ms)
{
    if (n->producer)
        notify_kafka_serve(n, now_ms);
    notify_webhook_serve(n, now_ms);
    redis_round(n, now_ms);
    for (int c = 0; c < CH_COUNT; c++)
        if (n->ch[c].enabled)
            channel_start(n, &n->ch[c], now_ms);
}

void notify_kick(notify_t *n)
{
    for (int c = 0; c < CH_COUNT; c++)
        n->ch[c].read_now = true;
}

void notify_get_stats(const notify_t *n, struct notify_stats *out)
{
    *out = (struct notify_stats){
        .kafka_delivered = n->ch[CH_KAFKA].delivered,
        .kafka_failed = n->ch[CH_KAFKA].failed,
        .webhook_delivered = n->ch[CH_WEBHOOK].delivered,
        .webhook_failed = n->ch[CH_WEBHOOK].failed,
        .lost = n->ch[CH_KAFKA].lost + n->ch[CH_WEBHOOK].lost,
    };
}

static void webhook_configure(notify_t *n, const config_t *cfg)
{
    struct channel *ch = &n->ch[CH_WEBHOOK];
    bool on = cfg->webhook_url && cfg->webhook_url[0];
    if (ch->enabled && !on)
        webhook_release(n);
    if (ch->enabled != on)
        ch->group_ready = false;
    ch->enabled = on;
    free(n->url_shown);
    n->url_shown = notify_url_for_logs(on ? cfg->webhook_url : "");
}

void notify_reconfigure(notify_t *n, const config_t *cfg)
{
    const char *topic = cfg->kafka_alerts_topic && cfg->kafka_alerts_topic[0]
                            ? cfg->kafka_alerts_topic : NULL;
    if ((topic == NULL) != (n->topic == NULL) || (topic && strcmp(topic, n->topic) != 0))
        log_warn("reload: kafka.alerts_topic cannot change live; alerts keep going to %s "
                 "until kpid is restarted", n->topic ? n->topic : "(none)");
    bool was = n->ch[CH_WEBHOOK].enabled;
    n->cfg = cfg;
    webhook_configure(n, cfg);
    if (was != n->ch[CH_WEBHOOK].enabled)
        log_info("reload: webhook %s", was ? "turned off" : "turned on");
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

notify_t *notify_new(const config_t *cfg, char *err, size_t errlen)
{
    /* libcurl counts init/cleanup pairs. Its global init is thread-safe since 7.84
     * (Debian 12 ships 7.88), so librdkafka's threads already running do not matter. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_errbuf(err, errlen, "libcurl initialisation failed");
        return NULL;
    }
    notify_t *n = calloc(1, sizeof *n);
    if (!n) {
        curl_global_cleanup();
        log_errbuf(err, errlen, "out of memory");
        return NULL;
    }
    n->cfg = cfg;
    struct rconn_target view;
    rconn_target_view(cfg, &view);
    bool copied = rconn_target_copy(&view, &n->redis_target) == 0;
    rconn_address(cfg, n->redis_addr, sizeof n->redis_addr);
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(n->consumer, sizeof n->consumer, "%s-%ld", host, (long)getpid());
    n->ch[CH_KAFKA].group = "kafka";
    n->ch[CH_WEBHOOK].group = "webhook";
    for (int c = 0; c < CH_COUNT; c++)
        snprintf(n->ch[c].cursor, sizeof n->ch[c].cursor, "0-0");
    n->multi = curl_multi_init();
    n->headers = curl_slist_append(NULL, "Content-Type: application/json");
    /* No "Expect: 100-continue" round trip before a small body. */
    struct curl_slist *h2 = n->headers ? curl_slist_append(n->headers, "Expect:") : NULL;
    if (h2)
        n->headers = h2;
    if (!copied || !n->multi || !h2 ||
        keys_global(n->stream, sizeof n->stream, cfg->redis_prefix, "alerts") < 0) {
        log_errbuf(err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->kafka_alerts_topic && cfg->kafka_alerts_topic[0]) {
        if (!(n->topic = strdup(cfg->kafka_alerts_topic))) {
            log_errbuf(err, errlen, "out of memory");
            goto fail;
        }
        if (!(n->producer = notify_kafka_new(n, cfg, err, errlen)))
            goto fail;
        n->ch[CH_KAFKA].enabled = true;
    }
    webhook_configure(n, cfg);
    if (!n->url_shown) {
        log_errbuf(err, errlen, "out of memory");
        goto fail;
    }
    /* Create the groups now: alerts added before a group exists are not delivered. */
    redis_round(n, wall_ms());
    return n;
fail:
    notify_free(n, 0);
    return NULL;
}

/* The consumer name of this process goes away with it, unless entries are still pending
 * under it (they wait for XAUTOCLAIM; deleting the consumer would drop them). */
static void consumer_forget(notify_t *n, struct channel *ch, int64_t now)
{
    const char *argv[] = {"XPENDING", n->stream, ch->group, "-", "+", "1", n->consumer};
    redisReply *r = rcmd(n, now, 7, argv);
    bool none = r && r->type == REDIS_REPLY_ARRAY && r->elements == 0;
    if (r)
        freeReplyObject(r);
    const char *del[] = {"XGROUP", "DELCONSUMER", n->stream, ch->group, n->consumer};
    if (none && (r = rcmd(n, now, 5, del)))
        freeReplyObject(r);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool busy(const notify_t *n)
{
    for (int c = 0; c < CH_COUNT; c++)
        for (size_t i = 0; i < n->ch[c].n_held; i++)
            if (n->ch[c].held[i]->state != WAITING)
                return true;
    return false;
}

void notify_free(notify_t *n, int drain_ms)
{
    if (!n)
        return;
    n->draining = true;
    int64_t deadline = mono_ms() + drain_ms;
    while (drain_ms > 0) {
        notify_poll(n, wall_ms());
        if (!busy(n) || mono_ms() >= deadline)
            break;
        nanosleep(&(struct timespec){0, 10 * 1000000}, NULL);
    }
    for (int c = 0; c < CH_COUNT && n->redis && drain_ms > 0; c++)
        if (n->ch[c].enabled && n->ch[c].group_ready && n->ch[c].n_held == 0)
            consumer_forget(n, &n->ch[c], wall_ms());
    notify_kafka_destroy(n);
    webhook_release(n);
    struct channel *k = &n->ch[CH_KAFKA];
    for (size_t i = 0; i < k->n_held; i++)
        entry_free(k->held[i]);
    if (n->multi)
        curl_multi_cleanup(n->multi);
    curl_slist_free_all(n->headers);
    curl_global_cleanup();
    if (n->redis)
        redisFree(n->redis);
    rconn_target_free(&n->redis_target);
    free(n->topic);
    free(n->url_shown);
    free(n);
}
