/*
 * Strategy `quantize`: 8-bit numbers where they save the most.
 *
 * infer: weight-only storage in int8. At create every linear layer's seeded
 * FP32 weights are quantised per output channel (scale[o] = absmax(W[o,:]) /
 * 127, symmetric) and the FP32 copy is freed; the bias stays FP32. In the
 * forward pass each layer's input is quantised per row (per sample) on the
 * fly and the layer runs as an int8 x int8 GEMM with int32 accumulation:
 *   y[b,o] = (sum_c xq[b,c] wq[o,c]) * xs[b] * ws[o] + bias[o].
 *
 * train: FP32 weights, gradients and step exactly as `none`, but Adam keeps
 * its moments in 8 bits, block-wise (adam8_update: m as int8 with a per-block
 * absmax scale, sqrt(v) as uint8 with a per-block max scale, as in Dettmers et
 * al. 2022 "8-bit optimizers via block-wise quantization"). Blocks never cross
 * a parameter tensor: each layer's W and b are blocked on their own. SGD with
 * momentum has no 8-bit state op and is not applicable.
 *
 * Memory, exactly (P all parameters; per linear layer OC out, C in features;
 * nb = sum over parameter tensors of ceil(n_tensor / block)):
 *   infer weights    = sum over linear layers of OC*C + 4*OC (+ 4*OC bias)
 *   infer workspace  = max(4 * max layer n_params  (FP32 staging at create),
 *                          4*B*OC of the widest layer (int32 accumulator))
 *   infer activations= 4B * max over layers of (in + out) + B*in + 4B for a
 *                      linear layer (input, output, int8 input, row scales),
 *                      and the loss buffers as in none
 *   train optimizer  = 2*P + 8*nb  (vs 8*P for FP32 Adam: 0.25 + 1/block)
 *   train everything else as none.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "engine.h"

/* Longest input row the int32 accumulator takes without overflow (127*127*C). */
#define QUANT_MAX_C (INT32_MAX / (127 * 127))

struct qlinear {
    int8_t *wq;  /* (OC, C) device, tag weights */
    float *ws;   /* (OC) per output channel scales, tag weights */
    float *bias; /* (OC) FP32 or NULL, tag weights */
};

/* One parameter tensor of the 8-bit optimizer. */
struct qtensor {
    int64_t off;   /* element offset into the net's params */
    int64_t n;     /* elements */
    int64_t s_off; /* offset of its first block scale */
};

struct quantize_state {
    const struct oomb_host *h;
    const struct oomb_ext_quant *q; /* the backend's int8 kernels (OOMB_EXT_QUANT) */
    int train;
    int64_t block;
    /* infer */
    struct qlinear *ql; /* (n_layers) */
    /* train */
    struct oomb_net net;
    struct oomb_engine eng; /* the step, with this strategy's update or linear layers */
    struct qtensor *tensors;
    int n_tensors;
    int64_t n_blocks;
    int8_t *m_q;
    uint8_t *v_q;
    float *m_scale, *v_scale; /* (n_blocks) */
};

static void quantize_destroy(void *state)
{
    struct quantize_state *s = state;
    if (!s)
        return;
    const struct oomb_host *h = s->h;
    if (s->ql) {
        for (int l = 0; l < h->info->model->n_layers; l++) {
            h->free(h->run, s->ql[l].wq);
            h->free(h->run, s->ql[l].ws);
            h->free(h->run, s->ql[l].bias);
        }
        free(s->ql);
    }
    h->free(h->run, s->m_q);
    h->free(h->run, s->v_q);
    h->free(h->run, s->m_scale);
    h->free(h->run, s->v_scale);
    free(s->tensors);
    oomb_engine_free(&s->eng);
    oomb_net_free(&s->net);
    free(s);
}

/* Quantise every linear layer from the seeded FP32 parameters; the FP32
 * copy lives only in a one-layer staging buffer (tag workspace). */
static int create_infer(struct quantize_state *s, char *msg, size_t msg_len)
{
    int na = oomb_net_require_linear_params(
        s->h->info->model, "int8 inference replaces linear layers only", msg, msg_len);
    if (na != OOMB_OK)
        return na;
    const struct oomb_host *h = s->h;
    const struct oomb_ops *o = h->ops;
    const struct oomb_ext_quant *q = s->q;
    const struct oomb_model *m = h->info->model;
    float *stage = NULL;
    int64_t max_params = 0;
    int rc = OOMB_OK;

    s->ql = calloc((size_t)m->n_layers, sizeof *s->ql);
    if (!s->ql) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    for (int l = 0; l < m->n_layers; l++) {
        const struct oomb_layer *L = m->layers[l];
        if (L->kind != OOMB_LAYER_LINEAR)
            continue;
        int64_t R, C, OC;
        oomb_linear_dims(L, &R, &C, &OC);
        if (C > QUANT_MAX_C) {
            oomb_msg(msg, msg_len,
                     "layer %d: %lld input features overflow the int32 accumulator of the int8 "
                     "GEMM (at most %d)",
                     l + 1, (long long)C, QUANT_MAX_C);
            return OOMB_ERR_NOT_APPLICABLE;
        }
        if (L->n_params > max_params)
            max_params = L->n_params;
        if ((rc = oomb_net_alloc(h, (size_t)(OC * C), OOMB_TAG_WEIGHTS, "int8 weight",
                                 (void **)&s->ql[l].wq, msg, msg_len)) ||
            (rc = oomb_net_alloc(h, (size_t)OC * 4, OOMB_TAG_WEIGHTS, "weight scales",
                                 (void **)&s->ql[l].ws, msg, msg_len)))
            return rc;
        if (L->has_bias && (rc = oomb_net_alloc(h, (size_t)OC * 4, OOMB_TAG_WEIGHTS, "bias",
                                                (void **)&s->ql[l].bias, msg, msg_len)))
            return rc;
    }
    if (max_params == 0)
        return OOMB_OK;
    if ((rc = oomb_net_alloc(h, (size_t)max_params * 4, OOMB_TAG_WORKSPACE, "fp32 staging",
                             (void **)&stage, msg, msg_len)))
        return rc;
    for (int l = 0; l < m->n_layers && rc == OOMB_OK; l++) {
        const struct oomb_layer *L = m->layers[l];
        if (L->kind != OOMB_LAYER_LINEAR)
            continue;
        int64_t R, C, OC;
        oomb_linear_dims(L, &R, &C, &OC);
        if ((rc = h->init_params(h->run, l, stage))) {
            oomb_msg(msg, msg_len, "layer %d: host init_params failed", l + 1);
            break;
        }
        rc = oomb_op_error(h, q->quantize_rows_i8(q->ctx, s->ql[l].wq, s->ql[l].ws, stage, OC, C),
                           "quantize_rows_i8 (weights)", msg, msg_len);
        if (rc == OOMB_OK && s->ql[l].bias)
            rc = oomb_op_error(h, o->copy(o->ctx, s->ql[l].bias, stage + OC * C, (size_t)OC * 4),
                               "copy bias", msg, msg_len);
    }
    h->free(h->run, stage);
    return rc;
}

static int create_train(struct quantize_state *s, char *msg, size_t msg_len)
{
    const struct oomb_host *h = s->h;
    const struct oomb_ops *o = h->ops;
    const struct oomb_model *m = h->info->model;
    int rc;

    if (h->info->optimizer != OOMB_OPT_ADAM) {
        oomb_msg(msg, msg_len,
                 "8-bit optimizer state is implemented for Adam only; this scenario uses SGD "
                 "(momentum has no 8-bit op)");
        return OOMB_ERR_NOT_APPLICABLE;
    }
    if ((rc = oomb_net_init(&s->net, h, m, OOMB_NET_GRADS, msg, msg_len)))
        return rc;
    s->tensors = calloc((size_t)m->n_layers * 2, sizeof *s->tensors);
    if (!s->tensors) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    for (int l = 0; l < m->n_layers; l++) {
        const struct oomb_layer *L = m->layers[l];
        if (L->n_params == 0)
            continue;
        int64_t nw = L->kind == OOMB_LAYER_LINEAR ? oomb_linear_weights(L) : L->n_params;
        int64_t part[2] = {nw, L->n_params - nw};
        int64_t off = s->net.offset[l];
        for (int i = 0; i < 2; i++) {
            if (part[i] == 0)
                continue;
            struct qtensor *t = &s->tensors[s->n_tensors++];
            t->off = off;
            t->n = part[i];
            t->s_off = s->n_blocks;
            s->n_blocks += (part[i] + s->block - 1) / s->block;
            off += part[i];
        }
    }
    size_t P = (size_t)s->net.total_params, nb = (size_t)s->n_blocks;
    if ((rc = oomb_net_alloc(h, P, OOMB_TAG_OPTIMIZER, "adam m (int8)", (void **)&s->m_q, msg,
                             msg_len)) ||
        (rc = oomb_net_alloc(h, P, OOMB_TAG_OPTIMIZER, "adam v (uint8)", (void **)&s->v_q, msg,
                             msg_len)) ||
        (rc = oomb_net_alloc(h, nb * 4, OOMB_TAG_OPTIMIZER, "adam m scales", (void **)&s->m_scale,
                             msg, msg_len)) ||
        (rc = oomb_net_alloc(h, nb * 4, OOMB_TAG_OPTIMIZER, "adam v scales", (void **)&s->v_scale,
                             msg, msg_len)))
        return rc;
    if ((rc = oomb_op_error(h, o->zero(o->ctx, s->m_q, P), "zero m", msg, msg_len)) ||
        (rc = oomb_op_error(h, o->zero(o->ctx, s->v_q, P), "zero v", msg, msg_len)) ||
        (rc = oomb_op_error(h, o->zero(o->ctx, s->m_scale, nb * 4), "zero m scales", msg,
                            msg_len)) ||
        (rc = oomb_op_error(h, o->zero(o->ctx, s->v_scale, nb * 4), "zero v scales", msg, msg_len)))
        return rc;
    return OOMB_OK;
}

static int update8(void *user, int64_t step, char *msg, size_t msg_len);
static int linear_i8(void *user, int l, float *out, const float *in, int64_t B, char *msg,
                     size_t msg_len);

static int quantize_create(const struct oomb_host *h, void **state, char *msg, size_t msg_len)
{
    int64_t block;
    if (h->param_int(h->run, "block", &block) != OOMB_OK || block < 1 || block > (1 << 24)) {
        oomb_msg(msg, msg_len, "parameter block must be an integer in [1, 16777216]");
        return OOMB_ERR_INVALID;
    }
    struct quantize_state *s = calloc(1, sizeof *s);
    if (!s) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    s->h = h;
    s->block = block;
    s->train = h->info->mode == OOMB_MODE_TRAIN;
    s->q = OOMB_HAS(h, get_extension)
               ? h->get_extension(h->run, OOMB_EXT_QUANT, OOMB_EXT_QUANT_VERSION)
               : NULL;
    if (!s->q) {
        oomb_msg(msg, msg_len,
                 "the %s backend has no int8 kernels (extension \"%s\" version %u or later)",
                 h->ops->backend_name, OOMB_EXT_QUANT, OOMB_EXT_QUANT_VERSION);
        quantize_destroy(s);
        return OOMB_ERR_UNSUPPORTED;
    }
    int rc = s->train ? create_train(s, msg, msg_len) : create_infer(s, msg, msg_len);
    if (rc == OOMB_OK)
        rc = oomb_engine_open_replaced(&s->eng, &s->net, h, update8, linear_i8, s, msg, msg_len);
    if (rc != OOMB_OK) {
        quantize_destroy(s);
        return rc;
    }
    *state = s;
    return OOMB_OK;
}

/* The 8-bit Adam update, tensor by tensor. */
static int update8(void *user, int64_t step, char *msg, size_t msg_len)
{
    struct quantize_state *s = user;
    const struct oomb_run_info *ri = s->h->info;
    const struct oomb_ext_quant *q = s->q;
    struct oomb_net *n = &s->net;
    n->t++;
    for (int i = 0; i < s->n_tensors; i++) {
        const struct qtensor *t = &s->tensors[i];
        int rc = q->adam8_update(q->ctx, n->params + t->off, n->grads + t->off, s->m_q + t->off,
                                 s->v_q + t->off, s->m_scale + t->s_off, s->v_scale + t->s_off,
                                 t->n, s->block, (float)ri->lr, (float)ri->beta1, (float)ri->beta2,
                                 (float)ri->eps, (float)ri->weight_decay, n->t);
        if (rc != OOMB_OK)
            return oomb_op_error(s->h, rc, "adam8_update", msg, msg_len);
    }
    return OOMB_OK;
}

/* Linear layer l in int8: quantise the input rows, int8 GEMM, rescale. */
static int linear_i8(void *user, int l, float *out, const float *in, int64_t B, char *msg,
                     size_t msg_len)
{
    struct quantize_state *s = user;
    const struct oomb_host *h = s->h;
    const struct oomb_ext_quant *q = s->q;
    const struct oomb_layer *L = h->info->model->layers[l];
    int64_t R, C, OC;
    oomb_linear_dims(L, &R, &C, &OC);
    int8_t *xq = NULL;
    float *xs = NULL;
    int32_t *acc = NULL;
    int rc;
    if ((rc = oomb_net_alloc(h, (size_t)(B * C), OOMB_TAG_ACTIVATIONS, "int8 input", (void **)&xq,
                             msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)B * 4, OOMB_TAG_ACTIVATIONS, "input row scales",
                             (void **)&xs, msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)(B * OC) * 4, OOMB_TAG_WORKSPACE, "int32 accumulator",
                             (void **)&acc, msg, msg_len)))
        goto done;
    if ((rc = oomb_op_error(h, q->quantize_rows_i8(q->ctx, xq, xs, in, B, C),
                            "quantize_rows_i8 (input)", msg, msg_len)))
        goto done;
    rc = oomb_op_error(h,
                       q->linear_forward_i8(q->ctx, out, xq, xs, s->ql[l].wq, s->ql[l].ws,
                                            s->ql[l].bias, acc, B, C, OC),
                       "linear_forward_i8", msg, msg_len);
done:
    h->free(h->run, acc);
    h->free(h->run, xs);
    h->free(h->run, xq);
    return rc;
}

static int quantize_step(void *state, int64_t step, char *msg, size_t msg_len)
{
    struct quantize_state *s = state;
    return oomb_engine_step(&s->eng, step, msg, msg_len);
}

static int quantize_evaluate(void *state, char *msg, size_t msg_len)
{
    struct quantize_state *s = state;
    /* train only: the FP32 parameters the 8-bit optimizer updated */
    return oomb_engine_evaluate(&s->eng, 0, msg, msg_len);
}

static const struct oomb_param_desc params[] = {
    {.struct_size = OOMB_PARAM_DESC_SIZE, .name = "block", .type = OOMB_PARAM_INT,
     .default_value = "256", .unit = "elements",
     .help = "train: block size of the 8-bit Adam state (one scale per block and moment)",
     .bounds = OOMB_PARAM_MIN | OOMB_PARAM_MAX, .min = 1, .max = 16777216},
};

static const struct oomb_plugin descriptor = {
    .struct_size = sizeof(struct oomb_plugin),
    .abi_major = OOMB_ABI_MAJOR,
    .abi_minor = OOMB_ABI_MINOR,
    .name = "quantize",
    .description = "infer: int8 weights (per-channel) and dynamic int8 activations; "
                   "train: 8-bit block-wise Adam state",
    .modes = OOMB_MODE_TRAIN | OOMB_MODE_INFER,
    .backends = OOMB_BACKEND_CPU | OOMB_BACKEND_CUDA,
    .params = params,
    .n_params = (int)(sizeof params / sizeof params[0]),
    .create = quantize_create,
    .step = quantize_step,
    .destroy = quantize_destroy,
    .evaluate = quantize_evaluate,
};

OOMB_EXPORT const struct oomb_plugin *OOMB_PLUGIN_ENTRY(void)
{
    return &descriptor;
}
