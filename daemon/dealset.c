#include "dealset.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct dealset {
    dealset_entry_t *entries; /* dense, insertion order */
    uint64_t *hashes;
    size_t n, cap;
    uint32_t *slots; /* open addressing: 1 + entry index, 0 = empty */
    size_t n_slots;  /* power of two, at least twice n */
};

static uint64_t hash_id(const char *s)
{
    uint64_t h = 14695981039346656037ULL;
    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 1099511628211ULL;
    }
    return h;
}

dealset_t *dealset_new(void)
{
    dealset_t *set = calloc(1, sizeof *set);
    if (!set)
        return NULL;
    set->n_slots = 256;
    set->slots = calloc(set->n_slots, sizeof *set->slots);
    if (!set->slots) {
        free(set);
        return NULL;
    }
    return set;
}

void dealset_reset(dealset_t *set)
{
    for (size_t i = 0; i < set->n; i++)
        free((char *)set->entries[i].deal_id);
    set->n = 0;
    memset(set->slots, 0, set->n_slots * sizeof *set->slots);
}

void dealset_free(dealset_t *set)
{
    if (!set)
        return;
    dealset_reset(set);
    free(set->entries);
    free(set->hashes);
    free(set->slots);
    free(set);
}

static size_t slot_of(const dealset_t *set, uint64_t h, const char *id)
{
    size_t s = h & (set->n_slots - 1);
    while (set->slots[s]) {
        size_t i = set->slots[s] - 1;
        if (set->hashes[i] == h && strcmp(set->entries[i].deal_id, id) == 0)
            return s;
        s = (s + 1) & (set->n_slots - 1);
    }
    return s;
}

static int grow(dealset_t *set)
{
    size_t n_slots = set->n_slots * 2;
    uint32_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < set->n; i++) {
        size_t s = set->hashes[i] & (n_slots - 1);
        while (slots[s])
            s = (s + 1) & (n_slots - 1);
        slots[s] = (uint32_t)(i + 1);
    }
    free(set->slots);
    set->slots = slots;
    set->n_slots = n_slots;
    return 0;
}

dealset_entry_t *dealset_find(const dealset_t *set, const char *deal_id)
{
    size_t s = slot_of(set, hash_id(deal_id), deal_id);
    return set->slots[s] ? &set->entries[set->slots[s] - 1] : NULL;
}

dealset_entry_t *dealset_add(dealset_t *set, const char *deal_id)
{
    uint64_t h = hash_id(deal_id);
    size_t s = slot_of(set, h, deal_id);
    if (set->slots[s])
        return &set->entries[set->slots[s] - 1];
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 64;
        dealset_entry_t *entries = realloc(set->entries, cap * sizeof *entries);
        if (!entries)
            return NULL;
        set->entries = entries;
        uint64_t *hashes = realloc(set->hashes, cap * sizeof *hashes);
        if (!hashes)
            return NULL;
        set->hashes = hashes;
        set->cap = cap;
    }
    char *copy = strdup(deal_id);
    if (!copy)
        return NULL;
    dealset_entry_t *e = &set->entries[set->n];
    memset(e, 0, sizeof *e);
    e->deal_id = copy;
    set->hashes[set->n] = h;
    set->slots[s] = (uint32_t)(++set->n);
    if (set->n * 2 > set->n_slots && grow(set) != 0)
        return NULL;
    return &set->entries[set->n - 1];
}

size_t dealset_count(const dealset_t *set) { return set->n; }

dealset_entry_t *dealset_at(dealset_t *set, size_t index)
{
    return index < set->n ? &set->entries[index] : NULL;
}
