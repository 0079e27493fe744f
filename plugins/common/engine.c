/*
 * The step engine (see engine.h): the tape, reference-counted activations,
 * forward, loss, backward with checkpoint recomputation, and the step
 * drivers every strategy uses.
 */
#include "engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"

/* ------------------------------------------------------------ the tape -- */

enum eop {
    EOP_LINEAR,
    EOP_RELU,
    EOP_GELU,
    EOP_CONV2D,
    EOP_MAXPOOL,
    EOP_BATCHNORM,
    EOP_LAYERNORM,
    EOP_FLATTEN,
    EOP_ADD,
    EOP_ATTN /* the attention core: qkv -> heads, saving qkv and the probabilities */
};

struct oomb_engine_node {
    enum eop op;
    const struct oomb_layer *L; /* the layer (attention's three nodes: the attention layer) */
    int top;                    /* top-level layer index */
    int in, in2, out;           /* value ids; in2: the add's skip input, else -1 */
    int64_t poff, np;           /* its parameters: element offset in the net's, count */
    int64_t boff;               /* its buffers' element offset */
    int64_t rows, C, OC;        /* linear: rows per sample, inputs and outputs per row */
    int bias;                   /* linear: has a bias after W */
    unsigned saves;             /* OOMB_SAVES_* */
    char name[32];              /* "layer 3.1" for messages */
};

/* The tape under construction and the per-sample elements of each value
 * (value 0 is the input). */
struct tape_build {
    struct oomb_engine *e;
    int64_t *feat;
};

static int count_nodes(const struct oomb_layer *L)
{
    switch (L->kind) {
    case OOMB_LAYER_ATTENTION:
        return 3;
    case OOMB_LAYER_RESIDUAL: {
        int n = 1;
        for (int j = 0; j < L->n_body; j++)
            n += count_nodes(L->body[j]);
        return n;
    }
    default:
        return 1;
    }
}

static struct oomb_engine_node *new_node(struct tape_build *t, enum eop op,
                                         const struct oomb_layer *L, int top, const char *name,
                                         int in, int64_t out_feat)
{
    struct oomb_engine *e = t->e;
    struct oomb_engine_node *nd = &e->nodes[e->n_nodes++];
    memset(nd, 0, sizeof *nd);
    nd->op = op;
    nd->L = L;
    nd->top = top;
    nd->in = in;
    nd->in2 = -1;
    nd->poff = -1;
    nd->boff = -1;
    snprintf(nd->name, sizeof nd->name, "%s", name);
    if (op == EOP_FLATTEN || op == EOP_ADD)
        nd->saves = op == EOP_FLATTEN ? OOMB_SAVES_VIEW : 0;
    else if (op == EOP_ATTN)
        nd->saves = OOMB_SAVES_INPUT;
    else
        nd->saves = oomb_layer_kind_info(L->kind)->saves;
    nd->out = e->n_vals++;
    t->feat[nd->out] = out_feat;
    return nd;
}

static void set_linear(struct oomb_engine_node *nd, int64_t poff, int64_t rows, int64_t C,
                       int64_t OC, int bias)
{
    nd->poff = poff;
    nd->rows = rows;
    nd->C = C;
    nd->OC = OC;
    nd->bias = bias;
    nd->np = OC * C + (bias ? OC : 0);
}

/* Appends the nodes of layer L (parameters from element poff, buffers from
 * boff) reading value `in`; returns its output value. */
static int add_layer(struct tape_build *t, const struct oomb_layer *L, int top, const char *name,
                     int in, int64_t poff, int64_t boff)
{
    struct oomb_engine_node *nd;
    char sub[32];
    switch (L->kind) {
    case OOMB_LAYER_ATTENTION: {
        int64_t T = L->attrs[0], C = L->attrs[1];
        snprintf(sub, sizeof sub, "%s qkv", name);
        nd = new_node(t, EOP_LINEAR, L, top, sub, in, T * 3 * C);
        set_linear(nd, poff, T, C, 3 * C, 1);
        nd->saves = OOMB_SAVES_INPUT;
        snprintf(sub, sizeof sub, "%s core", name);
        nd = new_node(t, EOP_ATTN, L, top, sub, nd->out, T * C);
        snprintf(sub, sizeof sub, "%s out", name);
        nd = new_node(t, EOP_LINEAR, L, top, sub, nd->out, T * C);
        set_linear(nd, poff + 3 * C * C + 3 * C, T, C, C, 1);
        nd->saves = OOMB_SAVES_INPUT;
        return nd->out;
    }
    case OOMB_LAYER_RESIDUAL: {
        int cur = in;
        for (int j = 0; j < L->n_body; j++) {
            const struct oomb_layer *b = L->body[j];
            snprintf(sub, sizeof sub, "%s.%d", name, j);
            cur = add_layer(t, b, top, sub, cur, poff, boff);
            poff += b->n_params;
            boff += b->n_buffers;
        }
        nd = new_node(t, EOP_ADD, L, top, name, cur, L->out_features);
        nd->in2 = in;
        return nd->out;
    }
    default:
        break;
    }
    static const enum eop ops[] = {
        [OOMB_LAYER_LINEAR] = EOP_LINEAR,       [OOMB_LAYER_RELU] = EOP_RELU,
        [OOMB_LAYER_GELU] = EOP_GELU,           [OOMB_LAYER_CONV2D] = EOP_CONV2D,
        [OOMB_LAYER_MAXPOOL] = EOP_MAXPOOL,     [OOMB_LAYER_BATCHNORM] = EOP_BATCHNORM,
        [OOMB_LAYER_LAYERNORM] = EOP_LAYERNORM, [OOMB_LAYER_FLATTEN] = EOP_FLATTEN,
    };
    nd = new_node(t, ops[L->kind], L, top, name, in, L->out_features);
    if (L->n_params > 0) {
        nd->poff = poff;
        nd->np = L->n_params;
    }
    if (L->n_buffers > 0)
        nd->boff = boff;
    if (L->kind == OOMB_LAYER_LINEAR) {
        int64_t R, C, OC;
        oomb_linear_dims(L, &R, &C, &OC);
        set_linear(nd, poff, R, C, OC, L->has_bias);
    }
    return nd->out;
}

int64_t oomb_engine_slices(const struct oomb_policy *pol, int64_t B)
{
    if (pol->micro_batch > 0)
        return (B + pol->micro_batch - 1) / pol->micro_batch;
    return pol->slices > 1 ? (pol->slices < B ? pol->slices : B) : 1;
}

void oomb_engine_slice(const struct oomb_policy *pol, int64_t B, int64_t i, int64_t *first,
                       int64_t *count)
{
    if (pol->micro_batch > 0) {
        *first = i * pol->micro_batch;
        *count = B - *first < pol->micro_batch ? B - *first : pol->micro_batch;
        return;
    }
    int64_t parts = oomb_engine_slices(pol, B), extra = B % parts;
    *first = i * (B / parts) + (i < extra ? i : extra);
    *count = B / parts + (i < extra ? 1 : 0);
}

int *oomb_engine_segments(int L, int64_t segments, int *n)
{
    if (segments <= 0)
        segments = (int64_t)ceil(sqrt((double)L));
    if (segments > L)
        segments = L;
    int *first = calloc((size_t)segments + 1, sizeof *first);
    if (!first)
        return NULL;
    struct oomb_policy cut = {.slices = segments};
    for (int64_t i = 0; i < segments; i++) {
        int64_t f, count;
        oomb_engine_slice(&cut, L, i, &f, &count);
        first[i] = (int)f;
    }
    first[segments] = L;
    *n = (int)segments;
    return first;
}

int oomb_engine_init(struct oomb_engine *e, struct oomb_net *net, const struct oomb_policy *pol,
                     char *msg, size_t msg_len)
{
    const struct oomb_model *m = net->model;
    memset(e, 0, sizeof *e);
    e->net = net;
    e->h = net->h;
    e->model = m;
    if (pol)
        e->pol = *pol;
    if (e->pol.act_dtype != OOMB_F32 && e->pol.act_dtype != OOMB_F16) {
        oomb_msg(msg, msg_len, "activation dtype must be F32 or F16");
        return OOMB_ERR_INVALID;
    }
    if (e->pol.act_dtype == OOMB_F16 && !e->pol.w16) {
        oomb_msg(msg, msg_len, "F16 activations need the F16 weights (policy.w16)");
        return OOMB_ERR_INVALID;
    }
    if (e->pol.offload && e->pol.n_segments > 1) {
        oomb_msg(msg, msg_len, "activation offload and checkpoint segments do not combine");
        return OOMB_ERR_INVALID;
    }
    if (e->pol.offload && (!OOMB_HAS(e->h, copy_async) || (int)e->pol.offload_space <= 0 ||
                           e->pol.offload_space >= OOMB_SPACE_COUNT)) {
        oomb_msg(msg, msg_len, "activation offload needs a host space and host->copy_async");
        return OOMB_ERR_INVALID;
    }
    if (e->pol.n_segments > 1) {
        const int *f = e->pol.seg_first;
        int ok = f && f[0] == 0 && f[e->pol.n_segments] == m->n_layers;
        for (int s = 0; ok && s < e->pol.n_segments; s++)
            ok = f[s] < f[s + 1];
        if (!ok) {
            oomb_msg(msg, msg_len, "checkpoint segments do not cut layers 0..%d in order",
                     m->n_layers - 1);
            return OOMB_ERR_INVALID;
        }
    }
    int nn = 0;
    for (int l = 0; l < m->n_layers; l++)
        nn += count_nodes(m->layers[l]);
    struct tape_build t = {e, NULL};
    e->nodes = calloc((size_t)nn, sizeof *e->nodes);
    t.feat = calloc((size_t)nn + 1, sizeof *t.feat);
    if (!e->nodes || !t.feat) {
        free(t.feat);
        oomb_engine_free(e);
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    e->n_vals = 1;
    t.feat[0] = m->input_features;
    int cur = 0;
    for (int l = 0; l < m->n_layers; l++) {
        char name[32];
        snprintf(name, sizeof name, "layer %d", l);
        cur = add_layer(&t, m->layers[l], l, name, cur, net->offset ? net->offset[l] : 0,
                        net->buf_offset ? net->buf_offset[l] : 0);
    }
    e->feat = t.feat;
    const struct oomb_ops *ops = e->h->ops;
    e->pool_idx = OOMB_HAS(ops, maxpool_forward_idx) && OOMB_HAS(ops, maxpool_backward_idx);
    /* Where the eager model differs on purpose, the results say by how much:
     * max pooling keeps int32 positions where PyTorch keeps int64 indices. */
    int64_t idx = 0;
    for (int n = 0; n < e->n_nodes; n++)
        if (e->nodes[n].op == EOP_MAXPOOL)
            idx += 4 * e->nodes[n].L->out_features;
    if (idx > 0 && net->grads && e->pool_idx)
        e->h->report_metric(e->h->run, "pool_index_bytes_per_sample", (double)idx);
    return OOMB_OK;
}

void oomb_engine_free(struct oomb_engine *e)
{
    if (e->h && e->ws)
        e->h->free(e->h->run, e->ws);
    free(e->nodes);
    free(e->feat);
    memset(e, 0, sizeof *e);
}

/* ------------------------------------------------- reference counting -- */

/* A device buffer shared like a tensor's storage; `ext`: the caller's
 * memory, never freed here. Offload (policy.offload): `host` holds its copy
 * in host memory; `p` is NULL while it lives only there; `ev` is the copy
 * in flight (to the host, or back while prefetched). */
struct ebuf {
    void *p;
    int refs;
    int ext;
    size_t bytes; /* 0: not known (never offloaded) */
    void *host;
    struct oomb_copy_event *ev;
    int node; /* offload: the node during whose forward the copy started */
};

struct pass {
    struct oomb_engine *e;
    int64_t B;
    enum oomb_fwd_mode fwd;
    int train;
    size_t dsz;                             /* bytes per activation element */
    struct ebuf **data;                     /* (n_vals) the forward holder of each value */
    struct ebuf **grad;                     /* (n_vals) its gradient */
    int *left;                              /* (n_vals) forward reads still to come */
    unsigned char *rg;                      /* (n_vals) requires grad */
    unsigned char *rec;                     /* (n_nodes) has a backward node */
    struct ebuf **sv_in, **sv_out, **extra; /* (n_nodes) saved for backward */
    struct ebuf **hold;    /* (n_segments) checkpoint's hold on a segment's input */
    int *seg;              /* (n_nodes) segment of each node, -1 when not checkpointed */
    unsigned char *redone; /* (n_segments) recomputed in this backward */
    int offload;           /* this pass offloads saved tensors (train forward) */
    struct ebuf **moving;  /* (n_vals + n_nodes) offloads whose device memory is still held */
    int n_moving;
};

static const int64_t *val_feat(const struct oomb_engine *e)
{
    return e->feat;
}

/* A holder for memory allocated elsewhere: `ext` memory is the caller's and
 * never freed here, else it is freed with the last reference. */
static int ebuf_wrap(void *mem, int ext, struct ebuf **out, char *msg, size_t msg_len)
{
    struct ebuf *b = calloc(1, sizeof *b);
    if (!b) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    b->p = mem;
    b->refs = 1;
    b->ext = ext;
    *out = b;
    return OOMB_OK;
}

/* A new device buffer (host->alloc) with one reference. */
static int ebuf_new(struct pass *p, size_t bytes, enum oomb_tag tag, const char *label,
                    struct ebuf **out, char *msg, size_t msg_len)
{
    const struct oomb_host *h = p->e->h;
    void *mem;
    int rc = oomb_net_alloc(h, bytes, tag, label, &mem, msg, msg_len);
    if (rc == OOMB_OK && (rc = ebuf_wrap(mem, 0, out, msg, msg_len)))
        h->free(h->run, mem);
    if (rc == OOMB_OK)
        (*out)->bytes = bytes;
    return rc;
}

static struct ebuf *ebuf_ref(struct ebuf *b)
{
    if (b)
        b->refs++;
    return b;
}

static void ebuf_unref(struct pass *p, struct ebuf **slot)
{
    struct ebuf *b = *slot;
    *slot = NULL;
    if (!b || --b->refs > 0)
        return;
    const struct oomb_host *h = p->e->h;
    if (b->ev) { /* a copy still reads or writes it */
        h->event_sync(h->run, b->ev);
        h->event_free(h->run, b->ev);
    }
    if (!b->ext)
        h->free(h->run, b->p);
    h->free(h->run, b->host);
    free(b);
}

static void pass_free(struct pass *p)
{
    struct oomb_engine *e = p->e;
    for (int v = 0; p->data && v < e->n_vals; v++) {
        ebuf_unref(p, &p->data[v]);
        ebuf_unref(p, &p->grad[v]);
    }
    for (int n = 0; p->sv_in && n < e->n_nodes; n++) {
        ebuf_unref(p, &p->sv_in[n]);
        ebuf_unref(p, &p->sv_out[n]);
        ebuf_unref(p, &p->extra[n]);
    }
    for (int s = 0; p->hold && s < e->pol.n_segments; s++)
        ebuf_unref(p, &p->hold[s]);
    free(p->data);
    free(p->grad);
    free(p->left);
    free(p->rg);
    free(p->rec);
    free(p->sv_in);
    free(p->sv_out);
    free(p->extra);
    free(p->hold);
    free(p->seg);
    free(p->redone);
    for (int i = 0; i < p->n_moving; i++)
        ebuf_unref(p, &p->moving[i]);
    free(p->moving);
}

static int pass_init(struct pass *p, struct oomb_engine *e, int64_t B, enum oomb_fwd_mode fwd,
                     int train, char *msg, size_t msg_len)
{
    memset(p, 0, sizeof *p);
    p->e = e;
    p->B = B;
    p->fwd = fwd;
    p->train = train;
    p->dsz = e->pol.act_dtype == OOMB_F16 ? 2 : 4;
    size_t nv = (size_t)e->n_vals, nn = (size_t)e->n_nodes;
    size_t ns = e->pol.n_segments > 1 ? (size_t)e->pol.n_segments : 1;
    p->data = calloc(nv, sizeof *p->data);
    p->grad = calloc(nv, sizeof *p->grad);
    p->left = calloc(nv, sizeof *p->left);
    p->rg = calloc(nv, 1);
    p->rec = calloc(nn, 1);
    p->sv_in = calloc(nn, sizeof *p->sv_in);
    p->sv_out = calloc(nn, sizeof *p->sv_out);
    p->extra = calloc(nn, sizeof *p->extra);
    p->hold = calloc(ns, sizeof *p->hold);
    p->seg = calloc(nn, sizeof *p->seg);
    p->redone = calloc(ns, 1);
    p->offload = train && fwd == OOMB_FWD_TRAIN && e->pol.offload;
    p->moving = p->offload ? calloc(nv + nn, sizeof *p->moving) : NULL;
    if (!p->data || !p->grad || !p->left || !p->rg || !p->rec || !p->sv_in || !p->sv_out ||
        !p->extra || !p->hold || !p->seg || !p->redone || (p->offload && !p->moving)) {
        pass_free(p);
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    for (int n = 0; n < e->n_nodes; n++) {
        const struct oomb_engine_node *nd = &e->nodes[n];
        p->left[nd->in]++;
        if (nd->in2 >= 0)
            p->left[nd->in2]++;
        p->seg[n] = -1;
        if (train && e->pol.n_segments > 1)
            for (int s = 0; s < e->pol.n_segments - 1; s++)
                if (nd->top >= e->pol.seg_first[s] && nd->top < e->pol.seg_first[s + 1])
                    p->seg[n] = s;
    }
    p->left[e->n_vals - 1]++; /* the logits: read by the loss */
    return OOMB_OK;
}

/* --------------------------------------------------------- node kernels -- */

static int op_err(struct oomb_engine *e, int rc, const struct oomb_engine_node *nd,
                  const char *what, char *msg, size_t msg_len)
{
    if (rc == OOMB_OK)
        return OOMB_OK;
    const struct oomb_ops *o = e->h->ops;
    oomb_msg(msg, msg_len, "%s (%s) %s: %s", nd ? nd->name : "loss",
             nd ? (nd->op == EOP_ADD ? "add" : oomb_layer_kind_name(nd->L->kind)) : "cross-entropy",
             what, o->last_error(o->ctx));
    return rc;
}

/* The engine's workspace, grown to at least `bytes`. */
static int get_ws(struct oomb_engine *e, size_t bytes, void **out, char *msg, size_t msg_len)
{
    if (bytes > e->ws_bytes) {
        e->h->free(e->h->run, e->ws);
        e->ws = NULL;
        e->ws_bytes = 0;
        int rc = oomb_net_alloc(e->h, bytes, OOMB_TAG_WORKSPACE, "workspace", &e->ws, msg, msg_len);
        if (rc)
            return rc;
        e->ws_bytes = bytes;
    }
    *out = bytes ? e->ws : NULL;
    return OOMB_OK;
}

/* A convolution's geometry and the workspace its kernels need at batch B. */
static int conv_ws(struct oomb_engine *e, const struct oomb_engine_node *nd, int64_t B,
                   struct oomb_conv2d *cv, void **ws, size_t *need, char *msg, size_t msg_len)
{
    const struct oomb_ops *o = e->h->ops;
    oomb_layer_conv2d(nd->L, cv);
    int rc = op_err(e, o->conv2d_workspace(o->ctx, cv, B, need), nd, "workspace", msg, msg_len);
    return rc ? rc : get_ws(e, *need, ws, msg, msg_len);
}

/* The workspace the attention kernels need at batch B. */
static int attn_ws(struct oomb_engine *e, const struct oomb_engine_node *nd, int64_t B, void **ws,
                   size_t *need, char *msg, size_t msg_len)
{
    const struct oomb_ops *o = e->h->ops;
    const int64_t *a = nd->L->attrs;
    int rc = op_err(e, o->attention_workspace(o->ctx, B, a[0], a[1], a[2], need), nd, "workspace",
                    msg, msg_len);
    return rc ? rc : get_ws(e, *need, ws, msg, msg_len);
}

/* 4-byte elements a node keeps for backward besides its input and output
 * (FP32 statistics and probabilities, int32 pooling indices); in an eval
 * forward, what its kernel needs written anyway. */
static int64_t extra_floats(const struct oomb_engine *e, const struct oomb_engine_node *nd,
                            int64_t B, enum oomb_fwd_mode fwd)
{
    const struct oomb_layer *L = nd->L;
    switch (nd->op) {
    case EOP_MAXPOOL: /* the maxima's positions, when the backend can keep them */
        return fwd == OOMB_FWD_EVAL || !e->pool_idx ? 0 : B * L->out_features;
    case EOP_BATCHNORM:
        return fwd == OOMB_FWD_EVAL ? 0 : 2 * L->attrs[0]; /* save_mean, save_invstd */
    case EOP_LAYERNORM:
        return 2 * B * L->attrs[0]; /* mean, rstd per row */
    case EOP_ATTN:
        return B * L->attrs[2] * L->attrs[0] * L->attrs[0]; /* softmax probabilities */
    default:
        return 0;
    }
}

/* Parameters of a node in FP32: the net's, or (inference in F16, no FP32
 * copy) its F16 ones cast into *tmp (tag workspace; the caller frees it). */
static int node_w32(struct oomb_engine *e, const struct oomb_engine_node *nd, int64_t off,
                    int64_t n, float **w, float **tmp, char *msg, size_t msg_len)
{
    *tmp = NULL;
    *w = NULL;
    if (nd->poff < 0 || n == 0)
        return OOMB_OK;
    if (e->net->params) {
        *w = e->net->params + nd->poff + off;
        return OOMB_OK;
    }
    if (!e->pol.w16) {
        oomb_msg(msg, msg_len, "%s has parameters and this strategy keeps none for it", nd->name);
        return OOMB_ERR_NOT_APPLICABLE;
    }
    const struct oomb_ops *o = e->h->ops;
    int rc = oomb_net_alloc(e->h, (size_t)n * 4, OOMB_TAG_WORKSPACE, "parameters f32", (void **)tmp,
                            msg, msg_len);
    if (rc == OOMB_OK)
        rc = op_err(e, o->cast(o->ctx, *tmp, OOMB_F32, e->pol.w16 + nd->poff + off, OOMB_F16, n),
                    nd, "cast parameters", msg, msg_len);
    *w = *tmp;
    return rc;
}

/* Forward of one node in FP32. extra: what extra_floats() counts. */
static int fwd32(struct oomb_engine *e, const struct oomb_engine_node *nd, int64_t B,
                 enum oomb_fwd_mode fwd, float *out, const float *in, const float *in2,
                 float *extra, char *msg, size_t msg_len)
{
    const struct oomb_ops *o = e->h->ops;
    void *k = o->ctx;
    const struct oomb_layer *L = nd->L;
    int64_t cnt = B * val_feat(e)[nd->out];
    float *w = NULL, *wtmp = NULL;
    void *ws = NULL;
    size_t need = 0;
    const int hooked = nd->op == EOP_LINEAR && e->pol.linear && L->kind == OOMB_LAYER_LINEAR;
    int rc = hooked ? OOMB_OK : node_w32(e, nd, 0, nd->np, &w, &wtmp, msg, msg_len);
    if (rc)
        return rc;
    switch (nd->op) {
    case EOP_LINEAR:
        if (hooked)
            rc = e->pol.linear(e->pol.linear_user, nd->top, out, in, B * nd->rows, msg, msg_len);
        else if (!w)
            rc = op_err(e, OOMB_ERR_NOT_APPLICABLE, nd, "forward", msg, msg_len);
        else
            rc = op_err(e,
                        o->linear_forward(k, OOMB_F32, out, in, w,
                                          nd->bias ? w + nd->OC * nd->C : NULL, B * nd->rows, nd->C,
                                          nd->OC),
                        nd, "forward", msg, msg_len);
        break;
    case EOP_RELU:
        rc = op_err(e, o->relu_forward(k, OOMB_F32, out, in, cnt), nd, "forward", msg, msg_len);
        break;
    case EOP_GELU:
        rc = op_err(e, o->gelu_forward(k, OOMB_F32, out, in, cnt), nd, "forward", msg, msg_len);
        break;
    case EOP_CONV2D: {
        struct oomb_conv2d cv;
        if ((rc = conv_ws(e, nd, B, &cv, &ws, &need, msg, msg_len)))
            break;
        rc = op_err(e,
                    o->conv2d_forward(k, out, in, w,
                                      L->has_bias ? w + cv.OC * cv.C * cv.K * cv.K : NULL, &cv, B,
                                      ws, need),
                    nd, "forward", msg, msg_len);
        break;
    }
    case EOP_MAXPOOL: {
        struct oomb_pool2d pd;
        oomb_layer_pool2d(L, &pd);
        rc = op_err(e,
                    extra ? o->maxpool_forward_idx(k, out, (int32_t *)extra, in, &pd, B)
                          : o->maxpool_forward(k, out, in, &pd, B),
                    nd, "forward", msg, msg_len);
        break;
    }
    case EOP_BATCHNORM: {
        int64_t C = L->attrs[0], S = L->attrs[1];
        float *buf = e->net->bufs ? e->net->bufs + nd->boff : NULL;
        if (fwd == OOMB_FWD_EVAL)
            rc = o->batchnorm_forward(k, out, NULL, NULL, buf, buf ? buf + C : NULL, in, w, w + C,
                                      B, C, S, 0, 0.1f, 1e-5f);
        else
            rc = o->batchnorm_forward(k, out, extra, extra + C, fwd == OOMB_FWD_TRAIN ? buf : NULL,
                                      fwd == OOMB_FWD_TRAIN && buf ? buf + C : NULL, in, w, w + C,
                                      B, C, S, 1, 0.1f, 1e-5f);
        rc = op_err(e, rc, nd, "forward", msg, msg_len);
        break;
    }
    case EOP_LAYERNORM: {
        int64_t T = L->attrs[0], C = L->attrs[1];
        rc = op_err(
            e, o->layernorm_forward(k, out, extra, extra + B * T, in, w, w + C, B * T, C, 1e-5f),
            nd, "forward", msg, msg_len);
        break;
    }
    case EOP_ADD:
        rc = op_err(e, o->add(k, out, in, in2, cnt), nd, "forward", msg, msg_len);
        break;
    case EOP_ATTN: {
        int64_t T = L->attrs[0], C = L->attrs[1], H = L->attrs[2];
        if ((rc = attn_ws(e, nd, B, &ws, &need, msg, msg_len)))
            break;
        rc = op_err(e,
                    o->attention_forward(k, out, extra, in, B, T, C, H, L->attrs[3] != 0, ws, need),
                    nd, "forward", msg, msg_len);
        break;
    }
    case EOP_FLATTEN:
        break; /* a view: the caller shares the input */
    }
    e->h->free(e->h->run, wtmp);
    return rc;
}

/* Backward of one node in FP32: din (NULL: not needed) overwritten,
 * parameter gradients accumulate. `in`/`out`/`extra`: what it saved. */
static int bwd32(struct oomb_engine *e, const struct oomb_engine_node *nd, int64_t B, float *din,
                 const float *dout, const float *in, const float *out, const float *extra,
                 char *msg, size_t msg_len)
{
    const struct oomb_host *h = e->h;
    const struct oomb_ops *o = h->ops;
    void *k = o->ctx;
    const struct oomb_layer *L = nd->L;
    int64_t cnt = B * val_feat(e)[nd->out];
    float *w = e->net->params && nd->poff >= 0 ? e->net->params + nd->poff : NULL;
    float *dw = e->net->grads && nd->poff >= 0 ? e->net->grads + nd->poff : NULL;
    float *scratch = NULL;
    void *ws = NULL;
    size_t need = 0;
    int rc = OOMB_OK;
    if (!din && (nd->op == EOP_BATCHNORM || nd->op == EOP_LAYERNORM || nd->op == EOP_ATTN)) {
        /* these kernels always write an input gradient */
        if ((rc = oomb_net_alloc(h, (size_t)(B * val_feat(e)[nd->in]) * 4, OOMB_TAG_ACTIVATIONS,
                                 "dinput", (void **)&scratch, msg, msg_len)))
            return rc;
        din = scratch;
    }
    switch (nd->op) {
    case EOP_LINEAR:
        rc = o->linear_backward(k, OOMB_F32, din, dw, dw && nd->bias ? dw + nd->OC * nd->C : NULL,
                                dout, in, w, B * nd->rows, nd->C, nd->OC);
        break;
    case EOP_RELU: /* from the saved output: out > 0 exactly where in > 0 */
        rc = din ? o->relu_backward(k, OOMB_F32, din, dout, out, cnt) : OOMB_OK;
        break;
    case EOP_GELU:
        rc = din ? o->gelu_backward(k, OOMB_F32, din, dout, in, cnt) : OOMB_OK;
        break;
    case EOP_CONV2D: {
        struct oomb_conv2d cv;
        if ((rc = conv_ws(e, nd, B, &cv, &ws, &need, msg, msg_len)))
            goto done;
        rc = o->conv2d_backward(k, din, dw,
                                dw && L->has_bias ? dw + cv.OC * cv.C * cv.K * cv.K : NULL, dout,
                                in, w, &cv, B, ws, need);
        break;
    }
    case EOP_MAXPOOL: {
        struct oomb_pool2d pd;
        oomb_layer_pool2d(L, &pd);
        if (din)
            rc = extra ? o->maxpool_backward_idx(k, din, dout, (const int32_t *)extra, &pd, B)
                       : o->maxpool_backward(k, din, dout, in, &pd, B);
        break;
    }
    case EOP_BATCHNORM: {
        int64_t C = L->attrs[0], S = L->attrs[1];
        rc = o->batchnorm_backward(k, din, dw, dw ? dw + C : NULL, dout, in, extra, extra + C, w, B,
                                   C, S);
        break;
    }
    case EOP_LAYERNORM: {
        int64_t T = L->attrs[0], C = L->attrs[1];
        rc = o->layernorm_backward(k, din, dw, dw ? dw + C : NULL, dout, in, extra, extra + B * T,
                                   w, B * T, C);
        break;
    }
    case EOP_ATTN: {
        int64_t T = L->attrs[0], C = L->attrs[1], H = L->attrs[2];
        if ((rc = attn_ws(e, nd, B, &ws, &need, msg, msg_len)))
            goto done;
        rc = o->attention_backward(k, din, dout, in, extra, B, T, C, H, L->attrs[3] != 0, ws, need);
        break;
    }
    case EOP_FLATTEN:
    case EOP_ADD:
        break; /* gradients pass through: the engine shares them */
    }
    rc = op_err(e, rc, nd, "backward", msg, msg_len);
done:
    h->free(h->run, scratch);
    return rc;
}

/* ----------------------------------------------------- dtype handling -- */

static int cast_to(struct oomb_engine *e, void *dst, enum oomb_dtype dd, const void *src,
                   enum oomb_dtype sd, int64_t n, const struct oomb_engine_node *nd, char *msg,
                   size_t msg_len)
{
    const struct oomb_ops *o = e->h->ops;
    return op_err(e, o->cast(o->ctx, dst, dd, src, sd, n), nd, "cast", msg, msg_len);
}

/* An FP32 view of an activation: itself in F32 mode, else a new FP32 copy
 * in *tmp (the caller frees it; tag workspace for the conversions a native
 * F16 kernel would not need). */
static int to_f32(struct pass *p, const struct oomb_engine_node *nd, const void *v, int64_t n,
                  enum oomb_tag tag, const char *label, const float **out, float **tmp, char *msg,
                  size_t msg_len)
{
    struct oomb_engine *e = p->e;
    *tmp = NULL;
    if (!v || p->dsz == 4) {
        *out = v;
        return OOMB_OK;
    }
    int rc = oomb_net_alloc(e->h, (size_t)n * 4, tag, label, (void **)tmp, msg, msg_len);
    if (rc == OOMB_OK)
        rc = cast_to(e, *tmp, OOMB_F32, v, OOMB_F16, n, nd, msg, msg_len);
    *out = *tmp;
    return rc;
}

static int as_f32(struct pass *p, const struct oomb_engine_node *nd, const void *v, int64_t n,
                  const float **out, float **tmp, char *msg, size_t msg_len)
{
    return to_f32(p, nd, v, n, OOMB_TAG_WORKSPACE, "f32 staging", out, tmp, msg, msg_len);
}

/* An FP32 buffer for a result that goes to `dst` in the activation dtype:
 * dst itself in F32 mode, else a staging buffer (tag workspace). */
static int out_f32(struct pass *p, void *dst, int64_t n, float **out, float **tmp, char *msg,
                   size_t msg_len)
{
    *tmp = NULL;
    if (!dst || p->dsz == 4) {
        *out = dst;
        return OOMB_OK;
    }
    int rc = oomb_net_alloc(p->e->h, (size_t)n * 4, OOMB_TAG_WORKSPACE, "f32 staging", (void **)tmp,
                            msg, msg_len);
    *out = *tmp;
    return rc;
}

static int native_f16(const struct oomb_engine *e, const struct oomb_engine_node *nd)
{
    if (nd->op == EOP_RELU || nd->op == EOP_GELU)
        return 1;
    return nd->op == EOP_LINEAR && !(e->pol.linear && nd->L->kind == OOMB_LAYER_LINEAR);
}

/* The FP32 bias of a linear node for the F16 kernels. */
static int bias32(struct oomb_engine *e, const struct oomb_engine_node *nd, const float **b,
                  float **tmp, char *msg, size_t msg_len)
{
    float *w;
    *b = NULL;
    *tmp = NULL;
    if (!nd->bias)
        return OOMB_OK;
    int rc = node_w32(e, nd, nd->OC * nd->C, nd->OC, &w, tmp, msg, msg_len);
    *b = w;
    return rc;
}

/* Forward of node nd into out (activation dtype) from in/in2. */
static int node_fwd_kernel(struct pass *p, const struct oomb_engine_node *nd, void *out,
                           const void *in, const void *in2, float *extra, char *msg, size_t msg_len)
{
    struct oomb_engine *e = p->e;
    const struct oomb_ops *o = e->h->ops;
    const int64_t B = p->B, nin = B * val_feat(e)[nd->in], nout = B * val_feat(e)[nd->out];
    int rc;
    if (p->dsz == 4)
        return fwd32(e, nd, B, p->fwd, out, in, in2, extra, msg, msg_len);
    if (native_f16(e, nd)) {
        if (nd->op == EOP_RELU)
            return op_err(e, o->relu_forward(o->ctx, OOMB_F16, out, in, nout), nd, "forward", msg,
                          msg_len);
        if (nd->op == EOP_GELU)
            return op_err(e, o->gelu_forward(o->ctx, OOMB_F16, out, in, nout), nd, "forward", msg,
                          msg_len);
        const float *b;
        float *btmp;
        if ((rc = bias32(e, nd, &b, &btmp, msg, msg_len)) == OOMB_OK)
            rc = op_err(e,
                        o->linear_forward(o->ctx, OOMB_F16, out, in, e->pol.w16 + nd->poff, b,
                                          B * nd->rows, nd->C, nd->OC),
                        nd, "forward", msg, msg_len);
        e->h->free(e->h->run, btmp);
        return rc;
    }
    /* FP32 compute between F16 storage (norms, softmax, and the kinds
     * without F16 kernels) */
    const float *i32 = NULL, *j32 = NULL;
    float *t1 = NULL, *t2 = NULL, *t3 = NULL, *o32 = NULL;
    if ((rc = as_f32(p, nd, in, nin, &i32, &t1, msg, msg_len)) == OOMB_OK &&
        (rc = as_f32(p, nd, in2, nout, &j32, &t2, msg, msg_len)) == OOMB_OK &&
        (rc = out_f32(p, out, nout, &o32, &t3, msg, msg_len)) == OOMB_OK &&
        (rc = fwd32(e, nd, B, p->fwd, o32, i32, j32, extra, msg, msg_len)) == OOMB_OK)
        rc = cast_to(e, out, OOMB_F16, o32, OOMB_F32, nout, nd, msg, msg_len);
    e->h->free(e->h->run, t1);
    e->h->free(e->h->run, t2);
    e->h->free(e->h->run, t3);
    return rc;
}

/* Backward of node nd: din (activation dtype, NULL: not needed). */
static int node_bwd_kernel(struct pass *p, const struct oomb_engine_node *nd, void *din,
                           const void *dout, const void *in, const void *out, const float *extra,
                           char *msg, size_t msg_len)
{
    struct oomb_engine *e = p->e;
    const struct oomb_ops *o = e->h->ops;
    const int64_t B = p->B, nin = B * val_feat(e)[nd->in], nout = B * val_feat(e)[nd->out];
    int rc;
    if (p->dsz == 4)
        return bwd32(e, nd, B, din, dout, in, out, extra, msg, msg_len);
    if (native_f16(e, nd)) {
        float *dw = e->net->grads + nd->poff;
        switch (nd->op) {
        case EOP_RELU:
            rc = din ? o->relu_backward(o->ctx, OOMB_F16, din, dout, out, nout) : OOMB_OK;
            break;
        case EOP_GELU:
            rc = din ? o->gelu_backward(o->ctx, OOMB_F16, din, dout, in, nout) : OOMB_OK;
            break;
        default:
            rc =
                o->linear_backward(o->ctx, OOMB_F16, din, dw, nd->bias ? dw + nd->OC * nd->C : NULL,
                                   dout, in, e->pol.w16 + nd->poff, B * nd->rows, nd->C, nd->OC);
            break;
        }
        return op_err(e, rc, nd, "backward", msg, msg_len);
    }
    const float *i32 = NULL, *d32 = NULL;
    float *t1 = NULL, *t2 = NULL, *t3 = NULL, *g32 = NULL;
    if (nd->op == EOP_MAXPOOL && extra)
        in = NULL; /* routed by the saved indices */
    if ((rc = as_f32(p, nd, in, nin, &i32, &t1, msg, msg_len)) == OOMB_OK &&
        (rc = as_f32(p, nd, dout, nout, &d32, &t2, msg, msg_len)) == OOMB_OK &&
        (rc = out_f32(p, din, nin, &g32, &t3, msg, msg_len)) == OOMB_OK &&
        (rc = bwd32(e, nd, B, g32, d32, i32, NULL, extra, msg, msg_len)) == OOMB_OK && din)
        rc = cast_to(e, din, OOMB_F16, g32, OOMB_F32, nin, nd, msg, msg_len);
    e->h->free(e->h->run, t1);
    e->h->free(e->h->run, t2);
    e->h->free(e->h->run, t3);
    return rc;
}

/* --------------------------------------------------------------- offload -- */

/* Starts moving saved buffer b to the host during node n's forward: a host
 * copy, the device memory kept (p->moving) until offload_settle. */
static int offload_start(struct pass *p, struct ebuf *b, int n, char *msg, size_t msg_len)
{
    struct oomb_engine *e = p->e;
    const struct oomb_host *h = e->h;
    if (!p->offload || !b || b->ext || b->host || b->bytes < e->pol.offload_min_bytes ||
        b->bytes == 0)
        return OOMB_OK;
    int rc = h->alloc(h->run, e->pol.offload_space, b->bytes, OOMB_TAG_ACTIVATIONS,
                      "offloaded activation", &b->host);
    if (rc != OOMB_OK) {
        oomb_msg(msg, msg_len, "host memory for an offloaded activation (%zu bytes): %s",
                 b->bytes, oomb_status_name(rc));
        b->host = NULL;
        return rc;
    }
    rc = h->copy_async(h->run, b->host, e->pol.offload_space, b->p, OOMB_SPACE_DEVICE, b->bytes,
                       &b->ev);
    if (rc != OOMB_OK) {
        oomb_msg(msg, msg_len, "copy of an activation to the host: %s", oomb_status_name(rc));
        h->free(h->run, b->host);
        b->host = NULL;
        return rc;
    }
    b->node = n;
    p->moving[p->n_moving++] = ebuf_ref(b);
    return OOMB_OK;
}

/* Frees the device memory of the buffers whose copy to the host started
 * before node `before` (all with INT32_MAX), once their copy is done. A
 * buffer nobody holds any more is just dropped. */
static int offload_settle(struct pass *p, int before, char *msg, size_t msg_len)
{
    const struct oomb_host *h = p->e->h;
    int kept = 0, rc = OOMB_OK;
    for (int i = 0; i < p->n_moving; i++) {
        struct ebuf *b = p->moving[i];
        if (b->node >= before) {
            p->moving[kept++] = b;
            continue;
        }
        if (b->refs > 1 && b->ev && rc == OOMB_OK) {
            rc = h->event_sync(h->run, b->ev);
            h->event_free(h->run, b->ev);
            b->ev = NULL;
            if (rc != OOMB_OK) {
                oomb_msg(msg, msg_len, "waiting for an activation's copy to the host: %s",
                         oomb_status_name(rc));
            } else {
                h->free(h->run, b->p);
                b->p = NULL;
            }
        }
        ebuf_unref(p, &b);
    }
    p->n_moving = kept;
    return rc;
}

/* Brings buffer b back to the device (a prefetch): new device memory and a
 * copy from the host, ordered before the kernels that wait for b->ev. */
static int offload_fetch(struct pass *p, struct ebuf *b, char *msg, size_t msg_len)
{
    struct oomb_engine *e = p->e;
    const struct oomb_host *h = e->h;
    if (!b || b->p)
        return OOMB_OK; /* resident (or never moved) */
    int rc = oomb_net_alloc(h, b->bytes, OOMB_TAG_ACTIVATIONS, "prefetched activation", &b->p,
                            msg, msg_len);
    if (rc != OOMB_OK)
        return rc;
    rc = h->copy_async(h->run, b->p, OOMB_SPACE_DEVICE, b->host, e->pol.offload_space, b->bytes,
                       &b->ev);
    if (rc != OOMB_OK)
        oomb_msg(msg, msg_len, "copy of an activation back to the device: %s",
                 oomb_status_name(rc));
    return rc;
}

/* Node n's saved tensors on the device, the kernels after this waiting for
 * their copies; then the prefetch of the next node backward will reach. */
static int offload_ready(struct pass *p, int n, char *msg, size_t msg_len)
{
    const struct oomb_host *h = p->e->h;
    struct ebuf *const mine[3] = {p->sv_in[n], p->sv_out[n], p->extra[n]};
    int rc = OOMB_OK;
    for (int i = 0; i < 3 && rc == OOMB_OK; i++) {
        struct ebuf *b = mine[i];
        if (!b)
            continue;
        if ((rc = offload_fetch(p, b, msg, msg_len)) == OOMB_OK && b->ev) {
            rc = h->event_wait(h->run, b->ev);
            if (rc != OOMB_OK)
                oomb_msg(msg, msg_len, "waiting for a prefetched activation: %s",
                         oomb_status_name(rc));
        }
    }
    for (int m = n - 1; m >= 0 && rc == OOMB_OK; m--) {
        if (!p->rec[m])
            continue;
        struct ebuf *const next[3] = {p->sv_in[m], p->sv_out[m], p->extra[m]};
        for (int i = 0; i < 3 && rc == OOMB_OK; i++)
            rc = offload_fetch(p, next[i], msg, msg_len);
        break;
    }
    return rc;
}

/* ------------------------------------------------------ forward/backward -- */

/* The forward read of value v is done: drop its holder when nothing reads
 * it any more (a node that saved it keeps its own reference, and under
 * offload the buffer starts its way to the host). */
static int consumed(struct pass *p, int v, int n, char *msg, size_t msg_len)
{
    if (--p->left[v] != 0)
        return OOMB_OK;
    int rc = OOMB_OK;
    if (p->data[v] && p->data[v]->refs > 1)
        rc = offload_start(p, p->data[v], n, msg, msg_len);
    ebuf_unref(p, &p->data[v]);
    return rc;
}

/* Forward of node n. keep: take the node's saved tensors for backward. */
static int node_forward(struct pass *p, int n, int keep, char *msg, size_t msg_len)
{
    struct oomb_engine *e = p->e;
    const struct oomb_engine_node *nd = &e->nodes[n];
    struct ebuf *in = p->data[nd->in], *in2 = nd->in2 >= 0 ? p->data[nd->in2] : NULL;
    struct ebuf *out = NULL, *extra = NULL;
    int rc = OOMB_OK;
    if (!in || (nd->in2 >= 0 && !in2)) {
        oomb_msg(msg, msg_len, "%s: its input is gone (engine bug)", nd->name);
        return OOMB_ERR_INTERNAL;
    }
    p->rec[n] = p->train && (nd->np > 0 || p->rg[nd->in] || (nd->in2 >= 0 && p->rg[nd->in2]));
    p->rg[nd->out] = p->rec[n];
    if (nd->op == EOP_FLATTEN) {
        out = ebuf_ref(in); /* a view */
    } else {
        size_t bytes = (size_t)(p->B * val_feat(e)[nd->out]) * p->dsz;
        if ((rc = ebuf_new(p, bytes, OOMB_TAG_ACTIVATIONS, "activation", &out, msg, msg_len)))
            return rc;
        int64_t ef = extra_floats(e, nd, p->B, p->fwd);
        static const char *const what[] = {[EOP_ATTN] = "attention probabilities",
                                           [EOP_MAXPOOL] = "pooling indices",
                                           [EOP_BATCHNORM] = "norm statistics",
                                           [EOP_LAYERNORM] = "norm statistics"};
        if (ef > 0 && (rc = ebuf_new(p, (size_t)ef * 4, OOMB_TAG_ACTIVATIONS, what[nd->op], &extra,
                                     msg, msg_len))) {
            ebuf_unref(p, &out);
            return rc;
        }
        if ((rc = node_fwd_kernel(p, nd, out->p, in->p, in2 ? in2->p : NULL,
                                  extra ? extra->p : NULL, msg, msg_len))) {
            ebuf_unref(p, &out);
            ebuf_unref(p, &extra);
            return rc;
        }
    }
    ebuf_unref(p, &p->data[nd->out]);
    p->data[nd->out] = out;
    if (keep && p->rec[n]) {
        if (nd->saves & OOMB_SAVES_INPUT)
            p->sv_in[n] = ebuf_ref(in);
        if (nd->saves & OOMB_SAVES_OUTPUT)
            p->sv_out[n] = ebuf_ref(out);
        p->extra[n] = extra;
        extra = NULL;
        if ((rc = offload_start(p, p->extra[n], n, msg, msg_len)))
            return rc;
    }
    ebuf_unref(p, &extra);
    if ((rc = consumed(p, nd->in, n, msg, msg_len)) ||
        (nd->in2 >= 0 && (rc = consumed(p, nd->in2, n, msg, msg_len))))
        return rc;
    /* the copies started during the node before have overlapped this one */
    return p->offload ? offload_settle(p, n, msg, msg_len) : OOMB_OK;
}

/* grad[v] += contribution c (the reference is taken over). */
static int accumulate(struct pass *p, int v, struct ebuf *c, const struct oomb_engine_node *nd,
                      char *msg, size_t msg_len)
{
    struct oomb_engine *e = p->e;
    struct ebuf **slot = &p->grad[v];
    if (!*slot) {
        *slot = c;
        return OOMB_OK;
    }
    const int64_t n = p->B * val_feat(e)[v];
    struct ebuf *dst = NULL;
    int rc = OOMB_OK;
    if ((*slot)->refs == 1) {
        dst = *slot; /* in place into the gradient nobody else holds */
    } else if (c->refs == 1) {
        dst = c;
    } else if ((rc = ebuf_new(p, (size_t)n * p->dsz, OOMB_TAG_ACTIVATIONS, "gradient sum", &dst,
                              msg, msg_len))) {
        ebuf_unref(p, &c);
        return rc;
    }
    const struct oomb_ops *o = e->h->ops;
    if (p->dsz == 4) {
        rc = op_err(e, o->add(o->ctx, dst->p, (*slot)->p, c->p, n), nd, "gradient sum", msg,
                    msg_len);
    } else {
        const float *a32, *b32;
        float *t1 = NULL, *t2 = NULL, *s32 = NULL;
        if ((rc = as_f32(p, nd, (*slot)->p, n, &a32, &t1, msg, msg_len)) == OOMB_OK &&
            (rc = as_f32(p, nd, c->p, n, &b32, &t2, msg, msg_len)) == OOMB_OK &&
            (rc = oomb_net_alloc(e->h, (size_t)n * 4, OOMB_TAG_WORKSPACE, "f32 staging",
                                 (void **)&s32, msg, msg_len)) == OOMB_OK &&
            (rc = op_err(e, o->add(o->ctx, s32, a32, b32, n), nd, "gradient sum", msg, msg_len)) ==
                OOMB_OK)
            rc = cast_to(e, dst->p, OOMB_F16, s32, OOMB_F32, n, nd, msg, msg_len);
        e->h->free(e->h->run, t1);
        e->h->free(e->h->run, t2);
        e->h->free(e->h->run, s32);
    }
    if (dst == *slot) {
        ebuf_unref(p, &c);
    } else {
        ebuf_unref(p, slot);
        if (dst != c)
            ebuf_unref(p, &c);
        *slot = dst;
    }
    return rc;
}

/* Non-reentrant checkpoint: the segment's nodes run forward again from the
 * input the checkpoint held, this time keeping what each saves. */
static int recompute(struct pass *p, int s, char *msg, size_t msg_len)
{
    struct oomb_engine *e = p->e;
    const struct oomb_host *h = e->h;
    int a = -1, b = -1;
    for (int n = 0; n < e->n_nodes; n++)
        if (p->seg[n] == s) {
            if (a < 0)
                a = n;
            b = n;
        }
    p->redone[s] = 1;
    if (a < 0)
        return OOMB_OK;
    /* reads inside the segment only */
    for (int n = a; n <= b; n++) {
        const struct oomb_engine_node *nd = &e->nodes[n];
        p->left[nd->in] = 0;
        if (nd->in2 >= 0)
            p->left[nd->in2] = 0;
    }
    for (int n = a; n <= b; n++) {
        p->left[e->nodes[n].in]++;
        if (e->nodes[n].in2 >= 0)
            p->left[e->nodes[n].in2]++;
    }
    const int vin = e->nodes[a].in;
    ebuf_unref(p, &p->data[vin]);
    p->data[vin] = ebuf_ref(p->hold[s]);
    enum oomb_fwd_mode saved_mode = p->fwd;
    p->fwd = OOMB_FWD_RECOMPUTE;
    h->phase(h->run, OOMB_PHASE_FORWARD);
    int rc = OOMB_OK;
    for (int n = a; n <= b && rc == OOMB_OK; n++)
        rc = node_forward(p, n, 1, msg, msg_len);
    h->phase(h->run, OOMB_PHASE_BACKWARD);
    p->fwd = saved_mode;
    ebuf_unref(p, &p->data[e->nodes[b].out]); /* the segment's output: read by no one now */
    return rc;
}

/* Backward of node n: the gradient of each input that requires one. */
static int node_backward(struct pass *p, int n, char *msg, size_t msg_len)
{
    struct oomb_engine *e = p->e;
    const struct oomb_engine_node *nd = &e->nodes[n];
    int rc = OOMB_OK;
    int s = p->seg[n];
    if (s >= 0 && !p->redone[s] && (rc = recompute(p, s, msg, msg_len)))
        return rc;
    if (p->offload && (rc = offload_ready(p, n, msg, msg_len)))
        return rc;
    struct ebuf *g = p->grad[nd->out];
    if (g) {
        if (nd->op == EOP_FLATTEN || nd->op == EOP_ADD) {
            if (p->rg[nd->in] && (rc = accumulate(p, nd->in, ebuf_ref(g), nd, msg, msg_len)))
                return rc;
            if (nd->in2 >= 0 && p->rg[nd->in2] &&
                (rc = accumulate(p, nd->in2, ebuf_ref(g), nd, msg, msg_len)))
                return rc;
        } else {
            struct ebuf *din = NULL;
            if (p->rg[nd->in] &&
                (rc = ebuf_new(p, (size_t)(p->B * val_feat(e)[nd->in]) * p->dsz,
                               OOMB_TAG_ACTIVATIONS, "activation gradient", &din, msg, msg_len)))
                return rc;
            struct ebuf *si = p->sv_in[n], *so = p->sv_out[n], *ex = p->extra[n];
            rc = node_bwd_kernel(p, nd, din ? din->p : NULL, g->p, si ? si->p : NULL,
                                 so ? so->p : NULL, ex ? ex->p : NULL, msg, msg_len);
            if (rc) {
                ebuf_unref(p, &din);
                return rc;
            }
            if (din && (rc = accumulate(p, nd->in, din, nd, msg, msg_len)))
                return rc;
        }
    }
    /* what this node held is released once its backward has run */
    ebuf_unref(p, &p->grad[nd->out]);
    ebuf_unref(p, &p->sv_in[n]);
    ebuf_unref(p, &p->sv_out[n]);
    ebuf_unref(p, &p->extra[n]);
    if (s >= 0 && (n == 0 || p->seg[n - 1] != s))
        ebuf_unref(p, &p->hold[s]); /* the segment's first node: the checkpoint is done */
    return OOMB_OK;
}

/* Forward of the whole tape from x; keep: training (saves, checkpoint). */
static int forward_all(struct pass *p, const void *x, int keep, char *msg, size_t msg_len)
{
    struct oomb_engine *e = p->e;
    int rc = ebuf_wrap((void *)x, 1, &p->data[0], msg, msg_len); /* the caller's */
    if (rc)
        return rc;
    for (int n = 0; n < e->n_nodes; n++) {
        int s = p->seg[n];
        if (s >= 0 && (n == 0 || p->seg[n - 1] != s))
            p->hold[s] = ebuf_ref(p->data[e->nodes[n].in]); /* checkpoint(fn, input) */
        if ((rc = node_forward(p, n, keep && s < 0, msg, msg_len)))
            return rc;
    }
    return p->offload ? offload_settle(p, INT32_MAX, msg, msg_len) : OOMB_OK;
}

/* The logits value as FP32: its buffer in F32 mode, else a new FP32 copy
 * (autocast runs the loss in FP32 on a cast of the logits). */
static int logits_f32(struct pass *p, float **l32, float **copy, char *msg, size_t msg_len)
{
    struct oomb_engine *e = p->e;
    return to_f32(p, NULL, p->data[e->n_vals - 1]->p, p->B * e->model->classes,
                  OOMB_TAG_ACTIVATIONS, "logits f32", (const float **)l32, copy, msg, msg_len);
}

/* Softmax cross-entropy forward of logits (B, K) F32: losses and correct
 * count into *st; probs (B, K) left for the caller (NULL: freed). */
static int xent_forward(struct oomb_engine *e, const float *logits, const int32_t *y, int64_t B,
                        float **probs_out, struct oomb_step_stats *st, char *msg, size_t msg_len)
{
    const struct oomb_host *h = e->h;
    const struct oomb_ops *o = h->ops;
    const int64_t K = e->model->classes;
    float *probs = NULL, *losses = NULL;
    int64_t correct = 0;
    double sum = 0;
    int rc;
    if ((rc = oomb_net_alloc(h, (size_t)(B * K) * 4, OOMB_TAG_ACTIVATIONS, "probs", (void **)&probs,
                             msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)B * 4, OOMB_TAG_ACTIVATIONS, "losses", (void **)&losses,
                             msg, msg_len)) ||
        (rc = op_err(e, o->softmax_xent_forward(o->ctx, losses, probs, logits, y, B, K), NULL,
                     "forward", msg, msg_len)) ||
        (rc = op_err(e, o->count_correct(o->ctx, logits, y, B, K, &correct), NULL, "count_correct",
                     msg, msg_len)) ||
        (rc = op_err(e, o->sum(o->ctx, losses, B, &sum), NULL, "loss sum", msg, msg_len))) {
        h->free(h->run, probs);
        h->free(h->run, losses);
        return rc;
    }
    h->free(h->run, losses);
    st->loss_sum += sum;
    st->correct += correct;
    if (probs_out)
        *probs_out = probs;
    else
        h->free(h->run, probs);
    return OOMB_OK;
}

int oomb_engine_train_batch(struct oomb_engine *e, const void *x, const int32_t *y, int64_t B,
                            float grad_scale, float *dx, struct oomb_step_stats *st, char *msg,
                            size_t msg_len)
{
    const struct oomb_host *h = e->h;
    const struct oomb_ops *o = h->ops;
    const int64_t K = e->model->classes;
    const struct oomb_loss_hooks *hk = e->pol.hooks;
    struct pass p;
    float *probs = NULL, *l32 = NULL, *lcopy = NULL, *dl32 = NULL;
    struct ebuf *lhold = NULL;
    int began = 0;
    int rc = pass_init(&p, e, B, OOMB_FWD_TRAIN, 1, msg, msg_len);
    if (rc)
        return rc;
    p.rg[0] = dx != NULL;
    h->phase(h->run, OOMB_PHASE_FORWARD);
    if (hk && hk->begin) {
        if ((rc = hk->begin(e->pol.hooks_user, x, y, B, msg, msg_len)))
            goto done;
        began = 1;
    }
    if ((rc = forward_all(&p, x, 1, msg, msg_len)))
        goto done;
    const int lv = e->n_vals - 1;
    const double before = st->loss_sum;
    if ((rc = logits_f32(&p, &l32, &lcopy, msg, msg_len)) ||
        (rc = xent_forward(e, l32, y, B, &probs, st, msg, msg_len)))
        goto done;
    const double hard_sum = st->loss_sum - before;
    if (hk && hk->loss) {
        if (!lcopy)
            lhold = ebuf_ref(p.data[lv]); /* the extra term reads the logits in backward */
    } else {
        h->free(h->run, lcopy);
        lcopy = NULL;
    }
    if (--p.left[lv] == 0) /* the loss has read the logits (never offloaded) */
        ebuf_unref(&p, &p.data[lv]);

    h->phase(h->run, OOMB_PHASE_BACKWARD);
    if ((rc = oomb_net_alloc(h, (size_t)(B * K) * 4, OOMB_TAG_ACTIVATIONS, "dlogits",
                             (void **)&dl32, msg, msg_len)) ||
        (rc = op_err(e, o->softmax_xent_backward(o->ctx, dl32, probs, y, B, K, grad_scale), NULL,
                     "backward", msg, msg_len)))
        goto done;
    h->free(h->run, probs);
    probs = NULL;
    if (hk && hk->loss) {
        if ((rc = hk->loss(e->pol.hooks_user, lcopy ? lcopy : (float *)lhold->p, dl32, B,
                           grad_scale, hard_sum, msg, msg_len)))
            goto done;
        h->free(h->run, lcopy);
        lcopy = NULL;
        ebuf_unref(&p, &lhold);
    }
    if (p.rg[lv]) {
        if (p.dsz == 4) { /* dlogits is the logits' gradient */
            if ((rc = ebuf_wrap(dl32, 0, &p.grad[lv], msg, msg_len)))
                goto done;
            dl32 = NULL;
        } else if ((rc = ebuf_new(&p, (size_t)(B * K) * 2, OOMB_TAG_ACTIVATIONS, "dlogits f16",
                                  &p.grad[lv], msg, msg_len)) ||
                   (rc = cast_to(e, p.grad[lv]->p, OOMB_F16, dl32, OOMB_F32, B * K, NULL, msg,
                                 msg_len))) {
            goto done;
        }
        h->free(h->run, dl32);
        dl32 = NULL;
        for (int n = e->n_nodes - 1; n >= 0 && rc == OOMB_OK; n--)
            if (p.rec[n])
                rc = node_backward(&p, n, msg, msg_len);
        if (rc)
            goto done;
    }
    if (dx) {
        const int64_t n = B * e->model->input_features;
        if (!p.grad[0])
            rc = op_err(e, o->zero(o->ctx, dx, (size_t)n * 4), NULL, "zero dx", msg, msg_len);
        else if (p.dsz == 4)
            rc = op_err(e, o->copy(o->ctx, dx, p.grad[0]->p, (size_t)n * 4), NULL, "copy dx", msg,
                        msg_len);
        else
            rc = cast_to(e, dx, OOMB_F32, p.grad[0]->p, OOMB_F16, n, NULL, msg, msg_len);
    }
done:
    h->free(h->run, probs);
    h->free(h->run, lcopy);
    h->free(h->run, dl32);
    ebuf_unref(&p, &lhold);
    pass_free(&p);
    if (began && hk->end)
        hk->end(e->pol.hooks_user);
    return rc;
}

int oomb_engine_forward(struct oomb_engine *e, const void *x, int64_t B, enum oomb_fwd_mode fwd,
                        float **logits, char *msg, size_t msg_len)
{
    const struct oomb_host *h = e->h;
    struct pass p;
    float *l32 = NULL, *copy = NULL;
    *logits = NULL;
    int rc = pass_init(&p, e, B, fwd, 0, msg, msg_len);
    if (rc)
        return rc;
    if ((rc = forward_all(&p, x, 0, msg, msg_len)) ||
        (rc = logits_f32(&p, &l32, &copy, msg, msg_len)))
        goto done;
    const int64_t bytes = B * e->model->classes * 4;
    struct ebuf *lb = p.data[e->n_vals - 1];
    if (copy) {
        *logits = copy;
        copy = NULL;
    } else if (lb->refs == 1 && !lb->ext) {
        *logits = lb->p; /* handed over */
        lb->ext = 1;
    } else if ((rc = oomb_net_alloc(h, (size_t)bytes, OOMB_TAG_ACTIVATIONS, "logits",
                                    (void **)logits, msg, msg_len)) == OOMB_OK) {
        rc = op_err(e, h->ops->copy(h->ops->ctx, *logits, l32, (size_t)bytes), NULL, "copy logits",
                    msg, msg_len);
    }
done:
    h->free(h->run, copy);
    pass_free(&p);
    return rc;
}

/* ------------------------------------------------------------ step drivers */

#define F16_LOAD_CHUNK 32 /* samples loaded (F32) and cast to F16 at a time */

/* Loads samples [first, first + count) of step `step` (or of the held-out
 * set when step < 0) into a new x (activation dtype, tag activations) and y
 * (tag other). F16 inputs go through an FP32 staging buffer of
 * F16_LOAD_CHUNK samples (tag workspace). */
static int load(struct oomb_engine *e, int64_t step, int64_t first, int64_t count, void **x,
                int32_t **y, char *msg, size_t msg_len)
{
    const struct oomb_host *h = e->h;
    const int64_t F = e->model->input_features;
    const int f16 = e->pol.act_dtype == OOMB_F16;
    float *stage = NULL;
    int rc;
    *x = NULL;
    *y = NULL;
    h->phase(h->run, OOMB_PHASE_OTHER);
    if ((rc = oomb_net_alloc(h, (size_t)(count * F) * (f16 ? 2 : 4), OOMB_TAG_ACTIVATIONS,
                             step < 0 ? "eval input" : "input", x, msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)count * 4, OOMB_TAG_OTHER,
                             step < 0 ? "eval labels" : "labels", (void **)y, msg, msg_len)))
        goto fail;
    const int64_t c = !f16 ? count : count < F16_LOAD_CHUNK ? count : F16_LOAD_CHUNK;
    if (f16 && (rc = oomb_net_alloc(h, (size_t)(c * F) * 4, OOMB_TAG_WORKSPACE, "input staging",
                                    (void **)&stage, msg, msg_len)))
        goto fail;
    for (int64_t i = 0; i < count; i += c) {
        int64_t n = count - i < c ? count - i : c;
        float *dst = f16 ? stage : (float *)*x + i * F;
        rc = step < 0 ? h->load_eval_batch(h->run, first + i, n, dst, *y + i)
                      : h->load_batch(h->run, step, first + i, n, dst, *y + i);
        if (rc) {
            oomb_msg(msg, msg_len, "loading samples %lld..%lld%s failed", (long long)(first + i),
                     (long long)(first + i + n - 1), step < 0 ? " of the held-out set" : "");
            goto fail;
        }
        if (f16 && (rc = cast_to(e, (uint16_t *)*x + i * F, OOMB_F16, stage, OOMB_F32, n * F, NULL,
                                 msg, msg_len)))
            goto fail;
    }
    h->free(h->run, stage);
    return OOMB_OK;
fail:
    h->free(h->run, stage);
    h->free(h->run, *x);
    h->free(h->run, *y);
    *x = NULL;
    *y = NULL;
    return rc;
}

static int do_update(struct oomb_engine *e, int64_t step, char *msg, size_t msg_len)
{
    e->h->phase(e->h->run, OOMB_PHASE_UPDATE);
    return e->pol.update ? e->pol.update(e->pol.update_user, step, msg, msg_len)
                         : oomb_net_update(e->net, msg, msg_len);
}

int oomb_engine_train_step(struct oomb_engine *e, int64_t step, char *msg, size_t msg_len)
{
    const struct oomb_host *h = e->h;
    struct oomb_net *n = e->net;
    const int64_t B = h->info->batch, parts = oomb_engine_slices(&e->pol, B);
    const double ls = e->pol.loss_scale > 0 ? e->pol.loss_scale : 1.0;
    struct oomb_step_stats st = {0, 0};
    int rc = OOMB_OK;
    h->phase(h->run, OOMB_PHASE_OTHER);
    if (!e->pol.update_per_slice && (rc = oomb_net_zero_grads(n, msg, msg_len)))
        return rc;
    for (int64_t i = 0; i < parts; i++) {
        int64_t first, count;
        void *x;
        int32_t *y;
        oomb_engine_slice(&e->pol, B, i, &first, &count);
        if (e->pol.update_per_slice && (rc = oomb_net_zero_grads(n, msg, msg_len)))
            return rc;
        if ((rc = load(e, step, first, count, &x, &y, msg, msg_len)))
            return rc;
        float scale = (float)(ls / (double)(e->pol.update_per_slice ? count : B));
        rc = oomb_engine_train_batch(e, x, y, count, scale, NULL, &st, msg, msg_len);
        h->free(h->run, x);
        h->free(h->run, y);
        if (rc)
            return rc;
        if (e->pol.update_per_slice) {
            if ((rc = do_update(e, step, msg, msg_len)))
                return rc;
            if (step == 0 && i == 0)
                h->report_tensor(h->run, "grads0", n->grads, n->total_params);
        }
    }
    if (!e->pol.update_per_slice) {
        if ((rc = do_update(e, step, msg, msg_len)))
            return rc;
        if (step == 0)
            h->report_tensor(h->run, "grads0", n->grads, n->total_params);
    }
    h->report_loss(h->run, step, st.loss_sum / (double)B);
    h->report_accuracy(h->run, st.correct, B);
    h->report_tensor(h->run, "weights", n->params, n->total_params);
    return OOMB_OK;
}

/* Inference over samples [first, first + count) (step < 0: held-out):
 * load, forward, loss. The logits (F32): copied to out_logits, or reported
 * as "output0" when `report`. */
static int infer_slice(struct oomb_engine *e, int64_t step, int64_t first, int64_t count,
                       float *out_logits, int report, struct oomb_step_stats *st, char *msg,
                       size_t msg_len)
{
    const struct oomb_host *h = e->h;
    const int64_t K = e->model->classes;
    void *x;
    int32_t *y;
    float *logits = NULL;
    int rc = load(e, step, first, count, &x, &y, msg, msg_len);
    if (rc)
        return rc;
    h->phase(h->run, step < 0 ? OOMB_PHASE_OTHER : OOMB_PHASE_FORWARD);
    if ((rc = oomb_engine_forward(e, x, count, OOMB_FWD_EVAL, &logits, msg, msg_len)) ||
        (rc = xent_forward(e, logits, y, count, NULL, st, msg, msg_len)))
        goto done;
    if (out_logits)
        rc = op_err(e, h->ops->copy(h->ops->ctx, out_logits, logits, (size_t)(count * K) * 4), NULL,
                    "copy logits", msg, msg_len);
    if (report)
        h->report_tensor(h->run, "output0", logits, count * K);
done:
    h->free(h->run, logits);
    h->free(h->run, x);
    h->free(h->run, y);
    return rc;
}

int oomb_engine_infer_step(struct oomb_engine *e, int64_t step, char *msg, size_t msg_len)
{
    const struct oomb_host *h = e->h;
    const int64_t B = h->info->batch, K = e->model->classes;
    const int64_t parts = oomb_engine_slices(&e->pol, B);
    struct oomb_step_stats st = {0, 0};
    float *all = NULL;
    int rc = OOMB_OK;
    /* in slices, the slices' logits make up the output a caller gets back */
    h->phase(h->run, OOMB_PHASE_OTHER);
    if (parts > 1 && (rc = oomb_net_alloc(h, (size_t)(B * K) * 4, OOMB_TAG_ACTIVATIONS, "output",
                                          (void **)&all, msg, msg_len)))
        return rc;
    for (int64_t i = 0; i < parts && rc == OOMB_OK; i++) {
        int64_t first, count;
        oomb_engine_slice(&e->pol, B, i, &first, &count);
        rc = infer_slice(e, step, first, count, all ? all + first * K : NULL,
                         parts == 1 && step == 0, &st, msg, msg_len);
    }
    if (rc == OOMB_OK) {
        h->report_loss(h->run, step, st.loss_sum / (double)B);
        h->report_accuracy(h->run, st.correct, B);
        if (all && step == 0)
            h->report_tensor(h->run, "output0", all, B * K);
    }
    h->free(h->run, all);
    return rc;
}

int oomb_engine_evaluate(struct oomb_engine *e, int64_t batch, char *msg, size_t msg_len)
{
    const struct oomb_host *h = e->h;
    const int64_t N = h->info->eval_samples, B = batch > 0 ? batch : h->info->batch;
    struct oomb_step_stats st = {0, 0};
    int rc = OOMB_OK;
    if (N <= 0)
        return OOMB_OK;
    for (int64_t first = 0; first < N && rc == OOMB_OK; first += B)
        rc = infer_slice(e, -1, first, N - first < B ? N - first : B, NULL, 0, &st, msg, msg_len);
    if (rc == OOMB_OK)
        h->report_eval(h->run, st.correct, N, st.loss_sum);
    return rc;
}

int oomb_engine_open(struct oomb_engine *e, struct oomb_net *net, const struct oomb_host *h,
                     const struct oomb_model *model, unsigned net_flags,
                     const struct oomb_policy *pol, char *msg, size_t msg_len)
{
    memset(e, 0, sizeof *e);
    int rc = oomb_net_init(net, h, model, net_flags, msg, msg_len);
    if (rc == OOMB_OK && (rc = oomb_engine_init(e, net, pol, msg, msg_len)) != OOMB_OK)
        oomb_net_free(net);
    return rc;
}

void oomb_engine_close(struct oomb_engine *e, struct oomb_net *net)
{
    oomb_engine_free(e);
    oomb_net_free(net);
}

int oomb_engine_open_replaced(struct oomb_engine *e, struct oomb_net *net,
                              const struct oomb_host *h, oomb_update_fn update,
                              oomb_linear_fn linear, void *user, char *msg, size_t msg_len)
{
    struct oomb_policy pol = {0};
    if (h->info->mode == OOMB_MODE_TRAIN) {
        pol.update = update;
        pol.update_user = user;
        return oomb_engine_init(e, net, &pol, msg, msg_len);
    }
    pol.linear = linear;
    pol.linear_user = user;
    return oomb_engine_open(e, net, h, h->info->model, OOMB_NET_NO_PARAMS, &pol, msg, msg_len);
}

int oomb_engine_step(struct oomb_engine *e, int64_t step, char *msg, size_t msg_len)
{
    return e->h->info->mode == OOMB_MODE_TRAIN ? oomb_engine_train_step(e, step, msg, msg_len)
                                               : oomb_engine_infer_step(e, step, msg, msg_len);
}
