/*
 * A model of PyTorch's CUDA caching allocator (see cachealloc.h). The rules,
 * and the functions of c10/cuda/CUDACachingAllocator.cpp they come from, are
 * in docs/memory-model.md ("The caching allocator"); each function below
 * names the PyTorch function it stands for.
 *
 * Layout. A segment (one cudaMalloc, or the address space of one expandable
 * segment) is a doubly linked list of blocks, in address order, that tile
 * it. A block is allocated, free (cached), or, in an expandable segment,
 * unmapped: address space with no memory behind it. Each pool (small and
 * large) keeps its free mapped blocks in a list sorted as PyTorch's
 * BlockComparatorSize sorts them: by size, then by address. An address is
 * modelled as (segment serial, offset): segments in the order they were
 * made, blocks in a segment by offset. Live requests are found by id in an
 * open-addressing hash table (linear probing, backward-shift deletion).
 *
 * Host memory. An operation never runs out of host memory half-way: the
 * block nodes and segment records it may need are reserved before it
 * changes anything (see the bounds in malloc and empty_cache), so a failed
 * reservation leaves the model as it was.
 */
#include "cachealloc.h"

#include <stdlib.h>
#include <string.h>

/* PyTorch's constants (CUDACachingAllocator.cpp). */
#define MIB (1024ull * 1024ull)
#define K_MIN_BLOCK_SIZE 512ull         /* every size is rounded to a multiple */
#define K_SMALL_SIZE (1ull * MIB)       /* largest request of the small pool */
#define K_SMALL_BUFFER (2ull * MIB)     /* small pool segment; its page when expandable */
#define K_LARGE_BUFFER (20ull * MIB)    /* segment for 1-10 MiB; large page when expandable */
#define K_MIN_LARGE_ALLOC (10ull * MIB) /* from here segments fit the request */
#define K_ROUND_LARGE (2ull * MIB)      /* ... rounded up to this */
#define MAX_REQUEST (1ull << 60)        /* allocate(): "more than 1EB" is refused */
#define ADDRESS_SPACE (1ull << 61)      /* an expandable segment's reserved addresses */

enum { POOL_SMALL = 0, POOL_LARGE = 1 };

struct ca_segment;

struct ca_block {
    struct ca_block *prev, *next;   /* neighbours in the segment, by address */
    struct ca_block *fprev, *fnext; /* the pool's free list (free mapped blocks) */
    struct ca_segment *seg;
    uint64_t off; /* offset in the segment */
    uint64_t size;
    uint64_t requested; /* bytes asked, while allocated */
    uint64_t gc_base;   /* the pool's get_free_block count when cached */
    unsigned char allocated;
    unsigned char mapped; /* 0: address space only (expandable segments) */
};

struct ca_segment {
    struct ca_segment *prev, *next; /* all segments, oldest first */
    struct ca_block *head;          /* the block at offset 0 */
    uint64_t serial;                /* creation order: the address order of segments */
    uint64_t size;                  /* bytes; expandable: its address space */
    int pool;
    int expandable;
};

struct ca_pool {
    struct ca_block *free_head, *free_tail; /* sorted by (size, address) */
    uint64_t get_free_calls;                /* PyTorch's get_free_blocks_call_count */
};

struct ca_slot {
    uint64_t id;
    struct ca_block *block; /* NULL for a zero-byte request */
    int used;
};

struct oomb_cachealloc {
    struct oomb_cachealloc_conf conf;
    uint64_t limit;     /* 0: unlimited */
    uint64_t max_split; /* conf.max_split_size; UINT64_MAX when unset */
    int gc_on;          /* gc_threshold > 0 and a limit (PyTorch: set_fraction) */
    struct ca_pool pools[2];
    struct ca_segment *segs, *segs_tail;
    uint64_t next_serial;
    struct ca_slot *slots; /* n_slots, a power of two, at most half used */
    size_t n_slots, n_live;
    struct ca_block *spare_blocks; /* reserved nodes, linked by next */
    size_t n_spare_blocks;
    struct ca_segment *spare_segs; /* reserved segment records, linked by next */
    size_t n_spare_segs;
    size_t n_blocks;  /* nodes in segments */
    size_t n_free;    /* nodes in the free lists */
    int peak_in_call; /* reserved peaked during this malloc */
    struct oomb_cachealloc_stats st;
};

/* ---- Node and segment records ---------------------------------------- */

static int reserve_nodes(struct oomb_cachealloc *m, size_t n_blocks, size_t n_segs)
{
    while (m->n_spare_blocks < n_blocks) {
        struct ca_block *b = malloc(sizeof *b);
        if (!b)
            return OOMB_ERR_OOM;
        b->next = m->spare_blocks;
        m->spare_blocks = b;
        m->n_spare_blocks++;
    }
    while (m->n_spare_segs < n_segs) {
        struct ca_segment *s = malloc(sizeof *s);
        if (!s)
            return OOMB_ERR_OOM;
        s->next = m->spare_segs;
        m->spare_segs = s;
        m->n_spare_segs++;
    }
    return OOMB_OK;
}

/* A zeroed node from the reserve. The callers' bounds guarantee one; the
 * fallback is only reached if a bound is wrong, and then host memory must
 * also be exhausted for it to fail. */
static struct ca_block *node_get(struct oomb_cachealloc *m)
{
    struct ca_block *b = m->spare_blocks;
    if (b) {
        m->spare_blocks = b->next;
        m->n_spare_blocks--;
    } else {
        b = malloc(sizeof *b);
        if (!b)
            abort();
    }
    memset(b, 0, sizeof *b);
    m->n_blocks++;
    return b;
}

static void node_put(struct oomb_cachealloc *m, struct ca_block *b)
{
    b->next = m->spare_blocks;
    m->spare_blocks = b;
    m->n_spare_blocks++;
    m->n_blocks--;
}

/* ---- The free lists (BlockPool::blocks) ------------------------------ */

/* BlockComparatorSize: smaller first, then lower address. */
static int block_before(const struct ca_block *a, const struct ca_block *b)
{
    if (a->size != b->size)
        return a->size < b->size;
    if (a->seg->serial != b->seg->serial)
        return a->seg->serial < b->seg->serial;
    return a->off < b->off;
}

/* BlockPool::insert_into_blocks: caches b and starts its gc age. */
static void free_insert(struct oomb_cachealloc *m, struct ca_block *b)
{
    struct ca_pool *p = &m->pools[b->seg->pool];
    struct ca_block *at = p->free_head;
    while (at && block_before(at, b))
        at = at->fnext;
    b->gc_base = p->get_free_calls;
    b->fnext = at;
    b->fprev = at ? at->fprev : p->free_tail;
    if (b->fprev)
        b->fprev->fnext = b;
    else
        p->free_head = b;
    if (at)
        at->fprev = b;
    else
        p->free_tail = b;
    m->n_free++;
}

static void free_remove(struct oomb_cachealloc *m, struct ca_block *b)
{
    struct ca_pool *p = &m->pools[b->seg->pool];
    if (b->fprev)
        b->fprev->fnext = b->fnext;
    else
        p->free_head = b->fnext;
    if (b->fnext)
        b->fnext->fprev = b->fprev;
    else
        p->free_tail = b->fprev;
    b->fprev = b->fnext = NULL;
    m->n_free--;
}

static uint64_t largest_free(const struct oomb_cachealloc *m)
{
    uint64_t s = 0;
    for (int i = 0; i < 2; i++)
        if (m->pools[i].free_tail && m->pools[i].free_tail->size > s)
            s = m->pools[i].free_tail->size;
    return s;
}

/* ---- Counters --------------------------------------------------------- */

static void reserved_add(struct oomb_cachealloc *m, uint64_t bytes)
{
    m->st.reserved += bytes;
    if (m->st.reserved > m->st.reserved_peak) {
        m->st.reserved_peak = m->st.reserved;
        m->st.requested_at_reserved_peak = m->st.requested;
        m->peak_in_call = 1;
    }
}

/* ---- Segments ---------------------------------------------------------- */

/* A new segment of `size` bytes in `pool`, one block covering it (mapped,
 * or for an expandable segment unmapped). Returns that block. */
static struct ca_block *segment_new(struct oomb_cachealloc *m, int pool, uint64_t size,
                                    int expandable)
{
    struct ca_segment *s = m->spare_segs;
    if (s) {
        m->spare_segs = s->next;
        m->n_spare_segs--;
    } else {
        s = malloc(sizeof *s); /* unreachable: see node_get */
        if (!s)
            abort();
    }
    memset(s, 0, sizeof *s);
    struct ca_block *b = node_get(m);
    s->serial = m->next_serial++;
    s->size = size;
    s->pool = pool;
    s->expandable = expandable;
    s->head = b;
    s->prev = m->segs_tail;
    if (m->segs_tail)
        m->segs_tail->next = s;
    else
        m->segs = s;
    m->segs_tail = s;
    b->seg = s;
    b->size = size;
    b->mapped = !expandable;
    return b;
}

/* Forgets segment s, whose blocks must be one block in no list. */
static void segment_drop(struct oomb_cachealloc *m, struct ca_segment *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        m->segs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        m->segs_tail = s->prev;
    node_put(m, s->head);
    s->next = m->spare_segs;
    m->spare_segs = s;
    m->n_spare_segs++;
}

/* Neither split nor part of an expandable segment: a whole cudaMalloc. */
static int whole_segment(const struct ca_block *b)
{
    return !b->prev && !b->next && !b->seg->expandable;
}

static uint64_t page_size(int pool)
{
    return pool == POOL_SMALL ? K_SMALL_BUFFER : K_LARGE_BUFFER;
}

/* ---- Sizes -------------------------------------------------------------- */

/* roundup_power2_next_division: the next of `d` equal steps between the
 * powers of two around n. */
static uint64_t next_division(uint64_t n, uint64_t d)
{
    if ((n & (n - 1)) == 0)
        return n;
    uint64_t floor2 = 1ull << (63 - __builtin_clzll(n));
    uint64_t step = floor2 / d;
    if (step == 0)
        return floor2 << 1;
    uint64_t lo = n & ~(step - 1);
    return lo == n ? n : lo + step;
}

/* round_size. */
static uint64_t round_size(const struct oomb_cachealloc *m, uint64_t n)
{
    uint64_t d = (uint64_t)m->conf.roundup_power2_divisions;
    if (n < K_MIN_BLOCK_SIZE)
        return K_MIN_BLOCK_SIZE;
    if (d > 1 && n > K_MIN_BLOCK_SIZE * d)
        return next_division(n, d);
    return (n + K_MIN_BLOCK_SIZE - 1) / K_MIN_BLOCK_SIZE * K_MIN_BLOCK_SIZE;
}

/* get_allocation_size: the cudaMalloc for a rounded request. */
static uint64_t allocation_size(uint64_t size)
{
    if (size <= K_SMALL_SIZE)
        return K_SMALL_BUFFER;
    if (size < K_MIN_LARGE_ALLOC)
        return K_LARGE_BUFFER;
    return (size + K_ROUND_LARGE - 1) / K_ROUND_LARGE * K_ROUND_LARGE;
}

/* ---- Merging and splitting ------------------------------------------- */

/* try_merge_blocks: dst absorbs its neighbour src when src is not
 * allocated and is mapped as dst is. dst must be in no free list. */
static void merge(struct oomb_cachealloc *m, struct ca_block *dst, struct ca_block *src)
{
    if (!src || src->allocated || src->mapped != dst->mapped)
        return;
    if (src->mapped)
        free_remove(m, src);
    if (src == dst->prev) {
        dst->off = src->off;
        dst->prev = src->prev;
        if (dst->prev)
            dst->prev->next = dst;
        else
            dst->seg->head = dst;
    } else {
        dst->next = src->next;
        if (dst->next)
            dst->next->prev = dst;
    }
    dst->size += src->size;
    node_put(m, src);
}

/* A new node of `size` bytes at the end of b, which shrinks by as much. */
static struct ca_block *split_tail(struct oomb_cachealloc *m, struct ca_block *b, uint64_t size)
{
    struct ca_block *r = node_get(m);
    r->seg = b->seg;
    r->off = b->off + b->size - size;
    r->size = size;
    r->prev = b;
    r->next = b->next;
    if (b->next)
        b->next->prev = r;
    b->next = r;
    b->size -= size;
    return r;
}

/* A new node of `size` bytes at the start of b, which shrinks by as much. */
static struct ca_block *split_head(struct oomb_cachealloc *m, struct ca_block *b, uint64_t size)
{
    struct ca_block *r = node_get(m);
    r->seg = b->seg;
    r->off = b->off;
    r->size = size;
    r->next = b;
    r->prev = b->prev;
    if (b->prev)
        b->prev->next = r;
    else
        b->seg->head = r;
    b->prev = r;
    b->off += size;
    b->size -= size;
    return r;
}

/* should_split. */
static int should_split(const struct oomb_cachealloc *m, const struct ca_block *b, uint64_t size)
{
    uint64_t remaining = b->size - size;
    if (b->seg->pool == POOL_SMALL || m->conf.expandable_segments)
        return remaining >= K_MIN_BLOCK_SIZE;
    return size < m->max_split && remaining > K_SMALL_SIZE;
}

/* ---- Finding a block ---------------------------------------------------- */

/* What an expandable block could grow to: itself and the unmapped
 * address space after it. */
static uint64_t expandable_size(const struct ca_block *b)
{
    return b->size + (b->next && !b->next->mapped ? b->next->size : 0);
}

/* get_free_block: the best-fitting cached block, taken out of the cache,
 * or NULL. */
static struct ca_block *get_free_block(struct oomb_cachealloc *m, int pool, uint64_t size)
{
    struct ca_pool *p = &m->pools[pool];
    if (m->gc_on)
        p->get_free_calls++;
    struct ca_block *b = p->free_head;
    while (b && b->size < size)
        b = b->fnext;
    if (!b)
        return NULL;
    /* In an expandable segment the block before unmapped space counts as
     * big as it could grow, so a bigger block that is not at the end is
     * preferred to it. */
    while (b->seg->expandable && b->fnext && expandable_size(b->fnext) < expandable_size(b))
        b = b->fnext;
    /* A request below max_split_size never takes an oversize block; one
     * above takes a block only less than kLargeBuffer bigger. */
    if (size < m->max_split && b->size >= m->max_split)
        return NULL;
    if (size >= m->max_split && b->size - size >= K_LARGE_BUFFER)
        return NULL;
    free_remove(m, b);
    return b;
}

/* ---- Expandable segments ------------------------------------------------- */

/* find_expandable_block: the lowest address where `size` bytes of free and
 * unmapped space follow each other, in a segment of `pool`; a new segment
 * when there is none. */
static struct ca_block *find_expandable_block(struct oomb_cachealloc *m, int pool, uint64_t size)
{
    for (struct ca_segment *s = m->segs; s; s = s->next) {
        if (!s->expandable || s->pool != pool)
            continue;
        for (struct ca_block *u = s->head; u; u = u->next) {
            if (u->mapped)
                continue;
            struct ca_block *c = u->prev && !u->prev->allocated ? u->prev : u;
            uint64_t room = 0;
            for (struct ca_block *x = c; x && !x->allocated && room < size; x = x->next)
                room += x->size;
            if (room >= size)
                return c;
        }
    }
    uint64_t page = page_size(pool);
    return segment_new(m, pool, ADDRESS_SPACE / page * page, 1);
}

/* map_block: maps whole pages from the start of unmapped block b to cover
 * `size` bytes, and caches them merged with free neighbours. Returns 0
 * when the device has no room for them (nothing is mapped then). */
static int map_block(struct oomb_cachealloc *m, struct ca_block *b, uint64_t size)
{
    uint64_t page = page_size(b->seg->pool);
    uint64_t len = (size + page - 1) / page * page; /* b->off is page-aligned */
    if (m->limit && len > m->limit - m->st.reserved)
        return 0;
    if (len < b->size)
        (void)split_tail(m, b, b->size - len); /* the rest stays unmapped */
    b->mapped = 1;
    merge(m, b, b->prev);
    merge(m, b, b->next);
    free_insert(m, b);
    reserved_add(m, len);
    m->st.n_segment_allocs++;
    return 1;
}

/* try_allocate_expandable_block: maps what `size` bytes need at the lowest
 * address they fit, and returns that block out of the cache, or NULL. */
static struct ca_block *try_allocate_expandable(struct oomb_cachealloc *m, int pool, uint64_t size)
{
    struct ca_block *c = find_expandable_block(m, pool, size);
    if (!c->mapped && !map_block(m, c, c->size < size ? c->size : size))
        return NULL;
    while (c->size < size) {
        /* c is free and mapped; what follows is unmapped: map into it,
         * and it absorbs c. */
        struct ca_block *n = c->next;
        uint64_t need = size - c->size;
        if (!map_block(m, n, n->size < need ? n->size : need))
            return NULL;
        c = n;
    }
    free_remove(m, c);
    return c;
}

/* unmap_block: unmaps the whole pages inside free block b; the partial
 * pages at its ends stay cached. */
static void unmap_block(struct oomb_cachealloc *m, struct ca_block *b)
{
    uint64_t page = page_size(b->seg->pool);
    uint64_t lo = (b->off + page - 1) / page * page;
    uint64_t hi = (b->off + b->size) / page * page;
    if (lo >= hi)
        return;
    free_remove(m, b);
    if (lo > b->off) {
        struct ca_block *before = split_head(m, b, lo - b->off);
        before->mapped = 1;
        free_insert(m, before);
    }
    if (b->off + b->size > hi) {
        struct ca_block *after = split_tail(m, b, b->off + b->size - hi);
        after->mapped = 1;
        free_insert(m, after);
    }
    b->mapped = 0;
    merge(m, b, b->prev);
    merge(m, b, b->next);
    m->st.reserved -= hi - lo;
    m->st.n_segment_frees++;
}

/* ---- Device allocation and release --------------------------------------- */

/* release_block: cudaFree of a whole cached segment. */
static void release_block(struct oomb_cachealloc *m, struct ca_block *b)
{
    free_remove(m, b);
    m->st.reserved -= b->size;
    m->st.n_segment_frees++;
    segment_drop(m, b->seg);
}

/* alloc_block: a new segment (or newly mapped pages) for a rounded request
 * of `size` bytes whose segment size is `alloc_size`; the block out of the
 * cache, or NULL when the device allocation fails. */
static struct ca_block *alloc_block(struct oomb_cachealloc *m, int pool, uint64_t size,
                                    uint64_t alloc_size)
{
    /* The memory-fraction check, on the segment size in both modes. */
    if (m->limit && alloc_size > m->limit - m->st.reserved)
        return NULL;
    if (m->conf.expandable_segments)
        return try_allocate_expandable(m, pool, size);
    struct ca_block *b = segment_new(m, pool, alloc_size, 0);
    reserved_add(m, alloc_size);
    m->st.n_segment_allocs++;
    return b;
}

/* garbage_collect_cached_blocks: above gc_threshold x limit reserved,
 * frees whole cached segments of the large pool that have waited at least
 * the average number of get_free_block calls, round after round, until
 * reserved is back under the threshold or nothing more can go. */
static void garbage_collect(struct oomb_cachealloc *m)
{
    struct ca_pool *p = &m->pools[POOL_LARGE];
    if (!m->gc_on)
        return;
    uint64_t threshold = (uint64_t)(m->conf.gc_threshold * (double)m->limit);
    if (m->st.reserved <= threshold)
        return;
    uint64_t target = m->st.reserved - threshold, reclaimed = 0, total_age = 0;
    size_t n = 0;
    for (struct ca_block *b = p->free_head; b; b = b->fnext) {
        if (whole_segment(b)) {
            total_age += p->get_free_calls - b->gc_base;
            n++;
        }
    }
    int freed = 1;
    while (reclaimed < target && freed && n > 0) {
        double age_threshold = (double)total_age / (double)n;
        freed = 0;
        struct ca_block *next;
        for (struct ca_block *b = p->free_head; b; b = next) {
            next = b->fnext;
            uint64_t age = p->get_free_calls - b->gc_base;
            if (whole_segment(b) && (double)age >= age_threshold) {
                freed = 1;
                reclaimed += b->size;
                total_age -= age;
                n--;
                release_block(m, b);
            }
        }
    }
}

/* release_available_cached_blocks: with max_split_size set, frees the
 * smallest cached oversize segment that covers the request (at least
 * max_split_size), else the largest oversize ones until as many bytes are
 * freed. Returns whether enough was freed. Expandable segments are never
 * released here (as since PyTorch PR #134338). */
static int release_available(struct oomb_cachealloc *m, int pool, uint64_t size)
{
    struct ca_pool *p = &m->pools[pool];
    if (m->max_split == UINT64_MAX || m->conf.expandable_segments)
        return 0;
    uint64_t key = size < m->max_split ? m->max_split : size;
    struct ca_block *b = p->free_head;
    while (b && b->size < key)
        b = b->fnext;
    if (b) {
        /* An oversize block is always a whole segment when max_split_size
         * is a multiple of 1 MiB above 20 MiB, as create() requires. */
        if (!whole_segment(b))
            return 0;
        release_block(m, b);
        return 1;
    }
    uint64_t released = 0;
    struct ca_block *prev;
    for (b = p->free_tail; b && released < key && b->size >= m->max_split; b = prev) {
        prev = b->fprev;
        if (!whole_segment(b))
            continue;
        released += b->size;
        release_block(m, b);
    }
    return released >= key;
}

/* release_blocks for one pool: frees every whole cached segment and
 * unmaps the whole free pages of expandable ones; an expandable segment
 * left with nothing mapped is forgotten. */
static void release_pool(struct oomb_cachealloc *m, int pool)
{
    struct ca_pool *p = &m->pools[pool];
    struct ca_block *next;
    for (struct ca_block *b = p->free_head; b; b = next) {
        next = b->fnext;
        if (whole_segment(b))
            release_block(m, b);
    }
    struct ca_segment *snext;
    for (struct ca_segment *s = m->segs; s; s = snext) {
        snext = s->next;
        if (!s->expandable || s->pool != pool)
            continue;
        struct ca_block *b = s->head;
        while (b) {
            if (!b->mapped || b->allocated) {
                b = b->next;
                continue;
            }
            uint64_t end = b->off + b->size;
            unmap_block(m, b);
            while (b && b->off < end) /* past the free pages left at its end */
                b = b->next;
        }
        if (!s->head->next && !s->head->mapped)
            segment_drop(m, s);
    }
}

/* release_cached_blocks (emptyCache). */
static void release_cached(struct oomb_cachealloc *m)
{
    release_pool(m, POOL_LARGE);
    release_pool(m, POOL_SMALL);
}

/* ---- Live requests by id ------------------------------------------------- */

static size_t slot_hash(uint64_t x, size_t n_slots)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (size_t)(x & (n_slots - 1));
}

static struct ca_slot *slot_find(const struct oomb_cachealloc *m, uint64_t id)
{
    size_t i = slot_hash(id, m->n_slots);
    while (m->slots[i].used) {
        if (m->slots[i].id == id)
            return &m->slots[i];
        i = (i + 1) & (m->n_slots - 1);
    }
    return NULL;
}

static void slot_put(struct ca_slot *slots, size_t n_slots, uint64_t id, struct ca_block *b)
{
    size_t i = slot_hash(id, n_slots);
    while (slots[i].used)
        i = (i + 1) & (n_slots - 1);
    slots[i].id = id;
    slots[i].block = b;
    slots[i].used = 1;
}

/* Room for one more live request (the table stays at most half full). */
static int slots_make_room(struct oomb_cachealloc *m)
{
    if ((m->n_live + 1) * 2 <= m->n_slots)
        return OOMB_OK;
    size_t n = m->n_slots * 2;
    struct ca_slot *slots = calloc(n, sizeof *slots);
    if (!slots)
        return OOMB_ERR_OOM;
    for (size_t i = 0; i < m->n_slots; i++)
        if (m->slots[i].used)
            slot_put(slots, n, m->slots[i].id, m->slots[i].block);
    free(m->slots);
    m->slots = slots;
    m->n_slots = n;
    return OOMB_OK;
}

/* Empties slot s, moving back the entries after it that probed past it. */
static void slot_delete(struct oomb_cachealloc *m, struct ca_slot *s)
{
    size_t mask = m->n_slots - 1, hole = (size_t)(s - m->slots), j = hole;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->slots[j].used)
            break;
        size_t home = slot_hash(m->slots[j].id, m->n_slots);
        /* The entry at j may fill the hole unless its home lies
         * (cyclically) in (hole, j]. */
        int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].used = 0;
    m->n_live--;
}

/* ---- Public functions -------------------------------------------------- */

static int conf_valid(const struct oomb_cachealloc_conf *c)
{
    int d = c->roundup_power2_divisions;
    double g = c->gc_threshold;
    if (c->max_split_size != 0 &&
        (c->max_split_size <= K_LARGE_BUFFER || c->max_split_size % MIB != 0))
        return 0;
    if (d < 0 || d > 64 || (d & (d - 1)) != 0)
        return 0;
    if (c->expandable_segments != 0 && c->expandable_segments != 1)
        return 0;
    if (!(g == 0.0 || (g > 0.0 && g < 1.0))) /* also refuses NaN */
        return 0;
    if (c->empty_cache != OOMB_EMPTY_CACHE_NEVER && c->empty_cache != OOMB_EMPTY_CACHE_STEP)
        return 0;
    return 1;
}

int oomb_cachealloc_create(const struct oomb_cachealloc_conf *conf, uint64_t limit,
                           struct oomb_cachealloc **out)
{
    static const struct oomb_cachealloc_conf defaults;
    if (!out)
        return OOMB_ERR_INVALID;
    *out = NULL;
    if (!conf)
        conf = &defaults;
    if (!conf_valid(conf))
        return OOMB_ERR_INVALID;
    struct oomb_cachealloc *m = calloc(1, sizeof *m);
    if (!m)
        return OOMB_ERR_OOM;
    m->n_slots = 64;
    m->slots = calloc(m->n_slots, sizeof *m->slots);
    if (!m->slots) {
        free(m);
        return OOMB_ERR_OOM;
    }
    m->conf = *conf;
    m->limit = limit;
    m->max_split = conf->max_split_size ? conf->max_split_size : UINT64_MAX;
    m->gc_on = conf->gc_threshold > 0.0 && limit != 0;
    *out = m;
    return OOMB_OK;
}

void oomb_cachealloc_destroy(struct oomb_cachealloc *m)
{
    if (!m)
        return;
    while (m->segs) {
        struct ca_segment *s = m->segs;
        struct ca_block *b = s->head;
        while (b) {
            struct ca_block *n = b->next;
            free(b);
            b = n;
        }
        m->segs = s->next;
        free(s);
    }
    while (m->spare_blocks) {
        struct ca_block *b = m->spare_blocks;
        m->spare_blocks = b->next;
        free(b);
    }
    while (m->spare_segs) {
        struct ca_segment *s = m->spare_segs;
        m->spare_segs = s->next;
        free(s);
    }
    free(m->slots);
    free(m);
}

/* Records a refusal in the stats. */
static void refuse(struct oomb_cachealloc *m, uint64_t bytes, uint64_t size, uint64_t alloc_size)
{
    m->st.oom = 1;
    m->st.oom_request = bytes;
    m->st.oom_rounded = size;
    m->st.oom_segment = alloc_size;
    m->st.oom_allocated = m->st.allocated;
    m->st.oom_reserved = m->st.reserved;
    m->st.oom_largest_free = largest_free(m);
}

int oomb_cachealloc_malloc(struct oomb_cachealloc *m, uint64_t id, uint64_t bytes)
{
    if (!m || slot_find(m, id))
        return OOMB_ERR_INVALID;
    if (slots_make_room(m) != OOMB_OK)
        return OOMB_ERR_OOM;
    if (bytes == 0) { /* PyTorch hands out no block for an empty tensor */
        slot_put(m->slots, m->n_slots, id, NULL);
        m->n_live++;
        return OOMB_OK;
    }
    if (bytes >= MAX_REQUEST) {
        refuse(m, bytes, bytes, bytes);
        return OOMB_ERR_OOM;
    }
    uint64_t size = round_size(m, bytes);
    int pool = size <= K_SMALL_SIZE ? POOL_SMALL : POOL_LARGE;
    uint64_t alloc_size = allocation_size(size);
    /* Nodes this call may need. Without expandable segments: a segment's
     * block and a split. With them: each of the two attempts to map holds
     * at most 3 more at a time (a new segment's block, the unmapped rest
     * of the first block mapped, and one in the loop before it merges
     * back); the release between them 2 per cached block (the partial
     * pages at both ends; one more cached block if the first attempt
     * failed half-way); the split 1. */
    size_t need = m->conf.expandable_segments ? 2 * (m->n_free + 1) + 7 : 2;
    if (reserve_nodes(m, need, 2) != OOMB_OK)
        return OOMB_ERR_OOM;

    m->peak_in_call = 0;
    struct ca_block *b = get_free_block(m, pool, size);
    if (!b) {
        garbage_collect(m);
        b = alloc_block(m, pool, size, alloc_size);
        if (!b && release_available(m, pool, size))
            b = alloc_block(m, pool, size, alloc_size);
        if (!b) {
            m->st.n_flushes++;
            release_cached(m);
            b = alloc_block(m, pool, size, alloc_size);
        }
        if (!b) {
            refuse(m, bytes, size, alloc_size);
            return OOMB_ERR_OOM;
        }
    }
    /* alloc_found_block. */
    if (should_split(m, b, size)) {
        struct ca_block *rest = split_tail(m, b, b->size - size);
        rest->mapped = 1;
        free_insert(m, rest);
    }
    b->allocated = 1;
    b->requested = bytes;
    m->st.requested += bytes;
    m->st.allocated += b->size;
    if (m->st.allocated > m->st.allocated_peak)
        m->st.allocated_peak = m->st.allocated;
    if (m->peak_in_call) /* the segment was made for this request: count it */
        m->st.requested_at_reserved_peak = m->st.requested;
    slot_put(m->slots, m->n_slots, id, b);
    m->n_live++;
    return OOMB_OK;
}

int oomb_cachealloc_free(struct oomb_cachealloc *m, uint64_t id)
{
    struct ca_slot *s = m ? slot_find(m, id) : NULL;
    if (!s)
        return OOMB_ERR_INVALID;
    struct ca_block *b = s->block;
    slot_delete(m, s);
    if (!b)
        return OOMB_OK;
    /* free_block. */
    b->allocated = 0;
    m->st.allocated -= b->size;
    m->st.requested -= b->requested;
    b->requested = 0;
    merge(m, b, b->prev);
    merge(m, b, b->next);
    free_insert(m, b);
    return OOMB_OK;
}

void oomb_cachealloc_empty_cache(struct oomb_cachealloc *m)
{
    if (!m)
        return;
    m->st.n_empty_cache++;
    /* Unmapping may leave partial pages at both ends of each cached block. */
    if (m->conf.expandable_segments && reserve_nodes(m, 2 * m->n_free, 0) != OOMB_OK)
        return;
    release_cached(m);
}

void oomb_cachealloc_get_stats(const struct oomb_cachealloc *m, struct oomb_cachealloc_stats *out)
{
    *out = m->st;
    out->largest_free = largest_free(m);
}

int oomb_cachealloc_check(const struct oomb_cachealloc *m)
{
    uint64_t reserved = 0, allocated = 0, requested = 0;
    size_t n_blocks = 0, n_free = 0, n_allocated = 0, n_live = 0, n_with_block = 0;
    for (const struct ca_segment *s = m->segs; s; s = s->next) {
        uint64_t page = page_size(s->pool), off = 0;
        if (s->head->prev || (s->next && s->next->prev != s) || s->serial >= m->next_serial)
            return OOMB_ERR_INTERNAL;
        for (const struct ca_block *b = s->head; b; b = b->next) {
            const struct ca_block *n = b->next;
            n_blocks++;
            if (b->seg != s || b->off != off || b->size == 0 || (n && n->prev != b))
                return OOMB_ERR_INTERNAL;
            if (!s->expandable && !b->mapped)
                return OOMB_ERR_INTERNAL;
            if (!b->mapped && (b->allocated || b->off % page || b->size % page))
                return OOMB_ERR_INTERNAL;
            if (n && !b->allocated && !n->allocated && b->mapped == n->mapped)
                return OOMB_ERR_INTERNAL; /* two free (or unmapped) neighbours */
            off += b->size;
            if (b->mapped)
                reserved += b->size;
            if (b->allocated) {
                allocated += b->size;
                requested += b->requested;
                n_allocated++;
                if (b->requested == 0 || b->requested > b->size)
                    return OOMB_ERR_INTERNAL;
            } else if (b->mapped) {
                n_free++;
            }
        }
        if (off != s->size)
            return OOMB_ERR_INTERNAL;
    }
    if (reserved != m->st.reserved || allocated != m->st.allocated ||
        requested != m->st.requested || n_blocks != m->n_blocks || n_free != m->n_free)
        return OOMB_ERR_INTERNAL;
    if (m->limit && m->st.reserved > m->limit)
        return OOMB_ERR_INTERNAL;
    size_t listed = 0;
    for (int i = 0; i < 2; i++) {
        const struct ca_block *prev = NULL;
        for (const struct ca_block *b = m->pools[i].free_head; b; b = b->fnext) {
            if (b->allocated || !b->mapped || b->seg->pool != i || b->fprev != prev ||
                (prev && !block_before(prev, b)))
                return OOMB_ERR_INTERNAL;
            prev = b;
            listed++;
        }
        if (m->pools[i].free_tail != prev)
            return OOMB_ERR_INTERNAL;
    }
    if (listed != n_free)
        return OOMB_ERR_INTERNAL;
    for (size_t i = 0; i < m->n_slots; i++) {
        if (!m->slots[i].used)
            continue;
        n_live++;
        if (m->slots[i].block) {
            n_with_block++;
            if (!m->slots[i].block->allocated)
                return OOMB_ERR_INTERNAL;
        }
        if (slot_find(m, m->slots[i].id) != &m->slots[i])
            return OOMB_ERR_INTERNAL;
    }
    if (n_live != m->n_live || n_with_block != n_allocated)
        return OOMB_ERR_INTERNAL;
    return OOMB_OK;
}
