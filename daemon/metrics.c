#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Flushes take milliseconds normally and seconds when Redis struggles; batches range
 * from one message (a quiet floor) to batch.max_events. */
const double metrics_flush_seconds_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                               0.25,  0.5,    1,     2.5,  5,     10};
const size_t metrics_flush_seconds_n =
    sizeof metrics_flush_seconds_bounds / sizeof metrics_flush_seconds_bounds[0];
const double metrics_batch_events_bounds[] = {1,    10,   50,    100,   500,   1000,
                                              2000, 5000, 10000, 20000, 100000};
const size_t metrics_batch_events_n =
    sizeof metrics_batch_events_bounds / sizeof metrics_batch_events_bounds[0];

/* ---- buffer ---------------------------------------------------------------------------- */

void metrics_buf_reset(struct metrics_buf *b)
{
    b->len = 0;
    b->oom = false;
    if (b->data)
        b->data[0] = '\0';
}

void metrics_buf_free(struct metrics_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static bool reserve(struct metrics_buf *b, size_t more)
{
    if (b->oom)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

static void put(struct metrics_buf *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void puts_(struct metrics_buf *b, const char *s) { put(b, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void putf(struct metrics_buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* ---- writer ---------------------------------------------------------------------------- */

static size_t suffix_len(const char *name, const char *suffix)
{
    size_t n = strlen(name), s = strlen(suffix);
    return n >= s && strcmp(name + n - s, suffix) == 0 ? s : 0;
}

bool metrics_name_ok(const char *name, enum metrics_type type)
{
    if (strncmp(name, "kpid_", 5) != 0 || !name[5])
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (p != name && c >= '0' && c <= '9')))
            return false;
    }
    bool total = suffix_len(name, "_total") != 0;
    if ((type == METRICS_COUNTER) != total)
        return false;
    /* These suffixes belong to the histogram's own series. */
    return !suffix_len(name, "_bucket") && !suffix_len(name, "_count") &&
           !suffix_len(name, "_sum");
}

/* Backslash and newline are escaped in HELP text and label values, double quotes in
 * label values only (the exposition format's rules). */
static void put_escaped(struct metrics_buf *b, const char *s, bool quotes)
{
    for (; *s; s++)
        if (*s == '\\')
            puts_(b, "\\\\");
        else if (*s == '\n')
            puts_(b, "\\n");
        else if (quotes && *s == '"')
            puts_(b, "\\\"");
        else
            put(b, s, 1);
}

int metrics_family(struct metrics_buf *b, const char *name, enum metrics_type type,
                   const char *help)
{
    if (!metrics_name_ok(name, type))
        return -1;
    static const char *const types[] = {"counter", "gauge", "histogram"};
    putf(b, "# HELP %s ", name);
    put_escaped(b, help, false);
    putf(b, "\n# TYPE %s %s\n", name, types[type]);
    return 0;
}

static void put_value(struct metrics_buf *b, double v)
{
    if (isinf(v))
        puts_(b, v > 0 ? "+Inf" : "-Inf");
    else if (isnan(v))
        puts_(b, "NaN");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0)
        putf(b, "%.0f", v);
    else
        putf(b, "%.15g", v);
}

void metrics_sample(struct metrics_buf *b, const char *name, const char *suffix,
                    const struct metrics_label *labels, size_t n_labels, double value)
{
    puts_(b, name);
    if (suffix)
        puts_(b, suffix);
    if (n_labels) {
        put(b, "{", 1);
        for (size_t i = 0; i < n_labels; i++) {
            putf(b, "%s%s=\"", i ? "," : "", labels[i].name);
            put_escaped(b, labels[i].value, true);
            put(b, "\"", 1);
        }
        put(b, "}", 1);
    }
    put(b, " ", 1);
    put_value(b, value);
    put(b, "\n", 1);
}

/* ---- histograms ------------------------------------------------------------------------ */

void metrics_hist_observe(struct metrics_hist *h, const double *bounds, size_t n_bounds,
                          double value)
{
    size_t i = 0;
    while (i < n_bounds && value > bounds[i])
        i++;
    h->bucket[i < METRICS_HIST_MAX ? i : METRICS_HIST_MAX - 1]++;
    h->count++;
    h->sum += value;
}

void metrics_hist_write(struct metrics_buf *b, const char *name, const struct metrics_hist *h,
                        const double *bounds, size_t n_bounds)
{
    uint64_t cum = 0;
    char le[32];
    for (size_t i = 0; i <= n_bounds && i < METRICS_HIST_MAX; i++) {
        cum += h->bucket[i];
        if (i < n_bounds)
            snprintf(le, sizeof le, "%.15g", bounds[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        struct metrics_label l = {"le", le};
        metrics_sample(b, name, "_bucket", &l, 1, (double)cum);
    }
    metrics_sample(b, name, "_sum", NULL, 0, h->sum);
    metrics_sample(b, name, "_count", NULL, 0, (double)h->count);
}

/* ---- kpid's exposition ----------------------------------------------------------------- */

void metrics_observe_flush(struct metrics_values *v, double seconds, size_t messages)
{
    metrics_hist_observe(&v->flush_seconds, metrics_flush_seconds_bounds,
                         metrics_flush_seconds_n, seconds);
    metrics_hist_observe(&v->batch_events, metrics_batch_events_bounds, metrics_batch_events_n,
                         (double)messages);
}

static void scalar(struct metrics_buf *b, const char *name, enum metrics_type type,
                   const char *help, double value)
{
    if (metrics_family(b, name, type, help) == 0)
        metrics_sample(b, name, NULL, NULL, 0, value);
}

/* One family with one label taking each of n values. */
static void labelled(struct metrics_buf *b, const char *name, const char *help,
                     const char *label, const char *const *values, const uint64_t *counts,
                     size_t n)
{
    if (metrics_family(b, name, METRICS_COUNTER, help) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        struct metrics_label l = {label, values[i]};
        metrics_sample(b, name, NULL, &l, 1, (double)counts[i]);
    }
}

int metrics_render(const struct metrics_values *v, struct metrics_buf *b)
{
    static const char *const outcomes[] = {"applied", "invalid", "duplicate", "internal"};
    static const char *const channels[] = {"kafka", "webhook"};
    static const char *const states[] = {"firing", "resolved"};
    static const char *const results[] = {"ok", "rejected"};
    metrics_buf_reset(b);

    labelled(b, "kpid_events_total",
             "Messages consumed and flushed to Redis, by outcome (applied: counted; internal: "
             "applied but only counted as internal_filtered; invalid: sent to the dead-letter "
             "topic; duplicate: event id already applied)",
             "outcome", outcomes, v->events, METRICS_OUTCOMES);
    scalar(b, "kpid_dedup_hits_total", METRICS_COUNTER,
           "Event ids found already applied (de-duplication window or same batch)",
           (double)v->dedup_hits);
    scalar(b, "kpid_flushes_total", METRICS_COUNTER, "Batches written to Redis",
           (double)v->flushes);
    scalar(b, "kpid_flush_conflicts_total", METRICS_COUNTER,
           "Flush transactions redone because another writer changed a watched key",
           (double)v->flush_conflicts);
    if (metrics_family(b, "kpid_flush_duration_seconds", METRICS_HISTOGRAM,
                       "Time from the first Redis read of a batch to its committed transaction") ==
        0)
        metrics_hist_write(b, "kpid_flush_duration_seconds", &v->flush_seconds,
                           metrics_flush_seconds_bounds, metrics_flush_seconds_n);
    if (metrics_family(b, "kpid_batch_events", METRICS_HISTOGRAM,
                       "Messages per flushed batch") == 0)
        metrics_hist_write(b, "kpid_batch_events", &v->batch_events, metrics_batch_events_bounds,
                           metrics_batch_events_n);
    scalar(b, "kpid_last_flush_timestamp_seconds", METRICS_GAUGE,
           "Unix time of the last flush (0: none since start)", v->last_flush_s);

    if (metrics_family(b, "kpid_consumer_lag_messages", METRICS_GAUGE,
                       "Messages behind the partition's high watermark, per owned partition") ==
        0)
        for (size_t i = 0; i < v->n_lags; i++) {
            char part[16];
            snprintf(part, sizeof part, "%d", (int)v->lags[i].partition);
            struct metrics_label l[2] = {{"topic", v->lags[i].topic}, {"partition", part}};
            metrics_sample(b, "kpid_consumer_lag_messages", NULL, l, 2, (double)v->lags[i].lag);
        }
    scalar(b, "kpid_partitions_owned", METRICS_GAUGE,
           "Partitions this process owns (assigned and claimed in Redis)",
           (double)v->partitions_owned);
    scalar(b, "kpid_paused", METRICS_GAUGE, "1 while consumption is paused because flushes fail",
           v->paused);
    scalar(b, "kpid_kafka_up", METRICS_GAUGE,
           "1 while the Kafka group assignment is done and some broker answers", v->kafka_up);
    scalar(b, "kpid_redis_up", METRICS_GAUGE, "1 while the flush connection to Redis works",
           v->redis_up);
    scalar(b, "kpid_redis_errors_total", METRICS_COUNTER,
           "Failures of the flush connection to Redis (connects, commands, timeouts)",
           (double)v->redis_errors);
    scalar(b, "kpid_redis_reconnects_total", METRICS_COUNTER,
           "Successful reconnections of the flush connection after a failure",
           (double)v->redis_reconnects);

    uint64_t alerts[2] = {v->alerts_firing, v->alerts_resolved};
    labelled(b, "kpid_alerts_total", "Alert objects added to the alerts stream, by state",
             "state", states, alerts, 2);
    labelled(b, "kpid_alert_deliveries_total", "Alerts delivered, by channel", "channel",
             channels, v->deliveries, METRICS_CHANNELS);
    labelled(b, "kpid_alert_delivery_failures_total",
             "Failed alert delivery attempts (each is retried), by channel", "channel", channels,
             v->delivery_failures, METRICS_CHANNELS);
    scalar(b, "kpid_alerts_lost_total", METRICS_COUNTER,
           "Alerts trimmed from the stream (alerts.stream_maxlen) before a channel delivered them",
           (double)v->alerts_lost);

    uint64_t reloads[2] = {v->reloads_ok, v->reloads_rejected};
    labelled(b, "kpid_config_reloads_total", "Configuration reloads (SIGHUP), by result",
             "result", results, reloads, 2);
    if (metrics_family(b, "kpid_build_info", METRICS_GAUGE, "Always 1; the version as a label") ==
        0) {
        struct metrics_label l = {"version", v->version ? v->version : "unknown"};
        metrics_sample(b, "kpid_build_info", NULL, &l, 1, 1);
    }
    scalar(b, "kpid_start_time_seconds", METRICS_GAUGE, "Unix time kpid started",
           v->start_time_s);
    return b->oom ? -1 : 0;
}

/* ---- STATUS= ---------------------------------------------------------------------------- */

void metrics_status_line(const struct metrics_status *s, char *buf, size_t len)
{
    char lag[32] = "?";
    if (s->lag >= 0)
        snprintf(lag, sizeof lag, "%lld", (long long)s->lag);
    if (s->paused)
        snprintf(buf, len, "PAUSED: %s%s%s, %zu messages held",
                 s->redis_up ? "flushes failing (see the log), redis " : "redis ",
                 s->redis_address, s->redis_up ? " reachable" : " unreachable", s->held);
    else if (!s->ready)
        snprintf(buf, len, "starting: %s%s", s->redis_up ? "waiting for the kafka group assignment"
                                                          : "waiting for redis ",
                 s->redis_up ? "" : s->redis_address);
    else
        snprintf(buf, len, "consuming %.0f ev/s, lag %s, redis %s%s, kafka %s, %zu partition%s",
                 s->events_per_s, lag, s->redis_up ? "ok" : "UNREACHABLE ",
                 s->redis_up ? "" : s->redis_address,
                 s->kafka_up ? "ok" : (s->kafka_why ? s->kafka_why : "DOWN"), s->partitions,
                 s->partitions == 1 ? "" : "s");
}
