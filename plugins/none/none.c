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
#include "steps.h"

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

static int none_step(void *state, int64_t step, char *msg, size_t msg_len)
{
    struct none_state *s = state;
    /* The shared drivers are the reference step itself (plugins/common/steps.c):
     * other strategies reuse them and differ from `none` only where they say. */
    if (s->train)
        return oomb_step_train(&s->net, step, NULL, NULL, msg, msg_len);
    return oomb_step_infer(s->h, &s->net, step, NULL, NULL, msg, msg_len);
}

static int none_evaluate(void *state, char *msg, size_t msg_len)
{
    struct none_state *s = state;
    return oomb_step_evaluate(s->h, &s->net, 0, NULL, NULL, msg, msg_len);
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
    .evaluate = none_evaluate,
};

OOMB_EXPORT const struct oomb_plugin *OOMB_PLUGIN_ENTRY(void)
{
    return &descriptor;
}
