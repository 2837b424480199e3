/* agg: one batch's counter deltas per (scope, period), in memory.
 *
 * What an event counts (contract section 2) is decided here, by a pure function, and the
 * deltas are summed per Redis hash so a flush writes each (key, field) once however many
 * events touched it. Memory grows with the distinct (scope, period) pairs of one batch and
 * is reused after agg_reset, so it is bounded by active managers and periods. */
#ifndef KPI_AGG_H
#define KPI_AGG_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "keys.h"
#include "period.h"

enum counter {
    COUNTER_CALLS,
    COUNTER_CALLS_CONNECTED,
    COUNTER_CALL_SECONDS,
    COUNTER_CALLS_IN,
    COUNTER_EMAILS,
    COUNTER_EMAILS_IN,
    COUNTER_MEETINGS_SCHEDULED,
    COUNTER_MEETINGS_HELD,
    COUNTER_MEETINGS_NO_SHOW,
    COUNTER_MEETINGS_CANCELLED,
    COUNTER_MEETINGS_FIRST,
    COUNTER_MEETINGS_NEXT_STEP,
    COUNTER_TOUCHES,
    COUNTER_INTERNAL_FILTERED,
    COUNTER_ACTIVITY_COUNT /* number of activity counters above */
};

/* The Redis field name of an activity counter ("calls", "meetings_held", ...). */
const char *agg_counter_name(enum counter counter);

/* Pure: the activity counter deltas of one valid event (all zero for deal_stage).
 * deltas must hold COUNTER_ACTIVITY_COUNT values; they are overwritten. */
void agg_event_deltas(const event_t *event, int touch_min_call_s,
                      int64_t deltas[COUNTER_ACTIVITY_COUNT]);

typedef struct agg agg_t;

/* One (scope, period) hash of the batch; strings are owned by the agg. */
typedef struct agg_bucket {
    enum scope_kind kind;
    enum period_kind period_kind;
    const char *scope;      /* manager id or team name; "" for the organisation */
    const char *period_id;  /* "d:2026-11-16" */
    int64_t period_end_ms;  /* end of the period in its zone, for key expiry */
    int64_t *values;        /* n_counters deltas */
    unsigned flags;         /* the caller's, 0 when created */
} agg_bucket_t;

/* n_counters: how many values each bucket holds (at least COUNTER_ACTIVITY_COUNT). */
agg_t *agg_new(size_t n_counters);
void agg_free(agg_t *agg);
size_t agg_counter_count(const agg_t *agg);

/* The bucket for (kind, scope, period), created zeroed on first use. NULL only when out
 * of memory. The pointer is valid until agg_reset. */
agg_bucket_t *agg_bucket(agg_t *agg, enum scope_kind kind, const char *scope,
                         enum period_kind period_kind, const period_set_t *periods);

/* The same for a hash that is not a calendar period ("pipeline", an hour "h:492345"):
 * period_kind and end_ms are kept for the caller (expiry), the bucket is keyed by
 * (kind, scope, period_id) alone. */
agg_bucket_t *agg_bucket_id(agg_t *agg, enum scope_kind kind, const char *scope,
                            enum period_kind period_kind, const char *period_id, int64_t end_ms);
/* The existing bucket, or NULL. */
agg_bucket_t *agg_find(const agg_t *agg, enum scope_kind kind, const char *scope,
                       const char *period_id);

/* Adds deltas to the buckets of every period of `periods` for one scope. -1 on OOM. */
int agg_add(agg_t *agg, enum scope_kind kind, const char *scope, const period_set_t *periods,
            const int64_t *deltas, size_t n_deltas);

size_t agg_bucket_count(const agg_t *agg);
const agg_bucket_t *agg_bucket_at(const agg_t *agg, size_t index);

/* Forgets every bucket but keeps the memory for the next batch. */
void agg_reset(agg_t *agg);

#endif
