/* KPI score and bonus (contract section 7) with hand-worked numbers and band edges.
 * Bands as in the contract: from 80 -> 0.9, from 100 -> 1.0, above 120 -> 1.2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "score.h"

static const score_band_t bands[] = {{80, false, 0.9}, {100, false, 1.0}, {120, true, 1.2}};
static char err[128];

static void test_band_edges(void **state)
{
    (void)state;
    assert_true(score_coef(7999, 10000, bands, 3) == 0);    /* 79.99 %: below every band */
    assert_true(score_coef(80, 100, bands, 3) == 0.9);      /* from 80 reached at 80 */
    assert_true(score_coef(99, 100, bands, 3) == 0.9);
    assert_true(score_coef(100, 100, bands, 3) == 1.0);
    assert_true(score_coef(120, 100, bands, 3) == 1.0);     /* above 120 needs more */
    assert_true(score_coef(12001, 10000, bands, 3) == 1.2);
    assert_true(score_coef(5, 0, bands, 3) == 0);            /* no target */
    /* Order of the bands does not matter, nor binary fractions: 7 of 8.75 is exactly 80 %. */
    const score_band_t shuffled[] = {{120, true, 1.2}, {80, false, 0.9}, {100, false, 1.0}};
    assert_true(score_coef(280, 350, shuffled, 3) == 0.9);
    const score_band_t odd[] = {{33.3333, false, 0.5}};
    assert_true(score_coef(1, 3, odd, 1) == 0.5);           /* 33.33333.. >= 33.3333 */
}

/* meetings 18 of 20 (90 %: 0.9) x 0.45 + touches 840 of 800 (105 %: 1.0) x 0.30 +
 * proposals 10 of 8 (125 %: 1.2) x 0.25 = 0.405 + 0.3 + 0.3 = 1.005; bonus 30000 x 1.005. */
static void test_score_and_bonus(void **state)
{
    (void)state;
    const score_input_t in[] = {{0.45, 20, 18}, {0.30, 800, 840}, {0.25, 8, 10}};
    score_result_t r;
    assert_int_equal(score_compute(in, 3, bands, 3, 30000, &r, err, sizeof err), 0);
    assert_string_equal(r.kpi_score, "1.005");
    assert_string_equal(r.bonus, "30150");
    /* Nothing reached: 0 and 0 */
    const score_input_t low[] = {{0.45, 20, 1}, {0.55, 0, 10}};
    assert_int_equal(score_compute(low, 2, bands, 3, 30000, &r, err, sizeof err), 0);
    assert_string_equal(r.kpi_score, "0");
    assert_string_equal(r.bonus, "0");
    /* Bonus rounding: 1 x 0.005 -> 0.01 (half away from zero); score 1/3 x 0.9 */
    const score_input_t third[] = {{1.0 / 3, 100, 80}};
    assert_int_equal(score_compute(third, 1, bands, 3, 1, &r, err, sizeof err), 0);
    assert_string_equal(r.kpi_score, "0.3");
    assert_string_equal(r.bonus, "0.3");
    const score_input_t tiny[] = {{0.005, 100, 100}};
    assert_int_equal(score_compute(tiny, 1, bands, 3, 1, &r, err, sizeof err), 0);
    assert_string_equal(r.kpi_score, "0.005");
    assert_string_equal(r.bonus, "0.01");
    const score_band_t bad[] = {{-1, false, 1}};
    assert_int_equal(score_compute(in, 3, bad, 1, 1, &r, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_band_edges),
        cmocka_unit_test(test_score_and_bonus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
