/*
 * Whole-network gradients of the shared model code (plugins/common/net.c)
 * against central finite differences, on the CPU backend, for small models
 * that use every layer kind: a CNN (conv2d, batch norm, relu, max pool, a
 * residual block, flatten, linear), a transformer (per-token linear, pre-LN
 * blocks of layer norm, attention, gelu MLP, residuals), its causal variant
 * and an MLP with batch norm on flat features (S = 1) and gelu.
 *
 * The models are loaded from the YAML files of tests/data/netgrad with the harness's
 * scenario parser and driven through a minimal host table (tracked aligned
 * allocation, seeded parameters, batch norm buffers 0/1) exactly as a
 * plugin drives them: the step engine's training pass (forward with
 * OOMB_FWD_TRAIN and PyTorch eager's saved tensors, softmax cross-entropy
 * with gradient scale 1/B, backward through the tape), once as is and once
 * with the input requiring a gradient.
 *
 * The reference is the loss L = (sum over samples of the cross-entropy) / B
 * evaluated in double from the network's FP32 logits, with the network run
 * in OOMB_FWD_RECOMPUTE (batch statistics, running statistics untouched),
 * differenced centrally with h = 1e-3 for EVERY parameter and every input
 * element (the input gradient from the engine's pass with dx).
 *
 * Tolerance: gradients are compared per parameter tensor (each W, b, gamma,
 * beta, Wqkv, ... of every layer, residual bodies included):
 *   max |grad - fd| <= 2e-2 * max(max |fd| over the tensor, 1e-2 * G)
 * with G the largest |fd| over the whole model; the floor only matters for
 * tensors whose exact gradient is zero (a bias feeding batch norm), which
 * must then be numerically zero too; every other tensor must move the
 * loss (max |fd| > 1e-3 G), so a parameter read from the wrong place fails. The finite-difference
 * noise (FP32 rounding of the logits, about 1e-7 of the loss, over 2h) is around 5e-5, far below
 * these bounds, while a dropped or mis-indexed term moves a gradient by a sizeable fraction of the
 * tensor's scale. A relative norm error ||grad - fd|| / ||fd|| <= 1e-2 is required per tensor as
 * well.
 *
 * Against float64: central differences (h = 1e-6) of a float64 forward of the
 * same model (tests/ref64.h), whose noise is far below FP32 rounding: every
 * tensor whose gradient is not ~0, and the input's, within 1e-5 in relative
 * norm; tensors whose exact gradient is zero within 1e-5 of the largest.
 *
 * Also checked: the two passes give bit-identical parameter gradients;
 * TRAIN moves the running statistics away from 0/1 while RECOMPUTE and EVAL
 * leave them alone; EVAL (running statistics) differs from RECOMPUTE for
 * batch-norm models and equals it otherwise; every byte taken from the
 * host is given back after each pass.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "engine.h"
#include "ref64.h"
#include "net.h"
#include "scenario.h"

#define NETGRAD_DIR OOMB_SOURCE_DIR "/tests/data/netgrad/"

#define FD_H 1e-3
#define TOL_MAX 2e-2   /* max abs error, relative to the tensor's scale */
#define TOL_FLOOR 1e-2 /* of the model's largest gradient: the smallest scale */
#define TOL_NORM 1e-2  /* relative norm error */
#define TOL_LIVE 1e-3  /* of the model's largest gradient: a tensor that matters */

/* ------------------------------------------------------------ fake host -- */

/* The host's state: tracked live bytes and the seed of the parameters. */
struct oomb_run {
    const struct oomb_model *model;
    uint64_t seed;
    size_t live_bytes;
    int64_t live_allocs;
    int bad_frees;
};

#define HDR 64 /* header in front of each block: its size and a magic word */
#define MAGIC 0x6f6f6d62u

static int fh_alloc(struct oomb_run *run, enum oomb_space space, size_t bytes, enum oomb_tag tag,
                    const char *label, void **out)
{
    (void)space;
    void *p = NULL;
    if (posix_memalign(&p, HDR, HDR + (bytes ? bytes : 1)) != 0)
        return OOMB_ERR_OOM;
    uint32_t magic = MAGIC;
    memcpy(p, &bytes, sizeof bytes);
    memcpy((char *)p + sizeof bytes, &magic, sizeof magic);
    /* new memory is undefined: NaN bytes make a read before write show */
    memset((char *)p + HDR, 0xff, bytes);
    run->live_bytes += bytes;
    run->live_allocs++;
    *out = (char *)p + HDR;
    return OOMB_OK;
}

static void fh_free(struct oomb_run *run, void *ptr)
{
    if (!ptr)
        return;
    char *p = (char *)ptr - HDR;
    size_t bytes;
    uint32_t magic;
    memcpy(&bytes, p, sizeof bytes);
    memcpy(&magic, p + sizeof bytes, sizeof magic);
    if (magic != MAGIC) {
        run->bad_frees++;
        return;
    }
    memset(p + sizeof bytes, 0, sizeof magic);
    run->live_bytes -= bytes;
    run->live_allocs--;
    free(p);
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static double uni(uint64_t *s)
{
    return (double)(splitmix(s) >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

static float *fill_uniform(float *dst, int64_t n, double scale, double shift, uint64_t *s)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = (float)(shift + scale * uni(s));
    return dst + n;
}

/* Writes layer L's parameters (layout of plugin.h) from dst on; returns the
 * end of what it wrote. */
static float *init_layer(const struct oomb_layer *L, float *dst, uint64_t *s)
{
    switch (L->kind) {
    case OOMB_LAYER_LINEAR: {
        int64_t R, C, OC;
        oomb_linear_dims(L, &R, &C, &OC);
        dst = fill_uniform(dst, OC * C, 1.5 / sqrt((double)C), 0, s);
        if (L->has_bias)
            dst = fill_uniform(dst, OC, 0.2, 0, s);
        return dst;
    }
    case OOMB_LAYER_CONV2D: {
        int64_t C = L->attrs[0], OC = L->attrs[3], K = L->attrs[4];
        dst = fill_uniform(dst, OC * C * K * K, 1.5 / sqrt((double)(C * K * K)), 0, s);
        if (L->has_bias)
            dst = fill_uniform(dst, OC, 0.2, 0, s);
        return dst;
    }
    case OOMB_LAYER_BATCHNORM:
    case OOMB_LAYER_LAYERNORM: {
        int64_t C = L->attrs[L->kind == OOMB_LAYER_BATCHNORM ? 0 : 1];
        dst = fill_uniform(dst, C, 0.3, 1.0, s); /* gamma */
        return fill_uniform(dst, C, 0.3, 0, s);  /* beta */
    }
    case OOMB_LAYER_ATTENTION: {
        int64_t C = L->attrs[1];
        double ws = 1.5 / sqrt((double)C);
        dst = fill_uniform(dst, 3 * C * C, ws, 0, s);
        dst = fill_uniform(dst, 3 * C, 0.2, 0, s);
        dst = fill_uniform(dst, C * C, ws, 0, s);
        return fill_uniform(dst, C, 0.2, 0, s);
    }
    case OOMB_LAYER_RESIDUAL:
        for (int j = 0; j < L->n_body; j++)
            dst = init_layer(L->body[j], dst, s);
        return dst;
    default:
        return dst;
    }
}

static int fh_init_params(struct oomb_run *run, int layer, float *dst)
{
    const struct oomb_layer *L = run->model->layers[layer];
    uint64_t s = run->seed ^ (0x1234567ull * (uint64_t)(layer + 1));
    float *end = init_layer(L, dst, &s);
    return end - dst == L->n_params ? OOMB_OK : OOMB_ERR_INTERNAL;
}

/* Batch norm buffers: running mean 0, running variance 1, in body order. */
static float *init_bufs(const struct oomb_layer *L, float *dst)
{
    if (L->kind == OOMB_LAYER_BATCHNORM) {
        int64_t C = L->attrs[0];
        for (int64_t c = 0; c < C; c++) {
            dst[c] = 0.0f;
            dst[C + c] = 1.0f;
        }
        return dst + 2 * C;
    }
    if (L->kind == OOMB_LAYER_RESIDUAL)
        for (int j = 0; j < L->n_body; j++)
            dst = init_bufs(L->body[j], dst);
    return dst;
}

static int fh_init_buffers(struct oomb_run *run, int layer, float *dst)
{
    const struct oomb_layer *L = run->model->layers[layer];
    float *end = init_bufs(L, dst);
    return end - dst == L->n_buffers ? OOMB_OK : OOMB_ERR_INTERNAL;
}

static int fh_param_int(struct oomb_run *run, const char *name, int64_t *out)
{
    return OOMB_ERR_INVALID;
}

static int fh_param_float(struct oomb_run *run, const char *name, double *out)
{
    return OOMB_ERR_INVALID;
}

static int fh_param_str(struct oomb_run *run, const char *name, const char **out)
{
    return OOMB_ERR_INVALID;
}

static int fh_load_batch(struct oomb_run *run, int64_t step, int64_t first, int64_t count, float *x,
                         int32_t *y)
{
    return OOMB_ERR_INVALID; /* the test makes its own inputs */
}

static void fh_phase(struct oomb_run *run, enum oomb_phase phase) {}

__attribute__((format(printf, 3, 4))) static void
fh_log(struct oomb_run *run, enum oomb_log_level level, const char *fmt, ...)
{
}

static int fh_report_loss(struct oomb_run *run, int64_t step, double loss)
{
    return OOMB_OK;
}

static int fh_report_tensor(struct oomb_run *run, const char *name, const float *dev, int64_t n)
{
    return OOMB_OK;
}

static int fh_report_metric(struct oomb_run *run, const char *name, double value)
{
    return OOMB_OK;
}

static int fh_report_accuracy(struct oomb_run *run, int64_t correct, int64_t total)
{
    return OOMB_OK;
}

static int fh_reference_params(struct oomb_run *run, int layer, float *dst)
{
    return OOMB_ERR_NOT_USABLE;
}

static int fh_report_eval(struct oomb_run *run, int64_t correct, int64_t total, double loss_sum)
{
    return OOMB_OK;
}

/* ------------------------------------------------------------ harness ---- */

struct gx {
    struct oomb_scenario *sc;
    const struct oomb_model *m;
    struct oomb_kernel_backend *be;
    struct oomb_run run;
    struct oomb_run_info info;
    struct oomb_host host;
    struct oomb_net net;
    struct oomb_engine eng; /* none's policy */
    int64_t B, K, F;
    float *x;         /* (B, F) through the host */
    int32_t *y;       /* (B) through the host */
    size_t base_live; /* after init: the net's state, x and y */
};

static void gx_open(struct gx *g, const char *file, int64_t B)
{
    memset(g, 0, sizeof *g);
    char err[512] = "";
    int rc = oomb_scenario_load(file, &g->sc, err, sizeof err);
    cr_assert_eq(rc, OOMB_OK, "%s: %s", file, err);
    g->m = &g->sc->model;
    rc = oomb_cpu_backend_create(&g->be, err, sizeof err);
    cr_assert_eq(rc, OOMB_OK, "cpu backend: %s", err);

    g->run.model = g->m;
    g->run.seed = 20240611u;
    struct oomb_run_info *ri = &g->info;
    ri->struct_size = sizeof *ri;
    ri->scenario = g->sc->name;
    ri->mode = OOMB_MODE_TRAIN;
    ri->backend = OOMB_BACKEND_CPU;
    ri->batch = B;
    ri->warmup_steps = 0;
    ri->measured_steps = 1;
    ri->seed = g->run.seed;
    ri->optimizer = OOMB_OPT_ADAM;
    ri->lr = 1e-3;
    ri->momentum = 0.9;
    ri->beta1 = 0.9;
    ri->beta2 = 0.999;
    ri->eps = 1e-8;
    ri->weight_decay = 0;
    ri->model = g->m;
    ri->budget_bytes = 0;
    ri->eval_samples = 0;

    struct oomb_host *h = &g->host;
    h->struct_size = sizeof *h;
    h->abi_major = OOMB_ABI_MAJOR;
    h->abi_minor = OOMB_ABI_MINOR;
    h->run = &g->run;
    h->info = ri;
    h->ops = &g->be->ops;
    h->param_int = fh_param_int;
    h->param_float = fh_param_float;
    h->param_str = fh_param_str;
    h->alloc = fh_alloc;
    h->free = fh_free;
    h->load_batch = fh_load_batch;
    h->init_params = fh_init_params;
    h->phase = fh_phase;
    h->log = fh_log;
    h->report_loss = fh_report_loss;
    h->report_tensor = fh_report_tensor;
    h->report_metric = fh_report_metric;
    h->report_accuracy = fh_report_accuracy;
    h->reference_params = fh_reference_params;
    h->load_eval_batch = NULL;
    h->report_eval = fh_report_eval;
    h->init_buffers = fh_init_buffers;

    rc = oomb_net_init(&g->net, h, g->m, OOMB_NET_GRADS | OOMB_NET_OPTIMIZER, err, sizeof err);
    cr_assert_eq(rc, OOMB_OK, "oomb_net_init: %s", err);
    cr_assert_gt(g->net.total_params, 0);
    rc = oomb_engine_init(&g->eng, &g->net, NULL, err, sizeof err);
    cr_assert_eq(rc, OOMB_OK, "oomb_engine_init: %s", err);

    g->B = B;
    g->K = g->m->classes;
    g->F = g->m->input_features;
    cr_assert_eq(fh_alloc(&g->run, OOMB_SPACE_DEVICE, (size_t)(B * g->F) * sizeof(float), OOMB_TAG_ACTIVATIONS,
                          "input", (void **)&g->x),
                 OOMB_OK);
    cr_assert_eq(
        fh_alloc(&g->run, OOMB_SPACE_DEVICE, (size_t)B * sizeof(int32_t), OOMB_TAG_OTHER, "labels", (void **)&g->y),
        OOMB_OK);
    uint64_t s = 0xdecafbadull;
    fill_uniform(g->x, B * g->F, 1.0, 0, &s);
    for (int64_t b = 0; b < B; b++)
        g->y[b] = (int32_t)(splitmix(&s) % (uint64_t)g->K);
    g->base_live = g->run.live_bytes;
}

static void gx_close(struct gx *g)
{
    fh_free(&g->run, g->x);
    fh_free(&g->run, g->y);
    oomb_engine_free(&g->eng);
    oomb_net_free(&g->net);
    cr_expect_eq(g->run.live_bytes, 0, "%zu bytes still allocated after oomb_net_free",
                 g->run.live_bytes);
    cr_expect_eq(g->run.live_allocs, 0, "%lld blocks still allocated after oomb_net_free",
                 (long long)g->run.live_allocs);
    cr_expect_eq(g->run.bad_frees, 0, "%d frees of pointers not from alloc", g->run.bad_frees);
    g->be->destroy(g->be);
    oomb_scenario_destroy(g->sc);
}

/* Live bytes after a pass: the net's state, x, y, the workspace and `extra`. */
static void expect_no_leak(const struct gx *g, size_t extra, const char *when)
{
    size_t want = g->base_live + g->eng.ws_bytes + extra;
    cr_expect_eq(g->run.live_bytes, want, "%s: %zu bytes live, expected %zu", when,
                 g->run.live_bytes, want);
}

/* Logits (B, K) of the engine's forward without autograd state; the
 * caller frees them with fh_free. */
static float *logits_of(struct gx *g, enum oomb_fwd_mode mode)
{
    char msg[256] = "";
    float *logits = NULL;
    int rc = oomb_engine_forward(&g->eng, g->x, g->B, mode, &logits, msg, sizeof msg);
    cr_assert_eq(rc, OOMB_OK, "forward (mode %d): %s", (int)mode, msg);
    return logits;
}

/* Mean softmax cross-entropy of logits (B, K), in double. */
static double loss_double(const float *logits, const int32_t *y, int64_t B, int64_t K)
{
    double sum = 0;
    for (int64_t b = 0; b < B; b++) {
        const float *z = logits + b * K;
        double mx = z[0];
        for (int64_t j = 1; j < K; j++)
            mx = z[j] > mx ? z[j] : mx;
        double se = 0;
        for (int64_t j = 0; j < K; j++)
            se += exp((double)z[j] - mx);
        sum += mx + log(se) - (double)z[y[b]];
    }
    return sum / (double)B;
}

static double fd_loss(struct gx *g)
{
    float *logits = logits_of(g, OOMB_FWD_RECOMPUTE);
    double l = loss_double(logits, g->y, g->B, g->K);
    fh_free(&g->run, logits);
    return l;
}

/* Central differences of the loss with respect to each of p[0..n). */
static void fd_grad(struct gx *g, float *p, int64_t n, double *out)
{
    for (int64_t i = 0; i < n; i++) {
        const float orig = p[i];
        const float hi = (float)((double)orig + FD_H), lo = (float)((double)orig - FD_H);
        p[i] = hi;
        double lp = fd_loss(g);
        p[i] = lo;
        double lm = fd_loss(g);
        p[i] = orig;
        out[i] = (lp - lm) / ((double)hi - (double)lo);
    }
}

/* One training pass of the engine over x, y: gradients into the net's
 * grads (zeroed first), the input gradient into dx when not NULL; returns
 * the mean loss the ops computed. */
static double train_pass(struct gx *g, float *dx)
{
    char msg[256] = "";
    struct oomb_step_stats st = {0, 0};
    cr_assert_eq(oomb_net_zero_grads(&g->net, msg, sizeof msg), OOMB_OK, "%s", msg);
    int rc = oomb_engine_train_batch(&g->eng, g->x, g->y, g->B, 1.0f / (float)g->B, dx, &st, msg,
                                     sizeof msg);
    cr_assert_eq(rc, OOMB_OK, "train pass: %s", msg);
    return st.loss_sum / (double)g->B;
}

/* ------------------------------------------------------------ tensors ---- */

struct seg {
    char name[64];
    int64_t off, n;
    int zero; /* its exact gradient is zero: a bias that feeds batch norm */
};

#define MAX_SEGS 64

static void seg_add(struct seg *s, int *ns, const char *path, const char *kind, const char *what,
                    int64_t off, int64_t n, int zero)
{
    cr_assert_lt(*ns, MAX_SEGS);
    snprintf(s[*ns].name, sizeof s[*ns].name, "layer %s (%s) %s", path, kind, what);
    s[*ns].off = off;
    s[*ns].n = n;
    s[*ns].zero = zero;
    (*ns)++;
}

/* The parameter tensors of layer L at element offset off (`next`: the layer
 * after it in its sequence, or NULL); returns the number of elements they
 * cover. */
static int64_t layer_segs(const struct oomb_layer *L, const struct oomb_layer *next, int64_t off,
                          const char *path, struct seg *s, int *ns)
{
    const char *kn = oomb_layer_kind_name(L->kind);
    const int bias_zero = next && next->kind == OOMB_LAYER_BATCHNORM;
    int64_t o = off;
    switch (L->kind) {
    case OOMB_LAYER_LINEAR: {
        int64_t R, C, OC;
        oomb_linear_dims(L, &R, &C, &OC);
        seg_add(s, ns, path, kn, "W", o, OC * C, 0);
        o += OC * C;
        if (L->has_bias) {
            seg_add(s, ns, path, kn, "b", o, OC, bias_zero);
            o += OC;
        }
        break;
    }
    case OOMB_LAYER_CONV2D: {
        int64_t C = L->attrs[0], OC = L->attrs[3], K = L->attrs[4];
        seg_add(s, ns, path, kn, "W", o, OC * C * K * K, 0);
        o += OC * C * K * K;
        if (L->has_bias) {
            seg_add(s, ns, path, kn, "b", o, OC, bias_zero);
            o += OC;
        }
        break;
    }
    case OOMB_LAYER_BATCHNORM:
    case OOMB_LAYER_LAYERNORM: {
        int64_t C = L->attrs[L->kind == OOMB_LAYER_BATCHNORM ? 0 : 1];
        seg_add(s, ns, path, kn, "gamma", o, C, 0);
        seg_add(s, ns, path, kn, "beta", o + C, C, 0);
        o += 2 * C;
        break;
    }
    case OOMB_LAYER_ATTENTION: {
        int64_t C = L->attrs[1];
        seg_add(s, ns, path, kn, "Wqkv", o, 3 * C * C, 0);
        o += 3 * C * C;
        seg_add(s, ns, path, kn, "bqkv", o, 3 * C, 0);
        o += 3 * C;
        seg_add(s, ns, path, kn, "Wo", o, C * C, 0);
        o += C * C;
        seg_add(s, ns, path, kn, "bo", o, C, 0);
        o += C;
        break;
    }
    case OOMB_LAYER_RESIDUAL:
        for (int j = 0; j < L->n_body; j++) {
            char sub[32];
            snprintf(sub, sizeof sub, "%s.%d", path, j);
            o += layer_segs(L->body[j], j + 1 < L->n_body ? L->body[j + 1] : NULL, o, sub, s, ns);
        }
        break;
    default:
        break;
    }
    cr_assert_eq(o - off, L->n_params, "layer %s (%s): tensors cover %lld of %lld parameters", path,
                 kn, (long long)(o - off), (long long)L->n_params);
    return o - off;
}

struct cmp {
    double max_err; /* max |a - fd| */
    double max_fd;  /* max |fd| */
    double err2, fd2;
};

static struct cmp compare(const float *a, const double *fd, int64_t n)
{
    struct cmp c = {0, 0, 0, 0};
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - fd[i]);
        c.max_err = e > c.max_err ? e : c.max_err;
        c.max_fd = fabs(fd[i]) > c.max_fd ? fabs(fd[i]) : c.max_fd;
        c.err2 += e * e;
        c.fd2 += fd[i] * fd[i];
    }
    return c;
}

/* Checks one tensor; returns its max error relative to its scale. A tensor
 * whose exact gradient is not zero must move the loss (a parameter the
 * forward does not read, or reads at the wrong place, has none). */
static double check_tensor(const char *model, const char *name, const float *a, const double *fd,
                           int64_t n, double model_max, int zero)
{
    struct cmp c = compare(a, fd, n);
    if (!zero)
        cr_expect_gt(c.max_fd, TOL_LIVE * model_max,
                     "%s: %s: the loss does not depend on it (max |fd| %.3e)", model, name,
                     c.max_fd);
    double scale = fmax(c.max_fd, TOL_FLOOR * model_max);
    double rel = c.max_err / scale;
    cr_log_info("%s: %-34s n %4lld  max|fd| %.3e  max err %.3e  rel %.2e  norm rel %.2e", model,
                name, (long long)n, c.max_fd, c.max_err, rel,
                c.fd2 > 0 ? sqrt(c.err2 / c.fd2) : 0.0);
    cr_expect_leq(c.max_err, TOL_MAX * scale,
                  "%s: %s: max |grad - fd| = %.3e exceeds %.3e (max |fd| %.3e)", model, name,
                  c.max_err, TOL_MAX * scale, c.max_fd);
    if (c.max_fd > TOL_FLOOR * model_max)
        cr_expect_leq(sqrt(c.err2 / c.fd2), TOL_NORM,
                      "%s: %s: relative norm error %.3e exceeds %.1e", model, name,
                      sqrt(c.err2 / c.fd2), TOL_NORM);
    return rel;
}

/* ------------------------------------------------------------ the check -- */

static int has_kind(const struct oomb_layer *L, enum oomb_layer_kind kind)
{
    if (L->kind == kind)
        return 1;
    for (int j = 0; j < L->n_body; j++)
        if (has_kind(L->body[j], kind))
            return 1;
    return 0;
}

static void check_model(const char *name, int64_t B)
{
    char path[512];
    snprintf(path, sizeof path, NETGRAD_DIR "%s.yaml", name);
    struct gx g;
    gx_open(&g, path, B);
    struct oomb_net *n = &g.net;
    const struct oomb_model *m = g.m;
    const int L = m->n_layers;
    const int64_t P = n->total_params, NB = n->total_buffers;
    int bn = 0;
    for (int l = 0; l < L; l++)
        bn |= has_kind(m->layers[l], OOMB_LAYER_BATCHNORM);
    cr_assert_eq(bn, NB > 0, "%s: buffers iff batch norm", name);

    /* running statistics start at 0 / 1 */
    float *bufs0 = NULL, *bufs1 = NULL;
    if (NB > 0) {
        bufs0 = malloc((size_t)NB * sizeof(float));
        bufs1 = malloc((size_t)NB * sizeof(float));
        cr_assert(bufs0 && bufs1);
        memcpy(bufs0, n->bufs, (size_t)NB * sizeof(float));
    }

    /* --- pass 1: the engine's training pass (forward TRAIN, loss, backward) */
    const double loss_ops = train_pass(&g, NULL);
    expect_no_leak(&g, 0, "after the training pass");
    float *grads = malloc((size_t)P * sizeof(float));
    cr_assert_not_null(grads);
    memcpy(grads, n->grads, (size_t)P * sizeof(float));
    for (int64_t i = 0; i < P; i++)
        cr_assert(isfinite(grads[i]), "%s: grad %lld = %g", name, (long long)i, grads[i]);

    /* running statistics moved by TRAIN */
    if (NB > 0) {
        memcpy(bufs1, n->bufs, (size_t)NB * sizeof(float));
        int64_t moved = 0;
        for (int64_t i = 0; i < NB; i++)
            moved += bufs1[i] != bufs0[i];
        cr_expect_eq(moved, NB, "%s: TRAIN moved %lld of %lld running statistics", name,
                     (long long)moved, (long long)NB);
    }

    /* --- pass 2: the same with the input requiring a gradient */
    float *dx = NULL;
    cr_assert_eq(fh_alloc(&g.run, OOMB_SPACE_DEVICE, (size_t)(B * g.F) * sizeof(float), OOMB_TAG_ACTIVATIONS, "dinput",
                          (void **)&dx),
                 OOMB_OK);
    train_pass(&g, dx);
    double gmax = 0, gdiff = 0;
    for (int64_t i = 0; i < P; i++) {
        gmax = fmax(gmax, fabs((double)grads[i]));
        gdiff = fmax(gdiff, fabs((double)n->grads[i] - (double)grads[i]));
    }
    /* the second pass makes the same kernel calls on the same data for every parameter
     * gradient (batch norm normalises with the batch's statistics in both; the input
     * gradient is a separate product): bit-identical, measured 0 over OpenBLAS core types
     * and thread counts */
    cr_expect_eq(gdiff, 0.0, "%s: parameter gradients of the two passes differ by %.3e (max %.3e)",
                 name, gdiff, gmax);
    expect_no_leak(&g, (size_t)(B * g.F) * sizeof(float), "after the pass with the input gradient");
    if (NB > 0)
        memcpy(bufs1, n->bufs, (size_t)NB * sizeof(float));

    /* --- RECOMPUTE: the training loss again, the running statistics left alone */
    float *lr = logits_of(&g, OOMB_FWD_RECOMPUTE);
    const double loss = loss_double(lr, g.y, B, g.K);
    cr_assert(isfinite(loss), "%s: loss %g", name, loss);
    /* the same float logits, the loss once through the ops (float softmax cross-entropy:
     * <= (K + 4) u (1 + |l|) per sample, see test_kernels_cpu.c; K <= 10, u = 2^-24, so
     * <= 1.7e-6 max(1, |l|)) and once in double here; limit 1e-5, measured <= 3.1e-8
     * absolute over OpenBLAS core types and thread counts */
    cr_expect_leq(fabs(loss_ops - loss), 1e-5 * fmax(1.0, fabs(loss)),
                  "%s: ops loss %.9g, double loss %.9g", name, loss_ops, loss);
    if (NB > 0)
        cr_expect_eq(memcmp(n->bufs, bufs1, (size_t)NB * sizeof(float)), 0,
                     "%s: RECOMPUTE changed the running statistics", name);

    /* --- EVAL: running statistics; differs from RECOMPUTE exactly when there is batch norm */
    float *le = logits_of(&g, OOMB_FWD_EVAL);
    if (NB > 0)
        cr_expect_eq(memcmp(n->bufs, bufs1, (size_t)NB * sizeof(float)), 0,
                     "%s: EVAL changed the running statistics", name);
    double ediff = 0;
    for (int64_t i = 0; i < B * g.K; i++)
        ediff = fmax(ediff, fabs((double)le[i] - (double)lr[i]));
    if (bn)
        cr_expect_gt(ediff, 1e-3, "%s: EVAL logits equal TRAIN's (max diff %.3e)", name, ediff);
    else
        cr_expect_eq(memcmp(le, lr, (size_t)(B * g.K) * sizeof(float)), 0,
                     "%s: EVAL differs from RECOMPUTE without batch norm", name);
    fh_free(&g.run, lr);
    fh_free(&g.run, le);

    /* --- finite differences over every parameter and every input element */
    double *fd = malloc((size_t)P * sizeof(double));
    double *fdx = malloc((size_t)(B * g.F) * sizeof(double));
    cr_assert(fd && fdx);
    fd_grad(&g, n->params, P, fd);
    fd_grad(&g, g.x, B * g.F, fdx);
    if (NB > 0)
        cr_expect_eq(memcmp(n->bufs, bufs1, (size_t)NB * sizeof(float)), 0,
                     "%s: RECOMPUTE passes changed the running statistics", name);

    double model_max = 0;
    for (int64_t i = 0; i < P; i++)
        model_max = fmax(model_max, fabs(fd[i]));
    cr_assert_gt(model_max, 1e-4, "%s: the loss does not depend on the parameters", name);

    struct seg segs[MAX_SEGS];
    int ns = 0;
    for (int l = 0; l < L; l++) {
        char p[16];
        snprintf(p, sizeof p, "%d", l);
        layer_segs(m->layers[l], l + 1 < L ? m->layers[l + 1] : NULL, n->offset[l], p, segs, &ns);
    }
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < ns; i++) {
        double r = check_tensor(name, segs[i].name, grads + segs[i].off, fd + segs[i].off,
                                segs[i].n, model_max, segs[i].zero);
        if (r > worst) {
            worst = r;
            worst_name = segs[i].name;
        }
    }
    double in_max = 0;
    for (int64_t i = 0; i < B * g.F; i++)
        in_max = fmax(in_max, fabs(fdx[i]));
    double rx = check_tensor(name, "input", dx, fdx, B * g.F, in_max, 0);
    struct cmp all = compare(grads, fd, P);
    cr_log_info("%s: %lld parameters, loss %.6f, max|fd| %.3e, max abs err %.3e, worst tensor "
                "%s (%.2e of its scale), input rel %.2e",
                name, (long long)P, loss, model_max, all.max_err, worst_name, worst, rx);

    /* --- float64: central differences of a float64 forward of the same model
     * (tests/ref64.h) with h = 1e-6, truncation and rounding noise below 1e-9 of each
     * gradient: the engine's FP32 gradients within 1e-5 in relative norm per tensor
     * whose gradient is not ~0 (FP32 rounding through the layers: measured below) */
    {
        double *p64 = malloc((size_t)P * sizeof(double)), *x64 = malloc((size_t)(B * g.F) * 8);
        double *g64 = malloc((size_t)P * sizeof(double)), *gx64 = malloc((size_t)(B * g.F) * 8);
        cr_assert(p64 && x64 && g64 && gx64);
        for (int64_t i = 0; i < P; i++)
            p64[i] = n->params[i];
        for (int64_t i = 0; i < B * g.F; i++)
            x64[i] = g.x[i];
        const double l64 = r64_loss(m, p64, x64, g.y, B), h64 = 1e-6;
        /* the float64 forward computes the same function as the FP32 one */
        cr_expect_leq(fabs(l64 - loss), 1e-5 * fmax(1.0, fabs(loss)), "%s: loss %.9g vs %.9g", name,
                      l64, loss);
        for (int64_t i = 0; i < P + B * g.F; i++) {
            double *v = i < P ? &p64[i] : &x64[i - P], orig = *v;
            *v = orig + h64;
            double lp = r64_loss(m, p64, x64, g.y, B);
            *v = orig - h64;
            double lm = r64_loss(m, p64, x64, g.y, B);
            *v = orig;
            (i < P ? g64 : gx64)[i < P ? i : i - P] = (lp - lm) / (2 * h64);
        }
        double gmax64 = 0, worst64 = 0;
        for (int64_t i = 0; i < P; i++)
            gmax64 = fmax(gmax64, fabs(g64[i]));
        const char *worst64_name = "";
        for (int i = 0; i < ns + 1; i++) {
            const char *tn = i < ns ? segs[i].name : "input";
            const float *a = i < ns ? grads + segs[i].off : dx;
            const double *ref = i < ns ? g64 + segs[i].off : gx64;
            const int64_t cnt = i < ns ? segs[i].n : B * g.F;
            struct cmp c = compare(a, ref, cnt);
            if (i < ns && segs[i].zero) { /* exactly zero: FP32 noise only */
                cr_expect_leq(c.max_err, 1e-5 * gmax64, "%s: %s: %.3e where the gradient is 0",
                              name, tn, c.max_err);
                continue;
            }
            if (c.max_fd <= TOL_LIVE * gmax64)
                continue;
            double rel = sqrt(c.err2 / c.fd2);
            cr_expect_leq(rel, 1e-5, "%s: %s: relative error %.3e against float64", name, tn, rel);
            if (rel > worst64) {
                worst64 = rel;
                worst64_name = tn;
            }
        }
        cr_log_info("%s: against float64 central differences: worst tensor %s, relative norm "
                    "error %.2e",
                    name, worst64_name, worst64);
        free(p64);
        free(x64);
        free(g64);
        free(gx64);
    }

    fh_free(&g.run, dx);
    expect_no_leak(&g, 0, "after all passes");
    free(fd);
    free(fdx);
    free(grads);
    free(bufs0);
    free(bufs1);
    gx_close(&g);
}

/* ------------------------------------------------------------ tests ------ */

Test(net_grad, cnn_conv_batchnorm_maxpool_residual)
{
    check_model("cnn", 3);
}

Test(net_grad, transformer)
{
    check_model("transformer", 3);
}

Test(net_grad, transformer_causal)
{
    check_model("transformer_causal", 3);
}

Test(net_grad, mlp_batchnorm_gelu)
{
    check_model("mlp", 3);
}

/* The models use the layer kinds they are meant to cover. */
Test(net_grad, models_cover_every_layer_kind)
{
    static const char *files[] = {"cnn", "transformer", "transformer_causal", "mlp"};
    int seen[OOMB_LAYER_ATTENTION + 1] = {0};
    int causal = 0, s1_bn = 0, nobias = 0;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[512], err[512] = "";
        snprintf(path, sizeof path, NETGRAD_DIR "%s.yaml", files[f]);
        struct oomb_scenario *sc = NULL;
        cr_assert_eq(oomb_scenario_load(path, &sc, err, sizeof err), OOMB_OK, "%s", err);
        const struct oomb_layer *all[128];
        int na = 0;
        for (int l = 0; l < sc->model.n_layers; l++)
            all[na++] = sc->model.layers[l];
        for (int i = 0; i < sc->n_nested; i++)
            all[na++] = &sc->nested_storage[i];
        for (int i = 0; i < na; i++) {
            const struct oomb_layer *L = all[i];
            seen[L->kind] = 1;
            causal |= L->kind == OOMB_LAYER_ATTENTION && L->attrs[3] != 0;
            s1_bn |= L->kind == OOMB_LAYER_BATCHNORM && L->attrs[1] == 1;
            nobias |= L->kind == OOMB_LAYER_LINEAR && !L->has_bias;
        }
        oomb_scenario_destroy(sc);
    }
    for (int k = 0; k <= OOMB_LAYER_ATTENTION; k++)
        cr_expect(seen[k], "no model has a %s layer",
                  oomb_layer_kind_name((enum oomb_layer_kind)k));
    cr_expect(causal, "no causal attention");
    cr_expect(s1_bn, "no batch norm on flat features");
    cr_expect(nobias, "no linear layer without bias");
}
