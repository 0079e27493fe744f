/*
 * Private to the CPU backend: the context behind ops.ctx, shared by the op
 * table (ops_cpu.c, ops_cpu_layers.c) and the backend object (backend_cpu.c).
 */
#ifndef OOMB_KERNELS_OPS_CPU_H
#define OOMB_KERNELS_OPS_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "oombench/plugin.h"

#define OOMB_CPU_ERR_LEN 256
#define OOMB_CPU_FIXED_MARKS 64

struct oomb_cpu_ctx {
    char err[OOMB_CPU_ERR_LEN]; /* last error of an op, "" when none yet */

    /* Timer marks: host bookkeeping, not tensor memory. `marks` points at
     * `marks_fixed` until more than OOMB_CPU_FIXED_MARKS are taken, then at a
     * heap array owned by the context. */
    int64_t marks_fixed[OOMB_CPU_FIXED_MARKS];
    int64_t *marks;
    int n_marks;
    int cap_marks;

    char name[128];    /* CPU model name */
    char runtime[256]; /* BLAS description */

    /* The extension tables (OOMB_EXT_* of <oombench/plugin.h>), each with
     * ctx = this context; filled by oomb_cpu_ops_init, handed out by
     * oomb_cpu_get_extension, valid as long as the context. */
    struct oomb_ext_quant ext_quant;
    struct oomb_ext_sparse ext_sparse;
    struct oomb_ext_distill ext_distill;
};

/* Writes the message of a failed op into the context (k may be NULL) and
 * returns `status`. */
int oomb_cpu_set_error(void *k, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Argument checks of the ops; each returns from the calling op on failure. */
#define CHECK_CTX()                                                                                \
    do {                                                                                           \
        if (!k)                                                                                    \
            return OOMB_ERR_INVALID;                                                               \
    } while (0)
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return oomb_cpu_set_error(k, OOMB_ERR_INVALID, __VA_ARGS__);                           \
    } while (0)

/* Fills every op of `ops` (struct_size, ctx, backend_name included) and the
 * extension tables of `ctx` (struct_size, version, ctx included). */
void oomb_cpu_ops_init(struct oomb_ops *ops, struct oomb_cpu_ctx *ctx);

/* The extension table `name` (OOMB_EXT_QUANT, _SPARSE, _DISTILL) of the
 * context `k` (a struct oomb_cpu_ctx), or NULL for another name or a NULL
 * argument: the get_extension of the backend (kernels/backend.h). */
const void *oomb_cpu_get_extension(void *k, const char *name);

/* The ABI 1.1 layer ops (ops_cpu_layers.c), with the signatures and contracts
 * of the same-named members of struct oomb_ops. `k` is a struct oomb_cpu_ctx.
 * Workspace sizes: conv2d needs one sample's im2col matrix (C*K*K*OH*OW
 * floats, independent of B) for forward and backward; attention needs one
 * (T, T) float matrix for backward and nothing for forward. */
int oomb_cpu_conv2d_workspace(void *k, const struct oomb_conv2d *cv, int64_t B, size_t *bytes);
int oomb_cpu_conv2d_forward(void *k, float *out, const float *inp, const float *weight,
                            const float *bias, const struct oomb_conv2d *cv, int64_t B, void *ws,
                            size_t ws_bytes);
int oomb_cpu_conv2d_backward(void *k, float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const struct oomb_conv2d *cv,
                             int64_t B, void *ws, size_t ws_bytes);
int oomb_cpu_maxpool_forward(void *k, float *out, const float *inp, const struct oomb_pool2d *p,
                             int64_t B);
int oomb_cpu_maxpool_backward(void *k, float *dinp, const float *dout, const float *inp,
                              const struct oomb_pool2d *p, int64_t B);
int oomb_cpu_maxpool_forward_idx(void *k, float *out, int32_t *idx, const float *inp,
                                 const struct oomb_pool2d *p, int64_t B);
int oomb_cpu_maxpool_backward_idx(void *k, float *dinp, const float *dout, const int32_t *idx,
                                  const struct oomb_pool2d *p, int64_t B);
int oomb_cpu_batchnorm_forward(void *k, float *out, float *mean, float *rstd, float *run_mean,
                               float *run_var, const float *inp, const float *gamma,
                               const float *beta, int64_t B, int64_t C, int64_t S, int training,
                               float momentum, float eps);
int oomb_cpu_batchnorm_backward(void *k, float *dinp, float *dgamma, float *dbeta,
                                const float *dout, const float *inp, const float *mean,
                                const float *rstd, const float *gamma, int64_t B, int64_t C,
                                int64_t S);
int oomb_cpu_layernorm_forward(void *k, float *out, float *mean, float *rstd, const float *inp,
                               const float *gamma, const float *beta, int64_t N, int64_t C,
                               float eps);
int oomb_cpu_layernorm_backward(void *k, float *dinp, float *dgamma, float *dbeta,
                                const float *dout, const float *inp, const float *mean,
                                const float *rstd, const float *gamma, int64_t N, int64_t C);
int oomb_cpu_attention_workspace(void *k, int64_t B, int64_t T, int64_t C, int64_t H,
                                 size_t *bytes);
int oomb_cpu_attention_forward(void *k, float *out, float *probs, const float *qkv, int64_t B,
                               int64_t T, int64_t C, int64_t H, int causal, void *ws,
                               size_t ws_bytes);
int oomb_cpu_attention_backward(void *k, float *dqkv, const float *dout, const float *qkv,
                                const float *probs, int64_t B, int64_t T, int64_t C, int64_t H,
                                int causal, void *ws, size_t ws_bytes);
int oomb_cpu_add(void *k, float *out, const float *a, const float *b, int64_t n);

#endif
