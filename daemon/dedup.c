#include "dedup.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct dedup {
    const char **slots; /* open addressing; NULL = empty */
    size_t n_slots;     /* power of two */
    size_t used;
};

dedup_t *dedup_new(void)
{
    dedup_t *set = calloc(1, sizeof *set);
    if (!set)
        return NULL;
    set->n_slots = 1024;
    set->slots = calloc(set->n_slots, sizeof *set->slots);
    if (!set->slots) {
        free(set);
        return NULL;
    }
    return set;
}

void dedup_free(dedup_t *set)
{
    if (!set)
        return;
    free(set->slots);
    free(set);
}

static uint64_t dedup_hash(const char *s)
{
    uint64_t h = 14695981039346656037ULL;
    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static void dedup_insert(const char **slots, size_t n_slots, const char *id)
{
    size_t s = dedup_hash(id) & (n_slots - 1);
    while (slots[s])
        s = (s + 1) & (n_slots - 1);
    slots[s] = id;
}

bool dedup_seen(dedup_t *set, const char *id)
{
    size_t s = dedup_hash(id) & (set->n_slots - 1);
    while (set->slots[s]) {
        if (strcmp(set->slots[s], id) == 0)
            return true;
        s = (s + 1) & (set->n_slots - 1);
    }
    if ((set->used + 1) * 2 > set->n_slots) {
        size_t n = set->n_slots * 2;
        const char **slots = calloc(n, sizeof *slots);
        if (!slots)
            return false;
        for (size_t i = 0; i < set->n_slots; i++)
            if (set->slots[i])
                dedup_insert(slots, n, set->slots[i]);
        free(set->slots);
        set->slots = slots;
        set->n_slots = n;
    }
    dedup_insert(set->slots, set->n_slots, id);
    set->used++;
    return false;
}

void dedup_reset(dedup_t *set)
{
    memset(set->slots, 0, set->n_slots * sizeof *set->slots);
    set->used = 0;
}
