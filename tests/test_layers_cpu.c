/*
 * Tests of the CPU backend's ABI 1.1 layer ops (kernels/cpu/ops_cpu_layers.c):
 * convolution, max pooling, batch and layer norm, attention and add.
 *
 * Every forward op is checked against a plain double-precision loop written
 * here (direct convolution, window scans, two-pass statistics, attention
 * element by element). Every backward op is checked against central finite
 * differences of L = sum(G * forward(...)) with respect to every element of
 * every input and parameter; L is accumulated in double from the op's own
 * FP32 forward. Gradients that accumulate are pre-filled with random values
 * and outputs that are overwritten with garbage, so both contracts are
 * checked too.
 *
 * Tolerance of the gradient checks: max |op - fd| < 2e-2 max |fd| over each
 * tensor. The finite-difference noise (FP32 rounding of L divided by 2h, and
 * the O(h^2) truncation) stays below 1e-3 of that scale for these shapes,
 * while a wrong gradient (a dropped term of the norm backward, a transposed
 * index, a missed padding position or overlap, a wrong softmax Jacobian)
 * is off by a sizeable fraction of a typical element, i.e. well above 2e-2.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu/ops_cpu.h" /* white-box: the message buffer of the context */

#include "cpu_fixture.h"

TestSuite(layers_cpu, .init = cpu_setup, .fini = cpu_teardown);

static float *fcopy(const float *x, int64_t n)
{
    float *y = FALLOC(n);
    memcpy(y, x, (size_t)n * sizeof(float));
    return y;
}

/* ------------------------------------------------------------ checks ----- */

/* Norm-wise relative error: max |got - ref| / max |ref|.
 *
 * The forward tolerances follow the rounding model of tests/test_kernels_cpu.c
 * (docs/numerics.md): a float sum of n products of data on [-1, 1] has a largest
 * error over the outputs of about 0.45 sqrt(n) u of max |ref| (u = 2^-24), n u
 * sqrt(n) / 4.8 in the worst case; the norms reduce in double (kernels/cpu), so
 * their statistics carry only the final float roundings. Each check names its n and
 * the worst value measured over OPENBLAS_CORETYPE Haswell, Zen, SkylakeX,
 * Sandybridge and the default with 1, 2 and the default number of threads. */
static double rel_err(const float *got, const double *ref, int64_t n)
{
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)got[i] - ref[i]));
        den = fmax(den, fabs(ref[i]));
    }
    return num / (den > 0.0 ? den : 1e-300);
}

static double dot(const float *g, const float *x, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (double)g[i] * x[i];
    return s;
}

/* What an accumulating gradient gained: after - before, element-wise. */
static float *gained(const float *after, const float *before, int64_t n)
{
    float *d = FALLOC(n);
    for (int64_t i = 0; i < n; i++)
        d[i] = after[i] - before[i];
    return d;
}

#define EXPECT_OK(call)                                                                            \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        cr_assert_eq(rc_, OOMB_OK, "%s -> %d: %s", #call, rc_, ops->last_error(K));                \
    } while (0)

#define EXPECT_INVALID(call)                                                                       \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        cr_expect_eq(rc_, OOMB_ERR_INVALID, "%s -> %d, expected OOMB_ERR_INVALID", #call, rc_);    \
        cr_expect(ops->last_error(K)[0] != '\0', "%s: no message", #call);                         \
        ((struct oomb_cpu_ctx *)K)->err[0] = '\0';                                                 \
    } while (0)

/* The op's error message mentions both the op and the argument. */
#define EXPECT_INVALID_MSG(call, op_name, arg)                                                     \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        const char *e_ = ops->last_error(K);                                                       \
        cr_expect_eq(rc_, OOMB_ERR_INVALID, "%s -> %d, expected OOMB_ERR_INVALID", #call, rc_);    \
        cr_expect(strstr(e_, op_name) && strstr(e_, arg), "%s: message '%s' lacks '%s'/'%s'",      \
                  #call, e_, op_name, arg);                                                        \
        ((struct oomb_cpu_ctx *)K)->err[0] = '\0';                                                 \
    } while (0)

/* ------------------------------------------------------------ finite diffs */

#define FD_TOL 2e-2

typedef double (*loss_fn)(const void *c);

/*
 * Central differences of f with respect to every element of x (perturbed in
 * place and restored), compared with grad. The step is the FP32 difference
 * actually applied, not h.
 */
static void expect_fd(loss_fn f, const void *c, float *x, int64_t n, const float *grad, float h,
                      const char *what)
{
    double *fd = malloc((size_t)n * sizeof *fd);
    cr_assert_not_null(fd);
    double maxfd = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float x0 = x[i], xp = x0 + h, xm = x0 - h;
        x[i] = xp;
        double lp = f(c);
        x[i] = xm;
        double lm = f(c);
        x[i] = x0;
        fd[i] = (lp - lm) / ((double)xp - (double)xm);
        maxfd = fmax(maxfd, fabs(fd[i]));
    }
    double maxerr = 0.0;
    int64_t worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)grad[i] - fd[i]);
        if (!(e <= maxerr)) { /* NaN counts as the worst */
            maxerr = e;
            worst = i;
        }
    }
    cr_expect_gt(maxfd, 1e-3, "%s: the gradient vanishes (max |fd| %g)", what, maxfd);
    cr_expect(maxerr < FD_TOL * maxfd, "%s[%lld]: op %g, finite differences %g (max |fd| %g)", what,
              (long long)worst, (double)grad[worst], fd[worst], maxfd);
    free(fd);
}

/* ============================================================ conv2d ===== */

static struct oomb_conv2d conv_geom(int64_t C, int64_t H, int64_t W, int64_t OC, int64_t Kk,
                                    int64_t stride, int64_t pad)
{
    struct oomb_conv2d cv = {.struct_size = sizeof cv,
                             .C = C,
                             .H = H,
                             .W = W,
                             .OC = OC,
                             .K = Kk,
                             .stride = stride,
                             .pad = pad};
    cv.OH = (H + 2 * pad - Kk) / stride + 1;
    cv.OW = (W + 2 * pad - Kk) / stride + 1;
    return cv;
}

/* Direct cross-correlation: out (B, OC, OH, OW). */
static void ref_conv(double *out, const float *x, const float *w, const float *bias,
                     const struct oomb_conv2d *cv, int64_t B)
{
    for (int64_t b = 0; b < B; b++)
        for (int64_t o = 0; o < cv->OC; o++)
            for (int64_t oh = 0; oh < cv->OH; oh++)
                for (int64_t ow = 0; ow < cv->OW; ow++) {
                    double s = bias ? bias[o] : 0.0;
                    for (int64_t c = 0; c < cv->C; c++)
                        for (int64_t i = 0; i < cv->K; i++)
                            for (int64_t j = 0; j < cv->K; j++) {
                                int64_t ih = oh * cv->stride - cv->pad + i;
                                int64_t iw = ow * cv->stride - cv->pad + j;
                                if (ih < 0 || ih >= cv->H || iw < 0 || iw >= cv->W)
                                    continue;
                                s += (double)w[((o * cv->C + c) * cv->K + i) * cv->K + j] *
                                     x[((b * cv->C + c) * cv->H + ih) * cv->W + iw];
                            }
                    out[((b * cv->OC + o) * cv->OH + oh) * cv->OW + ow] = s;
                }
}

struct conv_case {
    struct oomb_conv2d cv;
    int64_t B;
    float *inp, *w, *bias, *G, *out;
    void *ws;
    size_t ws_bytes;
};

static double conv_loss(const void *p)
{
    const struct conv_case *c = p;
    EXPECT_OK(
        ops->conv2d_forward(K, c->out, c->inp, c->w, c->bias, &c->cv, c->B, c->ws, c->ws_bytes));
    return dot(c->G, c->out, c->B * c->cv.OC * c->cv.OH * c->cv.OW);
}

static void check_conv(int64_t B, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t Kk,
                       int64_t stride, int64_t pad, int with_bias)
{
    struct conv_case c = {.cv = conv_geom(C, H, W, OC, Kk, stride, pad), .B = B};
    const struct oomb_conv2d *cv = &c.cv;
    int64_t n_in = B * C * H * W, n_w = OC * C * Kk * Kk, n_out = B * OC * cv->OH * cv->OW;

    EXPECT_OK(ops->conv2d_workspace(K, cv, B, &c.ws_bytes));
    cr_expect_eq(c.ws_bytes, (size_t)(C * Kk * Kk * cv->OH * cv->OW) * sizeof(float));
    c.ws = talloc(c.ws_bytes);
    c.inp = frand_new(n_in, -1, 1);
    c.w = frand_new(n_w, -1, 1);
    c.bias = with_bias ? frand_new(OC, -1, 1) : NULL;
    c.G = frand_new(n_out, -1, 1);
    c.out = frand_new(n_out, -9, 9); /* garbage: must be overwritten */

    double *ref = DALLOC(n_out);
    EXPECT_OK(ops->conv2d_forward(K, c.out, c.inp, c.w, c.bias, cv, B, c.ws, c.ws_bytes));
    ref_conv(ref, c.inp, c.w, c.bias, cv, B);
    /* im2col GEMM, sums of n = C Kk^2 + 1 <= 28 terms: estimate 1.4e-7, worst case 8e-7;
     * limit 1e-5, measured 2.4e-7 */
    cr_expect_lt(rel_err(c.out, ref, n_out), 1e-5, "conv forward C%ld %ldx%ld K%ld s%ld p%ld: %g",
                 (long)C, (long)H, (long)W, (long)Kk, (long)stride, (long)pad,
                 rel_err(c.out, ref, n_out));

    float *dinp = frand_new(n_in, -9, 9);                            /* overwritten */
    float *dw0 = frand_new(n_w, -1, 1), *db0 = frand_new(OC, -1, 1); /* accumulated onto */
    float *dw = fcopy(dw0, n_w), *db = fcopy(db0, OC);
    EXPECT_OK(ops->conv2d_backward(K, dinp, dw, with_bias ? db : NULL, c.G, c.inp, c.w, cv, B, c.ws,
                                   c.ws_bytes));
    expect_fd(conv_loss, &c, c.inp, n_in, dinp, 1e-2f, "conv dinp");
    expect_fd(conv_loss, &c, c.w, n_w, gained(dw, dw0, n_w), 1e-2f, "conv dweight");
    if (with_bias)
        expect_fd(conv_loss, &c, c.bias, OC, gained(db, db0, OC), 1e-2f, "conv dbias");
    else
        cr_expect_eq(memcmp(db, db0, (size_t)OC * sizeof(float)), 0, "NULL dbias was written");
}

Test(layers_cpu, conv2d_stride1_nopad)
{
    seed(1);
    check_conv(2, 3, 6, 6, 4, 3, 1, 0, 1);
}

Test(layers_cpu, conv2d_stride2_pad1_nonsquare)
{
    seed(2);
    check_conv(2, 3, 7, 5, 4, 3, 2, 1, 1); /* OH 4, OW 3 */
    check_conv(3, 2, 5, 8, 3, 3, 2, 1, 0);
}

Test(layers_cpu, conv2d_uneven_stride_and_1x1)
{
    seed(3);
    check_conv(2, 2, 6, 9, 3, 2, 3, 0, 1); /* trailing columns never read */
    check_conv(2, 4, 3, 5, 2, 1, 1, 0, 1);
    check_conv(1, 1, 4, 3, 2, 5, 1, 2, 1); /* kernel larger than the input, padded */
}

/* Padding wider than the stride: the first and last output columns that read
 * the input (kernels/cpu: im2col's copied range) differ per kernel column. */
Test(layers_cpu, conv2d_padding_wider_than_stride)
{
    seed(4);
    check_conv(2, 2, 9, 11, 3, 5, 2, 3, 1);
    check_conv(1, 3, 4, 7, 2, 3, 3, 2, 0);
    check_conv(2, 1, 8, 6, 2, 4, 1, 3, 1);
    check_conv(1, 2, 3, 3, 2, 7, 1, 2, 1); /* K = W + 2 pad: kernel columns that read only padding */
}

Test(layers_cpu, conv2d_backward_skips_null_gradients)
{
    seed(4);
    int64_t B = 2, OC = 3;
    struct oomb_conv2d cv = conv_geom(2, 5, 4, OC, 3, 2, 1);
    int64_t n_in = B * 2 * 5 * 4, n_w = OC * 2 * 9, n_out = B * OC * cv.OH * cv.OW;
    size_t wsb;
    EXPECT_OK(ops->conv2d_workspace(K, &cv, B, &wsb));
    void *ws = talloc(wsb);
    float *inp = frand_new(n_in, -1, 1), *w = frand_new(n_w, -1, 1), *G = frand_new(n_out, -1, 1);
    float *dinp = FALLOC(n_in), *dw = FALLOC(n_w), *db = FALLOC(OC);
    EXPECT_OK(ops->conv2d_backward(K, dinp, dw, db, G, inp, w, &cv, B, ws, wsb));

    /* each gradient alone equals its part of the full call */
    float *dinp2 = frand_new(n_in, -9, 9), *dw2 = FALLOC(n_w), *db2 = FALLOC(OC);
    EXPECT_OK(ops->conv2d_backward(K, dinp2, NULL, NULL, G, inp, w, &cv, B, ws, wsb));
    EXPECT_OK(ops->conv2d_backward(K, NULL, dw2, NULL, G, inp, w, &cv, B, ws, wsb));
    EXPECT_OK(ops->conv2d_backward(K, NULL, NULL, db2, G, inp, w, &cv, B, ws, wsb));
    cr_expect_eq(memcmp(dinp, dinp2, (size_t)n_in * sizeof(float)), 0);
    cr_expect_eq(memcmp(dw, dw2, (size_t)n_w * sizeof(float)), 0);
    cr_expect_eq(memcmp(db, db2, (size_t)OC * sizeof(float)), 0);

    /* a second call accumulates dweight and dbias: twice the first, up to rounding */
    EXPECT_OK(ops->conv2d_backward(K, NULL, dw2, db2, G, inp, w, &cv, B, ws, wsb));
    double *twice_w = DALLOC(n_w), *twice_b = DALLOC(OC);
    for (int64_t i = 0; i < n_w; i++)
        twice_w[i] = 2.0 * dw[i];
    for (int64_t i = 0; i < OC; i++)
        twice_b[i] = 2.0 * db[i];
    /* dw2 = fl(fl(x) + x) for the same x: the second call repeats the first call's sums
     * bit for bit (asserted above) and adds them onto them, one rounding: <= u = 6e-8 of
     * |2x|; 1e-6 also admits a library whose GEMM accumulates into C in a second order
     * (a sum of n = B OH OW = 12 terms: 0.45 sqrt(12) u = 9e-8). Measured 5.6e-8 and 0. */
    cr_expect_lt(rel_err(dw2, twice_w, n_w), 1e-6);
    cr_expect_lt(rel_err(db2, twice_b, OC), 1e-6);
}

Test(layers_cpu, conv2d_workspace_is_one_sample_of_im2col)
{
    struct oomb_conv2d cv = conv_geom(3, 7, 5, 8, 3, 2, 1);
    size_t b1 = 0, b9 = 0;
    EXPECT_OK(ops->conv2d_workspace(K, &cv, 1, &b1));
    EXPECT_OK(ops->conv2d_workspace(K, &cv, 9, &b9));
    cr_expect_eq(b1, (size_t)(3 * 3 * 3 * 4 * 3) * sizeof(float));
    cr_expect_eq(b9, b1);
}

/* ============================================================ maxpool ==== */

static struct oomb_pool2d pool_geom(int64_t C, int64_t H, int64_t W, int64_t Kk, int64_t stride)
{
    struct oomb_pool2d p = {
        .struct_size = sizeof p, .C = C, .H = H, .W = W, .K = Kk, .stride = stride};
    p.OH = (H - Kk) / stride + 1;
    p.OW = (W - Kk) / stride + 1;
    return p;
}

static void ref_maxpool(double *out, const float *x, const struct oomb_pool2d *p, int64_t B)
{
    for (int64_t pl = 0; pl < B * p->C; pl++)
        for (int64_t oh = 0; oh < p->OH; oh++)
            for (int64_t ow = 0; ow < p->OW; ow++) {
                double m = -INFINITY;
                for (int64_t i = 0; i < p->K; i++)
                    for (int64_t j = 0; j < p->K; j++)
                        m = fmax(m,
                                 x[(pl * p->H + oh * p->stride + i) * p->W + ow * p->stride + j]);
                out[(pl * p->OH + oh) * p->OW + ow] = m;
            }
}

struct pool_case {
    struct oomb_pool2d p;
    int64_t B;
    float *inp, *G, *out;
};

static double pool_loss(const void *v)
{
    const struct pool_case *c = v;
    EXPECT_OK(ops->maxpool_forward(K, c->out, c->inp, &c->p, c->B));
    return dot(c->G, c->out, c->B * c->p.C * c->p.OH * c->p.OW);
}

static void check_maxpool(int64_t B, int64_t C, int64_t H, int64_t W, int64_t Kk, int64_t stride)
{
    struct pool_case c = {.p = pool_geom(C, H, W, Kk, stride), .B = B};
    int64_t n_in = B * C * H * W, n_out = B * C * c.p.OH * c.p.OW;
    /* distinct values 0.05 apart, shuffled: a step of 1e-2 never changes a
     * window's maximum, so the loss is smooth where it is differenced */
    c.inp = FALLOC(n_in);
    for (int64_t i = 0; i < n_in; i++)
        c.inp[i] = 0.05f * (float)(i - n_in / 2) + 0.01f;
    for (int64_t i = n_in - 1; i > 0; i--) {
        int64_t j = (int64_t)(xorshift() % (uint64_t)(i + 1));
        float t = c.inp[i];
        c.inp[i] = c.inp[j];
        c.inp[j] = t;
    }
    c.G = frand_new(n_out, -1, 1);
    c.out = frand_new(n_out, -9, 9);

    double *ref = DALLOC(n_out);
    EXPECT_OK(ops->maxpool_forward(K, c.out, c.inp, &c.p, B));
    ref_maxpool(ref, c.inp, &c.p, B);
    cr_expect_lt(rel_err(c.out, ref, n_out), 1e-7); /* a maximum is exact; measured 0 */

    float *dinp = frand_new(n_in, -9, 9);
    EXPECT_OK(ops->maxpool_backward(K, dinp, c.G, c.inp, &c.p, B));
    expect_fd(pool_loss, &c, c.inp, n_in, dinp, 1e-2f, "maxpool dinp");

    /* with the positions kept (what training saves): the same output, each
     * index at its window's maximum, and the same input gradient */
    float *out2 = frand_new(n_out, -9, 9), *dinp2 = frand_new(n_in, -9, 9);
    int32_t *idx = calloc((size_t)n_out, sizeof *idx);
    cr_assert_not_null(idx);
    EXPECT_OK(ops->maxpool_forward(K, c.out, c.inp, &c.p, B)); /* the differencing moved it */
    EXPECT_OK(ops->maxpool_forward_idx(K, out2, idx, c.inp, &c.p, B));
    cr_expect_eq(memcmp(out2, c.out, (size_t)n_out * sizeof(float)), 0);
    for (int64_t o = 0; o < n_out; o++) {
        int64_t plane = o / (c.p.OH * c.p.OW);
        cr_expect_eq(c.inp[plane * H * W + idx[o]], out2[o], "idx[%lld]", (long long)o);
    }
    EXPECT_OK(ops->maxpool_backward_idx(K, dinp2, c.G, idx, &c.p, B));
    cr_expect_eq(memcmp(dinp2, dinp, (size_t)n_in * sizeof(float)), 0,
                 "backward from the indices differs from backward from the input");
    free(idx);
}

Test(layers_cpu, maxpool_overlapping_windows)
{
    seed(11);
    check_maxpool(2, 3, 7, 6, 3, 2); /* K 3 stride 2: windows share a row/column */
    check_maxpool(1, 2, 9, 5, 3, 1);
}

Test(layers_cpu, maxpool_disjoint_windows)
{
    seed(12);
    check_maxpool(2, 2, 6, 8, 2, 2);
    check_maxpool(3, 1, 5, 7, 2, 3); /* gaps between windows */
}

Test(layers_cpu, maxpool_ties_go_to_the_first_maximum)
{
    /* one plane 3 x 4, K 2 stride 1, windows overlapping; equal values */
    struct oomb_pool2d p = pool_geom(1, 3, 4, 2, 1); /* out 2 x 3 */
    float x[12] = {
        1, 5, 5, 0, /* */
        5, 5, 2, 2, /* */
        0, 1, 2, 2,
    };
    float out[6], dout[6] = {1, 10, 100, 1000, 10000, 100000}, dx[12];
    EXPECT_OK(ops->maxpool_forward(K, out, x, &p, 1));
    float want_out[6] = {5, 5, 5, 5, 5, 2};
    for (int i = 0; i < 6; i++)
        cr_expect_eq(out[i], want_out[i], "out[%d] = %g", i, (double)out[i]);
    for (int i = 0; i < 12; i++)
        dx[i] = -1.0f;
    EXPECT_OK(ops->maxpool_backward(K, dx, dout, x, &p, 1));
    /* windows (0,0),(0,1) -> x[1]; (0,2) -> x[2]; (1,0),(1,1) -> x[4], x[5]; (1,2) -> x[6] */
    float want[12] = {0, 11, 100, 0, 1000, 10000, 100000, 0, 0, 0, 0, 0};
    for (int i = 0; i < 12; i++)
        cr_expect_eq(dx[i], want[i], "dinp[%d] = %g, want %g", i, (double)dx[i], (double)want[i]);
    int32_t idx[6], want_idx[6] = {1, 1, 2, 4, 5, 6};
    EXPECT_OK(ops->maxpool_forward_idx(K, out, idx, x, &p, 1));
    for (int i = 0; i < 6; i++)
        cr_expect_eq(idx[i], want_idx[i], "idx[%d] = %d", i, idx[i]);
}

Test(layers_cpu, maxpool_backward_refuses_an_index_outside_the_plane)
{
    struct oomb_pool2d p = pool_geom(1, 4, 4, 2, 2); /* out 2 x 2 */
    float dout[4] = {1, 2, 3, 4}, dx[16];
    int32_t idx[4] = {0, 3, 16, 5};
    cr_expect_eq(ops->maxpool_backward_idx(K, dx, dout, idx, &p, 1), OOMB_ERR_INVALID);
    cr_expect(strstr(ops->last_error(K), "index 16 outside a plane of 16") != NULL, "%s",
              ops->last_error(K));
    idx[2] = -1;
    cr_expect_eq(ops->maxpool_backward_idx(K, dx, dout, idx, &p, 1), OOMB_ERR_INVALID);
    cr_expect_eq(ops->maxpool_forward_idx(K, dx, NULL, dx, &p, 1), OOMB_ERR_INVALID);
}

/* ============================================================ batchnorm == */

#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f

/* Two-pass statistics per channel over (B, S) and the normalised output. */
static void ref_batchnorm(double *out, double *mean, double *var, const float *x,
                          const float *gamma, const float *beta, int64_t B, int64_t C, int64_t S)
{
    int64_t n = B * S;
    for (int64_t c = 0; c < C; c++) {
        double s = 0.0;
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < S; i++)
                s += x[(b * C + c) * S + i];
        double mu = s / (double)n, ss = 0.0;
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < S; i++) {
                double d = x[(b * C + c) * S + i] - mu;
                ss += d * d;
            }
        mean[c] = mu;
        var[c] = ss / (double)n;
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < S; i++) {
                int64_t at = (b * C + c) * S + i;
                out[at] = (x[at] - mu) / sqrt(var[c] + (double)BN_EPS) * gamma[c] + beta[c];
            }
    }
}

struct bn_case {
    int64_t B, C, S;
    float *inp, *gamma, *beta, *G, *out, *mean, *rstd;
};

/* Training-mode forward without running statistics. */
static double bn_loss(const void *v)
{
    const struct bn_case *c = v;
    EXPECT_OK(ops->batchnorm_forward(K, c->out, c->mean, c->rstd, NULL, NULL, c->inp, c->gamma,
                                     c->beta, c->B, c->C, c->S, 1, BN_MOMENTUM, BN_EPS));
    return dot(c->G, c->out, c->B * c->C * c->S);
}

static void check_batchnorm(int64_t B, int64_t C, int64_t S)
{
    int64_t n = B * C * S;
    struct bn_case c = {.B = B, .C = C, .S = S};
    c.inp = frand_new(n, -1, 1);
    for (int64_t i = 0; i < n; i++)
        c.inp[i] += (float)((i / S) % C) * 0.5f; /* a different mean per channel */
    c.gamma = frand_new(C, 0.5f, 1.5f);
    c.beta = frand_new(C, -1, 1);
    c.G = frand_new(n, -1, 1);
    c.out = FALLOC(n);
    c.mean = FALLOC(C);
    c.rstd = FALLOC(C);

    float *out = frand_new(n, -9, 9), *mean = frand_new(C, -9, 9), *rstd = frand_new(C, -9, 9);
    float *rm0 = frand_new(C, -1, 1), *rv0 = frand_new(C, 0.5f, 2);
    float *rm = fcopy(rm0, C), *rv = fcopy(rv0, C);
    EXPECT_OK(ops->batchnorm_forward(K, out, mean, rstd, rm, rv, c.inp, c.gamma, c.beta, B, C, S, 1,
                                     BN_MOMENTUM, BN_EPS));
    double *ref = DALLOC(n), *rmean = DALLOC(C), *rvar = DALLOC(C);
    double *rrstd = DALLOC(C), *rrm = DALLOC(C), *rrv = DALLOC(C);
    ref_batchnorm(ref, rmean, rvar, c.inp, c.gamma, c.beta, B, C, S);
    for (int64_t i = 0; i < C; i++) {
        rrstd[i] = 1.0 / sqrt(rvar[i] + (double)BN_EPS);
        rrm[i] = 0.9 * rm0[i] + 0.1 * rmean[i];
        rrv[i] = 0.9 * rv0[i] + 0.1 * rvar[i] * (double)(B * S) / (double)(B * S - 1);
    }
    /* statistics in double, stored in float: mean, rstd, running mean and variance are
     * one or two float roundings of double values, <= 2u = 1.2e-7 (limit 1e-6; measured
     * 2.6e-8, 3.6e-8, 5.0e-8, 3.2e-8). out = gamma (x - mean) rstd + beta in float: about
     * 5 roundings on values of order |x - mean| rstd gamma, and the cancellation of
     * (x - mean) turns the mean's one rounding into an error relative to |x| <= 3 here,
     * about 3 / 0.5 times larger: <= (5 + 6) u = 6.6e-7; limit 1e-5, measured 1.0e-7. */
    cr_expect_lt(rel_err(out, ref, n), 1e-5, "bn out: %g", rel_err(out, ref, n));
    cr_expect_lt(rel_err(mean, rmean, C), 1e-6);
    cr_expect_lt(rel_err(rstd, rrstd, C), 1e-6);
    cr_expect_lt(rel_err(rm, rrm, C), 1e-6);
    cr_expect_lt(rel_err(rv, rrv, C), 1e-6);

    float *dinp = frand_new(n, -9, 9);
    float *dg0 = frand_new(C, -1, 1), *db0 = frand_new(C, -1, 1);
    float *dg = fcopy(dg0, C), *db = fcopy(db0, C);
    EXPECT_OK(ops->batchnorm_backward(K, dinp, dg, db, c.G, c.inp, mean, rstd, c.gamma, B, C, S));
    expect_fd(bn_loss, &c, c.inp, n, dinp, 5e-3f, "batchnorm dinp");
    expect_fd(bn_loss, &c, c.gamma, C, gained(dg, dg0, C), 5e-3f, "batchnorm dgamma");
    expect_fd(bn_loss, &c, c.beta, C, gained(db, db0, C), 5e-3f, "batchnorm dbeta");
}

Test(layers_cpu, batchnorm_spatial)
{
    seed(21);
    check_batchnorm(3, 4, 5); /* S > 1: statistics over batch and space */
    check_batchnorm(1, 2, 6); /* one sample */
}

Test(layers_cpu, batchnorm_after_linear)
{
    seed(22);
    check_batchnorm(6, 5, 1); /* S = 1 */
    /* three values per channel: with two, xhat is +-1 whatever x is and the
     * input gradient vanishes (up to eps), leaving nothing to difference */
    check_batchnorm(3, 3, 1);
}

Test(layers_cpu, batchnorm_running_stats_by_hand)
{
    /* B 2, C 2, S 2. channel 0: {1, 2, 3, 6}: mean 3, biased var 14/4,
     * unbiased 14/3. channel 1: {-1, 1, -1, 1}: mean 0, var 1, unbiased 4/3. */
    float x[8] = {1, 2, -1, 1, 3, 6, -1, 1};
    float gamma[2] = {1, 1}, beta[2] = {0, 0};
    float out[8], mean[2], rstd[2];
    float rm[2] = {0.5f, -2.0f}, rv[2] = {2.0f, 1.0f};
    EXPECT_OK(ops->batchnorm_forward(K, out, mean, rstd, rm, rv, x, gamma, beta, 2, 2, 2, 1, 0.1f,
                                     1e-5f));
    /* values of order 1 computed in double and stored in float, or a few float operations
     * on them: <= 3 roundings of |v| <= 3.5, 6.3e-7 absolute; 1e-6 */
    cr_expect_float_eq(mean[0], 3.0f, 1e-6);
    cr_expect_float_eq(mean[1], 0.0f, 1e-6);
    cr_expect_float_eq(rstd[0], (float)(1.0 / sqrt(3.5 + 1e-5)), 1e-6);
    cr_expect_float_eq(rstd[1], (float)(1.0 / sqrt(1.0 + 1e-5)), 1e-6);
    /* r = 0.9 r + 0.1 stat */
    cr_expect_float_eq(rm[0], 0.75f, 1e-6);                    /* 0.45 + 0.3 */
    cr_expect_float_eq(rm[1], -1.8f, 1e-6);                    /* -1.8 + 0 */
    cr_expect_float_eq(rv[0], (float)(1.8 + 14.0 / 30), 1e-6); /* 1.8 + 0.1 * 14/3 */
    cr_expect_float_eq(rv[1], (float)(0.9 + 4.0 / 30), 1e-6);  /* 0.9 + 0.1 * 4/3 */
    cr_expect_float_eq(out[2], (float)(-1.0 / sqrt(1.0 + 1e-5)), 1e-6);
    cr_expect_float_eq(out[5], (float)(3.0 / sqrt(3.5 + 1e-5)), 1e-6);

    /* NULL running statistics: the same output, nothing else written */
    float out2[8];
    EXPECT_OK(ops->batchnorm_forward(K, out2, mean, rstd, NULL, NULL, x, gamma, beta, 2, 2, 2, 1,
                                     0.1f, 1e-5f));
    cr_expect_eq(memcmp(out, out2, sizeof out), 0);
    cr_expect_float_eq(rm[0], 0.75f, 1e-6);
}

Test(layers_cpu, batchnorm_eval_uses_running_stats)
{
    seed(23);
    int64_t B = 3, C = 4, S = 5, n = B * C * S;
    float *x = frand_new(n, -2, 2), *gamma = frand_new(C, 0.5f, 1.5f), *beta = frand_new(C, -1, 1);
    float *rm = frand_new(C, -1, 1), *rv = frand_new(C, 0.2f, 3);
    float *rm0 = fcopy(rm, C), *rv0 = fcopy(rv, C);
    float *out = frand_new(n, -9, 9), *mean = frand_new(C, -9, 9), *rstd = frand_new(C, -9, 9);
    EXPECT_OK(ops->batchnorm_forward(K, out, mean, rstd, rm, rv, x, gamma, beta, B, C, S, 0,
                                     BN_MOMENTUM, BN_EPS));
    double *ref = DALLOC(n);
    for (int64_t b = 0; b < B; b++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < S; i++) {
                int64_t at = (b * C + c) * S + i;
                ref[at] =
                    (x[at] - (double)rm[c]) / sqrt((double)rv[c] + (double)BN_EPS) * gamma[c] +
                    beta[c];
            }
    /* (x - rm) rstd gamma + beta in float, rstd from a double sqrt: about 5 roundings on
     * values of order |x - rm| rstd gamma <= 3 / 0.45 * 1.5 against max |ref| (about as
     * large), <= 5u x 2 = 6e-7; limit 1e-5, measured 8.9e-8 */
    cr_expect_lt(rel_err(out, ref, n), 1e-5, "eval out: %g", rel_err(out, ref, n));
    cr_expect_eq(memcmp(rm, rm0, (size_t)C * sizeof(float)), 0, "eval changed run_mean");
    cr_expect_eq(memcmp(rv, rv0, (size_t)C * sizeof(float)), 0, "eval changed run_var");
    for (int64_t c = 0; c < C; c++) {
        cr_expect_eq(mean[c], rm[c]);
        cr_expect_float_eq(rstd[c], (float)(1.0 / sqrt((double)rv[c] + (double)BN_EPS)), 1e-6);
    }

    /* mean/rstd may be NULL; the batch statistics would give another output */
    float *out2 = FALLOC(n);
    EXPECT_OK(ops->batchnorm_forward(K, out2, NULL, NULL, rm, rv, x, gamma, beta, B, C, S, 0,
                                     BN_MOMENTUM, BN_EPS));
    cr_expect_eq(memcmp(out, out2, (size_t)n * sizeof(float)), 0);
    EXPECT_OK(ops->batchnorm_forward(K, out2, mean, rstd, NULL, NULL, x, gamma, beta, B, C, S, 1,
                                     BN_MOMENTUM, BN_EPS));
    cr_expect_gt(rel_err(out2, ref, n), 1e-2);

    /* one value per channel is fine in eval mode */
    EXPECT_OK(ops->batchnorm_forward(K, out2, NULL, NULL, rm, rv, x, gamma, beta, 1, C, 1, 0,
                                     BN_MOMENTUM, BN_EPS));
}

/* ============================================================ layernorm == */

#define LN_EPS 1e-5f

struct ln_case {
    int64_t N, C;
    float *inp, *gamma, *beta, *G, *out, *mean, *rstd;
};

static double ln_loss(const void *v)
{
    const struct ln_case *c = v;
    EXPECT_OK(ops->layernorm_forward(K, c->out, c->mean, c->rstd, c->inp, c->gamma, c->beta, c->N,
                                     c->C, LN_EPS));
    return dot(c->G, c->out, c->N * c->C);
}

static void check_layernorm(int64_t N, int64_t C)
{
    struct ln_case c = {.N = N, .C = C};
    c.inp = frand_new(N * C, -1, 1);
    for (int64_t i = 0; i < N * C; i++)
        c.inp[i] += (float)(i / C) * 0.3f - 1.0f; /* a different mean per row */
    c.gamma = frand_new(C, 0.5f, 1.5f);
    c.beta = frand_new(C, -1, 1);
    c.G = frand_new(N * C, -1, 1);
    c.out = FALLOC(N * C);
    c.mean = FALLOC(N);
    c.rstd = FALLOC(N);

    float *out = frand_new(N * C, -9, 9), *mean = frand_new(N, -9, 9), *rstd = frand_new(N, -9, 9);
    EXPECT_OK(ops->layernorm_forward(K, out, mean, rstd, c.inp, c.gamma, c.beta, N, C, LN_EPS));
    double *ref = DALLOC(N * C), *rmean = DALLOC(N), *rrstd = DALLOC(N);
    for (int64_t r = 0; r < N; r++) {
        double s = 0.0, ss = 0.0;
        for (int64_t i = 0; i < C; i++)
            s += c.inp[r * C + i];
        double mu = s / (double)C;
        for (int64_t i = 0; i < C; i++)
            ss += (c.inp[r * C + i] - mu) * (c.inp[r * C + i] - mu);
        rmean[r] = mu;
        rrstd[r] = 1.0 / sqrt(ss / (double)C + (double)LN_EPS);
        for (int64_t i = 0; i < C; i++)
            ref[r * C + i] = (c.inp[r * C + i] - mu) * rrstd[r] * c.gamma[i] + c.beta[i];
    }
    /* as batch norm: statistics in double stored in float (<= 2u; measured 4.1e-8 and
     * 4.4e-8 against 1e-6), the output about 5 float roundings plus the cancellation of
     * x - mean (<= 11u = 6.6e-7; limit 1e-5, measured 8.3e-8) */
    cr_expect_lt(rel_err(out, ref, N * C), 1e-5, "ln out: %g", rel_err(out, ref, N * C));
    cr_expect_lt(rel_err(mean, rmean, N), 1e-6);
    cr_expect_lt(rel_err(rstd, rrstd, N), 1e-6);

    float *dinp = frand_new(N * C, -9, 9);
    float *dg0 = frand_new(C, -1, 1), *db0 = frand_new(C, -1, 1);
    float *dg = fcopy(dg0, C), *db = fcopy(db0, C);
    EXPECT_OK(ops->layernorm_backward(K, dinp, dg, db, c.G, c.inp, mean, rstd, c.gamma, N, C));
    expect_fd(ln_loss, &c, c.inp, N * C, dinp, 5e-3f, "layernorm dinp");
    expect_fd(ln_loss, &c, c.gamma, C, gained(dg, dg0, C), 5e-3f, "layernorm dgamma");
    expect_fd(ln_loss, &c, c.beta, C, gained(db, db0, C), 5e-3f, "layernorm dbeta");
}

Test(layers_cpu, layernorm_rows)
{
    seed(31);
    check_layernorm(7, 12);
    check_layernorm(1, 5);
    check_layernorm(4, 3); /* C = 2 would make xhat +-1 whatever x is */
}

/* ============================================================ attention == */

/* Element by element in double: probs (B, H, T, T), out (B, T, C). */
static void ref_attention(double *out, double *probs, const float *qkv, int64_t B, int64_t T,
                          int64_t C, int64_t H, int causal)
{
    int64_t hd = C / H;
    double *s = malloc((size_t)T * sizeof *s);
    cr_assert_not_null(s);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < T; i++) {
                const float *q = qkv + (b * T + i) * 3 * C + h * hd;
                double m = -INFINITY, z = 0.0;
                for (int64_t j = 0; j < T; j++) {
                    if (causal && j > i)
                        continue;
                    const float *kk = qkv + (b * T + j) * 3 * C + C + h * hd;
                    double d = 0.0;
                    for (int64_t e = 0; e < hd; e++)
                        d += (double)q[e] * kk[e];
                    s[j] = d / sqrt((double)hd);
                    m = fmax(m, s[j]);
                }
                for (int64_t j = 0; j < T; j++)
                    if (!(causal && j > i))
                        z += exp(s[j] - m);
                double *p = probs + ((b * H + h) * T + i) * T;
                for (int64_t j = 0; j < T; j++)
                    p[j] = causal && j > i ? 0.0 : exp(s[j] - m) / z;
                for (int64_t e = 0; e < hd; e++) {
                    double o = 0.0;
                    for (int64_t j = 0; j < T; j++)
                        o += p[j] * qkv[(b * T + j) * 3 * C + 2 * C + h * hd + e];
                    out[(b * T + i) * C + h * hd + e] = o;
                }
            }
    free(s);
}

struct attn_case {
    int64_t B, T, C, H;
    int causal;
    float *qkv, *G, *out, *probs;
};

static double attn_loss(const void *v)
{
    const struct attn_case *c = v;
    EXPECT_OK(ops->attention_forward(K, c->out, c->probs, c->qkv, c->B, c->T, c->C, c->H, c->causal,
                                     NULL, 0));
    return dot(c->G, c->out, c->B * c->T * c->C);
}

static void check_attention(int64_t B, int64_t T, int64_t C, int64_t H, int causal)
{
    struct attn_case c = {.B = B, .T = T, .C = C, .H = H, .causal = causal};
    int64_t n_qkv = B * T * 3 * C, n_out = B * T * C, n_p = B * H * T * T;
    c.qkv = frand_new(n_qkv, -1.5f, 1.5f);
    c.G = frand_new(n_out, -1, 1);
    c.out = FALLOC(n_out);
    c.probs = FALLOC(n_p);

    size_t wsb = 0;
    EXPECT_OK(ops->attention_workspace(K, B, T, C, H, &wsb));
    cr_expect_eq(wsb, (size_t)(T * T) * sizeof(float));
    void *ws = talloc(wsb);

    float *out = frand_new(n_out, -9, 9), *probs = frand_new(n_p, -9, 9);
    EXPECT_OK(ops->attention_forward(K, out, probs, c.qkv, B, T, C, H, causal, ws, wsb));
    double *rout = DALLOC(n_out), *rp = DALLOC(n_p);
    ref_attention(rout, rp, c.qkv, B, T, C, H, causal);
    /* scores: dot products of n = C/H <= 4 terms of |q k| <= 2.25 scaled by 1/sqrt(C/H);
     * softmax over <= T = 7 (expf, a sum, a division: <= (T + 4) u relative, plus the
     * scores' 5u |s| with |s| <= 4.5 passed through exp as an absolute error); out: sums
     * of T products p v. Worst case about (5 x 4.5 + 11 + 7) u = 2.4e-6 relative to
     * max |ref|; limit 1e-5, measured 1.3e-7 (out) and 7.1e-8 (probs). */
    cr_expect_lt(rel_err(out, rout, n_out), 1e-5, "attn out: %g", rel_err(out, rout, n_out));
    cr_expect_lt(rel_err(probs, rp, n_p), 1e-5, "attn probs: %g", rel_err(probs, rp, n_p));
    if (causal)
        for (int64_t bh = 0; bh < B * H; bh++)
            for (int64_t i = 0; i < T; i++)
                for (int64_t j = i + 1; j < T; j++)
                    cr_expect_eq(probs[(bh * T + i) * T + j], 0.0f, "masked prob %ld,%ld", (long)i,
                                 (long)j);

    float *dqkv = frand_new(n_qkv, -9, 9); /* every element must be overwritten */
    EXPECT_OK(ops->attention_backward(K, dqkv, c.G, c.qkv, probs, B, T, C, H, causal, ws, wsb));
    expect_fd(attn_loss, &c, c.qkv, n_qkv, dqkv, 1e-2f, causal ? "causal dqkv" : "dqkv");
}

Test(layers_cpu, attention_two_heads)
{
    seed(41);
    check_attention(2, 5, 8, 2, 0);
    check_attention(2, 5, 8, 2, 1);
}

Test(layers_cpu, attention_other_shapes)
{
    seed(42);
    check_attention(1, 7, 12, 3, 1);
    check_attention(3, 4, 6, 1, 0);
    check_attention(2, 1, 4, 2, 1); /* one token: probs are 1 */
}

Test(layers_cpu, attention_causal_first_row_copies_v)
{
    seed(43);
    int64_t B = 1, T = 4, C = 4, H = 2;
    float *qkv = frand_new(B * T * 3 * C, -1, 1), *out = FALLOC(B * T * C);
    float *probs = FALLOC(B * H * T * T);
    EXPECT_OK(ops->attention_forward(K, out, probs, qkv, B, T, C, H, 1, NULL, 0));
    /* the first causal row has one probability, exactly 1, so out = 1 * v: exact; the 1e-7
     * admits one rounding of |v| <= 1 (u = 6e-8) */
    for (int64_t e = 0; e < C; e++)
        cr_expect_float_eq(out[e], qkv[2 * C + e], 1e-7, "out[0][%ld]", (long)e);
    cr_expect_eq(probs[0], 1.0f);
    cr_expect_eq(probs[T * T], 1.0f); /* head 1 */
}

/* ============================================================ add ======== */

Test(layers_cpu, add_and_aliases)
{
    seed(51);
    int64_t n = 37;
    float *a = frand_new(n, -3, 3), *b = frand_new(n, -3, 3), *out = frand_new(n, -9, 9);
    float *want = FALLOC(n);
    for (int64_t i = 0; i < n; i++)
        want[i] = a[i] + b[i];
    EXPECT_OK(ops->add(K, out, a, b, n));
    cr_expect_eq(memcmp(out, want, (size_t)n * sizeof(float)), 0);
    float *a2 = fcopy(a, n), *b2 = fcopy(b, n);
    EXPECT_OK(ops->add(K, a2, a2, b, n)); /* out aliases a */
    EXPECT_OK(ops->add(K, b2, a, b2, n)); /* out aliases b */
    cr_expect_eq(memcmp(a2, want, (size_t)n * sizeof(float)), 0);
    cr_expect_eq(memcmp(b2, want, (size_t)n * sizeof(float)), 0);
}

/* ============================================================ invalid ==== */

static float fbuf[256];
static float fws[256];

Test(layers_cpu, invalid_conv2d)
{
    struct oomb_conv2d cv = conv_geom(2, 5, 4, 3, 3, 2, 1); /* OH 3, OW 2 */
    size_t need = (size_t)(2 * 9 * 3 * 2) * sizeof(float), b;
    cr_assert_leq(need, sizeof fws);
    const char *fw = "conv2d_forward", *bw = "conv2d_backward";
    EXPECT_OK(ops->conv2d_forward(K, fbuf, fbuf, fbuf, NULL, &cv, 1, fws, need));

    EXPECT_INVALID_MSG(ops->conv2d_workspace(K, &cv, 1, NULL), "conv2d_workspace", "bytes");
    EXPECT_INVALID_MSG(ops->conv2d_workspace(K, NULL, 1, &b), "conv2d_workspace", "cv");
    EXPECT_INVALID_MSG(ops->conv2d_workspace(K, &cv, 0, &b), "conv2d_workspace", "B");
    EXPECT_INVALID_MSG(ops->conv2d_forward(K, NULL, fbuf, fbuf, NULL, &cv, 1, fws, need), fw,
                       "out");
    EXPECT_INVALID_MSG(ops->conv2d_forward(K, fbuf, NULL, fbuf, NULL, &cv, 1, fws, need), fw,
                       "inp");
    EXPECT_INVALID_MSG(ops->conv2d_forward(K, fbuf, fbuf, NULL, NULL, &cv, 1, fws, need), fw,
                       "weight");
    EXPECT_INVALID_MSG(ops->conv2d_forward(K, fbuf, fbuf, fbuf, NULL, &cv, -1, fws, need), fw, "B");
    EXPECT_INVALID_MSG(ops->conv2d_forward(K, fbuf, fbuf, fbuf, NULL, &cv, 1, NULL, need), fw,
                       "ws");
    EXPECT_INVALID_MSG(ops->conv2d_forward(K, fbuf, fbuf, fbuf, NULL, &cv, 1, fws, need - 4), fw,
                       "ws_bytes");
    EXPECT_INVALID_MSG(
        ops->conv2d_backward(K, fbuf, fbuf, NULL, NULL, fbuf, fbuf, &cv, 1, fws, need), bw, "dout");
    EXPECT_INVALID_MSG(
        ops->conv2d_backward(K, fbuf, fbuf, NULL, fbuf, fbuf, fbuf, &cv, 1, fws, need - 4), bw,
        "ws_bytes");

    /* geometry: each field, and an OH/OW the formula does not give */
    struct oomb_conv2d bad = cv;
    bad.OH = 4;
    EXPECT_INVALID_MSG(ops->conv2d_forward(K, fbuf, fbuf, fbuf, NULL, &bad, 1, fws, need), fw,
                       "OH");
    bad = cv;
    bad.OW = 1;
    EXPECT_INVALID_MSG(
        ops->conv2d_backward(K, fbuf, fbuf, NULL, fbuf, fbuf, fbuf, &bad, 1, fws, need), bw, "OW");
    bad = cv;
    bad.C = 0;
    EXPECT_INVALID_MSG(ops->conv2d_workspace(K, &bad, 1, &b), "conv2d_workspace", "C");
    bad = cv;
    bad.H = -5;
    EXPECT_INVALID_MSG(ops->conv2d_workspace(K, &bad, 1, &b), "conv2d_workspace", "H");
    bad = cv;
    bad.OC = 0;
    EXPECT_INVALID_MSG(ops->conv2d_workspace(K, &bad, 1, &b), "conv2d_workspace", "OC");
    bad = cv;
    bad.K = 0;
    EXPECT_INVALID_MSG(ops->conv2d_workspace(K, &bad, 1, &b), "conv2d_workspace", "K");
    bad = cv;
    bad.stride = 0;
    EXPECT_INVALID_MSG(ops->conv2d_workspace(K, &bad, 1, &b), "conv2d_workspace", "stride");
    bad = cv;
    bad.pad = -1;
    EXPECT_INVALID_MSG(ops->conv2d_workspace(K, &bad, 1, &b), "conv2d_workspace", "pad");
    bad = conv_geom(1, 2, 2, 1, 5, 1, 1); /* 5 > 2 + 2 pad */
    bad.OH = bad.OW = 1;
    EXPECT_INVALID_MSG(ops->conv2d_workspace(K, &bad, 1, &b), "conv2d_workspace", "K");
    bad = cv;
    bad.struct_size = 0;
    EXPECT_INVALID_MSG(ops->conv2d_workspace(K, &bad, 1, &b), "conv2d_workspace", "struct_size");
    cr_expect_eq(ops->conv2d_workspace(NULL, &cv, 1, &b), OOMB_ERR_INVALID);
}

Test(layers_cpu, invalid_maxpool)
{
    struct oomb_pool2d p = pool_geom(2, 5, 4, 3, 2); /* OH 2, OW 1 */
    const char *fw = "maxpool_forward", *bw = "maxpool_backward";
    EXPECT_OK(ops->maxpool_forward(K, fbuf, fbuf, &p, 2));
    EXPECT_INVALID_MSG(ops->maxpool_forward(K, NULL, fbuf, &p, 2), fw, "out");
    EXPECT_INVALID_MSG(ops->maxpool_forward(K, fbuf, NULL, &p, 2), fw, "inp");
    EXPECT_INVALID_MSG(ops->maxpool_forward(K, fbuf, fbuf, NULL, 2), fw, "p");
    EXPECT_INVALID_MSG(ops->maxpool_forward(K, fbuf, fbuf, &p, 0), fw, "B");
    EXPECT_INVALID_MSG(ops->maxpool_backward(K, NULL, fbuf, fbuf, &p, 2), bw, "dinp");
    EXPECT_INVALID_MSG(ops->maxpool_backward(K, fbuf, NULL, fbuf, &p, 2), bw, "dout");
    EXPECT_INVALID_MSG(ops->maxpool_backward(K, fbuf, fbuf, NULL, &p, 2), bw, "inp");
    struct oomb_pool2d bad = p;
    bad.OH = 3;
    EXPECT_INVALID_MSG(ops->maxpool_forward(K, fbuf, fbuf, &bad, 2), fw, "OH");
    bad = p;
    bad.OW = 2;
    EXPECT_INVALID_MSG(ops->maxpool_backward(K, fbuf, fbuf, fbuf, &bad, 2), bw, "OW");
    bad = p;
    bad.stride = 0;
    EXPECT_INVALID_MSG(ops->maxpool_forward(K, fbuf, fbuf, &bad, 2), fw, "stride");
    bad = p;
    bad.C = -1;
    EXPECT_INVALID_MSG(ops->maxpool_forward(K, fbuf, fbuf, &bad, 2), fw, "C");
    bad = pool_geom(1, 5, 2, 2, 1);
    bad.K = 3; /* wider than W */
    EXPECT_INVALID_MSG(ops->maxpool_forward(K, fbuf, fbuf, &bad, 1), fw, "K");
    bad = p;
    bad.struct_size = 4;
    EXPECT_INVALID_MSG(ops->maxpool_forward(K, fbuf, fbuf, &bad, 2), fw, "struct_size");
}

Test(layers_cpu, invalid_batchnorm)
{
    float *x = fbuf, *o = fbuf + 64, *s = fbuf + 128;
    const char *fw = "batchnorm_forward", *bw = "batchnorm_backward";
    for (int i = 0; i < 16; i++)
        s[i] = 1.0f;
    EXPECT_OK(ops->batchnorm_forward(K, o, s, s + 4, NULL, NULL, x, s, s, 2, 2, 2, 1, 0.1f, 1e-5f));
    EXPECT_INVALID_MSG(
        ops->batchnorm_forward(K, NULL, s, s + 4, NULL, NULL, x, s, s, 2, 2, 2, 1, 0.1f, 1e-5f), fw,
        "out");
    EXPECT_INVALID_MSG(
        ops->batchnorm_forward(K, o, s, s + 4, NULL, NULL, NULL, s, s, 2, 2, 2, 1, 0.1f, 1e-5f), fw,
        "inp");
    EXPECT_INVALID_MSG(
        ops->batchnorm_forward(K, o, s, s + 4, NULL, NULL, x, NULL, s, 2, 2, 2, 1, 0.1f, 1e-5f), fw,
        "gamma");
    EXPECT_INVALID_MSG(
        ops->batchnorm_forward(K, o, s, s + 4, NULL, NULL, x, s, NULL, 2, 2, 2, 1, 0.1f, 1e-5f), fw,
        "beta");
    /* training writes the batch statistics: mean and rstd are required */
    EXPECT_INVALID_MSG(
        ops->batchnorm_forward(K, o, NULL, s + 4, NULL, NULL, x, s, s, 2, 2, 2, 1, 0.1f, 1e-5f), fw,
        "mean");
    EXPECT_INVALID_MSG(
        ops->batchnorm_forward(K, o, s, NULL, NULL, NULL, x, s, s, 2, 2, 2, 1, 0.1f, 1e-5f), fw,
        "rstd");
    EXPECT_INVALID_MSG(
        ops->batchnorm_forward(K, o, s, s + 4, s + 8, NULL, x, s, s, 2, 2, 2, 1, 0.1f, 1e-5f), fw,
        "run_var");
    /* eval normalises with the running statistics: they are required */
    EXPECT_INVALID_MSG(
        ops->batchnorm_forward(K, o, NULL, NULL, NULL, s + 8, x, s, s, 2, 2, 2, 0, 0.1f, 1e-5f), fw,
        "run_mean");
    EXPECT_INVALID_MSG(
        ops->batchnorm_forward(K, o, NULL, NULL, s + 8, NULL, x, s, s, 2, 2, 2, 0, 0.1f, 1e-5f), fw,
        "run_var");
    EXPECT_INVALID_MSG(
        ops->batchnorm_forward(K, o, s, s + 4, NULL, NULL, x, s, s, 0, 2, 2, 1, 0.1f, 1e-5f), fw,
        "B");
    EXPECT_INVALID_MSG(
        ops->batchnorm_forward(K, o, s, s + 4, NULL, NULL, x, s, s, 2, -2, 2, 1, 0.1f, 1e-5f), fw,
        "C");
    EXPECT_INVALID_MSG(
        ops->batchnorm_forward(K, o, s, s + 4, NULL, NULL, x, s, s, 2, 2, 0, 1, 0.1f, 1e-5f), fw,
        "S");
    /* one value per channel has no unbiased variance */
    EXPECT_INVALID_MSG(
        ops->batchnorm_forward(K, o, s, s + 4, NULL, NULL, x, s, s, 1, 2, 1, 1, 0.1f, 1e-5f), fw,
        "B*S");
    EXPECT_INVALID_MSG(
        ops->batchnorm_forward(K, o, s, s + 4, NULL, NULL, x, s, s, 2, 2, 2, 1, 1.5f, 1e-5f), fw,
        "momentum");
    EXPECT_INVALID_MSG(
        ops->batchnorm_forward(K, o, s, s + 4, NULL, NULL, x, s, s, 2, 2, 2, 1, 0.1f, 0.0f), fw,
        "eps");
    float neg[2] = {1.0f, -1.0f};
    EXPECT_INVALID_MSG(
        ops->batchnorm_forward(K, o, NULL, NULL, s + 8, neg, x, s, s, 2, 2, 2, 0, 0.1f, 1e-5f), fw,
        "run_var");

    EXPECT_OK(ops->batchnorm_backward(K, o, s + 8, s + 12, x, x, s, s + 4, s, 2, 2, 2));
    EXPECT_INVALID_MSG(ops->batchnorm_backward(K, NULL, s + 8, s + 12, x, x, s, s + 4, s, 2, 2, 2),
                       bw, "dinp");
    EXPECT_INVALID_MSG(ops->batchnorm_backward(K, o, NULL, s + 12, x, x, s, s + 4, s, 2, 2, 2), bw,
                       "dgamma");
    EXPECT_INVALID_MSG(ops->batchnorm_backward(K, o, s + 8, NULL, x, x, s, s + 4, s, 2, 2, 2), bw,
                       "dbeta");
    EXPECT_INVALID_MSG(ops->batchnorm_backward(K, o, s + 8, s + 12, NULL, x, s, s + 4, s, 2, 2, 2),
                       bw, "dout");
    EXPECT_INVALID_MSG(ops->batchnorm_backward(K, o, s + 8, s + 12, x, x, NULL, s + 4, s, 2, 2, 2),
                       bw, "mean");
    EXPECT_INVALID_MSG(ops->batchnorm_backward(K, o, s + 8, s + 12, x, x, s, NULL, s, 2, 2, 2), bw,
                       "rstd");
    EXPECT_INVALID_MSG(ops->batchnorm_backward(K, o, s + 8, s + 12, x, x, s, s + 4, NULL, 2, 2, 2),
                       bw, "gamma");
    EXPECT_INVALID_MSG(ops->batchnorm_backward(K, o, s + 8, s + 12, x, x, s, s + 4, s, 2, 2, 0), bw,
                       "S");
}

Test(layers_cpu, invalid_layernorm)
{
    float *x = fbuf, *o = fbuf + 64, *s = fbuf + 128;
    const char *fw = "layernorm_forward", *bw = "layernorm_backward";
    for (int i = 0; i < 16; i++)
        s[i] = 1.0f;
    EXPECT_OK(ops->layernorm_forward(K, o, s, s + 4, x, s, s, 2, 4, 1e-5f));
    EXPECT_INVALID_MSG(ops->layernorm_forward(K, NULL, s, s + 4, x, s, s, 2, 4, 1e-5f), fw, "out");
    EXPECT_INVALID_MSG(ops->layernorm_forward(K, o, NULL, s + 4, x, s, s, 2, 4, 1e-5f), fw, "mean");
    EXPECT_INVALID_MSG(ops->layernorm_forward(K, o, s, NULL, x, s, s, 2, 4, 1e-5f), fw, "rstd");
    EXPECT_INVALID_MSG(ops->layernorm_forward(K, o, s, s + 4, NULL, s, s, 2, 4, 1e-5f), fw, "inp");
    EXPECT_INVALID_MSG(ops->layernorm_forward(K, o, s, s + 4, x, NULL, s, 2, 4, 1e-5f), fw,
                       "gamma");
    EXPECT_INVALID_MSG(ops->layernorm_forward(K, o, s, s + 4, x, s, NULL, 2, 4, 1e-5f), fw, "beta");
    EXPECT_INVALID_MSG(ops->layernorm_forward(K, o, s, s + 4, x, s, s, 0, 4, 1e-5f), fw, "N");
    EXPECT_INVALID_MSG(ops->layernorm_forward(K, o, s, s + 4, x, s, s, 2, -4, 1e-5f), fw, "C");
    EXPECT_INVALID_MSG(ops->layernorm_forward(K, o, s, s + 4, x, s, s, 2, 4, -1.0f), fw, "eps");
    EXPECT_INVALID_MSG(ops->layernorm_forward(K, o, s, s + 4, x, s, s, 2, 4, NAN), fw, "eps");

    EXPECT_OK(ops->layernorm_backward(K, o, s + 8, s + 12, x, x, s, s + 4, s, 2, 4));
    EXPECT_INVALID_MSG(ops->layernorm_backward(K, NULL, s + 8, s + 12, x, x, s, s + 4, s, 2, 4), bw,
                       "dinp");
    EXPECT_INVALID_MSG(ops->layernorm_backward(K, o, NULL, s + 12, x, x, s, s + 4, s, 2, 4), bw,
                       "dgamma");
    EXPECT_INVALID_MSG(ops->layernorm_backward(K, o, s + 8, NULL, x, x, s, s + 4, s, 2, 4), bw,
                       "dbeta");
    EXPECT_INVALID_MSG(ops->layernorm_backward(K, o, s + 8, s + 12, x, NULL, s, s + 4, s, 2, 4), bw,
                       "inp");
    EXPECT_INVALID_MSG(ops->layernorm_backward(K, o, s + 8, s + 12, x, x, s, s + 4, s, 2, 0), bw,
                       "C");
}

Test(layers_cpu, invalid_attention)
{
    const char *fw = "attention_forward", *bw = "attention_backward";
    size_t b, need = 3 * 3 * sizeof(float);
    float *qkv = fbuf, *o = fbuf + 64, *p = fbuf + 128, *d = fbuf + 160;
    EXPECT_OK(ops->attention_forward(K, o, p, qkv, 1, 3, 4, 2, 1, NULL, 0));
    EXPECT_OK(ops->attention_backward(K, d, o, qkv, p, 1, 3, 4, 2, 1, fws, need));
    EXPECT_INVALID_MSG(ops->attention_workspace(K, 1, 3, 4, 2, NULL), "attention_workspace",
                       "bytes");
    EXPECT_INVALID_MSG(ops->attention_workspace(K, 1, 3, 5, 2, &b), "attention_workspace", "H");
    EXPECT_INVALID_MSG(ops->attention_forward(K, NULL, p, qkv, 1, 3, 4, 2, 1, NULL, 0), fw, "out");
    EXPECT_INVALID_MSG(ops->attention_forward(K, o, NULL, qkv, 1, 3, 4, 2, 1, NULL, 0), fw,
                       "probs");
    EXPECT_INVALID_MSG(ops->attention_forward(K, o, p, NULL, 1, 3, 4, 2, 1, NULL, 0), fw, "qkv");
    EXPECT_INVALID_MSG(ops->attention_forward(K, o, p, qkv, 0, 3, 4, 2, 1, NULL, 0), fw, "B");
    EXPECT_INVALID_MSG(ops->attention_forward(K, o, p, qkv, 1, -3, 4, 2, 1, NULL, 0), fw, "T");
    EXPECT_INVALID_MSG(ops->attention_forward(K, o, p, qkv, 1, 3, 0, 2, 1, NULL, 0), fw, "C");
    EXPECT_INVALID_MSG(ops->attention_forward(K, o, p, qkv, 1, 3, 4, 0, 1, NULL, 0), fw, "H");
    /* C % H != 0 */
    EXPECT_INVALID_MSG(ops->attention_forward(K, o, p, qkv, 1, 3, 4, 3, 1, NULL, 0), fw,
                       "multiple");
    EXPECT_INVALID_MSG(ops->attention_backward(K, NULL, o, qkv, p, 1, 3, 4, 2, 1, fws, need), bw,
                       "dqkv");
    EXPECT_INVALID_MSG(ops->attention_backward(K, d, NULL, qkv, p, 1, 3, 4, 2, 1, fws, need), bw,
                       "dout");
    EXPECT_INVALID_MSG(ops->attention_backward(K, d, o, NULL, p, 1, 3, 4, 2, 1, fws, need), bw,
                       "qkv");
    EXPECT_INVALID_MSG(ops->attention_backward(K, d, o, qkv, NULL, 1, 3, 4, 2, 1, fws, need), bw,
                       "probs");
    EXPECT_INVALID_MSG(ops->attention_backward(K, d, o, qkv, p, 1, 3, 6, 4, 1, fws, need), bw,
                       "multiple");
    EXPECT_INVALID_MSG(ops->attention_backward(K, d, o, qkv, p, 1, 3, 4, 2, 1, NULL, need), bw,
                       "ws");
    EXPECT_INVALID_MSG(ops->attention_backward(K, d, o, qkv, p, 1, 3, 4, 2, 1, fws, need - 1), bw,
                       "ws_bytes");
}

Test(layers_cpu, invalid_add)
{
    EXPECT_OK(ops->add(K, fbuf, fbuf, fbuf, 4));
    EXPECT_INVALID_MSG(ops->add(K, NULL, fbuf, fbuf, 4), "add", "out");
    EXPECT_INVALID_MSG(ops->add(K, fbuf, NULL, fbuf, 4), "add", "a");
    EXPECT_INVALID_MSG(ops->add(K, fbuf, fbuf, NULL, 4), "add", "b");
    EXPECT_INVALID_MSG(ops->add(K, fbuf, fbuf, fbuf, 0), "add", "n");
    EXPECT_INVALID_MSG(ops->add(K, fbuf, fbuf, fbuf, -4), "add", "n");
    cr_expect_eq(ops->add(NULL, fbuf, fbuf, fbuf, 4), OOMB_ERR_INVALID);
}

Test(layers_cpu, every_layer_op_is_registered)
{
    cr_expect_eq(ops->struct_size, sizeof(struct oomb_ops));
    cr_expect(ops->conv2d_workspace && ops->conv2d_forward && ops->conv2d_backward);
    cr_expect(ops->maxpool_forward && ops->maxpool_backward);
    cr_expect(ops->batchnorm_forward && ops->batchnorm_backward);
    cr_expect(ops->layernorm_forward && ops->layernorm_backward);
    cr_expect(ops->attention_workspace && ops->attention_forward && ops->attention_backward);
    cr_expect(ops->add);
}
