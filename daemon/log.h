/* log: the one logging API. Lines go to stderr; under systemd (JOURNAL_STREAM set) each
 * line starts with a "<N>" syslog priority so journald files it at the right level.
 * Warnings and errors are repeat-limited per kind (the text without its digits): 5 lines a
 * minute, then one "... (repeated N times in 60 s)" line when the minute is over.
 * Thread-safe. */
#ifndef KPI_LOG_H
#define KPI_LOG_H

#include <stddef.h>

enum log_level { LOG_LEVEL_ERROR = 3, LOG_LEVEL_WARN = 4, LOG_LEVEL_INFO = 6, LOG_LEVEL_DEBUG = 7 };

void log_init(const char *progname);
void log_set_level(enum log_level level);
/* Prints the summaries of repeat windows that have ended; call about once a second. */
void log_tick(void);
/* Returns 0 and sets *level for "error", "warn", "info", "debug"; -1 otherwise. */
int log_level_parse(const char *name, enum log_level *level);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Formats an error into a caller's buffer (err may be NULL) and returns -1, so a failing
 * function can end with `return log_errbuf(err, errlen, "...", ...);`. Logs nothing. */
int log_errbuf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
