#include "deals.h"

#include "log.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STAGE_NAME_MAX 32
#define P_SCALE 1000000000LL /* p is kept in units of 10^-9 (see deals.h) */

struct deals_rules {
    size_t n;
    int won, lost;
    char name[DEALS_MAX_STAGES][STAGE_NAME_MAX + 1];
    bool terminal[DEALS_MAX_STAGES];
    int64_t p_nano[DEALS_MAX_STAGES];
    /* Field names are built once: a flush names every field it writes. */
    char counter_name[DEALS_COUNTERS_MAX][STAGE_NAME_MAX + 8];
    char pipe_name[DEALS_PIPE_MAX][STAGE_NAME_MAX + 8];
};


deals_rules_t *deals_rules_new(const struct config_stage *stages, size_t n_stages, char *err,
                               size_t errlen)
{
    if (!stages || n_stages == 0 || n_stages > DEALS_MAX_STAGES) {
        log_errbuf(err, errlen, "stages: need 1 to %d stages, got %zu", DEALS_MAX_STAGES, n_stages);
        return NULL;
    }
    deals_rules_t *r = calloc(1, sizeof *r);
    if (!r) {
        log_errbuf(err, errlen, "out of memory");
        return NULL;
    }
    r->n = n_stages;
    r->won = r->lost = -1;
    static const char *const fixed_counters[DEALS_C_STAGE0] = {
        "deals_won", "deals_lost", "revenue_won_cents", "cycle_seconds_won"};
    static const char *const fixed_pipe[DEALS_P_OPEN_STAGE0] = {
        "open_count", "open_amount_cents", "weighted_amount_cents"};
    for (size_t i = 0; i < DEALS_C_STAGE0; i++)
        snprintf(r->counter_name[i], sizeof r->counter_name[i], "%s", fixed_counters[i]);
    for (size_t i = 0; i < DEALS_P_OPEN_STAGE0; i++)
        snprintf(r->pipe_name[i], sizeof r->pipe_name[i], "%s", fixed_pipe[i]);
    for (size_t i = 0; i < n_stages; i++) {
        const struct config_stage *s = &stages[i];
        size_t len = s->name ? strlen(s->name) : 0;
        if (len == 0 || len > STAGE_NAME_MAX) {
            log_errbuf(err, errlen, "stages[%zu]: name must be 1 to %d bytes", i, STAGE_NAME_MAX);
            goto bad;
        }
        if (!(s->p >= 0 && s->p <= 1)) { /* also refuses NaN */
            log_errbuf(err, errlen, "stages[%zu]: p must be between 0 and 1", i);
            goto bad;
        }
        memcpy(r->name[i], s->name, len + 1);
        r->terminal[i] = s->terminal;
        r->p_nano[i] = llround(s->p * (double)P_SCALE);
        snprintf(r->counter_name[DEALS_C_STAGE0 + i], sizeof r->counter_name[0], "stage:%s",
                 s->name);
        snprintf(r->pipe_name[DEALS_P_OPEN_STAGE0 + i], sizeof r->pipe_name[0], "open:%s",
                 s->name);
        if (s->terminal && strcmp(s->name, "won") == 0)
            r->won = (int)i;
        if (s->terminal && strcmp(s->name, "lost") == 0)
            r->lost = (int)i;
    }
    if (r->won < 0 || r->lost < 0) {
        log_errbuf(err, errlen, "stages: terminal stages \"won\" and \"lost\" are required");
        goto bad;
    }
    return r;
bad:
    free(r);
    return NULL;
}

void deals_rules_free(deals_rules_t *rules) { free(rules); }

size_t deals_rules_stage_count(const deals_rules_t *rules) { return rules->n; }

int deals_rules_stage_find(const deals_rules_t *rules, const char *name, size_t len)
{
    for (size_t i = 0; i < rules->n; i++)
        if (strlen(rules->name[i]) == len && memcmp(rules->name[i], name, len) == 0)
            return (int)i;
    return -1;
}

size_t deals_counter_count(const deals_rules_t *rules) { return DEALS_C_STAGE0 + rules->n; }

const char *deals_counter_name(const deals_rules_t *rules, size_t index)
{
    return index < deals_counter_count(rules) ? rules->counter_name[index] : NULL;
}

size_t deals_pipe_count(const deals_rules_t *rules) { return DEALS_P_OPEN_STAGE0 + rules->n; }

const char *deals_pipe_name(const deals_rules_t *rules, size_t index)
{
    return index < deals_pipe_count(rules) ? rules->pipe_name[index] : NULL;
}

int64_t deals_weighted_cents(const deals_rules_t *rules, int stage, int64_t amount_cents)
{
    if (stage < 0 || (size_t)stage >= rules->n || amount_cents <= 0)
        return 0;
    /* amount x p_nano / 10^9, rounded half up (= away from zero, amounts are >= 0), without
     * overflow: split amount = q x 10^9 + rem. q x p_nano <= amount since p_nano <= 10^9,
     * and rem x p_nano < 10^18 fits int64. */
    int64_t p = rules->p_nano[stage];
    int64_t q = amount_cents / P_SCALE, rem = amount_cents % P_SCALE;
    return q * p + (rem * p + P_SCALE / 2) / P_SCALE;
}

void deals_contribution(const deals_rules_t *rules, const deal_state_t *st,
                        int64_t values[DEALS_PIPE_MAX])
{
    memset(values, 0, sizeof(int64_t) * DEALS_PIPE_MAX);
    if (st->stage < 0 || (size_t)st->stage >= rules->n || rules->terminal[st->stage])
        return;
    int64_t amount = st->has_amount ? st->amount_cents : 0;
    values[DEALS_P_OPEN_COUNT] = 1;
    values[DEALS_P_OPEN_AMOUNT] = amount;
    values[DEALS_P_WEIGHTED] = deals_weighted_cents(rules, st->stage, amount);
    values[DEALS_P_OPEN_STAGE0 + st->stage] = 1;
}

static bool all_zero(const int64_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i])
            return false;
    return true;
}

static void push_pipe(deals_effects_t *fx, const char *manager, const int64_t *values, size_t n)
{
    if (all_zero(values, n))
        return;
    deals_pipe_delta_t *d = &fx->pipe[fx->n_pipe++];
    snprintf(d->manager, sizeof d->manager, "%s", manager);
    memcpy(d->values, values, sizeof(int64_t) * DEALS_PIPE_MAX);
}

static bool state_equal(const deal_state_t *a, const deal_state_t *b)
{
    return strcmp(a->manager, b->manager) == 0 && a->stage == b->stage &&
           a->has_amount == b->has_amount && (!a->has_amount || a->amount_cents == b->amount_cents) &&
           a->first_ts == b->first_ts && a->stage_ts == b->stage_ts && a->reached == b->reached;
}

int deals_apply(const deal_state_t *state, const event_t *ev, const deals_rules_t *rules,
                deal_state_t *next, deals_effects_t *fx, char *err, size_t errlen)
{
    if (ev->type != EVENT_DEAL_STAGE)
        return log_errbuf(err, errlen, "deals: event %s is not a deal_stage", ev->event_id);
    if (ev->stage < 0 || (size_t)ev->stage >= rules->n)
        return log_errbuf(err, errlen, "deals: event %s: stage #%d is not configured", ev->event_id,
                    ev->stage);
    if (ev->has_amount && ev->amount_cents < 0)
        return log_errbuf(err, errlen, "deals: event %s: negative amount", ev->event_id);
    if (state && (state->stage < 0 || (size_t)state->stage >= rules->n))
        return log_errbuf(err, errlen, "deals: deal %s: stored stage #%d is not configured",
                    ev->deal_id, state->stage);
    if (state && state->has_amount && state->amount_cents < 0)
        return log_errbuf(err, errlen, "deals: deal %s: stored amount is negative", ev->deal_id);

    deal_state_t n;
    if (state) {
        n = *state;
    } else {
        memset(&n, 0, sizeof n);
        n.stage = -1; /* so the first event is a stage change */
        n.first_ts = ev->ts_ms;
    }
    memset(fx, 0, sizeof *fx);

    int s = ev->stage;
    uint64_t bit = UINT64_C(1) << s;
    if (n.stage != s)
        n.stage_ts = ev->ts_ms;
    n.stage = s;
    snprintf(n.manager, sizeof n.manager, "%s", ev->manager_id);
    if (ev->has_amount) {
        n.has_amount = true;
        n.amount_cents = ev->amount_cents;
    }

    /* "First entry" is by processing order: the reached mask is the whole memory of it, so
     * going back and re-entering, or an amount-only update, finds the bit set. */
    if (!(n.reached & bit)) {
        n.reached |= bit;
        fx->counted = true;
        fx->counters[DEALS_C_STAGE0 + s] = 1;
        if (s == rules->won) {
            fx->counters[DEALS_C_WON] = 1;
            /* The won event's amount if it has one, else the last known one (n.amount_cents
             * already holds whichever applies), else 0. */
            fx->counters[DEALS_C_REVENUE_WON] = n.has_amount ? n.amount_cents : 0;
            /* Whole seconds, truncated; an out-of-order won event older than the first
             * event adds nothing rather than a negative cycle. */
            int64_t cycle_ms = ev->ts_ms - n.first_ts;
            fx->counters[DEALS_C_CYCLE_WON] = cycle_ms > 0 ? cycle_ms / 1000 : 0;
        } else if (s == rules->lost) {
            fx->counters[DEALS_C_LOST] = 1;
        }
    }

    /* Pipeline: remove the old contribution from the old owner, add the new one to the new
     * owner; one netted delta when the owner did not change. */
    int64_t before[DEALS_PIPE_MAX], after[DEALS_PIPE_MAX];
    size_t np = deals_pipe_count(rules);
    memset(before, 0, sizeof before);
    if (state)
        deals_contribution(rules, state, before);
    deals_contribution(rules, &n, after);
    if (state && strcmp(state->manager, n.manager) != 0) {
        for (size_t i = 0; i < np; i++)
            before[i] = -before[i];
        push_pipe(fx, state->manager, before, np);
        push_pipe(fx, n.manager, after, np);
    } else {
        for (size_t i = 0; i < np; i++)
            after[i] -= before[i];
        push_pipe(fx, n.manager, after, np);
    }

    fx->state_changed = !state || !state_equal(state, &n);
    *next = n;
    return 0;
}

/* ---- Redis hash form ---- */

enum field_bit { F_MANAGER, F_STAGE, F_AMOUNT, F_FIRST_TS, F_STAGE_TS, F_REACHED, F_COUNT };
static const char *const field_names[F_COUNT] = {"manager", "stage", "amount_cents",
                                                 "first_ts", "stage_ts", "reached"};
#define REQUIRED_FIELDS ((1u << F_MANAGER) | (1u << F_STAGE) | (1u << F_FIRST_TS) | \
                         (1u << F_STAGE_TS) | (1u << F_REACHED))

int deals_state_format(const deals_rules_t *rules, const deal_state_t *st, deals_hash_t *out,
                       char *err, size_t errlen)
{
    if (st->stage < 0 || (size_t)st->stage >= rules->n)
        return log_errbuf(err, errlen, "deals: stage #%d is not configured", st->stage);
    out->n = 0;
    size_t used = 0;
    for (int f = 0; f < F_COUNT; f++) {
        if (f == F_AMOUNT && !st->has_amount)
            continue;
        char *dst = out->buf + used;
        size_t room = sizeof out->buf - used;
        int len;
        switch (f) {
        case F_MANAGER: len = snprintf(dst, room, "%s", st->manager); break;
        case F_STAGE: len = snprintf(dst, room, "%s", rules->name[st->stage]); break;
        case F_AMOUNT: len = snprintf(dst, room, "%lld", (long long)st->amount_cents); break;
        case F_FIRST_TS: len = snprintf(dst, room, "%lld", (long long)st->first_ts); break;
        case F_STAGE_TS: len = snprintf(dst, room, "%lld", (long long)st->stage_ts); break;
        default: len = snprintf(dst, room, "%llu", (unsigned long long)st->reached); break;
        }
        /* Cannot happen: buf holds the longest manager, stage name and four 20-digit numbers. */
        if (len < 0 || (size_t)len >= room)
            return log_errbuf(err, errlen, "deals: state does not fit its buffer");
        out->field[out->n] = field_names[f];
        out->value[out->n] = dst;
        out->value_len[out->n] = (size_t)len;
        out->n++;
        used += (size_t)len + 1;
    }
    return 0;
}

void deals_reader_init(deals_reader_t *reader)
{
    memset(reader, 0, sizeof *reader);
    reader->state.stage = -1;
}

/* Digits only, at least one, value <= limit. */
static int parse_digits(const char *s, size_t len, uint64_t limit, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Strict decimal: digits only (after an optional '-' when allowed), no overflow. */
static int parse_dec(const char *s, size_t len, bool allow_minus, int64_t *out)
{
    bool neg = allow_minus && len > 0 && s[0] == '-';
    uint64_t v;
    if (parse_digits(s + neg, len - neg, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX,
                     &v) != 0)
        return -1;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static bool manager_ok(const char *s, size_t len)
{
    if (len == 0 || len > EVENT_MANAGER_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '@' || c == '-'))
            return false;
    }
    return true;
}

int deals_reader_field(deals_reader_t *r, const deals_rules_t *rules, const char *field,
                       size_t flen, const char *value, size_t vlen, char *err, size_t errlen)
{
    int f;
    for (f = 0; f < F_COUNT; f++)
        if (strlen(field_names[f]) == flen && memcmp(field_names[f], field, flen) == 0)
            break;
    if (f == F_COUNT)
        return 0;
    deal_state_t *st = &r->state;
    int64_t v = 0;
    uint64_t mask = 0;
    switch (f) {
    case F_MANAGER:
        if (!manager_ok(value, vlen))
            return log_errbuf(err, errlen, "deal state: manager: not a manager id");
        memcpy(st->manager, value, vlen);
        st->manager[vlen] = '\0';
        break;
    case F_STAGE:
        st->stage = deals_rules_stage_find(rules, value, vlen);
        if (st->stage < 0)
            return log_errbuf(err, errlen, "deal state: stage: not a configured stage");
        break;
    case F_AMOUNT:
        if (parse_dec(value, vlen, false, &v) != 0)
            return log_errbuf(err, errlen, "deal state: amount_cents: not a non-negative integer");
        st->has_amount = true;
        st->amount_cents = v;
        break;
    case F_FIRST_TS:
    case F_STAGE_TS:
        if (parse_dec(value, vlen, true, &v) != 0)
            return log_errbuf(err, errlen, "deal state: %s: not an integer", field_names[f]);
        *(f == F_FIRST_TS ? &st->first_ts : &st->stage_ts) = v;
        break;
    default:
        if (parse_digits(value, vlen, UINT64_MAX, &mask) != 0)
            return log_errbuf(err, errlen, "deal state: reached: not an unsigned 64-bit integer");
        /* Bits of stages since removed from the end of the list mean nothing now. */
        st->reached = rules->n < 64 ? mask & ((UINT64_C(1) << rules->n) - 1) : mask;
        break;
    }
    r->seen |= 1u << f;
    return 0;
}

int deals_reader_finish(const deals_reader_t *r, deal_state_t *out, char *err, size_t errlen)
{
    if (r->seen == 0)
        return 1;
    for (int f = 0; f < F_COUNT; f++)
        if ((REQUIRED_FIELDS & (1u << f)) && !(r->seen & (1u << f)))
            return log_errbuf(err, errlen, "deal state: %s: missing", field_names[f]);
    if (!(r->state.reached & (UINT64_C(1) << r->state.stage)))
        return log_errbuf(err, errlen, "deal state: reached: does not include the current stage");
    *out = r->state;
    return 0;
}
