/*
 * Whole-batch step drivers shared by strategies that change one part of the
 * reference step and keep the rest: a training step exactly as `none` does it
 * with the optimizer update replaced (8-bit optimizer state, masks re-applied
 * after the update), and an inference step whose linear layers are replaced
 * (int8 GEMM, sparse formats). Memory is the same as none's except for what
 * the callbacks themselves allocate (see plugins/none/none.c for the formulas).
 */
#ifndef OOMB_PLUGIN_STEPS_H
#define OOMB_PLUGIN_STEPS_H

#include "net.h"

/* The update phase of a training step: after the backward pass, n->grads
 * hold the mean gradients of the batch. Returns an oomb_status. */
typedef int (*oomb_update_fn)(void *user, int64_t step, char *msg, size_t msg_len);

/*
 * One training step of the whole batch of `step`, as the `none` strategy:
 * forward keeping every activation, softmax cross-entropy, backward, then
 * `update` (NULL: oomb_net_update). Reports loss, accuracy, "grads0" at step
 * 0 and "weights" after the update.
 */
int oomb_step_train(struct oomb_net *n, int64_t step, oomb_update_fn update, void *user, char *msg,
                    size_t msg_len);

/* Linear layer l of the model: out (B, out_l) from in (B, in_l), F32 device
 * arrays. Whatever it allocates it frees before returning. */
typedef int (*oomb_linear_fn)(void *user, int l, float *out, const float *in, int64_t B, char *msg,
                              size_t msg_len);

/*
 * One inference step of the whole batch of `step`, as the `none` strategy
 * (each activation freed once the next layer has used it), with linear
 * layers computed by `linear` and activation layers by the ops. Reports
 * loss, accuracy and "output0" at step 0.
 */
int oomb_step_infer(const struct oomb_host *h, int64_t step, oomb_linear_fn linear, void *user,
                    char *msg, size_t msg_len);

/* out = activation layer l applied to in (n elements, F32); out may equal in. */
int oomb_step_activation(const struct oomb_host *h, int l, float *out, const float *in, int64_t n,
                         char *msg, size_t msg_len);

/* Formats a failed op's message like oomb_net_op_error, without a net. */
int oomb_step_op_error(const struct oomb_host *h, int rc, const char *what, char *msg,
                       size_t msg_len);

#endif
