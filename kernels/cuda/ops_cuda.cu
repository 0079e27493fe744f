/*
 * The kernel ops of the CUDA backend: the same ops, shapes and semantics as
 * kernels/cpu/ops_cpu.c (the ground truth), on the backend's stream.
 *
 * GEMMs go through cublasGemmEx; everything else is an own kernel below. Each
 * kernel carries the shapes of its arrays (row-major, as in plugin.h). Kernels
 * never allocate: reductions that return a value to the host use the
 * context's fixed scratch buffer. Element-wise kernels use grid-stride loops
 * with 64-bit indices, so any n works with a capped grid. The int8, sparse
 * and distillation kernels go into the context's extension tables (OOMB_EXT_*
 * of <oombench/plugin.h>), not the core op table.
 *
 * Row-major vs cuBLAS column-major. A row-major (R, C) array read as
 * column-major is its transpose, (C, R) with leading dimension C. So for
 *     out (B, OC) = inp (B, C) @ W^T,  W (OC, C)
 * cuBLAS sees column-major out^T (OC, B), ld OC, and we ask it for
 *     out^T (OC, B) = W (OC, C) @ inp^T (C, B).
 * W stored row-major is column-major W^T (C, OC), ld C, so op(A) = T with
 * A = weight, lda = C; inp stored row-major is column-major inp^T (C, B), ld C,
 * so op(B) = N with B = inp, ldb = C; m = OC, n = B, k = C.
 * Backward, likewise:
 *     dinp (B, C) = dout (B, OC) @ W (OC, C)
 *       -> dinp^T (C, B) = W^T (C, OC) @ dout^T (OC, B):
 *          A = weight (col-major W^T, ld C, op N), B = dout (col-major dout^T,
 *          ld OC, op N); m = C, n = B, k = OC, ldc = C.
 *     dweight (OC, C) += dout^T (OC, B) @ inp (B, C)
 *       -> dweight^T (C, OC) += inp^T (C, B) @ dout (B, OC):
 *          A = inp (col-major inp^T, ld C, op N), B = dout (col-major dout^T,
 *          ld OC, op T gives dout); m = C, n = OC, k = B, ldc = C, beta = 1.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cuda_fp16.h>

#include "common.cuh"
#include "device.cuh"

#define THREADS 256
#define MAX_GRID (1u << 20)

/* ------------------------------------------------------------- helpers ---- */

static unsigned grid_for(int64_t n, int threads)
{
    int64_t g = (n + threads - 1) / threads;
    if (g < 1)
        g = 1;
    if (g > (int64_t)MAX_GRID)
        g = MAX_GRID;
    return (unsigned)g;
}

static unsigned grid_rows(int64_t rows)
{
    if (rows < 1)
        return 1;
    return rows > (int64_t)MAX_GRID ? MAX_GRID : (unsigned)rows;
}

__device__ __forceinline__ float load_f(const float *p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load_f(const __half *p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ void store_f(float *p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store_f(__half *p, int64_t i, float v) { p[i] = __float2half_rn(v); }

static int check_dt(struct oomb_cuda_ctx *k, const char *op, enum oomb_dtype dt)
{
    if (dt != OOMB_F32 && dt != OOMB_F16)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "%s: dtype %d not supported (F32 or F16)", op,
                              (int)dt);
    return OOMB_OK;
}

static int check_n(struct oomb_cuda_ctx *k, const char *op, int64_t n)
{
    if (n < 0)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "%s: negative size %lld", op, (long long)n);
    return OOMB_OK;
}

static int check_gemm_dims(struct oomb_cuda_ctx *k, const char *op, int64_t B, int64_t C,
                           int64_t OC)
{
    if (B < 0 || C < 0 || OC < 0)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "%s: negative shape (B %lld, C %lld, OC %lld)",
                              op, (long long)B, (long long)C, (long long)OC);
    if (B > INT_MAX || C > INT_MAX || OC > INT_MAX)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID,
                              "%s: shape (B %lld, C %lld, OC %lld) exceeds cuBLAS int dimensions",
                              op, (long long)B, (long long)C, (long long)OC);
    return OOMB_OK;
}

#define RETURN_IF(rc_expr)                                                                 \
    do {                                                                                   \
        int rc_ = (rc_expr);                                                               \
        if (rc_ != OOMB_OK)                                                                \
            return rc_;                                                                    \
    } while (0)

/* Device scratch layout: [0, 8 * OOMB_CUDA_REDUCE_BLOCKS) partials, then
 * one 8-byte result slot. */
static void *scratch_result(struct oomb_cuda_ctx *k)
{
    return (char *)k->scratch + (size_t)OOMB_CUDA_REDUCE_BLOCKS * 8;
}

/* Copies the 8-byte result slot to the host and waits for it. */
static int fetch_result(struct oomb_cuda_ctx *k, void *dst8)
{
    OOMB_CUDA_CHECK(k, cudaMemcpyAsync(k->host_scratch, scratch_result(k), 8,
                                       cudaMemcpyDeviceToHost, k->stream));
    OOMB_CUDA_CHECK(k, cudaStreamSynchronize(k->stream));
    memcpy(dst8, k->host_scratch, 8);
    return OOMB_OK;
}

static int zero_result(struct oomb_cuda_ctx *k)
{
    OOMB_CUDA_CHECK(k, cudaMemsetAsync(scratch_result(k), 0, 8, k->stream));
    return OOMB_OK;
}

/* Adds each block's count into the result slot. */
__device__ void block_count_add(unsigned long long c, unsigned long long *result)
{
    c = block_reduce(c, SumOp(), 0ull);
    if (threadIdx.x == 0 && c)
        atomicAdd(result, c);
}

/* ------------------------------------------------------ memory movement ---- */

static const char *cuda_last_error(void *kv) { return ((struct oomb_cuda_ctx *)kv)->err; }

static int cuda_to_host(void *kv, void *dst_host, const void *src_dev, size_t bytes)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (bytes == 0)
        return OOMB_OK;
    OOMB_CUDA_CHECK(k, cudaMemcpyAsync(dst_host, src_dev, bytes, cudaMemcpyDeviceToHost,
                                       k->stream));
    OOMB_CUDA_CHECK(k, cudaStreamSynchronize(k->stream));
    return OOMB_OK;
}

/* From pageable memory the call returns once the source has been staged, so the
 * caller may reuse its buffer right away. */
static int cuda_to_device(void *kv, void *dst_dev, const void *src_host, size_t bytes)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (bytes == 0)
        return OOMB_OK;
    OOMB_CUDA_CHECK(k, cudaMemcpyAsync(dst_dev, src_host, bytes, cudaMemcpyHostToDevice,
                                       k->stream));
    return OOMB_OK;
}

static int cuda_copy(void *kv, void *dst_dev, const void *src_dev, size_t bytes)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (bytes == 0)
        return OOMB_OK;
    OOMB_CUDA_CHECK(k, cudaMemcpyAsync(dst_dev, src_dev, bytes, cudaMemcpyDeviceToDevice,
                                       k->stream));
    return OOMB_OK;
}

/* x (n) = value */
__global__ void fill_kernel(float *x, int64_t n, float value)
{
    GRID_STRIDE(i, n) { x[i] = value; }
}

static int cuda_fill(void *kv, float *x, int64_t n, float value)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_n(k, "fill", n));
    if (n == 0)
        return OOMB_OK;
    fill_kernel<<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(x, n, value);
    OOMB_CUDA_LAUNCHED(k, "fill_kernel");
    return OOMB_OK;
}

static int cuda_zero(void *kv, void *x, size_t bytes)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (bytes == 0)
        return OOMB_OK;
    OOMB_CUDA_CHECK(k, cudaMemsetAsync(x, 0, bytes, k->stream));
    return OOMB_OK;
}

/* --------------------------------------------------------------- linear ---- */

/* out (B, OC) += bias (OC), broadcast over rows */
template <typename T> __global__ void bias_add_kernel(T *out, const float *bias, int64_t B,
                                                      int64_t OC)
{
    GRID_STRIDE(i, B * OC) { store_f(out, i, load_f(out, i) + bias[i % OC]); }
}

/* dbias (OC) += column sums of dout (B, OC). Block (32, 8): threadIdx.x picks a
 * column (coalesced across a warp), threadIdx.y strides over rows; the 8
 * partial sums of a column are added in shared memory. */
template <typename T> __global__ void bias_backward_kernel(float *dbias, const T *dout,
                                                           int64_t B, int64_t OC)
{
    __shared__ float part[8][33];
    for (int64_t o0 = (int64_t)blockIdx.x * 32; o0 < OC; o0 += (int64_t)gridDim.x * 32) {
        int64_t o = o0 + threadIdx.x;
        float s = 0.0f;
        if (o < OC)
            for (int64_t b = threadIdx.y; b < B; b += 8)
                s += load_f(dout, b * OC + o);
        part[threadIdx.y][threadIdx.x] = s;
        __syncthreads();
        if (threadIdx.y == 0 && o < OC) {
            float t = 0.0f;
            for (int j = 0; j < 8; j++)
                t += part[j][threadIdx.x];
            dbias[o] += t;
        }
        __syncthreads();
    }
}

static cudaDataType cuda_type(enum oomb_dtype dt) { return dt == OOMB_F16 ? CUDA_R_16F : CUDA_R_32F; }

static cublasComputeType_t compute_for(struct oomb_cuda_ctx *k, enum oomb_dtype dt)
{
    /* FP16 inputs accumulate in FP32; TF32 only ever applies to FP32 inputs. */
    return dt == OOMB_F16 ? CUBLAS_COMPUTE_32F : k->f32_compute;
}

static int cuda_linear_forward(void *kv, enum oomb_dtype dt, void *out, const void *inp,
                               const void *weight, const float *bias, int64_t B, int64_t C,
                               int64_t OC)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_dt(k, "linear_forward", dt));
    RETURN_IF(check_gemm_dims(k, "linear_forward", B, C, OC));
    if (B == 0 || OC == 0)
        return OOMB_OK;
    const size_t esz = dt == OOMB_F16 ? 2 : 4;
    if (C == 0) {
        OOMB_CUDA_CHECK(k, cudaMemsetAsync(out, 0, (size_t)(B * OC) * esz, k->stream));
    } else {
        const float one = 1.0f, zero = 0.0f;
        const cudaDataType t = cuda_type(dt);
        /* out^T (OC, B) = W (OC, C) @ inp^T (C, B); see the top of the file */
        OOMB_CUBLAS_CHECK(k, cublasGemmEx(k->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)OC, (int)B,
                                          (int)C, &one, weight, t, (int)C, inp, t, (int)C, &zero,
                                          out, t, (int)OC, compute_for(k, dt),
                                          CUBLAS_GEMM_DEFAULT));
    }
    if (bias) {
        if (dt == OOMB_F16)
            bias_add_kernel<<<grid_for(B * OC, THREADS), THREADS, 0, k->stream>>>(
                (__half *)out, bias, B, OC);
        else
            bias_add_kernel<<<grid_for(B * OC, THREADS), THREADS, 0, k->stream>>>(
                (float *)out, bias, B, OC);
        OOMB_CUDA_LAUNCHED(k, "bias_add_kernel");
    }
    return OOMB_OK;
}

static int cuda_linear_backward(void *kv, enum oomb_dtype dt, void *dinp, float *dweight,
                                float *dbias, const void *dout, const void *inp,
                                const void *weight, int64_t B, int64_t C, int64_t OC)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_dt(k, "linear_backward", dt));
    RETURN_IF(check_gemm_dims(k, "linear_backward", B, C, OC));
    const cudaDataType t = cuda_type(dt);
    const cublasComputeType_t ct = compute_for(k, dt);
    const float one = 1.0f, zero = 0.0f;
    const size_t esz = dt == OOMB_F16 ? 2 : 4;

    if (dinp && B > 0 && C > 0) {
        if (OC == 0) {
            OOMB_CUDA_CHECK(k, cudaMemsetAsync(dinp, 0, (size_t)(B * C) * esz, k->stream));
        } else {
            /* dinp^T (C, B) = W^T (C, OC) @ dout^T (OC, B) */
            OOMB_CUBLAS_CHECK(k, cublasGemmEx(k->cublas, CUBLAS_OP_N, CUBLAS_OP_N, (int)C, (int)B,
                                              (int)OC, &one, weight, t, (int)C, dout, t, (int)OC,
                                              &zero, dinp, t, (int)C, ct, CUBLAS_GEMM_DEFAULT));
        }
    }
    if (dweight && B > 0 && C > 0 && OC > 0) {
        /* dweight^T (C, OC) += inp^T (C, B) @ dout (B, OC); dweight is F32 for
         * both input dtypes (FP16 A/B into an FP32 C). */
        OOMB_CUBLAS_CHECK(k, cublasGemmEx(k->cublas, CUBLAS_OP_N, CUBLAS_OP_T, (int)C, (int)OC,
                                          (int)B, &one, inp, t, (int)C, dout, t, (int)OC, &one,
                                          dweight, CUDA_R_32F, (int)C, ct, CUBLAS_GEMM_DEFAULT));
    }
    if (dbias && B > 0 && OC > 0) {
        dim3 block(32, 8);
        unsigned grid = grid_for(OC, 32);
        if (dt == OOMB_F16)
            bias_backward_kernel<<<grid, block, 0, k->stream>>>(dbias, (const __half *)dout, B, OC);
        else
            bias_backward_kernel<<<grid, block, 0, k->stream>>>(dbias, (const float *)dout, B, OC);
        OOMB_CUDA_LAUNCHED(k, "bias_backward_kernel");
    }
    return OOMB_OK;
}

/* ---------------------------------------------------------- activations ---- */

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_CUBE 0.044715f

/* out (n) = max(inp, 0) */
template <typename T> __global__ void relu_forward_kernel(T *out, const T *inp, int64_t n)
{
    GRID_STRIDE(i, n)
    {
        float x = load_f(inp, i);
        store_f(out, i, x > 0.0f ? x : 0.0f);
    }
}

/* dinp (n) = dout (n) * (inp (n) > 0); dinp may alias dout */
template <typename T> __global__ void relu_backward_kernel(T *dinp, const T *dout, const T *inp,
                                                          int64_t n)
{
    GRID_STRIDE(i, n)
    {
        float x = load_f(inp, i);
        store_f(dinp, i, x > 0.0f ? load_f(dout, i) : 0.0f);
    }
}

/* out (n) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
template <typename T> __global__ void gelu_forward_kernel(T *out, const T *inp, int64_t n)
{
    GRID_STRIDE(i, n)
    {
        float x = load_f(inp, i);
        float cube = GELU_CUBE * x * x * x;
        store_f(out, i, 0.5f * x * (1.0f + tanhf(GELU_SCALE * (x + cube))));
    }
}

/* dinp (n) = dout (n) * gelu'(inp (n)); dinp may alias dout */
template <typename T> __global__ void gelu_backward_kernel(T *dinp, const T *dout, const T *inp,
                                                          int64_t n)
{
    GRID_STRIDE(i, n)
    {
        float x = load_f(inp, i);
        float cube = GELU_CUBE * x * x * x;
        float arg = GELU_SCALE * (x + cube);
        float th = tanhf(arg);
        float sech2 = 1.0f - th * th; /* finite where cosh would overflow */
        float local = 0.5f * (1.0f + th) +
                      x * 0.5f * sech2 * GELU_SCALE * (1.0f + 3.0f * GELU_CUBE * x * x);
        store_f(dinp, i, local * load_f(dout, i));
    }
}

#define ACT_LAUNCH(kernel, dt, n, ...)                                                     \
    do {                                                                                   \
        if ((dt) == OOMB_F16)                                                              \
            kernel<__half><<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(__VA_ARGS__);  \
        else                                                                               \
            kernel<float><<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(__VA_ARGS__);   \
        OOMB_CUDA_LAUNCHED(k, #kernel);                                                    \
    } while (0)

#define H(p) (reinterpret_cast<__half *>(p))
#define CH(p) (reinterpret_cast<const __half *>(p))
#define F(p) (reinterpret_cast<float *>(p))
#define CF(p) (reinterpret_cast<const float *>(p))

static int cuda_relu_forward(void *kv, enum oomb_dtype dt, void *out, const void *inp, int64_t n)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_dt(k, "relu_forward", dt));
    RETURN_IF(check_n(k, "relu_forward", n));
    if (n == 0)
        return OOMB_OK;
    if (dt == OOMB_F16)
        relu_forward_kernel<<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(H(out), CH(inp), n);
    else
        relu_forward_kernel<<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(F(out), CF(inp), n);
    OOMB_CUDA_LAUNCHED(k, "relu_forward_kernel");
    return OOMB_OK;
}

static int cuda_relu_backward(void *kv, enum oomb_dtype dt, void *dinp, const void *dout,
                              const void *inp, int64_t n)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_dt(k, "relu_backward", dt));
    RETURN_IF(check_n(k, "relu_backward", n));
    if (n == 0)
        return OOMB_OK;
    if (dt == OOMB_F16)
        relu_backward_kernel<<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(H(dinp), CH(dout),
                                                                              CH(inp), n);
    else
        relu_backward_kernel<<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(F(dinp), CF(dout),
                                                                              CF(inp), n);
    OOMB_CUDA_LAUNCHED(k, "relu_backward_kernel");
    return OOMB_OK;
}

static int cuda_gelu_forward(void *kv, enum oomb_dtype dt, void *out, const void *inp, int64_t n)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_dt(k, "gelu_forward", dt));
    RETURN_IF(check_n(k, "gelu_forward", n));
    if (n == 0)
        return OOMB_OK;
    if (dt == OOMB_F16)
        gelu_forward_kernel<<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(H(out), CH(inp), n);
    else
        gelu_forward_kernel<<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(F(out), CF(inp), n);
    OOMB_CUDA_LAUNCHED(k, "gelu_forward_kernel");
    return OOMB_OK;
}

static int cuda_gelu_backward(void *kv, enum oomb_dtype dt, void *dinp, const void *dout,
                              const void *inp, int64_t n)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_dt(k, "gelu_backward", dt));
    RETURN_IF(check_n(k, "gelu_backward", n));
    if (n == 0)
        return OOMB_OK;
    if (dt == OOMB_F16)
        gelu_backward_kernel<<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(H(dinp), CH(dout),
                                                                              CH(inp), n);
    else
        gelu_backward_kernel<<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(F(dinp), CF(dout),
                                                                              CF(inp), n);
    OOMB_CUDA_LAUNCHED(k, "gelu_backward_kernel");
    return OOMB_OK;
}

/* ----------------------------------------------------------------- loss ---- */

/* One block per row, numerically stable (max subtracted), the exponential sum in
 * double as on the CPU: probs (B, K) = softmax(logits (B, K));
 * losses (B) = log(sum) - (logit[target] - max). A target outside [0, K) gives
 * a NaN loss: checking targets on the host would need a synchronisation. */
__global__ void softmax_xent_forward_kernel(float *losses, float *probs, const float *logits,
                                            const int32_t *targets, int64_t B, int64_t K)
{
    ROW_STRIDE(b, B)
    {
        const float *x = logits + b * K;
        float *p = probs + b * K;
        float m = -INFINITY;
        for (int64_t j = threadIdx.x; j < K; j += blockDim.x)
            m = fmaxf(m, x[j]);
        m = block_reduce(m, MaxOp(), -INFINITY);
        double s = 0.0;
        for (int64_t j = threadIdx.x; j < K; j += blockDim.x)
            s += (double)expf(x[j] - m);
        s = block_reduce(s, SumOp(), 0.0);
        const float inv = (float)(1.0 / s);
        for (int64_t j = threadIdx.x; j < K; j += blockDim.x)
            p[j] = expf(x[j] - m) * inv;
        if (threadIdx.x == 0) {
            int32_t t = targets[b];
            losses[b] = (t >= 0 && t < K) ? (float)(log(s) - (double)(x[t] - m)) : NAN;
        }
    }
}

/* dlogits (B, K) = scale * (probs (B, K) - onehot(targets (B))) */
__global__ void softmax_xent_backward_kernel(float *dlogits, const float *probs,
                                             const int32_t *targets, int64_t B, int64_t K,
                                             float scale)
{
    GRID_STRIDE(i, B * K)
    {
        int64_t b = i / K, j = i % K;
        float indicator = (j == (int64_t)targets[b]) ? 1.0f : 0.0f;
        dlogits[i] = scale * (probs[i] - indicator);
    }
}

/* One block per row, in double as on the CPU. ps = softmax(student/T),
 * pt = softmax(teacher/T): losses (B) += weight T^2 KL(pt || ps);
 * dlogits (B, K) += weight scale T (ps - pt). */
__global__ void soft_xent_kernel(float *losses, float *dlogits, const float *student,
                                 const float *teacher, int64_t B, int64_t K, double invT,
                                 double gscale, double lscale)
{
    ROW_STRIDE(b, B)
    {
        const float *s = student + b * K;
        const float *t = teacher + b * K;
        double ms = -INFINITY, mt = -INFINITY;
        for (int64_t j = threadIdx.x; j < K; j += blockDim.x) {
            ms = fmax(ms, s[j] * invT);
            mt = fmax(mt, t[j] * invT);
        }
        ms = block_reduce(ms, MaxOp(), (double)-INFINITY);
        mt = block_reduce(mt, MaxOp(), (double)-INFINITY);
        double ss = 0.0, st = 0.0;
        for (int64_t j = threadIdx.x; j < K; j += blockDim.x) {
            ss += exp(s[j] * invT - ms);
            st += exp(t[j] * invT - mt);
        }
        ss = block_reduce(ss, SumOp(), 0.0);
        st = block_reduce(st, SumOp(), 0.0);
        const double lse_s = ms + log(ss), lse_t = mt + log(st);
        double kl = 0.0;
        for (int64_t j = threadIdx.x; j < K; j += blockDim.x) {
            double lps = s[j] * invT - lse_s, lpt = t[j] * invT - lse_t;
            double pt = exp(lpt);
            kl += pt * (lpt - lps);
            dlogits[b * K + j] += (float)(gscale * (exp(lps) - pt));
        }
        kl = block_reduce(kl, SumOp(), 0.0);
        if (threadIdx.x == 0)
            losses[b] += (float)(lscale * kl);
    }
}

/* One thread per row of logits (B, K): argmax (first index on ties, as a
 * sequential scan) against targets (B); counts added into *result. */
__global__ void count_correct_kernel(const float *logits, const int32_t *targets, int64_t B,
                                     int64_t K, unsigned long long *result)
{
    unsigned long long c = 0;
    GRID_STRIDE(b, B)
    {
        const float *x = logits + b * K;
        int64_t best = 0;
        float bv = x[0];
        for (int64_t j = 1; j < K; j++)
            if (x[j] > bv) {
                bv = x[j];
                best = j;
            }
        c += best == (int64_t)targets[b];
    }
    block_count_add(c, result);
}

static int cuda_softmax_xent_forward(void *kv, float *losses, float *probs, const float *logits,
                                     const int32_t *targets, int64_t B, int64_t K)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (B < 0 || K <= 0)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "softmax_xent_forward: bad shape (%lld, %lld)",
                              (long long)B, (long long)K);
    if (B == 0)
        return OOMB_OK;
    softmax_xent_forward_kernel<<<grid_rows(B), THREADS, 0, k->stream>>>(losses, probs, logits,
                                                                         targets, B, K);
    OOMB_CUDA_LAUNCHED(k, "softmax_xent_forward_kernel");
    return OOMB_OK;
}

static int cuda_softmax_xent_backward(void *kv, float *dlogits, const float *probs,
                                      const int32_t *targets, int64_t B, int64_t K, float scale)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (B < 0 || K <= 0)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "softmax_xent_backward: bad shape (%lld, %lld)",
                              (long long)B, (long long)K);
    if (B == 0)
        return OOMB_OK;
    softmax_xent_backward_kernel<<<grid_for(B * K, THREADS), THREADS, 0, k->stream>>>(
        dlogits, probs, targets, B, K, scale);
    OOMB_CUDA_LAUNCHED(k, "softmax_xent_backward_kernel");
    return OOMB_OK;
}

static int cuda_soft_xent_accumulate(void *kv, float *losses, float *dlogits,
                                     const float *student_logits, const float *teacher_logits,
                                     int64_t B, int64_t K, float T, float weight, float scale)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (B < 0 || K <= 0 || !(T > 0.0f) || !isfinite(T))
        return oomb_cuda_errf(k, OOMB_ERR_INVALID,
                              "soft_xent_accumulate: bad shape (%lld, %lld) or temperature %g",
                              (long long)B, (long long)K, (double)T);
    if (B == 0)
        return OOMB_OK;
    soft_xent_kernel<<<grid_rows(B), THREADS, 0, k->stream>>>(
        losses, dlogits, student_logits, teacher_logits, B, K, 1.0 / (double)T,
        (double)weight * (double)scale * (double)T, (double)weight * (double)T * (double)T);
    OOMB_CUDA_LAUNCHED(k, "soft_xent_kernel");
    return OOMB_OK;
}

static int cuda_count_correct(void *kv, const float *logits, const int32_t *targets, int64_t B,
                              int64_t K, int64_t *correct)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (B < 0 || K <= 0)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "count_correct: bad shape (%lld, %lld)",
                              (long long)B, (long long)K);
    *correct = 0;
    if (B == 0)
        return OOMB_OK;
    RETURN_IF(zero_result(k));
    count_correct_kernel<<<grid_for(B, THREADS), THREADS, 0, k->stream>>>(
        logits, targets, B, K, (unsigned long long *)scratch_result(k));
    OOMB_CUDA_LAUNCHED(k, "count_correct_kernel");
    unsigned long long c = 0;
    RETURN_IF(fetch_result(k, &c));
    *correct = (int64_t)c;
    return OOMB_OK;
}

/* ----------------------------------------------------------- optimizers ---- */

/* param, grad, mom (n): g = grad + wd param; mom = momentum mom + g and g = mom
 * (skipped when mom is NULL, allowed with momentum 0); param -= lr g. */
__global__ void sgd_kernel(float *param, const float *grad, float *mom, int64_t n, float lr,
                           float momentum, float weight_decay)
{
    GRID_STRIDE(i, n)
    {
        float g = grad[i] + weight_decay * param[i];
        if (mom) {
            float m = momentum * mom[i] + g;
            mom[i] = m;
            g = m;
        }
        param[i] -= lr * g;
    }
}

/* param, grad, m, v (n): AdamW with decoupled weight decay; bc1 = 1 - beta1^t,
 * bc2 = 1 - beta2^t computed on the host. */
__global__ void adam_kernel(float *param, const float *grad, float *m, float *v, int64_t n,
                            float lr, float beta1, float beta2, float eps, float weight_decay,
                            float bc1, float bc2)
{
    GRID_STRIDE(i, n)
    {
        float g = grad[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / bc1, vhat = vi / bc2;
        param[i] -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * param[i]);
    }
}

/* New moments of one element from its quantised state. The products and sums
 * are rounded one by one (no FMA contraction) so that the requantised state
 * comes out bit for bit as on the CPU. */
__device__ __forceinline__ void adam8_moments(float g, int8_t mq, uint8_t vq, float ms, float vs,
                                              float beta1, float beta2, float *m, float *v)
{
    float m_old = __fmul_rn((float)mq, ms);
    float sv_old = __fmul_rn((float)vq, vs);
    *m = __fadd_rn(__fmul_rn(beta1, m_old), __fmul_rn(1.0f - beta1, g));
    *v = __fadd_rn(__fmul_rn(beta2, __fmul_rn(sv_old, sv_old)),
                   __fmul_rn(__fmul_rn(1.0f - beta2, g), g));
}

/* One block per quantisation block of `block` elements of param, grad, m_q,
 * v_q (n); m_scale, v_scale (ceil(n / block)). m = m_q * m_scale,
 * sqrt(v) = v_q * v_scale. Pass 1 computes the new moments from the old
 * quantised state, updates param with them unquantised and reduces the new
 * scales; pass 2 recomputes the same moments (each thread rereads only the
 * elements it writes) and requantises with round-to-nearest-even:
 * m_scale = absmax(m) / 127, v_scale = max(sqrt v) / 255, 0 for a zero block. */
__global__ void adam8_kernel(float *param, const float *grad, int8_t *m_q, uint8_t *v_q,
                             float *m_scale, float *v_scale, int64_t n, int64_t block, float lr,
                             float beta1, float beta2, float eps, float weight_decay, float bc1,
                             float bc2)
{
    const int64_t nblocks = (n + block - 1) / block;
    ROW_STRIDE(blk, nblocks)
    {
        const int64_t lo = blk * block;
        const int64_t hi = n - lo < block ? n : lo + block;
        const float ms = m_scale[blk], vs = v_scale[blk];
        float m_absmax = 0.0f, sv_max = 0.0f;
        for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
            float m, v;
            adam8_moments(grad[i], m_q[i], v_q[i], ms, vs, beta1, beta2, &m, &v);
            float sv = sqrtf(v);
            m_absmax = fabsf(m) > m_absmax ? fabsf(m) : m_absmax;
            sv_max = sv > sv_max ? sv : sv_max;
            float mhat = m / bc1, vhat = v / bc2;
            param[i] -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * param[i]);
        }
        m_absmax = block_reduce(m_absmax, MaxOp(), 0.0f);
        sv_max = block_reduce(sv_max, MaxOp(), 0.0f);
        const float m_inv = m_absmax > 0.0f ? 127.0f / m_absmax : 0.0f;
        const float v_inv = sv_max > 0.0f ? 255.0f / sv_max : 0.0f;
        for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
            float m, v;
            adam8_moments(grad[i], m_q[i], v_q[i], ms, vs, beta1, beta2, &m, &v);
            float qm = rintf(__fmul_rn(m, m_inv));
            float qv = rintf(__fmul_rn(sqrtf(v), v_inv));
            if (qv == 0.0f && v > 0.0f)
                qv = 1.0f; /* never 0 for v > 0: see ops_cpu.c */
            m_q[i] = (int8_t)fminf(fmaxf(qm, -127.0f), 127.0f);
            v_q[i] = (uint8_t)fminf(fmaxf(qv, 0.0f), 255.0f);
        }
        __syncthreads(); /* every thread has read the old scales */
        if (threadIdx.x == 0) {
            m_scale[blk] = m_absmax / 127.0f;
            v_scale[blk] = sv_max / 255.0f;
        }
        __syncthreads(); /* before the next block of this grid-stride loop */
    }
}

/* Bias corrections 1 - beta^t, in double then rounded, as on the CPU. */
static void adam_corrections(float beta1, float beta2, int64_t t, float *c1, float *c2)
{
    *c1 = (float)(1.0 - pow((double)beta1, (double)t));
    *c2 = (float)(1.0 - pow((double)beta2, (double)t));
}

static int check_adam(struct oomb_cuda_ctx *k, const char *op, float beta1, float beta2,
                      int64_t t)
{
    if (t < 1)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "%s: step t = %lld must be 1-based", op,
                              (long long)t);
    if (!(beta1 >= 0.0f && beta1 < 1.0f) || !(beta2 >= 0.0f && beta2 < 1.0f))
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "%s: beta1 = %g, beta2 = %g outside [0, 1)", op,
                              (double)beta1, (double)beta2);
    return OOMB_OK;
}

static int cuda_sgd_update(void *kv, float *param, const float *grad, float *mom, int64_t n,
                           float lr, float momentum, float weight_decay)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_n(k, "sgd_update", n));
    if (!mom && momentum != 0.0f && n > 0)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "sgd_update: mom is NULL with momentum %g",
                              (double)momentum);
    if (n == 0)
        return OOMB_OK;
    sgd_kernel<<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(param, grad, mom, n, lr, momentum,
                                                                weight_decay);
    OOMB_CUDA_LAUNCHED(k, "sgd_kernel");
    return OOMB_OK;
}

static int cuda_adam_update(void *kv, float *param, const float *grad, float *m, float *v,
                            int64_t n, float lr, float beta1, float beta2, float eps,
                            float weight_decay, int64_t t)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_n(k, "adam_update", n));
    RETURN_IF(check_adam(k, "adam_update", beta1, beta2, t));
    if (n == 0)
        return OOMB_OK;
    float bc1, bc2;
    adam_corrections(beta1, beta2, t, &bc1, &bc2);
    adam_kernel<<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(param, grad, m, v, n, lr, beta1,
                                                                 beta2, eps, weight_decay, bc1,
                                                                 bc2);
    OOMB_CUDA_LAUNCHED(k, "adam_kernel");
    return OOMB_OK;
}

static int cuda_adam8_update(void *kv, float *param, const float *grad, int8_t *m_q, uint8_t *v_q,
                             float *m_scale, float *v_scale, int64_t n, int64_t block, float lr,
                             float beta1, float beta2, float eps, float weight_decay, int64_t t)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_n(k, "adam8_update", n));
    if (block <= 0)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "adam8_update: block = %lld must be at least 1",
                              (long long)block);
    RETURN_IF(check_adam(k, "adam8_update", beta1, beta2, t));
    if (n == 0)
        return OOMB_OK;
    float bc1, bc2;
    adam_corrections(beta1, beta2, t, &bc1, &bc2);
    adam8_kernel<<<grid_rows((n + block - 1) / block), THREADS, 0, k->stream>>>(
        param, grad, m_q, v_q, m_scale, v_scale, n, block, lr, beta1, beta2, eps, weight_decay,
        bc1, bc2);
    OOMB_CUDA_LAUNCHED(k, "adam8_kernel");
    return OOMB_OK;
}

/* ------------------------------------------------------------ helpers F32 ---- */

/* x (n) *= alpha */
__global__ void scale_kernel(float *x, int64_t n, float alpha)
{
    GRID_STRIDE(i, n) { x[i] *= alpha; }
}

/* y (n) += alpha x (n) */
__global__ void axpy_kernel(float *y, const float *x, int64_t n, float alpha)
{
    GRID_STRIDE(i, n) { y[i] += alpha * x[i]; }
}

/* partials (gridDim.x) = per-block double sums of x (n) */
__global__ void sum_partial_kernel(const float *x, int64_t n, double *partials)
{
    double s = 0.0;
    GRID_STRIDE(i, n) { s += (double)x[i]; }
    s = block_reduce(s, SumOp(), 0.0);
    if (threadIdx.x == 0)
        partials[blockIdx.x] = s;
}

/* *result = sum of partials (np), one block: a fixed order, so sums repeat */
__global__ void sum_final_kernel(const double *partials, int np, double *result)
{
    double s = 0.0;
    for (int i = threadIdx.x; i < np; i += blockDim.x)
        s += partials[i];
    s = block_reduce(s, SumOp(), 0.0);
    if (threadIdx.x == 0)
        *result = s;
}

/* count of non-finite values of x (n), F32 or F16 */
template <typename T> __global__ void nonfinite_kernel(const T *x, int64_t n,
                                                      unsigned long long *result);
template <> __global__ void nonfinite_kernel<float>(const float *x, int64_t n,
                                                    unsigned long long *result)
{
    unsigned long long c = 0;
    GRID_STRIDE(i, n) { c += !isfinite(x[i]); }
    block_count_add(c, result);
}
template <> __global__ void nonfinite_kernel<uint16_t>(const uint16_t *x, int64_t n,
                                                       unsigned long long *result)
{
    unsigned long long c = 0;
    GRID_STRIDE(i, n) { c += (x[i] & 0x7c00u) == 0x7c00u; } /* exponent all ones */
    block_count_add(c, result);
}

static int cuda_scale(void *kv, float *x, int64_t n, float alpha)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_n(k, "scale", n));
    if (n == 0)
        return OOMB_OK;
    scale_kernel<<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(x, n, alpha);
    OOMB_CUDA_LAUNCHED(k, "scale_kernel");
    return OOMB_OK;
}

static int cuda_axpy(void *kv, float *y, const float *x, int64_t n, float alpha)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_n(k, "axpy", n));
    if (n == 0)
        return OOMB_OK;
    axpy_kernel<<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(y, x, n, alpha);
    OOMB_CUDA_LAUNCHED(k, "axpy_kernel");
    return OOMB_OK;
}

static int cuda_sum(void *kv, const float *x, int64_t n, double *out_host)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_n(k, "sum", n));
    *out_host = 0.0;
    if (n == 0)
        return OOMB_OK;
    unsigned grid = grid_for(n, THREADS);
    if (grid > OOMB_CUDA_REDUCE_BLOCKS)
        grid = OOMB_CUDA_REDUCE_BLOCKS;
    double *partials = (double *)k->scratch;
    sum_partial_kernel<<<grid, THREADS, 0, k->stream>>>(x, n, partials);
    OOMB_CUDA_LAUNCHED(k, "sum_partial_kernel");
    sum_final_kernel<<<1, THREADS, 0, k->stream>>>(partials, (int)grid,
                                                   (double *)scratch_result(k));
    OOMB_CUDA_LAUNCHED(k, "sum_final_kernel");
    return fetch_result(k, out_host);
}

static int cuda_count_nonfinite(void *kv, const void *x, enum oomb_dtype dt, int64_t n,
                                int64_t *out_host)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_n(k, "count_nonfinite", n));
    *out_host = 0;
    RETURN_IF(check_dt(k, "count_nonfinite", dt));
    if (n == 0)
        return OOMB_OK;
    RETURN_IF(zero_result(k));
    unsigned long long *res = (unsigned long long *)scratch_result(k);
    if (dt == OOMB_F16)
        nonfinite_kernel<uint16_t><<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(
            (const uint16_t *)x, n, res);
    else
        nonfinite_kernel<float><<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(
            (const float *)x, n, res);
    OOMB_CUDA_LAUNCHED(k, "nonfinite_kernel");
    unsigned long long c = 0;
    RETURN_IF(fetch_result(k, &c));
    *out_host = (int64_t)c;
    return OOMB_OK;
}

/* ----------------------------------------------------------------- casts ---- */

/* dst (n) F16 = round-to-nearest-even(src (n) F32) */
__global__ void f32_to_f16_kernel(__half *dst, const float *src, int64_t n)
{
    GRID_STRIDE(i, n) { dst[i] = __float2half_rn(src[i]); }
}

/* dst (n) F32 = src (n) F16, exact */
__global__ void f16_to_f32_kernel(float *dst, const __half *src, int64_t n)
{
    GRID_STRIDE(i, n) { dst[i] = __half2float(src[i]); }
}

static int cuda_cast(void *kv, void *dst, enum oomb_dtype dst_dt, const void *src,
                     enum oomb_dtype src_dt, int64_t n)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_n(k, "cast", n));
    RETURN_IF(check_dt(k, "cast", dst_dt));
    RETURN_IF(check_dt(k, "cast", src_dt));
    if (n == 0)
        return OOMB_OK;
    if (dst_dt == src_dt)
        return cuda_copy(kv, dst, src, (size_t)n * (dst_dt == OOMB_F16 ? 2 : 4));
    if (dst_dt == OOMB_F16)
        f32_to_f16_kernel<<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(H(dst), CF(src), n);
    else
        f16_to_f32_kernel<<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(F(dst), CH(src), n);
    OOMB_CUDA_LAUNCHED(k, "cast kernel");
    return OOMB_OK;
}

/* ---------------------------------------------------------- quantisation ---- */

/* One block per row of x (R, C): scales (R) = absmax / 127,
 * q (R, C) = rint(x * (127 / absmax)) clamped to [-127, 127]; an all-zero row
 * gets scale 0 and q 0. */
__global__ void quantize_rows_kernel(int8_t *q, float *scales, const float *x, int64_t R,
                                     int64_t C)
{
    ROW_STRIDE(r, R)
    {
        const float *row = x + r * C;
        float amax = 0.0f;
        for (int64_t j = threadIdx.x; j < C; j += blockDim.x)
            amax = fmaxf(amax, fabsf(row[j]));
        amax = block_reduce(amax, MaxOp(), 0.0f);
        const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
            float v = rintf(__fmul_rn(row[j], inv));
            q[r * C + j] = (int8_t)fminf(fmaxf(v, -127.0f), 127.0f);
        }
        if (threadIdx.x == 0)
            scales[r] = amax / 127.0f;
    }
}

/* x (R, C) = q (R, C) * scales (R) */
__global__ void dequantize_rows_kernel(float *x, const int8_t *q, const float *scales, int64_t R,
                                       int64_t C)
{
    GRID_STRIDE(i, R * C) { x[i] = (float)q[i] * scales[i / C]; }
}

/* acc (B, OC) = xq (B, C) @ wq^T (OC, C), int32; one thread per output. The
 * fallback when cuBLAS's int8 GEMM does not take the shape. */
__global__ void i8_gemm_kernel(int32_t *acc, const int8_t *xq, const int8_t *wq, int64_t B,
                               int64_t C, int64_t OC)
{
    GRID_STRIDE(i, B * OC)
    {
        int64_t b = i / OC, o = i % OC;
        const int8_t *x = xq + b * C, *w = wq + o * C;
        int32_t s = 0;
        for (int64_t c = 0; c < C; c++)
            s += (int32_t)x[c] * (int32_t)w[c];
        acc[i] = s;
    }
}

/* out (B, OC) = acc (B, OC) * xs (B) * ws (OC) + bias (OC) */
__global__ void i8_dequant_kernel(float *out, const int32_t *acc, const float *xs,
                                  const float *ws, const float *bias, int64_t B, int64_t OC)
{
    GRID_STRIDE(i, B * OC)
    {
        int64_t b = i / OC, o = i % OC;
        float v = __fmul_rn(__fmul_rn((float)acc[i], xs[b]), ws[o]);
        out[i] = __fadd_rn(v, bias ? bias[o] : 0.0f);
    }
}

static int cuda_quantize_rows_i8(void *kv, int8_t *q, float *scales, const float *x, int64_t R,
                                 int64_t C)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_n(k, "quantize_rows_i8", R));
    RETURN_IF(check_n(k, "quantize_rows_i8", C));
    if (R == 0)
        return OOMB_OK;
    quantize_rows_kernel<<<grid_rows(R), THREADS, 0, k->stream>>>(q, scales, x, R, C);
    OOMB_CUDA_LAUNCHED(k, "quantize_rows_kernel");
    return OOMB_OK;
}

static int cuda_dequantize_rows_i8(void *kv, float *x, const int8_t *q, const float *scales,
                                   int64_t R, int64_t C)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_n(k, "dequantize_rows_i8", R));
    RETURN_IF(check_n(k, "dequantize_rows_i8", C));
    if (R == 0 || C == 0)
        return OOMB_OK;
    dequantize_rows_kernel<<<grid_for(R * C, THREADS), THREADS, 0, k->stream>>>(x, q, scales, R,
                                                                                C);
    OOMB_CUDA_LAUNCHED(k, "dequantize_rows_kernel");
    return OOMB_OK;
}

/* cuBLAS's int8 GEMM (CUBLAS_COMPUTE_32I) wants 4-byte aligned pointers and
 * leading dimensions that are multiples of 4; other shapes, and a
 * NOT_SUPPORTED or INVALID_VALUE answer from cuBLAS for a shape its int8
 * kernels do not take, go to i8_gemm_kernel (one thread per output, plain
 * int32 dot product). Both give the same exact int32 sums. */
static int i8_cublas_ok(const void *a, const void *b, const void *c, int64_t C, int64_t OC)
{
    return ((uintptr_t)a % 4 == 0) && ((uintptr_t)b % 4 == 0) && ((uintptr_t)c % 4 == 0) &&
           C % 4 == 0 && OC % 4 == 0;
}

static int cuda_linear_forward_i8(void *kv, float *out, const int8_t *xq, const float *xs,
                                  const int8_t *wq, const float *ws, const float *bias,
                                  int32_t *acc, int64_t B, int64_t C, int64_t OC)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_gemm_dims(k, "linear_forward_i8", B, C, OC));
    if (C > INT32_MAX / (127 * 127)) /* the int32 sums could overflow */
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "linear_forward_i8: C = %lld is above %d",
                              (long long)C, INT32_MAX / (127 * 127));
    if (B == 0 || OC == 0)
        return OOMB_OK;
    int done = 0;
    if (C == 0) {
        OOMB_CUDA_CHECK(k, cudaMemsetAsync(acc, 0, (size_t)(B * OC) * 4, k->stream));
        done = 1;
    } else if (i8_cublas_ok(xq, wq, acc, C, OC)) {
        const int32_t one = 1, zero = 0;
        /* acc^T (OC, B) = wq (OC, C) @ xq^T (C, B), as for linear_forward */
        cublasStatus_t s = cublasGemmEx(k->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)OC, (int)B,
                                        (int)C, &one, wq, CUDA_R_8I, (int)C, xq, CUDA_R_8I,
                                        (int)C, &zero, acc, CUDA_R_32I, (int)OC,
                                        CUBLAS_COMPUTE_32I, CUBLAS_GEMM_DEFAULT);
        if (s == CUBLAS_STATUS_SUCCESS)
            done = 1;
        else if (s != CUBLAS_STATUS_NOT_SUPPORTED && s != CUBLAS_STATUS_INVALID_VALUE)
            return oomb_cuda_fail(k, __FILE__, __LINE__, "cublasGemmEx(int8)",
                                  cublasGetStatusString(s));
    }
    if (!done) {
        i8_gemm_kernel<<<grid_for(B * OC, THREADS), THREADS, 0, k->stream>>>(acc, xq, wq, B, C,
                                                                             OC);
        OOMB_CUDA_LAUNCHED(k, "i8_gemm_kernel");
    }
    i8_dequant_kernel<<<grid_for(B * OC, THREADS), THREADS, 0, k->stream>>>(out, acc, xs, ws, bias,
                                                                           B, OC);
    OOMB_CUDA_LAUNCHED(k, "i8_dequant_kernel");
    return OOMB_OK;
}

/* ----------------------------------------------------- pruning, sparsity ---- */

/* count of |x (n)| < thr */
__global__ void count_abs_below_kernel(const float *x, int64_t n, float thr,
                                       unsigned long long *result)
{
    unsigned long long c = 0;
    GRID_STRIDE(i, n) { c += fabsf(x[i]) < thr; }
    block_count_add(c, result);
}

/* mask (n) = |w (n)| >= thr; w = 0 where the mask is 0 */
__global__ void prune_kernel(float *w, uint8_t *mask, int64_t n, float thr)
{
    GRID_STRIDE(i, n)
    {
        uint8_t keep = fabsf(w[i]) >= thr;
        mask[i] = keep;
        if (!keep)
            w[i] = 0.0f;
    }
}

/* x (n) = 0 where mask (n) is 0 (so masked NaN/inf become 0 too), unchanged elsewhere */
__global__ void apply_mask_kernel(float *x, const uint8_t *mask, int64_t n)
{
    GRID_STRIDE(i, n)
    {
        if (!mask[i])
            x[i] = 0.0f;
    }
}

/* dense_to_csr pass 1, one warp per row of w (R, C): rowptr[r + 1] = nonzeros
 * of row r; rowptr[0] = 0. */
__global__ void csr_count_kernel(int32_t *rowptr, const float *w, int64_t R, int64_t C)
{
    const int lane = threadIdx.x & 31;
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
    if (blockIdx.x == 0 && threadIdx.x == 0)
        rowptr[0] = 0;
    for (int64_t r = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); r < R;
         r += warps) {
        int32_t c = 0;
        for (int64_t j = lane; j < C; j += 32)
            c += w[r * C + j] != 0.0f;
        c = warp_reduce(c, SumOp());
        if (lane == 0)
            rowptr[r + 1] = c;
    }
}

/* dense_to_csr pass 2, one block: in-place inclusive scan of rowptr[1 .. R],
 * chunk by chunk with a carry. */
__global__ void csr_scan_kernel(int32_t *rowptr, int64_t R)
{
    __shared__ int32_t warp_tot[32];
    __shared__ int32_t carry;
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (threadIdx.x == 0)
        carry = 0;
    __syncthreads();
    for (int64_t base = 0; base < R; base += blockDim.x) {
        int64_t i = base + threadIdx.x;
        int32_t v = i < R ? rowptr[i + 1] : 0;
        for (int off = 1; off < 32; off <<= 1) { /* warp inclusive scan */
            int32_t u = __shfl_up_sync(0xffffffffu, v, off);
            if (lane >= off)
                v += u;
        }
        if (lane == 31)
            warp_tot[wid] = v;
        __syncthreads();
        if (wid == 0) {
            int32_t t = lane < nw ? warp_tot[lane] : 0;
            for (int off = 1; off < 32; off <<= 1) {
                int32_t u = __shfl_up_sync(0xffffffffu, t, off);
                if (lane >= off)
                    t += u;
            }
            warp_tot[lane] = t; /* inclusive totals of warps 0..lane */
        }
        __syncthreads();
        int32_t add = carry + (wid > 0 ? warp_tot[wid - 1] : 0);
        if (i < R)
            rowptr[i + 1] = v + add;
        __syncthreads();
        if (threadIdx.x == 0)
            carry += warp_tot[nw - 1];
        __syncthreads();
    }
}

/* dense_to_csr pass 3, one warp per row of w (R, C): the nonzeros of the row,
 * in column order, into colidx (nnz, uint16) and vals (nnz) from rowptr[r]. */
__global__ void csr_fill_kernel(uint16_t *colidx, float *vals, const int32_t *rowptr,
                                const float *w, int64_t R, int64_t C)
{
    const int lane = threadIdx.x & 31;
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
    const unsigned below = (1u << lane) - 1u;
    for (int64_t r = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); r < R;
         r += warps) {
        int32_t pos = rowptr[r];
        for (int64_t j0 = 0; j0 < C; j0 += 32) {
            int64_t j = j0 + lane;
            float v = j < C ? w[r * C + j] : 0.0f;
            unsigned nz = __ballot_sync(0xffffffffu, v != 0.0f);
            if (v != 0.0f) {
                int32_t at = pos + __popc(nz & below);
                colidx[at] = (uint16_t)j;
                vals[at] = v;
            }
            pos += __popc(nz);
        }
    }
}

/* out (B, OC) = inp (B, C) @ W^T + bias, W (OC, C) in CSR (rowptr (OC + 1),
 * colidx (nnz, uint16), vals (nnz)); one thread per output, nonzeros in CSR order. */
__global__ void csr_linear_kernel(float *out, const float *inp, const int32_t *rowptr,
                                  const uint16_t *colidx, const float *vals, const float *bias,
                                  int64_t B, int64_t C, int64_t OC)
{
    GRID_STRIDE(i, B * OC)
    {
        int64_t b = i / OC, o = i % OC;
        const float *x = inp + b * C;
        float s = 0.0f;
        for (int32_t j = rowptr[o]; j < rowptr[o + 1]; j++)
            s += vals[j] * x[colidx[j]];
        out[i] = s + (bias ? bias[o] : 0.0f);
    }
}

/* Keeps the two of largest magnitude of w[0..3] (first index wins ties), in
 * position order; returns the nibble p0 | p1 << 2. */
__device__ unsigned pick_2of4(const float *w, int *p0, int *p1)
{
    int a = 0;
    for (int j = 1; j < 4; j++)
        if (fabsf(w[j]) > fabsf(w[a]))
            a = j;
    int b = a == 0 ? 1 : 0;
    for (int j = 0; j < 4; j++)
        if (j != a && fabsf(w[j]) > fabsf(w[b]))
            b = j;
    *p0 = a < b ? a : b;
    *p1 = a < b ? b : a;
    return (unsigned)(*p0 | (*p1 << 2));
}

/* One thread per index byte: w (OC, C) in place (two zeros per group of 4),
 * vals (OC, C/2), idx (OC, C/8), low nibble the even group. */
__global__ void compress_2of4_kernel(float *vals, uint8_t *idx, float *w, int64_t OC, int64_t C)
{
    const int64_t per_row = C / 8;
    GRID_STRIDE(i, OC * per_row)
    {
        int64_t o = i / per_row, j = i % per_row;
        unsigned byte = 0;
        for (int h = 0; h < 2; h++) {
            int64_t g = 2 * j + h;
            float *grp = w + o * C + 4 * g;
            int p0, p1;
            unsigned nib = pick_2of4(grp, &p0, &p1);
            vals[o * (C / 2) + 2 * g] = grp[p0];
            vals[o * (C / 2) + 2 * g + 1] = grp[p1];
            for (int q = 0; q < 4; q++)
                if (q != p0 && q != p1)
                    grp[q] = 0.0f;
            byte |= nib << (4 * h);
        }
        idx[i] = (uint8_t)byte;
    }
}

/* out (B, OC) = inp (B, C) @ W^T + bias with W in 2:4 form, vals (OC, C/2),
 * idx (OC, C/8); one thread per output. */
__global__ void linear_2of4_kernel(float *out, const float *inp, const float *vals,
                                   const uint8_t *idx, const float *bias, int64_t B, int64_t C,
                                   int64_t OC)
{
    GRID_STRIDE(i, B * OC)
    {
        int64_t b = i / OC, o = i % OC;
        const float *x = inp + b * C;
        const float *v = vals + o * (C / 2);
        const uint8_t *ix = idx + o * (C / 8);
        float s = 0.0f;
        for (int64_t g = 0; g < C / 4; g++) {
            unsigned nib = (ix[g / 2] >> (4 * (g & 1))) & 0xfu;
            s += v[2 * g] * x[4 * g + (nib & 3u)] + v[2 * g + 1] * x[4 * g + (nib >> 2)];
        }
        out[i] = s + (bias ? bias[o] : 0.0f);
    }
}

static int cuda_count_abs_below(void *kv, const float *x, int64_t n, float thr, int64_t *out_host)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_n(k, "count_abs_below", n));
    *out_host = 0;
    if (n == 0)
        return OOMB_OK;
    RETURN_IF(zero_result(k));
    count_abs_below_kernel<<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(
        x, n, thr, (unsigned long long *)scratch_result(k));
    OOMB_CUDA_LAUNCHED(k, "count_abs_below_kernel");
    unsigned long long c = 0;
    RETURN_IF(fetch_result(k, &c));
    *out_host = (int64_t)c;
    return OOMB_OK;
}

static int cuda_prune_by_threshold(void *kv, float *w, uint8_t *mask, int64_t n, float thr)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_n(k, "prune_by_threshold", n));
    if (n == 0)
        return OOMB_OK;
    prune_kernel<<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(w, mask, n, thr);
    OOMB_CUDA_LAUNCHED(k, "prune_kernel");
    return OOMB_OK;
}

static int cuda_apply_mask(void *kv, float *x, const uint8_t *mask, int64_t n)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    RETURN_IF(check_n(k, "apply_mask", n));
    if (n == 0)
        return OOMB_OK;
    apply_mask_kernel<<<grid_for(n, THREADS), THREADS, 0, k->stream>>>(x, mask, n);
    OOMB_CUDA_LAUNCHED(k, "apply_mask_kernel");
    return OOMB_OK;
}

static int cuda_dense_to_csr(void *kv, int32_t *rowptr, uint16_t *colidx, float *vals,
                             const float *w, int64_t R, int64_t C)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (R < 0 || R >= INT32_MAX)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "dense_to_csr: R = %lld is negative or too large",
                              (long long)R);
    if (C < 0 || C > 65536)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID,
                              "dense_to_csr: C = %lld outside [0, 65536] (16-bit column indices)",
                              (long long)C);
    if (R == 0)
        return cuda_zero(kv, rowptr, sizeof(int32_t));
    const int warps_per_block = THREADS / 32;
    unsigned grid = grid_for(R, warps_per_block);
    csr_count_kernel<<<grid, THREADS, 0, k->stream>>>(rowptr, w, R, C);
    OOMB_CUDA_LAUNCHED(k, "csr_count_kernel");
    csr_scan_kernel<<<1, 1024, 0, k->stream>>>(rowptr, R);
    OOMB_CUDA_LAUNCHED(k, "csr_scan_kernel");
    csr_fill_kernel<<<grid, THREADS, 0, k->stream>>>(colidx, vals, rowptr, w, R, C);
    OOMB_CUDA_LAUNCHED(k, "csr_fill_kernel");
    return OOMB_OK;
}

static int cuda_linear_forward_csr(void *kv, float *out, const float *inp, const int32_t *rowptr,
                                   const uint16_t *colidx, const float *vals, const float *bias,
                                   int64_t B, int64_t C, int64_t OC)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (B < 0 || C < 0 || OC < 0)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID, "linear_forward_csr: negative shape");
    if (B == 0 || OC == 0)
        return OOMB_OK;
    csr_linear_kernel<<<grid_for(B * OC, THREADS), THREADS, 0, k->stream>>>(
        out, inp, rowptr, colidx, vals, bias, B, C, OC);
    OOMB_CUDA_LAUNCHED(k, "csr_linear_kernel");
    return OOMB_OK;
}

static int cuda_compress_2of4(void *kv, float *vals, uint8_t *idx, float *w, int64_t OC,
                              int64_t C)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (OC < 0 || C < 0 || C % 8 != 0)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID,
                              "compress_2of4: C = %lld must be a multiple of 8 (OC %lld)",
                              (long long)C, (long long)OC);
    if (OC == 0 || C == 0)
        return OOMB_OK;
    compress_2of4_kernel<<<grid_for(OC * (C / 8), THREADS), THREADS, 0, k->stream>>>(vals, idx, w,
                                                                                    OC, C);
    OOMB_CUDA_LAUNCHED(k, "compress_2of4_kernel");
    return OOMB_OK;
}

static int cuda_linear_forward_2of4(void *kv, float *out, const float *inp, const float *vals,
                                    const uint8_t *idx, const float *bias, int64_t B, int64_t C,
                                    int64_t OC)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (B < 0 || OC < 0 || C < 0 || C % 8 != 0)
        return oomb_cuda_errf(k, OOMB_ERR_INVALID,
                              "linear_forward_2of4: C = %lld must be a multiple of 8",
                              (long long)C);
    if (B == 0 || OC == 0)
        return OOMB_OK;
    linear_2of4_kernel<<<grid_for(B * OC, THREADS), THREADS, 0, k->stream>>>(out, inp, vals, idx,
                                                                            bias, B, C, OC);
    OOMB_CUDA_LAUNCHED(k, "linear_2of4_kernel");
    return OOMB_OK;
}

/* ------------------------------------------------------------------ table ---- */

extern "C" void oomb_cuda_ops_init(struct oomb_ops *ops, struct oomb_cuda_ctx *k)
{
    memset(ops, 0, sizeof *ops);
    ops->struct_size = sizeof *ops;
    ops->ctx = k;
    ops->backend_name = "cuda";
    ops->last_error = cuda_last_error;
    ops->to_host = cuda_to_host;
    ops->to_device = cuda_to_device;
    ops->copy = cuda_copy;
    ops->fill = cuda_fill;
    ops->zero = cuda_zero;
    ops->linear_forward = cuda_linear_forward;
    ops->linear_backward = cuda_linear_backward;
    ops->relu_forward = cuda_relu_forward;
    ops->relu_backward = cuda_relu_backward;
    ops->gelu_forward = cuda_gelu_forward;
    ops->gelu_backward = cuda_gelu_backward;
    ops->softmax_xent_forward = cuda_softmax_xent_forward;
    ops->softmax_xent_backward = cuda_softmax_xent_backward;
    ops->count_correct = cuda_count_correct;
    ops->sgd_update = cuda_sgd_update;
    ops->adam_update = cuda_adam_update;
    ops->scale = cuda_scale;
    ops->axpy = cuda_axpy;
    ops->sum = cuda_sum;
    ops->count_nonfinite = cuda_count_nonfinite;
    ops->cast = cuda_cast;
    oomb_cuda_layer_ops_init(ops);

    struct oomb_ext_quant *q = &k->ext_quant;
    memset(q, 0, sizeof *q);
    q->struct_size = sizeof *q;
    q->version = OOMB_EXT_QUANT_VERSION;
    q->ctx = k;
    q->quantize_rows_i8 = cuda_quantize_rows_i8;
    q->dequantize_rows_i8 = cuda_dequantize_rows_i8;
    q->linear_forward_i8 = cuda_linear_forward_i8;
    q->adam8_update = cuda_adam8_update;

    struct oomb_ext_sparse *sp = &k->ext_sparse;
    memset(sp, 0, sizeof *sp);
    sp->struct_size = sizeof *sp;
    sp->version = OOMB_EXT_SPARSE_VERSION;
    sp->ctx = k;
    sp->count_abs_below = cuda_count_abs_below;
    sp->prune_by_threshold = cuda_prune_by_threshold;
    sp->apply_mask = cuda_apply_mask;
    sp->dense_to_csr = cuda_dense_to_csr;
    sp->linear_forward_csr = cuda_linear_forward_csr;
    sp->compress_2of4 = cuda_compress_2of4;
    sp->linear_forward_2of4 = cuda_linear_forward_2of4;

    struct oomb_ext_distill *d = &k->ext_distill;
    memset(d, 0, sizeof *d);
    d->struct_size = sizeof *d;
    d->version = OOMB_EXT_DISTILL_VERSION;
    d->ctx = k;
    d->soft_xent_accumulate = cuda_soft_xent_accumulate;
}

extern "C" const void *oomb_cuda_get_extension(void *kv, const char *name)
{
    struct oomb_cuda_ctx *k = (struct oomb_cuda_ctx *)kv;
    if (!k || !name)
        return NULL;
    if (strcmp(name, OOMB_EXT_QUANT) == 0)
        return &k->ext_quant;
    if (strcmp(name, OOMB_EXT_SPARSE) == 0)
        return &k->ext_sparse;
    if (strcmp(name, OOMB_EXT_DISTILL) == 0)
        return &k->ext_distill;
    return NULL;
}
