/* notify_impl: what notify.c (the stream and its consumer groups) and notify_send.c (the
 * Kafka and webhook channels) share. Private to the notify module.
 *
 * An entry read from the stream is held by its channel until acknowledged: WAITING (to be
 * sent, now or after a retry delay), SENDING (a Kafka message or an HTTP request in
 * flight), DONE (delivered, or gone from the stream: XACK at the next Redis round). */
#ifndef KPI_NOTIFY_IMPL_H
#define KPI_NOTIFY_IMPL_H

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "keys.h"
#include "notify.h"
#include "rconn.h"

#define HOLD_MAX 32             /* entries a channel holds (read, not yet acknowledged) */
#define READ_EVERY_MS 100       /* XREADGROUP without a kick: other kpid's alerts */
#define CLAIM_EVERY_MS 30000    /* XAUTOCLAIM scan for entries a dead consumer left */
#define CLAIM_IDLE_MS 60000     /* ... pending that long without their owner touching them */
#define REFRESH_AFTER_MS 20000  /* an entry we hold that long gets its idle time reset */
#define REFRESH_SLACK_MS 1000   /* clock and latency margin of that check */
#define RETRY_FIRST_MS 1000     /* a failed delivery is retried after 1, 2, 4 ... 60 s */
#define RETRY_MAX_MS 60000
#define REDIS_RETRY_MAX_MS 30000
#define TROUBLE_PAUSE_MS 30000  /* after an error reply (wrong key type, ACL): retry later */
#define NOTIFY_ID_MAX 48        /* a stream id is at most 41 characters */

enum entry_state { WAITING, SENDING, DONE };

struct entry {
    char id[NOTIFY_ID_MAX];   /* stream id "<ms>-<seq>" */
    uint64_t id_ms, id_seq;
    char *json, *manager;     /* NULL for a lost entry; manager "" when the field is absent */
    size_t json_len;
    enum entry_state state;
    bool orphan;              /* another kpid owns it now: dropped when the attempt ends */
    int failures;
    int64_t retry_at_ms;
    int64_t touched_ms;       /* when Redis last reset its idle time for us */
    uint64_t seq;             /* Kafka message opaque */
    CURL *easy;
    char curl_err[CURL_ERROR_SIZE];
};

enum { CH_KAFKA, CH_WEBHOOK, CH_COUNT };

struct channel {
    const char *group;
    bool enabled, group_ready, trouble, read_now;
    struct entry *held[HOLD_MAX]; /* in stream order */
    size_t n_held;
    int64_t next_read_ms, next_claim_ms, paused_until_ms;
    char cursor[NOTIFY_ID_MAX];   /* XAUTOCLAIM scan position */
    uint64_t delivered, failed, lost;
};

struct dr_result {
    uint64_t seq;
    rd_kafka_resp_err_t err;
};

struct notify {
    const config_t *cfg;      /* borrowed: webhook settings, Kafka settings on a restart */
    struct rconn_target redis_target; /* own copy of redis.*: an address needs a restart */
    char stream[KEYS_MAX];
    char consumer[320];       /* "<hostname>-<pid>" */
    char redis_addr[400];
    redisContext *redis;
    bool outage;              /* logged: quiet until Redis answers again */
    int redis_backoff_ms;
    int64_t redis_retry_ms;
    char *topic;              /* NULL: Kafka channel off */
    rd_kafka_t *producer;
    struct dr_result results[HOLD_MAX]; /* delivery reports of the last rd_kafka_poll */
    size_t n_results;
    uint64_t next_seq;
    CURLM *multi;
    struct curl_slist *headers;
    char *url_shown;          /* webhook URL without credentials and query, for logs */
    struct channel ch[CH_COUNT];
    bool draining;
};

/* notify.c */
void notify_held_remove(struct channel *ch, struct entry *e); /* and frees it */

/* notify_send.c: outcomes (a failure schedules the retry and logs one line) */
void notify_delivered(struct channel *ch, struct entry *e);
void notify_failed(notify_t *n, struct channel *ch, struct entry *e, int64_t now,
                   const char *why);

/* notify_send.c: Kafka. notify_kafka_new: NULL and err when librdkafka rejects the settings. */
rd_kafka_t *notify_kafka_new(notify_t *n, const config_t *cfg, char *err, size_t errlen);
void notify_kafka_destroy(notify_t *n);
void notify_kafka_start(notify_t *n, struct channel *ch, struct entry *e, int64_t now);
void notify_kafka_serve(notify_t *n, int64_t now);

/* notify_send.c: webhook */
void notify_webhook_start(notify_t *n, struct channel *ch, struct entry *e, int64_t now);
void notify_webhook_serve(notify_t *n, int64_t now);
void notify_webhook_end(notify_t *n, struct entry *e); /* aborts or finishes its transfer */
char *notify_url_for_logs(const char *url);           /* strdup'ed; NULL without memory */

#endif
