/*
 * The `distill` strategy through the runner: scenarios/distill.yaml (teacher
 * MLP 64-256-256-10 trained by `none`, student 64-128-10) with the exact
 * memory split between teacher and student, the teacher taken from none's
 * final weights, the student's quality; the fallback without a `none` run;
 * not applicable in infer; parameter validation.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "test_helpers.h"

#define BATCH 256

static double metric(const struct oomb_run_result *r, const char *name)
{
    for (int i = 0; i < r->n_metrics; i++)
        if (strcmp(r->metrics[i].name, name) == 0)
            return r->metrics[i].value;
    cr_assert_fail("%s: no metric %s", r->strategy, name);
    return NAN;
}

Test(distill, student_learns_from_none_teacher_with_exact_memory, .timeout = 120)
{
    char dir[PATH_MAX], err[2048] = "";
    struct oomb_results res;
    struct oomb_run_summary sum;
    th_mkdtemp(dir, sizeof dir);
    cr_assert_eq(
        th_run(dir, OOMB_SOURCE_DIR "/scenarios/distill.yaml", &res, &sum, err, sizeof err),
        OOMB_OK, "%s", err);
    cr_assert_eq(sum.n_failed, 0);
    cr_assert_eq(sum.n_checks_failed, 0, "a check of scenarios/distill.yaml failed");

    const struct oomb_run_result *n = th_find(&res, "none", OOMB_MODE_TRAIN, BATCH);
    const struct oomb_run_result *d = th_find(&res, "distill", OOMB_MODE_TRAIN, BATCH);
    const struct oomb_run_result *alone = th_find(&res, "student_only", OOMB_MODE_TRAIN, BATCH);
    cr_assert_eq(d->outcome, OOMB_OUTCOME_OK, "%s", d->reason);
    const uint64_t Pt = 64 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10;
    const uint64_t Ps = 64 * 128 + 128 + 128 * 10 + 10;
    cr_assert_eq(n->peak_by_tag[OOMB_TAG_WEIGHTS], 4 * Pt);
    cr_assert_float_eq(metric(d, "teacher_weight_bytes"), 4.0 * Pt, 0.5);
    cr_assert_float_eq(metric(d, "student_weight_bytes"), 4.0 * Ps, 0.5);
    cr_assert_eq(d->peak_by_tag[OOMB_TAG_WEIGHTS], 4 * (Pt + Ps));
    cr_assert_eq(d->peak_by_tag[OOMB_TAG_GRADS], 4 * Ps);
    cr_assert_eq(d->peak_by_tag[OOMB_TAG_OPTIMIZER], 8 * Ps);
    /* the teacher's forward is the largest transient: input + two 256-wide layers */
    cr_assert_eq(d->peak_by_tag[OOMB_TAG_ACTIVATIONS], 4 * BATCH * (64 + 256 + 256));
    cr_assert_lt(d->peak_bytes, n->peak_bytes);

    cr_assert_float_eq(metric(d, "teacher_from_none"), 1.0, 0);
    double ta = metric(d, "teacher_accuracy");
    cr_expect_geq(ta, 0.8, "teacher accuracy %g", ta);
    cr_expect(d->has_accuracy && d->accuracy > 0.3 && d->accuracy <= ta, "student %g, teacher %g",
              d->accuracy, ta);
    cr_expect_geq(d->accuracy_delta, -0.2);
    /* the soft targets help: lower final loss than the same student on labels alone */
    cr_expect_lt(d->final_loss, alone->final_loss, "%g vs %g", d->final_loss, alone->final_loss);
    cr_expect(isfinite(metric(d, "distill_loss")));
    oomb_results_free(&res);
    th_rmtree(dir);
}

#define SMALL                                                                                      \
    "model: {input: 16, classes: 4, layers: [{linear: 32}, relu, {linear: 4}]}\n"                  \
    "input: {kind: synthetic, seed: 5}\nbatch: 8\nsteps: {warmup: 1, measured: 3}\n"

static void run_small(char *dir, size_t dlen, const char *text, struct oomb_results *r)
{
    char path[PATH_MAX], err[2048] = "";
    struct oomb_run_summary sum;
    th_mkdtemp(dir, dlen);
    th_write(dir, "small.yaml", text, path, sizeof path);
    cr_assert_eq(th_run(dir, path, r, &sum, err, sizeof err), OOMB_OK, "%s", err);
}

Test(distill, falls_back_to_seeded_teacher_without_none, .timeout = 60)
{
    char dir[PATH_MAX];
    struct oomb_results r;
    run_small(dir, sizeof dir,
              SMALL "strategies:\n  - {plugin: distill, params: {student_hidden: \"8\"}}\n", &r);
    const struct oomb_run_result *d = th_find(&r, "distill", OOMB_MODE_TRAIN, 8);
    cr_assert_eq(d->outcome, OOMB_OUTCOME_OK, "%s", d->reason);
    cr_assert_float_eq(metric(d, "teacher_from_none"), 0.0, 0);
    oomb_results_free(&r);
    th_rmtree(dir);
}

Test(distill, is_not_applicable_in_infer, .timeout = 60)
{
    char dir[PATH_MAX];
    struct oomb_results r;
    run_small(dir, sizeof dir, SMALL "mode: infer\nstrategies: [none, distill]\n", &r);
    cr_assert_eq(th_find(&r, "distill", OOMB_MODE_INFER, 8)->outcome, OOMB_OUTCOME_NOT_APPLICABLE);
    oomb_results_free(&r);
    th_rmtree(dir);
}

Test(distill, rejects_bad_parameters, .timeout = 60)
{
    /* a malformed width list is the plugin's to find: the run fails */
    char dir[PATH_MAX];
    struct oomb_results r;
    run_small(dir, sizeof dir,
              SMALL "strategies:\n  - none\n"
                    "  - {plugin: distill, label: widths, params: {student_hidden: \"8,x\"}}\n",
              &r);
    const struct oomb_run_result *x = th_find(&r, "widths", OOMB_MODE_TRAIN, 8);
    cr_assert_eq(x->outcome, OOMB_OUTCOME_ERROR);
    cr_assert(strstr(x->reason, "student_hidden"), "%s", x->reason);
    oomb_results_free(&r);
    th_rmtree(dir);
    /* out of the declared ranges: refused when the scenario loads, nothing runs */
    th_expect_load_rejected(SMALL "strategies:\n  - {plugin: distill, params: {temperature: 0}}\n",
                            "temperature", "must be > 0");
    th_expect_load_rejected(SMALL "strategies:\n  - {plugin: distill, params: {alpha: 1.5}}\n",
                            "alpha", "must be [0, 1]");
}
