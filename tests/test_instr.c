/*
 * Instruction counts (instr.c): the "instructions" section of a results file
 * round-trips and is optional, a malformed one is a parse error naming the
 * field, and the verdict rules: step and phases against the tolerance (a
 * phase in percent of the step), only with counts on both sides, times
 * measured under callgrind not judged.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "instr.h"
#include "results.h"
#include "verdict.h"

#define N 5

static struct oomb_instr *make_instr(int64_t fwd, int64_t bwd, int64_t upd, int64_t other)
{
    struct oomb_instr *in = calloc(1, sizeof *in);
    cr_assert_not_null(in);
    in->n_steps = N;
    in->samples = calloc(N, sizeof(int64_t));
    const int64_t per[OOMB_PHASE_COUNT] = {other, fwd, bwd, upd};
    for (int p = 0; p < OOMB_PHASE_COUNT; p++) {
        in->phase[p] = calloc(N, sizeof(int64_t));
        for (int i = 0; i < N; i++) {
            in->phase[p][i] = per[p] + i; /* a little jitter */
            in->samples[i] += in->phase[p][i];
        }
    }
    in->blas_core = strdup("Sandybridge");
    in->blas_coretype = strdup("Sandybridge");
    return in;
}

static void make_results(struct oomb_results *r, struct oomb_instr *in, double step_ns)
{
    memset(r, 0, sizeof *r);
    r->device_class = strdup("cpu-test");
    struct oomb_run_result *run = oomb_results_add_run(r);
    cr_assert_not_null(run);
    run->scenario = strdup("s");
    run->strategy = strdup("none");
    run->plugin = strdup("none");
    run->reason = strdup("");
    run->mode = OOMB_MODE_TRAIN;
    run->backend = OOMB_BACKEND_CPU;
    run->batch = 64;
    run->outcome = OOMB_OUTCOME_OK;
    run->n_steps = N;
    run->step_ns = malloc(N * sizeof *run->step_ns);
    for (int i = 0; i < N; i++)
        run->step_ns[i] = (int64_t)step_ns + i * 1000;
    run->instr = in;
}

static const struct oomb_verdict_item *find(const struct oomb_verdict *v, const char *m)
{
    for (int i = 0; i < v->n; i++)
        if (strcmp(v->items[i].metric, m) == 0)
            return &v->items[i];
    return NULL;
}

static void judge(struct oomb_results *a, struct oomb_results *b, double tol,
                  struct oomb_verdict *v)
{
    struct oomb_verdict_options o;
    oomb_verdict_options_init(&o);
    if (tol >= 0)
        o.instr_tol_pct = tol;
    cr_assert_eq(oomb_verdict_compare(a, 1, b, 1, &o, v), OOMB_OK);
}

Test(instr, section_round_trips_and_is_optional)
{
    char dir[] = "/tmp/oomb-instr-test.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[128], err[512] = "";
    snprintf(path, sizeof path, "%s/r.json", dir);
    struct oomb_results r, back;
    make_results(&r, make_instr(500000, 700000, 100000, 20000), 1e6);
    cr_assert_eq(oomb_results_write(&r, path, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_eq(oomb_results_read(path, &back, err, sizeof err), OOMB_OK, "%s", err);
    const struct oomb_instr *a = r.runs[0].instr, *b = back.runs[0].instr;
    cr_assert_not_null(b);
    cr_assert_eq(b->n_steps, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(b->samples[i], a->samples[i]);
        for (int p = 0; p < OOMB_PHASE_COUNT; p++)
            cr_assert_eq(b->phase[p][i], a->phase[p][i]);
    }
    cr_assert_str_eq(b->blas_core, "Sandybridge");
    oomb_results_free(&back);

    /* Without counts: no section, and read back as none. */
    oomb_instr_destroy(r.runs[0].instr);
    r.runs[0].instr = NULL;
    cr_assert_eq(oomb_results_write(&r, path, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_eq(oomb_results_read(path, &back, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_null(back.runs[0].instr);
    oomb_results_free(&back);
    oomb_results_free(&r);
    unlink(path);
    rmdir(dir);
}

Test(instr, malformed_section_names_the_field)
{
    char err[256] = "";
    struct oomb_instr *in = NULL;
    json_error_t je;
    json_t *v = json_loads("{\"unit\": \"Ir\", \"samples\": [1, 2], \"phases\": "
                           "{\"forward\": {\"samples\": [1]}}}",
                           0, &je);
    cr_assert_not_null(v);
    cr_assert_eq(oomb_instr_from_json(v, 2, &in, err, sizeof err), OOMB_ERR_PARSE);
    cr_assert_null(in);
    cr_assert(strstr(err, "instructions.phases.forward") != NULL, "%s", err);
    json_decref(v);
    v = json_loads("{\"unit\": \"Ir\", \"samples\": [1, -2]}", 0, &je);
    cr_assert_eq(oomb_instr_from_json(v, 2, &in, err, sizeof err), OOMB_ERR_PARSE);
    json_decref(v);
    v = json_loads("{\"unit\": \"ns\", \"samples\": [1]}", 0, &je);
    cr_assert_eq(oomb_instr_from_json(v, 1, &in, err, sizeof err), OOMB_ERR_PARSE);
    json_decref(v);
}

Test(instr, more_work_regresses_less_improves_jitter_is_same)
{
    struct oomb_results a, b, c, d;
    struct oomb_verdict v;
    make_results(&a, make_instr(500000, 700000, 100000, 20000), 1e6);
    /* +2% on forward = +0.76% of the step: step and forward regress. */
    make_results(&b, make_instr(510000, 700000, 100000, 20000), 1e6);
    judge(&a, &b, -1, &v);
    cr_assert_eq(find(&v, "instructions.step")->kind, OOMB_VERDICT_REGRESSED);
    cr_assert_eq(find(&v, "instructions.forward")->kind, OOMB_VERDICT_REGRESSED);
    cr_assert_eq(find(&v, "instructions.backward")->kind, OOMB_VERDICT_SAME);
    cr_assert_float_eq(find(&v, "instructions.forward")->change_pct, 2.0, 1e-3);
    cr_assert_eq(v.n_regressed, 2);
    oomb_verdict_free(&v);
    /* The other way round: improvements. */
    judge(&b, &a, -1, &v);
    cr_assert_eq(find(&v, "instructions.step")->kind, OOMB_VERDICT_IMPROVED);
    cr_assert_eq(v.n_regressed, 0);
    oomb_verdict_free(&v);
    /* +10% on the small `other` phase (+2000 Ir, 0.15% of the step): same. */
    make_results(&c, make_instr(500000, 700000, 100000, 22000), 1e6);
    judge(&a, &c, -1, &v);
    cr_assert_eq(find(&v, "instructions.other")->kind, OOMB_VERDICT_SAME);
    cr_assert_eq(v.n_regressed, 0);
    oomb_verdict_free(&v);
    /* ... unless the tolerance is below its share of the step. */
    judge(&a, &c, 0.1, &v);
    cr_assert_eq(find(&v, "instructions.other")->kind, OOMB_VERDICT_REGRESSED);
    oomb_verdict_free(&v);
    /* Times 3x slower under callgrind on one side: not judged. */
    make_results(&d, make_instr(500000, 700000, 100000, 20000), 3e6);
    judge(&a, &d, -1, &v);
    cr_assert_eq(v.n_regressed, 0);
    cr_assert_null(find(&v, "time.step"));
    cr_assert_eq(find(&v, "time")->kind, OOMB_VERDICT_NA);
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
    oomb_results_free(&c);
    oomb_results_free(&d);
}

Test(instr, counts_on_one_side_only_are_not_compared)
{
    struct oomb_results a, b;
    struct oomb_verdict v;
    make_results(&a, make_instr(500000, 700000, 100000, 20000), 1e6);
    make_results(&b, NULL, 1e6);
    judge(&a, &b, -1, &v);
    cr_assert_null(find(&v, "instructions.step"));
    cr_assert_eq(find(&v, "time")->kind, OOMB_VERDICT_NA);
    cr_assert_null(find(&v, "time.step"));
    oomb_verdict_free(&v);
    /* Neither side: the time verdicts as before, no instruction rows. */
    oomb_instr_destroy(a.runs[0].instr);
    a.runs[0].instr = NULL;
    judge(&a, &b, -1, &v);
    cr_assert_not_null(find(&v, "time.step"));
    cr_assert_null(find(&v, "time"));
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

Test(instr, median_and_judge)
{
    const int64_t odd[] = {5, 1, 3}, even[] = {4, 1, 3, 2};
    cr_assert_float_eq(oomb_instr_median(odd, 3), 3.0, 1e-12);
    cr_assert_float_eq(oomb_instr_median(even, 4), 2.5, 1e-12);
    cr_assert(isnan(oomb_instr_median(odd, 0)));
    double c;
    cr_assert_eq(oomb_instr_judge(1000, 1004, 1000, 0.5, &c), 0);
    cr_assert_eq(oomb_instr_judge(1000, 1006, 1000, 0.5, &c), 1);
    cr_assert_eq(oomb_instr_judge(1000, 994, 1000, 0.5, &c), -1);
    cr_assert_eq(oomb_instr_judge(0, 10, 1000, 0.5, &c), 1);
    cr_assert(isnan(c));
}
