#include "batch.h"

#include <stdlib.h>
#include <string.h>

struct batch {
    batch_event_t *events;
    size_t n_events, cap_events;
    batch_invalid_t *invalid;
    size_t n_invalid, cap_invalid;
    batch_partition_t *partitions;
    size_t n_partitions, cap_partitions;
    size_t bytes;
};

/* Process-wide, so a delivery report can be matched to its record whichever batch holds it. */
static uint64_t batch_next_seq;

batch_t *batch_new(void) { return calloc(1, sizeof(batch_t)); }

static void batch_invalid_release(batch_invalid_t *rec)
{
    free(rec->key);
    free(rec->value);
}

void batch_free(batch_t *batch)
{
    if (!batch)
        return;
    batch_clear(batch);
    free(batch->events);
    free(batch->invalid);
    free(batch->partitions);
    free(batch);
}

static int grow(void **array, size_t *cap, size_t elem, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 1024;
    while (n < need)
        n *= 2;
    void *p = realloc(*array, n * elem);
    if (!p)
        return -1;
    *array = p;
    *cap = n;
    return 0;
}

static int batch_note_offset(batch_t *batch, int topic, int32_t partition, int64_t offset)
{
    for (size_t i = 0; i < batch->n_partitions; i++) {
        batch_partition_t *p = &batch->partitions[i];
        if (p->topic == topic && p->partition == partition) {
            if (offset + 1 > p->next_offset)
                p->next_offset = offset + 1;
            return 0;
        }
    }
    if (grow((void **)&batch->partitions, &batch->cap_partitions, sizeof(batch_partition_t),
             batch->n_partitions + 1) != 0)
        return -1;
    batch->partitions[batch->n_partitions++] =
        (batch_partition_t){.topic = topic, .partition = partition, .next_offset = offset + 1};
    return 0;
}

batch_event_t *batch_add_event(batch_t *batch, int topic, int32_t partition, int64_t offset)
{
    if (grow((void **)&batch->events, &batch->cap_events, sizeof(batch_event_t),
             batch->n_events + 1) != 0 ||
        batch_note_offset(batch, topic, partition, offset) != 0)
        return NULL;
    batch_event_t *rec = &batch->events[batch->n_events++];
    rec->topic = topic;
    rec->partition = partition;
    rec->offset = offset;
    rec->duplicate = false;
    batch->bytes += sizeof *rec;
    return rec;
}

void batch_unadd_event(batch_t *batch)
{
    /* The partition's offset note stays: batch_add_invalid follows for the same offset. */
    if (batch->n_events > 0) {
        batch->n_events--;
        batch->bytes -= sizeof(batch_event_t);
    }
}

batch_invalid_t *batch_add_invalid(batch_t *batch, int topic, int32_t partition, int64_t offset,
                                   const void *key, size_t key_len, const void *value,
                                   size_t value_len, const char *reason)
{
    if (grow((void **)&batch->invalid, &batch->cap_invalid, sizeof(batch_invalid_t),
             batch->n_invalid + 1) != 0 ||
        batch_note_offset(batch, topic, partition, offset) != 0)
        return NULL;
    batch_invalid_t *rec = &batch->invalid[batch->n_invalid];
    memset(rec, 0, sizeof *rec);
    rec->topic = topic;
    rec->partition = partition;
    rec->offset = offset;
    if (key) {
        rec->key = malloc(key_len ? key_len : 1);
        if (!rec->key)
            return NULL;
        memcpy(rec->key, key, key_len);
        rec->key_len = key_len;
    }
    rec->value = malloc(value_len ? value_len : 1);
    if (!rec->value) {
        free(rec->key);
        return NULL;
    }
    if (value_len)
        memcpy(rec->value, value, value_len);
    rec->value_len = value_len;
    size_t n = strlen(reason);
    if (n >= sizeof rec->reason)
        n = sizeof rec->reason - 1;
    memcpy(rec->reason, reason, n);
    rec->reason[n] = '\0';
    rec->dlq = DLQ_UNSENT;
    rec->seq = ++batch_next_seq;
    batch->n_invalid++;
    batch->bytes += sizeof *rec + key_len + value_len;
    return rec;
}

size_t batch_event_count(const batch_t *batch) { return batch->n_events; }
batch_event_t *batch_event_at(batch_t *batch, size_t i) { return &batch->events[i]; }
size_t batch_invalid_count(const batch_t *batch) { return batch->n_invalid; }
batch_invalid_t *batch_invalid_at(batch_t *batch, size_t i) { return &batch->invalid[i]; }
size_t batch_partition_count(const batch_t *batch) { return batch->n_partitions; }
const batch_partition_t *batch_partition_at(const batch_t *batch, size_t i)
{
    return &batch->partitions[i];
}
size_t batch_message_count(const batch_t *batch) { return batch->n_events + batch->n_invalid; }
size_t batch_bytes(const batch_t *batch) { return batch->bytes; }

bool batch_has_partition(const batch_t *batch, int topic, int32_t partition)
{
    for (size_t i = 0; i < batch->n_partitions; i++)
        if (batch->partitions[i].topic == topic && batch->partitions[i].partition == partition)
            return true;
    return false;
}

batch_invalid_t *batch_invalid_by_seq(batch_t *batch, uint64_t seq)
{
    /* Records keep insertion order through drops, so seqs are sorted. */
    size_t lo = 0, hi = batch->n_invalid;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (batch->invalid[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < batch->n_invalid && batch->invalid[lo].seq == seq ? &batch->invalid[lo] : NULL;
}

void batch_drop_partition(batch_t *batch, int topic, int32_t partition)
{
    size_t w = 0;
    for (size_t r = 0; r < batch->n_events; r++) {
        if (batch->events[r].topic == topic && batch->events[r].partition == partition) {
            batch->bytes -= sizeof(batch_event_t);
            continue;
        }
        batch->events[w++] = batch->events[r];
    }
    batch->n_events = w;
    w = 0;
    for (size_t r = 0; r < batch->n_invalid; r++) {
        batch_invalid_t *rec = &batch->invalid[r];
        if (rec->topic == topic && rec->partition == partition) {
            batch->bytes -= sizeof *rec + rec->key_len + rec->value_len;
            batch_invalid_release(rec);
            continue;
        }
        batch->invalid[w++] = *rec;
    }
    batch->n_invalid = w;
    w = 0;
    for (size_t r = 0; r < batch->n_partitions; r++)
        if (!(batch->partitions[r].topic == topic && batch->partitions[r].partition == partition))
            batch->partitions[w++] = batch->partitions[r];
    batch->n_partitions = w;
}

void batch_clear(batch_t *batch)
{
    for (size_t i = 0; i < batch->n_invalid; i++)
        batch_invalid_release(&batch->invalid[i]);
    batch->n_events = batch->n_invalid = batch->n_partitions = 0;
    batch->bytes = 0;
}
