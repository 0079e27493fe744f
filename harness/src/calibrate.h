/*
 * Machine-speed calibration (`oombench run --calibrate`, CPU backend): a
 * fixed reference workload timed right after every step, so that a time
 * verdict can divide out how fast the machine happened to be at that moment
 * (`oombench compare --normalize`, docs/verdicts.md).
 *
 * The workload is one single-precision GEMM of fixed shape, C[128 x 768] =
 * A[128 x 768] B[768 x 768], through the system CBLAS, on buffers owned here
 * (not through the plugin's tracked allocator, and not through kernels/, so
 * that a change of the project's kernels never moves the reference). About
 * 1.5 ms with one BLAS thread on the development machine.
 */
#ifndef OOMB_CALIBRATE_H
#define OOMB_CALIBRATE_H

#include <stdint.h>

#include "results.h"

struct oomb_calib {
    float *a, *b, *c;
};

/* Allocate and fill the reference buffers (fixed contents). Returns OOMB_OK
 * or OOMB_ERR_OOM (then nothing is held). Free with oomb_calib_free. */
int oomb_calib_init(struct oomb_calib *c) OOMB_WARN_UNUSED;

/* Run the reference GEMM once; returns its wall time in ns (> 0). */
int64_t oomb_calib_measure(struct oomb_calib *c);

void oomb_calib_free(struct oomb_calib *c);

/*
 * Divide out machine speed: every time sample (step and phases) of every run
 * of base[0..n_base) and head[0..n_head) is multiplied by cref / calib_i,
 * calib_i the reference time measured after that step and cref the median
 * reference time of the first calibrated run of base (so the numbers stay
 * in ns "at the base's speed"). Only when every ok run with time samples on
 * both sides has calibration samples; otherwise nothing is changed and *why
 * (when not NULL) says which run lacks them. Returns 1 when normalised, 0
 * when not.
 */
int oomb_calib_normalize(struct oomb_results *base, int n_base, struct oomb_results *head,
                         int n_head, char *why, size_t why_len);

#endif
