/* targets: every target a manager has for a period instance (contract section 7), from the
 * configured levels and from the plans. Pure: no I/O, no clock; zones come from the caller.
 *
 * Configured targets resolve default -> role -> team -> manager: a later level overrides an
 * earlier one per (metric, period letter); an explicit 0 is a target of 0, not "none".
 *
 * Plans derive targets: the plan's own metric gets the plan target rounded up (a fractional
 * plan target 2.5 gives 3), and chain step i gets pacing_plan_step(previous, need or per),
 * where the previous of step 0 is the plan target as configured (2.5, unrounded) and the
 * previous of later steps is the whole number the step before got. A step with per
 * "observed" asks the caller's targets_observed_fn for the ratio; without one, or when it
 * answers <= 0 (or a configured per is not positive), that step and every later step of the
 * chain have no target. A plan derives its metrics for every period kind:
 *   - the plan's own kind: the plan-period target itself;
 *   - any other kind: the plan periods overlapping the period instance, each weighted by
 *     working days (part of it inside the instance / all of it, in the manager's calendar),
 *     summed, then rounded up (pacing_prorate): a week takes its share of one or two months,
 *     a quarter sums its three months, a holiday or weekend day gets 0.
 * A configured target for the same metric and period wins over a derived one. If two plans
 * that apply to one manager derive the same metric (a configuration error the parser
 * rejects for the same plan period), the one whose period is the requested kind wins, then
 * the first in configuration order.
 *
 * Lookups are precomputed in targets_new (metric ids, sorted levels, per-metric plan lists,
 * chains without observed steps), so targets_of_manager allocates nothing and costs a few
 * binary searches per metric plus the working-day count of the period for pro-rating. */
#ifndef KPI_TARGETS_H
#define KPI_TARGETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "pacing.h"
#include "period.h"

typedef struct targets targets_t;

/* Built from cfg, which it borrows (must outlive it). NULL + err on OOM. */
targets_t *targets_new(const config_t *cfg, char *err, size_t errlen);
void targets_free(targets_t *t);

/* A period instance: kind and its [start_ms, end_ms) in the scope's zone. */
struct targets_period {
    enum period_kind kind;
    int64_t start_ms, end_ms;
};

/* Observed ratio for a plan step with per "observed": units of prev_metric that one unit of
 * metric yielded over the trailing 90 days for this manager (the caller falls back to team,
 * then org). <= 0: unknown. May be called more than once per (prev_metric, metric) in one
 * targets_of_manager call, so it should be a cached lookup. */
typedef double (*targets_observed_fn)(void *ctx, const char *manager, const char *prev_metric,
                                      const char *metric);

struct targets_entry {
    const char *metric; /* borrowed from the config */
    int64_t target;
    bool derived;       /* from a plan, not a configured target */
};

/* Every target of one manager for one period instance, sorted by metric name (strcmp).
 * The manager's role and team come from cfg->managers ("default"/"unassigned" when not
 * configured). cal: the manager's calendar with its zone; plans are pro-rated by its working
 * days and plan periods are bounded by period_of(cal->zone, ...). With cal NULL, plans give
 * targets only for periods of their own kind. obs may be NULL (then observed steps and
 * everything after them in the chain are absent). Fills at most cap entries; returns how
 * many exist (may exceed cap). */
size_t targets_of_manager(const targets_t *t, const char *manager, const struct targets_period *p,
                          const pacing_calendar_t *cal, targets_observed_fn obs, void *obs_ctx,
                          struct targets_entry *out, size_t cap);

/* The distinct metric names that have a target (configured at any level, or derived by any
 * plan, observed steps included) for a period kind: the counter fields an evaluator must
 * read. Sorted by name. Returns the count; fills at most cap (borrowed strings). */
size_t targets_metrics(const targets_t *t, enum period_kind kind, const char **out, size_t cap);

/* The distinct (prev_metric, metric) pairs of plan steps with per "observed" (prev of the
 * first step is the plan's metric), in configuration order. Returns the count; fills at most
 * cap pairs (borrowed strings). */
size_t targets_observed_pairs(const targets_t *t, const char *(*out)[2], size_t cap);

/* A pacing calendar for a config calendar in a zone (borrowing its holidays and the zone). */
pacing_calendar_t targets_calendar(const struct config_calendar *c, period_zone_t *zone);

#endif
