/* dealset: the deals of one batch and their state, loaded from Redis in one pipelined read
 * before the batch is applied and written back in the flush transaction. Keyed by deal_id;
 * holds copies of the ids, so records of the batch may move (fenced partitions dropped).
 * Memory is bounded by the distinct deals of one batch and reused across batches. */
#ifndef KPI_DEALSET_H
#define KPI_DEALSET_H

#include <stdbool.h>
#include <stddef.h>

#include "deals.h"

typedef struct dealset_entry {
    const char *deal_id;  /* owned by the set */
    bool exists;          /* a stored state was loaded (else the deal is new) */
    bool changed;         /* state must be written back */
    deal_state_t state;   /* valid when exists or changed */
} dealset_entry_t;

typedef struct dealset dealset_t;

dealset_t *dealset_new(void);
void dealset_free(dealset_t *set);
void dealset_reset(dealset_t *set);

/* The entry of deal_id, added (not existing, not changed) when new. NULL on OOM. */
dealset_entry_t *dealset_add(dealset_t *set, const char *deal_id);
/* The entry of deal_id, or NULL. */
dealset_entry_t *dealset_find(const dealset_t *set, const char *deal_id);
size_t dealset_count(const dealset_t *set);
dealset_entry_t *dealset_at(dealset_t *set, size_t index);

#endif
