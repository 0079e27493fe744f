/*
 * The int8 GEMM of linear_forward_i8 and the row quantisation before it
 * (lowp_cpu.h), with the instruction-set choice shared with sparse_cpu.c.
 *
 * acc[b][o] = sum_c xq[b][c] wq[o][c]: both operands are stored C-major, so
 * each output is a dot product of two contiguous rows. The kernels keep a tile
 * of such dot products in vector registers (MR input rows x NR weight rows),
 * step along C, and reduce each accumulator horizontally once at the end; a
 * weight tile (NR rows) stays in L1 while the input rows stream past it. No
 * packing, so no workspace.
 *
 *  - AVX-512 VNNI: VPDPBUSD multiplies unsigned by signed bytes and adds groups
 *    of four into int32 lanes without saturation. The input bytes are made
 *    unsigned by flipping their sign bit (x + 128), and the extra 128 * sum_c w
 *    of each output is subtracted at the end (the compensation oneDNN and
 *    fbgemm use). Every step is int32 arithmetic modulo 2^32, so the result is
 *    exactly the reference loop's sum. 64 bytes of C per instruction.
 *  - AVX2: both operands sign-extended to int16 (VPMOVSXBW) and multiplied
 *    with VPMADDWD, which adds pairs of int16 products into int32 lanes: a pair
 *    is at most 2 * 128 * 128 = 2^15 in magnitude, far inside int32, so
 *    nothing saturates. VPMADDUBSW (u8 x s8 pairs summed into int16) would do
 *    twice the bytes per instruction but saturates once a pair exceeds 32767
 *    (255 * 127 * 2 with offset inputs, or 2 * 128 * 128 for -128 codes), and
 *    then needs a widening VPMADDWD anyway: no faster, and not exact.
 *  - scalar: the reference loop.
 *
 * The epilogue (scales and bias) is shared by all paths and written without
 * fused multiply-add (this file is compiled with -ffp-contract=off), so out is
 * the same bits whichever path ran.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lowp_cpu.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LOWP_X86 1
#endif

/* ------------------------------------------------------------ ISA -------- */

enum lowp_isa { LOWP_SCALAR, LOWP_AVX2, LOWP_AVX512VNNI };

/* OOMB_CPU_ISA: "scalar" -> LOWP_SCALAR, "avx2" -> LOWP_AVX2, else the best. */
static enum lowp_isa lowp_isa_env_cap(void)
{
    const char *e = getenv("OOMB_CPU_ISA");
    if (e && strcmp(e, "scalar") == 0)
        return LOWP_SCALAR;
    if (e && strcmp(e, "avx2") == 0)
        return LOWP_AVX2;
    return LOWP_AVX512VNNI;
}

static enum lowp_isa lowp_isa_now(void)
{
    enum lowp_isa cap = lowp_isa_env_cap(), hw = LOWP_SCALAR;
#ifdef LOWP_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        hw = LOWP_AVX2;
    if (hw == LOWP_AVX2 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni"))
        hw = LOWP_AVX512VNNI;
#endif
    return hw < cap ? hw : cap;
}

const char *oomb_cpu_lowp_isa(void)
{
    switch (lowp_isa_now()) {
    case LOWP_AVX512VNNI:
        return "avx512vnni";
    case LOWP_AVX2:
        return "avx2";
    default:
        return "scalar";
    }
}

/* ------------------------------------------------------------ quantise --- */

static inline int8_t quant_i8(float x, float inv)
{
    long q = lrintf(x * inv);
    return (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
}

static float absmax_scalar(const float *x, int64_t n)
{
    float m = 0.0f;
    for (int64_t c = 0; c < n; c++)
        m = fabsf(x[c]) > m ? fabsf(x[c]) : m; /* NaN never wins, as in the op's contract */
    return m;
}

#ifdef LOWP_X86
/*
 * The same results as the scalar loop: max is order-free and MAXPS(|x|, m)
 * returns m when |x| is NaN, like the scalar comparison; VCVTPS2DQ rounds to
 * nearest even like lrintf under the default rounding mode and gives INT_MIN
 * for NaN and out-of-range values, where lrintf gives LONG_MIN: both clamp to
 * -127, and with inv = 127 / absmax no finite product reaches 2^31.
 */
__attribute__((target("avx2,fma"))) static void quantize_rows_avx2(int8_t *q, float *scales,
                                                                   const float *x, int64_t R,
                                                                   int64_t C)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * C;
        int8_t *qr = q + r * C;
        __m256 m0 = _mm256_setzero_ps(), m1 = _mm256_setzero_ps();
        int64_t c = 0;
        for (; c + 16 <= C; c += 16) {
            m0 = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(xr + c)), m0);
            m1 = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(xr + c + 8)), m1);
        }
        float lanes[8];
        _mm256_storeu_ps(lanes, _mm256_max_ps(m0, m1));
        float absmax = absmax_scalar(xr + c, C - c);
        for (int i = 0; i < 8; i++)
            absmax = lanes[i] > absmax ? lanes[i] : absmax;
        float inv = absmax > 0.0f ? 127.0f / absmax : 0.0f;
        __m256 vinv = _mm256_set1_ps(inv);
        for (c = 0; c + 32 <= C; c += 32) {
            __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xr + c), vinv));
            __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xr + c + 8), vinv));
            __m256i d = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xr + c + 16), vinv));
            __m256i e = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xr + c + 24), vinv));
            a = _mm256_min_epi32(_mm256_max_epi32(a, lo), hi);
            b = _mm256_min_epi32(_mm256_max_epi32(b, lo), hi);
            d = _mm256_min_epi32(_mm256_max_epi32(d, lo), hi);
            e = _mm256_min_epi32(_mm256_max_epi32(e, lo), hi);
            /* packs work per 128-bit lane: a0 b0 a1 b1 | d0 e0 d1 e1 after the first, then
             * bytes in order a0 b0 d0 e0 a1 b1 d1 e1 (4-byte groups): permute back */
            __m256i ab = _mm256_packs_epi32(a, b), de = _mm256_packs_epi32(d, e);
            __m256i bytes = _mm256_packs_epi16(ab, de);
            _mm256_storeu_si256((__m256i *)(qr + c), _mm256_permutevar8x32_epi32(bytes, perm));
        }
        for (; c < C; c++)
            qr[c] = quant_i8(xr[c], inv);
        scales[r] = absmax / 127.0f;
    }
}
#endif

void oomb_cpu_quantize_rows_i8_run(int8_t *q, float *scales, const float *x, int64_t R, int64_t C)
{
#ifdef LOWP_X86
    if (lowp_isa_now() >= LOWP_AVX2) {
        quantize_rows_avx2(q, scales, x, R, C);
        return;
    }
#endif
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * C;
        int8_t *qr = q + r * C;
        float absmax = absmax_scalar(xr, C);
        float inv = absmax > 0.0f ? 127.0f / absmax : 0.0f;
        for (int64_t c = 0; c < C; c++)
            qr[c] = quant_i8(xr[c], inv);
        scales[r] = absmax / 127.0f;
    }
}

/* ------------------------------------------------------------ GEMM ------- */

/* Sums in uint32 so that a sum beyond int32 wraps (defined) instead of overflowing. */
static int32_t dot_i8_scalar(const int8_t *x, const int8_t *w, int64_t n)
{
    uint32_t s = 0;
    for (int64_t c = 0; c < n; c++)
        s += (uint32_t)((int32_t)x[c] * (int32_t)w[c]);
    return (int32_t)s;
}

static void gemm_i8_scalar(int32_t *acc, const int8_t *xq, const int8_t *wq, int64_t B, int64_t C,
                           int64_t OC)
{
    for (int64_t b = 0; b < B; b++)
        for (int64_t o = 0; o < OC; o++)
            acc[b * OC + o] = dot_i8_scalar(xq + b * C, wq + o * C, C);
}

#ifdef LOWP_X86

#define AVX2_MR 3
#define AVX2_NR 4

__attribute__((target("avx2,fma"))) static inline int32_t hsum_avx2(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* acc[i][j] (stride OC) for MR rows of x and NR rows of w; MR, NR constants after inlining */
__attribute__((target("avx2,fma"), always_inline)) static inline void
tile_avx2(int32_t *acc, const int8_t *x, const int8_t *w, int64_t C, int64_t OC, const int MR,
          const int NR)
{
    __m256i a[AVX2_MR][AVX2_NR];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++)
            a[i][j] = _mm256_setzero_si256();
    int64_t c = 0;
    for (; c + 16 <= C; c += 16) {
        __m256i xv[AVX2_MR];
        for (int i = 0; i < MR; i++)
            xv[i] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x + i * C + c)));
        for (int j = 0; j < NR; j++) {
            __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + j * C + c)));
            for (int i = 0; i < MR; i++)
                a[i][j] = _mm256_add_epi32(a[i][j], _mm256_madd_epi16(xv[i], wv));
        }
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++)
            acc[i * OC + j] = (int32_t)((uint32_t)hsum_avx2(a[i][j]) +
                                        (uint32_t)dot_i8_scalar(x + i * C + c, w + j * C + c, C - c));
}

__attribute__((target("avx2,fma"))) static void gemm_i8_avx2(int32_t *acc, const int8_t *xq,
                                                             const int8_t *wq, int64_t B,
                                                             int64_t C, int64_t OC)
{
    int64_t o = 0;
    for (; o + AVX2_NR <= OC; o += AVX2_NR) {
        const int8_t *w = wq + o * C;
        int64_t b = 0;
        for (; b + AVX2_MR <= B; b += AVX2_MR)
            tile_avx2(acc + b * OC + o, xq + b * C, w, C, OC, AVX2_MR, AVX2_NR);
        for (; b < B; b++)
            tile_avx2(acc + b * OC + o, xq + b * C, w, C, OC, 1, AVX2_NR);
    }
    for (; o < OC; o++) {
        const int8_t *w = wq + o * C;
        int64_t b = 0;
        for (; b + AVX2_MR <= B; b += AVX2_MR)
            tile_avx2(acc + b * OC + o, xq + b * C, w, C, OC, AVX2_MR, 1);
        for (; b < B; b++)
            tile_avx2(acc + b * OC + o, xq + b * C, w, C, OC, 1, 1);
    }
}

#define VNNI_MR 4
#define VNNI_NR 4
#define VNNI_TARGET "avx2,fma,avx512f,avx512bw,avx512vnni"

/* the 64-byte chunk at p with bytes n.. zeroed (n <= 64): tails without reading past the row */
__attribute__((target(VNNI_TARGET), always_inline)) static inline __m512i
load_tail_512(const int8_t *p, int64_t n)
{
    return _mm512_maskz_loadu_epi8(n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1), p);
}

__attribute__((target(VNNI_TARGET), always_inline)) static inline void
tile_vnni(int32_t *acc, const int8_t *x, const int8_t *w, const int32_t *comp, int64_t C,
          int64_t OC, const int MR, const int NR)
{
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512i a[VNNI_MR][VNNI_NR];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++)
            a[i][j] = _mm512_setzero_si512();
    int64_t c = 0;
    for (; c + 64 <= C; c += 64) {
        __m512i xv[VNNI_MR];
        for (int i = 0; i < MR; i++)
            xv[i] = _mm512_xor_si512(_mm512_loadu_si512(x + i * C + c), flip);
        for (int j = 0; j < NR; j++) {
            __m512i wv = _mm512_loadu_si512(w + j * C + c);
            for (int i = 0; i < MR; i++)
                a[i][j] = _mm512_dpbusd_epi32(a[i][j], xv[i], wv);
        }
    }
    if (c < C) {
        /* zeroed weight bytes make the flipped (128) input bytes there count nothing */
        __m512i xv[VNNI_MR];
        for (int i = 0; i < MR; i++)
            xv[i] = _mm512_xor_si512(load_tail_512(x + i * C + c, C - c), flip);
        for (int j = 0; j < NR; j++) {
            __m512i wv = load_tail_512(w + j * C + c, C - c);
            for (int i = 0; i < MR; i++)
                a[i][j] = _mm512_dpbusd_epi32(a[i][j], xv[i], wv);
        }
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++)
            acc[i * OC + j] =
                (int32_t)((uint32_t)_mm512_reduce_add_epi32(a[i][j]) - (uint32_t)comp[j]);
}

/* comp = 128 * sum_c w[c] (mod 2^32), the term the flipped inputs add */
__attribute__((target(VNNI_TARGET))) static int32_t vnni_comp(const int8_t *w, int64_t C)
{
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512i s = _mm512_setzero_si512();
    for (int64_t c = 0; c < C; c += 64)
        s = _mm512_dpbusd_epi32(s, flip, load_tail_512(w + c, C - c));
    return _mm512_reduce_add_epi32(s);
}

__attribute__((target(VNNI_TARGET))) static void gemm_i8_vnni(int32_t *acc, const int8_t *xq,
                                                              const int8_t *wq, int64_t B,
                                                              int64_t C, int64_t OC)
{
    int32_t comp[VNNI_NR];
    int64_t o = 0;
    for (; o + VNNI_NR <= OC; o += VNNI_NR) {
        const int8_t *w = wq + o * C;
        for (int j = 0; j < VNNI_NR; j++)
            comp[j] = vnni_comp(w + j * C, C);
        int64_t b = 0;
        for (; b + VNNI_MR <= B; b += VNNI_MR)
            tile_vnni(acc + b * OC + o, xq + b * C, w, comp, C, OC, VNNI_MR, VNNI_NR);
        for (; b < B; b++)
            tile_vnni(acc + b * OC + o, xq + b * C, w, comp, C, OC, 1, VNNI_NR);
    }
    for (; o < OC; o++) {
        const int8_t *w = wq + o * C;
        comp[0] = vnni_comp(w, C);
        int64_t b = 0;
        for (; b + VNNI_MR <= B; b += VNNI_MR)
            tile_vnni(acc + b * OC + o, xq + b * C, w, comp, C, OC, VNNI_MR, 1);
        for (; b < B; b++)
            tile_vnni(acc + b * OC + o, xq + b * C, w, comp, C, OC, 1, 1);
    }
}
#endif /* LOWP_X86 */

void oomb_cpu_linear_i8_run(float *out, int32_t *acc, const int8_t *xq, const float *xs,
                            const int8_t *wq, const float *ws, const float *bias, int64_t B,
                            int64_t C, int64_t OC)
{
    switch (lowp_isa_now()) {
#ifdef LOWP_X86
    case LOWP_AVX512VNNI:
        gemm_i8_vnni(acc, xq, wq, B, C, OC);
        break;
    case LOWP_AVX2:
        gemm_i8_avx2(acc, xq, wq, B, C, OC);
        break;
#endif
    default:
        gemm_i8_scalar(acc, xq, wq, B, C, OC);
        break;
    }
    for (int64_t b = 0; b < B; b++) {
        const int32_t *ar = acc + b * OC;
        float *yr = out + b * OC;
        float sb = xs[b];
        if (bias)
            for (int64_t o = 0; o < OC; o++)
                yr[o] = (float)ar[o] * sb * ws[o] + bias[o];
        else
            for (int64_t o = 0; o < OC; o++)
                yr[o] = (float)ar[o] * sb * ws[o] + 0.0f;
    }
}
