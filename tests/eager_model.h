/*
 * PyTorch eager's activation memory for one training or inference step of a
 * sequential model, simulated tensor by tensor, for the tests to compare the
 * step engine with. Written from the rules of docs/memory-model.md, not from
 * the engine's code:
 *
 *   - the caller holds the input x for the whole step;
 *   - every op allocates its output, except flatten (a view);
 *   - in training, an op whose input requires a gradient or that has
 *     parameters records a node that keeps: linear (addmm) its input; relu
 *     its result; gelu, conv2d its input; max_pool2d its input and the
 *     positions of the maxima (int32 here, int64 in PyTorch);
 *     batch norm its input and save_mean/save_invstd (2C floats); layer norm
 *     its input and mean/rstd (2 floats per row); attention: the qkv
 *     projection its input, the core qkv and the probabilities (B H T T), the
 *     output projection the heads' output; add nothing;
 *   - a tensor goes when no later op reads it in forward and no node keeps it;
 *   - the loss: softmax cross-entropy keeps the probabilities (B K floats;
 *     PyTorch's log_softmax result); oombench's per-sample losses (B floats)
 *     live only while they are summed (PyTorch reduces to a scalar inside
 *     nll_loss); the logits go after the loss unless a node keeps them;
 *   - backward runs the nodes in reverse; each allocates the gradient of its
 *     input (flatten and add pass theirs on, shared), the gradient it was
 *     given is freed after it, then what it kept; a gradient reaching a
 *     tensor twice (a residual's skip) is summed into the one not shared;
 *   - checkpointed segments (non-reentrant torch.utils.checkpoint) keep only
 *     their input in forward and are run again when backward reaches them,
 *     keeping what their nodes save; the input is let go after the segment's
 *     backward.
 *
 * Only activation-tag bytes are counted (4-byte floats, or `dsz` bytes per
 * activation element for the F16 storage of fp16; statistics and
 * probabilities stay 4 bytes).
 */
#ifndef OOMB_TEST_EAGER_MODEL_H
#define OOMB_TEST_EAGER_MODEL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oombench/plugin.h"

enum em_kind { EM_OP, EM_ADD, EM_VIEW };

struct em_op {
    enum em_kind kind;
    int in, in2, out; /* tensor ids (in2: the add's skip) */
    int saves_in, saves_out;
    int64_t extra;  /* bytes kept besides input and output */
    int params;     /* has parameters */
    int train_only; /* batch norm, max pool: no extra outside training */
    int top;        /* top-level layer */
};

#define EM_MAX 512

struct em {
    struct em_op op[EM_MAX];
    int64_t bytes[EM_MAX + 1]; /* tensor sizes; 0 is the input */
    int n_ops, n_t;
    int64_t B, dsz;
};

static int em_add_layer(struct em *m, const struct oomb_layer *L, int top, int in)
{
    const int64_t B = m->B, d = m->dsz;
    struct em_op *o;
    if (L->kind == OOMB_LAYER_RESIDUAL) {
        int cur = in;
        for (int j = 0; j < L->n_body; j++)
            cur = em_add_layer(m, L->body[j], top, cur);
        o = &m->op[m->n_ops++];
        memset(o, 0, sizeof *o);
        o->kind = EM_ADD;
        o->in = cur;
        o->in2 = in;
        o->top = top;
        o->out = m->n_t;
        m->bytes[m->n_t++] = B * L->out_features * d;
        return o->out;
    }
    if (L->kind == OOMB_LAYER_ATTENTION) {
        const int64_t T = L->attrs[0], C = L->attrs[1], H = L->attrs[2];
        const int64_t width[3] = {T * 3 * C, T * C, T * C};
        for (int i = 0; i < 3; i++) {
            o = &m->op[m->n_ops++];
            memset(o, 0, sizeof *o);
            o->in = in;
            o->in2 = -1;
            o->top = top;
            o->saves_in = 1;
            o->params = i != 1;
            o->extra = i == 1 ? B * H * T * T * 4 : 0;
            o->out = m->n_t;
            m->bytes[m->n_t++] = B * width[i] * d;
            in = o->out;
        }
        return in;
    }
    o = &m->op[m->n_ops++];
    memset(o, 0, sizeof *o);
    o->in = in;
    o->in2 = -1;
    o->top = top;
    o->params = L->n_params > 0;
    switch (L->kind) {
    case OOMB_LAYER_FLATTEN:
        o->kind = EM_VIEW;
        o->out = in;
        return in;
    case OOMB_LAYER_RELU:
        o->saves_out = 1;
        break;
    case OOMB_LAYER_BATCHNORM:
        o->saves_in = 1;
        o->extra = 2 * L->attrs[0] * 4;
        o->train_only = 1;
        break;
    case OOMB_LAYER_MAXPOOL: /* the input and the maxima's positions (int32; PyTorch: int64) */
        o->saves_in = 1;
        o->extra = B * L->out_features * 4;
        o->train_only = 1;
        break;
    case OOMB_LAYER_LAYERNORM:
        o->saves_in = 1;
        o->extra = 2 * B * L->attrs[0] * 4;
        break;
    default: /* linear, gelu, conv2d */
        o->saves_in = 1;
        break;
    }
    o->out = m->n_t;
    m->bytes[m->n_t++] = B * L->out_features * d;
    return o->out;
}

struct em_state {
    int64_t live, peak;
    int refs[EM_MAX + 1];   /* holders of each tensor's memory */
    int grad[EM_MAX + 1];   /* holders of each tensor's gradient */
    int gshare[EM_MAX + 1]; /* gradient tensor id it shares (itself if own) */
};

static void em_alloc(struct em_state *s, int64_t b)
{
    s->live += b;
    if (s->live > s->peak)
        s->peak = s->live;
}

/* Tensor t's memory loses a holder. Views are the same tensor id. */
static void em_drop(const struct em *m, struct em_state *s, int t)
{
    if (--s->refs[t] == 0)
        s->live -= m->bytes[t];
}

/*
 * Peak activation bytes of a training step (train != 0) or an inference
 * step of `model` at batch B; n_seg > 1 checkpoints segments
 * [seg_first[i], seg_first[i+1]) of top-level layers, all but the last.
 */
static int64_t em_peak(const struct oomb_model *model, int64_t B, int64_t dsz, int train, int n_seg,
                       const int *seg_first)
{
    struct em *m = calloc(1, sizeof *m);
    struct em_state *s = calloc(1, sizeof *s);
    m->B = B;
    m->dsz = dsz;
    m->n_t = 1;
    m->bytes[0] = B * model->input_features * dsz;
    int cur = 0;
    for (int l = 0; l < model->n_layers; l++)
        cur = em_add_layer(m, model->layers[l], l, cur);
    const int logits = cur;
    int seg[EM_MAX];
    int reads[EM_MAX + 1] = {0};
    unsigned char rg[EM_MAX + 1] = {0}, rec[EM_MAX] = {0};
    for (int i = 0; i < m->n_ops; i++) {
        seg[i] = -1;
        for (int k = 0; train && k < n_seg - 1; k++)
            if (m->op[i].top >= seg_first[k] && m->op[i].top < seg_first[k + 1])
                seg[i] = k;
        if (m->op[i].kind != EM_VIEW) {
            reads[m->op[i].in]++;
            if (m->op[i].in2 >= 0)
                reads[m->op[i].in2]++;
        }
    }
    reads[logits]++;
    /* the input: held by the caller for the whole step (one extra holder) */
    s->live = s->peak = m->bytes[0];
    s->refs[0] = 2;
    int hold[EM_MAX] = {0};
    for (int i = 0; i < m->n_ops; i++) {
        struct em_op *o = &m->op[i];
        int keep = train && seg[i] < 0;
        rec[i] = train && (o->params || rg[o->in] || (o->in2 >= 0 && rg[o->in2]));
        rg[o->out] = rec[i];
        if (seg[i] >= 0 && (i == 0 || seg[i - 1] != seg[i])) {
            hold[seg[i]] = o->in;
            s->refs[o->in]++;
        }
        if (o->kind == EM_VIEW)
            continue; /* same tensor, same holders */
        em_alloc(s, m->bytes[o->out]);
        s->refs[o->out] = 1;
        const int64_t ex = !train && o->train_only ? 0 : o->extra;
        em_alloc(s, ex);
        if (keep && rec[i] && o->saves_in)
            s->refs[o->in]++;
        if (keep && rec[i] && o->saves_out)
            s->refs[o->out]++;
        if (!(keep && rec[i]))
            s->live -= ex;
        if (--reads[o->in] == 0)
            em_drop(m, s, o->in);
        if (o->in2 >= 0 && --reads[o->in2] == 0)
            em_drop(m, s, o->in2);
    }
    const int64_t K = model->classes;
    if (!train) { /* the logits (as FP32) go back to the caller, then the loss */
        if (dsz != 4) {
            em_alloc(s, B * K * 4);
            em_drop(m, s, logits);
        }
        em_alloc(s, B * K * 4 + B * 4); /* probabilities, per-sample losses */
        int64_t p = s->peak;
        free(m);
        free(s);
        return p;
    }
    em_alloc(s, B * K * 4); /* probabilities */
    if (dsz != 4)
        em_alloc(s, B * K * 4); /* the FP32 cast of the F16 logits */
    em_alloc(s, B * 4);         /* per-sample losses */
    s->live -= B * 4;
    if (dsz != 4)
        s->live -= B * K * 4;
    if (--reads[logits] == 0)
        em_drop(m, s, logits);
    /* backward: dlogits, then the probabilities go */
    em_alloc(s, B * K * 4);
    s->live -= B * K * 4;
    if (dsz != 4) {
        em_alloc(s, B * K * dsz); /* dlogits in F16 */
        s->live -= B * K * 4;
    }
    int64_t gbytes[EM_MAX + 1];
    int gown[EM_MAX + 1]; /* the gradient buffer id of each tensor's gradient, -1 none */
    int gref[EM_MAX + 1]; /* holders of each gradient buffer */
    for (int t = 0; t < m->n_t; t++) {
        gown[t] = -1;
        gref[t] = 0;
        gbytes[t] = m->bytes[t];
    }
    gown[logits] = logits;
    gref[logits] = 1;
    if (dsz == 4)
        gbytes[logits] = B * K * 4;
    unsigned char redone[EM_MAX] = {0};
    for (int i = m->n_ops - 1; i >= 0; i--) {
        struct em_op *o = &m->op[i];
        if (!rec[i] || o->kind == EM_VIEW) /* a view's gradient is its input's */
            continue;
        int k = seg[i];
        if (k >= 0 && !redone[k]) { /* recompute the segment, keeping saves */
            redone[k] = 1;
            int a = i, b = i;
            while (a > 0 && seg[a - 1] == k)
                a--;
            while (b + 1 < m->n_ops && seg[b + 1] == k)
                b++;
            int r2[EM_MAX + 1] = {0};
            for (int j = a; j <= b; j++)
                if (m->op[j].kind != EM_VIEW) {
                    r2[m->op[j].in]++;
                    if (m->op[j].in2 >= 0)
                        r2[m->op[j].in2]++;
                }
            s->refs[hold[k]]++;
            for (int j = a; j <= b; j++) {
                struct em_op *q = &m->op[j];
                if (q->kind == EM_VIEW)
                    continue;
                em_alloc(s, m->bytes[q->out]);
                s->refs[q->out] = 1;
                em_alloc(s, q->extra);
                if (q->saves_in)
                    s->refs[q->in]++;
                if (q->saves_out)
                    s->refs[q->out]++;
                if (--r2[q->in] == 0)
                    em_drop(m, s, q->in);
                if (q->in2 >= 0 && --r2[q->in2] == 0)
                    em_drop(m, s, q->in2);
            }
            em_drop(m, s, m->op[b].out); /* the segment's output: read by no one now */
        }
        int g = gown[o->out];
        if (g >= 0) {
            int ins[2] = {o->in, o->in2};
            for (int w = 0; w < 2; w++) {
                int t = ins[w];
                if (t < 0 || !rg[t])
                    continue;
                int c; /* the contribution's buffer */
                if (o->kind == EM_ADD || o->kind == EM_VIEW) {
                    c = g;
                    gref[g]++;
                } else {
                    c = t;
                    em_alloc(s, m->bytes[t]);
                    gref[c] = 1;
                }
                if (gown[t] < 0) {
                    gown[t] = c;
                } else if (gref[gown[t]] == 1 || gref[c] == 1) { /* summed in place */
                    int keepb = gref[gown[t]] == 1 ? gown[t] : c, other = keepb == c ? gown[t] : c;
                    if (--gref[other] == 0)
                        s->live -= gbytes[other];
                    gown[t] = keepb;
                } else { /* both shared: a new sum */
                    em_alloc(s, m->bytes[t]);
                    gref[gown[t]]--;
                    gref[c]--;
                    gown[t] = t;
                    gref[t] = 1;
                }
            }
            if (--gref[g] == 0)
                s->live -= gbytes[g];
            gown[o->out] = -1;
        }
        if (o->kind != EM_VIEW) {
            if (o->saves_in)
                em_drop(m, s, o->in);
            if (o->saves_out)
                em_drop(m, s, o->out);
            s->live -= o->extra;
        }
        if (k >= 0 && (i == 0 || seg[i - 1] != k))
            em_drop(m, s, hold[k]);
    }
    int64_t p = s->peak;
    free(m);
    free(s);
    return p;
}

#endif
