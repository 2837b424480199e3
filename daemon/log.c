#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *log_progname = "kpid";
static enum log_level log_threshold = LOG_LEVEL_INFO;
static int log_journal;

void log_init(const char *progname)
{
    log_progname = progname;
    /* journald adds its own timestamps and understands "<N>" prefixes. */
    log_journal = getenv("JOURNAL_STREAM") != NULL;
}

void log_set_level(enum log_level level) { log_threshold = level; }

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

static void log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
    static const char *const tags[8] = {"", "", "", "error", "warn", "", "info", "debug"};
    char line[2048];
    int n;

    if (level > log_threshold)
        return;
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
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    /* One fputs per line keeps lines whole when several processes share a terminal. */
    size_t len = strlen(line);
    if (len < sizeof line - 1) {
        line[len] = '\n';
        line[len + 1] = '\0';
    }
    fputs(line, stderr);
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
