/* deals: one deal's state and what one deal_stage event does to it (contract section 2,
 * its settled readings about deals, and the pipeline of section 4).
 *
 * Pure: no I/O, no clock. The caller loads the deal's state from Redis (kpi:deal:{<deal>}),
 * calls deals_apply, adds the counter effects to the event's manager, team and organisation
 * in the periods of the event's ts, adds the pipeline effects to the named managers' (and
 * their teams' and the organisation's) pipeline hashes, and writes the new state back in
 * the same MULTI/EXEC as the counters.
 *
 * Decisions (all follow from "first entry" being decided in processing order):
 * - Processing order is the deal's history. An event whose ts is earlier than the deal's
 *   stage_ts (or first_ts) is still applied as the latest word on the deal: it moves the
 *   current stage, owner and amount, and "first entry" means first in processing order.
 *   Re-ordering by ts would need the deal's whole history and could un-count entries
 *   already written to closed periods.
 * - first_ts is the ts of the first event of the deal that was applied, whatever its stage
 *   (a deal first seen at proposal starts its cycle there). A deal whose first event is
 *   won has a cycle of 0 s. A won event whose ts is before first_ts (out of order) adds
 *   0 s, not a negative cycle.
 * - stage_ts is the ts of the event that moved the deal into its current stage; an
 *   amount-only update (same stage again) keeps it.
 * - An amount-only update (or a repeated identical event) enters nothing; it can still
 *   move the pipeline (amount) and the owner (reassignment).
 * - A deal is open while its current stage is not terminal. An unknown amount counts 0 in
 *   open_amount_cents and weighted_amount_cents (the deal still counts in open_count).
 * - Weighted amount: each stage's p is taken to 9 decimal places (llround(p x 10^9), so
 *   0.15 is exactly 150000000/10^9, not the double just below 0.15), and
 *   round-half-away(amount_cents x p) is then computed in exact integer arithmetic. For a p
 *   written with at most 9 decimals this is the contract's rounding exactly: 10 cents at
 *   p 0.15 is 1.5 -> 2 (a double or long double product would give 1.4999.. -> 1).
 * - reached is a bitmask over configured stage indices: reordering the configured stages,
 *   or inserting one before others, reinterprets the reached stages of stored deals.
 *   Appending stages is safe. */
#ifndef KPI_DEALS_H
#define KPI_DEALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "event.h"

#define DEALS_MAX_STAGES 64 /* reached is one 64-bit mask (config enforces the same bound) */

/* The deal counters (section 2), one vector per event, indexed so: */
enum deals_counter {
    DEALS_C_WON,           /* deals_won */
    DEALS_C_LOST,          /* deals_lost */
    DEALS_C_REVENUE_WON,   /* revenue_won_cents */
    DEALS_C_CYCLE_WON,     /* cycle_seconds_won */
    DEALS_C_STAGE0         /* stage:<name> of configured stage i is DEALS_C_STAGE0 + i */
};
#define DEALS_COUNTERS_MAX (DEALS_C_STAGE0 + DEALS_MAX_STAGES)

/* The pipeline fields (section 4, kpi:...:pipeline), indexed so: */
enum deals_pipe {
    DEALS_P_OPEN_COUNT,    /* open_count */
    DEALS_P_OPEN_AMOUNT,   /* open_amount_cents */
    DEALS_P_WEIGHTED,      /* weighted_amount_cents */
    DEALS_P_OPEN_STAGE0    /* open:<name> of configured stage i is DEALS_P_OPEN_STAGE0 + i */
};
#define DEALS_PIPE_MAX (DEALS_P_OPEN_STAGE0 + DEALS_MAX_STAGES)

/* The stage rules: names, probabilities, terminal flags, the won and lost stages, and the
 * Redis field names derived from them. Owns copies of everything (a configuration reload
 * builds new rules; the old config may then be freed). */
typedef struct deals_rules deals_rules_t;

/* -1 and err when: no stages or more than DEALS_MAX_STAGES, a name is NULL/empty or longer
 * than 32 bytes, a p is not in [0,1], or no terminal stage named "won" and "lost" exists. */
deals_rules_t *deals_rules_new(const struct config_stage *stages, size_t n_stages, char *err,
                               size_t errlen);
void deals_rules_free(deals_rules_t *rules);
size_t deals_rules_stage_count(const deals_rules_t *rules);
/* Index of a stage name, or -1. */
int deals_rules_stage_find(const deals_rules_t *rules, const char *name, size_t len);

/* How many entries of an effects vector are meaningful (DEALS_C_STAGE0 + n_stages, and
 * DEALS_P_OPEN_STAGE0 + n_stages), and their Redis field names: "deals_won", ...,
 * "stage:lead"; "open_count", ..., "open:lead". Names are owned by the rules; NULL when
 * index is out of range. Terminal stages have an open:<name> entry that is always 0. */
size_t deals_counter_count(const deals_rules_t *rules);
const char *deals_counter_name(const deals_rules_t *rules, size_t index);
size_t deals_pipe_count(const deals_rules_t *rules);
const char *deals_pipe_name(const deals_rules_t *rules, size_t index);

/* One deal as stored in kpi:deal:{<deal>}. */
typedef struct deal_state {
    char manager[EVENT_MANAGER_MAX + 1]; /* current owner: the manager of the latest event */
    int stage;                           /* current stage, index into the rules */
    bool has_amount;                     /* false until an event carried an amount */
    int64_t amount_cents;                /* last known amount, >= 0, when has_amount */
    int64_t first_ts;                    /* epoch ms: ts of the first applied event */
    int64_t stage_ts;                    /* epoch ms: ts of the event that entered `stage` */
    uint64_t reached;                    /* bit i: configured stage i was entered once */
} deal_state_t;

/* One manager's pipeline delta: add values[i] to field deals_pipe_name(i) of the manager's
 * pipeline hash, of the manager's team's, and of the organisation's. */
typedef struct deals_pipe_delta {
    char manager[EVENT_MANAGER_MAX + 1];
    int64_t values[DEALS_PIPE_MAX];
} deals_pipe_delta_t;

typedef struct deals_effects {
    /* For the EVENT's manager (and team and org), in the periods of the event's ts. Only
     * the first deals_counter_count() entries are meaningful; all zero when counted is
     * false. */
    bool counted;
    int64_t counters[DEALS_COUNTERS_MAX];
    /* 0, 1 or 2 managers whose pipeline changed, each delta non-zero somewhere. With a
     * reassignment of an open deal: the old owner's removal first, the new owner's addition
     * second. When both are the same manager the two are netted into one delta. */
    size_t n_pipe;
    deals_pipe_delta_t pipe[2];
    /* The new state differs from the old one (or the deal is new): write it back. */
    bool state_changed;
} deals_effects_t;

/* Applies one deal_stage event. state is the deal's stored state, or NULL for a deal never
 * seen. Fills *next with the new state (next may be the same object as state) and *fx with
 * the effects. Returns 0, or -1 with err (nothing is written to *next) when the event is not
 * a deal_stage, names a stage outside the rules, or the state is inconsistent with the
 * rules (stage out of range, negative amount). */
int deals_apply(const deal_state_t *state, const event_t *ev, const deals_rules_t *rules,
                deal_state_t *next, deals_effects_t *fx, char *err, size_t errlen);

/* The pipeline contribution of one deal in its current state: zero when its stage is
 * terminal, else open_count 1, open_amount_cents, weighted_amount_cents and open:<stage> 1.
 * For rebuilding pipelines from stored deals and for tests. values holds DEALS_PIPE_MAX. */
void deals_contribution(const deals_rules_t *rules, const deal_state_t *state,
                        int64_t values[DEALS_PIPE_MAX]);

/* round-half-away(amount_cents x p) for stage `stage`, as described above (amount >= 0). */
int64_t deals_weighted_cents(const deals_rules_t *rules, int stage, int64_t amount_cents);

/* ---- Storage in Redis: kpi:deal:{<deal>} is a hash of these fields ----
 *   manager       the current owner (manager_id of the latest event)
 *   stage         current stage, by name
 *   amount_cents  last known amount in cents, decimal; absent while unknown
 *   first_ts      epoch ms, decimal
 *   stage_ts      epoch ms, decimal
 *   reached       decimal unsigned 64-bit mask, bit i = configured stage i was entered
 * e.g. manager ivanov, stage proposal, amount_cents 12500050, first_ts 1795132800000,
 *      stage_ts 1795219200000, reached 13 (lead, sql, proposal with the default stages). */
#define DEALS_HASH_FIELDS 6

typedef struct deals_hash {
    size_t n;                             /* pairs filled: 5, or 6 with amount_cents */
    const char *field[DEALS_HASH_FIELDS]; /* static strings */
    const char *value[DEALS_HASH_FIELDS]; /* NUL-terminated, pointing into buf */
    size_t value_len[DEALS_HASH_FIELDS];
    char buf[256];
} deals_hash_t;

/* State -> HSET field/value pairs. -1 and err when the state's stage is outside the rules.
 * HSET over the stored hash is enough, no field ever needs deleting: a state's has_amount
 * never goes back to false. */
int deals_state_format(const deals_rules_t *rules, const deal_state_t *state, deals_hash_t *out,
                       char *err, size_t errlen);

/* HGETALL pairs -> state, one pair at a time (hiredis replies need no copying):
 *   deals_reader_t r; deals_reader_init(&r);
 *   for each pair: if (deals_reader_field(&r, rules, f, flen, v, vlen, err, errlen)) fail;
 *   switch (deals_reader_finish(&r, &state, err, errlen)) { 1: new deal; 0: state; -1: fail }
 * Unknown fields are ignored (a later version may add some). Values must be exactly what
 * deals_state_format writes: decimal integers without sign or spaces (ts may be negative),
 * a configured stage name, a valid manager id; reached must include the current stage.
 * Bits of reached beyond the configured stages are dropped (stages removed from the end
 * of the list). */
typedef struct deals_reader {
    deal_state_t state;
    unsigned seen; /* bit per field */
} deals_reader_t;

void deals_reader_init(deals_reader_t *reader);
int deals_reader_field(deals_reader_t *reader, const deals_rules_t *rules, const char *field,
                       size_t field_len, const char *value, size_t value_len, char *err,
                       size_t errlen);
/* 0: *out holds the state; 1: no field was read (the deal is new, *out untouched);
 * -1 and err: a required field is missing. */
int deals_reader_finish(const deals_reader_t *reader, deal_state_t *out, char *err, size_t errlen);

#endif
