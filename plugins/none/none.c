/*
 * The reference strategy `none`: FP32, the whole batch at once, every
 * activation kept for backward. Every other strategy is compared to it.
 *
 * Memory, exactly (B batch, f_l the features of layer l's output, f_in the
 * input features, K classes, 4-byte floats; docs/memory-model.md):
 *   weights    = 4 * P                    (P = all parameters)
 *   grads      = 4 * P                    (train)
 *   optimizer  = 8 * P (Adam m, v), 4 * P (SGD momentum)      (train)
 *   other      = 4 * B                    (int32 labels)
 *   activations, train = 4B * (f_in + sum_l f_l + K + 1)      saved
 *                      + 4B * max over linear layers l of (f_l + in_l),
 *                        without in_l for the first linear    largest transient
 *   activations, infer = 4B * max(max_l (in_l + f_l), f_L + K + 1)
 * Backward keeps every saved activation until the step ends; gradients of
 * activation layers are computed in place, so at most the output gradient
 * and the input gradient of one linear layer are alive at once.
 */
#include <stdlib.h>
#include <string.h>

#include "net.h"

struct none_state {
    const struct oomb_host *h;
    struct oomb_net net;
    int train;
};

static int none_create(const struct oomb_host *h, void **state, char *msg, size_t msg_len)
{
    struct none_state *s = calloc(1, sizeof *s);
    if (!s) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    s->h = h;
    s->train = h->info->mode == OOMB_MODE_TRAIN;
    unsigned flags = s->train ? OOMB_NET_GRADS | OOMB_NET_OPTIMIZER : 0;
    int rc = oomb_net_init(&s->net, h, h->info->model, flags, msg, msg_len);
    if (rc != OOMB_OK) {
        free(s);
        return rc;
    }
    *state = s;
    return OOMB_OK;
}

/* Training step: forward keeping everything, loss, backward, update. */
static int train_step(struct none_state *s, int64_t step, char *msg, size_t msg_len)
{
    const struct oomb_host *h = s->h;
    const struct oomb_model *m = h->info->model;
    struct oomb_net *n = &s->net;
    const int L = m->n_layers;
    const int64_t B = h->info->batch, K = m->classes;
    int rc = OOMB_OK;
    float *x = NULL, *probs = NULL, *losses = NULL, *dcur = NULL;
    int32_t *y = NULL;
    float **acts = calloc((size_t)L, sizeof *acts);
    if (!acts) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }

    h->phase(h->run, OOMB_PHASE_OTHER);
    if ((rc = oomb_net_alloc(h, (size_t)(B * m->input_features) * 4, OOMB_TAG_ACTIVATIONS,
                             "input", (void **)&x, msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)B * 4, OOMB_TAG_OTHER, "labels", (void **)&y, msg,
                             msg_len)))
        goto done;
    if ((rc = h->load_batch(h->run, step, 0, B, x, y))) {
        oomb_msg(msg, msg_len, "load_batch failed");
        goto done;
    }

    h->phase(h->run, OOMB_PHASE_FORWARD);
    const float *in = x;
    for (int l = 0; l < L; l++) {
        size_t bytes = (size_t)(B * m->layers[l]->out_features) * 4;
        if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_ACTIVATIONS, "activation", (void **)&acts[l],
                                 msg, msg_len)))
            goto done;
        if ((rc = oomb_net_forward(n, l, acts[l], in, B, msg, msg_len)))
            goto done;
        in = acts[l];
    }
    if ((rc = oomb_net_alloc(h, (size_t)(B * K) * 4, OOMB_TAG_ACTIVATIONS, "probs",
                             (void **)&probs, msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)B * 4, OOMB_TAG_ACTIVATIONS, "losses", (void **)&losses,
                             msg, msg_len)))
        goto done;
    if ((rc = oomb_net_op_error(n, n->ops->softmax_xent_forward(n->k, losses, probs, acts[L - 1],
                                                                y, B, K),
                                "softmax_xent_forward", msg, msg_len)))
        goto done;
    int64_t correct = 0;
    if ((rc = oomb_net_op_error(n, n->ops->count_correct(n->k, acts[L - 1], y, B, K, &correct),
                                "count_correct", msg, msg_len)))
        goto done;
    double loss;
    if ((rc = oomb_net_mean_loss(n, losses, B, &loss, msg, msg_len)))
        goto done;
    h->report_loss(h->run, step, loss);
    h->report_accuracy(h->run, correct, B);

    h->phase(h->run, OOMB_PHASE_BACKWARD);
    if ((rc = oomb_net_zero_grads(n, msg, msg_len)))
        goto done;
    if ((rc = oomb_net_alloc(h, (size_t)(B * K) * 4, OOMB_TAG_ACTIVATIONS, "dlogits",
                             (void **)&dcur, msg, msg_len)))
        goto done;
    if ((rc = oomb_net_op_error(n, n->ops->softmax_xent_backward(n->k, dcur, probs, y, B, K,
                                                                 1.0f / (float)B),
                                "softmax_xent_backward", msg, msg_len)))
        goto done;
    for (int l = L - 1; l >= 0; l--) {
        const float *lin = l > 0 ? acts[l - 1] : x;
        float *din = NULL;
        if (oomb_net_is_elementwise(m, l)) {
            din = dcur; /* in place */
        } else if (l > 0) {
            size_t bytes = (size_t)(B * m->layers[l]->in_features) * 4;
            if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_ACTIVATIONS, "dinput", (void **)&din,
                                     msg, msg_len)))
                goto done;
        }
        if ((rc = oomb_net_backward(n, l, din, dcur, lin, B, msg, msg_len))) {
            if (din != dcur)
                h->free(h->run, din);
            goto done;
        }
        if (din != dcur) {
            h->free(h->run, dcur);
            dcur = din;
        }
    }
    if (step == 0)
        h->report_tensor(h->run, "grads0", n->grads, n->total_params);

    h->phase(h->run, OOMB_PHASE_UPDATE);
    if ((rc = oomb_net_update(n, msg, msg_len)))
        goto done;
    h->report_tensor(h->run, "weights", n->params, n->total_params);

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

/* Inference: each activation is freed as soon as the next layer has used it. */
static int infer_step(struct none_state *s, int64_t step, char *msg, size_t msg_len)
{
    const struct oomb_host *h = s->h;
    const struct oomb_model *m = h->info->model;
    struct oomb_net *n = &s->net;
    const int64_t B = h->info->batch, K = m->classes;
    float *cur = NULL, *probs = NULL, *losses = NULL;
    int32_t *y = NULL;
    int rc;

    h->phase(h->run, OOMB_PHASE_OTHER);
    if ((rc = oomb_net_alloc(h, (size_t)(B * m->input_features) * 4, OOMB_TAG_ACTIVATIONS,
                             "input", (void **)&cur, msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)B * 4, OOMB_TAG_OTHER, "labels", (void **)&y, msg,
                             msg_len)))
        goto done;
    if ((rc = h->load_batch(h->run, step, 0, B, cur, y))) {
        oomb_msg(msg, msg_len, "load_batch failed");
        goto done;
    }
    h->phase(h->run, OOMB_PHASE_FORWARD);
    for (int l = 0; l < m->n_layers; l++) {
        float *out;
        size_t bytes = (size_t)(B * m->layers[l]->out_features) * 4;
        if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_ACTIVATIONS, "activation", (void **)&out,
                                 msg, msg_len)))
            goto done;
        rc = oomb_net_forward(n, l, out, cur, B, msg, msg_len);
        h->free(h->run, cur);
        cur = out;
        if (rc)
            goto done;
    }
    if ((rc = oomb_net_alloc(h, (size_t)(B * K) * 4, OOMB_TAG_ACTIVATIONS, "probs",
                             (void **)&probs, msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)B * 4, OOMB_TAG_ACTIVATIONS, "losses", (void **)&losses,
                             msg, msg_len)))
        goto done;
    if ((rc = oomb_net_op_error(n, n->ops->softmax_xent_forward(n->k, losses, probs, cur, y, B, K),
                                "softmax_xent_forward", msg, msg_len)))
        goto done;
    int64_t correct = 0;
    double loss;
    if ((rc = oomb_net_op_error(n, n->ops->count_correct(n->k, cur, y, B, K, &correct),
                                "count_correct", msg, msg_len)) ||
        (rc = oomb_net_mean_loss(n, losses, B, &loss, msg, msg_len)))
        goto done;
    h->report_loss(h->run, step, loss);
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

static int none_step(void *state, int64_t step, char *msg, size_t msg_len)
{
    struct none_state *s = state;
    return s->train ? train_step(s, step, msg, msg_len) : infer_step(s, step, msg, msg_len);
}

static void none_destroy(void *state)
{
    struct none_state *s = state;
    if (!s)
        return;
    oomb_net_free(&s->net);
    free(s);
}

static const struct oomb_plugin descriptor = {
    .struct_size = sizeof(struct oomb_plugin),
    .abi_major = OOMB_ABI_MAJOR,
    .abi_minor = OOMB_ABI_MINOR,
    .name = "none",
    .description = "Reference: FP32, whole batch, every activation kept for backward",
    .modes = OOMB_MODE_TRAIN | OOMB_MODE_INFER,
    .backends = OOMB_BACKEND_CPU | OOMB_BACKEND_CUDA,
    .params = NULL,
    .n_params = 0,
    .create = none_create,
    .step = none_step,
    .destroy = none_destroy,
};

OOMB_EXPORT const struct oomb_plugin *OOMB_PLUGIN_ENTRY(void)
{
    return &descriptor;
}
