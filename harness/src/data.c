/*
 * Seeded synthetic data and parameter initialisation (see data.h for the
 * rule of the synthetic samples).
 */
#include "data.h"

#include "layers.h"

#include <math.h>
#include <stddef.h>
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

int oomb_data_init(struct oomb_data *d, uint64_t seed, int64_t features, int64_t classes,
                   double separation)
{
    d->seed = seed;
    d->features = features;
    d->classes = classes;
    d->amplitude = 0;
    d->teacher = NULL;
    size_t bytes;
    if (features < 0 || classes < 0 || oomb_data_bytes(classes, features, &bytes) != OOMB_OK ||
        !(separation >= 0 && separation <= OOMB_DATA_SEPARATION_MAX))
        return OOMB_ERR_INVALID;
    d->teacher = malloc(bytes + 1);
    if (!d->teacher)
        return OOMB_ERR_OOM;
    /* features per block: ceil(features / OOMB_DATA_BLOCKS), at least 1 */
    const int64_t run = features > OOMB_DATA_BLOCKS ? (features - 1) / OOMB_DATA_BLOCKS + 1 : 1;
    uint64_t key = oomb_splitmix64(seed ^ 0x7465616368657221ULL);
    for (int64_t c = 0; c < classes; c++) {
        float *t = d->teacher + c * features;
        double sum = 0, sum2 = 0;
        for (int64_t f = 0; f < features; f++) {
            double v = normal(key, (uint64_t)(c * features + f / run));
            t[f] = (float)v;
            sum += v;
        }
        /* mean 0 and sum of squares `features`: every row has the same norm,
         * so the arg-max of t . x is the nearest class centre */
        double mean = features > 1 ? sum / (double)features : 0;
        for (int64_t f = 0; f < features; f++)
            sum2 += ((double)t[f] - mean) * ((double)t[f] - mean);
        double scale = sum2 > 0 ? sqrt((double)features / sum2) : 0;
        for (int64_t f = 0; f < features; f++)
            t[f] = (float)(((double)t[f] - mean) * scale);
    }
    d->amplitude = features > 0 ? separation / sqrt(2.0 * (double)features) : 0;
    return OOMB_OK;
}

void oomb_data_free(struct oomb_data *d)
{
    free(d->teacher);
    d->teacher = NULL;
}

int oomb_data_bytes(int64_t count, int64_t features, size_t *bytes)
{
    int64_t n, b;
    if (count < 0 || features < 0 || __builtin_mul_overflow(count, features, &n) ||
        __builtin_mul_overflow(n, (int64_t)sizeof(float), &b) || (uint64_t)b > SIZE_MAX)
        return OOMB_ERR_INVALID;
    *bytes = (size_t)b;
    return OOMB_OK;
}

static void gen_samples(const struct oomb_data *d, int64_t first, int64_t count, float *x,
                        int32_t *y)
{
    uint64_t key = oomb_splitmix64(d->seed ^ 0x73616d706c657321ULL);
    for (int64_t s = 0; s < count; s++) {
        uint64_t skey = oomb_splitmix64(key ^ (uint64_t)(first + s));
        float *xs = x + s * d->features;
        /* the class whose centre the sample is drawn around */
        int64_t drawn =
            d->classes > 0 ? (int64_t)(oomb_splitmix64(~skey) % (uint64_t)d->classes) : 0;
        const float *mu = d->classes > 0 ? d->teacher + drawn * d->features : NULL;
        for (int64_t f = 0; f < d->features; f++)
            xs[f] = normal(skey, (uint64_t)f) + (mu ? (float)(d->amplitude * mu[f]) : 0.0f);
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

void oomb_data_samples(const struct oomb_data *d, int64_t first, int64_t count, float *x,
                       int32_t *y)
{
    gen_samples(d, first, count, x, y);
}

void oomb_data_eval_samples(const struct oomb_data *d, int64_t first, int64_t count, float *x,
                            int32_t *y)
{
    gen_samples(d, OOMB_DATA_EVAL_BASE + first, count, x, y);
}

/* dst[0..n) ~ U(-bound, bound), value i keyed by (key, i). */
static void fill_uniform(uint64_t key, int64_t n, double bound, float *dst)
{
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = oomb_splitmix64(key ^ oomb_splitmix64((uint64_t)i));
        dst[i] = (float)((2.0 * unit(r) - 1.0) * bound);
    }
}

static double inv_sqrt_fan_in(int64_t fan_in)
{
    return 1.0 / sqrt((double)(fan_in > 0 ? fan_in : 1));
}

/* The body of a residual layer, or n_body 0 when the struct predates it. */
static int body_of(const struct oomb_layer *layer, const struct oomb_layer *const **body)
{
    if (layer->kind != OOMB_LAYER_RESIDUAL ||
        layer->struct_size < offsetof(struct oomb_layer, body) + sizeof layer->body || !layer->body)
        return 0;
    *body = layer->body;
    return layer->n_body;
}

static int64_t n_buffers_of(const struct oomb_layer *layer)
{
    if (layer->struct_size < offsetof(struct oomb_layer, n_buffers) + sizeof layer->n_buffers)
        return 0;
    return layer->n_buffers;
}

/* The seeded parameters of one layer, by the rule its kind has in the
 * layer table (plugins/common/layers.c). */
static void init_params_keyed(uint64_t key, const struct oomb_layer *layer, double gain,
                              float *dst)
{
    int64_t n = layer->n_params;
    const struct oomb_layer_kind_info *info = oomb_layer_kind_info(layer->kind);
    switch (info ? info->init : OOMB_INIT_UNIFORM) {
    case OOMB_INIT_NORM:
        for (int64_t i = 0; i < n; i++)
            dst[i] = i < n / 2 ? 1.0f : 0.0f; /* gamma (C), then beta (C) */
        break;
    case OOMB_INIT_BODY: {
        const struct oomb_layer *const *body = NULL;
        int nb = body_of(layer, &body);
        int64_t off = 0;
        for (int j = 0; j < nb; j++) {
            const struct oomb_layer *b = body[j];
            if (b->n_params < 0 || off + b->n_params > n)
                break;
            uint64_t bkey = oomb_splitmix64(key ^ oomb_splitmix64(0x626f6479ULL + (uint64_t)j));
            init_params_keyed(bkey, b, gain, dst + off);
            off += b->n_params;
        }
        break;
    }
    default:
        /* U(-1/sqrt(fan_in), 1/sqrt(fan_in)); a kind unknown here that declares
         * parameters gets the rule on in_features. */
        fill_uniform(key, n,
                     gain * inv_sqrt_fan_in(info ? oomb_layer_fan_in(layer) : layer->in_features),
                     dst);
        break;
    }
}

void oomb_data_init_params_gain(uint64_t seed, int layer_index, const struct oomb_layer *layer,
                                double gain, float *dst)
{
    uint64_t key =
        oomb_splitmix64(seed ^ oomb_splitmix64(0x706172616d73ULL + (uint64_t)layer_index));
    init_params_keyed(key, layer, gain, dst);
}

void oomb_data_init_params(uint64_t seed, int layer_index, const struct oomb_layer *layer,
                           float *dst)
{
    oomb_data_init_params_gain(seed, layer_index, layer, 1.0, dst);
}

void oomb_data_init_buffers(const struct oomb_layer *layer, float *dst)
{
    int64_t n = n_buffers_of(layer);
    switch (layer->kind) {
    case OOMB_LAYER_BATCHNORM: {
        int64_t C = layer->attrs[0];
        for (int64_t i = 0; i < n; i++)
            dst[i] = i < C ? 0.0f : 1.0f; /* running mean (C), then running variance (C) */
        break;
    }
    case OOMB_LAYER_RESIDUAL: {
        const struct oomb_layer *const *body = NULL;
        int nb = body_of(layer, &body);
        int64_t off = 0;
        for (int j = 0; j < nb; j++) {
            int64_t nbj = n_buffers_of(body[j]);
            if (nbj < 0 || off + nbj > n)
                break;
            oomb_data_init_buffers(body[j], dst + off);
            off += nbj;
        }
        break;
    }
    default:
        for (int64_t i = 0; i < n; i++)
            dst[i] = 0.0f;
        break;
    }
}
