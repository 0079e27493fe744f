/*
 * Strategy `grad_accum`: gradient accumulation. Each step's batch of B
 * samples is cut into k micro-batches (sizes differ by at most one when k
 * does not divide B); each runs forward and backward on its own and adds its
 * parameter gradients into the one gradient buffer, with the loss gradient
 * scaled by 1/B so that the sum over the micro-batches is the mean over the
 * whole batch, exactly what `none` computes. One optimizer update per step.
 * The optimizer sees the same gradients as none's (up to the order of the
 * floating-point sums), so the weights follow none's update for update.
 *
 * Memory (b = ceil(B / k), the largest micro-batch; other symbols as in
 * plugins/none/none.c): weights, grads and optimizer as none; other = 4b
 * (the micro-batch's labels); activations = none's train formula with B
 * replaced by b, i.e. about 1/k of none's:
 *   activations = 4b * (f_in + sum_l f_l + K + 1) + 4b * max_linear (f_l + in_l)
 * Cost: k smaller GEMMs instead of one (less efficient per sample), the
 * same number of optimizer updates.
 */
#include <stdlib.h>

#include "chunk.h"
#include "net.h"
#include "steps.h"

struct ga_state {
    const struct oomb_host *h;
    struct oomb_net net;
    int64_t k; /* micro-batches per step */
};

static int ga_create(const struct oomb_host *h, void **state, char *msg, size_t msg_len)
{
    const int64_t B = h->info->batch;
    int64_t k = 0;
    if (h->param_int(h->run, "steps", &k) != OOMB_OK) {
        oomb_msg(msg, msg_len, "parameter 'steps' is not an integer");
        return OOMB_ERR_INVALID;
    }
    if (k < 1 || k > B) {
        oomb_msg(msg, msg_len,
                 "parameter 'steps' must be between 1 and the batch size (%lld), got %lld",
                 (long long)B, (long long)k);
        return OOMB_ERR_INVALID;
    }
    struct ga_state *s = calloc(1, sizeof *s);
    if (!s) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    s->h = h;
    s->k = k;
    int rc = oomb_net_init(&s->net, h, h->info->model, OOMB_NET_GRADS | OOMB_NET_OPTIMIZER, msg,
                           msg_len);
    if (rc != OOMB_OK) {
        free(s);
        return rc;
    }
    if (B % k != 0)
        h->log(h->run, OOMB_LOG_INFO,
               "batch %lld is not a multiple of steps %lld: micro-batches of %lld and %lld",
               (long long)B, (long long)k, (long long)(B / k + 1), (long long)(B / k));
    h->report_metric(h->run, "micro_batch", (double)oomb_chunk_size(B, k, 0));
    *state = s;
    return OOMB_OK;
}

static int ga_step(void *state, int64_t step, char *msg, size_t msg_len)
{
    struct ga_state *s = state;
    const struct oomb_host *h = s->h;
    struct oomb_net *n = &s->net;
    const int64_t B = h->info->batch;
    struct oomb_chunk_stats st = {0};
    int rc;

    h->phase(h->run, OOMB_PHASE_BACKWARD);
    if ((rc = oomb_net_zero_grads(n, msg, msg_len)))
        return rc;
    for (int64_t i = 0; i < s->k; i++) {
        int64_t first = oomb_chunk_first(B, s->k, i), count = oomb_chunk_size(B, s->k, i);
        if ((rc = oomb_chunk_train(n, step, first, count, 1.0f / (float)B, &st, msg, msg_len)))
            return rc;
    }
    h->report_loss(h->run, step, st.loss_sum / (double)B);
    h->report_accuracy(h->run, st.correct, B);
    if (step == 0)
        h->report_tensor(h->run, "grads0", n->grads, n->total_params);

    h->phase(h->run, OOMB_PHASE_UPDATE);
    if ((rc = oomb_net_update(n, msg, msg_len)))
        return rc;
    h->report_tensor(h->run, "weights", n->params, n->total_params);
    return OOMB_OK;
}

static void ga_destroy(void *state)
{
    struct ga_state *s = state;
    if (!s)
        return;
    oomb_net_free(&s->net);
    free(s);
}

static int ga_evaluate(void *state, char *msg, size_t msg_len)
{
    struct ga_state *s = state;
    /* in micro-batches, as the strategy trains */
    return oomb_step_evaluate(s->h, &s->net, oomb_chunk_size(s->h->info->batch, s->k, 0), NULL,
                              NULL, msg, msg_len);
}

static const struct oomb_param_desc params[] = {
    {"steps", OOMB_PARAM_INT, "4", "micro-batches",
     "micro-batches per step (1..batch); gradients summed, one update per step"},
};

static const struct oomb_plugin descriptor = {
    .struct_size = sizeof(struct oomb_plugin),
    .abi_major = OOMB_ABI_MAJOR,
    .abi_minor = OOMB_ABI_MINOR,
    .name = "grad_accum",
    .description = "Gradient accumulation: k micro-batches per step, one update over their sum",
    .modes = OOMB_MODE_TRAIN,
    .backends = OOMB_BACKEND_CPU | OOMB_BACKEND_CUDA,
    .params = params,
    .n_params = (int)(sizeof params / sizeof params[0]),
    .create = ga_create,
    .step = ga_step,
    .destroy = ga_destroy,
    .evaluate = ga_evaluate,
};

OOMB_EXPORT const struct oomb_plugin *OOMB_PLUGIN_ENTRY(void)
{
    return &descriptor;
}
