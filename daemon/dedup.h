/* dedup: the set of event ids inside one batch, so a duplicate within a batch is caught
 * before Redis is asked about the rest. Ids remembered across batches and restarts live in
 * Redis (sorted set <prefix>:dedup, written by the sink in the flush transaction). */
#ifndef KPI_DEDUP_H
#define KPI_DEDUP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct dedup dedup_t;

dedup_t *dedup_new(void);
void dedup_free(dedup_t *set);
/* Returns true when id was already in the set, else adds it (the string is borrowed and
 * must outlive the next dedup_reset). -1 cast to bool is never returned: on OOM the id is
 * treated as new, which is safe because Redis still de-duplicates it. */
bool dedup_seen(dedup_t *set, const char *id);
void dedup_reset(dedup_t *set);

#endif
