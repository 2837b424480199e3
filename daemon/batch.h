/* batch: the messages consumed since the last flush, exactly what one Redis transaction
 * will cover: valid events, invalid messages (with copies for the dead-letter topic until
 * the broker acknowledges them), and the next offset of every partition they came from.
 * Bounded by the configured batch size, never by the stream. */
#ifndef KPI_BATCH_H
#define KPI_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

enum dlq_state { DLQ_UNSENT, DLQ_IN_FLIGHT, DLQ_ACKED, DLQ_FAILED };

typedef struct batch_event {
    event_t event;
    int topic;          /* index into the configured topics */
    int32_t partition;
    int64_t offset;
    bool duplicate;     /* decided at flush time */
} batch_event_t;

typedef struct batch_invalid {
    int topic;
    int32_t partition;
    int64_t offset;
    char *key;          /* owned copies; key may be NULL (no key) */
    size_t key_len;
    char *value;
    size_t value_len;
    char reason[256];
    enum dlq_state dlq;
    uint64_t seq;       /* process-wide id for delivery reports (indices move on drops) */
} batch_invalid_t;

typedef struct batch_partition {
    int topic;
    int32_t partition;
    int64_t next_offset;  /* last consumed offset + 1 */
} batch_partition_t;

typedef struct batch batch_t;

batch_t *batch_new(void);
void batch_free(batch_t *batch);

/* A slot for a valid event; the caller fills ->event. NULL on OOM. */
batch_event_t *batch_add_event(batch_t *batch, int topic, int32_t partition, int64_t offset);
/* Forget the last batch_add_event (the message turned out invalid). */
void batch_unadd_event(batch_t *batch);
/* Copies key and value. Returns the record or NULL on OOM. */
batch_invalid_t *batch_add_invalid(batch_t *batch, int topic, int32_t partition, int64_t offset,
                                   const void *key, size_t key_len, const void *value,
                                   size_t value_len, const char *reason);

size_t batch_event_count(const batch_t *batch);
batch_event_t *batch_event_at(batch_t *batch, size_t i);
size_t batch_invalid_count(const batch_t *batch);
batch_invalid_t *batch_invalid_at(batch_t *batch, size_t i);
size_t batch_partition_count(const batch_t *batch);
const batch_partition_t *batch_partition_at(const batch_t *batch, size_t i);
/* Messages (valid + invalid) and bytes held, for the size-bound flush trigger. */
size_t batch_message_count(const batch_t *batch);
size_t batch_bytes(const batch_t *batch);
bool batch_has_partition(const batch_t *batch, int topic, int32_t partition);
/* The invalid record with this seq, or NULL when it was dropped. */
batch_invalid_t *batch_invalid_by_seq(batch_t *batch, uint64_t seq);

/* Drops every record of one partition: it was revoked or lost before being flushed, so its
 * messages will be consumed again by the next owner from the stored offset. */
void batch_drop_partition(batch_t *batch, int topic, int32_t partition);
void batch_clear(batch_t *batch);

#endif
