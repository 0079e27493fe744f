/*
 * The report: comparison charts (gnuplot data and scripts), index.html and a
 * Markdown summary built from results files (docs/report.md). This module is
 * pure data preparation: it reads nothing from disk, writes nothing and
 * starts no process; it turns results already in memory into the text of
 * every file. cmd_report.c loads the inputs, writes the files and runs
 * gnuplot on the scripts.
 */
#ifndef OOMB_REPORT_H
#define OOMB_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "results.h"
#include "verdict.h"

/* A growable string. Zero-initialise; free with oomb_sbuf_free. After an
 * allocation failure `failed` is set and further appends do nothing. */
struct oomb_sbuf {
    char *data; /* NUL-terminated when non-NULL */
    size_t len, cap;
    int failed;
};

void oomb_sbuf_printf(struct oomb_sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void oomb_sbuf_free(struct oomb_sbuf *b);

#define OOMB_REPORT_CHARTS 7

/* One results file, loaded. Lent to the report: it must outlive it. */
struct oomb_report_set {
    const char *path;
    const struct oomb_results *res;
};

struct oomb_report_input {
    /* The RESULTS given, oldest first (by `created`). The newest run of each
     * scenario x mode x batch x strategy is the "current" one. */
    const struct oomb_report_set *sets;
    int n_sets;
    /* Baseline results (merged); n_baseline 0: compare the oldest with the
     * newest of sets, when they differ. baseline_label names it in titles. */
    const struct oomb_report_set *baseline;
    int n_baseline;
    const char *baseline_label;
    /* Extra history (--history), any order; merged with sets, a path given
     * twice counts once. */
    const struct oomb_report_set *history;
    int n_history;
    const char *scenario; /* NULL, or only this scenario's runs */
    /* The verdict engine's options (verdict.h), so that the report judges
     * exactly as `compare` does with the same options; NULL: its defaults.
     * Lent for the duration of oomb_report_build. */
    const struct oomb_verdict_options *verdict;
    const char *png_terminal; /* "pngcairo" (default when NULL) or "png" */
};

struct oomb_chart {
    const char *stem;  /* file name without extension, e.g. "chart1-memory" */
    const char *title; /* the chart's heading */
    char caption[768]; /* what the chart shows, for index.html */
    char note[512];    /* non-empty: no chart (why); dat and gp are then empty */
    struct oomb_sbuf dat, gp;
    int n_series;      /* plot elements drawn with a legend entry or data */
    int drawn;         /* set by the caller once the SVG and PNG exist */
};

enum oomb_change_verdict {
    OOMB_CHANGE_SAME = 0, /* unchanged, or within the noise threshold */
    OOMB_CHANGE_REGRESSION = 1,
    OOMB_CHANGE_IMPROVEMENT = 2,
    OOMB_CHANGE_INCONCLUSIVE = 3 /* a time too noisy to judge */
};

/* One metric of one run, baseline against current: one item of the verdict
 * engine (verdict.h), the same verdict and numbers `compare` prints. */
struct oomb_report_change {
    char run[192];    /* "mlp/none train b=256" */
    char metric[48];  /* the engine's metric name: "memory.total", "time.step", ... */
    const char *unit; /* "bytes", "ns", "/s", "" */
    double base, cur;
    double change; /* relative: the engine's change of the median for times,
                    * (cur - base) / |base| otherwise; NAN when undefined */
    enum oomb_change_verdict verdict;
    char detail[384]; /* the engine's detail text */
};

struct oomb_report {
    struct oomb_chart charts[OOMB_REPORT_CHARTS];
    /* The current runs (pointers into the input sets), grouped by scenario,
     * mode and batch. */
    const struct oomb_run_result **cur;
    int n_cur;
    struct oomb_report_change *changes;
    int n_changes;
    int n_regressions, n_improvements, n_inconclusive; /* the engine's counts */
    double noise_pct; /* the time noise threshold applied (for the charts) */
    char cmp_what[512]; /* "baseline X against current Y"; "" when no comparison */
    char cmp_short[256]; /* the same, short, for the chart's title */
    char cmp_note[512]; /* why there is no comparison */
    /* History: the merged sets, oldest first. */
    struct oomb_report_set *hist;
    int n_hist;
};

/* Build every chart's data and script, the comparison and the history from
 * the input. Charts that cannot be drawn from it get a note instead. Returns
 * OOMB_OK, OOMB_ERR_INVALID (no runs at all; err says so) or
 * OOMB_ERR_INTERNAL (out of memory). The caller frees *rep with
 * oomb_report_free, also on failure. */
int oomb_report_build(const struct oomb_report_input *in, struct oomb_report *rep, char *err,
                      size_t err_len) OOMB_WARN_UNUSED;

/* index.html and summary.md, given which charts were drawn. plot_note: a
 * line shown above the charts when they could not be drawn (NULL: none).
 * Returns OOMB_OK or OOMB_ERR_INTERNAL (out of memory). */
int oomb_report_html(const struct oomb_report *rep, const struct oomb_report_input *in,
                     const char *plot_note, struct oomb_sbuf *out) OOMB_WARN_UNUSED;
int oomb_report_markdown(const struct oomb_report *rep, const struct oomb_report_input *in,
                         const char *plot_note, struct oomb_sbuf *out) OOMB_WARN_UNUSED;

void oomb_report_free(struct oomb_report *rep);

#endif
