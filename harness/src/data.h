/*
 * Seeded data and initial parameters, identical for every strategy of a
 * scenario. Synthetic input: x ~ N(0, 1) per feature from a counter-based
 * generator keyed by (seed, sample index), and the label is the arg-max of a
 * fixed random linear "teacher" map of x, so the task is learnable and every
 * sample can be regenerated independently of the batch it is in.
 */
#ifndef OOMB_DATA_H
#define OOMB_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "oombench/plugin.h"

struct oomb_data {
    uint64_t seed;
    int64_t features, classes;
    float *teacher; /* (classes, features), host memory */
};

/* Returns OOMB_OK, OOMB_ERR_OOM, or OOMB_ERR_INVALID when features or
 * classes is negative or the teacher's (classes, features) floats overflow a
 * byte count. Free with oomb_data_free (also after a failure). */
int oomb_data_init(struct oomb_data *d, uint64_t seed, int64_t features, int64_t classes)
    OOMB_WARN_UNUSED;
void oomb_data_free(struct oomb_data *d);

/* The bytes of `count` rows of `features` floats in *bytes: OOMB_OK, or
 * OOMB_ERR_INVALID when either is negative or the product overflows int64_t
 * or size_t. Every buffer of samples (x of oomb_data_samples) is sized with
 * it, so that user numbers (batch x steps x features) cannot wrap into a
 * short buffer. */
int oomb_data_bytes(int64_t count, int64_t features, size_t *bytes) OOMB_WARN_UNUSED;

/* Samples [first, first+count) of the global sample stream into host
 * buffers x (count, features) and y (count). Training uses sample numbers
 * below OOMB_DATA_EVAL_BASE. */
void oomb_data_samples(const struct oomb_data *d, int64_t first, int64_t count, float *x,
                       int32_t *y);

/* Where the held-out samples start in the sample stream (2^40). */
#define OOMB_DATA_EVAL_BASE ((int64_t)1 << 40)

/* Held-out samples [first, first+count): sample numbers OOMB_DATA_EVAL_BASE
 * + first, ... of the same stream (same teacher, so the same task), which
 * training never reaches. Same buffers as oomb_data_samples. */
void oomb_data_eval_samples(const struct oomb_data *d, int64_t first, int64_t count, float *x,
                            int32_t *y);

/*
 * Seeded initial parameters of one layer (dst holds layer->n_params, in the
 * layout of plugin.h), each value a function of (seed, layer_index, its
 * position) only:
 *   LINEAR     W and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in =
 *              in_features / R with R = attrs[0] rows per sample (0: 1)
 *              (PyTorch's default for nn.Linear);
 *   CONV2D     W and b ~ U(-1/sqrt(C*K*K), 1/sqrt(C*K*K)) (nn.Conv2d's);
 *   BATCHNORM, LAYERNORM  gamma = 1, beta = 0;
 *   ATTENTION  Wqkv, bqkv, Wo, bo ~ U(-1/sqrt(C), 1/sqrt(C));
 *   RESIDUAL   its body's layers in order, each initialised as that layer
 *              would be, with a key derived from the residual's key and the
 *              body position (so equal body layers get different values);
 *   other kinds have no parameters.
 */
void oomb_data_init_params(uint64_t seed, int layer_index, const struct oomb_layer *layer,
                           float *dst);

/* Initial buffers (non-trained state) of one layer; dst holds
 * layer->n_buffers. BATCHNORM: running mean 0 (C), then running variance 1
 * (C); RESIDUAL: its body's buffers in body order; other kinds have none. */
void oomb_data_init_buffers(const struct oomb_layer *layer, float *dst);

/* Deterministic 64-bit mixing (splitmix64), exposed for tests. */
uint64_t oomb_splitmix64(uint64_t x);

#endif
