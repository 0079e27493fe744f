/*
 * Strategy `batch_reduction`: run the step's batch of B samples as
 * micro-batches of `micro_batch` samples (the last one shorter when
 * micro_batch does not divide B), so that only one micro-batch's
 * activations are alive at a time.
 *
 * Inference: each micro-batch runs forward on its own through the step
 * engine and its logits are copied into the (B, K) output of the whole
 * batch, which is what is reported as "output0". Every row goes through the
 * same kernels as in `none`, so the logits are none's up to GEMM blocking.
 *
 * Training: the model is trained at the smaller batch. Each micro-batch
 * runs forward, backward with the mean over its own samples, and an
 * optimizer update: ceil(B / micro_batch) updates per step over the samples
 * none uses for one. The loss reported for a step is the mean over all B
 * samples of the losses each micro-batch had before its update. "grads0" is
 * the first micro-batch's gradient (equal to none's when micro_batch = B)
 * and "weights" is reported once per step, after its last update.
 *
 * Memory (b = min(micro_batch, B)): weights, grads, optimizer as none;
 * other = 4b (labels); train activations = none's at batch b; infer
 * activations = 4BK (the whole output) + none's inference peak at batch b
 * (docs/strategies/batch_reduction.md). Cost: smaller GEMMs; in training,
 * B/b updates per step and different training dynamics.
 */
#include <stdlib.h>

#include "engine.h"
#include "net.h"

struct br_state {
    const struct oomb_host *h;
    struct oomb_net net;
    struct oomb_engine eng;
    int train;
    int64_t mb;
};

static void br_destroy(void *state)
{
    struct br_state *s = state;
    if (!s)
        return;
    oomb_engine_close(&s->eng, &s->net);
    free(s);
}

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
    struct oomb_policy pol = {.micro_batch = mb, .update_per_slice = 1};
    unsigned flags = s->train ? OOMB_NET_GRADS | OOMB_NET_OPTIMIZER : 0;
    int rc = oomb_engine_open(&s->eng, &s->net, h, h->info->model, flags, &pol, msg, msg_len);
    if (rc != OOMB_OK) {
        free(s);
        return rc;
    }
    int64_t chunks = oomb_engine_slices(&pol, B);
    h->report_metric(h->run, "micro_batches", (double)chunks);
    if (s->train)
        h->report_metric(h->run, "updates_per_step", (double)chunks);
    *state = s;
    return OOMB_OK;
}

static int br_step(void *state, int64_t step, char *msg, size_t msg_len)
{
    struct br_state *s = state;
    return oomb_engine_step(&s->eng, step, msg, msg_len);
}

static int br_evaluate(void *state, char *msg, size_t msg_len)
{
    struct br_state *s = state;
    return oomb_engine_evaluate(&s->eng, s->mb, msg, msg_len); /* in micro-batches */
}

static const struct oomb_param_desc params[] = {
    {.struct_size = OOMB_PARAM_DESC_SIZE, .name = "micro_batch", .type = OOMB_PARAM_INT,
     .default_value = "32", .unit = "samples",
     .help = "samples per micro-batch (1..batch); train: one optimizer update per micro-batch",
     .bounds = OOMB_PARAM_MIN, .min = 1},
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
