/*
 * The caching-allocator model (harness/src/cachealloc.c) against traces
 * worked out by hand from PyTorch's rules (docs/memory-model.md, "The
 * caching allocator"): rounding, pools, segment sizes, best fit, splitting,
 * merging, fragmentation, the out-of-memory retries, each
 * PYTORCH_CUDA_ALLOC_CONF option, empty_cache, misuse, and a long random
 * trace checked against the model's invariants after every operation.
 *
 * Notation in the comments: M = 1 MiB; [a 5 | 15 free] is a segment holding
 * request a in a 5 MiB block followed by a 15 MiB cached block; U is
 * unmapped address space (expandable segments).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "cachealloc.h"

#define M (1024ull * 1024ull)

static struct oomb_cachealloc *make(const struct oomb_cachealloc_conf *conf, uint64_t limit)
{
    struct oomb_cachealloc *m = NULL;
    cr_assert_eq(oomb_cachealloc_create(conf, limit, &m), OOMB_OK);
    cr_assert_not_null(m);
    return m;
}

static struct oomb_cachealloc_stats stats(const struct oomb_cachealloc *m)
{
    struct oomb_cachealloc_stats s;
    cr_assert_eq(oomb_cachealloc_check(m), OOMB_OK);
    oomb_cachealloc_get_stats(m, &s);
    return s;
}

static void must_malloc(struct oomb_cachealloc *m, uint64_t id, uint64_t bytes)
{
    cr_assert_eq(oomb_cachealloc_malloc(m, id, bytes), OOMB_OK, "malloc(%llu, %llu)",
                 (unsigned long long)id, (unsigned long long)bytes);
    cr_assert_eq(oomb_cachealloc_check(m), OOMB_OK);
}

static void must_free(struct oomb_cachealloc *m, uint64_t id)
{
    cr_assert_eq(oomb_cachealloc_free(m, id), OOMB_OK, "free(%llu)", (unsigned long long)id);
    cr_assert_eq(oomb_cachealloc_check(m), OOMB_OK);
}

/* Segments held now (without expandable segments). */
static uint64_t segments(const struct oomb_cachealloc_stats *s)
{
    return s->n_segment_allocs - s->n_segment_frees;
}

/*
 * Small requests (<= 1 MiB after rounding) share 2 MiB segments.
 *   100 B   -> 512 (the minimum); no cached block: a 2 MiB segment
 *              [512 | 2097152 - 512 = 2096640 free]
 *   1000 B  -> 1024 (multiple of 512), split off the free block:
 *              free 2096640 - 1024 = 2095616
 *   1 MiB   -> 1048576, still the small pool (<= kSmallSize): free
 *              2095616 - 1048576 = 1047040 (>= 512: split)
 *   1046500 -> 2044 x 512 = 1046528; 1047040 - 1046528 = 512 left, which
 *              is >= 512: split. allocated 2 MiB - 512, largest free 512
 *   100 B   -> 512: the last block exactly. allocated 2 MiB = reserved
 *   100 B   -> nothing cached: a second 2 MiB segment, reserved 4 MiB
 *   free the 1024 block, then 600 B -> 1024: best fit is that block (1024)
 *              rather than the 2096640 one; no new segment.
 */
Test(cachealloc, small_requests_share_2mib_segments)
{
    struct oomb_cachealloc *m = make(NULL, 0);
    struct oomb_cachealloc_stats s;

    must_malloc(m, 1, 100);
    s = stats(m);
    cr_assert_eq(s.reserved, 2 * M);
    cr_assert_eq(s.allocated, 512);
    cr_assert_eq(s.requested, 100);
    cr_assert_eq(s.largest_free, 2096640);
    cr_assert_eq(s.n_segment_allocs, 1);

    must_malloc(m, 2, 1000);
    s = stats(m);
    cr_assert_eq(s.allocated, 1536);
    cr_assert_eq(s.largest_free, 2095616);

    must_malloc(m, 3, M);
    s = stats(m);
    cr_assert_eq(s.allocated, 1050112);
    cr_assert_eq(s.largest_free, 1047040);
    cr_assert_eq(s.reserved, 2 * M);

    must_malloc(m, 4, 1046500);
    s = stats(m);
    cr_assert_eq(s.allocated, 2 * M - 512);
    cr_assert_eq(s.requested, 100 + 1000 + M + 1046500);
    cr_assert_eq(s.largest_free, 512);

    must_malloc(m, 5, 100);
    s = stats(m);
    cr_assert_eq(s.allocated, 2 * M);
    cr_assert_eq(s.largest_free, 0);
    cr_assert_eq(segments(&s), 1);

    must_malloc(m, 8, 100);
    s = stats(m);
    cr_assert_eq(s.reserved, 4 * M);
    cr_assert_eq(segments(&s), 2);
    cr_assert_eq(s.largest_free, 2096640);

    must_free(m, 2);
    must_malloc(m, 6, 600);
    s = stats(m);
    cr_assert_eq(s.reserved, 4 * M);
    cr_assert_eq(s.n_segment_allocs, 2);
    cr_assert_eq(s.largest_free, 2096640); /* the big block was not touched */
    oomb_cachealloc_destroy(m);

    /* 1 MiB exactly is still small: a 2 MiB segment, half of it left. */
    m = make(NULL, 0);
    must_malloc(m, 1, M);
    s = stats(m);
    cr_assert_eq(s.reserved, 2 * M);
    cr_assert_eq(s.largest_free, M);
    oomb_cachealloc_destroy(m);
}

/*
 * A 1-10 MiB request makes a 20 MiB segment (kLargeBuffer) that serves the
 * next large requests by splitting; a remainder of 1 MiB or less stays with
 * the block.
 *   5 M    -> [a 5 | 15 free]          reserved 20, allocated 5
 *   3 M    -> [a 5 | b 3 | 12 free]    allocated 8, largest free 12
 *   11.5 M -> the 12 M block; 0.5 M left is not > 1 M: no split.
 *             allocated 5 + 3 + 12 = 20, requested 19.5, largest free 0
 *   1.5 M  -> nothing cached: a new 20 M segment, split [1.5 | 18.5 free]
 *             reserved 40, allocated 21.5, reserved - allocated 18.5
 */
Test(cachealloc, medium_request_makes_20mib_segment_and_splits_it)
{
    struct oomb_cachealloc *m = make(NULL, 0);
    struct oomb_cachealloc_stats s;

    must_malloc(m, 1, 5 * M);
    s = stats(m);
    cr_assert_eq(s.reserved, 20 * M);
    cr_assert_eq(s.allocated, 5 * M);
    cr_assert_eq(s.largest_free, 15 * M);

    must_malloc(m, 2, 3 * M);
    s = stats(m);
    cr_assert_eq(s.reserved, 20 * M);
    cr_assert_eq(s.allocated, 8 * M);
    cr_assert_eq(s.largest_free, 12 * M);
    cr_assert_eq(s.n_segment_allocs, 1);

    must_malloc(m, 3, 11 * M + M / 2);
    s = stats(m);
    cr_assert_eq(s.allocated, 20 * M);
    cr_assert_eq(s.requested, 19 * M + M / 2);
    cr_assert_eq(s.largest_free, 0);
    cr_assert_eq(s.reserved, 20 * M);

    must_malloc(m, 4, M + M / 2);
    s = stats(m);
    cr_assert_eq(s.reserved, 40 * M);
    cr_assert_eq(s.n_segment_allocs, 2);
    cr_assert_eq(s.allocated, 21 * M + M / 2);
    cr_assert_eq(s.largest_free, 18 * M + M / 2);
    oomb_cachealloc_destroy(m);
}

/*
 * Requests of 10 MiB or more get a segment of their size rounded up to
 * 2 MiB (kRoundLarge).
 *   30 M   -> a 30 M segment, nothing left: reserved 30
 *   30.5 M -> a 32 M segment; 1.5 M left > 1 M: split [30.5 | 1.5 free]
 *             reserved 62, allocated 60.5, largest free 1.5
 *   31 M   -> the 1.5 M block is too small: a 32 M segment; 1 M left is
 *             not > 1 M: the request gets all 32 M.
 *             reserved 94, allocated 92.5, requested 91.5
 * Peaks: reserved peaked at 94 with 91.5 requested.
 */
Test(cachealloc, large_requests_round_to_2mib_segments)
{
    struct oomb_cachealloc *m = make(NULL, 0);
    struct oomb_cachealloc_stats s;

    must_malloc(m, 1, 30 * M);
    s = stats(m);
    cr_assert_eq(s.reserved, 30 * M);
    cr_assert_eq(s.allocated, 30 * M);
    cr_assert_eq(s.largest_free, 0);

    must_malloc(m, 2, 30 * M + M / 2);
    s = stats(m);
    cr_assert_eq(s.reserved, 62 * M);
    cr_assert_eq(s.allocated, 60 * M + M / 2);
    cr_assert_eq(s.largest_free, M + M / 2);

    must_malloc(m, 3, 31 * M);
    s = stats(m);
    cr_assert_eq(s.reserved, 94 * M);
    cr_assert_eq(s.allocated, 92 * M + M / 2);
    cr_assert_eq(s.requested, 91 * M + M / 2);
    cr_assert_eq(s.largest_free, M + M / 2);
    cr_assert_eq(s.n_segment_allocs, 3);

    must_free(m, 1);
    must_free(m, 2);
    must_free(m, 3);
    s = stats(m);
    cr_assert_eq(s.reserved_peak, 94 * M);
    cr_assert_eq(s.requested_at_reserved_peak, 91 * M + M / 2);
    cr_assert_eq(s.allocated_peak, 92 * M + M / 2);
    cr_assert_eq(s.allocated, 0);
    cr_assert_eq(s.reserved, 94 * M); /* cached, not given back */
    oomb_cachealloc_destroy(m);
}

/*
 * Best fit: segments of 12, 16 and 14 M (each request's own size), all
 * freed.
 *   13 M -> the smallest block that fits is 14 M; 1 M left: no split.
 *   11 M -> 12 M, 1 M left: no split. allocated 14 + 12 = 26
 *   17 M -> nothing fits (16 is the largest): a new 18 M segment.
 *           reserved 12 + 16 + 14 + 18 = 60
 */
Test(cachealloc, best_fit_takes_the_smallest_block_that_fits)
{
    struct oomb_cachealloc *m = make(NULL, 0);
    struct oomb_cachealloc_stats s;

    must_malloc(m, 1, 12 * M);
    must_malloc(m, 2, 16 * M);
    must_malloc(m, 3, 14 * M);
    must_free(m, 1);
    must_free(m, 2);
    must_free(m, 3);
    s = stats(m);
    cr_assert_eq(s.reserved, 42 * M);
    cr_assert_eq(s.largest_free, 16 * M);

    must_malloc(m, 4, 13 * M);
    must_malloc(m, 5, 11 * M);
    s = stats(m);
    cr_assert_eq(s.allocated, 26 * M);
    cr_assert_eq(s.requested, 24 * M);
    cr_assert_eq(s.n_segment_allocs, 3);
    cr_assert_eq(s.largest_free, 16 * M);

    must_malloc(m, 6, 17 * M);
    s = stats(m);
    cr_assert_eq(s.n_segment_allocs, 4);
    cr_assert_eq(s.reserved, 60 * M);
    cr_assert_eq(s.largest_free, 16 * M);
    oomb_cachealloc_destroy(m);
}

/*
 * Equal sizes: the lowest address wins (BlockComparatorSize).
 *   four 4 M requests: [a 0-4 | b 4-8 | c 8-12 | d 12-16 | 4 free 16-20]
 *   free a and c: three 4 M blocks cached, at 0, 8 and 16, none adjacent
 *   e 4 M -> takes the one at 0
 *   free d (12-16): merges with 8-12 and 16-20 into one 12 M block.
 *   (Had e taken the block at 8, d would merge only with 16-20: 8 M.)
 */
Test(cachealloc, equal_sizes_take_the_lowest_address)
{
    struct oomb_cachealloc *m = make(NULL, 0);
    struct oomb_cachealloc_stats s;

    for (uint64_t id = 1; id <= 4; id++)
        must_malloc(m, id, 4 * M);
    s = stats(m);
    cr_assert_eq(s.reserved, 20 * M);
    cr_assert_eq(s.largest_free, 4 * M);
    must_free(m, 1);
    must_free(m, 3);
    must_malloc(m, 5, 4 * M);
    must_free(m, 4);
    s = stats(m);
    cr_assert_eq(s.largest_free, 12 * M);
    cr_assert_eq(s.allocated, 8 * M);
    cr_assert_eq(s.n_segment_allocs, 1);
    oomb_cachealloc_destroy(m);
}

/*
 * A freed block merges with free neighbours on both sides.
 *   [a 4 | b 4 | c 4 | d 4 | 4 free]; free a, c: largest free 4
 *   free b: a + b + c = 12 M in one block
 *   free d: the whole 20 M segment is one free block again
 *   empty_cache: it is released, reserved 0
 */
Test(cachealloc, free_merges_with_both_neighbours)
{
    struct oomb_cachealloc *m = make(NULL, 0);
    struct oomb_cachealloc_stats s;

    for (uint64_t id = 1; id <= 4; id++)
        must_malloc(m, id, 4 * M);
    must_free(m, 1);
    must_free(m, 3);
    s = stats(m);
    cr_assert_eq(s.largest_free, 4 * M);
    must_free(m, 2);
    s = stats(m);
    cr_assert_eq(s.largest_free, 12 * M);
    must_free(m, 4);
    s = stats(m);
    cr_assert_eq(s.largest_free, 20 * M);
    cr_assert_eq(s.allocated, 0);
    oomb_cachealloc_empty_cache(m);
    s = stats(m);
    cr_assert_eq(s.reserved, 0);
    cr_assert_eq(s.n_segment_frees, 1);
    cr_assert_eq(s.largest_free, 0);
    oomb_cachealloc_destroy(m);
}

/* The fragmentation trace: a 8 M, b 8 M, c 4 M, free a and c. */
static void fragment(struct oomb_cachealloc *m)
{
    must_malloc(m, 1, 8 * M); /* [a 8 | 12 free] */
    must_malloc(m, 2, 8 * M); /* [a 8 | b 8 | 4 free] */
    must_malloc(m, 3, 4 * M); /* [a 8 | b 8 | c 4]: exact fit */
    must_free(m, 1);
    must_free(m, 3); /* [8 free | b 8 | 4 free] */
}

/*
 * Fragmentation: 12 M cached in the segment, but in two blocks (8 and 4),
 * so a 10 M request makes a new 10 M segment.
 *   reserved 20 + 10 = 30, allocated 8 + 10 = 18, cached 12, largest 8
 */
Test(cachealloc, fragmented_free_space_needs_a_new_segment)
{
    struct oomb_cachealloc *m = make(NULL, 0);
    struct oomb_cachealloc_stats s;

    fragment(m);
    s = stats(m);
    cr_assert_eq(s.reserved - s.allocated, 12 * M);
    cr_assert_eq(s.largest_free, 8 * M);
    must_malloc(m, 4, 10 * M);
    s = stats(m);
    cr_assert_eq(s.reserved, 30 * M);
    cr_assert_eq(s.allocated, 18 * M);
    cr_assert_eq(s.reserved - s.allocated, 12 * M);
    cr_assert_eq(s.largest_free, 8 * M);
    cr_assert_eq(segments(&s), 2);
    oomb_cachealloc_destroy(m);
}

/*
 * The same trace under a 20 MiB limit: the 10 M segment would take
 * reserved to 30 > 20. PyTorch then releases oversize blocks (none:
 * max_split_size unset), then every whole cached segment (none: the only
 * segment holds b), retries once more and gives up.
 *   refusal: request 10 M, rounded 10 M, segment 10 M,
 *            allocated 8 M, reserved 20 M, largest free 8 M; one flush
 */
Test(cachealloc, limit_refuses_when_fragmented)
{
    struct oomb_cachealloc *m = make(NULL, 20 * M);
    struct oomb_cachealloc_stats s;

    fragment(m);
    cr_assert_eq(oomb_cachealloc_malloc(m, 4, 10 * M), OOMB_ERR_OOM);
    s = stats(m);
    cr_assert_eq(s.oom, 1);
    cr_assert_eq(s.oom_request, 10 * M);
    cr_assert_eq(s.oom_rounded, 10 * M);
    cr_assert_eq(s.oom_segment, 10 * M);
    cr_assert_eq(s.oom_allocated, 8 * M);
    cr_assert_eq(s.oom_reserved, 20 * M);
    cr_assert_eq(s.oom_largest_free, 8 * M);
    cr_assert_eq(s.n_flushes, 1);
    cr_assert_eq(s.reserved, 20 * M);
    cr_assert_eq(s.allocated, 8 * M);
    cr_assert_eq(s.n_segment_frees, 0);
    /* The id was not taken: it can be used again, and freeing it fails. */
    cr_assert_eq(oomb_cachealloc_free(m, 4), OOMB_ERR_INVALID);
    must_malloc(m, 4, 4 * M); /* fits the 4 M block */
    oomb_cachealloc_destroy(m);
}

/*
 * Flush and retry succeeding, limit 40 M: a 30 M segment cached whole,
 * then 32 M: 30 + 32 > 40 fails; the flush releases the 30 M segment
 * (reserved 0) and the retry makes the 32 M one.
 *   reserved 32, 2 cudaMallocs, 1 cudaFree, 1 flush, no refusal;
 *   reserved peaked at 32 with 32 requested.
 */
Test(cachealloc, flush_and_retry_succeeds)
{
    struct oomb_cachealloc *m = make(NULL, 40 * M);
    struct oomb_cachealloc_stats s;

    must_malloc(m, 1, 30 * M);
    must_free(m, 1);
    must_malloc(m, 2, 32 * M);
    s = stats(m);
    cr_assert_eq(s.reserved, 32 * M);
    cr_assert_eq(s.allocated, 32 * M);
    cr_assert_eq(s.n_segment_allocs, 2);
    cr_assert_eq(s.n_segment_frees, 1);
    cr_assert_eq(s.n_flushes, 1);
    cr_assert_eq(s.oom, 0);
    cr_assert_eq(s.reserved_peak, 32 * M);
    cr_assert_eq(s.requested_at_reserved_peak, 32 * M);
    oomb_cachealloc_destroy(m);
}

/* a 28.5 M, s 1.5 M, free a, then b 30 M. */
static int grow_trace(struct oomb_cachealloc *m)
{
    must_malloc(m, 1, 28 * M + M / 2);
    must_malloc(m, 2, M + M / 2);
    must_free(m, 1);
    return oomb_cachealloc_malloc(m, 3, 30 * M);
}

/*
 * Where expandable segments fit and the default does not, limit 50 M.
 * Default:
 *   a 28.5 M -> a 30 M segment [a 28.5 | 1.5 free] (1.5 > 1: split)
 *   s 1.5 M  -> the 1.5 M block exactly          [a 28.5 | s 1.5]
 *   free a   -> [28.5 free | s 1.5]
 *   b 30 M   -> 28.5 < 30; a 30 M segment: 30 + 30 > 50; nothing whole to
 *               release: refused. allocated 1.5, reserved 30, largest 28.5
 * Expandable (large pages of 20 M):
 *   a 28.5 M -> fraction check 0 + 30 <= 50; map 2 pages (40 M):
 *               [a 0-28.5 | 11.5 free | U], reserved 40
 *   s 1.5 M  -> split off the 11.5: [a | s 28.5-30 | 10 free 30-40 | U]
 *   free a   -> [28.5 free 0-28.5 | s | 10 free | U]
 *   b 30 M   -> nothing cached fits; fraction check 40 + 30 > 50 fails;
 *               flush: unmaps the whole page 0-20 of the first free block
 *               (8.5 M stays mapped at 20-28.5); 30-40 holds no whole page.
 *               reserved 20. Retry: 20 + 30 <= 50; the lowest place with
 *               30 M of free + unmapped room: 0-20 U + 8.5 free = 28.5 is
 *               too little (s follows), so the free 30-40 and the U after:
 *               map 1 page (40-60), merged into 30-60 = 30 M, taken whole.
 *   reserved 40, allocated 31.5, largest free 8.5; 2 mappings, 1 unmapping,
 *   1 flush. Reserved peaked (40) during a, with 28.5 requested.
 */
Test(cachealloc, expandable_segments_fit_where_default_runs_out)
{
    struct oomb_cachealloc_conf exp = {.expandable_segments = 1};
    struct oomb_cachealloc *m = make(NULL, 50 * M);
    struct oomb_cachealloc_stats s;

    cr_assert_eq(grow_trace(m), OOMB_ERR_OOM);
    s = stats(m);
    cr_assert_eq(s.oom, 1);
    cr_assert_eq(s.oom_segment, 30 * M);
    cr_assert_eq(s.oom_allocated, M + M / 2);
    cr_assert_eq(s.oom_reserved, 30 * M);
    cr_assert_eq(s.oom_largest_free, 28 * M + M / 2);
    cr_assert_eq(s.n_flushes, 1);
    oomb_cachealloc_destroy(m);

    m = make(&exp, 50 * M);
    cr_assert_eq(grow_trace(m), OOMB_OK);
    s = stats(m);
    cr_assert_eq(s.oom, 0);
    cr_assert_eq(s.reserved, 40 * M);
    cr_assert_eq(s.allocated, 31 * M + M / 2);
    cr_assert_eq(s.largest_free, 8 * M + M / 2);
    cr_assert_eq(s.n_segment_allocs, 2);
    cr_assert_eq(s.n_segment_frees, 1);
    cr_assert_eq(s.n_flushes, 1);
    cr_assert_eq(s.reserved_peak, 40 * M);
    cr_assert_eq(s.requested_at_reserved_peak, 28 * M + M / 2);
    oomb_cachealloc_destroy(m);
}

/*
 * Expandable segments grow by pages and shrink by whole free pages.
 *   5 M   -> map 1 large page (20 M): [a 5 | 15 free | U], reserved 20
 *   30 M  -> the 15 free at the end plus 15 more: 1 page mapped (40 M),
 *            merged 5-40 = 35 M, split: [a 5 | b 30 | 5 free | U]
 *            reserved 40 (the default would hold 20 + 30 = 50)
 *   100 B -> the small pool's own segment: 1 page of 2 M, reserved 42
 *   free a, b: one 40 M free block; largest free 40
 *   empty_cache: the large segment's 2 pages unmapped (one unmapping), the
 *            small page keeps c: reserved 2 M, largest free 2 M - 512
 *   free c, empty_cache: reserved 0
 *   5 M   -> mapped again: 1 page, reserved 20
 */
Test(cachealloc, expandable_segments_grow_and_shrink_by_pages)
{
    struct oomb_cachealloc_conf exp = {.expandable_segments = 1};
    struct oomb_cachealloc *m = make(&exp, 0);
    struct oomb_cachealloc_stats s;

    must_malloc(m, 1, 5 * M);
    s = stats(m);
    cr_assert_eq(s.reserved, 20 * M);
    cr_assert_eq(s.largest_free, 15 * M);
    cr_assert_eq(s.n_segment_allocs, 1);

    must_malloc(m, 2, 30 * M);
    s = stats(m);
    cr_assert_eq(s.reserved, 40 * M);
    cr_assert_eq(s.allocated, 35 * M);
    cr_assert_eq(s.largest_free, 5 * M);
    cr_assert_eq(s.n_segment_allocs, 2);

    must_malloc(m, 3, 100);
    s = stats(m);
    cr_assert_eq(s.reserved, 42 * M);
    cr_assert_eq(s.n_segment_allocs, 3);
    cr_assert_eq(s.largest_free, 5 * M);

    must_free(m, 1);
    must_free(m, 2);
    s = stats(m);
    cr_assert_eq(s.largest_free, 40 * M);
    oomb_cachealloc_empty_cache(m);
    s = stats(m);
    cr_assert_eq(s.reserved, 2 * M);
    cr_assert_eq(s.n_segment_frees, 1);
    cr_assert_eq(s.largest_free, 2 * M - 512);

    must_free(m, 3);
    oomb_cachealloc_empty_cache(m);
    s = stats(m);
    cr_assert_eq(s.reserved, 0);
    cr_assert_eq(s.n_segment_frees, 2);
    cr_assert_eq(s.n_empty_cache, 2);

    must_malloc(m, 4, 5 * M);
    s = stats(m);
    cr_assert_eq(s.reserved, 20 * M);
    cr_assert_eq(s.n_segment_allocs, 4);
    oomb_cachealloc_destroy(m);
}

/*
 * With expandable segments best fit counts the free block before unmapped
 * space as big as it could grow, so a bigger block elsewhere wins.
 *   10 M  -> 1 page: [a 10 | 10 free | U]
 *   4 M   -> [a 10 | b 4 | 6 free | U]
 *   free a: [10 free | b 4 | 6 free | U]
 *   5 M   -> the smallest block that fits is the 6 M one, but it is at the
 *            end; the next, 10 M, is not: taken and split.
 *            [c 5 | 5 free | b 4 | 6 free | U]: largest free 6, reserved 20
 *            (taking the 6 M block would leave the 10 M one: largest 10)
 */
Test(cachealloc, expandable_best_fit_spares_the_growing_end)
{
    struct oomb_cachealloc_conf exp = {.expandable_segments = 1};
    struct oomb_cachealloc *m = make(&exp, 0);
    struct oomb_cachealloc_stats s;

    must_malloc(m, 1, 10 * M);
    must_malloc(m, 2, 4 * M);
    must_free(m, 1);
    must_malloc(m, 3, 5 * M);
    s = stats(m);
    cr_assert_eq(s.largest_free, 6 * M);
    cr_assert_eq(s.reserved, 20 * M);
    cr_assert_eq(s.allocated, 9 * M);
    cr_assert_eq(s.n_segment_allocs, 1);
    oomb_cachealloc_destroy(m);
}

/*
 * max_split_size = 40 M.
 *   50 M, freed     -> a 50 M segment cached whole (oversize: >= 40)
 *   5 M             -> below 40, may not take the oversize block: a new
 *                      20 M segment, split. reserved 70, largest free 50
 *   45 M            -> above 40: may take a block less than 20 M bigger:
 *                      the 50 M one (50 < 65); not split (45 >= 40).
 *                      allocated 5 + 50 = 55, requested 50
 *   free it; 25 M   -> below 40: the 50 M block is oversize, the 15 M one
 *                      too small: a new 26 M segment (25 rounded up to
 *                      2 M; 1 M left is not > 1 M: not split).
 *                      reserved 96, allocated 5 + 26 = 31
 * Without max_split_size the 5 M request splits the 50 M block:
 *   reserved 50, largest free 45.
 */
Test(cachealloc, max_split_size_keeps_big_blocks_whole)
{
    struct oomb_cachealloc_conf conf = {.max_split_size = 40 * M};
    struct oomb_cachealloc *m = make(&conf, 0);
    struct oomb_cachealloc_stats s;

    must_malloc(m, 1, 50 * M);
    must_free(m, 1);
    must_malloc(m, 2, 5 * M);
    s = stats(m);
    cr_assert_eq(s.reserved, 70 * M);
    cr_assert_eq(s.n_segment_allocs, 2);
    cr_assert_eq(s.largest_free, 50 * M);

    must_malloc(m, 3, 45 * M);
    s = stats(m);
    cr_assert_eq(s.allocated, 55 * M);
    cr_assert_eq(s.requested, 50 * M);
    cr_assert_eq(s.reserved, 70 * M);
    cr_assert_eq(s.largest_free, 15 * M);

    must_free(m, 3);
    must_malloc(m, 4, 25 * M);
    s = stats(m);
    cr_assert_eq(s.n_segment_allocs, 3);
    cr_assert_eq(s.reserved, 96 * M);
    cr_assert_eq(s.allocated, 5 * M + 26 * M); /* 1 M left is not > 1 M */
    oomb_cachealloc_destroy(m);

    m = make(NULL, 0);
    must_malloc(m, 1, 50 * M);
    must_free(m, 1);
    must_malloc(m, 2, 5 * M);
    s = stats(m);
    cr_assert_eq(s.reserved, 50 * M);
    cr_assert_eq(s.largest_free, 45 * M);
    oomb_cachealloc_destroy(m);
}

/*
 * max_split_size = 40 M: a request of 40 M or more takes a cached block
 * only if it is less than kLargeBuffer (20 M) bigger.
 *   66 M, freed -> 66 M cached
 *   46 M        -> 66 >= 46 + 20: refused; a 46 M segment: reserved 112
 *   47 M        -> 66 < 47 + 20: takes the 66 M block, not split (47 >=
 *                  40): allocated 46 + 66 = 112, requested 93
 *   free both; 45 M -> 66 >= 65: refused; the 46 M block (46 < 65) taken
 *                  whole: allocated 46
 */
Test(cachealloc, max_split_size_limits_rounding_up_oversize_requests)
{
    struct oomb_cachealloc_conf conf = {.max_split_size = 40 * M};
    struct oomb_cachealloc *m = make(&conf, 0);
    struct oomb_cachealloc_stats s;

    must_malloc(m, 1, 66 * M);
    must_free(m, 1);
    must_malloc(m, 2, 46 * M);
    s = stats(m);
    cr_assert_eq(s.allocated, 46 * M);
    cr_assert_eq(s.reserved, 112 * M);
    cr_assert_eq(s.largest_free, 66 * M);
    must_malloc(m, 3, 47 * M);
    s = stats(m);
    cr_assert_eq(s.allocated, 112 * M);
    cr_assert_eq(s.requested, 93 * M);
    cr_assert_eq(s.reserved, 112 * M);
    cr_assert_eq(s.largest_free, 0);
    must_free(m, 2);
    must_free(m, 3);
    must_malloc(m, 4, 45 * M);
    s = stats(m);
    cr_assert_eq(s.allocated, 46 * M);
    cr_assert_eq(s.largest_free, 66 * M);
    cr_assert_eq(s.n_segment_allocs, 2);
    oomb_cachealloc_destroy(m);
}

/*
 * max_split_size = 40 M: when a segment cannot be made, cached oversize
 * segments go first (release_available_cached_blocks), before any flush.
 * One block: limit 100 M; segments 50 and 44 (reserved 94); free the 50.
 *   30 M -> the 50 is oversize for it; 94 + 30 > 100; the smallest cached
 *           block >= max(30, 40) = 40 is the 50: released (reserved 44);
 *           retry: 44 + 30 = 74. No flush.
 * Several blocks: limit 150 M; segments 42, 44, 50 (reserved 136); free
 * the 42 and the 44.
 *   60 M -> nothing cached fits; 136 + 60 > 150; no block >= 60, so the
 *           largest oversize ones go until 60 M are freed: 44 (44 < 60),
 *           then 42 (86). Retry: 50 + 60 = 110. No flush.
 */
Test(cachealloc, max_split_size_releases_oversize_blocks_first)
{
    struct oomb_cachealloc_conf conf = {.max_split_size = 40 * M};
    struct oomb_cachealloc *m = make(&conf, 100 * M);
    struct oomb_cachealloc_stats s;

    must_malloc(m, 1, 50 * M);
    must_malloc(m, 2, 44 * M);
    must_free(m, 1);
    must_malloc(m, 3, 30 * M);
    s = stats(m);
    cr_assert_eq(s.reserved, 74 * M);
    cr_assert_eq(s.n_segment_frees, 1);
    cr_assert_eq(s.n_flushes, 0);
    oomb_cachealloc_destroy(m);

    m = make(&conf, 150 * M);
    must_malloc(m, 1, 42 * M);
    must_malloc(m, 2, 44 * M);
    must_malloc(m, 3, 50 * M);
    must_free(m, 1);
    must_free(m, 2);
    must_malloc(m, 4, 60 * M);
    s = stats(m);
    cr_assert_eq(s.reserved, 110 * M);
    cr_assert_eq(s.n_segment_frees, 2);
    cr_assert_eq(s.n_flushes, 0);
    cr_assert_eq(s.largest_free, 0);
    oomb_cachealloc_destroy(m);
}

/*
 * roundup_power2_divisions = 4: sizes above 4 x 512 = 2048 B round up to
 * the next quarter between the powers of two around them.
 *   1200 M   -> between 1024 M and 2048 M, quarters of 256 M: 1280 M
 *               (its own 1280 M segment)
 *   4500 B   -> between 4096 and 8192, quarters of 1024: 5120 (plain
 *               rounding would give 4608); a 2 M small segment
 *   1100 B   -> not above 2048: plain rounding, 1536 (quarters of 256
 *               between 1024 and 2048 would give 1280)
 *   2 M + 1  -> quarters of 512 K above 2 M: 2.5 M; a 20 M segment
 *   allocated 1280 M + 5120 + 1536 + 2.5 M; reserved 1280 + 2 + 20 M
 * With 2 divisions 1200 M rounds to 1536 M; with 1 (off), to 1200 M; a
 * power of two stays.
 */
Test(cachealloc, roundup_power2_divisions)
{
    struct oomb_cachealloc_conf conf = {.roundup_power2_divisions = 4};
    struct oomb_cachealloc *m = make(&conf, 0);
    struct oomb_cachealloc_stats s;

    must_malloc(m, 1, 1200 * M);
    s = stats(m);
    cr_assert_eq(s.allocated, 1280 * M);
    cr_assert_eq(s.reserved, 1280 * M);
    cr_assert_eq(s.requested, 1200 * M);
    must_malloc(m, 2, 4500);
    s = stats(m);
    cr_assert_eq(s.allocated, 1280 * M + 5120);
    must_malloc(m, 3, 1100);
    s = stats(m);
    cr_assert_eq(s.allocated, 1280 * M + 5120 + 1536);
    must_malloc(m, 4, 2 * M + 1);
    s = stats(m);
    cr_assert_eq(s.allocated, 1280 * M + 5120 + 1536 + 2 * M + M / 2);
    cr_assert_eq(s.reserved, 1302 * M);
    must_malloc(m, 5, 1024 * M);
    s = stats(m);
    cr_assert_eq(s.reserved, 2326 * M);
    oomb_cachealloc_destroy(m);

    conf.roundup_power2_divisions = 2;
    m = make(&conf, 0);
    must_malloc(m, 1, 1200 * M);
    s = stats(m);
    cr_assert_eq(s.allocated, 1536 * M);
    oomb_cachealloc_destroy(m);

    conf.roundup_power2_divisions = 1;
    m = make(&conf, 0);
    must_malloc(m, 1, 1200 * M);
    must_malloc(m, 2, 4500);
    s = stats(m);
    cr_assert_eq(s.allocated, 1200 * M + 4608);
    oomb_cachealloc_destroy(m);
}

/* 24 M, freed; 30 M, freed; then 40 M, under a 100 M limit. */
static void gc_trace(struct oomb_cachealloc *m)
{
    must_malloc(m, 1, 24 * M);
    must_free(m, 1);
    must_malloc(m, 2, 30 * M);
    must_free(m, 2);
    must_malloc(m, 3, 40 * M);
}

/*
 * garbage_collection_threshold = 0.5, limit 100 M: collection starts when
 * a segment must be made with more than 50 M reserved. Ages count the
 * large pool's get_free_block calls since a block was cached.
 *   24 M (call 1): nothing cached; reserved 0 <= 50; a 24 M segment.
 *           Freed: cached at count 1.
 *   30 M (call 2): 24 is too small; 24 <= 50; a 30 M segment, reserved
 *           54. Freed: cached at count 2.
 *   40 M (call 3): nothing fits; 54 > 50: reclaim 4 M. Ages: the 24 M
 *           block 3 - 1 = 2, the 30 M one 1; average 1.5: only the 24 M
 *           one is that old: released (reserved 30 >= 4 reclaimed, done).
 *           Then a 40 M segment: reserved 70, the 30 M block still cached.
 * Without the threshold: reserved 24 + 30 + 40 = 94. Without a limit the
 * threshold does nothing (PyTorch needs a memory fraction): 94.
 * Equal ages: 24 M and 30 M live together (calls 1, 2), both freed (cached
 * at count 2), then 40 M (call 3): ages 1 and 1, average 1: both are that
 * old and both go, although 24 M alone would reclaim the 4 M: reserved 40.
 */
Test(cachealloc, garbage_collection_threshold_frees_old_blocks)
{
    struct oomb_cachealloc_conf conf = {.gc_threshold = 0.5};
    struct oomb_cachealloc *m = make(&conf, 100 * M);
    struct oomb_cachealloc_stats s;

    gc_trace(m);
    s = stats(m);
    cr_assert_eq(s.reserved, 70 * M);
    cr_assert_eq(s.largest_free, 30 * M);
    cr_assert_eq(s.n_segment_frees, 1);
    cr_assert_eq(s.n_flushes, 0);
    oomb_cachealloc_destroy(m);

    m = make(NULL, 100 * M);
    gc_trace(m);
    s = stats(m);
    cr_assert_eq(s.reserved, 94 * M);
    cr_assert_eq(s.n_segment_frees, 0);
    oomb_cachealloc_destroy(m);

    m = make(&conf, 0);
    gc_trace(m);
    s = stats(m);
    cr_assert_eq(s.reserved, 94 * M);
    oomb_cachealloc_destroy(m);

    m = make(&conf, 100 * M);
    must_malloc(m, 1, 24 * M);
    must_malloc(m, 2, 30 * M);
    must_free(m, 1);
    must_free(m, 2);
    must_malloc(m, 3, 40 * M);
    s = stats(m);
    cr_assert_eq(s.reserved, 40 * M);
    cr_assert_eq(s.n_segment_frees, 2);
    cr_assert_eq(s.largest_free, 0);
    oomb_cachealloc_destroy(m);
}

/*
 * empty_cache releases whole cached segments only.
 *   100 B -> small 2 M segment; 5 M -> 20 M segment; 30 M -> 30 M one;
 *   3 M   -> split off the 20 M segment: [5 | 3 | 12 free]. reserved 52
 *   free the 5 M and the 30 M.
 *   empty_cache: the 30 M segment goes; the 20 M one holds the 3 M and the
 *           small one the 100 B: kept. reserved 22, largest free 12
 *   free the rest, empty_cache: reserved 0, 3 cudaFrees; a third call
 *           changes nothing but the count.
 */
Test(cachealloc, empty_cache_releases_whole_segments)
{
    struct oomb_cachealloc *m = make(NULL, 0);
    struct oomb_cachealloc_stats s;

    must_malloc(m, 1, 100);
    must_malloc(m, 2, 5 * M);
    must_malloc(m, 3, 30 * M);
    must_malloc(m, 4, 3 * M);
    s = stats(m);
    cr_assert_eq(s.reserved, 52 * M);
    cr_assert_eq(s.n_segment_allocs, 3);
    must_free(m, 2);
    must_free(m, 3);
    oomb_cachealloc_empty_cache(m);
    s = stats(m);
    cr_assert_eq(s.reserved, 22 * M);
    cr_assert_eq(s.n_segment_frees, 1);
    cr_assert_eq(s.n_empty_cache, 1);
    cr_assert_eq(s.largest_free, 12 * M);
    cr_assert_eq(s.n_flushes, 0);

    must_free(m, 4);
    must_free(m, 1);
    oomb_cachealloc_empty_cache(m);
    s = stats(m);
    cr_assert_eq(s.reserved, 0);
    cr_assert_eq(s.n_segment_frees, 3);
    cr_assert_eq(segments(&s), 0);
    cr_assert_eq(s.largest_free, 0);
    oomb_cachealloc_empty_cache(m);
    s = stats(m);
    cr_assert_eq(s.n_empty_cache, 3);
    cr_assert_eq(s.n_segment_frees, 3);
    oomb_cachealloc_destroy(m);
}

Test(cachealloc, misuse_is_refused)
{
    struct oomb_cachealloc *m = make(NULL, 0);
    struct oomb_cachealloc_stats s;

    must_malloc(m, 7, 100);
    cr_assert_eq(oomb_cachealloc_malloc(m, 7, 200), OOMB_ERR_INVALID);
    s = stats(m);
    cr_assert_eq(s.allocated, 512);
    cr_assert_eq(s.requested, 100);
    cr_assert_eq(oomb_cachealloc_free(m, 8), OOMB_ERR_INVALID);
    must_free(m, 7);
    cr_assert_eq(oomb_cachealloc_free(m, 7), OOMB_ERR_INVALID);

    /* Zero bytes: no block, as in PyTorch; the id is live until freed. */
    must_malloc(m, 0, 0);
    cr_assert_eq(oomb_cachealloc_malloc(m, 0, 10), OOMB_ERR_INVALID);
    s = stats(m);
    cr_assert_eq(s.allocated, 0);
    must_free(m, 0);
    cr_assert_eq(oomb_cachealloc_free(m, 0), OOMB_ERR_INVALID);

    /* 2^60 bytes or more: refused at once. */
    cr_assert_eq(oomb_cachealloc_malloc(m, 9, 1ull << 60), OOMB_ERR_OOM);
    s = stats(m);
    cr_assert_eq(s.oom, 1);
    cr_assert_eq(s.oom_request, 1ull << 60);
    cr_assert_eq(s.reserved, 2 * M);
    cr_assert_eq(s.n_flushes, 0);
    oomb_cachealloc_destroy(m);
    oomb_cachealloc_destroy(NULL);
}

static int create_status(struct oomb_cachealloc_conf conf)
{
    static char sentinel;
    struct oomb_cachealloc *m = (struct oomb_cachealloc *)&sentinel; /* must be reset */
    int rc = oomb_cachealloc_create(&conf, 0, &m);
    if (rc != OOMB_OK)
        cr_assert_null(m);
    oomb_cachealloc_destroy(m);
    return rc;
}

/* PyTorch's checks (CUDAAllocatorConfig / AllocatorConfig): max_split_size_mb
 * above 20 (kLargeBuffer), roundup_power2_divisions a power of two (the model
 * also caps it at 64), garbage_collection_threshold in (0, 1). */
Test(cachealloc, invalid_options_are_refused)
{
    struct oomb_cachealloc_conf c;
    struct oomb_cachealloc *m = NULL;

    memset(&c, 0, sizeof c);
    c.max_split_size = 20 * M;
    cr_assert_eq(create_status(c), OOMB_ERR_INVALID);
    c.max_split_size = 10 * M;
    cr_assert_eq(create_status(c), OOMB_ERR_INVALID);
    c.max_split_size = 21 * M + 1;
    cr_assert_eq(create_status(c), OOMB_ERR_INVALID);
    c.max_split_size = 21 * M;
    cr_assert_eq(create_status(c), OOMB_OK);

    memset(&c, 0, sizeof c);
    int bad_div[] = {3, 6, 128, -2};
    for (size_t i = 0; i < sizeof bad_div / sizeof bad_div[0]; i++) {
        c.roundup_power2_divisions = bad_div[i];
        cr_assert_eq(create_status(c), OOMB_ERR_INVALID, "divisions %d", bad_div[i]);
    }
    int good_div[] = {0, 1, 2, 64};
    for (size_t i = 0; i < sizeof good_div / sizeof good_div[0]; i++) {
        c.roundup_power2_divisions = good_div[i];
        cr_assert_eq(create_status(c), OOMB_OK, "divisions %d", good_div[i]);
    }

    memset(&c, 0, sizeof c);
    double bad_gc[] = {1.0, 1.5, -0.1, NAN};
    for (size_t i = 0; i < sizeof bad_gc / sizeof bad_gc[0]; i++) {
        c.gc_threshold = bad_gc[i];
        cr_assert_eq(create_status(c), OOMB_ERR_INVALID, "gc %g", bad_gc[i]);
    }
    c.gc_threshold = 0.5;
    cr_assert_eq(create_status(c), OOMB_OK);

    memset(&c, 0, sizeof c);
    c.expandable_segments = 2;
    cr_assert_eq(create_status(c), OOMB_ERR_INVALID);
    c.expandable_segments = 0;
    c.empty_cache = (enum oomb_empty_cache)2;
    cr_assert_eq(create_status(c), OOMB_ERR_INVALID);

    cr_assert_eq(oomb_cachealloc_create(NULL, 0, NULL), OOMB_ERR_INVALID);
    cr_assert_eq(oomb_cachealloc_create(NULL, 0, &m), OOMB_OK); /* defaults */
    oomb_cachealloc_destroy(m);
}

/* xorshift64*: the same trace on every machine. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* A size between lo and hi bytes, log-uniform. */
static uint64_t rng_size(uint64_t *s, uint64_t lo, uint64_t hi)
{
    double u = (double)(rng_next(s) >> 11) / 9007199254740992.0;
    return (uint64_t)((double)lo * pow((double)hi / (double)lo, u));
}

static void random_trace(const struct oomb_cachealloc_conf *conf, uint64_t limit, uint64_t seed)
{
    enum { N_OPS = 20000, MAX_LIVE = 4096 };
    static uint64_t live[MAX_LIVE];
    size_t n_live = 0, n_oom = 0, n_ok = 0;
    uint64_t next_id = 1, rng = seed;
    struct oomb_cachealloc *m = make(conf, limit);
    struct oomb_cachealloc_stats s;

    for (int op = 0; op < N_OPS; op++) {
        uint64_t r = rng_next(&rng) % 100;
        if (r < 55 && n_live < MAX_LIVE) {
            uint64_t c = rng_next(&rng) % 10, bytes;
            if (c < 5)
                bytes = rng_size(&rng, 1, M);
            else if (c < 9)
                bytes = rng_size(&rng, M, 32 * M);
            else
                bytes = rng_size(&rng, 32 * M, 256 * M);
            int rc = oomb_cachealloc_malloc(m, next_id, bytes);
            cr_assert(rc == OOMB_OK || rc == OOMB_ERR_OOM);
            oomb_cachealloc_get_stats(m, &s);
            if (rc == OOMB_OK) {
                live[n_live++] = next_id;
                n_ok++;
            } else {
                n_oom++;
                cr_assert_eq(s.oom, 1);
                cr_assert_eq(s.oom_request, bytes);
                cr_assert_geq(s.oom_rounded, bytes);
                /* A genuine refusal: the segment did not fit (with
                 * expandable segments the pages could be what did not). */
                if (!conf->expandable_segments)
                    cr_assert_gt(s.oom_segment, limit - s.oom_reserved);
            }
            next_id++;
        } else if (r < 95 && n_live > 0) {
            size_t i = (size_t)(rng_next(&rng) % n_live);
            cr_assert_eq(oomb_cachealloc_free(m, live[i]), OOMB_OK);
            live[i] = live[--n_live];
        } else {
            oomb_cachealloc_empty_cache(m);
        }
        cr_assert_eq(oomb_cachealloc_check(m), OOMB_OK, "op %d", op);
        oomb_cachealloc_get_stats(m, &s);
        cr_assert_leq(s.allocated, s.reserved);
        cr_assert_leq(s.requested, s.allocated);
        cr_assert_leq(s.reserved, limit);
        cr_assert_leq(s.largest_free, s.reserved - s.allocated);
        cr_assert_leq(s.allocated_peak, s.reserved_peak);
        cr_assert_geq(s.reserved_peak, s.reserved);
    }
    cr_assert_gt(n_ok, 1000);
    cr_assert_gt(n_oom, 0, "the trace should reach the limit");
    while (n_live > 0)
        must_free(m, live[--n_live]);
    s = stats(m);
    cr_assert_eq(s.allocated, 0);
    cr_assert_eq(s.requested, 0);
    oomb_cachealloc_empty_cache(m);
    s = stats(m);
    cr_assert_eq(s.reserved, 0);
    cr_assert_eq(s.largest_free, 0);
    if (!conf->expandable_segments)
        cr_assert_eq(segments(&s), 0);
    oomb_cachealloc_destroy(m);
}

Test(cachealloc, random_traces_keep_the_invariants, .timeout = 120)
{
    struct oomb_cachealloc_conf confs[] = {
        {0},
        {.max_split_size = 64 * M},
        {.roundup_power2_divisions = 4},
        {.expandable_segments = 1},
        {.gc_threshold = 0.6},
        {.max_split_size = 32 * M, .roundup_power2_divisions = 8, .gc_threshold = 0.8},
        {.expandable_segments = 1, .max_split_size = 64 * M, .gc_threshold = 0.7},
    };
    for (size_t i = 0; i < sizeof confs / sizeof confs[0]; i++)
        random_trace(&confs[i], 1024 * M, 0x9e3779b97f4a7c15ull + i);
}
