#include "score.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"

/* 100 x actual >= (or >) threshold x target, with the threshold taken to 4 decimals. */
static bool reaches(int64_t actual, int64_t target, const score_band_t *band)
{
    long long t4 = llround(band->threshold * 10000.0);
    __int128 lhs = (__int128)actual * 100 * 10000, rhs = (__int128)t4 * target;
    return band->above ? lhs > rhs : lhs >= rhs;
}

double score_coef(int64_t actual, int64_t target, const score_band_t *bands, size_t n_bands)
{
    if (target <= 0)
        return 0;
    double best_threshold = -1, coef = 0;
    for (size_t i = 0; i < n_bands; i++) {
        /* "above X" ranks just past "from X" at the same X */
        double rank = bands[i].threshold + (bands[i].above ? 1e-9 : 0);
        if (reaches(actual, target, &bands[i]) && rank > best_threshold) {
            best_threshold = rank;
            coef = bands[i].coef;
        }
    }
    return coef;
}

/* v rounded half away from zero to `digits` decimals, trailing zeros trimmed. */
static void format_decimal(long double v, int digits, char *buf, size_t size)
{
    long double scale = digits == 2 ? 100.0L : 10000.0L;
    long long scaled = llroundl(v * scale);
    long long whole = scaled / (long long)scale, frac = llabs(scaled % (long long)scale);
    int pos = snprintf(buf, size, "%s%lld", scaled < 0 && whole == 0 ? "-" : "", whole);
    if (frac && pos > 0 && (size_t)pos < size) {
        int width = digits;
        while (frac % 10 == 0) {
            frac /= 10;
            width--;
        }
        snprintf(buf + pos, size - (size_t)pos, ".%0*lld", width, frac);
    }
}

int score_compute(const score_input_t *inputs, size_t n_inputs, const score_band_t *bands,
                  size_t n_bands, double budget, score_result_t *out, char *err, size_t errlen)
{
    for (size_t i = 0; i < n_bands; i++)
        if (!isfinite(bands[i].threshold) || bands[i].threshold < 0 || !isfinite(bands[i].coef) ||
            bands[i].coef < 0)
            return log_errbuf(err, errlen, "kpi_score: band %zu: threshold and coef must be "
                                           "finite and not negative", i + 1);
    long double score = 0;
    for (size_t i = 0; i < n_inputs; i++)
        score += (long double)inputs[i].weight *
                 score_coef(inputs[i].actual, inputs[i].target, bands, n_bands);
    format_decimal(score, 4, out->kpi_score, sizeof out->kpi_score);
    format_decimal((long double)budget * score, 2, out->bonus, sizeof out->bonus);
    return 0;
}
