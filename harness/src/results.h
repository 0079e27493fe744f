/*
 * In-memory results of an invocation and their JSON form
 * ("oombench-results/1", docs/results-format.md). Written atomically
 * (temp file in the same directory, fsync, rename) so that a results file on
 * disk is always complete.
 */
#ifndef OOMB_RESULTS_H
#define OOMB_RESULTS_H

#include <stddef.h>
#include <stdint.h>

#include "cachealloc.h"
#include "oombench/plugin.h"

#define OOMB_RESULTS_SCHEMA "oombench-results/2"
/* Files of schema 1 (no BLAS record, no CPU wait) are still read. */
#define OOMB_RESULTS_SCHEMA_V1 "oombench-results/1"

/* Bounds a reader enforces (results files are untrusted input): samples in
 * one array (time, phase, calibration, cpu wait, losses), timeline events of
 * a run, runs of a file, a run's batch and thread counts. */
#define OOMB_RESULTS_MAX_SAMPLES 1000000
#define OOMB_RESULTS_MAX_EVENTS 10000000
#define OOMB_RESULTS_MAX_RUNS 100000
#define OOMB_RESULTS_MAX_BATCH 2147483647
#define OOMB_RESULTS_MAX_THREADS 65536

enum oomb_outcome {
    OOMB_OUTCOME_OK = 0,
    OOMB_OUTCOME_OOM,
    OOMB_OUTCOME_CRASH,
    OOMB_OUTCOME_TIMEOUT,
    OOMB_OUTCOME_ERROR,
    OOMB_OUTCOME_SKIPPED,
    OOMB_OUTCOME_NOT_APPLICABLE,
    OOMB_OUTCOME_COUNT
};

/* "ok", "oom", ... ; NULL for out-of-range. */
const char *oomb_outcome_name(enum oomb_outcome o);
/* Returns the outcome, or -1 for an unknown name. */
int oomb_outcome_parse(const char *name);
const char *oomb_tag_name(enum oomb_tag t);     /* "weights", ... */

struct oomb_run_result;
/* The value of metric `name` the run's plugin reported, or NAN. */
double oomb_run_metric(const struct oomb_run_result *run, const char *name);
/* Whether the run trained or ran another model than the scenario's (a
 * distillation student: the plugin reported "student_weight_bytes"), so
 * that its memory and time are another model's: 1 or 0. */
int oomb_run_is_other_model(const struct oomb_run_result *run);
const char *oomb_phase_name(enum oomb_phase p); /* "other", "forward", ... */

struct oomb_metric {
    char *name;
    double value;
};

/* One allocation event of the timeline. */
struct oomb_event {
    int64_t t_ns;    /* since the run started */
    int64_t delta;   /* +bytes on alloc, -bytes on free */
    uint64_t in_use; /* total bytes in use after the event */
    uint8_t tag;     /* enum oomb_tag */
    uint8_t phase;   /* enum oomb_phase */
    int32_t step;    /* -1 during setup */
    uint64_t reserved; /* allocator: caching: the model's reserved bytes after it; else 0 */
};

struct oomb_stats {
    double median, mean, stddev, min, max, p05, p95;
    double ci_low, ci_high; /* 95% interval of the median (bootstrap) */
};

struct oomb_instr; /* instr.h */

struct oomb_run_result {
    char *scenario;
    /* The scenario file's version (oomb_file_digest), "" when not recorded,
     * and the run's 1-based place among all runs of the invocation without
     * sharding (0: not recorded): merge orders shards' runs by it. */
    char *scenario_digest;
    int64_t seq;
    char *strategy; /* label */
    char *plugin;   /* plugin name */
    char *plugin_path;
    char **param_keys, **param_values; /* effective parameters, declared order */
    int n_params;
    enum oomb_mode mode;
    enum oomb_backend backend;
    int64_t batch;

    enum oomb_outcome outcome;
    char *reason; /* "" when ok */

    /* memory (tracked, exact) */
    uint64_t peak_bytes;
    uint64_t peak_by_tag[OOMB_TAG_COUNT];
    uint64_t host_peak_rss_bytes;
    /* Host memory spaces a plugin allocated in (host->alloc with
     * OOMB_SPACE_HOST, _HOST_PINNED; index 0: the two together, "host" in
     * the results; the device is peak_bytes and peak_by_tag above), tracked
     * exactly like the device, and the
     * copies between spaces (host->copy_async): bytes device->host and
     * host->device, count, summed duration (ns). */
    uint64_t space_peak[OOMB_SPACE_COUNT];
    uint64_t space_peak_by_tag[OOMB_SPACE_COUNT][OOMB_TAG_COUNT];
    uint64_t to_host_bytes, to_device_bytes, n_copies;
    int64_t copy_ns;
    /* CUDA runs that copied: the share of the copy time hidden under compute,
     * 1 - (median step - none's median step) / (copy_ns per step), in [0, 1];
     * has_copy_hidden 0 elsewhere (on the CPU backend copies never overlap). */
    int has_copy_hidden;
    double copy_hidden_share;
    /* allocator: caching (alloc_kind 1, enum oomb_allocator_kind): the
     * model's options and what it saw, and the reserved bytes when the last
     * step ended (results memory.allocator); oom_by_reserved: the run ran
     * out of memory by reserved bytes (memory.oom.cause "reserved"). */
    int alloc_kind;
    struct oomb_cachealloc_conf alloc_conf;
    struct oomb_cachealloc_stats alloc;
    uint64_t reserved_end;
    int oom_by_reserved;
    /* The input pipeline (results memory.input): enum oomb_pipeline_kind,
     * prefetch depth, pinned staging; bytes of the data set held in host
     * memory and of the staging buffers. */
    int pipeline_kind, pipeline_prefetch, pipeline_pinned;
    uint64_t input_dataset_bytes, input_staging_bytes;
    uint64_t oom_request_bytes; /* when outcome == oom: the refused request */
    uint64_t oom_in_use_bytes;  /* ... and the bytes in use at that moment */
    int device_mem_valid;
    uint64_t device_peak_bytes;
    uint64_t device_reserved_peak_bytes; /* the CUDA pool's reserved high-water mark; 0: n/a */
    char *device_mem_method;

    /* time: per measured step, ns */
    int64_t *step_ns;
    int n_steps;
    int64_t *phase_ns[OOMB_PHASE_COUNT]; /* n_steps each (may be NULL) */
    /* Time of each measured step spent waiting for its input (the data
     * phase, results time.phases.data; left out of phase_ns), or NULL. */
    int64_t *data_ns;
    struct oomb_stats data_stats;
    struct oomb_stats step_stats;
    struct oomb_stats phase_stats[OOMB_PHASE_COUNT];
    int64_t *calib_ns;    /* n_steps: the reference GEMM after each step (--calibrate), or NULL */
    double samples_per_s; /* batch / median step time */
    /* Time the run's threads spent runnable but waiting for a CPU during each
     * measured step (Linux schedstat run delay, summed over the threads), or
     * NULL where not measured; and its median share of the step's thread time
     * (wait / (step wall time x threads)), NAN when unknown. A share well
     * above 0 means the machine was busy: the step's wall time says more
     * about the other processes than about this code. */
    int64_t *wait_ns;
    double cpu_wait_share;
    int threads; /* BLAS threads the run used (0: not recorded, schema 1) */

    /* numerics vs the `none` run of the same scenario/mode/batch (-1: n/a) */
    int has_numerics;      /* > 0: the JSON has a "numerics" section */
    double loss_rel_err;   /* final loss */
    double grad_rel_err;   /* first-step gradients, ||a-b||/||b|| */
    double output_rel_err; /* first-step logits (infer) */
    double weight_rel_err; /* max over updates of ||w-w_ref||/||w_ref|| */

    /* quality */
    double *losses; /* per step, warm-up included */
    int n_losses;
    double final_loss;
    int has_accuracy;      /* the JSON has quality.accuracy */
    double accuracy;       /* fraction in [0, 1] */
    double accuracy_delta; /* vs none; NAN when n/a */
    /* held-out evaluation after training (plugin evaluate(), ABI 1.1) */
    int has_eval;               /* the JSON has quality.test_accuracy */
    int64_t eval_samples;       /* held-out samples classified */
    double test_accuracy;       /* fraction in [0, 1]; NAN when n/a */
    double test_loss;           /* mean cross-entropy over them; NAN when n/a */
    double test_accuracy_delta; /* vs none's test accuracy; NAN when n/a */
    char *eval_note;            /* why there is no evaluation ("" or NULL: none wanted) */
    double run_seconds;         /* wall time of create, all steps, finish and evaluate */

    struct oomb_metric *metrics;
    int n_metrics;

    struct oomb_event *events; /* first measured step's timeline */
    int n_events;

    uint64_t budget_bytes; /* the scenario's memory budget; 0: unlimited */
    int dry_run;           /* on the counting backend: memory only ("dry_run": true) */

    struct oomb_instr *instr; /* run --instructions: counts (instr.h), owned; NULL: none */
};

/* A scenario check evaluated on one scenario x mode x batch group. */
enum oomb_check_status {
    OOMB_CHECK_PASS = 0,
    OOMB_CHECK_FAIL = 1,   /* the comparison is false, or a referenced run failed */
    OOMB_CHECK_SKIPPED = 2 /* a referenced run was skipped or not applicable */
};

struct oomb_check_record {
    char *scenario;
    char *expr;
    enum oomb_mode mode;
    int64_t batch;
    enum oomb_check_status status;
    double lhs, rhs; /* NAN when not evaluated */
    char *op;
    char *message; /* why it failed or was skipped; "" on pass */
};

struct oomb_results {
    char *tool_version;
    /* The oombench executable that ran (oomb_file_digest of it), "" when
     * not recorded; and run --shard I/N (shard_count 0: not sharded). */
    char *build_id;
    int shard_index, shard_count;
    /* The source revision measured (run --commit, a CI variable, or git in
     * the first scenario's folder; "" when unknown), where it came from
     * ("--commit", "GITHUB_SHA", ..., "git"), and its commit time (Unix
     * seconds, 0 when unknown): `history` orders by it. */
    char *revision, *revision_from;
    int64_t revision_time;
    char *created; /* ISO-8601 UTC */
    char *host_name, *host_os, *host_cpu;
    int host_cores;
    uint64_t host_mem_bytes;
    char *device_class; /* e.g. "cpu-x86_64" */
    char *device_backend, *device_name, *device_driver, *device_runtime;
    /* The BLAS the CPU kernels called ("" in a schema-1 file): library,
     * version, build description, kernel chosen for this CPU, threading; and
     * the environment variables that steer it (name=value, those set). */
    char *blas_library, *blas_version, *blas_config, *blas_kernel, *blas_parallel;
    char *cpu_isa; /* blas.cpu_isa: the CPU kernels' vector instructions, "" when unknown */
    char **env_names, **env_values;
    int n_env;
    struct oomb_run_result *runs;
    int n_runs;
    struct oomb_check_record *checks;
    int n_checks;
};

/* When the results' code was: the commit time of the revision they record,
 * else their creation time, Unix seconds (0 when neither is readable). */
int64_t oomb_results_when(const struct oomb_results *r);

/* Append a zeroed run and return it (owned by r), or NULL when out of memory.
 * The "not available" numbers (rel errs, final_loss, accuracy,
 * accuracy_delta, test_accuracy, test_loss, test_accuracy_delta,
 * run_seconds, samples_per_s and every oomb_stats field) start as NAN.
 * The array may move: a pointer from an earlier call is invalid after this. */
struct oomb_run_result *oomb_results_add_run(struct oomb_results *r);
/* Free everything a results struct owns (not r itself). */
void oomb_results_free(struct oomb_results *r);
void oomb_run_result_free(struct oomb_run_result *run);

/* Write as JSON to `path` atomically, creating missing directories. Returns
 * OOMB_OK, OOMB_ERR_IO (err names the path and the cause; no temp file is
 * left behind and an existing file is untouched), or OOMB_ERR_INVALID when a
 * byte count exceeds 2^63-1 (JSON integers are long long in jansson). NaN and
 * infinities are written as null; NULL strings as null. */
int oomb_results_write(const struct oomb_results *r, const char *path, char *err,
                       size_t err_len) OOMB_WARN_UNUSED;
/* Read a results file; fills *r (caller frees with oomb_results_free).
 * The file is untrusted: it is checked against docs/results-format.md.
 * Returns OOMB_OK, OOMB_ERR_IO (cannot be opened or read, a folder) or
 * OOMB_ERR_PARSE: not JSON, wrong schema, a field of the wrong type, a
 * required field missing (every run: scenario, strategy, mode, backend,
 * batch, outcome; an ok run also memory.peak_bytes and a non-empty
 * time.samples), a number out of range (negative byte counts, times or
 * batch; accuracies outside [0, 1]) or an array over its bound
 * (OOMB_RESULTS_MAX_*). err then names the file, the run (index, scenario
 * and strategy) and the field with its path:
 * "x.json: run 3 (scenario 'mlp', strategy 'none'): field
 * 'runs[3].memory.peak_bytes': missing (required for an ok run)".
 * Unknown fields are ignored; null and missing optional numbers read as
 * NAN; every string field of the result is non-NULL ("" where the file has
 * none). On failure *r is left empty (nothing to free). */
int oomb_results_read(const char *path, struct oomb_results *r, char *err,
                      size_t err_len) OOMB_WARN_UNUSED;
/* The same for the one-run file a run's child process hands its parent
 * (runner.c): the run's identity (scenario, strategy, mode, backend, batch)
 * is the parent's and may be absent there; all else is checked as above. */
int oomb_results_read_child(const char *path, struct oomb_results *r, char *err,
                            size_t err_len) OOMB_WARN_UNUSED;

/* Robust statistics of n samples (ns); bootstrap CI with a fixed seed, so the
 * same samples always give the same interval. n == 0: all NAN; n == 1: the
 * sample everywhere, stddev 0. */
void oomb_stats_compute(const int64_t *samples, int n, struct oomb_stats *out);

#endif
