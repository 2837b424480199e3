/* rebuild: recompute every counter from the topics' beginning into a fresh prefix, then
 * switch dashboards to it in one transaction (kpid --rebuild).
 *
 * A rebuild is an ordinary kpid run with three differences, set up by main: keys go to
 * "<prefix>.rebuild", the Kafka consumer group is "<group>.rebuild" (so the live group is
 * left alone and the rebuild starts from offset 0, having no stored offsets), and alerts are
 * neither evaluated nor sent (history must not page anyone). Key names keep the live
 * group, so the rebuilt offsets become the live ones by renaming.
 *
 * The switch, one MULTI/EXEC under WATCH of the live <prefix>:meta (every live flush writes
 * it, so a flush in between makes the switch start over): delete the live prefix's keys
 * but the alert history and alert states, rename every rebuilt key to the live prefix
 * (TTLs move with them), and bump the live fence tokens, so a kpid still running on the
 * old data can never write into the new one. Readers see the old numbers or the new
 * ones, never a mix. The live kpid is then restarted: it resumes from the rebuilt
 * offsets. */
#ifndef KPI_REBUILD_H
#define KPI_REBUILD_H

#include <stddef.h>

#include "config.h"

#define REBUILD_SUFFIX ".rebuild"

/* Turns a loaded configuration into the rebuild run's: prefix and Kafka group id, and no
 * metrics endpoint (the live kpid holds the port). -1 when
 * the rebuild prefix would break the prefix rule (at most 32 characters). */
int rebuild_configure(config_t *cfg, char *err, size_t errlen);

/* Deletes whatever an earlier, unfinished rebuild left under the rebuild prefix.
 * cfg: the rebuild run's configuration. *removed: how many keys. */
int rebuild_wipe(const config_t *cfg, size_t *removed, char *err, size_t errlen);

struct rebuild_stats {
    size_t renamed, deleted, kept; /* rebuilt keys moved; live keys dropped; alert keys kept */
};

/* The switch. live: the live configuration (its prefix, group and topics). */
int rebuild_switch(const config_t *live, struct rebuild_stats *st, char *err, size_t errlen);

#endif
