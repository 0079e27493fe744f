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

/* Returns OOMB_OK or OOMB_ERR_OOM. Free with oomb_data_free. */
int oomb_data_init(struct oomb_data *d, uint64_t seed, int64_t features, int64_t classes)
    OOMB_WARN_UNUSED;
void oomb_data_free(struct oomb_data *d);

/* Samples [first, first+count) of the global sample stream into host
 * buffers x (count, features) and y (count). */
void oomb_data_samples(const struct oomb_data *d, int64_t first, int64_t count, float *x,
                       int32_t *y);

/* Seeded initial parameters of one layer: W ~ U(-1/sqrt(in), 1/sqrt(in))
 * (PyTorch's default for nn.Linear), bias likewise. dst holds n_params. */
void oomb_data_init_params(uint64_t seed, int layer_index, const struct oomb_layer *layer,
                           float *dst);

/* Deterministic 64-bit mixing (splitmix64), exposed for tests. */
uint64_t oomb_splitmix64(uint64_t x);

#endif
