/*
 * Tests of the CPU kernel backend (kernels/cpu). Every op is checked against a
 * plain loop written here (the naive references live only in this file), every
 * backward op against central finite differences of its forward op, and every
 * invalid-argument path for OOMB_ERR_INVALID with a message.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu/isa.h"     /* white-box: both vector instruction paths */
#include "cpu/ops_cpu.h" /* white-box: the message buffer of the context */
#include "cpu/vec_cpu.h" /* white-box: the vector kernels one by one */

#include "cpu_fixture.h"

/* The backend's extension tables (get_extension), fetched for every test:
 * the int8, sparse and distillation kernels are only reachable there. */
static const struct oomb_ext_quant *quant;
static const struct oomb_ext_sparse *sparse;
static const struct oomb_ext_distill *distill;

/* cpu_setup, then the three extension tables. */
static void kernels_setup(void)
{
    cpu_setup();
    cr_assert_not_null(be->get_extension, "the cpu backend has no get_extension");
    quant = be->get_extension(K, OOMB_EXT_QUANT);
    sparse = be->get_extension(K, OOMB_EXT_SPARSE);
    distill = be->get_extension(K, OOMB_EXT_DISTILL);
    cr_assert_not_null(quant, "no %s table", OOMB_EXT_QUANT);
    cr_assert_not_null(sparse, "no %s table", OOMB_EXT_SPARSE);
    cr_assert_not_null(distill, "no %s table", OOMB_EXT_DISTILL);
}

TestSuite(kernels_cpu, .init = kernels_setup, .fini = cpu_teardown);

/* ------------------------------------------------------------ checks ----- */

/* Norm-wise relative error: max |got - ref| / max |ref|.
 *
 * Tolerances against the double references below follow from the float
 * rounding of the op under test (u = 2^-24; the double reference's own error
 * is negligible). Each is commented with its case and the worst value measured
 * over OPENBLAS_CORETYPE Haswell, Zen, SkylakeX, Sandybridge and the default,
 * with 1, 2 and the default number of threads (docs/numerics.md):
 * - Element-wise ops (scale, axpy, activations, optimizer updates): a few
 *   roundings per element, each <= u relative: |err| <= c u |ref| with c the
 *   number of operations (libm's expf/tanhf add <= 2 ulp).
 * - Sums of n products (GEMM, conv, sparse and int8 dequantised GEMMs, in any
 *   order the library picks): |err| <= n u sum |a_i b_i| in the worst case.
 *   For data uniform on [-1, 1] that is about n u sqrt(n) / 4.8 of max |ref|
 *   (sum |a b| ~ n/4; max |ref| over a few thousand outputs ~ 1.2 sqrt(n)),
 *   2.7e-5 for n = 150. Rounding errors behave as independent zero-mean
 *   variables (Higham and Mary, 2019): the error of an element has standard
 *   deviation u sqrt(sum_k s_k^2 / 3) over the partial sums s_k, about
 *   0.14 n u, so the largest over the outputs (~4 sigma) relative to max |ref|
 *   is about 0.45 sqrt(n) u: 3.3e-7 for n = 150. Limit 1e-5: 30x over that
 *   estimate and still 3x under the worst case; an indexing or transposition
 *   bug is O(1). Measured at most 5.3e-7 (n <= 150). */
static double rel_err(const float *got, const double *ref, int64_t n)
{
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)got[i] - ref[i]));
        den = fmax(den, fabs(ref[i]));
    }
    return num / (den > 0.0 ? den : 1e-300);
}

static double rel_err_ff(const float *got, const float *ref, int64_t n)
{
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)got[i] - (double)ref[i]));
        den = fmax(den, fabs((double)ref[i]));
    }
    return num / (den > 0.0 ? den : 1e-300);
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

/* ------------------------------------------------------------ F16 reference */

static double half_value(uint16_t h)
{
    int sign = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v;
    if (e == 0)
        v = ldexp(m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexp(1024 + m, e - 25);
    return sign ? -v : v;
}

/* Nearest half by search, ties to the even encoding. x must not be NaN. */
static uint16_t ref_f2h(float x)
{
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    double a = fabs((double)x);
    if (a >= 65520.0)
        return sign | 0x7c00;
    int lo = 0, hi = 0x7bff; /* largest h with value <= a */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (half_value((uint16_t)mid) <= a)
            lo = mid;
        else
            hi = mid - 1;
    }
    double v0 = half_value((uint16_t)lo);
    double v1 = lo == 0x7bff ? 65536.0 : half_value((uint16_t)(lo + 1));
    double d0 = a - v0, d1 = v1 - a;
    int h = d0 < d1 ? lo : d1 < d0 ? lo + 1 : (lo & 1 ? lo + 1 : lo);
    return (uint16_t)(sign | h);
}

static uint16_t f2h_op(float x)
{
    uint16_t h;
    EXPECT_OK(ops->cast(K, &h, OOMB_F16, &x, OOMB_F32, 1));
    return h;
}

static float h2f_op(uint16_t h)
{
    float x;
    EXPECT_OK(ops->cast(K, &x, OOMB_F32, &h, OOMB_F16, 1));
    return x;
}

/* F32 array rounded through F16 (so that F16 and F32 paths see equal inputs). */
static uint16_t *to_half(float *x, int64_t n)
{
    uint16_t *h = talloc((size_t)n * sizeof *h);
    EXPECT_OK(ops->cast(K, h, OOMB_F16, x, OOMB_F32, n));
    EXPECT_OK(ops->cast(K, x, OOMB_F32, h, OOMB_F16, n));
    return h;
}

static void from_half(float *x, const uint16_t *h, int64_t n)
{
    EXPECT_OK(ops->cast(K, x, OOMB_F32, h, OOMB_F16, n));
}

/* ------------------------------------------------------------ naive refs - */

static void ref_linear(double *out, const float *inp, const float *w, const float *bias, int64_t B,
                       int64_t C, int64_t OC)
{
    for (int64_t b = 0; b < B; b++)
        for (int64_t o = 0; o < OC; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int64_t c = 0; c < C; c++)
                s += (double)inp[b * C + c] * w[o * C + c];
            out[b * OC + o] = s;
        }
}

static double ref_gelu(double x)
{
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

static double ref_gelu_grad(double x)
{
    double s = sqrt(2.0 / M_PI), u = s * (x + 0.044715 * x * x * x), t = tanh(u);
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * s * (1.0 + 3.0 * 0.044715 * x * x);
}

/* ============================================================ backend ==== */

Test(kernels_cpu, backend_describes_itself)
{
    cr_expect_str_eq(ops->backend_name, "cpu");
    cr_expect_eq(ops->struct_size, sizeof(struct oomb_ops));
    cr_expect_str_eq(be->info.backend, "cpu");
    cr_expect_not_null(be->info.name);
    cr_expect(strlen(be->info.name) > 0);
    cr_expect(strncmp(be->info.runtime, "OpenBLAS", 8) == 0, "runtime: %s", be->info.runtime);
    cr_expect_str_eq(be->info.driver, "");
    cr_expect_gt(be->info.total_bytes, 0);
    cr_expect_null(be->set_alloc_hook);
    struct oomb_device_mem mem = {.valid = 1};
    cr_expect_eq(be->device_mem(K, &mem), OOMB_OK);
    cr_expect_eq(mem.valid, 0);
    cr_expect_eq(be->sync(K), OOMB_OK);
    /* every op is filled in */
    const char *p = (const char *)&ops->last_error;
    const char *end = (const char *)ops + sizeof *ops;
    for (; p < end; p += sizeof(void (*)(void))) {
        void (*fn)(void);
        memcpy(&fn, p, sizeof fn);
        cr_expect_not_null(fn, "op at offset %td is NULL", p - (const char *)ops);
    }
}

Test(kernels_cpu, create_rejects_null_out)
{
    char msg[128] = "";
    cr_expect_eq(oomb_cpu_backend_create(NULL, msg, sizeof msg), OOMB_ERR_INVALID);
    cr_expect(msg[0] != '\0');
}

Test(kernels_cpu, raw_alloc_is_64_byte_aligned)
{
    size_t sizes[] = {0, 1, 63, 64, 1000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = NULL;
        cr_assert_eq(be->raw_alloc(K, sizes[i], &p), OOMB_OK);
        cr_assert_not_null(p);
        cr_expect_eq((uintptr_t)p % 64, 0, "size %zu", sizes[i]);
        memset(p, 0xab, sizes[i]);
        be->raw_free(K, p);
    }
    be->raw_free(K, NULL);
}

#if defined(__SANITIZE_ADDRESS__)
#define SKIP_HUGE_ALLOC 1 /* ASan aborts on impossible sizes instead of failing */
#else
#define SKIP_HUGE_ALLOC 0
#endif

Test(kernels_cpu, raw_alloc_reports_oom, .disabled = SKIP_HUGE_ALLOC)
{
    void *p = (void *)1;
    cr_expect_eq(be->raw_alloc(K, SIZE_MAX - 4096, &p), OOMB_ERR_OOM);
    cr_expect_null(p);
}

/* Every function pointer of an extension table after its ctx is set. */
static void expect_table_filled(const void *table, size_t ctx_offset, size_t size, const char *name)
{
    const char *p = (const char *)table + ctx_offset + sizeof(void *);
    const char *end = (const char *)table + size;
    for (; p < end; p += sizeof(void (*)(void))) {
        void (*fn)(void);
        memcpy(&fn, p, sizeof fn);
        cr_expect_not_null(fn, "%s: op at offset %td is NULL", name, p - (const char *)table);
    }
}

Test(kernels_cpu, extension_tables_are_complete)
{
    cr_expect_eq(quant->struct_size, sizeof *quant);
    cr_expect_eq(quant->version, OOMB_EXT_QUANT_VERSION);
    cr_expect_eq(quant->ctx, K);
    expect_table_filled(quant, offsetof(struct oomb_ext_quant, ctx), sizeof *quant, OOMB_EXT_QUANT);
    cr_expect_eq(sparse->struct_size, sizeof *sparse);
    cr_expect_eq(sparse->version, OOMB_EXT_SPARSE_VERSION);
    cr_expect_eq(sparse->ctx, K);
    expect_table_filled(sparse, offsetof(struct oomb_ext_sparse, ctx), sizeof *sparse,
                        OOMB_EXT_SPARSE);
    cr_expect_eq(distill->struct_size, sizeof *distill);
    cr_expect_eq(distill->version, OOMB_EXT_DISTILL_VERSION);
    cr_expect_eq(distill->ctx, K);
    expect_table_filled(distill, offsetof(struct oomb_ext_distill, ctx), sizeof *distill,
                        OOMB_EXT_DISTILL);
    /* the same table every time, valid until destroy */
    cr_expect_eq(be->get_extension(K, OOMB_EXT_QUANT), (const void *)quant);
    cr_expect_eq(be->get_extension(K, OOMB_EXT_SPARSE), (const void *)sparse);
    cr_expect_eq(be->get_extension(K, OOMB_EXT_DISTILL), (const void *)distill);
}

Test(kernels_cpu, unknown_extension_is_null)
{
    const char *names[] = {"",           "oomb",         "oomb.quan", "oomb.quant2",
                           "OOMB.QUANT", "oomb.sparse ", "oomb.fp8"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        cr_expect_null(be->get_extension(K, names[i]), "name '%s'", names[i]);
    cr_expect_null(be->get_extension(K, NULL));
    cr_expect_null(be->get_extension(NULL, OOMB_EXT_QUANT));
}

Test(kernels_cpu, host_alloc_every_space)
{
    cr_assert_not_null(be->host_alloc);
    cr_assert_not_null(be->host_free);
    const enum oomb_space spaces[] = {OOMB_SPACE_DEVICE, OOMB_SPACE_HOST, OOMB_SPACE_HOST_PINNED};
    size_t sizes[] = {0, 1, 1000, 1 << 20};
    for (size_t si = 0; si < sizeof spaces / sizeof spaces[0]; si++) {
        void *zero[2] = {NULL, NULL};
        for (int z = 0; z < 2; z++) {
            cr_assert_eq(be->host_alloc(K, spaces[si], 0, &zero[z]), OOMB_OK);
            cr_assert_not_null(zero[z]);
        }
        cr_expect_neq(zero[0], zero[1], "0-byte pointers must be unique");
        for (int z = 0; z < 2; z++)
            be->host_free(K, spaces[si], zero[z]);
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            void *p = NULL;
            cr_assert_eq(be->host_alloc(K, spaces[si], sizes[i], &p), OOMB_OK);
            cr_assert_not_null(p);
            memset(p, 0xcd, sizes[i]);
            be->host_free(K, spaces[si], p);
        }
        be->host_free(K, spaces[si], NULL);
    }
}

Test(kernels_cpu, host_alloc_reports_failure_as_backend_error, .disabled = SKIP_HUGE_ALLOC)
{
    void *p = (void *)1;
    cr_expect_eq(be->host_alloc(K, OOMB_SPACE_HOST_PINNED, SIZE_MAX - 4096, &p), OOMB_ERR_BACKEND);
    cr_expect_null(p);
    cr_expect(strstr(ops->last_error(K), "host_alloc") != NULL, "message: %s", ops->last_error(K));
}

Test(kernels_cpu, copy_async_copies_between_spaces_and_times_the_copy)
{
    cr_assert_not_null(be->copy_async);
    cr_assert_not_null(be->ev_wait);
    cr_assert_not_null(be->ev_sync);
    cr_assert_not_null(be->ev_free);
    const size_t bytes = (size_t)8 << 20;
    void *dev = NULL, *host = NULL, *pinned = NULL;
    cr_assert_eq(be->raw_alloc(K, bytes, &dev), OOMB_OK);
    cr_assert_eq(be->host_alloc(K, OOMB_SPACE_HOST, bytes, &host), OOMB_OK);
    cr_assert_eq(be->host_alloc(K, OOMB_SPACE_HOST_PINNED, bytes, &pinned), OOMB_OK);
    memset(dev, 0x5a, bytes);
    memset(host, 0, bytes);
    memset(pinned, 0, bytes);

    /* device -> pinned -> pageable, then a half back to the device */
    int64_t copy_ns = 7;
    void *ev = NULL;
    EXPECT_OK(
        be->copy_async(K, pinned, OOMB_SPACE_HOST_PINNED, dev, OOMB_SPACE_DEVICE, bytes, &ev));
    cr_assert_not_null(ev);
    EXPECT_OK(be->ev_wait(K, ev));
    EXPECT_OK(be->ev_sync(K, ev));
    be->ev_free(K, ev, &copy_ns);
    cr_expect_gt(copy_ns, 7, "an 8 MiB memcpy takes time: %lld ns", (long long)copy_ns);
    cr_expect_eq(memcmp(pinned, dev, bytes), 0);

    int64_t before = copy_ns;
    EXPECT_OK(be->copy_async(K, host, OOMB_SPACE_HOST, pinned, OOMB_SPACE_HOST_PINNED, bytes, &ev));
    EXPECT_OK(be->ev_sync(K, ev));
    be->ev_free(K, ev, &copy_ns);
    cr_expect_geq(copy_ns, before);
    cr_expect_eq(memcmp(host, dev, bytes), 0);

    memset(host, 0x11, bytes / 2);
    EXPECT_OK(be->copy_async(K, dev, OOMB_SPACE_DEVICE, host, OOMB_SPACE_HOST, bytes / 2, &ev));
    be->ev_free(K, ev, NULL); /* no time wanted */
    cr_expect_eq(((unsigned char *)dev)[0], 0x11);
    cr_expect_eq(((unsigned char *)dev)[bytes / 2 - 1], 0x11);
    cr_expect_eq(((unsigned char *)dev)[bytes / 2], 0x5a);

    /* an empty copy still gives an event */
    EXPECT_OK(be->copy_async(K, NULL, OOMB_SPACE_HOST, NULL, OOMB_SPACE_DEVICE, 0, &ev));
    cr_assert_not_null(ev);
    be->ev_free(K, ev, &copy_ns);
    be->ev_free(K, NULL, &copy_ns);

    be->host_free(K, OOMB_SPACE_HOST_PINNED, pinned);
    be->host_free(K, OOMB_SPACE_HOST, host);
    be->raw_free(K, dev);
}

Test(kernels_cpu, copy_async_rejects_bad_arguments)
{
    char a[16] = "", b[16] = "";
    void *ev = (void *)1;
    cr_expect_eq(be->copy_async(K, a, OOMB_SPACE_HOST, b, OOMB_SPACE_HOST, sizeof a, NULL),
                 OOMB_ERR_INVALID);
    EXPECT_INVALID(
        be->copy_async(K, a, (enum oomb_space)OOMB_SPACE_COUNT, b, OOMB_SPACE_HOST, sizeof a, &ev));
    cr_expect_null(ev);
    EXPECT_INVALID(be->copy_async(K, a, OOMB_SPACE_HOST, b, (enum oomb_space)99, sizeof a, &ev));
    EXPECT_INVALID(be->copy_async(K, NULL, OOMB_SPACE_HOST, b, OOMB_SPACE_HOST, sizeof a, &ev));
    EXPECT_INVALID(be->copy_async(K, a, OOMB_SPACE_HOST, NULL, OOMB_SPACE_HOST, sizeof a, &ev));
    cr_expect_null(ev);
}

Test(kernels_cpu, timer_marks_are_monotonic_and_grow)
{
    int ids[200];
    for (int i = 0; i < 200; i++) {
        cr_assert_eq(be->timer_mark(K, &ids[i]), OOMB_OK);
        cr_expect_eq(ids[i], i);
    }
    int64_t prev = 0;
    for (int i = 0; i < 200; i++) {
        int64_t ns;
        cr_assert_eq(be->timer_resolve(K, ids[i], &ns), OOMB_OK);
        cr_expect_geq(ns, prev);
        prev = ns;
    }
    int64_t ns;
    cr_expect_eq(be->timer_resolve(K, 200, &ns), OOMB_ERR_INVALID);
    cr_expect_eq(be->timer_resolve(K, -1, &ns), OOMB_ERR_INVALID);
    be->timer_reset(K);
    cr_expect_eq(be->timer_resolve(K, 0, &ns), OOMB_ERR_INVALID);
    int id;
    cr_expect_eq(be->timer_mark(K, &id), OOMB_OK);
    cr_expect_eq(id, 0);
}

/* ============================================================ memory ===== */

Test(kernels_cpu, memory_movement)
{
    seed(1);
    int64_t n = 1000;
    float *a = frand_new(n, -1, 1), *b = FALLOC(n), *c = FALLOC(n);
    EXPECT_OK(ops->to_device(K, b, a, (size_t)n * 4));
    EXPECT_OK(ops->copy(K, c, b, (size_t)n * 4));
    float *h = FALLOC(n);
    EXPECT_OK(ops->to_host(K, h, c, (size_t)n * 4));
    cr_expect_eq(memcmp(a, h, (size_t)n * 4), 0);
    EXPECT_OK(ops->fill(K, c, n, 2.5f));
    for (int64_t i = 0; i < n; i++)
        cr_assert_eq(c[i], 2.5f);
    EXPECT_OK(ops->zero(K, c, 10 * sizeof(float)));
    cr_expect_eq(c[9], 0.0f);
    cr_expect_eq(c[10], 2.5f);
    EXPECT_OK(ops->copy(K, NULL, NULL, 0));
}

/* ============================================================ F16 ======== */

Test(kernels_cpu, f16_special_values)
{
    struct {
        float f;
        uint16_t h;
    } cases[] = {
        {0.0f, 0x0000},
        {-0.0f, 0x8000},
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {65504.0f, 0x7bff},  /* largest finite */
        {65519.99f, 0x7bff}, /* below the rounding boundary */
        {65520.0f, 0x7c00},  /* tie at the boundary goes to inf */
        {1e10f, 0x7c00},
        {-1e10f, 0xfc00},
        {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},
        {0x1p-14f, 0x0400},        /* smallest normal */
        {0x1p-24f, 0x0001},        /* smallest subnormal */
        {0x1p-25f, 0x0000},        /* tie between 0 and 2^-24: even is 0 */
        {0x1.000002p-25f, 0x0001}, /* just above the tie */
        {0x1.8p-24f, 0x0002},      /* tie between 1 and 2 units: even is 2 */
        {0x1.4p-24f, 0x0001},
        {0x1.ffcp-15f, 0x0400},               /* subnormal tie rounding up into the normals */
        {1.0f + 0x1p-11f, 0x3c00},            /* tie: to even mantissa 0 */
        {1.0f + 0x3p-11f, 0x3c02},            /* tie: to even mantissa 2 */
        {1.0f + 0x1p-11f + 0x1p-23f, 0x3c01}, /* just above the tie */
        {1e-30f, 0x0000},
        {-1e-30f, 0x8000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_expect_eq(f2h_op(cases[i].f), cases[i].h, "f2h(%a) = 0x%04x, expected 0x%04x",
                     (double)cases[i].f, f2h_op(cases[i].f), cases[i].h);

    uint16_t nan_h = f2h_op(NAN);
    cr_expect((nan_h & 0x7c00) == 0x7c00 && (nan_h & 0x3ff) != 0, "NaN -> 0x%04x", nan_h);
    cr_expect(isnan(h2f_op(0x7e00)));
    cr_expect(isnan(h2f_op(0xfd01)));
    cr_expect_eq(h2f_op(0x7c00), INFINITY);
    cr_expect_eq(h2f_op(0xfc00), -INFINITY);
    cr_expect_eq(h2f_op(0x0001), 0x1p-24f);
    cr_expect_eq(h2f_op(0x03ff), 0x3ffp-24f);
    cr_expect(signbit(h2f_op(0x8000)) && h2f_op(0x8000) == 0.0f);
}

Test(kernels_cpu, f16_round_trip_of_every_half)
{
    int64_t n = 65536;
    uint16_t *h = talloc((size_t)n * 2), *back = talloc((size_t)n * 2);
    float *f = FALLOC(n);
    for (int64_t i = 0; i < n; i++)
        h[i] = (uint16_t)i;
    EXPECT_OK(ops->cast(K, f, OOMB_F32, h, OOMB_F16, n));
    EXPECT_OK(ops->cast(K, back, OOMB_F16, f, OOMB_F32, n));
    for (int64_t i = 0; i < n; i++) {
        double v = half_value(h[i]);
        if (isnan(v)) {
            cr_assert(isnan(f[i]), "0x%04x", (unsigned)i);
            cr_assert((back[i] & 0x7c00) == 0x7c00 && (back[i] & 0x3ff), "0x%04x", (unsigned)i);
            cr_assert_eq(back[i] & 0x8000, h[i] & 0x8000);
        } else {
            cr_assert_eq((double)f[i], v, "0x%04x -> %a, expected %a", (unsigned)i, (double)f[i],
                         v);
            cr_assert(!!signbit(f[i]) == !!signbit(v));
            cr_assert_eq(back[i], h[i], "0x%04x -> 0x%04x", (unsigned)i, back[i]);
        }
    }
}

static void check_f2h_batch(const float *x, int64_t n)
{
    uint16_t out[4096];
    cr_assert_leq(n, 4096);
    EXPECT_OK(ops->cast(K, out, OOMB_F16, x, OOMB_F32, n));
    for (int64_t i = 0; i < n; i++) {
        if (isnan(x[i])) {
            cr_assert((out[i] & 0x7c00) == 0x7c00 && (out[i] & 0x3ff), "NaN %a", (double)x[i]);
            continue;
        }
        uint16_t want = ref_f2h(x[i]);
        cr_assert_eq(out[i], want, "f2h(%a) = 0x%04x, expected 0x%04x", (double)x[i], out[i], want);
    }
}

Test(kernels_cpu, f16_dense_sweep_against_nearest_search)
{
    float x[4096];
    int64_t m = 0;
    /* a stride through all float bit patterns */
    for (uint64_t bits = 0; bits < (1ull << 32); bits += 4093) {
        uint32_t u = (uint32_t)bits;
        memcpy(&x[m++], &u, 4);
        if (m == 4096) {
            check_f2h_batch(x, m);
            m = 0;
        }
    }
    /* every finite half, the exact midpoints to its successor and one ulp either side */
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double v0 = half_value((uint16_t)h);
        double v1 = h == 0x7bff ? 65536.0 : half_value((uint16_t)(h + 1));
        float mid = (float)((v0 + v1) / 2); /* exact in FP32 */
        float cand[5] = {(float)v0, mid, nextafterf(mid, 0.0f), nextafterf(mid, INFINITY), -mid};
        for (int j = 0; j < 5; j++) {
            x[m++] = cand[j];
            if (m == 4096) {
                check_f2h_batch(x, m);
                m = 0;
            }
        }
    }
    check_f2h_batch(x, m);
}

Test(kernels_cpu, cast_round_trip_error_is_half_ulp)
{
    seed(2);
    int64_t n = 5000;
    float *x = frand_new(n, -100, 100), *y = FALLOC(n), *same = FALLOC(n);
    uint16_t *h = talloc((size_t)n * 2);
    EXPECT_OK(ops->cast(K, h, OOMB_F16, x, OOMB_F32, n));
    EXPECT_OK(ops->cast(K, y, OOMB_F32, h, OOMB_F16, n));
    for (int64_t i = 0; i < n; i++)
        cr_assert_leq(fabsf(y[i] - x[i]), fabsf(x[i]) * 0x1p-11f + 0x1p-25f, "%g -> %g",
                      (double)x[i], (double)y[i]);
    EXPECT_OK(ops->cast(K, same, OOMB_F32, x, OOMB_F32, n));
    cr_expect_eq(memcmp(same, x, (size_t)n * 4), 0);
}

/* ============================================================ linear ===== */

static void check_linear_forward_f32(int64_t B, int64_t C, int64_t OC, int with_bias)
{
    float *inp = frand_new(B * C, -1, 1), *w = frand_new(OC * C, -1, 1);
    float *bias = with_bias ? frand_new(OC, -1, 1) : NULL;
    float *out = frand_new(B * OC, -9, 9); /* garbage: must be overwritten */
    double *ref = DALLOC(B * OC);
    EXPECT_OK(ops->linear_forward(K, OOMB_F32, out, inp, w, bias, B, C, OC));
    ref_linear(ref, inp, w, bias, B, C, OC);
    /* sums of n = C + 1 <= 151 terms (rel_err above): estimate 3.3e-7, measured 4.1e-7 */
    cr_expect_lt(rel_err(out, ref, B * OC), 1e-5, "B=%ld C=%ld OC=%ld err %g", (long)B, (long)C,
                 (long)OC, rel_err(out, ref, B * OC));
}

Test(kernels_cpu, linear_forward_f32_matches_naive)
{
    seed(3);
    check_linear_forward_f32(7, 33, 19, 1);
    check_linear_forward_f32(7, 33, 19, 0);
    check_linear_forward_f32(1, 1, 1, 1);
    check_linear_forward_f32(67, 150, 70, 1);
}

Test(kernels_cpu, linear_forward_with_empty_inner_dimension_gives_bias)
{
    seed(4);
    float *bias = frand_new(3, -1, 1), *out = frand_new(6, -1, 1);
    EXPECT_OK(ops->linear_forward(K, OOMB_F32, out, NULL, NULL, bias, 2, 0, 3));
    for (int i = 0; i < 6; i++)
        cr_expect_eq(out[i], bias[i % 3]);
    uint16_t hout[6] = {1, 2, 3, 4, 5, 6};
    EXPECT_OK(ops->linear_forward(K, OOMB_F16, hout, NULL, NULL, NULL, 2, 0, 3));
    for (int i = 0; i < 6; i++)
        cr_expect_eq(hout[i], 0);
}

static void check_linear_backward_f32(int64_t B, int64_t C, int64_t OC)
{
    float *inp = frand_new(B * C, -1, 1), *w = frand_new(OC * C, -1, 1);
    float *dout = frand_new(B * OC, -1, 1);
    float *dinp = frand_new(B * C, -9, 9);
    float *dw0 = frand_new(OC * C, -1, 1), *db0 = frand_new(OC, -1, 1);
    float *dw = FALLOC(OC * C), *db = FALLOC(OC);
    memcpy(dw, dw0, (size_t)(OC * C) * 4);
    memcpy(db, db0, (size_t)OC * 4);
    EXPECT_OK(ops->linear_backward(K, OOMB_F32, dinp, dw, db, dout, inp, w, B, C, OC));

    double *r_dinp = DALLOC(B * C), *r_dw = DALLOC(OC * C), *r_db = DALLOC(OC);
    for (int64_t b = 0; b < B; b++)
        for (int64_t c = 0; c < C; c++) {
            double s = 0;
            for (int64_t o = 0; o < OC; o++)
                s += (double)dout[b * OC + o] * w[o * C + c];
            r_dinp[b * C + c] = s;
        }
    for (int64_t o = 0; o < OC; o++) {
        double sb = db0[o];
        for (int64_t b = 0; b < B; b++)
            sb += dout[b * OC + o];
        r_db[o] = sb;
        for (int64_t c = 0; c < C; c++) {
            double s = dw0[o * C + c];
            for (int64_t b = 0; b < B; b++)
                s += (double)dout[b * OC + o] * inp[b * C + c];
            r_dw[o * C + c] = s;
        }
    }
    /* sums of n = OC <= 70 (dinp) and B + 1 <= 68 (dweight, dbias) terms (rel_err above):
     * estimate 2.3e-7; measured 4.1e-7, 5.3e-7, 2.9e-7 */
    cr_expect_lt(rel_err(dinp, r_dinp, B * C), 1e-5);
    cr_expect_lt(rel_err(dw, r_dw, OC * C), 1e-5);
    cr_expect_lt(rel_err(db, r_db, OC), 1e-5);

    /* NULL dinp and dbias are skipped; dweight accumulates again */
    EXPECT_OK(ops->linear_backward(K, OOMB_F32, NULL, dw, NULL, dout, inp, w, B, C, OC));
    for (int64_t i = 0; i < OC * C; i++)
        r_dw[i] = 2 * r_dw[i] - dw0[i];
    /* two accumulations: 2B + 1 terms; measured 3.4e-7 */
    cr_expect_lt(rel_err(dw, r_dw, OC * C), 1e-5);
}

Test(kernels_cpu, linear_backward_f32_matches_naive)
{
    seed(5);
    check_linear_backward_f32(7, 33, 19);
    check_linear_backward_f32(1, 1, 1);
    check_linear_backward_f32(67, 150, 70);
}

/* L = sum G * linear_forward(...), in double from the op's output. */
static double linear_loss(const float *inp, const float *w, const float *bias, const float *G,
                          float *out, int64_t B, int64_t C, int64_t OC)
{
    EXPECT_OK(ops->linear_forward(K, OOMB_F32, out, inp, w, bias, B, C, OC));
    double L = 0;
    for (int64_t i = 0; i < B * OC; i++)
        L += (double)G[i] * out[i];
    return L;
}

static void check_fd(float *x, int64_t n, const float *grad, double h, const float *inp,
                     const float *w, const float *bias, const float *G, float *out, int64_t B,
                     int64_t C, int64_t OC, const char *what)
{
    for (int t = 0; t < 12; t++) {
        int64_t i = (int64_t)(xorshift() % (uint64_t)n);
        float x0 = x[i];
        x[i] = (float)(x0 + h);
        double lp = linear_loss(inp, w, bias, G, out, B, C, OC);
        x[i] = (float)(x0 - h);
        double lm = linear_loss(inp, w, bias, G, out, B, C, OC);
        x[i] = x0;
        double fd = (lp - lm) / (2 * h);
        /* L is linear in each input, so the central difference has no truncation error; what
         * remains is the float rounding of the outputs that x[i] touches (at most OC or B of
         * them, each within (C + 1) u |G| sum |a b| <= 18u x 17), divided by 2h: about 3e-3
         * in the worst case for these shapes, against 1e-2 max(1, |fd|). Measured 3.7e-6. */
        cr_expect_leq(fabs(fd - grad[i]), 1e-2 * fmax(1.0, fabs(fd)), "%s[%ld]: fd %g, op %g", what,
                      (long)i, fd, (double)grad[i]);
    }
}

Test(kernels_cpu, linear_backward_matches_finite_differences)
{
    seed(6);
    int64_t B = 5, C = 17, OC = 11;
    float *inp = frand_new(B * C, -1, 1), *w = frand_new(OC * C, -1, 1);
    float *bias = frand_new(OC, -1, 1), *G = frand_new(B * OC, -1, 1), *out = FALLOC(B * OC);
    float *dinp = FALLOC(B * C), *dw = FALLOC(OC * C), *db = FALLOC(OC);
    EXPECT_OK(ops->linear_backward(K, OOMB_F32, dinp, dw, db, G, inp, w, B, C, OC));
    check_fd(inp, B * C, dinp, 0.05, inp, w, bias, G, out, B, C, OC, "dinp");
    check_fd(w, OC * C, dw, 0.05, inp, w, bias, G, out, B, C, OC, "dweight");
    check_fd(bias, OC, db, 0.05, inp, w, bias, G, out, B, C, OC, "dbias");
}

Test(kernels_cpu, linear_f16_matches_f32)
{
    seed(7);
    /* crosses the 256x256 output tiles and the 64-deep slices of the F16 GEMMs (with
     * remainders of 3, 44 and 5), and the 256-wide chunks of the F16 bias gradient */
    int64_t B = 259, C = 300, OC = 261;
    float *inp = frand_new(B * C, -1, 1), *w = frand_new(OC * C, -1, 1);
    float *bias = frand_new(OC, -1, 1), *dout = frand_new(B * OC, -1, 1);
    uint16_t *hinp = to_half(inp, B * C), *hw = to_half(w, OC * C), *hdout = to_half(dout, B * OC);
    uint16_t *hout = talloc((size_t)(B * OC) * 2), *hdinp = talloc((size_t)(B * C) * 2);
    float *out = FALLOC(B * OC), *out16 = FALLOC(B * OC);

    EXPECT_OK(ops->linear_forward(K, OOMB_F32, out, inp, w, bias, B, C, OC));
    EXPECT_OK(ops->linear_forward(K, OOMB_F16, hout, hinp, hw, bias, B, C, OC));
    from_half(out16, hout, B * OC);
    /* F16 output: one F16 rounding (2^-11 = 4.9e-4 relative) of each element over the F32
     * result on the same F16-exact inputs (FP32 accumulation): <= 4.9e-4 of max |ref| plus
     * the FP32 sum's 3.3e-7; limit 1e-2 (20x). Measured 3.2e-4. */
    cr_expect_lt(rel_err_ff(out16, out, B * OC), 1e-2, "forward %g",
                 rel_err_ff(out16, out, B * OC));

    float *dinp = FALLOC(B * C), *dinp16 = FALLOC(B * C);
    float *dw = FALLOC(OC * C), *dw16 = FALLOC(OC * C), *db = FALLOC(OC), *db16 = FALLOC(OC);
    frand(dw, OC * C, -1, 1);
    memcpy(dw16, dw, (size_t)(OC * C) * 4);
    frand(db, OC, -1, 1);
    memcpy(db16, db, (size_t)OC * 4);
    EXPECT_OK(ops->linear_backward(K, OOMB_F32, dinp, dw, db, dout, inp, w, B, C, OC));
    EXPECT_OK(ops->linear_backward(K, OOMB_F16, hdinp, dw16, db16, hdout, hinp, hw, B, C, OC));
    from_half(dinp16, hdinp, B * C);
    /* as the forward: one F16 rounding, 4.9e-4; measured 3.3e-4 */
    cr_expect_lt(rel_err_ff(dinp16, dinp, B * C), 1e-2);
    /* same (F16-exact) inputs, FP32 accumulation: only summation order differs, two float
     * sums of B + 1 = 260 terms (rel_err above: 2 x 4.3e-7); measured at most 5.3e-7 and 0
     * over OPENBLAS_CORETYPE Haswell, Zen, SkylakeX, Cooperlake, Sandybridge, Prescott with
     * 1 and 2 threads (the dbias sums are the same in both: 0) */
    cr_expect_lt(rel_err_ff(dw16, dw, OC * C), 1e-5);
    cr_expect_lt(rel_err_ff(db16, db, OC), 1e-5);
}

/* ============================================================ activations */

Test(kernels_cpu, relu_forward_backward_match_naive)
{
    seed(8);
    int64_t n = 1001;
    float *x = frand_new(n, -2, 2), *y = FALLOC(n), *dy = frand_new(n, -1, 1), *dx = FALLOC(n);
    EXPECT_OK(ops->relu_forward(K, OOMB_F32, y, x, n));
    EXPECT_OK(ops->relu_backward(K, OOMB_F32, dx, dy, x, n));
    for (int64_t i = 0; i < n; i++) {
        cr_assert_eq(y[i], x[i] > 0 ? x[i] : 0.0f);
        cr_assert_eq(dx[i], x[i] > 0 ? dy[i] : 0.0f);
    }
    /* dinp aliasing dout */
    EXPECT_OK(ops->relu_backward(K, OOMB_F32, dy, dy, x, n));
    cr_expect_eq(memcmp(dx, dy, (size_t)n * 4), 0);

    /* F16 */
    uint16_t *hx = to_half(x, n), *hy = talloc((size_t)n * 2);
    float *y16 = FALLOC(n);
    EXPECT_OK(ops->relu_forward(K, OOMB_F16, hy, hx, n));
    from_half(y16, hy, n);
    for (int64_t i = 0; i < n; i++)
        cr_assert_eq(y16[i], x[i] > 0 ? x[i] : 0.0f);
    float *dy2 = frand_new(n, -1, 1);
    uint16_t *hdy = to_half(dy2, n);
    EXPECT_OK(ops->relu_backward(K, OOMB_F16, hdy, hdy, hx, n));
    from_half(y16, hdy, n);
    for (int64_t i = 0; i < n; i++)
        cr_assert_eq(y16[i], x[i] > 0 ? dy2[i] : 0.0f);

    /* F16 relu_backward on the bits, every x (zeros, subnormals, infinities, NaNs) against
     * a gradient running through every half too: the FP32 op on the converted values,
     * converted back (a NaN gradient passes quietened) */
    const int64_t nh = 65536;
    uint16_t *ax = talloc((size_t)nh * 2), *ag = talloc((size_t)nh * 2);
    uint16_t *got = talloc((size_t)nh * 2), *want = talloc((size_t)nh * 2);
    float *fx = FALLOC(nh), *fg = FALLOC(nh), *fd = FALLOC(nh);
    for (int64_t i = 0; i < nh; i++) {
        ax[i] = (uint16_t)i;
        ag[i] = (uint16_t)(i * 40503); /* odd multiplier: a permutation of the halves */
    }
    EXPECT_OK(ops->relu_backward(K, OOMB_F16, got, ag, ax, nh));
    EXPECT_OK(ops->cast(K, fx, OOMB_F32, ax, OOMB_F16, nh));
    EXPECT_OK(ops->cast(K, fg, OOMB_F32, ag, OOMB_F16, nh));
    EXPECT_OK(ops->relu_backward(K, OOMB_F32, fd, fg, fx, nh));
    EXPECT_OK(ops->cast(K, want, OOMB_F16, fd, OOMB_F32, nh));
    for (int64_t i = 0; i < nh; i++)
        cr_assert_eq(got[i], want[i], "x 0x%04x g 0x%04x: 0x%04x, FP32 path 0x%04x",
                     (unsigned)ax[i], (unsigned)ag[i], (unsigned)got[i], (unsigned)want[i]);
}

Test(kernels_cpu, relu_backward_matches_finite_differences)
{
    seed(9);
    int64_t n = 300;
    float *x = frand_new(n, -2, 2), *G = frand_new(n, -1, 1), *dx = FALLOC(n);
    float *xp = FALLOC(n), *xm = FALLOC(n), *yp = FALLOC(n), *ym = FALLOC(n);
    float h = 1e-2f;
    for (int64_t i = 0; i < n; i++) {
        if (fabsf(x[i]) < 2 * h)
            x[i] = 0.5f; /* keep away from the kink */
        xp[i] = x[i] + h;
        xm[i] = x[i] - h;
    }
    EXPECT_OK(ops->relu_backward(K, OOMB_F32, dx, G, x, n));
    EXPECT_OK(ops->relu_forward(K, OOMB_F32, yp, xp, n));
    EXPECT_OK(ops->relu_forward(K, OOMB_F32, ym, xm, n));
    for (int64_t i = 0; i < n; i++) {
        double fd = (double)G[i] * ((double)yp[i] - ym[i]) / ((double)xp[i] - xm[i]);
        /* away from the kink relu is x or 0 and both differences are exact in double: fd is
         * G or 0 up to one double rounding; measured 0 */
        cr_assert_leq(fabs(fd - dx[i]), 1e-4, "[%ld] fd %g op %g", (long)i, fd, (double)dx[i]);
    }
}

Test(kernels_cpu, gelu_forward_backward_match_naive)
{
    seed(10);
    int64_t n = 1001;
    float *x = frand_new(n, -6, 6), *y = FALLOC(n), *dy = frand_new(n, -1, 1), *dx = FALLOC(n);
    x[0] = 30.0f; /* tanh saturated: gradient must stay finite */
    x[1] = -30.0f;
    EXPECT_OK(ops->gelu_forward(K, OOMB_F32, y, x, n));
    EXPECT_OK(ops->gelu_backward(K, OOMB_F32, dx, dy, x, n));
    double *ry = DALLOC(n), *rdx = DALLOC(n);
    for (int64_t i = 0; i < n; i++) {
        ry[i] = ref_gelu(x[i]);
        rdx[i] = dy[i] * ref_gelu_grad(x[i]);
        cr_assert(isfinite(dx[i]));
    }
    /* gelu: tanhf and about 6 float operations, <= 8u = 4.8e-7 of |y| (the max-norm
     * ratio only lowers it); measured 1.0e-8. Its derivative: about 12 operations and a
     * product with dy, and near the zeros of gelu' a relative error of the sum that forms
     * it is not damped, bounded by 12u * max|terms| / max|dx| ~ 2e-6; limit 1e-5,
     * measured 4.1e-7. */
    cr_expect_lt(rel_err(y, ry, n), 1e-6);
    cr_expect_lt(rel_err(dx, rdx, n), 1e-5);
    /* alias */
    EXPECT_OK(ops->gelu_backward(K, OOMB_F32, dy, dy, x, n));
    cr_expect_eq(memcmp(dx, dy, (size_t)n * 4), 0);

    /* F16: within half precision of the F32 result on the same inputs */
    float *dy2 = frand_new(n, -1, 1), *y32 = FALLOC(n), *d32 = FALLOC(n), *tmp = FALLOC(n);
    uint16_t *hx = to_half(x, n), *hdy = to_half(dy2, n), *hy = talloc((size_t)n * 2);
    EXPECT_OK(ops->gelu_forward(K, OOMB_F32, y32, x, n));
    EXPECT_OK(ops->gelu_backward(K, OOMB_F32, d32, dy2, x, n));
    EXPECT_OK(ops->gelu_forward(K, OOMB_F16, hy, hx, n));
    EXPECT_OK(ops->gelu_backward(K, OOMB_F16, hdy, hdy, hx, n));
    from_half(tmp, hy, n);
    for (int64_t i = 0; i < n; i++)
        cr_assert_leq(fabsf(tmp[i] - y32[i]), fabsf(y32[i]) * 0x1p-11f + 0x1p-24f);
    from_half(tmp, hdy, n);
    for (int64_t i = 0; i < n; i++)
        cr_assert_leq(fabsf(tmp[i] - d32[i]), fabsf(d32[i]) * 0x1p-11f + 0x1p-24f);

    /* F16 bits: the FP32 op on the F16 values, rounded once (the F16 path converts
     * chunks of 256 elements; n = 1001 ends in a partial one) */
    float *xf = FALLOC(n), *dyf = FALLOC(n);
    uint16_t *hdy2 = to_half(dy2, n), *want = talloc((size_t)n * 2);
    from_half(xf, hx, n);
    from_half(dyf, hdy2, n);
    EXPECT_OK(ops->gelu_forward(K, OOMB_F32, y32, xf, n));
    EXPECT_OK(ops->cast(K, want, OOMB_F16, y32, OOMB_F32, n));
    cr_expect_eq(memcmp(hy, want, (size_t)n * 2), 0, "gelu_forward F16 bits");
    EXPECT_OK(ops->gelu_backward(K, OOMB_F32, d32, dyf, xf, n));
    EXPECT_OK(ops->cast(K, want, OOMB_F16, d32, OOMB_F32, n));
    cr_expect_eq(memcmp(hdy, want, (size_t)n * 2), 0, "gelu_backward F16 bits");
}

Test(kernels_cpu, gelu_backward_matches_finite_differences)
{
    seed(11);
    int64_t n = 500;
    float *x = frand_new(n, -4, 4), *G = frand_new(n, -1, 1), *dx = FALLOC(n);
    float *xp = FALLOC(n), *xm = FALLOC(n), *yp = FALLOC(n), *ym = FALLOC(n);
    for (int64_t i = 0; i < n; i++) {
        xp[i] = x[i] + 1e-2f;
        xm[i] = x[i] - 1e-2f;
    }
    EXPECT_OK(ops->gelu_backward(K, OOMB_F32, dx, G, x, n));
    EXPECT_OK(ops->gelu_forward(K, OOMB_F32, yp, xp, n));
    EXPECT_OK(ops->gelu_forward(K, OOMB_F32, ym, xm, n));
    for (int64_t i = 0; i < n; i++) {
        double fd = (double)G[i] * ((double)yp[i] - ym[i]) / ((double)xp[i] - xm[i]);
        /* truncation h^2/6 max |gelu'''| <= 2e-5 (h = 1e-2); rounding of the two float
         * forwards (<= 8u |y| each, |y| <= 4) over 2h: <= 1.9e-4; plus the op's own 2e-6 (see
         * gelu_matches_naive). Limit 1e-3 + 1e-3 |fd|; measured 1.3e-5. */
        cr_assert_leq(fabs(fd - dx[i]), 1e-3 + 1e-3 * fabs(fd), "[%ld] x %g fd %g op %g", (long)i,
                      (double)x[i], fd, (double)dx[i]);
    }
}

/* ============================================================ loss ======= */

static void random_targets(int32_t *t, int64_t B, int64_t Kc)
{
    for (int64_t b = 0; b < B; b++)
        t[b] = (int32_t)(xorshift() % (uint64_t)Kc);
}

Test(kernels_cpu, softmax_xent_matches_naive)
{
    seed(12);
    int64_t B = 9, Kc = 13;
    float *logits = frand_new(B * Kc, -5, 5), *probs = FALLOC(B * Kc), *losses = FALLOC(B);
    int32_t *t = talloc((size_t)B * 4);
    random_targets(t, B, Kc);
    /* a row of huge logits must not overflow */
    for (int64_t j = 0; j < Kc; j++)
        logits[j] += 1000.0f;
    EXPECT_OK(ops->softmax_xent_forward(K, losses, probs, logits, t, B, Kc));
    double *rp = DALLOC(B * Kc), *rl = DALLOC(B);
    for (int64_t b = 0; b < B; b++) {
        double m = -INFINITY, s = 0;
        for (int64_t j = 0; j < Kc; j++)
            m = fmax(m, logits[b * Kc + j]);
        for (int64_t j = 0; j < Kc; j++)
            s += exp(logits[b * Kc + j] - m);
        for (int64_t j = 0; j < Kc; j++)
            rp[b * Kc + j] = exp(logits[b * Kc + j] - m) / s;
        rl[b] = -log(rp[b * Kc + t[b]]);
    }
    /* probs: expf (<= 2 ulp), a float sum of Kc = 13 terms and a division: <= (Kc + 4) u
     * = 1.0e-6 relative in the worst case, the estimate sqrt(Kc) u + 3u = 4e-7; measured
     * 3.1e-8. loss = log(sum) - (z_t - m): the sum's (Kc + 2) u relative error becomes an
     * absolute one in the log, plus u |loss|: <= 16u (1 + |loss|) = 1.9e-6 max(1, |loss|)
     * at most; limit 1e-5, measured 2.8e-7 absolute (0.3% of the limit). */
    cr_expect_lt(rel_err(probs, rp, B * Kc), 1e-6);
    for (int64_t b = 0; b < B; b++)
        cr_expect_leq(fabs(losses[b] - rl[b]), 1e-5 * fmax(1.0, rl[b]), "loss[%ld] %g vs %g",
                      (long)b, (double)losses[b], rl[b]);

    float *d = frand_new(B * Kc, -9, 9);
    float scale = 1.0f / (float)B;
    EXPECT_OK(ops->softmax_xent_backward(K, d, probs, t, B, Kc, scale));
    /* scale * (p - onehot) with |p| <= 1, scale = 1/9: the probs' 1.0e-6 (above) times the
     * scale plus two roundings, <= 1.2e-7 absolute in the worst case; the measured probs
     * error (3.1e-8) gives 3.4e-9, the measured value. Limit 1e-7. */
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < Kc; j++)
            cr_assert_leq(fabs(d[b * Kc + j] - scale * (rp[b * Kc + j] - (j == t[b]))), 1e-7);
}

Test(kernels_cpu, softmax_xent_backward_matches_finite_differences)
{
    seed(13);
    int64_t B = 4, Kc = 10;
    float *logits = frand_new(B * Kc, -3, 3), *probs = FALLOC(B * Kc), *losses = FALLOC(B);
    float *d = FALLOC(B * Kc);
    int32_t *t = talloc((size_t)B * 4);
    random_targets(t, B, Kc);
    float scale = 1.0f / (float)B;
    EXPECT_OK(ops->softmax_xent_forward(K, losses, probs, logits, t, B, Kc));
    EXPECT_OK(ops->softmax_xent_backward(K, d, probs, t, B, Kc, scale));
    double h = 1e-2;
    for (int64_t i = 0; i < B * Kc; i++) {
        float x0 = logits[i];
        double L[2];
        for (int s = 0; s < 2; s++) {
            logits[i] = (float)(x0 + (s ? -h : h));
            EXPECT_OK(ops->softmax_xent_forward(K, losses, probs, logits, t, B, Kc));
            L[s] = 0;
            for (int64_t b = 0; b < B; b++)
                L[s] += (double)scale * losses[b];
        }
        logits[i] = x0;
        double fd = (L[0] - L[1]) / (2 * h);
        /* truncation h^2/6 |l'''| scale <= 1e-5; rounding: only the perturbed sample's loss
         * changes, within 16u (1 + |l|) (softmax_xent_matches_naive), |l| <= 9 here, times
         * scale 1/4, over 2h: <= 2.4e-4 in the worst case, about 4e-5 for errors of random
         * sign. Limit 2e-4 + 1e-3 |fd| (|fd| <= 0.25); measured 8.8e-6. */
        cr_assert_leq(fabs(fd - d[i]), 2e-4 + 1e-3 * fabs(fd), "[%ld] fd %g op %g", (long)i, fd,
                      (double)d[i]);
    }
}

static void ref_soft_xent(double *loss, double *grad, const float *s, const float *t, int64_t Kc,
                          double T)
{
    double ms = -INFINITY, mt = -INFINITY, ss = 0, st = 0;
    for (int64_t j = 0; j < Kc; j++) {
        ms = fmax(ms, s[j] / T);
        mt = fmax(mt, t[j] / T);
    }
    for (int64_t j = 0; j < Kc; j++) {
        ss += exp(s[j] / T - ms);
        st += exp(t[j] / T - mt);
    }
    double kl = 0;
    for (int64_t j = 0; j < Kc; j++) {
        double ps = exp(s[j] / T - ms) / ss, pt = exp(t[j] / T - mt) / st;
        kl += pt * log(pt / ps);
        grad[j] = ps - pt;
    }
    *loss = kl;
}

Test(kernels_cpu, soft_xent_matches_naive_and_accumulates)
{
    seed(14);
    int64_t B = 6, Kc = 11;
    float T = 2.5f, weight = 0.7f, scale = 0.25f;
    float *s = frand_new(B * Kc, -4, 4), *t = frand_new(B * Kc, -4, 4);
    float *losses = frand_new(B, 0, 1), *d = frand_new(B * Kc, -1, 1);
    double *rl = DALLOC(B), *rd = DALLOC(B * Kc);
    for (int64_t b = 0; b < B; b++) {
        double kl;
        ref_soft_xent(&kl, rd + b * Kc, s + b * Kc, t + b * Kc, Kc, T);
        rl[b] = losses[b] + weight * T * T * kl;
        for (int64_t j = 0; j < Kc; j++)
            rd[b * Kc + j] = d[b * Kc + j] + (double)weight * scale * T * rd[b * Kc + j];
    }
    EXPECT_OK(distill->soft_xent_accumulate(K, losses, d, s, t, B, Kc, T, weight, scale));
    /* two softmaxes of Kc = 11 (<= 15u each, as softmax_xent above), a sum of Kc KL terms
     * and the accumulation: <= 40u = 2.4e-6 relative in the worst case; limit 1e-5,
     * measured 2.9e-8 (losses) and 4.7e-8 (d). */
    cr_expect_lt(rel_err(losses, rl, B), 1e-5);
    cr_expect_lt(rel_err(d, rd, B * Kc), 1e-5);

    /* identical distributions: no loss, no gradient */
    float *l0 = FALLOC(B), *d0 = FALLOC(B * Kc);
    EXPECT_OK(distill->soft_xent_accumulate(K, l0, d0, s, s, B, Kc, T, weight, scale));
    /* the same float operations on both inputs give the same probabilities: 0 exactly is
     * expected (measured 0); 1e-7 admits a vectorised path that rounds the two rows'
     * softmaxes differently, |ps - pt| <= 2 x 15u = 1.8e-6 times weight scale T = 0.44 */
    for (int64_t i = 0; i < B * Kc; i++)
        cr_assert_leq(fabsf(d0[i]), 1e-7f);
    for (int64_t b = 0; b < B; b++)
        cr_assert_leq(fabsf(l0[b]), 1e-6f);
}

Test(kernels_cpu, soft_xent_gradient_matches_finite_differences)
{
    seed(15);
    int64_t B = 3, Kc = 8;
    float T = 3.0f, weight = 0.6f;
    float *s = frand_new(B * Kc, -4, 4), *t = frand_new(B * Kc, -4, 4);
    float *losses = FALLOC(B), *d = FALLOC(B * Kc), *scratch = FALLOC(B * Kc);
    EXPECT_OK(distill->soft_xent_accumulate(K, losses, d, s, t, B, Kc, T, weight, 1.0f));
    double h = 1e-2;
    for (int64_t i = 0; i < B * Kc; i++) {
        float x0 = s[i];
        double L[2];
        for (int sg = 0; sg < 2; sg++) {
            s[i] = (float)(x0 + (sg ? -h : h));
            memset(losses, 0, (size_t)B * 4);
            EXPECT_OK(
                distill->soft_xent_accumulate(K, losses, scratch, s, t, B, Kc, T, weight, 1.0f));
            L[sg] = 0;
            for (int64_t b = 0; b < B; b++)
                L[sg] += losses[b];
        }
        s[i] = x0;
        double fd = (L[0] - L[1]) / (2 * h);
        /* truncation h^2/6 |KL'''| weight <= 2e-6 (T = 3 flattens it); rounding of the
         * perturbed row's loss (<= 40u |l|, soft_xent_matches_naive, |l| <= 2) over 2h:
         * <= 2.4e-4 in the worst case, about 3e-5 for errors of random sign. Limit
         * 1e-4 + 2e-3 |fd|; measured 6.7e-6. */
        cr_assert_leq(fabs(fd - d[i]), 1e-4 + 2e-3 * fabs(fd), "[%ld] fd %g op %g", (long)i, fd,
                      (double)d[i]);
    }
}

Test(kernels_cpu, count_correct_matches_naive)
{
    seed(16);
    int64_t B = 200, Kc = 7;
    float *logits = frand_new(B * Kc, -1, 1);
    int32_t *t = talloc((size_t)B * 4);
    random_targets(t, B, Kc);
    int64_t want = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t best = 0;
        for (int64_t j = 1; j < Kc; j++)
            if (logits[b * Kc + j] > logits[b * Kc + best])
                best = j;
        want += best == t[b];
    }
    int64_t got = -1;
    EXPECT_OK(ops->count_correct(K, logits, t, B, Kc, &got));
    cr_expect_eq(got, want);
    cr_expect_gt(want, 0);
}

/* ============================================================ optimizers = */

Test(kernels_cpu, sgd_matches_naive)
{
    seed(17);
    int64_t n = 257;
    float lr = 0.1f, mu = 0.9f, wd = 0.01f;
    float *p = frand_new(n, -1, 1), *m = FALLOC(n);
    double *rp = DALLOC(n), *rm = DALLOC(n);
    for (int64_t i = 0; i < n; i++)
        rp[i] = p[i];
    for (int step = 0; step < 5; step++) {
        float *g = frand_new(n, -1, 1);
        for (int64_t i = 0; i < n; i++) {
            double gg = g[i] + wd * rp[i];
            rm[i] = mu * rm[i] + gg;
            rp[i] -= lr * rm[i];
        }
        EXPECT_OK(ops->sgd_update(K, p, g, m, n, lr, mu, wd));
    }
    /* 5 steps of about 5 roundings each on values of order 1: <= 25u = 1.5e-6 relative to
     * max |ref| (the momentum sum of 5 gradients can cancel, max-norm keeps it bounded by
     * the largest element); limit 1e-5, measured 1.0e-7 (p) and 1.0e-7 (m). */
    cr_expect_lt(rel_err(p, rp, n), 1e-5);
    cr_expect_lt(rel_err(m, rm, n), 1e-5);

    /* without momentum no state is needed */
    float *g = frand_new(n, -1, 1);
    for (int64_t i = 0; i < n; i++)
        rp[i] = p[i] - lr * (g[i] + wd * p[i]);
    EXPECT_OK(ops->sgd_update(K, p, g, NULL, n, lr, 0.0f, wd));
    /* one step, 4 roundings: <= 4u = 2.4e-7; measured 0 */
    cr_expect_lt(rel_err(p, rp, n), 1e-6);
}

static void ref_adam(double *p, double *m, double *v, const float *g, int64_t n, double lr,
                     double b1, double b2, double eps, double wd, int t)
{
    for (int64_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * (double)g[i] * g[i];
        double mh = m[i] / (1 - pow(b1, t)), vh = v[i] / (1 - pow(b2, t));
        p[i] -= lr * (mh / (sqrt(vh) + eps) + wd * p[i]);
    }
}

Test(kernels_cpu, adam_matches_naive)
{
    seed(18);
    int64_t n = 300;
    float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f;
    float *p = frand_new(n, -1, 1), *m = FALLOC(n), *v = FALLOC(n);
    double *rp = DALLOC(n), *rm = DALLOC(n), *rv = DALLOC(n);
    for (int64_t i = 0; i < n; i++)
        rp[i] = p[i];
    for (int t = 1; t <= 10; t++) {
        float *g = frand_new(n, -1, 1);
        ref_adam(rp, rm, rv, g, n, lr, b1, b2, eps, wd, t);
        EXPECT_OK(ops->adam_update(K, p, g, m, v, n, lr, b1, b2, eps, wd, t));
    }
    /* Same gradients for both (no amplification through the data): 10 steps of about 12
     * roundings on m, v and on the update m / (sqrt v + eps), whose relative error is
     * carried to p scaled by lr = 0.01 / |p|: <= 10 x 12u = 7.2e-6 for m and v, far less
     * for p; limit 1e-5, measured 1.3e-7 (p), 8.8e-8 (m), 1.1e-7 (v). */
    cr_expect_lt(rel_err(p, rp, n), 1e-5);
    cr_expect_lt(rel_err(m, rm, n), 1e-5);
    cr_expect_lt(rel_err(v, rv, n), 1e-5);
}

Test(kernels_cpu, adam8_step_matches_naive_quantisation)
{
    seed(19);
    int64_t n = 100, block = 32; /* last block short */
    int64_t nb = (n + block - 1) / block;
    float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f;
    float *p = frand_new(n, -1, 1), *g = frand_new(n, -1, 1);
    int8_t *mq = talloc((size_t)n);
    uint8_t *vq = talloc((size_t)n);
    float *ms = FALLOC(nb), *vs = FALLOC(nb);
    /* a non-trivial previous state */
    for (int64_t i = 0; i < n; i++) {
        mq[i] = (int8_t)((int)(xorshift() % 255) - 127);
        vq[i] = (uint8_t)(xorshift() % 256);
    }
    frand(ms, nb, 1e-3f, 1e-2f);
    frand(vs, nb, 1e-3f, 1e-2f);
    int64_t t = 3;

    double *rp = DALLOC(n);
    int8_t *rmq = talloc((size_t)n);
    uint8_t *rvq = talloc((size_t)n);
    double *rms = DALLOC(nb), *rvs = DALLOC(nb);
    double c1 = 1 - pow(b1, (double)t), c2 = 1 - pow(b2, (double)t);
    for (int64_t bl = 0; bl < nb; bl++) {
        double mnew[32], vnew[32], mmax = 0, svmax = 0;
        int64_t i0 = bl * block, i1 = i0 + block < n ? i0 + block : n;
        for (int64_t i = i0; i < i1; i++) {
            double mo = mq[i] * (double)ms[bl], so = vq[i] * (double)vs[bl];
            double mm = b1 * mo + (1 - b1) * g[i], vv = b2 * so * so + (1 - b2) * g[i] * g[i];
            mnew[i - i0] = mm;
            vnew[i - i0] = vv;
            mmax = fmax(mmax, fabs(mm));
            svmax = fmax(svmax, sqrt(vv));
            rp[i] = p[i] - lr * ((mm / c1) / (sqrt(vv / c2) + eps) + wd * p[i]);
        }
        rms[bl] = mmax / 127;
        rvs[bl] = svmax / 255;
        for (int64_t i = i0; i < i1; i++) {
            rmq[i] = (int8_t)lrint(mnew[i - i0] / rms[bl]);
            rvq[i] = (uint8_t)lrint(sqrt(vnew[i - i0]) / rvs[bl]);
        }
    }
    EXPECT_OK(quant->adam8_update(K, p, g, mq, vq, ms, vs, n, block, lr, b1, b2, eps, wd, t));
    /* one step from the same dequantised state: about 15 float roundings per element
     * (<= 9e-7 relative), the block scales a maximum of such values over a division:
     * limit 1e-5, measured 2.9e-8 (p), 3.6e-8 and 5.3e-8 (scales). The codes are
     * lrint of values within that error of the reference, so they differ by at most
     * one where the value lies next to a rounding boundary (measured 0). */
    cr_expect_lt(rel_err(p, rp, n), 1e-5);
    cr_expect_lt(rel_err(ms, rms, nb), 1e-5);
    cr_expect_lt(rel_err(vs, rvs, nb), 1e-5);
    for (int64_t i = 0; i < n; i++) {
        cr_assert_leq(abs(mq[i] - rmq[i]), 1, "m_q[%ld] %d vs %d", (long)i, mq[i], rmq[i]);
        cr_assert_leq(abs(vq[i] - rvq[i]), 1, "v_q[%ld] %d vs %d", (long)i, vq[i], rvq[i]);
    }
    /* the block maxima hit the ends of the code ranges */
    for (int64_t bl = 0; bl < nb; bl++) {
        int mmax = 0, vmax = 0;
        for (int64_t i = bl * block; i < n && i < (bl + 1) * block; i++) {
            mmax = abs(mq[i]) > mmax ? abs(mq[i]) : mmax;
            vmax = vq[i] > vmax ? vq[i] : vmax;
        }
        cr_expect_eq(mmax, 127);
        cr_expect_eq(vmax, 255);
    }
}

Test(kernels_cpu, adam8_tracks_fp32_adam)
{
    seed(20);
    int64_t n = 1000, block = 64;
    int64_t nb = (n + block - 1) / block;
    float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.0f;
    /* minimise 0.5 sum a_i (p_i - c_i)^2 from the same start */
    float *a = frand_new(n, 0.5f, 2.0f), *c = frand_new(n, -1, 1), *p0 = frand_new(n, -1, 1);
    float *p32 = FALLOC(n), *p8 = FALLOC(n), *m = FALLOC(n), *v = FALLOC(n);
    float *g32 = FALLOC(n), *g8 = FALLOC(n), *ms = FALLOC(nb), *vs = FALLOC(nb);
    int8_t *mq = talloc((size_t)n);
    uint8_t *vq = talloc((size_t)n);
    memcpy(p32, p0, (size_t)n * 4);
    memcpy(p8, p0, (size_t)n * 4);
    for (int t = 1; t <= 50; t++) {
        for (int64_t i = 0; i < n; i++) {
            float noise = urand(-0.05f, 0.05f);
            g32[i] = a[i] * (p32[i] - c[i]) + noise;
            g8[i] = a[i] * (p8[i] - c[i]) + noise;
        }
        EXPECT_OK(ops->adam_update(K, p32, g32, m, v, n, lr, b1, b2, eps, wd, t));
        EXPECT_OK(quant->adam8_update(K, p8, g8, mq, vq, ms, vs, n, block, lr, b1, b2, eps, wd, t));
    }
    double moved = 0, diff = 0, maxdiff = 0, f32 = 0, f8 = 0, fstart = 0;
    for (int64_t i = 0; i < n; i++) {
        moved += fabs((double)p32[i] - p0[i]);
        diff += fabs((double)p8[i] - p32[i]);
        maxdiff = fmax(maxdiff, fabs((double)p8[i] - p32[i]));
        f32 += 0.5 * a[i] * pow(p32[i] - c[i], 2);
        f8 += 0.5 * a[i] * pow(p8[i] - c[i], 2);
        fstart += 0.5 * a[i] * pow(p0[i] - c[i], 2);
    }
    /* Not rounding: 8-bit moment codes (steps of 1/127 and 1/255 of the block maximum)
     * against FP32 moments. Each update's direction is within about 1/127 of Adam's, the
     * noise term dominates far from the optimum, so the two trajectories stay within a
     * small fraction of the distance moved. Measured 0.24, 0.34, 0.43 and 0.03 of the four
     * limits over all core types and thread counts (the kernels do not use BLAS). */
    cr_expect_lt(diff, 0.1 * moved, "mean |p8 - p32| %g vs mean move %g", diff / n, moved / n);
    cr_expect_lt(maxdiff, 0.5 * 50 * lr, "max |p8 - p32| %g", maxdiff);
    cr_expect_lt(f8, 0.8 * fstart, "adam8 did not descend: %g -> %g", fstart, f8);
    cr_expect_lt(fabs(f8 - f32), 0.1 * (fstart - f32), "objective %g vs %g", f8, f32);
}

/* ============================================================ ISA paths == */

/*
 * Every kernel with a vector version (kernels/cpu/vec_cpu.c) run on each
 * instruction set this CPU has (isa.h; the scalar loops always), against a
 * float loop written here with the kernel's own operations in its order:
 * the vector code does the same correctly rounded IEEE operations per element
 * with no FMA contraction, so the results must be the same bits. Lengths
 * around the vector width (8) and pointers offset by 1..3 elements from an
 * allocation's alignment.
 */

static const int64_t isa_lengths[] = {0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1003};

/* Runs the calling test's body once per supported level; restores the level. */
#define FOR_EACH_ISA(isa)                                                                          \
    for (enum oomb_cpu_isa isa = OOMB_CPU_ISA_SCALAR; isa <= OOMB_CPU_ISA_AVX2;                  \
         isa = (enum oomb_cpu_isa)(isa + 1))                                                       \
        if (oomb_cpu_isa_force(isa) == 0)

/* The reference loops: no contraction into FMA on targets that have one. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#define NO_CONTRACT
#else
#define NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#endif

NO_CONTRACT static void ref_adam_f32(float *p, const float *g, float *m, float *v, int64_t n,
                                     float lr, float b1, float b2, float eps, float wd, int64_t t)
{
    float c1 = (float)(1.0 - pow((double)b1, (double)t));
    float c2 = (float)(1.0 - pow((double)b2, (double)t));
    for (int64_t i = 0; i < n; i++) {
        float mi = b1 * m[i] + (1.0f - b1) * g[i];
        float vi = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        m[i] = mi;
        v[i] = vi;
        p[i] -= lr * ((mi / c1) / (sqrtf(vi / c2) + eps) + wd * p[i]);
    }
}

static void expect_same_bits(const void *got, const void *want, size_t bytes, const char *what,
                             enum oomb_cpu_isa isa, int64_t n, int64_t off)
{
    const unsigned char *a = got, *b = want;
    size_t i = 0;
    while (i < bytes && a[i] == b[i])
        i++;
    cr_expect_eq(i, bytes, "%s differs at byte %zu of %zu (isa %s, n %lld, offset %lld)", what, i,
                 bytes, oomb_cpu_isa_name(isa), (long long)n, (long long)off);
}

Test(kernels_cpu, isa_adam_matches_float_loop_bit_for_bit)
{
    enum oomb_cpu_isa before = oomb_cpu_isa_get();
    cr_assert(oomb_cpu_isa_supported(OOMB_CPU_ISA_SCALAR));
    cr_expect_eq(oomb_cpu_isa_force((enum oomb_cpu_isa)42), -1, "an unknown level was accepted");
    seed(40);
    const int64_t cap = 1003 + 3;
    float *p = FALLOC(cap), *g = FALLOC(cap), *m = FALLOC(cap), *v = FALLOC(cap);
    float *rp = FALLOC(cap), *rm = FALLOC(cap), *rv = FALLOC(cap);
    FOR_EACH_ISA(isa)
    {
        for (size_t li = 0; li < sizeof isa_lengths / sizeof isa_lengths[0]; li++) {
            int64_t n = isa_lengths[li], off = (int64_t)(li % 4);
            float lr = urand(1e-4f, 1e-2f), wd = li % 2 ? 0.0f : urand(0.0f, 0.1f);
            int64_t t = 1 + (int64_t)(xorshift() % 1000);
            frand(p + off, n, -1, 1);
            frand(g + off, n, -1, 1);
            frand(m + off, n, -0.1f, 0.1f);
            frand(v + off, n, 0.0f, 0.01f);
            memcpy(rp, p, (size_t)cap * 4);
            memcpy(rm, m, (size_t)cap * 4);
            memcpy(rv, v, (size_t)cap * 4);
            ref_adam_f32(rp + off, g + off, rm + off, rv + off, n, lr, 0.9f, 0.999f, 1e-8f, wd, t);
            EXPECT_OK(ops->adam_update(K, p + off, g + off, m + off, v + off, n, lr, 0.9f, 0.999f,
                                       1e-8f, wd, t));
            expect_same_bits(p, rp, (size_t)cap * 4, "param", isa, n, off);
            expect_same_bits(m, rm, (size_t)cap * 4, "m", isa, n, off);
            expect_same_bits(v, rv, (size_t)cap * 4, "v", isa, n, off);
        }
    }
    cr_assert_eq(oomb_cpu_isa_force(before), 0);
}

/* x (n) uniform on [-lim, lim] with every 13th value special: 0, -0, NaN, +-inf,
 * huge, tiny, and the branch points of the exp and tanh kernels. */
static void frand_special(float *x, int64_t n, float lim)
{
    static const float special[] = {0.0f,   -0.0f, NAN,    INFINITY, -INFINITY, 1e30f,  -1e30f,
                                    1e-30f, 0.625f, -0.625f, 10.0f, -10.0f,   -87.0f, 88.0f,
                                    -88.0f, 0.62499994f};
    frand(x, n, -lim, lim);
    for (int64_t i = 0; i < n; i += 13)
        x[i] = special[(i / 13) % (int64_t)(sizeof special / sizeof special[0])];
}

/*
 * GELU, ReLU (and their gradients), a softmax row and its backward, and the
 * sums of the norm layers: the AVX2 path gives the scalar loop's bits on
 * fresh random inputs with special values, every length around the vector
 * width and every misalignment.
 */
Test(kernels_cpu, isa_activations_softmax_sums_same_bits_on_every_path)
{
    enum oomb_cpu_isa before = oomb_cpu_isa_get();
    if (!oomb_cpu_isa_supported(OOMB_CPU_ISA_AVX2))
        cr_skip_test("this CPU has no AVX2+FMA+F16C: only the scalar path exists");
    seed(44);
    const int64_t cap = 1003 + 3;
    float *x = FALLOC(cap), *dy = FALLOC(cap), *gm = FALLOC(cap);
    float *out[2], *grad[2], *relu[2], *drelu[2], *sm[2], *dsm[2];
    for (int i = 0; i < 2; i++) {
        out[i] = FALLOC(cap), grad[i] = FALLOC(cap), relu[i] = FALLOC(cap);
        drelu[i] = FALLOC(cap), sm[i] = FALLOC(cap), dsm[i] = FALLOC(cap);
    }
    for (size_t li = 0; li < sizeof isa_lengths / sizeof isa_lengths[0]; li++) {
        int64_t n = isa_lengths[li], off = (int64_t)(li % 4);
        frand_special(x, cap, li % 2 ? 12.0f : 100.0f);
        frand(dy, cap, -1, 1);
        frand(gm, cap, 0.5f, 1.5f);
        double sums[2][4], ns[2][4];
        for (int i = 0; i < 2; i++) {
            cr_assert_eq(oomb_cpu_isa_force(i ? OOMB_CPU_ISA_AVX2 : OOMB_CPU_ISA_SCALAR), 0);
            oomb_vec_gelu(out[i] + off, x + off, n);
            oomb_vec_gelu_backward(grad[i] + off, dy + off, x + off, n);
            oomb_vec_relu(relu[i] + off, x + off, n);
            oomb_vec_relu_backward(drelu[i] + off, dy + off, x + off, n);
            /* softmax rows of finite scores (the attention's): x scaled into [-1.2, 1.2] */
            for (int64_t j = 0; j < n; j++)
                sm[i][off + j] = isfinite(x[off + j]) && fabsf(x[off + j]) < 1e3f ? x[off + j] : 0.5f;
            memcpy(dsm[i], dy, (size_t)cap * 4);
            if (n > 0) {
                oomb_vec_softmax_row(sm[i] + off, n, 0.1f);
                oomb_vec_softmax_row_backward(dsm[i] + off, sm[i] + off, n, 0.17f);
            }
            sums[i][0] = oomb_vec_sum(dy + off, n);
            sums[i][1] = oomb_vec_sum_sq_dev(dy + off, n, 0.25);
            sums[i][2] = oomb_vec_sum(gm + off, n);
            sums[i][3] = oomb_vec_sum_sq_dev(x + off, n, -0.5);
            ns[i][0] = ns[i][1] = ns[i][2] = ns[i][3] = 0.0;
            oomb_vec_norm_sums(dy + off, NULL, gm + off, n, 0.9, 1.3, ns[i]);
            oomb_vec_norm_sums(dy + off, gm + off, gm + off, n, 1.1, 0.7, ns[i] + 2);
        }
        enum oomb_cpu_isa v = OOMB_CPU_ISA_AVX2;
        expect_same_bits(out[1], out[0], (size_t)cap * 4, "gelu", v, n, off);
        expect_same_bits(grad[1], grad[0], (size_t)cap * 4, "gelu_backward", v, n, off);
        expect_same_bits(relu[1], relu[0], (size_t)cap * 4, "relu", v, n, off);
        expect_same_bits(drelu[1], drelu[0], (size_t)cap * 4, "relu_backward", v, n, off);
        expect_same_bits(sm[1] + off, sm[0] + off, (size_t)n * 4, "softmax_row", v, n, off);
        expect_same_bits(dsm[1] + off, dsm[0] + off, (size_t)n * 4, "softmax_row_backward", v, n,
                         off);
        expect_same_bits(sums[1], sums[0], sizeof sums[0], "sum, sum_sq_dev", v, n, off);
        expect_same_bits(ns[1], ns[0], sizeof ns[0], "norm_sums", v, n, off);
    }
    cr_assert_eq(oomb_cpu_isa_force(before), 0);
}

/*
 * The kernels' own exp, and GELU built on it, against double precision,
 * element by element. exp through a softmax row of two entries (p0 = 1 /
 * (1 + exp(y)) for y = s1 - s0): exp_elem is within 2 ulp (Taylor degree 7
 * on |r| <= ln2/2, 8 roundings), the row adds 3 roundings: limit 8u = 4.8e-7
 * relative, measured 1.3e-7. GELU as x / (1 + exp(-2u)): u carries about 5
 * roundings (relative error 5u), an absolute error of 10 |u| u in exp's
 * argument -2u, which reaches the result scaled by 1 - s (s = 1 / (1 +
 * exp(-2u))); exp adds 2 ulp, the sum and the division one rounding each:
 * limit (9 + 10 |u| (1 - s)) u relative to |gelu|, for |gelu| > 1e-30
 * (exp_elem gives inf above 88, so gelu is 0 where it is below about
 * 2^-127 |x|). Measured at most 0.49 of that limit. The tanh form
 * 0.5 x (1 + tanh u) would not meet it for x < -3, where 1 + tanh u cancels.
 */
Test(kernels_cpu, exp_and_gelu_accuracy_over_their_range)
{
    enum oomb_cpu_isa before = oomb_cpu_isa_get();
    const double u = 0x1p-24;
    FOR_EACH_ISA(isa)
    {
        double worst_sm = 0.0, worst_g = 0.0;
        for (float y = -86.0f; y <= 86.0f; y += 0.01171875f) {
            float row[2] = {0.0f, y};
            oomb_vec_softmax_row(row, 2, 1.0f);
            double ref = 1.0 / (1.0 + exp((double)y));
            if (ref > 1e-30)
                worst_sm = fmax(worst_sm, fabs(row[0] - ref) / ref);
        }
        for (float xv = -12.0f; xv <= 12.0f; xv += 0.000732421875f) {
            float g;
            oomb_vec_gelu(&g, &xv, 1);
            /* x sigma(2u) in double: ref_gelu's 1 + tanh u cancels even in double
             * for x < -6 */
            double uu = sqrt(2.0 / M_PI) * (xv + 0.044715 * xv * xv * xv);
            double sig = 1.0 / (1.0 + exp(-2.0 * uu)), ref = xv * sig;
            double bound = (9.0 + 10.0 * fabs(uu) * (1.0 - sig)) * u * fabs(ref);
            if (fabs(ref) > 1e-30) /* exp_elem stops at 88: below, gelu is 0 */
                worst_g = fmax(worst_g, fabs(g - ref) / bound);
        }
        cr_expect_leq(worst_sm, 4.8e-7, "softmax (exp) rel err %g on %s", worst_sm,
                      oomb_cpu_isa_name(isa));
        cr_expect_leq(worst_g, 1.0, "gelu error %g of its bound on %s", worst_g,
                      oomb_cpu_isa_name(isa));
        cr_log_info("%s: exp via softmax %g, gelu %g of the bound", oomb_cpu_isa_name(isa),
                    worst_sm, worst_g);
    }
    cr_assert_eq(oomb_cpu_isa_force(before), 0);
}

/* The 8-bit Adam step as a float loop, the kernel's operations in its order
 * (two passes per block, the moments recomputed in the second). */
NO_CONTRACT static void ref_adam8_f32(float *p, const float *g, int8_t *mq, uint8_t *vq, float *ms,
                                      float *vs, int64_t n, int64_t block, float lr, float b1,
                                      float b2, float eps, float wd, int64_t t)
{
    float c1 = (float)(1.0 - pow((double)b1, (double)t));
    float c2 = (float)(1.0 - pow((double)b2, (double)t));
    for (int64_t i0 = 0, bl = 0; i0 < n; i0 += block, bl++) {
        int64_t i1 = i0 + block < n ? i0 + block : n;
        float amax = 0.0f, smax = 0.0f;
        for (int pass = 0; pass < 2; pass++) {
            float m_inv = amax > 0.0f ? 127.0f / amax : 0.0f;
            float v_inv = smax > 0.0f ? 255.0f / smax : 0.0f;
            for (int64_t i = i0; i < i1; i++) {
                float so = (float)vq[i] * vs[bl];
                float m = b1 * ((float)mq[i] * ms[bl]) + (1.0f - b1) * g[i];
                float v = b2 * (so * so) + (1.0f - b2) * g[i] * g[i];
                if (pass == 0) {
                    amax = fabsf(m) > amax ? fabsf(m) : amax;
                    smax = sqrtf(v) > smax ? sqrtf(v) : smax;
                    p[i] -= lr * ((m / c1) / (sqrtf(v / c2) + eps) + wd * p[i]);
                } else {
                    long qm = lrintf(m * m_inv), qv = lrintf(sqrtf(v) * v_inv);
                    qv = qv == 0 && v > 0.0f ? 1 : qv;
                    mq[i] = (int8_t)(qm > 127 ? 127 : qm < -127 ? -127 : qm);
                    vq[i] = (uint8_t)(qv > 255 ? 255 : qv < 0 ? 0 : qv);
                }
            }
        }
        ms[bl] = amax / 127.0f;
        vs[bl] = smax / 255.0f;
    }
}

Test(kernels_cpu, isa_adam8_matches_float_loop_bit_for_bit)
{
    enum oomb_cpu_isa before = oomb_cpu_isa_get();
    seed(41);
    const int64_t cap = 1003 + 3, blocks[] = {1, 5, 8, 24, 64, 2048};
    float *p = FALLOC(cap), *g = FALLOC(cap), *rp = FALLOC(cap);
    float *ms = FALLOC(cap), *vs = FALLOC(cap), *rms = FALLOC(cap), *rvs = FALLOC(cap);
    int8_t *mq = talloc((size_t)cap), *rmq = talloc((size_t)cap);
    uint8_t *vq = talloc((size_t)cap), *rvq = talloc((size_t)cap);
    FOR_EACH_ISA(isa)
    {
        for (size_t li = 0; li < sizeof isa_lengths / sizeof isa_lengths[0]; li++) {
            for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
                int64_t n = isa_lengths[li], off = (int64_t)((li + bi) % 4), block = blocks[bi];
                int64_t nb = (n + block - 1) / block;
                float lr = urand(1e-4f, 1e-2f), wd = bi % 2 ? 0.0f : 0.01f;
                int64_t t = 1 + (int64_t)(xorshift() % 100);
                frand(p + off, n, -1, 1);
                frand(g + off, n, -1, 1);
                for (int64_t i = 0; i < n; i++) {
                    mq[off + i] = (int8_t)((int)(xorshift() % 255) - 127);
                    vq[off + i] = (uint8_t)(xorshift() % 256);
                }
                if (n > 2) { /* an all-zero state and gradient element */
                    mq[off + 1] = 0;
                    vq[off + 1] = 0;
                    g[off + 1] = 0.0f;
                }
                frand(ms + off, nb, 1e-3f, 1e-2f);
                frand(vs + off, nb, 1e-3f, 1e-2f);
                memcpy(rp, p, (size_t)cap * 4);
                memcpy(rms, ms, (size_t)cap * 4);
                memcpy(rvs, vs, (size_t)cap * 4);
                memcpy(rmq, mq, (size_t)cap);
                memcpy(rvq, vq, (size_t)cap);
                ref_adam8_f32(rp + off, g + off, rmq + off, rvq + off, rms + off, rvs + off, n,
                              block, lr, 0.9f, 0.999f, 1e-8f, wd, t);
                EXPECT_OK(quant->adam8_update(K, p + off, g + off, mq + off, vq + off, ms + off,
                                              vs + off, n, block, lr, 0.9f, 0.999f, 1e-8f, wd, t));
                expect_same_bits(p, rp, (size_t)cap * 4, "param", isa, n, off);
                expect_same_bits(mq, rmq, (size_t)cap, "m_q", isa, n, off);
                expect_same_bits(vq, rvq, (size_t)cap, "v_q", isa, n, off);
                expect_same_bits(ms, rms, (size_t)cap * 4, "m_scale", isa, n, off);
                expect_same_bits(vs, rvs, (size_t)cap * 4, "v_scale", isa, n, off);
            }
        }
    }
    cr_assert_eq(oomb_cpu_isa_force(before), 0);
}

/* F16 -> F32 bits by the definition: sign, exponent rebias, mantissa shift;
 * a NaN keeps its payload and is quietened (IEEE 754 conversion, VCVTPH2PS). */
static uint32_t ref_h2f_bits(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (e == 31)
        return sign | 0x7f800000u | mant << 13 | (mant ? 0x400000u : 0u);
    float f = (float)half_value((uint16_t)(h & 0x7fffu)); /* exact */
    uint32_t bits;
    memcpy(&bits, &f, 4);
    return sign | bits;
}

/* F32 -> F16 bits: the nearest search, NaN quietened with its top 9 payload bits kept. */
static uint16_t ref_f2h_bits(uint32_t x)
{
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16 & 0x8000u) | 0x7e00u | (x >> 13 & 0x3ffu));
    float f;
    memcpy(&f, &x, 4);
    return ref_f2h(f);
}

Test(kernels_cpu, isa_cast_matches_definition_bit_for_bit)
{
    enum oomb_cpu_isa before = oomb_cpu_isa_get();
    seed(42);
    const int64_t n = 65536 + 3; /* every half, then 3 more for the offsets */
    uint16_t *h = talloc((size_t)n * 2), *h2 = talloc((size_t)n * 2);
    float *f = FALLOC(n);
    uint32_t *x = talloc((size_t)n * 4);
    FOR_EACH_ISA(isa)
    {
        for (int64_t off = 0; off < 4; off++) {
            int64_t len = 65536 - off; /* not a multiple of 8 for off > 0 */
            for (int64_t i = 0; i < len; i++)
                h[off + i] = (uint16_t)(i + off);
            EXPECT_OK(ops->cast(K, f + off, OOMB_F32, h + off, OOMB_F16, len));
            for (int64_t i = 0; i < len; i++) {
                uint32_t got;
                memcpy(&got, &f[off + i], 4);
                cr_assert_eq(got, ref_h2f_bits(h[off + i]), "%s: h2f(0x%04x) = 0x%08x",
                             oomb_cpu_isa_name(isa), h[off + i], got);
            }
            /* random bit patterns: every class (NaNs with payloads, infinities,
             * subnormals, values rounding into and out of the half range) */
            for (int64_t i = 0; i < len; i++) {
                uint64_t r = xorshift();
                uint32_t e = (uint32_t)(r >> 32) % 40u; /* exponents 0, 100..136, 255 */
                uint32_t expo = e == 0 ? 0 : e == 39 ? 255u : 99u + e;
                x[off + i] = (uint32_t)r >> 31 << 31 | expo << 23 | ((uint32_t)r & 0x7fffffu);
            }
            EXPECT_OK(ops->cast(K, h2 + off, OOMB_F16, (const float *)(x + off), OOMB_F32, len));
            for (int64_t i = 0; i < len; i++)
                cr_assert_eq(h2[off + i], ref_f2h_bits(x[off + i]), "%s: f2h(0x%08x) = 0x%04x",
                             oomb_cpu_isa_name(isa), x[off + i], h2[off + i]);
        }
    }
    cr_assert_eq(oomb_cpu_isa_force(before), 0);
}

/* The F16 GEMMs convert through the vector path: the same bits on every level. */
Test(kernels_cpu, isa_linear_f16_same_bits_on_every_level)
{
    enum oomb_cpu_isa before = oomb_cpu_isa_get();
    seed(43);
    int64_t B = 37, C = 75, OC = 69; /* tiles and rows not multiples of 8 */
    float *x = frand_new(B * C, -1, 1), *w = frand_new(OC * C, -1, 1), *bias = frand_new(OC, -1, 1);
    uint16_t *hx = to_half(x, B * C), *hw = to_half(w, OC * C);
    uint16_t *out[2], *dinp[2];
    float *dw[2];
    int runs = 0;
    FOR_EACH_ISA(isa)
    {
        out[runs] = talloc((size_t)(B * OC) * 2);
        dinp[runs] = talloc((size_t)(B * C) * 2);
        dw[runs] = FALLOC(OC * C);
        EXPECT_OK(ops->linear_forward(K, OOMB_F16, out[runs], hx, hw, bias, B, C, OC));
        EXPECT_OK(ops->linear_backward(K, OOMB_F16, dinp[runs], dw[runs], NULL, out[runs], hx, hw,
                                       B, C, OC));
        runs++;
    }
    for (int r = 1; r < runs; r++) {
        expect_same_bits(out[r], out[0], (size_t)(B * OC) * 2, "out", (enum oomb_cpu_isa)r, B, 0);
        expect_same_bits(dinp[r], dinp[0], (size_t)(B * C) * 2, "dinp", (enum oomb_cpu_isa)r, B, 0);
        expect_same_bits(dw[r], dw[0], (size_t)(OC * C) * 4, "dweight", (enum oomb_cpu_isa)r, B, 0);
    }
    cr_assert_eq(oomb_cpu_isa_force(before), 0);
}

/* ============================================================ element-wise */

Test(kernels_cpu, scale_axpy_sum_match_naive)
{
    seed(21);
    int64_t n = 1234;
    float *x = frand_new(n, -1, 1), *y = frand_new(n, -1, 1);
    double *ry = DALLOC(n), rs = 0;
    for (int64_t i = 0; i < n; i++)
        ry[i] = (double)y[i] * 1.5f;
    EXPECT_OK(ops->scale(K, y, n, 1.5f));
    /* one rounding: <= u = 6.0e-8; measured 4.0e-8 */
    cr_expect_lt(rel_err(y, ry, n), 1e-7);
    for (int64_t i = 0; i < n; i++)
        ry[i] = y[i] + (double)-0.25f * x[i];
    EXPECT_OK(ops->axpy(K, y, x, n, -0.25f));
    /* a product and a sum (or one FMA): <= 2u |y| + u |a x| <= 3u max(|y|, |x|) = 1.8e-7 of
     * max |ref| with |y| <= 1.5, |a x| <= 0.25; measured 3.5e-8 */
    cr_expect_lt(rel_err(y, ry, n), 1e-6);
    for (int64_t i = 0; i < n; i++)
        rs += x[i];
    double s = 0;
    EXPECT_OK(ops->sum(K, x, n, &s));
    /* the sum is accumulated in double: <= n u_d sum |x| = n^2 2^-53 <= 1.7e-10 n for
     * n = 1234, |x| <= 1; measured 0 */
    cr_expect_leq(fabs(s - rs), 1e-9 * n);
    EXPECT_OK(ops->sum(K, x, 0, &s));
    cr_expect_eq(s, 0.0);
}

Test(kernels_cpu, count_nonfinite_f32_and_f16)
{
    seed(22);
    int64_t n = 500;
    float *x = frand_new(n, -1, 1);
    x[3] = NAN;
    x[100] = INFINITY;
    x[499] = -INFINITY;
    x[7] = 3.4e38f; /* finite in F32, inf in F16 */
    int64_t c = -1;
    EXPECT_OK(ops->count_nonfinite(K, x, OOMB_F32, n, &c));
    cr_expect_eq(c, 3);
    uint16_t *h = talloc((size_t)n * 2);
    EXPECT_OK(ops->cast(K, h, OOMB_F16, x, OOMB_F32, n));
    EXPECT_OK(ops->count_nonfinite(K, h, OOMB_F16, n, &c));
    cr_expect_eq(c, 4);

    /* F32 counts in blocks of 2^16: non-finite values at both ends of the blocks */
    int64_t nb = 2 * 65536 + 5;
    float *big = FALLOC(nb);
    const int64_t at[] = {0, 65535, 65536, 131071, 131072, nb - 1};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++)
        big[at[i]] = i % 2 ? -INFINITY : NAN;
    big[70000] = 3.4e38f;  /* finite */
    big[70001] = 1.0e-45f; /* subnormal */
    EXPECT_OK(ops->count_nonfinite(K, big, OOMB_F32, nb, &c));
    cr_expect_eq(c, 6);
}

/* ============================================================ int8 ======= */

Test(kernels_cpu, quantize_rows_matches_naive)
{
    seed(23);
    int64_t R = 6, C = 37;
    float *x = frand_new(R * C, -3, 3), *s = FALLOC(R), *back = FALLOC(R * C);
    for (int64_t c = 0; c < C; c++)
        x[2 * C + c] = 0.0f; /* an all-zero row */
    int8_t *q = talloc((size_t)(R * C));
    memset(q, 0x55, (size_t)(R * C));
    EXPECT_OK(quant->quantize_rows_i8(K, q, s, x, R, C));
    EXPECT_OK(quant->dequantize_rows_i8(K, back, q, s, R, C));
    for (int64_t r = 0; r < R; r++) {
        float absmax = 0;
        for (int64_t c = 0; c < C; c++)
            absmax = fmaxf(absmax, fabsf(x[r * C + c]));
        cr_expect_eq(s[r], absmax / 127.0f, "row %ld", (long)r);
        int qmax = 0;
        for (int64_t c = 0; c < C; c++) {
            int qi = q[r * C + c];
            cr_assert_leq(abs(qi), 127);
            qmax = abs(qi) > qmax ? abs(qi) : qmax;
            if (absmax > 0)
                cr_assert_eq(qi, (int)lrint(x[r * C + c] / (absmax / 127.0)), "[%ld,%ld]", (long)r,
                             (long)c);
            cr_assert_leq(fabsf(back[r * C + c] - x[r * C + c]), 0.5001f * s[r]);
            cr_assert_eq(back[r * C + c], (float)qi * s[r]);
        }
        cr_expect_eq(qmax, absmax > 0 ? 127 : 0);
    }
    cr_expect_eq(s[2], 0.0f);
}

Test(kernels_cpu, linear_i8_matches_dequantised_reference)
{
    seed(24);
    int64_t B = 5, C = 40, OC = 7;
    float *x = frand_new(B * C, -2, 2), *w = frand_new(OC * C, -1, 1), *bias = frand_new(OC, -1, 1);
    float *xs = FALLOC(B), *ws = FALLOC(OC), *out = FALLOC(B * OC);
    int8_t *xq = talloc((size_t)(B * C)), *wq = talloc((size_t)(OC * C));
    int32_t *acc = talloc((size_t)(B * OC) * 4);
    EXPECT_OK(quant->quantize_rows_i8(K, xq, xs, x, B, C));
    EXPECT_OK(quant->quantize_rows_i8(K, wq, ws, w, OC, C));
    EXPECT_OK(quant->linear_forward_i8(K, out, xq, xs, wq, ws, bias, acc, B, C, OC));

    float *xd = FALLOC(B * C), *wd = FALLOC(OC * C);
    EXPECT_OK(quant->dequantize_rows_i8(K, xd, xq, xs, B, C));
    EXPECT_OK(quant->dequantize_rows_i8(K, wd, wq, ws, OC, C));
    double *ref = DALLOC(B * OC), *exact = DALLOC(B * OC);
    ref_linear(ref, xd, wd, bias, B, C, OC);
    ref_linear(exact, x, w, bias, B, C, OC);
    for (int64_t b = 0; b < B; b++)
        for (int64_t o = 0; o < OC; o++) {
            int32_t s = 0;
            for (int64_t c = 0; c < C; c++)
                s += xq[b * C + c] * wq[o * C + c];
            cr_assert_eq(acc[b * OC + o], s);
        }
    /* against the dequantised operands: the int32 accumulation is exact (asserted above),
     * the result is one product of scales and a bias add, <= 3u = 1.8e-7; measured 6.0e-8.
     * Against the unquantised operands: each operand carries at most half a code, 1/254 of
     * its row's max, so |err| <= sum (|x| |dw| + |w| |dx|) <= C (2 / 254) max|x| max|w|
     * / 2 in the worst case; errors of random sign give sqrt(C) of that: 3e-2 of max
     * |ref| for C = 40 on these ranges (x in [-2, 2]); measured 7.0e-3. */
    cr_expect_lt(rel_err(out, ref, B * OC), 1e-5);
    cr_expect_lt(rel_err(out, exact, B * OC), 3e-2, "quantisation error %g",
                 rel_err(out, exact, B * OC));

    EXPECT_OK(quant->linear_forward_i8(K, out, xq, xs, wq, ws, NULL, acc, B, C, OC));
    ref_linear(ref, xd, wd, NULL, B, C, OC);
    /* as above without the bias; measured 5.6e-8 */
    cr_expect_lt(rel_err(out, ref, B * OC), 1e-5);
}

/* ============================================================ pruning ==== */

Test(kernels_cpu, threshold_pruning_matches_naive)
{
    seed(25);
    int64_t n = 777;
    float thr = 0.3f;
    float *w = frand_new(n, -1, 1), *w0 = FALLOC(n), *x = frand_new(n, -1, 1), *x0 = FALLOC(n);
    memcpy(w0, w, (size_t)n * 4);
    memcpy(x0, x, (size_t)n * 4);
    int64_t below = -1, want = 0;
    for (int64_t i = 0; i < n; i++)
        want += fabsf(w[i]) < thr;
    EXPECT_OK(sparse->count_abs_below(K, w, n, thr, &below));
    cr_expect_eq(below, want);
    cr_expect_gt(want, 0);
    uint8_t *mask = talloc((size_t)n);
    EXPECT_OK(sparse->prune_by_threshold(K, w, mask, n, thr));
    EXPECT_OK(sparse->apply_mask(K, x, mask, n));
    for (int64_t i = 0; i < n; i++) {
        int keep = fabsf(w0[i]) >= thr;
        cr_assert_eq(mask[i], keep);
        cr_assert_eq(w[i], keep ? w0[i] : 0.0f);
        cr_assert_eq(x[i], keep ? x0[i] : 0.0f);
    }
}

Test(kernels_cpu, csr_matches_naive_and_dense_linear)
{
    seed(26);
    int64_t B = 9, C = 45, OC = 13;
    float *w = frand_new(OC * C, -1, 1), *inp = frand_new(B * C, -1, 1),
          *bias = frand_new(OC, -1, 1);
    uint8_t *mask = talloc((size_t)(OC * C));
    EXPECT_OK(sparse->prune_by_threshold(K, w, mask, OC * C, 0.6f));
    for (int64_t c = 0; c < C; c++)
        w[4 * C + c] = 0.0f; /* an empty row */
    int64_t nnz = 0;
    for (int64_t i = 0; i < OC * C; i++)
        nnz += w[i] != 0.0f;
    int32_t *rowptr = talloc((size_t)(OC + 1) * 4);
    uint16_t *colidx = talloc((size_t)nnz * 2);
    float *vals = FALLOC(nnz);
    EXPECT_OK(sparse->dense_to_csr(K, rowptr, colidx, vals, w, OC, C));
    int64_t j = 0;
    cr_assert_eq(rowptr[0], 0);
    for (int64_t o = 0; o < OC; o++) {
        for (int64_t c = 0; c < C; c++)
            if (w[o * C + c] != 0.0f) {
                cr_assert_eq(colidx[j], c);
                cr_assert_eq(vals[j], w[o * C + c]);
                j++;
            }
        cr_assert_eq(rowptr[o + 1], j);
    }
    cr_assert_eq(j, nnz);

    float *out = FALLOC(B * OC), *dense = FALLOC(B * OC);
    EXPECT_OK(sparse->linear_forward_csr(K, out, inp, rowptr, colidx, vals, bias, B, C, OC));
    EXPECT_OK(ops->linear_forward(K, OOMB_F32, dense, inp, w, bias, B, C, OC));
    /* the sparse sum skips the zeros, BLAS sums them in its own order: two float orders of
     * at most C + 1 = 46 terms (rel_err above: 2 x 1.8e-7); measured 7.8e-8 and 1.1e-7 */
    cr_expect_lt(rel_err_ff(out, dense, B * OC), 1e-5);
    EXPECT_OK(sparse->linear_forward_csr(K, out, inp, rowptr, colidx, vals, NULL, B, C, OC));
    EXPECT_OK(ops->linear_forward(K, OOMB_F32, dense, inp, w, NULL, B, C, OC));
    cr_expect_lt(rel_err_ff(out, dense, B * OC), 1e-5);
}

Test(kernels_cpu, linear_csr_rejects_corrupt_structure)
{
    seed(27);
    float inp[4] = {1, 2, 3, 4}, out[2], vals[2] = {1, 1};
    int32_t rowptr[3] = {0, 1, 2};
    uint16_t colidx[2] = {0, 4}; /* column 4 is outside C = 4 */
    EXPECT_INVALID(sparse->linear_forward_csr(K, out, inp, rowptr, colidx, vals, NULL, 1, 4, 2));
    int32_t bad_rows[3] = {0, 2, 1};
    uint16_t ok_cols[2] = {0, 3};
    EXPECT_INVALID(sparse->linear_forward_csr(K, out, inp, bad_rows, ok_cols, vals, NULL, 1, 4, 2));
    int32_t bad_start[3] = {1, 1, 2};
    EXPECT_INVALID(
        sparse->linear_forward_csr(K, out, inp, bad_start, ok_cols, vals, NULL, 1, 4, 2));
    EXPECT_OK(sparse->linear_forward_csr(K, out, inp, rowptr, ok_cols, vals, NULL, 1, 4, 2));
    cr_expect_eq(out[0], 1.0f);
    cr_expect_eq(out[1], 4.0f);
}

Test(kernels_cpu, compress_2of4_keeps_two_largest_per_group)
{
    seed(28);
    int64_t OC = 6, C = 32;
    float *w = frand_new(OC * C, -1, 1), *w0 = FALLOC(OC * C), *vals = FALLOC(OC * C / 2);
    uint8_t *idx = talloc((size_t)(OC * C / 8));
    memcpy(w0, w, (size_t)(OC * C) * 4);
    EXPECT_OK(sparse->compress_2of4(K, vals, idx, w, OC, C));
    for (int64_t o = 0; o < OC; o++)
        for (int64_t g = 0; g < C / 4; g++) {
            const float *x = w0 + o * C + 4 * g;
            /* naive: rank by magnitude */
            int keep[4] = {0, 0, 0, 0};
            for (int p = 0; p < 4; p++) {
                int larger = 0;
                for (int q = 0; q < 4; q++)
                    larger += fabsf(x[q]) > fabsf(x[p]) || (fabsf(x[q]) == fabsf(x[p]) && q < p);
                keep[p] = larger < 2;
            }
            int nib = (idx[o * (C / 8) + g / 2] >> (4 * (g % 2))) & 0xf;
            int p0 = nib & 3, p1 = nib >> 2;
            cr_assert_lt(p0, p1, "positions ascending");
            cr_assert(keep[p0] && keep[p1], "row %ld group %ld kept %d,%d", (long)o, (long)g, p0,
                      p1);
            cr_assert_eq(vals[o * (C / 2) + 2 * g], x[p0]);
            cr_assert_eq(vals[o * (C / 2) + 2 * g + 1], x[p1]);
            for (int p = 0; p < 4; p++)
                cr_assert_eq(w[o * C + 4 * g + p], keep[p] ? x[p] : 0.0f);
        }
}

Test(kernels_cpu, linear_2of4_matches_dense_of_pruned_weights)
{
    seed(29);
    int64_t B = 11, C = 48, OC = 9;
    float *w = frand_new(OC * C, -1, 1), *inp = frand_new(B * C, -1, 1),
          *bias = frand_new(OC, -1, 1);
    float *vals = FALLOC(OC * C / 2), *out = FALLOC(B * OC), *dense = FALLOC(B * OC);
    uint8_t *idx = talloc((size_t)(OC * C / 8));
    EXPECT_OK(sparse->compress_2of4(K, vals, idx, w, OC, C));
    EXPECT_OK(sparse->linear_forward_2of4(K, out, inp, vals, idx, bias, B, C, OC));
    EXPECT_OK(ops->linear_forward(K, OOMB_F32, dense, inp, w, bias, B, C, OC));
    /* as for CSR: two float orders of at most C/2 + 1 = 25 terms against C + 1 = 49;
     * measured 1.4e-7 and 1.3e-7 */
    cr_expect_lt(rel_err_ff(out, dense, B * OC), 1e-5);
    EXPECT_OK(sparse->linear_forward_2of4(K, out, inp, vals, idx, NULL, B, C, OC));
    EXPECT_OK(ops->linear_forward(K, OOMB_F32, dense, inp, w, NULL, B, C, OC));
    cr_expect_lt(rel_err_ff(out, dense, B * OC), 1e-5);
}

/* ============================================================ invalid ==== */

static float fbuf[64];
static uint16_t hbuf[64];
static int32_t ibuf[64];
static int8_t qbuf[64];
static uint8_t ubuf[64];

Test(kernels_cpu, invalid_memory_ops)
{
    EXPECT_INVALID(ops->to_host(K, NULL, fbuf, 4));
    EXPECT_INVALID(ops->to_device(K, fbuf, NULL, 4));
    EXPECT_INVALID(ops->copy(K, NULL, fbuf, 4));
    EXPECT_INVALID(ops->fill(K, NULL, 4, 1.0f));
    EXPECT_INVALID(ops->fill(K, fbuf, -1, 1.0f));
    EXPECT_INVALID(ops->zero(K, NULL, 4));
    cr_expect_eq(ops->fill(NULL, fbuf, 1, 1.0f), OOMB_ERR_INVALID);
}

Test(kernels_cpu, invalid_linear)
{
    EXPECT_INVALID(ops->linear_forward(K, OOMB_I8, fbuf, fbuf, fbuf, NULL, 2, 2, 2));
    EXPECT_INVALID(ops->linear_forward(K, OOMB_F32, NULL, fbuf, fbuf, NULL, 2, 2, 2));
    EXPECT_INVALID(ops->linear_forward(K, OOMB_F32, fbuf, NULL, fbuf, NULL, 2, 2, 2));
    EXPECT_INVALID(ops->linear_forward(K, OOMB_F32, fbuf, fbuf, NULL, NULL, 2, 2, 2));
    EXPECT_INVALID(ops->linear_forward(K, OOMB_F32, fbuf, fbuf, fbuf, NULL, -1, 2, 2));
    EXPECT_INVALID(ops->linear_forward(K, OOMB_F16, hbuf, hbuf, hbuf, NULL, 2, -2, 2));
    EXPECT_INVALID(
        ops->linear_forward(K, OOMB_F32, fbuf, fbuf, fbuf, NULL, 2, 2, (int64_t)1 << 40));
    EXPECT_INVALID(ops->linear_backward(K, OOMB_F32, fbuf, NULL, NULL, fbuf, fbuf, fbuf, 2, 2, 2));
    EXPECT_INVALID(ops->linear_backward(K, OOMB_F32, fbuf, fbuf, NULL, NULL, fbuf, fbuf, 2, 2, 2));
    EXPECT_INVALID(ops->linear_backward(K, OOMB_F32, fbuf, fbuf, NULL, fbuf, NULL, fbuf, 2, 2, 2));
    EXPECT_INVALID(ops->linear_backward(K, OOMB_F32, fbuf, fbuf, NULL, fbuf, fbuf, NULL, 2, 2, 2));
    EXPECT_INVALID(ops->linear_backward(K, OOMB_U8, fbuf, fbuf, NULL, fbuf, fbuf, fbuf, 2, 2, 2));
    EXPECT_INVALID(ops->linear_backward(K, OOMB_F32, fbuf, fbuf, NULL, fbuf, fbuf, fbuf, 2, 2, -2));
}

Test(kernels_cpu, invalid_activations)
{
    EXPECT_INVALID(ops->relu_forward(K, OOMB_I32, fbuf, fbuf, 4));
    EXPECT_INVALID(ops->relu_forward(K, OOMB_F32, NULL, fbuf, 4));
    EXPECT_INVALID(ops->relu_forward(K, OOMB_F32, fbuf, fbuf, -4));
    EXPECT_INVALID(ops->relu_backward(K, OOMB_F32, fbuf, fbuf, NULL, 4));
    EXPECT_INVALID(ops->gelu_forward(K, OOMB_F16, hbuf, NULL, 4));
    EXPECT_INVALID(ops->gelu_backward(K, OOMB_F32, fbuf, NULL, fbuf, 4));
    EXPECT_INVALID(ops->gelu_backward(K, OOMB_I8, fbuf, fbuf, fbuf, 4));
}

Test(kernels_cpu, invalid_loss)
{
    int32_t t[2] = {0, 5};
    EXPECT_INVALID(ops->softmax_xent_forward(K, fbuf, fbuf + 8, fbuf + 16, t, 2, 4)); /* target 5 */
    t[1] = -1;
    EXPECT_INVALID(ops->softmax_xent_backward(K, fbuf, fbuf + 8, t, 2, 4, 1.0f));
    t[1] = 1;
    EXPECT_INVALID(ops->softmax_xent_forward(K, NULL, fbuf + 8, fbuf + 16, t, 2, 4));
    EXPECT_INVALID(ops->softmax_xent_forward(K, fbuf, NULL, fbuf + 16, t, 2, 4));
    EXPECT_INVALID(ops->softmax_xent_forward(K, fbuf, fbuf + 8, fbuf + 16, NULL, 2, 4));
    EXPECT_INVALID(ops->softmax_xent_forward(K, fbuf, fbuf + 8, fbuf + 16, t, 2, 0));
    EXPECT_INVALID(ops->softmax_xent_forward(K, fbuf, fbuf + 8, fbuf + 16, t, -2, 4));
    EXPECT_INVALID(ops->softmax_xent_backward(K, NULL, fbuf, t, 2, 4, 1.0f));
    EXPECT_INVALID(distill->soft_xent_accumulate(K, fbuf, fbuf + 8, fbuf + 16, fbuf + 24, 2, 4,
                                                 0.0f, 1.0f, 1.0f));
    EXPECT_INVALID(distill->soft_xent_accumulate(K, fbuf, fbuf + 8, fbuf + 16, fbuf + 24, 2, 4, NAN,
                                                 1.0f, 1.0f));
    EXPECT_INVALID(
        distill->soft_xent_accumulate(K, fbuf, fbuf + 8, NULL, fbuf + 24, 2, 4, 1.0f, 1.0f, 1.0f));
    EXPECT_INVALID(distill->soft_xent_accumulate(K, fbuf, fbuf + 8, fbuf + 16, fbuf + 24, 2, -4,
                                                 1.0f, 1.0f, 1.0f));
    int64_t c;
    EXPECT_INVALID(ops->count_correct(K, fbuf, t, 2, 4, NULL));
    EXPECT_INVALID(ops->count_correct(K, NULL, t, 2, 4, &c));
    EXPECT_INVALID(ops->count_correct(K, fbuf, t, 2, 0, &c));
}

Test(kernels_cpu, invalid_optimizers)
{
    EXPECT_INVALID(ops->sgd_update(K, NULL, fbuf, fbuf, 4, 0.1f, 0.9f, 0.0f));
    EXPECT_INVALID(ops->sgd_update(K, fbuf, fbuf, NULL, 4, 0.1f, 0.9f, 0.0f));
    EXPECT_INVALID(ops->sgd_update(K, fbuf, fbuf, fbuf, -4, 0.1f, 0.9f, 0.0f));
    EXPECT_INVALID(ops->adam_update(K, fbuf, fbuf, fbuf, fbuf, 4, 0.1f, 0.9f, 0.999f, 1e-8f, 0, 0));
    EXPECT_INVALID(ops->adam_update(K, fbuf, fbuf, NULL, fbuf, 4, 0.1f, 0.9f, 0.999f, 1e-8f, 0, 1));
    EXPECT_INVALID(ops->adam_update(K, fbuf, fbuf, fbuf, fbuf, 4, 0.1f, 1.0f, 0.999f, 1e-8f, 0, 1));
    EXPECT_INVALID(quant->adam8_update(K, fbuf, fbuf, qbuf, ubuf, fbuf, fbuf, 4, 0, 0.1f, 0.9f,
                                       0.999f, 1e-8f, 0, 1));
    EXPECT_INVALID(quant->adam8_update(K, fbuf, fbuf, qbuf, ubuf, fbuf, fbuf, 4, 2, 0.1f, 0.9f,
                                       0.999f, 1e-8f, 0, 0));
    EXPECT_INVALID(quant->adam8_update(K, fbuf, fbuf, NULL, ubuf, fbuf, fbuf, 4, 2, 0.1f, 0.9f,
                                       0.999f, 1e-8f, 0, 1));
    EXPECT_INVALID(quant->adam8_update(K, fbuf, fbuf, qbuf, ubuf, fbuf, NULL, 4, 2, 0.1f, 0.9f,
                                       0.999f, 1e-8f, 0, 1));
}

Test(kernels_cpu, invalid_elementwise_and_casts)
{
    double d;
    int64_t c;
    EXPECT_INVALID(ops->scale(K, NULL, 4, 2.0f));
    EXPECT_INVALID(ops->axpy(K, fbuf, NULL, 4, 2.0f));
    EXPECT_INVALID(ops->axpy(K, fbuf, fbuf, -1, 2.0f));
    EXPECT_INVALID(ops->sum(K, fbuf, 4, NULL));
    EXPECT_INVALID(ops->sum(K, NULL, 4, &d));
    EXPECT_INVALID(ops->count_nonfinite(K, fbuf, OOMB_I32, 4, &c));
    EXPECT_INVALID(ops->count_nonfinite(K, fbuf, OOMB_F32, 4, NULL));
    EXPECT_INVALID(ops->cast(K, hbuf, OOMB_I8, fbuf, OOMB_F32, 4));
    EXPECT_INVALID(ops->cast(K, hbuf, OOMB_F16, fbuf, OOMB_U8, 4));
    EXPECT_INVALID(ops->cast(K, NULL, OOMB_F16, fbuf, OOMB_F32, 4));
    EXPECT_INVALID(ops->cast(K, hbuf, OOMB_F16, fbuf, OOMB_F32, -4));
}

Test(kernels_cpu, invalid_int8)
{
    EXPECT_INVALID(quant->quantize_rows_i8(K, NULL, fbuf, fbuf, 2, 2));
    EXPECT_INVALID(quant->quantize_rows_i8(K, qbuf, NULL, fbuf, 2, 2));
    EXPECT_INVALID(quant->quantize_rows_i8(K, qbuf, fbuf, fbuf, -2, 2));
    EXPECT_INVALID(quant->dequantize_rows_i8(K, fbuf, qbuf, NULL, 2, 2));
    EXPECT_INVALID(quant->dequantize_rows_i8(K, fbuf, qbuf, fbuf, 2, -2));
    EXPECT_INVALID(quant->linear_forward_i8(K, fbuf, qbuf, fbuf, qbuf, fbuf, NULL, NULL, 2, 2, 2));
    EXPECT_INVALID(quant->linear_forward_i8(K, fbuf, qbuf, NULL, qbuf, fbuf, NULL, ibuf, 2, 2, 2));
    /* the int32 accumulator could overflow */
    EXPECT_INVALID(
        quant->linear_forward_i8(K, fbuf, qbuf, fbuf, qbuf, fbuf, NULL, ibuf, 1, 200000, 1));
    EXPECT_INVALID(quant->linear_forward_i8(K, fbuf, qbuf, fbuf, qbuf, fbuf, NULL, ibuf, -1, 2, 2));
}

Test(kernels_cpu, invalid_pruning_and_sparse)
{
    int64_t c;
    EXPECT_INVALID(sparse->count_abs_below(K, fbuf, 4, 0.5f, NULL));
    EXPECT_INVALID(sparse->count_abs_below(K, NULL, 4, 0.5f, &c));
    EXPECT_INVALID(sparse->prune_by_threshold(K, fbuf, NULL, 4, 0.5f));
    EXPECT_INVALID(sparse->prune_by_threshold(K, fbuf, ubuf, -4, 0.5f));
    EXPECT_INVALID(sparse->apply_mask(K, fbuf, NULL, 4));
    EXPECT_INVALID(sparse->dense_to_csr(K, NULL, hbuf, fbuf, fbuf, 2, 2));
    EXPECT_INVALID(sparse->dense_to_csr(K, ibuf, hbuf, fbuf, NULL, 2, 2));
    EXPECT_INVALID(sparse->dense_to_csr(K, ibuf, hbuf, fbuf, fbuf, -2, 2));
    /* 16-bit column indices: at most 65536 columns */
    EXPECT_INVALID(sparse->dense_to_csr(K, ibuf, hbuf, fbuf, fbuf, 0, 65537));
    EXPECT_OK(sparse->dense_to_csr(K, ibuf, hbuf, fbuf, fbuf, 0, 65536));
    EXPECT_INVALID(sparse->linear_forward_csr(K, fbuf, fbuf, NULL, hbuf, fbuf, NULL, 2, 2, 2));
    EXPECT_INVALID(sparse->linear_forward_csr(K, NULL, fbuf, ibuf, hbuf, fbuf, NULL, 2, 2, 2));
    EXPECT_INVALID(sparse->linear_forward_csr(K, fbuf, fbuf, ibuf, hbuf, fbuf, NULL, 0, 65537, 0));
    /* 2:4 needs C to be a multiple of 8 */
    EXPECT_INVALID(sparse->compress_2of4(K, fbuf, ubuf, fbuf, 2, 4));
    EXPECT_INVALID(sparse->compress_2of4(K, fbuf, ubuf, fbuf, 1, 12));
    EXPECT_INVALID(sparse->compress_2of4(K, NULL, ubuf, fbuf, 1, 8));
    EXPECT_INVALID(sparse->compress_2of4(K, fbuf, ubuf, fbuf, -1, 8));
    EXPECT_INVALID(sparse->linear_forward_2of4(K, fbuf, fbuf, fbuf, ubuf, NULL, 1, 12, 1));
    EXPECT_INVALID(sparse->linear_forward_2of4(K, fbuf, fbuf, fbuf, NULL, NULL, 1, 8, 1));
}

Test(kernels_cpu, last_error_names_the_op_and_argument)
{
    cr_assert_eq(ops->linear_forward(K, OOMB_F32, fbuf, NULL, fbuf, NULL, 2, 2, 2),
                 OOMB_ERR_INVALID);
    const char *e = ops->last_error(K);
    cr_expect(strstr(e, "linear_forward") && strstr(e, "inp"), "message: %s", e);
    cr_assert_eq(sparse->compress_2of4(K, fbuf, ubuf, fbuf, 1, 12), OOMB_ERR_INVALID);
    e = ops->last_error(K);
    cr_expect(strstr(e, "compress_2of4") && strstr(e, "multiple of 8"), "message: %s", e);
}

Test(kernels_cpu, zero_sizes_are_no_ops)
{
    int64_t c = -1;
    double d = -1;
    EXPECT_OK(ops->relu_forward(K, OOMB_F32, NULL, NULL, 0));
    EXPECT_OK(ops->count_nonfinite(K, NULL, OOMB_F16, 0, &c));
    cr_expect_eq(c, 0);
    EXPECT_OK(ops->sum(K, NULL, 0, &d));
    cr_expect_eq(d, 0.0);
    EXPECT_OK(ops->linear_forward(K, OOMB_F32, NULL, NULL, NULL, NULL, 0, 5, 0));
    float dw[6] = {1, 2, 3, 4, 5, 6};
    EXPECT_OK(ops->linear_backward(K, OOMB_F32, NULL, dw, NULL, NULL, NULL, NULL, 0, 2, 3));
    cr_expect_eq(dw[5], 6.0f);
    int32_t rowptr[1] = {7};
    EXPECT_OK(sparse->dense_to_csr(K, rowptr, NULL, NULL, NULL, 0, 4));
    cr_expect_eq(rowptr[0], 0);
}

/* ======================================== vectorised int8 and sparse ===== */

/*
 * The int8 and sparse ops pick their instruction set per call (kernels/cpu/lowp_cpu.h):
 * OOMB_CPU_ISA=scalar forces the plain loops, =avx2 at most AVX2, unset the best the CPU
 * has (AVX-512 VNNI for the int8 GEMM where present). Each test below runs every path
 * the CPU offers against the plain reference loop written here. Criterion runs each
 * test in its own process, so setenv() does not leak into other tests.
 */
#include "cpu/lowp_cpu.h"

static const char *const lowp_paths[] = {"scalar", "avx2", "best"};
#define N_LOWP_PATHS 3

/* Selects path p (an index into lowp_paths) and returns the ISA the kernels now use. */
static const char *lowp_select(int p)
{
    if (strcmp(lowp_paths[p], "best") == 0)
        unsetenv("OOMB_CPU_ISA");
    else
        setenv("OOMB_CPU_ISA", lowp_paths[p], 1);
    const char *isa = oomb_cpu_lowp_isa();
    if (p == 0)
        cr_assert_str_eq(isa, "scalar", "OOMB_CPU_ISA=scalar is not obeyed");
#if defined(__x86_64__) && defined(__GNUC__)
    if (p == 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        cr_assert_str_eq(isa, "avx2", "OOMB_CPU_ISA=avx2 on an AVX2 CPU");
#endif
    return isa;
}

static int8_t rand_i8(void)
{
    return (int8_t)(int)(xorshift() >> 56); /* every code, -128 included */
}

/* xq (B, C) wq (OC, C) random, some columns at the extremes, the rest any code */
static void i8_operands(int8_t *xq, int8_t *wq, int64_t B, int64_t C, int64_t OC)
{
    for (int64_t i = 0; i < B * C; i++)
        xq[i] = rand_i8();
    for (int64_t i = 0; i < OC * C; i++)
        wq[i] = rand_i8();
    for (int64_t c = 0; c < C; c += 7) { /* -128 * -128 pairs: VPMADDUBSW would saturate */
        xq[c] = -128;
        if (OC > 0)
            wq[c] = -128;
    }
}

Test(kernels_cpu, linear_i8_paths_exact_against_reference_loop)
{
    seed(41);
    /* C around and off the vector widths (16 int16, 64 bytes), B and OC off the tiles;
     * then the VNNI path's blocks: every tile height 1..6 (rows of 6), outputs past one
     * panel of 64 and off its 16-output vectors, C in one, two and three panels of at most
     * 512 bytes with 0..3 bytes past the last whole group, B past one block of 256 rows */
    static const int64_t shapes[][3] = {
        {1, 1, 1},      {3, 16, 4},     {5, 17, 7},    {4, 63, 5},      {9, 64, 8},
        {7, 65, 9},     {13, 131, 6},   {2, 200, 11},  {6, 784, 13},    {3, 0, 2},
        {17, 1031, 3},  {1, 2048, 1},   {6, 4, 64},    {12, 512, 65},   {8, 513, 80},
        {10, 1025, 129}, {11, 1030, 10}, {15, 1539, 33}, {259, 100, 70}, {264, 7, 17}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t B = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        int8_t *xq = talloc((size_t)(B * C)), *wq = talloc((size_t)(OC * C));
        i8_operands(xq, wq, B, C, OC);
        float *xs = frand_new(B, 1e-3f, 1e-2f), *ws = frand_new(OC, 1e-3f, 1e-2f);
        float *bias = frand_new(OC, -1, 1), *out = FALLOC(B * OC);
        int32_t *acc = talloc((size_t)(B * OC) * 4), *ref = talloc((size_t)(B * OC) * 4);
        for (int64_t b = 0; b < B; b++)
            for (int64_t o = 0; o < OC; o++) {
                int32_t sum = 0;
                for (int64_t c = 0; c < C; c++)
                    sum += xq[b * C + c] * wq[o * C + c];
                ref[b * OC + o] = sum;
            }
        for (int p = 0; p < N_LOWP_PATHS; p++) {
            const char *isa = lowp_select(p);
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                const float *bi = with_bias ? bias : NULL;
                memset(acc, 0x5a, (size_t)(B * OC) * 4);
                EXPECT_OK(quant->linear_forward_i8(K, out, xq, xs, wq, ws, bi, acc, B, C, OC));
                for (int64_t i = 0; i < B * OC; i++) {
                    int64_t b = i / OC, o = i % OC;
                    cr_assert_eq(acc[i], ref[i], "%s B=%ld C=%ld OC=%ld [%ld,%ld]: %d != %d", isa,
                                 (long)B, (long)C, (long)OC, (long)b, (long)o, acc[i], ref[i]);
                    /* the epilogue rounds as the reference loop does, on every path */
                    float want = (float)ref[i] * xs[b] * ws[o] + (bi ? bi[o] : 0.0f);
                    cr_assert_eq(out[i], want, "%s out [%ld,%ld]", isa, (long)b, (long)o);
                }
            }
        }
    }
}

Test(kernels_cpu, linear_i8_extreme_codes_do_not_saturate)
{
    /* every product 127 * -128 or -128 * -128 over a long row: int16 pair sums would
     * saturate (VPMADDUBSW), int32 lanes must not */
    /* B and OC: full 6 x 64 tiles of the VNNI path and tails of both */
    int64_t B = 13, C = 1000, OC = 70;
    int8_t *xq = talloc((size_t)(B * C)), *wq = talloc((size_t)(OC * C));
    for (int64_t i = 0; i < B * C; i++)
        xq[i] = (i / C) % 2 ? 127 : -128;
    for (int64_t i = 0; i < OC * C; i++)
        wq[i] = -128;
    float *xs = FALLOC(B), *ws = FALLOC(OC), *out = FALLOC(B * OC);
    for (int64_t i = 0; i < B; i++)
        xs[i] = 1;
    for (int64_t i = 0; i < OC; i++)
        ws[i] = 1;
    int32_t *acc = talloc((size_t)(B * OC) * 4);
    for (int p = 0; p < N_LOWP_PATHS; p++) {
        const char *isa = lowp_select(p);
        EXPECT_OK(quant->linear_forward_i8(K, out, xq, xs, wq, ws, NULL, acc, B, C, OC));
        for (int64_t i = 0; i < B * OC; i++)
            cr_assert_eq(acc[i], (i / OC) % 2 ? -127 * 128 * 1000 : 128 * 128 * 1000, "%s [%ld]",
                         isa, (long)i);
    }
}

/* The op's quantisation written out: what every path must give bit for bit. */
static void quantize_reference(int8_t *q, float *s, const float *x, int64_t R, int64_t C)
{
    for (int64_t r = 0; r < R; r++) {
        float absmax = 0.0f;
        for (int64_t c = 0; c < C; c++)
            absmax = fabsf(x[r * C + c]) > absmax ? fabsf(x[r * C + c]) : absmax;
        float inv = absmax > 0.0f ? 127.0f / absmax : 0.0f;
        for (int64_t c = 0; c < C; c++) {
            long v = lrintf(x[r * C + c] * inv);
            q[r * C + c] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
        }
        s[r] = absmax / 127.0f;
    }
}

Test(kernels_cpu, quantize_rows_paths_match_reference_bitwise)
{
    seed(42);
    static const int64_t widths[] = {1, 7, 15, 16, 31, 32, 33, 100, 784};
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
        int64_t R = 7, C = widths[w];
        float *x = frand_new(R * C, -3, 3), *s = FALLOC(R), *sref = FALLOC(R);
        for (int64_t c = 0; c < C; c++) {
            x[1 * C + c] = 0.0f;                    /* all zero */
            x[2 * C + c] *= 1e-39f;                 /* subnormal max: 127 / absmax is inf */
            x[3 * C + c] = (float)(c % 5) - 2.0f;   /* exact ties x.5 after scaling */
        }
        x[4 * C + C / 2] = NAN; /* NaN never becomes the max */
        x[5 * C] = INFINITY;    /* inf max: inv 0 */
        x[6 * C + C - 1] = 1e30f;
        int8_t *q = talloc((size_t)(R * C)), *qref = talloc((size_t)(R * C));
        quantize_reference(qref, sref, x, R, C);
        for (int p = 0; p < N_LOWP_PATHS; p++) {
            const char *isa = lowp_select(p);
            memset(q, 0x55, (size_t)(R * C));
            EXPECT_OK(quant->quantize_rows_i8(K, q, s, x, R, C));
            cr_assert(memcmp(s, sref, (size_t)R * 4) == 0, "%s C=%ld scales", isa, (long)C);
            for (int64_t i = 0; i < R * C; i++)
                cr_assert_eq(q[i], qref[i], "%s C=%ld [%ld]: x=%g", isa, (long)C, (long)i,
                             (double)x[i]);
        }
    }
}

/*
 * The sparse kernels against a double reference, element by element. A float sum of n
 * products in any order, each product rounded once or fused, then a bias added, is
 * within (n + 1) u sum_j |v_j x_j| + u |bias + sum| of the exact value (the classic
 * bound gamma_{n+1}, Higham 2002 ch. 3; u = 2^-24): the vector paths reorder the sum
 * (two accumulators, FMA, column blocks), so only this order-free bound holds for them.
 * The scalar path keeps the reference loop's order and is also checked bit for bit.
 */
static void check_sparse_out(const float *got, const float *want_bits, const double *ref,
                             const double *mag, const int64_t *nnz_row, const char *isa,
                             const char *what, int64_t B, int64_t OC)
{
    const double u = 0x1p-24;
    for (int64_t b = 0; b < B; b++)
        for (int64_t o = 0; o < OC; o++) {
            int64_t i = b * OC + o;
            double bound = (double)(nnz_row[o] + 1) * u * mag[i] + u * fabs(ref[i]) + 1e-300;
            cr_assert_leq(fabs((double)got[i] - ref[i]), bound, "%s %s [%ld,%ld]: %g vs %g", isa,
                          what, (long)b, (long)o, (double)got[i], ref[i]);
            if (strcmp(isa, "scalar") == 0)
                cr_assert_eq(got[i], want_bits[i], "%s %s [%ld,%ld] not the loop's bits", isa,
                             what, (long)b, (long)o);
        }
}

Test(kernels_cpu, linear_csr_paths_against_reference_loop)
{
    seed(43);
    /* B off the 16-row tile, C across the 512-column tile, density 10% and 50% */
    static const int64_t shapes[][3] = {{1, 5, 3},    {16, 45, 13}, {17, 512, 9},
                                        {33, 600, 7}, {5, 1100, 4}, {2, 0, 3}};
    static const float keep[] = {0.1f, 0.5f};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int d = 0; d < 2; d++) {
            int64_t B = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
            float *w = frand_new(OC * C, -1, 1), *inp = frand_new(B * C, -1, 1);
            float *bias = frand_new(OC, -1, 1), *out = FALLOC(B * OC), *loop = FALLOC(B * OC);
            int64_t nnz = 0, *nnz_row = talloc((size_t)OC * 8);
            for (int64_t o = 0; o < OC; o++)
                for (int64_t c = 0; c < C; c++) {
                    if (urand(0, 1) >= keep[d] || o == OC / 2) /* one empty row */
                        w[o * C + c] = 0.0f;
                    nnz += w[o * C + c] != 0.0f;
                    nnz_row[o] += w[o * C + c] != 0.0f;
                }
            int32_t *rowptr = talloc((size_t)(OC + 1) * 4);
            uint16_t *colidx = talloc((size_t)nnz * 2 + 2);
            float *vals = FALLOC(nnz + 1);
            EXPECT_OK(sparse->dense_to_csr(K, rowptr, colidx, vals, w, OC, C));
            double *ref = DALLOC(B * OC), *mag = DALLOC(B * OC);
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                const float *bi = with_bias ? bias : NULL;
                for (int64_t b = 0; b < B; b++)
                    for (int64_t o = 0; o < OC; o++) {
                        double r = 0.0, m = 0.0;
                        float sf = 0.0f;
                        for (int32_t j = rowptr[o]; j < rowptr[o + 1]; j++) {
                            double t = (double)vals[j] * inp[b * C + colidx[j]];
                            r += t;
                            m += fabs(t);
                            sf += vals[j] * inp[b * C + colidx[j]];
                        }
                        ref[b * OC + o] = r + (bi ? bi[o] : 0.0);
                        mag[b * OC + o] = m;
                        loop[b * OC + o] = sf + (bi ? bi[o] : 0.0f);
                    }
                for (int p = 0; p < N_LOWP_PATHS; p++) {
                    const char *isa = lowp_select(p);
                    EXPECT_OK(sparse->linear_forward_csr(K, out, inp, rowptr, colidx, vals, bi, B,
                                                         C, OC));
                    check_sparse_out(out, loop, ref, mag, nnz_row, isa, "csr", B, OC);
                }
            }
        }
}

Test(kernels_cpu, linear_csr_unsorted_columns_take_the_plain_loop)
{
    /* columns descending in a row wider than one column tile: still the right sums */
    int64_t B = 3, C = 1500, OC = 2;
    float *inp = frand_new(B * C, -1, 1), out[6];
    int32_t rowptr[3] = {0, 3, 5};
    uint16_t colidx[5] = {1400, 700, 3, 1499, 0};
    float vals[5] = {0.5f, -2.0f, 1.5f, 3.0f, -1.0f};
    for (int p = 0; p < N_LOWP_PATHS; p++) {
        const char *isa = lowp_select(p);
        EXPECT_OK(sparse->linear_forward_csr(K, out, inp, rowptr, colidx, vals, NULL, B, C, OC));
        for (int64_t b = 0; b < B; b++) {
            const float *x = inp + b * C;
            double r0 = 0.5 * x[1400] - 2.0 * x[700] + 1.5 * x[3], r1 = 3.0 * x[1499] - x[0];
            cr_assert_float_eq(out[b * OC], r0, 1e-5, "%s row %ld", isa, (long)b);
            cr_assert_float_eq(out[b * OC + 1], r1, 1e-5, "%s row %ld", isa, (long)b);
        }
    }
}

Test(kernels_cpu, linear_2of4_paths_against_reference_loop)
{
    seed(44);
    static const int64_t shapes[][3] = {{1, 8, 3},    {16, 48, 13},   {17, 512, 9},
                                        {35, 520, 7}, {5, 1032, 4},   {2, 0, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t B = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        float *w = frand_new(OC * C, -1, 1), *inp = frand_new(B * C, -1, 1);
        float *bias = frand_new(OC, -1, 1), *out = FALLOC(B * OC), *loop = FALLOC(B * OC);
        float *vals = FALLOC(OC * C / 2 + 1);
        uint8_t *idx = talloc((size_t)(OC * C / 8) + 1);
        EXPECT_OK(sparse->compress_2of4(K, vals, idx, w, OC, C));
        int64_t *nnz_row = talloc((size_t)OC * 8);
        for (int64_t o = 0; o < OC; o++)
            nnz_row[o] = C / 2;
        double *ref = DALLOC(B * OC), *mag = DALLOC(B * OC);
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            const float *bi = with_bias ? bias : NULL;
            for (int64_t b = 0; b < B; b++)
                for (int64_t o = 0; o < OC; o++) {
                    /* the pruned dense row (w has the dropped weights zeroed) in double, and
                     * the op's plain loop in float for the scalar path's bits */
                    double r = 0.0, m = 0.0;
                    for (int64_t c = 0; c < C; c++) {
                        double t = (double)w[o * C + c] * inp[b * C + c];
                        r += t;
                        m += fabs(t);
                    }
                    const float *x = inp + b * C, *v = vals + o * (C / 2);
                    const uint8_t *ir = idx + o * (C / 8);
                    float sf = 0.0f;
                    for (int64_t j = 0; j < C / 8; j++) {
                        unsigned by = ir[j];
                        const float *x0 = x + 8 * j, *v0 = v + 4 * j;
                        sf += v0[0] * x0[by & 3u] + v0[1] * x0[(by >> 2) & 3u];
                        sf += v0[2] * x0[4 + ((by >> 4) & 3u)] + v0[3] * x0[4 + ((by >> 6) & 3u)];
                    }
                    ref[b * OC + o] = r + (bi ? bi[o] : 0.0);
                    mag[b * OC + o] = m;
                    loop[b * OC + o] = sf + (bi ? bi[o] : 0.0f);
                }
            for (int p = 0; p < N_LOWP_PATHS; p++) {
                const char *isa = lowp_select(p);
                EXPECT_OK(sparse->linear_forward_2of4(K, out, inp, vals, idx, bi, B, C, OC));
                check_sparse_out(out, loop, ref, mag, nnz_row, isa, "2:4", B, OC);
            }
        }
    }
}
