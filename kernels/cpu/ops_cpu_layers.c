/*
 * The CPU kernel ops of ABI 1.1: convolution, max pooling, batch and layer
 * normalisation, the core of multi-head self-attention, and an element-wise
 * add. Like ops_cpu.c these are the ground truth the CUDA ops are checked
 * against: FP32 storage, double accumulators for every reduction a norm
 * depends on, deterministic order, GEMMs through CBLAS.
 *
 * Ops never allocate. Scratch memory comes from the caller through the
 * `*_workspace` sizes:
 *   conv2d     one sample's im2col matrix, C*K*K x OH*OW floats, whatever B
 *              is (samples are processed one after the other); forward and
 *              backward need the same buffer (backward reuses it for col2im).
 *   attention  one (T, T) float matrix, used by the backward pass for the
 *              probability gradients of one (sample, head) at a time; the
 *              forward needs none (the scores are formed in `probs`) and
 *              accepts any ws, NULL included.
 *
 * Validation is stricter than for the ops of ABI 1.0: every size must be
 * positive (a zero-sized layer is a caller bug, not a no-op), geometry
 * structs must carry a struct_size that covers their fields, and the derived
 * output size the caller filled in must agree with the formula. Failures
 * return OOMB_ERR_INVALID with a message naming the op and the argument.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>


#include "gemm_cpu.h"
#include "ops_cpu.h"
#include "vec_cpu.h"

/* ------------------------------------------------------------ checks ----- */

/* CHECK_CTX and CHECK come from ops_cpu.h. */
#define CHECK_PTR(op, p) CHECK((p) != NULL, "%s: %s is NULL", op, #p)
#define CHECK_POS(op, d) CHECK((d) > 0, "%s: %s = %lld is not positive", op, #d, (long long)(d))
/* Dimensions handed to CBLAS (blasint is int). */
#define CHECK_BLAS(op, what, d)                                                                    \
    CHECK((d) <= INT_MAX, "%s: %s = %lld exceeds INT_MAX", op, what, (long long)(d))
#define CHECK_FINITE(op, x) CHECK(isfinite(x), "%s: %s = %g is not finite", op, #x, (double)(x))

/* Product of non-negative dimensions, or -1 when it overflows int64. */
static int64_t mul_dims(int64_t a, int64_t b)
{
    if (a < 0 || b < 0 || (a != 0 && b > INT64_MAX / a))
        return -1;
    return a * b;
}

static int64_t mul3(int64_t a, int64_t b, int64_t c)
{
    return mul_dims(mul_dims(a, b), c);
}

static int64_t mul4(int64_t a, int64_t b, int64_t c, int64_t d)
{
    return mul_dims(mul3(a, b, c), d);
}

/* Element counts beyond this would overflow a size_t byte count on any host. */
#define MAX_ELEMS                                                                                  \
    ((int64_t)(SIZE_MAX / sizeof(float) < (size_t)INT64_MAX ? SIZE_MAX / sizeof(float)             \
                                                            : (size_t)INT64_MAX))

#define CHECK_COUNT(op, n, what) CHECK((n) >= 0 && (n) <= MAX_ELEMS, "%s: %s overflows", op, what)

/* ------------------------------------------------------------ conv2d ----- */

/* Validated convolution geometry with the sizes the kernels use. */
struct conv_dims {
    int64_t C, H, W, OC, K, stride, pad, OH, OW;
    int64_t ckk;   /* C*K*K: rows of the im2col matrix, columns of the weight */
    int64_t ohw;   /* OH*OW: columns of the im2col matrix */
    int64_t n_in;  /* B*C*H*W */
    int64_t n_out; /* B*OC*OH*OW */
    size_t ws;     /* bytes of one sample's im2col matrix */
};

static int conv_check(void *k, const char *op, const struct oomb_conv2d *cv, int64_t B,
                      struct conv_dims *d)
{
    CHECK(cv != NULL, "%s: cv is NULL", op);
    CHECK(cv->struct_size >= sizeof *cv, "%s: cv->struct_size = %u, need at least %zu", op,
          (unsigned)cv->struct_size, sizeof *cv);
    CHECK_POS(op, B);
    CHECK_POS(op, cv->C);
    CHECK_POS(op, cv->H);
    CHECK_POS(op, cv->W);
    CHECK_POS(op, cv->OC);
    CHECK_POS(op, cv->K);
    CHECK_POS(op, cv->stride);
    CHECK(cv->pad >= 0, "%s: cv->pad = %lld is negative", op, (long long)cv->pad);
    /* bounds that keep H + 2 pad and the index arithmetic far from overflow */
    CHECK(cv->H <= INT_MAX && cv->W <= INT_MAX && cv->pad <= INT_MAX && cv->K <= INT_MAX &&
              cv->stride <= INT_MAX,
          "%s: H, W, K, stride and pad must not exceed INT_MAX", op);
    CHECK(cv->H + 2 * cv->pad >= cv->K && cv->W + 2 * cv->pad >= cv->K,
          "%s: kernel K = %lld larger than the padded input %lld x %lld", op, (long long)cv->K,
          (long long)(cv->H + 2 * cv->pad), (long long)(cv->W + 2 * cv->pad));
    int64_t oh = (cv->H + 2 * cv->pad - cv->K) / cv->stride + 1;
    int64_t ow = (cv->W + 2 * cv->pad - cv->K) / cv->stride + 1;
    CHECK(cv->OH == oh && cv->OW == ow,
          "%s: cv->OH x cv->OW = %lld x %lld, the geometry gives %lld x %lld", op,
          (long long)cv->OH, (long long)cv->OW, (long long)oh, (long long)ow);

    d->C = cv->C, d->H = cv->H, d->W = cv->W, d->OC = cv->OC, d->K = cv->K;
    d->stride = cv->stride, d->pad = cv->pad, d->OH = oh, d->OW = ow;
    d->ckk = mul3(cv->C, cv->K, cv->K);
    d->ohw = mul_dims(oh, ow);
    CHECK_BLAS(op, "cv->OC", cv->OC);
    CHECK(d->ckk >= 0 && d->ckk <= INT_MAX, "%s: C*K*K exceeds INT_MAX", op);
    CHECK(d->ohw >= 0 && d->ohw <= INT_MAX, "%s: OH*OW exceeds INT_MAX", op);
    int64_t n_col = mul_dims(d->ckk, d->ohw);
    CHECK_COUNT(op, n_col, "the im2col matrix C*K*K*OH*OW");
    d->ws = (size_t)n_col * sizeof(float);
    d->n_in = mul4(B, cv->C, cv->H, cv->W);
    d->n_out = mul3(B, cv->OC, d->ohw);
    CHECK_COUNT(op, d->n_in, "B*C*H*W");
    CHECK_COUNT(op, d->n_out, "B*OC*OH*OW");
    CHECK_COUNT(op, mul_dims(cv->OC, d->ckk), "OC*C*K*K");
    return OOMB_OK;
}

static int conv_check_ws(void *k, const char *op, const struct conv_dims *d, const void *ws,
                         size_t ws_bytes)
{
    CHECK(ws != NULL, "%s: ws is NULL (conv2d_workspace gives %zu bytes)", op, d->ws);
    CHECK(ws_bytes >= d->ws, "%s: ws_bytes = %zu, conv2d_workspace gives %zu", op, ws_bytes, d->ws);
    return OOMB_OK;
}

/* The output columns [*lo, *hi) whose input column ow*stride - pad + kj
 * lies inside [0, W); the others read padding. */
static void conv_inside(const struct conv_dims *d, int64_t kj, int64_t *lo, int64_t *hi)
{
    int64_t s = d->stride, a = d->pad - kj, b = d->W + d->pad - kj;
    int64_t l = a > 0 ? (a + s - 1) / s : 0;
    int64_t h = b > 0 ? (b + s - 1) / s : 0;
    h = h < d->OW ? h : d->OW;
    *lo = l < h ? l : h;
    *hi = h;
}

/* col (C*K*K, OH*OW) from one sample x (C, H, W); zero where the window
 * reaches into the padding. Row (c*K + ki)*K + kj, column oh*OW + ow. */
static void im2col(float *restrict col, const float *restrict x, const struct conv_dims *d)
{
    for (int64_t c = 0; c < d->C; c++) {
        const float *xc = x + c * d->H * d->W;
        for (int64_t ki = 0; ki < d->K; ki++) {
            for (int64_t kj = 0; kj < d->K; kj++) {
                float *row = col + ((c * d->K + ki) * d->K + kj) * d->ohw;
                int64_t lo, hi;
                conv_inside(d, kj, &lo, &hi);
                for (int64_t oh = 0; oh < d->OH; oh++) {
                    int64_t ih = oh * d->stride - d->pad + ki;
                    float *r = row + oh * d->OW;
                    if (ih < 0 || ih >= d->H) {
                        memset(r, 0, (size_t)d->OW * sizeof(float));
                        continue;
                    }
                    int64_t at = ih * d->W - d->pad + kj; /* + ow * stride: x's column */
                    memset(r, 0, (size_t)lo * sizeof(float));
                    if (d->stride == 1 && hi > lo) /* at + lo: a column inside the row */
                        memcpy(r + lo, xc + at + lo, (size_t)(hi - lo) * sizeof(float));
                    else if (d->stride != 1)
                        for (int64_t ow = lo; ow < hi; ow++)
                            r[ow] = xc[at + ow * d->stride];
                    memset(r + hi, 0, (size_t)(d->OW - hi) * sizeof(float));
                }
            }
        }
    }
}

/* dx (C, H, W) = col2im(dcol (C*K*K, OH*OW)), overwritten; overlapping
 * windows add up (in the order of the rows of dcol), padding positions are
 * dropped. */
static void col2im(float *restrict dx, const float *restrict dcol, const struct conv_dims *d)
{
    memset(dx, 0, (size_t)(d->C * d->H * d->W) * sizeof(float));
    for (int64_t c = 0; c < d->C; c++) {
        float *xc = dx + c * d->H * d->W;
        for (int64_t ki = 0; ki < d->K; ki++) {
            for (int64_t kj = 0; kj < d->K; kj++) {
                const float *row = dcol + ((c * d->K + ki) * d->K + kj) * d->ohw;
                int64_t lo, hi;
                conv_inside(d, kj, &lo, &hi);
                for (int64_t oh = 0; oh < d->OH; oh++) {
                    int64_t ih = oh * d->stride - d->pad + ki;
                    if (ih < 0 || ih >= d->H)
                        continue;
                    const float *r = row + oh * d->OW;
                    int64_t at = ih * d->W - d->pad + kj;
                    if (d->stride == 1 && hi > lo) {
                        float *xr = xc + at + lo; /* a column inside the row */
                        for (int64_t ow = lo; ow < hi; ow++)
                            xr[ow - lo] += r[ow];
                    } else if (d->stride != 1) {
                        for (int64_t ow = lo; ow < hi; ow++)
                            xc[at + ow * d->stride] += r[ow];
                    }
                }
            }
        }
    }
}

/* Bytes of one sample's im2col matrix, whatever B is (samples run one at a time). */
int oomb_cpu_conv2d_workspace(void *k, const struct oomb_conv2d *cv, int64_t B, size_t *bytes)
{
    const char *op = "conv2d_workspace";
    struct conv_dims d;
    CHECK_CTX();
    CHECK_PTR(op, bytes);
    int rc = conv_check(k, op, cv, B, &d);
    if (rc != OOMB_OK)
        return rc;
    *bytes = d.ws;
    return OOMB_OK;
}

/*
 * out (B, OC, OH, OW) = weight (OC, C*K*K) im2col(inp (B, C, H, W)) + bias (OC),
 * one sample at a time through the workspace.
 */
int oomb_cpu_conv2d_forward(void *k, float *out, const float *inp, const float *weight,
                            const float *bias, const struct oomb_conv2d *cv, int64_t B, void *ws,
                            size_t ws_bytes)
{
    const char *op = "conv2d_forward";
    struct conv_dims d;
    CHECK_CTX();
    CHECK_PTR(op, out);
    CHECK_PTR(op, inp);
    CHECK_PTR(op, weight);
    int rc = conv_check(k, op, cv, B, &d);
    if (rc == OOMB_OK)
        rc = conv_check_ws(k, op, &d, ws, ws_bytes);
    if (rc != OOMB_OK)
        return rc;

    float *col = ws;
    int64_t in_sz = d.C * d.H * d.W, out_sz = d.OC * d.ohw;
    for (int64_t b = 0; b < B; b++) {
        float *ob = out + b * out_sz;
        im2col(col, inp + b * in_sz, &d);
        /* the bias first, the product added to it (one pass over ob fewer) */
        if (bias)
            for (int64_t o = 0; o < d.OC; o++)
                for (int64_t p = 0; p < d.ohw; p++)
                    ob[o * d.ohw + p] = bias[o];
        oomb_cpu_sgemm(0, 0, d.OC, d.ohw, d.ckk, weight, d.ckk, col, d.ohw, bias ? 1.0f : 0.0f, ob,
                 d.ohw);
    }
    return OOMB_OK;
}

/*
 * dweight (OC, C*K*K) += dout_b (OC, OH*OW) im2col(inp_b)^T, summed over b;
 * dbias (OC) += row sums of dout; dinp (B, C, H, W) = col2im(weight^T dout_b),
 * overwritten. Each of dinp, dweight, dbias may be NULL to skip it.
 */
int oomb_cpu_conv2d_backward(void *k, float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const struct oomb_conv2d *cv,
                             int64_t B, void *ws, size_t ws_bytes)
{
    const char *op = "conv2d_backward";
    struct conv_dims d;
    CHECK_CTX();
    CHECK_PTR(op, dout);
    CHECK_PTR(op, inp);
    CHECK_PTR(op, weight);
    int rc = conv_check(k, op, cv, B, &d);
    if (rc == OOMB_OK)
        rc = conv_check_ws(k, op, &d, ws, ws_bytes);
    if (rc != OOMB_OK)
        return rc;

    float *col = ws;
    int64_t in_sz = d.C * d.H * d.W, out_sz = d.OC * d.ohw;
    for (int64_t b = 0; b < B; b++) {
        const float *db = dout + b * out_sz;
        if (dweight) {
            im2col(col, inp + b * in_sz, &d);
            oomb_cpu_sgemm(0, 1, d.OC, d.ckk, d.ohw, db, d.ohw, col, d.ohw, 1.0f, dweight, d.ckk);
        }
        if (dbias) {
            for (int64_t o = 0; o < d.OC; o++)
                dbias[o] += (float)oomb_vec_sum(db + o * d.ohw, d.ohw);
        }
        if (dinp) {
            /* the im2col matrix is no longer needed: the buffer takes dcol */
            oomb_cpu_sgemm(1, 0, d.ckk, d.ohw, d.OC, weight, d.ckk, db, d.ohw, 0.0f, col, d.ohw);
            col2im(dinp + b * in_sz, col, &d);
        }
    }
    return OOMB_OK;
}

/* ------------------------------------------------------------ maxpool ---- */

static int pool_check(void *k, const char *op, const struct oomb_pool2d *p, int64_t B,
                      int64_t *n_in, int64_t *n_out)
{
    CHECK(p != NULL, "%s: p is NULL", op);
    CHECK(p->struct_size >= sizeof *p, "%s: p->struct_size = %u, need at least %zu", op,
          (unsigned)p->struct_size, sizeof *p);
    CHECK_POS(op, B);
    CHECK_POS(op, p->C);
    CHECK_POS(op, p->H);
    CHECK_POS(op, p->W);
    CHECK_POS(op, p->K);
    CHECK_POS(op, p->stride);
    CHECK(p->K <= p->H && p->K <= p->W, "%s: window K = %lld larger than the input %lld x %lld", op,
          (long long)p->K, (long long)p->H, (long long)p->W);
    int64_t oh = (p->H - p->K) / p->stride + 1, ow = (p->W - p->K) / p->stride + 1;
    CHECK(p->OH == oh && p->OW == ow,
          "%s: p->OH x p->OW = %lld x %lld, the geometry gives %lld x %lld", op, (long long)p->OH,
          (long long)p->OW, (long long)oh, (long long)ow);
    *n_in = mul4(B, p->C, p->H, p->W);
    *n_out = mul4(B, p->C, oh, ow);
    CHECK_COUNT(op, *n_in, "B*C*H*W");
    CHECK_COUNT(op, *n_out, "B*C*OH*OW");
    return OOMB_OK;
}

/* Offset (within the (H, W) plane) of the first maximum of window (oh, ow),
 * scanning row-major; a strict comparison keeps the first of equal values. */
static int64_t pool_argmax(const float *x, const struct oomb_pool2d *p, int64_t oh, int64_t ow)
{
    int64_t h0 = oh * p->stride, w0 = ow * p->stride;
    int64_t best = h0 * p->W + w0;
    float m = x[best];
    if (p->K == 2) { /* the common window, unrolled: the same comparisons in the same order */
        int64_t at[3] = {best + 1, best + p->W, best + p->W + 1};
        for (int i = 0; i < 3; i++)
            if (x[at[i]] > m) {
                m = x[at[i]];
                best = at[i];
            }
        return best;
    }
    for (int64_t i = 0; i < p->K; i++)
        for (int64_t j = 0; j < p->K; j++) {
            int64_t at = (h0 + i) * p->W + w0 + j;
            if (x[at] > m) {
                m = x[at];
                best = at;
            }
        }
    return best;
}

/* out (B, C, OH, OW) = max of each K x K window of inp (B, C, H, W), no
 * padding; with idx (B, C, OH, OW) not NULL, also the offset of each
 * window's first maximum within its plane. */
static int pool_forward(void *k, const char *op, float *out, int32_t *idx, const float *inp,
                        const struct oomb_pool2d *p, int64_t B)
{
    int64_t n_in, n_out;
    CHECK_CTX();
    CHECK_PTR(op, out);
    CHECK_PTR(op, inp);
    int rc = pool_check(k, op, p, B, &n_in, &n_out);
    if (rc != OOMB_OK)
        return rc;
    CHECK(!idx || p->H * p->W <= INT32_MAX, "%s: a plane of %lld x %lld does not fit int32 indices",
          op, (long long)p->H, (long long)p->W);

    int64_t planes = B * p->C, in_sz = p->H * p->W, out_sz = p->OH * p->OW;
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *x = inp + pl * in_sz;
        for (int64_t oh = 0; oh < p->OH; oh++)
            for (int64_t ow = 0; ow < p->OW; ow++) {
                int64_t at = pool_argmax(x, p, oh, ow), o = pl * out_sz + oh * p->OW + ow;
                out[o] = x[at];
                if (idx)
                    idx[o] = (int32_t)at;
            }
    }
    return OOMB_OK;
}

int oomb_cpu_maxpool_forward(void *k, float *out, const float *inp, const struct oomb_pool2d *p,
                             int64_t B)
{
    return pool_forward(k, "maxpool_forward", out, NULL, inp, p, B);
}

int oomb_cpu_maxpool_forward_idx(void *k, float *out, int32_t *idx, const float *inp,
                                 const struct oomb_pool2d *p, int64_t B)
{
    CHECK_CTX();
    CHECK_PTR("maxpool_forward_idx", idx);
    return pool_forward(k, "maxpool_forward_idx", out, idx, inp, p, B);
}

/* dinp (B, C, H, W) = 0 except at each window's first maximum, found again
 * in inp or read from idx (indices outside the plane are refused), which
 * gets that window's dout (B, C, OH, OW); overlapping windows add up. */
static int pool_backward(void *k, const char *op, float *dinp, const float *dout, const float *inp,
                         const int32_t *idx, const struct oomb_pool2d *p, int64_t B)
{
    int64_t n_in, n_out;
    CHECK_CTX();
    CHECK_PTR(op, dinp);
    CHECK_PTR(op, dout);
    CHECK(inp || idx, "%s: %s is NULL", op, idx ? "inp" : "idx");
    int rc = pool_check(k, op, p, B, &n_in, &n_out);
    if (rc != OOMB_OK)
        return rc;

    memset(dinp, 0, (size_t)n_in * sizeof(float));
    int64_t planes = B * p->C, in_sz = p->H * p->W, out_sz = p->OH * p->OW;
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *g = dout + pl * out_sz;
        float *dx = dinp + pl * in_sz;
        for (int64_t oh = 0; oh < p->OH; oh++)
            for (int64_t ow = 0; ow < p->OW; ow++) {
                int64_t o = oh * p->OW + ow, at;
                if (idx) {
                    at = idx[pl * out_sz + o];
                    CHECK(at >= 0 && at < in_sz, "%s: index %lld outside a plane of %lld", op,
                          (long long)at, (long long)in_sz);
                } else {
                    at = pool_argmax(inp + pl * in_sz, p, oh, ow);
                }
                dx[at] += g[o];
            }
    }
    return OOMB_OK;
}

int oomb_cpu_maxpool_backward(void *k, float *dinp, const float *dout, const float *inp,
                              const struct oomb_pool2d *p, int64_t B)
{
    CHECK_CTX();
    CHECK_PTR("maxpool_backward", inp);
    return pool_backward(k, "maxpool_backward", dinp, dout, inp, NULL, p, B);
}

int oomb_cpu_maxpool_backward_idx(void *k, float *dinp, const float *dout, const int32_t *idx,
                                  const struct oomb_pool2d *p, int64_t B)
{
    CHECK_CTX();
    CHECK_PTR("maxpool_backward_idx", idx);
    return pool_backward(k, "maxpool_backward_idx", dinp, dout, NULL, idx, p, B);
}

/* ------------------------------------------------------------ batchnorm -- */

/*
 * x (B, C, S): channel c is the B*S values x[b, c, s].
 *
 * training: mean (C), rstd (C) = 1/sqrt(var + eps) with the biased batch
 * variance, written; out = (x - mean) rstd gamma + beta. If run_mean and
 * run_var (C each) are given (both or neither), r = (1 - momentum) r +
 * momentum stat, with the unbiased variance var * n/(n-1), n = B*S; training
 * therefore needs n >= 2.
 *
 * not training: out = (x - run_mean) / sqrt(run_var + eps) gamma + beta;
 * mean/rstd may be NULL, else they receive run_mean and 1/sqrt(run_var + eps).
 */
int oomb_cpu_batchnorm_forward(void *k, float *out, float *mean, float *rstd, float *run_mean,
                               float *run_var, const float *inp, const float *gamma,
                               const float *beta, int64_t B, int64_t C, int64_t S, int training,
                               float momentum, float eps)
{
    const char *op = "batchnorm_forward";
    CHECK_CTX();
    CHECK_PTR(op, out);
    CHECK_PTR(op, inp);
    CHECK_PTR(op, gamma);
    CHECK_PTR(op, beta);
    CHECK_POS(op, B);
    CHECK_POS(op, C);
    CHECK_POS(op, S);
    int64_t n_all = mul3(B, C, S), n = mul_dims(B, S);
    CHECK_COUNT(op, n_all, "B*C*S");
    CHECK_FINITE(op, eps);
    CHECK(eps > 0.0f, "%s: eps = %g is not positive", op, (double)eps);
    if (training) {
        CHECK_PTR(op, mean);
        CHECK_PTR(op, rstd);
        CHECK((run_mean == NULL) == (run_var == NULL),
              "%s: run_mean and run_var must both be given or both be NULL", op);
        CHECK(n >= 2, "%s: training needs B*S >= 2 values per channel, got %lld", op, (long long)n);
        CHECK(momentum >= 0.0f && momentum <= 1.0f, "%s: momentum = %g is not in [0, 1]", op,
              (double)momentum);
    } else {
        CHECK_PTR(op, run_mean);
        CHECK_PTR(op, run_var);
        for (int64_t c = 0; c < C; c++)
            CHECK(run_var[c] >= 0.0f, "%s: run_var[%lld] = %g is not a variance", op, (long long)c,
                  (double)run_var[c]);
    }

    for (int64_t c = 0; c < C; c++) {
        double mu, rs;
        if (training) {
            /* per sample, each in oomb_vec_sum's order, then over the samples */
            double s = 0.0;
            for (int64_t b = 0; b < B; b++)
                s += oomb_vec_sum(inp + (b * C + c) * S, S);
            mu = s / (double)n;
            double ss = 0.0;
            for (int64_t b = 0; b < B; b++)
                ss += oomb_vec_sum_sq_dev(inp + (b * C + c) * S, S, mu);
            double var = ss / (double)n;
            rs = 1.0 / sqrt(var + (double)eps);
            if (run_mean) {
                double m = momentum;
                run_mean[c] = (float)((1.0 - m) * run_mean[c] + m * mu);
                run_var[c] =
                    (float)((1.0 - m) * run_var[c] + m * var * (double)n / (double)(n - 1));
            }
        } else {
            mu = run_mean[c];
            rs = 1.0 / sqrt((double)run_var[c] + (double)eps);
        }
        if (mean)
            mean[c] = (float)mu;
        if (rstd)
            rstd[c] = (float)rs;
        /* the stored (float) statistics normalise, so backward sees the same ones */
        float fm = (float)mu, fr = (float)rs, g = gamma[c], be = beta[c];
        for (int64_t b = 0; b < B; b++) {
            const float *x = inp + (b * C + c) * S;
            float *o = out + (b * C + c) * S;
            for (int64_t i = 0; i < S; i++)
                o[i] = (x[i] - fm) * fr * g + be;
        }
    }
    return OOMB_OK;
}

/*
 * Training-mode gradient, per channel over its n = B*S values with
 * xhat = (x - mean) rstd:
 *   dbeta += sum dout, dgamma += sum dout xhat (accumulate);
 *   dinp = rstd (g - mean(g) - xhat mean(g xhat)), g = dout gamma (overwritten).
 */
int oomb_cpu_batchnorm_backward(void *k, float *dinp, float *dgamma, float *dbeta,
                                const float *dout, const float *inp, const float *mean,
                                const float *rstd, const float *gamma, int64_t B, int64_t C,
                                int64_t S)
{
    const char *op = "batchnorm_backward";
    CHECK_CTX();
    CHECK_PTR(op, dinp);
    CHECK_PTR(op, dgamma);
    CHECK_PTR(op, dbeta);
    CHECK_PTR(op, dout);
    CHECK_PTR(op, inp);
    CHECK_PTR(op, mean);
    CHECK_PTR(op, rstd);
    CHECK_PTR(op, gamma);
    CHECK_POS(op, B);
    CHECK_POS(op, C);
    CHECK_POS(op, S);
    int64_t n_all = mul3(B, C, S), n = B * S;
    CHECK_COUNT(op, n_all, "B*C*S");

    for (int64_t c = 0; c < C; c++) {
        double mu = mean[c], rs = rstd[c], g = gamma[c];
        double sums[2] = {0.0, 0.0}; /* sum dout, sum dout xhat: per sample, then over them */
        for (int64_t b = 0; b < B; b++)
            oomb_vec_norm_sums(dout + (b * C + c) * S, NULL, inp + (b * C + c) * S, S, mu, rs,
                               sums);
        double sdy = sums[0], sdyx = sums[1];
        dbeta[c] += (float)sdy;
        dgamma[c] += (float)sdyx;
        /* mean(g) and mean(g xhat) of the normalised-input gradient g = dout gamma */
        double m1 = g * sdy / (double)n, m2 = g * sdyx / (double)n;
        for (int64_t b = 0; b < B; b++) {
            const float *x = inp + (b * C + c) * S, *dy = dout + (b * C + c) * S;
            float *dx = dinp + (b * C + c) * S;
            for (int64_t i = 0; i < S; i++) {
                double xhat = (x[i] - mu) * rs;
                dx[i] = (float)(rs * (g * dy[i] - m1 - xhat * m2));
            }
        }
    }
    return OOMB_OK;
}

/* ------------------------------------------------------------ layernorm -- */

/* Columns per pass of the parameter gradients' sums (2 x 2 KiB of stack). */
#define LN_COLS 256

/* Each row of x (N, C): mean, rstd = 1/sqrt(biased var + eps) (N each, written);
 * out = (x - mean) rstd gamma + beta, gamma and beta (C). */
int oomb_cpu_layernorm_forward(void *k, float *out, float *mean, float *rstd, const float *inp,
                               const float *gamma, const float *beta, int64_t N, int64_t C,
                               float eps)
{
    const char *op = "layernorm_forward";
    CHECK_CTX();
    CHECK_PTR(op, out);
    CHECK_PTR(op, mean);
    CHECK_PTR(op, rstd);
    CHECK_PTR(op, inp);
    CHECK_PTR(op, gamma);
    CHECK_PTR(op, beta);
    CHECK_POS(op, N);
    CHECK_POS(op, C);
    CHECK_COUNT(op, mul_dims(N, C), "N*C");
    CHECK_FINITE(op, eps);
    CHECK(eps > 0.0f, "%s: eps = %g is not positive", op, (double)eps);

    for (int64_t r = 0; r < N; r++) {
        const float *x = inp + r * C;
        float *o = out + r * C;
        double mu = oomb_vec_sum(x, C) / (double)C;
        double ss = oomb_vec_sum_sq_dev(x, C, mu);
        float fm = (float)mu, fr = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
        mean[r] = fm;
        rstd[r] = fr;
        for (int64_t i = 0; i < C; i++)
            o[i] = (x[i] - fm) * fr * gamma[i] + beta[i];
    }
    return OOMB_OK;
}

/*
 * Per row with xhat = (x - mean) rstd and g = dout gamma:
 *   dinp = rstd (g - mean(g) - xhat mean(g xhat)) (overwritten);
 *   dgamma += sum over rows of dout xhat, dbeta += sum of dout (accumulate).
 */
int oomb_cpu_layernorm_backward(void *k, float *dinp, float *dgamma, float *dbeta,
                                const float *dout, const float *inp, const float *mean,
                                const float *rstd, const float *gamma, int64_t N, int64_t C)
{
    const char *op = "layernorm_backward";
    CHECK_CTX();
    CHECK_PTR(op, dinp);
    CHECK_PTR(op, dgamma);
    CHECK_PTR(op, dbeta);
    CHECK_PTR(op, dout);
    CHECK_PTR(op, inp);
    CHECK_PTR(op, mean);
    CHECK_PTR(op, rstd);
    CHECK_PTR(op, gamma);
    CHECK_POS(op, N);
    CHECK_POS(op, C);
    CHECK_COUNT(op, mul_dims(N, C), "N*C");

    /* parameter gradients: each column's sums over the rows in double, in row
     * order, LN_COLS columns at a time so that the rows are read in order */
    for (int64_t i0 = 0; i0 < C; i0 += LN_COLS) {
        int64_t nc = C - i0 < LN_COLS ? C - i0 : LN_COLS;
        double sg[LN_COLS] = {0}, sb[LN_COLS] = {0};
        for (int64_t r = 0; r < N; r++) {
            const float *dy = dout + r * C + i0, *x = inp + r * C + i0;
            double mu = mean[r], rs = rstd[r];
            for (int64_t i = 0; i < nc; i++) {
                double d = dy[i];
                sg[i] += d * ((x[i] - mu) * rs);
                sb[i] += d;
            }
        }
        for (int64_t i = 0; i < nc; i++) {
            dgamma[i0 + i] += (float)sg[i];
            dbeta[i0 + i] += (float)sb[i];
        }
    }
    for (int64_t r = 0; r < N; r++) {
        const float *x = inp + r * C, *dy = dout + r * C;
        float *dx = dinp + r * C;
        double mu = mean[r], rs = rstd[r], sums[2] = {0.0, 0.0};
        oomb_vec_norm_sums(dy, gamma, x, C, mu, rs, sums);
        double s1 = sums[0] / (double)C, s2 = sums[1] / (double)C;
        for (int64_t i = 0; i < C; i++) {
            double g = (double)dy[i] * gamma[i];
            dx[i] = (float)(rs * (g - s1 - (x[i] - mu) * rs * s2));
        }
    }
    return OOMB_OK;
}

/* ------------------------------------------------------------ attention -- */

static int attn_check(void *k, const char *op, int64_t B, int64_t T, int64_t C, int64_t H)
{
    CHECK_POS(op, B);
    CHECK_POS(op, T);
    CHECK_POS(op, C);
    CHECK_POS(op, H);
    CHECK(C % H == 0, "%s: C = %lld is not a multiple of H = %lld", op, (long long)C, (long long)H);
    CHECK(T <= INT_MAX && C <= INT_MAX / 3, "%s: T or 3C exceeds INT_MAX", op);
    CHECK_COUNT(op, mul3(B, T, 3 * C), "B*T*3C");
    CHECK_COUNT(op, mul4(B, H, T, T), "B*H*T*T");
    return OOMB_OK;
}

/* The backward's scratch: one (T, T) float matrix. */
int oomb_cpu_attention_workspace(void *k, int64_t B, int64_t T, int64_t C, int64_t H, size_t *bytes)
{
    const char *op = "attention_workspace";
    CHECK_CTX();
    CHECK_PTR(op, bytes);
    int rc = attn_check(k, op, B, T, C, H);
    if (rc != OOMB_OK)
        return rc;
    *bytes = (size_t)(T * T) * sizeof(float);
    return OOMB_OK;
}

/*
 * Per sample b and head h (hd = C/H columns starting at h*hd of the q, k and
 * v blocks of qkv (B, T, 3C)):
 *   probs[b, h] (T, T) = softmax over j of q_i . k_j / sqrt(hd), j <= i when
 *   causal (masked entries exactly 0);
 *   out[b, :, h*hd .. h*hd+hd-1] (T, hd) = probs[b, h] v.
 * ws is not used (any value, NULL included, is accepted).
 */
int oomb_cpu_attention_forward(void *k, float *out, float *probs, const float *qkv, int64_t B,
                               int64_t T, int64_t C, int64_t H, int causal, void *ws,
                               size_t ws_bytes)
{
    const char *op = "attention_forward";
    CHECK_CTX();
    CHECK_PTR(op, out);
    CHECK_PTR(op, probs);
    CHECK_PTR(op, qkv);
    int rc = attn_check(k, op, B, T, C, H);
    if (rc != OOMB_OK)
        return rc;

    int64_t hd = C / H, C3 = 3 * C;
    float scale = (float)(1.0 / sqrt((double)hd));
    for (int64_t b = 0; b < B; b++) {
        const float *qb = qkv + b * T * C3;
        for (int64_t h = 0; h < H; h++) {
            const float *q = qb + h * hd, *kk = qb + C + h * hd, *v = qb + 2 * C + h * hd;
            float *P = probs + (b * H + h) * T * T;
            /* scores: P (T, T) = q (T, hd) k^T, then a row-wise softmax in place */
            oomb_cpu_sgemm(0, 1, T, T, hd, q, C3, kk, C3, 0.0f, P, T);
            for (int64_t i = 0; i < T; i++) {
                float *p = P + i * T;
                int64_t n = causal ? i + 1 : T;
                oomb_vec_softmax_row(p, n, scale);
                memset(p + n, 0, (size_t)(T - n) * sizeof(float));
            }
            oomb_cpu_sgemm(0, 0, T, hd, T, P, T, v, C3, 0.0f, out + b * T * C + h * hd, C);
        }
    }
    return OOMB_OK;
}

/*
 * With P = probs[b, h] and dO the head's columns of dout (B, T, C):
 *   dv = P^T dO; dP = dO v^T (in ws); dS = P (dP - rowsum(P dP)) / sqrt(hd);
 *   dq = dS k; dk = dS^T q.
 * Every element of dqkv (B, T, 3C) is written. ws: attention_workspace bytes.
 */
int oomb_cpu_attention_backward(void *k, float *dqkv, const float *dout, const float *qkv,
                                const float *probs, int64_t B, int64_t T, int64_t C, int64_t H,
                                int causal, void *ws, size_t ws_bytes)
{
    const char *op = "attention_backward";
    CHECK_CTX();
    CHECK_PTR(op, dqkv);
    CHECK_PTR(op, dout);
    CHECK_PTR(op, qkv);
    CHECK_PTR(op, probs);
    int rc = attn_check(k, op, B, T, C, H);
    if (rc != OOMB_OK)
        return rc;
    size_t need = (size_t)(T * T) * sizeof(float);
    CHECK(ws != NULL, "%s: ws is NULL (attention_workspace gives %zu bytes)", op, need);
    CHECK(ws_bytes >= need, "%s: ws_bytes = %zu, attention_workspace gives %zu", op, ws_bytes,
          need);

    /* causal needs no separate treatment: masked probabilities are 0, so
     * their score gradients are 0 too */
    (void)causal;
    int64_t hd = C / H, C3 = 3 * C;
    float scale = (float)(1.0 / sqrt((double)hd));
    float *dP = ws;
    for (int64_t b = 0; b < B; b++) {
        const float *qb = qkv + b * T * C3;
        float *dqb = dqkv + b * T * C3;
        for (int64_t h = 0; h < H; h++) {
            const float *q = qb + h * hd, *kk = qb + C + h * hd, *v = qb + 2 * C + h * hd;
            const float *P = probs + (b * H + h) * T * T;
            const float *dO = dout + b * T * C + h * hd;
            oomb_cpu_sgemm(1, 0, T, hd, T, P, T, dO, C, 0.0f, dqb + 2 * C + h * hd, C3);
            oomb_cpu_sgemm(0, 1, T, T, hd, dO, C, v, C3, 0.0f, dP, T);
            for (int64_t i = 0; i < T; i++)
                oomb_vec_softmax_row_backward(dP + i * T, P + i * T, T, scale);
            oomb_cpu_sgemm(0, 0, T, hd, T, dP, T, kk, C3, 0.0f, dqb + h * hd, C3);
            oomb_cpu_sgemm(1, 0, T, hd, T, dP, T, q, C3, 0.0f, dqb + C + h * hd, C3);
        }
    }
    return OOMB_OK;
}

/* ------------------------------------------------------------ add -------- */

/* out (n) = a + b; out may alias a or b. */
int oomb_cpu_add(void *k, float *out, const float *a, const float *b, int64_t n)
{
    const char *op = "add";
    CHECK_CTX();
    CHECK_PTR(op, out);
    CHECK_PTR(op, a);
    CHECK_PTR(op, b);
    CHECK_POS(op, n);
    for (int64_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
    return OOMB_OK;
}
