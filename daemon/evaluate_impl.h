/* evaluate_impl: what the evaluation pass's files share (evaluate.c runs the pass and its
 * Redis round trips, evaluate_alerts.c turns figures into :kpi fields and alerts,
 * evaluate_scopes.c does teams, the organisation and observed plan ratios). Private. */
#ifndef KPI_EVALUATE_IMPL_H
#define KPI_EVALUATE_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "alert.h"
#include "evaluate.h"
#include "keys.h"
#include "pacing.h"

#define CHUNK_MANAGERS 200 /* managers per WATCH/MULTI: a conflict redoes this many */
#define FIELDS_MAX 64      /* counter fields read per manager and period kind */
#define CONFLICT_RETRIES 8
#define ARENA_BLOCK 65536
#define DEFAULT_WARN_PCT 80
#define DEFAULT_CRITICAL_PCT 50

/* Strings that live until a chunk's commands are sent (argv of pipelined commands). */
struct arena_block {
    struct arena_block *next;
    size_t used;
    char data[ARENA_BLOCK];
};

struct arena {
    struct arena_block *head;
    bool oom;
};

/* The argv of the command being built; eval_send appends it to the pipeline. */
struct cmdbuf {
    const char **argv;
    size_t n, cap;
    size_t start; /* first argument of the command being built */
    size_t sent;  /* commands sent since reset: replies to read */
    bool oom;
};

/* One current period of one manager during a pass. */
struct kind_view {
    bool used;
    char id[16];
    int64_t start_ms, end_ms;
    struct targets_entry targets[FIELDS_MAX];
    size_t n_targets;
    const char *fields[FIELDS_MAX]; /* counter fields read */
    int64_t values[FIELDS_MAX];
    size_t n_fields;
};

/* One manager during a pass. */
struct mview {
    const char *id;
    const char *team, *lead;
    pacing_calendar_t cal;
    struct kind_view k[PERIOD_KINDS];
    alert_state_t *states;  /* per rule */
    char (*stored)[ALERT_STATE_MAX]; /* per rule: the state as read, encoded (to skip
                                      * writing back what did not change) */
    int64_t *last_ms;       /* per rule: latest activity of an inactivity rule's metric, -1 */
    redisReply *digest;     /* LRANGE of the digest list (owned) */
    int64_t *final_actual;  /* per rule: the closing period's actual, when one closes */
};

struct evaluator {
    struct evaluate_world w;
    redisContext *redis;
    char address[400];
    bool readonly_seen; /* a READONLY reply: the server became a replica; reconnect */
    struct arena arena;
    struct cmdbuf cmd;
    struct mview *views;
    size_t views_cap;
    pacing_calendar_t org_cal;
    bool has_work; /* the configuration has targets, a score or rules */

    /* Ratios of plan steps with per "observed", per scope, refreshed hourly. */
    const char *(*pairs)[2];
    size_t n_pairs;
    struct observed {
        char *scope;    /* "m:<manager>", "t:<team>", "o:" (owned) */
        double *ratio;  /* per pair, <= 0: too little history */
    } *observed;
    size_t n_observed;
    int64_t observed_at_ms;
};

struct chunk_totals {
    size_t alerts, queued;
    size_t resolved; /* of alerts */
};

/* evaluate.c: buffers, replies, keys, views */
void eval_add_field(struct kind_view *k, const char *metric);
void eval_arena_clear(struct arena *a);
void eval_arg(struct cmdbuf *c, const char *s);
void eval_disconnect(evaluator_t *e);
int64_t eval_field(const struct kind_view *k, const char *metric);
int64_t eval_int(const redisReply *r);
int eval_key(evaluator_t *e, enum scope_kind kind, const char *scope, const char *period,
                   const char **out);
void eval_observed_clear(evaluator_t *e);
double eval_observed_ratio(void *ctx, const char *manager, const char *prev, const char *metric);
int eval_observed_refresh(evaluator_t *e, const char *const *ids, size_t n_ids, int64_t now,
                            char *err, size_t errlen);
char *eval_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void eval_queue_alerts(evaluator_t *e, struct mview *v, const char *const *keys, int64_t now,
                         struct chunk_totals *tot, bool *any);
void eval_queue_pacing(evaluator_t *e, const char *counters_key, enum period_kind kind,
                         int64_t start_ms, int64_t end_ms, const pacing_calendar_t *cal,
                         int64_t now, const struct targets_entry *targets, size_t n_targets,
                         const struct kind_view *values);
void eval_queue_score(evaluator_t *e, const struct mview *v);
redisReply *eval_read(evaluator_t *e, char *err, size_t errlen);
int eval_scopes(evaluator_t *e, const char *const *teams, size_t n_teams, int64_t now,
                      char *err, size_t errlen);
int eval_send(redisContext *rc, struct cmdbuf *c);
int64_t eval_target_of(const struct kind_view *k, const char *metric, bool *found);
period_zone_t *eval_zone_of_team(const evaluator_t *e, const char *team,
                                   const struct config_team **t_out);

#endif
