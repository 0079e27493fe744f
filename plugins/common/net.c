/*
 * Parameter state of a model for strategy plugins (see net.h).
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

int oomb_net_alloc_in(const struct oomb_host *h, enum oomb_space space, size_t bytes,
                      enum oomb_tag tag, const char *label, void **out, char *msg, size_t msg_len)
{
    int rc = h->alloc(h->run, space, bytes, tag, label, out);
    if (rc != OOMB_OK)
        oomb_msg(msg, msg_len, "allocation of %zu bytes for %s%s refused%s", bytes, label,
                 space == OOMB_SPACE_DEVICE ? "" : " in host memory",
                 rc == OOMB_ERR_OOM ? " (out of memory)" : "");
    return rc;
}

int oomb_net_alloc(const struct oomb_host *h, size_t bytes, enum oomb_tag tag, const char *label,
                   void **out, char *msg, size_t msg_len)
{
    return oomb_net_alloc_in(h, OOMB_SPACE_DEVICE, bytes, tag, label, out, msg, msg_len);
}

/* Copies between spaces, waiting for the copy: the optimizer's own data flow. */
static int net_copy(struct oomb_net *n, void *dst, enum oomb_space ds, const void *src,
                    enum oomb_space ss, size_t bytes, const char *what, char *msg, size_t msg_len)
{
    int rc = n->h->copy_async(n->h->run, dst, ds, src, ss, bytes, NULL);
    if (rc != OOMB_OK)
        oomb_msg(msg, msg_len, "copy of the %s: %s", what, oomb_status_name(rc));
    return rc;
}

int oomb_op_error(const struct oomb_host *h, int rc, const char *what, char *msg, size_t msg_len)
{
    if (rc != OOMB_OK)
        oomb_msg(msg, msg_len, "%s: %s", what, h->ops->last_error(h->ops->ctx));
    return rc;
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
    if (!(flags & OOMB_NET_NO_PARAMS) && (rc = oomb_net_alloc(h, bytes, OOMB_TAG_WEIGHTS, "weights",
                                                              (void **)&n->params, msg, msg_len)))
        goto fail;
    if (!(flags & (OOMB_NET_NO_INIT | OOMB_NET_NO_PARAMS))) {
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
    if (flags & OOMB_NET_NO_PARAMS)
        return OOMB_OK;
    if (flags & OOMB_NET_GRADS) {
        if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_GRADS, "grads", (void **)&n->grads, msg,
                                 msg_len)))
            goto fail;
        if ((rc = oomb_op_error(n->h, n->ops->zero(n->k, n->grads, bytes), "zero grads", msg,
                                msg_len)))
            goto fail;
    }
    if (flags & OOMB_NET_OPTIMIZER) {
        const struct oomb_run_info *ri = h->info;
        const int on_host = (flags & OOMB_NET_HOST_OPTIMIZER) != 0;
        const enum oomb_space sp = on_host ? OOMB_SPACE_HOST_PINNED : OOMB_SPACE_DEVICE;
        const struct oomb_ops *zo = on_host ? h->host_ops : n->ops;
        if (on_host && (!OOMB_HAS(h, host_ops) || !OOMB_HAS(h, copy_async))) {
            oomb_msg(msg, msg_len, "an optimizer on the host needs host->host_ops and copy_async");
            rc = OOMB_ERR_UNSUPPORTED;
            goto fail;
        }
        if ((rc = oomb_net_alloc_in(h, sp, bytes, OOMB_TAG_OPTIMIZER, "optimizer m",
                                    (void **)&n->m, msg, msg_len)))
            goto fail;
        if ((rc = oomb_op_error(n->h, zo->zero(zo->ctx, n->m, bytes), "zero m", msg, msg_len)))
            goto fail;
        if (ri->optimizer == OOMB_OPT_ADAM) {
            if ((rc = oomb_net_alloc_in(h, sp, bytes, OOMB_TAG_OPTIMIZER, "optimizer v",
                                        (void **)&n->v, msg, msg_len)))
                goto fail;
            if ((rc = oomb_op_error(n->h, zo->zero(zo->ctx, n->v, bytes), "zero v", msg,
                                    msg_len)))
                goto fail;
        }
        if (on_host) {
            if ((rc = oomb_net_alloc_in(h, sp, bytes, OOMB_TAG_WEIGHTS, "host master weights",
                                        (void **)&n->host_params, msg, msg_len)) ||
                (rc = oomb_net_alloc_in(h, sp, bytes, OOMB_TAG_GRADS, "host gradients",
                                        (void **)&n->host_grads, msg, msg_len)) ||
                (rc = net_copy(n, n->host_params, sp, n->params, OOMB_SPACE_DEVICE, bytes,
                               "weights to the host", msg, msg_len)))
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
        n->h->free(n->h->run, n->host_params);
        n->h->free(n->h->run, n->host_grads);
    }
    free(n->offset);
    free(n->buf_offset);
    memset(n, 0, sizeof *n);
}

float *oomb_net_weight(const struct oomb_net *n, int l)
{
    return n->model->layers[l]->n_params ? n->params + n->offset[l] : NULL;
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

int oomb_net_zero_grads(struct oomb_net *n, char *msg, size_t msg_len)
{
    return oomb_op_error(n->h,
                         n->ops->zero(n->k, n->grads, (size_t)n->total_params * sizeof(float)),
                         "zero grads", msg, msg_len);
}

int oomb_net_update(struct oomb_net *n, char *msg, size_t msg_len)
{
    const struct oomb_run_info *ri = n->h->info;
    n->t++;
    /* On the host (ZeRO-Offload): gradients down, the update on the CPU over
     * the FP32 master weights, the weights back up. */
    const int on_host = n->host_params != NULL;
    const struct oomb_ops *o = on_host ? n->h->host_ops : n->ops;
    float *w = on_host ? n->host_params : n->params;
    const float *g = on_host ? n->host_grads : n->grads;
    const size_t bytes = (size_t)n->total_params * sizeof(float);
    int rc;
    if (on_host && (rc = net_copy(n, n->host_grads, OOMB_SPACE_HOST_PINNED, n->grads,
                                  OOMB_SPACE_DEVICE, bytes, "gradients to the host", msg, msg_len)))
        return rc;
    if (ri->optimizer == OOMB_OPT_ADAM)
        rc = o->adam_update(o->ctx, w, g, n->m, n->v, n->total_params, (float)ri->lr,
                            (float)ri->beta1, (float)ri->beta2, (float)ri->eps,
                            (float)ri->weight_decay, n->t);
    else
        rc = o->sgd_update(o->ctx, w, g, n->m, n->total_params, (float)ri->lr,
                           (float)ri->momentum, (float)ri->weight_decay);
    if (rc != OOMB_OK) {
        oomb_msg(msg, msg_len, "optimizer update%s: %s", on_host ? " on the host" : "",
                 o->last_error(o->ctx));
        return rc;
    }
    if (on_host)
        rc = net_copy(n, n->params, OOMB_SPACE_DEVICE, n->host_params, OOMB_SPACE_HOST_PINNED,
                      bytes, "weights to the device", msg, msg_len);
    return rc;
}
