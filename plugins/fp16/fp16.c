/*
 * Strategy `fp16`: mixed precision, the way torch.autocast does it, on every
 * layer kind. The step engine stores activations and the activation
 * gradients flowing backward in IEEE half precision (2 bytes); linear
 * layers (and attention's projections) run the backend's F16 GEMMs on an
 * F16 copy of the weights with FP32 accumulation; convolutions, pooling,
 * batch norm, layer norm, the attention core and residual adds compute in
 * FP32 from the F16 values and store F16 results, with their statistics and
 * the softmax probabilities kept in FP32 (autocast runs norms and softmax in
 * FP32). The loss (softmax cross-entropy) runs on an FP32 cast of the
 * logits. Training keeps FP32 master weights, FP32 parameter gradients and
 * FP32 optimizer state.
 *
 * Dynamic loss scaling keeps small activation gradients from flushing to
 * zero in F16: the loss gradient is multiplied by S before it is cast to
 * F16. After backward the FP32 gradients are checked for inf/NaN
 * (count_nonfinite): if any, the update is skipped and S *= backoff;
 * otherwise they are unscaled (times 1/S), the optimizer steps, the F16
 * weight copy is refreshed from the master weights, and after
 * growth_interval clean steps in a row S *= growth (torch.cuda.amp's
 * GradScaler). Metrics "loss_scale" (S after the last step) and
 * "skipped_steps". "weights" is reported every step (unchanged on a skipped
 * one) so that record i is compared with none's after step i.
 *
 * Inference keeps only the F16 parameters (2 bytes each, biases and norm
 * parameters included): kinds that compute in FP32 cast their layer's
 * parameters into a transient FP32 buffer (tag workspace).
 *
 * Memory (P parameters): train weights = 4P (master) + 2P (F16 copy),
 * grads and optimizer as none; infer weights = 2P; activations: none's
 * tensors at 2 bytes instead of 4, except the FP32 ones above; workspace:
 * the FP32 staging of the layers that compute in FP32 (a native F16 kernel
 * would not need it) and of the input while loading
 * (docs/strategies/fp16.md has the ratios per scenario).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "engine.h"
#include "net.h"

struct fp16_state {
    const struct oomb_host *h;
    int train;
    struct oomb_net net; /* train: FP32 master weights, grads, optimizer; infer: buffers */
    struct oomb_engine eng;
    uint16_t *w16; /* (P) F16 parameters, the net's layout */
    /* loss scaling (train) */
    double growth, backoff;
    int64_t growth_interval, clean_steps, skipped_steps;
};

static int read_params(struct fp16_state *s, double *init_scale, char *msg, size_t msg_len)
{
    const struct oomb_host *h = s->h;
    double v;
    int64_t i;
    if (h->param_float(h->run, "init_scale", &v) || !(v > 0) || !isfinite(v)) {
        oomb_msg(msg, msg_len, "parameter 'init_scale' must be a finite number > 0");
        return OOMB_ERR_INVALID;
    }
    *init_scale = v;
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

/* Inference: each layer's seeded FP32 parameters pass through a staging
 * buffer (tag workspace, freed before create returns) into the F16 copy. */
static int init_infer_weights(struct fp16_state *s, char *msg, size_t msg_len)
{
    const struct oomb_host *h = s->h;
    const struct oomb_model *m = h->info->model;
    int64_t max_layer = 0;
    for (int l = 0; l < m->n_layers; l++)
        if (m->layers[l]->n_params > max_layer)
            max_layer = m->layers[l]->n_params;
    float *stage = NULL;
    int rc = oomb_net_alloc(h, (size_t)max_layer * 4, OOMB_TAG_WORKSPACE, "weight staging",
                            (void **)&stage, msg, msg_len);
    for (int l = 0; l < m->n_layers && rc == OOMB_OK; l++) {
        const struct oomb_layer *L = m->layers[l];
        if (L->n_params == 0)
            continue;
        if ((rc = h->init_params(h->run, l, stage))) {
            oomb_msg(msg, msg_len, "initialising layer %d: host init_params failed", l);
            break;
        }
        rc = oomb_op_error(h,
                           h->ops->cast(h->ops->ctx, s->w16 + s->net.offset[l], OOMB_F16, stage,
                                        OOMB_F32, L->n_params),
                           "cast weights to F16", msg, msg_len);
    }
    h->free(h->run, stage);
    return rc;
}

/* GradScaler: unscale, skip on inf/NaN, else update and refresh the copy. */
static int update_scaled(void *user, int64_t step, char *msg, size_t msg_len)
{
    struct fp16_state *s = user;
    const struct oomb_host *h = s->h;
    const struct oomb_ops *o = h->ops;
    struct oomb_net *n = &s->net;
    double scale = s->eng.pol.loss_scale;
    int64_t bad = 0;
    int rc;
    if ((rc =
             oomb_op_error(h, o->count_nonfinite(o->ctx, n->grads, OOMB_F32, n->total_params, &bad),
                           "count_nonfinite", msg, msg_len)) ||
        (rc = oomb_op_error(h, o->scale(o->ctx, n->grads, n->total_params, (float)(1.0 / scale)),
                            "unscale gradients", msg, msg_len)))
        return rc;
    if (bad) {
        s->skipped_steps++;
        s->clean_steps = 0;
        s->eng.pol.loss_scale = scale * s->backoff;
        h->log(h->run, OOMB_LOG_DEBUG, "step %lld: %lld non-finite gradients, loss scale now %g",
               (long long)step, (long long)bad, s->eng.pol.loss_scale);
    } else {
        if ((rc = oomb_net_update(n, msg, msg_len)) ||
            (rc = oomb_op_error(
                 h, o->cast(o->ctx, s->w16, OOMB_F16, n->params, OOMB_F32, n->total_params),
                 "cast weights to F16", msg, msg_len)))
            return rc;
        if (++s->clean_steps >= s->growth_interval) {
            s->eng.pol.loss_scale = scale * s->growth;
            s->clean_steps = 0;
        }
    }
    h->report_metric(h->run, "loss_scale", s->eng.pol.loss_scale);
    h->report_metric(h->run, "skipped_steps", (double)s->skipped_steps);
    return OOMB_OK;
}

static void fp16_destroy(void *state)
{
    struct fp16_state *s = state;
    if (!s)
        return;
    oomb_engine_free(&s->eng);
    if (s->h)
        s->h->free(s->h->run, s->w16);
    oomb_net_free(&s->net);
    free(s);
}

static int fp16_create(const struct oomb_host *h, void **state, char *msg, size_t msg_len)
{
    const struct oomb_model *m = h->info->model;
    struct fp16_state *s = calloc(1, sizeof *s);
    if (!s) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    s->h = h;
    s->train = h->info->mode == OOMB_MODE_TRAIN;
    double init_scale = 1;
    unsigned flags = s->train ? OOMB_NET_GRADS | OOMB_NET_OPTIMIZER : OOMB_NET_NO_PARAMS;
    int rc;
    if ((rc = read_params(s, &init_scale, msg, msg_len)) ||
        (rc = oomb_net_init(&s->net, h, m, flags, msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)s->net.total_params * 2, OOMB_TAG_WEIGHTS, "weights f16",
                             (void **)&s->w16, msg, msg_len)))
        goto fail;
    if (s->train)
        rc = oomb_op_error(h,
                           h->ops->cast(h->ops->ctx, s->w16, OOMB_F16, s->net.params, OOMB_F32,
                                        s->net.total_params),
                           "cast weights to F16", msg, msg_len);
    else
        rc = init_infer_weights(s, msg, msg_len);
    if (rc)
        goto fail;
    struct oomb_policy pol = {
        .act_dtype = OOMB_F16,
        .w16 = s->w16,
        .loss_scale = init_scale,
        .update = update_scaled,
        .update_user = s,
    };
    if ((rc = oomb_engine_init(&s->eng, &s->net, &pol, msg, msg_len)))
        goto fail;
    if (s->train) {
        h->report_metric(h->run, "loss_scale", init_scale);
        h->report_metric(h->run, "skipped_steps", 0);
    }
    *state = s;
    return OOMB_OK;
fail:
    fp16_destroy(s);
    return rc;
}

static int fp16_step(void *state, int64_t step, char *msg, size_t msg_len)
{
    struct fp16_state *s = state;
    return oomb_engine_step(&s->eng, step, msg, msg_len);
}

static int fp16_evaluate(void *state, char *msg, size_t msg_len)
{
    struct fp16_state *s = state;
    return oomb_engine_evaluate(&s->eng, 0, msg, msg_len); /* under autocast, as it trains */
}

static const struct oomb_param_desc params[] = {
    {.struct_size = OOMB_PARAM_DESC_SIZE, .name = "init_scale", .type = OOMB_PARAM_FLOAT,
     .default_value = "65536", .unit = "", .help = "initial loss scale S (train)",
     .bounds = OOMB_PARAM_MIN | OOMB_PARAM_MIN_OPEN, .min = 0},
    {.struct_size = OOMB_PARAM_DESC_SIZE, .name = "growth_interval", .type = OOMB_PARAM_INT,
     .default_value = "2000", .unit = "steps",
     .help = "clean steps in a row after which S is multiplied by growth",
     .bounds = OOMB_PARAM_MIN, .min = 1},
    {.struct_size = OOMB_PARAM_DESC_SIZE, .name = "growth", .type = OOMB_PARAM_FLOAT,
     .default_value = "2", .unit = "",
     .help = "factor applied to S after growth_interval clean steps",
     .bounds = OOMB_PARAM_MIN | OOMB_PARAM_MIN_OPEN, .min = 1},
    {.struct_size = OOMB_PARAM_DESC_SIZE, .name = "backoff", .type = OOMB_PARAM_FLOAT,
     .default_value = "0.5", .unit = "",
     .help = "factor applied to S when a step's gradients hold inf/NaN (the step is skipped)",
     .bounds = OOMB_PARAM_MIN | OOMB_PARAM_MAX | OOMB_PARAM_MIN_OPEN | OOMB_PARAM_MAX_OPEN,
     .min = 0, .max = 1},
};

static const struct oomb_plugin descriptor = {
    .struct_size = sizeof(struct oomb_plugin),
    .abi_major = OOMB_ABI_MAJOR,
    .abi_minor = OOMB_ABI_MINOR,
    .name = "fp16",
    .description = "Mixed precision as autocast: F16 activations and GEMMs, FP32 norms, softmax, "
                   "master weights and gradients, dynamic loss scaling",
    .modes = OOMB_MODE_TRAIN | OOMB_MODE_INFER,
    .backends = OOMB_BACKEND_CPU | OOMB_BACKEND_CUDA,
    .params = params,
    .n_params = (int)(sizeof params / sizeof params[0]),
    .create = fp16_create,
    .step = fp16_step,
    .destroy = fp16_destroy,
    .evaluate = fp16_evaluate,
};

OOMB_EXPORT const struct oomb_plugin *OOMB_PLUGIN_ENTRY(void)
{
    return &descriptor;
}
