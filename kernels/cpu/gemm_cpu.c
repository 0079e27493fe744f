/*
 * The CPU backend's FP32 GEMM: oneDNN or OpenBLAS (gemm_cpu.h).
 */
#include "gemm_cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#ifdef OOMB_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#endif

enum { GEMM_UNSET = 0, GEMM_OPENBLAS = 1, GEMM_ONEDNN = 2 };

static int gemm_lib = GEMM_UNSET;

static int gemm_choose(void)
{
    if (gemm_lib != GEMM_UNSET)
        return gemm_lib;
    const char *e = getenv("OOMB_CPU_GEMM");
    gemm_lib = GEMM_OPENBLAS;
#ifdef OOMB_HAVE_DNNL
    if (e && strcmp(e, "onednn") == 0)
        gemm_lib = GEMM_ONEDNN;
#else
    (void)e;
#endif
    return gemm_lib;
}

void oomb_cpu_sgemm_reset(void)
{
    gemm_lib = GEMM_UNSET;
}

static void openblas_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                           const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                           float *C, int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B,
                (int)ldb, beta, C, (int)ldc);
}

void oomb_cpu_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    /* empty products here: CBLAS rejects leading dimensions of 0 */
    if (M == 0 || N == 0)
        return;
    if (K == 0) {
        if (beta == 0.0f)
            for (int64_t i = 0; i < M; i++)
                memset(C + i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
#ifdef OOMB_HAVE_DNNL
    if (gemm_choose() == GEMM_ONEDNN &&
        dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, 1.0f, A, lda, B, ldb, beta, C,
                   ldc) == dnnl_success)
        return;
#endif
    openblas_sgemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

#ifdef OOMB_HAVE_DNNL
static const char *dnnl_isa_name(dnnl_cpu_isa_t isa)
{
    switch (isa) {
    case dnnl_cpu_isa_sse41:
        return "sse41";
    case dnnl_cpu_isa_avx:
        return "avx";
    case dnnl_cpu_isa_avx2:
        return "avx2";
    case dnnl_cpu_isa_avx2_vnni:
        return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core:
        return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni:
        return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16:
        return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx:
        return "avx512_core_amx";
    default:
        return "other";
    }
}
#endif

const char *oomb_cpu_sgemm_name(void)
{
#ifdef OOMB_HAVE_DNNL
    if (gemm_choose() == GEMM_ONEDNN) {
        static char name[64];
        const dnnl_version_t *v = dnnl_version();
        snprintf(name, sizeof name, "onednn %d.%d.%d %s", v->major, v->minor, v->patch,
                 dnnl_isa_name(dnnl_get_effective_cpu_isa()));
        return name;
    }
#endif
    return "openblas";
}

void oomb_cpu_sgemm_set_threads(int n)
{
#ifdef OOMB_HAVE_DNNL
    omp_set_num_threads(n < 1 ? 1 : n);
#else
    (void)n;
#endif
}
