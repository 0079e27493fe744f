/*
 * Tests of the results module (JSON write/read, atomic replacement), the
 * statistics of step times, and the console table.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "results.h"
#include "table.h"

/* ------------------------------------------------------------ helpers ---- */

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/oomb_test_results.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    chmod(p, 0700);
    return remove(p);
}

static void remove_tmpdir(void)
{
    if (tmpdir[0]) {
        chmod(tmpdir, 0700);
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

static char *path_in(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof(buf), "%s/%s", tmpdir, name);
    return buf;
}

/* Entries in dir whose name contains ".tmp." */
static int count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "opendir %s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp."))
            n++;
    closedir(d);
    return n;
}

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static double rnd_unit(void)
{
    return (double)(rnd() >> 11) * (1.0 / 9007199254740992.0);
}

static void seed_rng(void)
{
    rng_state = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ 0x9E3779B97F4A7C15ull;
    if (!rng_state)
        rng_state = 1;
    cr_log_info("rng seed %llu", (unsigned long long)rng_state);
}

static char *xstrdup(const char *s)
{
    char *c = strdup(s);
    cr_assert_not_null(c);
    return c;
}

/* A string that exercises JSON escaping: quotes, backslashes, control
 * characters, multi-byte UTF-8 and length. */
static char *long_tricky_string(void)
{
    const char *piece = "quote\" back\\slash tab\t nl\n ünïcødé 日本語 🚀 \x01 ";
    size_t plen = strlen(piece), n = 200;
    char *s = malloc(plen * n + 1);
    cr_assert_not_null(s);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * plen, piece, plen);
    s[plen * n] = '\0';
    return s;
}

static void fill_results(struct oomb_results *r)
{
    memset(r, 0, sizeof(*r));
    r->tool_version = xstrdup("0.1.0");
    r->created = xstrdup("2024-05-01T12:34:56Z");
    r->host_name = xstrdup("build-host");
    r->host_os = xstrdup("Linux 6.1");
    r->host_cpu = xstrdup("Some CPU \"model\" @ 3.0GHz");
    r->host_cores = 2;
    r->host_mem_bytes = (1ull << 62) + (rnd() >> 4);
    r->device_class = xstrdup("cpu-x86_64");
    r->device_backend = xstrdup("cpu");
    r->device_name = xstrdup("cpu");
    r->device_driver = xstrdup("");
    r->device_runtime = xstrdup("openblas");
    r->blas_library = xstrdup("OpenBLAS");
    r->blas_version = xstrdup("0.3.21");
    r->blas_config = xstrdup("OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64");
    r->blas_kernel = xstrdup("Zen");
    r->blas_parallel = xstrdup("pthreads");
    r->n_env = 2;
    r->env_names = calloc(2, sizeof(char *));
    r->env_values = calloc(2, sizeof(char *));
    r->env_names[0] = xstrdup("OPENBLAS_CORETYPE");
    r->env_values[0] = xstrdup("Zen");
    r->env_names[1] = xstrdup("OMP_NUM_THREADS");
    r->env_values[1] = xstrdup("3");

    /* run 0: everything populated, an oom with device memory */
    struct oomb_run_result *a = oomb_results_add_run(r);
    cr_assert_not_null(a);
    a->scenario = long_tricky_string();
    a->strategy = xstrdup("checkpoint \"every 2\"");
    a->plugin = xstrdup("checkpoint");
    a->plugin_path = xstrdup("/opt/oombench/plugins/checkpoint.so");
    a->n_params = 3;
    a->param_keys = calloc(3, sizeof(char *));
    a->param_values = calloc(3, sizeof(char *));
    cr_assert(a->param_keys && a->param_values);
    a->param_keys[0] = xstrdup("every");
    a->param_values[0] = xstrdup("2");
    a->param_keys[1] = xstrdup("policy");
    a->param_values[1] = xstrdup("sqrt \"n\"");
    a->param_keys[2] = xstrdup("alpha");
    a->param_values[2] = xstrdup("0.5");
    a->mode = OOMB_MODE_TRAIN;
    a->backend = OOMB_BACKEND_CUDA;
    a->batch = 256;
    a->outcome = OOMB_OUTCOME_OOM;
    a->reason = xstrdup("budget of 1 GiB exceeded: \"activations\" request");
    a->peak_bytes = (1ull << 62) + (rnd() >> 3) + 1;
    for (int t = 0; t < OOMB_TAG_COUNT; t++)
        a->peak_by_tag[t] = (1ull << 62) - 1 - (uint64_t)t * 977 - (rnd() >> 40);
    a->host_peak_rss_bytes = (uint64_t)INT64_MAX;
    a->oom_request_bytes = (1ull << 62) + 12345;
    a->oom_in_use_bytes = (1ull << 61) + 7;
    a->device_mem_valid = 1;
    a->device_peak_bytes = (1ull << 40) + 3;
    a->device_mem_method = xstrdup("cudaMemGetInfo");
    a->n_steps = 7;
    a->step_ns = malloc(7 * sizeof(int64_t));
    for (int p = 0; p < OOMB_PHASE_COUNT; p++)
        a->phase_ns[p] = malloc(7 * sizeof(int64_t));
    for (int i = 0; i < 7; i++) {
        a->step_ns[i] = 1000000 + (int64_t)(rnd() % 100000);
        for (int p = 0; p < OOMB_PHASE_COUNT; p++)
            a->phase_ns[p][i] = 1000 * (p + 1) + (int64_t)(rnd() % 1000);
    }
    oomb_stats_compute(a->step_ns, 7, &a->step_stats);
    for (int p = 0; p < OOMB_PHASE_COUNT; p++)
        oomb_stats_compute(a->phase_ns[p], 7, &a->phase_stats[p]);
    a->calib_ns = malloc(7 * sizeof(int64_t));
    for (int i = 0; i < 7; i++)
        a->calib_ns[i] = 1500000 + (int64_t)(rnd() % 10000);
    a->wait_ns = malloc(7 * sizeof(int64_t));
    for (int i = 0; i < 7; i++)
        a->wait_ns[i] = (int64_t)(rnd() % 100000);
    a->cpu_wait_share = 0.01 * rnd_unit();
    a->threads = 3;
    a->samples_per_s = 256.0 / (a->step_stats.median * 1e-9);
    a->has_numerics = 1;
    a->loss_rel_err = 1.25e-7 * (1 + rnd_unit());
    a->grad_rel_err = NAN;
    a->output_rel_err = NAN;
    a->weight_rel_err = 0.1 + rnd_unit();
    a->n_losses = 5;
    a->losses = malloc(5 * sizeof(double));
    for (int i = 0; i < 5; i++)
        a->losses[i] = 2.3 - 0.1 * i + rnd_unit() * 1e-3;
    a->losses[2] = NAN; /* a diverged step reads back as n/a */
    a->final_loss = a->losses[4];
    a->has_accuracy = 1;
    a->accuracy = 0.8125;
    a->accuracy_delta = -0.0123;
    a->has_eval = 1;
    a->eval_samples = 10000;
    a->test_accuracy = 0.8734 + rnd_unit() * 1e-4;
    a->test_loss = 0.35 + rnd_unit();
    a->test_accuracy_delta = -0.0041 - rnd_unit() * 1e-5;
    a->eval_note = xstrdup("");
    a->run_seconds = 12.5 + rnd_unit();
    a->n_metrics = 2;
    a->metrics = calloc(2, sizeof(*a->metrics));
    a->metrics[0].name = xstrdup("loss_scale");
    a->metrics[0].value = 65536.0;
    a->metrics[1].name = xstrdup("sparsity");
    a->metrics[1].value = NAN;
    a->n_events = 4;
    a->events = calloc(4, sizeof(*a->events));
    for (int i = 0; i < 4; i++) {
        a->events[i].t_ns = 100 * i + (int64_t)(rnd() % 50);
        a->events[i].delta = i % 2 ? -(int64_t)(1ull << 50) : (int64_t)(1ull << 50);
        a->events[i].in_use = (1ull << 62) + (uint64_t)i;
        a->events[i].tag = (uint8_t)(i % OOMB_TAG_COUNT);
        a->events[i].phase = (uint8_t)(i % OOMB_PHASE_COUNT);
        a->events[i].step = i - 1;
    }

    /* run 1: a skipped run with nothing measured */
    struct oomb_run_result *b = oomb_results_add_run(r);
    cr_assert_not_null(b);
    b->scenario = xstrdup("mlp");
    b->strategy = xstrdup("fp16");
    b->plugin = xstrdup("fp16");
    b->plugin_path = xstrdup("");
    b->mode = OOMB_MODE_INFER;
    b->backend = OOMB_BACKEND_CPU;
    b->batch = 1;
    b->outcome = OOMB_OUTCOME_SKIPPED;
    b->reason = xstrdup("needs CUDA");
    b->eval_note = xstrdup("plugin \"fp16\" has no evaluate(): ünï");

    r->n_checks = 2;
    r->checks = calloc(2, sizeof(*r->checks));
    cr_assert_not_null(r->checks);
    r->checks[0].scenario = xstrdup("mlp");
    r->checks[0].expr = xstrdup("peak(checkpoint) < 0.6 * peak(none)");
    r->checks[0].mode = OOMB_MODE_TRAIN;
    r->checks[0].batch = 256;
    r->checks[0].status = OOMB_CHECK_PASS;
    r->checks[0].lhs = (double)(1ull << 40) + rnd_unit();
    r->checks[0].op = xstrdup("<");
    r->checks[0].rhs = 3.0e12 * (1 + rnd_unit());
    r->checks[0].message = xstrdup("");
    r->checks[1].scenario = xstrdup("mlp");
    r->checks[1].expr = xstrdup("loss_rel_err(fp16) < 1e-3");
    r->checks[1].mode = OOMB_MODE_INFER;
    r->checks[1].batch = 1;
    r->checks[1].status = OOMB_CHECK_SKIPPED;
    r->checks[1].lhs = NAN;
    r->checks[1].op = xstrdup("<");
    r->checks[1].rhs = 1e-3;
    r->checks[1].message = xstrdup("fp16 was skipped: \"needs CUDA\"");
}

static int same_double(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

static void assert_same_stats(const struct oomb_stats *a, const struct oomb_stats *b)
{
    cr_assert(same_double(a->median, b->median));
    cr_assert(same_double(a->mean, b->mean));
    cr_assert(same_double(a->stddev, b->stddev));
    cr_assert(same_double(a->min, b->min));
    cr_assert(same_double(a->max, b->max));
    cr_assert(same_double(a->p05, b->p05));
    cr_assert(same_double(a->p95, b->p95));
    cr_assert(same_double(a->ci_low, b->ci_low));
    cr_assert(same_double(a->ci_high, b->ci_high));
}

static void assert_same_str(const char *a, const char *b)
{
    cr_assert_str_eq(a ? a : "", b ? b : "");
}

static void assert_same_run(const struct oomb_run_result *a, const struct oomb_run_result *b)
{
    assert_same_str(a->scenario, b->scenario);
    assert_same_str(a->strategy, b->strategy);
    assert_same_str(a->plugin, b->plugin);
    assert_same_str(a->plugin_path, b->plugin_path);
    cr_assert_eq(a->n_params, b->n_params);
    for (int i = 0; i < a->n_params; i++) {
        cr_assert_str_eq(a->param_keys[i], b->param_keys[i]);
        cr_assert_str_eq(a->param_values[i], b->param_values[i]);
    }
    cr_assert_eq(a->mode, b->mode);
    cr_assert_eq(a->backend, b->backend);
    cr_assert_eq(a->batch, b->batch);
    cr_assert_eq(a->outcome, b->outcome);
    assert_same_str(a->reason, b->reason);
    cr_assert_eq(a->peak_bytes, b->peak_bytes);
    for (int t = 0; t < OOMB_TAG_COUNT; t++)
        cr_assert_eq(a->peak_by_tag[t], b->peak_by_tag[t], "tag %d", t);
    cr_assert_eq(a->host_peak_rss_bytes, b->host_peak_rss_bytes);
    if (a->outcome == OOMB_OUTCOME_OOM) {
        cr_assert_eq(a->oom_request_bytes, b->oom_request_bytes);
        cr_assert_eq(a->oom_in_use_bytes, b->oom_in_use_bytes);
    }
    cr_assert_eq(a->device_mem_valid, b->device_mem_valid);
    if (a->device_mem_valid) {
        cr_assert_eq(a->device_peak_bytes, b->device_peak_bytes);
        assert_same_str(a->device_mem_method, b->device_mem_method);
    }
    cr_assert_eq(a->n_steps, b->n_steps);
    for (int i = 0; i < a->n_steps; i++)
        cr_assert_eq(a->step_ns[i], b->step_ns[i]);
    cr_assert_eq(!a->calib_ns, !b->calib_ns);
    for (int i = 0; a->calib_ns && i < a->n_steps; i++)
        cr_assert_eq(a->calib_ns[i], b->calib_ns[i]);
    cr_assert_eq(!a->wait_ns, !b->wait_ns);
    for (int i = 0; a->wait_ns && i < a->n_steps; i++)
        cr_assert_eq(a->wait_ns[i], b->wait_ns[i]);
    if (a->wait_ns)
        cr_assert(same_double(a->cpu_wait_share, b->cpu_wait_share));
    cr_assert_eq(a->threads, b->threads);
    for (int p = 0; p < OOMB_PHASE_COUNT; p++) {
        cr_assert_eq(!a->phase_ns[p], !b->phase_ns[p], "phase %d", p);
        for (int i = 0; a->phase_ns[p] && i < a->n_steps; i++)
            cr_assert_eq(a->phase_ns[p][i], b->phase_ns[p][i]);
        assert_same_stats(&a->phase_stats[p], &b->phase_stats[p]);
    }
    assert_same_stats(&a->step_stats, &b->step_stats);
    cr_assert(same_double(a->samples_per_s, b->samples_per_s));
    cr_assert_eq(a->has_numerics, b->has_numerics);
    cr_assert(same_double(a->loss_rel_err, b->loss_rel_err));
    cr_assert(same_double(a->grad_rel_err, b->grad_rel_err));
    cr_assert(same_double(a->output_rel_err, b->output_rel_err));
    cr_assert(same_double(a->weight_rel_err, b->weight_rel_err));
    cr_assert_eq(a->n_losses, b->n_losses);
    for (int i = 0; i < a->n_losses; i++)
        cr_assert(same_double(a->losses[i], b->losses[i]), "loss %d", i);
    cr_assert(same_double(a->final_loss, b->final_loss));
    cr_assert_eq(a->has_accuracy, b->has_accuracy);
    cr_assert(same_double(a->accuracy, b->accuracy));
    cr_assert(same_double(a->accuracy_delta, b->accuracy_delta));
    cr_assert_eq(a->has_eval, b->has_eval);
    if (a->has_eval) {
        cr_assert_eq(a->eval_samples, b->eval_samples);
        cr_assert(same_double(a->test_accuracy, b->test_accuracy));
        cr_assert(same_double(a->test_loss, b->test_loss));
        cr_assert(same_double(a->test_accuracy_delta, b->test_accuracy_delta));
    }
    assert_same_str(a->eval_note, b->eval_note);
    cr_assert(same_double(a->run_seconds, b->run_seconds));
    cr_assert_eq(a->n_metrics, b->n_metrics);
    for (int i = 0; i < a->n_metrics; i++) {
        cr_assert_str_eq(a->metrics[i].name, b->metrics[i].name);
        cr_assert(same_double(a->metrics[i].value, b->metrics[i].value));
    }
    cr_assert_eq(a->n_events, b->n_events);
    for (int i = 0; i < a->n_events; i++) {
        cr_assert_eq(a->events[i].t_ns, b->events[i].t_ns);
        cr_assert_eq(a->events[i].delta, b->events[i].delta);
        cr_assert_eq(a->events[i].in_use, b->events[i].in_use);
        cr_assert_eq(a->events[i].tag, b->events[i].tag);
        cr_assert_eq(a->events[i].phase, b->events[i].phase);
        cr_assert_eq(a->events[i].step, b->events[i].step);
    }
}

static void assert_same_results(const struct oomb_results *a, const struct oomb_results *b)
{
    assert_same_str(a->tool_version, b->tool_version);
    assert_same_str(a->created, b->created);
    assert_same_str(a->host_name, b->host_name);
    assert_same_str(a->host_os, b->host_os);
    assert_same_str(a->host_cpu, b->host_cpu);
    cr_assert_eq(a->host_cores, b->host_cores);
    cr_assert_eq(a->host_mem_bytes, b->host_mem_bytes);
    assert_same_str(a->device_class, b->device_class);
    assert_same_str(a->device_backend, b->device_backend);
    assert_same_str(a->device_name, b->device_name);
    assert_same_str(a->device_driver, b->device_driver);
    assert_same_str(a->device_runtime, b->device_runtime);
    assert_same_str(a->blas_library, b->blas_library);
    assert_same_str(a->blas_version, b->blas_version);
    assert_same_str(a->blas_config, b->blas_config);
    assert_same_str(a->blas_kernel, b->blas_kernel);
    assert_same_str(a->blas_parallel, b->blas_parallel);
    cr_assert_eq(a->n_env, b->n_env);
    for (int i = 0; i < a->n_env; i++) {
        assert_same_str(a->env_names[i], b->env_names[i]);
        assert_same_str(a->env_values[i], b->env_values[i]);
    }
    cr_assert_eq(a->n_runs, b->n_runs);
    for (int i = 0; i < a->n_runs; i++)
        assert_same_run(&a->runs[i], &b->runs[i]);
    cr_assert_eq(a->n_checks, b->n_checks);
    for (int i = 0; i < a->n_checks; i++) {
        const struct oomb_check_record *x = &a->checks[i], *y = &b->checks[i];
        assert_same_str(x->scenario, y->scenario);
        assert_same_str(x->expr, y->expr);
        cr_assert_eq(x->mode, y->mode);
        cr_assert_eq(x->batch, y->batch);
        cr_assert_eq(x->status, y->status);
        cr_assert(same_double(x->lhs, y->lhs));
        assert_same_str(x->op, y->op);
        cr_assert(same_double(x->rhs, y->rhs));
        assert_same_str(x->message, y->message);
    }
}

/* The fields every run of a results file must have (docs/results-format.md),
 * and what an ok run must have besides, for hand-written files. */
#define RUN_ID                                                                                     \
    "\"scenario\": \"s\", \"strategy\": \"x\", \"mode\": \"train\", "                              \
    "\"backend\": \"cpu\", \"batch\": 1, "
#define OK_RUN                                                                                     \
    RUN_ID "\"outcome\": \"ok\", \"memory\": {\"peak_bytes\": 64}, "                               \
           "\"time\": {\"samples\": [10, 12]}"

/* Gives a run made in memory what the reader requires: scenario, strategy,
 * a batch, and one time sample for an ok run. */
static void make_readable(struct oomb_run_result *run, int i)
{
    char name[32];
    snprintf(name, sizeof name, "run%d", i);
    if (!run->scenario)
        run->scenario = xstrdup("s");
    if (!run->strategy)
        run->strategy = xstrdup(name);
    if (run->batch == 0)
        run->batch = 1;
    if (run->mode != OOMB_MODE_TRAIN && run->mode != OOMB_MODE_INFER)
        run->mode = OOMB_MODE_TRAIN;
    if (run->backend != OOMB_BACKEND_CPU && run->backend != OOMB_BACKEND_CUDA)
        run->backend = OOMB_BACKEND_CPU;
    if (run->outcome == OOMB_OUTCOME_OK && run->n_steps == 0) {
        run->step_ns = calloc(1, sizeof *run->step_ns);
        cr_assert_not_null(run->step_ns);
        run->step_ns[0] = 1000;
        run->n_steps = 1;
    }
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void setup(void)
{
    seed_rng();
    make_tmpdir();
}

TestSuite(results, .init = setup, .fini = remove_tmpdir);

/* -------------------------------------------------------------- names ---- */

Test(results, names_round_trip)
{
    for (int o = 0; o < OOMB_OUTCOME_COUNT; o++)
        cr_assert_eq(oomb_outcome_parse(oomb_outcome_name((enum oomb_outcome)o)), o);
    cr_assert_str_eq(oomb_outcome_name(OOMB_OUTCOME_NOT_APPLICABLE), "not_applicable");
    cr_assert_null(oomb_outcome_name(OOMB_OUTCOME_COUNT));
    cr_assert_eq(oomb_outcome_parse("exploded"), -1);
    cr_assert_eq(oomb_outcome_parse(NULL), -1);
    cr_assert_str_eq(oomb_tag_name(OOMB_TAG_WEIGHTS), "weights");
    cr_assert_str_eq(oomb_tag_name(OOMB_TAG_OPTIMIZER), "optimizer");
    cr_assert_str_eq(oomb_tag_name(OOMB_TAG_OTHER), "other");
    cr_assert_null(oomb_tag_name(OOMB_TAG_COUNT));
    cr_assert_str_eq(oomb_phase_name(OOMB_PHASE_OTHER), "other");
    cr_assert_str_eq(oomb_phase_name(OOMB_PHASE_UPDATE), "update");
    cr_assert_null(oomb_phase_name(OOMB_PHASE_COUNT));
}

Test(results, add_run_initialises_not_available_to_nan)
{
    struct oomb_results r = {0};
    for (int i = 0; i < 40; i++) {
        struct oomb_run_result *run = oomb_results_add_run(&r);
        cr_assert_not_null(run);
        cr_assert_eq(run, &r.runs[i]);
        cr_assert(isnan(run->loss_rel_err) && isnan(run->grad_rel_err));
        cr_assert(isnan(run->output_rel_err) && isnan(run->weight_rel_err));
        cr_assert(isnan(run->final_loss) && isnan(run->accuracy));
        cr_assert(isnan(run->accuracy_delta));
        cr_assert(isnan(run->test_accuracy) && isnan(run->test_loss));
        cr_assert(isnan(run->test_accuracy_delta) && isnan(run->run_seconds));
        cr_assert_eq(run->has_eval, 0);
        cr_assert_eq(run->eval_samples, 0);
        cr_assert_null(run->eval_note);
        cr_assert(isnan(run->step_stats.median));
        cr_assert_eq(run->peak_bytes, 0);
        cr_assert_null(run->scenario);
        cr_assert_eq(run->n_steps, 0);
        run->strategy = xstrdup("s"); /* freed by oomb_results_free */
    }
    cr_assert_eq(r.n_runs, 40);
    oomb_results_free(&r);
    cr_assert_eq(r.n_runs, 0);
    cr_assert_null(r.runs);
}

/* --------------------------------------------------------- round trip ---- */

Test(results, round_trip_every_field)
{
    struct oomb_results r, back;
    char err[512] = "";
    fill_results(&r);
    const char *path = path_in("full.json");
    cr_assert_eq(oomb_results_write(&r, path, err, sizeof(err)), OOMB_OK, "%s", err);
    cr_assert_eq(oomb_results_read(path, &back, err, sizeof(err)), OOMB_OK, "%s", err);
    assert_same_results(&r, &back);

    /* and once more: what was read writes the same file */
    const char *path2 = path_in("again.json");
    cr_assert_eq(oomb_results_write(&back, path2, err, sizeof(err)), OOMB_OK, "%s", err);
    char *t1 = slurp(path), *t2 = slurp(path2);
    cr_assert_str_eq(t1, t2);
    free(t1);
    free(t2);
    oomb_results_free(&r);
    oomb_results_free(&back);
}

Test(results, round_trip_empty_runs)
{
    struct oomb_results r = {0}, back;
    char err[512] = "";
    r.tool_version = xstrdup("0.1.0");
    const char *path = path_in("empty.json");
    cr_assert_eq(oomb_results_write(&r, path, err, sizeof(err)), OOMB_OK, "%s", err);
    cr_assert_eq(oomb_results_read(path, &back, err, sizeof(err)), OOMB_OK, "%s", err);
    cr_assert_eq(back.n_runs, 0);
    cr_assert_str_eq(back.tool_version, "0.1.0");
    /* strings absent from the file read as "", never NULL */
    cr_assert_str_eq(back.host_name, "");
    cr_assert_str_eq(back.device_class, "");
    oomb_results_free(&r);
    oomb_results_free(&back);
}

Test(results, byte_counts_round_trip_exactly)
{
    struct oomb_results r = {0}, back;
    char err[512] = "";
    const uint64_t values[] = {0,
                               1,
                               (1ull << 53) + 1,
                               (1ull << 62) - 1,
                               1ull << 62,
                               (1ull << 62) + (rnd() >> 2),
                               (uint64_t)INT64_MAX};
    const int n = (int)(sizeof(values) / sizeof(values[0]));
    for (int i = 0; i < n; i++) {
        struct oomb_run_result *run = oomb_results_add_run(&r);
        run->outcome = OOMB_OUTCOME_OK;
        run->peak_bytes = values[i];
        run->peak_by_tag[OOMB_TAG_ACTIVATIONS] = values[n - 1 - i];
        make_readable(run, i);
    }
    const char *path = path_in("bytes.json");
    cr_assert_eq(oomb_results_write(&r, path, err, sizeof(err)), OOMB_OK, "%s", err);
    cr_assert_eq(oomb_results_read(path, &back, err, sizeof(err)), OOMB_OK, "%s", err);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(back.runs[i].peak_bytes, values[i], "value %d", i);
        cr_assert_eq(back.runs[i].peak_by_tag[OOMB_TAG_ACTIVATIONS], values[n - 1 - i]);
    }
    oomb_results_free(&r);
    oomb_results_free(&back);
}

Test(results, byte_count_above_int64_is_refused)
{
    struct oomb_results r = {0};
    char err[512] = "";
    struct oomb_run_result *run = oomb_results_add_run(&r);
    run->peak_bytes = (uint64_t)INT64_MAX + 1;
    const char *path = path_in("big.json");
    write_text(path, "previous results");
    cr_assert_eq(oomb_results_write(&r, path, err, sizeof(err)), OOMB_ERR_INVALID);
    cr_assert(strstr(err, "peak_bytes"), "%s", err);
    char *text = slurp(path);
    cr_assert_str_eq(text, "previous results", "existing file changed");
    free(text);
    cr_assert_eq(count_temp_files(tmpdir), 0);
    oomb_results_free(&r);
}

Test(results, written_file_is_valid_json_with_schema)
{
    struct oomb_results r;
    char err[512] = "";
    fill_results(&r);
    const char *path = path_in("valid.json");
    cr_assert_eq(oomb_results_write(&r, path, err, sizeof(err)), OOMB_OK, "%s", err);

    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    cr_assert_not_null(root, "%s", jerr.text);
    cr_assert_str_eq(json_string_value(json_object_get(root, "schema")), "oombench-results/2");
    json_t *runs = json_object_get(root, "runs");
    cr_assert_eq(json_array_size(runs), 2);
    json_t *a = json_array_get(runs, 0);
    cr_assert_str_eq(json_string_value(json_object_get(a, "outcome")), "oom");
    cr_assert_str_eq(json_string_value(json_object_get(a, "mode")), "train");
    cr_assert_str_eq(json_string_value(json_object_get(a, "backend")), "cuda");
    /* NaN is null, never a NaN token */
    json_t *num = json_object_get(a, "numerics");
    cr_assert(json_is_null(json_object_get(num, "grad_rel_err")));
    cr_assert(json_is_real(json_object_get(num, "loss_rel_err")));
    cr_assert(json_is_null(json_object_get(json_object_get(a, "metrics"), "sparsity")));
    /* params are strings, in declared order */
    json_t *params = json_object_get(a, "params");
    const char *k;
    json_t *v;
    const char *order[] = {"every", "policy", "alpha"};
    int i = 0;
    json_object_foreach(params, k, v)
    {
        cr_assert_str_eq(k, order[i++]);
        cr_assert(json_is_string(v));
    }
    json_t *time = json_object_get(a, "time");
    cr_assert_str_eq(json_string_value(json_object_get(time, "unit")), "ns");
    cr_assert_eq(json_array_size(json_object_get(time, "samples")), 7);
    cr_assert_eq(json_array_size(json_object_get(time, "ci95")), 2);
    cr_assert_not_null(json_object_get(json_object_get(time, "phases"), "backward"));
    json_t *mem = json_object_get(a, "memory");
    cr_assert_not_null(json_object_get(mem, "oom"));
    cr_assert_not_null(json_object_get(mem, "device"));
    json_t *ev0 = json_array_get(json_object_get(json_object_get(a, "timeline"), "events"), 0);
    cr_assert_eq(json_array_size(ev0), 6);
    cr_assert_str_eq(json_string_value(json_array_get(ev0, 3)), "weights");
    cr_assert_str_eq(json_string_value(json_array_get(ev0, 4)), "other");

    json_t *checks = json_object_get(root, "checks");
    cr_assert_eq(json_array_size(checks), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(checks, 1), "status")),
                     "skipped");
    cr_assert(json_is_null(json_object_get(json_array_get(checks, 1), "lhs")));

    /* the skipped run: no oom/device sections, no time statistics */
    json_t *b = json_array_get(runs, 1);
    cr_assert_null(json_object_get(json_object_get(b, "memory"), "oom"));
    cr_assert_null(json_object_get(json_object_get(b, "memory"), "device"));
    cr_assert_null(json_object_get(json_object_get(b, "time"), "median"));
    cr_assert_null(json_object_get(b, "numerics"));
    cr_assert_null(json_object_get(json_object_get(b, "quality"), "accuracy"));
    json_decref(root);

    char *text = slurp(path);
    const char *bad[] = {"NaN", "Infinity", ": nan", ": inf", ": -inf", " nan,", " inf,"};
    for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
        cr_assert_null(strstr(text, bad[j]), "token %s in the file", bad[j]);
    free(text);
    oomb_results_free(&r);
}

Test(results, invalid_utf8_is_replaced_not_fatal)
{
    struct oomb_results r = {0}, back;
    char err[512] = "";
    struct oomb_run_result *run = oomb_results_add_run(&r);
    run->outcome = OOMB_OUTCOME_CRASH;
    run->reason = xstrdup("signal 11 \xff\xfe in \xc3\xa9t\xc3 end");
    make_readable(run, 0);
    const char *path = path_in("utf8.json");
    cr_assert_eq(oomb_results_write(&r, path, err, sizeof(err)), OOMB_OK, "%s", err);
    cr_assert_eq(oomb_results_read(path, &back, err, sizeof(err)), OOMB_OK, "%s", err);
    cr_assert_str_eq(back.runs[0].reason, "signal 11 ?? in \xc3\xa9t? end");
    oomb_results_free(&r);
    oomb_results_free(&back);
}

Test(results, infinity_is_written_as_null)
{
    struct oomb_results r = {0}, back;
    char err[512] = "";
    struct oomb_run_result *run = oomb_results_add_run(&r);
    run->final_loss = INFINITY;
    run->samples_per_s = -INFINITY;
    make_readable(run, 0);
    const char *path = path_in("inf.json");
    cr_assert_eq(oomb_results_write(&r, path, err, sizeof(err)), OOMB_OK, "%s", err);
    cr_assert_eq(oomb_results_read(path, &back, err, sizeof(err)), OOMB_OK, "%s", err);
    cr_assert(isnan(back.runs[0].final_loss));
    cr_assert(isnan(back.runs[0].samples_per_s));
    oomb_results_free(&r);
    oomb_results_free(&back);
}

/* -------------------------------------------------------- atomic write ---- */

Test(results, write_leaves_no_temp_file_and_replaces)
{
    struct oomb_results r;
    char err[512] = "";
    fill_results(&r);
    const char *path = path_in("atomic.json");
    write_text(path, "old contents");
    cr_assert_eq(oomb_results_write(&r, path, err, sizeof(err)), OOMB_OK, "%s", err);
    cr_assert_eq(count_temp_files(tmpdir), 0);
    char *text = slurp(path);
    cr_assert(strncmp(text, "{", 1) == 0);
    cr_assert_not_null(strstr(text, "oombench-results/2"));
    free(text);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644);
    oomb_results_free(&r);
}

Test(results, write_creates_missing_directories)
{
    struct oomb_results r = {0};
    char err[512] = "";
    const char *path = path_in("a/b/c/out.json");
    cr_assert_eq(oomb_results_write(&r, path, err, sizeof(err)), OOMB_OK, "%s", err);
    cr_assert_eq(access(path, R_OK), 0);
}

Test(results, write_to_a_directory_fails_cleanly)
{
    struct oomb_results r;
    char err[512] = "";
    fill_results(&r);
    const char *path = path_in("isdir");
    cr_assert_eq(mkdir(path, 0755), 0);
    cr_assert_eq(oomb_results_write(&r, path, err, sizeof(err)), OOMB_ERR_IO);
    cr_assert_not_null(strstr(err, path), "%s", err);
    cr_assert_eq(count_temp_files(tmpdir), 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    oomb_results_free(&r);
}

Test(results, write_below_a_file_fails_cleanly)
{
    struct oomb_results r = {0};
    char err[512] = "";
    write_text(path_in("plain"), "x");
    char path[600];
    snprintf(path, sizeof(path), "%s/plain/sub/out.json", tmpdir);
    cr_assert_eq(oomb_results_write(&r, path, err, sizeof(err)), OOMB_ERR_IO);
    cr_assert_not_null(strstr(err, path), "%s", err);
    cr_assert_not_null(strstr(err, strerror(ENOTDIR)), "%s", err);
    cr_assert_eq(count_temp_files(tmpdir), 0);
}

Test(results, write_into_unwritable_directory_fails_cleanly)
{
    if (geteuid() == 0) {
        remove_tmpdir(); /* a skipped test does not reach the suite's fini */
        cr_skip_test("permissions do not apply to root");
    }
    struct oomb_results r;
    char err[512] = "";
    fill_results(&r);
    const char *dir = path_in("ro");
    cr_assert_eq(mkdir(dir, 0555), 0);
    char path[600];
    snprintf(path, sizeof(path), "%s/out.json", dir);
    cr_assert_eq(oomb_results_write(&r, path, err, sizeof(err)), OOMB_ERR_IO);
    cr_assert_not_null(strstr(err, path), "%s", err);
    cr_assert_not_null(strstr(err, strerror(EACCES)), "%s", err);
    cr_assert_neq(access(path, F_OK), 0);
    cr_assert_eq(count_temp_files(dir), 0);
    oomb_results_free(&r);
}

/* --------------------------------------------------------------- read ---- */

Test(results, read_rejects_wrong_schema)
{
    struct oomb_results r;
    char err[512] = "";
    const char *path = path_in("wrong.json");
    write_text(path, "{\"schema\": \"oombench-results/3\", \"runs\": []}");
    cr_assert_eq(oomb_results_read(path, &r, err, sizeof(err)), OOMB_ERR_PARSE);
    cr_assert_not_null(strstr(err, path), "%s", err);
    cr_assert_not_null(strstr(err, "'schema'"), "%s", err);
    cr_assert_not_null(strstr(err, "oombench-results/3"), "%s", err);
    cr_assert_eq(r.n_runs, 0);
    cr_assert_null(r.runs);
}

Test(results, read_rejects_missing_schema)
{
    struct oomb_results r;
    char err[512] = "";
    const char *path = path_in("noschema.json");
    write_text(path, "{\"runs\": []}");
    cr_assert_eq(oomb_results_read(path, &r, err, sizeof(err)), OOMB_ERR_PARSE);
    cr_assert_not_null(strstr(err, path), "%s", err);
    cr_assert_not_null(strstr(err, "schema"), "%s", err);
}

Test(results, read_rejects_non_string_schema)
{
    struct oomb_results r;
    char err[512] = "";
    const char *path = path_in("numschema.json");
    write_text(path, "{\"schema\": 1}");
    cr_assert_eq(oomb_results_read(path, &r, err, sizeof(err)), OOMB_ERR_PARSE);
    cr_assert_not_null(strstr(err, "schema"), "%s", err);
}

Test(results, read_missing_file_is_io_error)
{
    struct oomb_results r;
    char err[512] = "";
    const char *path = path_in("nope.json");
    cr_assert_eq(oomb_results_read(path, &r, err, sizeof(err)), OOMB_ERR_IO);
    cr_assert_not_null(strstr(err, path), "%s", err);
    cr_assert_not_null(strstr(err, strerror(ENOENT)), "%s", err);
}

Test(results, read_malformed_json_is_parse_error)
{
    struct oomb_results r;
    char err[512] = "";
    const char *path = path_in("broken.json");
    write_text(path, "{\"schema\": \"oombench-results/1\", \"runs\": [");
    cr_assert_eq(oomb_results_read(path, &r, err, sizeof(err)), OOMB_ERR_PARSE);
    cr_assert_not_null(strstr(err, path), "%s", err);
}

Test(results, read_names_a_field_of_the_wrong_type)
{
    struct oomb_results r;
    char err[512] = "";
    const char *path = path_in("badtype.json");
    write_text(path, "{\"schema\": \"oombench-results/1\", \"runs\": [{" OK_RUN "},"
                     "{" RUN_ID "\"outcome\": \"oom\", \"memory\": {\"peak_bytes\": -5}}]}");
    cr_assert_eq(oomb_results_read(path, &r, err, sizeof(err)), OOMB_ERR_PARSE);
    cr_assert_not_null(strstr(err, "runs[1].memory.peak_bytes"), "%s", err);
    cr_assert_null(r.runs);
}

Test(results, read_rejects_unknown_outcome)
{
    struct oomb_results r;
    char err[512] = "";
    const char *path = path_in("outcome.json");
    write_text(path, "{\"schema\": \"oombench-results/1\", \"runs\": [{" RUN_ID
                     "\"outcome\": \"meh\"}]}");
    cr_assert_eq(oomb_results_read(path, &r, err, sizeof(err)), OOMB_ERR_PARSE);
    cr_assert_not_null(strstr(err, "runs[0].outcome"), "%s", err);
}

Test(results, read_tolerates_unknown_fields_and_nulls)
{
    struct oomb_results r;
    char err[512] = "";
    const char *path = path_in("future.json");
    write_text(path,
               "{\"schema\": \"oombench-results/1\", \"future\": {\"x\": [1,2]},"
               " \"host\": {\"name\": \"h\", \"gpu_count\": 3},"
               " \"runs\": [{\"scenario\": \"s\", \"strategy\": \"none\", \"outcome\": \"ok\","
               "   \"mode\": \"infer\", \"backend\": \"cpu\", \"batch\": 8, \"extra\": true,"
               "   \"time\": {\"samples\": [5], \"p42\": 1},"
               "   \"memory\": {\"peak_bytes\": 4096, \"new_counter\": 1,"
               "                \"peak_by_tag\": {\"weights\": 1024, \"scratchpad\": 9}},"
               "   \"numerics\": {\"loss_rel_err\": null, \"grad_rel_err\": 0.5},"
               "   \"quality\": {\"final_loss\": null, \"accuracy\": 0.5},"
               "   \"timeline\": {\"events\": [[1, 64, 64, \"newtag\", \"forward\", 0]]}}]}");
    cr_assert_eq(oomb_results_read(path, &r, err, sizeof(err)), OOMB_OK, "%s", err);
    cr_assert_str_eq(r.host_name, "h");
    cr_assert_eq(r.n_runs, 1);
    struct oomb_run_result *run = &r.runs[0];
    cr_assert_eq(run->mode, OOMB_MODE_INFER);
    cr_assert_eq(run->batch, 8);
    cr_assert_eq(run->peak_bytes, 4096);
    cr_assert_eq(run->peak_by_tag[OOMB_TAG_WEIGHTS], 1024);
    cr_assert_eq(run->has_numerics, 1);
    cr_assert(isnan(run->loss_rel_err));
    cr_assert_eq(run->grad_rel_err, 0.5);
    cr_assert(isnan(run->final_loss));
    cr_assert_eq(run->has_accuracy, 1);
    cr_assert_eq(run->accuracy, 0.5);
    cr_assert(isnan(run->accuracy_delta));
    cr_assert_eq(run->n_steps, 1);
    cr_assert_str_eq(run->reason, "");
    cr_assert_str_eq(run->device_mem_method, "");
    cr_assert_eq(run->n_events, 1);
    cr_assert_eq(run->events[0].tag, OOMB_TAG_OTHER);
    cr_assert_eq(run->events[0].phase, OOMB_PHASE_FORWARD);
    oomb_results_free(&r);
}

/* ---------------------------------------------- held-out evaluation ---- */

/* A minimal ok run of scenario "mlp" (owned by r). */
static struct oomb_run_result *add_eval_run(struct oomb_results *r, const char *strategy)
{
    struct oomb_run_result *run = oomb_results_add_run(r);
    cr_assert_not_null(run);
    run->scenario = xstrdup("mlp");
    run->strategy = xstrdup(strategy);
    run->plugin = xstrdup(strategy);
    run->plugin_path = xstrdup("");
    run->reason = xstrdup("");
    run->mode = OOMB_MODE_TRAIN;
    run->backend = OOMB_BACKEND_CPU;
    run->batch = 64;
    run->outcome = OOMB_OUTCOME_OK;
    run->final_loss = 0.5;
    make_readable(run, 0);
    return run;
}

Test(results, eval_fields_layout_and_round_trip)
{
    struct oomb_results r = {0}, back;
    char err[512] = "";
    struct oomb_run_result *a = add_eval_run(&r, "none");
    a->has_eval = 1;
    a->eval_samples = 10000;
    a->test_accuracy = 0.8734;
    a->test_loss = 0.41560000000000002;
    a->test_accuracy_delta = 0;
    a->run_seconds = 3.25;
    struct oomb_run_result *b = add_eval_run(&r, "plain"); /* nothing of it */
    b->eval_note = xstrdup("");
    struct oomb_run_result *c = add_eval_run(&r, "noeval"); /* wanted, not possible */
    c->eval_note = xstrdup("plugin 'noeval' has no evaluate()");
    c->run_seconds = 1e-3;
    struct oomb_run_result *d = add_eval_run(&r, "diverged"); /* evaluated, no number */
    d->has_eval = 1;
    d->eval_samples = 500;
    const char *path = path_in("eval.json");
    cr_assert_eq(oomb_results_write(&r, path, err, sizeof(err)), OOMB_OK, "%s", err);

    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    cr_assert_not_null(root, "%s", jerr.text);
    json_t *runs = json_object_get(root, "runs");
    json_t *qa = json_object_get(json_array_get(runs, 0), "quality");
    cr_assert(json_is_real(json_object_get(qa, "test_accuracy")));
    cr_assert_eq(json_real_value(json_object_get(qa, "test_accuracy")), 0.8734);
    cr_assert(json_is_real(json_object_get(qa, "test_loss")));
    cr_assert(json_is_real(json_object_get(qa, "test_accuracy_delta")));
    cr_assert(json_is_integer(json_object_get(qa, "eval_samples")));
    cr_assert_eq(json_integer_value(json_object_get(qa, "eval_samples")), 10000);
    cr_assert_null(json_object_get(qa, "eval_note"), "an empty note is not written");
    json_t *ta = json_object_get(json_array_get(runs, 0), "time");
    cr_assert_eq(json_real_value(json_object_get(ta, "run_seconds")), 3.25);
    cr_assert_str_eq(json_string_value(json_object_get(ta, "unit")), "ns");

    /* has_eval = 0: none of the fields, not even as null */
    json_t *qb = json_object_get(json_array_get(runs, 1), "quality");
    const char *eval_keys[] = {"test_accuracy", "test_loss", "test_accuracy_delta", "eval_samples",
                               "eval_note"};
    for (size_t i = 0; i < sizeof(eval_keys) / sizeof(eval_keys[0]); i++)
        cr_assert_null(json_object_get(qb, eval_keys[i]), "%s written", eval_keys[i]);
    cr_assert_null(
        json_object_get(json_object_get(json_array_get(runs, 1), "time"), "run_seconds"));
    /* the note alone */
    json_t *qc = json_object_get(json_array_get(runs, 2), "quality");
    cr_assert_null(json_object_get(qc, "test_accuracy"));
    cr_assert_null(json_object_get(qc, "eval_samples"));
    cr_assert_str_eq(json_string_value(json_object_get(qc, "eval_note")),
                     "plugin 'noeval' has no evaluate()");
    /* evaluated without a finite number: null, still present */
    json_t *qd = json_object_get(json_array_get(runs, 3), "quality");
    cr_assert(json_is_null(json_object_get(qd, "test_accuracy")));
    cr_assert(json_is_null(json_object_get(qd, "test_accuracy_delta")));
    json_decref(root);

    cr_assert_eq(oomb_results_read(path, &back, err, sizeof(err)), OOMB_OK, "%s", err);
    assert_same_results(&r, &back);
    cr_assert_eq(back.runs[0].has_eval, 1);
    cr_assert_eq(back.runs[0].test_accuracy, 0.8734);
    cr_assert_eq(back.runs[0].test_accuracy_delta, 0.0);
    cr_assert_eq(back.runs[0].run_seconds, 3.25);
    cr_assert_eq(back.runs[1].has_eval, 0);
    cr_assert(isnan(back.runs[1].test_accuracy) && isnan(back.runs[1].run_seconds));
    cr_assert_str_eq(back.runs[1].eval_note, "", "a read string is never NULL");
    cr_assert_eq(back.runs[2].has_eval, 0);
    cr_assert_eq(back.runs[2].eval_samples, 0);
    cr_assert_eq(back.runs[2].run_seconds, 1e-3);
    cr_assert_eq(back.runs[3].has_eval, 1);
    cr_assert_eq(back.runs[3].eval_samples, 500);
    cr_assert(isnan(back.runs[3].test_accuracy) && isnan(back.runs[3].test_loss));

    /* what was read writes the same file */
    const char *path2 = path_in("eval-again.json");
    cr_assert_eq(oomb_results_write(&back, path2, err, sizeof(err)), OOMB_OK, "%s", err);
    char *t1 = slurp(path), *t2 = slurp(path2);
    cr_assert_str_eq(t1, t2);
    free(t1);
    free(t2);
    oomb_results_free(&back);
    oomb_results_free(&r);
}

Test(results, eval_fields_of_the_wrong_type_are_named)
{
    struct oomb_results r;
    char err[512] = "";
    const char *path = path_in("bad-eval.json");
    write_text(path,
               "{\"schema\": \"oombench-results/1\", \"runs\": [{" RUN_ID "\"outcome\": \"error\","
               " \"quality\": {\"test_accuracy\": \"high\"}}]}");
    cr_assert_eq(oomb_results_read(path, &r, err, sizeof(err)), OOMB_ERR_PARSE);
    cr_assert_not_null(strstr(err, "'runs[0].quality.test_accuracy'"), "%s", err);
    write_text(path,
               "{\"schema\": \"oombench-results/1\", \"runs\": [{" RUN_ID "\"outcome\": \"error\","
               " \"quality\": {\"test_accuracy\": 0.5, \"eval_samples\": -1}}]}");
    cr_assert_eq(oomb_results_read(path, &r, err, sizeof(err)), OOMB_ERR_PARSE);
    cr_assert_not_null(strstr(err, "'runs[0].quality.eval_samples'"), "%s", err);
    write_text(path,
               "{\"schema\": \"oombench-results/1\", \"runs\": [{" RUN_ID "\"outcome\": \"error\","
               " \"time\": {\"run_seconds\": \"1 s\"}}]}");
    cr_assert_eq(oomb_results_read(path, &r, err, sizeof(err)), OOMB_ERR_PARSE);
    cr_assert_not_null(strstr(err, "'runs[0].time.run_seconds'"), "%s", err);
    write_text(path,
               "{\"schema\": \"oombench-results/1\", \"runs\": [{" RUN_ID "\"outcome\": \"error\","
               " \"quality\": {\"eval_note\": 3}}]}");
    cr_assert_eq(oomb_results_read(path, &r, err, sizeof(err)), OOMB_ERR_PARSE);
    cr_assert_not_null(strstr(err, "'runs[0].quality.eval_note'"), "%s", err);
}

/* ------------------------------------------------ schema validation ---- */

/* Reads `json` (a results file's runs array) and expects a parse error whose
 * message holds each of the NULL-terminated strings. */
static void expect_parse_error(const char *name, const char *runs, ...)
{
    struct oomb_results r;
    char err[1024] = "";
    const char *path = path_in(name);
    char *text = NULL;
    cr_assert_gt(asprintf(&text, "{\"schema\": \"oombench-results/2\", \"runs\": [%s]}", runs), 0);
    write_text(path, text);
    free(text);
    cr_assert_eq(oomb_results_read(path, &r, err, sizeof(err)), OOMB_ERR_PARSE, "%s", err);
    cr_assert_null(r.runs, "nothing is kept of a bad file");
    cr_assert_not_null(strstr(err, path), "%s", err);
    va_list ap;
    va_start(ap, runs);
    for (const char *want; (want = va_arg(ap, const char *)) != NULL;)
        cr_assert_not_null(strstr(err, want), "'%s' not in: %s", want, err);
    va_end(ap);
}

Test(results, ok_run_without_memory_is_refused)
{
    expect_parse_error(
        "nomem.json", "{" OK_RUN "}, {" RUN_ID "\"outcome\": \"ok\", \"time\": {\"samples\": [1]}}",
        "run 1 (scenario 's', strategy 'x')", "'runs[1].memory'",
        "missing (required for an ok run)", NULL);
}

Test(results, ok_run_without_peak_bytes_is_refused)
{
    expect_parse_error("nopeak.json",
                       "{" RUN_ID "\"outcome\": \"ok\", \"memory\": {\"peak_by_tag\": {}},"
                       " \"time\": {\"samples\": [1]}}",
                       "'runs[0].memory.peak_bytes'", "missing (required for an ok run)", NULL);
}

Test(results, ok_run_without_time_samples_is_refused)
{
    expect_parse_error("notime.json",
                       "{" RUN_ID "\"outcome\": \"ok\", \"memory\": {\"peak_bytes\": 1}}",
                       "'runs[0].time'", "missing (required for an ok run)", NULL);
    expect_parse_error("nosamples.json",
                       "{" RUN_ID "\"outcome\": \"ok\", \"memory\": {\"peak_bytes\": 1},"
                       " \"time\": {\"unit\": \"ns\"}}",
                       "'runs[0].time.samples'", "missing (required for an ok run)", NULL);
}

Test(results, ok_run_with_empty_samples_is_refused)
{
    expect_parse_error("emptysamples.json",
                       "{" RUN_ID "\"outcome\": \"ok\", \"memory\": {\"peak_bytes\": 1},"
                       " \"time\": {\"samples\": []}}",
                       "'runs[0].time.samples'", "empty", NULL);
}

Test(results, failed_run_needs_no_memory_or_time)
{
    struct oomb_results r;
    char err[512] = "";
    const char *path = path_in("crash.json");
    write_text(path, "{\"schema\": \"oombench-results/2\", \"runs\": [{" RUN_ID
                     "\"outcome\": \"crash\", \"reason\": \"signal 11\"}]}");
    cr_assert_eq(oomb_results_read(path, &r, err, sizeof(err)), OOMB_OK, "%s", err);
    cr_assert_eq(r.runs[0].outcome, OOMB_OUTCOME_CRASH);
    oomb_results_free(&r);
}

Test(results, every_identity_field_is_required)
{
    const char *fields[] = {"scenario", "strategy", "mode", "backend", "batch"};
    const char *full = "\"scenario\": \"s\", \"strategy\": \"x\", \"mode\": \"train\", "
                       "\"backend\": \"cpu\", \"batch\": 1, ";
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        /* the run without that one field */
        char run[512] = "", want[64];
        char *copy = xstrdup(full);
        for (char *part = strtok(copy, ","); part; part = strtok(NULL, ",")) {
            if (strstr(part, fields[f]) || strspn(part, " ") == strlen(part))
                continue;
            strcat(run, part);
            strcat(run, ",");
        }
        free(copy);
        strcat(run, " \"outcome\": \"error\"");
        char json[600];
        snprintf(json, sizeof json, "{%s}", run);
        snprintf(want, sizeof want, "'runs[0].%s': missing (required)", fields[f]);
        expect_parse_error("noid.json", json, want, NULL);
    }
    expect_parse_error("nooutcome.json", "{" RUN_ID "\"reason\": \"\"}",
                       "'runs[0].outcome': missing (required)", NULL);
}

Test(results, empty_names_are_refused)
{
    expect_parse_error("emptyname.json",
                       "{\"scenario\": \"\", \"strategy\": \"x\", \"mode\": \"train\", "
                       "\"backend\": \"cpu\", \"batch\": 1, \"outcome\": \"skipped\"}",
                       "'runs[0].scenario': empty", NULL);
}

Test(results, negative_or_zero_batch_is_refused)
{
    expect_parse_error("negbatch.json",
                       "{\"scenario\": \"s\", \"strategy\": \"x\", \"mode\": \"train\", "
                       "\"backend\": \"cpu\", \"batch\": -64, \"outcome\": \"skipped\"}",
                       "'runs[0].batch': -64 is out of range", NULL);
    expect_parse_error("zerobatch.json",
                       "{\"scenario\": \"s\", \"strategy\": \"x\", \"mode\": \"train\", "
                       "\"backend\": \"cpu\", \"batch\": 0, \"outcome\": \"skipped\"}",
                       "'runs[0].batch': 0 is out of range", NULL);
}

Test(results, negative_time_sample_is_refused)
{
    expect_parse_error("negsample.json",
                       "{" RUN_ID "\"outcome\": \"ok\", \"memory\": {\"peak_bytes\": 1},"
                       " \"time\": {\"samples\": [5, -3, 7]}}",
                       "'runs[0].time.samples'", "sample 1: expected a non-negative integer", NULL);
    expect_parse_error("negphase.json",
                       "{" OK_RUN ", \"x\": 1}, {" RUN_ID "\"outcome\": \"ok\", "
                       "\"memory\": {\"peak_bytes\": 1}, \"time\": {\"samples\": [5], "
                       "\"phases\": {\"forward\": {\"samples\": [-1]}}}}",
                       "'runs[1].time.phases.forward.samples'", NULL);
}

Test(results, negative_time_statistic_is_refused)
{
    expect_parse_error("negmedian.json",
                       "{" RUN_ID "\"outcome\": \"ok\", \"memory\": {\"peak_bytes\": 1},"
                       " \"time\": {\"samples\": [5], \"median\": -5.0}}",
                       "'runs[0].time.median': -5 is out of range", NULL);
}

Test(results, accuracy_outside_0_1_is_refused)
{
    expect_parse_error("acc.json", "{" OK_RUN ", \"quality\": {\"accuracy\": 1.5}}",
                       "'runs[0].quality.accuracy': 1.5 is out of range [0, 1]", NULL);
    expect_parse_error("tacc.json", "{" OK_RUN ", \"quality\": {\"test_accuracy\": -0.1}}",
                       "'runs[0].quality.test_accuracy'", NULL);
}

Test(results, negative_event_time_is_refused)
{
    expect_parse_error(
        "event.json",
        "{" OK_RUN ", \"timeline\": {\"events\": "
        "[[0, 64, 64, \"weights\", \"other\", -1], [-5, 8, 72, \"other\", \"forward\", 0]]}}",
        "'runs[0].timeline.events': event 1", NULL);
}

Test(results, threads_out_of_range_is_refused)
{
    expect_parse_error("threads.json", "{" OK_RUN ", \"threads\": 1000000}",
                       "'runs[0].threads': 1000000 is out of range", NULL);
}

Test(results, sample_arrays_are_bounded)
{
    /* One sample over the bound: refused with the bound, quickly. */
    size_t n = (size_t)OOMB_RESULTS_MAX_SAMPLES + 1;
    char *samples = malloc(2 * n + 1), *at = samples;
    cr_assert_not_null(samples);
    for (size_t i = 0; i < n; i++) {
        *at++ = '1';
        *at++ = i + 1 < n ? ',' : '\0';
    }
    char *run = NULL;
    cr_assert_gt(asprintf(&run,
                          "{" RUN_ID "\"outcome\": \"ok\", \"memory\": {\"peak_bytes\": 1},"
                          " \"time\": {\"samples\": [%s]}}",
                          samples),
                 0);
    free(samples);
    char want[64];
    snprintf(want, sizeof want, "%zu samples, at most %d allowed", n, OOMB_RESULTS_MAX_SAMPLES);
    expect_parse_error("many.json", run, "'runs[0].time.samples'", want, NULL);
    free(run);
}

Test(results, run_count_is_bounded)
{
    size_t n = (size_t)OOMB_RESULTS_MAX_RUNS + 1;
    char *runs = malloc(3 * n + 1), *at = runs;
    cr_assert_not_null(runs);
    for (size_t i = 0; i < n; i++) {
        memcpy(at, "{},", 3);
        at += 3;
    }
    at[-1] = '\0';
    expect_parse_error("manyruns.json", runs, "field 'runs'", "at most", NULL);
    free(runs);
}

Test(results, missing_runs_is_refused)
{
    struct oomb_results r;
    char err[512] = "";
    const char *path = path_in("noruns.json");
    write_text(path, "{\"schema\": \"oombench-results/2\"}");
    cr_assert_eq(oomb_results_read(path, &r, err, sizeof(err)), OOMB_ERR_PARSE);
    cr_assert_not_null(strstr(err, "'runs': missing (required)"), "%s", err);
}

Test(results, names_in_errors_are_printable)
{
    /* A name with a terminal escape and a newline: shown with '?'. */
    expect_parse_error("esc.json",
                       "{\"scenario\": \"a\\u001b[31mred\\nx\", \"strategy\": \"s\", "
                       "\"mode\": \"train\", \"backend\": \"cpu\", \"batch\": -1, "
                       "\"outcome\": \"skipped\"}",
                       "scenario 'a?[31mred?x'", NULL);
}

Test(results, directory_is_io_error_naming_it)
{
    struct oomb_results r;
    char err[512] = "";
    const char *dir = path_in("adir.json");
    cr_assert_eq(mkdir(dir, 0700), 0);
    cr_assert_eq(oomb_results_read(dir, &r, err, sizeof(err)), OOMB_ERR_IO);
    cr_assert_not_null(strstr(err, dir), "%s", err);
    cr_assert_not_null(strstr(err, "is a directory"), "%s", err);
}

Test(results, child_file_may_leave_identity_to_the_parent)
{
    struct oomb_results r;
    char err[512] = "";
    const char *path = path_in("child.json");
    write_text(path, "{\"schema\": \"oombench-results/2\", \"runs\": [{\"outcome\": \"ok\", "
                     "\"memory\": {\"peak_bytes\": 1}, \"time\": {\"samples\": [3]}}]}");
    cr_assert_eq(oomb_results_read(path, &r, err, sizeof(err)), OOMB_ERR_PARSE);
    cr_assert_eq(oomb_results_read_child(path, &r, err, sizeof(err)), OOMB_OK, "%s", err);
    cr_assert_eq(r.runs[0].n_steps, 1);
    oomb_results_free(&r);
    /* ... but not what was measured */
    write_text(path, "{\"schema\": \"oombench-results/2\", \"runs\": [{\"outcome\": \"ok\", "
                     "\"time\": {\"samples\": [3]}}]}");
    cr_assert_eq(oomb_results_read_child(path, &r, err, sizeof(err)), OOMB_ERR_PARSE);
    cr_assert_not_null(strstr(err, "'runs[0].memory'"), "%s", err);
}

/* -------------------------------------------------------------- stats ---- */

TestSuite(stats, .init = seed_rng);

Test(stats, odd_count)
{
    const int64_t s[] = {50, 10, 40, 20, 30};
    struct oomb_stats st;
    oomb_stats_compute(s, 5, &st);
    cr_assert_eq(st.median, 30);
    cr_assert_eq(st.mean, 30);
    cr_assert_float_eq(st.stddev, sqrt(250.0), 1e-12);
    cr_assert_eq(st.min, 10);
    cr_assert_eq(st.max, 50);
    /* type-7 percentiles: h = 4p */
    cr_assert_float_eq(st.p05, 12.0, 1e-9);
    cr_assert_float_eq(st.p95, 48.0, 1e-9);
}

Test(stats, even_count_averages_the_middle)
{
    const int64_t s[] = {4, 1, 3, 2};
    struct oomb_stats st;
    oomb_stats_compute(s, 4, &st);
    cr_assert_eq(st.median, 2.5);
    cr_assert_eq(st.mean, 2.5);
    cr_assert_float_eq(st.p05, 1.15, 1e-12);
    cr_assert_float_eq(st.p95, 3.85, 1e-12);
    cr_assert(st.ci_low >= 1 && st.ci_high <= 4);
}

Test(stats, empty_is_all_nan)
{
    struct oomb_stats st;
    oomb_stats_compute(NULL, 0, &st);
    cr_assert(isnan(st.median) && isnan(st.mean) && isnan(st.stddev) && isnan(st.min));
    cr_assert(isnan(st.max) && isnan(st.p05) && isnan(st.p95));
    cr_assert(isnan(st.ci_low) && isnan(st.ci_high));
}

Test(stats, single_sample)
{
    const int64_t s[] = {123456789};
    struct oomb_stats st;
    oomb_stats_compute(s, 1, &st);
    cr_assert_eq(st.median, 123456789);
    cr_assert_eq(st.p05, 123456789);
    cr_assert_eq(st.p95, 123456789);
    cr_assert_eq(st.ci_low, 123456789);
    cr_assert_eq(st.ci_high, 123456789);
    cr_assert_eq(st.stddev, 0);
}

Test(stats, ci_contains_median_and_is_deterministic)
{
    for (int trial = 0; trial < 20; trial++) {
        int n = 2 + (int)(rnd() % 300);
        int64_t *s = malloc((size_t)n * sizeof(*s));
        for (int i = 0; i < n; i++)
            s[i] = 1000000 + (int64_t)(rnd() % 200000) + (rnd() % 10 == 0 ? 5000000 : 0);
        struct oomb_stats a, b;
        oomb_stats_compute(s, n, &a);
        oomb_stats_compute(s, n, &b);
        cr_assert(a.ci_low <= a.median && a.median <= a.ci_high, "n=%d [%g, %g] %g", n, a.ci_low,
                  a.ci_high, a.median);
        cr_assert(a.min <= a.p05 && a.p05 <= a.median && a.median <= a.p95 && a.p95 <= a.max);
        cr_assert(a.ci_low >= a.min && a.ci_high <= a.max);
        cr_assert(a.ci_high > a.ci_low || a.min == a.max);
        cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0);
        free(s);
    }
}

Test(stats, ci_narrows_with_more_samples)
{
    int64_t *s = malloc(4000 * sizeof(*s));
    for (int i = 0; i < 4000; i++)
        s[i] = 1000000 + (int64_t)(rnd() % 100000);
    struct oomb_stats small, large;
    oomb_stats_compute(s, 40, &small);
    oomb_stats_compute(s, 4000, &large);
    cr_assert_lt(large.ci_high - large.ci_low, small.ci_high - small.ci_low);
    free(s);
}

/* -------------------------------------------------------------- table ---- */

TestSuite(table, .init = seed_rng);

Test(table, format_bytes)
{
    char b[32];
    oomb_format_bytes(0, b, sizeof(b));
    cr_assert_str_eq(b, "0 B");
    oomb_format_bytes(1023, b, sizeof(b));
    cr_assert_str_eq(b, "1023 B");
    oomb_format_bytes(1536, b, sizeof(b));
    cr_assert_str_eq(b, "1.50 KiB");
    oomb_format_bytes(512ull << 20, b, sizeof(b));
    cr_assert_str_eq(b, "512.0 MiB");
    oomb_format_bytes((12ull << 30) + (345ull << 20), b, sizeof(b));
    cr_assert_str_eq(b, "12.34 GiB");
    oomb_format_bytes((1ull << 30) - 1, b, sizeof(b));
    cr_assert_str_eq(b, "1.00 GiB");
    oomb_format_bytes(UINT64_MAX, b, sizeof(b));
    cr_assert_str_eq(b, "16.00 EiB");
    oomb_format_bytes(1536, b, 4); /* truncated, still terminated */
    cr_assert_str_eq(b, "1.5");
}

Test(table, format_ns)
{
    char b[32];
    oomb_format_ns(850, b, sizeof(b));
    cr_assert_str_eq(b, "850 ns");
    oomb_format_ns(12340, b, sizeof(b));
    cr_assert_str_eq(b, "12.34 us");
    oomb_format_ns(123.4e6, b, sizeof(b));
    cr_assert_str_eq(b, "123.4 ms");
    oomb_format_ns(2.5e9, b, sizeof(b));
    cr_assert_str_eq(b, "2.50 s");
    oomb_format_ns(999999, b, sizeof(b));
    cr_assert_str_eq(b, "1.00 ms");
    oomb_format_ns(NAN, b, sizeof(b));
    cr_assert_str_eq(b, "-");
}

static char *table_text(const struct oomb_results *r, int color)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    oomb_table_print(f, r, color);
    fclose(f);
    return buf;
}

static void add_simple_run(struct oomb_results *r, const char *scenario, const char *strategy,
                           int64_t batch, enum oomb_outcome outcome, const char *reason)
{
    struct oomb_run_result *run = oomb_results_add_run(r);
    cr_assert_not_null(run);
    run->scenario = xstrdup(scenario);
    run->strategy = xstrdup(strategy);
    run->mode = OOMB_MODE_TRAIN;
    run->backend = OOMB_BACKEND_CPU;
    run->batch = batch;
    run->outcome = outcome;
    run->reason = xstrdup(reason);
    if (outcome == OOMB_OUTCOME_OK || outcome == OOMB_OUTCOME_OOM) {
        run->peak_bytes = (3ull << 20) + (rnd() % 1000);
        run->peak_by_tag[OOMB_TAG_WEIGHTS] = 1ull << 20;
        run->peak_by_tag[OOMB_TAG_ACTIVATIONS] = 2ull << 20;
    }
    if (outcome == OOMB_OUTCOME_OK) {
        run->n_steps = 5;
        run->step_ns = malloc(5 * sizeof(int64_t));
        for (int i = 0; i < 5; i++)
            run->step_ns[i] = 12000000 + (int64_t)(rnd() % 100000);
        oomb_stats_compute(run->step_ns, 5, &run->step_stats);
        run->samples_per_s = (double)batch / (run->step_stats.median * 1e-9);
        run->final_loss = 1.5 + rnd_unit();
    }
}

Test(table, rows_grouped_with_units_and_reasons)
{
    struct oomb_results r = {0};
    add_simple_run(&r, "mlp", "none", 64, OOMB_OUTCOME_OK, "");
    add_simple_run(&r, "conv", "none", 32, OOMB_OUTCOME_OK, "");
    add_simple_run(&r, "mlp", "checkpoint", 64, OOMB_OUTCOME_OK, "");
    add_simple_run(&r, "mlp", "fp16", 64, OOMB_OUTCOME_OOM,
                   "budget exceeded while allocating activations for layer 3 of 12 "
                   "in the forward pass");
    add_simple_run(&r, "mlp", "crashy", 64, OOMB_OUTCOME_CRASH, "signal 11\n(SIGSEGV)");
    r.runs[2].has_numerics = 1;
    r.runs[2].loss_rel_err = 1.5e-6;
    r.runs[2].grad_rel_err = 3.25e-5;
    r.runs[2].has_accuracy = 1;
    r.runs[2].accuracy = 0.9;

    char *t = table_text(&r, 0);
    cr_log_info("%s", t);
    /* groups in order of first appearance; mlp's runs together */
    char *mlp = strstr(t, "mlp (train, batch 64)");
    char *conv = strstr(t, "conv (train, batch 32)");
    cr_assert(mlp && conv && mlp < conv, "%s", t);
    char *none = strstr(mlp, "none"), *ck = strstr(mlp, "checkpoint"), *fp = strstr(mlp, "fp16");
    cr_assert(none && ck && fp && none < ck && ck < fp && fp < conv, "%s", t);
    cr_assert_not_null(strstr(t, "3.00 MiB"));
    cr_assert_not_null(strstr(t, "1.00 MiB"));
    cr_assert_not_null(strstr(t, " ms"));
    cr_assert_not_null(strstr(t, "±"));
    cr_assert_not_null(strstr(t, "3.25e-05"));
    cr_assert_not_null(strstr(t, "90.00%"));
    cr_assert_not_null(strstr(t, "oom"));
    cr_assert_not_null(strstr(t, "budget exceeded"));
    cr_assert_null(strstr(t, "in the forward pass"), "reason not truncated");
    cr_assert_not_null(strstr(t, "..."));
    cr_assert_not_null(strstr(t, "signal 11 (SIGSEGV)"), "newline kept in reason");
    cr_assert_null(strstr(t, "\033["), "colour without asking");
    /* no trailing blanks */
    cr_assert_null(strstr(t, " \n"));
    free(t);

    t = table_text(&r, 1);
    cr_assert_not_null(strstr(t, "\033[32mok\033[0m"));
    cr_assert_not_null(strstr(t, "\033[33moom\033[0m"));
    cr_assert_not_null(strstr(t, "\033[31mcrash\033[0m"));
    free(t);
    oomb_results_free(&r);
}

Test(table, columns_line_up)
{
    struct oomb_results r = {0};
    add_simple_run(&r, "mlp", "none", 64, OOMB_OUTCOME_OK, "");
    add_simple_run(&r, "mlp", "a-much-longer-strategy-label", 64, OOMB_OUTCOME_OK, "");
    add_simple_run(&r, "mlp", "ünï", 64, OOMB_OUTCOME_OK, "");
    char *t = table_text(&r, 0);
    /* every line after the group title has "peak" column end at the same
     * display column: compare the offsets of the first "MiB" */
    int col = -1;
    char *line = strchr(t, '\n') + 1;
    line = strchr(line, '\n') + 1; /* skip title and header */
    while (*line && strncmp(line, "  ", 2) == 0) { /* the rows; then the legend */
        char *end = strchr(line, '\n');
        char *m = strstr(line, "MiB");
        cr_assert(m && m < end);
        int c = 0;
        for (char *p = line; p < m; p++)
            c += ((unsigned char)*p & 0xC0) != 0x80;
        if (col < 0)
            col = c;
        cr_assert_eq(c, col, "%s", t);
        line = end + 1;
    }
    free(t);
    oomb_results_free(&r);
}

Test(table, no_runs)
{
    struct oomb_results r = {0};
    char *t = table_text(&r, 1);
    cr_assert_str_eq(t, "no runs\n");
    free(t);
}

/* Display column (in code points) where `needle` ends in the line starting
 * at `line`; -1 when the line does not contain it. */
static int end_column(const char *line, const char *needle)
{
    const char *end = strchr(line, '\n');
    const char *m = strstr(line, needle);
    if (!m || (end && m > end))
        return -1;
    int c = 0;
    for (const char *p = line; p < m + strlen(needle); p++)
        c += ((unsigned char)*p & 0xC0) != 0x80;
    return c;
}

static const char *line_with(const char *t, const char *needle)
{
    const char *m = strstr(t, needle);
    cr_assert_not_null(m, "no '%s' in\n%s", needle, t);
    while (m > t && m[-1] != '\n')
        m--;
    return m;
}

/* Under a budget: the headroom of an ok run, and an oom row that names
 * what was refused and what was held, in bytes, whole (by allocated bytes,
 * and by reserved bytes with the caching model). */
Test(table, budget_headroom_and_oom_rows)
{
    struct oomb_results r = {0};
    add_simple_run(&r, "mlp", "fits", 64, OOMB_OUTCOME_OK, "");
    add_simple_run(&r, "mlp", "toobig", 64, OOMB_OUTCOME_OOM, "step 0: request of 4194304 bytes "
                                                               "(activations) refused: ...");
    add_simple_run(&r, "mlp", "fragmented", 64, OOMB_OUTCOME_OOM, "step 0: ...");
    for (int i = 0; i < 3; i++)
        r.runs[i].budget_bytes = 84ull << 20;
    r.runs[0].peak_bytes = 80ull << 20;
    r.runs[1].oom_request_bytes = 4ull << 20;
    r.runs[1].oom_in_use_bytes = 83ull << 20;
    r.runs[2].alloc_kind = 1;
    r.runs[2].oom_by_reserved = 1;
    r.runs[2].oom_request_bytes = 12288000;
    r.runs[2].alloc.reserved_peak = 74ull << 20;
    r.runs[2].alloc.oom_reserved = 74ull << 20;
    r.runs[2].alloc.oom_segment = 12ull << 20;
    r.runs[2].alloc.oom_largest_free = 11439616;
    char *t = table_text(&r, 0);
    cr_assert(strstr(t, " headroom "), "%s", t);
    cr_assert(strstr(line_with(t, "fits "), "4.00 MiB"), "%s", t);
    cr_assert(strstr(line_with(t, "toobig"), "none  "), "%s", t);
    cr_assert(strstr(t, "refused 4.00 MiB with 83.00 MiB in use; budget 84.00 MiB\n"), "%s", t);
    cr_assert(strstr(t, "refused 11.72 MiB: reserved 74.00 MiB + a 12.00 MiB segment > budget "
                        "84.00 MiB; largest free 10.91 MiB\n"),
              "%s", t);
    cr_assert(strstr(t, "\nheadroom: the budget less"), "%s", t);
    cr_assert(strstr(t, "\nreserved: peak bytes"), "%s", t);
    free(t);
    oomb_results_free(&r);
}

Test(table, eval_columns_only_in_groups_with_an_evaluation)
{
    struct oomb_results r = {0};
    add_simple_run(&r, "mlp", "none", 64, OOMB_OUTCOME_OK, "");
    add_simple_run(&r, "mlp", "checkpoint", 64, OOMB_OUTCOME_OK, "");
    add_simple_run(&r, "mlp", "noeval", 64, OOMB_OUTCOME_OK, "");
    add_simple_run(&r, "conv", "none", 32, OOMB_OUTCOME_OK, "");
    r.runs[0].has_eval = 1;
    r.runs[0].eval_samples = 10000;
    r.runs[0].test_accuracy = 0.8775;
    r.runs[0].test_accuracy_delta = 0;
    r.runs[0].run_seconds = 2.5;
    r.runs[1].has_eval = 1;
    r.runs[1].eval_samples = 10000;
    r.runs[1].test_accuracy = 0.8734;
    r.runs[1].test_accuracy_delta = -0.0041;
    r.runs[1].run_seconds = 3.75;
    r.runs[2].eval_note = xstrdup("plugin 'noeval' has no evaluate()");
    r.runs[2].run_seconds = 0.25;

    char *t = table_text(&r, 0);
    cr_log_info("%s", t);
    const char *mlp = strstr(t, "mlp (train, batch 64)\n"), *conv = strstr(t, "conv (train");
    cr_assert(mlp && conv && mlp < conv, "%s", t);
    const char *head = strchr(mlp, '\n') + 1;
    cr_assert_neq(end_column(head, "run time"), -1, "%s", t);
    cr_assert_neq(end_column(head, "test acc"), -1, "%s", t);
    cr_assert_neq(end_column(head, "Δ test"), -1, "%s", t);
    /* the columns come in this order, after samples/s and acc */
    cr_assert_lt(end_column(head, "samples/s"), end_column(head, "run time"));
    cr_assert_lt(end_column(head, "run time"), end_column(head, "loss"));
    cr_assert_lt(end_column(head, "loss"), end_column(head, "test acc"));
    cr_assert_lt(end_column(head, "test acc"), end_column(head, "Δ test"));
    cr_assert_lt(end_column(head, "Δ test"), end_column(head, "dev"));
    /* right-aligned under their headers */
    /* in %, as the training accuracy */
    const char *none = line_with(mlp, "87.75%"), *ck = line_with(mlp, "87.34%");
    cr_assert_eq(end_column(none, "87.75%"), end_column(head, "test acc"), "%s", t);
    cr_assert_eq(end_column(ck, "87.34%"), end_column(head, "test acc"), "%s", t);
    cr_assert_eq(end_column(none, "+0.00 pp"), end_column(head, "Δ test"), "%s", t);
    cr_assert_eq(end_column(ck, "-0.41 pp"), end_column(head, "Δ test"), "%s", t);
    cr_assert_eq(end_column(none, "2.50 s"), end_column(head, "run time"), "%s", t);
    cr_assert_eq(end_column(ck, "3.75 s"), end_column(head, "run time"), "%s", t);
    const char *ne = line_with(mlp, "noeval");
    cr_assert_eq(end_column(ne, "250.0 ms"), end_column(head, "run time"), "%s", t);
    /* the scenario's wall time after its group, none for conv (not measured) */
    const char *total = strstr(t, "mlp: total run time 6.50 s (3 run(s))\n");
    cr_assert(total && total > ne && total < conv, "%s", t);
    cr_assert_null(strstr(t, "conv: "), "%s", t);
    /* the group without an evaluation keeps its columns */
    const char *chead = strchr(conv, '\n') + 1;
    cr_assert_eq(end_column(chead, "test acc"), -1, "%s", t);
    cr_assert_eq(end_column(chead, "run time"), -1, "%s", t);
    cr_assert_eq(end_column(chead, "Δ"), -1, "%s", t);
    cr_assert_null(strstr(t, " \n"), "no trailing blanks");
    free(t);
    oomb_results_free(&r);
}

Test(table, scenario_time_after_its_last_group)
{
    struct oomb_results r = {0};
    add_simple_run(&r, "mlp", "none", 32, OOMB_OUTCOME_OK, "");
    add_simple_run(&r, "mlp", "none", 64, OOMB_OUTCOME_OK, "");
    add_simple_run(&r, "mlp", "skippy", 64, OOMB_OUTCOME_SKIPPED, "needs CUDA");
    add_simple_run(&r, "conv", "none", 64, OOMB_OUTCOME_OK, "");
    r.runs[0].run_seconds = 1.5;
    r.runs[1].run_seconds = 90.0;
    r.runs[3].run_seconds = 0.5e-3;
    char *t = table_text(&r, 0);
    cr_log_info("%s", t);
    const char *g32 = strstr(t, "mlp (train, batch 32)"), *g64 = strstr(t, "mlp (train, batch 64)");
    const char *total = strstr(t, "mlp: total run time 91.50 s (2 run(s))\n");
    cr_assert(g32 && g64 && total && g32 < g64 && g64 < total, "%s", t);
    cr_assert_not_null(strstr(total, "\nconv (train, batch 64)\n"), "%s", t);
    cr_assert_not_null(strstr(t, "conv: total run time 500.0 us (1 run(s))\n"), "%s", t);
    /* without evaluation, no run time column */
    for (const char *g = t; (g = strstr(g, "(train, batch ")); g++)
        cr_assert_eq(end_column(strchr(g, '\n') + 1, "run time"), -1, "%s", t);
    double sec;
    cr_assert_eq(oomb_scenario_run_time(&r, "mlp", &sec), 2);
    cr_assert_float_eq(sec, 91.5, 1e-12);
    cr_assert_eq(oomb_scenario_run_time(&r, NULL, &sec), 3);
    cr_assert_float_eq(sec, 91.5005, 1e-12);
    cr_assert_eq(oomb_scenario_run_time(&r, "other", &sec), 0);
    cr_assert(isnan(sec));
    free(t);
    oomb_results_free(&r);
}

/* Runs with fixed numbers, none evaluated: the table is exactly what it was
 * before evaluation columns existed. */
Test(table, table_without_evaluation_is_unchanged)
{
    struct oomb_results r = {0};
    static const int64_t steps[3] = {12000000, 12500000, 11800000};
    const char *labels[] = {"none", "checkpoint"};
    for (int i = 0; i < 2; i++) {
        struct oomb_run_result *run = oomb_results_add_run(&r);
        cr_assert_not_null(run);
        run->scenario = xstrdup("mlp");
        run->strategy = xstrdup(labels[i]);
        run->mode = OOMB_MODE_TRAIN;
        run->batch = 64;
        run->outcome = OOMB_OUTCOME_OK;
        run->reason = xstrdup("");
        run->peak_bytes = (3ull << 20) - (uint64_t)i * (1ull << 20);
        run->peak_by_tag[OOMB_TAG_WEIGHTS] = 1ull << 20;
        run->peak_by_tag[OOMB_TAG_ACTIVATIONS] = (2ull << 20) - (uint64_t)i * (1ull << 20);
        run->n_steps = 3;
        run->step_ns = malloc(3 * sizeof(int64_t));
        cr_assert_not_null(run->step_ns);
        memcpy(run->step_ns, steps, sizeof steps);
        run->step_stats.median = 12000000 + i * 1000000;
        run->step_stats.ci_low = run->step_stats.median - 240000;
        run->step_stats.ci_high = run->step_stats.median + 240000;
        run->samples_per_s = 5333.3 - 400 * i;
        run->final_loss = 1.25 + 0.001 * i;
        run->has_numerics = i;
        run->grad_rel_err = i ? 3.25e-5 : NAN;
        run->eval_note = xstrdup(i ? "plugin 'checkpoint' has no evaluate()" : "");
    }
    char *t = table_text(&r, 0);
    cr_assert_str_eq(t, "mlp (train, batch 64)\n"
                        "  strategy    outcome      peak   weights  grads  optim     activ  wkspace"
                        "  other      step   ci95  samples/s   loss       dev\n"
                        "  none        ok       3.00 MiB  1.00 MiB    0 B    0 B  2.00 MiB      0 B"
                        "    0 B  12.00 ms  \xc2\xb1"
                        "2.0%       5333   1.25         -\n"
                        "  checkpoint  ok       2.00 MiB  1.00 MiB    0 B    0 B  1.00 MiB      0 B"
                        "    0 B  13.00 ms  \xc2\xb1"
                        "1.8%       4933  1.251  3.25e-05\n"
                        "dev: the largest relative deviation from none's final loss, first-step "
                        "gradients, first-step logits and weights (0: bit-identical)\n");
    free(t);
    oomb_results_free(&r);
}
