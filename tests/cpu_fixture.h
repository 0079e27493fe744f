/*
 * The CPU backend fixture shared by the kernel test files: a backend per
 * test, test memory freed in teardown, a seeded generator of test values.
 */
#ifndef OOMB_TESTS_CPU_FIXTURE_H
#define OOMB_TESTS_CPU_FIXTURE_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>

#include "backend.h"

/* ------------------------------------------------------------ fixture ---- */

static struct oomb_kernel_backend *be;
static const struct oomb_ops *ops;
static void *K;

#define MAX_ALLOCS 256
static void *allocs[MAX_ALLOCS];
static int n_allocs;

static void cpu_setup(void)
{
    char msg[256];
    int rc = oomb_cpu_backend_create(&be, msg, sizeof msg);
    cr_assert_eq(rc, OOMB_OK, "cpu backend: %s", msg);
    ops = &be->ops;
    K = ops->ctx;
}

static void cpu_teardown(void)
{
    for (int i = 0; i < n_allocs; i++)
        free(allocs[i]);
    n_allocs = 0;
    if (be)
        be->destroy(be);
    be = NULL;
}

/* Test memory, freed in teardown. */
static inline void *talloc(size_t bytes)
{
    cr_assert_lt(n_allocs, MAX_ALLOCS);
    void *p = calloc(1, bytes ? bytes : 1);
    cr_assert_not_null(p);
    allocs[n_allocs++] = p;
    return p;
}
#define FALLOC(n) ((float *)talloc((size_t)(n) * sizeof(float)))
#define DALLOC(n) ((double *)talloc((size_t)(n) * sizeof(double)))

/* ------------------------------------------------------------ random ----- */

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static inline void seed(uint64_t s)
{
    rng = s * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
}

static inline uint64_t xorshift(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static inline float urand(float lo, float hi)
{
    return lo + (hi - lo) * (float)((xorshift() >> 40) * 0x1p-24);
}

/* Uniform in [lo, hi], never exactly zero. */
static inline void frand(float *x, int64_t n, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++) {
        do
            x[i] = urand(lo, hi);
        while (x[i] == 0.0f);
    }
}

static inline float *frand_new(int64_t n, float lo, float hi)
{
    float *x = FALLOC(n);
    frand(x, n, lo, hi);
    return x;
}

#endif
