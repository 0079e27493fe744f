/*
 * Seeded synthetic data and parameter initialisation (see data.h).
 */
#include "data.h"

#include <math.h>
#include <stdlib.h>

uint64_t oomb_splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Uniform in (0, 1) from a 64-bit value. */
static double unit(uint64_t r)
{
    return ((double)(r >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* Standard normal from two counters (Box-Muller). */
static float normal(uint64_t key, uint64_t i)
{
    uint64_t a = oomb_splitmix64(key ^ oomb_splitmix64(2 * i));
    uint64_t b = oomb_splitmix64(key ^ oomb_splitmix64(2 * i + 1));
    return (float)(sqrt(-2.0 * log(unit(a))) * cos(6.283185307179586 * unit(b)));
}

int oomb_data_init(struct oomb_data *d, uint64_t seed, int64_t features, int64_t classes)
{
    d->seed = seed;
    d->features = features;
    d->classes = classes;
    d->teacher = malloc((size_t)(classes * features) * sizeof *d->teacher);
    if (!d->teacher)
        return OOMB_ERR_OOM;
    uint64_t key = oomb_splitmix64(seed ^ 0x7465616368657221ULL);
    for (int64_t i = 0; i < classes * features; i++)
        d->teacher[i] = normal(key, (uint64_t)i);
    return OOMB_OK;
}

void oomb_data_free(struct oomb_data *d)
{
    free(d->teacher);
    d->teacher = NULL;
}

void oomb_data_samples(const struct oomb_data *d, int64_t first, int64_t count, float *x,
                       int32_t *y)
{
    uint64_t key = oomb_splitmix64(d->seed ^ 0x73616d706c657321ULL);
    for (int64_t s = 0; s < count; s++) {
        uint64_t skey = oomb_splitmix64(key ^ (uint64_t)(first + s));
        float *xs = x + s * d->features;
        for (int64_t f = 0; f < d->features; f++)
            xs[f] = normal(skey, (uint64_t)f);
        int32_t best = 0;
        double best_v = -INFINITY;
        for (int64_t c = 0; c < d->classes; c++) {
            const float *t = d->teacher + c * d->features;
            double v = 0;
            for (int64_t f = 0; f < d->features; f++)
                v += (double)t[f] * xs[f];
            if (v > best_v) {
                best_v = v;
                best = (int32_t)c;
            }
        }
        y[s] = best;
    }
}

void oomb_data_init_params(uint64_t seed, int layer_index, const struct oomb_layer *layer,
                           float *dst)
{
    uint64_t key = oomb_splitmix64(seed ^ oomb_splitmix64(0x706172616d73ULL + (uint64_t)layer_index));
    double bound = 1.0 / sqrt((double)(layer->in_features > 0 ? layer->in_features : 1));
    for (int64_t i = 0; i < layer->n_params; i++) {
        uint64_t r = oomb_splitmix64(key ^ oomb_splitmix64((uint64_t)i));
        dst[i] = (float)((2.0 * unit(r) - 1.0) * bound);
    }
}
