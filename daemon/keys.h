/* keys: every Redis key name kpid writes, built in one place so the layout documented in
 * the README exists exactly once. All builders return the length written, or -1 when the
 * buffer is too small (callers size buffers with KEYS_MAX). */
#ifndef KPI_KEYS_H
#define KPI_KEYS_H

#include <stddef.h>

#define KEYS_MAX 512

enum scope_kind { SCOPE_MANAGER, SCOPE_TEAM, SCOPE_ORG, SCOPE_KINDS };

/* kpi:mgr:{ivanov}:d:2026-11-16, kpi:team:{moscow-smb}:w:2026-W47, kpi:org:m:2026-11 */
int keys_scope(char *buf, size_t size, const char *prefix, enum scope_kind kind, const char *scope,
               const char *period_id);
/* kpi:<name> for the singletons: meta, managers, dedup, updates. */
int keys_global(char *buf, size_t size, const char *prefix, const char *name);
/* kpi:offsets:<group>:<topic> and kpi:fence:<group>:<topic> */
int keys_offsets(char *buf, size_t size, const char *prefix, const char *group, const char *topic);
int keys_fence(char *buf, size_t size, const char *prefix, const char *group, const char *topic);

/* kpi:deal:{<deal>} and kpi:lb:<metric>:<period> */
int keys_deal(char *buf, size_t size, const char *prefix, const char *deal_id);
int keys_leaderboard(char *buf, size_t size, const char *prefix, const char *metric,
                     const char *period_id);

#endif
