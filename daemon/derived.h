/* derived: the derived figures of one scope and period (contract section 4,
 * <scope>:<period>:kpi) from its counters. Pure: the caller supplies the counters through a
 * lookup function and writes the figures.
 *
 *   win_rate                   deals_won / (deals_won + deals_lost)
 *   avg_deal_cents             revenue_won_cents / deals_won
 *   avg_cycle_days             cycle_seconds_won / deals_won / 86400
 *   conv:<a>><b>               stage:<b> / stage:<a>
 *   touches_per_first_meeting  touches / meetings_first
 *   next_step_rate             meetings_next_step / meetings_first
 *
 * Conversion steps: the non-terminal stages in configured order, each to the next
 * non-terminal one, and the last one to "won" (default stages: lead>mql, mql>sql,
 * sql>proposal, proposal>negotiation, negotiation>won). The won step is included because
 * closing is the step a sales head watches most; lost and other terminal stages are not
 * steps. Rates are of entries within the period, not of a cohort, and deals may skip
 * stages, so a conversion can exceed 1.
 *
 * Values are decimal strings rounded half away from zero to at most 4 fraction digits,
 * trailing zeros trimmed: "0.1667", "2", "0.5", "-0.25"; never "-0". A figure whose
 * denominator is 0 is absent (never nan or inf). Counters only grow, so a figure never
 * becomes absent again once present in a hash. Computed in exact integer arithmetic. */
#ifndef KPI_DERIVED_H
#define KPI_DERIVED_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define DERIVED_MAX_FIGURES 69 /* 5 fixed + at most 64 conversion steps */
#define DERIVED_FIELD_MAX 80   /* "conv:" + two 32-byte stage names + ">" + NUL fits */
#define DERIVED_VALUE_MAX 32   /* INT64_MIN with 4 fraction digits fits */

/* The value of counter `name` ("deals_won", "stage:lead") of the scope and period; 0 when
 * the field does not exist. */
typedef int64_t (*derived_lookup_fn)(void *ctx, const char *name);

typedef struct derived_figure {
    char field[DERIVED_FIELD_MAX];
    char value[DERIVED_VALUE_MAX];
} derived_figure_t;

typedef struct derived {
    size_t n;                                  /* figures present, in the order above */
    derived_figure_t fig[DERIVED_MAX_FIGURES];
} derived_t;

/* Fills *out with every figure whose denominator is not 0. Returns 0, or -1 and err when
 * there are more than 64 stages or a stage name is NULL or longer than 32 bytes. */
int derived_compute(const struct config_stage *stages, size_t n_stages, derived_lookup_fn lookup,
                    void *ctx, derived_t *out, char *err, size_t errlen);

/* num / den as such a decimal string. Returns its length, or -1 when den is 0 or size is
 * too small (DERIVED_VALUE_MAX always suffices). */
int derived_format_ratio(int64_t num, int64_t den, char *buf, size_t size);

#endif
