/* score: the weighted KPI score and bonus of contract section 7. Pure.
 *
 *   fulfilment(metric) = 100 x actual / target          (over the score's period)
 *   coef(metric)       = coef of the highest band reached: a band {from F} is reached at
 *                        fulfilment >= F, a band {above A} at fulfilment > A; 0 below all
 *   kpi_score          = sum of weight x coef
 *   bonus              = budget x kpi_score, rounded half away from zero to 2 decimals
 *
 * A metric without a positive target has no fulfilment and adds 0. Comparisons with the
 * band thresholds are exact (100 x actual against threshold x target in integers, the
 * threshold taken to 4 decimals), so 80 of 100 reaches "from 80" whatever binary doubles
 * would say. Not wired into the daemon yet (the alerting issue does that). */
#ifndef KPI_SCORE_H
#define KPI_SCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct score_band {
    double threshold;  /* percent */
    bool above;        /* true: "above" (strictly greater), false: "from" (at least) */
    double coef;
} score_band_t;

typedef struct score_input {
    double weight;
    int64_t target;    /* for the score's period */
    int64_t actual;
} score_input_t;

typedef struct score_result {
    char kpi_score[32]; /* decimal, at most 4 fraction digits */
    char bonus[32];     /* decimal, at most 2 fraction digits */
} score_result_t;

/* 0, or -1 and err when a band's threshold or coef is negative or not finite. */
int score_compute(const score_input_t *inputs, size_t n_inputs, const score_band_t *bands,
                  size_t n_bands, double budget, score_result_t *out, char *err, size_t errlen);

/* The coefficient one fulfilment earns (exposed for tests). */
double score_coef(int64_t actual, int64_t target, const score_band_t *bands, size_t n_bands);

#endif
