/*
 * Strategy `checkpoint`: activation checkpointing, as non-reentrant
 * torch.utils.checkpoint applied to consecutive segments of the model
 * (checkpoint_sequential). The L top-level layers are cut into S contiguous
 * segments whose lengths differ by at most one. Every segment but the last
 * runs forward keeping nothing for backward except its input, which the
 * checkpoint holds; the last segment runs as in `none`. When backward
 * reaches a checkpointed segment, the step engine runs the segment forward
 * again from that input, this time keeping what each layer saves, and then
 * its backward releases each saved tensor as in `none`. The kernels run on
 * the same inputs as in `none`, so the gradients are bit for bit none's
 * (batch norm recomputes with the batch statistics and leaves the running
 * statistics alone, so they are updated once per step, as in none).
 *
 * Memory: weights, grads, optimizer and other as none; activations peak at
 * the segment boundaries plus the most expensive segment's saved tensors
 * during its backward (docs/strategies/checkpoint.md). With equal layers,
 * about (S + L/S) layers' worth against none's L: smallest at S = sqrt(L),
 * the default.
 *
 * Cost: one extra forward of every layer outside the last segment: reported
 * as the metric "recompute_ratio" (recomputed layers over L). Recomputation
 * is marked as phase forward, so time.forward holds it.
 */
#include <stdlib.h>

#include "engine.h"
#include "net.h"

struct ckpt_state {
    const struct oomb_host *h;
    struct oomb_net net;
    struct oomb_engine eng;
    int *first; /* (S + 1) first layer of each segment; first[S] = L */
};

static void ckpt_destroy(void *state)
{
    struct ckpt_state *s = state;
    if (!s)
        return;
    oomb_engine_close(&s->eng, &s->net);
    free(s->first);
    free(s);
}

static int ckpt_create(const struct oomb_host *h, void **state, char *msg, size_t msg_len)
{
    const int L = h->info->model->n_layers;
    int64_t seg = 0;
    if (h->param_int(h->run, "segments", &seg) != OOMB_OK) {
        oomb_msg(msg, msg_len, "parameter 'segments' is not an integer");
        return OOMB_ERR_INVALID;
    }
    if (seg < 0 || seg > L) {
        oomb_msg(msg, msg_len,
                 "parameter 'segments' must be between 1 and the number of layers (%d), or 0 "
                 "for ceil(sqrt(%d)); got %lld",
                 L, L, (long long)seg);
        return OOMB_ERR_INVALID;
    }
    struct ckpt_state *s = calloc(1, sizeof *s);
    int S = 0;
    if (!s || !(s->first = oomb_engine_segments(L, seg, &S))) {
        free(s);
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    s->h = h;
    seg = S;
    struct oomb_policy pol = {.n_segments = (int)seg, .seg_first = s->first};
    int rc = oomb_engine_open(&s->eng, &s->net, h, h->info->model,
                              OOMB_NET_GRADS | OOMB_NET_OPTIMIZER, &pol, msg, msg_len);
    if (rc != OOMB_OK) {
        ckpt_destroy(s);
        return rc;
    }
    h->report_metric(h->run, "segments", (double)seg);
    h->report_metric(h->run, "recompute_ratio",
                     seg > 1 ? (double)s->first[seg - 1] / (double)L : 0.0);
    *state = s;
    return OOMB_OK;
}

static int ckpt_step(void *state, int64_t step, char *msg, size_t msg_len)
{
    struct ckpt_state *s = state;
    return oomb_engine_train_step(&s->eng, step, msg, msg_len);
}

static int ckpt_evaluate(void *state, char *msg, size_t msg_len)
{
    struct ckpt_state *s = state;
    return oomb_engine_evaluate(&s->eng, 0, msg, msg_len);
}

static const struct oomb_param_desc params[] = {
    {.struct_size = OOMB_PARAM_DESC_SIZE, .name = "segments", .type = OOMB_PARAM_INT,
     .default_value = "0", .unit = "segments",
     .help = "checkpointed segments (1..layers); 0: ceil(sqrt(layers)), counting top-level "
             "layers (a residual block or a transformer half is one)",
     .bounds = OOMB_PARAM_MIN, .min = 0},
};

static const struct oomb_plugin descriptor = {
    .struct_size = sizeof(struct oomb_plugin),
    .abi_major = OOMB_ABI_MAJOR,
    .abi_minor = OOMB_ABI_MINOR,
    .name = "checkpoint",
    .description = "Activation checkpointing: keep segment inputs, recompute in backward "
                   "(non-reentrant torch.utils.checkpoint)",
    .modes = OOMB_MODE_TRAIN,
    .backends = OOMB_BACKEND_CPU | OOMB_BACKEND_CUDA,
    .params = params,
    .n_params = (int)(sizeof params / sizeof params[0]),
    .create = ckpt_create,
    .step = ckpt_step,
    .destroy = ckpt_destroy,
    .evaluate = ckpt_evaluate,
};

OOMB_EXPORT const struct oomb_plugin *OOMB_PLUGIN_ENTRY(void)
{
    return &descriptor;
}
