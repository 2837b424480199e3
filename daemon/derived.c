#include "derived.h"

#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define FRACTION_DIGITS 4
#define STAGE_NAME_MAX 32
#define SECONDS_PER_DAY 86400

static uint64_t magnitude(int64_t v)
{
    /* -(v + 1) + 1 keeps INT64_MIN defined. */
    return v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
}

/* 10 x r = q x d + r' for r < d, without forming 10 x r (d may be up to 2^63): ten
 * additions, each below 2d <= 2^64. */
static unsigned times_ten_div(uint64_t *r, uint64_t d)
{
    uint64_t acc = 0;
    unsigned q = 0;
    for (int i = 0; i < 10; i++) {
        acc += *r;
        if (acc >= d) {
            acc -= d;
            q++;
        }
    }
    *r = acc;
    return q;
}

int derived_format_ratio(int64_t num, int64_t den, char *buf, size_t size)
{
    if (den == 0)
        return -1;
    bool neg = (num < 0) != (den < 0);
    uint64_t n = magnitude(num), d = magnitude(den);
    uint64_t whole = n / d, r = n % d;
    unsigned frac = 0; /* the 4 fraction digits as one number 0..9999 */
    for (int i = 0; i < FRACTION_DIGITS; i++)
        frac = frac * 10 + times_ten_div(&r, d);
    /* Half away from zero: the rest is at least half of d (r >= d - r, no overflow). */
    if (r >= d - r && ++frac == 10000) {
        frac = 0;
        whole++; /* whole <= 2^63 here, so no overflow */
    }
    if (whole == 0 && frac == 0)
        neg = false; /* never "-0" */
    int len;
    if (frac == 0) {
        len = snprintf(buf, size, "%s%llu", neg ? "-" : "", (unsigned long long)whole);
    } else {
        int digits = FRACTION_DIGITS;
        while (frac % 10 == 0) {
            frac /= 10;
            digits--;
        }
        len = snprintf(buf, size, "%s%llu.%0*u", neg ? "-" : "", (unsigned long long)whole,
                       digits, frac);
    }
    return (len < 0 || (size_t)len >= size) ? -1 : len;
}

static void add_figure(derived_t *out, const char *field, int64_t num, int64_t den)
{
    derived_figure_t *f = &out->fig[out->n];
    if (derived_format_ratio(num, den, f->value, sizeof f->value) < 0)
        return;
    snprintf(f->field, sizeof f->field, "%s", field);
    out->n++;
}


static int64_t stage_count(derived_lookup_fn lookup, void *ctx, const char *stage)
{
    char name[STAGE_NAME_MAX + 8];
    snprintf(name, sizeof name, "stage:%s", stage);
    return lookup(ctx, name);
}

int derived_compute(const struct config_stage *stages, size_t n_stages, derived_lookup_fn lookup,
                    void *ctx, derived_t *out, char *err, size_t errlen)
{
    out->n = 0;
    if (n_stages > 64)
        return log_errbuf(err, errlen, "derived: more than 64 stages");
    for (size_t i = 0; i < n_stages; i++)
        if (!stages[i].name || strlen(stages[i].name) > STAGE_NAME_MAX)
            return log_errbuf(err, errlen, "derived: stages[%zu]: name must be at most %d bytes", i,
                        STAGE_NAME_MAX);

    int64_t won = lookup(ctx, "deals_won"), lost = lookup(ctx, "deals_lost"), closed, won_days;
    if (!__builtin_add_overflow(won, lost, &closed))
        add_figure(out, "win_rate", won, closed);
    add_figure(out, "avg_deal_cents", lookup(ctx, "revenue_won_cents"), won);
    /* won x 86400 overflows only past 10^14 deals won; the figure is then left out. */
    if (!__builtin_mul_overflow(won, (int64_t)SECONDS_PER_DAY, &won_days))
        add_figure(out, "avg_cycle_days", lookup(ctx, "cycle_seconds_won"), won_days);

    const char *from = NULL, *won_stage = NULL;
    char field[DERIVED_FIELD_MAX];
    for (size_t i = 0; i < n_stages; i++) {
        if (stages[i].terminal) {
            if (strcmp(stages[i].name, "won") == 0)
                won_stage = stages[i].name;
            continue;
        }
        if (from) {
            snprintf(field, sizeof field, "conv:%s>%s", from, stages[i].name);
            add_figure(out, field, stage_count(lookup, ctx, stages[i].name),
                       stage_count(lookup, ctx, from));
        }
        from = stages[i].name;
    }
    if (from && won_stage) {
        snprintf(field, sizeof field, "conv:%s>%s", from, won_stage);
        add_figure(out, field, stage_count(lookup, ctx, won_stage), stage_count(lookup, ctx, from));
    }

    int64_t first = lookup(ctx, "meetings_first");
    add_figure(out, "touches_per_first_meeting", lookup(ctx, "touches"), first);
    add_figure(out, "next_step_rate", lookup(ctx, "meetings_next_step"), first);
    return 0;
}
