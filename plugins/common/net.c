/*
 * Shared model code for strategy plugins (see net.h).
 */
#include "net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void oomb_msg(char *msg, size_t msg_len, const char *fmt, ...)
{
    if (!msg || msg_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msg_len, fmt, ap);
    va_end(ap);
}

int oomb_net_alloc(const struct oomb_host *h, size_t bytes, enum oomb_tag tag, const char *label,
                   void **out, char *msg, size_t msg_len)
{
    int rc = h->alloc(h->run, bytes, tag, label, out);
    if (rc != OOMB_OK)
        oomb_msg(msg, msg_len, "allocation of %zu bytes for %s refused%s", bytes, label,
                 rc == OOMB_ERR_OOM ? " (out of memory)" : "");
    return rc;
}

int oomb_net_op_error(const struct oomb_net *n, int rc, const char *what, char *msg, size_t msg_len)
{
    if (rc != OOMB_OK)
        oomb_msg(msg, msg_len, "%s: %s", what, n->ops->last_error(n->k));
    return rc;
}

int64_t oomb_net_max_features(const struct oomb_model *model)
{
    int64_t m = model->input_features;
    for (int l = 0; l < model->n_layers; l++)
        if (model->layers[l]->out_features > m)
            m = model->layers[l]->out_features;
    return m;
}

int oomb_net_is_elementwise(const struct oomb_model *model, int l)
{
    enum oomb_layer_kind k = model->layers[l]->kind;
    return k == OOMB_LAYER_RELU || k == OOMB_LAYER_GELU || k == OOMB_LAYER_FLATTEN;
}

int oomb_net_init(struct oomb_net *n, const struct oomb_host *h, const struct oomb_model *model,
                  unsigned flags, char *msg, size_t msg_len)
{
    memset(n, 0, sizeof *n);
    n->h = h;
    n->ops = h->ops;
    n->k = h->ops->ctx;
    n->model = model;
    n->n_layers = model->n_layers;
    n->offset = calloc((size_t)model->n_layers + 1, sizeof *n->offset);
    n->buf_offset = calloc((size_t)model->n_layers + 1, sizeof *n->buf_offset);
    if (!n->offset || !n->buf_offset) {
        free(n->offset);
        free(n->buf_offset);
        n->offset = n->buf_offset = NULL;
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    for (int l = 0; l < model->n_layers; l++) {
        n->offset[l] = n->total_params;
        n->total_params += model->layers[l]->n_params;
        n->buf_offset[l] = n->total_buffers;
        n->total_buffers += model->layers[l]->n_buffers;
    }
    n->offset[model->n_layers] = n->total_params;
    n->buf_offset[model->n_layers] = n->total_buffers;
    size_t bytes = (size_t)n->total_params * sizeof(float);
    int rc;
    if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_WEIGHTS, "weights", (void **)&n->params, msg,
                             msg_len)))
        goto fail;
    if (!(flags & OOMB_NET_NO_INIT)) {
        for (int l = 0; l < model->n_layers; l++) {
            if (model->layers[l]->n_params == 0)
                continue;
            if ((rc = h->init_params(h->run, l, n->params + n->offset[l]))) {
                oomb_msg(msg, msg_len, "initialising layer %d: %s", l, "host init_params failed");
                goto fail;
            }
        }
    }
    if (n->total_buffers > 0) {
        if ((rc = oomb_net_alloc(h, (size_t)n->total_buffers * sizeof(float), OOMB_TAG_WEIGHTS,
                                 "buffers", (void **)&n->bufs, msg, msg_len)))
            goto fail;
        for (int l = 0; l < model->n_layers; l++) {
            if (model->layers[l]->n_buffers == 0)
                continue;
            if ((rc = h->init_buffers(h->run, l, n->bufs + n->buf_offset[l]))) {
                oomb_msg(msg, msg_len, "initialising the buffers of layer %d failed", l);
                goto fail;
            }
        }
    }
    if (flags & OOMB_NET_GRADS) {
        if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_GRADS, "grads", (void **)&n->grads, msg,
                                 msg_len)))
            goto fail;
        if ((rc = oomb_net_op_error(n, n->ops->zero(n->k, n->grads, bytes), "zero grads", msg,
                                    msg_len)))
            goto fail;
    }
    if (flags & OOMB_NET_OPTIMIZER) {
        const struct oomb_run_info *ri = h->info;
        if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_OPTIMIZER, "optimizer m", (void **)&n->m, msg,
                                 msg_len)))
            goto fail;
        if ((rc = oomb_net_op_error(n, n->ops->zero(n->k, n->m, bytes), "zero m", msg, msg_len)))
            goto fail;
        if (ri->optimizer == OOMB_OPT_ADAM) {
            if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_OPTIMIZER, "optimizer v", (void **)&n->v,
                                     msg, msg_len)))
                goto fail;
            if ((rc =
                     oomb_net_op_error(n, n->ops->zero(n->k, n->v, bytes), "zero v", msg, msg_len)))
                goto fail;
        }
    }
    return OOMB_OK;
fail:
    oomb_net_free(n);
    return rc;
}

void oomb_net_free(struct oomb_net *n)
{
    if (n->h) {
        n->h->free(n->h->run, n->params);
        n->h->free(n->h->run, n->grads);
        n->h->free(n->h->run, n->m);
        n->h->free(n->h->run, n->v);
        n->h->free(n->h->run, n->bufs);
        n->h->free(n->h->run, n->ws);
    }
    free(n->offset);
    free(n->buf_offset);
    memset(n, 0, sizeof *n);
}

float *oomb_net_weight(const struct oomb_net *n, int l)
{
    return n->model->layers[l]->n_params ? n->params + n->offset[l] : NULL;
}

float *oomb_net_bias(const struct oomb_net *n, int l)
{
    const struct oomb_layer *L = n->model->layers[l];
    if (L->kind != OOMB_LAYER_LINEAR || !L->has_bias)
        return NULL;
    int64_t R, C, OC;
    oomb_linear_dims(L, &R, &C, &OC);
    return n->params + n->offset[l] + OC * C;
}

float *oomb_net_dweight(const struct oomb_net *n, int l)
{
    return n->grads && n->model->layers[l]->n_params ? n->grads + n->offset[l] : NULL;
}

float *oomb_net_dbias(const struct oomb_net *n, int l)
{
    const struct oomb_layer *L = n->model->layers[l];
    if (!n->grads || L->kind != OOMB_LAYER_LINEAR || !L->has_bias)
        return NULL;
    int64_t R, C, OC;
    oomb_linear_dims(L, &R, &C, &OC);
    return n->grads + n->offset[l] + OC * C;
}

/* ------------------------------------------------------------ layers -- */

void oomb_linear_dims(const struct oomb_layer *L, int64_t *rows, int64_t *in, int64_t *out)
{
    int64_t R = L->kind == OOMB_LAYER_LINEAR && L->attrs[0] > 1 ? L->attrs[0] : 1;
    *rows = R;
    *in = L->in_features / R;
    *out = L->out_features / R;
}

int64_t oomb_linear_weights(const struct oomb_layer *L)
{
    int64_t R, C, OC;
    oomb_linear_dims(L, &R, &C, &OC);
    return OC * C;
}

const char *oomb_layer_kind_name(enum oomb_layer_kind kind)
{
    switch (kind) {
    case OOMB_LAYER_LINEAR:
        return "linear";
    case OOMB_LAYER_RELU:
        return "relu";
    case OOMB_LAYER_GELU:
        return "gelu";
    case OOMB_LAYER_CONV2D:
        return "conv2d";
    case OOMB_LAYER_MAXPOOL:
        return "maxpool";
    case OOMB_LAYER_BATCHNORM:
        return "batchnorm";
    case OOMB_LAYER_LAYERNORM:
        return "layernorm";
    case OOMB_LAYER_FLATTEN:
        return "flatten";
    case OOMB_LAYER_RESIDUAL:
        return "residual";
    case OOMB_LAYER_ATTENTION:
        return "attention";
    }
    return "unknown";
}

int oomb_net_require_linear_params(const struct oomb_model *model, const char *what, char *msg,
                                   size_t msg_len)
{
    for (int l = 0; l < model->n_layers; l++) {
        const struct oomb_layer *L = model->layers[l];
        if (L->kind != OOMB_LAYER_LINEAR && (L->n_params > 0 || L->n_buffers > 0)) {
            oomb_msg(msg, msg_len, "%s; layer %d (%s) has parameters and no such kernel", what, l,
                     oomb_layer_kind_name(L->kind));
            return OOMB_ERR_NOT_APPLICABLE;
        }
    }
    return OOMB_OK;
}

static void conv_geom(const struct oomb_layer *L, struct oomb_conv2d *cv)
{
    memset(cv, 0, sizeof *cv);
    cv->struct_size = sizeof *cv;
    cv->C = L->attrs[0];
    cv->H = L->attrs[1];
    cv->W = L->attrs[2];
    cv->OC = L->attrs[3];
    cv->K = L->attrs[4];
    cv->stride = L->attrs[5];
    cv->pad = L->attrs[6];
    cv->OH = (cv->H + 2 * cv->pad - cv->K) / cv->stride + 1;
    cv->OW = (cv->W + 2 * cv->pad - cv->K) / cv->stride + 1;
}

static void pool_geom(const struct oomb_layer *L, struct oomb_pool2d *p)
{
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->C = L->attrs[0];
    p->H = L->attrs[1];
    p->W = L->attrs[2];
    p->K = L->attrs[3];
    p->stride = L->attrs[4];
    p->OH = (p->H - p->K) / p->stride + 1;
    p->OW = (p->W - p->K) / p->stride + 1;
}

int64_t oomb_layer_saved_floats(const struct oomb_layer *L, int64_t B)
{
    switch (L->kind) {
    case OOMB_LAYER_BATCHNORM:
        return 2 * L->attrs[0]; /* batch mean, rstd per channel */
    case OOMB_LAYER_LAYERNORM:
        return 2 * B * L->attrs[0]; /* mean, rstd per row */
    case OOMB_LAYER_ATTENTION: {
        int64_t T = L->attrs[0], C = L->attrs[1], H = L->attrs[2];
        return B * T * 3 * C + B * H * T * T + B * T * C; /* qkv, probs, heads */
    }
    case OOMB_LAYER_RESIDUAL: {
        /* every body layer's output and saved state; the last one's output
         * is the residual's own */
        int64_t f = 0;
        for (int j = 0; j < L->n_body; j++) {
            if (j < L->n_body - 1)
                f += B * L->body[j]->out_features;
            f += oomb_layer_saved_floats(L->body[j], B);
        }
        return f;
    }
    default:
        return 0;
    }
}

size_t oomb_net_act_bytes(const struct oomb_net *n, int l, int64_t B)
{
    const struct oomb_layer *L = n->model->layers[l];
    return (size_t)(B * L->out_features + oomb_layer_saved_floats(L, B)) * sizeof(float);
}

/* The net's workspace, grown to at least `bytes`. */
static int net_ws(struct oomb_net *n, size_t bytes, void **out, char *msg, size_t msg_len)
{
    if (bytes > n->ws_bytes) {
        n->h->free(n->h->run, n->ws);
        n->ws = NULL;
        n->ws_bytes = 0;
        int rc = oomb_net_alloc(n->h, bytes, OOMB_TAG_WORKSPACE, "workspace", &n->ws, msg, msg_len);
        if (rc)
            return rc;
        n->ws_bytes = bytes;
    }
    *out = n->ws;
    return OOMB_OK;
}

/* Context of one layer call: its parameters, gradients and buffers. */
struct lay {
    const struct oomb_layer *L;
    const char *name; /* "layer 3", "layer 3.1" for messages */
    float *w, *dw, *buf;
};

static int lay_err(struct oomb_net *n, int rc, const struct lay *y, const char *what, char *msg,
                   size_t msg_len)
{
    if (rc == OOMB_OK)
        return OOMB_OK;
    char w[96];
    snprintf(w, sizeof w, "%s (%s) %s", y->name, oomb_layer_kind_name(y->L->kind), what);
    return oomb_net_op_error(n, rc, w, msg, msg_len);
}

/* A convolution layer's geometry, and the net's workspace grown to what the
 * backend's convolution needs for batch B (*ws NULL when none). */
static int conv_prepare(struct oomb_net *n, const struct lay *y, int64_t B, struct oomb_conv2d *cv,
                        void **ws, size_t *need, char *msg, size_t msg_len)
{
    const struct oomb_ops *o = n->ops;
    conv_geom(y->L, cv);
    int rc = lay_err(n, o->conv2d_workspace(n->k, cv, B, need), y, "workspace", msg, msg_len);
    if (rc == OOMB_OK && *need)
        rc = net_ws(n, *need, ws, msg, msg_len);
    return rc;
}

/* The body layer j of residual y, with its parameter pointers. */
static void body_lay(const struct lay *y, int j, char *name, size_t name_len, struct lay *out)
{
    int64_t po = 0, bo = 0;
    for (int i = 0; i < j; i++) {
        po += y->L->body[i]->n_params;
        bo += y->L->body[i]->n_buffers;
    }
    snprintf(name, name_len, "%s.%d", y->name, j);
    out->L = y->L->body[j];
    out->name = name;
    out->w = y->w ? y->w + po : NULL;
    out->dw = y->dw ? y->dw + po : NULL;
    out->buf = y->buf ? y->buf + bo : NULL;
}

static int lay_forward(struct oomb_net *n, const struct lay *y, float *out, float *saved,
                       const float *in, int64_t B, enum oomb_fwd_mode mode, char *msg,
                       size_t msg_len);

/* Residual forward: body outputs and saved state in `saved`, the last body
 * output into out, then out += in. */
static int residual_forward(struct oomb_net *n, const struct lay *y, float *out, float *saved,
                            const float *in, int64_t B, enum oomb_fwd_mode mode, char *msg,
                            size_t msg_len)
{
    const float *cur = in;
    float *p = saved;
    int rc;
    for (int j = 0; j < y->L->n_body; j++) {
        char name[64];
        struct lay b;
        body_lay(y, j, name, sizeof name, &b);
        float *o = out;
        if (j < y->L->n_body - 1) {
            o = p;
            p += B * b.L->out_features;
        }
        float *sv = p;
        p += oomb_layer_saved_floats(b.L, B);
        if ((rc = lay_forward(n, &b, o, sv, cur, B, mode, msg, msg_len)))
            return rc;
        cur = o;
    }
    return lay_err(n, n->ops->add(n->k, out, out, in, B * y->L->out_features), y, "add", msg,
                   msg_len);
}

static int lay_forward(struct oomb_net *n, const struct lay *y, float *out, float *saved,
                       const float *in, int64_t B, enum oomb_fwd_mode mode, char *msg,
                       size_t msg_len)
{
    const struct oomb_layer *L = y->L;
    const struct oomb_ops *o = n->ops;
    void *k = n->k;
    int64_t cnt = B * L->out_features;
    int rc;
    switch (L->kind) {
    case OOMB_LAYER_LINEAR: {
        int64_t R, C, OC;
        oomb_linear_dims(L, &R, &C, &OC);
        rc = o->linear_forward(k, OOMB_F32, out, in, y->w, L->has_bias ? y->w + OC * C : NULL,
                               B * R, C, OC);
        break;
    }
    case OOMB_LAYER_RELU:
        rc = o->relu_forward(k, OOMB_F32, out, in, cnt);
        break;
    case OOMB_LAYER_GELU:
        rc = o->gelu_forward(k, OOMB_F32, out, in, cnt);
        break;
    case OOMB_LAYER_FLATTEN:
        rc = out == in ? OOMB_OK : o->copy(k, out, in, (size_t)cnt * sizeof(float));
        break;
    case OOMB_LAYER_CONV2D: {
        struct oomb_conv2d cv;
        size_t need = 0;
        void *ws = NULL;
        if ((rc = conv_prepare(n, y, B, &cv, &ws, &need, msg, msg_len)))
            return rc;
        rc = o->conv2d_forward(k, out, in, y->w,
                               L->has_bias ? y->w + cv.OC * cv.C * cv.K * cv.K : NULL, &cv, B, ws,
                               need);
        break;
    }
    case OOMB_LAYER_MAXPOOL: {
        struct oomb_pool2d pd;
        pool_geom(L, &pd);
        rc = o->maxpool_forward(k, out, in, &pd, B);
        break;
    }
    case OOMB_LAYER_BATCHNORM: {
        int64_t C = L->attrs[0], S = L->attrs[1];
        if (mode == OOMB_FWD_EVAL) /* running statistics */
            rc = o->batchnorm_forward(k, out, NULL, NULL, y->buf, y->buf + C, in, y->w, y->w + C, B,
                                      C, S, 0, 0.1f, 1e-5f);
        else /* batch statistics, saved for backward; running ones updated in training */
            rc = o->batchnorm_forward(k, out, saved, saved + C,
                                      mode == OOMB_FWD_TRAIN ? y->buf : NULL,
                                      mode == OOMB_FWD_TRAIN ? y->buf + C : NULL, in, y->w,
                                      y->w + C, B, C, S, 1, 0.1f, 1e-5f);
        break;
    }
    case OOMB_LAYER_LAYERNORM: {
        int64_t T = L->attrs[0], C = L->attrs[1];
        rc =
            o->layernorm_forward(k, out, saved, saved + B * T, in, y->w, y->w + C, B * T, C, 1e-5f);
        break;
    }
    case OOMB_LAYER_ATTENTION: {
        int64_t T = L->attrs[0], C = L->attrs[1], H = L->attrs[2];
        int causal = L->attrs[3] != 0;
        float *qkv = saved, *probs = qkv + B * T * 3 * C, *heads = probs + B * H * T * T;
        const float *wqkv = y->w, *bqkv = wqkv + 3 * C * C, *wo = bqkv + 3 * C, *bo = wo + C * C;
        size_t need = 0;
        void *ws = NULL;
        if ((rc = lay_err(n, o->linear_forward(k, OOMB_F32, qkv, in, wqkv, bqkv, B * T, C, 3 * C),
                          y, "qkv projection", msg, msg_len)) ||
            (rc = lay_err(n, o->attention_workspace(k, B, T, C, H, &need), y, "workspace", msg,
                          msg_len)))
            return rc;
        if (need && (rc = net_ws(n, need, &ws, msg, msg_len)))
            return rc;
        if ((rc = lay_err(n,
                          o->attention_forward(k, heads, probs, qkv, B, T, C, H, causal, ws, need),
                          y, "attention", msg, msg_len)))
            return rc;
        rc = o->linear_forward(k, OOMB_F32, out, heads, wo, bo, B * T, C, C);
        break;
    }
    case OOMB_LAYER_RESIDUAL:
        return residual_forward(n, y, out, saved, in, B, mode, msg, msg_len);
    default:
        oomb_msg(msg, msg_len, "%s: layer kind %d not supported", y->name, (int)L->kind);
        return OOMB_ERR_NOT_APPLICABLE;
    }
    return lay_err(n, rc, y, "forward", msg, msg_len);
}

static int is_elementwise_kind(enum oomb_layer_kind k)
{
    return k == OOMB_LAYER_RELU || k == OOMB_LAYER_GELU || k == OOMB_LAYER_FLATTEN;
}

static int lay_backward(struct oomb_net *n, const struct lay *y, float *din, float *dout,
                        const float *in, const float *saved, int64_t B, char *msg, size_t msg_len);

/* One step of a chain (see oomb_net_backward_step) for any layer. */
static int lay_backward_step(struct oomb_net *n, const struct lay *y, float **dcur, const float *in,
                             const float *saved, int64_t B, int need_din, char *msg, size_t msg_len)
{
    const struct oomb_host *h = n->h;
    float *din = NULL;
    int rc;
    if (is_elementwise_kind(y->L->kind)) {
        din = *dcur; /* in place */
    } else if (need_din) {
        size_t bytes = (size_t)(B * y->L->in_features) * sizeof(float);
        if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_ACTIVATIONS, "dinput", (void **)&din, msg,
                                 msg_len)))
            return rc;
    }
    if ((rc = lay_backward(n, y, din, *dcur, in, saved, B, msg, msg_len))) {
        if (din != *dcur)
            h->free(h->run, din);
        return rc;
    }
    if (din != *dcur) {
        h->free(h->run, *dcur);
        *dcur = din;
    }
    return OOMB_OK;
}

static int residual_backward(struct oomb_net *n, const struct lay *y, float *din, const float *dout,
                             const float *in, const float *saved, int64_t B, char *msg,
                             size_t msg_len)
{
    const struct oomb_host *h = n->h;
    const struct oomb_layer *L = y->L;
    const int nb = L->n_body;
    const float **outs = calloc((size_t)nb, sizeof *outs), **svs = calloc((size_t)nb, sizeof *svs);
    float *g = NULL;
    int rc;
    if (!outs || !svs) {
        oomb_msg(msg, msg_len, "out of host memory");
        rc = OOMB_ERR_OOM;
        goto done;
    }
    const float *p = saved;
    for (int j = 0; j < nb; j++) {
        if (j < nb - 1) {
            outs[j] = p;
            p += B * L->body[j]->out_features;
        }
        svs[j] = p;
        p += oomb_layer_saved_floats(L->body[j], B);
    }
    size_t bytes = (size_t)(B * L->out_features) * sizeof(float);
    if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_ACTIVATIONS, "dresidual", (void **)&g, msg,
                             msg_len)) ||
        (rc = lay_err(n, n->ops->copy(n->k, g, dout, bytes), y, "copy", msg, msg_len)))
        goto done;
    for (int j = nb - 1; j >= 0; j--) {
        char name[64];
        struct lay b;
        body_lay(y, j, name, sizeof name, &b);
        if ((rc = lay_backward_step(n, &b, &g, j > 0 ? outs[j - 1] : in, svs[j], B,
                                    j > 0 || din != NULL, msg, msg_len)))
            goto done;
    }
    if (din)
        rc =
            lay_err(n, n->ops->add(n->k, din, g, dout, B * L->in_features), y, "add", msg, msg_len);
done:
    h->free(h->run, g);
    free(outs);
    free(svs);
    return rc;
}

static int lay_backward(struct oomb_net *n, const struct lay *y, float *din, float *dout,
                        const float *in, const float *saved, int64_t B, char *msg, size_t msg_len)
{
    const struct oomb_layer *L = y->L;
    const struct oomb_ops *o = n->ops;
    void *k = n->k;
    int64_t cnt = B * L->out_features;
    int rc = OOMB_OK;
    float *scratch = NULL; /* the norm ops always write an input gradient */
    if (!din && (L->kind == OOMB_LAYER_BATCHNORM || L->kind == OOMB_LAYER_LAYERNORM)) {
        if ((rc = oomb_net_alloc(n->h, (size_t)(B * L->in_features) * sizeof(float),
                                 OOMB_TAG_ACTIVATIONS, "dinput", (void **)&scratch, msg, msg_len)))
            return rc;
        din = scratch;
    }
    switch (L->kind) {
    case OOMB_LAYER_LINEAR: {
        int64_t R, C, OC;
        oomb_linear_dims(L, &R, &C, &OC);
        rc = o->linear_backward(k, OOMB_F32, din, y->dw,
                                y->dw && L->has_bias ? y->dw + OC * C : NULL, dout, in, y->w, B * R,
                                C, OC);
        break;
    }
    case OOMB_LAYER_RELU:
        rc = din ? o->relu_backward(k, OOMB_F32, din, dout, in, cnt) : OOMB_OK;
        break;
    case OOMB_LAYER_GELU:
        rc = din ? o->gelu_backward(k, OOMB_F32, din, dout, in, cnt) : OOMB_OK;
        break;
    case OOMB_LAYER_FLATTEN:
        rc = din && din != dout ? o->copy(k, din, dout, (size_t)cnt * sizeof(float)) : OOMB_OK;
        break;
    case OOMB_LAYER_CONV2D: {
        struct oomb_conv2d cv;
        size_t need = 0;
        void *ws = NULL;
        if ((rc = conv_prepare(n, y, B, &cv, &ws, &need, msg, msg_len)))
            return rc;
        rc = o->conv2d_backward(k, din, y->dw,
                                y->dw && L->has_bias ? y->dw + cv.OC * cv.C * cv.K * cv.K : NULL,
                                dout, in, y->w, &cv, B, ws, need);
        break;
    }
    case OOMB_LAYER_MAXPOOL: {
        struct oomb_pool2d pd;
        pool_geom(L, &pd);
        rc = din ? o->maxpool_backward(k, din, dout, in, &pd, B) : OOMB_OK;
        break;
    }
    case OOMB_LAYER_BATCHNORM: {
        int64_t C = L->attrs[0], S = L->attrs[1];
        rc = o->batchnorm_backward(k, din, y->dw, y->dw ? y->dw + C : NULL, dout, in, saved,
                                   saved + C, y->w, B, C, S);
        break;
    }
    case OOMB_LAYER_LAYERNORM: {
        int64_t T = L->attrs[0], C = L->attrs[1];
        rc = o->layernorm_backward(k, din, y->dw, y->dw ? y->dw + C : NULL, dout, in, saved,
                                   saved + B * T, y->w, B * T, C);
        break;
    }
    case OOMB_LAYER_ATTENTION: {
        int64_t T = L->attrs[0], C = L->attrs[1], H = L->attrs[2];
        int causal = L->attrs[3] != 0;
        const float *qkv = saved, *probs = qkv + B * T * 3 * C, *heads = probs + B * H * T * T;
        const float *wqkv = y->w, *wo = wqkv + 3 * C * C + 3 * C;
        float *dwqkv = y->dw, *dbqkv = dwqkv ? dwqkv + 3 * C * C : NULL;
        float *dwo = dwqkv ? dbqkv + 3 * C : NULL, *dbo = dwo ? dwo + C * C : NULL;
        float *dheads = NULL, *dqkv = NULL;
        size_t need = 0;
        void *ws = NULL;
        const struct oomb_host *h = n->h;
        if ((rc = oomb_net_alloc(h, (size_t)(B * T * C) * sizeof(float), OOMB_TAG_ACTIVATIONS,
                                 "dheads", (void **)&dheads, msg, msg_len)))
            return rc;
        if ((rc = lay_err(
                 n, o->linear_backward(k, OOMB_F32, dheads, dwo, dbo, dout, heads, wo, B * T, C, C),
                 y, "output projection backward", msg, msg_len)) ||
            (rc = oomb_net_alloc(h, (size_t)(B * T * 3 * C) * sizeof(float), OOMB_TAG_ACTIVATIONS,
                                 "dqkv", (void **)&dqkv, msg, msg_len)) ||
            (rc = lay_err(n, o->attention_workspace(k, B, T, C, H, &need), y, "workspace", msg,
                          msg_len)) ||
            (need && (rc = net_ws(n, need, &ws, msg, msg_len))) ||
            (rc = lay_err(
                 n,
                 o->attention_backward(k, dqkv, dheads, qkv, probs, B, T, C, H, causal, ws, need),
                 y, "attention backward", msg, msg_len))) {
            h->free(h->run, dheads);
            h->free(h->run, dqkv);
            return rc;
        }
        h->free(h->run, dheads);
        rc = o->linear_backward(k, OOMB_F32, din, dwqkv, dbqkv, dqkv, in, wqkv, B * T, C, 3 * C);
        h->free(h->run, dqkv);
        break;
    }
    case OOMB_LAYER_RESIDUAL:
        return residual_backward(n, y, din, dout, in, saved, B, msg, msg_len);
    default:
        oomb_msg(msg, msg_len, "%s: layer kind %d not supported", y->name, (int)L->kind);
        return OOMB_ERR_NOT_APPLICABLE;
    }
    n->h->free(n->h->run, scratch);
    return lay_err(n, rc, y, "backward", msg, msg_len);
}

static void top_lay(const struct oomb_net *n, int l, char *name, size_t name_len, struct lay *y)
{
    snprintf(name, name_len, "layer %d", l);
    y->L = n->model->layers[l];
    y->name = name;
    y->w = n->params ? n->params + n->offset[l] : NULL;
    y->dw = n->grads ? n->grads + n->offset[l] : NULL;
    y->buf = n->bufs ? n->bufs + n->buf_offset[l] : NULL;
}

int oomb_net_forward(struct oomb_net *n, int l, float *act, const float *in, int64_t B,
                     enum oomb_fwd_mode mode, char *msg, size_t msg_len)
{
    char name[32];
    struct lay y;
    top_lay(n, l, name, sizeof name, &y);
    return lay_forward(n, &y, act, act + B * y.L->out_features, in, B, mode, msg, msg_len);
}

int oomb_net_backward(struct oomb_net *n, int l, float *din, float *dout, const float *in,
                      const float *act, int64_t B, char *msg, size_t msg_len)
{
    char name[32];
    struct lay y;
    top_lay(n, l, name, sizeof name, &y);
    return lay_backward(n, &y, din, dout, in, act ? act + B * y.L->out_features : NULL, B, msg,
                        msg_len);
}

int oomb_net_backward_step(struct oomb_net *n, int l, float **dcur, const float *in,
                           const float *act, int64_t B, char *msg, size_t msg_len)
{
    char name[32];
    struct lay y;
    top_lay(n, l, name, sizeof name, &y);
    return lay_backward_step(n, &y, dcur, in, act ? act + B * y.L->out_features : NULL, B, l > 0,
                             msg, msg_len);
}

int oomb_layer_forward_bare(const struct oomb_host *h, int l, float *out, const float *in,
                            int64_t B, char *msg, size_t msg_len)
{
    const struct oomb_layer *L = h->info->model->layers[l];
    if (L->n_params > 0 || L->n_buffers > 0 || oomb_layer_saved_floats(L, B) > 0 ||
        L->kind == OOMB_LAYER_RESIDUAL || L->kind == OOMB_LAYER_CONV2D ||
        L->kind == OOMB_LAYER_LINEAR) {
        oomb_msg(msg, msg_len, "layer %d (%s) has parameters or saved state", l,
                 oomb_layer_kind_name(L->kind));
        return OOMB_ERR_NOT_APPLICABLE;
    }
    struct oomb_net bare;
    memset(&bare, 0, sizeof bare);
    bare.h = h;
    bare.ops = h->ops;
    bare.k = h->ops->ctx;
    bare.model = h->info->model;
    char name[32];
    snprintf(name, sizeof name, "layer %d", l);
    struct lay y = {L, name, NULL, NULL, NULL};
    return lay_forward(&bare, &y, out, NULL, in, B, OOMB_FWD_EVAL, msg, msg_len);
}

int oomb_net_zero_grads(struct oomb_net *n, char *msg, size_t msg_len)
{
    return oomb_net_op_error(n,
                             n->ops->zero(n->k, n->grads, (size_t)n->total_params * sizeof(float)),
                             "zero grads", msg, msg_len);
}

int oomb_net_update(struct oomb_net *n, char *msg, size_t msg_len)
{
    const struct oomb_run_info *ri = n->h->info;
    n->t++;
    int rc;
    if (ri->optimizer == OOMB_OPT_ADAM)
        rc = n->ops->adam_update(n->k, n->params, n->grads, n->m, n->v, n->total_params,
                                 (float)ri->lr, (float)ri->beta1, (float)ri->beta2, (float)ri->eps,
                                 (float)ri->weight_decay, n->t);
    else
        rc = n->ops->sgd_update(n->k, n->params, n->grads, n->m, n->total_params, (float)ri->lr,
                                (float)ri->momentum, (float)ri->weight_decay);
    return oomb_net_op_error(n, rc, "optimizer update", msg, msg_len);
}

int oomb_net_mean_loss(struct oomb_net *n, const float *losses, int64_t B, double *mean, char *msg,
                       size_t msg_len)
{
    double s = 0;
    int rc = n->ops->sum(n->k, losses, B, &s);
    if (rc != OOMB_OK)
        return oomb_net_op_error(n, rc, "loss sum", msg, msg_len);
    *mean = s / (double)B;
    return OOMB_OK;
}
