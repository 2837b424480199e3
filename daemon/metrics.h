/* metrics: kpid's Prometheus metrics, its /metrics and /healthz endpoint, and the one-line
 * status systemd shows.
 *
 * The loop stays single-threaded: it keeps the figures in a struct metrics_values (plain
 * fields, filled from its own counters once a second), renders them with metrics_render
 * (pure) and hands the text to the HTTP server (metrics_http.c), whose libmicrohttpd
 * thread only ever copies the last text out under a mutex. Health is the loop's last
 * verdict plus a heartbeat the loop stores every iteration: the HTTP thread checks the
 * heartbeat's age itself, so a stuck loop is reported even though it publishes nothing. */
#ifndef KPI_METRICS_H
#define KPI_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- text buffer ---------------------------------------------------------------------- */

struct metrics_buf {
    char *data; /* NUL-terminated */
    size_t len, cap;
    bool oom;   /* an append failed: the text is incomplete */
};
void metrics_buf_reset(struct metrics_buf *b);
void metrics_buf_free(struct metrics_buf *b);

/* ---- exposition writer (text format 0.0.4) --------------------------------------------- */

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

struct metrics_label {
    const char *name;
    const char *value; /* escaped on output: backslash, double quote, newline */
};

/* True when name is a valid name for a kpid metric of this type: the Prometheus charset,
 * the "kpid_" prefix, "_total" for counters and only for them. */
bool metrics_name_ok(const char *name, enum metrics_type type);
/* The # HELP and # TYPE lines. -1 (nothing written) when the name breaks the rules. */
int metrics_family(struct metrics_buf *b, const char *name, enum metrics_type type,
                   const char *help);
/* One sample line: name{labels} value. suffix is appended to name ("_bucket"...; may be
 * NULL). Values are written exactly for integers, else with 15 significant digits. */
void metrics_sample(struct metrics_buf *b, const char *name, const char *suffix,
                    const struct metrics_label *labels, size_t n_labels, double value);

/* ---- histograms ------------------------------------------------------------------------ */

#define METRICS_HIST_MAX 16

struct metrics_hist {
    uint64_t bucket[METRICS_HIST_MAX]; /* per bound, not cumulative; [n_bounds] is +Inf */
    uint64_t count;
    double sum;
};
void metrics_hist_observe(struct metrics_hist *h, const double *bounds, size_t n_bounds,
                          double value);
/* _bucket lines (cumulative, le="+Inf" last), _sum and _count. */
void metrics_hist_write(struct metrics_buf *b, const char *name, const struct metrics_hist *h,
                        const double *bounds, size_t n_bounds);

extern const double metrics_flush_seconds_bounds[];
extern const size_t metrics_flush_seconds_n;
extern const double metrics_batch_events_bounds[];
extern const size_t metrics_batch_events_n;

/* ---- kpid's figures -------------------------------------------------------------------- */

enum { METRICS_APPLIED, METRICS_INVALID, METRICS_DUPLICATE, METRICS_INTERNAL, METRICS_OUTCOMES };
enum { METRICS_KAFKA, METRICS_WEBHOOK, METRICS_CHANNELS };

struct metrics_lag {
    const char *topic; /* borrowed */
    int32_t partition;
    int64_t lag;
};

struct metrics_values {
    /* counters since start. events: disjoint outcomes (applied excludes internal) */
    uint64_t events[METRICS_OUTCOMES];
    uint64_t dedup_hits, flushes, flush_conflicts, redis_errors, redis_reconnects;
    uint64_t alerts_firing, alerts_resolved;
    uint64_t deliveries[METRICS_CHANNELS], delivery_failures[METRICS_CHANNELS], alerts_lost;
    uint64_t reloads_ok, reloads_rejected;
    /* gauges */
    bool redis_up, kafka_up, paused;
    size_t partitions_owned;
    double last_flush_s;  /* unix time of the last flush, 0 before the first */
    double start_time_s;
    const char *version;
    const struct metrics_lag *lags; /* owned partitions whose lag is known */
    size_t n_lags;
    struct metrics_hist flush_seconds, batch_events;
};

/* A flush took `seconds` and wrote a batch of `messages` messages. */
void metrics_observe_flush(struct metrics_values *v, double seconds, size_t messages);

/* The whole exposition, replacing b's content. 0, or -1 when out of memory. */
int metrics_render(const struct metrics_values *v, struct metrics_buf *b);

/* ---- the systemd STATUS= line ------------------------------------------------------------ */

struct metrics_status {
    bool ready;            /* consuming (redis reached, first group assignment done) */
    bool paused;
    bool redis_up, kafka_up;
    const char *redis_address;
    const char *kafka_why; /* when !kafka_up */
    double events_per_s;
    int64_t lag;           /* summed over owned partitions, -1 unknown */
    size_t partitions, held;
};
/* "consuming 1234 ev/s, lag 56, redis ok, 3 partitions",
 * "PAUSED: redis 127.0.0.1:6379 unreachable, 5000 messages held", ... */
void metrics_status_line(const struct metrics_status *s, char *buf, size_t len);

/* ---- the HTTP endpoint (metrics_http.c) ---------------------------------------------------- */

/* Splits "127.0.0.1:9464" or "[::1]:9464" (IP literals only). 0, or -1 with err. */
int metrics_parse_listen(const char *listen, char *host, size_t hostlen, int *port, char *err,
                         size_t errlen);

typedef struct metrics_server metrics_server_t;

/* Binds listen (metrics_parse_listen) and serves /metrics and /healthz from a thread of its
 * own. /healthz answers 503 until the first metrics_server_publish. NULL and err (naming
 * the address and the system's reason) when the address cannot be bound. */
metrics_server_t *metrics_server_start(const char *listen, char *err, size_t errlen);
void metrics_server_stop(metrics_server_t *s);

/* Hands over the text /metrics serves and the health verdict: unhealthy NULL means healthy,
 * else a one-line reason /healthz answers 503 with. */
void metrics_server_publish(metrics_server_t *s, const struct metrics_buf *text,
                            const char *unhealthy);
/* The loop is alive: store a monotonic timestamp (lock-free; call every iteration).
 * /healthz fails when the last one is older than METRICS_STALE_MS. */
void metrics_server_heartbeat(metrics_server_t *s);
#define METRICS_STALE_MS 10000

#endif
