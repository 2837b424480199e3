#include "agg.h"

#include <stdlib.h>
#include <string.h>

static const char *const counter_names[COUNTER_ACTIVITY_COUNT] = {
    "calls", "calls_connected", "call_seconds", "calls_in", "emails", "emails_in",
    "meetings_scheduled", "meetings_held", "meetings_no_show", "meetings_cancelled",
    "meetings_first", "meetings_next_step", "touches", "internal_filtered",
};

const char *agg_counter_name(enum counter counter)
{
    return (unsigned)counter < COUNTER_ACTIVITY_COUNT ? counter_names[counter] : "?";
}

void agg_event_deltas(const event_t *ev, int touch_min_call_s, int64_t d[COUNTER_ACTIVITY_COUNT])
{
    memset(d, 0, sizeof(int64_t) * COUNTER_ACTIVITY_COUNT);
    if (ev->type == EVENT_DEAL_STAGE)
        return;
    if (ev->internal) {
        /* Calling colleagues must not pad anyone's KPI: internal activity counts only here. */
        d[COUNTER_INTERNAL_FILTERED] = 1;
        return;
    }
    switch (ev->type) {
    case EVENT_CALL:
        if (ev->direction == DIRECTION_INBOUND) {
            d[COUNTER_CALLS_IN] = 1;
            break;
        }
        d[COUNTER_CALLS] = 1;
        d[COUNTER_CALL_SECONDS] = ev->duration_s;
        if (ev->call_status == CALL_CONNECTED) {
            d[COUNTER_CALLS_CONNECTED] = 1;
            if (ev->duration_s >= touch_min_call_s)
                d[COUNTER_TOUCHES] = 1;
        }
        break;
    case EVENT_EMAIL:
        if (ev->direction == DIRECTION_INBOUND) {
            d[COUNTER_EMAILS_IN] = 1;
        } else {
            d[COUNTER_EMAILS] = 1;
            d[COUNTER_TOUCHES] = 1;
        }
        break;
    case EVENT_MEETING:
        switch (ev->meeting_status) {
        case MEETING_SCHEDULED: d[COUNTER_MEETINGS_SCHEDULED] = 1; break;
        case MEETING_CANCELLED: d[COUNTER_MEETINGS_CANCELLED] = 1; break;
        case MEETING_NO_SHOW: d[COUNTER_MEETINGS_NO_SHOW] = 1; break;
        case MEETING_HELD:
            d[COUNTER_MEETINGS_HELD] = 1;
            d[COUNTER_TOUCHES] = 1;
            if (ev->meeting_first) {
                d[COUNTER_MEETINGS_FIRST] = 1;
                if (ev->next_step)
                    d[COUNTER_MEETINGS_NEXT_STEP] = 1;
            }
            break;
        }
        break;
    case EVENT_DEAL_STAGE:
        break;
    }
}

/* Strings and value vectors live in arena chunks that are rewound, not freed, per batch. */
struct arena_chunk {
    struct arena_chunk *next;
    size_t used, size;
    max_align_t data[];
};

struct agg {
    size_t n_counters;
    agg_bucket_t *buckets;   /* dense, in insertion order */
    uint64_t *hashes;        /* parallel to buckets */
    size_t n_buckets, cap_buckets;
    uint32_t *slots;         /* open addressing: 1 + bucket index, 0 = empty */
    size_t n_slots;          /* power of two */
    struct arena_chunk *chunks, *current;
};

static void *arena_alloc(agg_t *agg, size_t size)
{
    size = (size + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    for (struct arena_chunk *c = agg->current; c; c = c->next) {
        if (c->size - c->used >= size) {
            void *p = (char *)c->data + c->used;
            c->used += size;
            agg->current = c;
            return p;
        }
    }
    size_t chunk_size = size > 65536 ? size : 65536;
    struct arena_chunk *c = malloc(sizeof *c + chunk_size);
    if (!c)
        return NULL;
    c->next = NULL;
    c->size = chunk_size;
    c->used = size;
    /* Append so that a rewound arena reuses chunks in order. */
    struct arena_chunk **tail = &agg->chunks;
    while (*tail)
        tail = &(*tail)->next;
    *tail = c;
    agg->current = c;
    return c->data;
}

agg_t *agg_new(size_t n_counters)
{
    agg_t *agg = calloc(1, sizeof *agg);
    if (!agg)
        return NULL;
    agg->n_counters = n_counters < COUNTER_ACTIVITY_COUNT ? COUNTER_ACTIVITY_COUNT : n_counters;
    agg->n_slots = 1024;
    agg->slots = calloc(agg->n_slots, sizeof *agg->slots);
    if (!agg->slots) {
        free(agg);
        return NULL;
    }
    return agg;
}

void agg_free(agg_t *agg)
{
    if (!agg)
        return;
    struct arena_chunk *c = agg->chunks;
    while (c) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(agg->buckets);
    free(agg->hashes);
    free(agg->slots);
    free(agg);
}

size_t agg_counter_count(const agg_t *agg) { return agg->n_counters; }

static uint64_t hash_str(uint64_t h, const char *s)
{
    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 1099511628211ULL;
    }
    return h * 1099511628211ULL;
}

static int agg_grow_slots(agg_t *agg)
{
    size_t n = agg->n_slots * 2;
    uint32_t *slots = calloc(n, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < agg->n_buckets; i++) {
        size_t s = agg->hashes[i] & (n - 1);
        while (slots[s])
            s = (s + 1) & (n - 1);
        slots[s] = (uint32_t)(i + 1);
    }
    free(agg->slots);
    agg->slots = slots;
    agg->n_slots = n;
    return 0;
}

static char *arena_strdup(agg_t *agg, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = arena_alloc(agg, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static uint64_t bucket_hash(enum scope_kind kind, const char *scope, const char *period_id)
{
    return hash_str(hash_str(14695981039346656037ULL ^ (uint64_t)kind, scope), period_id);
}

/* The slot holding (kind, scope, period_id), or the empty slot where it would go. */
static size_t bucket_slot(const agg_t *agg, uint64_t h, enum scope_kind kind, const char *scope,
                          const char *period_id)
{
    size_t s = h & (agg->n_slots - 1);
    while (agg->slots[s]) {
        size_t i = agg->slots[s] - 1;
        const agg_bucket_t *b = &agg->buckets[i];
        if (agg->hashes[i] == h && b->kind == kind && strcmp(b->scope, scope) == 0 &&
            strcmp(b->period_id, period_id) == 0)
            return s;
        s = (s + 1) & (agg->n_slots - 1);
    }
    return s;
}

agg_bucket_t *agg_find(const agg_t *agg, enum scope_kind kind, const char *scope,
                       const char *period_id)
{
    size_t s = bucket_slot(agg, bucket_hash(kind, scope, period_id), kind, scope, period_id);
    return agg->slots[s] ? &agg->buckets[agg->slots[s] - 1] : NULL;
}

agg_bucket_t *agg_bucket_id(agg_t *agg, enum scope_kind kind, const char *scope,
                            enum period_kind period_kind, const char *period_id, int64_t end_ms)
{
    uint64_t h = bucket_hash(kind, scope, period_id);
    size_t s = bucket_slot(agg, h, kind, scope, period_id);
    if (agg->slots[s])
        return &agg->buckets[agg->slots[s] - 1];
    if (agg->n_buckets == agg->cap_buckets) {
        size_t cap = agg->cap_buckets ? agg->cap_buckets * 2 : 256;
        agg_bucket_t *buckets = realloc(agg->buckets, cap * sizeof *buckets);
        if (!buckets)
            return NULL;
        agg->buckets = buckets;
        uint64_t *hashes = realloc(agg->hashes, cap * sizeof *hashes);
        if (!hashes)
            return NULL;
        agg->hashes = hashes;
        agg->cap_buckets = cap;
    }
    agg_bucket_t *b = &agg->buckets[agg->n_buckets];
    b->kind = kind;
    b->period_kind = period_kind;
    b->scope = arena_strdup(agg, scope);
    b->period_id = arena_strdup(agg, period_id);
    b->period_end_ms = end_ms;
    b->flags = 0;
    b->values = arena_alloc(agg, agg->n_counters * sizeof(int64_t));
    if (!b->scope || !b->period_id || !b->values)
        return NULL;
    memset(b->values, 0, agg->n_counters * sizeof(int64_t));
    agg->hashes[agg->n_buckets] = h;
    agg->slots[s] = (uint32_t)(++agg->n_buckets);
    /* Keep the table at most half full so probes stay short. */
    if (agg->n_buckets * 2 > agg->n_slots && agg_grow_slots(agg) != 0)
        return NULL;
    return &agg->buckets[agg->n_buckets - 1];
}

agg_bucket_t *agg_bucket(agg_t *agg, enum scope_kind kind, const char *scope,
                         enum period_kind period_kind, const period_set_t *periods)
{
    return agg_bucket_id(agg, kind, scope, period_kind, periods->id[period_kind],
                         periods->end_ms[period_kind]);
}

int agg_add(agg_t *agg, enum scope_kind kind, const char *scope, const period_set_t *periods,
            const int64_t *deltas, size_t n_deltas)
{
    if (n_deltas > agg->n_counters)
        n_deltas = agg->n_counters;
    for (int p = 0; p < PERIOD_KINDS; p++) {
        agg_bucket_t *b = agg_bucket(agg, kind, scope, (enum period_kind)p, periods);
        if (!b)
            return -1;
        for (size_t i = 0; i < n_deltas; i++)
            b->values[i] += deltas[i];
    }
    return 0;
}

size_t agg_bucket_count(const agg_t *agg) { return agg->n_buckets; }

const agg_bucket_t *agg_bucket_at(const agg_t *agg, size_t index)
{
    return index < agg->n_buckets ? &agg->buckets[index] : NULL;
}

void agg_reset(agg_t *agg)
{
    agg->n_buckets = 0;
    memset(agg->slots, 0, agg->n_slots * sizeof *agg->slots);
    for (struct arena_chunk *c = agg->chunks; c; c = c->next)
        c->used = 0;
    agg->current = agg->chunks;
}
