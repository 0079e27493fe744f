/*
 * The convolution cache of the CUDA backend: per geometry, a slot that holds
 * the cuDNN descriptors (kept by ops_cuda_layers.cu in an array parallel to
 * the slots) and, for each of the three passes (forward, backward data,
 * backward filter), cuDNN's heuristic ranking of algorithms with the
 * workspace size of each, queried once. Without it every conv2d call created
 * four descriptors, asked cuDNN for its ranking and the workspace sizes, and
 * destroyed the descriptors again.
 *
 * Plain C without CUDA headers, so that the CPU tests (tests/test_conv_cache.c)
 * build and check it: algorithms are ints (the values of cuDNN's enums), the
 * size query is a callback.
 *
 * Key: every field that goes into the descriptors or the algorithm choice:
 * batch, C, H, W, OC, K, stride, pad, OH, OW, the data type and the math type
 * (the cudnnDataType_t and cudnnMathType_t values). Dilation (1), groups (1),
 * the mode (cross-correlation) and the layout (NCHW) are the same for every
 * convolution of the backend and are not part of it.
 *
 * Capacity OOMB_CONV_CACHE_CAP slots; when all hold a geometry, a miss reuses
 * the least recently used slot that no call holds (acquire/release pin a
 * slot for the duration of one op). The descriptors of a reused slot are set
 * again, not destroyed: they are destroyed with the backend.
 *
 * Threading: none inside. A backend's ops are called from one thread (the
 * run's child process calls its kernels from its main thread; the input
 * pipeline's loader thread only fills host buffers), and each op returns
 * before the next starts, so at most one slot is pinned at a time. Calling
 * one context's ops from several threads at once would need a lock around
 * acquire ... release.
 */
#ifndef OOMB_KERNELS_CUDA_CONV_CACHE_H
#define OOMB_KERNELS_CUDA_CONV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OOMB_CONV_CACHE_CAP 32
/* Ranked algorithms kept per pass: as many as the ranking query asks for. */
#define OOMB_CONV_RANK_MAX 32

enum oomb_conv_pass { OOMB_CONV_FWD, OOMB_CONV_BWD_DATA, OOMB_CONV_BWD_FILTER, OOMB_CONV_PASSES };

struct oomb_conv_key {
    int64_t B, C, H, W, OC, K, stride, pad, OH, OW;
    int64_t dtype, math;
};

/* One candidate of a ranking. size_state: 0 not asked yet, 1 `bytes` known,
 * -1 the size query failed (the algorithm does not apply). */
struct oomb_conv_algo {
    int32_t algo;
    int8_t deterministic;
    int8_t size_state;
    size_t bytes;
};

/* The usable entries of cuDNN's ranking of one pass, in rank order (entries
 * whose status is not success or whose math type is not allowed are left
 * out when the ranking is stored), and the pass's fixed fallback. */
struct oomb_conv_ranking {
    int valid; /* 0: not queried yet for this slot's geometry */
    int n;
    struct oomb_conv_algo cand[OOMB_CONV_RANK_MAX];
    struct oomb_conv_algo fallback;
};

struct oomb_conv_slot {
    struct oomb_conv_key key;
    uint64_t last_use; /* 0: the slot is empty */
    int pins;
    struct oomb_conv_ranking rank[OOMB_CONV_PASSES];
};

struct oomb_conv_cache {
    uint64_t clock;
    uint64_t hits, misses, evictions;
    struct oomb_conv_slot slot[OOMB_CONV_CACHE_CAP];
};

/* The workspace in bytes that algorithm `algo` needs for the slot's
 * geometry: 0 and *bytes set, or non-zero when the algorithm does not apply. */
typedef int (*oomb_conv_size_fn)(void *user, int32_t algo, size_t *bytes);

/* Empties every slot and zeroes the counters. c is the caller's (embedded in
 * the CUDA context); it owns no memory, so there is no _free. */
void oomb_conv_cache_init(struct oomb_conv_cache *c);

/* The slot for `key`, pinned until oomb_conv_cache_release. Returns its index
 * with *hit = 1 when the key was there; otherwise stores the key in an empty
 * slot, or else in the least recently used unpinned one (*evicted = 1: it
 * held another geometry), clears its rankings and returns it with *hit = 0:
 * the caller then sets the slot's descriptors, and calls
 * oomb_conv_cache_drop if that fails. Returns -1 when every slot is pinned
 * (never with one thread, see the top of the file). evicted may be NULL. */
int oomb_conv_cache_acquire(struct oomb_conv_cache *c, const struct oomb_conv_key *key, int *hit,
                            int *evicted);

/* Unpins a slot that acquire returned. */
void oomb_conv_cache_release(struct oomb_conv_cache *c, int slot);

/* Unpins the slot and empties it: its descriptors could not be set, so the
 * next acquire of the key is a miss. */
void oomb_conv_cache_drop(struct oomb_conv_cache *c, int slot);

/* Stores a ranking: n entries (n <= OOMB_CONV_RANK_MAX) of which usable[i]
 * says whether entry i is kept (status success and math type allowed), and
 * the fallback algorithm. Marks the ranking valid. */
void oomb_conv_ranking_set(struct oomb_conv_ranking *r, int n, const int32_t *algo,
                           const int *usable, const int *deterministic, int32_t fallback);

/* Picks an algorithm from a stored ranking for a workspace of at most
 * `limit` bytes: the first deterministic candidate that fits, then the first
 * candidate that fits, then the fallback if it fits. Sizes come from
 * size_of(user, ...) the first time a candidate is looked at and from the
 * ranking after that. Returns 1 with *algo and *need set, 0 when nothing
 * fits. */
int oomb_conv_pick(struct oomb_conv_ranking *r, size_t limit, oomb_conv_size_fn size_of, void *user,
                   int32_t *algo, size_t *need);

#ifdef __cplusplus
}
#endif

#endif
