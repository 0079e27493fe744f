/*
 * Private to the CPU backend: the context behind ops.ctx, shared by the op
 * table (ops_cpu.c) and the backend object (backend_cpu.c).
 */
#ifndef OOMB_KERNELS_OPS_CPU_H
#define OOMB_KERNELS_OPS_CPU_H

#include <stdint.h>

#include "oombench/plugin.h"

#define OOMB_CPU_ERR_LEN 256
#define OOMB_CPU_FIXED_MARKS 64

struct oomb_cpu_ctx {
    char err[OOMB_CPU_ERR_LEN]; /* last error of an op, "" when none yet */

    /* Timer marks: host bookkeeping, not tensor memory. `marks` points at
     * `marks_fixed` until more than OOMB_CPU_FIXED_MARKS are taken, then at a
     * heap array owned by the context. */
    int64_t marks_fixed[OOMB_CPU_FIXED_MARKS];
    int64_t *marks;
    int n_marks;
    int cap_marks;

    char name[128];    /* CPU model name */
    char runtime[256]; /* BLAS description */
};

/* Fills every op of `ops` (struct_size, ctx, backend_name included). */
void oomb_cpu_ops_init(struct oomb_ops *ops, struct oomb_cpu_ctx *ctx);

#endif
