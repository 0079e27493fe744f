/*
 * The convolution cache of the CUDA backend: slot lookup with least recently
 * used replacement, and the algorithm choice over a stored ranking. See
 * conv_cache.h; plain C, also built into the CPU test tests/test_conv_cache.c.
 */
#include "conv_cache.h"

#include <string.h>

void oomb_conv_cache_init(struct oomb_conv_cache *c)
{
    memset(c, 0, sizeof *c);
}

static int key_equal(const struct oomb_conv_key *a, const struct oomb_conv_key *b)
{
    return a->B == b->B && a->C == b->C && a->H == b->H && a->W == b->W && a->OC == b->OC &&
           a->K == b->K && a->stride == b->stride && a->pad == b->pad && a->OH == b->OH &&
           a->OW == b->OW && a->dtype == b->dtype && a->math == b->math;
}

int oomb_conv_cache_acquire(struct oomb_conv_cache *c, const struct oomb_conv_key *key, int *hit,
                            int *evicted)
{
    *hit = 0;
    if (evicted)
        *evicted = 0;
    int victim = -1;
    for (int i = 0; i < OOMB_CONV_CACHE_CAP; i++) {
        struct oomb_conv_slot *s = &c->slot[i];
        if (s->last_use && key_equal(&s->key, key)) {
            s->last_use = ++c->clock;
            s->pins++;
            c->hits++;
            *hit = 1;
            return i;
        }
        if (s->pins)
            continue;
        /* an empty slot (last_use 0) wins over any used one */
        if (victim < 0 || s->last_use < c->slot[victim].last_use)
            victim = i;
    }
    if (victim < 0)
        return -1;
    struct oomb_conv_slot *s = &c->slot[victim];
    if (s->last_use) {
        c->evictions++;
        if (evicted)
            *evicted = 1;
    }
    c->misses++;
    memset(s, 0, sizeof *s);
    s->key = *key;
    s->last_use = ++c->clock;
    s->pins = 1;
    return victim;
}

void oomb_conv_cache_release(struct oomb_conv_cache *c, int slot)
{
    if (slot >= 0 && slot < OOMB_CONV_CACHE_CAP && c->slot[slot].pins > 0)
        c->slot[slot].pins--;
}

void oomb_conv_cache_drop(struct oomb_conv_cache *c, int slot)
{
    if (slot >= 0 && slot < OOMB_CONV_CACHE_CAP)
        memset(&c->slot[slot], 0, sizeof c->slot[slot]);
}

void oomb_conv_ranking_set(struct oomb_conv_ranking *r, int n, const int32_t *algo,
                           const int *usable, const int *deterministic, int32_t fallback)
{
    memset(r, 0, sizeof *r);
    if (n > OOMB_CONV_RANK_MAX)
        n = OOMB_CONV_RANK_MAX;
    for (int i = 0; i < n; i++) {
        if (!usable[i])
            continue;
        struct oomb_conv_algo *a = &r->cand[r->n++];
        a->algo = algo[i];
        a->deterministic = deterministic[i] ? 1 : 0;
    }
    r->fallback.algo = fallback;
    r->valid = 1;
}

/* Whether a fits in limit, asking size_of the first time. */
static int fits(struct oomb_conv_algo *a, size_t limit, oomb_conv_size_fn size_of, void *user)
{
    if (a->size_state == 0) {
        size_t bytes = 0;
        if (size_of(user, a->algo, &bytes) == 0) {
            a->bytes = bytes;
            a->size_state = 1;
        } else {
            a->size_state = -1;
        }
    }
    return a->size_state == 1 && a->bytes <= limit;
}

int oomb_conv_pick(struct oomb_conv_ranking *r, size_t limit, oomb_conv_size_fn size_of, void *user,
                   int32_t *algo, size_t *need)
{
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < r->n; i++) {
            struct oomb_conv_algo *a = &r->cand[i];
            if (pass == 0 && !a->deterministic)
                continue;
            if (!fits(a, limit, size_of, user))
                continue;
            *algo = a->algo;
            *need = a->bytes;
            return 1;
        }
    }
    if (fits(&r->fallback, limit, size_of, user)) {
        *algo = r->fallback.algo;
        *need = r->fallback.bytes;
        return 1;
    }
    return 0;
}
