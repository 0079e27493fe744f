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

/* Forward of the B samples in *xp (taken over and freed) into logits, each
 * activation freed once the next layer has used it; linear layers through
 * `linear` when given, others through the net (or without one when they
 * have no parameters). Adds the loss sum and correct count to *st; the
 * logits go to *logits_out (the caller frees them) or are freed. */
static int infer_batch(const struct oomb_host *h, struct oomb_net *n, float **xp, const int32_t *y,
                       int64_t B, oomb_linear_fn linear, void *user, float **logits_out,
                       struct oomb_chunk_stats *st, char *msg, size_t msg_len)
{
    const struct oomb_model *m = n ? n->model : h->info->model;
    const struct oomb_ops *o = h->ops;
    const int64_t K = m->classes;
    float *cur = *xp, *probs = NULL, *losses = NULL;
    int rc = OOMB_OK;
    *xp = NULL;
    for (int l = 0; l < m->n_layers; l++) {
        const struct oomb_layer *Ly = m->layers[l];
        float *out;
        size_t bytes = (size_t)(B * Ly->out_features + oomb_layer_saved_floats(Ly, B)) * 4;
        if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_ACTIVATIONS, "activation", (void **)&out, msg,
                                 msg_len)))
            goto done;
        if (Ly->kind == OOMB_LAYER_LINEAR && linear) {
            int64_t R, C, OC;
            oomb_linear_dims(Ly, &R, &C, &OC);
            rc = linear(user, l, out, cur, B * R, msg, msg_len);
        } else if (n) {
            rc = oomb_net_forward(n, l, out, cur, B, OOMB_FWD_EVAL, msg, msg_len);
        } else {
            rc = oomb_layer_forward_bare(h, l, out, cur, B, msg, msg_len);
        }
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
    st->loss_sum += sum;
    st->correct += correct;
    if (logits_out) {
        *logits_out = cur;
        cur = NULL;
    }
done:
    h->free(h->run, cur);
    h->free(h->run, probs);
    h->free(h->run, losses);
    return rc;
}

int oomb_step_infer(const struct oomb_host *h, struct oomb_net *n, int64_t step,
                    oomb_linear_fn linear, void *user, char *msg, size_t msg_len)
{
    const struct oomb_model *m = h->info->model;
    const int64_t B = h->info->batch, K = m->classes;
    float *x = NULL, *logits = NULL;
    int32_t *y = NULL;
    struct oomb_chunk_stats st = {0, 0};
    int rc;

    h->phase(h->run, OOMB_PHASE_OTHER);
    if ((rc = oomb_net_alloc(h, (size_t)(B * m->input_features) * 4, OOMB_TAG_ACTIVATIONS, "input",
                             (void **)&x, msg, msg_len)) ||
        (rc =
             oomb_net_alloc(h, (size_t)B * 4, OOMB_TAG_OTHER, "labels", (void **)&y, msg, msg_len)))
        goto done;
    if ((rc = h->load_batch(h->run, step, 0, B, x, y))) {
        oomb_msg(msg, msg_len, "load_batch failed");
        goto done;
    }
    h->phase(h->run, OOMB_PHASE_FORWARD);
    if ((rc = infer_batch(h, n, &x, y, B, linear, user, &logits, &st, msg, msg_len)))
        goto done;
    h->report_loss(h->run, step, st.loss_sum / (double)B);
    h->report_accuracy(h->run, st.correct, B);
    if (step == 0)
        h->report_tensor(h->run, "output0", logits, B * K);
done:
    h->free(h->run, x);
    h->free(h->run, logits);
    h->free(h->run, y);
    return rc;
}

int oomb_step_evaluate(const struct oomb_host *h, struct oomb_net *n, int64_t batch,
                       oomb_linear_fn linear, void *user, char *msg, size_t msg_len)
{
    const struct oomb_model *m = n ? n->model : h->info->model;
    const int64_t N = h->info->eval_samples, B = batch > 0 ? batch : h->info->batch;
    struct oomb_chunk_stats st = {0, 0};
    int rc = OOMB_OK;
    if (N <= 0)
        return OOMB_OK;
    h->phase(h->run, OOMB_PHASE_OTHER);
    for (int64_t first = 0; first < N && rc == OOMB_OK; first += B) {
        int64_t b = N - first < B ? N - first : B;
        float *x = NULL;
        int32_t *y = NULL;
        if ((rc = oomb_net_alloc(h, (size_t)(b * m->input_features) * 4, OOMB_TAG_ACTIVATIONS,
                                 "eval input", (void **)&x, msg, msg_len)) ||
            (rc = oomb_net_alloc(h, (size_t)b * 4, OOMB_TAG_OTHER, "eval labels", (void **)&y, msg,
                                 msg_len))) {
            h->free(h->run, x);
            break;
        }
        if (h->load_eval_batch(h->run, first, b, x, y)) {
            oomb_msg(msg, msg_len, "load_eval_batch(samples %lld..%lld) failed", (long long)first,
                     (long long)(first + b - 1));
            rc = OOMB_ERR_IO;
        } else {
            rc = infer_batch(h, n, &x, y, b, linear, user, NULL, &st, msg, msg_len);
        }
        h->free(h->run, x);
        h->free(h->run, y);
    }
    if (rc == OOMB_OK)
        h->report_eval(h->run, st.correct, N, st.loss_sum);
    return rc;
}
