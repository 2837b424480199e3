/* source: the Kafka side. A consumer group member whose starting offsets come from Redis
 * (Kafka's committed offsets are only a copy, for lag monitoring), and a producer for the
 * dead-letter topic.
 *
 * Partition ownership is decided here: on assignment the source asks its owner (the loop)
 * to claim the partitions in Redis, which returns a fence token and the stored next offset
 * per partition; the partitions are then assigned at exactly those offsets. On revocation
 * the owner flushes (or, when the assignment was lost, drops) what it holds of them first.
 * Partitions assigned while Redis is unreachable stay paused until a claim succeeds. */
#ifndef KPI_SOURCE_H
#define KPI_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "config.h"

typedef struct source source_t;

struct source_partition {
    int topic;
    int32_t partition;
};

struct source_owner_ops {
    /* Claim partitions of one topic in Redis: 0 with tokens/offsets filled (offset -1 = none
     * stored), or -1 when Redis cannot be reached. */
    int (*claim)(void *ctx, int topic, const int32_t *partitions, size_t n, int64_t *tokens,
                 int64_t *offsets);
    /* These partitions are being taken away. lost: the group already gave them to someone
     * else, so nothing of them may be written. */
    void (*revoke)(void *ctx, const struct source_partition *parts, size_t n, bool lost);
};

/* A consumed message, borrowed until source_message_done. */
typedef struct source_message {
    int topic;
    int32_t partition;
    int64_t offset;
    const void *key;   /* NULL when the message has no key */
    size_t key_len;
    const void *value; /* NULL for a tombstone */
    size_t value_len;
    void *handle;
} source_message_t;

source_t *source_new(const config_t *cfg, const struct source_owner_ops *ops, void *ops_ctx,
                     char *err, size_t errlen);
/* Leaves the group (revoking through ops) and frees everything. */
void source_close(source_t *src);

/* Serves the group and returns at most one message of a partition this process owns:
 * 1 with *msg filled, 0 when none arrived within timeout_ms. */
int source_poll(source_t *src, int timeout_ms, source_message_t *msg);
void source_message_done(source_t *src, source_message_t *msg);

/* The fence token held for a partition, -1 when not owned (or its claim is pending). */
int64_t source_token(source_t *src, int topic, int32_t partition);
/* Forget a partition Redis says someone else owns: pause it and drop its messages until
 * the group assigns it again. */
void source_disown(source_t *src, int topic, int32_t partition);
/* The next offset Redis is known to hold for an owned partition (from its claim or our
 * last commit); -1 when none, or not owned. */
int64_t source_written(source_t *src, int topic, int32_t partition);
/* Redis went back in time for a partition we own (it lost acknowledged writes: a failover
 * to a replica that was behind, or a restore): pause it and claim it again, which seeks
 * to the offset Redis holds, so what Redis lost is consumed again. Retried like the claims
 * of partitions assigned during an outage (source_retry_claims). */
void source_reclaim(source_t *src, int topic, int32_t partition);

/* Stop/restart fetching everything (Redis outage). New assignments stay paused too. */
void source_pause_all(source_t *src);
void source_resume_all(source_t *src);
/* Retry the claims of partitions assigned while Redis was down. 0 when none is pending. */
int source_retry_claims(source_t *src);
size_t source_owned_count(const source_t *src);
/* The partitions of one topic this process owns (at most max). */
size_t source_owned_of_topic(const source_t *src, int topic, int32_t *out, size_t max);
/* How many partitions the subscribed topics have, asked of the cluster (blocks up to 5 s
 * per topic); 0 when it does not answer. */
size_t source_partition_count(source_t *src);

/* Health: false with a reason until the group's first assignment (even an empty one), and
 * while librdkafka reports every broker down (then it probes, waiting at most 200 ms). */
bool source_kafka_up(source_t *src, const char **why);

struct source_lag {
    const char *topic; /* owned by src */
    int32_t partition;
    int64_t lag;       /* high watermark - position */
};
/* The lag of each owned partition whose high watermark is known, from what librdkafka
 * cached (no network). Returns how many were written to out (at most max). */
size_t source_lags(source_t *src, struct source_lag *out, size_t max);

/* Dead-letter topic: send a copy of an invalid message (state -> DLQ_IN_FLIGHT); delivery
 * reports move it to DLQ_ACKED or DLQ_FAILED when served by source_dlq_poll. */
int source_dlq_send(source_t *src, batch_invalid_t *rec, char *err, size_t errlen);
/* Serves delivery reports and applies them to whichever of the given batches holds each
 * record (reports of records no longer held are ignored). */
void source_dlq_poll(source_t *src, batch_t *const *batches, size_t n_batches, int timeout_ms);

/* After a flush: remember what Redis now holds (see source_written), and commit the
 * batch's next offsets to Kafka (async), for lag monitoring only. */
void source_committed(source_t *src, batch_t *batch);

const char *source_topic_name(const source_t *src, int topic);

/* A librdkafka log line of any kpid client in kpid's log, prefixed with `who` ("kafka"),
 * its level mapped to kpid's; the warnings that shared kafka.properties cause are dropped. */
void source_kafka_log(const char *who, int level, const char *fac, const char *buf);

#endif
