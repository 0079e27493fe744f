/*
 * The CPU kernel ops: plain C with GEMM through CBLAS. This backend is the
 * ground truth the CUDA ops are checked against, so every op favours clear,
 * exactly specified numerics (FP32 accumulation, round-to-nearest-even F16,
 * deterministic order) over the last bit of speed.
 *
 * Ops never allocate on the heap: F16 GEMMs convert fixed-size tiles on the
 * stack. Arguments are validated cheaply (NULL pointers, negative or
 * oversized dimensions, bad dtypes) and failures return OOMB_ERR_INVALID with
 * a message for last_error(). A pointer may be NULL when its element count is
 * zero; parameters documented "or NULL" may always be NULL. The ABI 1.1
 * layer ops (convolution, pooling, norms, attention) live in
 * ops_cpu_layers.c and are only registered here. The int8, sparse and
 * distillation kernels are not in the core table: oomb_cpu_ops_init puts them
 * in the context's extension tables (OOMB_EXT_* of <oombench/plugin.h>).
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>


#include "lowp_cpu.h"
#include "gemm_cpu.h"
#include "ops_cpu.h"
#include "vec_cpu.h"

/* ------------------------------------------------------------ errors ----- */

int oomb_cpu_set_error(void *k, int status, const char *fmt, ...)
{
    struct oomb_cpu_ctx *ctx = k;
    if (ctx) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->err, sizeof ctx->err, fmt, ap);
        va_end(ap);
    }
    return status;
}

static const char *cpu_last_error(void *k)
{
    struct oomb_cpu_ctx *ctx = k;
    return ctx ? ctx->err : "cpu ops: NULL context";
}

/* p must be non-NULL when it has elements. */
#define CHECK_PTR(op, p, count) CHECK((p) != NULL || (count) == 0, "%s: %s is NULL", op, #p)
#define CHECK_DIM(op, d) CHECK((d) >= 0, "%s: %s = %lld is negative", op, #d, (long long)(d))
/* Dimensions handed to CBLAS (blasint is int). */
#define CHECK_BLAS_DIM(op, d)                                                                      \
    CHECK((d) >= 0 && (d) <= INT_MAX, "%s: %s = %lld is negative or exceeds INT_MAX", op, #d,      \
          (long long)(d))
#define CHECK_DT(op, dt)                                                                           \
    CHECK((dt) == OOMB_F32 || (dt) == OOMB_F16, "%s: dtype %d is not F32 or F16", op, (int)(dt))

/* Product of two non-negative dimensions, or -1 when it overflows int64. */
static int64_t mul_dims(int64_t a, int64_t b)
{
    if (a != 0 && b > INT64_MAX / a)
        return -1;
    return a * b;
}

#define CHECK_PRODUCT(op, n, a, b)                                                                 \
    do {                                                                                           \
        (n) = mul_dims((a), (b));                                                                  \
        CHECK((n) >= 0, "%s: %s x %s overflows", op, #a, #b);                                      \
    } while (0)

/* ------------------------------------------------------------ F16 -------- */

/* The whole-array conversions (round-to-nearest-even), eight at a time with
 * F16C where the CPU has it, giving the scalar conversions' bits: vec_cpu.h. */
static void f2h_n(uint16_t *d, const float *s, int64_t n)
{
    oomb_vec_f2h(d, s, n);
}

static void h2f_n(float *d, const uint16_t *s, int64_t n)
{
    oomb_vec_h2f(d, s, n);
}

/* Rows [r0, r0+nr) x cols [c0, c0+nc) of an F16 (., ld) matrix into a dense
 * FP32 tile (nr, nc). */
static void tile_h2f(float *dst, const uint16_t *src, int64_t ld, int64_t r0, int64_t nr,
                     int64_t c0, int64_t nc)
{
    for (int64_t r = 0; r < nr; r++)
        h2f_n(dst + r * nc, src + (r0 + r) * ld + c0, nc);
}

/* ------------------------------------------------------------ GEMM ------- */

/*
 * Tiles of the F16 GEMMs, FP32 on the stack: an output tile of TILE_M x
 * TILE_N accumulates products over TILE_K-deep slices of the operands, each
 * converted from F16 once per output tile (the forward's and dinp's largest
 * frame: 256x256 + 2 x 256x64 floats = 384 KiB). Wide output tiles make few,
 * large sgemm calls: with B <= 256 each weight slice is converted once per
 * call of the op. TILE_K fixes the FP32 summation order (partial sums of
 * TILE_K products, added in order); OpenBLAS's kernels may add within a call
 * in another order by output tile size too, so the F16 results depend on all
 * three (docs/performance.md).
 */
#define TILE_M 256
#define TILE_N 256
#define TILE_K 64

/* Elements per FP32 chunk of the F16 element-wise ops (1 KiB on the stack). */
#define CHUNK 256

/* ------------------------------------------------------------ memory ----- */

static int cpu_to_host(void *k, void *dst_host, const void *src_dev, size_t bytes)
{
    CHECK_CTX();
    CHECK_PTR("to_host", dst_host, bytes);
    CHECK_PTR("to_host", src_dev, bytes);
    if (bytes)
        memmove(dst_host, src_dev, bytes);
    return OOMB_OK;
}

static int cpu_to_device(void *k, void *dst_dev, const void *src_host, size_t bytes)
{
    CHECK_CTX();
    CHECK_PTR("to_device", dst_dev, bytes);
    CHECK_PTR("to_device", src_host, bytes);
    if (bytes)
        memmove(dst_dev, src_host, bytes);
    return OOMB_OK;
}

static int cpu_copy(void *k, void *dst_dev, const void *src_dev, size_t bytes)
{
    CHECK_CTX();
    CHECK_PTR("copy", dst_dev, bytes);
    CHECK_PTR("copy", src_dev, bytes);
    if (bytes)
        memmove(dst_dev, src_dev, bytes);
    return OOMB_OK;
}

/* x (n) = value */
static int cpu_fill(void *k, float *x, int64_t n, float value)
{
    CHECK_CTX();
    CHECK_DIM("fill", n);
    CHECK_PTR("fill", x, n);
    for (int64_t i = 0; i < n; i++)
        x[i] = value;
    return OOMB_OK;
}

static int cpu_zero(void *k, void *x, size_t bytes)
{
    CHECK_CTX();
    CHECK_PTR("zero", x, bytes);
    if (bytes)
        memset(x, 0, bytes);
    return OOMB_OK;
}

/* ------------------------------------------------------------ linear ----- */

/* F16 forward: out tile (TILE_M, TILE_N) accumulated in FP32 over C in
 * TILE_K steps. */
static void linear_forward_f16(uint16_t *out, const uint16_t *inp, const uint16_t *weight,
                               const float *bias, int64_t B, int64_t C, int64_t OC)
{
    float a[TILE_M * TILE_K], w[TILE_N * TILE_K], acc[TILE_M * TILE_N];
    for (int64_t b0 = 0; b0 < B; b0 += TILE_M) {
        int64_t nb = B - b0 < TILE_M ? B - b0 : TILE_M;
        for (int64_t o0 = 0; o0 < OC; o0 += TILE_N) {
            int64_t no = OC - o0 < TILE_N ? OC - o0 : TILE_N;
            memset(acc, 0, sizeof acc);
            for (int64_t c0 = 0; c0 < C; c0 += TILE_K) {
                int64_t nc = C - c0 < TILE_K ? C - c0 : TILE_K;
                tile_h2f(a, inp, C, b0, nb, c0, nc);
                tile_h2f(w, weight, C, o0, no, c0, nc);
                oomb_cpu_sgemm(0, 1, nb, no, nc, a, nc, w, nc, 1.0f, acc, no);
            }
            for (int64_t i = 0; i < nb; i++) {
                for (int64_t j = 0; j < no; j++)
                    acc[i * no + j] += bias ? bias[o0 + j] : 0.0f;
                f2h_n(out + (b0 + i) * OC + o0, acc + i * no, no);
            }
        }
    }
}

/*
 * out (B, OC) = inp (B, C) weight^T + bias; weight (OC, C); bias (OC) or NULL.
 * dt F32: one sgemm. dt F16: FP32 tiles, FP32 accumulation, F16 output.
 */
static int cpu_linear_forward(void *k, enum oomb_dtype dt, void *out, const void *inp,
                              const void *weight, const float *bias, int64_t B, int64_t C,
                              int64_t OC)
{
    const char *op = "linear_forward";
    int64_t n_out, n_inp, n_w;
    CHECK_CTX();
    CHECK_DT(op, dt);
    CHECK_BLAS_DIM(op, B);
    CHECK_BLAS_DIM(op, C);
    CHECK_BLAS_DIM(op, OC);
    CHECK_PRODUCT(op, n_out, B, OC);
    CHECK_PRODUCT(op, n_inp, B, C);
    CHECK_PRODUCT(op, n_w, OC, C);
    CHECK_PTR(op, out, n_out);
    CHECK_PTR(op, inp, n_inp);
    CHECK_PTR(op, weight, n_w);

    if (dt == OOMB_F16) {
        linear_forward_f16(out, inp, weight, bias, B, C, OC);
        return OOMB_OK;
    }
    /* the bias first and the product added to it (as addmm does): one pass
     * over out fewer than zeroing it for the GEMM and adding the bias after */
    float *o = out;
    if (bias)
        for (int64_t b = 0; b < B; b++)
            memcpy(o + b * OC, bias, (size_t)OC * sizeof(float));
    oomb_cpu_sgemm(0, 1, B, OC, C, inp, C, weight, C, bias ? 1.0f : 0.0f, out, OC);
    return OOMB_OK;
}

/* dinp (B, C) = dout (B, OC) weight (OC, C), F16 in and out, FP32 tiles:
 * dinp tile (TILE_M, TILE_N) accumulated in FP32 over OC in TILE_K steps. */
static void linear_backward_dinp_f16(uint16_t *dinp, const uint16_t *dout, const uint16_t *weight,
                                     int64_t B, int64_t C, int64_t OC)
{
    float d[TILE_M * TILE_K], w[TILE_K * TILE_N], acc[TILE_M * TILE_N];
    for (int64_t b0 = 0; b0 < B; b0 += TILE_M) {
        int64_t nb = B - b0 < TILE_M ? B - b0 : TILE_M;
        for (int64_t c0 = 0; c0 < C; c0 += TILE_N) {
            int64_t nc = C - c0 < TILE_N ? C - c0 : TILE_N;
            memset(acc, 0, sizeof acc);
            for (int64_t o0 = 0; o0 < OC; o0 += TILE_K) {
                int64_t no = OC - o0 < TILE_K ? OC - o0 : TILE_K;
                tile_h2f(d, dout, OC, b0, nb, o0, no);
                tile_h2f(w, weight, C, o0, no, c0, nc);
                oomb_cpu_sgemm(0, 0, nb, nc, no, d, no, w, nc, 1.0f, acc, nc);
            }
            for (int64_t i = 0; i < nb; i++)
                f2h_n(dinp + (b0 + i) * C + c0, acc + i * nc, nc);
        }
    }
}

/* dweight (OC, C) += dout^T (OC, B) inp (B, C): F16 inputs, FP32 dweight,
 * accumulated in place over B in TILE_K steps (ascending for every element). */
static void linear_backward_dweight_f16(float *dweight, const uint16_t *dout, const uint16_t *inp,
                                        int64_t B, int64_t C, int64_t OC)
{
    float d[TILE_K * TILE_M], a[TILE_K * TILE_N];
    for (int64_t o0 = 0; o0 < OC; o0 += TILE_M) {
        int64_t no = OC - o0 < TILE_M ? OC - o0 : TILE_M;
        for (int64_t c0 = 0; c0 < C; c0 += TILE_N) {
            int64_t nc = C - c0 < TILE_N ? C - c0 : TILE_N;
            for (int64_t b0 = 0; b0 < B; b0 += TILE_K) {
                int64_t nb = B - b0 < TILE_K ? B - b0 : TILE_K;
                tile_h2f(d, dout, OC, b0, nb, o0, no); /* (nb, no) */
                tile_h2f(a, inp, C, b0, nb, c0, nc);   /* (nb, nc) */
                oomb_cpu_sgemm(1, 0, no, nc, nb, d, no, a, nc, 1.0f, dweight + o0 * C + c0, C);
            }
        }
    }
}

/*
 * dinp (B, C) = dout (B, OC) weight (OC, C), overwritten; NULL skips it.
 * dweight (OC, C) += dout^T inp (B, C).  dbias (OC) += column sums of dout, or NULL.
 * dt applies to dinp, dout, inp and weight; dweight and dbias are FP32.
 */
static int cpu_linear_backward(void *k, enum oomb_dtype dt, void *dinp, float *dweight,
                               float *dbias, const void *dout, const void *inp, const void *weight,
                               int64_t B, int64_t C, int64_t OC)
{
    const char *op = "linear_backward";
    int64_t n_out, n_inp, n_w;
    CHECK_CTX();
    CHECK_DT(op, dt);
    CHECK_BLAS_DIM(op, B);
    CHECK_BLAS_DIM(op, C);
    CHECK_BLAS_DIM(op, OC);
    CHECK_PRODUCT(op, n_out, B, OC);
    CHECK_PRODUCT(op, n_inp, B, C);
    CHECK_PRODUCT(op, n_w, OC, C);
    CHECK_PTR(op, dweight, n_w);
    CHECK_PTR(op, dout, n_out);
    CHECK_PTR(op, inp, n_inp);
    CHECK_PTR(op, weight, dinp ? n_w : 0);

    if (dt == OOMB_F16) {
        if (dinp)
            linear_backward_dinp_f16(dinp, dout, weight, B, C, OC);
        linear_backward_dweight_f16(dweight, dout, inp, B, C, OC);
    } else {
        if (dinp)
            oomb_cpu_sgemm(0, 0, B, C, OC, dout, OC, weight, C, 0.0f, dinp, C);
        oomb_cpu_sgemm(1, 0, OC, C, B, dout, OC, inp, C, 1.0f, dweight, C);
    }
    if (dbias && dt == OOMB_F32) {
        for (int64_t b = 0; b < B; b++) {
            const float *restrict d = (const float *)dout + b * OC;
            float *restrict db = dbias;
            for (int64_t j = 0; j < OC; j++)
                db[j] += d[j];
        }
    } else if (dbias) { /* F16: rows converted in FP32 chunks, the same sums */
        float v[CHUNK];
        for (int64_t b = 0; b < B; b++)
            for (int64_t j0 = 0; j0 < OC; j0 += CHUNK) {
                int64_t m = OC - j0 < CHUNK ? OC - j0 : CHUNK;
                h2f_n(v, (const uint16_t *)dout + b * OC + j0, m);
                for (int64_t j = 0; j < m; j++)
                    dbias[j0 + j] += v[j];
            }
    }
    return OOMB_OK;
}

/* ------------------------------------------------------------ activations */

static int check_unary(void *k, const char *op, enum oomb_dtype dt, const void *a, const void *b,
                       const void *c, int64_t n)
{
    CHECK_DT(op, dt);
    CHECK_DIM(op, n);
    CHECK(a != NULL || n == 0, "%s: output is NULL", op);
    CHECK(b != NULL || n == 0, "%s: input is NULL", op);
    CHECK(c != NULL || n == 0, "%s: inp is NULL", op);
    return OOMB_OK;
}

/* out (n) = max(inp, 0); out may alias inp */
static int cpu_relu_forward(void *k, enum oomb_dtype dt, void *out, const void *inp, int64_t n)
{
    CHECK_CTX();
    int rc = check_unary(k, "relu_forward", dt, out, inp, inp, n);
    if (rc)
        return rc;
    if (dt == OOMB_F16) { /* on the bits: x > 0 is a clear sign, not zero, not NaN */
        const uint16_t *x = inp;
        uint16_t *o = out;
        for (int64_t i = 0; i < n; i++)
            o[i] = x[i] != 0 && x[i] <= 0x7c00u ? x[i] : 0;
        return OOMB_OK;
    }
    oomb_vec_relu(out, inp, n);
    return OOMB_OK;
}

/* dinp (n) = dout (n) * (inp (n) > 0); dinp may alias dout */
static int cpu_relu_backward(void *k, enum oomb_dtype dt, void *dinp, const void *dout,
                             const void *inp, int64_t n)
{
    CHECK_CTX();
    int rc = check_unary(k, "relu_backward", dt, dinp, dout, inp, n);
    if (rc)
        return rc;
    if (dt == OOMB_F16) { /* as the FP32 path: a NaN gradient passes quietened */
        /* On the bits and without branches (the loop vectorizes; random signs
         * would mispredict a branch per element): x > 0 is x - 1 in
         * [0, 0x7c00) unsigned, a NaN is (v & 0x7fff) > 0x7c00. */
        const uint16_t *x = inp, *g = dout;
        uint16_t *d = dinp;
        for (int64_t i = 0; i < n; i++) {
            uint16_t keep = (uint16_t)-(uint16_t)((uint16_t)(x[i] - 1u) < 0x7c00u);
            uint16_t v = g[i] & keep;
            uint16_t nan = (uint16_t)-(uint16_t)((v & 0x7fffu) > 0x7c00u);
            d[i] = (uint16_t)(v | (nan & 0x200u));
        }
        return OOMB_OK;
    }
    oomb_vec_relu_backward(dinp, dout, inp, n);
    return OOMB_OK;
}

/* out (n) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), x = inp (n); may alias */
static int cpu_gelu_forward(void *k, enum oomb_dtype dt, void *out, const void *inp, int64_t n)
{
    CHECK_CTX();
    int rc = check_unary(k, "gelu_forward", dt, out, inp, inp, n);
    if (rc)
        return rc;
    if (dt == OOMB_F32) {
        oomb_vec_gelu(out, inp, n);
        return OOMB_OK;
    }
    float buf[CHUNK];
    for (int64_t i = 0; i < n; i += CHUNK) {
        int64_t c = n - i < CHUNK ? n - i : CHUNK;
        h2f_n(buf, (const uint16_t *)inp + i, c);
        oomb_vec_gelu(buf, buf, c);
        f2h_n((uint16_t *)out + i, buf, c);
    }
    return OOMB_OK;
}

/* dinp (n) = dout (n) * gelu'(inp (n)); dinp may alias dout */
static int cpu_gelu_backward(void *k, enum oomb_dtype dt, void *dinp, const void *dout,
                             const void *inp, int64_t n)
{
    CHECK_CTX();
    int rc = check_unary(k, "gelu_backward", dt, dinp, dout, inp, n);
    if (rc)
        return rc;
    if (dt == OOMB_F32) {
        oomb_vec_gelu_backward(dinp, dout, inp, n);
        return OOMB_OK;
    }
    float bx[CHUNK], bd[CHUNK];
    for (int64_t i = 0; i < n; i += CHUNK) {
        int64_t c = n - i < CHUNK ? n - i : CHUNK;
        h2f_n(bx, (const uint16_t *)inp + i, c);
        h2f_n(bd, (const uint16_t *)dout + i, c);
        oomb_vec_gelu_backward(bd, bd, bx, c);
        f2h_n((uint16_t *)dinp + i, bd, c);
    }
    return OOMB_OK;
}

/* ------------------------------------------------------------ loss ------- */

static int check_targets(void *k, const char *op, const int32_t *targets, int64_t B, int64_t K)
{
    for (int64_t b = 0; b < B; b++)
        CHECK(targets[b] >= 0 && targets[b] < K, "%s: targets[%lld] = %d is outside [0, %lld)", op,
              (long long)b, (int)targets[b], (long long)K);
    return OOMB_OK;
}

/*
 * losses (B) = -log softmax(logits[b])[targets[b]]; probs (B, K) = softmax(logits (B, K));
 * targets (B) int32 in [0, K). Log-sum-exp with the row maximum subtracted.
 */
static int cpu_softmax_xent_forward(void *k, float *losses, float *probs, const float *logits,
                                    const int32_t *targets, int64_t B, int64_t K)
{
    const char *op = "softmax_xent_forward";
    int64_t n;
    CHECK_CTX();
    CHECK_DIM(op, B);
    CHECK(K >= 1, "%s: K = %lld must be at least 1", op, (long long)K);
    CHECK_PRODUCT(op, n, B, K);
    CHECK_PTR(op, losses, B);
    CHECK_PTR(op, probs, n);
    CHECK_PTR(op, logits, n);
    CHECK_PTR(op, targets, B);
    int rc = check_targets(k, op, targets, B, K);
    if (rc)
        return rc;

    for (int64_t b = 0; b < B; b++) {
        const float *x = logits + b * K;
        float *p = probs + b * K;
        float maxv = x[0];
        for (int64_t j = 1; j < K; j++)
            maxv = x[j] > maxv ? x[j] : maxv;
        double sum = 0.0;
        for (int64_t j = 0; j < K; j++) {
            p[j] = expf(x[j] - maxv);
            sum += p[j];
        }
        float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < K; j++)
            p[j] *= inv;
        losses[b] = (float)(log(sum) - (double)(x[targets[b]] - maxv));
    }
    return OOMB_OK;
}

/* dlogits (B, K) = scale * (probs (B, K) - onehot(targets (B))), overwritten; may alias probs */
static int cpu_softmax_xent_backward(void *k, float *dlogits, const float *probs,
                                     const int32_t *targets, int64_t B, int64_t K, float scale)
{
    const char *op = "softmax_xent_backward";
    int64_t n;
    CHECK_CTX();
    CHECK_DIM(op, B);
    CHECK(K >= 1, "%s: K = %lld must be at least 1", op, (long long)K);
    CHECK_PRODUCT(op, n, B, K);
    CHECK_PTR(op, dlogits, n);
    CHECK_PTR(op, probs, n);
    CHECK_PTR(op, targets, B);
    int rc = check_targets(k, op, targets, B, K);
    if (rc)
        return rc;

    for (int64_t b = 0; b < B; b++) {
        const float *p = probs + b * K;
        float *d = dlogits + b * K;
        int32_t t = targets[b];
        for (int64_t j = 0; j < K; j++)
            d[j] = scale * (p[j] - (j == t ? 1.0f : 0.0f));
    }
    return OOMB_OK;
}

/* Maximum and log-sum-exp of x (K) / T, in double. */
static double row_lse(const float *x, int64_t K, double invT, double *maxv)
{
    double m = x[0] * invT;
    for (int64_t j = 1; j < K; j++)
        m = x[j] * invT > m ? x[j] * invT : m;
    double s = 0.0;
    for (int64_t j = 0; j < K; j++)
        s += exp(x[j] * invT - m);
    *maxv = m;
    return m + log(s);
}

/*
 * Distillation, soft part. ps = softmax(student (B, K) / T), pt = softmax(teacher (B, K) / T).
 * losses (B) += weight * T^2 * KL(pt || ps); dlogits (B, K) += weight * scale * T * (ps - pt).
 * The gradient is that of weight * losses with respect to the student logits, times scale.
 */
static int cpu_soft_xent_accumulate(void *k, float *losses, float *dlogits,
                                    const float *student_logits, const float *teacher_logits,
                                    int64_t B, int64_t K, float T, float weight, float scale)
{
    const char *op = "soft_xent_accumulate";
    int64_t n;
    CHECK_CTX();
    CHECK_DIM(op, B);
    CHECK(K >= 1, "%s: K = %lld must be at least 1", op, (long long)K);
    CHECK(T > 0.0f && isfinite(T), "%s: temperature T = %g must be positive and finite", op,
          (double)T);
    CHECK_PRODUCT(op, n, B, K);
    CHECK_PTR(op, losses, B);
    CHECK_PTR(op, dlogits, n);
    CHECK_PTR(op, student_logits, n);
    CHECK_PTR(op, teacher_logits, n);

    double invT = 1.0 / (double)T;
    double gscale = (double)weight * (double)scale * (double)T;
    double lscale = (double)weight * (double)T * (double)T;
    for (int64_t b = 0; b < B; b++) {
        const float *s = student_logits + b * K;
        const float *t = teacher_logits + b * K;
        double ms, mt;
        double lse_s = row_lse(s, K, invT, &ms);
        double lse_t = row_lse(t, K, invT, &mt);
        double kl = 0.0;
        float *d = dlogits + b * K;
        for (int64_t j = 0; j < K; j++) {
            double log_ps = s[j] * invT - lse_s;
            double log_pt = t[j] * invT - lse_t;
            double pt = exp(log_pt);
            kl += pt * (log_pt - log_ps);
            d[j] += (float)(gscale * (exp(log_ps) - pt));
        }
        losses[b] += (float)(lscale * kl);
    }
    return OOMB_OK;
}

/* correct = #b with argmax(logits (B, K)[b]) == targets (B)[b]; ties go to the first maximum */
static int cpu_count_correct(void *k, const float *logits, const int32_t *targets, int64_t B,
                             int64_t K, int64_t *correct)
{
    const char *op = "count_correct";
    int64_t n;
    CHECK_CTX();
    CHECK_DIM(op, B);
    CHECK(K >= 1, "%s: K = %lld must be at least 1", op, (long long)K);
    CHECK_PRODUCT(op, n, B, K);
    CHECK_PTR(op, logits, n);
    CHECK_PTR(op, targets, B);
    CHECK(correct != NULL, "%s: correct is NULL", op);

    int64_t c = 0;
    for (int64_t b = 0; b < B; b++) {
        const float *x = logits + b * K;
        int64_t best = 0;
        for (int64_t j = 1; j < K; j++)
            if (x[j] > x[best])
                best = j;
        c += best == targets[b];
    }
    *correct = c;
    return OOMB_OK;
}

/* ------------------------------------------------------------ optimizers */

/*
 * param, grad, mom (n). g = grad + wd * p; m = momentum * m + g; p -= lr * m.
 * mom may be NULL when momentum is 0 (then m = g).
 */
static int cpu_sgd_update(void *k, float *param, const float *grad, float *mom, int64_t n, float lr,
                          float momentum, float weight_decay)
{
    const char *op = "sgd_update";
    CHECK_CTX();
    CHECK_DIM(op, n);
    CHECK_PTR(op, param, n);
    CHECK_PTR(op, grad, n);
    CHECK(mom != NULL || n == 0 || momentum == 0.0f, "%s: mom is NULL with momentum %g", op,
          (double)momentum);
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i] + weight_decay * param[i];
        if (mom) {
            mom[i] = momentum * mom[i] + g;
            g = mom[i];
        }
        param[i] -= lr * g;
    }
    return OOMB_OK;
}

/* Adam bias corrections 1 - beta^t. */
static void adam_corrections(float beta1, float beta2, int64_t t, float *c1, float *c2)
{
    *c1 = (float)(1.0 - pow((double)beta1, (double)t));
    *c2 = (float)(1.0 - pow((double)beta2, (double)t));
}

#define CHECK_ADAM(op)                                                                             \
    do {                                                                                           \
        CHECK(t >= 1, "%s: step t = %lld must be 1-based", op, (long long)t);                      \
        CHECK(beta1 >= 0.0f && beta1 < 1.0f, "%s: beta1 = %g outside [0, 1)", op, (double)beta1);  \
        CHECK(beta2 >= 0.0f && beta2 < 1.0f, "%s: beta2 = %g outside [0, 1)", op, (double)beta2);  \
    } while (0)

/*
 * AdamW. param, grad, m, v (n); t is the 1-based step.
 * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p), mhat = m / (1-b1^t), vhat = v / (1-b2^t).
 */
static int cpu_adam_update(void *k, float *param, const float *grad, float *m, float *v, int64_t n,
                           float lr, float beta1, float beta2, float eps, float weight_decay,
                           int64_t t)
{
    const char *op = "adam_update";
    CHECK_CTX();
    CHECK_DIM(op, n);
    CHECK_PTR(op, param, n);
    CHECK_PTR(op, grad, n);
    CHECK_PTR(op, m, n);
    CHECK_PTR(op, v, n);
    CHECK_ADAM(op);
    struct oomb_vec_adam_hp hp = {lr, beta1, beta2, eps, weight_decay, 0.0f, 0.0f};
    adam_corrections(beta1, beta2, t, &hp.c1, &hp.c2);
    oomb_vec_adam(param, grad, m, v, n, &hp); /* fused, one pass: vec_cpu.c */
    return OOMB_OK;
}

/*
 * Adam with 8-bit block-wise state. param, grad (n); m_q int8 (n); v_q uint8 (n);
 * m_scale, v_scale (ceil(n / block)). Element i of block b: m = m_q[i] * m_scale[b],
 * sqrt(v) = v_q[i] * v_scale[b]. Per block: dequantise, update in FP32 (the parameter
 * sees the unquantised new moments), then requantise with round-to-nearest:
 * m_scale = absmax(m) / 127, v_scale = max(sqrt v) / 255; an all-zero block gets scale 0.
 * The moments are recomputed for the requantisation pass instead of being kept in a
 * buffer, so blocks of any size need no memory.
 */
static int cpu_adam8_update(void *k, float *param, const float *grad, int8_t *m_q, uint8_t *v_q,
                            float *m_scale, float *v_scale, int64_t n, int64_t block, float lr,
                            float beta1, float beta2, float eps, float weight_decay, int64_t t)
{
    const char *op = "adam8_update";
    CHECK_CTX();
    CHECK_DIM(op, n);
    CHECK(block >= 1, "%s: block = %lld must be at least 1", op, (long long)block);
    CHECK_PTR(op, param, n);
    CHECK_PTR(op, grad, n);
    CHECK_PTR(op, m_q, n);
    CHECK_PTR(op, v_q, n);
    CHECK_PTR(op, m_scale, n);
    CHECK_PTR(op, v_scale, n);
    CHECK_ADAM(op);
    struct oomb_vec_adam_hp hp = {lr, beta1, beta2, eps, weight_decay, 0.0f, 0.0f};
    adam_corrections(beta1, beta2, t, &hp.c1, &hp.c2);

    int64_t nblocks = n / block + (n % block != 0);
    for (int64_t bl = 0; bl < nblocks; bl++) {
        int64_t i0 = bl * block;
        int64_t len = n - i0 < block ? n - i0 : block;
        oomb_vec_adam8_block(param + i0, grad + i0, m_q + i0, v_q + i0, m_scale + bl,
                             v_scale + bl, len, &hp); /* vec_cpu.c */
    }
    return OOMB_OK;
}

/* ------------------------------------------------------------ element-wise */

/* x (n) *= alpha */
static int cpu_scale(void *k, float *x, int64_t n, float alpha)
{
    CHECK_CTX();
    CHECK_DIM("scale", n);
    CHECK_PTR("scale", x, n);
    for (int64_t i = 0; i < n; i++)
        x[i] *= alpha;
    return OOMB_OK;
}

/* y (n) += alpha * x (n) */
static int cpu_axpy(void *k, float *y, const float *x, int64_t n, float alpha)
{
    CHECK_CTX();
    CHECK_DIM("axpy", n);
    CHECK_PTR("axpy", y, n);
    CHECK_PTR("axpy", x, n);
    for (int64_t i = 0; i < n; i++)
        y[i] += alpha * x[i];
    return OOMB_OK;
}

/* out_host = sum of x (n), accumulated in double */
static int cpu_sum(void *k, const float *x, int64_t n, double *out_host)
{
    CHECK_CTX();
    CHECK_DIM("sum", n);
    CHECK_PTR("sum", x, n);
    CHECK(out_host != NULL, "sum: out_host is NULL");
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += x[i];
    *out_host = s;
    return OOMB_OK;
}

/* out_host = number of NaN or infinite elements of x (n), F32 or F16 */
static int cpu_count_nonfinite(void *k, const void *x, enum oomb_dtype dt, int64_t n,
                               int64_t *out_host)
{
    CHECK_CTX();
    CHECK_DT("count_nonfinite", dt);
    CHECK_DIM("count_nonfinite", n);
    CHECK_PTR("count_nonfinite", x, n);
    CHECK(out_host != NULL, "count_nonfinite: out_host is NULL");
    int64_t c = 0;
    if (dt == OOMB_F16) {
        const uint16_t *h = x;
        for (int64_t i = 0; i < n; i++)
            c += (h[i] & 0x7c00u) == 0x7c00u;
    } else {
        /* On the bits (exponent all ones), counted in 32-bit lanes per block
         * of 2^16: the loop vectorizes. */
        const float *f = x;
        for (int64_t i0 = 0; i0 < n; i0 += 65536) {
            int64_t m = n - i0 < 65536 ? n - i0 : 65536;
            uint32_t cb = 0;
            for (int64_t i = 0; i < m; i++) {
                uint32_t u;
                memcpy(&u, f + i0 + i, sizeof u);
                cb += (u & 0x7f800000u) == 0x7f800000u;
            }
            c += cb;
        }
    }
    *out_host = c;
    return OOMB_OK;
}

/* dst (n) of dst_dt = src (n) of src_dt; F32 <-> F16 (or a plain copy for equal dtypes).
 * F32 -> F16 rounds to nearest even. dst and src must not overlap unless equal dtypes. */
static int cpu_cast(void *k, void *dst, enum oomb_dtype dst_dt, const void *src,
                    enum oomb_dtype src_dt, int64_t n)
{
    CHECK_CTX();
    CHECK_DT("cast", dst_dt);
    CHECK_DT("cast", src_dt);
    CHECK_DIM("cast", n);
    CHECK_PTR("cast", dst, n);
    CHECK_PTR("cast", src, n);
    if (n == 0)
        return OOMB_OK;
    if (dst_dt == src_dt) {
        memmove(dst, src, (size_t)n * (dst_dt == OOMB_F16 ? sizeof(uint16_t) : sizeof(float)));
    } else if (dst_dt == OOMB_F16) {
        f2h_n(dst, src, n);
    } else {
        h2f_n(dst, src, n);
    }
    return OOMB_OK;
}

/* ------------------------------------------------------------ int8 ------- */

/* q (R, C) int8, scales (R) = absmax(x (R, C) row) / 127; all-zero rows get scale 0, q 0 */
static int cpu_quantize_rows_i8(void *k, int8_t *q, float *scales, const float *x, int64_t R,
                                int64_t C)
{
    const char *op = "quantize_rows_i8";
    int64_t n;
    CHECK_CTX();
    CHECK_DIM(op, R);
    CHECK_DIM(op, C);
    CHECK_PRODUCT(op, n, R, C);
    CHECK_PTR(op, q, n);
    CHECK_PTR(op, scales, R);
    CHECK_PTR(op, x, n);
    oomb_cpu_quantize_rows_i8_run(q, scales, x, R, C);
    return OOMB_OK;
}

/* x (R, C) = q (R, C) * scales (R) per row */
static int cpu_dequantize_rows_i8(void *k, float *x, const int8_t *q, const float *scales,
                                  int64_t R, int64_t C)
{
    const char *op = "dequantize_rows_i8";
    int64_t n;
    CHECK_CTX();
    CHECK_DIM(op, R);
    CHECK_DIM(op, C);
    CHECK_PRODUCT(op, n, R, C);
    CHECK_PTR(op, x, n);
    CHECK_PTR(op, q, n);
    CHECK_PTR(op, scales, R);
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++)
            x[r * C + c] = (float)q[r * C + c] * scales[r];
    return OOMB_OK;
}

/* Longest C for which C * 127 * 127 cannot overflow the int32 accumulator. */
#define I8_MAX_C (INT32_MAX / (127 * 127))

/*
 * acc (B, OC) int32 = xq (B, C) wq (OC, C)^T, exact;
 * out (B, OC) = acc * xs (B)[b] * ws (OC)[o] + bias (OC, or NULL).
 */
static int cpu_linear_forward_i8(void *k, float *out, const int8_t *xq, const float *xs,
                                 const int8_t *wq, const float *ws, const float *bias, int32_t *acc,
                                 int64_t B, int64_t C, int64_t OC)
{
    const char *op = "linear_forward_i8";
    int64_t n_out, n_x, n_w;
    CHECK_CTX();
    CHECK_DIM(op, B);
    CHECK_DIM(op, OC);
    CHECK(C >= 0 && C <= I8_MAX_C, "%s: C = %lld is negative or above %d (int32 overflow)", op,
          (long long)C, I8_MAX_C);
    CHECK_PRODUCT(op, n_out, B, OC);
    CHECK_PRODUCT(op, n_x, B, C);
    CHECK_PRODUCT(op, n_w, OC, C);
    CHECK_PTR(op, out, n_out);
    CHECK_PTR(op, xq, n_x);
    CHECK_PTR(op, xs, B);
    CHECK_PTR(op, wq, n_w);
    CHECK_PTR(op, ws, OC);
    CHECK_PTR(op, acc, n_out);
    oomb_cpu_linear_i8_run(out, acc, xq, xs, wq, ws, bias, B, C, OC);
    return OOMB_OK;
}

/* ------------------------------------------------------------ pruning ---- */

/* out_host = count of |x (n)| < thr */
static int cpu_count_abs_below(void *k, const float *x, int64_t n, float thr, int64_t *out_host)
{
    CHECK_CTX();
    CHECK_DIM("count_abs_below", n);
    CHECK_PTR("count_abs_below", x, n);
    CHECK(out_host != NULL, "count_abs_below: out_host is NULL");
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++)
        c += fabsf(x[i]) < thr;
    *out_host = c;
    return OOMB_OK;
}

/* mask (n) = |w (n)| >= thr (0 or 1); w = 0 where the mask is 0 (NaN weights are pruned) */
static int cpu_prune_by_threshold(void *k, float *w, uint8_t *mask, int64_t n, float thr)
{
    CHECK_CTX();
    CHECK_DIM("prune_by_threshold", n);
    CHECK_PTR("prune_by_threshold", w, n);
    CHECK_PTR("prune_by_threshold", mask, n);
    for (int64_t i = 0; i < n; i++) {
        uint8_t keep = fabsf(w[i]) >= thr;
        mask[i] = keep;
        if (!keep)
            w[i] = 0.0f;
    }
    return OOMB_OK;
}

/* x (n) = 0 where mask (n) is 0, unchanged elsewhere (so pruned NaN/inf become 0 too) */
static int cpu_apply_mask(void *k, float *x, const uint8_t *mask, int64_t n)
{
    CHECK_CTX();
    CHECK_DIM("apply_mask", n);
    CHECK_PTR("apply_mask", x, n);
    CHECK_PTR("apply_mask", mask, n);
    for (int64_t i = 0; i < n; i++)
        if (!mask[i])
            x[i] = 0.0f;
    return OOMB_OK;
}

/* Widest matrix whose column indices fit the uint16 colidx. */
#define CSR_MAX_C 65536

/*
 * CSR of w (R, C): rowptr (R+1) int32, colidx (nnz) uint16, vals (nnz), where nnz counts
 * the elements != 0 (so -0.0 is dropped, NaN kept), columns ascending in each row.
 */
static int cpu_dense_to_csr(void *k, int32_t *rowptr, uint16_t *colidx, float *vals, const float *w,
                            int64_t R, int64_t C)
{
    const char *op = "dense_to_csr";
    int64_t n;
    CHECK_CTX();
    CHECK(R >= 0 && R < INT32_MAX, "%s: R = %lld is negative or too large", op, (long long)R);
    CHECK(C >= 0 && C <= CSR_MAX_C, "%s: C = %lld is negative or above %d (16-bit column indices)",
          op, (long long)C, CSR_MAX_C);
    CHECK_PRODUCT(op, n, R, C);
    CHECK(rowptr != NULL, "%s: rowptr is NULL", op);
    CHECK_PTR(op, w, n);

    int64_t nnz = 0;
    rowptr[0] = 0;
    for (int64_t r = 0; r < R; r++) {
        const float *wr = w + r * C;
        for (int64_t c = 0; c < C; c++) {
            if (wr[c] == 0.0f)
                continue;
            CHECK(nnz < INT32_MAX, "%s: more than INT32_MAX nonzeros", op);
            CHECK(colidx != NULL && vals != NULL, "%s: colidx or vals is NULL", op);
            colidx[nnz] = (uint16_t)c;
            vals[nnz] = wr[c];
            nnz++;
        }
        rowptr[r + 1] = (int32_t)nnz;
    }
    return OOMB_OK;
}

/*
 * out (B, OC) = inp (B, C) W^T + bias (OC, or NULL), W (OC, C) in CSR: rowptr (OC+1),
 * colidx/vals (rowptr[OC]). The CSR structure is checked first (O(OC + nnz)), so a
 * corrupt one is an error rather than an out-of-bounds read.
 */
static int cpu_linear_forward_csr(void *k, float *out, const float *inp, const int32_t *rowptr,
                                  const uint16_t *colidx, const float *vals, const float *bias,
                                  int64_t B, int64_t C, int64_t OC)
{
    const char *op = "linear_forward_csr";
    int64_t n_out, n_inp;
    CHECK_CTX();
    CHECK_DIM(op, B);
    CHECK(C >= 0 && C <= CSR_MAX_C, "%s: C = %lld is negative or above %d (16-bit column indices)",
          op, (long long)C, CSR_MAX_C);
    CHECK(OC >= 0 && OC < INT32_MAX, "%s: OC = %lld is negative or too large", op, (long long)OC);
    CHECK_PRODUCT(op, n_out, B, OC);
    CHECK_PRODUCT(op, n_inp, B, C);
    CHECK_PTR(op, out, n_out);
    CHECK_PTR(op, inp, n_inp);
    CHECK(rowptr != NULL, "%s: rowptr is NULL", op);
    CHECK(rowptr[0] == 0, "%s: rowptr[0] = %d, expected 0", op, (int)rowptr[0]);
    for (int64_t o = 0; o < OC; o++)
        CHECK(rowptr[o + 1] >= rowptr[o], "%s: rowptr decreases at row %lld", op, (long long)o);
    int64_t nnz = rowptr[OC];
    CHECK_PTR(op, colidx, nnz);
    CHECK_PTR(op, vals, nnz);
    for (int64_t j = 0; j < nnz; j++)
        CHECK(colidx[j] < C, "%s: colidx[%lld] = %d outside [0, %lld)", op, (long long)j,
              (int)colidx[j], (long long)C);
    oomb_cpu_linear_csr_run(out, inp, rowptr, colidx, vals, bias, B, C, OC);
    return OOMB_OK;
}

/*
 * 2:4 compression of w (OC, C), C a multiple of 8. In each group g of 4 consecutive
 * weights of a row the two of largest magnitude are kept (on equal magnitude the
 * lower position wins), at positions p0 < p1:
 *   vals (OC, C/2): vals[o, 2g] = w[o, 4g + p0], vals[o, 2g + 1] = w[o, 4g + p1];
 *   idx (OC, C/8):  byte j holds group 2j in its low nibble and group 2j+1 in its high
 *                   nibble; a nibble is p0 | p1 << 2.
 * The two dropped weights of each group are set to 0 in w.
 */
static int cpu_compress_2of4(void *k, float *vals, uint8_t *idx, float *w, int64_t OC, int64_t C)
{
    const char *op = "compress_2of4";
    int64_t n;
    CHECK_CTX();
    CHECK_DIM(op, OC);
    CHECK(C >= 0 && C % 8 == 0, "%s: C = %lld must be a non-negative multiple of 8", op,
          (long long)C);
    CHECK_PRODUCT(op, n, OC, C);
    CHECK_PTR(op, vals, n);
    CHECK_PTR(op, idx, n);
    CHECK_PTR(op, w, n);

    for (int64_t o = 0; o < OC; o++) {
        float *wr = w + o * C;
        float *vr = vals + o * (C / 2);
        uint8_t *ir = idx + o * (C / 8);
        for (int64_t g = 0; g < C / 4; g++) {
            float *x = wr + 4 * g;
            int a = 0; /* largest */
            for (int p = 1; p < 4; p++)
                if (fabsf(x[p]) > fabsf(x[a]))
                    a = p;
            int b = a == 0 ? 1 : 0; /* second largest */
            for (int p = b + 1; p < 4; p++)
                if (p != a && fabsf(x[p]) > fabsf(x[b]))
                    b = p;
            int p0 = a < b ? a : b, p1 = a < b ? b : a;
            vr[2 * g] = x[p0];
            vr[2 * g + 1] = x[p1];
            for (int p = 0; p < 4; p++)
                if (p != p0 && p != p1)
                    x[p] = 0.0f;
            uint8_t nib = (uint8_t)(p0 | p1 << 2);
            if (g % 2 == 0)
                ir[g / 2] = nib;
            else
                ir[g / 2] = (uint8_t)(ir[g / 2] | nib << 4);
        }
    }
    return OOMB_OK;
}

/*
 * out (B, OC) = inp (B, C) W^T + bias (OC, or NULL), W (OC, C) given as 2:4
 * vals (OC, C/2) and idx (OC, C/8) in the layout of compress_2of4.
 */
static int cpu_linear_forward_2of4(void *k, float *out, const float *inp, const float *vals,
                                   const uint8_t *idx, const float *bias, int64_t B, int64_t C,
                                   int64_t OC)
{
    const char *op = "linear_forward_2of4";
    int64_t n_out, n_inp, n_w;
    CHECK_CTX();
    CHECK_DIM(op, B);
    CHECK_DIM(op, OC);
    CHECK(C >= 0 && C % 8 == 0, "%s: C = %lld must be a non-negative multiple of 8", op,
          (long long)C);
    CHECK_PRODUCT(op, n_out, B, OC);
    CHECK_PRODUCT(op, n_inp, B, C);
    CHECK_PRODUCT(op, n_w, OC, C);
    CHECK_PTR(op, out, n_out);
    CHECK_PTR(op, inp, n_inp);
    CHECK_PTR(op, vals, n_w);
    CHECK_PTR(op, idx, n_w);
    oomb_cpu_linear_2of4_run(out, inp, vals, idx, bias, B, C, OC);
    return OOMB_OK;
}

/* ------------------------------------------------------------ table ------ */

void oomb_cpu_ops_init(struct oomb_ops *ops, struct oomb_cpu_ctx *ctx)
{
    memset(ops, 0, sizeof *ops);
    ops->struct_size = sizeof(struct oomb_ops);
    ops->ctx = ctx;
    ops->backend_name = "cpu";
    ops->last_error = cpu_last_error;
    ops->to_host = cpu_to_host;
    ops->to_device = cpu_to_device;
    ops->copy = cpu_copy;
    ops->fill = cpu_fill;
    ops->zero = cpu_zero;
    ops->linear_forward = cpu_linear_forward;
    ops->linear_backward = cpu_linear_backward;
    ops->relu_forward = cpu_relu_forward;
    ops->relu_backward = cpu_relu_backward;
    ops->gelu_forward = cpu_gelu_forward;
    ops->gelu_backward = cpu_gelu_backward;
    ops->softmax_xent_forward = cpu_softmax_xent_forward;
    ops->softmax_xent_backward = cpu_softmax_xent_backward;
    ops->count_correct = cpu_count_correct;
    ops->sgd_update = cpu_sgd_update;
    ops->adam_update = cpu_adam_update;
    ops->scale = cpu_scale;
    ops->axpy = cpu_axpy;
    ops->sum = cpu_sum;
    ops->count_nonfinite = cpu_count_nonfinite;
    ops->cast = cpu_cast;
    ops->conv2d_workspace = oomb_cpu_conv2d_workspace;
    ops->conv2d_forward = oomb_cpu_conv2d_forward;
    ops->conv2d_backward = oomb_cpu_conv2d_backward;
    ops->maxpool_forward = oomb_cpu_maxpool_forward;
    ops->maxpool_backward = oomb_cpu_maxpool_backward;
    ops->maxpool_forward_idx = oomb_cpu_maxpool_forward_idx;
    ops->maxpool_backward_idx = oomb_cpu_maxpool_backward_idx;
    ops->batchnorm_forward = oomb_cpu_batchnorm_forward;
    ops->batchnorm_backward = oomb_cpu_batchnorm_backward;
    ops->layernorm_forward = oomb_cpu_layernorm_forward;
    ops->layernorm_backward = oomb_cpu_layernorm_backward;
    ops->attention_workspace = oomb_cpu_attention_workspace;
    ops->attention_forward = oomb_cpu_attention_forward;
    ops->attention_backward = oomb_cpu_attention_backward;
    ops->add = oomb_cpu_add;

    struct oomb_ext_quant *q = &ctx->ext_quant;
    memset(q, 0, sizeof *q);
    q->struct_size = sizeof *q;
    q->version = OOMB_EXT_QUANT_VERSION;
    q->ctx = ctx;
    q->quantize_rows_i8 = cpu_quantize_rows_i8;
    q->dequantize_rows_i8 = cpu_dequantize_rows_i8;
    q->linear_forward_i8 = cpu_linear_forward_i8;
    q->adam8_update = cpu_adam8_update;

    struct oomb_ext_sparse *sp = &ctx->ext_sparse;
    memset(sp, 0, sizeof *sp);
    sp->struct_size = sizeof *sp;
    sp->version = OOMB_EXT_SPARSE_VERSION;
    sp->ctx = ctx;
    sp->count_abs_below = cpu_count_abs_below;
    sp->prune_by_threshold = cpu_prune_by_threshold;
    sp->apply_mask = cpu_apply_mask;
    sp->dense_to_csr = cpu_dense_to_csr;
    sp->linear_forward_csr = cpu_linear_forward_csr;
    sp->compress_2of4 = cpu_compress_2of4;
    sp->linear_forward_2of4 = cpu_linear_forward_2of4;

    struct oomb_ext_distill *d = &ctx->ext_distill;
    memset(d, 0, sizeof *d);
    d->struct_size = sizeof *d;
    d->version = OOMB_EXT_DISTILL_VERSION;
    d->ctx = ctx;
    d->soft_xent_accumulate = cpu_soft_xent_accumulate;
}

const void *oomb_cpu_get_extension(void *k, const char *name)
{
    struct oomb_cpu_ctx *ctx = k;
    if (!ctx || !name)
        return NULL;
    if (strcmp(name, OOMB_EXT_QUANT) == 0)
        return &ctx->ext_quant;
    if (strcmp(name, OOMB_EXT_SPARSE) == 0)
        return &ctx->ext_sparse;
    if (strcmp(name, OOMB_EXT_DISTILL) == 0)
        return &ctx->ext_distill;
    return NULL;
}
