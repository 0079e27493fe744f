/*
 * Strategy `prune`: magnitude pruning of the linear layers' weight matrices
 * (biases are never pruned).
 *
 * Threshold: per layer, the smallest magnitude t with #{|w| < t} >= k, where
 * k = round(sparsity * OC*C), found by bisection over the bit patterns of
 * non-negative floats with count_abs_below (at most 32 counts per layer; the
 * backend only ever returns counts, so this runs unchanged on CUDA).
 *
 * infer: one-shot pruning of the seeded weights at create, then storage in a
 * compressed format and a sparse GEMM; the dense FP32 copy exists only in a
 * one-layer staging buffer (tag workspace) while converting.
 *   unstructured: CSR, rowptr int32 (OC+1), colidx uint16 (nnz), vals F32 (nnz)
 *   2:4:          in every 4 consecutive weights of a row the 2 largest are
 *                 kept: vals F32 (OC, C/2) and 2-bit positions (OC, C/8) bytes
 * train: gradual magnitude pruning (Zhu & Gupta 2017): after each update of
 * steps begin..end the target sparsity is
 *   s_t = s * (1 - (1 - (t - begin) / (end - begin))^3)     (s at t >= end)
 * and each layer's mask is recomputed from the current magnitudes (pruned
 * weights are 0, so the pruned set only grows); after every later update the
 * mask is re-applied. 2:4 in train prunes once, at step `begin`, and then
 * trains with the fixed mask (the usual prune-once-then-fine-tune recipe for
 * 2:4; a cubic schedule has no meaning for a fixed 50% pattern). Masks are
 * uint8 per weight, kept for the whole run: tag optimizer (per-parameter
 * training state, like the moments).
 *
 * Memory, exactly (per linear layer OC out, C in; nnz kept weights):
 *   infer weights, unstructured = sum 4*(OC+1) + 6*nnz (+ 4*OC bias)
 *   infer weights, 2:4          = sum 2*OC*C + OC*C/8   (+ 4*OC bias)
 *   infer workspace = max layer 4*n_params (staging) + max layer OC*C (mask,
 *                     unstructured), at create only
 *   train: as none, plus optimizer += sum OC*C (masks); 2:4 adds a workspace
 *   of 2*OC*C + OC*C/8 of the largest layer at step `begin`.
 * Metric "sparsity": the fraction of zero weights over all pruned matrices
 * at the end of the run.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "engine.h"

/* Columns the uint16 CSR column indices can address. */
#define PRUNE_MAX_C 65536

enum prune_pattern { PATTERN_UNSTRUCTURED = 0, PATTERN_2OF4 = 1 };

struct plinear {
    /* CSR (unstructured) */
    int32_t *rowptr;
    uint16_t *colidx;
    float *vals;  /* CSR values, or 2:4 kept values (OC, C/2) */
    uint8_t *idx; /* 2:4 positions (OC, C/8) */
    float *bias;
    int64_t nnz;
};

struct prune_state {
    const struct oomb_host *h;
    const struct oomb_ext_sparse *sp; /* the backend's sparse kernels (OOMB_EXT_SPARSE) */
    int train;
    double sparsity;
    enum prune_pattern pattern;
    int64_t begin, end;
    /* infer */
    struct plinear *pl; /* (n_layers) */
    /* train */
    struct oomb_net net;
    struct oomb_engine eng; /* the step, with this strategy's update or linear layers */
    uint8_t *masks;         /* sum over linear layers of OC*C, tag optimizer */
    int64_t *mask_off;      /* (n_layers) offset of layer l's mask */
    int masked;             /* a mask has been computed */
};

static int is_pruned_layer(const struct oomb_layer *L)
{
    return L->kind == OOMB_LAYER_LINEAR;
}

static float bits_to_float(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* Smallest thr >= 0 with count(|w| < thr) >= k (w n elements, device). With
 * fewer than k finite weights, +inf (prunes every finite weight). */
static int find_threshold(const struct prune_state *s, const float *w, int64_t n, int64_t k,
                          float *thr, char *msg, size_t msg_len)
{
    const struct oomb_host *h = s->h;
    const struct oomb_ext_sparse *sx = s->sp;
    int64_t c;
    int rc;
    if (k <= 0) {
        *thr = 0.0f;
        return OOMB_OK;
    }
    /* Non-negative floats order like their bit patterns. */
    uint32_t lo = 0, hi = 0x7f800000u; /* count(lo) < k is known: count(0) = 0 */
    if ((rc = oomb_op_error(h, sx->count_abs_below(sx->ctx, w, n, bits_to_float(hi), &c),
                            "count_abs_below", msg, msg_len)))
        return rc;
    if (c < k) {
        *thr = INFINITY;
        return OOMB_OK;
    }
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if ((rc = oomb_op_error(h, sx->count_abs_below(sx->ctx, w, n, bits_to_float(mid), &c),
                                "count_abs_below", msg, msg_len)))
            return rc;
        if (c >= k)
            hi = mid;
        else
            lo = mid;
    }
    *thr = bits_to_float(hi);
    return OOMB_OK;
}

/* Number of exact zeros in w (n). |x| < the smallest subnormal only for 0. */
static int count_zeros(const struct prune_state *s, const float *w, int64_t n, int64_t *zeros,
                       char *msg, size_t msg_len)
{
    const struct oomb_ext_sparse *sx = s->sp;
    return oomb_op_error(s->h, sx->count_abs_below(sx->ctx, w, n, FLT_TRUE_MIN, zeros),
                         "count_abs_below", msg, msg_len);
}

static void prune_destroy(void *state)
{
    struct prune_state *s = state;
    if (!s)
        return;
    const struct oomb_host *h = s->h;
    if (s->pl) {
        for (int l = 0; l < h->info->model->n_layers; l++) {
            h->free(h->run, s->pl[l].rowptr);
            h->free(h->run, s->pl[l].colidx);
            h->free(h->run, s->pl[l].vals);
            h->free(h->run, s->pl[l].idx);
            h->free(h->run, s->pl[l].bias);
        }
        free(s->pl);
    }
    h->free(h->run, s->masks);
    free(s->mask_off);
    oomb_engine_free(&s->eng);
    oomb_net_free(&s->net);
    free(s);
}

/* One layer at create (infer): prune the staged dense weights, store them
 * compressed. stage holds W then b (n_params). */
static int compress_layer(struct prune_state *s, int l, float *stage, uint8_t *mask, char *msg,
                          size_t msg_len)
{
    const struct oomb_host *h = s->h;
    const struct oomb_ops *o = h->ops;
    const struct oomb_ext_sparse *sx = s->sp;
    const struct oomb_layer *L = h->info->model->layers[l];
    int64_t R, OC, C;
    oomb_linear_dims(L, &R, &C, &OC);
    const int64_t nw = OC * C;
    struct plinear *p = &s->pl[l];
    int rc;
    if (s->pattern == PATTERN_2OF4) {
        if ((rc = oomb_net_alloc(h, (size_t)(nw / 2) * 4, OOMB_TAG_WEIGHTS, "2:4 values",
                                 (void **)&p->vals, msg, msg_len)) ||
            (rc = oomb_net_alloc(h, (size_t)(nw / 8), OOMB_TAG_WEIGHTS, "2:4 indices",
                                 (void **)&p->idx, msg, msg_len)))
            return rc;
        if ((rc = oomb_op_error(h, sx->compress_2of4(sx->ctx, p->vals, p->idx, stage, OC, C),
                                "compress_2of4", msg, msg_len)))
            return rc;
        p->nnz = nw / 2;
    } else {
        float thr;
        int64_t k = llround(s->sparsity * (double)nw), zeros;
        if ((rc = find_threshold(s, stage, nw, k, &thr, msg, msg_len)) ||
            (rc = oomb_op_error(h, sx->prune_by_threshold(sx->ctx, stage, mask, nw, thr),
                                "prune_by_threshold", msg, msg_len)) ||
            (rc = count_zeros(s, stage, nw, &zeros, msg, msg_len)))
            return rc;
        /* A dry run computes nothing (every count is 0): it keeps what
         * weights without ties at the threshold keep, nw - k. */
        p->nnz = OOMB_HAS(h->info, dry_run) ? nw - k : nw - zeros;
        if ((rc = oomb_net_alloc(h, (size_t)(OC + 1) * 4, OOMB_TAG_WEIGHTS, "csr rowptr",
                                 (void **)&p->rowptr, msg, msg_len)) ||
            (p->nnz > 0 &&
             ((rc = oomb_net_alloc(h, (size_t)p->nnz * 2, OOMB_TAG_WEIGHTS, "csr colidx",
                                   (void **)&p->colidx, msg, msg_len)) ||
              (rc = oomb_net_alloc(h, (size_t)p->nnz * 4, OOMB_TAG_WEIGHTS, "csr values",
                                   (void **)&p->vals, msg, msg_len)))))
            return rc;
        if ((rc = oomb_op_error(
                 h, sx->dense_to_csr(sx->ctx, p->rowptr, p->colidx, p->vals, stage, OC, C),
                 "dense_to_csr", msg, msg_len)))
            return rc;
    }
    if (L->has_bias) {
        if ((rc = oomb_net_alloc(h, (size_t)OC * 4, OOMB_TAG_WEIGHTS, "bias", (void **)&p->bias,
                                 msg, msg_len)))
            return rc;
        if ((rc = oomb_op_error(h, o->copy(o->ctx, p->bias, stage + nw, (size_t)OC * 4),
                                "copy bias", msg, msg_len)))
            return rc;
    }
    return OOMB_OK;
}

static int create_infer(struct prune_state *s, char *msg, size_t msg_len)
{
    int na = oomb_net_require_linear_params(
        s->h->info->model, "sparse inference replaces linear layers only", msg, msg_len);
    if (na != OOMB_OK)
        return na;
    const struct oomb_host *h = s->h;
    const struct oomb_model *m = h->info->model;
    float *stage = NULL;
    uint8_t *mask = NULL;
    int64_t max_params = 0, max_w = 0, zeros = 0, total = 0;
    int rc = OOMB_OK;

    s->pl = calloc((size_t)m->n_layers, sizeof *s->pl);
    if (!s->pl) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    for (int l = 0; l < m->n_layers; l++) {
        const struct oomb_layer *L = m->layers[l];
        if (!is_pruned_layer(L))
            continue;
        if (L->n_params > max_params)
            max_params = L->n_params;
        if (oomb_linear_weights(L) > max_w)
            max_w = oomb_linear_weights(L);
    }
    if (max_params == 0)
        return OOMB_OK;
    if ((rc = oomb_net_alloc(h, (size_t)max_params * 4, OOMB_TAG_WORKSPACE, "fp32 staging",
                             (void **)&stage, msg, msg_len)))
        goto done;
    if (s->pattern == PATTERN_UNSTRUCTURED &&
        (rc = oomb_net_alloc(h, (size_t)max_w, OOMB_TAG_WORKSPACE, "staging mask", (void **)&mask,
                             msg, msg_len)))
        goto done;
    for (int l = 0; l < m->n_layers; l++) {
        const struct oomb_layer *L = m->layers[l];
        if (!is_pruned_layer(L))
            continue;
        if ((rc = h->init_params(h->run, l, stage))) {
            oomb_msg(msg, msg_len, "layer %d: host init_params failed", l + 1);
            goto done;
        }
        if ((rc = compress_layer(s, l, stage, mask, msg, msg_len)))
            goto done;
        total += oomb_linear_weights(L);
        zeros += oomb_linear_weights(L) - s->pl[l].nnz;
    }
    h->report_metric(h->run, "sparsity", total ? (double)zeros / (double)total : 0.0);
done:
    h->free(h->run, mask);
    h->free(h->run, stage);
    return rc;
}

static int create_train(struct prune_state *s, char *msg, size_t msg_len)
{
    const struct oomb_host *h = s->h;
    const struct oomb_model *m = h->info->model;
    int64_t total = 0;
    int rc;
    if ((rc = oomb_net_init(&s->net, h, m, OOMB_NET_GRADS | OOMB_NET_OPTIMIZER, msg, msg_len)))
        return rc;
    s->mask_off = calloc((size_t)m->n_layers, sizeof *s->mask_off);
    if (!s->mask_off) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    for (int l = 0; l < m->n_layers; l++) {
        const struct oomb_layer *L = m->layers[l];
        s->mask_off[l] = total;
        if (is_pruned_layer(L))
            total += oomb_linear_weights(L);
    }
    if (total > 0 && (rc = oomb_net_alloc(h, (size_t)total, OOMB_TAG_OPTIMIZER, "pruning masks",
                                          (void **)&s->masks, msg, msg_len)))
        return rc;
    return OOMB_OK;
}

/* Parses and checks the parameters against the model and the run. */
static int read_params(struct prune_state *s, char *msg, size_t msg_len)
{
    const struct oomb_host *h = s->h;
    const struct oomb_run_info *ri = h->info;
    const struct oomb_model *m = ri->model;
    const char *pattern = NULL;
    double sp;
    int64_t begin, end;
    if (h->param_float(h->run, "sparsity", &sp) != OOMB_OK || !(sp >= 0.0 && sp < 1.0)) {
        oomb_msg(msg, msg_len, "parameter sparsity must be a number in [0, 1)");
        return OOMB_ERR_INVALID;
    }
    if (h->param_str(h->run, "pattern", &pattern) != OOMB_OK) {
        oomb_msg(msg, msg_len, "parameter pattern: expected unstructured or 2:4");
        return OOMB_ERR_INVALID;
    }
    if (strcmp(pattern, "unstructured") == 0) {
        s->pattern = PATTERN_UNSTRUCTURED;
    } else if (strcmp(pattern, "2:4") == 0) {
        s->pattern = PATTERN_2OF4;
        if (sp != 0.5)
            h->log(h->run, OOMB_LOG_INFO,
                   "pattern 2:4 prunes exactly 50%%; sparsity %g is not used", sp);
        sp = 0.5;
    } else {
        oomb_msg(msg, msg_len, "parameter pattern '%s': expected unstructured or 2:4", pattern);
        return OOMB_ERR_INVALID;
    }
    s->sparsity = sp;
    for (int l = 0; l < m->n_layers; l++) {
        const struct oomb_layer *L = m->layers[l];
        if (!is_pruned_layer(L))
            continue;
        int64_t R, C, OC;
        oomb_linear_dims(L, &R, &C, &OC);
        if (s->pattern == PATTERN_2OF4 && C % 8 != 0) {
            oomb_msg(msg, msg_len,
                     "pattern 2:4 needs in_features divisible by 8; layer %d (linear) has %lld",
                     l + 1, (long long)C);
            return OOMB_ERR_INVALID;
        }
        if (!s->train && s->pattern == PATTERN_UNSTRUCTURED && C > PRUNE_MAX_C) {
            oomb_msg(msg, msg_len,
                     "layer %d (linear): %lld in_features exceed the %d columns that 16-bit CSR "
                     "column indices address",
                     l + 1, (long long)C, PRUNE_MAX_C);
            return OOMB_ERR_NOT_APPLICABLE;
        }
    }
    if (h->param_int(h->run, "begin", &begin) != OOMB_OK ||
        h->param_int(h->run, "end", &end) != OOMB_OK) {
        oomb_msg(msg, msg_len, "parameters begin and end must be integers");
        return OOMB_ERR_INVALID;
    }
    int64_t steps = ri->warmup_steps + ri->measured_steps;
    s->begin = begin < 0 ? ri->warmup_steps : begin;
    s->end = end < 0 ? steps - 1 : end;
    if (s->train && (begin < -1 || end < -1 || s->begin > s->end || s->end >= steps)) {
        oomb_msg(msg, msg_len,
                 "parameters begin %lld and end %lld: need -1 (default) or 0 <= begin <= end < "
                 "%lld (the run's warm-up + measured steps)",
                 (long long)begin, (long long)end, (long long)steps);
        return OOMB_ERR_INVALID;
    }
    return OOMB_OK;
}

static int update_and_prune(void *user, int64_t step, char *msg, size_t msg_len);
static int linear_sparse(void *user, int l, float *out, const float *in, int64_t B, char *msg,
                         size_t msg_len);

static int prune_create(const struct oomb_host *h, void **state, char *msg, size_t msg_len)
{
    struct prune_state *s = calloc(1, sizeof *s);
    if (!s) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    s->h = h;
    s->train = h->info->mode == OOMB_MODE_TRAIN;
    s->sp = OOMB_HAS(h, get_extension)
                ? h->get_extension(h->run, OOMB_EXT_SPARSE, OOMB_EXT_SPARSE_VERSION)
                : NULL;
    if (!s->sp) {
        oomb_msg(msg, msg_len,
                 "the %s backend has no sparse kernels (extension \"%s\" version %u or later)",
                 h->ops->backend_name, OOMB_EXT_SPARSE, OOMB_EXT_SPARSE_VERSION);
        prune_destroy(s);
        return OOMB_ERR_UNSUPPORTED;
    }
    int rc = read_params(s, msg, msg_len);
    if (rc == OOMB_OK)
        rc = s->train ? create_train(s, msg, msg_len) : create_infer(s, msg, msg_len);
    if (rc == OOMB_OK)
        rc = oomb_engine_open_replaced(&s->eng, &s->net, h, update_and_prune, linear_sparse, s, msg,
                                       msg_len);
    if (rc != OOMB_OK) {
        prune_destroy(s);
        return rc;
    }
    *state = s;
    return OOMB_OK;
}

/* Target sparsity after the update of step t (cubic schedule). */
static double target_sparsity(const struct prune_state *s, int64_t t)
{
    if (t < s->begin)
        return 0.0;
    if (t >= s->end)
        return s->sparsity;
    double p = 1.0 - (double)(t - s->begin) / (double)(s->end - s->begin);
    return s->sparsity * (1.0 - p * p * p);
}

/* Prune every layer to 2:4 (train): compress into scratch, keep the mask. */
static int prune_2of4_train(struct prune_state *s, char *msg, size_t msg_len)
{
    const struct oomb_host *h = s->h;
    const struct oomb_ext_sparse *sx = s->sp;
    const struct oomb_model *m = h->info->model;
    int64_t max_w = 0;
    float *vals = NULL;
    uint8_t *idx = NULL;
    int rc;
    for (int l = 0; l < m->n_layers; l++)
        if (is_pruned_layer(m->layers[l]) && oomb_linear_weights(m->layers[l]) > max_w)
            max_w = oomb_linear_weights(m->layers[l]);
    if ((rc = oomb_net_alloc(h, (size_t)(max_w / 2) * 4, OOMB_TAG_WORKSPACE, "2:4 values",
                             (void **)&vals, msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)(max_w / 8), OOMB_TAG_WORKSPACE, "2:4 indices",
                             (void **)&idx, msg, msg_len)))
        goto done;
    for (int l = 0; l < m->n_layers; l++) {
        const struct oomb_layer *L = m->layers[l];
        if (!is_pruned_layer(L))
            continue;
        float *w = oomb_net_weight(&s->net, l);
        int64_t R, C, OC;
        oomb_linear_dims(L, &R, &C, &OC);
        int64_t nw = OC * C;
        /* compress_2of4 zeroes the dropped weights; the mask is then w != 0 */
        if ((rc = oomb_op_error(h, sx->compress_2of4(sx->ctx, vals, idx, w, OC, C), "compress_2of4",
                                msg, msg_len)) ||
            (rc = oomb_op_error(
                 h, sx->prune_by_threshold(sx->ctx, w, s->masks + s->mask_off[l], nw, FLT_TRUE_MIN),
                 "prune_by_threshold", msg, msg_len)))
            goto done;
    }
done:
    h->free(h->run, idx);
    h->free(h->run, vals);
    return rc;
}

/* The run's optimizer step, then the pruning schedule or the fixed mask. */
static int update_and_prune(void *user, int64_t step, char *msg, size_t msg_len)
{
    struct prune_state *s = user;
    const struct oomb_host *h = s->h;
    const struct oomb_ext_sparse *sx = s->sp;
    const struct oomb_model *m = h->info->model;
    int rc;
    if ((rc = oomb_net_update(&s->net, msg, msg_len)))
        return rc;
    int prune_now =
        s->pattern == PATTERN_2OF4 ? step == s->begin : step >= s->begin && step <= s->end;
    if (prune_now && s->pattern == PATTERN_2OF4) {
        if ((rc = prune_2of4_train(s, msg, msg_len)))
            return rc;
        s->masked = 1;
        return OOMB_OK;
    }
    if (!prune_now && !s->masked)
        return OOMB_OK;
    double sp = target_sparsity(s, step);
    for (int l = 0; l < m->n_layers; l++) {
        const struct oomb_layer *L = m->layers[l];
        if (!is_pruned_layer(L))
            continue;
        float *w = oomb_net_weight(&s->net, l);
        uint8_t *mask = s->masks + s->mask_off[l];
        int64_t nw = oomb_linear_weights(L);
        if (prune_now) {
            float thr;
            if ((rc = find_threshold(s, w, nw, llround(sp * (double)nw), &thr, msg, msg_len)) ||
                (rc = oomb_op_error(h, sx->prune_by_threshold(sx->ctx, w, mask, nw, thr),
                                    "prune_by_threshold", msg, msg_len)))
                return rc;
        } else if ((rc = oomb_op_error(h, sx->apply_mask(sx->ctx, w, mask, nw), "apply_mask", msg,
                                       msg_len))) {
            return rc;
        }
    }
    if (prune_now)
        s->masked = 1;
    return OOMB_OK;
}

/* Sparse linear layer l (infer). */
static int linear_sparse(void *user, int l, float *out, const float *in, int64_t B, char *msg,
                         size_t msg_len)
{
    struct prune_state *s = user;
    const struct oomb_host *h = s->h;
    const struct oomb_ext_sparse *sx = s->sp;
    const struct oomb_layer *L = h->info->model->layers[l];
    const struct plinear *p = &s->pl[l];
    int64_t R, C, OC;
    oomb_linear_dims(L, &R, &C, &OC);
    if (s->pattern == PATTERN_2OF4)
        return oomb_op_error(
            h, sx->linear_forward_2of4(sx->ctx, out, in, p->vals, p->idx, p->bias, B, C, OC),
            "linear_forward_2of4", msg, msg_len);
    return oomb_op_error(
        h,
        sx->linear_forward_csr(sx->ctx, out, in, p->rowptr, p->colidx, p->vals, p->bias, B, C, OC),
        "linear_forward_csr", msg, msg_len);
}

static int prune_step(void *state, int64_t step, char *msg, size_t msg_len)
{
    struct prune_state *s = state;
    return oomb_engine_step(&s->eng, step, msg, msg_len);
}

/* train: the sparsity reached, over all pruned matrices. */
static int prune_finish(void *state, char *msg, size_t msg_len)
{
    struct prune_state *s = state;
    if (!s->train)
        return OOMB_OK;
    const struct oomb_model *m = s->h->info->model;
    int64_t zeros = 0, total = 0;
    for (int l = 0; l < m->n_layers; l++) {
        const struct oomb_layer *L = m->layers[l];
        if (!is_pruned_layer(L))
            continue;
        int64_t z, nw = oomb_linear_weights(L);
        int rc = count_zeros(s, oomb_net_weight(&s->net, l), nw, &z, msg, msg_len);
        if (rc)
            return rc;
        zeros += z;
        total += nw;
    }
    s->h->report_metric(s->h->run, "sparsity", total ? (double)zeros / (double)total : 0.0);
    return OOMB_OK;
}

static int prune_evaluate(void *state, char *msg, size_t msg_len)
{
    struct prune_state *s = state;
    /* train only: the pruned FP32 parameters */
    return oomb_engine_evaluate(&s->eng, 0, msg, msg_len);
}

static const struct oomb_param_desc params[] = {
    {.struct_size = OOMB_PARAM_DESC_SIZE, .name = "sparsity", .type = OOMB_PARAM_FLOAT,
     .default_value = "0.9", .unit = "fraction",
     .help = "target fraction of zero weights per linear layer (2:4 is always 0.5)",
     .bounds = OOMB_PARAM_MIN | OOMB_PARAM_MAX | OOMB_PARAM_MAX_OPEN, .min = 0, .max = 1},
    {.struct_size = OOMB_PARAM_DESC_SIZE, .name = "pattern", .type = OOMB_PARAM_STRING,
     .default_value = "unstructured", .unit = "",
     .help = "unstructured (CSR, 16-bit column indices) or 2:4 (needs in_features % 8 == 0)",
     .choices = "unstructured|2:4"},
    {.struct_size = OOMB_PARAM_DESC_SIZE, .name = "begin", .type = OOMB_PARAM_INT,
     .default_value = "-1", .unit = "steps",
     .help = "train: first step of the pruning schedule, counted from 0 with warm-up; -1: the "
             "first measured step",
     .bounds = OOMB_PARAM_MIN, .min = -1},
    {.struct_size = OOMB_PARAM_DESC_SIZE, .name = "end", .type = OOMB_PARAM_INT,
     .default_value = "-1", .unit = "steps",
     .help = "train: step at which the target sparsity is reached; -1: the last step",
     .bounds = OOMB_PARAM_MIN, .min = -1},
};

static const struct oomb_plugin descriptor = {
    .struct_size = sizeof(struct oomb_plugin),
    .abi_major = OOMB_ABI_MAJOR,
    .abi_minor = OOMB_ABI_MINOR,
    .name = "prune",
    .description = "Magnitude pruning: infer stores CSR or 2:4 weights with sparse GEMMs; "
                   "train prunes gradually with masks",
    .modes = OOMB_MODE_TRAIN | OOMB_MODE_INFER,
    .backends = OOMB_BACKEND_CPU | OOMB_BACKEND_CUDA,
    .params = params,
    .n_params = (int)(sizeof params / sizeof params[0]),
    .create = prune_create,
    .step = prune_step,
    .finish = prune_finish,
    .destroy = prune_destroy,
    .evaluate = prune_evaluate,
};

OOMB_EXPORT const struct oomb_plugin *OOMB_PLUGIN_ENTRY(void)
{
    return &descriptor;
}
