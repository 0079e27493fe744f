/*
 * The step engine: one training or inference step of a sequential model,
 * with PyTorch eager's memory behaviour, and the hooks through which a
 * strategy changes it. Every strategy plugin drives its steps through this
 * engine; none re-implements forward, loss or backward.
 *
 * The model is compiled into a tape of nodes, one per autograd node PyTorch
 * would record (a linear layer is one node, an attention layer three: the
 * qkv projection, the attention core and the output projection; a residual
 * is its body's nodes followed by an add). Each node saves for backward
 * exactly what PyTorch's autograd node for that op saves (layers.c has the
 * table); values are reference counted like tensors, so an activation lives
 * while a later layer still has to read it in forward or a node keeps it for
 * backward, and goes the moment neither holds it; a node's saved tensors are
 * released right after its backward has run; activation gradients are
 * created by each node's backward and freed once the node before has used
 * them. docs/memory-model.md states the resulting peaks per layer kind.
 *
 * A step, read top to bottom (oomb_engine_train_step):
 *   for each slice of the batch:  load x, y -> forward -> loss -> backward
 *   then the optimizer update (or one per slice)
 * Policies (struct oomb_policy): slices of the batch (gradient accumulation,
 * smaller batches), activation checkpointing by segments (non-reentrant
 * torch.utils.checkpoint), the storage dtype of activations (F16 as under
 * autocast), the linear forward (int8, sparse), the optimizer update and an
 * extra loss term (distillation).
 *
 * Ownership: the engine borrows the net (its parameters, gradients and
 * optimizer state) and the policy's pointers for its lifetime; it owns its
 * tape and its convolution/attention workspace. Every device byte comes from
 * host->alloc and is back with the host when a call returns, except the
 * workspace (freed by oomb_engine_free). Status returns follow plugin.h.
 */
#ifndef OOMB_PLUGIN_ENGINE_H
#define OOMB_PLUGIN_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"

/* The update of a training step: the net's grads hold the mean gradients of
 * the batch (times the policy's loss scale). Returns an oomb_status. */
typedef int (*oomb_update_fn)(void *user, int64_t step, char *msg, size_t msg_len);

/* Linear layer l (a top-level LINEAR layer) for inference: out (rows, OC)
 * from in (rows, C), F32 device arrays, rows = samples x rows per sample.
 * Whatever it allocates it frees before returning. */
typedef int (*oomb_linear_fn)(void *user, int l, float *out, const float *in, int64_t rows,
                              char *msg, size_t msg_len);

/* An extra loss term (knowledge distillation). begin: before the forward of
 * a slice, with its input x (count, f_in) (F32 policy) and labels y; loss:
 * once the cross-entropy's gradient is in dlogits (count, K) F32, =
 * grad_scale * (probs - onehot), with the slice's logits (F32) and the sum
 * of its cross-entropy losses: it rescales dlogits as it needs and adds its
 * own gradient. end: always after a successful begin, also on failure:
 * frees what begin kept. The pointers are the engine's, valid during the
 * call. */
struct oomb_loss_hooks {
    int (*begin)(void *user, const void *x, const int32_t *y, int64_t count, char *msg,
                 size_t msg_len);
    int (*loss)(void *user, const float *logits, float *dlogits, int64_t count, float grad_scale,
                double hard_sum, char *msg, size_t msg_len);
    void (*end)(void *user);
};

struct oomb_policy {
    /* OOMB_F32 (default) or OOMB_F16: the dtype activations and their
     * gradients are stored in between nodes. With F16, linear layers run the
     * backend's F16 GEMMs on `w16` (all parameters in F16, the net's layout)
     * and the other kinds compute in FP32 from the F16 values (norms and
     * softmax in FP32 as under autocast); statistics, softmax probabilities
     * and parameter gradients stay FP32. */
    enum oomb_dtype act_dtype;
    const uint16_t *w16;
    /* Activation checkpointing: the top-level layers cut into n_segments
     * segments, segment s = layers [seg_first[s], seg_first[s + 1]). Every
     * segment but the last keeps only its input for backward and is
     * recomputed when backward reaches it. 0: off. */
    int n_segments;
    const int *seg_first;
    /* The batch in slices: `slices` parts of sizes differing by at most one,
     * or, when micro_batch > 0, slices of micro_batch samples (the last one
     * shorter). update_per_slice: train with the mean gradient of each slice
     * and an update after each (smaller batches); else the slices' gradients
     * add up to the mean over the batch and one update follows. */
    int64_t slices;
    int64_t micro_batch;
    int update_per_slice;
    /* Multiplies the loss gradient (loss scaling); 0 means 1. */
    double loss_scale;
    /* Inference: linear layers through this instead of the net's weights. */
    oomb_linear_fn linear;
    void *linear_user;
    /* Training: the optimizer update (NULL: oomb_net_update). */
    oomb_update_fn update;
    void *update_user;
    /* Training: an extra loss term. */
    const struct oomb_loss_hooks *hooks;
    void *hooks_user;
    /* Training: activation offload. A saved tensor (a buffer that only
     * nodes' saves still hold once forward has read it for the last time,
     * and the extras a node saves: statistics, probabilities, positions) of
     * at least offload_min_bytes is copied to host memory in offload_space
     * (tag activations) and its device memory freed once the copy is done,
     * which the engine waits for one node later so that the copy overlaps
     * the next node's forward. Before a node's backward its saved tensors are
     * made resident again, and the next recorded node's are prefetched (one
     * node ahead). The input batch (the caller's memory) stays. Not with
     * checkpoint segments. 0: off. */
    int offload;
    enum oomb_space offload_space;
    size_t offload_min_bytes;
};

struct oomb_engine_node; /* private to engine.c */

struct oomb_engine {
    struct oomb_net *net;
    const struct oomb_host *h;
    const struct oomb_model *model;
    struct oomb_policy pol;
    int n_nodes, n_vals;
    struct oomb_engine_node *nodes;
    int64_t *feat; /* (n_vals) per-sample elements of each value (0: the input) */
    void *ws;      /* convolution / attention workspace, tag workspace, grown on demand */
    size_t ws_bytes;
    int pool_idx; /* the backend keeps max pooling's positions (ABI 1.2 ops) */
};

/* What the slices of one step add up to. */
struct oomb_step_stats {
    double loss_sum; /* sum of the per-sample losses */
    int64_t correct; /* samples whose argmax logit is the target */
};

/* Compile the net's model (net->model) into a tape. The policy is copied;
 * the pointers in it must outlive the engine. Returns OOMB_OK,
 * OOMB_ERR_INVALID (bad segments), OOMB_ERR_OOM (host memory). */
int oomb_engine_init(struct oomb_engine *e, struct oomb_net *net, const struct oomb_policy *pol,
                     char *msg, size_t msg_len);
/* Frees the tape and the workspace. Safe on a zeroed or failed engine. */
void oomb_engine_free(struct oomb_engine *e);

/* One training step of the whole batch of `step`: zero the gradients,
 * forward/loss/backward per slice, the update; reports loss, accuracy,
 * "grads0" (step 0) and "weights". */
int oomb_engine_train_step(struct oomb_engine *e, int64_t step, char *msg, size_t msg_len);

/* One inference step: forward per slice, no autograd state (every
 * activation freed once the next node has read it, batch norm on its
 * running statistics); reports loss, accuracy and "output0" (step 0). */
int oomb_engine_infer_step(struct oomb_engine *e, int64_t step, char *msg, size_t msg_len);

/* The held-out set (info->eval_samples) in batches of `batch` (0: the run's
 * batch) through the inference forward; host->report_eval with the total.
 * OOMB_OK at once without evaluation samples. */
int oomb_engine_evaluate(struct oomb_engine *e, int64_t batch, char *msg, size_t msg_len);

/* Forward and backward of a batch the caller loaded: x (B, f_in) in the
 * policy's dtype and y (B) on the device, both the caller's. Gradients
 * accumulate into the net's grads with dlogits = grad_scale * (probs -
 * onehot). When dx is not NULL the input counts as requiring a gradient
 * (PyTorch's x.requires_grad_()) and its gradient (B, f_in) is written to
 * dx (F32, the caller's). Adds the losses and the correct count to *st. */
int oomb_engine_train_batch(struct oomb_engine *e, const void *x, const int32_t *y, int64_t B,
                            float grad_scale, float *dx, struct oomb_step_stats *st, char *msg,
                            size_t msg_len);

/* Forward only, no autograd state, of x (B, f_in) (the caller's) into new
 * logits (B, K) F32 (*logits, tag activations; the caller frees it with
 * host->free). fwd: OOMB_FWD_EVAL (batch norm on running statistics) or
 * OOMB_FWD_RECOMPUTE (batch statistics, running ones untouched). */
int oomb_engine_forward(struct oomb_engine *e, const void *x, int64_t B, enum oomb_fwd_mode fwd,
                        float **logits, char *msg, size_t msg_len);

/* The net (oomb_net_init with net_flags) and its engine in one call, for a
 * strategy that runs one model; on failure neither is left allocated.
 * oomb_engine_close frees both (safe on zeroed ones). */
int oomb_engine_open(struct oomb_engine *e, struct oomb_net *net, const struct oomb_host *h,
                     const struct oomb_model *model, unsigned net_flags,
                     const struct oomb_policy *pol, char *msg, size_t msg_len);
void oomb_engine_close(struct oomb_engine *e, struct oomb_net *net);

/* For a strategy that replaces a part of none's step: in training the
 * update (the net already initialised with grads and optimizer state by
 * the caller), in inference the linear layers (the net is initialised here
 * without FP32 parameters). */
int oomb_engine_open_replaced(struct oomb_engine *e, struct oomb_net *net,
                              const struct oomb_host *h, oomb_update_fn update,
                              oomb_linear_fn linear, void *user, char *msg, size_t msg_len);

/* The run's step: oomb_engine_train_step or oomb_engine_infer_step by the
 * run's mode. */
int oomb_engine_step(struct oomb_engine *e, int64_t step, char *msg, size_t msg_len);

/* Checkpoint segments of L top-level layers: `segments` of them (0:
 * ceil(sqrt(L)); at most L) whose lengths differ by at most one, the first
 * L % segments one longer. Returns a new array of *n + 1 first layers (the
 * last is L) for policy.seg_first, which the caller frees with free(); NULL
 * when host memory runs out. */
int *oomb_engine_segments(int L, int64_t segments, int *n);

/* Size and first sample of slice i of the policy for a batch of B, and the
 * number of slices. */
int64_t oomb_engine_slices(const struct oomb_policy *pol, int64_t B);
void oomb_engine_slice(const struct oomb_policy *pol, int64_t B, int64_t i, int64_t *first,
                       int64_t *count);

#endif
