/* loop: the single-threaded poll loop of kpid and its timed jobs.
 *
 *   consume -> validate -> (invalid: copy to the DLQ) -> batch
 *   flush: DLQ acknowledged -> sink_begin (dedup, fences) -> aggregate -> sink_commit
 *          -> Kafka offset copy
 * A failed flush pauses consumption and retries with backoff; nothing is dropped. */
#ifndef KPI_LOOP_H
#define KPI_LOOP_H

#include <stdbool.h>

#include "config.h"

typedef struct loop loop_t;

/* Takes ownership of cfg. config_path is re-read on SIGHUP. */
loop_t *loop_new(config_t *cfg, const char *config_path, char *err, size_t errlen);
/* Runs until loop_request_stop; returns the process exit code (0 clean stop). */
int loop_run(loop_t *loop);
void loop_free(loop_t *loop);

/* kpid --rebuild: no alert evaluation or delivery, no reload, and loop_run returns as
 * soon as every partition is owned, consumed to its high watermark and flushed. */
void loop_set_rebuild(loop_t *loop);
/* After loop_run: whether it returned because the rebuild caught up (not on a signal). */
bool loop_rebuild_caught_up(const loop_t *loop);

/* Async-signal-safe. */
void loop_request_stop(void);
void loop_request_reload(void);

#endif
