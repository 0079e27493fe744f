/*
 * Example out-of-tree strategy plugin: inference with in-place activation
 * layers. Linear layers write a new buffer and free their input at once;
 * ReLU/GELU overwrite their input. Peak activations drop to the largest
 * (in + out) of a linear layer, against (in + out) of every layer for a
 * plain forward pass. Uses nothing but <oombench/plugin.h>.
 */
#include <stdio.h>
#include <stdlib.h>

#include <oombench/plugin.h>

struct state {
    const struct oomb_host *h;
    float **w; /* per layer parameters (W then b), NULL for activations */
};

static void destroy(void *p)
{
    struct state *s = p;
    if (!s)
        return;
    for (int l = 0; s->w && l < s->h->info->model->n_layers; l++)
        s->h->free(s->h->run, s->w[l]);
    free(s->w);
    free(s);
}

static int create(const struct oomb_host *h, void **out, char *msg, size_t len)
{
    const struct oomb_model *m = h->info->model;
    struct state *s = calloc(1, sizeof *s);
    if (!s || !(s->w = calloc((size_t)m->n_layers, sizeof *s->w))) {
        free(s);
        snprintf(msg, len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    s->h = h;
    for (int l = 0; l < m->n_layers; l++) {
        const struct oomb_layer *L = m->layers[l];
        if (L->kind != OOMB_LAYER_LINEAR && L->kind != OOMB_LAYER_RELU &&
            L->kind != OOMB_LAYER_GELU) {
            snprintf(msg, len, "layer %d: only linear, relu and gelu layers are handled", l);
            destroy(s);
            return OOMB_ERR_NOT_APPLICABLE;
        }
        if (L->n_params == 0)
            continue;
        int rc = h->alloc(h->run, OOMB_SPACE_DEVICE, (size_t)L->n_params * 4, OOMB_TAG_WEIGHTS, "weights",
                          (void **)&s->w[l]);
        if (rc == OOMB_OK)
            rc = h->init_params(h->run, l, s->w[l]);
        if (rc != OOMB_OK) {
            snprintf(msg, len, "layer %d: cannot allocate or initialise weights", l);
            destroy(s);
            return rc;
        }
    }
    *out = s;
    return OOMB_OK;
}

static int step(void *p, int64_t step_index, char *msg, size_t len)
{
    struct state *s = p;
    const struct oomb_host *h = s->h;
    const struct oomb_ops *o = h->ops;
    const struct oomb_model *m = h->info->model;
    const int64_t B = h->info->batch, K = m->classes;
    float *cur = NULL, *probs = NULL, *losses = NULL;
    int32_t *y = NULL;
    int rc;
    h->phase(h->run, OOMB_PHASE_OTHER);
    if ((rc = h->alloc(h->run, OOMB_SPACE_DEVICE, (size_t)(B * m->input_features) * 4, OOMB_TAG_ACTIVATIONS,
                       "input", (void **)&cur)) ||
        (rc = h->alloc(h->run, OOMB_SPACE_DEVICE, (size_t)B * 4, OOMB_TAG_OTHER, "labels", (void **)&y)) ||
        (rc = h->load_batch(h->run, step_index, 0, B, cur, y)))
        goto done;
    h->phase(h->run, OOMB_PHASE_FORWARD);
    for (int l = 0; l < m->n_layers; l++) {
        const struct oomb_layer *L = m->layers[l];
        int64_t n = B * L->out_features;
        if (L->kind == OOMB_LAYER_RELU) {
            rc = o->relu_forward(o->ctx, OOMB_F32, cur, cur, n);
        } else if (L->kind == OOMB_LAYER_GELU) {
            rc = o->gelu_forward(o->ctx, OOMB_F32, cur, cur, n);
        } else {
            float *next;
            if ((rc = h->alloc(h->run, OOMB_SPACE_DEVICE, (size_t)n * 4, OOMB_TAG_ACTIVATIONS, "act",
                               (void **)&next)))
                goto done;
            const float *bias = L->has_bias ? s->w[l] + L->out_features * L->in_features : NULL;
            rc = o->linear_forward(o->ctx, OOMB_F32, next, cur, s->w[l], bias, B, L->in_features,
                                   L->out_features);
            h->free(h->run, cur);
            cur = next;
        }
        if (rc) {
            snprintf(msg, len, "layer %d: %s", l, o->last_error(o->ctx));
            goto done;
        }
    }
    if ((rc = h->alloc(h->run, OOMB_SPACE_DEVICE, (size_t)(B * K) * 4, OOMB_TAG_ACTIVATIONS, "probs",
                       (void **)&probs)) ||
        (rc = h->alloc(h->run, OOMB_SPACE_DEVICE, (size_t)B * 4, OOMB_TAG_ACTIVATIONS, "losses", (void **)&losses)))
        goto done;
    double sum = 0;
    int64_t correct = 0;
    if ((rc = o->softmax_xent_forward(o->ctx, losses, probs, cur, y, B, K)) ||
        (rc = o->sum(o->ctx, losses, B, &sum)) ||
        (rc = o->count_correct(o->ctx, cur, y, B, K, &correct))) {
        snprintf(msg, len, "loss: %s", o->last_error(o->ctx));
        goto done;
    }
    h->report_loss(h->run, step_index, sum / (double)B);
    h->report_accuracy(h->run, correct, B);
    if (step_index == 0)
        h->report_tensor(h->run, "output0", cur, B * K);
done:
    if (rc == OOMB_ERR_OOM && !msg[0])
        snprintf(msg, len, "allocation refused");
    h->free(h->run, cur);
    h->free(h->run, probs);
    h->free(h->run, losses);
    h->free(h->run, y);
    return rc;
}

static const struct oomb_param_desc no_params[1];

static const struct oomb_plugin descriptor = {
    .struct_size = sizeof(struct oomb_plugin),
    .abi_major = OOMB_ABI_MAJOR,
    .abi_minor = OOMB_ABI_MINOR,
    .name = "inplace_infer",
    .description = "Example: inference with in-place activation layers",
    .modes = OOMB_MODE_INFER,
    .backends = OOMB_BACKEND_CPU | OOMB_BACKEND_CUDA,
    .params = no_params,
    .n_params = 0,
    .create = create,
    .step = step,
    .destroy = destroy,
};

OOMB_EXPORT const struct oomb_plugin *OOMB_PLUGIN_ENTRY(void)
{
    return &descriptor;
}
