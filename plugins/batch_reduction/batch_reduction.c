/*
 * Strategy `batch_reduction`: run the step's batch of B samples as
 * micro-batches of `micro_batch` samples (the last one shorter when
 * micro_batch does not divide B), so that only one micro-batch's
 * activations are alive at a time.
 *
 * Inference: each micro-batch runs forward on its own and writes its logits
 * straight into a (B, K) buffer of the whole batch's logits, which is what
 * is reported as "output0". Every row goes through the same kernels as in
 * `none`, so the logits are none's up to GEMM blocking.
 *
 * Training: the model is trained at the smaller batch. Each micro-batch
 * runs forward, backward with the mean over its own samples, and an
 * optimizer update: ceil(B / micro_batch) updates per step over the same
 * samples none uses for one. The loss reported for a step is the mean over
 * all B samples of the losses each micro-batch had before its update, so
 * that the loss curve is over the same samples as none's. "grads0" is the
 * first micro-batch's gradient (the one the first update used; equal to
 * none's when micro_batch = B) and "weights" is reported once per step,
 * after its last update, so that record i compares the weights after the
 * same samples as none's record i.
 *
 * Memory (b = min(micro_batch, B); symbols as in plugins/none/none.c):
 *   train: weights, grads, optimizer as none; other = 4b (labels);
 *          activations = none's train formula at batch b, about b/B of none's
 *   infer: other = 4b; activations = 4BK (the whole batch's logits)
 *          + 4b * max(max over layers l but the last of (in_l + f_l),
 *                     in_last, K + 1)
 *          (the last layer writes into the logits buffer).
 * Cost: smaller GEMMs; in training, B/b optimizer updates per step, and
 * different training dynamics (smaller batch, more steps).
 */
#include <stdlib.h>

#include "chunk.h"
#include "net.h"
#include "steps.h"

struct br_state {
    const struct oomb_host *h;
    struct oomb_net net;
    int train;
    int64_t mb;     /* micro-batch size */
    int64_t chunks; /* ceil(B / mb) */
};

static int br_create(const struct oomb_host *h, void **state, char *msg, size_t msg_len)
{
    const int64_t B = h->info->batch;
    int64_t mb = 0;
    if (h->param_int(h->run, "micro_batch", &mb) != OOMB_OK) {
        oomb_msg(msg, msg_len, "parameter 'micro_batch' is not an integer");
        return OOMB_ERR_INVALID;
    }
    if (mb < 1 || mb > B) {
        oomb_msg(msg, msg_len,
                 "parameter 'micro_batch' must be between 1 and the batch size (%lld), got %lld",
                 (long long)B, (long long)mb);
        return OOMB_ERR_INVALID;
    }
    struct br_state *s = calloc(1, sizeof *s);
    if (!s) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    s->h = h;
    s->train = h->info->mode == OOMB_MODE_TRAIN;
    s->mb = mb;
    s->chunks = (B + mb - 1) / mb;
    unsigned flags = s->train ? OOMB_NET_GRADS | OOMB_NET_OPTIMIZER : 0;
    int rc = oomb_net_init(&s->net, h, h->info->model, flags, msg, msg_len);
    if (rc != OOMB_OK) {
        free(s);
        return rc;
    }
    h->report_metric(h->run, "micro_batches", (double)s->chunks);
    if (s->train)
        h->report_metric(h->run, "updates_per_step", (double)s->chunks);
    *state = s;
    return OOMB_OK;
}

static int train_step(struct br_state *s, int64_t step, char *msg, size_t msg_len)
{
    const struct oomb_host *h = s->h;
    struct oomb_net *n = &s->net;
    const int64_t B = h->info->batch;
    struct oomb_chunk_stats st = {0};
    int rc;
    for (int64_t i = 0; i < s->chunks; i++) {
        int64_t first = i * s->mb, count = B - first < s->mb ? B - first : s->mb;
        h->phase(h->run, OOMB_PHASE_BACKWARD);
        if ((rc = oomb_net_zero_grads(n, msg, msg_len)))
            return rc;
        if ((rc = oomb_chunk_train(n, step, first, count, 1.0f / (float)count, &st, msg,
                                   msg_len)))
            return rc;
        if (step == 0 && i == 0)
            h->report_tensor(h->run, "grads0", n->grads, n->total_params);
        h->phase(h->run, OOMB_PHASE_UPDATE);
        if ((rc = oomb_net_update(n, msg, msg_len)))
            return rc;
    }
    h->report_loss(h->run, step, st.loss_sum / (double)B);
    h->report_accuracy(h->run, st.correct, B);
    h->report_tensor(h->run, "weights", n->params, n->total_params);
    return OOMB_OK;
}

/* Forward of samples [first, first + count) into logits (count, K), each
 * activation freed as soon as the next layer has used it; adds the summed
 * loss and the correct count to *st. */
static int infer_chunk(struct br_state *s, int64_t step, int64_t first, int64_t count,
                       float *logits, struct oomb_chunk_stats *st, char *msg, size_t msg_len)
{
    const struct oomb_host *h = s->h;
    const struct oomb_model *m = h->info->model;
    struct oomb_net *n = &s->net;
    const int64_t b = count, K = m->classes;
    const int L = m->n_layers;
    float *cur = NULL, *probs = NULL, *losses = NULL;
    int32_t *y = NULL;
    int rc;

    h->phase(h->run, OOMB_PHASE_OTHER);
    if ((rc = oomb_net_alloc(h, (size_t)(b * m->input_features) * 4, OOMB_TAG_ACTIVATIONS,
                             "input", (void **)&cur, msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)b * 4, OOMB_TAG_OTHER, "labels", (void **)&y, msg,
                             msg_len)))
        goto done;
    if ((rc = h->load_batch(h->run, step, first, b, cur, y))) {
        oomb_msg(msg, msg_len, "load_batch(step %lld, samples %lld..%lld) failed",
                 (long long)step, (long long)first, (long long)(first + b - 1));
        goto done;
    }
    h->phase(h->run, OOMB_PHASE_FORWARD);
    for (int l = 0; l < L; l++) {
        float *out = logits;
        if (l < L - 1 || oomb_layer_saved_floats(m->layers[l], b) > 0) {
            size_t bytes = oomb_net_act_bytes(n, l, b);
            if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_ACTIVATIONS, "activation", (void **)&out,
                                     msg, msg_len)))
                goto done;
        }
        rc = oomb_net_forward(n, l, out, cur, b, OOMB_FWD_EVAL, msg, msg_len);
        if (rc == OOMB_OK && l == L - 1 && out != logits)
            rc = oomb_net_op_error(n, n->ops->copy(n->k, logits, out, (size_t)(b * K) * 4),
                                   "copy logits", msg, msg_len);
        if (l == L - 1 && out != logits)
            h->free(h->run, out);
        h->free(h->run, cur);
        cur = l < L - 1 ? out : NULL;
        if (rc)
            goto done;
    }
    if ((rc = oomb_net_alloc(h, (size_t)(b * K) * 4, OOMB_TAG_ACTIVATIONS, "probs",
                             (void **)&probs, msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)b * 4, OOMB_TAG_ACTIVATIONS, "losses", (void **)&losses,
                             msg, msg_len)))
        goto done;
    if ((rc = oomb_net_op_error(
             n, n->ops->softmax_xent_forward(n->k, losses, probs, logits, y, b, K),
             "softmax_xent_forward", msg, msg_len)))
        goto done;
    int64_t correct = 0;
    double loss_sum = 0;
    if ((rc = oomb_net_op_error(n, n->ops->count_correct(n->k, logits, y, b, K, &correct),
                                "count_correct", msg, msg_len)) ||
        (rc = oomb_net_op_error(n, n->ops->sum(n->k, losses, b, &loss_sum), "loss sum", msg,
                                msg_len)))
        goto done;
    st->loss_sum += loss_sum;
    st->correct += correct;
done:
    h->free(h->run, cur);
    h->free(h->run, probs);
    h->free(h->run, losses);
    h->free(h->run, y);
    return rc;
}

static int infer_step(struct br_state *s, int64_t step, char *msg, size_t msg_len)
{
    const struct oomb_host *h = s->h;
    const int64_t B = h->info->batch, K = h->info->model->classes;
    struct oomb_chunk_stats st = {0};
    float *logits = NULL;
    int rc;

    h->phase(h->run, OOMB_PHASE_OTHER);
    if ((rc = oomb_net_alloc(h, (size_t)(B * K) * 4, OOMB_TAG_ACTIVATIONS, "logits",
                             (void **)&logits, msg, msg_len)))
        return rc;
    for (int64_t i = 0; i < s->chunks; i++) {
        int64_t first = i * s->mb, count = B - first < s->mb ? B - first : s->mb;
        if ((rc = infer_chunk(s, step, first, count, logits + first * K, &st, msg, msg_len)))
            goto done;
    }
    h->report_loss(h->run, step, st.loss_sum / (double)B);
    h->report_accuracy(h->run, st.correct, B);
    if (step == 0)
        h->report_tensor(h->run, "output0", logits, B * K);
done:
    h->free(h->run, logits);
    return rc;
}

static int br_step(void *state, int64_t step, char *msg, size_t msg_len)
{
    struct br_state *s = state;
    return s->train ? train_step(s, step, msg, msg_len) : infer_step(s, step, msg, msg_len);
}

static void br_destroy(void *state)
{
    struct br_state *s = state;
    if (!s)
        return;
    oomb_net_free(&s->net);
    free(s);
}

static int br_evaluate(void *state, char *msg, size_t msg_len)
{
    struct br_state *s = state;
    /* in micro-batches, as the strategy runs */
    return oomb_step_evaluate(s->h, &s->net, s->mb, NULL, NULL, msg, msg_len);
}

static const struct oomb_param_desc params[] = {
    {"micro_batch", OOMB_PARAM_INT, "32", "samples",
     "samples per micro-batch (1..batch); train: one optimizer update per micro-batch"},
};

static const struct oomb_plugin descriptor = {
    .struct_size = sizeof(struct oomb_plugin),
    .abi_major = OOMB_ABI_MAJOR,
    .abi_minor = OOMB_ABI_MINOR,
    .name = "batch_reduction",
    .description = "Smaller batches: infer in micro-batches; train with an update per micro-batch",
    .modes = OOMB_MODE_TRAIN | OOMB_MODE_INFER,
    .backends = OOMB_BACKEND_CPU | OOMB_BACKEND_CUDA,
    .params = params,
    .n_params = (int)(sizeof params / sizeof params[0]),
    .create = br_create,
    .step = br_step,
    .destroy = br_destroy,
    .evaluate = br_evaluate,
};

OOMB_EXPORT const struct oomb_plugin *OOMB_PLUGIN_ENTRY(void)
{
    return &descriptor;
}
