/*
 * Instruction counts of the measured steps (`oombench run --instructions`):
 * the deterministic time gate. Three parts:
 *
 *  - the launcher (oomb_instr_reexec): the `oombench run` process re-executes
 *    itself under valgrind's callgrind tool with instrumentation off
 *    (--instr-atstart=no), so that the forked children run under callgrind
 *    too; valgrind's own output goes to log files, the exit status is the
 *    inner run's;
 *  - the recorder (struct oomb_instr_rec, used by child.c): inside a measured
 *    step, every phase mark asks callgrind for a dump (which zeroes its
 *    counters), so each dump holds the instructions since the previous mark;
 *    after the last measured step the dumps are read back and summed per
 *    step and per phase with the rules of the time marks (excluded windows
 *    are left out);
 *  - the data (struct oomb_instr, hung on a run result), its JSON section
 *    "instructions" (docs/results-format.md), and the verdict rule
 *    (oomb_instr_judge: relative change of the medians against a tolerance,
 *    docs/verdicts.md).
 */
#ifndef OOMB_INSTR_H
#define OOMB_INSTR_H

#include <stddef.h>
#include <stdint.h>

#include "oombench/plugin.h"

/* Set by the launcher in the environment of the run under valgrind: the
 * folder of callgrind's dump and log files. Internal; not for users. */
#define OOMB_INSTR_ENV "OOMB_INSTR_DIR"

/* Default --instr-tolerance, percent (docs/verdicts.md: the measurement). */
#define OOMB_INSTR_TOL_PCT 0.5

/* The OpenBLAS kernel of instruction runs (OPENBLAS_CORETYPE; see
 * oomb_instr_reexec; OOMB_INSTR_BLAS_CORETYPE overrides it). */
#define OOMB_INSTR_BLAS_CORE "Sandybridge"

/* Wall-clock limits of runs are multiplied by this under callgrind. */
#define OOMB_INSTR_TIMEOUT_FACTOR 50.0

/* Mark kinds besides the phases (enum oomb_phase) for oomb_instr_rec_mark. */
enum { OOMB_INSTR_EXCL_BEGIN = -1, OOMB_INSTR_EXCL_END = -2 };

/* One run's counts, owned by its struct oomb_run_result (freed with
 * oomb_instr_destroy). */
struct oomb_instr {
    int n_steps;
    int64_t *samples;                 /* n_steps: Ir of each measured step */
    int64_t *phase[OOMB_PHASE_COUNT]; /* n_steps each, or NULL */
    char *blas_core;                  /* OpenBLAS kernel chosen ("" unknown) */
    char *blas_coretype;              /* OPENBLAS_CORETYPE as the run saw it ("" unset) */
};

void oomb_instr_destroy(struct oomb_instr *in);
/* Median of n counts (NAN when n == 0). */
double oomb_instr_median(const int64_t *v, int n);

/* ---- launcher (main.c) ---- */

/* 1 when this process is the run under callgrind started by the launcher. */
int oomb_instr_inside(void);

/* Runs `oombench <argv...>` (argv[0] is the subcommand, "run") again under
 * callgrind and waits for it: stdout and stderr are shared, valgrind's own
 * messages go to log files in a temporary folder (printed on stderr only when
 * valgrind itself failed). Returns the exit status to use: the inner one's;
 * 2 when valgrind is missing or cannot run this build (err says why);
 * 3 on an internal error. A signal that killed the inner run is raised
 * again in this process. */
int oomb_instr_reexec(int argc, char **argv, char *err, size_t err_len);

/* ---- recorder (child.c) ---- */

struct oomb_instr_mark_rec {
    int step; /* measured step index */
    int kind; /* enum oomb_phase, OOMB_INSTR_EXCL_BEGIN or _END */
};

/* Caller-owned (zero it, then oomb_instr_rec_init; oomb_instr_rec_free). */
struct oomb_instr_rec {
    int active;  /* under the launcher's callgrind: marks dump */
    int started; /* instrumentation switched on */
    int failed;  /* out of memory: no counts */
    char dir[4096];
    struct oomb_instr_mark_rec *marks; /* dump i+1 belongs to marks[i] */
    int n_marks, cap_marks;
};

/* Activates the recorder when this process is under the launcher's
 * callgrind, and pins OpenBLAS to one thread. */
void oomb_instr_rec_init(struct oomb_instr_rec *rec);
/* A mark of measured step `step` (0-based): dumps callgrind's counters
 * (switching instrumentation on at the first call). No-op when inactive. */
void oomb_instr_rec_mark(struct oomb_instr_rec *rec, int step, int kind);
/* After the last measured step: switches instrumentation off, reads the
 * dumps back (and deletes them) and returns the counts of n_steps steps in
 * *out (NULL when inactive). Returns OOMB_OK, OOMB_ERR_OOM, or OOMB_ERR_IO
 * (a dump missing or unreadable; msg says which). */
int oomb_instr_rec_collect(struct oomb_instr_rec *rec, int n_steps, struct oomb_instr **out,
                           char *msg, size_t msg_len) OOMB_WARN_UNUSED;
void oomb_instr_rec_free(struct oomb_instr_rec *rec);

/* ---- JSON (results.c) ---- */

/* The "instructions" section (a new jansson object, or NULL when out of
 * memory; the caller owns the reference). */
struct json_t;
struct json_t *oomb_instr_to_json(const struct oomb_instr *in);
/* Reads the section `v` (a jansson value; NULL: no section, *out = NULL).
 * Returns OOMB_OK or OOMB_ERR_PARSE with the field in err; *out is owned by
 * the caller. */
int oomb_instr_from_json(struct json_t *v, int n_time_steps, struct oomb_instr **out, char *err,
                         size_t err_len) OOMB_WARN_UNUSED;

/* ---- verdict (verdict.c) ---- */

/* The judgement of one metric, from the base's and the head's medians:
 * *change_pct is the change relative to the base (NAN when base is 0); the
 * return value is 1 regressed (head - base more than tol_pct% of ref),
 * -1 improved (less than -tol_pct% of ref), 0 same. ref is the base itself
 * for the step and the base's step for a phase, so that a few hundred
 * instructions more in a small phase are not a regression. */
int oomb_instr_judge(double base, double head, double ref, double tol_pct, double *change_pct);

#endif
