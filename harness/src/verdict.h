/*
 * The comparison engine: verdicts of a "head" results set against a "base"
 * (a stored baseline, or the other side of an A/B run). Pure functions over
 * struct oomb_results, no I/O, so that every rule can be unit-tested.
 *
 * Memory is exact: any difference of the total peak or of one tag's peak
 * beyond a byte tolerance (default 0) is a regression (up) or an improvement
 * (down). Outcomes: ok -> oom/crash/timeout/error is a regression. Time is
 * statistical: per metric (step, each phase, throughput) a rank test and a
 * bootstrap interval of the relative change of the median; a regression only
 * when the change is significant and its whole interval lies beyond the noise
 * threshold (against a baseline of several runs: above the prediction bound
 * of their spread and beyond the noise threshold). Quality: final loss,
 * accuracy, held-out test accuracy and numerical deviation against
 * tolerances. Instruction counts (run --instructions) against a relative
 * tolerance; when a side ran under callgrind its times are not judged.
 * docs/verdicts.md explains the statistics.
 */
#ifndef OOMB_VERDICT_H
#define OOMB_VERDICT_H

#include <stddef.h>
#include <stdint.h>

#include "results.h"

enum oomb_verdict_kind {
    OOMB_VERDICT_SAME = 0, /* no change beyond tolerance / not significant */
    OOMB_VERDICT_REGRESSED,
    OOMB_VERDICT_IMPROVED,
    OOMB_VERDICT_NEW,     /* a head run without a base run: not compared */
    OOMB_VERDICT_MISSING, /* a base run absent from head: not compared */
    OOMB_VERDICT_NA,      /* not comparable (a side without data) */
    /* A time metric the machine's noise leaves undecided: the runs waited
     * for a CPU long enough to move the time by the noise threshold, or the
     * interval of the change is wider than the threshold. Never a
     * regression and never "same"; the detail gives the measured noise. */
    OOMB_VERDICT_INCONCLUSIVE
};

enum oomb_verdict_area {
    OOMB_AREA_OUTCOME = 0,
    OOMB_AREA_MEMORY,
    OOMB_AREA_TIME,
    OOMB_AREA_QUALITY,
    OOMB_AREA_INSTRUCTIONS /* run --instructions: counts under callgrind */
};

/* One verdict: one scenario x mode x batch x strategy x metric. */
struct oomb_verdict_item {
    char scenario[128];
    char strategy[128];
    char metric[48]; /* "outcome", "memory.total", "memory.<tag>", "time.step",
                      * "time.<phase>", "throughput", "quality.final_loss",
                      * "quality.accuracy", "quality.test_accuracy",
                      * "numerics.<name>", "run" */
    enum oomb_mode mode;
    int64_t batch;
    enum oomb_backend backend;
    enum oomb_verdict_area area;
    enum oomb_verdict_kind kind;
    double base, head; /* bytes; median ns; samples/s; loss; ... (NAN: n/a) */
    double diff;       /* head - base */
    /* time only (NAN otherwise): relative change of the median, in percent,
     * its (1 - alpha) interval, the p-value, and the threshold applied. */
    double change_pct, ci_low_pct, ci_high_pct, p, threshold_pct;
    int n_base, n_head; /* time samples on each side (all rounds) */
    char detail[384];   /* human-readable reason, e.g. "+1 B", "ok -> crash" */
};

struct oomb_verdict {
    struct oomb_verdict_item *items; /* owned; free with oomb_verdict_free */
    int n, cap;
    int n_regressed, n_improved, n_new, n_missing, n_inconclusive;
    int rounds; /* rounds per side (1: against a baseline) */
    /* How base and head differ in BLAS library, version, kernel, threading or
     * thread count ("" when they do not, or a side does not record it); the
     * time verdicts are then not judged unless allow_blas_mismatch. */
    char blas_note[512];
};

struct oomb_verdict_options {
    uint64_t mem_tolerance; /* bytes; default 0 */
    double alpha;           /* significance level; default 0.05 */
    double noise_pct;       /* < 0: 5 on the CPU, 2 on the GPU (default -1) */
    /* per-metric noise thresholds ("forward", "step", "throughput", or a
     * full metric name "time.forward"); lent, valid during the call */
    const char *const *noise_names;
    const double *noise_values;
    int n_noise;
    double loss_rel_tol;      /* final loss relative change; default 0.02 */
    double acc_drop_tol;      /* accuracy drop, absolute; default 0.01 */
    double test_acc_drop_tol; /* held-out test accuracy drop, absolute; default 0.01 */
    double numerics_tol;      /* numerics rel err limit; default 1e-5 */
    /* A phase (forward, backward, update, other) regresses or improves only
     * when its change, at the end of its interval nearest zero, is at least
     * this share of the base's step time (percent; default 1): a slower
     * phase that costs the step less is shown, not judged. */
    double phase_floor_pct;
    /* Judge times even when base and head ran different BLAS setups
     * (blas_note); default 0: such time metrics are n/a. */
    int allow_blas_mismatch;
    /* Instruction counts (run --instructions), deterministic: the step and
     * each phase regress or improve when the head's median differs from the
     * base's by more than this percentage of the base's step count (default
     * OOMB_INSTR_TOL_PCT). */
    double instr_tol_pct;
};

/* Defaults as above. */
void oomb_verdict_options_init(struct oomb_verdict_options *o);

/*
 * Compare head against base. Each side is `n` results sets (rounds); with
 * more than one round the time statistics are stratified by round (A/B
 * mode: round r of base and round r of head ran next to each other), and
 * memory, outcome and quality are taken from round 0. Runs are matched by
 * scenario, mode, batch and strategy label. With one round, either side
 * may hold several runs of the same identity (a baseline saved from several
 * results files; a head merged from several, as `oombench run --repeat`
 * writes): when the ok runs of both sides give df = k + m - 2 >= 2, the time
 * verdicts are those of oomb_verdict_runs_test (the spread between runs);
 * memory, outcome and quality come from each side's first run, and a head
 * run whose memory differs from the head's first is reported as a
 * regression of memory determinism. Fills *v (caller frees with
 * oomb_verdict_free; also on failure). Returns OOMB_OK or OOMB_ERR_OOM.
 */
int oomb_verdict_compare(const struct oomb_results *base, int n_base,
                         const struct oomb_results *head, int n_head,
                         const struct oomb_verdict_options *o,
                         struct oomb_verdict *v) OOMB_WARN_UNUSED;
void oomb_verdict_free(struct oomb_verdict *v);

/* Stable order for reports: regressions, improvements, then the rest. */
void oomb_verdict_sort(struct oomb_verdict *v);

/* "regressed", "improved", "same", "new", "missing", "n/a", "inconclusive". */
const char *oomb_verdict_kind_name(enum oomb_verdict_kind k);

/* The statistical time test on two sets of raw samples split in `rounds`
 * strata (a[r] has na[r] samples). change: relative change of the median
 * (geometric mean over rounds of per-round median ratios), in percent;
 * [ci_low, ci_high]: its (1 - alpha) percentile-bootstrap interval (fixed
 * seed: the same input always gives the same interval); p: two-sided p of
 * the stratified Mann-Whitney (van Elteren) rank-sum test. */
struct oomb_time_test {
    double change_pct, ci_low_pct, ci_high_pct, p;
};
int oomb_verdict_time_test(const int64_t *const *a, const int *na, const int64_t *const *b,
                           const int *nb, int rounds, double alpha,
                           struct oomb_time_test *out) OOMB_WARN_UNUSED;

/* Its p alone: two-sided p of the stratified Mann-Whitney (van Elteren,
 * equal weights) rank-sum test of b against a, with the tie correction and
 * the normal approximation with continuity correction; strata with an
 * empty side are left out (1 when none is left). O(n log n) per stratum
 * (sorting and counting, not comparing every pair). NAN when out of
 * memory. */
double oomb_verdict_rank_sum_p(const int64_t *const *a, const int *na, const int64_t *const *b,
                               const int *nb, int rounds);

/* Student's t distribution with df > 0 degrees of freedom: the lower-tail
 * probability P(T <= t) (through the regularized incomplete beta function,
 * accurate to about 1e-12), and its inverse for 0 < p < 1 (bisection on the
 * CDF, to about 1e-10). */
double oomb_verdict_t_cdf(double t, double df);
double oomb_verdict_t_quantile(double p, double df);

/* The time test on the spread between runs (processes) of each side:
 * base_log_med[i] is the log of base run i's median (k runs, e.g. a baseline
 * saved from k results files), head_log_med[j] the log of head run j's
 * median (m runs, e.g. `oombench run --repeat m`). With b and h the means
 * of the two sets, s the pooled standard deviation (both sets' squared
 * deviations over df = k + m - 2 degrees of freedom) and se = s sqrt(1/k +
 * 1/m), h - b is judged against t_{df, 1-alpha} se: change: exp(h - b) - 1,
 * in percent; [ci_low, ci_high]: exp(h - b -+ t se) - 1, in percent (the
 * one-sided (1 - alpha) bounds); p: one-sided p-value of (h - b) / se in the
 * direction of the change; mean: exp(b), head: exp(h); bound: exp(b + t se)
 * (ns, what exp(h) must exceed to lie above the base's bound), low_bound its
 * mirror below. With m = 1 this is the prediction bound of one more run of
 * the base build, b +- t_{k-1} s sqrt(1 + 1/k). df < 1 (k + m < 3, or k or
 * m < 1) leaves every field NaN; callers use it from df >= 2. */
struct oomb_runs_test {
    double change_pct, ci_low_pct, ci_high_pct, p, mean, head, bound, low_bound;
    int k, m, df;
};
void oomb_verdict_runs_test(const double *base_log_med, int k, const double *head_log_med, int m,
                            double alpha, struct oomb_runs_test *out);

#endif
