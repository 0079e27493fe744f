/*
 * Check expressions between the strategies of one run, written in a
 * scenario's `checks:` list, for example
 *
 *     checkpoint.memory.activations <= 0.6 * none.memory.activations
 *     grad_accum.numerics.weight_rel_err <= 1e-5
 *
 * An expression is one comparison (<, <=, >, >=, ==, !=) between two
 * arithmetic expressions built from numbers (1, 0.5, 1e-5), references,
 * + - * /, unary minus and parentheses, with the usual precedence. A
 * reference is a dotted identifier `label.section.field` (at least two
 * components, each [A-Za-z_][A-Za-z0-9_]*); what it means is up to the
 * resolver the caller passes to oomb_check_eval().
 *
 * A check is parsed once (oomb_check_parse) and evaluated per run
 * (oomb_check_eval). Errors are an oomb_status with detail in a
 * caller-provided buffer, always NUL-terminated when err_len > 0.
 */
#ifndef OOMB_CHECK_H
#define OOMB_CHECK_H

#include <stddef.h>

#include "oombench/plugin.h"

struct oomb_check; /* opaque: a parsed expression */

/* Limits on an untrusted expression: its length in bytes, and how deeply
 * parentheses and unary signs may nest. */
#define OOMB_CHECK_MAX_LEN 1024
#define OOMB_CHECK_MAX_DEPTH 64

/* The outcome of one evaluation. `op` points to a static string ("<=", ...). */
struct oomb_check_result {
    int pass;       /* 1 if the comparison holds; 0 if not or if either side is NaN */
    double lhs;     /* value of the left-hand side */
    double rhs;     /* value of the right-hand side */
    const char *op; /* the comparison operator as text */
};

/*
 * Resolves a reference such as "none.memory.activations" to its value.
 * Returns OOMB_OK and *out, or an error status (any but OOMB_OK) with a
 * message in err (e.g. "unknown strategy 'foo'", "run 'ckpt' did not finish:
 * oom"). `ref` is valid only during the call. NaN is a valid value (the
 * comparison then fails).
 */
typedef int (*oomb_check_resolver)(void *user, const char *ref, double *out, char *err,
                                   size_t err_len);

/*
 * Parse `expr`. Returns OOMB_OK and a heap check in *out that the caller frees
 * with oomb_check_destroy(); `expr` is copied and need not outlive the call.
 * On failure *out is NULL and the status is OOMB_ERR_PARSE with
 * "column N: what was expected" in err (N is 1-based, counted in bytes of
 * `expr`; also for an expression longer than OOMB_CHECK_MAX_LEN bytes or
 * nested deeper than OOMB_CHECK_MAX_DEPTH), or OOMB_ERR_INVALID for NULL
 * arguments, or OOMB_ERR_OOM. Time and stack are bounded by those limits.
 */
int oomb_check_parse(const char *expr, struct oomb_check **out, char *err,
                     size_t err_len) OOMB_WARN_UNUSED;

/* Free a check. NULL is a no-op. */
void oomb_check_destroy(struct oomb_check *c);

/*
 * Evaluate `c`, calling `r` once per distinct reference (in the order of
 * oomb_check_ref()). Returns OOMB_OK with *res filled (res->pass says whether
 * the check holds), or:
 *   - the resolver's status, with the resolver's message in err, when a
 *     reference cannot be resolved;
 *   - OOMB_ERR_NUMERIC with "column N: division by zero" in err;
 *   - OOMB_ERR_INVALID for NULL arguments.
 * On failure *res is left with pass 0 and NaN sides.
 */
int oomb_check_eval(const struct oomb_check *c, oomb_check_resolver r, void *user,
                    struct oomb_check_result *res, char *err, size_t err_len) OOMB_WARN_UNUSED;

/* The distinct references of `c`, in order of first appearance. The strings
 * belong to `c` and stay valid until oomb_check_destroy(c). oomb_check_ref()
 * returns NULL for an index out of range. */
int oomb_check_ref_count(const struct oomb_check *c);
const char *oomb_check_ref(const struct oomb_check *c, int i);

/* The expression text as given to oomb_check_parse(), owned by `c`. */
const char *oomb_check_expr(const struct oomb_check *c);

struct oomb_run_result;

/* The fields a reference may name in each section, as text for messages. */
#define OOMB_CHECK_SECTIONS "memory, time, throughput, numerics, quality, metrics"
#define OOMB_CHECK_QUALITY_FIELDS                                                             \
    "final_loss, accuracy, accuracy_delta, test_accuracy, test_accuracy_delta, test_loss"

/*
 * The value of `section.field` of one run, with the names scenario checks
 * use (docs/scenario-format.md):
 *   memory.{peak, peak_bytes, total, weights, grads, optimizer, activations,
 *           workspace, other, host_peak_rss}                       bytes
 *   time.{median, step, forward, backward, update, other}          median ns
 *   throughput.samples_per_s
 *   numerics.{loss_rel_err, grad_rel_err, output_rel_err, weight_rel_err}
 *   quality.{final_loss, accuracy, accuracy_delta, test_accuracy,
 *            test_accuracy_delta, test_loss}
 *   metrics.<name>                                                 as reported
 * accuracy is NaN without has_accuracy, test_accuracy and test_loss NaN
 * without has_eval (a NaN fails any comparison). Returns OOMB_OK with *out,
 * or OOMB_ERR_INVALID with "'REF': no metric 'SECTION.FIELD' (...)" in err,
 * the parenthesis listing the fields of that section (or the sections, for
 * an unknown one). `ref` is only used in the message (NULL: "SECTION.FIELD").
 */
int oomb_check_run_field(const struct oomb_run_result *r, const char *ref, const char *section,
                         const char *field, double *out, char *err,
                         size_t err_len) OOMB_WARN_UNUSED;

#endif
