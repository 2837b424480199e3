#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ratelimit.h"

/* Repeated warnings and errors: the first LOG_BURST lines of one kind per LOG_WINDOW_MS
 * are printed, the rest summed up in one line when the window ends. Lines that differ
 * only in their numbers ("5000 messages held; retrying in 2.0 s") are of one kind. */
#define LOG_WINDOW_MS 60000
#define LOG_BURST 5
#define LOG_KEYS 64

static const char *log_progname = "kpid";
/* Set on reload by the loop, read by librdkafka's threads too. */
static _Atomic int log_threshold = LOG_LEVEL_INFO;
static int log_journal;
/* librdkafka calls its log callback from its own threads. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static ratelimit_t *log_repeats;

void log_init(const char *progname)
{
    log_progname = progname;
    /* journald adds its own timestamps and understands "<N>" prefixes. */
    log_journal = getenv("JOURNAL_STREAM") != NULL;
    pthread_mutex_lock(&log_lock);
    if (!log_repeats)
        log_repeats = ratelimit_new(LOG_KEYS, LOG_WINDOW_MS, LOG_BURST);
    pthread_mutex_unlock(&log_lock);
}

static int64_t log_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void log_set_level(enum log_level level) { log_threshold = (int)level; }

int log_level_parse(const char *name, enum log_level *level)
{
    static const struct { const char *name; enum log_level level; } names[] = {
        {"error", LOG_LEVEL_ERROR}, {"warn", LOG_LEVEL_WARN},
        {"info", LOG_LEVEL_INFO}, {"debug", LOG_LEVEL_DEBUG}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0) {
            *level = names[i].level;
            return 0;
        }
    return -1;
}

/* Writes one line: prefix (journald priority, or time, program and level) + text. */
static void log_emit(enum log_level level, const char *text)
{
    static const char *const tags[8] = {"", "", "", "error", "warn", "", "info", "debug"};
    char line[2300];
    int n;

    if (log_journal) {
        n = snprintf(line, sizeof line, "<%d>", (int)level);
    } else {
        struct timespec now;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &now);
        gmtime_r(&now.tv_sec, &tm);
        n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, now.tv_nsec / 1000000, log_progname, tags[level]);
    }
    if (n < 0 || (size_t)n >= sizeof line)
        n = 0;
    snprintf(line + n, sizeof line - (size_t)n, "%s\n", text);
    /* One fputs per line keeps lines whole when several processes share a terminal. */
    fputs(line, stderr);
}

static void log_emit_report(const struct ratelimit_report *r)
{
    char text[700];
    snprintf(text, sizeof text, "%s (repeated %llu times in %lld s)", r->last,
             (unsigned long long)r->suppressed, (long long)(r->window_ms / 1000));
    log_emit((enum log_level)r->level, text);
}

static uint64_t log_kind(enum log_level level, const char *text)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)level; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        if (*p < '0' || *p > '9')
            h = (h ^ *p) * 1099511628211ULL;
    return h ? h : 1; /* 0 marks a free slot */
}

static void log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
    char text[2048];

    if ((int)level > log_threshold)
        return;
    vsnprintf(text, sizeof text, fmt, ap);
    pthread_mutex_lock(&log_lock);
    int print = 1;
    if (level <= LOG_LEVEL_WARN && log_repeats) {
        struct ratelimit_report closed;
        int has_closed;
        print = ratelimit_check(log_repeats, log_kind(level, text), (int)level, text, log_mono_ms(), &closed,
                                &has_closed);
        if (has_closed)
            log_emit_report(&closed);
    }
    if (print)
        log_emit(level, text);
    pthread_mutex_unlock(&log_lock);
}

void log_tick(void)
{
    struct ratelimit_report r;
    pthread_mutex_lock(&log_lock);
    while (log_repeats && ratelimit_expired(log_repeats, log_mono_ms(), &r))
        log_emit_report(&r);
    pthread_mutex_unlock(&log_lock);
}

#define LOG_FN(name, level)                \
    void name(const char *fmt, ...)        \
    {                                      \
        va_list ap;                        \
        va_start(ap, fmt);                 \
        log_vwrite(level, fmt, ap);        \
        va_end(ap);                        \
    }
LOG_FN(log_error, LOG_LEVEL_ERROR)
LOG_FN(log_warn, LOG_LEVEL_WARN)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_debug, LOG_LEVEL_DEBUG)

int log_errbuf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}
