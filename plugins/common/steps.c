/*
 * Whole-batch step drivers shared by strategy plugins (see steps.h). The
 * allocation order and sizes are those of plugins/none/none.c, so that a
 * strategy built on them differs from `none` only by what it changes.
 */
#include "steps.h"

#include "chunk.h"

#include <stdio.h>
#include <stdlib.h>

int oomb_step_op_error(const struct oomb_host *h, int rc, const char *what, char *msg,
                       size_t msg_len)
{
    if (rc != OOMB_OK)
        oomb_msg(msg, msg_len, "%s: %s", what, h->ops->last_error(h->ops->ctx));
    return rc;
}

int oomb_step_activation(const struct oomb_host *h, int l, float *out, const float *in, int64_t n,
                         char *msg, size_t msg_len)
{
    const struct oomb_ops *o = h->ops;
    enum oomb_layer_kind kind = h->info->model->layers[l]->kind;
    int rc;
    if (kind == OOMB_LAYER_RELU)
        rc = o->relu_forward(o->ctx, OOMB_F32, out, in, n);
    else if (kind == OOMB_LAYER_GELU)
        rc = o->gelu_forward(o->ctx, OOMB_F32, out, in, n);
    else {
        oomb_msg(msg, msg_len, "layer %d: kind %d is not an activation", l, (int)kind);
        return OOMB_ERR_NOT_APPLICABLE;
    }
    char what[64];
    snprintf(what, sizeof what, "layer %d forward", l);
    return oomb_step_op_error(h, rc, what, msg, msg_len);
}

int oomb_step_train(struct oomb_net *n, int64_t step, oomb_update_fn update, void *user, char *msg,
                    size_t msg_len)
{
    const struct oomb_host *h = n->h;
    const int64_t B = h->info->batch;
    struct oomb_chunk_stats st = {0, 0};
    int rc;

    /* The whole batch is one slice: the same allocations as none's step. */
    h->phase(h->run, OOMB_PHASE_OTHER);
    if ((rc = oomb_net_zero_grads(n, msg, msg_len)) ||
        (rc = oomb_chunk_train(n, step, 0, B, 1.0f / (float)B, &st, msg, msg_len)))
        return rc;
    h->report_loss(h->run, step, st.loss_sum / (double)B);
    h->report_accuracy(h->run, st.correct, B);
    if (step == 0)
        h->report_tensor(h->run, "grads0", n->grads, n->total_params);

    h->phase(h->run, OOMB_PHASE_UPDATE);
    rc = update ? update(user, step, msg, msg_len) : oomb_net_update(n, msg, msg_len);
    if (rc)
        return rc;
    h->report_tensor(h->run, "weights", n->params, n->total_params);
    return OOMB_OK;
}

int oomb_step_infer(const struct oomb_host *h, int64_t step, oomb_linear_fn linear, void *user,
                    char *msg, size_t msg_len)
{
    const struct oomb_model *m = h->info->model;
    const struct oomb_ops *o = h->ops;
    const int64_t B = h->info->batch, K = m->classes;
    float *cur = NULL, *probs = NULL, *losses = NULL;
    int32_t *y = NULL;
    int rc;

    h->phase(h->run, OOMB_PHASE_OTHER);
    if ((rc = oomb_net_alloc(h, (size_t)(B * m->input_features) * 4, OOMB_TAG_ACTIVATIONS, "input",
                             (void **)&cur, msg, msg_len)) ||
        (rc =
             oomb_net_alloc(h, (size_t)B * 4, OOMB_TAG_OTHER, "labels", (void **)&y, msg, msg_len)))
        goto done;
    if ((rc = h->load_batch(h->run, step, 0, B, cur, y))) {
        oomb_msg(msg, msg_len, "load_batch failed");
        goto done;
    }
    h->phase(h->run, OOMB_PHASE_FORWARD);
    for (int l = 0; l < m->n_layers; l++) {
        const struct oomb_layer *Ly = m->layers[l];
        float *out;
        size_t bytes = (size_t)(B * Ly->out_features) * 4;
        if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_ACTIVATIONS, "activation", (void **)&out, msg,
                                 msg_len)))
            goto done;
        if (Ly->kind == OOMB_LAYER_LINEAR)
            rc = linear(user, l, out, cur, B, msg, msg_len);
        else
            rc = oomb_step_activation(h, l, out, cur, B * Ly->out_features, msg, msg_len);
        h->free(h->run, cur);
        cur = out;
        if (rc)
            goto done;
    }
    if ((rc = oomb_net_alloc(h, (size_t)(B * K) * 4, OOMB_TAG_ACTIVATIONS, "probs", (void **)&probs,
                             msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)B * 4, OOMB_TAG_ACTIVATIONS, "losses", (void **)&losses,
                             msg, msg_len)))
        goto done;
    if ((rc = oomb_step_op_error(h, o->softmax_xent_forward(o->ctx, losses, probs, cur, y, B, K),
                                 "softmax_xent_forward", msg, msg_len)))
        goto done;
    int64_t correct = 0;
    double sum = 0;
    if ((rc = oomb_step_op_error(h, o->count_correct(o->ctx, cur, y, B, K, &correct),
                                 "count_correct", msg, msg_len)) ||
        (rc = oomb_step_op_error(h, o->sum(o->ctx, losses, B, &sum), "loss sum", msg, msg_len)))
        goto done;
    h->report_loss(h->run, step, sum / (double)B);
    h->report_accuracy(h->run, correct, B);
    if (step == 0)
        h->report_tensor(h->run, "output0", cur, B * K);
done:
    h->free(h->run, cur);
    h->free(h->run, probs);
    h->free(h->run, losses);
    h->free(h->run, y);
    return rc;
}
