/*
 * The ABI 1.1 layer ops of the CUDA backend: convolution (cuDNN), max
 * pooling, batch norm, layer norm, self-attention (cuBLAS batched GEMMs plus
 * own kernels) and add. Same shapes and semantics as the CPU backend (the
 * ground truth), F32 only, everything on the context's stream; nothing here
 * allocates: scratch memory is the workspace the caller passes.
 *
 * Convolution. The descriptors, and cuDNN's ranking of the algorithms of
 * each pass with their workspace sizes, are cached per geometry in the
 * context (conv_cache.h: key, capacity, replacement, threading): a call
 * whose geometry is cached makes no cuDNN query. The algorithm
 * of each of the three passes (forward, backward data, backward filter) is
 * picked from cuDNN's heuristic ranking (cudnnGet*Algorithm_v7, no timing, so
 * the same geometry always gives the same ranking, and asking once per
 * geometry gives the choice asking per call gave): the first algorithm that
 * is deterministic, uses FP32 math (FMA; TF32 allowed only with
 * OOMB_CUDA_TF32=1, as for the GEMMs) and whose workspace fits
 * min(ws_bytes, CONV_WS_CAP); then, if none, the first non-deterministic one
 * that fits; then a fixed fallback. conv2d_workspace runs the same selection
 * with the limit CONV_WS_CAP and returns the largest of the three workspaces,
 * so a workspace of that size gets exactly the algorithms it was sized for.
 * The bias (forward add, backward sum) is an own kernel.
 *
 * Attention. qkv (B, T, 3C) is split into q, k, v of shape (B, H, T, hd),
 * hd = C/H, in the workspace; the per-head products are strided-batched
 * GEMMs over the B*H heads. Workspace (attention_workspace), in floats, with
 * pad(n) = n rounded up to a multiple of 64 (256-byte aligned slots):
 *     4 * pad(B*T*C) + pad(B*H*T*T)
 * slots 0..3 hold (B, H, T, hd) tensors, the last one dprobs (B, H, T, T).
 * The forward uses slots 0..2 only (q, k, v; then the per-head output in
 * slot 0); the backward all of it (see cuda_attention_backward).
 *
 * Argument checks follow the CPU ops (every size positive, geometry structs
 * with a struct_size covering their fields, the caller's OH/OW equal to the
 * formula, the pointers the CPU op requires): OOMB_ERR_INVALID with a message
 * naming the op. Max pooling's backward adds with atomics where windows
 * overlap, so its sums may differ from the CPU in the last bits.
 *
 * Row-major vs cuBLAS column-major, as in ops_cuda.cu: a row-major (R, C)
 * array is a column-major (C, R) one with leading dimension C. Per head, with
 * Q, K, V, O, dO (T, hd) and P, S, dP, dS (T, T) row-major:
 *     S = scale Q K^T   -> S^T (T,T)  = K Q^T       : A = K  op T, B = Q  op N, m=n=T, k=hd
 *     O = P V           -> O^T (hd,T) = V^T P^T     : A = V  op N, B = P  op N, m=hd, n=k=T
 *     dP = dO V^T       -> like S with (K, Q) = (V, dO)
 *     dV = P^T dO       -> dV^T = dO^T P            : A = dO op N, B = P  op T, m=hd, n=k=T
 *     dQ = scale dS K   -> like O with (P, V) = (dS, K)
 *     dK = scale dS^T Q -> like dV with (P, dO) = (dS, Q)
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common.cuh"
#include "device.cuh"

#define L_THREADS 256
#define L_MAX_GRID (1u << 20)

/* Largest cuDNN workspace a convolution pass may ask for. */
#define CONV_WS_CAP ((size_t)64 << 20)

/* ------------------------------------------------------------- helpers ---- */

static unsigned l_grid_for(int64_t n, int threads)
{
    int64_t g = (n + threads - 1) / threads;
    if (g < 1)
        g = 1;
    if (g > (int64_t)L_MAX_GRID)
        g = L_MAX_GRID;
    return (unsigned)g;
}

static unsigned l_grid_rows(int64_t rows)
{
    if (rows < 1)
        return 1;
    return rows > (int64_t)L_MAX_GRID ? L_MAX_GRID : (unsigned)rows;
}

/* Threads for a block that reduces over n values: a multiple of 32, <= 256. */
static int l_threads_for(int64_t n)
{
    if (n <= 32)
        return 32;
    if (n <= 64)
        return 64;
    if (n <= 128)
        return 128;
    return 256;
}

#define L_RETURN_IF(rc_expr)                                                               \
    do {                                                                                   \
        int rc_ = (rc_expr);                                                               \
        if (rc_ != OOMB_OK)                                                                \
            return rc_;                                                                    \
    } while (0)

static int invalid(struct oomb_cuda_ctx *k, const char *op, const char *what)
{
    return oomb_cuda_errf(k, OOMB_ERR_INVALID, "%s: %s", op, what);
}

/* ------------------------------------------------------------- conv2d ---- */

/* out (B, OC, HW) += bias (OC), broadcast over samples and positions */
__global__ void conv_bias_add_kernel(float *out, const float *bias, int64_t B, int64_t OC,
                                     int64_t HW)
{
    GRID_STRIDE(i, B * OC * HW) { out[i] += bias[(i / HW) % OC]; }
}

/* One block per output channel: dbias (OC) += sum over (B, HW) of dout (B, OC, HW). */
__global__ void conv_bias_backward_kernel(float *dbias, const float *dout, int64_t B, int64_t OC,
                                          int64_t HW)
{
    ROW_STRIDE(oc, OC)
    {
        const int64_t n = B * HW;
        double s = 0.0;
        for (int64_t e = threadIdx.x; e < n; e += blockDim.x)
            s += dout[((e / HW) * OC + oc) * HW + e % HW];
        s = block_reduce(s, SumOp(), 0.0);
        if (threadIdx.x == 0)
            dbias[oc] += (float)s;
    }
}

/* Checks the geometry and the int limits of cuDNN's 4-d descriptors. */
static int conv_check(struct oomb_cuda_ctx *k, const char *op, const struct oomb_conv2d *cv,
                      int64_t B)
{
    if (!cv)
        return invalid(k, op, "geometry is NULL");
    if (cv->struct_size < sizeof *cv)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "%s: cv->struct_size = %u, need at least %zu",
                              op, (unsigned)cv->struct_size, sizeof *cv);
    if (B <= 0 || cv->C <= 0 || cv->H <= 0 || cv->W <= 0 || cv->OC <= 0 || cv->K <= 0 ||
        cv->stride <= 0 || cv->pad < 0)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID,
                              "%s: bad shape (B %lld, C %lld, H %lld, W %lld, OC %lld, K %lld, "
                              "stride %lld, pad %lld)",
                              op, (long long)B, (long long)cv->C, (long long)cv->H,
                              (long long)cv->W, (long long)cv->OC, (long long)cv->K,
                              (long long)cv->stride, (long long)cv->pad);
    if (cv->pad > INT_MAX / 4 || cv->stride > INT_MAX || cv->K > INT_MAX || cv->H > INT_MAX ||
        cv->W > INT_MAX)
        return invalid(k, op, "geometry exceeds cuDNN's int dimensions");
    if (cv->H + 2 * cv->pad < cv->K || cv->W + 2 * cv->pad < cv->K)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID,
                              "%s: kernel %lld larger than the padded input (%lld x %lld, pad %lld)",
                              op, (long long)cv->K, (long long)cv->H, (long long)cv->W,
                              (long long)cv->pad);
    int64_t oh = (cv->H + 2 * cv->pad - cv->K) / cv->stride + 1;
    int64_t ow = (cv->W + 2 * cv->pad - cv->K) / cv->stride + 1;
    if (cv->OH != oh || cv->OW != ow)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID,
                              "%s: output %lld x %lld does not match the geometry (%lld x %lld)",
                              op, (long long)cv->OH, (long long)cv->OW, (long long)oh,
                              (long long)ow);
    if (B * cv->C * cv->H * cv->W > INT_MAX || B * cv->OC * oh * ow > INT_MAX ||
        cv->OC * cv->C * cv->K * cv->K > INT_MAX)
        return invalid(k, op, "tensor exceeds cuDNN's int dimensions");
    return OOMB_OK;
}

typedef struct oomb_cuda_conv_descs conv_descs;

extern "C" void oomb_cuda_conv_cache_free(struct oomb_cuda_ctx *k)
{
    for (int i = 0; i < OOMB_CONV_CACHE_CAP; i++) {
        conv_descs *d = &k->conv_descs[i];
        if (d->conv)
            (void)cudnnDestroyConvolutionDescriptor(d->conv);
        if (d->w)
            (void)cudnnDestroyFilterDescriptor(d->w);
        if (d->y)
            (void)cudnnDestroyTensorDescriptor(d->y);
        if (d->x)
            (void)cudnnDestroyTensorDescriptor(d->x);
        memset(d, 0, sizeof *d);
    }
    oomb_conv_cache_init(&k->conv_cache);
}

/* The math type of every convolution descriptor. FMA: strict FP32;
 * CUDNN_DEFAULT_MATH would allow TF32 on Ampere and later. */
static cudnnMathType_t conv_math(const struct oomb_cuda_ctx *k)
{
    return k->tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

/* Sets the descriptors of *d for (cv, B), creating those the slot does not
 * have yet (a failure leaves the created ones to oomb_cuda_conv_cache_free). */
static int conv_descs_set(struct oomb_cuda_ctx *k, conv_descs *d, const struct oomb_conv2d *cv,
                          int64_t B)
{
    if (!d->x)
        OOMB_CUDNN_CHECK(k, cudnnCreateTensorDescriptor(&d->x));
    if (!d->y)
        OOMB_CUDNN_CHECK(k, cudnnCreateTensorDescriptor(&d->y));
    if (!d->w)
        OOMB_CUDNN_CHECK(k, cudnnCreateFilterDescriptor(&d->w));
    if (!d->conv)
        OOMB_CUDNN_CHECK(k, cudnnCreateConvolutionDescriptor(&d->conv));
    OOMB_CUDNN_CHECK(k, cudnnSetTensor4dDescriptor(d->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                                   (int)B, (int)cv->C, (int)cv->H, (int)cv->W));
    OOMB_CUDNN_CHECK(k, cudnnSetTensor4dDescriptor(d->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                                   (int)B, (int)cv->OC, (int)cv->OH,
                                                   (int)cv->OW));
    OOMB_CUDNN_CHECK(k, cudnnSetFilter4dDescriptor(d->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
                                                   (int)cv->OC, (int)cv->C, (int)cv->K,
                                                   (int)cv->K));
    OOMB_CUDNN_CHECK(k, cudnnSetConvolution2dDescriptor(d->conv, (int)cv->pad, (int)cv->pad,
                                                        (int)cv->stride, (int)cv->stride, 1, 1,
                                                        CUDNN_CROSS_CORRELATION,
                                                        CUDNN_DATA_FLOAT));
    OOMB_CUDNN_CHECK(k, cudnnSetConvolutionMathType(d->conv, conv_math(k)));
    int n = 0, c = 0, h = 0, w = 0;
    OOMB_CUDNN_CHECK(k, cudnnGetConvolution2dForwardOutputDim(d->conv, d->x, d->w, &n, &c, &h, &w));
    if (n != (int)B || c != (int)cv->OC || h != (int)cv->OH || w != (int)cv->OW)
        return oomb_cuda_errf(k, OOMB_ERR_INTERNAL,
                              "conv2d: cuDNN output (%d, %d, %d, %d) differs from (%lld, %lld, "
                              "%lld, %lld)",
                              n, c, h, w, (long long)B, (long long)cv->OC, (long long)cv->OH,
                              (long long)cv->OW);
    return OOMB_OK;
}

/* The cache slot of (cv, B), pinned, its descriptors set (on a miss, set
 * here); the caller unpins it with oomb_conv_cache_release. The geometry has
 * passed conv_check, so every field fits an int. */
static int conv_acquire(struct oomb_cuda_ctx *k, const char *op, const struct oomb_conv2d *cv,
                        int64_t B, int *slot)
{
    struct oomb_conv_key key;
    memset(&key, 0, sizeof key);
    key.B = B;
    key.C = cv->C;
    key.H = cv->H;
    key.W = cv->W;
    key.OC = cv->OC;
    key.K = cv->K;
    key.stride = cv->stride;
    key.pad = cv->pad;
    key.OH = cv->OH;
    key.OW = cv->OW;
    key.dtype = (int64_t)CUDNN_DATA_FLOAT;
    key.math = (int64_t)conv_math(k);
    int hit = 0;
    int s = oomb_conv_cache_acquire(&k->conv_cache, &key, &hit, NULL);
    if (s < 0)
        return oomb_cuda_errf(k, OOMB_ERR_INTERNAL,
                              "%s: all %d cached convolutions are in use (ops called from "
                              "several threads?)",
                              op, OOMB_CONV_CACHE_CAP);
    if (!hit) {
        int rc = conv_descs_set(k, &k->conv_descs[s], cv, B);
        if (rc != OOMB_OK) {
            oomb_conv_cache_drop(&k->conv_cache, s);
            return rc;
        }
    }
    *slot = s;
    return OOMB_OK;
}

static int math_ok(const struct oomb_cuda_ctx *k, cudnnMathType_t m)
{
    return k->tf32 || (m != CUDNN_TENSOR_OP_MATH && m != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION);
}

#define CONV_PERF_MAX OOMB_CONV_RANK_MAX

/* Stores the n ranked results in perf into r: those whose status is success
 * and whose math type is allowed, with their determinism, and the fallback. */
template <typename Perf>
static void ranking_store(const struct oomb_cuda_ctx *k, struct oomb_conv_ranking *r,
                          const Perf *perf, int n, int32_t fallback)
{
    int32_t algo[CONV_PERF_MAX];
    int usable[CONV_PERF_MAX], det[CONV_PERF_MAX];
    if (n > CONV_PERF_MAX)
        n = CONV_PERF_MAX;
    for (int i = 0; i < n; i++) {
        algo[i] = (int32_t)perf[i].algo;
        usable[i] = perf[i].status == CUDNN_STATUS_SUCCESS && math_ok(k, perf[i].mathType);
        det[i] = perf[i].determinism == CUDNN_DETERMINISTIC;
    }
    oomb_conv_ranking_set(r, n, algo, usable, det, fallback);
}

/* The size callbacks of oomb_conv_pick: user is the slot's descriptors, with
 * the context to reach the handle. */
struct conv_size_user {
    struct oomb_cuda_ctx *k;
    const conv_descs *d;
};

static int fwd_size(void *user, int32_t a, size_t *bytes)
{
    const struct conv_size_user *u = (const struct conv_size_user *)user;
    return cudnnGetConvolutionForwardWorkspaceSize(u->k->cudnn, u->d->x, u->d->w, u->d->conv,
                                                   u->d->y, (cudnnConvolutionFwdAlgo_t)a,
                                                   bytes) != CUDNN_STATUS_SUCCESS;
}

static int bwd_data_size(void *user, int32_t a, size_t *bytes)
{
    const struct conv_size_user *u = (const struct conv_size_user *)user;
    return cudnnGetConvolutionBackwardDataWorkspaceSize(u->k->cudnn, u->d->w, u->d->y,
                                                        u->d->conv, u->d->x,
                                                        (cudnnConvolutionBwdDataAlgo_t)a,
                                                        bytes) != CUDNN_STATUS_SUCCESS;
}

static int bwd_filter_size(void *user, int32_t a, size_t *bytes)
{
    const struct conv_size_user *u = (const struct conv_size_user *)user;
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(u->k->cudnn, u->d->x, u->d->y,
                                                          u->d->conv, u->d->w,
                                                          (cudnnConvolutionBwdFilterAlgo_t)a,
                                                          bytes) != CUDNN_STATUS_SUCCESS;
}

/* Picks the algorithm of one pass of slot s for a workspace of `limit` bytes
 * (see the top of the file), from the slot's stored ranking; the ranking is
 * asked of cuDNN the first time the pass is used for the slot's geometry. */
static int pick_pass(struct oomb_cuda_ctx *k, const char *op, int s, enum oomb_conv_pass pass,
                     size_t limit, int32_t *algo, size_t *need)
{
    struct oomb_conv_ranking *r = &k->conv_cache.slot[s].rank[pass];
    const conv_descs *d = &k->conv_descs[s];
    oomb_conv_size_fn size_of = fwd_size;
    if (!r->valid) {
        int n = 0;
        if (pass == OOMB_CONV_FWD) {
            cudnnConvolutionFwdAlgoPerf_t perf[CONV_PERF_MAX];
            OOMB_CUDNN_CHECK(k, cudnnGetConvolutionForwardAlgorithm_v7(
                                    k->cudnn, d->x, d->w, d->conv, d->y, CONV_PERF_MAX, &n, perf));
            ranking_store(k, r, perf, n, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM);
        } else if (pass == OOMB_CONV_BWD_DATA) {
            cudnnConvolutionBwdDataAlgoPerf_t perf[CONV_PERF_MAX];
            OOMB_CUDNN_CHECK(k, cudnnGetConvolutionBackwardDataAlgorithm_v7(
                                    k->cudnn, d->w, d->y, d->conv, d->x, CONV_PERF_MAX, &n, perf));
            ranking_store(k, r, perf, n, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1);
        } else {
            cudnnConvolutionBwdFilterAlgoPerf_t perf[CONV_PERF_MAX];
            OOMB_CUDNN_CHECK(k, cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                                    k->cudnn, d->x, d->y, d->conv, d->w, CONV_PERF_MAX, &n, perf));
            ranking_store(k, r, perf, n, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1);
        }
    }
    if (pass == OOMB_CONV_BWD_DATA)
        size_of = bwd_data_size;
    else if (pass == OOMB_CONV_BWD_FILTER)
        size_of = bwd_filter_size;
    struct conv_size_user u = {k, d};
    if (oomb_conv_pick(r, limit, size_of, &u, algo, need))
        return OOMB_OK;
    return oomb_cuda_errf(k, OOMB_ERR_INVALID,
                          "%s: no cuDNN algorithm fits a workspace of %zu bytes (size it with "
                          "conv2d_workspace)",
                          op, limit);
}

static int conv_workspace_body(struct oomb_cuda_ctx *k, int s, size_t *bytes)
{
    int32_t fa, da, wa;
    size_t f = 0, b = 0, w = 0;
    L_RETURN_IF(pick_pass(k, "conv2d_workspace", s, OOMB_CONV_FWD, CONV_WS_CAP, &fa, &f));
    L_RETURN_IF(pick_pass(k, "conv2d_workspace", s, OOMB_CONV_BWD_DATA, CONV_WS_CAP, &da, &b));
    L_RETURN_IF(pick_pass(k, "conv2d_workspace", s, OOMB_CONV_BWD_FILTER, CONV_WS_CAP, &wa, &w));
    size_t m = f > b ? f : b;
    *bytes = m > w ? m : w;
    return OOMB_OK;
}

static int cuda_conv2d_workspace(void *kv, const struct oomb_conv2d *cv, int64_t B, size_t *bytes)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (!bytes)
        return invalid(k, "conv2d_workspace", "bytes is NULL");
    *bytes = 0;
    L_RETURN_IF(conv_check(k, "conv2d_workspace", cv, B));
    int s = -1;
    L_RETURN_IF(conv_acquire(k, "conv2d_workspace", cv, B, &s));
    int rc = conv_workspace_body(k, s, bytes);
    oomb_conv_cache_release(&k->conv_cache, s);
    return rc;
}

static size_t ws_limit(void *ws, size_t ws_bytes)
{
    if (!ws)
        return 0;
    return ws_bytes < CONV_WS_CAP ? ws_bytes : CONV_WS_CAP;
}

static int conv_forward_body(struct oomb_cuda_ctx *k, int s, float *out, const float *inp,
                             const float *weight, const float *bias, const struct oomb_conv2d *cv,
                             int64_t B, void *ws, size_t ws_bytes)
{
    const conv_descs *d = &k->conv_descs[s];
    int32_t algo = 0;
    size_t need = 0;
    L_RETURN_IF(pick_pass(k, "conv2d_forward", s, OOMB_CONV_FWD, ws_limit(ws, ws_bytes), &algo,
                          &need));
    const float one = 1.0f, zero = 0.0f;
    OOMB_CUDNN_CHECK(k, cudnnConvolutionForward(k->cudnn, &one, d->x, inp, d->w, weight, d->conv,
                                                (cudnnConvolutionFwdAlgo_t)algo,
                                                need ? ws : NULL, need, &zero, d->y, out));
    if (bias) {
        const int64_t hw = cv->OH * cv->OW;
        conv_bias_add_kernel<<<l_grid_for(B * cv->OC * hw, L_THREADS), L_THREADS, 0, k->stream>>>(
            out, bias, B, cv->OC, hw);
        OOMB_CUDA_LAUNCHED(k, "conv_bias_add_kernel");
    }
    return OOMB_OK;
}

static int cuda_conv2d_forward(void *kv, float *out, const float *inp, const float *weight,
                               const float *bias, const struct oomb_conv2d *cv, int64_t B,
                               void *ws, size_t ws_bytes)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (!out || !inp || !weight)
        return invalid(k, "conv2d_forward", "out, inp or weight is NULL");
    if (!ws && ws_bytes > 0)
        return invalid(k, "conv2d_forward", "workspace is NULL but ws_bytes > 0");
    L_RETURN_IF(conv_check(k, "conv2d_forward", cv, B));
    int s = -1;
    L_RETURN_IF(conv_acquire(k, "conv2d_forward", cv, B, &s));
    int rc = conv_forward_body(k, s, out, inp, weight, bias, cv, B, ws, ws_bytes);
    oomb_conv_cache_release(&k->conv_cache, s);
    return rc;
}

static int conv_backward_body(struct oomb_cuda_ctx *k, int s, float *dinp, float *dweight,
                              float *dbias, const float *dout, const float *inp,
                              const float *weight, const struct oomb_conv2d *cv, int64_t B,
                              void *ws, size_t ws_bytes)
{
    const conv_descs *d = &k->conv_descs[s];
    const float one = 1.0f, zero = 0.0f;
    const size_t limit = ws_limit(ws, ws_bytes);
    if (dinp) {
        int32_t algo = 0;
        size_t need = 0;
        L_RETURN_IF(pick_pass(k, "conv2d_backward", s, OOMB_CONV_BWD_DATA, limit, &algo, &need));
        OOMB_CUDNN_CHECK(k, cudnnConvolutionBackwardData(k->cudnn, &one, d->w, weight, d->y, dout,
                                                         d->conv,
                                                         (cudnnConvolutionBwdDataAlgo_t)algo,
                                                         need ? ws : NULL, need, &zero, d->x,
                                                         dinp));
    }
    if (dweight) {
        int32_t algo = 0;
        size_t need = 0;
        L_RETURN_IF(
            pick_pass(k, "conv2d_backward", s, OOMB_CONV_BWD_FILTER, limit, &algo, &need));
        /* beta = 1: dweight accumulates */
        OOMB_CUDNN_CHECK(k, cudnnConvolutionBackwardFilter(k->cudnn, &one, d->x, inp, d->y, dout,
                                                           d->conv,
                                                           (cudnnConvolutionBwdFilterAlgo_t)algo,
                                                           need ? ws : NULL, need, &one, d->w,
                                                           dweight));
    }
    if (dbias) {
        const int64_t hw = cv->OH * cv->OW;
        conv_bias_backward_kernel<<<l_grid_rows(cv->OC), l_threads_for(B * hw), 0, k->stream>>>(
            dbias, dout, B, cv->OC, hw);
        OOMB_CUDA_LAUNCHED(k, "conv_bias_backward_kernel");
    }
    return OOMB_OK;
}

static int cuda_conv2d_backward(void *kv, float *dinp, float *dweight, float *dbias,
                                const float *dout, const float *inp, const float *weight,
                                const struct oomb_conv2d *cv, int64_t B, void *ws,
                                size_t ws_bytes)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (!dout || !inp || !weight)
        return invalid(k, "conv2d_backward", "dout, inp or weight is NULL");
    if (!ws && ws_bytes > 0)
        return invalid(k, "conv2d_backward", "workspace is NULL but ws_bytes > 0");
    L_RETURN_IF(conv_check(k, "conv2d_backward", cv, B));
    if (!dinp && !dweight && !dbias)
        return OOMB_OK;
    int s = -1;
    L_RETURN_IF(conv_acquire(k, "conv2d_backward", cv, B, &s));
    int rc = conv_backward_body(k, s, dinp, dweight, dbias, dout, inp, weight, cv, B, ws,
                                ws_bytes);
    oomb_conv_cache_release(&k->conv_cache, s);
    return rc;
}

/* ------------------------------------------------------------ maxpool ---- */

/* Index (within the H x W plane) of the first maximum of the K x K window at
 * output (oh, ow), scanning row-major; ties keep the earlier element. */
static __device__ __forceinline__ int64_t pool_argmax(const float *plane, int64_t W, int64_t K,
                                                      int64_t stride, int64_t oh, int64_t ow)
{
    const int64_t r0 = oh * stride, c0 = ow * stride;
    int64_t best = r0 * W + c0;
    float bv = plane[best];
    for (int64_t i = 0; i < K; i++)
        for (int64_t j = 0; j < K; j++) {
            int64_t at = (r0 + i) * W + c0 + j;
            float v = plane[at];
            if (v > bv) {
                bv = v;
                best = at;
            }
        }
    return best;
}

/* out (B*C, OH, OW) = max over each window of inp (B*C, H, W) */
__global__ void maxpool_forward_kernel(float *out, const float *inp, int64_t BC, int64_t H,
                                       int64_t W, int64_t K, int64_t stride, int64_t OH,
                                       int64_t OW)
{
    GRID_STRIDE(i, BC * OH * OW)
    {
        int64_t ow = i % OW, oh = (i / OW) % OH, p = i / (OW * OH);
        const float *plane = inp + p * H * W;
        out[i] = plane[pool_argmax(plane, W, K, stride, oh, ow)];
    }
}

/* dinp (B*C, H, W) += dout at the first maximum of each window (dinp zeroed
 * before; windows may overlap, hence the atomics). */
__global__ void maxpool_backward_kernel(float *dinp, const float *dout, const float *inp,
                                        int64_t BC, int64_t H, int64_t W, int64_t K,
                                        int64_t stride, int64_t OH, int64_t OW)
{
    GRID_STRIDE(i, BC * OH * OW)
    {
        int64_t ow = i % OW, oh = (i / OW) % OH, p = i / (OW * OH);
        const float *plane = inp + p * H * W;
        atomicAdd(dinp + p * H * W + pool_argmax(plane, W, K, stride, oh, ow), dout[i]);
    }
}

static int pool_check(struct oomb_cuda_ctx *k, const char *op, const struct oomb_pool2d *p,
                      int64_t B)
{
    if (!p)
        return invalid(k, op, "geometry is NULL");
    if (p->struct_size < sizeof *p)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "%s: p->struct_size = %u, need at least %zu",
                              op, (unsigned)p->struct_size, sizeof *p);
    if (B <= 0 || p->C <= 0 || p->H <= 0 || p->W <= 0 || p->K <= 0 || p->stride <= 0 ||
        p->K > p->H || p->K > p->W)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID,
                              "%s: bad shape (B %lld, C %lld, H %lld, W %lld, K %lld, stride %lld)",
                              op, (long long)B, (long long)p->C, (long long)p->H,
                              (long long)p->W, (long long)p->K, (long long)p->stride);
    int64_t oh = (p->H - p->K) / p->stride + 1, ow = (p->W - p->K) / p->stride + 1;
    if (p->OH != oh || p->OW != ow)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID,
                              "%s: output %lld x %lld does not match the geometry (%lld x %lld)",
                              op, (long long)p->OH, (long long)p->OW, (long long)oh,
                              (long long)ow);
    return OOMB_OK;
}

static int cuda_maxpool_forward(void *kv, float *out, const float *inp,
                                const struct oomb_pool2d *p, int64_t B)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (!out || !inp)
        return invalid(k, "maxpool_forward", "out or inp is NULL");
    L_RETURN_IF(pool_check(k, "maxpool_forward", p, B));
    const int64_t BC = B * p->C, n = BC * p->OH * p->OW;
    maxpool_forward_kernel<<<l_grid_for(n, L_THREADS), L_THREADS, 0, k->stream>>>(
        out, inp, BC, p->H, p->W, p->K, p->stride, p->OH, p->OW);
    OOMB_CUDA_LAUNCHED(k, "maxpool_forward_kernel");
    return OOMB_OK;
}

static int cuda_maxpool_backward(void *kv, float *dinp, const float *dout, const float *inp,
                                 const struct oomb_pool2d *p, int64_t B)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (!dinp || !dout || !inp)
        return invalid(k, "maxpool_backward", "dinp, dout or inp is NULL");
    L_RETURN_IF(pool_check(k, "maxpool_backward", p, B));
    const int64_t BC = B * p->C, n = BC * p->OH * p->OW;
    OOMB_CUDA_CHECK(k, cudaMemsetAsync(dinp, 0, (size_t)(BC * p->H * p->W) * sizeof(float),
                                       k->stream));
    maxpool_backward_kernel<<<l_grid_for(n, L_THREADS), L_THREADS, 0, k->stream>>>(
        dinp, dout, inp, BC, p->H, p->W, p->K, p->stride, p->OH, p->OW);
    OOMB_CUDA_LAUNCHED(k, "maxpool_backward_kernel");
    return OOMB_OK;
}

/* out and idx (B*C, OH, OW): each window's maximum and its offset in the plane */
__global__ void maxpool_forward_idx_kernel(float *out, int32_t *idx, const float *inp,
                                           int64_t BC, int64_t H, int64_t W, int64_t K,
                                           int64_t stride, int64_t OH, int64_t OW)
{
    GRID_STRIDE(i, BC * OH * OW)
    {
        int64_t ow = i % OW, oh = (i / OW) % OH, p = i / (OW * OH);
        const float *plane = inp + p * H * W;
        int64_t at = pool_argmax(plane, W, K, stride, oh, ow);
        out[i] = plane[at];
        idx[i] = (int32_t)at;
    }
}

/* dinp (B*C, H, W) += dout at the recorded maxima (dinp zeroed before) */
__global__ void maxpool_backward_idx_kernel(float *dinp, const float *dout, const int32_t *idx,
                                            int64_t BC, int64_t H, int64_t W, int64_t OH,
                                            int64_t OW)
{
    GRID_STRIDE(i, BC * OH * OW)
    {
        int64_t p = i / (OW * OH);
        int32_t at = idx[i];
        if (at >= 0 && at < H * W)
            atomicAdd(dinp + p * H * W + at, dout[i]);
    }
}

static int cuda_maxpool_forward_idx(void *kv, float *out, int32_t *idx, const float *inp,
                                    const struct oomb_pool2d *p, int64_t B)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (!out || !idx || !inp)
        return invalid(k, "maxpool_forward_idx", "out, idx or inp is NULL");
    L_RETURN_IF(pool_check(k, "maxpool_forward_idx", p, B));
    if (p->H * p->W > INT32_MAX)
        return invalid(k, "maxpool_forward_idx", "a plane does not fit int32 indices");
    const int64_t BC = B * p->C, n = BC * p->OH * p->OW;
    maxpool_forward_idx_kernel<<<l_grid_for(n, L_THREADS), L_THREADS, 0, k->stream>>>(
        out, idx, inp, BC, p->H, p->W, p->K, p->stride, p->OH, p->OW);
    OOMB_CUDA_LAUNCHED(k, "maxpool_forward_idx_kernel");
    return OOMB_OK;
}

static int cuda_maxpool_backward_idx(void *kv, float *dinp, const float *dout,
                                     const int32_t *idx, const struct oomb_pool2d *p, int64_t B)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (!dinp || !dout || !idx)
        return invalid(k, "maxpool_backward_idx", "dinp, dout or idx is NULL");
    L_RETURN_IF(pool_check(k, "maxpool_backward_idx", p, B));
    const int64_t BC = B * p->C, n = BC * p->OH * p->OW;
    OOMB_CUDA_CHECK(k, cudaMemsetAsync(dinp, 0, (size_t)(BC * p->H * p->W) * sizeof(float),
                                       k->stream));
    maxpool_backward_idx_kernel<<<l_grid_for(n, L_THREADS), L_THREADS, 0, k->stream>>>(
        dinp, dout, idx, BC, p->H, p->W, p->OH, p->OW);
    OOMB_CUDA_LAUNCHED(k, "maxpool_backward_idx_kernel");
    return OOMB_OK;
}

/* ---------------------------------------------------------- batchnorm ---- */

/* Offset of element e (of the B*S of channel c) in x (B, C, S). */
static __device__ __forceinline__ int64_t bn_at(int64_t e, int64_t c, int64_t C, int64_t S)
{
    return ((e / S) * C + c) * S + e % S;
}

/* One block per channel of x (B, C, S), training: batch mean and biased
 * variance over the n = B*S values (in double), written to mean/rstd (C);
 * run_mean/run_var (C) updated when given, with the unbiased variance
 * var n / (n - 1) (the caller checked n >= 2); out = (x - mean) rstd gamma + beta. */
__global__ void bn_train_forward_kernel(float *out, float *mean, float *rstd, float *run_mean,
                                        float *run_var, const float *inp, const float *gamma,
                                        const float *beta, int64_t B, int64_t C, int64_t S,
                                        float momentum, float eps)
{
    ROW_STRIDE(c, C)
    {
        const int64_t n = B * S;
        double s = 0.0;
        for (int64_t e = threadIdx.x; e < n; e += blockDim.x)
            s += (double)inp[bn_at(e, c, C, S)];
        s = block_reduce(s, SumOp(), 0.0);
        const double mu = s / (double)n;
        double q = 0.0;
        for (int64_t e = threadIdx.x; e < n; e += blockDim.x) {
            double d = (double)inp[bn_at(e, c, C, S)] - mu;
            q += d * d;
        }
        q = block_reduce(q, SumOp(), 0.0);
        const double var = q / (double)n;
        const float m = (float)mu;
        const float r = (float)(1.0 / sqrt(var + (double)eps));
        if (threadIdx.x == 0) {
            if (mean)
                mean[c] = m;
            if (rstd)
                rstd[c] = r;
            if (run_mean)
                run_mean[c] = (1.0f - momentum) * run_mean[c] + momentum * m;
            if (run_var) {
                double unbiased = n > 1 ? var * (double)n / (double)(n - 1) : var;
                run_var[c] = (1.0f - momentum) * run_var[c] + momentum * (float)unbiased;
            }
        }
        const float g = gamma[c], b = beta[c];
        for (int64_t e = threadIdx.x; e < n; e += blockDim.x) {
            int64_t at = bn_at(e, c, C, S);
            out[at] = (inp[at] - m) * r * g + b;
        }
    }
}

/* Inference: out (B, C, S) = (x - run_mean) / sqrt(run_var + eps) gamma + beta;
 * mean/rstd (C), when given, receive the statistics used. */
__global__ void bn_eval_forward_kernel(float *out, float *mean, float *rstd,
                                       const float *run_mean, const float *run_var,
                                       const float *inp, const float *gamma, const float *beta,
                                       int64_t B, int64_t C, int64_t S, float eps)
{
    GRID_STRIDE(i, B * C * S)
    {
        int64_t c = (i / S) % C;
        float m = run_mean[c];
        float r = 1.0f / sqrtf(run_var[c] + eps);
        out[i] = (inp[i] - m) * r * gamma[c] + beta[c];
        if (i < C) { /* one thread per channel: channel i */
            float mi = run_mean[i];
            float ri = 1.0f / sqrtf(run_var[i] + eps);
            if (mean)
                mean[i] = mi;
            if (rstd)
                rstd[i] = ri;
        }
    }
}

/* One block per channel, training-mode backward with xhat = (x - mean) rstd:
 * dbeta += sum dout, dgamma += sum dout xhat (over B*S, in double);
 * dinp = gamma rstd (dout - mean(dout) - xhat mean(dout xhat)). */
__global__ void bn_backward_kernel(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                   const float *inp, const float *mean, const float *rstd,
                                   const float *gamma, int64_t B, int64_t C, int64_t S)
{
    ROW_STRIDE(c, C)
    {
        const int64_t n = B * S;
        const float m = mean[c], r = rstd[c];
        double sd = 0.0, sdx = 0.0;
        for (int64_t e = threadIdx.x; e < n; e += blockDim.x) {
            int64_t at = bn_at(e, c, C, S);
            float xh = (inp[at] - m) * r;
            float d = dout[at];
            sd += (double)d;
            sdx += (double)d * (double)xh;
        }
        sd = block_reduce(sd, SumOp(), 0.0);
        sdx = block_reduce(sdx, SumOp(), 0.0);
        if (threadIdx.x == 0) {
            if (dbeta)
                dbeta[c] += (float)sd;
            if (dgamma)
                dgamma[c] += (float)sdx;
        }
        if (dinp) {
            const float k1 = gamma[c] * r;
            const float md = (float)(sd / (double)n), mdx = (float)(sdx / (double)n);
            for (int64_t e = threadIdx.x; e < n; e += blockDim.x) {
                int64_t at = bn_at(e, c, C, S);
                float xh = (inp[at] - m) * r;
                dinp[at] = k1 * (dout[at] - md - xh * mdx);
            }
        }
    }
}

static int bn_shape(struct oomb_cuda_ctx *k, const char *op, int64_t B, int64_t C, int64_t S)
{
    if (B <= 0 || C <= 0 || S <= 0)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "%s: bad shape (B %lld, C %lld, S %lld)", op,
                              (long long)B, (long long)C, (long long)S);
    return OOMB_OK;
}

static int cuda_batchnorm_forward(void *kv, float *out, float *mean, float *rstd, float *run_mean,
                                  float *run_var, const float *inp, const float *gamma,
                                  const float *beta, int64_t B, int64_t C, int64_t S,
                                  int training, float momentum, float eps)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (!out || !inp || !gamma || !beta)
        return invalid(k, "batchnorm_forward", "out, inp, gamma or beta is NULL");
    L_RETURN_IF(bn_shape(k, "batchnorm_forward", B, C, S));
    if (!(eps > 0.0f) || !isfinite(eps))
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "batchnorm_forward: eps = %g is not positive",
                              (double)eps);
    if (training) {
        if (!mean || !rstd)
            return invalid(k, "batchnorm_forward", "training needs mean and rstd");
        if ((run_mean == NULL) != (run_var == NULL))
            return invalid(k, "batchnorm_forward", "run_mean and run_var must both be given or "
                                                   "both be NULL");
        if (B * S < 2)
            return oomb_cuda_errf(k, OOMB_ERR_INVALID,
                                  "batchnorm_forward: training needs B*S >= 2 values per channel, "
                                  "got %lld",
                                  (long long)(B * S));
        if (!(momentum >= 0.0f && momentum <= 1.0f))
            return oomb_cuda_errf(k, OOMB_ERR_INVALID,
                                  "batchnorm_forward: momentum = %g is not in [0, 1]",
                                  (double)momentum);
        bn_train_forward_kernel<<<l_grid_rows(C), l_threads_for(B * S), 0, k->stream>>>(
            out, mean, rstd, run_mean, run_var, inp, gamma, beta, B, C, S, momentum, eps);
        OOMB_CUDA_LAUNCHED(k, "bn_train_forward_kernel");
    } else {
        if (!run_mean || !run_var)
            return invalid(k, "batchnorm_forward", "inference needs run_mean and run_var");
        bn_eval_forward_kernel<<<l_grid_for(B * C * S, L_THREADS), L_THREADS, 0, k->stream>>>(
            out, mean, rstd, run_mean, run_var, inp, gamma, beta, B, C, S, eps);
        OOMB_CUDA_LAUNCHED(k, "bn_eval_forward_kernel");
    }
    return OOMB_OK;
}

static int cuda_batchnorm_backward(void *kv, float *dinp, float *dgamma, float *dbeta,
                                   const float *dout, const float *inp, const float *mean,
                                   const float *rstd, const float *gamma, int64_t B, int64_t C,
                                   int64_t S)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (!dinp || !dgamma || !dbeta || !dout || !inp || !mean || !rstd || !gamma)
        return invalid(k, "batchnorm_backward",
                       "dinp, dgamma, dbeta, dout, inp, mean, rstd or gamma is NULL");
    L_RETURN_IF(bn_shape(k, "batchnorm_backward", B, C, S));
    bn_backward_kernel<<<l_grid_rows(C), l_threads_for(B * S), 0, k->stream>>>(
        dinp, dgamma, dbeta, dout, inp, mean, rstd, gamma, B, C, S);
    OOMB_CUDA_LAUNCHED(k, "bn_backward_kernel");
    return OOMB_OK;
}

/* ---------------------------------------------------------- layernorm ---- */

/* One block per row of x (N, C): mean and biased variance (in double),
 * out = (x - mean) rstd gamma + beta; mean/rstd (N) written when given. */
__global__ void ln_forward_kernel(float *out, float *mean, float *rstd, const float *inp,
                                  const float *gamma, const float *beta, int64_t N, int64_t C,
                                  float eps)
{
    ROW_STRIDE(r, N)
    {
        const float *x = inp + r * C;
        float *y = out + r * C;
        double s = 0.0;
        for (int64_t j = threadIdx.x; j < C; j += blockDim.x)
            s += (double)x[j];
        s = block_reduce(s, SumOp(), 0.0);
        const double mu = s / (double)C;
        double q = 0.0;
        for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
            double d = (double)x[j] - mu;
            q += d * d;
        }
        q = block_reduce(q, SumOp(), 0.0);
        const float m = (float)mu;
        const float rs = (float)(1.0 / sqrt(q / (double)C + (double)eps));
        if (threadIdx.x == 0) {
            if (mean)
                mean[r] = m;
            if (rstd)
                rstd[r] = rs;
        }
        for (int64_t j = threadIdx.x; j < C; j += blockDim.x)
            y[j] = (x[j] - m) * rs * gamma[j] + beta[j];
    }
}

/* One block per row: with xhat = (x - mean) rstd and g = dout gamma,
 * dinp = rstd (g - mean(g) - xhat mean(g xhat)). */
__global__ void ln_backward_input_kernel(float *dinp, const float *dout, const float *inp,
                                         const float *mean, const float *rstd,
                                         const float *gamma, int64_t N, int64_t C)
{
    ROW_STRIDE(r, N)
    {
        const float *x = inp + r * C, *dy = dout + r * C;
        float *dx = dinp + r * C;
        const float m = mean[r], rs = rstd[r];
        double s1 = 0.0, s2 = 0.0;
        for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
            float g = dy[j] * gamma[j];
            float xh = (x[j] - m) * rs;
            s1 += (double)g;
            s2 += (double)g * (double)xh;
        }
        s1 = block_reduce(s1, SumOp(), 0.0);
        s2 = block_reduce(s2, SumOp(), 0.0);
        const float mg = (float)(s1 / (double)C), mgx = (float)(s2 / (double)C);
        for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
            float g = dy[j] * gamma[j];
            float xh = (x[j] - m) * rs;
            dx[j] = rs * (g - mg - xh * mgx);
        }
    }
}

/* dgamma (C) += sum over rows of dout xhat, dbeta (C) += sum over rows of dout.
 * Block (32, 8): threadIdx.x picks a column, threadIdx.y strides over rows;
 * the 8 partial sums (double) of a column are added in shared memory. */
__global__ void ln_backward_params_kernel(float *dgamma, float *dbeta, const float *dout,
                                          const float *inp, const float *mean,
                                          const float *rstd, int64_t N, int64_t C)
{
    __shared__ double pg[8][33], pb[8][33];
    for (int64_t j0 = (int64_t)blockIdx.x * 32; j0 < C; j0 += (int64_t)gridDim.x * 32) {
        int64_t j = j0 + threadIdx.x;
        double sg = 0.0, sb = 0.0;
        if (j < C)
            for (int64_t r = threadIdx.y; r < N; r += 8) {
                float d = dout[r * C + j];
                float xh = (inp[r * C + j] - mean[r]) * rstd[r];
                sg += (double)d * (double)xh;
                sb += (double)d;
            }
        pg[threadIdx.y][threadIdx.x] = sg;
        pb[threadIdx.y][threadIdx.x] = sb;
        __syncthreads();
        if (threadIdx.y == 0 && j < C) {
            double tg = 0.0, tb = 0.0;
            for (int q = 0; q < 8; q++) {
                tg += pg[q][threadIdx.x];
                tb += pb[q][threadIdx.x];
            }
            if (dgamma)
                dgamma[j] += (float)tg;
            if (dbeta)
                dbeta[j] += (float)tb;
        }
        __syncthreads();
    }
}

static int ln_shape(struct oomb_cuda_ctx *k, const char *op, int64_t N, int64_t C)
{
    if (N <= 0 || C <= 0)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "%s: bad shape (N %lld, C %lld)", op,
                              (long long)N, (long long)C);
    return OOMB_OK;
}

static int cuda_layernorm_forward(void *kv, float *out, float *mean, float *rstd,
                                  const float *inp, const float *gamma, const float *beta,
                                  int64_t N, int64_t C, float eps)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (!out || !mean || !rstd || !inp || !gamma || !beta)
        return invalid(k, "layernorm_forward", "out, mean, rstd, inp, gamma or beta is NULL");
    L_RETURN_IF(ln_shape(k, "layernorm_forward", N, C));
    if (!(eps > 0.0f) || !isfinite(eps))
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "layernorm_forward: eps = %g is not positive",
                              (double)eps);
    ln_forward_kernel<<<l_grid_rows(N), l_threads_for(C), 0, k->stream>>>(out, mean, rstd, inp,
                                                                          gamma, beta, N, C, eps);
    OOMB_CUDA_LAUNCHED(k, "ln_forward_kernel");
    return OOMB_OK;
}

static int cuda_layernorm_backward(void *kv, float *dinp, float *dgamma, float *dbeta,
                                   const float *dout, const float *inp, const float *mean,
                                   const float *rstd, const float *gamma, int64_t N, int64_t C)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (!dinp || !dgamma || !dbeta || !dout || !inp || !mean || !rstd || !gamma)
        return invalid(k, "layernorm_backward",
                       "dinp, dgamma, dbeta, dout, inp, mean, rstd or gamma is NULL");
    L_RETURN_IF(ln_shape(k, "layernorm_backward", N, C));
    /* parameters first: dinp may alias dout */
    ln_backward_params_kernel<<<l_grid_for(C, 32), dim3(32, 8), 0, k->stream>>>(
        dgamma, dbeta, dout, inp, mean, rstd, N, C);
    OOMB_CUDA_LAUNCHED(k, "ln_backward_params_kernel");
    ln_backward_input_kernel<<<l_grid_rows(N), l_threads_for(C), 0, k->stream>>>(
        dinp, dout, inp, mean, rstd, gamma, N, C);
    OOMB_CUDA_LAUNCHED(k, "ln_backward_input_kernel");
    return OOMB_OK;
}

/* ---------------------------------------------------------- attention ---- */

/* dst (B, H, T, hd) = columns off .. off + C - 1 of src (B, T, ld), head h
 * taking columns h*hd .. (h+1)*hd - 1. */
__global__ void split_heads_kernel(float *dst, const float *src, int64_t B, int64_t T, int64_t C,
                                   int64_t H, int64_t ld, int64_t off)
{
    const int64_t hd = C / H;
    GRID_STRIDE(i, B * T * C)
    {
        int64_t c = i % C, t = (i / C) % T, b = i / (C * T);
        int64_t h = c / hd, d = c % hd;
        dst[((b * H + h) * T + t) * hd + d] = src[(b * T + t) * ld + off + c];
    }
}

/* The inverse: columns off .. off + C - 1 of dst (B, T, ld) = src (B, H, T, hd). */
__global__ void merge_heads_kernel(float *dst, const float *src, int64_t B, int64_t T, int64_t C,
                                   int64_t H, int64_t ld, int64_t off)
{
    const int64_t hd = C / H;
    GRID_STRIDE(i, B * T * C)
    {
        int64_t c = i % C, t = (i / C) % T, b = i / (C * T);
        int64_t h = c / hd, d = c % hd;
        dst[(b * T + t) * ld + off + c] = src[((b * H + h) * T + t) * hd + d];
    }
}

/* One block per row of p (rows, T), rows = B*H*T, in place: the scaled scores
 * become softmax probabilities; causal: row i (= r mod T) keeps j <= i, the
 * rest exactly 0. */
__global__ void attn_softmax_kernel(float *p, int64_t rows, int64_t T, int causal)
{
    ROW_STRIDE(r, rows)
    {
        float *row = p + r * T;
        const int64_t lim = causal ? r % T + 1 : T;
        float m = -INFINITY;
        for (int64_t j = threadIdx.x; j < lim; j += blockDim.x)
            m = fmaxf(m, row[j]);
        m = block_reduce(m, MaxOp(), -INFINITY);
        float s = 0.0f;
        for (int64_t j = threadIdx.x; j < lim; j += blockDim.x)
            s += expf(row[j] - m);
        s = block_reduce(s, SumOp(), 0.0f);
        const float inv = 1.0f / s;
        for (int64_t j = threadIdx.x; j < T; j += blockDim.x)
            row[j] = j < lim ? expf(row[j] - m) * inv : 0.0f;
    }
}

/* One block per row, in place: dp (rows, T) becomes
 * ds = p (dp - sum_j p dp); masked entries exactly 0. */
__global__ void attn_softmax_backward_kernel(float *dp, const float *p, int64_t rows, int64_t T,
                                             int causal)
{
    ROW_STRIDE(r, rows)
    {
        float *drow = dp + r * T;
        const float *prow = p + r * T;
        const int64_t lim = causal ? r % T + 1 : T;
        float s = 0.0f;
        for (int64_t j = threadIdx.x; j < lim; j += blockDim.x)
            s += prow[j] * drow[j];
        s = block_reduce(s, SumOp(), 0.0f);
        for (int64_t j = threadIdx.x; j < T; j += blockDim.x)
            drow[j] = j < lim ? prow[j] * (drow[j] - s) : 0.0f;
    }
}

static int64_t pad64(int64_t n) { return (n + 63) / 64 * 64; }

/* Workspace in floats: 4 slots of pad(B*T*C), then pad(B*H*T*T). */
static int64_t attn_slot(int64_t B, int64_t T, int64_t C) { return pad64(B * T * C); }
static int64_t attn_ws_floats(int64_t B, int64_t T, int64_t C, int64_t H)
{
    return 4 * attn_slot(B, T, C) + pad64(B * H * T * T);
}

static int attn_check(struct oomb_cuda_ctx *k, const char *op, int64_t B, int64_t T, int64_t C,
                      int64_t H)
{
    if (B <= 0 || T <= 0 || C <= 0 || H <= 0)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "%s: bad shape (B %lld, T %lld, C %lld, H %lld)",
                              op, (long long)B, (long long)T, (long long)C, (long long)H);
    if (C % H != 0)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "%s: C = %lld is not a multiple of H = %lld",
                              op, (long long)C, (long long)H);
    if (T > INT_MAX || C > INT_MAX || B * H > INT_MAX || B * H * T * T > ((int64_t)1 << 50) ||
        B * T * C > ((int64_t)1 << 50))
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "%s: shape (B %lld, T %lld, C %lld, H %lld) too large",
                              op, (long long)B, (long long)T, (long long)C, (long long)H);
    return OOMB_OK;
}

static int cuda_attention_workspace(void *kv, int64_t B, int64_t T, int64_t C, int64_t H,
                                    size_t *bytes)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (!bytes)
        return invalid(k, "attention_workspace", "bytes is NULL");
    *bytes = 0;
    L_RETURN_IF(attn_check(k, "attention_workspace", B, T, C, H));
    *bytes = (size_t)attn_ws_floats(B, T, C, H) * sizeof(float);
    return OOMB_OK;
}

/* Per head (batch = B*H): C = alpha op(A) op(B), column-major, FP32 (TF32
 * only with OOMB_CUDA_TF32=1, via the context's compute type). */
static int gemm_heads(struct oomb_cuda_ctx *k, cublasOperation_t ta, cublasOperation_t tb, int64_t m,
                      int64_t n, int64_t kk, float alpha, const float *A, int64_t lda,
                      int64_t sA, const float *Bm, int64_t ldb, int64_t sB, float *Cm,
                      int64_t ldc, int64_t sC, int64_t batch)
{
    const float zero = 0.0f;
    OOMB_CUBLAS_CHECK(k, cublasGemmStridedBatchedEx(
                             k->cublas, ta, tb, (int)m, (int)n, (int)kk, &alpha, A, CUDA_R_32F,
                             (int)lda, (long long)sA, Bm, CUDA_R_32F, (int)ldb, (long long)sB,
                             &zero, Cm, CUDA_R_32F, (int)ldc, (long long)sC, (int)batch,
                             k->f32_compute, CUBLAS_GEMM_DEFAULT));
    return OOMB_OK;
}

static int split_heads(struct oomb_cuda_ctx *k, float *dst, const float *src, int64_t B,
                       int64_t T, int64_t C, int64_t H, int64_t ld, int64_t off)
{
    split_heads_kernel<<<l_grid_for(B * T * C, L_THREADS), L_THREADS, 0, k->stream>>>(
        dst, src, B, T, C, H, ld, off);
    OOMB_CUDA_LAUNCHED(k, "split_heads_kernel");
    return OOMB_OK;
}

static int merge_heads(struct oomb_cuda_ctx *k, float *dst, const float *src, int64_t B,
                       int64_t T, int64_t C, int64_t H, int64_t ld, int64_t off)
{
    merge_heads_kernel<<<l_grid_for(B * T * C, L_THREADS), L_THREADS, 0, k->stream>>>(
        dst, src, B, T, C, H, ld, off);
    OOMB_CUDA_LAUNCHED(k, "merge_heads_kernel");
    return OOMB_OK;
}

static int cuda_attention_forward(void *kv, float *out, float *probs, const float *qkv, int64_t B,
                                  int64_t T, int64_t C, int64_t H, int causal, void *ws,
                                  size_t ws_bytes)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (!out || !probs || !qkv)
        return invalid(k, "attention_forward", "out, probs or qkv is NULL");
    L_RETURN_IF(attn_check(k, "attention_forward", B, T, C, H));
    const int64_t slot = attn_slot(B, T, C);
    const size_t need = (size_t)(3 * slot) * sizeof(float);
    if (!ws || ws_bytes < need)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID,
                              "attention_forward: workspace of %zu bytes too small (needs %zu; "
                              "size it with attention_workspace)",
                              ws ? ws_bytes : (size_t)0, need);
    const int64_t hd = C / H, BH = B * H, rows = BH * T;
    const float scale = (float)(1.0 / sqrt((double)hd));
    float *q = (float *)ws, *kk = q + slot, *v = q + 2 * slot, *o = q;

    L_RETURN_IF(split_heads(k, q, qkv, B, T, C, H, 3 * C, 0));
    L_RETURN_IF(split_heads(k, kk, qkv, B, T, C, H, 3 * C, C));
    L_RETURN_IF(split_heads(k, v, qkv, B, T, C, H, 3 * C, 2 * C));
    /* probs (T, T) = scale q k^T per head (see the top of the file) */
    L_RETURN_IF(gemm_heads(k, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hd, scale, kk, hd, T * hd, q, hd,
                           T * hd, probs, T, T * T, BH));
    attn_softmax_kernel<<<l_grid_rows(rows), l_threads_for(T), 0, k->stream>>>(probs, rows, T,
                                                                               causal);
    OOMB_CUDA_LAUNCHED(k, "attn_softmax_kernel");
    /* o (T, hd) = probs v per head, into q's slot */
    L_RETURN_IF(gemm_heads(k, CUBLAS_OP_N, CUBLAS_OP_N, hd, T, T, 1.0f, v, hd, T * hd, probs, T,
                           T * T, o, hd, T * hd, BH));
    return merge_heads(k, out, o, B, T, C, H, C, 0);
}

/*
 * Workspace slots (B, H, T, hd) s0..s3 and dp (B, H, T, T):
 *   s0 = q, s1 = k, s2 = v, s3 = dout per head
 *   dp = dout v^T; s2 = dv = probs^T dout (v no longer needed)
 *   dp = softmax backward (ds); s3 = dq = scale ds k (dout no longer needed)
 *   s1 = dk = scale ds^T q (k no longer needed)
 * then dq, dk, dv merged into dqkv.
 */
static int cuda_attention_backward(void *kv, float *dqkv, const float *dout, const float *qkv,
                                   const float *probs, int64_t B, int64_t T, int64_t C, int64_t H,
                                   int causal, void *ws, size_t ws_bytes)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (!dqkv || !dout || !qkv || !probs)
        return invalid(k, "attention_backward", "dqkv, dout, qkv or probs is NULL");
    L_RETURN_IF(attn_check(k, "attention_backward", B, T, C, H));
    const size_t need = (size_t)attn_ws_floats(B, T, C, H) * sizeof(float);
    if (!ws || ws_bytes < need)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID,
                              "attention_backward: workspace of %zu bytes too small (needs %zu; "
                              "size it with attention_workspace)",
                              ws ? ws_bytes : (size_t)0, need);
    const int64_t slot = attn_slot(B, T, C);
    const int64_t hd = C / H, BH = B * H, rows = BH * T;
    const float scale = (float)(1.0 / sqrt((double)hd));
    float *s0 = (float *)ws, *s1 = s0 + slot, *s2 = s0 + 2 * slot, *s3 = s0 + 3 * slot;
    float *dp = s0 + 4 * slot;

    L_RETURN_IF(split_heads(k, s0, qkv, B, T, C, H, 3 * C, 0));
    L_RETURN_IF(split_heads(k, s1, qkv, B, T, C, H, 3 * C, C));
    L_RETURN_IF(split_heads(k, s2, qkv, B, T, C, H, 3 * C, 2 * C));
    L_RETURN_IF(split_heads(k, s3, dout, B, T, C, H, C, 0));
    /* dp (T, T) = dout v^T */
    L_RETURN_IF(gemm_heads(k, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hd, 1.0f, s2, hd, T * hd, s3, hd,
                           T * hd, dp, T, T * T, BH));
    /* dv (T, hd) = probs^T dout, over v */
    L_RETURN_IF(gemm_heads(k, CUBLAS_OP_N, CUBLAS_OP_T, hd, T, T, 1.0f, s3, hd, T * hd, probs, T,
                           T * T, s2, hd, T * hd, BH));
    attn_softmax_backward_kernel<<<l_grid_rows(rows), l_threads_for(T), 0, k->stream>>>(
        dp, probs, rows, T, causal);
    OOMB_CUDA_LAUNCHED(k, "attn_softmax_backward_kernel");
    /* dq (T, hd) = scale ds k, over dout */
    L_RETURN_IF(gemm_heads(k, CUBLAS_OP_N, CUBLAS_OP_N, hd, T, T, scale, s1, hd, T * hd, dp, T,
                           T * T, s3, hd, T * hd, BH));
    /* dk (T, hd) = scale ds^T q, over k */
    L_RETURN_IF(gemm_heads(k, CUBLAS_OP_N, CUBLAS_OP_T, hd, T, T, scale, s0, hd, T * hd, dp, T,
                           T * T, s1, hd, T * hd, BH));
    L_RETURN_IF(merge_heads(k, dqkv, s3, B, T, C, H, 3 * C, 0));
    L_RETURN_IF(merge_heads(k, dqkv, s1, B, T, C, H, 3 * C, C));
    return merge_heads(k, dqkv, s2, B, T, C, H, 3 * C, 2 * C);
}

/* ---------------------------------------------------------------- add ---- */

/* out (n) = a (n) + b (n); out may alias a or b */
__global__ void add_kernel(float *out, const float *a, const float *b, int64_t n)
{
    GRID_STRIDE(i, n) { out[i] = a[i] + b[i]; }
}

static int cuda_add(void *kv, float *out, const float *a, const float *b, int64_t n)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (n <= 0)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "add: n = %lld is not positive", (long long)n);
    if (!out || !a || !b)
        return invalid(k, "add", "out, a or b is NULL");
    add_kernel<<<l_grid_for(n, L_THREADS), L_THREADS, 0, k->stream>>>(out, a, b, n);
    OOMB_CUDA_LAUNCHED(k, "add_kernel");
    return OOMB_OK;
}

/* ------------------------------------------------------------------ table ---- */

extern "C" void oomb_cuda_layer_ops_init(struct oomb_ops *ops)
{
    ops->conv2d_workspace = cuda_conv2d_workspace;
    ops->conv2d_forward = cuda_conv2d_forward;
    ops->conv2d_backward = cuda_conv2d_backward;
    ops->maxpool_forward = cuda_maxpool_forward;
    ops->maxpool_backward = cuda_maxpool_backward;
    ops->maxpool_forward_idx = cuda_maxpool_forward_idx;
    ops->maxpool_backward_idx = cuda_maxpool_backward_idx;
    ops->batchnorm_forward = cuda_batchnorm_forward;
    ops->batchnorm_backward = cuda_batchnorm_backward;
    ops->layernorm_forward = cuda_layernorm_forward;
    ops->layernorm_backward = cuda_layernorm_backward;
    ops->attention_workspace = cuda_attention_workspace;
    ops->attention_forward = cuda_attention_forward;
    ops->attention_backward = cuda_attention_backward;
    ops->add = cuda_add;
}
