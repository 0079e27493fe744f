/*
 * The counting backend: the memory of a run without its arithmetic, for
 * `oombench plan` and `run --dry-run`. Every op of the core table and of the
 * extension tables checks nothing and computes nothing; the ops that return
 * a value to the host return zeros (a loss of 0, no non-finite value, no
 * correct prediction, no weight below a threshold). Device allocations are
 * addresses with nothing behind them; host allocations (pinned staging,
 * offload targets) are address ranges that are never backed (mmap with
 * MAP_NORESERVE), so a plan of a model far larger than this machine holds a
 * page per host buffer and never a tensor.
 *
 * Workspace sizes are the CPU backend's (the same functions answer), so the
 * tracker sees the allocations of a real CPU run, byte for byte: a plan of a
 * CUDA run would also need cuBLAS's and cuDNN's workspace choices, which only
 * a GPU can make (docs/memory-model.md, "Planning without computing").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"

struct count_ctx {
    struct oomb_kernel_backend *cpu; /* answers the workspace queries */
    struct oomb_ext_quant quant;
    struct oomb_ext_sparse sparse;
    struct oomb_ext_distill distill;
    size_t page;
    uint64_t next; /* the next device address handed out */
    int64_t *marks; /* timer marks of the current step */
    int n_marks, cap_marks;
    char name[96];
    char err[256];
};

/* ------------------------------------------------------------ memory ---- */

/* One mapping per allocation: a header page holding the mapping's length,
 * then the bytes (page aligned, so at least as aligned as the CPU
 * backend's 64 bytes). Only the header page is ever touched. */
static int count_map(struct count_ctx *c, size_t bytes, void **out)
{
    *out = NULL;
    size_t len = bytes + c->page;
    if (len < bytes) {
        snprintf(c->err, sizeof c->err, "alloc: %zu bytes overflow the address space", bytes);
        return OOMB_ERR_OOM;
    }
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) {
        snprintf(c->err, sizeof c->err, "alloc: reserving %zu bytes of address space: %s", bytes,
                 strerror(errno));
        return OOMB_ERR_OOM;
    }
    memcpy(p, &len, sizeof len);
    *out = (char *)p + c->page;
    return OOMB_OK;
}

static void count_unmap(struct count_ctx *c, void *ptr)
{
    if (!ptr)
        return;
    char *base = (char *)ptr - c->page;
    size_t len;
    memcpy(&len, base, sizeof len);
    munmap(base, len);
}

/* Device memory: addresses only. Each allocation gets a fresh, 64-byte
 * aligned range of a counter that starts far above anything mapped here and
 * is never reused; nothing maps it, so a search over large batches costs no
 * system call per tensor. Only the ops (all no-ops) ever see these
 * pointers; the harness guards its own reads and writes in a dry run. */
static int count_raw_alloc(void *k, size_t bytes, void **out)
{
    struct count_ctx *c = k;
    if (!c || !out)
        return OOMB_ERR_INVALID;
    uint64_t len = ((uint64_t)(bytes ? bytes : 1) + 63) & ~(uint64_t)63;
    if (len < bytes || c->next + len < c->next) {
        snprintf(c->err, sizeof c->err, "alloc: %zu bytes: out of addresses", bytes);
        return OOMB_ERR_OOM;
    }
    *out = (void *)(uintptr_t)c->next;
    c->next += len;
    return OOMB_OK;
}

static void count_raw_free(void *k, void *ptr)
{
    (void)k, (void)ptr;
}

static int count_host_alloc(void *k, enum oomb_space space, size_t bytes, void **out)
{
    (void)space;
    if (!k || !out)
        return OOMB_ERR_INVALID;
    return count_map(k, bytes, out) == OOMB_OK ? OOMB_OK : OOMB_ERR_BACKEND;
}

static void count_host_free(void *k, enum oomb_space space, void *ptr)
{
    (void)space;
    count_unmap(k, ptr);
}

/* ---------------------------------------------------- copies, timing ---- */

static int count_copy_async(void *k, void *dst, enum oomb_space dst_space, const void *src,
                            enum oomb_space src_space, size_t bytes, void **ev)
{
    (void)k, (void)dst, (void)dst_space, (void)src, (void)src_space, (void)bytes;
    static int complete; /* every copy is complete at once: one shared event */
    if (!ev)
        return OOMB_ERR_INVALID;
    *ev = &complete;
    return OOMB_OK;
}

static int count_ev(void *k, void *ev)
{
    (void)k, (void)ev;
    return OOMB_OK;
}

static void count_ev_free(void *k, void *ev, int64_t *copy_ns)
{
    (void)k, (void)ev, (void)copy_ns;
}

static int count_sync(void *k)
{
    (void)k;
    return OOMB_OK;
}

/* Marks carry the time they were taken: a plan's "step time" is the
 * harness's own bookkeeping, recorded but meaningless. */
static int count_timer_mark(void *k, int *mark_id)
{
    struct count_ctx *c = k;
    if (!c || !mark_id)
        return OOMB_ERR_INVALID;
    if (c->n_marks == c->cap_marks) {
        int cap = c->cap_marks ? 2 * c->cap_marks : 64;
        int64_t *m = cap < (1 << 28) ? realloc(c->marks, (size_t)cap * sizeof *m) : NULL;
        if (!m) {
            snprintf(c->err, sizeof c->err, "timer_mark: out of host memory");
            return OOMB_ERR_OOM;
        }
        c->marks = m;
        c->cap_marks = cap;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    c->marks[c->n_marks] = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    *mark_id = c->n_marks++;
    return OOMB_OK;
}

static int count_timer_resolve(void *k, int mark_id, int64_t *ns)
{
    struct count_ctx *c = k;
    if (!c || !ns || mark_id < 0 || mark_id >= c->n_marks)
        return OOMB_ERR_INVALID;
    *ns = c->marks[mark_id];
    return OOMB_OK;
}

static void count_timer_reset(void *k)
{
    struct count_ctx *c = k;
    if (c)
        c->n_marks = 0;
}

static int count_device_mem(void *k, struct oomb_device_mem *out)
{
    (void)k;
    if (!out)
        return OOMB_ERR_INVALID;
    memset(out, 0, sizeof *out);
    out->method = "none (counting backend: nothing is allocated)";
    return OOMB_OK;
}

/* ------------------------------------------------------------- ops ------ */

static const char *count_last_error(void *k)
{
    return k ? ((struct count_ctx *)k)->err : "counting backend: no context";
}

static int count_to_host(void *k, void *dst_host, const void *src_dev, size_t bytes)
{
    (void)k, (void)src_dev;
    if (bytes && dst_host)
        memset(dst_host, 0, bytes); /* host memory the caller owns: zeros */
    return OOMB_OK;
}

static int nop_to_device(void *k, void *d, const void *s, size_t n)
{
    (void)k, (void)d, (void)s, (void)n;
    return OOMB_OK;
}

static int nop_fill(void *k, float *x, int64_t n, float v)
{
    (void)k, (void)x, (void)n, (void)v;
    return OOMB_OK;
}

static int nop_zero(void *k, void *x, size_t n)
{
    (void)k, (void)x, (void)n;
    return OOMB_OK;
}

static int nop_linear_forward(void *k, enum oomb_dtype dt, void *out, const void *inp,
                              const void *w, const float *b, int64_t B, int64_t C, int64_t OC)
{
    (void)k, (void)dt, (void)out, (void)inp, (void)w, (void)b, (void)B, (void)C, (void)OC;
    return OOMB_OK;
}

static int nop_linear_backward(void *k, enum oomb_dtype dt, void *dinp, float *dw, float *db,
                               const void *dout, const void *inp, const void *w, int64_t B,
                               int64_t C, int64_t OC)
{
    (void)k, (void)dt, (void)dinp, (void)dw, (void)db, (void)dout, (void)inp, (void)w, (void)B,
        (void)C, (void)OC;
    return OOMB_OK;
}

static int nop_act_forward(void *k, enum oomb_dtype dt, void *out, const void *inp, int64_t n)
{
    (void)k, (void)dt, (void)out, (void)inp, (void)n;
    return OOMB_OK;
}

static int nop_act_backward(void *k, enum oomb_dtype dt, void *dinp, const void *dout,
                            const void *inp, int64_t n)
{
    (void)k, (void)dt, (void)dinp, (void)dout, (void)inp, (void)n;
    return OOMB_OK;
}

static int nop_xent_forward(void *k, float *l, float *p, const float *lg, const int32_t *t,
                            int64_t B, int64_t K)
{
    (void)k, (void)l, (void)p, (void)lg, (void)t, (void)B, (void)K;
    return OOMB_OK;
}

static int nop_xent_backward(void *k, float *d, const float *p, const int32_t *t, int64_t B,
                             int64_t K, float s)
{
    (void)k, (void)d, (void)p, (void)t, (void)B, (void)K, (void)s;
    return OOMB_OK;
}

static int count_correct(void *k, const float *lg, const int32_t *t, int64_t B, int64_t K,
                         int64_t *correct)
{
    (void)k, (void)lg, (void)t, (void)B, (void)K;
    if (correct)
        *correct = 0;
    return OOMB_OK;
}

static int nop_sgd(void *k, float *p, const float *g, float *m, int64_t n, float lr, float mo,
                   float wd)
{
    (void)k, (void)p, (void)g, (void)m, (void)n, (void)lr, (void)mo, (void)wd;
    return OOMB_OK;
}

static int nop_adam(void *k, float *p, const float *g, float *m, float *v, int64_t n, float lr,
                    float b1, float b2, float eps, float wd, int64_t t)
{
    (void)k, (void)p, (void)g, (void)m, (void)v, (void)n, (void)lr, (void)b1, (void)b2, (void)eps,
        (void)wd, (void)t;
    return OOMB_OK;
}

static int nop_scale(void *k, float *x, int64_t n, float a)
{
    (void)k, (void)x, (void)n, (void)a;
    return OOMB_OK;
}

static int nop_axpy(void *k, float *y, const float *x, int64_t n, float a)
{
    (void)k, (void)y, (void)x, (void)n, (void)a;
    return OOMB_OK;
}

static int count_sum(void *k, const float *x, int64_t n, double *out)
{
    (void)k, (void)x, (void)n;
    if (out)
        *out = 0;
    return OOMB_OK;
}

static int count_nonfinite(void *k, const void *x, enum oomb_dtype dt, int64_t n, int64_t *out)
{
    (void)k, (void)x, (void)dt, (void)n;
    if (out)
        *out = 0;
    return OOMB_OK;
}

static int nop_cast(void *k, void *d, enum oomb_dtype ddt, const void *s, enum oomb_dtype sdt,
                    int64_t n)
{
    (void)k, (void)d, (void)ddt, (void)s, (void)sdt, (void)n;
    return OOMB_OK;
}

static int count_conv2d_workspace(void *k, const struct oomb_conv2d *cv, int64_t B, size_t *bytes)
{
    struct count_ctx *c = k;
    return c->cpu->ops.conv2d_workspace(c->cpu->ops.ctx, cv, B, bytes);
}

static int nop_conv2d_forward(void *k, float *out, const float *inp, const float *w,
                              const float *b, const struct oomb_conv2d *cv, int64_t B, void *ws,
                              size_t wsb)
{
    (void)k, (void)out, (void)inp, (void)w, (void)b, (void)cv, (void)B, (void)ws, (void)wsb;
    return OOMB_OK;
}

static int nop_conv2d_backward(void *k, float *di, float *dw, float *db, const float *dout,
                               const float *inp, const float *w, const struct oomb_conv2d *cv,
                               int64_t B, void *ws, size_t wsb)
{
    (void)k, (void)di, (void)dw, (void)db, (void)dout, (void)inp, (void)w, (void)cv, (void)B,
        (void)ws, (void)wsb;
    return OOMB_OK;
}

static int nop_pool_forward(void *k, float *out, const float *inp, const struct oomb_pool2d *p,
                            int64_t B)
{
    (void)k, (void)out, (void)inp, (void)p, (void)B;
    return OOMB_OK;
}

static int nop_pool_backward(void *k, float *di, const float *dout, const float *inp,
                             const struct oomb_pool2d *p, int64_t B)
{
    (void)k, (void)di, (void)dout, (void)inp, (void)p, (void)B;
    return OOMB_OK;
}

static int nop_pool_forward_idx(void *k, float *out, int32_t *idx, const float *inp,
                                const struct oomb_pool2d *p, int64_t B)
{
    (void)k, (void)out, (void)idx, (void)inp, (void)p, (void)B;
    return OOMB_OK;
}

static int nop_pool_backward_idx(void *k, float *di, const float *dout, const int32_t *idx,
                                 const struct oomb_pool2d *p, int64_t B)
{
    (void)k, (void)di, (void)dout, (void)idx, (void)p, (void)B;
    return OOMB_OK;
}

static int nop_bn_forward(void *k, float *out, float *mean, float *rstd, float *rm, float *rv,
                          const float *inp, const float *g, const float *b, int64_t B, int64_t C,
                          int64_t S, int training, float mo, float eps)
{
    (void)k, (void)out, (void)mean, (void)rstd, (void)rm, (void)rv, (void)inp, (void)g, (void)b,
        (void)B, (void)C, (void)S, (void)training, (void)mo, (void)eps;
    return OOMB_OK;
}

static int nop_bn_backward(void *k, float *di, float *dg, float *db, const float *dout,
                           const float *inp, const float *mean, const float *rstd, const float *g,
                           int64_t B, int64_t C, int64_t S)
{
    (void)k, (void)di, (void)dg, (void)db, (void)dout, (void)inp, (void)mean, (void)rstd, (void)g,
        (void)B, (void)C, (void)S;
    return OOMB_OK;
}

static int nop_ln_forward(void *k, float *out, float *mean, float *rstd, const float *inp,
                          const float *g, const float *b, int64_t N, int64_t C, float eps)
{
    (void)k, (void)out, (void)mean, (void)rstd, (void)inp, (void)g, (void)b, (void)N, (void)C,
        (void)eps;
    return OOMB_OK;
}

static int nop_ln_backward(void *k, float *di, float *dg, float *db, const float *dout,
                           const float *inp, const float *mean, const float *rstd, const float *g,
                           int64_t N, int64_t C)
{
    (void)k, (void)di, (void)dg, (void)db, (void)dout, (void)inp, (void)mean, (void)rstd, (void)g,
        (void)N, (void)C;
    return OOMB_OK;
}

static int count_attention_workspace(void *k, int64_t B, int64_t T, int64_t C, int64_t H,
                                     size_t *bytes)
{
    struct count_ctx *c = k;
    return c->cpu->ops.attention_workspace(c->cpu->ops.ctx, B, T, C, H, bytes);
}

static int nop_attention_forward(void *k, float *out, float *probs, const float *qkv, int64_t B,
                                 int64_t T, int64_t C, int64_t H, int causal, void *ws, size_t wsb)
{
    (void)k, (void)out, (void)probs, (void)qkv, (void)B, (void)T, (void)C, (void)H, (void)causal,
        (void)ws, (void)wsb;
    return OOMB_OK;
}

static int nop_attention_backward(void *k, float *dqkv, const float *dout, const float *qkv,
                                  const float *probs, int64_t B, int64_t T, int64_t C, int64_t H,
                                  int causal, void *ws, size_t wsb)
{
    (void)k, (void)dqkv, (void)dout, (void)qkv, (void)probs, (void)B, (void)T, (void)C, (void)H,
        (void)causal, (void)ws, (void)wsb;
    return OOMB_OK;
}

static int nop_add(void *k, float *out, const float *a, const float *b, int64_t n)
{
    (void)k, (void)out, (void)a, (void)b, (void)n;
    return OOMB_OK;
}

/* ------------------------------------------------- extension tables ---- */

static int nop_quantize_rows(void *k, int8_t *q, float *s, const float *x, int64_t R, int64_t C)
{
    (void)k, (void)q, (void)s, (void)x, (void)R, (void)C;
    return OOMB_OK;
}

static int nop_dequantize_rows(void *k, float *x, const int8_t *q, const float *s, int64_t R,
                               int64_t C)
{
    (void)k, (void)x, (void)q, (void)s, (void)R, (void)C;
    return OOMB_OK;
}

static int nop_linear_i8(void *k, float *out, const int8_t *xq, const float *xs, const int8_t *wq,
                         const float *ws, const float *bias, int32_t *acc, int64_t B, int64_t C,
                         int64_t OC)
{
    (void)k, (void)out, (void)xq, (void)xs, (void)wq, (void)ws, (void)bias, (void)acc, (void)B,
        (void)C, (void)OC;
    return OOMB_OK;
}

static int nop_adam8(void *k, float *p, const float *g, int8_t *mq, uint8_t *vq, float *ms,
                     float *vs, int64_t n, int64_t block, float lr, float b1, float b2, float eps,
                     float wd, int64_t t)
{
    (void)k, (void)p, (void)g, (void)mq, (void)vq, (void)ms, (void)vs, (void)n, (void)block,
        (void)lr, (void)b1, (void)b2, (void)eps, (void)wd, (void)t;
    return OOMB_OK;
}

static int count_abs_below(void *k, const float *x, int64_t n, float thr, int64_t *out)
{
    (void)k, (void)x, (void)n, (void)thr;
    if (out)
        *out = 0;
    return OOMB_OK;
}

static int nop_prune_by_threshold(void *k, float *w, uint8_t *mask, int64_t n, float thr)
{
    (void)k, (void)w, (void)mask, (void)n, (void)thr;
    return OOMB_OK;
}

static int nop_apply_mask(void *k, float *x, const uint8_t *mask, int64_t n)
{
    (void)k, (void)x, (void)mask, (void)n;
    return OOMB_OK;
}

static int nop_dense_to_csr(void *k, int32_t *rowptr, uint16_t *colidx, float *vals,
                            const float *w, int64_t R, int64_t C)
{
    (void)k, (void)rowptr, (void)colidx, (void)vals, (void)w, (void)R, (void)C;
    return OOMB_OK;
}

static int nop_linear_csr(void *k, float *out, const float *inp, const int32_t *rowptr,
                          const uint16_t *colidx, const float *vals, const float *bias, int64_t B,
                          int64_t C, int64_t OC)
{
    (void)k, (void)out, (void)inp, (void)rowptr, (void)colidx, (void)vals, (void)bias, (void)B,
        (void)C, (void)OC;
    return OOMB_OK;
}

static int nop_compress_2of4(void *k, float *vals, uint8_t *idx, float *w, int64_t OC, int64_t C)
{
    (void)k, (void)vals, (void)idx, (void)w, (void)OC, (void)C;
    return OOMB_OK;
}

static int nop_linear_2of4(void *k, float *out, const float *inp, const float *vals,
                           const uint8_t *idx, const float *bias, int64_t B, int64_t C, int64_t OC)
{
    (void)k, (void)out, (void)inp, (void)vals, (void)idx, (void)bias, (void)B, (void)C, (void)OC;
    return OOMB_OK;
}

static int nop_soft_xent(void *k, float *l, float *d, const float *s, const float *t, int64_t B,
                         int64_t K, float T, float w, float sc)
{
    (void)k, (void)l, (void)d, (void)s, (void)t, (void)B, (void)K, (void)T, (void)w, (void)sc;
    return OOMB_OK;
}

static const void *count_get_extension(void *k, const char *name)
{
    struct count_ctx *c = k;
    if (!c || !name)
        return NULL;
    if (strcmp(name, OOMB_EXT_QUANT) == 0)
        return &c->quant;
    if (strcmp(name, OOMB_EXT_SPARSE) == 0)
        return &c->sparse;
    if (strcmp(name, OOMB_EXT_DISTILL) == 0)
        return &c->distill;
    return NULL;
}

static void count_ops_init(struct oomb_ops *o, struct count_ctx *c)
{
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->ctx = c;
    o->backend_name = "cpu";
    o->last_error = count_last_error;
    o->to_host = count_to_host;
    o->to_device = nop_to_device;
    o->copy = nop_to_device;
    o->fill = nop_fill;
    o->zero = nop_zero;
    o->linear_forward = nop_linear_forward;
    o->linear_backward = nop_linear_backward;
    o->relu_forward = nop_act_forward;
    o->relu_backward = nop_act_backward;
    o->gelu_forward = nop_act_forward;
    o->gelu_backward = nop_act_backward;
    o->softmax_xent_forward = nop_xent_forward;
    o->softmax_xent_backward = nop_xent_backward;
    o->count_correct = count_correct;
    o->sgd_update = nop_sgd;
    o->adam_update = nop_adam;
    o->scale = nop_scale;
    o->axpy = nop_axpy;
    o->sum = count_sum;
    o->count_nonfinite = count_nonfinite;
    o->cast = nop_cast;
    o->conv2d_workspace = count_conv2d_workspace;
    o->conv2d_forward = nop_conv2d_forward;
    o->conv2d_backward = nop_conv2d_backward;
    o->maxpool_forward = nop_pool_forward;
    o->maxpool_backward = nop_pool_backward;
    o->maxpool_forward_idx = nop_pool_forward_idx;
    o->maxpool_backward_idx = nop_pool_backward_idx;
    o->batchnorm_forward = nop_bn_forward;
    o->batchnorm_backward = nop_bn_backward;
    o->layernorm_forward = nop_ln_forward;
    o->layernorm_backward = nop_ln_backward;
    o->attention_workspace = count_attention_workspace;
    o->attention_forward = nop_attention_forward;
    o->attention_backward = nop_attention_backward;
    o->add = nop_add;

    c->quant = (struct oomb_ext_quant){.struct_size = sizeof c->quant,
                                       .version = OOMB_EXT_QUANT_VERSION,
                                       .ctx = c,
                                       .quantize_rows_i8 = nop_quantize_rows,
                                       .dequantize_rows_i8 = nop_dequantize_rows,
                                       .linear_forward_i8 = nop_linear_i8,
                                       .adam8_update = nop_adam8};
    c->sparse = (struct oomb_ext_sparse){.struct_size = sizeof c->sparse,
                                         .version = OOMB_EXT_SPARSE_VERSION,
                                         .ctx = c,
                                         .count_abs_below = count_abs_below,
                                         .prune_by_threshold = nop_prune_by_threshold,
                                         .apply_mask = nop_apply_mask,
                                         .dense_to_csr = nop_dense_to_csr,
                                         .linear_forward_csr = nop_linear_csr,
                                         .compress_2of4 = nop_compress_2of4,
                                         .linear_forward_2of4 = nop_linear_2of4};
    c->distill = (struct oomb_ext_distill){.struct_size = sizeof c->distill,
                                           .version = OOMB_EXT_DISTILL_VERSION,
                                           .ctx = c,
                                           .soft_xent_accumulate = nop_soft_xent};
}

static void count_destroy(struct oomb_kernel_backend *b)
{
    if (!b)
        return;
    struct count_ctx *c = b->ops.ctx;
    if (c && c->cpu)
        c->cpu->destroy(c->cpu);
    if (c)
        free(c->marks);
    free(c);
    free(b);
}

int oomb_count_backend_create(struct oomb_kernel_backend **out, char *msg, size_t msg_len)
{
    if (!out) {
        if (msg && msg_len)
            snprintf(msg, msg_len, "oomb_count_backend_create: out is NULL");
        return OOMB_ERR_INVALID;
    }
    *out = NULL;
    struct oomb_kernel_backend *b = calloc(1, sizeof *b);
    struct count_ctx *c = calloc(1, sizeof *c);
    if (!b || !c) {
        free(b);
        free(c);
        if (msg && msg_len)
            snprintf(msg, msg_len, "counting backend: out of host memory");
        return OOMB_ERR_OOM;
    }
    int rc = oomb_cpu_backend_create(&c->cpu, msg, msg_len);
    if (rc != OOMB_OK) {
        free(b);
        free(c);
        return rc;
    }
    long pg = sysconf(_SC_PAGESIZE);
    c->page = pg > 0 ? (size_t)pg : 4096;
    c->next = (uint64_t)1 << 52;
    snprintf(c->name, sizeof c->name, "counting (no computation; %s)", c->cpu->info.name);
    count_ops_init(&b->ops, c);
    b->info = c->cpu->info;
    b->info.backend = "cpu";
    b->info.name = c->name;
    b->info.runtime = "none: a dry run";
    b->raw_alloc = count_raw_alloc;
    b->raw_free = count_raw_free;
    b->sync = count_sync;
    b->timer_mark = count_timer_mark;
    b->timer_resolve = count_timer_resolve;
    b->timer_reset = count_timer_reset;
    b->set_alloc_hook = NULL;
    b->get_extension = count_get_extension;
    b->host_alloc = count_host_alloc;
    b->host_free = count_host_free;
    b->copy_async = count_copy_async;
    b->ev_wait = count_ev;
    b->ev_sync = count_ev;
    b->ev_free = count_ev_free;
    b->device_mem = count_device_mem;
    b->destroy = count_destroy;
    *out = b;
    if (msg && msg_len)
        msg[0] = '\0';
    return OOMB_OK;
}
