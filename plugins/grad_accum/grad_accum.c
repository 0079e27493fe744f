/*
 * Strategy `grad_accum`: gradient accumulation. Each step's batch of B
 * samples is cut into k micro-batches (sizes differ by at most one when k
 * does not divide B); each runs forward and backward on its own through the
 * step engine and adds its parameter gradients into the one gradient
 * buffer, with the loss gradient scaled by 1/B so that the sum over the
 * micro-batches is the mean over the whole batch, exactly what `none`
 * computes. One optimizer update per step: the optimizer sees none's
 * gradients up to the order of the floating-point sums.
 *
 * Memory (b = ceil(B / k), the largest micro-batch): weights, grads and
 * optimizer as none; other = 4b (the micro-batch's labels); activations =
 * none's at batch b, about 1/k of none's (docs/strategies/grad_accum.md).
 * Cost: k smaller GEMMs instead of one, the same number of updates.
 */
#include <stdlib.h>

#include "engine.h"
#include "net.h"

struct ga_state {
    const struct oomb_host *h;
    struct oomb_net net;
    struct oomb_engine eng;
};

static void ga_destroy(void *state)
{
    struct ga_state *s = state;
    if (!s)
        return;
    oomb_engine_close(&s->eng, &s->net);
    free(s);
}

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
    struct oomb_policy pol = {.slices = k};
    int rc = oomb_engine_open(&s->eng, &s->net, h, h->info->model,
                              OOMB_NET_GRADS | OOMB_NET_OPTIMIZER, &pol, msg, msg_len);
    if (rc != OOMB_OK) {
        free(s);
        return rc;
    }
    int64_t first, b;
    oomb_engine_slice(&pol, B, 0, &first, &b);
    if (B % k != 0)
        h->log(h->run, OOMB_LOG_INFO,
               "batch %lld is not a multiple of steps %lld: micro-batches of %lld and %lld",
               (long long)B, (long long)k, (long long)b, (long long)(b - 1));
    h->report_metric(h->run, "micro_batch", (double)b);
    *state = s;
    return OOMB_OK;
}

static int ga_step(void *state, int64_t step, char *msg, size_t msg_len)
{
    struct ga_state *s = state;
    return oomb_engine_train_step(&s->eng, step, msg, msg_len);
}

static int ga_evaluate(void *state, char *msg, size_t msg_len)
{
    struct ga_state *s = state;
    int64_t first, b;
    oomb_engine_slice(&s->eng.pol, s->h->info->batch, 0, &first, &b);
    return oomb_engine_evaluate(&s->eng, b, msg, msg_len); /* in micro-batches, as it trains */
}

static const struct oomb_param_desc params[] = {
    {.struct_size = OOMB_PARAM_DESC_SIZE, .name = "steps", .type = OOMB_PARAM_INT,
     .default_value = "4", .unit = "micro-batches",
     .help = "micro-batches per step (1..batch); gradients summed, one update per step",
     .bounds = OOMB_PARAM_MIN, .min = 1},
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
