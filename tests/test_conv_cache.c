/*
 * The convolution cache of the CUDA backend (kernels/cuda/conv_cache.c),
 * which is plain C and runs here without a GPU: slot lookup by the full key,
 * least recently used replacement that never takes a pinned slot, and the
 * algorithm choice over a stored ranking, checked against a reference that
 * asks for every size on every call, as the backend did before the cache.
 */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "conv_cache.h"

static struct oomb_conv_cache cache; /* ~55 KB: not on the stack */

static struct oomb_conv_key key_n(int64_t n)
{
    struct oomb_conv_key k;
    memset(&k, 0, sizeof k);
    k.B = 8;
    k.C = 3 + n;
    k.H = 32;
    k.W = 32;
    k.OC = 16;
    k.K = 3;
    k.stride = 1;
    k.pad = 1;
    k.OH = 32;
    k.OW = 32;
    k.dtype = 0;
    k.math = 2;
    return k;
}

static int acquire(const struct oomb_conv_key *k, int *hit, int *evicted)
{
    int s = oomb_conv_cache_acquire(&cache, k, hit, evicted);
    cr_assert(s >= 0 && s < OOMB_CONV_CACHE_CAP, "acquire returned %d", s);
    return s;
}

Test(conv_cache, miss_then_hit_same_slot)
{
    oomb_conv_cache_init(&cache);
    struct oomb_conv_key k = key_n(0);
    int hit = -1, ev = -1;
    int s = acquire(&k, &hit, &ev);
    cr_assert_eq(hit, 0);
    cr_assert_eq(ev, 0);
    cr_assert_eq(cache.slot[s].pins, 1);
    oomb_conv_cache_release(&cache, s);
    cr_assert_eq(cache.slot[s].pins, 0);
    int s2 = acquire(&k, &hit, NULL);
    cr_assert_eq(hit, 1);
    cr_assert_eq(s2, s);
    oomb_conv_cache_release(&cache, s2);
    cr_assert_eq(cache.hits, 1);
    cr_assert_eq(cache.misses, 1);
    cr_assert_eq(cache.evictions, 0);
}

/* Each field of the key on its own makes another entry. */
Test(conv_cache, every_key_field_counts)
{
    oomb_conv_cache_init(&cache);
    const struct oomb_conv_key base = key_n(0);
    int hit = 0;
    int s0 = acquire(&base, &hit, NULL);
    oomb_conv_cache_release(&cache, s0);
#define OFF(f) offsetof(struct oomb_conv_key, f)
    static const size_t field[] = {OFF(B),      OFF(C),   OFF(H),  OFF(W),  OFF(OC),    OFF(K),
                                   OFF(stride), OFF(pad), OFF(OH), OFF(OW), OFF(dtype), OFF(math)};
#undef OFF
    const size_t n_fields = sizeof field / sizeof field[0];
    cr_assert_eq(sizeof base, n_fields * sizeof(int64_t),
                 "a field was added to the key: add it to this test");
    for (size_t f = 0; f < n_fields; f++) {
        struct oomb_conv_key k = base;
        int64_t v;
        memcpy(&v, (char *)&k + field[f], sizeof v);
        v += 1;
        memcpy((char *)&k + field[f], &v, sizeof v);
        int s = acquire(&k, &hit, NULL);
        cr_assert_eq(hit, 0, "key field %zu changed but the lookup hit", f);
        cr_assert_neq(s, s0, "key field %zu: the base entry was replaced", f);
        oomb_conv_cache_release(&cache, s);
    }
    int s = acquire(&base, &hit, NULL);
    cr_assert_eq(hit, 1);
    cr_assert_eq(s, s0);
    oomb_conv_cache_release(&cache, s);
}

Test(conv_cache, full_cache_replaces_least_recently_used)
{
    oomb_conv_cache_init(&cache);
    int slot_of[OOMB_CONV_CACHE_CAP];
    int hit = 0, ev = 0;
    for (int i = 0; i < OOMB_CONV_CACHE_CAP; i++) {
        struct oomb_conv_key k = key_n(i);
        slot_of[i] = acquire(&k, &hit, &ev);
        cr_assert_eq(hit, 0);
        cr_assert_eq(ev, 0, "entry %d evicted while the cache had room", i);
        oomb_conv_cache_release(&cache, slot_of[i]);
    }
    /* touch 0 and 1: entry 2 is now the least recently used */
    for (int i = 0; i < 2; i++) {
        struct oomb_conv_key k = key_n(i);
        oomb_conv_cache_release(&cache, acquire(&k, &hit, NULL));
        cr_assert_eq(hit, 1);
    }
    struct oomb_conv_key k_new = key_n(1000);
    int s = acquire(&k_new, &hit, &ev);
    cr_assert_eq(hit, 0);
    cr_assert_eq(ev, 1);
    cr_assert_eq(s, slot_of[2], "replaced slot %d, expected entry 2's slot %d", s, slot_of[2]);
    oomb_conv_cache_release(&cache, s);
    struct oomb_conv_key k2 = key_n(2);
    s = acquire(&k2, &hit, &ev);
    cr_assert_eq(hit, 0, "entry 2 was replaced and cannot hit");
    cr_assert_eq(s, slot_of[3], "the next least recently used is entry 3");
    oomb_conv_cache_release(&cache, s);
    for (int i = 0; i < 2; i++) {
        struct oomb_conv_key k = key_n(i);
        oomb_conv_cache_release(&cache, acquire(&k, &hit, NULL));
        cr_assert_eq(hit, 1, "recently used entry %d was replaced", i);
    }
    cr_assert_eq(cache.evictions, 2);
}

/* A pinned slot (an op in progress) is never given to another key, even when
 * it is the least recently used; with every slot pinned, acquire refuses. */
Test(conv_cache, pinned_slot_is_never_replaced)
{
    oomb_conv_cache_init(&cache);
    int hit = 0;
    struct oomb_conv_key k0 = key_n(0);
    int pinned = acquire(&k0, &hit, NULL); /* held, the oldest entry */
    for (int i = 1; i < 3 * OOMB_CONV_CACHE_CAP; i++) {
        struct oomb_conv_key k = key_n(i);
        int s = acquire(&k, &hit, NULL);
        cr_assert_neq(s, pinned, "key %d took the pinned slot", i);
        oomb_conv_cache_release(&cache, s);
    }
    cr_assert_eq(cache.slot[pinned].pins, 1);
    oomb_conv_cache_release(&cache, pinned);
    oomb_conv_cache_release(&cache, acquire(&k0, &hit, NULL));
    cr_assert_eq(hit, 1, "the pinned entry was kept");

    oomb_conv_cache_init(&cache);
    for (int i = 0; i < OOMB_CONV_CACHE_CAP; i++) {
        struct oomb_conv_key k = key_n(i);
        (void)acquire(&k, &hit, NULL); /* all held */
    }
    struct oomb_conv_key k_new = key_n(1000);
    cr_assert_eq(oomb_conv_cache_acquire(&cache, &k_new, &hit, NULL), -1);
    /* a key that is there is still found: pins count */
    struct oomb_conv_key k5 = key_n(5);
    int s = oomb_conv_cache_acquire(&cache, &k5, &hit, NULL);
    cr_assert(s >= 0);
    cr_assert_eq(hit, 1);
    cr_assert_eq(cache.slot[s].pins, 2);
}

Test(conv_cache, drop_empties_the_slot)
{
    oomb_conv_cache_init(&cache);
    struct oomb_conv_key k = key_n(7);
    int hit = 0;
    int s = acquire(&k, &hit, NULL);
    oomb_conv_cache_drop(&cache, s); /* its descriptors could not be set */
    cr_assert_eq(cache.slot[s].pins, 0);
    cr_assert_eq(cache.slot[s].last_use, 0);
    s = acquire(&k, &hit, NULL);
    cr_assert_eq(hit, 0, "a dropped key must miss");
    oomb_conv_cache_release(&cache, s);
}

/* ------------------------------------------------------ algorithm choice ---- */

#define N_ALGOS 8

/* A size query with a fixed answer per algorithm (-1: does not apply) that
 * counts its calls. */
struct sizes {
    long long bytes[N_ALGOS];
    int calls[N_ALGOS];
};

static int size_of(void *user, int32_t algo, size_t *bytes)
{
    struct sizes *z = user;
    cr_assert(algo >= 0 && algo < N_ALGOS, "size asked for algorithm %d", (int)algo);
    z->calls[algo]++;
    if (z->bytes[algo] < 0)
        return 1;
    *bytes = (size_t)z->bytes[algo];
    return 0;
}

/* The choice as ops_cuda_layers.cu made it before the cache (pick_algo):
 * over the raw ranking, every size asked again on every call. */
static int ref_pick(int n, const int32_t *algo, const int *usable, const int *det, int32_t fallback,
                    const struct sizes *z, size_t limit, int32_t *out, size_t *need)
{
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            if (!usable[i])
                continue;
            if (pass == 0 && !det[i])
                continue;
            long long b = z->bytes[algo[i]];
            if (b < 0 || (size_t)b > limit)
                continue;
            *out = algo[i];
            *need = (size_t)b;
            return 1;
        }
    }
    long long b = z->bytes[fallback];
    if (b >= 0 && (size_t)b <= limit) {
        *out = fallback;
        *need = (size_t)b;
        return 1;
    }
    return 0;
}

Test(conv_cache, pick_prefers_deterministic_then_any_then_fallback)
{
    const int32_t algo[4] = {3, 1, 4, 2};
    const int usable[4] = {1, 0, 1, 1}; /* 1: failed status or TF32 math */
    const int det[4] = {0, 1, 1, 0};
    struct sizes z = {.bytes = {100, 0, 5000, 1000, 2000, -1, -1, -1}};
    struct oomb_conv_ranking r;
    oomb_conv_ranking_set(&r, 4, algo, usable, det, 0);
    cr_assert_eq(r.valid, 1);
    cr_assert_eq(r.n, 3, "the unusable entry is left out");
    int32_t a = -1;
    size_t need = 0;
    /* 4 (deterministic) fits */
    cr_assert_eq(oomb_conv_pick(&r, 1 << 20, size_of, &z, &a, &need), 1);
    cr_assert_eq(a, 4);
    cr_assert_eq(need, 2000);
    /* 4 does not fit: the first that fits, 3 (ranked first, non-deterministic) */
    cr_assert_eq(oomb_conv_pick(&r, 1500, size_of, &z, &a, &need), 1);
    cr_assert_eq(a, 3);
    cr_assert_eq(need, 1000);
    /* none of the ranking fits: the fallback 0 (100 bytes) */
    cr_assert_eq(oomb_conv_pick(&r, 500, size_of, &z, &a, &need), 1);
    cr_assert_eq(a, 0);
    cr_assert_eq(need, 100);
    /* nothing fits */
    cr_assert_eq(oomb_conv_pick(&r, 50, size_of, &z, &a, &need), 0);
    /* every size was asked once, the unusable algorithm 1 never */
    cr_assert_eq(z.calls[0], 1);
    cr_assert_eq(z.calls[1], 0);
    cr_assert_eq(z.calls[2], 1);
    cr_assert_eq(z.calls[3], 1);
    cr_assert_eq(z.calls[4], 1);
}

/* A size query that fails (the algorithm does not apply) is not asked again. */
Test(conv_cache, failed_size_query_is_remembered)
{
    const int32_t algo[2] = {5, 2};
    const int usable[2] = {1, 1};
    const int det[2] = {1, 1};
    struct sizes z = {.bytes = {0, 0, 64, 0, 0, -1, 0, 0}};
    struct oomb_conv_ranking r;
    oomb_conv_ranking_set(&r, 2, algo, usable, det, 0);
    int32_t a = -1;
    size_t need = 0;
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(oomb_conv_pick(&r, 1024, size_of, &z, &a, &need), 1);
        cr_assert_eq(a, 2);
        cr_assert_eq(need, 64);
    }
    cr_assert_eq(z.calls[5], 1);
    cr_assert_eq(z.calls[2], 1);
}

/* An entry given to a new key starts with no ranking. */
Test(conv_cache, new_entry_has_no_ranking)
{
    oomb_conv_cache_init(&cache);
    int hit = 0;
    for (int i = 0; i < OOMB_CONV_CACHE_CAP; i++) {
        struct oomb_conv_key k = key_n(i);
        int s = acquire(&k, &hit, NULL);
        const int32_t algo[1] = {1};
        const int one[1] = {1};
        for (int p = 0; p < OOMB_CONV_PASSES; p++)
            oomb_conv_ranking_set(&cache.slot[s].rank[p], 1, algo, one, one, 0);
        oomb_conv_cache_release(&cache, s);
    }
    struct oomb_conv_key k = key_n(1000);
    int ev = 0;
    int s = acquire(&k, &hit, &ev);
    cr_assert_eq(ev, 1);
    for (int p = 0; p < OOMB_CONV_PASSES; p++)
        cr_assert_eq(cache.slot[s].rank[p].valid, 0, "pass %d kept the old key's ranking", p);
    oomb_conv_cache_release(&cache, s);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next_u32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* Random rankings and limits: the cached choice equals the reference's on
 * every call, and each size is asked at most once per ranking. */
Test(conv_cache, pick_matches_reference_on_random_rankings)
{
    for (int trial = 0; trial < 2000; trial++) {
        int n = (int)(next_u32() % (N_ALGOS + 1));
        int32_t algo[N_ALGOS];
        int usable[N_ALGOS], det[N_ALGOS];
        /* a ranking is a permutation of some of the algorithms */
        int32_t perm[N_ALGOS];
        for (int i = 0; i < N_ALGOS; i++)
            perm[i] = i;
        for (int i = N_ALGOS - 1; i > 0; i--) {
            int j = (int)(next_u32() % (uint32_t)(i + 1));
            int32_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (int i = 0; i < n; i++) {
            algo[i] = perm[i];
            usable[i] = next_u32() % 4 != 0;
            det[i] = next_u32() % 2;
        }
        int32_t fallback = (int32_t)(next_u32() % N_ALGOS);
        struct sizes z;
        memset(&z, 0, sizeof z);
        for (int i = 0; i < N_ALGOS; i++)
            z.bytes[i] = next_u32() % 5 == 0 ? -1 : (long long)(next_u32() % 4096);
        struct oomb_conv_ranking r;
        oomb_conv_ranking_set(&r, n, algo, usable, det, fallback);
        for (int call = 0; call < 6; call++) {
            size_t limit = next_u32() % 5000;
            int32_t a = -1, ra = -1;
            size_t need = 0, rneed = 0;
            int got = oomb_conv_pick(&r, limit, size_of, &z, &a, &need);
            int want = ref_pick(n, algo, usable, det, fallback, &z, limit, &ra, &rneed);
            cr_assert_eq(got, want, "trial %d call %d: found %d, reference %d", trial, call, got,
                         want);
            if (want) {
                cr_assert_eq(a, ra, "trial %d call %d limit %zu: algorithm %d, reference %d", trial,
                             call, limit, (int)a, (int)ra);
                cr_assert_eq(need, rneed);
            }
        }
        for (int i = 0; i < N_ALGOS; i++)
            cr_assert(z.calls[i] <= 2, "trial %d: size of %d asked %d times", trial, i,
                      z.calls[i]); /* once as a candidate, once as the fallback */
    }
}
