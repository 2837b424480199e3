#include "tally.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

const char *const tally_lb_metric_names[TALLY_LB_METRICS] = {"touches", "meetings_held",
                                                             "deals_won", "revenue_won_cents"};
const char *const tally_rolling_metric_names[TALLY_ROLLING_METRICS] = {"calls", "emails",
                                                                       "meetings_held", "touches"};

static const size_t lb_counters[TALLY_LB_METRICS] = {
    COUNTER_TOUCHES, COUNTER_MEETINGS_HELD, TALLY_DEAL_BASE + DEALS_C_WON,
    TALLY_DEAL_BASE + DEALS_C_REVENUE_WON};
static const size_t rolling_counters[TALLY_ROLLING_METRICS] = {
    COUNTER_CALLS, COUNTER_EMAILS, COUNTER_MEETINGS_HELD, COUNTER_TOUCHES};

size_t tally_lb_counter(size_t metric) { return lb_counters[metric]; }
size_t tally_rolling_counter(size_t metric) { return rolling_counters[metric]; }

const char *tally_counter_name(const deals_rules_t *rules, size_t index)
{
    if (index < COUNTER_ACTIVITY_COUNT)
        return agg_counter_name((enum counter)index);
    return rules ? deals_counter_name(rules, index - TALLY_DEAL_BASE) : NULL;
}

size_t tally_counter_count(const deals_rules_t *rules)
{
    return TALLY_DEAL_BASE + (rules ? deals_counter_count(rules) : 0);
}

struct tally {
    agg_t *counters, *leaders, *hourly, *pipeline;
    agg_t *last; /* per manager: latest event time of each activity counter it moved */
    int64_t hour;     /* the hour hour_id names */
    char hour_id[24];
};

tally_t *tally_new(void)
{
    tally_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->counters = agg_new(TALLY_VALUES);
    t->leaders = agg_new(TALLY_LB_METRICS);
    t->hourly = agg_new(TALLY_ROLLING_METRICS);
    t->pipeline = agg_new(DEALS_PIPE_MAX);
    t->last = agg_new(COUNTER_ACTIVITY_COUNT);
    if (!t->counters || !t->leaders || !t->hourly || !t->pipeline || !t->last) {
        tally_free(t);
        return NULL;
    }
    return t;
}

void tally_free(tally_t *t)
{
    if (!t)
        return;
    agg_free(t->counters);
    agg_free(t->leaders);
    agg_free(t->hourly);
    agg_free(t->pipeline);
    agg_free(t->last);
    free(t);
}

void tally_reset(tally_t *t)
{
    agg_reset(t->counters);
    agg_reset(t->leaders);
    agg_reset(t->hourly);
    agg_reset(t->pipeline);
    agg_reset(t->last);
}

void tally_reset_pipeline(tally_t *t) { agg_reset(t->pipeline); }

static int add_subset(agg_t *agg, enum scope_kind kind, const char *scope, enum period_kind pk,
                      const char *period_id, int64_t end_ms, const int64_t *deltas,
                      const size_t *index, size_t n)
{
    bool any = false;
    for (size_t i = 0; i < n; i++)
        any |= deltas[index[i]] != 0;
    if (!any)
        return 0;
    agg_bucket_t *b = agg_bucket_id(agg, kind, scope, pk, period_id, end_ms);
    if (!b)
        return -1;
    for (size_t i = 0; i < n; i++)
        b->values[i] += deltas[index[i]];
    return 0;
}

int tally_add(tally_t *t, const struct tally_scope *w, const int64_t *deltas)
{
    /* Events touch either the activity counters or a few deal counters: adding only up to
     * the last non-zero one keeps twelve buckets per event cheap. */
    size_t n = TALLY_VALUES;
    while (n > 0 && deltas[n - 1] == 0)
        n--;
    for (int p = 0; p < PERIOD_KINDS; p++) {
        agg_bucket_t *b = agg_bucket(t->counters, SCOPE_MANAGER, w->manager, (enum period_kind)p,
                                     w->mine);
        if (!b)
            return -1;
        for (size_t i = 0; i < n; i++)
            b->values[i] += deltas[i];
        if (w->org_zone)
            b->flags |= TALLY_FLAG_BOARDS;
    }
    if (agg_add(t->counters, SCOPE_TEAM, w->team, w->mine, deltas, n) ||
        agg_add(t->counters, SCOPE_ORG, "", w->org, deltas, n))
        return -1;
    /* Leaderboards rank everyone on the organisation's calendar: one board per org day.
     * In the organisation's zone the manager's own buckets are those periods already. */
    for (int p = 0; !w->org_zone && p < PERIOD_KINDS; p++)
        if (add_subset(t->leaders, SCOPE_MANAGER, w->manager, (enum period_kind)p, w->org->id[p],
                       w->org->end_ms[p], deltas, lb_counters, TALLY_LB_METRICS))
            return -1;
    /* Inactivity rules need the time of the latest activity, not its count; a maximum
     * cannot be taken back, so callers recount a batch rather than subtract from it. */
    agg_bucket_t *last = NULL;
    for (size_t i = 0; i < COUNTER_ACTIVITY_COUNT && i < n; i++) {
        if (deltas[i] <= 0 || i == COUNTER_INTERNAL_FILTERED)
            continue;
        if (!last && !(last = agg_bucket_id(t->last, SCOPE_MANAGER, w->manager, PERIOD_DAY,
                                            "last", 0)))
            return -1;
        if (w->ts_ms > last->values[i])
            last->values[i] = w->ts_ms;
    }
    /* Floor division: hours before 1970 are negative. */
    int64_t hour = w->ts_ms >= 0 ? w->ts_ms / TALLY_HOUR_MS
                                 : -((-w->ts_ms + TALLY_HOUR_MS - 1) / TALLY_HOUR_MS);
    /* Consecutive events mostly share their hour: format its name once. */
    if (hour != t->hour || !t->hour_id[0]) {
        snprintf(t->hour_id, sizeof t->hour_id, "%" PRId64, hour);
        t->hour = hour;
    }
    return add_subset(t->hourly, SCOPE_MANAGER, w->manager, PERIOD_DAY, t->hour_id, hour, deltas,
                      rolling_counters, TALLY_ROLLING_METRICS);
}

int tally_add_pipeline(tally_t *t, const char *manager, const char *team, const int64_t *values)
{
    const char *scopes[SCOPE_KINDS] = {[SCOPE_MANAGER] = manager, [SCOPE_TEAM] = team,
                                       [SCOPE_ORG] = ""};
    for (int k = 0; k < SCOPE_KINDS; k++) {
        agg_bucket_t *b = agg_bucket_id(t->pipeline, (enum scope_kind)k, scopes[k], PERIOD_DAY,
                                        "pipeline", 0);
        if (!b)
            return -1;
        for (size_t i = 0; i < DEALS_PIPE_MAX; i++)
            b->values[i] += values[i];
    }
    return 0;
}

const agg_t *tally_counters(const tally_t *t) { return t->counters; }
const agg_t *tally_leaders(const tally_t *t) { return t->leaders; }
const agg_t *tally_hourly(const tally_t *t) { return t->hourly; }
const agg_t *tally_pipeline(const tally_t *t) { return t->pipeline; }
const agg_t *tally_last(const tally_t *t) { return t->last; }
