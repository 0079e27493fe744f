/*
 * Process containment and temporary files of the harness.
 *
 * Plugin code only ever runs in a contained worker: the harness forks a
 * supervisor (our code only, never a plugin's), which makes itself a child
 * subreaper and forks the worker in a process group of its own. Whatever the
 * worker starts (grandchildren, setsid escapes) either stays in that group or,
 * orphaned, reparents to the supervisor; when the worker ends, its deadline
 * passes, or the harness goes away, the supervisor kills the group and every
 * process that reparented to it, reaps them, and only then exits. The
 * supervisor dies with the harness (PR_SET_PDEATHSIG, checked against
 * getppid() for the race) and keeps the deadline on its own; the worker dies
 * with the supervisor and carries alarm() and RLIMIT_CPU backstops.
 *
 * Temporary files live in $TMPDIR/oombench-<uid>/run-<pid>.XXXXXX/ (folder
 * 0700, checked to be ours). The harness removes its folder when the run
 * ends, on SIGINT/SIGTERM/SIGHUP (with the `*.tmp.*` siblings of the results
 * file being written), and on its next start removes the folders of harness
 * processes that are gone (their lock is free) and stale results temp files.
 */
#ifndef OOMB_PROC_H
#define OOMB_PROC_H

#include <stddef.h>
#include <sys/resource.h>

#include "oombench/plugin.h"

/* What a contained worker did. */
struct oomb_proc_result {
    int status;       /* the worker's wait status (valid unless no_status) */
    int no_status;    /* the supervisor could not report (it crashed) */
    int timed_out;    /* killed at the deadline */
    int terminated;   /* killed because the harness was told to stop */
    struct rusage ru; /* the worker's (ru_maxrss: its peak RSS in KiB) */
    char *out;        /* bytes drained from drain_fd (NUL-terminated; caller frees) */
    size_t out_len;
    int out_truncated; /* more than drain_max bytes arrived: the rest dropped */
};

struct oomb_proc_opts {
    double timeout_s;   /* wall-clock limit of the worker */
    int drain_fd;       /* read end of a pipe to collect while waiting, or -1 */
    int close_fd;       /* closed in the harness after the fork (the write end), or -1 */
    size_t drain_max;   /* at most this many bytes are kept from drain_fd */
    double cpu_threads; /* threads the worker may use: its RLIMIT_CPU is
                           timeout x this + a margin (<= 0: all CPUs) */
};

/* Runs fn(arg) in a contained worker (see above) and waits for it. The
 * worker's exit code is fn's return value; fn must not return into the
 * harness's code (it runs in the worker, which then _exit()s). Returns
 * OOMB_OK with *res filled (free res->out with free()), or
 * OOMB_ERR_INTERNAL when the harness could not fork or map memory (err says
 * why). */
int oomb_proc_run(const struct oomb_proc_opts *opts, int (*fn)(void *arg), void *arg,
                  struct oomb_proc_result *res, char *err, size_t err_len) OOMB_WARN_UNUSED;

/* Creates this invocation's temporary folder (see above) into buf, first
 * removing the folders of harness processes that are gone, and arranges for
 * it to be removed on SIGINT/SIGTERM/SIGHUP (the handlers are installed until
 * oomb_proc_tmpdir_remove). One at a time per process. OOMB_ERR_IO with err
 * naming the path when it cannot be made safely. */
int oomb_proc_tmpdir_create(char *buf, size_t len, char *err, size_t err_len) OOMB_WARN_UNUSED;

/* Removes the folder made by oomb_proc_tmpdir_create and everything in it,
 * releases its lock and restores the signal handlers. */
void oomb_proc_tmpdir_remove(const char *dir);

/* The results file now written atomically (`path.tmp.*` siblings): removed
 * on the signals above. NULL forgets it. */
void oomb_proc_guard_results(const char *path);

/* Removes `*.json.tmp.*` files in dir left by oombench processes that are
 * gone (the pid in the name, `<name>.json.tmp.<pid>.XXXXXX` or that of the
 * results file name, is not alive and the file is over a minute old): a
 * results folder at `run`, a baseline class folder at `baseline save`.
 * Returns how many were removed. */
int oomb_proc_clean_stale_results(const char *dir);

/* The base folder of the temporary folders ($TMPDIR or /tmp, then
 * /oombench-<uid>) into buf. */
void oomb_proc_tmp_base(char *buf, size_t len);

#endif
