/* Shared by the unit tests that build period sets by hand. */
#ifndef KPI_TEST_FIXTURES_H
#define KPI_TEST_FIXTURES_H

#include <stdio.h>
#include <string.h>

#include "period.h"

/* A period set with the given day and week ids, November 2026 and Q4, and a day end. */
static inline period_set_t fixture_periods(const char *day, const char *week, int64_t day_end)
{
    period_set_t p;
    memset(&p, 0, sizeof p);
    snprintf(p.id[PERIOD_DAY], sizeof p.id[0], "%s", day);
    snprintf(p.id[PERIOD_WEEK], sizeof p.id[0], "%s", week);
    snprintf(p.id[PERIOD_MONTH], sizeof p.id[0], "m:2026-11");
    snprintf(p.id[PERIOD_QUARTER], sizeof p.id[0], "q:2026-Q4");
    p.end_ms[PERIOD_DAY] = day_end;
    return p;
}

#endif
