/*
 * Strategy `checkpoint`: activation checkpointing (recomputation). The L
 * layers of the model (linear and activation layers alike, as the scenario
 * lists them) are cut into S contiguous segments whose lengths differ by at
 * most one. Forward keeps only each segment's output (its boundary) and,
 * for the last segment, every activation; the other activations are freed
 * as soon as the next layer has used them. Backward walks the segments from
 * last to first: it recomputes the segment's activations from its input
 * boundary, runs the segment's backward, and frees them again. The kernels
 * run with the same arguments in the same order as in `none`, so the
 * gradients are bit-for-bit none's.
 *
 * Memory (symbols as in plugins/none/none.c; seg s = layers [a_s, b_s),
 * bnd_s = f_{b_s - 1} its output width): weights, grads, optimizer and
 * other as none. Activations, at the peak while segment s runs backward:
 *   4B * (f_in + sum_{t < s} bnd_t + sum_{a_s <= l < b_s - 1} f_l) saved
 *   + 4B * (dout and din of the layer being differentiated)
 * plus, around the loss, probs (4BK), losses (4B) and dlogits (4BK). With
 * equal widths f, that is about 4Bf (S + L/S + 1) against none's 4Bf (L + 3):
 * smallest at S = sqrt(L), the default.
 *
 * Cost: one extra forward of every layer outside the last segment except
 * each segment's last layer: (L - len_last - (S - 1)) layer forwards per
 * step, reported as the metric "recompute_ratio" (that count over L).
 * Recomputation is marked as phase forward, so time.forward holds it.
 */
#include <math.h>
#include <stdlib.h>

#include "chunk.h"
#include "net.h"
#include "steps.h"

struct ckpt_state {
    const struct oomb_host *h;
    struct oomb_net net;
    int S;      /* segments */
    int *first; /* (S + 1) first layer of each segment; first[S] = L */
};

/* Whether a segment boundary at layer l keeps only its output, and the
 * layer is recomputed in backward: layers that save state for backward next
 * to their output (norms, attention, residual blocks) would otherwise keep
 * all of it. */
static int trims(const struct ckpt_state *s, int l)
{
    return oomb_layer_saved_floats(s->h->info->model->layers[l], 1) > 0;
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
    if (seg == 0)
        seg = (int64_t)ceil(sqrt((double)L));
    struct ckpt_state *s = calloc(1, sizeof *s);
    if (!s || !(s->first = calloc((size_t)seg + 1, sizeof *s->first))) {
        if (s)
            free(s);
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    s->h = h;
    s->S = (int)seg;
    for (int i = 0; i <= s->S; i++)
        s->first[i] = (int)oomb_chunk_first(L, seg, i);
    int rc = oomb_net_init(&s->net, h, h->info->model, OOMB_NET_GRADS | OOMB_NET_OPTIMIZER, msg,
                           msg_len);
    if (rc != OOMB_OK) {
        free(s->first);
        free(s);
        return rc;
    }
    int64_t recomputed = 0;
    for (int i = 0; i < s->S - 1; i++)
        recomputed += s->first[i + 1] - s->first[i] - (trims(s, s->first[i + 1] - 1) ? 0 : 1);
    h->report_metric(h->run, "segments", (double)s->S);
    h->report_metric(h->run, "recompute_ratio", (double)recomputed / (double)L);
    *state = s;
    return OOMB_OK;
}

/* Runs layers [a, b) from `in`, storing layer l's output in acts[l]. With
 * keep_all == 0, only acts[b - 1] survives: each output is freed once the
 * next layer has consumed it. */
static int run_layers(struct ckpt_state *s, float **acts, const float *in, int a, int b,
                      int keep_all, enum oomb_fwd_mode mode, int64_t B, char *msg,
                      size_t msg_len)
{
    const struct oomb_host *h = s->h;
    int rc;
    for (int l = a; l < b; l++) {
        size_t bytes = oomb_net_act_bytes(&s->net, l, B);
        if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_ACTIVATIONS, "activation", (void **)&acts[l],
                                 msg, msg_len)))
            return rc;
        rc = oomb_net_forward(&s->net, l, acts[l], in, B, mode, msg, msg_len);
        if (!keep_all && l > a) {
            h->free(h->run, acts[l - 1]);
            acts[l - 1] = NULL;
        }
        if (rc)
            return rc;
        in = acts[l];
    }
    return OOMB_OK;
}

static int ckpt_step(void *state, int64_t step, char *msg, size_t msg_len)
{
    struct ckpt_state *s = state;
    const struct oomb_host *h = s->h;
    const struct oomb_model *m = h->info->model;
    struct oomb_net *n = &s->net;
    const int L = m->n_layers, S = s->S;
    const int64_t B = h->info->batch, K = m->classes;
    int rc = OOMB_OK;
    float *x = NULL, *probs = NULL, *losses = NULL, *dcur = NULL;
    int32_t *y = NULL;
    /* acts[l]: output of layer l while it is alive (boundaries, the last
     * segment, or a recomputed segment). */
    float **acts = calloc((size_t)L, sizeof *acts);
    if (!acts) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }

    h->phase(h->run, OOMB_PHASE_OTHER);
    if ((rc = oomb_net_alloc(h, (size_t)(B * m->input_features) * 4, OOMB_TAG_ACTIVATIONS,
                             "input", (void **)&x, msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)B * 4, OOMB_TAG_OTHER, "labels", (void **)&y, msg,
                             msg_len)))
        goto done;
    if ((rc = h->load_batch(h->run, step, 0, B, x, y))) {
        oomb_msg(msg, msg_len, "load_batch failed");
        goto done;
    }

    h->phase(h->run, OOMB_PHASE_FORWARD);
    for (int i = 0; i < S; i++) {
        int a = s->first[i], b = s->first[i + 1];
        const float *in = a > 0 ? acts[a - 1] : x;
        if ((rc = run_layers(s, acts, in, a, b, i == S - 1, OOMB_FWD_TRAIN, B, msg, msg_len)))
            goto done;
        if (i < S - 1 && trims(s, b - 1)) { /* keep the boundary's output alone */
            float *o = NULL;
            size_t ob = (size_t)(B * m->layers[b - 1]->out_features) * 4;
            if ((rc = oomb_net_alloc(h, ob, OOMB_TAG_ACTIVATIONS, "boundary", (void **)&o, msg,
                                     msg_len)) ||
                (rc = oomb_net_op_error(n, n->ops->copy(n->k, o, acts[b - 1], ob),
                                        "copy boundary", msg, msg_len))) {
                h->free(h->run, o);
                goto done;
            }
            h->free(h->run, acts[b - 1]);
            acts[b - 1] = o;
        }
    }
    if ((rc = oomb_net_alloc(h, (size_t)(B * K) * 4, OOMB_TAG_ACTIVATIONS, "probs",
                             (void **)&probs, msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)B * 4, OOMB_TAG_ACTIVATIONS, "losses", (void **)&losses,
                             msg, msg_len)))
        goto done;
    if ((rc = oomb_net_op_error(n, n->ops->softmax_xent_forward(n->k, losses, probs, acts[L - 1],
                                                                y, B, K),
                                "softmax_xent_forward", msg, msg_len)))
        goto done;
    int64_t correct = 0;
    if ((rc = oomb_net_op_error(n, n->ops->count_correct(n->k, acts[L - 1], y, B, K, &correct),
                                "count_correct", msg, msg_len)))
        goto done;
    double loss;
    if ((rc = oomb_net_mean_loss(n, losses, B, &loss, msg, msg_len)))
        goto done;
    h->report_loss(h->run, step, loss);
    h->report_accuracy(h->run, correct, B);
    /* The logits are not an input of any backward (only probs are), unless
     * the last layer saved state for its backward next to them. */
    if (oomb_layer_saved_floats(m->layers[L - 1], B) == 0) {
        h->free(h->run, acts[L - 1]);
        acts[L - 1] = NULL;
    }
    h->free(h->run, losses);
    losses = NULL;

    h->phase(h->run, OOMB_PHASE_BACKWARD);
    if ((rc = oomb_net_zero_grads(n, msg, msg_len)))
        goto done;
    if ((rc = oomb_net_alloc(h, (size_t)(B * K) * 4, OOMB_TAG_ACTIVATIONS, "dlogits",
                             (void **)&dcur, msg, msg_len)))
        goto done;
    if ((rc = oomb_net_op_error(n, n->ops->softmax_xent_backward(n->k, dcur, probs, y, B, K,
                                                                 1.0f / (float)B),
                                "softmax_xent_backward", msg, msg_len)))
        goto done;
    h->free(h->run, probs);
    probs = NULL;
    for (int i = S - 1; i >= 0; i--) {
        int a = s->first[i], b = s->first[i + 1];
        const float *seg_in = a > 0 ? acts[a - 1] : x;
        /* Recompute the inputs of layers a+1 .. b-1, and layer b-1 itself
         * when its boundary kept only the output. */
        int upto = i < S - 1 && trims(s, b - 1) ? b : b - 1;
        if (i < S - 1 && upto > a) {
            if (upto == b) {
                h->free(h->run, acts[b - 1]);
                acts[b - 1] = NULL;
            }
            h->phase(h->run, OOMB_PHASE_FORWARD);
            if ((rc = run_layers(s, acts, seg_in, a, upto, 1, OOMB_FWD_RECOMPUTE, B, msg,
                                 msg_len)))
                goto done;
            h->phase(h->run, OOMB_PHASE_BACKWARD);
        }
        for (int l = b - 1; l >= a; l--) {
            if ((rc = oomb_net_backward_step(n, l, &dcur, l > 0 ? acts[l - 1] : x, acts[l], B,
                                              msg, msg_len)))
                goto done;
            /* Layer l's own buffer is needed no more; its input (a
             * recomputed activation, or the segment's input boundary once
             * l == a) neither, unless layer l - 1 saved state there for its
             * own backward (then it goes after that). */
            h->free(h->run, acts[l]);
            acts[l] = NULL;
            if (l > 0 && oomb_layer_saved_floats(m->layers[l - 1], B) == 0) {
                h->free(h->run, acts[l - 1]);
                acts[l - 1] = NULL;
            }
        }
    }
    if (step == 0)
        h->report_tensor(h->run, "grads0", n->grads, n->total_params);

    h->phase(h->run, OOMB_PHASE_UPDATE);
    if ((rc = oomb_net_update(n, msg, msg_len)))
        goto done;
    h->report_tensor(h->run, "weights", n->params, n->total_params);

done:
    h->free(h->run, dcur);
    for (int l = 0; l < L; l++)
        h->free(h->run, acts[l]);
    free(acts);
    h->free(h->run, probs);
    h->free(h->run, losses);
    h->free(h->run, x);
    h->free(h->run, y);
    return rc;
}

static void ckpt_destroy(void *state)
{
    struct ckpt_state *s = state;
    if (!s)
        return;
    oomb_net_free(&s->net);
    free(s->first);
    free(s);
}

static int ckpt_evaluate(void *state, char *msg, size_t msg_len)
{
    struct ckpt_state *s = state;
    return oomb_step_evaluate(s->h, &s->net, 0, NULL, NULL, msg, msg_len);
}

static const struct oomb_param_desc params[] = {
    {"segments", OOMB_PARAM_INT, "0", "segments",
     "checkpointed segments (1..layers); 0: ceil(sqrt(layers)), layers counting linear and "
     "activation layers"},
};

static const struct oomb_plugin descriptor = {
    .struct_size = sizeof(struct oomb_plugin),
    .abi_major = OOMB_ABI_MAJOR,
    .abi_minor = OOMB_ABI_MINOR,
    .name = "checkpoint",
    .description = "Activation checkpointing: keep segment boundaries, recompute in backward",
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
