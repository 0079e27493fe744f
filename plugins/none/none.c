/*
 * The reference strategy `none`: FP32, the whole batch at once, and the
 * memory behaviour of PyTorch eager. It is the step engine with its default
 * policy: each layer keeps for backward exactly what PyTorch's autograd node
 * for that op saves, every activation goes as soon as nothing reads or keeps
 * it, and each saved tensor is released right after the backward that used
 * it (plugins/common/engine.h). Every other strategy is compared to it.
 *
 * Memory: weights 4P, grads 4P and optimizer 8P (Adam) or 4P (SGD momentum),
 * P the parameter count, as torch.optim; labels 4B (int32; PyTorch's are
 * int64). The activation peak per layer kind and for the shipped models is
 * worked out in docs/memory-model.md and asserted by tests/test_none.c.
 */
#include <stdlib.h>

#include "engine.h"
#include "net.h"

struct none_state {
    struct oomb_net net;
    struct oomb_engine eng;
};

static void none_destroy(void *state)
{
    struct none_state *s = state;
    if (!s)
        return;
    oomb_engine_close(&s->eng, &s->net);
    free(s);
}

static int none_create(const struct oomb_host *h, void **state, char *msg, size_t msg_len)
{
    struct none_state *s = calloc(1, sizeof *s);
    if (!s) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    unsigned flags = h->info->mode == OOMB_MODE_TRAIN ? OOMB_NET_GRADS | OOMB_NET_OPTIMIZER : 0;
    int rc = oomb_engine_open(&s->eng, &s->net, h, h->info->model, flags, NULL, msg, msg_len);
    if (rc != OOMB_OK) {
        free(s);
        return rc;
    }
    *state = s;
    return OOMB_OK;
}

static int none_step(void *state, int64_t step, char *msg, size_t msg_len)
{
    struct none_state *s = state;
    return oomb_engine_step(&s->eng, step, msg, msg_len);
}

static int none_evaluate(void *state, char *msg, size_t msg_len)
{
    struct none_state *s = state;
    return oomb_engine_evaluate(&s->eng, 0, msg, msg_len);
}

static const struct oomb_plugin descriptor = {
    .struct_size = sizeof(struct oomb_plugin),
    .abi_major = OOMB_ABI_MAJOR,
    .abi_minor = OOMB_ABI_MINOR,
    .name = "none",
    .description = "Reference: FP32, whole batch, PyTorch eager's saved tensors and lifetimes",
    .modes = OOMB_MODE_TRAIN | OOMB_MODE_INFER,
    .backends = OOMB_BACKEND_CPU | OOMB_BACKEND_CUDA,
    .params = NULL,
    .n_params = 0,
    .create = none_create,
    .step = none_step,
    .destroy = none_destroy,
    .evaluate = none_evaluate,
};

OOMB_EXPORT const struct oomb_plugin *OOMB_PLUGIN_ENTRY(void)
{
    return &descriptor;
}
