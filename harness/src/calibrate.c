/*
 * Machine-speed calibration: the reference GEMM and the normalisation of
 * time samples by it (calibrate.h).
 */
#include "calibrate.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

enum { CAL_M = 128, CAL_N = 768, CAL_K = 768 };

int oomb_calib_init(struct oomb_calib *c)
{
    c->a = malloc((size_t)CAL_M * CAL_K * sizeof *c->a);
    c->b = malloc((size_t)CAL_K * CAL_N * sizeof *c->b);
    c->c = malloc((size_t)CAL_M * CAL_N * sizeof *c->c);
    if (!c->a || !c->b || !c->c) {
        oomb_calib_free(c);
        return OOMB_ERR_OOM;
    }
    /* Small, fixed, non-zero values: no denormals, the same every run. */
    for (size_t i = 0; i < (size_t)CAL_M * CAL_K; i++)
        c->a[i] = (float)((int)(i % 17) - 8) * (1.0f / 64);
    for (size_t i = 0; i < (size_t)CAL_K * CAL_N; i++)
        c->b[i] = (float)((int)(i % 13) - 6) * (1.0f / 64);
    memset(c->c, 0, (size_t)CAL_M * CAL_N * sizeof *c->c);
    return OOMB_OK;
}

int64_t oomb_calib_measure(struct oomb_calib *c)
{
    int64_t t0 = oomb_now_ns();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, CAL_M, CAL_N, CAL_K, 1.0f, c->a, CAL_K,
                c->b, CAL_N, 0.0f, c->c, CAL_N);
    int64_t dt = oomb_now_ns() - t0;
    return dt > 0 ? dt : 1;
}

void oomb_calib_free(struct oomb_calib *c)
{
    free(c->a);
    free(c->b);
    free(c->c);
    c->a = c->b = c->c = NULL;
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* A run that needs calibration samples: ok and holding time samples. */
static int timed(const struct oomb_run_result *r)
{
    return r->outcome == OOMB_OUTCOME_OK && r->step_ns && r->n_steps > 0;
}

static int all_calibrated(const struct oomb_results *r, int n, const char *side, char *why,
                          size_t why_len)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < r[i].n_runs; j++) {
            const struct oomb_run_result *x = &r[i].runs[j];
            if (timed(x) && !x->calib_ns) {
                if (why)
                    snprintf(why, why_len,
                             "%s run %s %s batch %lld %s has no calibration "
                             "samples (run it with --calibrate, on the CPU)",
                             side, x->scenario ? x->scenario : "",
                             x->mode == OOMB_MODE_TRAIN ? "train" : "infer", (long long)x->batch,
                             x->strategy ? x->strategy : "");
                return 0;
            }
        }
    return 1;
}

static void scale_run(struct oomb_run_result *x, double cref)
{
    for (int i = 0; i < x->n_steps; i++) {
        double f = cref / (double)(x->calib_ns[i] > 0 ? x->calib_ns[i] : 1);
        x->step_ns[i] = (int64_t)((double)x->step_ns[i] * f + 0.5);
        for (int p = 0; p < OOMB_PHASE_COUNT; p++)
            if (x->phase_ns[p])
                x->phase_ns[p][i] = (int64_t)((double)x->phase_ns[p][i] * f + 0.5);
        if (x->data_ns)
            x->data_ns[i] = (int64_t)((double)x->data_ns[i] * f + 0.5);
    }
}

int oomb_calib_normalize(struct oomb_results *base, int n_base, struct oomb_results *head,
                         int n_head, char *why, size_t why_len)
{
    if (why && why_len)
        why[0] = '\0';
    if (!all_calibrated(base, n_base, "base", why, why_len) ||
        !all_calibrated(head, n_head, "head", why, why_len))
        return 0;
    const struct oomb_run_result *first = NULL;
    for (int i = 0; i < n_base && !first; i++)
        for (int j = 0; j < base[i].n_runs && !first; j++)
            if (timed(&base[i].runs[j]))
                first = &base[i].runs[j];
    if (!first) {
        if (why)
            snprintf(why, why_len, "no timed run in the base");
        return 0;
    }
    int64_t *tmp = malloc((size_t)first->n_steps * sizeof *tmp);
    if (!tmp) {
        if (why)
            snprintf(why, why_len, "out of memory");
        return 0;
    }
    memcpy(tmp, first->calib_ns, (size_t)first->n_steps * sizeof *tmp);
    qsort(tmp, (size_t)first->n_steps, sizeof *tmp, cmp_i64);
    int n = first->n_steps;
    double cref = n % 2 ? (double)tmp[n / 2] : 0.5 * ((double)tmp[n / 2 - 1] + (double)tmp[n / 2]);
    free(tmp);
    for (int s = 0; s < 2; s++) {
        struct oomb_results *r = s ? head : base;
        int nr = s ? n_head : n_base;
        for (int i = 0; i < nr; i++)
            for (int j = 0; j < r[i].n_runs; j++)
                if (timed(&r[i].runs[j]))
                    scale_run(&r[i].runs[j], cref);
    }
    return 1;
}
