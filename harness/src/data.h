/*
 * Seeded data and initial parameters, identical for every strategy of a
 * scenario.
 *
 * Synthetic samples: a fixed "teacher" T (classes, features), each row a
 * seeded N(0, 1) value per block of the flattened input (OOMB_DATA_BLOCKS
 * contiguous runs: rows of an image channel, whole tokens of a sequence),
 * then centred and scaled to mean 0 and squared norm `features`. Sample i,
 * keyed by (seed, i) alone:
 *   c  = a class drawn uniformly;
 *   x  = z + a T[c],  z ~ N(0, 1) per feature, a = separation / sqrt(2 features),
 *        so two class centres a T[c], a T[c'] lie `separation` noise standard
 *        deviations apart;
 *   y  = argmax_k T[k] . x, the nearest class centre (all rows have the same
 *        norm): the label is a fixed linear function of x, learnable to 100%,
 *        and the classes are balanced to sampling noise (drawn uniformly, then
 *        moved only across the boundaries between centres).
 * Every sample can be regenerated independently of the batch it is in, so
 * resident and streamed pipelines and every strategy see the same data.
 * separation 0 gives x ~ N(0, 1) labelled by the teacher's arg-max: the
 * classes are not separated and a few steps of training barely move the loss.
 */
#ifndef OOMB_DATA_H
#define OOMB_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "oombench/plugin.h"

/* Blocks of the flattened input over which a teacher row is constant. */
#define OOMB_DATA_BLOCKS 16
/* The default distance between class centres (scenario key
 * input.separation), and the largest accepted. */
#define OOMB_DATA_SEPARATION 8.0
#define OOMB_DATA_SEPARATION_MAX 1e6

struct oomb_data {
    uint64_t seed;
    int64_t features, classes;
    float *teacher;   /* (classes, features), host memory */
    double amplitude; /* how far a sample is drawn from the origin */
};

/* The teacher of (seed, features, classes) and the amplitude of
 * `separation`. Returns OOMB_OK, OOMB_ERR_OOM, or OOMB_ERR_INVALID when
 * features or classes is negative, the teacher's (classes, features) floats
 * overflow a byte count, or separation is outside [0,
 * OOMB_DATA_SEPARATION_MAX]. Free with oomb_data_free (also after a
 * failure). */
int oomb_data_init(struct oomb_data *d, uint64_t seed, int64_t features, int64_t classes,
                   double separation) OOMB_WARN_UNUSED;
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
/* The same with every uniform bound above multiplied by gain (> 0): 1 is
 * PyTorch's default; sqrt(6) is `model.init: kaiming`, U(-sqrt(6/fan_in),
 * sqrt(6/fan_in)) for weights and biases alike (kaiming_uniform_ for a ReLU
 * network), which keeps a deep ReLU stack's activations from vanishing.
 * Same values as oomb_data_init_params but for the bound. */
void oomb_data_init_params_gain(uint64_t seed, int layer_index, const struct oomb_layer *layer,
                                double gain, float *dst);

/* Initial buffers (non-trained state) of one layer; dst holds
 * layer->n_buffers. BATCHNORM: running mean 0 (C), then running variance 1
 * (C); RESIDUAL: its body's buffers in body order; other kinds have none. */
void oomb_data_init_buffers(const struct oomb_layer *layer, float *dst);

/* Deterministic 64-bit mixing (splitmix64), exposed for tests. */
uint64_t oomb_splitmix64(uint64_t x);

#endif
