/*
 * oombench-roofline: the device's measured peaks next to the throughput the
 * harness's own kernels achieve on it.
 *
 * Peaks are measured, not taken from a data sheet: memory bandwidth from a
 * device-to-device ops->copy of a large buffer, compute from a large square
 * linear_forward in F32 and F16. The harness's layers (linear forward and
 * backward at the scenario's shapes) are then reported as a fraction of the
 * GEMM peak of their dtype, and the element-wise kernels (ReLU, GELU, Adam,
 * the F32->F16 cast) as a fraction of the copy bandwidth. Everything runs
 * through the backend interface (kernels/backend.h), so the same program
 * measures the CPU backend and the CUDA backend.
 *
 * Memory comes from the backend's raw_alloc: this is a benchmark of kernels,
 * not a tracked run. Every number is the median of --reps timed repetitions
 * after OOMB_ROOF_WARMUP untimed ones, timed between two backend timer marks
 * (CUDA events on the GPU). See docs/roofline.md for how bytes and flops are
 * counted.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "backend.h"
#include "util.h"

#define OOMB_ROOF_WARMUP 3
#define OOMB_ROOF_MAX_SHAPES 32
#define OOMB_ROOF_MAX_RESULTS 256
#define OOMB_ROOF_MAX_ALLOCS 16
#define OOMB_ROOF_MAX_REPS 100000

#define MIB ((size_t)1 << 20)

/* Exit codes of main (as the oombench CLI). */
enum { EXIT_OK = 0, EXIT_USAGE = 2, EXIT_INTERNAL = 3 };

/* Buffer sizes of the peak and element-wise measurements. */
struct roof_sizes {
    size_t copy_bytes; /* copy peak: bytes of one buffer */
    int64_t gemm_n;    /* GEMM peak: M = N = K */
    int64_t ew_small;  /* element-wise, a layer's activation: B*1024 for B = 256 */
    int64_t ew_big;    /* element-wise, a big buffer */
    int64_t adam_n;    /* Adam: parameters */
};

/* One measured row of the table. `peak` is the reference it is compared with
 * (the copy peak for bandwidth rows, the GEMM peak of its dtype for compute
 * rows); for compute rows `bytes` is the compulsory traffic (each operand read
 * or written once) and `roof` the roofline bound min(peak, flops/bytes * bw). */
struct roof_result {
    char name[40];
    char group[16];    /* "peak", "layer", "elementwise" */
    const char *dtype; /* "f32", "f16", "bytes" */
    char shape[48];    /* text for the table */
    int64_t dims[3];   /* B, C, OC for GEMMs; n (elements or bytes) in dims[0] */
    int n_dims;
    int compute; /* 1: achieved in TFLOP/s; 0: achieved in GB/s */
    double bytes_read, bytes_written;
    double flops;
    char counting[96]; /* how bytes or flops were counted, as a formula */
    double median_ns, min_ns, max_ns;
    double *samples_ns; /* reps values, owned by the result */
    double achieved;    /* TFLOP/s or GB/s; 0 when time was not measurable */
    double peak, ratio;
    double roof, ratio_roof; /* compute rows only */
};

struct roof {
    struct oomb_kernel_backend *b;
    const struct oomb_ops *ops;
    void *k;
    int reps;
    char err[512];

    /* Live raw allocations, released in bulk by roof_release. */
    void *allocs[OOMB_ROOF_MAX_ALLOCS];
    int n_allocs;

    struct roof_result results[OOMB_ROOF_MAX_RESULTS];
    int n_results;

    double peak_bw_gbps;
    double peak_tflops[2]; /* by dtype: [OOMB_F32], [OOMB_F16] */
};

/* ------------------------------------------------------------ helpers ---- */

static const char *dt_name(enum oomb_dtype dt)
{
    return dt == OOMB_F16 ? "f16" : "f32";
}
static size_t dt_size(enum oomb_dtype dt)
{
    return dt == OOMB_F16 ? 2 : 4;
}

/* Records the failing op's message; returns rc. */
static int op_fail(struct roof *r, int rc, const char *what)
{
    const char *e = r->ops->last_error ? r->ops->last_error(r->k) : NULL;
    oomb_errf(r->err, sizeof r->err, "%s: %s (%s)", what, e && *e ? e : "no detail",
              oomb_strerror(rc));
    return rc;
}

static int roof_alloc(struct roof *r, size_t bytes, const char *what, void **out)
{
    *out = NULL;
    if (r->n_allocs == OOMB_ROOF_MAX_ALLOCS) {
        oomb_errf(r->err, sizeof r->err, "%s: more than %d live buffers", what,
                  OOMB_ROOF_MAX_ALLOCS);
        return OOMB_ERR_INTERNAL;
    }
    int rc = r->b->raw_alloc(r->k, bytes, out);
    if (rc != OOMB_OK) {
        *out = NULL;
        return op_fail(r, rc, what);
    }
    r->allocs[r->n_allocs++] = *out;
    return OOMB_OK;
}

/* Frees every buffer allocated after the first `keep` (after a sync, so that
 * no queued kernel still uses them). */
static void roof_release(struct roof *r, int keep)
{
    (void)r->b->sync(r->k);
    while (r->n_allocs > keep)
        r->b->raw_free(r->k, r->allocs[--r->n_allocs]);
}

/* x (n) of dtype dt = value. F16 goes through an F32 scratch buffer and a
 * cast, since ops->fill is F32 only. */
static int fill_dt(struct roof *r, void *x, enum oomb_dtype dt, int64_t n, float value)
{
    int rc;
    if (dt == OOMB_F32) {
        if ((rc = r->ops->fill(r->k, x, n, value)) != OOMB_OK)
            return op_fail(r, rc, "fill");
        return OOMB_OK;
    }
    int keep = r->n_allocs;
    void *tmp;
    if ((rc = roof_alloc(r, (size_t)n * sizeof(float), "fill scratch", &tmp)) != OOMB_OK)
        return rc;
    if ((rc = r->ops->fill(r->k, tmp, n, value)) != OOMB_OK)
        rc = op_fail(r, rc, "fill");
    else if ((rc = r->ops->cast(r->k, x, OOMB_F16, tmp, OOMB_F32, n)) != OOMB_OK)
        rc = op_fail(r, rc, "cast for fill");
    roof_release(r, keep);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One call of the kernel being measured. */
typedef int (*roof_fn)(struct roof *r, void *arg);

/*
 * Runs fn OOMB_ROOF_WARMUP times untimed, then r->reps times, each between two
 * timer marks. The marks are queued with the work (no sync between
 * repetitions), so on CUDA a repetition's time is the GPU time between two
 * events and excludes the host's launch gaps. Fills the times of `res`.
 */
static int roof_time(struct roof *r, roof_fn fn, void *arg, struct roof_result *res)
{
    int rc;
    int *marks = NULL;
    double *t = NULL;

    for (int i = 0; i < OOMB_ROOF_WARMUP; i++)
        if ((rc = fn(r, arg)) != OOMB_OK)
            return rc;
    if ((rc = r->b->sync(r->k)) != OOMB_OK)
        return op_fail(r, rc, "sync");

    marks = malloc((size_t)r->reps * 2 * sizeof *marks);
    t = malloc((size_t)r->reps * sizeof *t);
    if (!marks || !t) {
        oomb_errf(r->err, sizeof r->err, "timing: out of host memory");
        rc = OOMB_ERR_INTERNAL;
        goto fail;
    }
    r->b->timer_reset(r->k);
    for (int i = 0; i < r->reps; i++) {
        if ((rc = r->b->timer_mark(r->k, &marks[2 * i])) != OOMB_OK) {
            rc = op_fail(r, rc, "timer_mark");
            goto fail;
        }
        if ((rc = fn(r, arg)) != OOMB_OK)
            goto fail;
        if ((rc = r->b->timer_mark(r->k, &marks[2 * i + 1])) != OOMB_OK) {
            rc = op_fail(r, rc, "timer_mark");
            goto fail;
        }
    }
    if ((rc = r->b->sync(r->k)) != OOMB_OK) {
        rc = op_fail(r, rc, "sync");
        goto fail;
    }
    for (int i = 0; i < r->reps; i++) {
        int64_t t0, t1;
        if ((rc = r->b->timer_resolve(r->k, marks[2 * i], &t0)) != OOMB_OK ||
            (rc = r->b->timer_resolve(r->k, marks[2 * i + 1], &t1)) != OOMB_OK) {
            rc = op_fail(r, rc, "timer_resolve");
            goto fail;
        }
        t[i] = (double)(t1 - t0);
    }
    r->b->timer_reset(r->k);

    free(marks);
    marks = NULL;
    double *s = malloc((size_t)r->reps * sizeof *s);
    if (!s) {
        oomb_errf(r->err, sizeof r->err, "timing: out of host memory");
        rc = OOMB_ERR_INTERNAL;
        goto fail;
    }
    memcpy(s, t, (size_t)r->reps * sizeof *s);
    qsort(s, (size_t)r->reps, sizeof *s, cmp_double);
    int n = r->reps;
    res->median_ns = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    res->min_ns = s[0];
    res->max_ns = s[n - 1];
    res->samples_ns = t;
    free(s);
    return OOMB_OK;

fail:
    free(marks);
    free(t);
    return rc;
}

static struct roof_result *new_result(struct roof *r, const char *group, const char *name,
                                      const char *dtype)
{
    if (r->n_results == OOMB_ROOF_MAX_RESULTS) {
        oomb_errf(r->err, sizeof r->err, "more than %d results", OOMB_ROOF_MAX_RESULTS);
        return NULL;
    }
    struct roof_result *res = &r->results[r->n_results];
    memset(res, 0, sizeof *res);
    snprintf(res->group, sizeof res->group, "%s", group);
    snprintf(res->name, sizeof res->name, "%s", name);
    res->dtype = dtype;
    return res;
}

/* Derives achieved throughput and ratios once the times are in; commits the row. */
static void finish_result(struct roof *r, struct roof_result *res, double peak)
{
    double secs = res->median_ns * 1e-9;
    double bytes = res->bytes_read + res->bytes_written;
    if (secs > 0.0)
        res->achieved = res->compute ? res->flops / secs * 1e-12 : bytes / secs * 1e-9;
    res->peak = peak;
    res->ratio = peak > 0.0 ? res->achieved / peak : 0.0;
    if (res->compute && bytes > 0.0) {
        double bw_bound = res->flops / bytes * r->peak_bw_gbps * 1e-3; /* TFLOP/s */
        res->roof = peak > 0.0 && peak < bw_bound ? peak : bw_bound;
        res->ratio_roof = res->roof > 0.0 ? res->achieved / res->roof : 0.0;
    }
    r->n_results++;
}

/* ------------------------------------------------------------ kernels ---- */

struct copy_arg {
    void *dst, *src;
    size_t bytes;
};

static int run_copy(struct roof *r, void *a)
{
    struct copy_arg *c = a;
    int rc = r->ops->copy(r->k, c->dst, c->src, c->bytes);
    return rc == OOMB_OK ? OOMB_OK : op_fail(r, rc, "copy");
}

struct linear_arg {
    enum oomb_dtype dt;
    void *out, *inp, *weight, *dinp, *dout;
    float *bias, *dweight, *dbias;
    int with_bias; /* forward: allocate and pass a bias, as the harness's layers have */
    int64_t B, C, OC;
};

static int run_linear_forward(struct roof *r, void *a)
{
    struct linear_arg *l = a;
    int rc =
        r->ops->linear_forward(r->k, l->dt, l->out, l->inp, l->weight, l->bias, l->B, l->C, l->OC);
    return rc == OOMB_OK ? OOMB_OK : op_fail(r, rc, "linear_forward");
}

static int run_linear_backward(struct roof *r, void *a)
{
    struct linear_arg *l = a;
    int rc = r->ops->linear_backward(r->k, l->dt, l->dinp, l->dweight, l->dbias, l->dout, l->inp,
                                     l->weight, l->B, l->C, l->OC);
    return rc == OOMB_OK ? OOMB_OK : op_fail(r, rc, "linear_backward");
}

enum ew_kind { EW_RELU, EW_GELU, EW_CAST, EW_ADAM };

struct ew_arg {
    enum ew_kind kind;
    void *out, *inp;             /* relu, gelu, cast (out F16 for cast) */
    float *param, *grad, *m, *v; /* adam */
    int64_t n;
    int64_t t; /* adam step, 1-based */
};

static int run_ew(struct roof *r, void *a)
{
    struct ew_arg *e = a;
    int rc = OOMB_OK;
    const char *what = "";
    switch (e->kind) {
    case EW_RELU:
        what = "relu_forward";
        rc = r->ops->relu_forward(r->k, OOMB_F32, e->out, e->inp, e->n);
        break;
    case EW_GELU:
        what = "gelu_forward";
        rc = r->ops->gelu_forward(r->k, OOMB_F32, e->out, e->inp, e->n);
        break;
    case EW_CAST:
        what = "cast";
        rc = r->ops->cast(r->k, e->out, OOMB_F16, e->inp, OOMB_F32, e->n);
        break;
    case EW_ADAM:
        what = "adam_update";
        /* A small lr keeps the parameters finite over any number of steps. */
        rc = r->ops->adam_update(r->k, e->param, e->grad, e->m, e->v, e->n, 1e-6f, 0.9f, 0.999f,
                                 1e-8f, 0.0f, ++e->t);
        break;
    }
    return rc == OOMB_OK ? OOMB_OK : op_fail(r, rc, what);
}

/* ------------------------------------------------------------ measures --- */

static void fmt_bytes(char *dst, size_t len, double b)
{
    if (b >= 1024.0 * 1024 * 1024)
        snprintf(dst, len, "%.0f GiB", b / (1024.0 * 1024 * 1024));
    else if (b >= 1024.0 * 1024)
        snprintf(dst, len, "%.0f MiB", b / (1024.0 * 1024));
    else
        snprintf(dst, len, "%.0f KiB", b / 1024.0);
}

static void fmt_count(char *dst, size_t len, int64_t n)
{
    if (n >= (1 << 20) && n % (1 << 20) == 0)
        snprintf(dst, len, "%" PRId64 "M", n >> 20);
    else if (n >= (1 << 10) && n % (1 << 10) == 0)
        snprintf(dst, len, "%" PRId64 "K", n >> 10);
    else
        snprintf(dst, len, "%" PRId64, n);
}

static int measure_copy(struct roof *r, size_t bytes)
{
    int keep = r->n_allocs, rc;
    struct copy_arg c = {.bytes = bytes};
    struct roof_result *res = new_result(r, "peak", "copy", "bytes");
    if (!res)
        return OOMB_ERR_INTERNAL;
    if ((rc = roof_alloc(r, bytes, "copy src", &c.src)) != OOMB_OK ||
        (rc = roof_alloc(r, bytes, "copy dst", &c.dst)) != OOMB_OK ||
        (rc = fill_dt(r, c.src, OOMB_F32, (int64_t)(bytes / sizeof(float)), 1.5f)) != OOMB_OK ||
        (rc = fill_dt(r, c.dst, OOMB_F32, (int64_t)(bytes / sizeof(float)), 0.5f)) != OOMB_OK)
        goto out;
    fmt_bytes(res->shape, sizeof res->shape, (double)bytes);
    res->dims[0] = (int64_t)bytes;
    res->n_dims = 1;
    res->bytes_read = (double)bytes;
    res->bytes_written = (double)bytes;
    snprintf(res->counting, sizeof res->counting, "read n + write n bytes, n = %zu", bytes);
    if ((rc = roof_time(r, run_copy, &c, res)) != OOMB_OK)
        goto out;
    r->peak_bw_gbps = res->median_ns > 0.0 ? (2.0 * (double)bytes) / res->median_ns : 0.0;
    finish_result(r, res, r->peak_bw_gbps);
out:
    roof_release(r, keep);
    return rc;
}

/* Allocates and fills the buffers of a linear layer (B, C) -> (B, OC). */
static int linear_setup(struct roof *r, struct linear_arg *l, int backward)
{
    int rc;
    size_t es = dt_size(l->dt);
    int64_t B = l->B, C = l->C, OC = l->OC;
    if ((rc = roof_alloc(r, (size_t)(B * C) * es, "inp", &l->inp)) != OOMB_OK ||
        (rc = roof_alloc(r, (size_t)(OC * C) * es, "weight", &l->weight)) != OOMB_OK ||
        (rc = fill_dt(r, l->inp, l->dt, B * C, 0.25f)) != OOMB_OK ||
        (rc = fill_dt(r, l->weight, l->dt, OC * C, 0.01f)) != OOMB_OK)
        return rc;
    if (!backward) {
        if ((rc = roof_alloc(r, (size_t)(B * OC) * es, "out", &l->out)) != OOMB_OK ||
            (rc = fill_dt(r, l->out, l->dt, B * OC, 1.0f)) != OOMB_OK)
            return rc;
        if (l->with_bias) {
            void *p;
            if ((rc = roof_alloc(r, (size_t)OC * sizeof(float), "bias", &p)) != OOMB_OK ||
                (rc = fill_dt(r, p, OOMB_F32, OC, 0.1f)) != OOMB_OK)
                return rc;
            l->bias = p;
        }
        return OOMB_OK;
    }
    void *dw, *db;
    if ((rc = roof_alloc(r, (size_t)(B * OC) * es, "dout", &l->dout)) != OOMB_OK ||
        (rc = roof_alloc(r, (size_t)(B * C) * es, "dinp", &l->dinp)) != OOMB_OK ||
        (rc = roof_alloc(r, (size_t)(OC * C) * sizeof(float), "dweight", &dw)) != OOMB_OK ||
        (rc = roof_alloc(r, (size_t)OC * sizeof(float), "dbias", &db)) != OOMB_OK ||
        (rc = fill_dt(r, l->dout, l->dt, B * OC, 0.01f)) != OOMB_OK ||
        (rc = fill_dt(r, l->dinp, l->dt, B * C, 1.0f)) != OOMB_OK ||
        (rc = fill_dt(r, dw, OOMB_F32, OC * C, 0.001f)) != OOMB_OK ||
        (rc = fill_dt(r, db, OOMB_F32, OC, 0.001f)) != OOMB_OK)
        return rc;
    l->dweight = dw;
    l->dbias = db;
    return OOMB_OK;
}

/* The peak GEMM: out (n, n) = inp (n, n) weight (n, n)^T, no bias. */
static int measure_gemm_peak(struct roof *r, enum oomb_dtype dt, int64_t n)
{
    int keep = r->n_allocs, rc;
    struct linear_arg l = {.dt = dt, .B = n, .C = n, .OC = n};
    struct roof_result *res = new_result(r, "peak", "gemm", dt_name(dt));
    if (!res)
        return OOMB_ERR_INTERNAL;
    if ((rc = linear_setup(r, &l, 0)) != OOMB_OK)
        goto out;
    snprintf(res->shape, sizeof res->shape, "M=N=K=%" PRId64, n);
    res->dims[0] = res->dims[1] = res->dims[2] = n;
    res->n_dims = 3;
    res->compute = 1;
    res->flops = 2.0 * (double)n * (double)n * (double)n;
    res->bytes_read = 2.0 * (double)(n * n) * (double)dt_size(dt);
    res->bytes_written = (double)(n * n) * (double)dt_size(dt);
    snprintf(res->counting, sizeof res->counting, "2*M*N*K");
    if ((rc = roof_time(r, run_linear_forward, &l, res)) != OOMB_OK)
        goto out;
    double tf = res->median_ns > 0.0 ? res->flops / res->median_ns * 1e-3 : 0.0;
    r->peak_tflops[dt] = tf;
    finish_result(r, res, tf);
out:
    roof_release(r, keep);
    return rc;
}

/* A layer of the harness: linear (B, C) -> (B, OC) with bias, forward or backward. */
static int measure_layer(struct roof *r, enum oomb_dtype dt, const int64_t shape[3], int backward)
{
    int keep = r->n_allocs, rc;
    struct linear_arg l = {
        .dt = dt, .B = shape[0], .C = shape[1], .OC = shape[2], .with_bias = !backward};
    double B = (double)l.B, C = (double)l.C, OC = (double)l.OC, es = (double)dt_size(dt);
    struct roof_result *res =
        new_result(r, "layer", backward ? "linear_backward" : "linear_forward", dt_name(dt));
    if (!res)
        return OOMB_ERR_INTERNAL;
    if ((rc = linear_setup(r, &l, backward)) != OOMB_OK)
        goto out;
    snprintf(res->shape, sizeof res->shape, "B=%" PRId64 " %" PRId64 "->%" PRId64, l.B, l.C, l.OC);
    res->dims[0] = l.B;
    res->dims[1] = l.C;
    res->dims[2] = l.OC;
    res->n_dims = 3;
    res->compute = 1;
    if (!backward) {
        res->flops = 2.0 * B * C * OC;
        res->bytes_read = (B * C + OC * C) * es + OC * 4.0;
        res->bytes_written = B * OC * es;
        snprintf(res->counting, sizeof res->counting, "2*B*C*OC (bias add not counted)");
    } else {
        /* dinp = dout W and dweight += dout^T inp; dweight and dbias are
         * read and written (they accumulate) and always FP32. */
        res->flops = 4.0 * B * C * OC;
        res->bytes_read = (B * OC + B * C + OC * C) * es + (OC * C + OC) * 4.0;
        res->bytes_written = B * C * es + (OC * C + OC) * 4.0;
        snprintf(res->counting, sizeof res->counting,
                 "4*B*C*OC (dinp + dweight; dbias sum not counted)");
    }
    if ((rc = roof_time(r, backward ? run_linear_backward : run_linear_forward, &l, res)) !=
        OOMB_OK)
        goto out;
    finish_result(r, res, r->peak_tflops[dt]);
out:
    roof_release(r, keep);
    return rc;
}

static int measure_ew(struct roof *r, enum ew_kind kind, int64_t n)
{
    static const char *const names[] = {"relu_forward", "gelu_forward", "cast_f32_f16",
                                        "adam_update"};
    int keep = r->n_allocs, rc;
    struct ew_arg e = {.kind = kind, .n = n};
    struct roof_result *res = new_result(r, "elementwise", names[kind], "f32");
    if (!res)
        return OOMB_ERR_INTERNAL;
    size_t f4 = (size_t)n * sizeof(float);
    double nd = (double)n;
    fmt_count(res->shape, sizeof res->shape, n);
    res->dims[0] = n;
    res->n_dims = 1;
    switch (kind) {
    case EW_RELU:
    case EW_GELU:
        if ((rc = roof_alloc(r, f4, "inp", &e.inp)) != OOMB_OK ||
            (rc = roof_alloc(r, f4, "out", &e.out)) != OOMB_OK ||
            (rc = fill_dt(r, e.inp, OOMB_F32, n, 0.5f)) != OOMB_OK ||
            (rc = fill_dt(r, e.out, OOMB_F32, n, 1.0f)) != OOMB_OK)
            goto out;
        res->bytes_read = 4.0 * nd;
        res->bytes_written = 4.0 * nd;
        snprintf(res->counting, sizeof res->counting, "read 4n + write 4n");
        break;
    case EW_CAST:
        res->dtype = "f32->f16";
        if ((rc = roof_alloc(r, f4, "inp", &e.inp)) != OOMB_OK ||
            (rc = roof_alloc(r, (size_t)n * 2, "out", &e.out)) != OOMB_OK ||
            (rc = fill_dt(r, e.inp, OOMB_F32, n, 0.5f)) != OOMB_OK ||
            (rc = fill_dt(r, e.out, OOMB_F16, n, 1.0f)) != OOMB_OK)
            goto out;
        res->bytes_read = 4.0 * nd;
        res->bytes_written = 2.0 * nd;
        snprintf(res->counting, sizeof res->counting, "read 4n + write 2n");
        break;
    case EW_ADAM: {
        void *p, *g, *m, *v;
        if ((rc = roof_alloc(r, f4, "param", &p)) != OOMB_OK ||
            (rc = roof_alloc(r, f4, "grad", &g)) != OOMB_OK ||
            (rc = roof_alloc(r, f4, "m", &m)) != OOMB_OK ||
            (rc = roof_alloc(r, f4, "v", &v)) != OOMB_OK ||
            (rc = fill_dt(r, p, OOMB_F32, n, 0.5f)) != OOMB_OK ||
            (rc = fill_dt(r, g, OOMB_F32, n, 0.01f)) != OOMB_OK ||
            (rc = fill_dt(r, m, OOMB_F32, n, 0.001f)) != OOMB_OK ||
            (rc = fill_dt(r, v, OOMB_F32, n, 0.0001f)) != OOMB_OK)
            goto out;
        e.param = p;
        e.grad = g;
        e.m = m;
        e.v = v;
        res->bytes_read = 16.0 * nd;
        res->bytes_written = 12.0 * nd;
        snprintf(res->counting, sizeof res->counting,
                 "read param,grad,m,v 16n + write param,m,v 12n");
        break;
    }
    }
    if ((rc = roof_time(r, run_ew, &e, res)) != OOMB_OK)
        goto out;
    finish_result(r, res, r->peak_bw_gbps);
out:
    roof_release(r, keep);
    return rc;
}

/* ------------------------------------------------------------ output ----- */

static void fmt_time(char *dst, size_t len, double ns)
{
    if (ns >= 1e9)
        snprintf(dst, len, "%.3f s", ns * 1e-9);
    else if (ns >= 1e6)
        snprintf(dst, len, "%.3f ms", ns * 1e-6);
    else
        snprintf(dst, len, "%.2f us", ns * 1e-3);
}

static void fmt_rate(char *dst, size_t len, double v, int compute)
{
    if (v <= 0.0 || !isfinite(v))
        snprintf(dst, len, "n/a");
    else if (compute)
        snprintf(dst, len, v < 0.1 ? "%.4f TFLOP/s" : "%.3f TFLOP/s", v);
    else
        snprintf(dst, len, "%.1f GB/s", v);
}

/* 1.23e9 -> "1.23 G" */
static void fmt_si(char *dst, size_t len, double v, const char *unit)
{
    static const char *const pre[] = {"", "K", "M", "G", "T", "P"};
    int i = 0;
    while (v >= 1000.0 && i < 5) {
        v /= 1000.0;
        i++;
    }
    snprintf(dst, len, "%.3g %s%s", v, pre[i], unit);
}

static void print_table(const struct roof *r, const char *device_arg)
{
    const struct oomb_device_info *d = &r->b->info;
    printf("oombench-roofline %s on %s (device %s %d)\n", OOMB_VERSION, d->name ? d->name : "?",
           d->backend ? d->backend : device_arg, d->index);
    if (d->driver && *d->driver)
        printf("  driver:  %s\n", d->driver);
    printf("  runtime: %s\n", d->runtime && *d->runtime ? d->runtime : "-");
    if (d->cc_major)
        printf("  compute capability %d.%d, %.1f GiB\n", d->cc_major, d->cc_minor,
               (double)d->total_bytes / (1024.0 * 1024 * 1024));
    printf("  median of %d repetitions after %d warm-ups; peak = measured copy bandwidth or "
           "GEMM of the same dtype\n\n",
           r->reps, OOMB_ROOF_WARMUP);
    printf("%-16s %-8s %-18s %10s %15s %15s %6s %6s  %s\n", "kernel", "dtype", "shape", "median",
           "achieved", "peak", "ratio", "roof", "moved / work");
    const char *group = "";
    for (int i = 0; i < r->n_results; i++) {
        const struct roof_result *x = &r->results[i];
        if (strcmp(group, x->group) != 0) {
            group = x->group;
            printf("-- %s\n", group);
        }
        char tm[24], ach[32], pk[32], ratio[16], roof[16], work[64], mv[24];
        fmt_time(tm, sizeof tm, x->median_ns);
        fmt_rate(ach, sizeof ach, x->achieved, x->compute);
        fmt_rate(pk, sizeof pk, x->peak, x->compute);
        snprintf(ratio, sizeof ratio, "%.2f", x->ratio);
        if (x->compute)
            snprintf(roof, sizeof roof, "%.2f", x->ratio_roof);
        else
            snprintf(roof, sizeof roof, "-");
        fmt_si(mv, sizeof mv, x->bytes_read + x->bytes_written, "B");
        if (x->compute) {
            char fl[24];
            fmt_si(fl, sizeof fl, x->flops, "FLOP");
            snprintf(work, sizeof work, "%s / %s", mv, fl);
        } else {
            snprintf(work, sizeof work, "%s", mv);
        }
        printf("%-16s %-8s %-18s %10s %15s %15s %6s %6s  %s\n", x->name, x->dtype, x->shape, tm,
               ach, pk, ratio, roof, work);
    }
    printf("\nratio: achieved / peak. roof: achieved / min(peak GEMM, flops/bytes x copy "
           "bandwidth),\nbytes being each operand read or written once. Element-wise ratios "
           "above 1 mean the\ndata stayed in a cache (see docs/roofline.md).\n");
}

/* json_real refuses NaN and infinities; they become null (and fail the test). */
static json_t *jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static int set_new(json_t *o, const char *key, json_t *v)
{
    return v ? json_object_set_new(o, key, v) : -1;
}

static json_t *build_json(const struct roof *r, const struct roof_sizes *sz, int quick,
                          const int64_t (*shapes)[3], int n_shapes)
{
    const struct oomb_device_info *d = &r->b->info;
    json_t *root = json_object(), *dev = json_object(), *cfg = json_object(),
           *peaks = json_object(), *res = json_array(), *host = json_object(),
           *jshapes = json_array();
    int bad = !root || !dev || !cfg || !peaks || !res || !host || !jshapes;

    char created[32] = "";
    time_t now = time(NULL);
    struct tm tmv;
    if (gmtime_r(&now, &tmv))
        strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    char hostname[256] = "";
    if (gethostname(hostname, sizeof hostname - 1) != 0)
        snprintf(hostname, sizeof hostname, "unknown");

    if (!bad) {
        bad |= set_new(root, "schema", json_string("oombench-roofline/1"));
        bad |= set_new(root, "tool_version", json_string(OOMB_VERSION));
        bad |= set_new(root, "created", json_string(created));
        bad |= set_new(host, "hostname", json_string(hostname));
        bad |= set_new(dev, "backend", json_string(d->backend ? d->backend : ""));
        bad |= set_new(dev, "name", json_string(d->name ? d->name : ""));
        bad |= set_new(dev, "driver", json_string(d->driver ? d->driver : ""));
        bad |= set_new(dev, "runtime", json_string(d->runtime ? d->runtime : ""));
        bad |= set_new(dev, "index", json_integer(d->index));
        bad |= set_new(dev, "total_bytes", json_integer((json_int_t)d->total_bytes));
        bad |= set_new(dev, "cc_major", json_integer(d->cc_major));
        bad |= set_new(dev, "cc_minor", json_integer(d->cc_minor));
        bad |= set_new(cfg, "reps", json_integer(r->reps));
        bad |= set_new(cfg, "warmup", json_integer(OOMB_ROOF_WARMUP));
        bad |= set_new(cfg, "quick", json_boolean(quick));
        bad |= set_new(cfg, "statistic", json_string("median"));
        bad |= set_new(cfg, "timer",
                       json_string(strcmp(r->ops->backend_name, "cuda") == 0
                                       ? "cuda events"
                                       : "clock_gettime(CLOCK_MONOTONIC)"));
        bad |= set_new(cfg, "copy_bytes", json_integer((json_int_t)sz->copy_bytes));
        bad |= set_new(cfg, "gemm_n", json_integer(sz->gemm_n));
        bad |= set_new(cfg, "elementwise_small_n", json_integer(sz->ew_small));
        bad |= set_new(cfg, "elementwise_big_n", json_integer(sz->ew_big));
        bad |= set_new(cfg, "adam_n", json_integer(sz->adam_n));
        for (int i = 0; i < n_shapes && !bad; i++)
            bad |= json_array_append_new(jshapes, json_pack("[III]", (json_int_t)shapes[i][0],
                                                            (json_int_t)shapes[i][1],
                                                            (json_int_t)shapes[i][2]));
        bad |= json_object_set(cfg, "shapes", jshapes);
        bad |= set_new(peaks, "copy_gbps", jnum(r->peak_bw_gbps));
        bad |= set_new(peaks, "gemm_f32_tflops", jnum(r->peak_tflops[OOMB_F32]));
        bad |= set_new(peaks, "gemm_f16_tflops", jnum(r->peak_tflops[OOMB_F16]));
    }
    for (int i = 0; i < r->n_results && !bad; i++) {
        const struct roof_result *x = &r->results[i];
        json_t *o = json_object(), *t = json_object(), *s = json_array(), *dims = json_object();
        if (!o || !t || !s || !dims) {
            json_decref(o);
            json_decref(t);
            json_decref(s);
            json_decref(dims);
            bad = 1;
            break;
        }
        bad |= set_new(o, "group", json_string(x->group));
        bad |= set_new(o, "name", json_string(x->name));
        bad |= set_new(o, "dtype", json_string(x->dtype));
        if (x->n_dims == 3) {
            int peak = strcmp(x->group, "peak") == 0;
            bad |= set_new(dims, peak ? "M" : "B", json_integer(x->dims[0]));
            bad |= set_new(dims, peak ? "K" : "C", json_integer(x->dims[1]));
            bad |= set_new(dims, peak ? "N" : "OC", json_integer(x->dims[2]));
        } else {
            bad |= set_new(dims, strcmp(x->name, "copy") == 0 ? "bytes" : "n",
                           json_integer(x->dims[0]));
        }
        bad |= set_new(o, "shape", dims);
        bad |= set_new(t, "unit", json_string("ns"));
        bad |= set_new(t, "median", jnum(x->median_ns));
        bad |= set_new(t, "min", jnum(x->min_ns));
        bad |= set_new(t, "max", jnum(x->max_ns));
        for (int j = 0; j < r->reps && x->samples_ns && !bad; j++)
            bad |= json_array_append_new(s, jnum(x->samples_ns[j]));
        bad |= set_new(t, "samples", s);
        bad |= set_new(o, "time", t);
        bad |= set_new(o, "unit", json_string(x->compute ? "TFLOP/s" : "GB/s"));
        bad |= set_new(o, "achieved", jnum(x->achieved));
        bad |= set_new(o, "peak", jnum(x->peak));
        bad |= set_new(o, "ratio", jnum(x->ratio));
        bad |= set_new(o, "bytes_read", json_integer((json_int_t)x->bytes_read));
        bad |= set_new(o, "bytes_written", json_integer((json_int_t)x->bytes_written));
        bad |= set_new(o, "bytes", json_integer((json_int_t)(x->bytes_read + x->bytes_written)));
        if (x->compute) {
            bad |= set_new(o, "flops", jnum(x->flops));
            bad |= set_new(o, "intensity_flop_per_byte",
                           jnum(x->flops / (x->bytes_read + x->bytes_written)));
            bad |= set_new(o, "roof", jnum(x->roof));
            bad |= set_new(o, "ratio_roof", jnum(x->ratio_roof));
        }
        bad |= set_new(o, "counting", json_string(x->counting));
        bad |= json_array_append_new(res, o);
    }
    if (!bad) {
        bad |= set_new(root, "host", host);
        host = NULL;
        bad |= set_new(root, "device", dev);
        dev = NULL;
        bad |= set_new(root, "config", cfg);
        cfg = NULL;
        bad |= set_new(root, "peaks", peaks);
        peaks = NULL;
        bad |= set_new(root, "results", res);
        res = NULL;
    }
    json_decref(jshapes);
    json_decref(host);
    json_decref(dev);
    json_decref(cfg);
    json_decref(peaks);
    json_decref(res);
    if (bad) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* ------------------------------------------------------------ main ------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: oombench-roofline [options]\n"
               "\n"
               "Measures the device's copy bandwidth and GEMM peaks, then the harness's\n"
               "linear layers and element-wise kernels against them.\n"
               "\n"
               "  -d, --device DEV     cpu (default), cuda or cuda:N\n"
               "  -j, --json FILE      also write the results as JSON to FILE\n"
               "  -s, --shapes LIST    linear layers as B,C,OC;B,C,OC;...\n"
               "                       (default: B 64 and 256 x 784->1024, 1024->1024, 1024->10)\n"
               "  -r, --reps N         timed repetitions per kernel, median reported (default 20)\n"
               "  -q, --quick          small peak and element-wise buffers (smoke tests)\n"
               "  -h, --help           this text\n"
               "\n"
               "exit: 0 ok, 2 usage error or no such device, 3 internal error\n");
}

static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* "B,C,OC;B,C,OC" -> shapes; -1 with a message on error. */
static int parse_shapes(const char *arg, int64_t (*shapes)[3], int *n_shapes)
{
    char buf[1024];
    if (strlen(arg) >= sizeof buf) {
        fprintf(stderr, "oombench-roofline: --shapes: list too long\n");
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", arg);
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
        while (*tok == ' ')
            tok++;
        if (!*tok)
            continue;
        if (n == OOMB_ROOF_MAX_SHAPES) {
            fprintf(stderr, "oombench-roofline: --shapes: more than %d shapes\n",
                    OOMB_ROOF_MAX_SHAPES);
            return -1;
        }
        char orig[sizeof buf];
        snprintf(orig, sizeof orig, "%s", tok);
        char *save2 = NULL, *f[3] = {0};
        int nf = 0;
        for (char *p = strtok_r(tok, ",", &save2); p; p = strtok_r(NULL, ",", &save2))
            if (nf < 3)
                f[nf++] = p;
            else
                nf = 4;
        int64_t v[3];
        if (nf != 3 || parse_i64(f[0], 1, 1 << 20, &v[0]) || parse_i64(f[1], 1, 1 << 20, &v[1]) ||
            parse_i64(f[2], 1, 1 << 20, &v[2])) {
            fprintf(stderr,
                    "oombench-roofline: --shapes: '%s' is not B,C,OC (three positive integers)\n",
                    orig);
            return -1;
        }
        /* Keep every buffer below 2^31 elements. */
        if (v[0] * v[1] > INT32_MAX || v[1] * v[2] > INT32_MAX || v[0] * v[2] > INT32_MAX) {
            fprintf(stderr, "oombench-roofline: --shapes: '%s' is too large\n", orig);
            return -1;
        }
        memcpy(shapes[n++], v, sizeof v);
    }
    if (n == 0) {
        fprintf(stderr, "oombench-roofline: --shapes: no shape given\n");
        return -1;
    }
    *n_shapes = n;
    return 0;
}

/* Refuses, before a run of a minute, a --json path whose folder cannot be written. */
static int json_dir_check(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!*path || (slash && slash[1] == '\0')) {
        fprintf(stderr, "oombench-roofline: --json: '%s' is not a file name\n", path);
        return -1;
    }
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (access(dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "oombench-roofline: --json: cannot write in '%s': %s\n", dir,
                strerror(errno));
        return -1;
    }
    return 0;
}

/* Hook for the backend's own library workspaces (cuBLAS): plain raw memory,
 * as everything else here. */
static int hook_alloc(void *user, size_t bytes, enum oomb_tag tag, const char *label, void **out)
{
    (void)tag;
    (void)label;
    struct oomb_kernel_backend *b = user;
    return b->raw_alloc(b->ops.ctx, bytes, out);
}

static void hook_free(void *user, void *ptr)
{
    struct oomb_kernel_backend *b = user;
    b->raw_free(b->ops.ctx, ptr);
}

static int run_all(struct roof *r, const struct roof_sizes *sz, const int64_t (*shapes)[3],
                   int n_shapes)
{
    int rc;
    if ((rc = measure_copy(r, sz->copy_bytes)) != OOMB_OK ||
        (rc = measure_gemm_peak(r, OOMB_F32, sz->gemm_n)) != OOMB_OK ||
        (rc = measure_gemm_peak(r, OOMB_F16, sz->gemm_n)) != OOMB_OK)
        return rc;
    static const enum oomb_dtype dts[] = {OOMB_F32, OOMB_F16};
    for (int d = 0; d < 2; d++)
        for (int bw = 0; bw < 2; bw++)
            for (int i = 0; i < n_shapes; i++)
                if ((rc = measure_layer(r, dts[d], shapes[i], bw)) != OOMB_OK)
                    return rc;
    static const enum ew_kind kinds[] = {EW_RELU, EW_GELU, EW_CAST};
    for (int i = 0; i < 3; i++)
        if ((rc = measure_ew(r, kinds[i], sz->ew_small)) != OOMB_OK ||
            (rc = measure_ew(r, kinds[i], sz->ew_big)) != OOMB_OK)
            return rc;
    return measure_ew(r, EW_ADAM, sz->adam_n);
}

int main(int argc, char **argv)
{
    const char *device = "cpu", *json_path = NULL;
    int64_t reps = 20;
    int quick = 0;
    int64_t shapes[OOMB_ROOF_MAX_SHAPES][3] = {
        {64, 784, 1024},  {64, 1024, 1024},  {64, 1024, 10},
        {256, 784, 1024}, {256, 1024, 1024}, {256, 1024, 10},
    };
    int n_shapes = 6;

    static const struct option longopts[] = {{"device", required_argument, NULL, 'd'},
                                             {"json", required_argument, NULL, 'j'},
                                             {"shapes", required_argument, NULL, 's'},
                                             {"reps", required_argument, NULL, 'r'},
                                             {"quick", no_argument, NULL, 'q'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "d:j:s:r:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            device = optarg;
            break;
        case 'j':
            json_path = optarg;
            break;
        case 's':
            if (parse_shapes(optarg, shapes, &n_shapes) != 0)
                return EXIT_USAGE;
            break;
        case 'r':
            if (parse_i64(optarg, 1, OOMB_ROOF_MAX_REPS, &reps) != 0) {
                fprintf(stderr, "oombench-roofline: --reps: '%s' is not an integer in 1..%d\n",
                        optarg, OOMB_ROOF_MAX_REPS);
                return EXIT_USAGE;
            }
            break;
        case 'q':
            quick = 1;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "oombench-roofline: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }

    if (json_path && json_dir_check(json_path) != 0)
        return EXIT_USAGE;

    int cuda = 0;
    int64_t ordinal = 0;
    if (strcmp(device, "cpu") == 0) {
        cuda = 0;
    } else if (strcmp(device, "cuda") == 0) {
        cuda = 1;
    } else if (strncmp(device, "cuda:", 5) == 0 && parse_i64(device + 5, 0, 1024, &ordinal) == 0) {
        cuda = 1;
    } else {
        fprintf(stderr, "oombench-roofline: --device: '%s' is not cpu, cuda or cuda:N\n", device);
        return EXIT_USAGE;
    }

    char msg[512] = "";
    static struct oomb_backend_alloc_hook hook; /* must outlive the backend */
    struct oomb_kernel_backend *b = NULL;
    int rc;
    if (cuda) {
        int count = oomb_cuda_device_count(msg, sizeof msg);
        if (count <= 0) {
            fprintf(stderr, "oombench-roofline: --device %s: no CUDA device here (%s)\n", device,
                    *msg ? msg : "none found");
            return EXIT_USAGE;
        }
        if (ordinal >= count) {
            fprintf(stderr, "oombench-roofline: no CUDA device %" PRId64 " (%d device%s)\n",
                    ordinal, count, count == 1 ? "" : "s");
            return EXIT_USAGE;
        }
        rc = oomb_cuda_backend_create((int)ordinal, &b, msg, sizeof msg);
        if (rc == OOMB_ERR_NOT_USABLE) {
            fprintf(stderr, "oombench-roofline: no CUDA device usable: %s\n", msg);
            return EXIT_USAGE;
        }
    } else {
        rc = oomb_cpu_backend_create(&b, msg, sizeof msg);
    }
    if (rc != OOMB_OK || !b) {
        fprintf(stderr, "oombench-roofline: %s backend: %s (%s)\n", cuda ? "cuda" : "cpu", msg,
                oomb_strerror(rc));
        return EXIT_INTERNAL;
    }
    if (b->set_alloc_hook) {
        hook.user = b;
        hook.alloc = hook_alloc;
        hook.free = hook_free;
        if ((rc = b->set_alloc_hook(b->ops.ctx, &hook)) != OOMB_OK) {
            const char *e = b->ops.last_error ? b->ops.last_error(b->ops.ctx) : "";
            fprintf(stderr, "oombench-roofline: backend workspace: %s (%s)\n", e,
                    oomb_strerror(rc));
            b->destroy(b);
            return EXIT_INTERNAL;
        }
    }

    struct roof_sizes sz;
    if (quick)
        sz = (struct roof_sizes){.copy_bytes = 8 * MIB,
                                 .gemm_n = 256,
                                 .ew_small = 256 * 1024,
                                 .ew_big = 1 << 20,
                                 .adam_n = 1 << 18};
    else if (cuda)
        sz = (struct roof_sizes){.copy_bytes = 256 * MIB,
                                 .gemm_n = 8192,
                                 .ew_small = 256 * 1024,
                                 .ew_big = 64 << 20,
                                 .adam_n = 4 << 20};
    else
        sz = (struct roof_sizes){.copy_bytes = 64 * MIB,
                                 .gemm_n = 1024,
                                 .ew_small = 256 * 1024,
                                 .ew_big = 64 << 20,
                                 .adam_n = 4 << 20};

    struct roof *r = calloc(1, sizeof *r);
    int status = EXIT_OK;
    json_t *root = NULL;
    char *text = NULL;
    if (!r) {
        fprintf(stderr, "oombench-roofline: out of host memory\n");
        status = EXIT_INTERNAL;
        goto done;
    }
    r->b = b;
    r->ops = &b->ops;
    r->k = b->ops.ctx;
    r->reps = (int)reps;

    if ((rc = run_all(r, &sz, (const int64_t(*)[3])shapes, n_shapes)) != OOMB_OK) {
        fprintf(stderr, "oombench-roofline: %s\n", r->err);
        status = EXIT_INTERNAL;
        goto done;
    }
    print_table(r, device);

    if (json_path) {
        root = build_json(r, &sz, quick, (const int64_t(*)[3])shapes, n_shapes);
        text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (!text) {
            fprintf(stderr, "oombench-roofline: building the JSON failed (out of memory)\n");
            status = EXIT_INTERNAL;
            goto done;
        }
        char err[512];
        size_t len = strlen(text);
        char *line = realloc(text, len + 2); /* end the file with a newline */
        if (!line) {
            fprintf(stderr, "oombench-roofline: --json: out of host memory\n");
            status = EXIT_INTERNAL;
            goto done;
        }
        text = line;
        text[len++] = '\n';
        text[len] = '\0';
        if ((rc = oomb_write_file_atomic(json_path, text, len, err, sizeof err)) != OOMB_OK) {
            fprintf(stderr, "oombench-roofline: --json: %s\n", err);
            status = EXIT_INTERNAL;
            goto done;
        }
        printf("wrote %s\n", json_path);
    }

done:
    free(text);
    json_decref(root);
    if (r) {
        roof_release(r, 0);
        for (int i = 0; i < r->n_results; i++)
            free(r->results[i].samples_ns);
    }
    free(r);
    b->destroy(b);
    return status;
}
