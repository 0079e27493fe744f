/*
 * Training on a slice of a step's batch, for the strategies that split the
 * batch (grad_accum, batch_reduction). One call does for samples
 * [first, first + count) what `none` does for the whole batch: load, forward
 * keeping every activation, softmax cross-entropy, backward; the parameter
 * gradients accumulate into the net's grads. Part of the plugins' common
 * library; oomb_step_train (steps.h), the reference step, is one slice of B.
 *
 * Allocation follows none.c exactly, with the batch B replaced by `count`, so
 * a slice of the whole batch costs the same bytes as none's step (see the
 * memory formula in plugins/none/none.c). Everything allocated is freed
 * before the call returns, also on failure.
 */
#ifndef OOMB_PLUGIN_CHUNK_H
#define OOMB_PLUGIN_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"

/* What the slices of one step add up to. */
struct oomb_chunk_stats {
    double loss_sum; /* sum of the per-sample losses (not the mean) */
    int64_t correct; /* samples whose argmax logit is the target */
};

/*
 * Forward and backward of samples [first, first + count) of step `step`.
 * dlogits = grad_scale * (probs - onehot): pass 1/B for gradients that sum to
 * the mean over a batch of B samples. The per-sample losses and the correct
 * count are added to *st before backward runs (with the parameters as they
 * are at the call). Phases are marked: other (loading), forward, backward.
 * Does not zero the gradients. Returns OOMB_OK or a status with msg.
 */
int oomb_chunk_train(struct oomb_net *n, int64_t step, int64_t first, int64_t count,
                     float grad_scale, struct oomb_chunk_stats *st, char *msg, size_t msg_len);

/* Size of slice i when B samples are cut into `parts` slices whose sizes
 * differ by at most one (the first B % parts slices are one larger), and
 * its first sample. */
int64_t oomb_chunk_size(int64_t B, int64_t parts, int64_t i);
int64_t oomb_chunk_first(int64_t B, int64_t parts, int64_t i);

#endif
