/*
 * The verdict engine (verdict.c) and its reports (export.c): exact memory
 * verdicts per tag, outcomes, the statistical time verdict, quality, runs
 * without a baseline, JUnit XML and the Google Benchmark JSON shape.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "baseline.h"
#include "calibrate.h"
#include "export.h"
#include "results.h"
#include "verdict.h"

#define N_SAMPLES 30

/* Samples around `center` ns with about 1% multiplicative noise, seeded. */
static void fill_samples(int64_t *s, int n, double center, unsigned seed)
{
    srand(seed);
    for (int i = 0; i < n; i++) {
        double u = (double)rand() / RAND_MAX - 0.5;
        s[i] = (int64_t)(center * (1.0 + 0.02 * u));
    }
}

/* Add one ok run of scenario "s", strategy "none" to r. */
static void add_run(struct oomb_results *r, double center, unsigned seed)
{
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
    uint64_t tags[OOMB_TAG_COUNT] = {4096, 4096, 8192, 100000, 0, 256};
    run->peak_bytes = 0;
    for (int t = 0; t < OOMB_TAG_COUNT; t++) {
        run->peak_by_tag[t] = tags[t];
        run->peak_bytes += tags[t];
    }
    run->n_steps = N_SAMPLES;
    run->step_ns = malloc(N_SAMPLES * sizeof *run->step_ns);
    cr_assert_not_null(run->step_ns);
    fill_samples(run->step_ns, N_SAMPLES, center, seed);
    run->final_loss = 2.0;
    run->has_accuracy = 1;
    run->accuracy = 0.5;
}

/* One results set with one ok run of scenario "s", strategy "none". */
static void make_results(struct oomb_results *r, double center, unsigned seed)
{
    memset(r, 0, sizeof *r);
    r->device_class = strdup("cpu-test");
    add_run(r, center, seed);
}

static int count_metric(const struct oomb_verdict *v, const char *m);

static const struct oomb_verdict_item *find_item(const struct oomb_verdict *v, const char *m)
{
    for (int i = 0; i < v->n; i++)
        if (strcmp(v->items[i].metric, m) == 0)
            return &v->items[i];
    return NULL;
}

static void compare(const struct oomb_results *a, const struct oomb_results *b,
                    struct oomb_verdict *v)
{
    struct oomb_verdict_options o;
    oomb_verdict_options_init(&o);
    cr_assert_eq(oomb_verdict_compare(a, 1, b, 1, &o, v), OOMB_OK);
}

Test(verdict, identical_results_no_regression)
{
    struct oomb_results a, b;
    struct oomb_verdict v;
    make_results(&a, 1e6, 1);
    make_results(&b, 1e6, 1);
    compare(&a, &b, &v);
    cr_assert_eq(v.n_regressed, 0);
    cr_assert_eq(v.n_improved, 0);
    const struct oomb_verdict_item *t = find_item(&v, "time.step");
    cr_assert_not_null(t);
    cr_assert_eq(t->kind, OOMB_VERDICT_SAME);
    cr_assert_float_eq(t->change_pct, 0.0, 1e-9);
    cr_assert_gt(t->p, 0.5);
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

Test(verdict, one_byte_in_one_tag_flags_exactly_that_tag)
{
    struct oomb_results a, b;
    struct oomb_verdict v;
    make_results(&a, 1e6, 1);
    make_results(&b, 1e6, 2);
    b.runs[0].peak_by_tag[OOMB_TAG_OPTIMIZER] += 1;
    compare(&a, &b, &v);
    int mem_regressions = 0;
    for (int i = 0; i < v.n; i++)
        if (v.items[i].area == OOMB_AREA_MEMORY && v.items[i].kind == OOMB_VERDICT_REGRESSED) {
            mem_regressions++;
            cr_assert_str_eq(v.items[i].metric, "memory.optimizer");
            cr_assert_float_eq(v.items[i].diff, 1.0, 1e-12);
        }
    cr_assert_eq(mem_regressions, 1);
    cr_assert_eq(v.n_regressed, 1);
    oomb_verdict_free(&v);

    /* Within a tolerance it is not a regression; a drop is an improvement. */
    struct oomb_verdict_options o;
    oomb_verdict_options_init(&o);
    o.mem_tolerance = 1;
    cr_assert_eq(oomb_verdict_compare(&a, 1, &b, 1, &o, &v), OOMB_OK);
    cr_assert_eq(v.n_regressed, 0);
    oomb_verdict_free(&v);
    compare(&b, &a, &v);
    cr_assert_eq(v.n_regressed, 0);
    cr_assert_eq(find_item(&v, "memory.optimizer")->kind, OOMB_VERDICT_IMPROVED);
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

Test(verdict, total_change_is_named)
{
    struct oomb_results a, b;
    struct oomb_verdict v;
    make_results(&a, 1e6, 1);
    make_results(&b, 1e6, 1);
    b.runs[0].peak_bytes += 8;
    compare(&a, &b, &v);
    cr_assert_eq(v.n_regressed, 1);
    cr_assert_eq(find_item(&v, "memory.total")->kind, OOMB_VERDICT_REGRESSED);
    cr_assert(strstr(find_item(&v, "memory.total")->detail, "+8 B"));
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

Test(verdict, no_baseline_is_not_a_failure)
{
    struct oomb_results empty = {0}, b;
    struct oomb_verdict v;
    make_results(&b, 1e6, 1);
    compare(&empty, &b, &v);
    cr_assert_eq(v.n_regressed, 0);
    cr_assert_eq(v.n_new, 1);
    cr_assert_eq(v.items[0].kind, OOMB_VERDICT_NEW);
    oomb_verdict_free(&v);
    oomb_results_free(&b);
}

Test(verdict, outcome_ok_to_crash_regresses)
{
    struct oomb_results a, b;
    struct oomb_verdict v;
    make_results(&a, 1e6, 1);
    make_results(&b, 1e6, 1);
    b.runs[0].outcome = OOMB_OUTCOME_CRASH;
    compare(&a, &b, &v);
    cr_assert_eq(v.n_regressed, 1);
    cr_assert_eq(find_item(&v, "outcome")->kind, OOMB_VERDICT_REGRESSED);
    oomb_verdict_free(&v);
    b.runs[0].outcome = OOMB_OUTCOME_OOM;
    compare(&a, &b, &v);
    cr_assert_eq(find_item(&v, "outcome")->kind, OOMB_VERDICT_REGRESSED);
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

Test(verdict, slowdown_of_20_percent_regresses)
{
    struct oomb_results a, b;
    struct oomb_verdict v;
    make_results(&a, 1e6, 1);
    make_results(&b, 1.2e6, 2);
    compare(&a, &b, &v);
    const struct oomb_verdict_item *t = find_item(&v, "time.step");
    cr_assert_eq(t->kind, OOMB_VERDICT_REGRESSED);
    cr_assert_float_eq(t->change_pct, 20.0, 2.0);
    cr_assert_gt(t->ci_low_pct, 5.0);
    cr_assert_lt(t->p, 0.05);
    cr_assert_eq(find_item(&v, "throughput")->kind, OOMB_VERDICT_REGRESSED);
    cr_assert_eq(v.n_regressed, 2);
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

Test(verdict, slowdown_below_threshold_is_not_a_regression)
{
    struct oomb_results a, b;
    struct oomb_verdict v;
    make_results(&a, 1e6, 1);
    make_results(&b, 1.03e6, 2);
    compare(&a, &b, &v);
    const struct oomb_verdict_item *t = find_item(&v, "time.step");
    cr_assert_lt(t->p, 0.05, "significant, but within the 5%% noise threshold");
    cr_assert_eq(t->kind, OOMB_VERDICT_SAME);
    cr_assert_eq(v.n_regressed, 0);
    oomb_verdict_free(&v);

    /* A 2% threshold (the GPU default, or --noise 2) catches it. */
    struct oomb_verdict_options o;
    oomb_verdict_options_init(&o);
    const char *names[] = {"step"};
    const double vals[] = {2.0};
    o.noise_names = names;
    o.noise_values = vals;
    o.n_noise = 1;
    cr_assert_eq(oomb_verdict_compare(&a, 1, &b, 1, &o, &v), OOMB_OK);
    cr_assert_eq(find_item(&v, "time.step")->kind, OOMB_VERDICT_REGRESSED);
    cr_assert_eq(find_item(&v, "throughput")->kind, OOMB_VERDICT_SAME);
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

Test(verdict, time_test_is_deterministic_and_paired_by_round)
{
    int64_t a0[N_SAMPLES], a1[N_SAMPLES], b0[N_SAMPLES], b1[N_SAMPLES];
    /* Round 1 runs 30% slower on both sides (machine drift); head is 10%
     * slower than base within each round. */
    fill_samples(a0, N_SAMPLES, 1e6, 1);
    fill_samples(b0, N_SAMPLES, 1.1e6, 2);
    fill_samples(a1, N_SAMPLES, 1.3e6, 3);
    fill_samples(b1, N_SAMPLES, 1.43e6, 4);
    const int64_t *a[2] = {a0, a1}, *b[2] = {b0, b1};
    int n[2] = {N_SAMPLES, N_SAMPLES};
    struct oomb_time_test t1, t2;
    cr_assert_eq(oomb_verdict_time_test(a, n, b, n, 2, 0.05, &t1), OOMB_OK);
    cr_assert_eq(oomb_verdict_time_test(a, n, b, n, 2, 0.05, &t2), OOMB_OK);
    cr_assert_eq(memcmp(&t1, &t2, sizeof t1), 0);
    cr_assert_float_eq(t1.change_pct, 10.0, 1.0);
    cr_assert_lt(t1.p, 0.001);
    cr_assert_gt(t1.ci_low_pct, 5.0);
}

Test(verdict, quality_tolerances)
{
    struct oomb_results a, b;
    struct oomb_verdict v;
    make_results(&a, 1e6, 1);
    make_results(&b, 1e6, 1);
    b.runs[0].final_loss = 2.03; /* +1.5%: within 2% */
    b.runs[0].accuracy = 0.495;  /* -0.005: within 0.01 */
    a.runs[0].grad_rel_err = 1e-6;
    b.runs[0].grad_rel_err = 1e-3;
    compare(&a, &b, &v);
    cr_assert_eq(find_item(&v, "quality.final_loss")->kind, OOMB_VERDICT_SAME);
    cr_assert_eq(find_item(&v, "quality.accuracy")->kind, OOMB_VERDICT_SAME);
    cr_assert_eq(find_item(&v, "numerics.grad_rel_err")->kind, OOMB_VERDICT_REGRESSED);
    oomb_verdict_free(&v);
    b.runs[0].final_loss = 2.1;
    b.runs[0].accuracy = 0.45;
    compare(&a, &b, &v);
    cr_assert_eq(find_item(&v, "quality.final_loss")->kind, OOMB_VERDICT_REGRESSED);
    cr_assert_eq(find_item(&v, "quality.accuracy")->kind, OOMB_VERDICT_REGRESSED);
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

Test(verdict, sort_puts_regressions_first)
{
    struct oomb_results a, b;
    struct oomb_verdict v;
    make_results(&a, 1e6, 1);
    make_results(&b, 1e6, 1);
    b.runs[0].peak_by_tag[OOMB_TAG_OTHER] += 4;
    compare(&a, &b, &v);
    oomb_verdict_sort(&v);
    cr_assert_eq(v.items[0].kind, OOMB_VERDICT_REGRESSED);
    cr_assert_str_eq(v.items[0].metric, "memory.other");
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

Test(verdict, junit_is_escaped_and_counts_failures)
{
    struct oomb_results a, b;
    struct oomb_verdict v;
    make_results(&a, 1e6, 1);
    make_results(&b, 1e6, 1);
    free(b.runs[0].strategy);
    free(a.runs[0].strategy);
    a.runs[0].strategy = strdup("a<b>&\"c'");
    b.runs[0].strategy = strdup("a<b>&\"c'");
    b.runs[0].peak_by_tag[OOMB_TAG_WEIGHTS] += 1;
    compare(&a, &b, &v);
    char path[] = "/tmp/oombench-junit-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    char err[512];
    cr_assert_eq(oomb_export_junit(&v, path, err, sizeof err), OOMB_OK, "%s", err);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import sys,xml.etree.ElementTree as E; r=E.parse(sys.argv[1])"
             ".getroot(); f=r.findall('.//failure'); c=r.findall('.//testcase');"
             " assert r.tag=='testsuites' and len(f)==1 and len(c)==%d, (len(f),len(c));"
             " assert c[0].get('classname').endswith('a<b>&\\\"c\\'')\" %s",
             v.n, path);
    cr_assert_eq(system(cmd), 0, "JUnit XML did not parse as expected");
    unlink(path);
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

Test(verdict, gbench_json_shape)
{
    struct oomb_results a;
    make_results(&a, 1e6, 1);
    a.host_name = strdup("host");
    char path[] = "/tmp/oombench-gbench-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    char err[512];
    cr_assert_eq(oomb_export_gbench(&a, 1, path, err, sizeof err), OOMB_OK, "%s", err);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    cr_assert_not_null(root, "%s", je.text);
    cr_assert(json_is_object(json_object_get(root, "context")));
    json_t *arr = json_object_get(root, "benchmarks");
    cr_assert_eq(json_array_size(arr), N_SAMPLES);
    json_t *b = json_array_get(arr, 0);
    cr_assert_str_eq(json_string_value(json_object_get(b, "name")), "s/train/batch:64/none/step");
    cr_assert_str_eq(json_string_value(json_object_get(b, "run_type")), "iteration");
    cr_assert_str_eq(json_string_value(json_object_get(b, "time_unit")), "ns");
    cr_assert_eq(json_integer_value(json_object_get(b, "iterations")), 1);
    cr_assert_float_eq(json_real_value(json_object_get(b, "real_time")),
                       (double)a.runs[0].step_ns[0], 1e-6);
    cr_assert(json_is_real(json_object_get(b, "cpu_time")));
    json_decref(root);
    unlink(path);
    oomb_results_free(&a);
}

/* ------------------------------------------ baselines of several runs --- */

Test(verdict, t_distribution_known_values)
{
    /* Tables of Student's t (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2). */
    cr_assert_float_eq(oomb_verdict_t_quantile(0.95, 4), 2.1318, 1e-4);
    cr_assert_float_eq(oomb_verdict_t_quantile(0.95, 9), 1.8331, 1e-4);
    cr_assert_float_eq(oomb_verdict_t_quantile(0.975, 1), 12.7062, 1e-4);
    cr_assert_float_eq(oomb_verdict_t_quantile(0.975, 30), 2.0423, 1e-4);
    cr_assert_float_eq(oomb_verdict_t_quantile(0.99, 2), 6.9646, 1e-4);
    cr_assert_float_eq(oomb_verdict_t_quantile(0.05, 4), -2.1318, 1e-4);
    cr_assert_float_eq(oomb_verdict_t_cdf(0, 3), 0.5, 1e-12);
    cr_assert_float_eq(oomb_verdict_t_cdf(2.1318, 4), 0.95, 1e-5);
    cr_assert_float_eq(oomb_verdict_t_cdf(-1.8331, 9), 0.05, 1e-5);
    /* One degree of freedom is the Cauchy distribution: 1/2 + atan(t)/pi. */
    cr_assert_float_eq(oomb_verdict_t_cdf(3, 1), 0.5 + atan(3.0) / M_PI, 1e-10);
    /* Large df tends to the normal distribution. */
    cr_assert_float_eq(oomb_verdict_t_cdf(1.959964, 1e6), 0.975, 1e-5);
    cr_assert(isnan(oomb_verdict_t_quantile(1, 4)));
}

Test(verdict, runs_test_bound_and_p)
{
    /* log medians m +- s: at the bound the one-sided p is alpha. */
    double lm[5];
    const double f[5] = {0.95, 0.975, 1.0, 1.025, 1.05};
    for (int i = 0; i < 5; i++)
        lm[i] = log(1e6 * f[i]);
    struct oomb_runs_test t;
    double h1 = log(1e6);
    oomb_verdict_runs_test(lm, 5, &h1, 1, 0.05, &t);
    cr_assert_eq(t.k, 5);
    double m = 0;
    for (int i = 0; i < 5; i++)
        m += lm[i] / 5;
    cr_assert_float_eq(t.mean, exp(m), 1e-6 * exp(m));
    cr_assert(t.bound > 1.05e6 && t.bound < 1.15e6, "bound %g", t.bound);
    h1 = log(t.bound);
    oomb_verdict_runs_test(lm, 5, &h1, 1, 0.05, &t);
    cr_assert_float_eq(t.p, 0.05, 1e-6);
    cr_assert_float_eq(t.ci_low_pct, 0, 1e-6);
}

/* A baseline of the 5 runs at 0.95, 0.975, 1, 1.025 and 1.05 ms (a +-5%
 * spread between runs), compared with one head run at `head` ms. */
static void five_run_baseline(double head, struct oomb_verdict *v)
{
    struct oomb_results a, b;
    const double f[5] = {0.95, 0.975, 1.0, 1.025, 1.05};
    memset(&a, 0, sizeof a);
    a.device_class = strdup("cpu-test");
    for (int i = 0; i < 5; i++)
        add_run(&a, 1e6 * f[i], 10 + (unsigned)i);
    make_results(&b, 1e6 * head, 99);
    compare(&a, &b, v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

Test(verdict, five_run_baseline_plus_3_percent_is_not_a_regression)
{
    struct oomb_verdict v;
    five_run_baseline(1.03, &v);
    const struct oomb_verdict_item *it = find_item(&v, "time.step");
    cr_assert_not_null(it);
    /* One head run against a +-5% spread: the prediction interval is
     * +-9.6% wide, too wide to tell a 5% change either way. */
    cr_assert_eq(it->kind, OOMB_VERDICT_INCONCLUSIVE, "%s", it->detail);
    cr_assert(strstr(it->detail, "inconclusive: noise +-9.6"), "%s", it->detail);
    cr_assert_eq(v.n_inconclusive, 1 + 1, "step and throughput"); /* phases have no samples */
    cr_assert(strstr(it->detail, "5 base runs"), "%s", it->detail);
    cr_assert(it->change_pct > 1 && it->change_pct < 5, "%g", it->change_pct);
    cr_assert_eq(it->n_base, 5 * N_SAMPLES);
    cr_assert_eq(v.n_regressed, 0);
    /* Memory of the first run, compared once. */
    int mem = 0;
    for (int i = 0; i < v.n; i++)
        mem += strcmp(v.items[i].metric, "memory.total") == 0;
    cr_assert_eq(mem, 1);
    oomb_verdict_free(&v);
}

Test(verdict, five_run_baseline_plus_25_percent_regresses)
{
    struct oomb_verdict v;
    five_run_baseline(1.25, &v);
    const struct oomb_verdict_item *it = find_item(&v, "time.step");
    cr_assert_not_null(it);
    cr_assert_eq(it->kind, OOMB_VERDICT_REGRESSED, "%s", it->detail);
    cr_assert(it->p < 0.05, "%g", it->p);
    cr_assert(it->change_pct > 20 && it->change_pct < 30, "%g", it->change_pct);
    const struct oomb_verdict_item *tp = find_item(&v, "throughput");
    cr_assert_not_null(tp);
    cr_assert_eq(tp->kind, OOMB_VERDICT_REGRESSED, "%s", tp->detail);
    cr_assert(tp->change_pct < -15, "%g", tp->change_pct);
    oomb_verdict_free(&v);
    five_run_baseline(0.75, &v);
    cr_assert_eq(find_item(&v, "time.step")->kind, OOMB_VERDICT_IMPROVED);
    oomb_verdict_free(&v);
}

Test(verdict, two_run_baseline_keeps_the_one_run_test)
{
    struct oomb_results a, b;
    struct oomb_verdict v;
    make_results(&a, 1e6, 1);
    add_run(&a, 1.2e6, 2);
    make_results(&b, 1.25e6, 3);
    compare(&a, &b, &v);
    const struct oomb_verdict_item *it = find_item(&v, "time.step");
    cr_assert_not_null(it);
    cr_assert_null(strstr(it->detail, "base runs"), "%s", it->detail);
    cr_assert_eq(it->kind, OOMB_VERDICT_REGRESSED, "%s", it->detail); /* against the first */
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

Test(verdict, runs_test_two_samples)
{
    /* Base log medians +-2.5% around 1 ms, head the same shifted by +10%:
     * pooled s over df = k + m - 2, se = s sqrt(1/k + 1/m). */
    const double f[5] = {0.95, 0.975, 1.0, 1.025, 1.05};
    double lb[5], lh[5], ss = 0, mb = 0;
    for (int i = 0; i < 5; i++) {
        lb[i] = log(1e6 * f[i]);
        lh[i] = log(1.1e6 * f[i]);
        mb += lb[i] / 5;
    }
    for (int i = 0; i < 5; i++)
        ss += 2 * (lb[i] - mb) * (lb[i] - mb);
    struct oomb_runs_test t;
    oomb_verdict_runs_test(lb, 5, lh, 5, 0.05, &t);
    cr_assert_eq(t.df, 8);
    cr_assert_eq(t.m, 5);
    double se = sqrt(ss / 8) * sqrt(0.4);
    double margin = oomb_verdict_t_quantile(0.95, 8) * se;
    cr_assert_float_eq(t.change_pct, 10, 1e-9);
    cr_assert_float_eq(t.ci_low_pct, (1.1 * exp(-margin) - 1) * 100, 1e-9);
    cr_assert_float_eq(t.ci_high_pct, (1.1 * exp(margin) - 1) * 100, 1e-9);
    cr_assert_float_eq(t.head, 1.1 * exp(mb), 1e-6);
    cr_assert_float_eq(t.p, oomb_verdict_t_cdf(-log(1.1) / se, 8), 1e-12);
    /* m = 1 is the prediction bound of one more base run: s from the base
     * alone (df = k - 1), sqrt(1 + 1/k). */
    double h1 = mb;
    oomb_verdict_runs_test(lb, 5, &h1, 1, 0.05, &t);
    cr_assert_eq(t.df, 4);
    double s1 = sqrt(ss / 2 / 4);
    cr_assert_float_eq(t.bound, exp(mb + oomb_verdict_t_quantile(0.95, 4) * s1 * sqrt(1.2)), 1e-3);
    /* Fewer than 3 runs in all: no degrees of freedom, nothing decided. */
    oomb_verdict_runs_test(lb, 1, &h1, 1, 0.05, &t);
    cr_assert(isnan(t.change_pct) && isnan(t.p));
}

/* k base runs at 1 ms x f[i] and m head runs at `head` ms x f[i]. */
static void runs_vs_runs(int k, int m, double head, struct oomb_verdict *v)
{
    struct oomb_results a, b;
    const double f[5] = {0.95, 0.975, 1.0, 1.025, 1.05};
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.device_class = strdup("cpu-test");
    b.device_class = strdup("cpu-test");
    for (int i = 0; i < k; i++)
        add_run(&a, 1e6 * f[i % 5], 10 + (unsigned)i);
    for (int i = 0; i < m; i++)
        add_run(&b, 1e6 * head * f[i % 5], 50 + (unsigned)i);
    compare(&a, &b, v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

Test(verdict, several_head_runs_are_judged_together)
{
    struct oomb_verdict v;
    /* +12% is inside one head run's prediction bound against 5 base runs
     * with a +-5% spread, but not for the mean of 5 head runs. */
    runs_vs_runs(5, 1, 1.12, &v);
    cr_assert_eq(find_item(&v, "time.step")->kind, OOMB_VERDICT_INCONCLUSIVE, "%s",
                 find_item(&v, "time.step")->detail);
    oomb_verdict_free(&v);
    runs_vs_runs(5, 5, 1.12, &v);
    const struct oomb_verdict_item *it = find_item(&v, "time.step");
    cr_assert_not_null(it);
    cr_assert_eq(it->kind, OOMB_VERDICT_REGRESSED, "%s", it->detail);
    cr_assert(strstr(it->detail, "5 base runs, 5 head runs"), "%s", it->detail);
    cr_assert_eq(it->n_head, 5 * N_SAMPLES);
    cr_assert_float_eq(it->change_pct, 12, 0.5);
    /* One verdict per configuration, not one per head run. */
    cr_assert_eq(count_metric(&v, "time.step"), 1);
    cr_assert_eq(count_metric(&v, "memory.total"), 1);
    cr_assert_eq(count_metric(&v, "memory.repeat"), 0);
    oomb_verdict_free(&v);
    /* The same build on both sides: nothing. */
    runs_vs_runs(5, 5, 1.0, &v);
    cr_assert_eq(v.n_regressed, 0);
    cr_assert_eq(v.n_improved, 0);
    oomb_verdict_free(&v);
    /* A one-run baseline and 3 head runs: the head's spread alone (df 2). */
    runs_vs_runs(1, 3, 1.0, &v);
    cr_assert(strstr(find_item(&v, "time.step")->detail, "1 base runs, 3 head runs"), "%s",
              find_item(&v, "time.step")->detail);
    oomb_verdict_free(&v);
}

Test(verdict, head_runs_differing_in_memory_are_a_regression)
{
    struct oomb_results a, b;
    struct oomb_verdict v;
    make_results(&a, 1e6, 1);
    make_results(&b, 1e6, 2);
    add_run(&b, 1e6, 3);
    b.runs[1].peak_by_tag[OOMB_TAG_WORKSPACE] += 8;
    b.runs[1].peak_bytes += 8;
    compare(&a, &b, &v);
    const struct oomb_verdict_item *it = find_item(&v, "memory.repeat");
    cr_assert_not_null(it);
    cr_assert_eq(it->kind, OOMB_VERDICT_REGRESSED);
    cr_assert(strstr(it->detail, "memory.total") && strstr(it->detail, "run 2 of 2"), "%s",
              it->detail);
    /* The exact comparison itself uses the first head run: unchanged. */
    cr_assert_eq(find_item(&v, "memory.total")->kind, OOMB_VERDICT_SAME);
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

/* k runs of a step of `work` ns at machine speed factor speed[i] (1: the
 * reference), each step followed by a 1.5 ms reference GEMM at that speed,
 * with independent 1% noise on both. */
static void calibrated_runs(struct oomb_results *r, const double *speed, int k, double work,
                            unsigned seed)
{
    memset(r, 0, sizeof *r);
    r->device_class = strdup("cpu-test");
    for (int i = 0; i < k; i++) {
        add_run(r, work * speed[i], seed + (unsigned)i);
        struct oomb_run_result *run = &r->runs[r->n_runs - 1];
        run->calib_ns = malloc(N_SAMPLES * sizeof *run->calib_ns);
        cr_assert_not_null(run->calib_ns);
        fill_samples(run->calib_ns, N_SAMPLES, 1.5e6 * speed[i], seed + 100 + (unsigned)i);
    }
}

Test(verdict, normalize_divides_out_machine_speed)
{
    /* The base ran on a machine 10% faster than the head: the same code
     * looks 10% slower raw, and the same once normalised. */
    const double fast[5] = {0.90, 0.91, 0.90, 0.89, 0.90}, slow[5] = {1.0, 1.01, 0.99, 1.0, 1.0};
    struct oomb_results a, b;
    struct oomb_verdict v;
    calibrated_runs(&a, fast, 5, 1e6, 1);
    calibrated_runs(&b, slow, 5, 1e6, 50);
    compare(&a, &b, &v);
    cr_assert_eq(find_item(&v, "time.step")->kind, OOMB_VERDICT_REGRESSED, "%s",
                 find_item(&v, "time.step")->detail);
    oomb_verdict_free(&v);
    char why[256];
    cr_assert_eq(oomb_calib_normalize(&a, 1, &b, 1, why, sizeof why), 1, "%s", why);
    compare(&a, &b, &v);
    const struct oomb_verdict_item *it = find_item(&v, "time.step");
    cr_assert_eq(it->kind, OOMB_VERDICT_SAME, "%s", it->detail);
    cr_assert(fabs(it->change_pct) < 2, "%s", it->detail);
    /* Displayed in ns at the base's speed: the base's reference median. */
    cr_assert(it->base > 0.85e6 && it->base < 0.95e6, "%g", it->base);
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);

    /* A real 12% slowdown on equal machines stays one after normalising. */
    calibrated_runs(&a, slow, 5, 1e6, 1);
    calibrated_runs(&b, slow, 5, 1.12e6, 50);
    cr_assert_eq(oomb_calib_normalize(&a, 1, &b, 1, why, sizeof why), 1, "%s", why);
    compare(&a, &b, &v);
    it = find_item(&v, "time.step");
    cr_assert_eq(it->kind, OOMB_VERDICT_REGRESSED, "%s", it->detail);
    cr_assert_float_eq(it->change_pct, 12, 1.5);
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

Test(verdict, normalize_needs_calibration_on_every_run)
{
    const double s[3] = {1, 1, 1};
    struct oomb_results a, b;
    calibrated_runs(&a, s, 3, 1e6, 1);
    make_results(&b, 1e6, 9); /* no calibration samples */
    int64_t before = b.runs[0].step_ns[0], base_before = a.runs[0].step_ns[0];
    char why[256];
    cr_assert_eq(oomb_calib_normalize(&a, 1, &b, 1, why, sizeof why), 0);
    cr_assert(strstr(why, "head run s train batch 64 none has no calibration samples"), "%s", why);
    /* Nothing was changed on either side. */
    cr_assert_eq(b.runs[0].step_ns[0], before);
    cr_assert_eq(a.runs[0].step_ns[0], base_before);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

/* Give every run of r an update phase of `update` ns per step. */
static void set_update_phase(struct oomb_results *r, double update, unsigned seed)
{
    for (int i = 0; i < r->n_runs; i++) {
        struct oomb_run_result *run = &r->runs[i];
        run->phase_ns[OOMB_PHASE_UPDATE] = malloc(N_SAMPLES * sizeof(int64_t));
        cr_assert_not_null(run->phase_ns[OOMB_PHASE_UPDATE]);
        fill_samples(run->phase_ns[OOMB_PHASE_UPDATE], N_SAMPLES, update, seed + (unsigned)i);
    }
}

Test(verdict, a_phase_change_below_the_floor_is_not_judged)
{
    /* Update is 5% of a 1 ms step; +40% of it is 2% of the step: judged at
     * the default 1% floor, not at 5%; +10% (0.5% of the step) never at 1%. */
    struct oomb_results a, b;
    struct oomb_verdict_options o;
    struct oomb_verdict v;
    const struct oomb_verdict_item *it;
    make_results(&a, 1e6, 1);
    make_results(&b, 1e6, 2);
    set_update_phase(&a, 50e3, 3);
    set_update_phase(&b, 70e3, 4);
    oomb_verdict_options_init(&o);
    cr_assert_eq(oomb_verdict_compare(&a, 1, &b, 1, &o, &v), OOMB_OK);
    it = find_item(&v, "time.update");
    cr_assert_not_null(it);
    cr_assert_eq(it->kind, OOMB_VERDICT_REGRESSED, "%s", it->detail);
    oomb_verdict_free(&v);
    o.phase_floor_pct = 5;
    cr_assert_eq(oomb_verdict_compare(&a, 1, &b, 1, &o, &v), OOMB_OK);
    it = find_item(&v, "time.update");
    cr_assert_eq(it->kind, OOMB_VERDICT_SAME, "%s", it->detail);
    cr_assert(strstr(it->detail, "not judged: under 50"), "%s", it->detail);
    cr_assert_eq(find_item(&v, "time.step")->kind, OOMB_VERDICT_SAME);
    oomb_verdict_free(&v);
    oomb_results_free(&b);
    make_results(&b, 1e6, 2);
    set_update_phase(&b, 55e3, 4);
    o.phase_floor_pct = 1;
    cr_assert_eq(oomb_verdict_compare(&a, 1, &b, 1, &o, &v), OOMB_OK);
    it = find_item(&v, "time.update");
    cr_assert_eq(it->kind, OOMB_VERDICT_SAME, "%s", it->detail);
    cr_assert(strstr(it->detail, "not judged"), "%s", it->detail);
    oomb_verdict_free(&v);
    o.phase_floor_pct = 0;
    cr_assert_eq(oomb_verdict_compare(&a, 1, &b, 1, &o, &v), OOMB_OK);
    cr_assert_eq(find_item(&v, "time.update")->kind, OOMB_VERDICT_REGRESSED);
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

/* Give the first run of r a held-out evaluation. */
static void set_eval(struct oomb_results *r, double test_accuracy)
{
    struct oomb_run_result *run = &r->runs[0];
    run->has_eval = 1;
    run->eval_samples = 10000;
    run->test_accuracy = test_accuracy;
    run->test_loss = 0.4;
    run->test_accuracy_delta = 0;
}

static int count_metric(const struct oomb_verdict *v, const char *m)
{
    int n = 0;
    for (int i = 0; i < v->n; i++)
        n += strcmp(v->items[i].metric, m) == 0;
    return n;
}

Test(verdict, test_accuracy_drop_beyond_tolerance_regresses)
{
    struct oomb_results a, b;
    struct oomb_verdict v;
    make_results(&a, 1e6, 1);
    make_results(&b, 1e6, 1);
    set_eval(&a, 0.875);
    set_eval(&b, 0.8675); /* -0.75 pp: within the default 1 pp */
    compare(&a, &b, &v);
    const struct oomb_verdict_item *it = find_item(&v, "quality.test_accuracy");
    cr_assert_not_null(it);
    cr_assert_eq(it->kind, OOMB_VERDICT_SAME, "%s", it->detail);
    cr_assert_eq(it->area, OOMB_AREA_QUALITY);
    cr_assert_eq(it->base, 0.875);
    cr_assert_eq(it->head, 0.8675);
    cr_assert_float_eq(it->diff, -0.0075, 1e-15);
    cr_assert(strstr(it->detail, "0.8750 -> 0.8675 (-0.75 pp, limit -1 pp)"), "%s", it->detail);
    cr_assert_eq(v.n_regressed, 0);
    oomb_verdict_free(&v);

    b.runs[0].test_accuracy = 0.86; /* -1.5 pp */
    compare(&a, &b, &v);
    it = find_item(&v, "quality.test_accuracy");
    cr_assert_eq(it->kind, OOMB_VERDICT_REGRESSED, "%s", it->detail);
    cr_assert_eq(v.n_regressed, 1, "only the test accuracy");
    oomb_verdict_free(&v);

    /* --test-accuracy-tolerance 0.02 lets it pass; the train accuracy's
     * tolerance does not apply to it */
    struct oomb_verdict_options o;
    oomb_verdict_options_init(&o);
    cr_assert_eq(o.test_acc_drop_tol, 0.01);
    o.test_acc_drop_tol = 0.02;
    o.acc_drop_tol = 0;
    cr_assert_eq(oomb_verdict_compare(&a, 1, &b, 1, &o, &v), OOMB_OK);
    cr_assert_eq(find_item(&v, "quality.test_accuracy")->kind, OOMB_VERDICT_SAME);
    cr_assert_eq(v.n_regressed, 0);
    oomb_verdict_free(&v);

    /* a rise beyond the tolerance is an improvement */
    compare(&b, &a, &v);
    cr_assert_eq(find_item(&v, "quality.test_accuracy")->kind, OOMB_VERDICT_IMPROVED);
    cr_assert_eq(v.n_regressed, 0);
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

Test(verdict, test_accuracy_only_where_evaluated)
{
    struct oomb_results a, b;
    struct oomb_verdict v;
    make_results(&a, 1e6, 1);
    make_results(&b, 1e6, 1);
    /* neither side evaluated: no item, as before */
    compare(&a, &b, &v);
    cr_assert_eq(count_metric(&v, "quality.test_accuracy"), 0);
    cr_assert_eq(v.n_regressed, 0);
    oomb_verdict_free(&v);

    /* a new evaluation in head, none in the base: nothing to compare */
    set_eval(&b, 0.5);
    compare(&a, &b, &v);
    cr_assert_eq(count_metric(&v, "quality.test_accuracy"), 0);
    cr_assert_eq(v.n_regressed, 0);
    oomb_verdict_free(&v);

    /* the base was evaluated, head not: shown (n/a, with the note), not a
     * regression */
    oomb_results_free(&b);
    make_results(&b, 1e6, 1);
    b.runs[0].eval_note = strdup("plugin 'none' has no evaluate()");
    set_eval(&a, 0.875);
    compare(&a, &b, &v);
    const struct oomb_verdict_item *it = find_item(&v, "quality.test_accuracy");
    cr_assert_not_null(it);
    cr_assert_eq(it->kind, OOMB_VERDICT_NA);
    cr_assert(strstr(it->detail, "not evaluated: plugin 'none' has no evaluate()"), "%s",
              it->detail);
    cr_assert_eq(v.n_regressed, 0);
    oomb_verdict_free(&v);

    /* evaluated but without a number where the base had one: a regression */
    set_eval(&b, NAN);
    compare(&a, &b, &v);
    it = find_item(&v, "quality.test_accuracy");
    cr_assert_eq(it->kind, OOMB_VERDICT_REGRESSED, "%s", it->detail);
    cr_assert(strstr(it->detail, "not finite"), "%s", it->detail);
    oomb_verdict_free(&v);

    /* a failed head run is judged by its outcome only */
    b.runs[0].outcome = OOMB_OUTCOME_CRASH;
    compare(&a, &b, &v);
    cr_assert_eq(count_metric(&v, "quality.test_accuracy"), 0);
    cr_assert_eq(find_item(&v, "outcome")->kind, OOMB_VERDICT_REGRESSED);
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

Test(verdict, baseline_keeps_the_test_accuracy)
{
    char dir[] = "/tmp/oomb_test_verdict.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char p1[256], p2[256], bdir[256], err[1024] = "";
    snprintf(p1, sizeof p1, "%s/r1.json", dir);
    snprintf(p2, sizeof p2, "%s/r2.json", dir);
    snprintf(bdir, sizeof bdir, "%s/baselines", dir);
    struct oomb_results a, b;
    make_results(&a, 1e6, 1);
    set_eval(&a, 0.875);
    a.runs[0].run_seconds = 4.5;
    cr_assert_eq(oomb_results_write(&a, p1, err, sizeof err), OOMB_OK, "%s", err);
    char *text = NULL;
    size_t len = 0;
    FILE *rep = open_memstream(&text, &len);
    cr_assert_not_null(rep);
    cr_assert_eq(oomb_baseline_save(p1, bdir, NULL, rep, err, sizeof err), OOMB_OK, "%s", err);

    struct oomb_results base;
    int found = 0;
    cr_assert_eq(oomb_baseline_load(bdir, oomb_baseline_device_class(&a, NULL), "s", &base, &found,
                                    err, sizeof err),
                 OOMB_OK, "%s", err);
    cr_assert_eq(found, 1);
    cr_assert_eq(base.n_runs, 1);
    cr_assert_eq(base.runs[0].has_eval, 1);
    cr_assert_eq(base.runs[0].test_accuracy, 0.875);
    cr_assert_eq(base.runs[0].test_loss, 0.4);
    cr_assert_eq(base.runs[0].eval_samples, 10000);
    cr_assert_eq(base.runs[0].run_seconds, 4.5);

    /* a new baseline says how the test accuracy moved */
    make_results(&b, 1e6, 1);
    set_eval(&b, 0.8625);
    cr_assert_eq(oomb_results_write(&b, p2, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_eq(oomb_baseline_save(p2, bdir, NULL, rep, err, sizeof err), OOMB_OK, "%s", err);
    fclose(rep);
    cr_assert(strstr(text, "changed s train batch 64: none"), "%s", text);
    cr_assert(strstr(text, "test acc     0.8750 -> 0.8625 (-1.25 pp)"), "%s", text);

    /* and the comparison against it judges the drop */
    struct oomb_verdict v;
    compare(&base, &b, &v);
    cr_assert_eq(find_item(&v, "quality.test_accuracy")->kind, OOMB_VERDICT_REGRESSED);
    oomb_verdict_free(&v);
    free(text);
    oomb_results_free(&base);
    oomb_results_free(&a);
    oomb_results_free(&b);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* ----------------------------------------------- noise and BLAS setups -- */

Test(verdict, busy_machine_makes_a_slowdown_inconclusive_not_a_regression)
{
    /* A head 30% slower, its runs having waited 20% of each step for a
     * CPU: 1 / (1 - 0.2) = +25% from the load alone, more than half the 5%
     * threshold. Not a regression, not unchanged: inconclusive, with the
     * wait in the detail. The same head on a quiet machine regresses. */
    struct oomb_results a, b;
    struct oomb_verdict v;
    make_results(&a, 1e6, 1);
    make_results(&b, 1.3e6, 2);
    a.runs[0].cpu_wait_share = 0.001;
    b.runs[0].cpu_wait_share = 0.2;
    compare(&a, &b, &v);
    const struct oomb_verdict_item *it = find_item(&v, "time.step");
    cr_assert_eq(it->kind, OOMB_VERDICT_INCONCLUSIVE, "%s", it->detail);
    cr_assert(strstr(it->detail, "waited for a CPU up to 20.0% of the step"), "%s", it->detail);
    cr_assert_eq(v.n_regressed, 0);
    cr_assert_eq(v.n_inconclusive, 2, "step and throughput");
    oomb_verdict_free(&v);

    b.runs[0].cpu_wait_share = 0.01; /* +1%: under half the threshold */
    compare(&a, &b, &v);
    cr_assert_eq(find_item(&v, "time.step")->kind, OOMB_VERDICT_REGRESSED, "%s",
                 find_item(&v, "time.step")->detail);
    cr_assert_eq(v.n_inconclusive, 0);
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

Test(verdict, inconclusive_is_skipped_in_junit_and_counted_in_markdown)
{
    struct oomb_results a, b;
    struct oomb_verdict v;
    make_results(&a, 1e6, 1);
    make_results(&b, 1e6, 2);
    b.runs[0].cpu_wait_share = 0.5;
    compare(&a, &b, &v);
    cr_assert_eq(v.n_inconclusive, 2);
    char dir[] = "/tmp/oomb-verdict-XXXXXX", junit[64], md[64], err[512];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(junit, sizeof junit, "%s/j.xml", dir);
    snprintf(md, sizeof md, "%s/s.md", dir);
    cr_assert_eq(oomb_export_junit(&v, junit, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_eq(oomb_export_markdown(&v, "t", md, err, sizeof err), OOMB_OK, "%s", err);
    char buf[65536];
    FILE *f = fopen(junit, "r");
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    cr_assert(strstr(buf, "failures=\"0\" errors=\"0\" skipped=\"2\""), "%s", buf);
    cr_assert(strstr(buf, "<skipped message=\"+0.") || strstr(buf, "<skipped message=\"-0."),
              "%s", buf);
    f = fopen(md, "r");
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    cr_assert(strstr(buf, "2 inconclusive time(s)"), "%s", buf);
    cr_assert(strstr(buf, "| INCONCLUSIVE |"), "%s", buf);
    unlink(junit);
    unlink(md);
    rmdir(dir);
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

Test(verdict, different_blas_setups_are_not_time_judged)
{
    struct oomb_results a, b;
    struct oomb_verdict v;
    make_results(&a, 1e6, 1);
    make_results(&b, 1.3e6, 2);
    a.blas_library = strdup("OpenBLAS");
    b.blas_library = strdup("OpenBLAS");
    a.blas_kernel = strdup("Haswell");
    b.blas_kernel = strdup("SkylakeX");
    a.runs[0].threads = 1;
    b.runs[0].threads = 2;
    compare(&a, &b, &v);
    cr_assert_str_eq(v.blas_note, "kernel Haswell -> SkylakeX");
    const struct oomb_verdict_item *it = find_item(&v, "time.step");
    cr_assert_eq(it->kind, OOMB_VERDICT_NA, "%s", it->detail);
    cr_assert(strstr(it->detail, "kernel Haswell -> SkylakeX, threads 1 -> 2"), "%s", it->detail);
    cr_assert_null(find_item(&v, "throughput"));
    cr_assert_eq(v.n_regressed, 0);
    oomb_verdict_free(&v);

    struct oomb_verdict_options o;
    oomb_verdict_options_init(&o);
    o.allow_blas_mismatch = 1;
    cr_assert_eq(oomb_verdict_compare(&a, 1, &b, 1, &o, &v), OOMB_OK);
    cr_assert_eq(find_item(&v, "time.step")->kind, OOMB_VERDICT_REGRESSED);
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

Test(verdict, inference_has_no_backward_or_update_metric)
{
    struct oomb_results a, b;
    struct oomb_verdict v;
    make_results(&a, 1e6, 1);
    make_results(&b, 1e6, 2);
    struct oomb_results *sides[2] = {&a, &b};
    for (int s = 0; s < 2; s++) {
        struct oomb_run_result *r = &sides[s]->runs[0];
        r->mode = OOMB_MODE_INFER;
        for (int p = 0; p < OOMB_PHASE_COUNT; p++) {
            r->phase_ns[p] = calloc(N_SAMPLES, sizeof(int64_t));
            if (p == OOMB_PHASE_FORWARD)
                fill_samples(r->phase_ns[p], N_SAMPLES, 9e5, 7 + (unsigned)s);
            else if (p != OOMB_PHASE_BACKWARD && p != OOMB_PHASE_UPDATE)
                fill_samples(r->phase_ns[p], N_SAMPLES, 1e5, 9 + (unsigned)s);
            else
                r->phase_ns[p][0] = 1; /* a stray mark: not a phase of inference */
        }
    }
    compare(&a, &b, &v);
    cr_assert_not_null(find_item(&v, "time.forward"));
    cr_assert_not_null(find_item(&v, "time.other"));
    cr_assert_null(find_item(&v, "time.backward"));
    cr_assert_null(find_item(&v, "time.update"));
    oomb_verdict_free(&v);
    oomb_results_free(&a);
    oomb_results_free(&b);
}

Test(verdict, ab_prints_the_values_its_change_is_made_of)
{
    /* Three rounds whose per-round ratios are 0.9, 0.95 and 1.0 while the
     * pooled medians say otherwise: base and head shown are the geometric
     * means of the round medians, whose ratio is the tested change. */
    struct oomb_results a[3], b[3];
    const double base_ms[3] = {1.0, 2.0, 4.0}, ratio[3] = {0.9, 0.95, 1.0};
    for (int r = 0; r < 3; r++) {
        make_results(&a[r], 1e6 * base_ms[r], 10 + (unsigned)r);
        make_results(&b[r], 1e6 * base_ms[r] * ratio[r], 20 + (unsigned)r);
    }
    struct oomb_verdict_options o;
    oomb_verdict_options_init(&o);
    struct oomb_verdict v;
    cr_assert_eq(oomb_verdict_compare(a, 3, b, 3, &o, &v), OOMB_OK);
    const struct oomb_verdict_item *it = find_item(&v, "time.step");
    cr_assert_not_null(it);
    cr_assert_float_eq((it->head / it->base - 1) * 100, it->change_pct, 1e-9, "%s", it->detail);
    cr_assert(it->change_pct > -6 && it->change_pct < -4, "%g", it->change_pct);
    cr_assert(strstr(it->detail, "geometric mean of 3 paired round-median ratios"), "%s",
              it->detail);
    const struct oomb_verdict_item *tp = find_item(&v, "throughput");
    cr_assert_float_eq((tp->head / tp->base - 1) * 100, tp->change_pct, 1e-9, "%s", tp->detail);
    oomb_verdict_free(&v);
    for (int r = 0; r < 3; r++) {
        oomb_results_free(&a[r]);
        oomb_results_free(&b[r]);
    }
}

/* ----------------------------------------------------- rank-sum test ---- */

/* The rank-sum p as it was computed before: every pair compared, O(n1 n2).
 * The reference the sorting version must match bit for bit. */
static int cmp_dbl(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double quadratic_rank_sum_p(const int64_t *const *a, const int *na, const int64_t *const *b,
                                   const int *nb, int rounds)
{
    double U = 0, EU = 0, VU = 0;
    for (int r = 0; r < rounds; r++) {
        int n1 = na[r], n2 = nb[r], n = n1 + n2;
        if (n1 == 0 || n2 == 0)
            continue;
        double u = 0;
        for (int i = 0; i < n1; i++)
            for (int j = 0; j < n2; j++)
                u += b[r][j] > a[r][i] ? 1.0 : b[r][j] == a[r][i] ? 0.5 : 0.0;
        double *pooled = malloc((size_t)n * sizeof *pooled);
        cr_assert_not_null(pooled);
        for (int i = 0; i < n1; i++)
            pooled[i] = (double)a[r][i];
        for (int j = 0; j < n2; j++)
            pooled[n1 + j] = (double)b[r][j];
        qsort(pooled, (size_t)n, sizeof *pooled, cmp_dbl);
        double ties = 0;
        for (int i = 0; i < n;) {
            int j = i;
            while (j < n && pooled[j] == pooled[i])
                j++;
            double t = j - i;
            ties += t * t * t - t;
            i = j;
        }
        free(pooled);
        U += u;
        EU += 0.5 * n1 * n2;
        if (n > 1)
            VU += (double)n1 * n2 / 12.0 * ((n + 1) - ties / ((double)n * (n - 1)));
    }
    if (VU <= 0)
        return 1.0;
    double d = fabs(U - EU) - 0.5;
    if (d < 0)
        d = 0;
    return erfc(d / sqrt(VU) / sqrt(2.0));
}

Test(verdict, rank_sum_matches_pairwise_counting_with_ties)
{
    /* Random strata of random sizes; values from a small range (many ties,
     * within and across the sides), a wide one (few), or both sides equal. */
    for (int trial = 0; trial < 300; trial++) {
        int rounds = 1 + rand() % 4;
        int64_t *a[4], *b[4];
        int na[4], nb[4];
        int range = trial % 3 == 0 ? 5 : trial % 3 == 1 ? 1000000 : 40;
        for (int r = 0; r < rounds; r++) {
            na[r] = rand() % 60;
            nb[r] = rand() % 60;
            a[r] = malloc((size_t)(na[r] + 1) * sizeof(int64_t));
            b[r] = malloc((size_t)(nb[r] + 1) * sizeof(int64_t));
            cr_assert(a[r] && b[r]);
            int64_t shift = rand() % 3; /* b a little slower, sometimes */
            for (int i = 0; i < na[r]; i++)
                a[r][i] = 1000 + rand() % range;
            for (int j = 0; j < nb[r]; j++)
                b[r][j] = trial % 7 == 0 && j < na[r] ? a[r][j] : 1000 + shift + rand() % range;
        }
        const int64_t *const *ca = (const int64_t *const *)a, *const *cb =
                                                                  (const int64_t *const *)b;
        double fast = oomb_verdict_rank_sum_p(ca, na, cb, nb, rounds);
        double slow = quadratic_rank_sum_p(ca, na, cb, nb, rounds);
        cr_assert(fast == slow || (isnan(fast) && isnan(slow)), "trial %d: p %.17g, pairwise %.17g",
                  trial, fast, slow);
        for (int r = 0; r < rounds; r++) {
            free(a[r]);
            free(b[r]);
        }
    }
}

Test(verdict, rank_sum_of_a_million_samples_is_fast)
{
    /* 10^6 samples a side: pairwise counting would compare 10^12 pairs. */
    int n = 1000000;
    int64_t *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    cr_assert(a && b);
    for (int i = 0; i < n; i++) {
        a[i] = 1000000 + rand() % 50000;
        b[i] = 1001000 + rand() % 50000;
    }
    const int64_t *pa = a, *pb = b;
    int64_t t0 = 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t0 = ts.tv_sec * 1000000000LL + ts.tv_nsec;
    double p = oomb_verdict_rank_sum_p(&pa, &n, &pb, &n, 1);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double s = (ts.tv_sec * 1000000000LL + ts.tv_nsec - t0) / 1e9;
    cr_assert_lt(p, 1e-6, "b is slower: p %g", p);
    cr_assert_lt(s, 10.0, "took %.2f s", s);
    free(a);
    free(b);
}
