/*
 * Small helpers shared by the harness modules: status strings, formatted
 * error messages into caller buffers, string duplication, directories.
 */
#ifndef OOMB_UTIL_H
#define OOMB_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "oombench/plugin.h"

/* Short text for a status code ("out of memory", ...); never NULL. */
const char *oomb_strerror(int status);

/* snprintf into a caller buffer; a NULL buffer or zero length is allowed. */
void oomb_errf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* strdup that accepts NULL (returns NULL). Caller frees. */
char *oomb_strdup(const char *s);

/* mkdir -p. Returns OOMB_OK or OOMB_ERR_IO with the failing path in err. */
int oomb_mkdir_p(const char *path, char *err, size_t err_len) OOMB_WARN_UNUSED;

/* Monotonic clock in nanoseconds. */
int64_t oomb_now_ns(void);

/* Time the threads of this process have spent runnable but waiting for a
 * CPU, in ns, summed over them (the second field of Linux's
 * /proc/self/task/<tid>/schedstat). Differences of two calls measure how
 * long other processes held the CPUs. Returns -1 when the kernel does not
 * report it. */
int64_t oomb_sched_wait_ns(void);

/* Directory holding the running executable (from /proc/self/exe), or "." when
 * unknown. Returns a static buffer. */
const char *oomb_exe_dir(void);

/* Write `len` bytes to `path` atomically (temp file + fsync + rename). */
int oomb_write_file_atomic(const char *path, const void *data, size_t len, char *err,
                           size_t err_len) OOMB_WARN_UNUSED;

#endif
