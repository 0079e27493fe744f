/*
 * Verdicts of a head results set against a base (verdict.h). Memory and
 * outcomes are compared exactly; times with a stratified rank-sum test and a
 * fixed-seed bootstrap interval of the relative change of the median, or,
 * against a baseline of several runs, a t prediction bound from the spread
 * between them; quality against tolerances. docs/verdicts.md says why these
 * tests.
 */
#include "verdict.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "instr.h"
#include "table.h"

#define BOOT_RESAMPLES 2000
#define BOOT_SEED 0x5DEECE66Dull
/* Above this many samples a side, a bootstrap median is drawn from the
 * large-sample distribution of the resample's median rank rather than by
 * n draws (resample_median). */
#define BOOT_EXACT_MAX 20000

void oomb_verdict_options_init(struct oomb_verdict_options *o)
{
    memset(o, 0, sizeof *o);
    o->alpha = 0.05;
    o->noise_pct = -1;
    o->loss_rel_tol = 0.02;
    o->acc_drop_tol = 0.01;
    o->test_acc_drop_tol = 0.01;
    o->numerics_tol = 1e-5;
    o->phase_floor_pct = 1;
    o->instr_tol_pct = OOMB_INSTR_TOL_PCT;
}

const char *oomb_verdict_kind_name(enum oomb_verdict_kind k)
{
    static const char *const names[] = {"same",    "regressed", "improved",    "new",
                                        "missing", "n/a",       "inconclusive"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

void oomb_verdict_free(struct oomb_verdict *v)
{
    free(v->items);
    memset(v, 0, sizeof *v);
}

/* ------------------------------------------------------------ statistics - */

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
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

static int draw(uint64_t *s, int n)
{
    return (int)(((unsigned __int128)xorshift64s(s) * (unsigned)n) >> 64);
}

static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double percentile_sorted(const double *v, int n, double p)
{
    double h = (n - 1) * p;
    int lo = (int)floor(h);
    int hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (h - lo) * (v[hi] - v[lo]);
}

/* One side of one round, sorted once for the bootstrap: xs the values in
 * ascending order, rank[i] the position of x[i] in xs, count (n) scratch. */
struct ranked {
    double *xs;
    int *rank, *count;
    int n;
};

static const int64_t *rank_base;
static int cmp_index(const void *x, const void *y)
{
    int64_t a = rank_base[*(const int *)x], b = rank_base[*(const int *)y];
    return (a > b) - (a < b);
}

static int ranked_init(struct ranked *rk, const int64_t *x, int n)
{
    rk->n = n;
    rk->xs = malloc((size_t)(n ? n : 1) * sizeof *rk->xs);
    rk->rank = malloc((size_t)(n ? n : 1) * sizeof *rk->rank);
    rk->count = malloc((size_t)(n ? n : 1) * sizeof *rk->count);
    if (!rk->xs || !rk->rank || !rk->count)
        return OOMB_ERR_OOM;
    int *order = rk->count; /* scratch until the first resample */
    for (int i = 0; i < n; i++)
        order[i] = i;
    rank_base = x; /* single-threaded: the verdicts run in one thread */
    qsort(order, (size_t)n, sizeof *order, cmp_index);
    for (int p = 0; p < n; p++) {
        rk->xs[p] = (double)x[order[p]];
        rk->rank[order[p]] = p;
    }
    return OOMB_OK;
}

static void ranked_free(struct ranked *rk)
{
    free(rk->xs);
    free(rk->rank);
    free(rk->count);
}

/* Median of a bootstrap resample of the n values: n draws with replacement,
 * the median of what was drawn. Counting the draws per rank and reading the
 * middle off the cumulative counts replaces sorting the resample (O(n) and
 * not O(n log n) per resample, which made 10^6 samples take minutes); the
 * draws and the median are the same, bit for bit. */
static double resample_median(struct ranked *rk, uint64_t *s)
{
    int n = rk->n;
    if (n > BOOT_EXACT_MAX) {
        /* The count of draws at or below rank p is Binomial(n, (p+1)/n):
         * the resample's k-th smallest sits at rank k + Z sqrt(n)/2 (Z
         * standard normal, the normal limit around the middle, where
         * (p+1)/n is 1/2), rounded up. Two draws per resample instead of n:
         * 10^6 samples a side otherwise take 8 * 10^9 draws per metric. */
        double u1 = ((double)(xorshift64s(s) >> 11) + 0.5) * 0x1.0p-53;
        double u2 = (double)(xorshift64s(s) >> 11) * 0x1.0p-53;
        double z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
        double sd = 0.5 * sqrt((double)n);
        int lo = n % 2 ? n / 2 : n / 2 - 1, hi = n / 2;
        double plo = ceil(lo - 0.5 + z * sd), phi = ceil(hi - 0.5 + z * sd);
        plo = plo < 0 ? 0 : plo > n - 1 ? n - 1 : plo;
        phi = phi < 0 ? 0 : phi > n - 1 ? n - 1 : phi;
        return n % 2 ? rk->xs[(int)plo] : 0.5 * (rk->xs[(int)plo] + rk->xs[(int)phi]);
    }
    memset(rk->count, 0, (size_t)n * sizeof *rk->count);
    for (int i = 0; i < n; i++)
        rk->count[rk->rank[draw(s, n)]]++;
    /* positions lo and hi (0-based) of the sorted resample: the middle one
     * or two */
    int lo = n % 2 ? n / 2 : n / 2 - 1, hi = n / 2;
    double vlo = 0, vhi = 0;
    int64_t cum = 0;
    int have_lo = 0;
    for (int p = 0; p < n; p++) {
        cum += rk->count[p];
        if (!have_lo && cum > lo) {
            vlo = rk->xs[p];
            have_lo = 1;
        }
        if (cum > hi) {
            vhi = rk->xs[p];
            break;
        }
    }
    return n % 2 ? vlo : 0.5 * (vlo + vhi);
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/*
 * Stratified Mann-Whitney (van Elteren with equal weights): the U statistics
 * of the strata add up, so do their null means and variances (with the tie
 * correction); normal approximation with continuity correction. Two-sided.
 * U is counted on sorted copies in O(n log n): for each b_j, the a_i below
 * it and those equal to it (half), in one merge pass. The counts are
 * integers and U = less + equal / 2 is exact in a double up to 2^52 pairs,
 * so U is bit for bit the sum over all pairs that it replaces.
 */
double oomb_verdict_rank_sum_p(const int64_t *const *a, const int *na, const int64_t *const *b,
                               const int *nb, int rounds)
{
    int maxn = 0;
    for (int r = 0; r < rounds; r++)
        if (na[r] + nb[r] > maxn)
            maxn = na[r] + nb[r];
    if (maxn == 0)
        return 1.0;
    double *pooled = malloc((size_t)maxn * sizeof *pooled);
    int64_t *sorted = malloc((size_t)maxn * sizeof *sorted);
    if (!pooled || !sorted) {
        free(pooled);
        free(sorted);
        return NAN;
    }
    double U = 0, EU = 0, VU = 0;
    for (int r = 0; r < rounds; r++) {
        int n1 = na[r], n2 = nb[r], n = n1 + n2;
        if (n1 == 0 || n2 == 0)
            continue;
        /* U of b over a: pairs (i, j) with b_j > a_i, ties counting half. */
        int64_t *sa = sorted, *sb = sorted + n1;
        memcpy(sa, a[r], (size_t)n1 * sizeof *sa);
        memcpy(sb, b[r], (size_t)n2 * sizeof *sb);
        qsort(sa, (size_t)n1, sizeof *sa, cmp_i64);
        qsort(sb, (size_t)n2, sizeof *sb, cmp_i64);
        uint64_t less = 0, equal = 0;
        int lo = 0, hi = 0; /* sa[0, lo) < sb[j]; sa[0, hi) <= sb[j] */
        for (int j = 0; j < n2; j++) {
            while (lo < n1 && sa[lo] < sb[j])
                lo++;
            if (hi < lo)
                hi = lo;
            while (hi < n1 && sa[hi] <= sb[j])
                hi++;
            less += (uint64_t)lo;
            equal += (uint64_t)(hi - lo);
        }
        double u = (double)less + 0.5 * (double)equal;
        for (int i = 0; i < n1; i++)
            pooled[i] = (double)a[r][i];
        for (int j = 0; j < n2; j++)
            pooled[n1 + j] = (double)b[r][j];
        qsort(pooled, (size_t)n, sizeof *pooled, cmp_double);
        double ties = 0;
        for (int i = 0; i < n;) {
            int j = i;
            while (j < n && pooled[j] == pooled[i])
                j++;
            double t = j - i;
            ties += t * t * t - t;
            i = j;
        }
        U += u;
        EU += 0.5 * n1 * n2;
        if (n > 1)
            VU += (double)n1 * n2 / 12.0 * ((n + 1) - ties / ((double)n * (n - 1)));
    }
    free(pooled);
    free(sorted);
    if (VU <= 0)
        return 1.0;
    double d = fabs(U - EU) - 0.5;
    if (d < 0)
        d = 0;
    return erfc(d / sqrt(VU) / sqrt(2.0));
}

int oomb_verdict_time_test(const int64_t *const *a, const int *na, const int64_t *const *b,
                           const int *nb, int rounds, double alpha, struct oomb_time_test *out)
{
    out->change_pct = out->ci_low_pct = out->ci_high_pct = out->p = NAN;
    int maxn = 0, used = 0;
    for (int r = 0; r < rounds; r++) {
        if (na[r] > maxn)
            maxn = na[r];
        if (nb[r] > maxn)
            maxn = nb[r];
        if (na[r] > 0 && nb[r] > 0)
            used++;
    }
    if (used == 0)
        return OOMB_OK;
    double *tmp = malloc((size_t)(2 * maxn) * sizeof *tmp);
    double *boot = malloc(BOOT_RESAMPLES * sizeof *boot);
    int *valid = malloc((size_t)rounds * sizeof *valid);
    if (!tmp || !boot || !valid) {
        free(tmp);
        free(boot);
        free(valid);
        return OOMB_ERR_OOM;
    }
    /* Point estimate: geometric mean over rounds of the median ratios. */
    double logsum = 0;
    int k = 0;
    for (int r = 0; r < rounds; r++) {
        if (na[r] == 0 || nb[r] == 0)
            continue;
        valid[k++] = r;
        for (int i = 0; i < na[r]; i++)
            tmp[i] = (double)a[r][i];
        double ma = median_of(tmp, na[r]);
        for (int i = 0; i < nb[r]; i++)
            tmp[i] = (double)b[r][i];
        double mb = median_of(tmp, nb[r]);
        logsum += log(mb > 0 ? mb : 1) - log(ma > 0 ? ma : 1);
    }
    out->change_pct = (exp(logsum / k) - 1) * 100;

    /* Bootstrap: resample rounds (when there are several), then the samples
     * of each side within each drawn round, independently. With one round
     * (a comparison against a baseline) this is the percentile bootstrap of
     * median(head) / median(base) - 1. With several, drawing the rounds
     * carries the round-to-round spread of the ratio (two processes never
     * run equally fast) into the interval; keeping every round instead (a
     * stratified bootstrap) leaves it out and raised false alarms. Drawing
     * the samples again within a round counts the within-round spread a
     * second time: the interval errs on the wide side, which with few rounds
     * makes up for a bootstrap over 5 or 10 values being too narrow.
     * docs/verdicts.md has the numbers. */
    struct ranked *ra = calloc((size_t)rounds, sizeof *ra),
                  *rb = calloc((size_t)rounds, sizeof *rb);
    int rc = ra && rb ? OOMB_OK : OOMB_ERR_OOM;
    for (int j = 0; j < k && rc == OOMB_OK; j++) {
        rc = ranked_init(&ra[valid[j]], a[valid[j]], na[valid[j]]);
        if (rc == OOMB_OK)
            rc = ranked_init(&rb[valid[j]], b[valid[j]], nb[valid[j]]);
    }
    uint64_t s = BOOT_SEED;
    for (int it = 0; it < BOOT_RESAMPLES && rc == OOMB_OK; it++) {
        double ls = 0;
        for (int j = 0; j < k; j++) {
            int r = k > 1 ? valid[draw(&s, k)] : valid[0];
            double ma = resample_median(&ra[r], &s);
            double mb = resample_median(&rb[r], &s);
            ls += log(mb > 0 ? mb : 1) - log(ma > 0 ? ma : 1);
        }
        boot[it] = (exp(ls / k) - 1) * 100;
    }
    for (int r = 0; r < rounds && ra && rb; r++) {
        ranked_free(&ra[r]);
        ranked_free(&rb[r]);
    }
    free(ra);
    free(rb);
    if (rc != OOMB_OK) {
        free(boot);
        free(valid);
        free(tmp);
        return rc;
    }
    qsort(boot, BOOT_RESAMPLES, sizeof *boot, cmp_double);
    out->ci_low_pct = percentile_sorted(boot, BOOT_RESAMPLES, alpha / 2);
    out->ci_high_pct = percentile_sorted(boot, BOOT_RESAMPLES, 1 - alpha / 2);
    if (out->ci_low_pct > out->change_pct)
        out->ci_low_pct = out->change_pct;
    if (out->ci_high_pct < out->change_pct)
        out->ci_high_pct = out->change_pct;
    free(boot);
    free(valid);

    free(tmp);
    out->p = oomb_verdict_rank_sum_p(a, na, b, nb, rounds);
    return isnan(out->p) ? OOMB_ERR_OOM : OOMB_OK;
}

/*
 * Student's t distribution. P(|T| > |t|) = I_x(df/2, 1/2) with x = df /
 * (df + t^2), I the regularized incomplete beta function, evaluated by its
 * continued fraction (modified Lentz; Numerical Recipes 6.4), which converges
 * fast for x < (a + 1) / (a + b + 2) and otherwise through I_x(a, b) = 1 -
 * I_{1-x}(b, a).
 */
static double beta_cf(double a, double b, double x)
{
    const double tiny = 1e-300, eps = 1e-15;
    double qab = a + b, qap = a + 1, qam = a - 1;
    double c = 1, d = 1 - qab * x / qap;
    if (fabs(d) < tiny)
        d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 300; m++) {
        int m2 = 2 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < eps)
            break;
    }
    return h;
}

static double beta_reg(double a, double b, double x)
{
    if (x <= 0)
        return 0;
    if (x >= 1)
        return 1;
    double lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1) / (a + b + 2))
        return exp(lbt) * beta_cf(a, b, x) / a;
    return 1 - exp(lbt) * beta_cf(b, a, 1 - x) / b;
}

double oomb_verdict_t_cdf(double t, double df)
{
    if (isnan(t) || !(df > 0))
        return NAN;
    if (isinf(t))
        return t > 0 ? 1 : 0;
    double tail = 0.5 * beta_reg(0.5 * df, 0.5, df / (df + t * t));
    return t > 0 ? 1 - tail : tail;
}

double oomb_verdict_t_quantile(double p, double df)
{
    if (!(p > 0 && p < 1) || !(df > 0))
        return NAN;
    if (p < 0.5)
        return -oomb_verdict_t_quantile(1 - p, df);
    if (p == 0.5)
        return 0;
    double lo = 0, hi = 1;
    while (oomb_verdict_t_cdf(hi, df) < p && hi < 1e300)
        hi *= 2;
    for (int i = 0; i < 200 && hi - lo > 1e-12 * (1 + hi); i++) {
        double mid = 0.5 * (lo + hi);
        if (oomb_verdict_t_cdf(mid, df) < p)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

static void mean_ss(const double *x, int n, double *mean, double *ss)
{
    double m = 0, q = 0;
    for (int i = 0; i < n; i++)
        m += x[i];
    m /= n;
    for (int i = 0; i < n; i++)
        q += (x[i] - m) * (x[i] - m);
    *mean = m;
    *ss = q;
}

void oomb_verdict_runs_test(const double *base_log_med, int k, const double *head_log_med, int m,
                            double alpha, struct oomb_runs_test *out)
{
    out->change_pct = out->ci_low_pct = out->ci_high_pct = out->p = NAN;
    out->mean = out->head = out->bound = out->low_bound = NAN;
    out->k = k;
    out->m = m;
    out->df = k + m - 2;
    if (k < 1 || m < 1 || out->df < 1)
        return;
    double b, ssb, h, ssh;
    mean_ss(base_log_med, k, &b, &ssb);
    mean_ss(head_log_med, m, &h, &ssh);
    /* se of h - b under no change; with m = 1, s sqrt(1 + 1/k): the
     * prediction bound of one more run. */
    double se = sqrt((ssb + ssh) / out->df) * sqrt(1.0 / k + 1.0 / m);
    double margin = oomb_verdict_t_quantile(1 - alpha, out->df) * se;
    double d = h - b;
    out->mean = exp(b);
    out->head = exp(h);
    out->bound = exp(b + margin);
    out->low_bound = exp(b - margin);
    out->change_pct = (exp(d) - 1) * 100;
    out->ci_low_pct = (exp(d - margin) - 1) * 100;
    out->ci_high_pct = (exp(d + margin) - 1) * 100;
    if (se > 0)
        out->p = oomb_verdict_t_cdf(-fabs(d) / se, out->df);
    else
        out->p = d != 0 ? 0 : 1;
}

/* ------------------------------------------------------------ items ------ */

static struct oomb_verdict_item *add_item(struct oomb_verdict *v, const struct oomb_run_result *run,
                                          enum oomb_verdict_area area, const char *metric)
{
    if (v->n == v->cap) {
        int cap = v->cap ? 2 * v->cap : 64;
        struct oomb_verdict_item *it = realloc(v->items, (size_t)cap * sizeof *it);
        if (!it)
            return NULL;
        v->items = it;
        v->cap = cap;
    }
    struct oomb_verdict_item *it = &v->items[v->n++];
    memset(it, 0, sizeof *it);
    snprintf(it->scenario, sizeof it->scenario, "%s", run->scenario ? run->scenario : "");
    snprintf(it->strategy, sizeof it->strategy, "%s", run->strategy ? run->strategy : "");
    snprintf(it->metric, sizeof it->metric, "%s", metric);
    it->mode = run->mode;
    it->batch = run->batch;
    it->backend = run->backend;
    it->area = area;
    it->kind = OOMB_VERDICT_SAME;
    it->base = it->head = it->diff = NAN;
    it->change_pct = it->ci_low_pct = it->ci_high_pct = it->p = it->threshold_pct = NAN;
    return it;
}

static void set_kind(struct oomb_verdict *v, struct oomb_verdict_item *it, enum oomb_verdict_kind k)
{
    it->kind = k;
    if (k == OOMB_VERDICT_REGRESSED)
        v->n_regressed++;
    else if (k == OOMB_VERDICT_IMPROVED)
        v->n_improved++;
    else if (k == OOMB_VERDICT_NEW)
        v->n_new++;
    else if (k == OOMB_VERDICT_MISSING)
        v->n_missing++;
    else if (k == OOMB_VERDICT_INCONCLUSIVE)
        v->n_inconclusive++;
}

static int same_identity(const struct oomb_run_result *x, const struct oomb_run_result *y)
{
    return x->mode == y->mode && x->batch == y->batch &&
           strcmp(x->scenario ? x->scenario : "", y->scenario ? y->scenario : "") == 0 &&
           strcmp(x->strategy ? x->strategy : "", y->strategy ? y->strategy : "") == 0;
}

/* The first run of r with like's identity (scenario, mode, batch, strategy
 * label), or NULL. */
static const struct oomb_run_result *find_run(const struct oomb_results *r,
                                              const struct oomb_run_result *like)
{
    for (int i = 0; i < r->n_runs; i++)
        if (same_identity(&r->runs[i], like))
            return &r->runs[i];
    return NULL;
}

static int outcome_failed(enum oomb_outcome o)
{
    return o == OOMB_OUTCOME_OOM || o == OOMB_OUTCOME_CRASH || o == OOMB_OUTCOME_TIMEOUT ||
           o == OOMB_OUTCOME_ERROR;
}

static int compare_memory_value(struct oomb_verdict *v, const struct oomb_run_result *hr,
                                const char *metric, uint64_t b, uint64_t h, uint64_t tol)
{
    struct oomb_verdict_item *it = add_item(v, hr, OOMB_AREA_MEMORY, metric);
    if (!it)
        return OOMB_ERR_OOM;
    it->base = (double)b;
    it->head = (double)h;
    int64_t d = (int64_t)(h - b);
    it->diff = (double)d;
    uint64_t mag = h >= b ? h - b : b - h;
    char hb[32];
    oomb_format_bytes(mag, hb, sizeof hb);
    if (mag == 0) {
        snprintf(it->detail, sizeof it->detail, "identical (%llu B)", (unsigned long long)h);
    } else {
        snprintf(it->detail, sizeof it->detail, "%s%lld B (%s%s) %llu -> %llu", d > 0 ? "+" : "",
                 (long long)d, d > 0 ? "+" : "-", hb, (unsigned long long)b, (unsigned long long)h);
        if (mag > tol)
            set_kind(v, it, h > b ? OOMB_VERDICT_REGRESSED : OOMB_VERDICT_IMPROVED);
    }
    return OOMB_OK;
}

static double noise_for(const struct oomb_verdict_options *o, const char *metric,
                        enum oomb_backend backend)
{
    const char *dot = strchr(metric, '.');
    const char *shortname = dot ? dot + 1 : metric;
    for (int i = 0; i < o->n_noise; i++)
        if (strcmp(o->noise_names[i], metric) == 0 || strcmp(o->noise_names[i], shortname) == 0)
            return o->noise_values[i];
    if (o->noise_pct >= 0)
        return o->noise_pct;
    return backend == OOMB_BACKEND_CUDA ? 2.0 : 5.0;
}

/* Whether a phase's change (an item with base, ci_low_pct and ci_high_pct
 * set; `up`: the regression side) is material: at its end nearest zero, at
 * least phase_floor_pct of the base's step time. The step and throughput
 * always are. When not, why (for the detail) says so. */
static int material(const struct oomb_verdict_item *it, int phase, double step_base_ns, int up,
                    const struct oomb_verdict_options *o, char *why, size_t why_len)
{
    if (phase < 0 || !(step_base_ns > 0) || !(it->base > 0))
        return 1;
    double floor_ns = o->phase_floor_pct / 100 * step_base_ns;
    double least = (up ? it->ci_low_pct : -it->ci_high_pct) / 100 * it->base;
    if (least >= floor_ns)
        return 1;
    char f[32];
    oomb_format_ns(floor_ns, f, sizeof f);
    snprintf(why, why_len, ", not judged: under %s (%.3g%% of the step)", f, o->phase_floor_pct);
    return 0;
}

/* The largest CPU-wait share (struct oomb_run_result.cpu_wait_share) among
 * the runs r[0..n) (NULL entries skipped); NAN when none recorded one. */
static double max_wait_share(const struct oomb_run_result *const *r, int n)
{
    double w = NAN;
    for (int i = 0; i < n; i++)
        if (r[i] && isfinite(r[i]->cpu_wait_share) && !(r[i]->cpu_wait_share <= w))
            w = r[i]->cpu_wait_share;
    return w;
}

/*
 * Whether the machine was too busy to judge a time: a run whose threads
 * waited a share w of the step for a CPU ran 1 / (1 - w) times slower than
 * on an idle machine for that reason alone. When that alone could move a
 * time by half the noise threshold, a difference in load between the two
 * sides could pass for a change: the item is inconclusive. why says so.
 */
static int machine_busy(double wait_share, double thr, char *why, size_t why_len)
{
    if (!(wait_share > 0))
        return 0;
    double moved = wait_share < 1 ? wait_share / (1 - wait_share) * 100 : INFINITY;
    if (moved < thr / 2)
        return 0;
    snprintf(why, why_len,
             ", inconclusive: the runs waited for a CPU up to %.1f%% of the step (machine busy), "
             "which alone moves a time by %.3g%%",
             100 * wait_share, moved);
    return 1;
}

/*
 * A time item judged "same" whose interval is wider than the noise
 * threshold could hide a change of that size: inconclusive, with the
 * measured noise (the interval's half-width). A phase whose whole interval
 * stays under the phase floor cannot matter and stays "same".
 */
static int too_noisy(const struct oomb_verdict_item *it, int phase, double step_base_ns,
                     const struct oomb_verdict_options *o, char *why, size_t why_len)
{
    double half = (it->ci_high_pct - it->ci_low_pct) / 2, thr = it->threshold_pct;
    if (!(half > thr))
        return 0;
    if (phase >= 0 && step_base_ns > 0 && it->base > 0) {
        double reach = fmax(fabs(it->ci_low_pct), fabs(it->ci_high_pct)) / 100 * it->base;
        if (reach < o->phase_floor_pct / 100 * step_base_ns)
            return 0;
    }
    snprintf(why, why_len,
             ", inconclusive: noise +-%.3g%% (half the interval) exceeds the threshold %.3g%%",
             half, thr);
    return 1;
}

/* Time metric `phase` (-1: the whole step; -2: throughput). */
static int compare_time(struct oomb_verdict *v, const struct oomb_run_result *const *br,
                        const struct oomb_run_result *const *hr, int rounds, int phase,
                        double step_base_ns, const struct oomb_verdict_options *o)
{
    char why[192] = "";
    const int64_t **a = calloc((size_t)rounds, sizeof *a), **b = calloc((size_t)rounds, sizeof *b);
    int *na = calloc((size_t)rounds, sizeof *na), *nb = calloc((size_t)rounds, sizeof *nb);
    int rc = OOMB_ERR_OOM, ta = 0, tb = 0;
    if (!a || !b || !na || !nb)
        goto done;
    for (int r = 0; r < rounds; r++) {
        if (br[r] && br[r]->outcome == OOMB_OUTCOME_OK) {
            a[r] = phase >= 0 ? br[r]->phase_ns[phase] : br[r]->step_ns;
            na[r] = a[r] ? br[r]->n_steps : 0;
        }
        if (hr[r] && hr[r]->outcome == OOMB_OUTCOME_OK) {
            b[r] = phase >= 0 ? hr[r]->phase_ns[phase] : hr[r]->step_ns;
            nb[r] = b[r] ? hr[r]->n_steps : 0;
        }
        ta += na[r];
        tb += nb[r];
    }
    rc = OOMB_OK;
    if (phase >= 0 && (ta == 0 || tb == 0))
        goto done; /* the phase was not measured: no verdict */
    char metric[48];
    snprintf(metric, sizeof metric, "%s%s", phase == -2 ? "" : "time.",
             phase == -2   ? "throughput"
             : phase == -1 ? "step"
                           : oomb_phase_name(phase));
    struct oomb_verdict_item *it = add_item(v, hr[0], OOMB_AREA_TIME, metric);
    rc = OOMB_ERR_OOM;
    if (!it)
        goto done;
    it->n_base = ta;
    it->n_head = tb;
    it->threshold_pct = noise_for(o, metric, hr[0]->backend);
    if (ta == 0 || tb == 0) {
        it->kind = OOMB_VERDICT_NA;
        snprintf(it->detail, sizeof it->detail, "no time samples on the %s side",
                 ta == 0 ? "base" : "head");
        rc = OOMB_OK;
        goto done;
    }
    struct oomb_time_test t;
    if ((rc = oomb_verdict_time_test(a, na, b, nb, rounds, o->alpha, &t)) != OOMB_OK)
        goto done;
    /* For display, the values the test compares: each side's median (one
     * round), or the geometric means of the per-round medians over the
     * rounds both sides have (several rounds, A/B), whose ratio is the
     * tested change. */
    double *tmp = malloc((size_t)(ta > tb ? ta : tb) * sizeof *tmp);
    if (!tmp) {
        rc = OOMB_ERR_OOM;
        goto done;
    }
    double la = 0, lb = 0;
    int used = 0;
    for (int r = 0; r < rounds; r++) {
        if (na[r] == 0 || nb[r] == 0)
            continue;
        for (int i = 0; i < na[r]; i++)
            tmp[i] = (double)a[r][i];
        double ma = median_of(tmp, na[r]);
        for (int i = 0; i < nb[r]; i++)
            tmp[i] = (double)b[r][i];
        double mb = median_of(tmp, nb[r]);
        la += log(ma > 0 ? ma : 1);
        lb += log(mb > 0 ? mb : 1);
        used++;
    }
    free(tmp);
    it->base = exp(la / used);
    it->head = exp(lb / used);
    it->p = t.p;
    int significant = t.p < o->alpha;
    double thr = it->threshold_pct;
    int busy = machine_busy(fmax(max_wait_share(br, rounds), max_wait_share(hr, rounds)), thr,
                            why, sizeof why);
    if (phase == -2) {
        /* Throughput is batch / step time: a change c of the step time is a
         * change 1/(1+c) - 1 of the throughput; the interval flips. */
        double bsz = (double)hr[0]->batch;
        it->base = it->base > 0 ? bsz * 1e9 / it->base : NAN;
        it->head = it->head > 0 ? bsz * 1e9 / it->head : NAN;
        it->change_pct = (1.0 / (1 + t.change_pct / 100) - 1) * 100;
        it->ci_low_pct = (1.0 / (1 + t.ci_high_pct / 100) - 1) * 100;
        it->ci_high_pct = (1.0 / (1 + t.ci_low_pct / 100) - 1) * 100;
        it->diff = it->head - it->base;
        if (busy)
            set_kind(v, it, OOMB_VERDICT_INCONCLUSIVE);
        else if (significant && it->ci_high_pct < -thr)
            set_kind(v, it, OOMB_VERDICT_REGRESSED);
        else if (significant && it->ci_low_pct > thr)
            set_kind(v, it, OOMB_VERDICT_IMPROVED);
    } else {
        it->change_pct = t.change_pct;
        it->ci_low_pct = t.ci_low_pct;
        it->ci_high_pct = t.ci_high_pct;
        it->diff = it->head - it->base;
        if (busy)
            set_kind(v, it, OOMB_VERDICT_INCONCLUSIVE);
        else if (significant && it->ci_low_pct > thr &&
                 material(it, phase, step_base_ns, 1, o, why, sizeof why))
            set_kind(v, it, OOMB_VERDICT_REGRESSED);
        else if (significant && it->ci_high_pct < -thr &&
                 material(it, phase, step_base_ns, 0, o, why, sizeof why))
            set_kind(v, it, OOMB_VERDICT_IMPROVED);
    }
    if (it->kind == OOMB_VERDICT_SAME && !why[0] &&
        too_noisy(it, phase, step_base_ns, o, why, sizeof why))
        set_kind(v, it, OOMB_VERDICT_INCONCLUSIVE);
    if (rounds > 1)
        snprintf(it->detail, sizeof it->detail,
                 "%+.2f%% [%+.2f%%, %+.2f%%] p=%.3g (geometric mean of %d paired round-median "
                 "ratios), noise %.3g%%%s",
                 it->change_pct, it->ci_low_pct, it->ci_high_pct, it->p, used, thr, why);
    else
        snprintf(it->detail, sizeof it->detail, "%+.2f%% [%+.2f%%, %+.2f%%] p=%.3g, noise %.3g%%%s",
                 it->change_pct, it->ci_low_pct, it->ci_high_pct, it->p, thr, why);
    rc = OOMB_OK;
done:
    free(a);
    free(b);
    free(na);
    free(nb);
    return rc;
}

/* Logs of the medians of metric `phase` (as compare_time) of the runs r[0..n)
 * that have samples of it, into lm; *used: how many; *samples: their total. */
static int log_medians(const struct oomb_run_result *const *r, int n, int phase, double *lm,
                       int *used, int *samples)
{
    int maxn = 0;
    *used = *samples = 0;
    for (int i = 0; i < n; i++)
        if (r[i]->n_steps > maxn)
            maxn = r[i]->n_steps;
    if (maxn == 0)
        return OOMB_OK;
    double *tmp = malloc((size_t)maxn * sizeof *tmp);
    if (!tmp)
        return OOMB_ERR_OOM;
    for (int i = 0; i < n; i++) {
        const int64_t *x = phase >= 0 ? r[i]->phase_ns[phase] : r[i]->step_ns;
        if (!x || r[i]->n_steps == 0)
            continue;
        for (int j = 0; j < r[i]->n_steps; j++)
            tmp[j] = (double)x[j];
        double med = median_of(tmp, r[i]->n_steps);
        lm[(*used)++] = log(med > 0 ? med : 1);
        *samples += r[i]->n_steps;
    }
    free(tmp);
    return OOMB_OK;
}

/* Time metric `phase` (as compare_time) between k base runs and m head runs
 * of one configuration: the between-run test (oomb_verdict_runs_test).
 * *done = 0 when the runs with samples of that metric give fewer than 2
 * degrees of freedom (the caller then uses the one-run test). */
static int compare_time_runs(struct oomb_verdict *v, const struct oomb_run_result *const *br, int k,
                             const struct oomb_run_result *const *hr, int m, int phase,
                             double step_base_ns, const struct oomb_verdict_options *o, int *done)
{
    char why[192] = "";
    *done = 0;
    double *lb = malloc((size_t)k * sizeof *lb), *lh = malloc((size_t)m * sizeof *lh);
    int kb = 0, mh = 0, ta = 0, tb = 0, rc = OOMB_ERR_OOM;
    if (!lb || !lh)
        goto out;
    if ((rc = log_medians(br, k, phase, lb, &kb, &ta)) != OOMB_OK ||
        (rc = log_medians(hr, m, phase, lh, &mh, &tb)) != OOMB_OK)
        goto out;
    if (kb < 1 || mh < 1 || kb + mh - 2 < 2)
        goto out; /* rc is OOMB_OK */
    *done = 1;
    struct oomb_runs_test t;
    oomb_verdict_runs_test(lb, kb, lh, mh, o->alpha, &t);

    char metric[48];
    snprintf(metric, sizeof metric, "%s%s", phase == -2 ? "" : "time.",
             phase == -2   ? "throughput"
             : phase == -1 ? "step"
                           : oomb_phase_name(phase));
    const struct oomb_run_result *h = hr[0];
    struct oomb_verdict_item *it = add_item(v, h, OOMB_AREA_TIME, metric);
    rc = OOMB_ERR_OOM;
    if (!it)
        goto out;
    rc = OOMB_OK;
    it->n_base = ta;
    it->n_head = tb;
    it->threshold_pct = noise_for(o, metric, h->backend);
    it->p = t.p;
    double thr = it->threshold_pct;
    /* Regressed: the head's (mean log) median is above the base's one-sided
     * bound (significant at alpha) and the whole interval lies beyond the
     * noise threshold, the rule of the one-run test. Throughput is batch /
     * step time (as in compare_time). */
    int up = t.head > t.bound, down = t.head < t.low_bound;
    int busy = machine_busy(fmax(max_wait_share(br, k), max_wait_share(hr, m)), thr, why,
                            sizeof why);
    if (busy)
        up = down = 0;
    if (phase == -2) {
        double bsz = (double)h->batch;
        it->base = bsz * 1e9 / t.mean;
        it->head = bsz * 1e9 / t.head;
        it->change_pct = (1.0 / (1 + t.change_pct / 100) - 1) * 100;
        it->ci_low_pct = (1.0 / (1 + t.ci_high_pct / 100) - 1) * 100;
        it->ci_high_pct = (1.0 / (1 + t.ci_low_pct / 100) - 1) * 100;
        if (up && it->ci_high_pct < -thr)
            set_kind(v, it, OOMB_VERDICT_REGRESSED);
        else if (down && it->ci_low_pct > thr)
            set_kind(v, it, OOMB_VERDICT_IMPROVED);
    } else {
        it->base = t.mean;
        it->head = t.head;
        it->change_pct = t.change_pct;
        it->ci_low_pct = t.ci_low_pct;
        it->ci_high_pct = t.ci_high_pct;
        if (up && it->ci_low_pct > thr && material(it, phase, step_base_ns, 1, o, why, sizeof why))
            set_kind(v, it, OOMB_VERDICT_REGRESSED);
        else if (down && it->ci_high_pct < -thr &&
                 material(it, phase, step_base_ns, 0, o, why, sizeof why))
            set_kind(v, it, OOMB_VERDICT_IMPROVED);
    }
    it->diff = it->head - it->base;
    if (busy)
        set_kind(v, it, OOMB_VERDICT_INCONCLUSIVE);
    else if (it->kind == OOMB_VERDICT_SAME && !why[0] &&
             too_noisy(it, phase, step_base_ns, o, why, sizeof why))
        set_kind(v, it, OOMB_VERDICT_INCONCLUSIVE);
    char bound[48], runs[48];
    if (phase == -2)
        snprintf(bound, sizeof bound, "%.4g/s", (double)h->batch * 1e9 / t.bound);
    else
        oomb_format_ns(t.bound, bound, sizeof bound);
    if (mh > 1)
        snprintf(runs, sizeof runs, "%d base runs, %d head runs", kb, mh);
    else
        snprintf(runs, sizeof runs, "%d base runs", kb);
    snprintf(it->detail, sizeof it->detail,
             "%+.2f%% [%+.2f%%, %+.2f%%] p=%.3g, %s bound %s (%s), noise %.3g%%%s", it->change_pct,
             it->ci_low_pct, it->ci_high_pct, it->p, phase == -2 ? "lower" : "upper", bound, runs,
             thr, why);
out:
    free(lb);
    free(lh);
    return rc;
}

static int compare_quality(struct oomb_verdict *v, const struct oomb_run_result *b,
                           const struct oomb_run_result *h, const struct oomb_verdict_options *o)
{
    struct oomb_verdict_item *it;
    if (isfinite(b->final_loss) && isfinite(h->final_loss)) {
        if (!(it = add_item(v, h, OOMB_AREA_QUALITY, "quality.final_loss")))
            return OOMB_ERR_OOM;
        it->base = b->final_loss;
        it->head = h->final_loss;
        it->diff = h->final_loss - b->final_loss;
        double rel =
            b->final_loss != 0 ? it->diff / fabs(b->final_loss) : (it->diff != 0 ? INFINITY : 0);
        snprintf(it->detail, sizeof it->detail, "%.6g -> %.6g (%+.3g%%, limit %.3g%%)", it->base,
                 it->head, rel * 100, o->loss_rel_tol * 100);
        if (rel > o->loss_rel_tol)
            set_kind(v, it, OOMB_VERDICT_REGRESSED);
        else if (rel < -o->loss_rel_tol)
            set_kind(v, it, OOMB_VERDICT_IMPROVED);
    } else if (isfinite(b->final_loss) && !isfinite(h->final_loss) &&
               h->outcome == OOMB_OUTCOME_OK) {
        if (!(it = add_item(v, h, OOMB_AREA_QUALITY, "quality.final_loss")))
            return OOMB_ERR_OOM;
        it->base = b->final_loss;
        it->head = h->final_loss;
        snprintf(it->detail, sizeof it->detail, "%.6g -> not finite", it->base);
        set_kind(v, it, OOMB_VERDICT_REGRESSED);
    }
    if (b->has_accuracy && h->has_accuracy && isfinite(b->accuracy) && isfinite(h->accuracy)) {
        if (!(it = add_item(v, h, OOMB_AREA_QUALITY, "quality.accuracy")))
            return OOMB_ERR_OOM;
        it->base = b->accuracy;
        it->head = h->accuracy;
        it->diff = h->accuracy - b->accuracy;
        snprintf(it->detail, sizeof it->detail, "%.4f -> %.4f (%+.4f, limit -%.4g)", it->base,
                 it->head, it->diff, o->acc_drop_tol);
        if (it->diff < -o->acc_drop_tol)
            set_kind(v, it, OOMB_VERDICT_REGRESSED);
        else if (it->diff > o->acc_drop_tol)
            set_kind(v, it, OOMB_VERDICT_IMPROVED);
    }
    /* Held-out test accuracy: the rule of accuracy (an absolute drop beyond
     * the tolerance), and an evaluation that stopped giving a number is a
     * regression as a final loss that did. A head run without an evaluation
     * the base had is shown, not judged: the scenario no longer asks for one
     * or the plugin cannot evaluate (eval_note says which). */
    int b_eval = b->has_eval && isfinite(b->test_accuracy);
    if (b_eval && h->has_eval && isfinite(h->test_accuracy)) {
        if (!(it = add_item(v, h, OOMB_AREA_QUALITY, "quality.test_accuracy")))
            return OOMB_ERR_OOM;
        it->base = b->test_accuracy;
        it->head = h->test_accuracy;
        it->diff = h->test_accuracy - b->test_accuracy;
        snprintf(it->detail, sizeof it->detail, "%.4f -> %.4f (%+.2f pp, limit -%.4g pp)", it->base,
                 it->head, 100 * it->diff, 100 * o->test_acc_drop_tol);
        if (it->diff < -o->test_acc_drop_tol)
            set_kind(v, it, OOMB_VERDICT_REGRESSED);
        else if (it->diff > o->test_acc_drop_tol)
            set_kind(v, it, OOMB_VERDICT_IMPROVED);
    } else if (b_eval && h->outcome == OOMB_OUTCOME_OK) {
        if (!(it = add_item(v, h, OOMB_AREA_QUALITY, "quality.test_accuracy")))
            return OOMB_ERR_OOM;
        it->base = b->test_accuracy;
        if (h->has_eval) {
            snprintf(it->detail, sizeof it->detail, "%.4f -> not finite", it->base);
            set_kind(v, it, OOMB_VERDICT_REGRESSED);
        } else {
            snprintf(it->detail, sizeof it->detail, "%.4f -> not evaluated%s%.180s", it->base,
                     h->eval_note && h->eval_note[0] ? ": " : "", h->eval_note ? h->eval_note : "");
            it->kind = OOMB_VERDICT_NA;
        }
    }
    static const char *const names[] = {"loss_rel_err", "grad_rel_err", "output_rel_err",
                                        "weight_rel_err"};
    const double bv[] = {b->loss_rel_err, b->grad_rel_err, b->output_rel_err, b->weight_rel_err};
    const double hv[] = {h->loss_rel_err, h->grad_rel_err, h->output_rel_err, h->weight_rel_err};
    for (int i = 0; i < 4; i++) {
        if (!isfinite(bv[i]) || bv[i] < 0 || isnan(hv[i]) || hv[i] < 0)
            continue;
        char metric[48];
        snprintf(metric, sizeof metric, "numerics.%s", names[i]);
        if (!(it = add_item(v, h, OOMB_AREA_QUALITY, metric)))
            return OOMB_ERR_OOM;
        it->base = bv[i];
        it->head = hv[i];
        it->diff = hv[i] - bv[i];
        snprintf(it->detail, sizeof it->detail, "%.3g -> %.3g (limit %.3g)", bv[i], hv[i],
                 o->numerics_tol);
        if (bv[i] <= o->numerics_tol && !(hv[i] <= o->numerics_tol))
            set_kind(v, it, OOMB_VERDICT_REGRESSED);
        else if (bv[i] > o->numerics_tol && hv[i] <= o->numerics_tol)
            set_kind(v, it, OOMB_VERDICT_IMPROVED);
    }
    return OOMB_OK;
}

/* The ok runs of r with like's identity into out (room for r->n_runs), in
 * order; returns how many. */
static int same_runs(const struct oomb_results *r, const struct oomb_run_result *like,
                     const struct oomb_run_result **out)
{
    int n = 0;
    for (int i = 0; i < r->n_runs; i++)
        if (r->runs[i].outcome == OOMB_OUTCOME_OK && same_identity(&r->runs[i], like))
            out[n++] = &r->runs[i];
    return n;
}

/* Memory is deterministic: runs of one build must have the same peaks. A
 * head run (of several, e.g. from --repeat) whose total or one tag's peak
 * differs from the first's is a regression ("memory.repeat"): the exact
 * memory verdict would depend on which run was compared. */
static int check_repeat_memory(struct oomb_verdict *v, const struct oomb_run_result *const *h,
                               int m)
{
    for (int j = 1; j < m; j++) {
        const char *what = NULL;
        uint64_t a = 0, b = 0;
        if (h[j]->peak_bytes != h[0]->peak_bytes) {
            what = "total";
            a = h[0]->peak_bytes;
            b = h[j]->peak_bytes;
        }
        for (int t = 0; t < OOMB_TAG_COUNT && !what; t++)
            if (h[j]->peak_by_tag[t] != h[0]->peak_by_tag[t]) {
                what = oomb_tag_name((enum oomb_tag)t);
                a = h[0]->peak_by_tag[t];
                b = h[j]->peak_by_tag[t];
            }
        if (!what)
            continue;
        struct oomb_verdict_item *it = add_item(v, h[0], OOMB_AREA_MEMORY, "memory.repeat");
        if (!it)
            return OOMB_ERR_OOM;
        it->base = (double)a;
        it->head = (double)b;
        it->diff = (double)b - (double)a;
        snprintf(it->detail, sizeof it->detail,
                 "head runs differ: memory.%s %llu B in run 1, %llu B in run %d of %d", what,
                 (unsigned long long)a, (unsigned long long)b, j + 1, m);
        set_kind(v, it, OOMB_VERDICT_REGRESSED);
        return OOMB_OK;
    }
    return OOMB_OK;
}

/* Appends "what: b -> h" to buf when both are recorded and differ. */
static void note_diff(char *buf, size_t len, const char *what, const char *b, const char *h)
{
    if (!b || !h || !b[0] || !h[0] || strcmp(b, h) == 0)
        return;
    size_t used = strlen(buf);
    if (used + 1 < len)
        snprintf(buf + used, len - used, "%s%s %s -> %s", used ? ", " : "", what, b, h);
}

/* The file-level BLAS differences of base and head into v->blas_note. */
static void blas_file_note(struct oomb_verdict *v, const struct oomb_results *b,
                           const struct oomb_results *h)
{
    char *n = v->blas_note;
    size_t len = sizeof v->blas_note;
    n[0] = '\0';
    note_diff(n, len, "BLAS", b->blas_library, h->blas_library);
    note_diff(n, len, "version", b->blas_version, h->blas_version);
    note_diff(n, len, "kernel", b->blas_kernel, h->blas_kernel);
    note_diff(n, len, "threading", b->blas_parallel, h->blas_parallel);
}

/* Whether base run b and head run h ran different BLAS setups: the files'
 * (v->blas_note) or the runs' thread counts. note receives the difference. */
static int blas_differs(const struct oomb_verdict *v, const struct oomb_run_result *b,
                        const struct oomb_run_result *h, char *note, size_t len)
{
    snprintf(note, len, "%s", v->blas_note);
    if (b->threads > 0 && h->threads > 0 && b->threads != h->threads) {
        size_t used = strlen(note);
        snprintf(note + used, len - used, "%sthreads %d -> %d", used ? ", " : "", b->threads,
                 h->threads);
    }
    return note[0] != '\0';
}

/* ------------------------------------------------------ instructions --- */

/* Instruction counts (run --instructions): the step and each phase, the
 * medians of the first run of each side, only when both sides have them. A
 * change beyond the tolerance, in percent of the base's step count (for the
 * step: of itself), is a regression or an improvement. Times measured under callgrind
 * are not the program's times: when either side ran there, its time is not
 * judged (one n/a row says so; compare_run skips the time verdicts). */
static int compare_instructions(struct oomb_verdict *v, const struct oomb_run_result *b,
                                const struct oomb_run_result *h,
                                const struct oomb_verdict_options *o)
{
    struct oomb_verdict_item *it;
    if (!b->instr && !h->instr)
        return OOMB_OK;
    if (!(it = add_item(v, h, OOMB_AREA_TIME, "time")))
        return OOMB_ERR_OOM;
    it->kind = OOMB_VERDICT_NA;
    snprintf(it->detail, sizeof it->detail,
             "not judged: %s timed under callgrind (run --instructions)%s",
             b->instr && h->instr ? "both sides"
             : b->instr           ? "the base was"
                                  : "the head was",
             b->instr && h->instr ? "; instructions.* are the time gate"
                                  : "; instructions need both sides");
    if (!b->instr || !h->instr)
        return OOMB_OK;
    /* The step (-1), then forward, backward, update, other. */
    static const int order[] = {-1, OOMB_PHASE_FORWARD, OOMB_PHASE_BACKWARD, OOMB_PHASE_UPDATE,
                                OOMB_PHASE_OTHER};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        int p = order[i];
        const int64_t *bs = p < 0 ? b->instr->samples : b->instr->phase[p];
        const int64_t *hs = p < 0 ? h->instr->samples : h->instr->phase[p];
        if (!bs || !hs || b->instr->n_steps <= 0 || h->instr->n_steps <= 0)
            continue;
        char metric[48];
        snprintf(metric, sizeof metric, "instructions.%s",
                 p < 0 ? "step" : oomb_phase_name((enum oomb_phase)p));
        if (!(it = add_item(v, h, OOMB_AREA_INSTRUCTIONS, metric)))
            return OOMB_ERR_OOM;
        it->base = oomb_instr_median(bs, b->instr->n_steps);
        it->head = oomb_instr_median(hs, h->instr->n_steps);
        it->diff = it->head - it->base;
        it->n_base = b->instr->n_steps;
        it->n_head = h->instr->n_steps;
        it->threshold_pct = o->instr_tol_pct;
        double step = oomb_instr_median(b->instr->samples, b->instr->n_steps);
        int k = oomb_instr_judge(it->base, it->head, p < 0 ? it->base : step, o->instr_tol_pct,
                                 &it->change_pct);
        char pct[32] = "base 0";
        if (isfinite(it->change_pct))
            snprintf(pct, sizeof pct, "%+.3f%%", it->change_pct);
        snprintf(it->detail, sizeof it->detail,
                 "%s (%+.0f Ir = %+.3f%% of the step; tolerance %g%%)", pct, it->diff,
                 step > 0 ? it->diff / step * 100 : NAN, o->instr_tol_pct);
        if (k)
            set_kind(v, it, k > 0 ? OOMB_VERDICT_REGRESSED : OOMB_VERDICT_IMPROVED);
    }
    return OOMB_OK;
}

static int compare_run(struct oomb_verdict *v, const struct oomb_results *base,
                       const struct oomb_results *head, int rounds,
                       const struct oomb_run_result *h0, const struct oomb_verdict_options *o)
{
    const struct oomb_run_result *b0 = find_run(&base[0], h0);
    struct oomb_verdict_item *it;
    if (!b0) {
        if (!(it = add_item(v, h0, OOMB_AREA_OUTCOME, "run")))
            return OOMB_ERR_OOM;
        snprintf(it->detail, sizeof it->detail, "no baseline for this run: not compared");
        set_kind(v, it, OOMB_VERDICT_NEW);
        return OOMB_OK;
    }
    /* outcome */
    if (!(it = add_item(v, h0, OOMB_AREA_OUTCOME, "outcome")))
        return OOMB_ERR_OOM;
    it->base = b0->outcome;
    it->head = h0->outcome;
    snprintf(it->detail, sizeof it->detail, "%s -> %s%s%s", oomb_outcome_name(b0->outcome),
             oomb_outcome_name(h0->outcome), h0->reason && h0->reason[0] ? ": " : "",
             h0->reason ? h0->reason : "");
    if (b0->outcome != h0->outcome) {
        if (outcome_failed(h0->outcome) && !outcome_failed(b0->outcome))
            set_kind(v, it, OOMB_VERDICT_REGRESSED);
        else if (outcome_failed(b0->outcome) && h0->outcome == OOMB_OUTCOME_OK)
            set_kind(v, it, OOMB_VERDICT_IMPROVED);
        else if (h0->outcome == OOMB_OUTCOME_CRASH || h0->outcome == OOMB_OUTCOME_TIMEOUT ||
                 h0->outcome == OOMB_OUTCOME_ERROR)
            set_kind(v, it, OOMB_VERDICT_REGRESSED); /* oom -> crash */
        else
            it->kind = OOMB_VERDICT_NA;
    }
    if (b0->outcome != OOMB_OUTCOME_OK || h0->outcome != OOMB_OUTCOME_OK)
        return OOMB_OK; /* memory, time and quality of a failed run mean nothing */

    /* memory: total and every tag, exact */
    int rc;
    if ((rc = compare_memory_value(v, h0, "memory.total", b0->peak_bytes, h0->peak_bytes,
                                   o->mem_tolerance)))
        return rc;
    for (int t = 0; t < OOMB_TAG_COUNT; t++) {
        char metric[48];
        snprintf(metric, sizeof metric, "memory.%s", oomb_tag_name((enum oomb_tag)t));
        if ((rc = compare_memory_value(v, h0, metric, b0->peak_by_tag[t], h0->peak_by_tag[t],
                                       o->mem_tolerance)))
            return rc;
    }

    /* time, stratified by round */
    const struct oomb_run_result **br = calloc((size_t)rounds, sizeof *br);
    const struct oomb_run_result **hr = calloc((size_t)rounds, sizeof *hr);
    if (!br || !hr) {
        free(br);
        free(hr);
        return OOMB_ERR_OOM;
    }
    for (int r = 0; r < rounds; r++) {
        br[r] = find_run(&base[r], h0);
        hr[r] = r == 0 ? h0 : find_run(&head[r], h0);
    }
    /* Against a baseline (one round): every ok run of the same identity on
     * each side, for the between-run test. */
    const struct oomb_run_result **many = NULL, **hmany = NULL;
    int k = 0, m = 0;
    if (rounds == 1) {
        many = malloc((size_t)(base[0].n_runs ? base[0].n_runs : 1) * sizeof *many);
        hmany = malloc((size_t)(head[0].n_runs ? head[0].n_runs : 1) * sizeof *hmany);
        if (!many || !hmany) {
            free(many);
            free(hmany);
            free(br);
            free(hr);
            return OOMB_ERR_OOM;
        }
        k = same_runs(&base[0], h0, many);
        m = same_runs(&head[0], h0, hmany);
        rc = check_repeat_memory(v, hmany, m);
    }
    /* The base's step time, for the phase floor: the median of its first
     * run (a floor needs no more precision). */
    double step_base_ns = 0, lm0 = 0;
    int used0 = 0, samples0 = 0;
    if (br[0] && log_medians(&br[0], 1, -1, &lm0, &used0, &samples0) == OOMB_OK && used0 == 1)
        step_base_ns = exp(lm0);
    /* The step (-1), each phase, then throughput (-2). Inference has no
     * backward and no update: not metrics of an infer run. Times measured
     * under callgrind are not judged (compare_instructions says so), nor
     * times of different BLAS setups: they measure the setups. */
    int timed_under_callgrind = b0->instr || h0->instr;
    char note[sizeof v->blas_note];
    int other_blas = rc == OOMB_OK && !timed_under_callgrind && !o->allow_blas_mismatch &&
                     blas_differs(v, b0, h0, note, sizeof note);
    if (other_blas) {
        if (!(it = add_item(v, h0, OOMB_AREA_TIME, "time.step")))
            rc = OOMB_ERR_OOM;
        else {
            it->kind = OOMB_VERDICT_NA;
            snprintf(it->detail, sizeof it->detail,
                     "not judged: base and head ran different BLAS setups (%.250s); "
                     "--allow-blas-mismatch judges them anyway",
                     note);
        }
    }
    for (int i = -1; i <= OOMB_PHASE_COUNT && rc == OOMB_OK && !timed_under_callgrind && !other_blas;
         i++) {
        int phase = i == OOMB_PHASE_COUNT ? -2 : i, done = 0;
        if (h0->mode == OOMB_MODE_INFER &&
            (phase == OOMB_PHASE_BACKWARD || phase == OOMB_PHASE_UPDATE))
            continue;
        if (k >= 1 && m >= 1 && k + m >= 4)
            rc = compare_time_runs(v, many, k, hmany, m, phase, step_base_ns, o, &done);
        if (rc == OOMB_OK && !done)
            rc = compare_time(v, br, hr, rounds, phase, step_base_ns, o);
    }
    free(hmany);
    free(many);
    free(br);
    free(hr);
    if (rc || (rc = compare_instructions(v, b0, h0, o)))
        return rc;
    return compare_quality(v, b0, h0, o);
}

int oomb_verdict_compare(const struct oomb_results *base, int n_base,
                         const struct oomb_results *head, int n_head,
                         const struct oomb_verdict_options *o, struct oomb_verdict *v)
{
    memset(v, 0, sizeof *v);
    int rounds = n_base < n_head ? n_base : n_head;
    if (rounds < 1)
        return OOMB_ERR_INVALID;
    v->rounds = rounds;
    blas_file_note(v, &base[0], &head[0]);
    int rc;
    for (int i = 0; i < head[0].n_runs; i++) {
        const struct oomb_run_result *h = &head[0].runs[i];
        if (find_run(&head[0], h) != h)
            continue; /* a further run of an identity already compared */
        if ((rc = compare_run(v, base, head, rounds, h, o)) != OOMB_OK)
            return rc;
    }
    for (int i = 0; i < base[0].n_runs; i++) {
        const struct oomb_run_result *b = &base[0].runs[i];
        if (find_run(&head[0], b) || find_run(&base[0], b) != b)
            continue;
        struct oomb_verdict_item *it = add_item(v, b, OOMB_AREA_OUTCOME, "run");
        if (!it)
            return OOMB_ERR_OOM;
        snprintf(it->detail, sizeof it->detail, "in the baseline, not in these results");
        set_kind(v, it, OOMB_VERDICT_MISSING);
    }
    return OOMB_OK;
}

static int kind_rank(enum oomb_verdict_kind k)
{
    switch (k) {
    case OOMB_VERDICT_REGRESSED:
        return 0;
    case OOMB_VERDICT_IMPROVED:
        return 1;
    case OOMB_VERDICT_NEW:
        return 2;
    case OOMB_VERDICT_MISSING:
        return 3;
    case OOMB_VERDICT_INCONCLUSIVE:
        return 4;
    case OOMB_VERDICT_NA:
        return 5;
    default:
        return 6;
    }
}

void oomb_verdict_sort(struct oomb_verdict *v)
{
    /* Insertion sort: stable, and verdict lists are short. */
    for (int i = 1; i < v->n; i++) {
        struct oomb_verdict_item x = v->items[i];
        int j = i - 1;
        while (j >= 0 && kind_rank(v->items[j].kind) > kind_rank(x.kind)) {
            v->items[j + 1] = v->items[j];
            j--;
        }
        v->items[j + 1] = x;
    }
}
