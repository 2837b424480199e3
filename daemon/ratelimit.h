/* ratelimit: which repeats of a log line to print. Pure (the caller passes now_ms), so
 * tests drive it directly; log.c keys it by a hash of the line without its digits.
 *
 * Per key, a window of `window_ms` opens at the first line: its first `burst` lines pass,
 * the rest are counted. The first line of the key after the window, or ratelimit_expired
 * called from a timer, closes the window and reports how many were held back, so the log
 * says "... (repeated 812 times in 60 s)" once instead of 812 lines. */
#ifndef KPI_RATELIMIT_H
#define KPI_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct ratelimit ratelimit_t;

/* A window that closed with lines held back. */
struct ratelimit_report {
    uint64_t key;
    uint64_t suppressed;
    int64_t window_ms; /* the window's length: the held-back lines came within it */
    int level;         /* the caller's tag of the key's last line */
    char last[512];    /* the last line held back, as the caller gave it */
};

/* capacity: distinct keys tracked at once (the least recently seen is forgotten). Key 0 is
 * reserved. */
ratelimit_t *ratelimit_new(size_t capacity, int64_t window_ms, unsigned burst);
void ratelimit_free(ratelimit_t *rl);

/* Returns 1 when the line may be printed, 0 when it is held back (counted, and `line`
 * kept as the key's last one). When the call closes an earlier window that held lines
 * back, *closed is filled and *has_closed set: print that report before this line. */
int ratelimit_check(ratelimit_t *rl, uint64_t key, int level, const char *line,
                    int64_t now_ms, struct ratelimit_report *closed, int *has_closed);

/* Closes at most one window that ended before now_ms with lines held back; returns 1 and
 * fills *report, or 0 when there is none. Call until it returns 0. */
int ratelimit_expired(ratelimit_t *rl, int64_t now_ms, struct ratelimit_report *report);

#endif
