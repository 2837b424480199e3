#include "source.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct part_state {
    bool assigned;      /* in our librdkafka assignment */
    bool owned;         /* claimed in Redis and not fenced since */
    bool claim_pending; /* assigned while Redis was down: paused until claimed */
    int64_t token;
    int64_t start; /* offset consumption started at (-1: the beginning), for the lag */
    /* The next offset Redis is known to hold for us (claimed or committed since): a
     * smaller one read later means Redis lost acknowledged writes. -1: none stored. */
    int64_t written;
};

struct topic_state {
    char *name;
    struct part_state *parts; /* indexed by partition */
    int32_t n_parts;
    const rd_kafka_topic_t *last_rkt; /* cache: rkt pointer -> this topic */
};

/* Delivery reports are collected by the callback and applied to the batch by
 * source_dlq_poll, which knows the batch; the callback must not touch it. */
struct dr_result {
    uint64_t seq;
    rd_kafka_resp_err_t err;
};

struct source {
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    struct topic_state *topics;
    size_t n_topics;
    char *dlq_topic;
    const struct source_owner_ops *ops;
    void *ops_ctx;
    bool paused_all;
    bool cooperative;
    struct dr_result *results;
    size_t n_results, cap_results;
    /* Health: the group has answered once; librdkafka said every broker is down (it does
     * not say when they are back: source_kafka_up probes). Written on the loop's thread. */
    bool rebalanced, brokers_down;
};

static struct part_state *part_get(source_t *src, int topic, int32_t partition, bool create)
{
    if (topic < 0 || (size_t)topic >= src->n_topics || partition < 0)
        return NULL;
    struct topic_state *t = &src->topics[topic];
    if (partition >= t->n_parts) {
        if (!create)
            return NULL;
        int32_t n = t->n_parts ? t->n_parts : 8;
        while (n <= partition)
            n *= 2;
        struct part_state *parts = realloc(t->parts, (size_t)n * sizeof *parts);
        if (!parts)
            return NULL;
        memset(parts + t->n_parts, 0, (size_t)(n - t->n_parts) * sizeof *parts);
        t->parts = parts;
        t->n_parts = n;
    }
    return &t->parts[partition];
}

static int topic_index(source_t *src, const char *name)
{
    for (size_t i = 0; i < src->n_topics; i++)
        if (strcmp(src->topics[i].name, name) == 0)
            return (int)i;
    return -1;
}

const char *source_topic_name(const source_t *src, int topic)
{
    return topic >= 0 && (size_t)topic < src->n_topics ? src->topics[topic].name : "?";
}

void source_kafka_log(const char *who, int level, const char *fac, const char *buf)
{
    /* kafka.properties feed every kpid client (consumer, DLQ and alerts producers); each
     * ignores the others' settings, which is expected and not worth a warning. */
    if (strcmp(fac, "CONFWARN") == 0 && strstr(buf, "will be ignored by this"))
        return;
    if (level <= 3)
        log_error("%s %s: %s", who, fac, buf);
    else if (level <= 4)
        log_warn("%s %s: %s", who, fac, buf);
    else
        log_debug("%s %s: %s", who, fac, buf);
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    source_kafka_log("kafka", level, fac, buf);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    /* Transport errors are retried by librdkafka; the operator only needs to know. */
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && opaque)
        ((source_t *)opaque)->brokers_down = true;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        log_warn("kafka: all brokers down (%s); waiting for them to come back", reason);
    else
        log_warn("kafka: %s: %s", rd_kafka_err2name(err), reason);
}

/* Claims the partitions of one topic in `list` and sets their start offsets. Partitions
 * that cannot be claimed now are marked pending (and get paused once assigned). */
static void claim_assigned(source_t *src, rd_kafka_topic_partition_list_t *list)
{
    for (size_t t = 0; t < src->n_topics; t++) {
        int32_t *ids = malloc(sizeof *ids * (size_t)(list->cnt ? list->cnt : 1));
        int64_t *tokens = malloc(sizeof *tokens * (size_t)(list->cnt ? list->cnt : 1));
        int64_t *offsets = malloc(sizeof *offsets * (size_t)(list->cnt ? list->cnt : 1));
        size_t n = 0;
        for (int i = 0; ids && tokens && offsets && i < list->cnt; i++)
            if (strcmp(list->elems[i].topic, src->topics[t].name) == 0)
                ids[n++] = list->elems[i].partition;
        int rc = n && ids && tokens && offsets
                     ? src->ops->claim(src->ops_ctx, (int)t, ids, n, tokens, offsets)
                     : -1;
        for (int i = 0; i < list->cnt; i++) {
            rd_kafka_topic_partition_t *e = &list->elems[i];
            if (strcmp(e->topic, src->topics[t].name) != 0)
                continue;
            struct part_state *ps = part_get(src, (int)t, e->partition, true);
            size_t k = 0;
            while (k < n && ids[k] != e->partition)
                k++;
            if (!ps)
                continue;
            ps->assigned = true;
            if (rc == 0 && k < n) {
                ps->owned = true;
                ps->claim_pending = false;
                ps->token = tokens[k];
                ps->start = ps->written = offsets[k];
                /* Never seen: the whole partition is history to count. */
                e->offset = offsets[k] >= 0 ? offsets[k] : RD_KAFKA_OFFSET_BEGINNING;
                log_info("assigned %s [%" PRId32 "] from offset %s%" PRId64, e->topic,
                         e->partition, offsets[k] >= 0 ? "" : "beginning, stored=", offsets[k]);
            } else {
                ps->owned = false;
                ps->claim_pending = true;
                e->offset = RD_KAFKA_OFFSET_BEGINNING; /* placeholder; seeked when claimed */
                log_warn("assigned %s [%" PRId32 "] but its stored offset cannot be read from "
                         "redis yet; it stays paused until redis answers",
                         e->topic, e->partition);
            }
        }
        free(ids);
        free(tokens);
        free(offsets);
    }
}

/* After an assignment: pause what cannot be consumed yet (claim pending, or everything
 * during a Redis outage) and explicitly resume the rest. librdkafka keeps a partition's
 * pause flag across re-assignment, so a partition this process paused when it was fenced
 * off would otherwise stay paused when the group hands it back. */
static void apply_pause_state(source_t *src, rd_kafka_topic_partition_list_t *list)
{
    rd_kafka_topic_partition_list_t *pause = rd_kafka_topic_partition_list_new(list->cnt);
    rd_kafka_topic_partition_list_t *resume = rd_kafka_topic_partition_list_new(list->cnt);
    for (int i = 0; i < list->cnt; i++) {
        int t = topic_index(src, list->elems[i].topic);
        struct part_state *ps = part_get(src, t, list->elems[i].partition, false);
        bool run = ps && ps->owned && !src->paused_all;
        rd_kafka_topic_partition_list_add(run ? resume : pause, list->elems[i].topic,
                                          list->elems[i].partition);
    }
    if (pause->cnt)
        rd_kafka_pause_partitions(src->consumer, pause);
    if (resume->cnt)
        rd_kafka_resume_partitions(src->consumer, resume);
    rd_kafka_topic_partition_list_destroy(pause);
    rd_kafka_topic_partition_list_destroy(resume);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *list, void *opaque)
{
    source_t *src = opaque;
    src->cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    src->rebalanced = true;
    src->brokers_down = false;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        claim_assigned(src, list);
        if (src->cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, list);
            if (e) {
                log_error("kafka: incremental assign failed: %s", rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
            }
        } else {
            rd_kafka_assign(rk, list);
        }
        apply_pause_state(src, list);
        return;
    }
    bool lost = err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS || rd_kafka_assignment_lost(rk);
    struct source_partition *parts = calloc((size_t)(list->cnt ? list->cnt : 1), sizeof *parts);
    size_t n = 0;
    for (int i = 0; parts && i < list->cnt; i++) {
        int t = topic_index(src, list->elems[i].topic);
        if (t >= 0)
            parts[n++] = (struct source_partition){t, list->elems[i].partition};
    }
    log_info("%s %d partition(s)%s", lost ? "lost" : "revoking", list->cnt,
             lost ? ": dropping what was not flushed" : ": flushing first");
    if (parts)
        src->ops->revoke(src->ops_ctx, parts, n, lost);
    for (size_t i = 0; i < n; i++) {
        struct part_state *ps = part_get(src, parts[i].topic, parts[i].partition, false);
        if (ps)
            memset(ps, 0, sizeof *ps);
    }
    free(parts);
    if (src->cooperative) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, list);
        if (e) {
            log_error("kafka: incremental unassign failed: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    source_t *src = opaque;
    if (src->n_results == src->cap_results) {
        size_t cap = src->cap_results ? src->cap_results * 2 : 256;
        struct dr_result *r = realloc(src->results, cap * sizeof *r);
        if (!r)
            return; /* the record stays in flight and is re-sent after the wait times out */
        src->results = r;
        src->cap_results = cap;
    }
    src->results[src->n_results++] =
        (struct dr_result){(uint64_t)(uintptr_t)m->_private, m->err};
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err,
                    size_t errlen)
{
    char kerr[256];
    if (rd_kafka_conf_set(conf, key, value, kerr, sizeof kerr) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka property %s=%s: %s", key, value, kerr);
        return -1;
    }
    return 0;
}

/* Settings kpid's correctness depends on; kafka.properties may not override them. */
static const char *const forced_consumer[][2] = {
    {"enable.auto.commit", "false"},
    {"enable.auto.offset.store", "false"},
    {"enable.partition.eof", "false"},
};

/* Defaults kafka.properties may override. A live dashboard wants a broker to answer a
 * fetch quickly rather than wait half a second for more data (librdkafka's 500 ms default
 * was most of the produce-to-Redis latency), and a deep prefetch keeps the loop fed while
 * a flush is on its way (a shallow one halved throughput). kpid is usually slower than the
 * fetcher during a backlog, so the prefetch queue runs full: its bound
 * (queued.max.messages.kbytes, 64 MB of payload by default, plus bookkeeping per message)
 * is what kpid's resident size plateaus at. */
static const char *const default_consumer[][2] = {
    {"fetch.wait.max.ms", "20"},
    {"queued.min.messages", "200000"},
};

static rd_kafka_conf_t *base_conf(const config_t *cfg, char *err, size_t errlen,
                                  bool consumer)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", cfg->kafka_brokers, err, errlen) != 0)
        goto fail;
    for (size_t i = 0; consumer && i < sizeof default_consumer / sizeof default_consumer[0]; i++)
        if (conf_set(conf, default_consumer[i][0], default_consumer[i][1], err, errlen) != 0)
            goto fail;
    for (size_t i = 0; i < cfg->n_kafka_properties; i++)
        if (conf_set(conf, cfg->kafka_properties[i].key, cfg->kafka_properties[i].value, err,
                     errlen) != 0)
            goto fail;
    rd_kafka_conf_set_log_cb(conf, log_cb);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

source_t *source_new(const config_t *cfg, const struct source_owner_ops *ops, void *ops_ctx,
                     char *err, size_t errlen)
{
    source_t *src = calloc(1, sizeof *src);
    if (!src) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    src->ops = ops;
    src->ops_ctx = ops_ctx;
    src->n_topics = cfg->n_kafka_topics;
    src->topics = calloc(src->n_topics, sizeof *src->topics);
    src->dlq_topic = strdup(cfg->kafka_dlq_topic);
    if (!src->topics || !src->dlq_topic)
        goto oom;
    for (size_t i = 0; i < src->n_topics; i++)
        if (!(src->topics[i].name = strdup(cfg->kafka_topics[i])))
            goto oom;

    char kerr[512];
    rd_kafka_conf_t *conf = base_conf(cfg, err, errlen, true);
    if (!conf)
        goto fail;
    for (size_t i = 0; i < sizeof forced_consumer / sizeof forced_consumer[0]; i++) {
        for (size_t k = 0; k < cfg->n_kafka_properties; k++)
            if (strcmp(cfg->kafka_properties[k].key, forced_consumer[i][0]) == 0)
                log_warn("kafka.properties.%s is ignored: kpid stores offsets in redis itself",
                         forced_consumer[i][0]);
        conf_set(conf, forced_consumer[i][0], forced_consumer[i][1], err, errlen);
    }
    if (conf_set(conf, "group.id", cfg->kafka_group_id ? cfg->kafka_group_id : cfg->kafka_group,
                 err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    rd_kafka_conf_set_opaque(conf, src);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    src->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerr, sizeof kerr);
    if (!src->consumer) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "kafka consumer: %s", kerr);
        goto fail;
    }
    rd_kafka_poll_set_consumer(src->consumer);

    conf = base_conf(cfg, err, errlen, false);
    if (!conf)
        goto fail;
    /* The DLQ copy of a message must land once per send even when requests are retried. */
    if (conf_set(conf, "enable.idempotence", "true", err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    char max_bytes[32];
    snprintf(max_bytes, sizeof max_bytes, "%zu", cfg->max_message_bytes + 65536);
    conf_set(conf, "message.max.bytes", max_bytes, err, errlen);
    rd_kafka_conf_set_opaque(conf, src);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    src->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof kerr);
    if (!src->producer) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "kafka producer: %s", kerr);
        goto fail;
    }

    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new((int)src->n_topics);
    for (size_t i = 0; i < src->n_topics; i++)
        rd_kafka_topic_partition_list_add(subs, src->topics[i].name, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t rerr = rd_kafka_subscribe(src->consumer, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (rerr) {
        snprintf(err, errlen, "kafka subscribe: %s", rd_kafka_err2str(rerr));
        goto fail;
    }
    return src;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    if (src->consumer)
        rd_kafka_destroy(src->consumer);
    if (src->producer)
        rd_kafka_destroy(src->producer);
    for (size_t i = 0; src->topics && i < src->n_topics; i++) {
        free(src->topics[i].name);
        free(src->topics[i].parts);
    }
    free(src->topics);
    free(src->dlq_topic);
    free(src);
    return NULL;
}

void source_close(source_t *src)
{
    if (!src)
        return;
    /* Leaving the group revokes through the rebalance callback, which flushes. */
    rd_kafka_consumer_close(src->consumer);
    rd_kafka_destroy(src->consumer);
    rd_kafka_flush(src->producer, 5000);
    rd_kafka_destroy(src->producer);
    for (size_t i = 0; i < src->n_topics; i++) {
        free(src->topics[i].name);
        free(src->topics[i].parts);
    }
    free(src->topics);
    free(src->dlq_topic);
    free(src->results);
    free(src);
}

int source_poll(source_t *src, int timeout_ms, source_message_t *msg)
{
    rd_kafka_poll(src->producer, 0);
    rd_kafka_message_t *m = rd_kafka_consumer_poll(src->consumer, timeout_ms);
    if (!m)
        return 0;
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            log_warn("kafka: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return 0;
    }
    src->brokers_down = false;
    int topic = -1;
    for (size_t i = 0; i < src->n_topics; i++)
        if (src->topics[i].last_rkt == m->rkt) {
            topic = (int)i;
            break;
        }
    if (topic < 0) {
        topic = topic_index(src, rd_kafka_topic_name(m->rkt));
        if (topic >= 0)
            src->topics[topic].last_rkt = m->rkt;
    }
    struct part_state *ps = part_get(src, topic, m->partition, false);
    if (!ps || !ps->owned) {
        /* Fetched before a pause or fence took effect: the owner will consume it. */
        rd_kafka_message_destroy(m);
        return 0;
    }
    msg->topic = topic;
    msg->partition = m->partition;
    msg->offset = m->offset;
    msg->key = m->key;
    msg->key_len = m->key_len;
    msg->value = m->payload;
    msg->value_len = m->len;
    msg->handle = m;
    return 1;
}

void source_message_done(source_t *src, source_message_t *msg)
{
    (void)src;
    rd_kafka_message_destroy(msg->handle);
    msg->handle = NULL;
}

int64_t source_token(source_t *src, int topic, int32_t partition)
{
    struct part_state *ps = part_get(src, topic, partition, false);
    return ps && ps->owned ? ps->token : -1;
}

int64_t source_written(source_t *src, int topic, int32_t partition)
{
    struct part_state *ps = part_get(src, topic, partition, false);
    return ps && ps->owned ? ps->written : -1;
}

static void pause_one(source_t *src, int topic, int32_t partition, bool pause)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, src->topics[topic].name, partition);
    if (pause)
        rd_kafka_pause_partitions(src->consumer, l);
    else
        rd_kafka_resume_partitions(src->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
}

void source_disown(source_t *src, int topic, int32_t partition)
{
    struct part_state *ps = part_get(src, topic, partition, false);
    if (!ps || !ps->owned)
        return;
    ps->owned = false;
    log_warn("%s [%" PRId32 "] is owned by another kpid now (fence token changed): "
             "not writing it again until the group assigns it back",
             src->topics[topic].name, partition);
    pause_one(src, topic, partition, true);
}

void source_reclaim(source_t *src, int topic, int32_t partition)
{
    struct part_state *ps = part_get(src, topic, partition, false);
    if (!ps || !ps->owned)
        return;
    ps->owned = false;
    ps->claim_pending = true;
    pause_one(src, topic, partition, true);
}

static void pause_resume_all(source_t *src, bool pause)
{
    rd_kafka_topic_partition_list_t *list = NULL;
    if (rd_kafka_assignment(src->consumer, &list) != RD_KAFKA_RESP_ERR_NO_ERROR || !list)
        return;
    rd_kafka_topic_partition_list_t *sel = rd_kafka_topic_partition_list_new(list->cnt);
    for (int i = 0; i < list->cnt; i++) {
        struct part_state *ps =
            part_get(src, topic_index(src, list->elems[i].topic), list->elems[i].partition, false);
        /* Pending or fenced partitions stay paused on resume. */
        if (pause || (ps && ps->owned))
            rd_kafka_topic_partition_list_add(sel, list->elems[i].topic,
                                              list->elems[i].partition);
    }
    if (pause)
        rd_kafka_pause_partitions(src->consumer, sel);
    else
        rd_kafka_resume_partitions(src->consumer, sel);
    rd_kafka_topic_partition_list_destroy(sel);
    rd_kafka_topic_partition_list_destroy(list);
}

void source_pause_all(source_t *src)
{
    src->paused_all = true;
    pause_resume_all(src, true);
}

void source_resume_all(source_t *src)
{
    src->paused_all = false;
    pause_resume_all(src, false);
}

size_t source_owned_count(const source_t *src)
{
    size_t n = 0;
    for (size_t t = 0; t < src->n_topics; t++)
        for (int32_t p = 0; p < src->topics[t].n_parts; p++)
            n += src->topics[t].parts[p].owned;
    return n;
}

size_t source_owned_of_topic(const source_t *src, int topic, int32_t *out, size_t max)
{
    size_t n = 0;
    const struct topic_state *ts = &src->topics[topic];
    for (int32_t p = 0; p < ts->n_parts && n < max; p++)
        if (ts->parts[p].owned)
            out[n++] = p;
    return n;
}

int source_retry_claims(source_t *src)
{
    int pending = 0;
    for (size_t t = 0; t < src->n_topics; t++) {
        struct topic_state *ts = &src->topics[t];
        for (int32_t p = 0; p < ts->n_parts; p++) {
            struct part_state *ps = &ts->parts[p];
            if (!ps->claim_pending)
                continue;
            int64_t token, offset;
            if (src->ops->claim(src->ops_ctx, (int)t, &p, 1, &token, &offset) != 0) {
                pending++;
                continue;
            }
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(l, ts->name, p)->offset =
                offset >= 0 ? offset : RD_KAFKA_OFFSET_BEGINNING;
            rd_kafka_error_t *e = rd_kafka_seek_partitions(src->consumer, l, 5000);
            rd_kafka_topic_partition_list_destroy(l);
            if (e) {
                log_warn("kafka: seeking %s [%" PRId32 "]: %s; will retry", ts->name, p,
                         rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
                pending++;
                continue;
            }
            ps->claim_pending = false;
            ps->owned = true;
            ps->token = token;
            ps->start = ps->written = offset;
            log_info("claimed %s [%" PRId32 "] at offset %" PRId64 "; consuming it", ts->name, p,
                     offset);
            if (!src->paused_all)
                pause_one(src, (int)t, p, false);
        }
    }
    return pending;
}

int source_dlq_send(source_t *src, batch_invalid_t *rec, char *err, size_t errlen)
{
    char partition[16], offset[24];
    snprintf(partition, sizeof partition, "%" PRId32, rec->partition);
    snprintf(offset, sizeof offset, "%" PRId64, rec->offset);
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, "kpi.error", -1, rec->reason, -1);
    rd_kafka_header_add(h, "kpi.topic", -1, src->topics[rec->topic].name, -1);
    rd_kafka_header_add(h, "kpi.partition", -1, partition, -1);
    rd_kafka_header_add(h, "kpi.offset", -1, offset, -1);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        src->producer, RD_KAFKA_V_TOPIC(src->dlq_topic),
        RD_KAFKA_V_KEY(rec->key, rec->key ? rec->key_len : 0),
        RD_KAFKA_V_VALUE(rec->value, rec->value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)rec->seq), RD_KAFKA_V_END);
    if (e) {
        rd_kafka_headers_destroy(h); /* not taken over on failure */
        rec->dlq = DLQ_FAILED;
        snprintf(err, errlen, "kafka dead-letter topic %s: %s", src->dlq_topic,
                 rd_kafka_err2str(e));
        return -1;
    }
    rec->dlq = DLQ_IN_FLIGHT;
    return 0;
}

void source_dlq_poll(source_t *src, batch_t *const *batches, size_t n_batches, int timeout_ms)
{
    rd_kafka_poll(src->producer, timeout_ms);
    for (size_t i = 0; i < src->n_results; i++) {
        batch_invalid_t *rec = NULL;
        for (size_t b = 0; b < n_batches && !rec; b++)
            if (batches[b])
                rec = batch_invalid_by_seq(batches[b], src->results[i].seq);
        if (!rec)
            continue;
        rd_kafka_resp_err_t e = src->results[i].err;
        if (!e) {
            rec->dlq = DLQ_ACKED;
            continue;
        }
        rec->dlq = DLQ_FAILED;
        if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && rec->value_len) {
            /* The broker will never take it: send the evidence without the payload. */
            size_t n = strlen(rec->reason);
            snprintf(rec->reason + n, sizeof rec->reason - n,
                     " (payload of %zu bytes not copied: too large for the dead-letter topic)",
                     rec->value_len);
            rec->value_len = 0;
        }
        log_warn("kafka dead-letter topic %s: delivery of a copy of %s [%" PRId32 "] @%" PRId64
                 " failed: %s; will retry",
                 src->dlq_topic, src->topics[rec->topic].name, rec->partition, rec->offset,
                 rd_kafka_err2str(e));
    }
    src->n_results = 0;
}

void source_committed(source_t *src, batch_t *batch)
{
    size_t n = batch_partition_count(batch);
    if (!n)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        const batch_partition_t *p = batch_partition_at(batch, i);
        struct part_state *ps = part_get(src, p->topic, p->partition, false);
        if (ps && ps->owned)
            ps->written = p->next_offset;
        rd_kafka_topic_partition_list_add(l, src->topics[p->topic].name, p->partition)->offset =
            p->next_offset;
    }
    /* Best effort: redis holds the truth; this copy only feeds lag monitoring. */
    rd_kafka_commit(src->consumer, l, 1);
    rd_kafka_topic_partition_list_destroy(l);
}

bool source_kafka_up(source_t *src, const char **why)
{
    if (!src->rebalanced) {
        *why = "no group assignment yet";
        return false;
    }
    if (src->brokers_down) {
        /* librdkafka reports the outage but not its end: ask for metadata, briefly (this
         * blocks the loop, but only while every broker is down). */
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(src->consumer, 0, NULL, &md, 200) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_metadata_destroy(md);
            src->brokers_down = false;
            log_info("kafka: brokers answer again");
        }
    }
    *why = src->brokers_down ? "all brokers down" : NULL;
    return !src->brokers_down;
}

size_t source_lags(source_t *src, struct source_lag *out, size_t max)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (size_t t = 0; t < src->n_topics; t++)
        for (int32_t p = 0; p < src->topics[t].n_parts; p++)
            if (src->topics[t].parts[p].owned)
                rd_kafka_topic_partition_list_add(l, src->topics[t].name, p);
    size_t n = 0;
    if (l->cnt == 0 || rd_kafka_position(src->consumer, l) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_topic_partition_list_destroy(l);
        return 0;
    }
    for (int i = 0; i < l->cnt && n < max; i++) {
        const rd_kafka_topic_partition_t *e = &l->elems[i];
        int t = topic_index(src, e->topic);
        const struct part_state *ps = part_get(src, t, e->partition, false);
        int64_t lo, hi;
        /* Cached from the last fetch response: no network. */
        if (!ps || rd_kafka_get_watermark_offsets(src->consumer, e->topic, e->partition, &lo,
                                                  &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
            hi < 0)
            continue;
        /* Nothing consumed since the assignment: where consumption starts. */
        int64_t pos = e->offset >= 0 ? e->offset : ps->start >= 0 ? ps->start : lo;
        if (pos < 0)
            continue;
        out[n++] = (struct source_lag){src->topics[t].name, e->partition,
                                       hi > pos ? hi - pos : 0};
    }
    rd_kafka_topic_partition_list_destroy(l);
    return n;
}

size_t source_partition_count(source_t *src)
{
    /* From the cluster's metadata (one blocking request), not from the assignment: a
     * member that was given only some partitions must not believe it has seen them all. */
    size_t n = 0;
    for (size_t t = 0; t < src->n_topics; t++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(src->consumer, src->topics[t].name, NULL);
        const struct rd_kafka_metadata *md = NULL;
        if (!rkt)
            return 0;
        rd_kafka_resp_err_t e = rd_kafka_metadata(src->consumer, 0, rkt, &md, 5000);
        rd_kafka_topic_destroy(rkt);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1 || md->topics[0].err) {
            if (md)
                rd_kafka_metadata_destroy(md);
            return 0;
        }
        n += (size_t)md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    return n;
}
