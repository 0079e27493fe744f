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
#include "util.h"
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

/* The kinds of chart, chart1 .. chart7. Charts 1 to 5 (memory, time,
 * trade-off, timeline, sweep) are drawn once per scenario; charts 6 and 7
 * (baseline, history) once for the whole report. */
#define OOMB_REPORT_CHARTS 7
#define OOMB_REPORT_SECTION_CHARTS 5

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
    /* File name without extension: "chart1-memory" when the report has one
     * scenario, "s2-mlp-budget-chart1-memory" (section number, then the
     * scenario's name when it is a safe file name) for a section of a report
     * with several; charts 6 and 7 are always "chart6-baseline" and
     * "chart7-history". Only A-Z a-z 0-9 . _ - */
    char stem[OOMB_PATH_COMPONENT_MAX + 48];
    const char *title; /* the chart's heading */
    int kind;          /* 0 .. OOMB_REPORT_CHARTS - 1: chart1 .. chart7 */
    int section;       /* index into the report's sections; -1: the whole report */
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

/* The runs of one scenario: a section of the report with its own charts 1
 * to 5 (its budget, its batch sweep) and its own runs table. */
struct oomb_report_section {
    const char *scenario; /* lent from the runs */
    int first, n;         /* its runs: cur[first] .. cur[first + n - 1] */
    int n_ok, n_oom, n_na, n_other; /* outcomes: ok, oom, not_applicable, the rest */
    uint64_t budget;      /* the largest budget of its runs; 0: none */
    int charts;           /* index of its chart1 in the report's charts */
    char id[16];          /* HTML anchor: "s1", "s2", ... */
};

struct oomb_report {
    /* Every chart, in the order the report shows them: charts 1 to 5 of each
     * section, then chart 6 and chart 7. With one section charts[k] is chart
     * k + 1, as the file names say. */
    struct oomb_chart *charts;
    int n_charts;
    struct oomb_report_section *sections; /* in order of first appearance */
    int n_sections;
    /* The current runs (pointers into the input sets), grouped by scenario
     * (sections in order), mode and batch. */
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

/* Whether a file name (no folder) is one a report writes for a chart: a
 * .svg, .png, .dat or .gp of "chartN-what" or of a section's
 * "sK-...-chartN-what". The caller removes such files left by an earlier
 * report in the same folder, which this one would contradict. Returns 1 or
 * 0. */
int oomb_report_is_chart_file(const char *name);

#endif
