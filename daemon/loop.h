/* loop: the single-threaded poll loop of kpid and its timed jobs.
 *
 *   consume -> validate -> (invalid: copy to the DLQ) -> batch
 *   flush: DLQ acknowledged -> sink_begin (dedup, fences) -> aggregate -> sink_commit
 *          -> Kafka offset copy
 * A failed flush pauses consumption and retries with backoff; nothing is dropped. */
#ifndef KPI_LOOP_H
#define KPI_LOOP_H

#include "config.h"

typedef struct loop loop_t;

/* Takes ownership of cfg. config_path is re-read on SIGHUP. */
loop_t *loop_new(config_t *cfg, const char *config_path, char *err, size_t errlen);
/* Runs until loop_request_stop; returns the process exit code (0 clean stop). */
int loop_run(loop_t *loop);
void loop_free(loop_t *loop);

/* Async-signal-safe. */
void loop_request_stop(void);
void loop_request_reload(void);

#endif
