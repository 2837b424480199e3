/* pacing: targets paced to a working calendar, and plans back-solved into leading targets
 * (contract section 7). Pure: the caller passes now_ms; zones come from period.
 *
 *   expected = target x (working time elapsed in the period / working time of the period)
 *   pct      = 100 x actual / expected   (100 x actual / target before any working time)
 *   state    = ok at pct >= warn_pct, warn at pct >= critical_pct, else critical
 *
 * Working time is counted to the second in the calendar's zone: each working day's local
 * hours, holidays and non-working weekdays excluded, so it stands still at night, on
 * weekends and holidays, and a DST day's hours are the wall-clock hours it really has.
 *
 * Not wired into the daemon yet (the alerting issue does that). */
#ifndef KPI_PACING_H
#define KPI_PACING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "period.h"

typedef struct pacing_calendar {
    period_zone_t *zone;        /* borrowed */
    unsigned work_days;         /* bit w set: weekday w works (1 = Monday .. 7 = Sunday) */
    int start_min, end_min;     /* working hours in local minutes, 0 <= start < end <= 1440 */
    const int64_t *holidays;    /* local dates as days since 1970-01-01, ascending; borrowed */
    size_t n_holidays;
} pacing_calendar_t;

#define PACING_WEEKDAYS 0x3eu   /* Monday to Friday */

/* 0, or -1 and err when the hours or days are out of range or holidays are not ascending. */
int pacing_calendar_check(const pacing_calendar_t *cal, char *err, size_t errlen);

/* Working seconds in [from_ms, to_ms). */
int64_t pacing_work_s(const pacing_calendar_t *cal, int64_t from_ms, int64_t to_ms);

/* Working days whose local date starts in [from_ms, to_ms) (period bounds are local
 * midnights, so: the working days of a period). */
int pacing_work_days(const pacing_calendar_t *cal, int64_t from_ms, int64_t to_ms);

enum pacing_state { PACING_OK, PACING_WARN, PACING_CRITICAL };

typedef struct pacing_result {
    char expected[32];          /* decimal, at most 4 fraction digits */
    bool has_pct;               /* false when the target is 0 */
    char pct[32];
    enum pacing_state state;
} pacing_result_t;

/* The pacing of `actual` against `target` for a period [start_ms, end_ms) at now_ms. A
 * period without working time is paced as fully elapsed. */
void pacing_evaluate(const pacing_calendar_t *cal, int64_t start_ms, int64_t end_ms,
                     int64_t now_ms, int64_t target, int64_t actual, int warn_pct,
                     int critical_pct, pacing_result_t *out);

const char *pacing_state_name(enum pacing_state state);

/* One step of a plan's chain: previous target x need (or / per when by_per), rounded to
 * 6 decimals and then up to a whole number. -1 when per is not positive. */
int64_t pacing_plan_step(double previous, double factor, bool by_per);

/* A target for a plan period pro-rated to a shorter one by working days: target x
 * sum(part_days[i] / whole_days[i]) over the plan periods the short one overlaps (a week
 * across two months takes its share of each), rounded to 6 decimals then up. Plan periods
 * without working days contribute nothing. */
int64_t pacing_prorate(double target, const int *part_days, const int *whole_days, size_t n);

#endif
