/*
 * Small helpers shared by the harness modules: status strings, formatted
 * error messages into caller buffers, string duplication, directories.
 */
#ifndef OOMB_UTIL_H
#define OOMB_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "oombench/plugin.h"

/* Short text for a status code ("out of memory", ...); never NULL. */
const char *oomb_strerror(int status);

/* snprintf into a caller buffer; a NULL buffer or zero length is allowed. */
void oomb_errf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* strdup that accepts NULL (returns NULL). Caller frees. */
char *oomb_strdup(const char *s);

/* FNV-1a 64 of n bytes, continuing from h (start with OOMB_FNV1A64_INIT). */
#define OOMB_FNV1A64_INIT 0xcbf29ce484222325ULL
uint64_t oomb_fnv1a64(uint64_t h, const void *data, size_t n);

/* Untrusted text (a name from a results file) for a terminal or a message:
 * control characters become '?', at most `max` bytes of s, then "..."
 * when it was longer. Writes into buf (len bytes, always terminated) and
 * returns buf. */
const char *oomb_term_text(const char *s, size_t max, char *buf, size_t len);

/* FNV-1a 64 of a file's bytes as 16 lower-case hex digits into out (17
 * bytes). Returns OOMB_OK, or OOMB_ERR_IO when it cannot be read (out then
 * holds ""). Identifies a scenario file's version and the executable's
 * build; not a cryptographic hash. */
int oomb_file_digest(const char *path, char out[17]);

/* The source revision of the code being measured, for the results: `given`
 * when not NULL (run --commit), else the first CI variable set of
 * GITHUB_SHA, CI_COMMIT_SHA, BUILDKITE_COMMIT, CIRCLE_SHA1, GIT_COMMIT,
 * BUILD_VCS_NUMBER, else `git log -1 --format=%H %ct` run in `dir`. rev
 * (65 bytes) gets the revision, from (32) where it came from, *time the
 * commit time (Unix seconds; 0 unless git gave it, also looked up for a
 * given or CI revision when git knows it). Returns OOMB_OK, or
 * OOMB_ERR_INVALID when `given` is not 1..64 characters of [0-9A-Za-z._/-]
 * (rev and from are then ""); an unknown revision is OOMB_OK with "". */
int oomb_source_revision(const char *given, const char *dir, char rev[65], char from[32],
                         int64_t *time);

/* mkdir -p. Returns OOMB_OK, OOMB_ERR_INVALID when a file stands where the
 * path needs a folder (a wrong path: exit 2), or OOMB_ERR_IO, with the failing
 * path in err. */
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

/* ------------------------------------------------------------ encoders - */

/* One encoder per output format that strings from results files, scenario
 * files or the command line (all untrusted: they arrive with pull requests)
 * are written into. Each writes the encoding of s (NULL reads as "") to dst
 * followed by a NUL and returns its length without the NUL; with dst NULL
 * it only measures, so `oomb_encode()` can size the buffer. dst must hold
 * the returned length + 1 bytes. Bytes that are not valid UTF-8 come out as
 * '?', so that every output is valid UTF-8 (SVG, HTML and Markdown need it).
 * None of them fails. */
typedef size_t (*oomb_encoder)(char *dst, const char *s);

/* A complete gnuplot string constant, quotes included: single-quoted
 * (gnuplot does no backquote command substitution, @macro expansion or
 * backslash escape inside single quotes); a ' inside as '."'".' (the
 * literal closed, a double-quoted quote appended, reopened: a string
 * expression; gnuplot 5.4 misreads '' twice in a row), control characters
 * (newline, carriage return, tab, ...) as a space so that nothing can end
 * the command line. Usable wherever gnuplot takes a string expression
 * (titles, key entries, tic labels); the chart terminals are `noenhanced`,
 * so {}, ^ and _ are not markup either. */
size_t oomb_encode_gnuplot(char *dst, const char *s);

/* HTML text and double- or single-quoted attribute values: & < > " ' as
 * entities, control characters other than tab and newline as '?'. */
size_t oomb_encode_html(char *dst, const char *s);

/* Markdown (CommonMark / GitHub) inline text and table cells, not code
 * spans: the ASCII punctuation that can start emphasis, code, a link, raw
 * HTML, an entity, a mention, math or a table cell (\ ` * _ [ ] < > | ~ &
 * @ $) is backslash-escaped; newline, carriage return and other control
 * characters become a space, so that the text stays on its line (and in
 * its cell). The text must not start a line (# - + 1. would then count). */
size_t oomb_encode_markdown(char *dst, const char *s);

/* The encoding as a new string (caller frees), or NULL when out of memory. */
char *oomb_encode(oomb_encoder enc, const char *s);

/* Write the encoding of s to f. Returns 0, or -1 when out of memory or on a
 * write error. */
int oomb_fput_encoded(FILE *f, oomb_encoder enc, const char *s);

/* Longest name oomb_check_path_component() accepts, in bytes. */
#define OOMB_PATH_COMPONENT_MAX 128

/* Whether `name` (a scenario name, a device class) may become one path
 * component of a file oombench writes or reads, such as
 * baselines/<device-class>/<scenario>.json: 1 to OOMB_PATH_COMPONENT_MAX
 * bytes of A-Z a-z 0-9 . _ -, not starting with '.' (so no "..", no hidden
 * file, no '/'). Returns OOMB_OK, or OOMB_ERR_INVALID with the reason in
 * `why` (the name itself is not quoted there: the caller names the field). */
int oomb_check_path_component(const char *name, char *why, size_t why_len) OOMB_WARN_UNUSED;

#endif
