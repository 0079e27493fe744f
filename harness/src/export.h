/*
 * Verdict reports: the console table (regressions first), JUnit XML (one
 * testcase per scenario x strategy x metric), a Markdown summary for CI
 * pages, and a Google Benchmark compatible JSON export of the raw time
 * samples (readable by Google Benchmark's tools/compare.py). Files are
 * written atomically.
 */
#ifndef OOMB_EXPORT_H
#define OOMB_EXPORT_H

#include <stddef.h>
#include <stdio.h>

#include "results.h"
#include "verdict.h"

/* The table of v (sorted as it is: call oomb_verdict_sort first). Items
 * that are "same" in memory/outcome/quality are counted, not listed, unless
 * verbose. color: ANSI colours for the verdict column. */
void oomb_verdict_print(FILE *f, const struct oomb_verdict *v, int color, int verbose);

/* JUnit XML: a <testsuite> per scenario, a <testcase> per strategy x metric
 * (classname "scenario.mode.bBATCH.strategy", name the metric), <failure>
 * for a regression, <skipped> for a run without a baseline. */
int oomb_export_junit(const struct oomb_verdict *v, const char *path, char *err, size_t err_len)
    OOMB_WARN_UNUSED;

/* Markdown: a headline, the regressions and improvements, then every time
 * metric with its change, interval and p. `title` names what was compared. */
int oomb_export_markdown(const struct oomb_verdict *v, const char *title, const char *path,
                         char *err, size_t err_len) OOMB_WARN_UNUSED;

/* Google Benchmark JSON: context plus benchmarks[], one "iteration" entry
 * per raw sample (name "scenario/mode/batch:B/strategy/metric", metrics
 * "step" and each measured phase, time_unit "ns", real_time == cpu_time ==
 * the sample), over the n results sets given (rounds are concatenated). */
int oomb_export_gbench(const struct oomb_results *r, int n, const char *path, char *err,
                       size_t err_len) OOMB_WARN_UNUSED;

#endif
