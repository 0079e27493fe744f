/*
 * The console summary of a results set: one row per run, grouped by
 * scenario, mode and batch, with memory in human units (the exact bytes are
 * in the JSON), step time with its 95% interval, throughput, quality and
 * deviation from the reference strategy.
 */
#ifndef OOMB_TABLE_H
#define OOMB_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "results.h"

/* Print the table for every run of r to f. color != 0 adds ANSI colours to
 * the outcome column (green ok, yellow oom/skipped/not_applicable, red
 * crash/timeout/error). Groups appear in the order of their first run. A
 * group with a held-out evaluation (a run with has_eval) also shows the
 * columns "run time" (the run's wall time), "test acc" (0.8734) and "Δ test"
 * (percentage points against none, "-0.41 pp"). After the last group of a
 * scenario whose runs measured their wall time comes the line
 * "SCENARIO: total run time 12.34 s (N run(s))". */
void oomb_table_print(FILE *f, const struct oomb_results *r, int color);

/* The wall time of the runs of `scenario` (NULL: of every run) in r:
 * *seconds receives the sum of their finite run_seconds (NAN when none has
 * one); returns how many runs were counted. */
int oomb_scenario_run_time(const struct oomb_results *r, const char *scenario, double *seconds);

/* "512 B", "1.50 KiB", "12.34 MiB", "512.0 GiB": two decimals below 100 of a
 * unit, one above. Always NUL-terminated within len. */
void oomb_format_bytes(uint64_t bytes, char *buf, size_t len);

/* A duration in ns as "850 ns", "12.34 us", "123.4 ms", "2.50 s"; "-" for a
 * NaN or negative value. Always NUL-terminated within len. */
void oomb_format_ns(double ns, char *buf, size_t len);

#endif
