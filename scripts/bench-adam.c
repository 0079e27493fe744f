/*
 * The Adam update of the CPU backend on one flat array of N parameters:
 * prints the median time of one ops->adam_update call over STEPS calls
 * (after 3 warm-up calls), in milliseconds. Built and driven by
 * scripts/bench-adam.py, which interleaves it with PyTorch's torch.optim.Adam.
 * The kernels' instruction set follows OOMB_CPU_ISA (kernels/cpu/isa.h).
 *
 *     bench-adam N STEPS
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "backend.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s N STEPS\n", argv[0]);
        return 2;
    }
    long n = atol(argv[1]), steps = atol(argv[2]);
    if (n < 1 || steps < 1 || steps > 100000) {
        fprintf(stderr, "bench-adam: N and STEPS must be positive\n");
        return 2;
    }
    struct oomb_kernel_backend *be = NULL;
    char msg[256];
    if (oomb_cpu_backend_create(&be, msg, sizeof msg) != OOMB_OK) {
        fprintf(stderr, "bench-adam: %s\n", msg);
        return 3;
    }
    float *p = malloc((size_t)n * sizeof *p), *g = malloc((size_t)n * sizeof *g);
    float *m = calloc((size_t)n, sizeof *m), *v = calloc((size_t)n, sizeof *v);
    double *t = malloc((size_t)steps * sizeof *t);
    if (!p || !g || !m || !v || !t) {
        fprintf(stderr, "bench-adam: out of memory\n");
        return 3;
    }
    unsigned s = 12345;
    for (long i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        p[i] = (float)(s >> 8) * 0x1p-24f - 0.5f;
        s = s * 1103515245u + 12345u;
        g[i] = ((float)(s >> 8) * 0x1p-24f - 0.5f) * 1e-2f;
    }
    const struct oomb_ops *ops = &be->ops;
    for (long k = -3; k < steps; k++) {
        double t0 = now_ms();
        int rc = ops->adam_update(ops->ctx, p, g, m, v, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f,
                                  k + 4);
        double t1 = now_ms();
        if (rc != OOMB_OK) {
            fprintf(stderr, "bench-adam: %s\n", ops->last_error(ops->ctx));
            return 3;
        }
        if (k >= 0)
            t[k] = t1 - t0;
    }
    qsort(t, (size_t)steps, sizeof *t, cmp_double);
    struct oomb_blas_info bi;
    oomb_blas_describe(&bi);
    printf("%.4f %s\n", steps % 2 ? t[steps / 2] : 0.5 * (t[steps / 2 - 1] + t[steps / 2]),
           bi.cpu_isa);
    free(p), free(g), free(m), free(v), free(t);
    be->destroy(be);
    return 0;
}
