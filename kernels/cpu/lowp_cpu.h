/*
 * Private to the CPU backend: the vectorised bodies of the int8 and sparse
 * ops (gemm_i8.c, sparse_cpu.c). The ops of ops_cpu.c validate their
 * arguments and then call these, which assume valid input and never fail.
 *
 * The instruction set is chosen at every call from what the CPU supports
 * (__builtin_cpu_supports) and the environment variable OOMB_CPU_ISA:
 * "scalar" forces the plain loops, "avx2" allows at most AVX2 (so the AVX2
 * kernels can be tested on a CPU with AVX-512), anything else or unset lets
 * the best supported one run. Reading it per call keeps a test free to
 * switch paths with setenv(). Every path gives the same int8 results bit for
 * bit; the FP32 sparse sums differ between paths only in summation order.
 * None allocates: tiles and packed panels live on the stack (at most 34 KiB
 * per call).
 */
#ifndef OOMB_KERNELS_LOWP_CPU_H
#define OOMB_KERNELS_LOWP_CPU_H

#include <stdint.h>

/* Which path the int8 / sparse kernels take now: "scalar", "avx2" or
 * "avx512vnni" (the int8 GEMM; the sparse kernels use AVX2 for both of the
 * vector ones). A static string. */
const char *oomb_cpu_lowp_isa(void);

/* q (R, C), scales (R): symmetric per-row int8 quantisation, scale =
 * absmax / 127, q = lrintf(x * (127 / absmax)) clamped to [-127, 127]
 * (what ops_cpu.c's quantize_rows_i8 documents), bit for bit on every path. */
void oomb_cpu_quantize_rows_i8_run(int8_t *q, float *scales, const float *x, int64_t R,
                                   int64_t C);

/* acc (B, OC) int32 = xq (B, C) wq (OC, C)^T, exact (wrapping modulo 2^32,
 * which is exact whenever the true sum fits, as C <= INT32_MAX / 127^2
 * guarantees for codes in [-127, 127]); then out (B, OC) = (float)acc *
 * xs[b] * ws[o] + bias[o] (bias may be NULL), rounded after each operation
 * in that order (no fused multiply-add), the same on every path. */
void oomb_cpu_linear_i8_run(float *out, int32_t *acc, const int8_t *xq, const float *xs,
                            const int8_t *wq, const float *ws, const float *bias, int64_t B,
                            int64_t C, int64_t OC);

/* out (B, OC) = inp (B, C) W^T + bias (OC, or NULL), W (OC, C) in CSR with
 * a validated structure (rowptr[0] = 0, non-decreasing, columns < C and
 * ascending within each row, as dense_to_csr writes them). */
void oomb_cpu_linear_csr_run(float *out, const float *inp, const int32_t *rowptr,
                             const uint16_t *colidx, const float *vals, const float *bias,
                             int64_t B, int64_t C, int64_t OC);

/* out (B, OC) = inp (B, C) W^T + bias, W as 2:4 vals (OC, C/2) and idx
 * (OC, C/8) in compress_2of4's layout; C a multiple of 8. */
void oomb_cpu_linear_2of4_run(float *out, const float *inp, const float *vals, const uint8_t *idx,
                              const float *bias, int64_t B, int64_t C, int64_t OC);

#endif
