/* evaluate: the alert evaluation pass (contract sections 5 and 7).
 *
 * For a set of managers at one instant, a pass reads their counters, alert states, latest
 * activity and pending digest, and computes with the pure modules (targets, pacing, score,
 * alert):
 *   - the target fields of each current period's :kpi hash (<metric>:target, :expected,
 *     :pct, :state) and kpi_score / bonus for the score's period;
 *   - each rule's alert transitions, which it writes as new states, as entries of the
 *     <prefix>:alerts stream (the outbox notify delivers from), and in the manager's
 *     firing hash; outside the manager's working hours alerts go to the manager's digest
 *     list instead, and the first pass in working hours moves the digest to the stream.
 * The writes of a chunk of managers are one MULTI/EXEC that WATCHes those managers' alert
 * states and digests: when another kpid evaluated one of them in between, the chunk is
 * read and computed again, so a transition is recorded, and its alert sent, exactly once
 * however many kpid evaluate. Teams and the organisation get the same :kpi target fields
 * (their targets are the sums over their configured managers) but no alerts.
 *
 * The instant is the wall clock, or with the event clock the latest event time applied
 * (kpi:meta last_event_ts, shared by every kpid of the group). */
#ifndef KPI_EVALUATE_H
#define KPI_EVALUATE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "period.h"
#include "targets.h"

typedef struct evaluator evaluator_t;

/* What a pass evaluates against; everything borrowed until the next evaluate_set_world. */
struct evaluate_world {
    const config_t *cfg;
    const targets_t *targets;
    period_zone_t *const *team_zones; /* parallel to cfg->teams */
    period_zone_t *default_zone;      /* team "unassigned" and teams without a zone */
    period_zone_t *org_zone;
};

evaluator_t *evaluate_new(void);
void evaluate_free(evaluator_t *e);
void evaluate_set_world(evaluator_t *e, const struct evaluate_world *world);

struct evaluate_result {
    int64_t now_ms;     /* the instant evaluated (-1: event clock, no event applied yet) */
    size_t managers;    /* managers evaluated */
    size_t alerts;      /* alert objects added to the stream */
    size_t resolved;    /* of those, "resolved" ones (the rest are "firing") */
    size_t queued;      /* alert objects put in digests */
};

/* One pass over managers[0..n) (and their teams and the organisation), or with
 * managers NULL over everyone: the configured managers and every manager in
 * <prefix>:managers, every configured team, the organisation; a full pass also stores
 * its instant in <prefix>:meta eval_ts. 0, or -1 with err (Redis unreachable: the
 * caller retries later; the connection is reopened then). */
int evaluate_pass(evaluator_t *e, const char *const *managers, size_t n, int64_t wall_ms,
                  struct evaluate_result *result, char *err, size_t errlen);

#endif
