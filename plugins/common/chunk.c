/*
 * Training on a slice of a step's batch (see chunk.h).
 */
#include "chunk.h"

#include <stdlib.h>

int64_t oomb_chunk_size(int64_t B, int64_t parts, int64_t i)
{
    return B / parts + (i < B % parts ? 1 : 0);
}

int64_t oomb_chunk_first(int64_t B, int64_t parts, int64_t i)
{
    int64_t extra = B % parts;
    return i * (B / parts) + (i < extra ? i : extra);
}

int oomb_chunk_train(struct oomb_net *n, int64_t step, int64_t first, int64_t count,
                     float grad_scale, struct oomb_chunk_stats *st, char *msg, size_t msg_len)
{
    const struct oomb_host *h = n->h;
    const struct oomb_model *m = n->model;
    const int L = m->n_layers;
    const int64_t B = count, K = m->classes;
    int rc = OOMB_OK;
    float *x = NULL, *probs = NULL, *losses = NULL, *dcur = NULL;
    int32_t *y = NULL;
    float **acts = calloc((size_t)L, sizeof *acts);
    if (!acts) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }

    h->phase(h->run, OOMB_PHASE_OTHER);
    if ((rc = oomb_net_alloc(h, (size_t)(B * m->input_features) * 4, OOMB_TAG_ACTIVATIONS, "input",
                             (void **)&x, msg, msg_len)) ||
        (rc =
             oomb_net_alloc(h, (size_t)B * 4, OOMB_TAG_OTHER, "labels", (void **)&y, msg, msg_len)))
        goto done;
    if ((rc = h->load_batch(h->run, step, first, B, x, y))) {
        oomb_msg(msg, msg_len, "load_batch(step %lld, samples %lld..%lld) failed", (long long)step,
                 (long long)first, (long long)(first + B - 1));
        goto done;
    }

    h->phase(h->run, OOMB_PHASE_FORWARD);
    const float *in = x;
    for (int l = 0; l < L; l++) {
        size_t bytes = oomb_net_act_bytes(n, l, B);
        if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_ACTIVATIONS, "activation", (void **)&acts[l],
                                 msg, msg_len)))
            goto done;
        if ((rc = oomb_net_forward(n, l, acts[l], in, B, OOMB_FWD_TRAIN, msg, msg_len)))
            goto done;
        in = acts[l];
    }
    if ((rc = oomb_net_alloc(h, (size_t)(B * K) * 4, OOMB_TAG_ACTIVATIONS, "probs", (void **)&probs,
                             msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)B * 4, OOMB_TAG_ACTIVATIONS, "losses", (void **)&losses,
                             msg, msg_len)))
        goto done;
    if ((rc = oomb_net_op_error(
             n, n->ops->softmax_xent_forward(n->k, losses, probs, acts[L - 1], y, B, K),
             "softmax_xent_forward", msg, msg_len)))
        goto done;
    int64_t correct = 0;
    double loss_sum = 0;
    if ((rc = oomb_net_op_error(n, n->ops->count_correct(n->k, acts[L - 1], y, B, K, &correct),
                                "count_correct", msg, msg_len)) ||
        (rc = oomb_net_op_error(n, n->ops->sum(n->k, losses, B, &loss_sum), "loss sum", msg,
                                msg_len)))
        goto done;
    st->loss_sum += loss_sum;
    st->correct += correct;

    h->phase(h->run, OOMB_PHASE_BACKWARD);
    if ((rc = oomb_net_alloc(h, (size_t)(B * K) * 4, OOMB_TAG_ACTIVATIONS, "dlogits",
                             (void **)&dcur, msg, msg_len)))
        goto done;
    if ((rc = oomb_net_op_error(
             n, n->ops->softmax_xent_backward(n->k, dcur, probs, y, B, K, grad_scale),
             "softmax_xent_backward", msg, msg_len)))
        goto done;
    for (int l = L - 1; l >= 0; l--) {
        if ((rc = oomb_net_backward_step(n, l, &dcur, l > 0 ? acts[l - 1] : x, acts[l], B, msg,
                                          msg_len)))
            goto done;
    }

done:
    h->free(h->run, dcur);
    for (int l = 0; l < L; l++)
        h->free(h->run, acts[l]);
    free(acts);
    h->free(h->run, probs);
    h->free(h->run, losses);
    h->free(h->run, x);
    h->free(h->run, y);
    return rc;
}
