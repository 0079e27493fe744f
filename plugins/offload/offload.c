/*
 * Strategy `offload`: move what training keeps between forward and backward
 * off the device, as PyTorch's torch.autograd.graph.save_on_cpu and
 * DeepSpeed's ZeRO-Offload do.
 *
 * Activations (activations=1): every tensor a node saves for backward, once
 * forward no longer reads it, is copied to host memory (pinned by default,
 * so that on CUDA the copy runs on a copy stream beside the next layer's
 * forward) and its device memory is freed when that copy is done, one node
 * later. Before a node's backward its saved tensors are copied back, and the
 * next node's are prefetched one node ahead. The step engine does this
 * (policy.offload); the kernels see the same values as in `none`, so the
 * gradients are bit for bit none's.
 *
 * Optimizer (optimizer=1): the optimizer state, an FP32 master copy of the
 * weights and a gradient buffer live in pinned host memory; after backward
 * the gradients are copied down, the update runs on the CPU (host->host_ops)
 * and the weights are copied back, as ZeRO-Offload's CPU Adam does. The
 * device then holds no optimizer state at all.
 *
 * Memory: device activations keep only the working set of the node being
 * computed, the input batch and the tensors in flight (at most two nodes'
 * saved tensors); host memory holds the saved tensors, tracked per tag in
 * the host spaces of the results. On the CPU backend both spaces are RAM of
 * one process: the device numbers say what a GPU would hold, the time cost
 * is that of the memcpys, and no overlap is possible (the results'
 * memory.transfers give bytes, copies and their time).
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "net.h"

struct offload_state {
    const struct oomb_host *h;
    struct oomb_net net;
    struct oomb_engine eng;
};

static void offload_destroy(void *state)
{
    struct offload_state *s = state;
    if (!s)
        return;
    oomb_engine_close(&s->eng, &s->net);
    free(s);
}

static int offload_create(const struct oomb_host *h, void **state, char *msg, size_t msg_len)
{
    int64_t act = 1, opt = 0, min_bytes = 0;
    const char *space = "pinned";
    if (h->param_int(h->run, "activations", &act) != OOMB_OK ||
        h->param_int(h->run, "optimizer", &opt) != OOMB_OK ||
        h->param_int(h->run, "min_bytes", &min_bytes) != OOMB_OK ||
        h->param_str(h->run, "space", &space) != OOMB_OK) {
        oomb_msg(msg, msg_len, "cannot read the parameters");
        return OOMB_ERR_INVALID;
    }
    if (!act && !opt) {
        oomb_msg(msg, msg_len, "nothing to offload: activations=0 and optimizer=0");
        return OOMB_ERR_INVALID;
    }
    struct offload_state *s = calloc(1, sizeof *s);
    if (!s) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    s->h = h;
    struct oomb_policy pol = {
        .offload = act != 0,
        .offload_space = strcmp(space, "pageable") == 0 ? OOMB_SPACE_HOST : OOMB_SPACE_HOST_PINNED,
        .offload_min_bytes = (size_t)min_bytes,
    };
    unsigned flags = OOMB_NET_GRADS | OOMB_NET_OPTIMIZER | (opt ? OOMB_NET_HOST_OPTIMIZER : 0u);
    int rc = oomb_engine_open(&s->eng, &s->net, h, h->info->model, flags, &pol, msg, msg_len);
    if (rc != OOMB_OK) {
        offload_destroy(s);
        return rc;
    }
    *state = s;
    return OOMB_OK;
}

static int offload_step(void *state, int64_t step, char *msg, size_t msg_len)
{
    struct offload_state *s = state;
    return oomb_engine_train_step(&s->eng, step, msg, msg_len);
}

static int offload_evaluate(void *state, char *msg, size_t msg_len)
{
    struct offload_state *s = state;
    return oomb_engine_evaluate(&s->eng, 0, msg, msg_len);
}

static const struct oomb_param_desc params[] = {
    {.struct_size = OOMB_PARAM_DESC_SIZE,
     .name = "activations",
     .type = OOMB_PARAM_INT,
     .default_value = "1",
     .unit = "",
     .help = "1: saved activations to host memory after forward, back before backward",
     .bounds = OOMB_PARAM_MIN | OOMB_PARAM_MAX,
     .min = 0,
     .max = 1},
    {.struct_size = OOMB_PARAM_DESC_SIZE,
     .name = "optimizer",
     .type = OOMB_PARAM_INT,
     .default_value = "0",
     .unit = "",
     .help = "1: optimizer state, master weights and the update on the host (ZeRO-Offload)",
     .bounds = OOMB_PARAM_MIN | OOMB_PARAM_MAX,
     .min = 0,
     .max = 1},
    {.struct_size = OOMB_PARAM_DESC_SIZE,
     .name = "space",
     .type = OOMB_PARAM_STRING,
     .default_value = "pinned",
     .unit = "",
     .help = "host memory for activations: pinned (copies overlap compute on CUDA) or pageable",
     .choices = "pinned|pageable"},
    {.struct_size = OOMB_PARAM_DESC_SIZE,
     .name = "min_bytes",
     .type = OOMB_PARAM_INT,
     .default_value = "65536",
     .unit = "bytes",
     .help = "saved tensors smaller than this stay on the device (norm statistics)",
     .bounds = OOMB_PARAM_MIN,
     .min = 0},
};

static const struct oomb_plugin descriptor = {
    .struct_size = sizeof(struct oomb_plugin),
    .abi_major = OOMB_ABI_MAJOR,
    .abi_minor = OOMB_ABI_MINOR,
    .name = "offload",
    .description = "Offload: saved activations (and optionally the optimizer) to host memory, "
                   "prefetched back for backward",
    .modes = OOMB_MODE_TRAIN,
    .backends = OOMB_BACKEND_CPU | OOMB_BACKEND_CUDA,
    .params = params,
    .n_params = (int)(sizeof params / sizeof params[0]),
    .create = offload_create,
    .step = offload_step,
    .destroy = offload_destroy,
    .evaluate = offload_evaluate,
};

OOMB_EXPORT const struct oomb_plugin *OOMB_PLUGIN_ENTRY(void)
{
    return &descriptor;
}
