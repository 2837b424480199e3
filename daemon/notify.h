/* notify: delivers the alerts in the <prefix>:alerts stream to the Kafka alerts topic and
 * the HTTP webhook (contract section 5), from inside kpid's single-threaded poll loop.
 *
 * The stream is a durable outbox: the evaluator XADDs an alert in the same MULTI/EXEC that
 * changes its state, and this module hands every entry to each enabled channel. Each
 * channel is a Redis consumer group on the stream ("kafka", "webhook"); an entry is
 * acknowledged (XACK) in a group only once that channel has it. So several kpid sharing
 * the stream deliver each entry once, and the entries a crashed kpid held stay pending
 * until another kpid takes them over (XAUTOCLAIM) once they have been idle 60 s.
 * Delivery is at least once: a crash between a delivery and its XACK sends it again.
 *
 * Nothing here waits: Redis commands are short non-blocking ones (bounded by
 * redis.timeout_ms), Kafka goes through librdkafka's queue, HTTP through curl's multi
 * interface. A channel holds at most 32 entries; one manager's alerts go out one at a
 * time in stream order, so a receiver never sees an alert resolve before it fired (with
 * one kpid; entries shared between kpid or taken over after a crash can overtake). */
#ifndef KPI_NOTIFY_H
#define KPI_NOTIFY_H

#include <stdint.h>

#include "config.h"

typedef struct notify notify_t;

/* cfg is borrowed until the next notify_reconfigure / notify_free. NULL and err on failure
 * (out of memory, a Kafka producer configuration librdkafka rejects). A Redis that cannot
 * be reached is not a failure: delivery starts when it answers. */
notify_t *notify_new(const config_t *cfg, char *err, size_t errlen);

/* After a configuration reload: the webhook URL and timeout take effect (a webhook can be
 * turned on or off); the Kafka brokers, alerts topic and the Redis address need a restart
 * (logged when they changed). */
void notify_reconfigure(notify_t *n, const config_t *cfg);

/* Non-blocking: serves curl and Kafka delivery reports, reads, claims and acknowledges
 * stream entries as they fall due, starts deliveries. Call every loop iteration (at least
 * every 100 ms); now_ms is wall-clock time. */
void notify_poll(notify_t *n, int64_t now_ms);

/* Entries were just added to the stream: read them at the next poll. */
void notify_kick(notify_t *n);

/* Counters since notify_new. delivered: entries a channel has delivered; failed: failed
 * attempts (each is retried); lost: entries trimmed from the stream (MAXLEN) before their
 * channel delivered them, per channel. */
struct notify_stats {
    uint64_t kafka_delivered, kafka_failed, webhook_delivered, webhook_failed, lost;
};
void notify_get_stats(const notify_t *n, struct notify_stats *out);

/* At shutdown: keeps polling up to drain_ms for the deliveries in flight, then frees
 * everything. Undelivered entries stay pending in Redis for another (or the next) kpid. */
void notify_free(notify_t *n, int drain_ms);

#endif
