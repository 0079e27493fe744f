/*
 * libFuzzer target: the check-expression parser and evaluator on arbitrary
 * text. A parse either succeeds, and then every reference resolves and the
 * evaluation returns OOMB_OK or OOMB_ERR_NUMERIC (division by zero), or fails
 * with OOMB_ERR_PARSE and a "column N: ..." message (or OOMB_ERR_OOM).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Values from the reference's text, so that the same input always gives the
 * same value and some are zero (division by zero) or NaN. */
static int resolve(void *user, const char *ref, double *out, char *err, size_t err_len)
{
    (void)user;
    (void)err;
    (void)err_len;
    size_t len = strlen(ref);
    if (len % 7 == 0)
        *out = NAN;
    else
        *out = (double)(len % 5) - 1.0;
    return OOMB_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *expr = malloc(size + 1);
    if (expr == NULL)
        return 0;
    memcpy(expr, data, size);
    expr[size] = '\0'; /* a NUL inside ends the expression early, as in C */
    struct oomb_check *c = NULL;
    char err[256];
    int rc = oomb_check_parse(expr, &c, err, sizeof err);
    if (rc != OOMB_OK) {
        if (c != NULL || (rc != OOMB_ERR_PARSE && rc != OOMB_ERR_OOM) ||
            (rc == OOMB_ERR_PARSE && strncmp(err, "column ", 7) != 0)) {
            fprintf(stderr, "unexpected failure %d: %s\n", rc, err);
            abort();
        }
        free(expr);
        return 0;
    }
    if (strcmp(oomb_check_expr(c), expr) != 0)
        abort();
    for (int i = 0; i < oomb_check_ref_count(c); i++)
        if (oomb_check_ref(c, i) == NULL || strchr(oomb_check_ref(c, i), '.') == NULL)
            abort();
    struct oomb_check_result res;
    rc = oomb_check_eval(c, resolve, NULL, &res, err, sizeof err);
    if (rc != OOMB_OK && rc != OOMB_ERR_NUMERIC) {
        fprintf(stderr, "unexpected evaluation status %d: %s\n", rc, err);
        abort();
    }
    oomb_check_destroy(c);
    free(expr);
    return 0;
}
