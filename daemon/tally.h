/* tally: everything one batch changes, summed in memory per Redis hash before the flush.
 *
 *   counters  (scope, period)      -> the section 2 counters: activity, then deal counters
 *   leaders   (manager, org period) -> the leaderboard metrics of that manager
 *   hourly    (manager, hour)       -> the rolling-window metrics per UTC hour
 *   last      (manager, "last")     -> per activity counter, the latest event time (ms) that
 *                                      moved it, 0 when none (for inactivity alerts)
 *   pipeline  (scope, "pipeline")   -> open-deal deltas (deals_pipe_name), filled when the
 *                                      batch's deals are applied against their stored state
 *
 * Pure and bounded like agg: memory grows with the (scope, period) pairs of one batch. */
#ifndef KPI_TALLY_H
#define KPI_TALLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agg.h"
#include "deals.h"
#include "period.h"

/* Counter vector layout: activity counters, then deal counter i at TALLY_DEAL_BASE + i;
 * then one value that is no counter: how many deal events touched the hash (so the flush
 * knows, before the deals' states are read, which hashes their counters may change). */
#define TALLY_DEAL_BASE COUNTER_ACTIVITY_COUNT
#define TALLY_COUNTERS (COUNTER_ACTIVITY_COUNT + DEALS_COUNTERS_MAX)
#define TALLY_DEAL_MARK TALLY_COUNTERS
#define TALLY_VALUES (TALLY_COUNTERS + 1)

/* Leaderboards kpi:lb:<metric>:<period> and rolling windows kpi:mgr:{m}:rolling. */
#define TALLY_LB_METRICS 4
#define TALLY_ROLLING_METRICS 4
extern const char *const tally_lb_metric_names[TALLY_LB_METRICS];
extern const char *const tally_rolling_metric_names[TALLY_ROLLING_METRICS];
#define TALLY_HOUR_MS 3600000LL
/* hourly buckets: period_id is the hour number since 1970 (floor of ts / 1 h) in decimal,
 * and period_end_ms holds the same number, so the sink needs no parsing. */

/* Field name of counter index i ("calls", "deals_won", "stage:lead"), NULL past the end. */
const char *tally_counter_name(const deals_rules_t *rules, size_t index);
/* Number of meaningful counters with these rules. */
size_t tally_counter_count(const deals_rules_t *rules);
/* Counter index of leaderboard / rolling metric i. */
size_t tally_lb_counter(size_t metric);
size_t tally_rolling_counter(size_t metric);

/* Where one event counts: its manager, the manager's team, and the periods of its ts in
 * the team's zone and in the organisation's zone. */
struct tally_scope {
    const char *manager;
    const char *team;
    const period_set_t *mine;
    const period_set_t *org;
    int64_t ts_ms;
    bool org_zone; /* the team's zone is the organisation's: mine and org name the same periods */
};

/* A manager's counters bucket that also stands for the manager's leaderboard entries (its
 * periods are the organisation's), instead of a bucket in tally_leaders. */
#define TALLY_FLAG_BOARDS 1u

typedef struct tally tally_t;

tally_t *tally_new(void);
void tally_free(tally_t *tally);
void tally_reset(tally_t *tally);

/* Adds one event's deltas (TALLY_VALUES values, sign included) to every hash it touches.
 * A deal event before its state is known passes only TALLY_DEAL_MARK = 1: its counters
 * buckets are created and marked. -1 on OOM. */
int tally_add(tally_t *tally, const struct tally_scope *where, const int64_t *deltas);

/* Adds a pipeline delta (DEALS_PIPE_MAX values) of one manager to the manager's, the team's
 * and the organisation's pipeline. -1 on OOM. */
int tally_add_pipeline(tally_t *tally, const char *manager, const char *team,
                       const int64_t *values);
/* Forgets the pipeline deltas (they are recomputed whenever the deals are applied). */
void tally_reset_pipeline(tally_t *tally);

const agg_t *tally_counters(const tally_t *tally);
const agg_t *tally_leaders(const tally_t *tally);
const agg_t *tally_hourly(const tally_t *tally);
const agg_t *tally_pipeline(const tally_t *tally);
const agg_t *tally_last(const tally_t *tally);

#endif
