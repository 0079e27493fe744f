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
    return k == OOMB_LAYER_RELU || k == OOMB_LAYER_GELU;
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
    if (!n->offset) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    for (int l = 0; l < model->n_layers; l++) {
        n->offset[l] = n->total_params;
        n->total_params += model->layers[l]->n_params;
    }
    n->offset[model->n_layers] = n->total_params;
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
    }
    free(n->offset);
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
    return n->params + n->offset[l] + L->out_features * L->in_features;
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
    return n->grads + n->offset[l] + L->out_features * L->in_features;
}

int oomb_net_forward(struct oomb_net *n, int l, float *out, const float *in, int64_t B, char *msg,
                     size_t msg_len)
{
    const struct oomb_layer *L = n->model->layers[l];
    int64_t cnt = B * L->out_features;
    int rc;
    switch (L->kind) {
    case OOMB_LAYER_LINEAR:
        rc = n->ops->linear_forward(n->k, OOMB_F32, out, in, oomb_net_weight(n, l),
                                    oomb_net_bias(n, l), B, L->in_features, L->out_features);
        break;
    case OOMB_LAYER_RELU:
        rc = n->ops->relu_forward(n->k, OOMB_F32, out, in, cnt);
        break;
    case OOMB_LAYER_GELU:
        rc = n->ops->gelu_forward(n->k, OOMB_F32, out, in, cnt);
        break;
    default:
        oomb_msg(msg, msg_len, "layer %d: kind %d not supported", l, (int)L->kind);
        return OOMB_ERR_NOT_APPLICABLE;
    }
    if (rc != OOMB_OK) {
        char what[64];
        snprintf(what, sizeof what, "layer %d forward", l);
        return oomb_net_op_error(n, rc, what, msg, msg_len);
    }
    return OOMB_OK;
}

int oomb_net_backward(struct oomb_net *n, int l, float *din, float *dout, const float *in,
                      int64_t B, char *msg, size_t msg_len)
{
    const struct oomb_layer *L = n->model->layers[l];
    int64_t cnt = B * L->out_features;
    int rc;
    switch (L->kind) {
    case OOMB_LAYER_LINEAR:
        rc = n->ops->linear_backward(n->k, OOMB_F32, din, oomb_net_dweight(n, l),
                                     oomb_net_dbias(n, l), dout, in, oomb_net_weight(n, l), B,
                                     L->in_features, L->out_features);
        break;
    case OOMB_LAYER_RELU:
        rc = din ? n->ops->relu_backward(n->k, OOMB_F32, din, dout, in, cnt) : OOMB_OK;
        break;
    case OOMB_LAYER_GELU:
        rc = din ? n->ops->gelu_backward(n->k, OOMB_F32, din, dout, in, cnt) : OOMB_OK;
        break;
    default:
        oomb_msg(msg, msg_len, "layer %d: kind %d not supported", l, (int)L->kind);
        return OOMB_ERR_NOT_APPLICABLE;
    }
    if (rc != OOMB_OK) {
        char what[64];
        snprintf(what, sizeof what, "layer %d backward", l);
        return oomb_net_op_error(n, rc, what, msg, msg_len);
    }
    return OOMB_OK;
}

int oomb_net_backward_step(struct oomb_net *n, int l, float **dcur, const float *in, int64_t B,
                           char *msg, size_t msg_len)
{
    const struct oomb_host *h = n->h;
    float *din = NULL;
    int rc;
    if (oomb_net_is_elementwise(n->model, l)) {
        din = *dcur; /* in place */
    } else if (l > 0) {
        size_t bytes = (size_t)(B * n->model->layers[l]->in_features) * 4;
        if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_ACTIVATIONS, "dinput", (void **)&din, msg,
                                 msg_len)))
            return rc;
    }
    if ((rc = oomb_net_backward(n, l, din, *dcur, in, B, msg, msg_len))) {
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
