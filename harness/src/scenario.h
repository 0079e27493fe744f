/*
 * Scenario files (YAML under scenarios/): what to run. Parsed with libyaml into
 * `struct oomb_scenario`; every error names file:line:column and the key.
 * The format is documented in docs/scenario-format.md.
 */
#ifndef OOMB_SCENARIO_H
#define OOMB_SCENARIO_H

#include <stddef.h>
#include <stdint.h>

#include "cachealloc.h"
#include "oombench/plugin.h"

/* Where something came from in a scenario file (1-based line and column). */
struct oomb_src_loc {
    const char *file; /* points into the owning scenario's path */
    int line, col;
};

/* A scalar parameter as written (the plugin's declared type converts it). */
struct oomb_kv {
    char *key;
    char *value;
    struct oomb_src_loc loc;
};

/* How device memory is counted (`allocator:`): `exact`, the bytes tensors
 * use (the default), or `caching`, those bytes replayed through the model of
 * PyTorch's caching allocator (cachealloc.h), whose reserved bytes the
 * budget then applies to. */
enum oomb_allocator_kind { OOMB_ALLOCATOR_EXACT = 0, OOMB_ALLOCATOR_CACHING = 1 };

struct oomb_allocator_spec {
    enum oomb_allocator_kind kind;
    struct oomb_cachealloc_conf conf; /* PYTORCH_CUDA_ALLOC_CONF options; caching only */
};

/* "exact" or "caching". */
const char *oomb_allocator_kind_name(enum oomb_allocator_kind k);

/* Options in PYTORCH_CUDA_ALLOC_CONF's syntax ("max_split_size_mb:128,
 * expandable_segments:True"; keys max_split_size_mb,
 * roundup_power2_divisions, expandable_segments,
 * garbage_collection_threshold, and oombench's empty_cache:never|step) into
 * *out, which is first reset to PyTorch's defaults. Returns OOMB_OK, or
 * OOMB_ERR_PARSE with the offending option in err (the same limits as the
 * scenario keys). */
int oomb_parse_alloc_conf(const char *text, struct oomb_cachealloc_conf *out, char *err,
                          size_t err_len) OOMB_WARN_UNUSED;

/* How the input reaches the step (`pipeline:`): `resident`, the whole data
 * set (Fashion-MNIST) or every step's samples (synthetic) made in host
 * memory before the first step (the default), or `streaming`, each batch
 * read from the data set's files (or generated) when the step asks for it,
 * `prefetch` batches ahead by a loader thread. */
enum oomb_pipeline_kind { OOMB_PIPELINE_RESIDENT = 0, OOMB_PIPELINE_STREAMING = 1 };

struct oomb_pipeline_spec {
    enum oomb_pipeline_kind kind;
    int prefetch; /* streaming: batches made ahead, 0..OOMB_SCENARIO_MAX_PREFETCH */
    int pinned;   /* staging buffers in page-locked memory (CUDA; the CPU ignores it) */
};
#define OOMB_SCENARIO_MAX_PREFETCH 16

/* "resident" or "streaming". */
const char *oomb_pipeline_kind_name(enum oomb_pipeline_kind k);

/* One strategy to run: a plugin name, a label unique in the scenario
 * (defaults to the plugin name) and its parameters. `allocator` and
 * `pipeline` are the scenario's with the entry's own keys over them. */
struct oomb_strategy_spec {
    char *plugin;
    char *label;
    struct oomb_kv *params;
    int n_params;
    struct oomb_src_loc loc;
    struct oomb_allocator_spec allocator;
    struct oomb_pipeline_spec pipeline;
};

/* A check between strategies of one run, e.g.
 * "checkpoint.memory.activations <= 0.6 * none.memory.activations". */
struct oomb_check_spec {
    char *expr;
    struct oomb_src_loc loc;
    uint32_t modes; /* OOMB_MODE_* bits it applies to; 0: every mode */
};

enum oomb_input_kind { OOMB_INPUT_SYNTHETIC = 0, OOMB_INPUT_FASHION_MNIST = 1 };

/* Fashion-MNIST: 60000 training samples (one epoch, for `steps.epochs`) and
 * 10000 test samples (the most `eval` may ask for). */
#define OOMB_SCENARIO_FMNIST_TRAIN_SAMPLES 60000
#define OOMB_SCENARIO_FMNIST_TEST_SAMPLES 10000

struct oomb_scenario {
    char *path;        /* as given */
    char *name;        /* `name:` or the file stem */
    char *description; /* may be "" */

    /* model */
    struct oomb_model model;          /* model.layers points at layer_ptrs */
    struct oomb_layer *layer_storage; /* n_layers: the top-level layers */
    const struct oomb_layer **layer_ptrs;
    /* The layers inside residual bodies, at any depth (n_nested of them), and
     * body_ptrs[i] = &nested_storage[i]: a residual's body is the run
     * body_ptrs[k .. k + n_body) of its own, contiguous, body layers. */
    struct oomb_layer *nested_storage;
    const struct oomb_layer **body_ptrs;
    int n_nested;
    /* The shape of model.input: rank 1 flat (F), 2 tokens (T, C), 3 an image
     * (C, H, W); model.input_features is the product. */
    int input_rank;
    int64_t input_shape[3];

    /* input */
    enum oomb_input_kind input_kind;
    uint64_t seed;
    /* input.separation (synthetic input): the distance between two class
     * centres in standard deviations of the noise (data.h); default
     * OOMB_DATA_SEPARATION */
    double separation;
    /* model.init: 0 pytorch (default: PyTorch's U(+-1/sqrt(fan_in))), 1
     * kaiming (U(+-sqrt(6/fan_in)), data.h oomb_data_init_params_gain) */
    int init_kaiming;

    uint32_t modes; /* OOMB_MODE_* bits: `mode: train`, or a list */
    int64_t *batches;
    int n_batches;

    enum oomb_optimizer optimizer;
    double lr, momentum, beta1, beta2, eps, weight_decay;

    int64_t warmup_steps, measured_steps; /* measured_steps: see epochs */
    /* steps.epochs, 0 when not given. When set, measured_steps keeps its
     * default and the step count depends on the batch size: use
     * oomb_scenario_measured_steps(). */
    double epochs;
    int64_t eval_samples;  /* `eval`: held-out samples for test accuracy (0: none) */
    uint64_t budget_bytes; /* 0: unlimited */
    enum oomb_backend backend;
    int device;       /* CUDA ordinal */
    double timeout_s; /* per run */
    /* BLAS (and OpenMP) threads of each run's child: `threads`, default
     * OOMB_SCENARIO_DEFAULT_THREADS; `run --threads N` overrides it. */
    int threads;

    struct oomb_allocator_spec allocator; /* `allocator:`, default exact */
    struct oomb_pipeline_spec pipeline;   /* `pipeline:`, default resident */

    struct oomb_strategy_spec *strategies;
    int n_strategies;
    struct oomb_check_spec *checks;
    int n_checks;
};

/* One thread unless a scenario or `run --threads` says otherwise: a time
 * measured at one thread means the same on a laptop and on a 64-core runner,
 * and the BLAS's choice of thread count (all cores, as OpenBLAS does by
 * default) is not what a verdict should depend on. */
#define OOMB_SCENARIO_DEFAULT_THREADS 1
#define OOMB_SCENARIO_MAX_THREADS 1024

/*
 * Limits on untrusted scenario text (docs/scenario-format.md, "Limits"). They
 * are checked before libyaml builds the document and before any walker
 * recurses into it, so no input can exhaust the stack, the time or the memory
 * of the loader.
 */
#define OOMB_SCENARIO_MAX_FILE (1 << 20)   /* bytes of one scenario file */
#define OOMB_SCENARIO_MAX_DEPTH 64         /* nested sequences and mappings */
#define OOMB_SCENARIO_MAX_NODES 100000     /* nodes, aliases expanded */
#define OOMB_SCENARIO_MAX_TEXT (4 << 20)   /* scalar bytes, aliases expanded */
#define OOMB_SCENARIO_MAX_ANCHORS 256      /* anchors (&name) in one file */
#define OOMB_SCENARIO_MAX_NAME 64          /* name, label, plugin: characters */
#define OOMB_SCENARIO_MAX_STRING 4096      /* description, parameter values */
#define OOMB_SCENARIO_MAX_LIST 256         /* batches, strategies, checks, params */
#define OOMB_SCENARIO_MAX_STEPS 10000000   /* warmup + measured steps of a run */
#define OOMB_SCENARIO_MAX_TIMEOUT_S 604800 /* one week */

/* Whether `s` is a safe name for a scenario (it becomes part of file names
 * and chart titles): 1 to OOMB_SCENARIO_MAX_NAME characters of
 * [A-Za-z0-9._-], the first a letter or digit. */
int oomb_scenario_name_ok(const char *s);

/*
 * Load and validate a scenario. Returns OOMB_OK and a heap scenario the caller
 * frees with oomb_scenario_destroy(), or OOMB_ERR_PARSE (malformed YAML,
 * unknown key, wrong type, bad value, shapes that do not fit, a limit above
 * exceeded) with "file:line:col: key 'k': what was expected" in err, or
 * OOMB_ERR_IO with "file: what went wrong" (cannot open or read; not a
 * regular file: a directory, a FIFO or a device is refused without reading
 * from it; larger than OOMB_SCENARIO_MAX_FILE), or OOMB_ERR_OOM.
 */
int oomb_scenario_load(const char *path, struct oomb_scenario **out, char *err, size_t err_len)
    OOMB_WARN_UNUSED;

/*
 * oomb_scenario_load() on text[0..len) already in memory (need not be
 * NUL-terminated; copied as needed, not kept). `path` is what messages name
 * and what the default scenario name is derived from; nothing is opened.
 * Same results and errors (OOMB_ERR_IO for len > OOMB_SCENARIO_MAX_FILE).
 */
int oomb_scenario_load_mem(const char *path, const void *text, size_t len,
                           struct oomb_scenario **out, char *err, size_t err_len) OOMB_WARN_UNUSED;
void oomb_scenario_destroy(struct oomb_scenario *sc);

/* Measured steps of a run at batch size `batch` (>= 1; else 0): the
 * scenario's measured_steps, or, when steps.epochs is set,
 * ceil(epochs * OOMB_SCENARIO_FMNIST_TRAIN_SAMPLES / batch), the steps that
 * take `epochs` passes over the Fashion-MNIST training set. */
int64_t oomb_scenario_measured_steps(const struct oomb_scenario *sc, int64_t batch);

/* Parse a byte size such as "2GiB", "512MiB", "1e9", "100000" (suffixes KiB,
 * MiB, GiB, TiB, KB, MB, GB, TB, B). Returns OOMB_OK or OOMB_ERR_PARSE on
 * syntax errors, negative values and overflow of 64 bits. */
int oomb_parse_bytes(const char *text, uint64_t *out) OOMB_WARN_UNUSED;

/* Parse a duration such as "30s", "2m", "500ms", "10" (seconds). */
int oomb_parse_duration(const char *text, double *seconds) OOMB_WARN_UNUSED;

#endif
