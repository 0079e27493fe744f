/*
 * Robust statistics of step times: median, mean, sample standard deviation,
 * extremes, 5th/95th percentiles, and a 95% bootstrap interval of the median.
 *
 * The bootstrap uses a fixed-seed xorshift generator so that the same samples
 * always give the same interval: results files are diffed and compared, and a
 * CI that moved between two reads of the same data would be noise we made.
 */
#include "results.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BOOT_RESAMPLES 2000
/* Upper bound on bootstrap draws (resamples x n), so that a long run of
 * samples does not make the statistics the slow part of a benchmark. */
#define BOOT_MAX_DRAWS 20000000L
#define BOOT_SEED 0x9E3779B97F4A7C15ull

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentile of sorted v by linear interpolation between closest ranks
 * (the "type 7" definition: numpy's and R's default). */
static double percentile_sorted(const double *v, int n, double p)
{
    double h = (n - 1) * p;
    int lo = (int)floor(h);
    int hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (h - lo) * (v[hi] - v[lo]);
}

static double median_sorted(const double *v, int n)
{
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static uint64_t xorshift64s(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [0, n) by multiply-shift (no modulo bias worth the name). */
static int draw_index(uint64_t *s, int n)
{
    return (int)(((unsigned __int128)xorshift64s(s) * (unsigned)n) >> 64);
}

/*
 * Median of one resample of sorted v. A resample is a multiset of indices,
 * so counting how often each index is drawn and walking the counts in order
 * finds the middle ranks without sorting: O(n) per resample.
 */
static double resample_median(const double *v, int n, int *counts, uint64_t *s)
{
    memset(counts, 0, (size_t)n * sizeof(*counts));
    for (int i = 0; i < n; i++)
        counts[draw_index(s, n)]++;
    int want_lo = (n - 1) / 2, want_hi = n / 2; /* 0-based ranks of the middle */
    double lo = NAN;
    int seen = 0;
    for (int i = 0; i < n; i++) {
        int next = seen + counts[i];
        if (isnan(lo) && want_lo < next)
            lo = v[i];
        if (want_hi < next)
            return 0.5 * (lo + v[i]);
        seen = next;
    }
    return lo; /* not reached: the counts add up to n */
}

void oomb_stats_compute(const int64_t *samples, int n, struct oomb_stats *out)
{
    out->median = out->mean = out->stddev = out->min = out->max = NAN;
    out->p05 = out->p95 = out->ci_low = out->ci_high = NAN;
    if (!samples || n <= 0)
        return;

    double *v = malloc((size_t)n * sizeof(*v));
    if (!v)
        return;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        v[i] = (double)samples[i];
        sum += v[i];
    }
    qsort(v, (size_t)n, sizeof(*v), cmp_double);

    out->mean = sum / n;
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (v[i] - out->mean) * (v[i] - out->mean);
    /* Sample (n-1) deviation; one sample shows no spread at all. */
    out->stddev = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
    out->min = v[0];
    out->max = v[n - 1];
    out->median = median_sorted(v, n);
    out->p05 = percentile_sorted(v, n, 0.05);
    out->p95 = percentile_sorted(v, n, 0.95);

    if (n == 1) {
        out->ci_low = out->ci_high = v[0];
        free(v);
        return;
    }

    long resamples = BOOT_RESAMPLES;
    if (resamples * n > BOOT_MAX_DRAWS)
        resamples = BOOT_MAX_DRAWS / n > 200 ? BOOT_MAX_DRAWS / n : 200;
    double *meds = malloc((size_t)resamples * sizeof(*meds));
    int *counts = malloc((size_t)n * sizeof(*counts));
    if (meds && counts) {
        uint64_t s = BOOT_SEED;
        for (long b = 0; b < resamples; b++)
            meds[b] = resample_median(v, n, counts, &s);
        qsort(meds, (size_t)resamples, sizeof(*meds), cmp_double);
        out->ci_low = percentile_sorted(meds, (int)resamples, 0.025);
        out->ci_high = percentile_sorted(meds, (int)resamples, 0.975);
        /* The percentile bootstrap can, for very lumpy data, give an interval
         * beside the point estimate; the interval of the median is reported
         * around it by construction. */
        if (out->ci_low > out->median)
            out->ci_low = out->median;
        if (out->ci_high < out->median)
            out->ci_high = out->median;
    }
    free(counts);
    free(meds);
    free(v);
}
