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

/* Linear layer l of the model: out (rows, out) from in (rows, in) per row
 * (oomb_linear_dims; rows = samples x rows per sample), F32 device arrays.
 * Whatever it allocates it frees before returning. */
typedef int (*oomb_linear_fn)(void *user, int l, float *out, const float *in, int64_t rows,
                              char *msg, size_t msg_len);

/*
 * One inference step of the whole batch of `step`, as the `none` strategy
 * (each activation freed once the next layer has used it; batch norm with
 * its running statistics), with linear layers computed by `linear` (NULL:
 * the net's) and other layers by the net `n`; with n NULL only layers
 * without parameters can be run (others: OOMB_ERR_NOT_APPLICABLE). Reports
 * loss, accuracy and "output0" at step 0.
 */
int oomb_step_infer(const struct oomb_host *h, struct oomb_net *n, int64_t step,
                    oomb_linear_fn linear, void *user, char *msg, size_t msg_len);

/*
 * The held-out set (info->eval_samples, in batches of `batch`; 0: the run's
 * batch) through the same forward as oomb_step_infer, with the net's model
 * (n->model: a student's, say); reports the total with host->report_eval.
 * Phase other. OOMB_OK without evaluation samples.
 */
int oomb_step_evaluate(const struct oomb_host *h, struct oomb_net *n, int64_t batch,
                       oomb_linear_fn linear, void *user, char *msg, size_t msg_len);

/* Formats a failed op's message like oomb_net_op_error, without a net. */
int oomb_step_op_error(const struct oomb_host *h, int rc, const char *what, char *msg,
                       size_t msg_len);

#endif
