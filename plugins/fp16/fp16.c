/*
 * Strategy `fp16`: mixed precision. Activations, a copy of the weights and
 * the activation gradients flowing backward are stored in IEEE half
 * precision (2 bytes); the kernels accumulate in FP32. Training keeps FP32
 * master weights, FP32 parameter gradients (linear_backward's dweight and
 * dbias accumulate in FP32 whatever the dtype of its inputs) and FP32
 * optimizer state. The loss (softmax cross-entropy) runs on FP32 logits,
 * cast from the last layer's F16 output into a transient buffer.
 *
 * Dynamic loss scaling keeps small activation gradients from flushing to
 * zero in F16: the loss gradient is multiplied by S before it is cast to
 * F16. After backward the FP32 gradients are checked for inf/NaN
 * (count_nonfinite): if any, the update is skipped and S *= backoff;
 * otherwise they are unscaled (times 1/S), the optimizer steps, the F16
 * weight copy is refreshed from the master weights, and after
 * growth_interval clean steps in a row S *= growth. Metrics "loss_scale"
 * (S after the last step) and "skipped_steps" (over all steps, warm-up
 * included). "weights" is reported every step (unchanged on a skipped one)
 * so that record i is compared with none's after step i.
 *
 * Inference keeps only F16 weights (and the FP32 biases): there is no
 * master copy. "output0" is the FP32 cast of the F16 logits.
 *
 * Memory (P parameters, P_b of them biases, B batch, f_l widths as in
 * plugins/none/none.c, K classes, c = min(B, 32) samples loaded at a time):
 *   train: weights = 4P (master) + 2P (F16 copy of all P);
 *          grads, optimizer as none; other = 4B (labels);
 *          workspace = 4c f_in (FP32 input staging while loading);
 *          activations = the larger of
 *            2B (f_in + sum_l f_l) + 4B (2K + 1)    end of forward: all F16
 *                                                   activations, FP32 logits,
 *                                                   probs and losses
 *            2B (f_in + sum_l f_l - K) + 2B T       a linear layer's backward
 *          with T = max over linear l of (f_l + in_l), in_l only for l > 0
 *          (none's transient term): at most half of none's plus 4B (2K + 1)
 *          bytes of FP32 bookkeeping around the loss;
 *   infer: weights = 2P + 4 P_b; other = 4B (labels); workspace = the larger
 *          of 4c f_in (input staging) and 4 max_l n_params_l (one layer's
 *          FP32 parameters while converting them at create);
 *          activations = max(2B max_l (in_l + f_l), 2BK + 4BK + 4BK + 4B).
 * Cost: F32<->F16 casts of the input, logits and weights each step and the
 * F16 kernels' conversions; accuracy: F16 rounding of activations
 * (relative 2^-11) and of the weights used in forward.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "net.h"
#include "steps.h"

#define FP16_LOAD_CHUNK 32 /* samples loaded (F32) and cast at a time */

struct fp16_state {
    const struct oomb_host *h;
    const struct oomb_ops *ops;
    void *k;
    int train;
    struct oomb_net net; /* train: FP32 master weights, grads, optimizer */
    int64_t n_params;
    int64_t *off;  /* (n_layers + 1) element offset of each layer's parameters */
    uint16_t *w16; /* (n_params) F16 weights: layer l's W at w16 + off[l] */
    float *b32;    /* infer: the FP32 biases, layer l's at b32 + boff[l] */
    int64_t *boff;
    /* loss scaling (train) */
    double scale, growth, backoff;
    int64_t growth_interval, clean_steps, skipped_steps;
};

static int op_err(struct fp16_state *s, int rc, const char *what, char *msg, size_t msg_len)
{
    if (rc != OOMB_OK)
        oomb_msg(msg, msg_len, "%s: %s", what, s->ops->last_error(s->k));
    return rc;
}

static const float *layer_bias(struct fp16_state *s, int l)
{
    const struct oomb_layer *L = s->h->info->model->layers[l];
    if (L->kind != OOMB_LAYER_LINEAR || !L->has_bias)
        return NULL;
    return s->train ? oomb_net_bias(&s->net, l) : s->b32 + s->boff[l];
}

static int read_params(struct fp16_state *s, char *msg, size_t msg_len)
{
    const struct oomb_host *h = s->h;
    double v;
    int64_t i;
    if (h->param_float(h->run, "init_scale", &v) || !(v > 0) || !isfinite(v)) {
        oomb_msg(msg, msg_len, "parameter 'init_scale' must be a finite number > 0");
        return OOMB_ERR_INVALID;
    }
    s->scale = v;
    if (h->param_float(h->run, "growth", &v) || !(v >= 1) || !isfinite(v)) {
        oomb_msg(msg, msg_len, "parameter 'growth' must be a finite number >= 1");
        return OOMB_ERR_INVALID;
    }
    s->growth = v;
    if (h->param_float(h->run, "backoff", &v) || !(v > 0 && v <= 1)) {
        oomb_msg(msg, msg_len, "parameter 'backoff' must be in (0, 1]");
        return OOMB_ERR_INVALID;
    }
    s->backoff = v;
    if (h->param_int(h->run, "growth_interval", &i) || i < 1) {
        oomb_msg(msg, msg_len, "parameter 'growth_interval' must be an integer >= 1");
        return OOMB_ERR_INVALID;
    }
    s->growth_interval = i;
    return OOMB_OK;
}

/* Inference weights: each layer's seeded FP32 parameters pass through a
 * staging buffer (tag workspace, freed before create returns) into the F16
 * weights and the FP32 biases. */
static int init_infer_weights(struct fp16_state *s, char *msg, size_t msg_len)
{
    const struct oomb_host *h = s->h;
    const struct oomb_model *m = h->info->model;
    int64_t n_bias = 0, max_layer = 0;
    for (int l = 0; l < m->n_layers; l++) {
        const struct oomb_layer *L = m->layers[l];
        s->boff[l] = n_bias;
        if (L->kind == OOMB_LAYER_LINEAR && L->has_bias)
            n_bias += L->out_features;
        if (L->n_params > max_layer)
            max_layer = L->n_params;
    }
    int rc;
    float *stage = NULL;
    if ((rc = oomb_net_alloc(h, (size_t)n_bias * 4, OOMB_TAG_WEIGHTS, "biases",
                             (void **)&s->b32, msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)max_layer * 4, OOMB_TAG_WORKSPACE, "weight staging",
                             (void **)&stage, msg, msg_len)))
        return rc;
    for (int l = 0; l < m->n_layers && rc == OOMB_OK; l++) {
        const struct oomb_layer *L = m->layers[l];
        if (L->n_params == 0)
            continue;
        if ((rc = h->init_params(h->run, l, stage))) {
            oomb_msg(msg, msg_len, "initialising layer %d: host init_params failed", l);
            break;
        }
        int64_t nw = L->out_features * L->in_features;
        rc = op_err(s, s->ops->cast(s->k, s->w16 + s->off[l], OOMB_F16, stage, OOMB_F32, nw),
                    "cast weights to F16", msg, msg_len);
        if (rc == OOMB_OK && L->has_bias)
            rc = op_err(s,
                        s->ops->copy(s->k, s->b32 + s->boff[l], stage + nw,
                                     (size_t)L->out_features * 4),
                        "copy biases", msg, msg_len);
    }
    h->free(h->run, stage);
    return rc;
}

static void fp16_destroy(void *state);

static int fp16_create(const struct oomb_host *h, void **state, char *msg, size_t msg_len)
{
    const struct oomb_model *m = h->info->model;
    for (int l = 0; l < m->n_layers; l++) {
        const struct oomb_layer *L = m->layers[l];
        int ok = L->kind == OOMB_LAYER_RELU || L->kind == OOMB_LAYER_GELU ||
                 (L->kind == OOMB_LAYER_LINEAR && L->attrs[0] <= 1);
        if (!ok) {
            oomb_msg(msg, msg_len,
                     "FP16 kernels exist for linear, relu and gelu layers; layer %d is %s%s", l,
                     oomb_layer_kind_name(L->kind),
                     L->kind == OOMB_LAYER_LINEAR ? " applied per token" : "");
            return OOMB_ERR_NOT_APPLICABLE;
        }
    }
    struct fp16_state *s = calloc(1, sizeof *s);
    if (!s || !(s->off = calloc((size_t)m->n_layers + 1, sizeof *s->off)) ||
        !(s->boff = calloc((size_t)m->n_layers + 1, sizeof *s->boff))) {
        if (s) {
            free(s->off);
            free(s);
        }
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    s->h = h;
    s->ops = h->ops;
    s->k = h->ops->ctx;
    s->train = h->info->mode == OOMB_MODE_TRAIN;
    int rc;
    if ((rc = read_params(s, msg, msg_len)))
        goto fail;
    for (int l = 0; l < m->n_layers; l++) {
        s->off[l] = s->n_params;
        s->n_params += m->layers[l]->n_params;
    }
    s->off[m->n_layers] = s->n_params;
    if (s->train &&
        (rc = oomb_net_init(&s->net, h, m, OOMB_NET_GRADS | OOMB_NET_OPTIMIZER, msg, msg_len)))
        goto fail;
    if ((rc = oomb_net_alloc(h, (size_t)s->n_params * 2, OOMB_TAG_WEIGHTS, "weights f16",
                             (void **)&s->w16, msg, msg_len)))
        goto fail;
    if (s->train)
        rc = op_err(s,
                    s->ops->cast(s->k, s->w16, OOMB_F16, s->net.params, OOMB_F32, s->n_params),
                    "cast weights to F16", msg, msg_len);
    else
        rc = init_infer_weights(s, msg, msg_len);
    if (rc)
        goto fail;
    if (s->train) {
        h->report_metric(h->run, "loss_scale", s->scale);
        h->report_metric(h->run, "skipped_steps", 0);
    }
    *state = s;
    return OOMB_OK;
fail:
    fp16_destroy(s);
    return rc;
}

/* out = layer l of in, F16, batch B. */
static int forward16(struct fp16_state *s, int l, void *out, const void *in, int64_t B, char *msg,
                     size_t msg_len)
{
    const struct oomb_layer *L = s->h->info->model->layers[l];
    int rc;
    switch (L->kind) {
    case OOMB_LAYER_LINEAR:
        rc = s->ops->linear_forward(s->k, OOMB_F16, out, in, s->w16 + s->off[l], layer_bias(s, l),
                                    B, L->in_features, L->out_features);
        break;
    case OOMB_LAYER_RELU:
        rc = s->ops->relu_forward(s->k, OOMB_F16, out, in, B * L->out_features);
        break;
    case OOMB_LAYER_GELU:
        rc = s->ops->gelu_forward(s->k, OOMB_F16, out, in, B * L->out_features);
        break;
    default:
        oomb_msg(msg, msg_len, "layer %d: kind %d not supported", l, (int)L->kind);
        return OOMB_ERR_NOT_APPLICABLE;
    }
    return op_err(s, rc, "F16 forward", msg, msg_len);
}

/* Backward of layer l in F16; FP32 parameter gradients accumulate; din
 * overwritten (NULL: skipped), may equal dout for activation layers. */
static int backward16(struct fp16_state *s, int l, void *din, void *dout, const void *in,
                      int64_t B, char *msg, size_t msg_len)
{
    const struct oomb_layer *L = s->h->info->model->layers[l];
    int64_t cnt = B * L->out_features;
    int rc;
    switch (L->kind) {
    case OOMB_LAYER_LINEAR:
        rc = s->ops->linear_backward(s->k, OOMB_F16, din, oomb_net_dweight(&s->net, l),
                                     oomb_net_dbias(&s->net, l), dout, in, s->w16 + s->off[l], B,
                                     L->in_features, L->out_features);
        break;
    case OOMB_LAYER_RELU:
        rc = s->ops->relu_backward(s->k, OOMB_F16, din, dout, in, cnt);
        break;
    case OOMB_LAYER_GELU:
        rc = s->ops->gelu_backward(s->k, OOMB_F16, din, dout, in, cnt);
        break;
    default:
        oomb_msg(msg, msg_len, "layer %d: kind %d not supported", l, (int)L->kind);
        return OOMB_ERR_NOT_APPLICABLE;
    }
    return op_err(s, rc, "F16 backward", msg, msg_len);
}

/* Loads the step's batch: labels into y (B), inputs cast to F16 into x16
 * (B, f_in) through an FP32 staging buffer of FP16_LOAD_CHUNK samples. */
static int load_f16(struct fp16_state *s, int64_t step, uint16_t *x16, int32_t *y, char *msg,
                    size_t msg_len)
{
    const struct oomb_host *h = s->h;
    const int64_t B = h->info->batch, F = h->info->model->input_features;
    const int64_t c = B < FP16_LOAD_CHUNK ? B : FP16_LOAD_CHUNK;
    float *stage = NULL;
    int rc;
    if ((rc = oomb_net_alloc(h, (size_t)(c * F) * 4, OOMB_TAG_WORKSPACE, "input staging",
                             (void **)&stage, msg, msg_len)))
        return rc;
    for (int64_t first = 0; first < B && rc == OOMB_OK; first += c) {
        int64_t n = B - first < c ? B - first : c;
        if ((rc = h->load_batch(h->run, step, first, n, stage, y + first))) {
            oomb_msg(msg, msg_len, "load_batch failed");
            break;
        }
        rc = op_err(s, s->ops->cast(s->k, x16 + first * F, OOMB_F16, stage, OOMB_F32, n * F),
                    "cast input to F16", msg, msg_len);
    }
    h->free(h->run, stage);
    return rc;
}

/* The F16 logits (B, K) cast to FP32 into a new buffer *logits; then the
 * per-sample losses and probs, the mean loss and the correct count. */
static int loss16(struct fp16_state *s, const uint16_t *out16, const int32_t *y, float **logits,
                  float **probs, float **losses, double *loss, int64_t *correct, char *msg,
                  size_t msg_len)
{
    const struct oomb_host *h = s->h;
    const int64_t B = h->info->batch, K = h->info->model->classes;
    int rc;
    double sum = 0;
    if ((rc = oomb_net_alloc(h, (size_t)(B * K) * 4, OOMB_TAG_ACTIVATIONS, "logits f32",
                             (void **)logits, msg, msg_len)) ||
        (rc = op_err(s, s->ops->cast(s->k, *logits, OOMB_F32, out16, OOMB_F16, B * K),
                     "cast logits to F32", msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)(B * K) * 4, OOMB_TAG_ACTIVATIONS, "probs",
                             (void **)probs, msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)B * 4, OOMB_TAG_ACTIVATIONS, "losses", (void **)losses,
                             msg, msg_len)) ||
        (rc = op_err(s, s->ops->softmax_xent_forward(s->k, *losses, *probs, *logits, y, B, K),
                     "softmax_xent_forward", msg, msg_len)) ||
        (rc = op_err(s, s->ops->count_correct(s->k, *logits, y, B, K, correct), "count_correct",
                     msg, msg_len)) ||
        (rc = op_err(s, s->ops->sum(s->k, *losses, B, &sum), "loss sum", msg, msg_len)))
        return rc;
    *loss = sum / (double)B;
    return OOMB_OK;
}

static int train_step(struct fp16_state *s, int64_t step, char *msg, size_t msg_len)
{
    const struct oomb_host *h = s->h;
    const struct oomb_model *m = h->info->model;
    struct oomb_net *n = &s->net;
    const int L = m->n_layers;
    const int64_t B = h->info->batch, K = m->classes;
    int rc = OOMB_OK;
    uint16_t *x16 = NULL, *dcur = NULL;
    float *logits = NULL, *probs = NULL, *losses = NULL, *dl32 = NULL;
    int32_t *y = NULL;
    uint16_t **acts = calloc((size_t)L, sizeof *acts);
    if (!acts) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }

    h->phase(h->run, OOMB_PHASE_OTHER);
    if ((rc = oomb_net_alloc(h, (size_t)(B * m->input_features) * 2, OOMB_TAG_ACTIVATIONS,
                             "input f16", (void **)&x16, msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)B * 4, OOMB_TAG_OTHER, "labels", (void **)&y, msg,
                             msg_len)) ||
        (rc = load_f16(s, step, x16, y, msg, msg_len)))
        goto done;

    h->phase(h->run, OOMB_PHASE_FORWARD);
    const uint16_t *in = x16;
    for (int l = 0; l < L; l++) {
        size_t bytes = (size_t)(B * m->layers[l]->out_features) * 2;
        if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_ACTIVATIONS, "activation f16",
                                 (void **)&acts[l], msg, msg_len)) ||
            (rc = forward16(s, l, acts[l], in, B, msg, msg_len)))
            goto done;
        in = acts[l];
    }
    double loss = 0;
    int64_t correct = 0;
    if ((rc = loss16(s, acts[L - 1], y, &logits, &probs, &losses, &loss, &correct, msg,
                     msg_len)))
        goto done;
    h->report_loss(h->run, step, loss);
    h->report_accuracy(h->run, correct, B);
    /* Backward needs only probs: the logits (both copies) and losses go. */
    h->free(h->run, logits);
    logits = NULL;
    h->free(h->run, losses);
    losses = NULL;
    h->free(h->run, acts[L - 1]);
    acts[L - 1] = NULL;

    h->phase(h->run, OOMB_PHASE_BACKWARD);
    if ((rc = oomb_net_zero_grads(n, msg, msg_len)))
        goto done;
    /* dlogits = S/B (probs - onehot) in FP32, then to F16 */
    if ((rc = oomb_net_alloc(h, (size_t)(B * K) * 4, OOMB_TAG_ACTIVATIONS, "dlogits f32",
                             (void **)&dl32, msg, msg_len)) ||
        (rc = op_err(s,
                     s->ops->softmax_xent_backward(s->k, dl32, probs, y, B, K,
                                                   (float)(s->scale / (double)B)),
                     "softmax_xent_backward", msg, msg_len)))
        goto done;
    h->free(h->run, probs);
    probs = NULL;
    if ((rc = oomb_net_alloc(h, (size_t)(B * K) * 2, OOMB_TAG_ACTIVATIONS, "dlogits f16",
                             (void **)&dcur, msg, msg_len)) ||
        (rc = op_err(s, s->ops->cast(s->k, dcur, OOMB_F16, dl32, OOMB_F32, B * K),
                     "cast dlogits to F16", msg, msg_len)))
        goto done;
    h->free(h->run, dl32);
    dl32 = NULL;
    for (int l = L - 1; l >= 0; l--) {
        const uint16_t *lin = l > 0 ? acts[l - 1] : x16;
        uint16_t *din = NULL;
        if (oomb_net_is_elementwise(m, l)) {
            din = dcur; /* in place */
        } else if (l > 0) {
            size_t bytes = (size_t)(B * m->layers[l]->in_features) * 2;
            if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_ACTIVATIONS, "dinput f16", (void **)&din,
                                     msg, msg_len)))
                goto done;
        }
        if ((rc = backward16(s, l, din, dcur, lin, B, msg, msg_len))) {
            if (din != dcur)
                h->free(h->run, din);
            goto done;
        }
        if (din != dcur) {
            h->free(h->run, dcur);
            dcur = din;
        }
    }
    int64_t bad = 0;
    if ((rc = op_err(s, s->ops->count_nonfinite(s->k, n->grads, OOMB_F32, n->total_params, &bad),
                     "count_nonfinite", msg, msg_len)) ||
        (rc = op_err(s, s->ops->scale(s->k, n->grads, n->total_params, (float)(1.0 / s->scale)),
                     "unscale gradients", msg, msg_len)))
        goto done;
    if (step == 0)
        h->report_tensor(h->run, "grads0", n->grads, n->total_params);

    h->phase(h->run, OOMB_PHASE_UPDATE);
    if (bad) {
        s->skipped_steps++;
        s->clean_steps = 0;
        s->scale *= s->backoff;
        h->log(h->run, OOMB_LOG_DEBUG, "step %lld: %lld non-finite gradients, loss scale now %g",
               (long long)step, (long long)bad, s->scale);
    } else {
        if ((rc = oomb_net_update(n, msg, msg_len)) ||
            (rc = op_err(s, s->ops->cast(s->k, s->w16, OOMB_F16, n->params, OOMB_F32, s->n_params),
                         "cast weights to F16", msg, msg_len)))
            goto done;
        if (++s->clean_steps >= s->growth_interval) {
            s->scale *= s->growth;
            s->clean_steps = 0;
        }
    }
    h->report_tensor(h->run, "weights", n->params, n->total_params);
    h->report_metric(h->run, "loss_scale", s->scale);
    h->report_metric(h->run, "skipped_steps", (double)s->skipped_steps);

done:
    h->free(h->run, dcur);
    h->free(h->run, dl32);
    for (int l = 0; l < L; l++)
        h->free(h->run, acts[l]);
    free(acts);
    h->free(h->run, logits);
    h->free(h->run, probs);
    h->free(h->run, losses);
    h->free(h->run, x16);
    h->free(h->run, y);
    return rc;
}

static int infer_step(struct fp16_state *s, int64_t step, char *msg, size_t msg_len)
{
    const struct oomb_host *h = s->h;
    const struct oomb_model *m = h->info->model;
    const int64_t B = h->info->batch;
    uint16_t *cur = NULL;
    float *logits = NULL, *probs = NULL, *losses = NULL;
    int32_t *y = NULL;
    int rc;

    h->phase(h->run, OOMB_PHASE_OTHER);
    if ((rc = oomb_net_alloc(h, (size_t)(B * m->input_features) * 2, OOMB_TAG_ACTIVATIONS,
                             "input f16", (void **)&cur, msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)B * 4, OOMB_TAG_OTHER, "labels", (void **)&y, msg,
                             msg_len)) ||
        (rc = load_f16(s, step, cur, y, msg, msg_len)))
        goto done;
    h->phase(h->run, OOMB_PHASE_FORWARD);
    for (int l = 0; l < m->n_layers; l++) {
        uint16_t *out;
        size_t bytes = (size_t)(B * m->layers[l]->out_features) * 2;
        if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_ACTIVATIONS, "activation f16", (void **)&out,
                                 msg, msg_len)))
            goto done;
        rc = forward16(s, l, out, cur, B, msg, msg_len);
        h->free(h->run, cur);
        cur = out;
        if (rc)
            goto done;
    }
    double loss = 0;
    int64_t correct = 0;
    if ((rc = loss16(s, cur, y, &logits, &probs, &losses, &loss, &correct, msg, msg_len)))
        goto done;
    h->report_loss(h->run, step, loss);
    h->report_accuracy(h->run, correct, B);
    if (step == 0)
        h->report_tensor(h->run, "output0", logits, B * m->classes);
done:
    h->free(h->run, cur);
    h->free(h->run, logits);
    h->free(h->run, probs);
    h->free(h->run, losses);
    h->free(h->run, y);
    return rc;
}

static int fp16_step(void *state, int64_t step, char *msg, size_t msg_len)
{
    struct fp16_state *s = state;
    return s->train ? train_step(s, step, msg, msg_len) : infer_step(s, step, msg, msg_len);
}

static int fp16_finish(void *state, char *msg, size_t msg_len)
{
    struct fp16_state *s = state;
    if (s->train) {
        s->h->report_metric(s->h->run, "loss_scale", s->scale);
        s->h->report_metric(s->h->run, "skipped_steps", (double)s->skipped_steps);
    }
    return OOMB_OK;
}

static void fp16_destroy(void *state)
{
    struct fp16_state *s = state;
    if (!s)
        return;
    if (s->h) {
        s->h->free(s->h->run, s->w16);
        s->h->free(s->h->run, s->b32);
    }
    if (s->train)
        oomb_net_free(&s->net);
    free(s->off);
    free(s->boff);
    free(s);
}

/* Train: the held-out set through the FP32 master weights (what an
 * optimizer checkpoint holds). */
static int fp16_evaluate(void *state, char *msg, size_t msg_len)
{
    struct fp16_state *s = state;
    return oomb_step_evaluate(s->h, &s->net, 0, NULL, NULL, msg, msg_len);
}

static const struct oomb_param_desc params[] = {
    {"init_scale", OOMB_PARAM_FLOAT, "65536", "", "initial loss scale S (train)"},
    {"growth_interval", OOMB_PARAM_INT, "2000", "steps",
     "clean steps in a row after which S is multiplied by growth"},
    {"growth", OOMB_PARAM_FLOAT, "2", "", "factor applied to S after growth_interval clean steps"},
    {"backoff", OOMB_PARAM_FLOAT, "0.5", "",
     "factor applied to S when a step's gradients hold inf/NaN (the step is skipped)"},
};

static const struct oomb_plugin descriptor = {
    .struct_size = sizeof(struct oomb_plugin),
    .abi_major = OOMB_ABI_MAJOR,
    .abi_minor = OOMB_ABI_MINOR,
    .name = "fp16",
    .description = "Mixed precision: F16 activations and weight copy, FP32 master weights and "
                   "gradients, dynamic loss scaling",
    .modes = OOMB_MODE_TRAIN | OOMB_MODE_INFER,
    .backends = OOMB_BACKEND_CPU | OOMB_BACKEND_CUDA,
    .params = params,
    .n_params = (int)(sizeof params / sizeof params[0]),
    .create = fp16_create,
    .step = fp16_step,
    .finish = fp16_finish,
    .destroy = fp16_destroy,
    .evaluate = fp16_evaluate,
};

OOMB_EXPORT const struct oomb_plugin *OOMB_PLUGIN_ENTRY(void)
{
    return &descriptor;
}
