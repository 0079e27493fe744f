/*
 * Private to the CPU backend: the single-precision GEMM under every FP32 op
 * (linear, convolution, attention, the F16 ops' FP32 tiles). By default
 * OpenBLAS's cblas_sgemm with the kernel OpenBLAS chose (OPENBLAS_CORETYPE):
 * the library Debian's PyTorch runs its linear layers on, so that a strategy's
 * time next to `none` is the one a user of that framework would see. With
 * OOMB_CPU_GEMM=onednn, in a build that found oneDNN (libdnnl-dev), oneDNN's
 * dnnl_sgemm, which JIT-compiles its kernels for the CPU it runs on (AVX-512
 * where present: about twice OpenBLAS's Haswell kernel on an AVX-512 CPU,
 * docs/performance.md); any other value: OpenBLAS. The choice is made on the
 * first call and kept; it is recorded in the results (blas.cpu_isa). Both
 * libraries give deterministic results for one machine, choice and thread
 * count.
 */
#ifndef OOMB_KERNELS_GEMM_CPU_H
#define OOMB_KERNELS_GEMM_CPU_H

#include <stdint.h>

/*
 * Row-major C (M, N) = op(A) op(B) + beta C, op transposing when trans_a /
 * trans_b is nonzero. Dimensions at most INT_MAX (the callers check); any of
 * M, N, K may be 0 (K = 0: C = beta C, with beta 0 or 1), the leading
 * dimensions are then not looked at. beta 0 ignores what C holds. Cannot
 * fail: a oneDNN error (there is none for valid arguments) falls back to
 * OpenBLAS.
 */
void oomb_cpu_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* The library and kernel the GEMM uses now: "openblas", or "onednn 2.6.3
 * avx512_core_bf16" (version and the instruction set oneDNN chose). Static
 * storage, never NULL. */
const char *oomb_cpu_sgemm_name(void);

/* Sets the threads of oneDNN's OpenMP runtime (n >= 1; the caller sets
 * OpenBLAS's). A no-op without oneDNN. */
void oomb_cpu_sgemm_set_threads(int n);

/* Reads OOMB_CPU_GEMM again at the next call (tests switch libraries). */
void oomb_cpu_sgemm_reset(void);

#endif
