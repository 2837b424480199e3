#include "ratelimit.h"

#include <stdlib.h>
#include <string.h>

struct rl_entry {
    uint64_t key; /* 0: free slot */
    int64_t window_start_ms, last_seen_ms;
    unsigned printed;
    uint64_t suppressed;
    int level;
    char last[512];
};

struct ratelimit {
    struct rl_entry *entries;
    size_t capacity;
    int64_t window_ms;
    unsigned burst;
};

ratelimit_t *ratelimit_new(size_t capacity, int64_t window_ms, unsigned burst)
{
    ratelimit_t *rl = calloc(1, sizeof *rl);
    if (!rl || !(rl->entries = calloc(capacity ? capacity : 1, sizeof *rl->entries))) {
        free(rl);
        return NULL;
    }
    rl->capacity = capacity ? capacity : 1;
    rl->window_ms = window_ms;
    rl->burst = burst ? burst : 1;
    return rl;
}

void ratelimit_free(ratelimit_t *rl)
{
    if (rl)
        free(rl->entries);
    free(rl);
}

static void rl_report(const ratelimit_t *rl, const struct rl_entry *e,
                      struct ratelimit_report *r)
{
    r->key = e->key;
    r->suppressed = e->suppressed;
    r->window_ms = rl->window_ms;
    r->level = e->level;
    memcpy(r->last, e->last, sizeof r->last);
}

static void rl_open(struct rl_entry *e, uint64_t key, int64_t now_ms)
{
    e->key = key;
    e->window_start_ms = now_ms;
    e->printed = 1;
    e->suppressed = 0;
    e->last[0] = '\0';
}

int ratelimit_check(ratelimit_t *rl, uint64_t key, int level, const char *line,
                    int64_t now_ms, struct ratelimit_report *closed, int *has_closed)
{
    *has_closed = 0;
    struct rl_entry *e = NULL, *oldest = &rl->entries[0];
    for (size_t i = 0; i < rl->capacity; i++) {
        struct rl_entry *c = &rl->entries[i];
        if (c->key == key) {
            e = c;
            break;
        }
        if (!c->key || (oldest->key && c->last_seen_ms < oldest->last_seen_ms))
            oldest = c;
    }
    if (!e) {
        /* The forgotten key's held-back lines are reported now rather than lost. */
        if (oldest->key && oldest->suppressed) {
            rl_report(rl, oldest, closed);
            *has_closed = 1;
        }
        rl_open(oldest, key, now_ms);
        oldest->last_seen_ms = now_ms;
        return 1;
    }
    e->last_seen_ms = now_ms;
    if (now_ms - e->window_start_ms >= rl->window_ms) {
        if (e->suppressed) {
            rl_report(rl, e, closed);
            *has_closed = 1;
        }
        rl_open(e, key, now_ms);
        return 1;
    }
    if (e->printed < rl->burst) {
        e->printed++;
        return 1;
    }
    e->suppressed++;
    e->level = level;
    strncpy(e->last, line, sizeof e->last - 1);
    e->last[sizeof e->last - 1] = '\0';
    return 0;
}

int ratelimit_expired(ratelimit_t *rl, int64_t now_ms, struct ratelimit_report *report)
{
    for (size_t i = 0; i < rl->capacity; i++) {
        struct rl_entry *e = &rl->entries[i];
        if (e->key && e->suppressed && now_ms - e->window_start_ms >= rl->window_ms) {
            rl_report(rl, e, report);
            /* The window is over: the key's next line starts a fresh one. */
            e->key = 0;
            return 1;
        }
    }
    return 0;
}
