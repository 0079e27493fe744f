/*
 * Example out-of-tree strategy on the oombench SDK: gradient accumulation
 * and activation checkpointing at once, which no built-in strategy does.
 * Each step's batch runs as `steps` micro-batches (one update over their
 * summed gradients, as grad_accum), and each micro-batch's forward keeps
 * only the inputs of `segments` segments of the model (non-reentrant
 * checkpointing, as checkpoint). It is a policy over the SDK's step engine,
 * so it runs every layer kind the engine knows (CNNs, transformers) with
 * PyTorch eager's saved tensors; the gradients are none's up to the order of
 * the micro-batch sums.
 *
 * Build: find_package(oombench), oombench_add_plugin(accum_ckpt accum_ckpt.c)
 * and target_link_libraries(accum_ckpt PRIVATE oombench::sdk); or with
 * pkg-config: cc -shared -fPIC $(pkg-config --cflags oombench-sdk) accum_ckpt.c
 * $(pkg-config --libs oombench-sdk).
 */
#include <stdlib.h>

#include "engine.h"

struct state {
    const struct oomb_host *h;
    struct oomb_net net;
    struct oomb_engine eng;
    int *first; /* (segments + 1) first top-level layer of each segment */
};

static void destroy(void *p)
{
    struct state *s = p;
    if (!s)
        return;
    oomb_engine_close(&s->eng, &s->net);
    free(s->first);
    free(s);
}

static int create(const struct oomb_host *h, void **out, char *msg, size_t len)
{
    const int L = h->info->model->n_layers;
    const int64_t B = h->info->batch;
    int64_t k = 0, seg = 0;
    if (h->param_int(h->run, "steps", &k) || k < 1 || k > B) {
        oomb_msg(msg, len, "parameter 'steps' must be between 1 and the batch size (%lld)",
                 (long long)B);
        return OOMB_ERR_INVALID;
    }
    if (h->param_int(h->run, "segments", &seg) || seg < 0 || seg > L) {
        oomb_msg(msg, len, "parameter 'segments' must be between 0 and the layers (%d)", L);
        return OOMB_ERR_INVALID;
    }
    struct state *s = calloc(1, sizeof *s);
    int S = 0;
    if (!s || !(s->first = oomb_engine_segments(L, seg, &S))) {
        free(s);
        oomb_msg(msg, len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    s->h = h;
    seg = S;
    struct oomb_policy pol = {.slices = k, .n_segments = (int)seg, .seg_first = s->first};
    int rc = oomb_engine_open(&s->eng, &s->net, h, h->info->model,
                              OOMB_NET_GRADS | OOMB_NET_OPTIMIZER, &pol, msg, len);
    if (rc) {
        free(s->first);
        free(s);
        return rc;
    }
    h->report_metric(h->run, "segments", (double)seg);
    *out = s;
    return OOMB_OK;
}

static int step(void *p, int64_t i, char *msg, size_t len)
{
    struct state *s = p;
    return oomb_engine_train_step(&s->eng, i, msg, len);
}

static int evaluate(void *p, char *msg, size_t len)
{
    struct state *s = p;
    return oomb_engine_evaluate(&s->eng, 0, msg, len);
}

static const struct oomb_param_desc params[] = {
    {.struct_size = OOMB_PARAM_DESC_SIZE, .name = "steps", .type = OOMB_PARAM_INT,
     .default_value = "2", .unit = "micro-batches", .help = "micro-batches per step (1..batch)",
     .bounds = OOMB_PARAM_MIN, .min = 1},
    {.struct_size = OOMB_PARAM_DESC_SIZE, .name = "segments", .type = OOMB_PARAM_INT,
     .default_value = "0", .unit = "segments",
     .help = "checkpointed segments of top-level layers; 0: ceil(sqrt(layers))",
     .bounds = OOMB_PARAM_MIN, .min = 0},
};

static const struct oomb_plugin descriptor = {
    .struct_size = sizeof(struct oomb_plugin),
    .abi_major = OOMB_ABI_MAJOR,
    .abi_minor = OOMB_ABI_MINOR,
    .name = "accum_ckpt",
    .description = "Example SDK strategy: gradient accumulation with checkpointed micro-batches",
    .modes = OOMB_MODE_TRAIN,
    .backends = OOMB_BACKEND_CPU | OOMB_BACKEND_CUDA,
    .params = params,
    .n_params = (int)(sizeof params / sizeof params[0]),
    .create = create,
    .step = step,
    .destroy = destroy,
    .evaluate = evaluate,
};

OOMB_EXPORT const struct oomb_plugin *OOMB_PLUGIN_ENTRY(void)
{
    return &descriptor;
}
