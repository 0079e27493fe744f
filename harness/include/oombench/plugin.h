/*
 * oombench plugin ABI, version 2 (minor 0).
 *
 * This is the only public header of oombench. A strategy plugin is a shared
 * object that exports one function, OOMB_PLUGIN_ENTRY_NAME, returning a
 * pointer to a static `struct oomb_plugin` descriptor. The harness loads it with
 * dlopen, checks the descriptor, and drives it through its callbacks, handing
 * it a `struct oomb_host` table: tracked allocation, the kernel ops of the
 * selected backend (CPU or CUDA), the seeded data, logging and phase marks.
 *
 * A plugin links nothing of the harness and never exits or aborts: every
 * callback returns an oomb_status and writes a human-readable message into the
 * caller-provided buffer `msg` (always NUL-terminated by the plugin, at most
 * `msg_len` bytes including the NUL).
 *
 * Stability rules (see docs/plugin-abi.md):
 *   - every struct here starts with `struct_size` (and the descriptor with the
 *     ABI version); the reader only reads fields within struct_size;
 *   - fields are appended, never reordered or removed; enum values likewise;
 *   - a breaking change bumps OOMB_ABI_MAJOR.
 *
 * Memory spaces: host->alloc takes a space. A pointer in OOMB_SPACE_DEVICE is
 * a *device* pointer of the selected backend (plain host memory on the CPU
 * backend, CUDA device memory on the GPU): a plugin never dereferences it and
 * reads and writes it only through ops (ops->to_host / ops->to_device /
 * kernels) and host->copy_async. A pointer in OOMB_SPACE_HOST or
 * OOMB_SPACE_HOST_PINNED is ordinary memory of this process that the plugin
 * may read and write (after the copies into it have completed), and that the
 * ops of the `host_ops` table compute on. Pointer arithmetic (offsets into a
 * buffer) is allowed in every space.
 *
 * Kernels: `ops` is the dense core every strategy shares. Kernels that only
 * some strategies use (int8, sparse formats, 8-bit Adam, distillation loss)
 * are in named, versioned extension tables that a plugin asks for by name
 * with host->get_extension (OOMB_EXT_* below).
 */
#ifndef OOMBENCH_PLUGIN_H
#define OOMBENCH_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OOMB_ABI_MAJOR 2
#define OOMB_ABI_MINOR 1

/* The one symbol a plugin exports. */
#define OOMB_PLUGIN_ENTRY oomb_plugin_entry
#define OOMB_PLUGIN_ENTRY_NAME "oomb_plugin_entry"

#if defined(__GNUC__)
#define OOMB_EXPORT __attribute__((visibility("default")))
#define OOMB_WARN_UNUSED __attribute__((warn_unused_result))
#else
#define OOMB_EXPORT
#define OOMB_WARN_UNUSED
#endif

/* Whether the table at `ptr` (any struct of this header that starts with
 * struct_size: the host table, the op table, the run info) holds `member`
 * and it is set (not NULL or 0): for a plugin that uses a member added in a
 * later minor and wants to run on an older host of the same major. */
#define OOMB_HAS(ptr, member)                                                                      \
    ((ptr)->struct_size >= offsetof(__typeof__(*(ptr)), member) + sizeof((ptr)->member) &&       \
     (ptr)->member)

/* ---------------------------------------------------------------- status -- */

/* One status enum for the whole project. Values are only ever appended. */
enum oomb_status {
    OOMB_OK = 0,
    OOMB_ERR_OOM = 1,            /* allocation refused: memory budget or device full */
    OOMB_ERR_INVALID = 2,        /* bad argument, shape or parameter */
    OOMB_ERR_UNSUPPORTED = 3,    /* this mode/backend/layer is not supported */
    OOMB_ERR_BACKEND = 4,        /* a kernel/library call failed (message says which) */
    OOMB_ERR_IO = 5,             /* file or pipe error */
    OOMB_ERR_NOT_USABLE = 6,     /* plugin cannot run on this machine (skipped) */
    OOMB_ERR_NUMERIC = 7,        /* NaN/Inf where it must not be */
    OOMB_ERR_INTERNAL = 8,       /* a bug */
    OOMB_ERR_PARSE = 9,          /* input file malformed */
    OOMB_ERR_ABI = 10,           /* plugin descriptor rejected */
    OOMB_ERR_NOT_APPLICABLE = 11 /* strategy does not apply (mode, layer kind) */
};

/* A status in words ("out of memory"), for messages; "unknown status" for a
 * value this header does not know. The string is static. */
static inline const char *oomb_status_name(int status)
{
    switch (status) {
    case OOMB_OK: return "ok";
    case OOMB_ERR_OOM: return "out of memory";
    case OOMB_ERR_INVALID: return "invalid argument";
    case OOMB_ERR_UNSUPPORTED: return "unsupported";
    case OOMB_ERR_BACKEND: return "backend error";
    case OOMB_ERR_IO: return "I/O error";
    case OOMB_ERR_NOT_USABLE: return "not usable here";
    case OOMB_ERR_NUMERIC: return "non-finite value";
    case OOMB_ERR_INTERNAL: return "internal error";
    case OOMB_ERR_PARSE: return "parse error";
    case OOMB_ERR_ABI: return "plugin ABI error";
    case OOMB_ERR_NOT_APPLICABLE: return "not applicable";
    default: return "unknown status";
    }
}

/* ------------------------------------------------------------ enums ------ */

enum oomb_tag {
    OOMB_TAG_WEIGHTS = 0,
    OOMB_TAG_GRADS = 1,
    OOMB_TAG_OPTIMIZER = 2,
    OOMB_TAG_ACTIVATIONS = 3,
    OOMB_TAG_WORKSPACE = 4,
    OOMB_TAG_OTHER = 5,
    OOMB_TAG_COUNT = 6
};

/* Where an allocation lives. The memory budget of a run applies to the
 * device space; every space is tracked per tag and reported. On the CPU
 * backend all three are RAM of this process (and the results say so). */
enum oomb_space {
    OOMB_SPACE_DEVICE = 0,      /* the backend's memory: GPU memory, or RAM on the CPU */
    OOMB_SPACE_HOST = 1,        /* pageable host memory */
    OOMB_SPACE_HOST_PINNED = 2, /* page-locked host memory (CUDA: cudaHostAlloc), for
                                   copies that overlap compute */
    OOMB_SPACE_COUNT = 3
};

enum oomb_phase {
    OOMB_PHASE_OTHER = 0, /* setup, data loading, bookkeeping */
    OOMB_PHASE_FORWARD = 1,
    OOMB_PHASE_BACKWARD = 2,
    OOMB_PHASE_UPDATE = 3,
    OOMB_PHASE_COUNT = 4
};

/* Bit masks, combined in oomb_plugin.modes / .backends. */
enum oomb_mode { OOMB_MODE_TRAIN = 1u << 0, OOMB_MODE_INFER = 1u << 1 };
enum oomb_backend { OOMB_BACKEND_CPU = 1u << 0, OOMB_BACKEND_CUDA = 1u << 1 };

enum oomb_dtype {
    OOMB_F32 = 0,
    OOMB_F16 = 1, /* IEEE binary16, stored as uint16_t */
    OOMB_I8 = 2,
    OOMB_I32 = 3,
    OOMB_U8 = 4
};

enum oomb_log_level { OOMB_LOG_ERROR = 0, OOMB_LOG_WARN = 1, OOMB_LOG_INFO = 2, OOMB_LOG_DEBUG = 3 };

enum oomb_optimizer { OOMB_OPT_SGD = 0, OOMB_OPT_ADAM = 1 };

enum oomb_param_type { OOMB_PARAM_INT = 0, OOMB_PARAM_FLOAT = 1, OOMB_PARAM_STRING = 2 };

/* ------------------------------------------------------------ model ------ */

enum oomb_layer_kind {
    OOMB_LAYER_LINEAR = 0, /* y = x W^T + b; W (out, in) */
    OOMB_LAYER_RELU = 1,
    OOMB_LAYER_GELU = 2, /* tanh approximation */
    /* since ABI 1.1 */
    OOMB_LAYER_CONV2D = 3,    /* 2-D convolution, NCHW per sample, square kernel */
    OOMB_LAYER_MAXPOOL = 4,   /* 2-D max pooling, no padding */
    OOMB_LAYER_BATCHNORM = 5, /* batch norm over (batch, spatial) per channel */
    OOMB_LAYER_LAYERNORM = 6, /* layer norm over the last dimension */
    OOMB_LAYER_FLATTEN = 7,   /* identity on the flattened sample (a shape change) */
    OOMB_LAYER_RESIDUAL = 8,  /* out = in + body(in) */
    OOMB_LAYER_ATTENTION = 9  /* multi-head self-attention with its projections */
};

/*
 * One layer of a sequential model. Sizes are per sample, flattened:
 * a layer maps (B, in_features) to (B, out_features). The loss (softmax +
 * cross-entropy over `classes`) follows the last layer and is not a layer.
 *
 * attrs and parameter layout (F32, in this order) per kind:
 *   LINEAR     attrs[0] = rows per sample R (0 means 1): the layer applies
 *              y = x W^T + b to each of the R rows of in_features/R values
 *              (R > 1: per token). W (out/R, in/R), then b (out/R).
 *   RELU, GELU, FLATTEN  no attrs, no parameters.
 *   CONV2D     attrs = C, H, W, OC, K, stride, pad: input (C, H, W), output
 *              (OC, OH, OW) with OH = (H + 2 pad - K) / stride + 1, likewise
 *              OW. W (OC, C*K*K) (cross-correlation), then b (OC).
 *   MAXPOOL    attrs = C, H, W, K, stride: output (C, OH, OW), OH =
 *              (H - K) / stride + 1. Ties: the first maximum gets the gradient.
 *   BATCHNORM  attrs = C, S: input (C, S) per sample (S = H*W after a
 *              convolution, 1 after a linear layer). gamma (C), beta (C);
 *              buffers running mean (C), running variance (C) (momentum
 *              0.1, eps 1e-5, unbiased running variance).
 *   LAYERNORM  attrs = T, C: each of T rows of C values normalised (eps
 *              1e-5). gamma (C), beta (C).
 *   RESIDUAL   body: n_body layers applied in sequence, out = in + body(in);
 *              its parameters (and buffers) are its body's, in body order.
 *   ATTENTION  attrs = T, C, H, causal: input (T, C) tokens, H heads of
 *              C/H. Wqkv (3C, C), bqkv (3C), Wo (C, C), bo (C). qkv rows
 *              are [q | k | v], head h uses columns h*C/H .. (h+1)*C/H - 1.
 */
struct oomb_layer {
    uint32_t struct_size;
    enum oomb_layer_kind kind;
    int64_t in_features;
    int64_t out_features;
    int has_bias;       /* linear, conv2d: 1 if the layer has a bias vector */
    int64_t n_params;   /* number of trained F32 parameters (layout above), 0 if none */
    int64_t attrs[8];   /* kind-specific attributes, documented per kind */
    /* since ABI 1.1 */
    int64_t n_buffers;  /* F32 state that is not trained (batch norm statistics) */
    int n_body;         /* RESIDUAL: number of body layers, else 0 */
    const struct oomb_layer *const *body; /* RESIDUAL: n_body pointers, owned by the host */
};

/* Convolution geometry (CONV2D attrs, plus the derived output size). */
struct oomb_conv2d {
    uint32_t struct_size;
    int64_t C, H, W, OC, K, stride, pad, OH, OW;
};

/* Pooling geometry (MAXPOOL attrs, plus the derived output size). */
struct oomb_pool2d {
    uint32_t struct_size;
    int64_t C, H, W, K, stride, OH, OW;
};

struct oomb_model {
    uint32_t struct_size;
    int n_layers;
    const struct oomb_layer *const *layers; /* n_layers pointers, owned by the host */
    int64_t input_features;                 /* per sample */
    int64_t classes;                        /* targets are int32 in [0, classes) */
};

/* What a run is: the scenario x batch x strategy the plugin is asked to do. */
struct oomb_run_info {
    uint32_t struct_size;
    const char *scenario;  /* scenario name */
    enum oomb_mode mode;   /* exactly one bit */
    enum oomb_backend backend;
    int64_t batch;         /* samples per step (the scenario's batch size) */
    int64_t warmup_steps;
    int64_t measured_steps;
    uint64_t seed;
    enum oomb_optimizer optimizer;
    double lr;
    double momentum;      /* SGD */
    double beta1, beta2;  /* Adam */
    double eps;           /* Adam */
    double weight_decay;
    const struct oomb_model *model;
    uint64_t budget_bytes; /* 0: unlimited */
    /* since ABI 1.1 */
    int64_t eval_samples;  /* held-out samples for evaluate() (0: none) */
    /* since ABI 2.1: nonzero in a dry run (`oombench plan`, `run
     * --dry-run`): the ops compute nothing and values read back are zeros,
     * so a plugin whose allocations depend on data (a count of nonzeros, an
     * overflow) allocates what a run on typical data would and says so in
     * its documentation; read it with OOMB_HAS(info, dry_run). */
    int dry_run;
};

/* ------------------------------------------------------------ kernels ---- */

/*
 * The kernel ops of one backend. Every op takes the backend context `k`
 * (ops->ctx) first, never allocates, works on device pointers, and returns
 * OOMB_OK or OOMB_ERR_BACKEND/OOMB_ERR_INVALID; on failure ops->last_error(k)
 * describes it (valid until the next op on the same context).
 *
 * Shapes are written as (rows, cols), row-major. Unless an op says
 * "accumulates", outputs are overwritten. Ops are asynchronous on CUDA
 * (ordered on the run's stream); ops that return a value to the host
 * (to_host, sum, count_*) synchronise.
 */
struct oomb_ops {
    uint32_t struct_size;
    void *ctx;
    const char *backend_name; /* "cpu" or "cuda" */

    const char *(*last_error)(void *k);

    /* ---- memory movement (bytes) */
    int (*to_host)(void *k, void *dst_host, const void *src_dev, size_t bytes);
    int (*to_device)(void *k, void *dst_dev, const void *src_host, size_t bytes);
    int (*copy)(void *k, void *dst_dev, const void *src_dev, size_t bytes);
    int (*fill)(void *k, float *x, int64_t n, float value);          /* x (n) */
    int (*zero)(void *k, void *x, size_t bytes);

    /* ---- linear layer. dtype: OOMB_F32 or OOMB_F16 for inp/weight/out (and
     * dout/dinp); accumulation is always FP32; bias, dweight and dbias are
     * always FP32. */
    int (*linear_forward)(void *k, enum oomb_dtype dt,
                          void *out,          /* (B, OC) */
                          const void *inp,    /* (B, C) */
                          const void *weight, /* (OC, C) */
                          const float *bias,  /* (OC) or NULL */
                          int64_t B, int64_t C, int64_t OC);
    /* dinp is overwritten (may be NULL to skip); dweight and dbias accumulate. */
    int (*linear_backward)(void *k, enum oomb_dtype dt,
                           void *dinp,         /* (B, C) or NULL */
                           float *dweight,     /* (OC, C) accumulates */
                           float *dbias,       /* (OC) accumulates, or NULL */
                           const void *dout,   /* (B, OC) */
                           const void *inp,    /* (B, C) */
                           const void *weight, /* (OC, C) */
                           int64_t B, int64_t C, int64_t OC);

    /* ---- activations (dt: F32 or F16), n elements */
    int (*relu_forward)(void *k, enum oomb_dtype dt, void *out, const void *inp, int64_t n);
    /* dinp = dout * (inp > 0); dinp may alias dout */
    int (*relu_backward)(void *k, enum oomb_dtype dt, void *dinp, const void *dout,
                         const void *inp, int64_t n);
    int (*gelu_forward)(void *k, enum oomb_dtype dt, void *out, const void *inp, int64_t n);
    /* dinp = dout * gelu'(inp); dinp may alias dout */
    int (*gelu_backward)(void *k, enum oomb_dtype dt, void *dinp, const void *dout,
                         const void *inp, int64_t n);

    /* ---- loss. logits F32 (B, K); targets int32 (B).
     * losses[b] = -log softmax(logits[b])[targets[b]]; probs = softmax(logits). */
    int (*softmax_xent_forward)(void *k, float *losses /* (B) */, float *probs /* (B, K) */,
                                const float *logits, const int32_t *targets, int64_t B,
                                int64_t K);
    /* dlogits = scale * (probs - onehot(targets)), overwritten. For a mean loss
     * over N samples, scale = 1/N (times the loss scale in mixed precision). */
    int (*softmax_xent_backward)(void *k, float *dlogits /* (B, K) */, const float *probs,
                                 const int32_t *targets, int64_t B, int64_t K, float scale);
    /* correct = number of b with argmax(logits[b]) == targets[b] (synchronises) */
    int (*count_correct)(void *k, const float *logits, const int32_t *targets, int64_t B,
                         int64_t K, int64_t *correct);

    /* ---- optimizers, F32, n elements; `t` is the 1-based update count. */
    int (*sgd_update)(void *k, float *param, const float *grad, float *mom, int64_t n,
                      float lr, float momentum, float weight_decay);
    int (*adam_update)(void *k, float *param, const float *grad, float *m, float *v, int64_t n,
                       float lr, float beta1, float beta2, float eps, float weight_decay,
                       int64_t t);

    /* ---- element-wise helpers, F32 */
    int (*scale)(void *k, float *x, int64_t n, float alpha);                     /* x *= a */
    int (*axpy)(void *k, float *y, const float *x, int64_t n, float alpha);      /* y += a x */
    int (*sum)(void *k, const float *x, int64_t n, double *out_host);            /* sync */
    int (*count_nonfinite)(void *k, const void *x, enum oomb_dtype dt, int64_t n,
                           int64_t *out_host); /* sync */

    /* ---- precision casts */
    int (*cast)(void *k, void *dst, enum oomb_dtype dst_dt, const void *src,
                enum oomb_dtype src_dt, int64_t n); /* F32<->F16 */

    /* ---- since ABI 1.1: layers beyond the MLP, F32. Images are NCHW per sample.
     * Ops that need scratch memory say how much (`*_workspace`, bytes for a
     * batch of B); the caller allocates it (tag workspace) and passes it. */
    int (*conv2d_workspace)(void *k, const struct oomb_conv2d *cv, int64_t B, size_t *bytes);
    /* out (B, OC, OH, OW) = conv(inp (B, C, H, W), weight (OC, C*K*K)) + bias */
    int (*conv2d_forward)(void *k, float *out, const float *inp, const float *weight,
                          const float *bias /* (OC) or NULL */, const struct oomb_conv2d *cv,
                          int64_t B, void *ws, size_t ws_bytes);
    /* dinp overwritten (NULL: skip); dweight, dbias (NULL: skip) accumulate */
    int (*conv2d_backward)(void *k, float *dinp, float *dweight, float *dbias,
                           const float *dout, const float *inp, const float *weight,
                           const struct oomb_conv2d *cv, int64_t B, void *ws, size_t ws_bytes);
    int (*maxpool_forward)(void *k, float *out /* (B, C, OH, OW) */,
                           const float *inp /* (B, C, H, W) */, const struct oomb_pool2d *p,
                           int64_t B);
    /* dinp overwritten: dout routed to the first maximum of each window */
    int (*maxpool_backward)(void *k, float *dinp, const float *dout, const float *inp,
                            const struct oomb_pool2d *p, int64_t B);
    /* x (B, C, S). training: normalise with the batch statistics over (B, S),
     * write them to mean/rstd (C each), and if run_mean/run_var are not NULL
     * update them (r = (1 - momentum) r + momentum stat, unbiased variance).
     * Not training: normalise with run_mean/run_var (mean/rstd may be NULL). */
    int (*batchnorm_forward)(void *k, float *out, float *mean, float *rstd, float *run_mean,
                             float *run_var, const float *inp, const float *gamma,
                             const float *beta, int64_t B, int64_t C, int64_t S, int training,
                             float momentum, float eps);
    /* training-mode backward; dinp overwritten, dgamma/dbeta accumulate */
    int (*batchnorm_backward)(void *k, float *dinp, float *dgamma, float *dbeta,
                              const float *dout, const float *inp, const float *mean,
                              const float *rstd, const float *gamma, int64_t B, int64_t C,
                              int64_t S);
    /* x (N, C) rows; mean, rstd (N) written for backward */
    int (*layernorm_forward)(void *k, float *out, float *mean, float *rstd, const float *inp,
                             const float *gamma, const float *beta, int64_t N, int64_t C,
                             float eps);
    /* dinp overwritten, dgamma/dbeta accumulate */
    int (*layernorm_backward)(void *k, float *dinp, float *dgamma, float *dbeta,
                              const float *dout, const float *inp, const float *mean,
                              const float *rstd, const float *gamma, int64_t N, int64_t C);
    int (*attention_workspace)(void *k, int64_t B, int64_t T, int64_t C, int64_t H,
                               size_t *bytes);
    /* The core of self-attention: qkv (B, T, 3C) from the input projection;
     * probs (B, H, T, T) = softmax(q k^T / sqrt(C/H)) per head (masked to
     * j <= i when causal), out (B, T, C) = probs v, heads concatenated. */
    int (*attention_forward)(void *k, float *out, float *probs, const float *qkv, int64_t B,
                             int64_t T, int64_t C, int64_t H, int causal, void *ws,
                             size_t ws_bytes);
    /* dqkv (B, T, 3C) overwritten from dout (B, T, C) and the forward's probs */
    int (*attention_backward)(void *k, float *dqkv, const float *dout, const float *qkv,
                              const float *probs, int64_t B, int64_t T, int64_t C, int64_t H,
                              int causal, void *ws, size_t ws_bytes);
    int (*add)(void *k, float *out, const float *a, const float *b, int64_t n); /* out = a + b */

    /* ---- since ABI 1.2: max pooling that keeps the position of each window's
     * maximum for backward, as PyTorch's max_pool2d_with_indices does (int32
     * here, int64 there). idx (B, C, OH, OW): the offset of the window's
     * first maximum within its (H, W) plane; H * W must fit an int32. */
    int (*maxpool_forward_idx)(void *k, float *out /* (B, C, OH, OW) */, int32_t *idx,
                               const float *inp /* (B, C, H, W) */, const struct oomb_pool2d *p,
                               int64_t B);
    /* dinp (B, C, H, W) overwritten: each dout routed to its idx (overlapping
     * windows add up) */
    int (*maxpool_backward_idx)(void *k, float *dinp, const float *dout, const int32_t *idx,
                                const struct oomb_pool2d *p, int64_t B);
};

/* ------------------------------------------------- extension tables ---- */

/*
 * Kernels that only some strategies use live in named extension tables,
 * fetched with host->get_extension(run, OOMB_EXT_..., version). Each table
 * starts with struct_size and its own version; members are appended within
 * a version line (OOMB_HAS works on them), and a breaking change is a new
 * name. The ops take `k` = the table's ctx, like the core table's, and
 * follow its rules (no allocation, device pointers, ops->last_error(k) on
 * failure; the core table's last_error serves).
 */

/* "oomb.quant": int8 weights and activations, 8-bit optimizer state. */
#define OOMB_EXT_QUANT "oomb.quant"
#define OOMB_EXT_QUANT_VERSION 1u
struct oomb_ext_quant {
    uint32_t struct_size;
    uint32_t version;
    void *ctx;
    /* int8 quantisation (symmetric, per row: scale[r] = absmax(row r) / 127) */
    int (*quantize_rows_i8)(void *k, int8_t *q /* (R, C) */, float *scales /* (R) */,
                            const float *x /* (R, C) */, int64_t R, int64_t C);
    int (*dequantize_rows_i8)(void *k, float *x, const int8_t *q, const float *scales,
                              int64_t R, int64_t C);
    /* out = (xq wq^T) * xs[b] * ws[o] + bias, int8 x int8 -> int32 accumulate.
     * acc is an int32 (B, OC) workspace the caller provides. */
    int (*linear_forward_i8)(void *k, float *out /* (B, OC) */, const int8_t *xq /* (B, C) */,
                             const float *xs /* (B) */, const int8_t *wq /* (OC, C) */,
                             const float *ws /* (OC) */, const float *bias, int32_t *acc,
                             int64_t B, int64_t C, int64_t OC);

    /* Adam with 8-bit block-wise state: m as int8 with a per-block absmax
     * scale, v as uint8 of sqrt(v) (never code 0 for v > 0) with a per-block
     * max scale; blocks of `block` elements (the last may be short).
     * Dequantise, update, requantise. */
    int (*adam8_update)(void *k, float *param, const float *grad, int8_t *m_q, uint8_t *v_q,
                        float *m_scale /* (ceil(n/block)) */, float *v_scale, int64_t n,
                        int64_t block, float lr, float beta1, float beta2, float eps,
                        float weight_decay, int64_t t);
};

/* "oomb.sparse": magnitude pruning, CSR and 2:4 sparse linear layers. */
#define OOMB_EXT_SPARSE "oomb.sparse"
#define OOMB_EXT_SPARSE_VERSION 1u
struct oomb_ext_sparse {
    uint32_t struct_size;
    uint32_t version;
    void *ctx;
    /* count of |x| < thr (synchronises); used to find a magnitude threshold by bisection */
    int (*count_abs_below)(void *k, const float *x, int64_t n, float thr, int64_t *out_host);
    /* mask[i] = |w[i]| >= thr; w[i] = 0 where the mask is 0 */
    int (*prune_by_threshold)(void *k, float *w, uint8_t *mask, int64_t n, float thr);
    int (*apply_mask)(void *k, float *x, const uint8_t *mask, int64_t n); /* x *= mask */
    /* CSR of a dense (R, C) matrix, zeros dropped. rowptr (R+1) int32;
     * colidx (uint16: C <= 65536, else OOMB_ERR_INVALID) and vals have room for
     * nnz = count of nonzeros (the caller counted). 16-bit column indices keep
     * a 90%-sparse matrix at 0.15x its dense bytes. */
    int (*dense_to_csr)(void *k, int32_t *rowptr, uint16_t *colidx, float *vals,
                        const float *w, int64_t R, int64_t C);
    /* out = inp W^T + bias with W (OC, C) in CSR */
    int (*linear_forward_csr)(void *k, float *out /* (B, OC) */, const float *inp /* (B, C) */,
                              const int32_t *rowptr, const uint16_t *colidx, const float *vals,
                              const float *bias, int64_t B, int64_t C, int64_t OC);
    /* 2:4: in each group of 4 consecutive weights of a row keep the two of
     * largest magnitude. vals (OC, C/2) F32; idx (OC, C/8) bytes, each byte
     * holding the two 2-bit positions of two groups (low nibble first group).
     * C must be a multiple of 8. w is also pruned in place (zeros written). */
    int (*compress_2of4)(void *k, float *vals, uint8_t *idx, float *w, int64_t OC, int64_t C);
    int (*linear_forward_2of4)(void *k, float *out /* (B, OC) */, const float *inp /* (B, C) */,
                               const float *vals, const uint8_t *idx, const float *bias,
                               int64_t B, int64_t C, int64_t OC);
};

/* "oomb.distill": the soft-target term of knowledge distillation. */
#define OOMB_EXT_DISTILL "oomb.distill"
#define OOMB_EXT_DISTILL_VERSION 1u
struct oomb_ext_distill {
    uint32_t struct_size;
    uint32_t version;
    void *ctx;
    /* Knowledge distillation, soft part. With ps = softmax(student/T),
     * pt = softmax(teacher/T): losses[b] += weight * T^2 * KL(pt || ps) and
     * dlogits += weight * scale * T * (ps - pt) (both accumulate). */
    int (*soft_xent_accumulate)(void *k, float *losses /* (B) */, float *dlogits /* (B, K) */,
                                const float *student_logits, const float *teacher_logits,
                                int64_t B, int64_t K, float T, float weight, float scale);
};

/* ------------------------------------------------------------ host ------- */

struct oomb_run;   /* opaque: the host's state for one run */
struct oomb_copy_event; /* opaque: a copy's completion (copy_async) */

/*
 * The host table. `run` is passed back to every function. All pointers in it
 * stay valid from create() to destroy().
 */
struct oomb_host {
    uint32_t struct_size;
    uint16_t abi_major, abi_minor;
    struct oomb_run *run;
    const struct oomb_run_info *info;
    const struct oomb_ops *ops;

    /* Parameters of this strategy as set in the scenario, or their declared
     * default. Returns OOMB_OK, or OOMB_ERR_INVALID if the name is not one of
     * the plugin's declared parameters or the value does not convert. The
     * string stays valid until destroy(). */
    int (*param_int)(struct oomb_run *run, const char *name, int64_t *out);
    int (*param_float)(struct oomb_run *run, const char *name, double *out);
    int (*param_str)(struct oomb_run *run, const char *name, const char **out);

    /* Tracked allocation of `bytes` in `space`, tagged `tag`. Returns OOMB_OK
     * and *out; OOMB_ERR_OOM when the memory budget (device space) or the
     * device refuses: the plugin frees what it holds and returns OOMB_ERR_OOM
     * from its callback (the run's outcome is `oom`); OOMB_ERR_BACKEND when
     * host memory (pageable or pinned) cannot be had (outcome `error`, not
     * `oom`: no budget refused it); OOMB_ERR_INVALID for a bad space or tag.
     * `label` is copied. free(NULL) is a no-op; free takes a pointer of any
     * space. The contents of new memory are undefined. */
    int (*alloc)(struct oomb_run *run, enum oomb_space space, size_t bytes, enum oomb_tag tag,
                 const char *label, void **out);
    void (*free)(struct oomb_run *run, void *ptr);

    /* Seeded data. Writes samples [first, first+count) of the batch of step
     * `step` (step counts warm-up and measured steps from 0) into x (count,
     * input_features) F32 and y (count) int32, both device pointers. */
    int (*load_batch)(struct oomb_run *run, int64_t step, int64_t first, int64_t count,
                      float *x, int32_t *y);
    /* Seeded initial parameters of layer `layer` (n_params F32: W then b),
     * the same for every strategy of a scenario. */
    int (*init_params)(struct oomb_run *run, int layer, float *dst);

    /* Phase marks: the time and allocations from here on belong to `phase`. */
    void (*phase)(struct oomb_run *run, enum oomb_phase phase);
    void (*log)(struct oomb_run *run, enum oomb_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;

    /* Reporting, for the numerics and quality sections of the results.
     * report_loss: mean loss over the step's whole batch. report_tensor: a
     * device F32 array copied by the host (names below). report_metric: a
     * strategy-specific scalar (e.g. "loss_scale", "skipped_steps",
     * "sparsity"); the last value reported wins. */
    int (*report_loss)(struct oomb_run *run, int64_t step, double loss);
    int (*report_tensor)(struct oomb_run *run, const char *name, const float *dev, int64_t n);
    int (*report_metric)(struct oomb_run *run, const char *name, double value);
    int (*report_accuracy)(struct oomb_run *run, int64_t correct, int64_t total);

    /* Reference parameters from the scenario's `none` run (its final
     * weights): OOMB_OK, or OOMB_ERR_NOT_USABLE when not available. */
    int (*reference_params)(struct oomb_run *run, int layer, float *dst);

    /* Since ABI 1.1: held-out evaluation (info->eval_samples > 0). load_eval_batch
     * writes held-out samples [first, first+count) like load_batch;
     * report_eval takes what evaluate() found over all of them: correct
     * predictions, samples, summed loss. */
    int (*load_eval_batch)(struct oomb_run *run, int64_t first, int64_t count, float *x,
                           int32_t *y);
    int (*report_eval)(struct oomb_run *run, int64_t correct, int64_t total, double loss_sum);
    /* Initial values of layer `layer`'s buffers (n_buffers F32). */
    int (*init_buffers)(struct oomb_run *run, int layer, float *dst);

    /* ---- ABI 2.0 */

    /* An extension table by name (OOMB_EXT_*) whose version is at least
     * min_version, or NULL when this backend has none (the strategy then
     * returns OOMB_ERR_UNSUPPORTED or works without it). The table is the
     * host's and lives until destroy(). */
    const void *(*get_extension)(struct oomb_run *run, const char *name, uint32_t min_version);

    /* The CPU kernels, computing on host-space memory (OOMB_SPACE_HOST and
     * _PINNED): the update of an optimizer kept on the host. On the CPU
     * backend this is `ops` itself. Its ops run on the calling thread. */
    const struct oomb_ops *host_ops;

    /* Copies between spaces. copy_async copies `bytes` from src (in
     * src_space) to dst (in dst_space), ordered after the work queued so far
     * (so that src holds what the kernels before it wrote), and overlapping
     * the work queued after it where the backend can (CUDA: a copy stream;
     * pinned host memory is needed for the overlap). *done receives an event
     * that the plugin passes to event_wait (the kernels queued after that call
     * run after the copy) or event_sync (the calling thread waits: before the
     * plugin reads a host destination, or frees or reuses the source), and
     * then to event_free exactly once. done may be NULL: the host then waits
     * for the copy before returning. On the CPU backend a copy is done when
     * copy_async returns, but it is counted and timed the same way: the
     * results report the bytes each way, the copies and their time. Returns
     * OOMB_OK, OOMB_ERR_INVALID (a bad space), OOMB_ERR_BACKEND. */
    int (*copy_async)(struct oomb_run *run, void *dst, enum oomb_space dst_space,
                      const void *src, enum oomb_space src_space, size_t bytes,
                      struct oomb_copy_event **done);
    int (*event_wait)(struct oomb_run *run, struct oomb_copy_event *ev);
    int (*event_sync)(struct oomb_run *run, struct oomb_copy_event *ev);
    void (*event_free)(struct oomb_run *run, struct oomb_copy_event *ev);
};

/*
 * Tensor names a plugin reports (the host compares them with `none`):
 *   "grads0"   train: all parameter gradients of the first step, layer by
 *              layer, W then b, unscaled (mean over the batch);
 *   "weights"  train: all parameters after each update (report every step);
 *   "output0"  infer: the logits of the first step (B, classes).
 */

/* ------------------------------------------------------------ plugin ----- */

/* Which bounds of a parameter hold (oomb_param_desc.bounds). */
enum oomb_param_bounds {
    OOMB_PARAM_MIN = 1u << 0,      /* value >= min */
    OOMB_PARAM_MAX = 1u << 1,      /* value <= max */
    OOMB_PARAM_MIN_OPEN = 1u << 2, /* with OOMB_PARAM_MIN: value > min */
    OOMB_PARAM_MAX_OPEN = 1u << 3  /* with OOMB_PARAM_MAX: value < max */
};

/*
 * One parameter of a strategy. The harness checks every value a scenario sets
 * against these when it loads the scenario, before anything runs (and the
 * declared default when it loads the plugin): an INT or FLOAT must parse and
 * lie within the bounds; a STRING with `choices` must be one of them. A bound
 * that depends on the run (micro-batch <= batch) is the plugin's to check.
 *
 * The descriptor array is read with a stride of params[0].struct_size, and
 * every element must carry the same struct_size: set it to
 * sizeof(struct oomb_param_desc) (OOMB_PARAM_DESC_SIZE). The host reads only
 * the fields within it.
 */
struct oomb_param_desc {
    uint32_t struct_size;
    const char *name;
    enum oomb_param_type type;
    const char *default_value; /* as text, e.g. "4", "0.5", "unstructured" */
    const char *unit;          /* e.g. "samples", "steps", "", NULL */
    const char *help;          /* one line */
    unsigned bounds;           /* OOMB_PARAM_MIN | ... (INT, FLOAT) */
    double min, max;
    const char *choices;       /* STRING: the accepted values, '|'-separated
                                  ("unstructured|2:4"); NULL: any string */
};
#define OOMB_PARAM_DESC_SIZE ((uint32_t)sizeof(struct oomb_param_desc))

struct oomb_plugin {
    uint32_t struct_size;
    uint16_t abi_major, abi_minor;
    const char *name;        /* [a-z0-9_]+, unique */
    const char *description; /* one line */
    uint32_t modes;          /* OOMB_MODE_* bits */
    uint32_t backends;       /* OOMB_BACKEND_* bits */
    const struct oomb_param_desc *params; /* n_params, stride params[0].struct_size */
    int n_params;

    /* Optional. OOMB_OK if the plugin can run here, else OOMB_ERR_NOT_USABLE
     * with the reason in msg (the run is then skipped, not failed). */
    int (*usable)(const struct oomb_host *host, char *msg, size_t msg_len);
    /* Required. Allocate weights and state; *state is the plugin's own. */
    int (*create)(const struct oomb_host *host, void **state, char *msg, size_t msg_len);
    /* Required. One step over the whole batch of `step` (warm-up and measured
     * steps count from 0): forward, and for train backward and update. */
    int (*step)(void *state, int64_t step, char *msg, size_t msg_len);
    /* Optional. After the last step: final reports (accuracy, metrics). */
    int (*finish)(void *state, char *msg, size_t msg_len);
    /* Required. Free everything; called after create succeeded, also after a
     * failed step. Must not fail. */
    void (*destroy)(void *state);
    /* Since ABI 1.1. Optional. Train mode, after finish, when info->eval_samples
     * > 0: classify the held-out set with the trained model as this strategy
     * keeps it and call host->report_eval once. Memory it allocates counts
     * like any other. Without it the results say evaluation is unavailable. */
    int (*evaluate)(void *state, char *msg, size_t msg_len);
};

typedef const struct oomb_plugin *(*oomb_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* OOMBENCH_PLUGIN_H */
