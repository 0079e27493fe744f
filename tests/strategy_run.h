/*
 * Helpers for the strategy plugin suites (test_grad_accum.c, ...): run a
 * scenario through the real runner (one child per run, plugins from the
 * build's plugin folder) into a fresh temporary folder, and find runs in
 * the results. Header-only: each suite is its own binary.
 */
#ifndef OOMB_TEST_STRATEGY_RUN_H
#define OOMB_TEST_STRATEGY_RUN_H

#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eager_model.h"
#include "results.h"
#include "runner.h"
#include "scenario.h"

/* A scenario run: results and summary, and the folder they went to. */
struct strat_run {
    struct oomb_results res;
    struct oomb_run_summary sum;
    char dir[64];
};

/* Writes `text` to <a new temporary folder>/<name> and returns the path in
 * buf (the folder is removed by strat_run_free of the run that uses it, or
 * by strat_rmdir). */
static inline const char *strat_write_scenario(char *buf, size_t len, const char *name,
                                               const char *text)
{
    char dir[] = "/tmp/oomb-strat-scn-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    snprintf(buf, len, "%s/%s", dir, name);
    FILE *f = fopen(buf, "w");
    cr_assert_not_null(f, "cannot write %s", buf);
    fputs(text, f);
    fclose(f);
    return buf;
}

static inline void strat_remove_scenario(const char *path)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    unlink(path);
    if (slash) {
        *slash = '\0';
        rmdir(dir);
    }
}

/* Runs one scenario file quietly with the build's plugins; asserts that the
 * runner itself succeeded. */
static inline void strat_run(struct strat_run *r, const char *scenario_path)
{
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "/tmp/oomb-strat-XXXXXX");
    cr_assert_not_null(mkdtemp(r->dir));
    const char *dirs[] = {OOMB_PLUGIN_DIR};
    struct oomb_run_options opts = {0};
    opts.out_dir = r->dir;
    opts.plugin_dirs = dirs;
    opts.n_plugin_dirs = 1;
    opts.quiet = 1;
    /* Runs use one BLAS thread unless a scenario says otherwise; scripts/test.sh
     * runs the numeric suites again with OOMB_TEST_THREADS=2, so that the
     * tolerances are also checked against a threaded BLAS's summation order. */
    const char *th = getenv("OOMB_TEST_THREADS");
    opts.threads = th && atoi(th) > 0 ? atoi(th) : 0;
    char err[1024] = "";
    const char *paths[] = {scenario_path};
    int rc = oomb_runner_run(paths, 1, &opts, &r->res, &r->sum, err, sizeof err);
    cr_assert_eq(rc, OOMB_OK, "runner on %s: %s", scenario_path, err);
}

/* Runs a scenario whose strategy parameter `key` is out of its declared
 * range: the runner refuses it when it loads the scenario, before any run,
 * with OOMB_ERR_INVALID and "<file>:<line>:<col>: key '<key>'" in the
 * message (exit 2 from the CLI). */
static inline void strat_expect_load_rejected(const char *scenario_path, const char *key)
{
    char dir[] = "/tmp/oomb-strat-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    const char *dirs[] = {OOMB_PLUGIN_DIR};
    struct oomb_run_options opts = {0};
    opts.out_dir = dir;
    opts.plugin_dirs = dirs;
    opts.n_plugin_dirs = 1;
    opts.quiet = 1;
    struct oomb_results res = {0};
    struct oomb_run_summary sum;
    char err[1024] = "", want[512];
    const char *paths[] = {scenario_path};
    int rc = oomb_runner_run(paths, 1, &opts, &res, &sum, err, sizeof err);
    cr_expect_eq(rc, OOMB_ERR_INVALID, "%s: expected a load-time rejection, got %d: %s",
                 scenario_path, rc, err);
    snprintf(want, sizeof want, "%s:", scenario_path);
    cr_expect(strncmp(err, want, strlen(want)) == 0, "message does not start with the file: %s",
              err);
    snprintf(want, sizeof want, ": key '%s': ", key);
    cr_expect(strstr(err, want) != NULL, "message does not name key '%s': %s", key, err);
    const char *colon = err + strlen(scenario_path) + 1; /* line:col: */
    char *end;
    cr_expect(strtol(colon, &end, 10) > 0 && *end == ':' && strtol(end + 1, &end, 10) > 0 &&
                  *end == ':',
              "no line:col after the file: %s", err);
    cr_expect_eq(res.n_runs, 0, "nothing may run");
    oomb_results_free(&res);
    rmdir(dir);
}

static inline void strat_run_free(struct strat_run *r)
{
    if (r->sum.results_path[0])
        unlink(r->sum.results_path);
    rmdir(r->dir);
    oomb_results_free(&r->res);
}

/* The run of strategy `label` in `mode` at `batch` (0: any batch). */
static inline const struct oomb_run_result *strat_find(const struct strat_run *r,
                                                       const char *label, enum oomb_mode mode,
                                                       int64_t batch)
{
    for (int i = 0; i < r->res.n_runs; i++) {
        const struct oomb_run_result *x = &r->res.runs[i];
        if (strcmp(x->strategy, label) == 0 && x->mode == mode && (batch == 0 || x->batch == batch))
            return x;
    }
    cr_assert_fail("no run '%s' (%s, batch %lld) in the results", label,
                   mode == OOMB_MODE_TRAIN ? "train" : "infer", (long long)batch);
    return NULL;
}

/* Asserts the run ended ok, printing its reason otherwise. */
static inline void strat_expect_ok(const struct oomb_run_result *x)
{
    cr_assert_eq(x->outcome, OOMB_OUTCOME_OK, "%s: outcome %s: %s", x->strategy,
                 oomb_outcome_name(x->outcome), x->reason ? x->reason : "");
}

static inline double strat_metric(const struct oomb_run_result *x, const char *name)
{
    for (int i = 0; i < x->n_metrics; i++)
        if (strcmp(x->metrics[i].name, name) == 0)
            return x->metrics[i].value;
    cr_assert_fail("%s: no metric '%s'", x->strategy, name);
    return NAN;
}

/* The model of a scenario file (caller destroys the scenario). */
static inline struct oomb_scenario *strat_load(const char *path)
{
    struct oomb_scenario *sc = NULL;
    char err[1024] = "";
    cr_assert_eq(oomb_scenario_load(path, &sc, err, sizeof err), OOMB_OK, "%s", err);
    return sc;
}

/* none's training activation peak at batch b (plugins/none/none.c):
 * 4b (f_in + sum_l f_l + K + 1) + 4b max over linear l of (f_l + in_l), in_l
 * only where an input gradient is computed (l > 0). */
/* none's activation peak in training at batch b: PyTorch eager's rules
 * (tests/eager_model.h). */
static inline uint64_t strat_none_train_activations(const struct oomb_model *m, int64_t b)
{
    return (uint64_t)em_peak(m, b, 4, 1, 0, NULL);
}

#define STRAT_SCENARIO(name) OOMB_SOURCE_DIR "/scenarios/" name

#endif
