/*
 * The CUDA ops checked against the CPU ops (the ground truth) on fresh random
 * inputs: the same data goes to both backends, the same op runs on each, and
 * the outputs are compared. Floats by normwise relative error,
 * max|gpu - cpu| / max|cpu| (1e-5 FP32, 1e-3 with OOMB_CUDA_TF32=1, 1e-2 F16),
 * after checking that every value is finite; integer outputs exactly.
 *
 * Without a usable GPU the binary prints "SKIPPED: <reason>" and exits 77,
 * which CTest reports as skipped. The GPU is probed in a forked child: a
 * process that has initialised CUDA cannot use it in children it forks later,
 * and Criterion runs each test in a child of this one.
 *
 * The seed is printed by each test; OOMB_TEST_SEED=<n> repeats a run.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "backend.h"
#include "cuda/conv_cache.h"

/* ------------------------------------------------------------ fixture ---- */

static struct oomb_kernel_backend *cpu, *gpu;
static const struct oomb_ops *co, *go;
/* The extension tables of each backend (get_extension), for BOTH_EXT. */
static const struct oomb_ext_quant *quant_c, *quant_g;
static const struct oomb_ext_sparse *sparse_c, *sparse_g;
static const struct oomb_ext_distill *distill_c, *distill_g;
static double tol_f32;
static const double tol_f16 = 1e-2;
static uint64_t rng;

#define MAX_PAIRS 64
struct pair {
    void *c, *g;
    size_t bytes;
};
static struct pair pairs[MAX_PAIRS];
static int n_pairs;

static void setup(void)
{
    char msg[512] = "";
    int rc = oomb_cpu_backend_create(&cpu, msg, sizeof msg);
    cr_assert_eq(rc, OOMB_OK, "cpu backend: %s", msg);
    rc = oomb_cuda_backend_create(0, &gpu, msg, sizeof msg);
    cr_assert_eq(rc, OOMB_OK, "cuda backend: %s", msg);
    co = &cpu->ops;
    go = &gpu->ops;
    cr_assert_not_null(cpu->get_extension);
    cr_assert_not_null(gpu->get_extension);
    quant_c = cpu->get_extension(co->ctx, OOMB_EXT_QUANT);
    quant_g = gpu->get_extension(go->ctx, OOMB_EXT_QUANT);
    sparse_c = cpu->get_extension(co->ctx, OOMB_EXT_SPARSE);
    sparse_g = gpu->get_extension(go->ctx, OOMB_EXT_SPARSE);
    distill_c = cpu->get_extension(co->ctx, OOMB_EXT_DISTILL);
    distill_g = gpu->get_extension(go->ctx, OOMB_EXT_DISTILL);
    cr_assert(quant_c && quant_g && sparse_c && sparse_g && distill_c && distill_g,
              "an extension table is missing");
    const char *tf32 = getenv("OOMB_CUDA_TF32");
    tol_f32 = tf32 && strcmp(tf32, "1") == 0 ? 1e-3 : 1e-5;
    const char *seed = getenv("OOMB_TEST_SEED");
    rng = seed ? strtoull(seed, NULL, 0)
               : (uint64_t)time(NULL) * 6364136223846793005ull ^ (uint64_t)getpid() << 16;
    if (rng == 0)
        rng = 1;
    cr_log_info("seed %llu (OOMB_TEST_SEED to repeat); device %s, %s; FP32 tolerance %g",
                (unsigned long long)rng, gpu->info.name, gpu->info.runtime, tol_f32);
    n_pairs = 0;
}

static void teardown(void)
{
    for (int i = 0; i < n_pairs; i++) {
        if (cpu)
            cpu->raw_free(co->ctx, pairs[i].c);
        if (gpu)
            gpu->raw_free(go->ctx, pairs[i].g);
    }
    n_pairs = 0;
    if (gpu)
        gpu->destroy(gpu);
    if (cpu)
        cpu->destroy(cpu);
    gpu = cpu = NULL;
}

TestSuite(kernels_cuda, .init = setup, .fini = teardown);

/* ------------------------------------------------------------ helpers ---- */

static uint64_t next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static float uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(next_u64() >> 11) * 0x1p-53);
}

/* A buffer of `bytes` on both backends (contents undefined). */
static struct pair *pair_new(size_t bytes)
{
    cr_assert_lt(n_pairs, MAX_PAIRS);
    struct pair *p = &pairs[n_pairs++];
    p->bytes = bytes;
    cr_assert_eq(cpu->raw_alloc(co->ctx, bytes, &p->c), OOMB_OK);
    int rc = gpu->raw_alloc(go->ctx, bytes, &p->g);
    cr_assert_eq(rc, OOMB_OK, "cuda raw_alloc(%zu): %s", bytes, go->last_error(go->ctx));
    return p;
}

static void pair_put(struct pair *p, const void *host)
{
    cr_assert_eq(co->to_device(co->ctx, p->c, host, p->bytes), OOMB_OK);
    int rc = go->to_device(go->ctx, p->g, host, p->bytes);
    cr_assert_eq(rc, OOMB_OK, "cuda to_device: %s", go->last_error(go->ctx));
}

/* n random F32 in [lo, hi) on both backends; the host copy is returned if asked. */
static struct pair *rand_f32(int64_t n, float lo, float hi)
{
    struct pair *p = pair_new((size_t)n * sizeof(float));
    float *h = malloc((size_t)n * sizeof(float) + 1);
    cr_assert_not_null(h);
    for (int64_t i = 0; i < n; i++)
        h[i] = uniform(lo, hi);
    pair_put(p, h);
    free(h);
    return p;
}

/* n random F16 in [lo, hi): rounded by the CPU backend's cast, same bits on both. */
static struct pair *rand_f16(int64_t n, float lo, float hi)
{
    struct pair *f = rand_f32(n, lo, hi);
    struct pair *p = pair_new((size_t)n * 2);
    cr_assert_eq(co->cast(co->ctx, p->c, OOMB_F16, f->c, OOMB_F32, n), OOMB_OK);
    uint16_t *h = malloc((size_t)n * 2 + 1);
    cr_assert_not_null(h);
    cr_assert_eq(co->to_host(co->ctx, h, p->c, p->bytes), OOMB_OK);
    pair_put(p, h);
    free(h);
    return p;
}

static struct pair *rand_targets(int64_t B, int64_t K)
{
    struct pair *p = pair_new((size_t)B * sizeof(int32_t));
    int32_t *h = malloc((size_t)B * sizeof(int32_t) + 1);
    cr_assert_not_null(h);
    for (int64_t b = 0; b < B; b++)
        h[b] = (int32_t)(next_u64() % (uint64_t)K);
    pair_put(p, h);
    free(h);
    return p;
}

/* Both sides' contents on the host (caller frees both). */
static void fetch(const struct pair *p, void **hc, void **hg)
{
    *hc = malloc(p->bytes + 1);
    *hg = malloc(p->bytes + 1);
    cr_assert(*hc && *hg);
    cr_assert_eq(co->to_host(co->ctx, *hc, p->c, p->bytes), OOMB_OK);
    int rc = go->to_host(go->ctx, *hg, p->g, p->bytes);
    cr_assert_eq(rc, OOMB_OK, "cuda to_host: %s", go->last_error(go->ctx));
}

static float h2f(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v = e == 0    ? ldexpf((float)m, -24)
              : e == 31 ? (m ? NAN : INFINITY)
                        : ldexpf((float)(m | 0x400), e - 25);
    return (h & 0x8000) ? -v : v;
}

/* Normwise relative error of the GPU result against the CPU one; every value
 * must be finite on both sides. */
static void expect_close_vals(const float *c, const float *g, int64_t n, double tol,
                              const char *what)
{
    double maxdiff = 0.0, maxref = 0.0;
    int64_t worst = 0;
    for (int64_t i = 0; i < n; i++) {
        cr_assert(isfinite(c[i]), "%s: cpu[%lld] = %g is not finite", what, (long long)i,
                  (double)c[i]);
        cr_assert(isfinite(g[i]), "%s: cuda[%lld] = %g is not finite (cpu %g)", what, (long long)i,
                  (double)g[i], (double)c[i]);
        double d = fabs((double)g[i] - (double)c[i]);
        if (d > maxdiff) {
            maxdiff = d;
            worst = i;
        }
        if (fabs((double)c[i]) > maxref)
            maxref = fabs((double)c[i]);
    }
    double rel = maxref > 0.0 ? maxdiff / maxref : maxdiff;
    cr_expect(rel <= tol, "%s: relative error %.3g > %.3g (worst [%lld]: cpu %.9g cuda %.9g)", what,
              rel, tol, (long long)worst, n ? (double)c[worst] : 0.0, n ? (double)g[worst] : 0.0);
}

static void expect_close(const struct pair *p, enum oomb_dtype dt, double tol, const char *what)
{
    void *hc, *hg;
    fetch(p, &hc, &hg);
    if (dt == OOMB_F16) {
        int64_t n = (int64_t)(p->bytes / 2);
        float *fc = malloc((size_t)n * sizeof(float) + 1),
              *fg = malloc((size_t)n * sizeof(float) + 1);
        cr_assert(fc && fg);
        for (int64_t i = 0; i < n; i++) {
            fc[i] = h2f(((uint16_t *)hc)[i]);
            fg[i] = h2f(((uint16_t *)hg)[i]);
        }
        expect_close_vals(fc, fg, n, tol, what);
        free(fc);
        free(fg);
    } else {
        expect_close_vals(hc, hg, (int64_t)(p->bytes / sizeof(float)), tol, what);
    }
    free(hc);
    free(hg);
}

static void expect_same_bytes(const struct pair *p, const char *what)
{
    void *hc, *hg;
    fetch(p, &hc, &hg);
    size_t first = p->bytes;
    for (size_t i = 0; i < p->bytes; i++)
        if (((unsigned char *)hc)[i] != ((unsigned char *)hg)[i]) {
            first = i;
            break;
        }
    cr_expect_eq(first, p->bytes, "%s: first differing byte at %zu of %zu", what, first, p->bytes);
    free(hc);
    free(hg);
}

#define OK_BOTH(call_c, call_g)                                                                    \
    do {                                                                                           \
        int rc_c_ = (call_c);                                                                      \
        cr_assert_eq(rc_c_, OOMB_OK, "cpu: %s", co->last_error(co->ctx));                          \
        int rc_g_ = (call_g);                                                                      \
        cr_assert_eq(rc_g_, OOMB_OK, "cuda: %s", go->last_error(go->ctx));                         \
    } while (0)

/* Runs op on both backends with the matching pointers: A(p) is p->c or p->g. */
#define BOTH(op, ...)                                                                              \
    do {                                                                                           \
        int side_;                                                                                 \
        for (side_ = 0; side_ < 2; side_++) {                                                      \
            const struct oomb_ops *o_ = side_ ? go : co;                                           \
            int rc_ = o_->op(o_->ctx, __VA_ARGS__);                                                \
            cr_assert_eq(rc_, OOMB_OK, "%s %s: %s", side_ ? "cuda" : "cpu", #op,                   \
                         o_->last_error(o_->ctx));                                                 \
        }                                                                                          \
    } while (0)
#define A(p) (side_ ? (p)->g : (p)->c)

/* BOTH for an op of the extension tables ext_c / ext_g (ext: quant, sparse,
 * distill), called with the table's ctx. */
#define BOTH_EXT(ext, op, ...)                                                                     \
    do {                                                                                           \
        int side_;                                                                                 \
        for (side_ = 0; side_ < 2; side_++) {                                                      \
            const struct oomb_ops *o_ = side_ ? go : co;                                           \
            int rc_ = side_ ? ext##_g->op(ext##_g->ctx, __VA_ARGS__)                               \
                            : ext##_c->op(ext##_c->ctx, __VA_ARGS__);                              \
            cr_assert_eq(rc_, OOMB_OK, "%s %s: %s", side_ ? "cuda" : "cpu", #op,                   \
                         o_->last_error(o_->ctx));                                                 \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------ memory ----- */

Test(kernels_cuda, memory_movement)
{
    const int64_t n = 1000;
    struct pair *a = rand_f32(n, -1, 1);
    struct pair *b = pair_new(a->bytes);
    BOTH(copy, A(b), A(a), a->bytes);
    expect_same_bytes(b, "copy");
    BOTH(fill, A(b), n, 3.25f);
    expect_same_bytes(b, "fill");
    BOTH(zero, A(b), b->bytes / 2);
    expect_same_bytes(b, "zero");
}

/* ------------------------------------------------------------ linear ----- */

static void linear_case(enum oomb_dtype dt, int64_t B, int64_t C, int64_t OC, int with_bias)
{
    double tol = dt == OOMB_F16 ? tol_f16 : tol_f32;
    struct pair *(*rnd)(int64_t, float, float) = dt == OOMB_F16 ? rand_f16 : rand_f32;
    size_t esz = dt == OOMB_F16 ? 2 : 4;
    struct pair *inp = rnd(B * C, -1, 1);
    struct pair *w = rnd(OC * C, -0.5f, 0.5f);
    struct pair *bias = rand_f32(OC, -1, 1);
    struct pair *out = pair_new((size_t)(B * OC) * esz);
    BOTH(linear_forward, dt, A(out), A(inp), A(w), with_bias ? (const float *)A(bias) : NULL, B, C,
         OC);
    expect_close(out, dt, tol, "linear_forward out");

    struct pair *dout = rnd(B * OC, -1, 1);
    struct pair *dinp = pair_new((size_t)(B * C) * esz);
    struct pair *dw = rand_f32(OC * C, -1, 1); /* accumulates onto random values */
    struct pair *db = rand_f32(OC, -1, 1);
    BOTH(linear_backward, dt, A(dinp), A(dw), with_bias ? (float *)A(db) : NULL, A(dout), A(inp),
         A(w), B, C, OC);
    expect_close(dinp, dt, tol, "linear_backward dinp");
    /* dweight is FP32 in both cases; F16 only rounds the inputs, identically */
    expect_close(dw, OOMB_F32, dt == OOMB_F16 ? 1e-4 : tol, "linear_backward dweight");
    if (with_bias)
        expect_close(db, OOMB_F32, dt == OOMB_F16 ? 1e-4 : 1e-5, "linear_backward dbias");

    /* dinp NULL skips the input gradient */
    BOTH(linear_backward, dt, NULL, A(dw), NULL, A(dout), A(inp), A(w), B, C, OC);
    expect_close(dw, OOMB_F32, dt == OOMB_F16 ? 1e-4 : tol, "linear_backward dweight (2nd)");
}

Test(kernels_cuda, linear_f32)
{
    linear_case(OOMB_F32, 37, 129, 65, 1);
}
Test(kernels_cuda, linear_f32_large)
{
    linear_case(OOMB_F32, 256, 512, 384, 1);
}
Test(kernels_cuda, linear_f32_no_bias)
{
    linear_case(OOMB_F32, 8, 16, 10, 0);
}
Test(kernels_cuda, linear_f16)
{
    linear_case(OOMB_F16, 64, 200, 96, 1);
}
Test(kernels_cuda, linear_f16_odd)
{
    linear_case(OOMB_F16, 7, 33, 5, 1);
}

/* ------------------------------------------------------------ activations */

static void act_case(enum oomb_dtype dt, int gelu)
{
    const int64_t n = 100003;
    double tol = dt == OOMB_F16 ? tol_f16 : 1e-5;
    struct pair *(*rnd)(int64_t, float, float) = dt == OOMB_F16 ? rand_f16 : rand_f32;
    size_t esz = dt == OOMB_F16 ? 2 : 4;
    struct pair *x = rnd(n, -4, 4);
    struct pair *y = pair_new((size_t)n * esz);
    struct pair *dy = rnd(n, -1, 1);
    struct pair *dx = pair_new((size_t)n * esz);
    if (gelu) {
        BOTH(gelu_forward, dt, A(y), A(x), n);
        BOTH(gelu_backward, dt, A(dx), A(dy), A(x), n);
        BOTH(gelu_backward, dt, A(dy), A(dy), A(x), n); /* in place */
    } else {
        BOTH(relu_forward, dt, A(y), A(x), n);
        BOTH(relu_backward, dt, A(dx), A(dy), A(x), n);
        BOTH(relu_backward, dt, A(dy), A(dy), A(x), n);
    }
    expect_close(y, dt, tol, gelu ? "gelu_forward" : "relu_forward");
    expect_close(dx, dt, tol, gelu ? "gelu_backward" : "relu_backward");
    expect_close(dy, dt, tol, gelu ? "gelu_backward in place" : "relu_backward in place");
}

Test(kernels_cuda, relu_f32)
{
    act_case(OOMB_F32, 0);
}
Test(kernels_cuda, relu_f16)
{
    act_case(OOMB_F16, 0);
}
Test(kernels_cuda, gelu_f32)
{
    act_case(OOMB_F32, 1);
}
Test(kernels_cuda, gelu_f16)
{
    act_case(OOMB_F16, 1);
}

/* ------------------------------------------------------------ loss ------- */

Test(kernels_cuda, softmax_xent)
{
    const int64_t B = 67, K = 1000;
    struct pair *logits = rand_f32(B * K, -8, 8);
    struct pair *t = rand_targets(B, K);
    struct pair *losses = pair_new((size_t)B * 4);
    struct pair *probs = pair_new((size_t)(B * K) * 4);
    struct pair *dl = pair_new((size_t)(B * K) * 4);
    BOTH(softmax_xent_forward, A(losses), A(probs), A(logits), A(t), B, K);
    expect_close(losses, OOMB_F32, 1e-5, "softmax_xent losses");
    expect_close(probs, OOMB_F32, 1e-5, "softmax_xent probs");
    BOTH(softmax_xent_backward, A(dl), A(probs), A(t), B, K, 1.0f / (float)B);
    expect_close(dl, OOMB_F32, 1e-5, "softmax_xent_backward");
}

Test(kernels_cuda, soft_xent_accumulate)
{
    const int64_t B = 33, K = 10;
    struct pair *s = rand_f32(B * K, -5, 5);
    struct pair *te = rand_f32(B * K, -5, 5);
    struct pair *losses = rand_f32(B, 0, 2);
    struct pair *dl = rand_f32(B * K, -0.1f, 0.1f);
    BOTH_EXT(distill, soft_xent_accumulate, A(losses), A(dl), A(s), A(te), B, K, 2.0f, 0.7f,
             1.0f / 33);
    expect_close(losses, OOMB_F32, 1e-5, "soft_xent losses");
    expect_close(dl, OOMB_F32, 1e-5, "soft_xent dlogits");
}

Test(kernels_cuda, count_correct)
{
    const int64_t B = 5000, K = 7;
    struct pair *logits = rand_f32(B * K, -1, 1);
    struct pair *t = rand_targets(B, K);
    int64_t cc = -1, cg = -2;
    OK_BOTH(co->count_correct(co->ctx, logits->c, t->c, B, K, &cc),
            go->count_correct(go->ctx, logits->g, t->g, B, K, &cg));
    cr_expect_eq(cg, cc, "count_correct: cuda %lld, cpu %lld", (long long)cg, (long long)cc);
    cr_expect_gt(cc, 0);
}

/* ------------------------------------------------------------ optimizers */

Test(kernels_cuda, sgd)
{
    const int64_t n = 50001;
    struct pair *p = rand_f32(n, -1, 1), *g = rand_f32(n, -1, 1), *m = rand_f32(n, -1, 1);
    for (int step = 0; step < 3; step++)
        BOTH(sgd_update, A(p), A(g), A(m), n, 0.01f, 0.9f, 1e-4f);
    expect_close(p, OOMB_F32, 1e-5, "sgd param");
    expect_close(m, OOMB_F32, 1e-5, "sgd momentum");
    BOTH(sgd_update, A(p), A(g), NULL, n, 0.01f, 0.0f, 0.0f);
    expect_close(p, OOMB_F32, 1e-5, "sgd param without momentum");
}

Test(kernels_cuda, adam)
{
    const int64_t n = 50001;
    struct pair *p = rand_f32(n, -1, 1), *m = pair_new((size_t)n * 4), *v = pair_new((size_t)n * 4);
    BOTH(zero, A(m), m->bytes);
    BOTH(zero, A(v), v->bytes);
    for (int64_t t = 1; t <= 4; t++) {
        struct pair *g = rand_f32(n, -1, 1);
        BOTH(adam_update, A(p), A(g), A(m), A(v), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, t);
    }
    expect_close(p, OOMB_F32, 1e-5, "adam param");
    expect_close(m, OOMB_F32, 1e-5, "adam m");
    expect_close(v, OOMB_F32, 1e-5, "adam v");
}

static void adam8_case(int64_t n, int64_t block)
{
    int64_t nb = (n + block - 1) / block;
    struct pair *p = rand_f32(n, -1, 1);
    struct pair *mq = pair_new((size_t)n), *vq = pair_new((size_t)n);
    struct pair *ms = pair_new((size_t)nb * 4), *vs = pair_new((size_t)nb * 4);
    BOTH(zero, A(mq), mq->bytes);
    BOTH(zero, A(vq), vq->bytes);
    BOTH(zero, A(ms), ms->bytes);
    BOTH(zero, A(vs), vs->bytes);
    for (int64_t t = 1; t <= 3; t++) {
        struct pair *g = rand_f32(n, -1, 1);
        BOTH_EXT(quant, adam8_update, A(p), A(g), A(mq), A(vq), A(ms), A(vs), n, block, 1e-3f, 0.9f,
                 0.999f, 1e-8f, 0.01f, t);
    }
    expect_close(p, OOMB_F32, 1e-5, "adam8 param");
    expect_close(ms, OOMB_F32, 1e-6, "adam8 m_scale");
    expect_close(vs, OOMB_F32, 1e-6, "adam8 v_scale");
    /* the moments are rounded one by one on both sides: same codes */
    expect_same_bytes(mq, "adam8 m_q");
    expect_same_bytes(vq, "adam8 v_q");
}

Test(kernels_cuda, adam8)
{
    adam8_case(10007, 256);
}
Test(kernels_cuda, adam8_large_blocks)
{
    adam8_case(5000, 2048);
}

/* ------------------------------------------------------------ element-wise */

Test(kernels_cuda, scale_axpy_sum)
{
    const int64_t n = 300007;
    struct pair *x = rand_f32(n, -1, 1), *y = rand_f32(n, -1, 1);
    BOTH(scale, A(y), n, 0.37f);
    BOTH(axpy, A(y), A(x), n, -1.5f);
    expect_close(y, OOMB_F32, 1e-6, "scale+axpy");
    /* The GPU's axpy fuses multiply and add, so y differs in the last bits;
     * sum the same data on both sides: double accumulation agrees closely. */
    cr_assert_eq(go->to_device(go->ctx, y->g, y->c, (size_t)n * sizeof(float)), OOMB_OK);
    double sc = 0, sg = 0;
    OK_BOTH(co->sum(co->ctx, y->c, n, &sc), go->sum(go->ctx, y->g, n, &sg));
    cr_expect(fabs(sc - sg) <= 1e-12 * (double)n, "sum: cpu %.17g cuda %.17g", sc, sg);
}

Test(kernels_cuda, count_nonfinite)
{
    const int64_t n = 4099;
    float *h = malloc((size_t)n * 4);
    cr_assert_not_null(h);
    for (int64_t i = 0; i < n; i++)
        h[i] = uniform(-1e5f, 1e5f);
    h[0] = NAN;
    h[17] = INFINITY;
    h[4000] = -INFINITY;
    struct pair *x = pair_new((size_t)n * 4);
    pair_put(x, h);
    free(h);
    struct pair *x16 = pair_new((size_t)n * 2); /* 1e5 overflows F16: more infinities */
    BOTH(cast, A(x16), OOMB_F16, A(x), OOMB_F32, n);
    int64_t cc = -1, cg = -2;
    OK_BOTH(co->count_nonfinite(co->ctx, x->c, OOMB_F32, n, &cc),
            go->count_nonfinite(go->ctx, x->g, OOMB_F32, n, &cg));
    cr_expect_eq(cc, 3);
    cr_expect_eq(cg, cc);
    OK_BOTH(co->count_nonfinite(co->ctx, x16->c, OOMB_F16, n, &cc),
            go->count_nonfinite(go->ctx, x16->g, OOMB_F16, n, &cg));
    cr_expect_gt(cc, 3);
    cr_expect_eq(cg, cc, "F16: cuda %lld, cpu %lld", (long long)cg, (long long)cc);
}

Test(kernels_cuda, cast_round_trip)
{
    const int64_t n = 70001;
    struct pair *x = rand_f32(n, -70000, 70000); /* beyond the F16 range, and subnormals below */
    struct pair *small = rand_f32(n, -1e-6f, 1e-6f);
    struct pair *h = pair_new((size_t)n * 2), *back = pair_new((size_t)n * 4);
    BOTH(cast, A(h), OOMB_F16, A(x), OOMB_F32, n);
    expect_same_bytes(h, "cast F32->F16");
    BOTH(cast, A(back), OOMB_F32, A(h), OOMB_F16, n);
    expect_same_bytes(back, "cast F16->F32");
    BOTH(cast, A(h), OOMB_F16, A(small), OOMB_F32, n);
    expect_same_bytes(h, "cast F32->F16 subnormal");
}

/* ------------------------------------------------------------ int8 ------- */

static void i8_case(int64_t B, int64_t C, int64_t OC)
{
    struct pair *x = rand_f32(B * C, -2, 2), *w = rand_f32(OC * C, -0.3f, 0.3f);
    struct pair *bias = rand_f32(OC, -1, 1);
    struct pair *xq = pair_new((size_t)(B * C)), *wq = pair_new((size_t)(OC * C));
    struct pair *xs = pair_new((size_t)B * 4), *ws = pair_new((size_t)OC * 4);
    BOTH_EXT(quant, quantize_rows_i8, A(xq), A(xs), A(x), B, C);
    BOTH_EXT(quant, quantize_rows_i8, A(wq), A(ws), A(w), OC, C);
    expect_same_bytes(xq, "quantize_rows_i8 q");
    expect_same_bytes(xs, "quantize_rows_i8 scales");
    struct pair *xd = pair_new((size_t)(B * C) * 4);
    BOTH_EXT(quant, dequantize_rows_i8, A(xd), A(xq), A(xs), B, C);
    expect_same_bytes(xd, "dequantize_rows_i8");
    struct pair *acc = pair_new((size_t)(B * OC) * 4), *out = pair_new((size_t)(B * OC) * 4);
    BOTH_EXT(quant, linear_forward_i8, A(out), A(xq), A(xs), A(wq), A(ws), A(bias), A(acc), B, C,
             OC);
    expect_same_bytes(acc, "linear_forward_i8 acc");
    expect_close(out, OOMB_F32, 1e-6, "linear_forward_i8 out");
}

/* multiples of 4: the cuBLAS int8 path */
Test(kernels_cuda, int8_cublas_shape)
{
    i8_case(64, 256, 128);
}
/* odd sizes: the own int8 kernel */
Test(kernels_cuda, int8_fallback_shape)
{
    i8_case(13, 37, 11);
}

/* ------------------------------------------------------------ sparsity --- */

Test(kernels_cuda, pruning)
{
    const int64_t n = 200003;
    struct pair *w = rand_f32(n, -1, 1), *mask = pair_new((size_t)n);
    int64_t cc = -1, cg = -2;
    OK_BOTH(sparse_c->count_abs_below(sparse_c->ctx, w->c, n, 0.3f, &cc),
            sparse_g->count_abs_below(sparse_g->ctx, w->g, n, 0.3f, &cg));
    cr_expect_eq(cg, cc);
    cr_expect_gt(cc, 0);
    BOTH_EXT(sparse, prune_by_threshold, A(w), A(mask), n, 0.3f);
    expect_same_bytes(w, "prune_by_threshold w");
    expect_same_bytes(mask, "prune_by_threshold mask");
    struct pair *x = rand_f32(n, -1, 1);
    BOTH_EXT(sparse, apply_mask, A(x), A(mask), n);
    expect_same_bytes(x, "apply_mask");
}

Test(kernels_cuda, csr)
{
    const int64_t B = 19, C = 300, OC = 77;
    struct pair *w = rand_f32(OC * C, -1, 1), *mask = pair_new((size_t)(OC * C));
    BOTH_EXT(sparse, prune_by_threshold, A(w), A(mask), OC * C, 0.6f);
    int64_t nnz = 0, dummy = 0;
    OK_BOTH(sparse_c->count_abs_below(sparse_c->ctx, w->c, OC * C, 1e-30f, &nnz),
            sparse_g->count_abs_below(sparse_g->ctx, w->g, OC * C, 1e-30f, &dummy));
    nnz = OC * C - nnz;
    struct pair *rowptr = pair_new((size_t)(OC + 1) * 4);
    struct pair *colidx = pair_new((size_t)(nnz ? nnz : 1) * 2);
    struct pair *vals = pair_new((size_t)(nnz ? nnz : 1) * 4);
    BOTH_EXT(sparse, dense_to_csr, A(rowptr), A(colidx), A(vals), A(w), OC, C);
    expect_same_bytes(rowptr, "dense_to_csr rowptr");
    colidx->bytes = (size_t)nnz * 2;
    vals->bytes = (size_t)nnz * 4;
    expect_same_bytes(colidx, "dense_to_csr colidx");
    expect_same_bytes(vals, "dense_to_csr vals");
    struct pair *inp = rand_f32(B * C, -1, 1), *bias = rand_f32(OC, -1, 1);
    struct pair *out = pair_new((size_t)(B * OC) * 4);
    BOTH_EXT(sparse, linear_forward_csr, A(out), A(inp), A(rowptr), A(colidx), A(vals), A(bias), B,
             C, OC);
    expect_close(out, OOMB_F32, 1e-5, "linear_forward_csr");
}

Test(kernels_cuda, two_of_four)
{
    const int64_t B = 21, C = 136, OC = 45;
    struct pair *w = rand_f32(OC * C, -1, 1);
    struct pair *vals = pair_new((size_t)(OC * C / 2) * 4), *idx = pair_new((size_t)(OC * C / 8));
    BOTH_EXT(sparse, compress_2of4, A(vals), A(idx), A(w), OC, C);
    expect_same_bytes(vals, "compress_2of4 vals");
    expect_same_bytes(idx, "compress_2of4 idx");
    expect_same_bytes(w, "compress_2of4 pruned w");
    struct pair *inp = rand_f32(B * C, -1, 1), *bias = rand_f32(OC, -1, 1);
    struct pair *out = pair_new((size_t)(B * OC) * 4);
    BOTH_EXT(sparse, linear_forward_2of4, A(out), A(inp), A(vals), A(idx), A(bias), B, C, OC);
    expect_close(out, OOMB_F32, 1e-5, "linear_forward_2of4");
    /* the same product through the dense GEMM on the pruned weights */
    struct pair *dense = pair_new((size_t)(B * OC) * 4);
    BOTH(linear_forward, OOMB_F32, A(dense), A(inp), A(w), A(bias), B, C, OC);
    void *hc, *hg;
    fetch(dense, &hc, &hg);
    void *sc, *sg;
    fetch(out, &sc, &sg);
    expect_close_vals(hc, sg, B * OC, tol_f32 > 1e-5 ? tol_f32 : 1e-5, "2of4 vs dense");
    free(hc);
    free(hg);
    free(sc);
    free(sg);
}

/* ------------------------------------------------------------ layers ----- */

/* The ABI 1.1 layer ops must be in both tables. */
static void need_layer_ops(void)
{
    const struct oomb_ops *t[2] = {co, go};
    for (int i = 0; i < 2; i++) {
        const char *b = i ? "cuda" : "cpu";
        cr_assert(t[i]->conv2d_workspace && t[i]->conv2d_forward && t[i]->conv2d_backward,
                  "%s: conv2d ops missing", b);
        cr_assert(t[i]->maxpool_forward && t[i]->maxpool_backward && t[i]->maxpool_forward_idx &&
                      t[i]->maxpool_backward_idx,
                  "%s: maxpool ops missing", b);
        cr_assert(t[i]->batchnorm_forward && t[i]->batchnorm_backward, "%s: batchnorm ops missing",
                  b);
        cr_assert(t[i]->layernorm_forward && t[i]->layernorm_backward, "%s: layernorm ops missing",
                  b);
        cr_assert(t[i]->attention_workspace && t[i]->attention_forward && t[i]->attention_backward,
                  "%s: attention ops missing", b);
        cr_assert(t[i]->add, "%s: add missing", b);
    }
}

/* Tolerance of the ops built on GEMMs (cuDNN, cuBLAS): TF32 rounds the inputs. */
static double gemm_tol(double fp32)
{
    return tol_f32 > 1e-5 ? 1e-2 : fp32;
}

/* n random F32 with few distinct values (-2 .. 2): many ties. */
static struct pair *rand_levels(int64_t n)
{
    struct pair *p = pair_new((size_t)n * sizeof(float));
    float *h = malloc((size_t)n * sizeof(float) + 1);
    cr_assert_not_null(h);
    for (int64_t i = 0; i < n; i++)
        h[i] = (float)(int)(next_u64() % 5) - 2.0f;
    pair_put(p, h);
    free(h);
    return p;
}

/* A workspace both backends accept: the larger of their sizes (at least 4 bytes). */
static struct pair *ws_pair(size_t wc, size_t wg)
{
    size_t b = wc > wg ? wc : wg;
    return pair_new(b < 4 ? 4 : b);
}

static void conv_case(int64_t B, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t K,
                      int64_t stride, int64_t pad, int with_bias)
{
    need_layer_ops();
    const double tol = gemm_tol(1e-3);
    struct oomb_conv2d cv = {.struct_size = sizeof cv,
                             .C = C,
                             .H = H,
                             .W = W,
                             .OC = OC,
                             .K = K,
                             .stride = stride,
                             .pad = pad};
    cv.OH = (H + 2 * pad - K) / stride + 1;
    cv.OW = (W + 2 * pad - K) / stride + 1;
    const int64_t n_in = B * C * H * W, n_out = B * OC * cv.OH * cv.OW;
    size_t wc = 0, wg = 0;
    OK_BOTH(co->conv2d_workspace(co->ctx, &cv, B, &wc), go->conv2d_workspace(go->ctx, &cv, B, &wg));
    cr_log_info("conv2d B %lld C %lld %lldx%lld OC %lld K %lld stride %lld pad %lld: workspace "
                "cpu %zu, cuda %zu bytes",
                (long long)B, (long long)C, (long long)H, (long long)W, (long long)OC, (long long)K,
                (long long)stride, (long long)pad, wc, wg);
    struct pair *ws = ws_pair(wc, wg);
    struct pair *inp = rand_f32(n_in, -1, 1);
    struct pair *w = rand_f32(OC * C * K * K, -0.5f, 0.5f);
    struct pair *bias = rand_f32(OC, -1, 1);
    struct pair *out = pair_new((size_t)n_out * 4);
    BOTH(conv2d_forward, A(out), A(inp), A(w), with_bias ? A(bias) : NULL, &cv, B, A(ws),
         ws->bytes);
    expect_close(out, OOMB_F32, tol, "conv2d_forward out");

    /* the CUDA op with exactly the workspace it asked for (none: NULL) */
    struct pair *out2 = pair_new((size_t)n_out * 4);
    cr_assert_eq(co->copy(co->ctx, out2->c, out->c, out->bytes), OOMB_OK);
    int rc = go->conv2d_forward(go->ctx, out2->g, inp->g, w->g, with_bias ? bias->g : NULL, &cv, B,
                                wg ? ws->g : NULL, wg);
    cr_assert_eq(rc, OOMB_OK, "cuda conv2d_forward with its own workspace size: %s",
                 go->last_error(go->ctx));
    expect_close(out2, OOMB_F32, tol, "conv2d_forward out (exact workspace)");

    struct pair *dout = rand_f32(n_out, -1, 1);
    struct pair *dinp = pair_new((size_t)n_in * 4);
    BOTH(fill, A(dinp), n_in, 1e6f);                   /* overwritten */
    struct pair *dw = rand_f32(OC * C * K * K, -1, 1); /* accumulates onto random values */
    struct pair *db = rand_f32(OC, -1, 1);
    BOTH(conv2d_backward, A(dinp), A(dw), with_bias ? A(db) : NULL, A(dout), A(inp), A(w), &cv, B,
         A(ws), ws->bytes);
    expect_close(dinp, OOMB_F32, tol, "conv2d_backward dinp");
    expect_close(dw, OOMB_F32, tol, "conv2d_backward dweight");
    expect_close(db, OOMB_F32, 1e-5, "conv2d_backward dbias");

    /* dinp NULL: the parameter gradients accumulate once more */
    BOTH(conv2d_backward, NULL, A(dw), with_bias ? A(db) : NULL, A(dout), A(inp), A(w), &cv, B,
         A(ws), ws->bytes);
    expect_close(dw, OOMB_F32, tol, "conv2d_backward dweight (2nd)");
    expect_close(db, OOMB_F32, 1e-5, "conv2d_backward dbias (2nd)");

    rc = go->conv2d_backward(go->ctx, dinp->g, dw->g, NULL, dout->g, inp->g, w->g, &cv, B,
                             wg ? ws->g : NULL, wg);
    cr_assert_eq(rc, OOMB_OK, "cuda conv2d_backward with its own workspace size: %s",
                 go->last_error(go->ctx));
}

/* stride 2, pad 1, H != W */
Test(kernels_cuda, conv2d_stride2_pad1)
{
    conv_case(3, 4, 11, 8, 6, 3, 2, 1, 1);
}
Test(kernels_cuda, conv2d_stride1_no_bias)
{
    conv_case(2, 3, 9, 12, 5, 5, 1, 0, 0);
}
Test(kernels_cuda, conv2d_1x1)
{
    conv_case(4, 16, 7, 7, 8, 1, 1, 0, 1);
}
Test(kernels_cuda, conv2d_larger)
{
    conv_case(16, 32, 32, 32, 64, 3, 1, 1, 1);
}

/* More geometries than the backend's convolution cache holds
 * (kernels/cuda/conv_cache.h), twice round: the second round misses on every
 * one (least recently used, cyclic) and sets the descriptors of reused slots
 * again; each geometry's workspace is the one its first call reported. Then
 * the first geometry, replaced by now, against the CPU. */
Test(kernels_cuda, conv2d_cache_replacement)
{
    need_layer_ops();
    enum { N = OOMB_CONV_CACHE_CAP + 8 };
    size_t first[N];
    struct oomb_conv2d cv[N];
    const int64_t B = 3;
    for (int i = 0; i < N; i++) {
        const int64_t K = 1 + 2 * (i % 2), stride = 1 + (i / 2) % 2, pad = i % 2;
        cv[i] = (struct oomb_conv2d){.struct_size = sizeof cv[i],
                                     .C = 1 + i % 5,
                                     .H = 6 + i, /* every geometry differs */
                                     .W = 5 + i % 3,
                                     .OC = 2 + i % 4,
                                     .K = K,
                                     .stride = stride,
                                     .pad = pad};
        cv[i].OH = (cv[i].H + 2 * pad - K) / stride + 1;
        cv[i].OW = (cv[i].W + 2 * pad - K) / stride + 1;
    }
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < N; i++) {
            size_t bytes = 0;
            int rc = go->conv2d_workspace(go->ctx, &cv[i], B, &bytes);
            cr_assert_eq(rc, OOMB_OK, "round %d geometry %d: %s", round, i,
                         go->last_error(go->ctx));
            if (round == 0)
                first[i] = bytes;
            else
                cr_assert_eq(bytes, first[i], "geometry %d: workspace %zu, first call %zu", i,
                             bytes, first[i]);
        }
    conv_case(B, cv[0].C, cv[0].H, cv[0].W, cv[0].OC, cv[0].K, cv[0].stride, cv[0].pad, 1);
}

static void pool_case(int64_t B, int64_t C, int64_t H, int64_t W, int64_t K, int64_t stride,
                      int ties)
{
    need_layer_ops();
    struct oomb_pool2d p = {
        .struct_size = sizeof p, .C = C, .H = H, .W = W, .K = K, .stride = stride};
    p.OH = (H - K) / stride + 1;
    p.OW = (W - K) / stride + 1;
    const int64_t n_in = B * C * H * W, n_out = B * C * p.OH * p.OW;
    struct pair *inp = ties ? rand_levels(n_in) : rand_f32(n_in, -1, 1);
    struct pair *out = pair_new((size_t)n_out * 4);
    BOTH(maxpool_forward, A(out), A(inp), &p, B);
    expect_same_bytes(out, "maxpool_forward out");
    struct pair *dout = rand_f32(n_out, -1, 1);
    struct pair *dinp = pair_new((size_t)n_in * 4);
    BOTH(fill, A(dinp), n_in, 1e6f); /* overwritten */
    BOTH(maxpool_backward, A(dinp), A(dout), A(inp), &p, B);
    /* overlapping windows add in another order on the GPU: a few ulps */
    expect_close(dinp, OOMB_F32, 1e-6,
                 ties ? "maxpool_backward dinp (ties)" : "maxpool_backward dinp");
    /* with the positions kept: the same maxima, the same indices (the first maximum
     * of each window on both), and the same input gradient */
    struct pair *out2 = pair_new((size_t)n_out * 4), *idx = pair_new((size_t)n_out * 4);
    BOTH(maxpool_forward_idx, A(out2), (int32_t *)A(idx), A(inp), &p, B);
    expect_same_bytes(out2, "maxpool_forward_idx out");
    expect_same_bytes(idx, "maxpool_forward_idx idx");
    BOTH(fill, A(dinp), n_in, 1e6f);
    BOTH(maxpool_backward_idx, A(dinp), A(dout), (const int32_t *)A(idx), &p, B);
    expect_close(dinp, OOMB_F32, 1e-6, "maxpool_backward_idx dinp");
}

/* overlapping windows, K 3 stride 2 */
Test(kernels_cuda, maxpool_overlap)
{
    pool_case(2, 3, 9, 7, 3, 2, 0);
}
Test(kernels_cuda, maxpool_overlap_ties)
{
    pool_case(2, 3, 9, 7, 3, 2, 1);
}
Test(kernels_cuda, maxpool_2x2_ties)
{
    pool_case(3, 4, 8, 10, 2, 2, 1);
}
Test(kernels_cuda, maxpool_stride1_ties)
{
    pool_case(2, 2, 6, 5, 3, 1, 1);
}

static void batchnorm_case(int64_t B, int64_t C, int64_t S)
{
    need_layer_ops();
    const int64_t n = B * C * S;
    const float momentum = 0.1f, eps = 1e-5f;
    struct pair *inp = rand_f32(n, -2, 3);
    struct pair *gamma = rand_f32(C, 0.5f, 1.5f), *beta = rand_f32(C, -0.5f, 0.5f);
    struct pair *rm = rand_f32(C, -0.5f, 0.5f), *rv = rand_f32(C, 0.5f, 1.5f);
    struct pair *out = pair_new((size_t)n * 4);
    struct pair *mean = pair_new((size_t)C * 4), *rstd = pair_new((size_t)C * 4);
    BOTH(batchnorm_forward, A(out), A(mean), A(rstd), A(rm), A(rv), A(inp), A(gamma), A(beta), B, C,
         S, 1, momentum, eps);
    expect_close(out, OOMB_F32, 1e-5, "batchnorm_forward out");
    expect_close(mean, OOMB_F32, 1e-5, "batchnorm_forward mean");
    expect_close(rstd, OOMB_F32, 1e-5, "batchnorm_forward rstd");
    expect_close(rm, OOMB_F32, 1e-5, "batchnorm_forward running mean");
    expect_close(rv, OOMB_F32, 1e-5, "batchnorm_forward running variance");

    /* training without running statistics: the same output */
    struct pair *out2 = pair_new((size_t)n * 4);
    BOTH(batchnorm_forward, A(out2), A(mean), A(rstd), NULL, NULL, A(inp), A(gamma), A(beta), B, C,
         S, 1, momentum, eps);
    expect_close(out2, OOMB_F32, 1e-5, "batchnorm_forward out (no running stats)");

    struct pair *dout = rand_f32(n, -1, 1);
    struct pair *dinp = pair_new((size_t)n * 4);
    struct pair *dg = rand_f32(C, -1, 1), *db = rand_f32(C, -1, 1); /* accumulate */
    BOTH(batchnorm_backward, A(dinp), A(dg), A(db), A(dout), A(inp), A(mean), A(rstd), A(gamma), B,
         C, S);
    expect_close(dinp, OOMB_F32, 1e-4, "batchnorm_backward dinp");
    expect_close(dg, OOMB_F32, 1e-5, "batchnorm_backward dgamma");
    expect_close(db, OOMB_F32, 1e-5, "batchnorm_backward dbeta");

    /* inference with the updated running statistics */
    BOTH(batchnorm_forward, A(out), NULL, NULL, A(rm), A(rv), A(inp), A(gamma), A(beta), B, C, S, 0,
         momentum, eps);
    expect_close(out, OOMB_F32, 1e-5, "batchnorm_forward out (inference)");
}

/* S = 1: after a linear layer */
Test(kernels_cuda, batchnorm_s1)
{
    batchnorm_case(16, 10, 1);
}
Test(kernels_cuda, batchnorm_spatial)
{
    batchnorm_case(4, 6, 35);
}
Test(kernels_cuda, batchnorm_spatial_large)
{
    batchnorm_case(3, 5, 300);
}

static void layernorm_case(int64_t N, int64_t C)
{
    need_layer_ops();
    const int64_t n = N * C;
    struct pair *inp = rand_f32(n, -2, 3);
    struct pair *gamma = rand_f32(C, 0.5f, 1.5f), *beta = rand_f32(C, -0.5f, 0.5f);
    struct pair *out = pair_new((size_t)n * 4);
    struct pair *mean = pair_new((size_t)N * 4), *rstd = pair_new((size_t)N * 4);
    BOTH(layernorm_forward, A(out), A(mean), A(rstd), A(inp), A(gamma), A(beta), N, C, 1e-5f);
    expect_close(out, OOMB_F32, 1e-5, "layernorm_forward out");
    expect_close(mean, OOMB_F32, 1e-5, "layernorm_forward mean");
    expect_close(rstd, OOMB_F32, 1e-5, "layernorm_forward rstd");

    struct pair *dout = rand_f32(n, -1, 1);
    struct pair *dinp = pair_new((size_t)n * 4);
    struct pair *dg = rand_f32(C, -1, 1), *db = rand_f32(C, -1, 1); /* accumulate */
    BOTH(layernorm_backward, A(dinp), A(dg), A(db), A(dout), A(inp), A(mean), A(rstd), A(gamma), N,
         C);
    expect_close(dinp, OOMB_F32, 1e-4, "layernorm_backward dinp");
    expect_close(dg, OOMB_F32, 1e-5, "layernorm_backward dgamma");
    expect_close(db, OOMB_F32, 1e-5, "layernorm_backward dbeta");
}

Test(kernels_cuda, layernorm)
{
    layernorm_case(37, 48);
}
Test(kernels_cuda, layernorm_wide)
{
    layernorm_case(9, 1000);
}
Test(kernels_cuda, layernorm_many_rows)
{
    layernorm_case(4099, 33);
}

static void attention_case(int64_t B, int64_t T, int64_t C, int64_t H, int causal)
{
    need_layer_ops();
    const double tol = gemm_tol(1e-4);
    size_t wc = 0, wg = 0;
    OK_BOTH(co->attention_workspace(co->ctx, B, T, C, H, &wc),
            go->attention_workspace(go->ctx, B, T, C, H, &wg));
    struct pair *ws = ws_pair(wc, wg);
    const int64_t nq = B * T * 3 * C, no = B * T * C, np = B * H * T * T;
    struct pair *qkv = rand_f32(nq, -1, 1);
    struct pair *out = pair_new((size_t)no * 4), *probs = pair_new((size_t)np * 4);
    BOTH(attention_forward, A(out), A(probs), A(qkv), B, T, C, H, causal, A(ws), ws->bytes);
    expect_close(out, OOMB_F32, tol,
                 causal ? "attention_forward out (causal)" : "attention_forward out");
    expect_close(probs, OOMB_F32, tol,
                 causal ? "attention_forward probs (causal)" : "attention_forward probs");

    /* the CUDA probabilities: rows sum to 1, masked entries exactly 0 */
    float *hp = malloc((size_t)np * 4);
    cr_assert_not_null(hp);
    cr_assert_eq(go->to_host(go->ctx, hp, probs->g, probs->bytes), OOMB_OK);
    for (int64_t r = 0; r < B * H * T; r++) {
        int64_t i = r % T;
        double s = 0.0;
        for (int64_t j = 0; j < T; j++) {
            float v = hp[r * T + j];
            if (causal && j > i)
                cr_assert(v == 0.0f, "probs row %lld col %lld = %g, masked", (long long)r,
                          (long long)j, (double)v);
            s += v;
        }
        cr_assert(fabs(s - 1.0) < 1e-5, "probs row %lld sums to %.9g", (long long)r, s);
    }
    free(hp);

    struct pair *dout = rand_f32(no, -1, 1);
    struct pair *dqkv = pair_new((size_t)nq * 4);
    BOTH(fill, A(dqkv), nq, NAN); /* every element must be written */
    BOTH(attention_backward, A(dqkv), A(dout), A(qkv), A(probs), B, T, C, H, causal, A(ws),
         ws->bytes);
    expect_close(dqkv, OOMB_F32, tol,
                 causal ? "attention_backward dqkv (causal)" : "attention_backward dqkv");

    /* the CUDA ops with exactly the workspace they asked for */
    int rc =
        go->attention_forward(go->ctx, out->g, probs->g, qkv->g, B, T, C, H, causal, ws->g, wg);
    cr_assert_eq(rc, OOMB_OK, "cuda attention_forward with its own workspace size: %s",
                 go->last_error(go->ctx));
    rc = go->attention_backward(go->ctx, dqkv->g, dout->g, qkv->g, probs->g, B, T, C, H, causal,
                                ws->g, wg);
    cr_assert_eq(rc, OOMB_OK, "cuda attention_backward with its own workspace size: %s",
                 go->last_error(go->ctx));
    expect_close(dqkv, OOMB_F32, tol, "attention_backward dqkv (exact workspace)");
}

Test(kernels_cuda, attention)
{
    attention_case(2, 16, 32, 4, 0);
}
Test(kernels_cuda, attention_causal)
{
    attention_case(2, 16, 32, 4, 1);
}
Test(kernels_cuda, attention_causal_odd)
{
    attention_case(3, 100, 64, 2, 1);
}
Test(kernels_cuda, attention_long)
{
    attention_case(2, 300, 96, 3, 0);
}

Test(kernels_cuda, add)
{
    need_layer_ops();
    const int64_t n = 10007;
    struct pair *a = rand_f32(n, -1, 1), *b = rand_f32(n, -1, 1);
    struct pair *out = pair_new((size_t)n * 4);
    BOTH(add, A(out), A(a), A(b), n);
    expect_same_bytes(out, "add");
    BOTH(add, A(a), A(a), A(b), n); /* in place */
    expect_same_bytes(a, "add in place");
}

static void expect_invalid(int rc, const char *op)
{
    cr_expect_eq(rc, OOMB_ERR_INVALID, "%s: rc %d, expected OOMB_ERR_INVALID", op, rc);
    cr_expect(strstr(go->last_error(go->ctx), op) != NULL, "%s: message '%s' does not name it", op,
              go->last_error(go->ctx));
}

Test(kernels_cuda, layer_ops_reject_bad_arguments)
{
    need_layer_ops();
    void *k = go->ctx;
    struct pair *x = rand_f32(4096, -1, 1);
    float *g = x->g;
    size_t bytes = 0;

    struct oomb_conv2d cv = {.struct_size = sizeof cv,
                             .C = 2,
                             .H = 8,
                             .W = 6,
                             .OC = 3,
                             .K = 3,
                             .stride = 2,
                             .pad = 1,
                             .OH = 4,
                             .OW = 3};
    cr_assert_eq(go->conv2d_workspace(k, &cv, 2, &bytes), OOMB_OK, "%s", go->last_error(k));
    cv.OH = 5; /* does not match the geometry */
    expect_invalid(go->conv2d_workspace(k, &cv, 2, &bytes), "conv2d_workspace");
    expect_invalid(go->conv2d_forward(k, g, g, g, NULL, &cv, 2, g, 16384), "conv2d_forward");
    cv.OH = 4;
    expect_invalid(go->conv2d_forward(k, g, g, g, NULL, &cv, 0, g, 16384), "conv2d_forward");
    expect_invalid(go->conv2d_forward(k, NULL, g, g, NULL, &cv, 2, g, 16384), "conv2d_forward");
    expect_invalid(go->conv2d_backward(k, g, g, g, NULL, g, g, &cv, 2, g, 16384),
                   "conv2d_backward");
    cv.struct_size = 0;
    expect_invalid(go->conv2d_workspace(k, &cv, 2, &bytes), "conv2d_workspace");

    struct oomb_pool2d p = {
        .struct_size = sizeof p, .C = 2, .H = 4, .W = 4, .K = 5, .stride = 1, .OH = 0, .OW = 0};
    expect_invalid(go->maxpool_forward(k, g, g, &p, 2), "maxpool_forward");
    expect_invalid(go->maxpool_backward(k, NULL, g, g, &p, 2), "maxpool_backward");

    expect_invalid(go->batchnorm_forward(k, g, g, g, g, g, g, NULL, g, 4, 3, 2, 1, 0.1f, 1e-5f),
                   "batchnorm_forward");
    expect_invalid(go->batchnorm_forward(k, g, g, g, g, g, g, g, g, 4, 0, 2, 1, 0.1f, 1e-5f),
                   "batchnorm_forward");
    expect_invalid(go->batchnorm_forward(k, g, g, g, NULL, NULL, g, g, g, 4, 3, 2, 0, 0.1f, 1e-5f),
                   "batchnorm_forward"); /* inference without running statistics */
    expect_invalid(go->batchnorm_backward(k, g, g, g, g, g, NULL, g, g, 4, 3, 2),
                   "batchnorm_backward");
    expect_invalid(go->layernorm_forward(k, g, g, g, g, g, g, -1, 8, 1e-5f), "layernorm_forward");
    expect_invalid(go->layernorm_backward(k, g, g, g, NULL, g, g, g, g, 4, 8),
                   "layernorm_backward");

    expect_invalid(go->attention_workspace(k, 2, 16, 30, 4, &bytes), "attention_workspace");
    expect_invalid(go->attention_forward(k, g, g, g, 2, 16, 30, 4, 1, g, 16384),
                   "attention_forward");
    cr_assert_eq(go->attention_workspace(k, 2, 16, 32, 4, &bytes), OOMB_OK, "%s",
                 go->last_error(k));
    cr_expect_gt(bytes, 16);
    expect_invalid(go->attention_forward(k, g, g, g, 2, 16, 32, 4, 1, g, 16), "attention_forward");
    expect_invalid(go->attention_backward(k, g, g, g, g, 2, 16, 32, 4, 1, g, bytes - 4),
                   "attention_backward");
    expect_invalid(go->attention_backward(k, g, g, g, g, 2, 16, 32, 4, 1, NULL, bytes),
                   "attention_backward");
    expect_invalid(go->add(k, g, g, NULL, 16), "add");
    expect_invalid(go->add(k, g, g, g, 0), "add");

    /* nothing ran: the backend is still usable */
    BOTH(scale, A(x), 4096, 2.0f);
    expect_close(x, OOMB_F32, 1e-6, "scale after rejected layer ops");
}

/* ------------------------------------------------------------ backend ---- */

Test(kernels_cuda, extension_tables)
{
    cr_expect_eq(quant_g->struct_size, sizeof *quant_g);
    cr_expect_eq(quant_g->version, OOMB_EXT_QUANT_VERSION);
    cr_expect_eq(quant_g->ctx, go->ctx);
    cr_expect_eq(sparse_g->struct_size, sizeof *sparse_g);
    cr_expect_eq(sparse_g->version, OOMB_EXT_SPARSE_VERSION);
    cr_expect_eq(sparse_g->ctx, go->ctx);
    cr_expect_eq(distill_g->struct_size, sizeof *distill_g);
    cr_expect_eq(distill_g->version, OOMB_EXT_DISTILL_VERSION);
    cr_expect_eq(distill_g->ctx, go->ctx);
    cr_expect_not_null(quant_g->adam8_update);
    cr_expect_not_null(sparse_g->linear_forward_2of4);
    cr_expect_not_null(distill_g->soft_xent_accumulate);
    cr_expect_eq(gpu->get_extension(go->ctx, OOMB_EXT_SPARSE), (const void *)sparse_g);
    cr_expect_null(gpu->get_extension(go->ctx, "oomb.nothing"));
    cr_expect_null(gpu->get_extension(go->ctx, ""));
    cr_expect_null(gpu->get_extension(go->ctx, NULL));
}

Test(kernels_cuda, host_alloc_spaces)
{
    cr_assert_not_null(gpu->host_alloc);
    cr_assert_not_null(gpu->host_free);
    const enum oomb_space spaces[] = {OOMB_SPACE_HOST, OOMB_SPACE_HOST_PINNED};
    for (int si = 0; si < 2; si++) {
        void *z0 = NULL, *z1 = NULL, *p = NULL;
        int rc = gpu->host_alloc(go->ctx, spaces[si], 0, &z0);
        cr_assert_eq(rc, OOMB_OK, "%s", go->last_error(go->ctx));
        cr_assert_eq(gpu->host_alloc(go->ctx, spaces[si], 0, &z1), OOMB_OK);
        cr_expect(z0 && z1 && z0 != z1, "0-byte pointers must be unique and not NULL");
        rc = gpu->host_alloc(go->ctx, spaces[si], (size_t)1 << 20, &p);
        cr_assert_eq(rc, OOMB_OK, "%s", go->last_error(go->ctx));
        memset(p, 0x3c, (size_t)1 << 20);
        gpu->host_free(go->ctx, spaces[si], p);
        gpu->host_free(go->ctx, spaces[si], z1);
        gpu->host_free(go->ctx, spaces[si], z0);
        gpu->host_free(go->ctx, spaces[si], NULL);
    }
    void *p = (void *)1;
    cr_expect_eq(gpu->host_alloc(go->ctx, OOMB_SPACE_DEVICE, 64, &p), OOMB_ERR_INVALID);
    cr_expect_null(p);
    cr_expect(strstr(go->last_error(go->ctx), "host_alloc") != NULL, "message: %s",
              go->last_error(go->ctx));
}

/* Copies between the spaces on the copy stream, ordered with the compute
 * stream both ways, timed between events, events reused. */
Test(kernels_cuda, copy_async_orders_and_times)
{
    const int64_t n = (int64_t)16 << 20; /* 64 MiB of F32 */
    const size_t bytes = (size_t)n * 4;
    float *dev = NULL, *pinned = NULL, *host = NULL;
    cr_assert_eq(gpu->raw_alloc(go->ctx, bytes, (void **)&dev), OOMB_OK);
    cr_assert_eq(gpu->host_alloc(go->ctx, OOMB_SPACE_HOST_PINNED, bytes, (void **)&pinned), OOMB_OK,
                 "%s", go->last_error(go->ctx));
    cr_assert_eq(gpu->host_alloc(go->ctx, OOMB_SPACE_HOST, bytes, (void **)&host), OOMB_OK);

    /* compute -> copy: the copy sees the fill queued before it (no sync) */
    int64_t copy_ns = 0;
    void *ev = NULL;
    cr_assert_eq(go->fill(go->ctx, dev, n, 3.0f), OOMB_OK);
    int rc = gpu->copy_async(go->ctx, pinned, OOMB_SPACE_HOST_PINNED, dev, OOMB_SPACE_DEVICE, bytes,
                             &ev);
    cr_assert_eq(rc, OOMB_OK, "copy_async: %s", go->last_error(go->ctx));
    cr_assert_not_null(ev);
    cr_assert_eq(gpu->ev_sync(go->ctx, ev), OOMB_OK, "%s", go->last_error(go->ctx));
    gpu->ev_free(go->ctx, ev, &copy_ns);
    cr_expect_gt(copy_ns, 0, "a 64 MiB copy takes time");
    cr_expect_eq(pinned[0], 3.0f);
    cr_expect_eq(pinned[n - 1], 3.0f);

    /* copy -> compute: a kernel queued after ev_wait sees the copied data */
    for (int64_t i = 0; i < n; i++)
        pinned[i] = (float)(i % 1000);
    rc = gpu->copy_async(go->ctx, dev, OOMB_SPACE_DEVICE, pinned, OOMB_SPACE_HOST_PINNED, bytes,
                         &ev);
    cr_assert_eq(rc, OOMB_OK, "copy_async: %s", go->last_error(go->ctx));
    cr_assert_eq(gpu->ev_wait(go->ctx, ev), OOMB_OK, "%s", go->last_error(go->ctx));
    cr_assert_eq(go->scale(go->ctx, dev, n, 2.0f), OOMB_OK);
    int64_t before = copy_ns;
    gpu->ev_free(go->ctx, ev, &copy_ns);
    cr_expect_gt(copy_ns, before);
    cr_assert_eq(go->to_host(go->ctx, host, dev, bytes), OOMB_OK);
    int64_t bad = -1;
    for (int64_t i = 0; i < n && bad < 0; i++)
        if (host[i] != 2.0f * (float)(i % 1000))
            bad = i;
    cr_expect_eq(bad, -1, "first wrong element %lld", (long long)bad);

    /* pageable memory, and events from the free list */
    memset(host, 0, bytes);
    for (int i = 0; i < 50; i++) {
        rc = gpu->copy_async(go->ctx, host, OOMB_SPACE_HOST, dev, OOMB_SPACE_DEVICE, 4096, &ev);
        cr_assert_eq(rc, OOMB_OK, "copy %d: %s", i, go->last_error(go->ctx));
        cr_assert_eq(gpu->ev_sync(go->ctx, ev), OOMB_OK);
        gpu->ev_free(go->ctx, ev, i % 2 ? &copy_ns : NULL);
    }
    cr_expect_eq(host[1023], 2.0f * 1023.0f);
    rc = gpu->copy_async(go->ctx, NULL, OOMB_SPACE_HOST, NULL, OOMB_SPACE_DEVICE, 0, &ev);
    cr_assert_eq(rc, OOMB_OK, "empty copy: %s", go->last_error(go->ctx));
    gpu->ev_free(go->ctx, ev, &copy_ns);
    gpu->ev_free(go->ctx, NULL, &copy_ns);

    /* bad arguments */
    cr_expect_eq(gpu->copy_async(go->ctx, host, OOMB_SPACE_HOST, dev, OOMB_SPACE_DEVICE, 4, NULL),
                 OOMB_ERR_INVALID);
    cr_expect_eq(
        gpu->copy_async(go->ctx, host, (enum oomb_space)99, dev, OOMB_SPACE_DEVICE, 4, &ev),
        OOMB_ERR_INVALID);
    cr_expect_eq(gpu->copy_async(go->ctx, NULL, OOMB_SPACE_HOST, dev, OOMB_SPACE_DEVICE, 4, &ev),
                 OOMB_ERR_INVALID);

    gpu->host_free(go->ctx, OOMB_SPACE_HOST, host);
    gpu->host_free(go->ctx, OOMB_SPACE_HOST_PINNED, pinned);
    gpu->raw_free(go->ctx, dev);
}

Test(kernels_cuda, errors_are_reported)
{
    struct pair *x = rand_f32(16, -1, 1);
    int rc = go->relu_forward(go->ctx, OOMB_I32, x->g, x->g, 16);
    cr_expect_eq(rc, OOMB_ERR_INVALID);
    cr_expect(strstr(go->last_error(go->ctx), "relu_forward") != NULL, "message: %s",
              go->last_error(go->ctx));
    rc = sparse_g->compress_2of4(sparse_g->ctx, x->g, x->g, x->g, 1, 12);
    cr_expect_eq(rc, OOMB_ERR_INVALID);
    void *p = NULL;
    rc = gpu->raw_alloc(go->ctx, (size_t)1 << 50, &p); /* 1 PiB */
    cr_expect_eq(rc, OOMB_ERR_OOM, "raw_alloc of 1 PiB: %d (%s)", rc, go->last_error(go->ctx));
    cr_expect_null(p);
    /* the backend is still usable afterwards */
    BOTH(scale, A(x), 16, 2.0f);
    expect_close(x, OOMB_F32, 1e-6, "scale after errors");
}

struct hook_state {
    struct oomb_kernel_backend *b;
    int allocs, frees;
    size_t bytes;
    enum oomb_tag tag;
};

static int hook_alloc(void *user, size_t bytes, enum oomb_tag tag, const char *label, void **out)
{
    struct hook_state *h = user;
    h->allocs++;
    h->bytes += bytes;
    h->tag = tag;
    return h->b->raw_alloc(h->b->ops.ctx, bytes, out);
}

static void hook_free(void *user, void *ptr)
{
    struct hook_state *h = user;
    h->frees++;
    h->b->raw_free(h->b->ops.ctx, ptr);
}

Test(kernels_cuda, workspace_timer_device_mem)
{
    static struct hook_state hs;
    static struct oomb_backend_alloc_hook hook;
    memset(&hs, 0, sizeof hs);
    hs.b = gpu;
    hook.user = &hs;
    hook.alloc = hook_alloc;
    hook.free = hook_free;
    cr_assert_not_null(gpu->set_alloc_hook);
    int rc = gpu->set_alloc_hook(go->ctx, &hook);
    cr_assert_eq(rc, OOMB_OK, "set_alloc_hook: %s", go->last_error(go->ctx));
    cr_expect_eq(hs.allocs, 1);
    cr_expect_eq(hs.tag, OOMB_TAG_WORKSPACE);
    cr_expect_geq(hs.bytes, (size_t)1 << 20);

    int m0 = -1, m1 = -1;
    cr_assert_eq(gpu->timer_mark(go->ctx, &m0), OOMB_OK);
    linear_case(OOMB_F32, 128, 256, 128, 1); /* GEMMs now use the hooked workspace */
    cr_assert_eq(gpu->timer_mark(go->ctx, &m1), OOMB_OK);
    cr_assert_eq(gpu->sync(go->ctx), OOMB_OK);
    int64_t t0 = 0, t1 = 0;
    cr_assert_eq(gpu->timer_resolve(go->ctx, m0, &t0), OOMB_OK, "%s", go->last_error(go->ctx));
    cr_assert_eq(gpu->timer_resolve(go->ctx, m1, &t1), OOMB_OK, "%s", go->last_error(go->ctx));
    cr_expect_gt(t0, 0);
    cr_expect_geq(t1, t0);
    gpu->timer_reset(go->ctx);
    cr_expect_neq(gpu->timer_resolve(go->ctx, m1, &t1), OOMB_OK, "marks survive timer_reset");

    struct oomb_device_mem dm;
    memset(&dm, 0, sizeof dm);
    cr_assert_eq(gpu->device_mem(go->ctx, &dm), OOMB_OK);
    cr_expect_eq(dm.valid, 1);
    cr_expect_geq(dm.peak_bytes, hs.bytes, "device peak %llu below the workspace %zu",
                  (unsigned long long)dm.peak_bytes, hs.bytes);
    const char *alloc = getenv("OOMB_CUDA_ALLOC");
    cr_expect_str_eq(dm.method, alloc && strcmp(alloc, "malloc") == 0
                                    ? "cudaMemGetInfo delta"
                                    : "CUDA memory pool used high-water mark");
    cr_expect_str_eq(gpu->info.backend, "cuda");
    cr_expect(strstr(gpu->info.driver, "CUDA driver") != NULL);
    cr_expect(strstr(gpu->info.runtime, "cuDNN") != NULL);
    cr_expect_gt(gpu->info.total_bytes, 0);

    /* destroy hands the workspace back through the hook */
    for (int i = 0; i < n_pairs; i++) {
        cpu->raw_free(co->ctx, pairs[i].c);
        gpu->raw_free(go->ctx, pairs[i].g);
    }
    n_pairs = 0;
    gpu->destroy(gpu);
    gpu = NULL;
    cr_expect_eq(hs.frees, 1);
}

/* n above what one launch of the capped grid covers: the grid-stride loops. */
Test(kernels_cuda, grid_stride_large_n)
{
    const int64_t n = ((int64_t)1 << 28) + 12345; /* ~1 GiB of F32 */
    void *x = NULL;
    int rc = gpu->raw_alloc(go->ctx, (size_t)n * 4, &x);
    if (rc == OOMB_ERR_OOM)
        cr_skip_test("not enough device memory for %lld floats", (long long)n);
    cr_assert_eq(rc, OOMB_OK);
    cr_assert_eq(go->fill(go->ctx, x, n, 1.0f), OOMB_OK);
    cr_assert_eq(go->scale(go->ctx, x, n, 0.5f), OOMB_OK);
    double s = 0;
    cr_assert_eq(go->sum(go->ctx, x, n, &s), OOMB_OK, "%s", go->last_error(go->ctx));
    cr_expect_eq(s, 0.5 * (double)n, "sum %.17g, expected %.17g", s, 0.5 * (double)n);
    int64_t c = -1;
    cr_assert_eq(sparse_g->count_abs_below(sparse_g->ctx, x, n, 1.0f, &c), OOMB_OK);
    cr_expect_eq(c, n);
    gpu->raw_free(go->ctx, x);
}

/* ------------------------------------------------------------ main ------- */

/* Asks a forked child whether a CUDA device is usable, so that this process
 * never initialises CUDA itself. Returns the device count, the reason in msg. */
static int probe_gpu(char *msg, size_t msg_len)
{
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(msg, msg_len, "cannot probe for a GPU: pipe failed");
        return 0;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        snprintf(msg, msg_len, "cannot probe for a GPU: fork failed");
        return 0;
    }
    if (pid == 0) {
        char buf[512];
        close(fds[0]);
        int n = oomb_cuda_device_count(buf, sizeof buf);
        char line[600];
        int len = snprintf(line, sizeof line, "%d %s", n, buf);
        ssize_t w =
            write(fds[1], line, (size_t)(len < (int)sizeof line ? len : (int)sizeof line - 1));
        (void)w;
        _exit(0);
    }
    close(fds[1]);
    char line[600];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof line - 1 && (r = read(fds[0], line + got, sizeof line - 1 - got)) > 0)
        got += (size_t)r;
    line[got] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    int n = 0, off = 0;
    if (got == 0 || sscanf(line, "%d %n", &n, &off) < 1) {
        snprintf(msg, msg_len, "the GPU probe died (status %d)", status);
        return 0;
    }
    snprintf(msg, msg_len, "%s", line + off);
    return n;
}

int main(int argc, char *argv[])
{
    char reason[600];
    if (probe_gpu(reason, sizeof reason) <= 0) {
        printf("SKIPPED: %s\n", reason);
        fflush(stdout);
        return 77;
    }
    struct criterion_test_set *tests = criterion_initialize();
    int result = 0;
    if (criterion_handle_args(argc, argv, true))
        result = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return result;
}
