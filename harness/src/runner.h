/*
 * The runner: every scenario x mode x batch x strategy runs in its own child
 * process (fork) under a time limit, so that a crash, abort, hang or OOM is
 * that run's outcome and the other runs go on. The child is contained
 * (proc.h): every process it starts ends with the run, and it dies with the
 * harness; temporary files live in a folder the harness removes even when
 * interrupted. The parent never runs plugin code (it uses the descriptor
 * copies of loader.h). The parent collects each
 * child's result, fills in numerics against the `none` run of the same
 * scenario, mode and batch, evaluates the scenario's checks, and rewrites the
 * results file atomically after every run.
 */
#ifndef OOMB_RUNNER_H
#define OOMB_RUNNER_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "loader.h"
#include "results.h"
#include "scenario.h"

struct oomb_run_options {
    const char *out_dir;            /* results folder; default "results" */
    const char *const *plugin_dirs; /* extra plugin folders */
    int n_plugin_dirs;
    const char *const *plugin_files; /* extra plugin files */
    int n_plugin_files;
    const char *device; /* NULL: scenario's; "cpu", "cuda", "cuda:N" */
    double timeout_s;   /* > 0 overrides the scenarios' */
    int quiet;          /* no progress lines on stderr */
    int calibrate;      /* time the reference GEMM after every step
                           of a CPU run (calibrate.h) */
    int threads;        /* > 0 overrides the scenarios' `threads` */
    int64_t steps;      /* > 0 overrides the scenarios' measured steps (and epochs) */
    double epochs;      /* > 0 overrides `steps.epochs` of the scenarios counted in
                           epochs (the others keep their steps) */
    /* For `fit`: has_warmup: `warmup` replaces the scenarios' warm-up steps;
     * batch > 0: the one batch size of every scenario; has_budget: `budget`
     * replaces the scenarios' budgets (0: unlimited); modes (OOMB_MODE_*
     * bits) != 0: only these modes; only_label: only the strategy with this
     * label, without its configuration's `none` as a reference. */
    int has_warmup;
    int64_t warmup;
    int64_t batch;
    int has_budget;
    uint64_t budget;
    uint32_t modes;
    const char *only_label;
    /* run --allocator: 1 + enum oomb_allocator_kind overrides every
     * strategy's allocator kind (0: the scenario's); run --alloc-conf: when
     * has_alloc_conf, alloc_conf replaces every strategy's options (and the
     * kind becomes caching unless --allocator says otherwise). */
    int allocator;
    int has_alloc_conf;
    struct oomb_cachealloc_conf alloc_conf;
    int instructions;   /* under the launcher's callgrind (instr.h): time
                           limits are stretched by OOMB_INSTR_TIMEOUT_FACTOR */
    int allow_unsafe_plugins; /* load plugins from world-writable places
                                 (loader.h, OOMB_LOAD_ALLOW_UNSAFE) */
    /* run --shard I/N: only the configurations (scenario x mode x batch,
     * with all their strategies) that the runner puts in shard
     * shard_index of shard_count; shard_count 0: everything. */
    int shard_index, shard_count;
    /* run --commit REV: the source revision the results record (else a CI
     * variable or git, oomb_source_revision) */
    const char *commit;
    /* run --filter: only runs whose name "scenario/mode/batch/label"
     * (mlp/train/256/fp16) matches this POSIX extended regular expression,
     * plus the `none` of each configuration with a selected run (the
     * reference); a check naming a run left out is skipped. NULL: all. */
    const char *filter;
    /* run --dry-run, plan: every run on the counting backend (backend.h):
     * the CPU backend's allocations, tracked as in a real run, with no
     * arithmetic and no memory behind them; a CUDA scenario is planned as
     * on the CPU. Times, losses and accuracies of such runs mean nothing
     * and the results mark each run `dry_run`. */
    int dry_run;
    /* Plugins already loaded (with the same folders and files as above),
     * used instead of loading them again: fit and plan make one runner call
     * per probe. NULL: the runner loads them. Borrowed, never freed. */
    const struct oomb_registry *registry;
    /* Streaming: called after each run (index 1..total of the runs this
     * invocation does, the run as recorded, seconds since the start, and
     * the seconds still to go by the estimated cost of the runs left,
     * parameters x batch x steps, against that of the runs done), and
     * after the last run of each scenario with the results so far and the
     * range [first, last) of that scenario's runs. Either may be NULL;
     * `user` is passed back. */
    void (*on_run)(void *user, int index, int total, const struct oomb_run_result *run,
                   double elapsed_s, double eta_s);
    void (*on_scenario)(void *user, const struct oomb_results *res, int first, int last);
    void *user;
};

/* Evaluates check record cr (its expr) over runs [first, last) of res, one
 * configuration's runs, as `run` does after them: sets status, lhs, rhs, op
 * and message. Returns 1 when the check failed, else 0. */
int oomb_runner_eval_check(struct oomb_results *res, int first, int last,
                           struct oomb_check_record *cr);

struct oomb_run_summary {
    int n_runs;
    int n_failed; /* outcome crash, timeout or error */
    int n_oom;
    int n_checks;
    int n_checks_failed;
    char results_path[PATH_MAX];
};

/*
 * Load the scenarios, validate them against the plugins, run everything and
 * write the results file into opts->out_dir. *res receives the results (the
 * caller frees with oomb_results_free, also on failure). Returns:
 *   OOMB_OK           everything ran (see *sum for failed runs and checks);
 *   OOMB_ERR_PARSE / OOMB_ERR_INVALID / OOMB_ERR_NOT_USABLE
 *                     input or usage error, nothing run, no file written;
 *   OOMB_ERR_IO / OOMB_ERR_INTERNAL
 *                     the harness itself failed.
 * err holds the message for any non-OK return.
 */
int oomb_runner_run(const char *const *scenario_paths, int n_paths,
                    const struct oomb_run_options *opts, struct oomb_results *res,
                    struct oomb_run_summary *sum, char *err, size_t err_len) OOMB_WARN_UNUSED;

/* ---- internal, shared by runner.c and child.c ---- */

struct oomb_tracker_stats;

struct oomb_dataset;

struct oomb_job {
    const struct oomb_scenario *sc;
    const struct oomb_strategy_spec *spec;
    const struct oomb_loaded_plugin *plugin;
    enum oomb_mode mode;
    enum oomb_backend backend;
    int device;
    int64_t batch;
    int64_t measured_steps; /* for this batch (a scenario in epochs depends on it) */
    /* fashion-mnist: the decoded training and test sets (oomb_dataset_save
     * files), else NULL */
    const char *train_path, *test_path;
    const char *tmpdir;
    char ref_prefix[PATH_MAX + 96]; /* tmpdir/ref-<scenario>-<mode>-<batch> */
    int is_reference;               /* this is the `none` run: write reference tensors */
    int dry_run;                    /* the counting backend: allocations, no arithmetic */
    int calibrate;                  /* CPU: time the reference GEMM after each step */
    int threads;                    /* BLAS / OpenMP threads of the child */
    struct oomb_allocator_spec allocator; /* the strategy's, with run's overrides */
    struct oomb_pipeline_spec pipeline;   /* the strategy's */
};

/* Runs one job in the current (child) process and writes its single-run
 * results file to result_path. Returns the process exit status to use. */
int oomb_child_main(const struct oomb_job *job, struct oomb_tracker_stats *shared,
                    const char *result_path);

#endif
