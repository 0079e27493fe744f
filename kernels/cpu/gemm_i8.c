/*
 * The int8 GEMM of linear_forward_i8 and the row quantisation before it
 * (lowp_cpu.h), with the instruction-set choice shared with sparse_cpu.c.
 *
 * acc[b][o] = sum_c xq[b][c] wq[o][c]: both operands are stored C-major, so
 * each output is a dot product of two contiguous rows.
 *
 *  - AVX-512 VNNI: VPDPBUSD multiplies unsigned by signed bytes and adds groups
 *    of four into int32 lanes without saturation. A panel of 64 weight rows x
 *    at most 512 bytes of C is packed onto the stack (32 KiB, in L1 while the
 *    input rows pass): four bytes of C of 16 outputs per 64-byte vector, each
 *    weight byte's sign bit flipped (w + 128, unsigned). A register tile of
 *    6 input rows x 64 outputs (24 accumulators) broadcasts four input bytes
 *    (signed) per row and multiplies them by four packed vectors, so no
 *    horizontal sums. The flipped weights add 128 * sum_c x[b][c] to every
 *    output of row b: the accumulators start from minus that (the compensation
 *    oneDNN and fbgemm use, here from the input's row sums, computed once per
 *    256 rows). Wider C is split into near-equal blocks whose partial sums pass
 *    through acc; the last block applies the epilogue from the registers. Every
 *    step is int32 arithmetic modulo 2^32, so the result is exactly the
 *    reference loop's sum. 64 multiply-adds per instruction.
 *  - AVX2: both operands sign-extended to int16 (VPMOVSXBW) and multiplied
 *    with VPMADDWD, which adds pairs of int16 products into int32 lanes: a pair
 *    is at most 2 * 128 * 128 = 2^15 in magnitude, far inside int32, so
 *    nothing saturates. VPMADDUBSW (u8 x s8 pairs summed into int16) would do
 *    twice the bytes per instruction but saturates once a pair exceeds 32767
 *    (255 * 127 * 2 with offset inputs, or 2 * 128 * 128 for -128 codes), and
 *    then needs a widening VPMADDWD anyway: no faster, and not exact.
 *    A tile of 3 input rows x 4 weight rows of dot products stays in registers
 *    and is reduced horizontally at the end; no packing.
 *  - scalar: the reference loop.
 *
 * The epilogue out = (float)acc * xs[b] * ws[o] + bias[o] rounds after each
 * operation on every path, scalar or 8 or 16 lanes at a time, without fused
 * multiply-add (this file is compiled with -ffp-contract=off), so out is the
 * same bits whichever path ran.
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

/* out = (float)acc * xs[b] * ws[o] + bias[o], rounded after each operation */
static void epilogue_scalar(float *out, const int32_t *acc, const float *xs, const float *ws,
                            const float *bias, int64_t B, int64_t OC)
{
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

/* epilogue_scalar's bits, eight outputs at a time: VCVTDQ2PS rounds as the (float) cast */
__attribute__((target("avx2,fma"))) static void epilogue_avx2(float *out, const int32_t *acc,
                                                              const float *xs, const float *ws,
                                                              const float *bias, int64_t B,
                                                              int64_t OC)
{
    for (int64_t b = 0; b < B; b++) {
        const int32_t *ar = acc + b * OC;
        float *yr = out + b * OC;
        float sb = xs[b];
        __m256 vs = _mm256_set1_ps(sb);
        int64_t o = 0;
        for (; o + 8 <= OC; o += 8) {
            __m256 y = _mm256_mul_ps(
                _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(ar + o))),
                              vs),
                _mm256_loadu_ps(ws + o));
            _mm256_storeu_ps(yr + o, _mm256_add_ps(y, bias ? _mm256_loadu_ps(bias + o)
                                                           : _mm256_setzero_ps()));
        }
        for (; o < OC; o++)
            yr[o] = (float)ar[o] * sb * ws[o] + (bias ? bias[o] : 0.0f);
    }
}

#define VNNI_TARGET "avx2,fma,avx512f,avx512bw,avx512vnni"
#define VNNI_MR 6              /* input rows per register tile */
#define VNNI_NV 4              /* vectors of 16 outputs per register tile */
#define VNNI_NC (VNNI_NV * 16) /* outputs per packed panel */
#define VNNI_KC 512            /* bytes of C per packed panel: 64 x 512 = 32 KiB */
#define VNNI_MC 256            /* input rows per block of row sums */

/* the 64-byte chunk at p with bytes n.. zeroed (n <= 64): tails without reading past the row */
__attribute__((target(VNNI_TARGET), always_inline)) static inline __m512i
load_tail_512(const int8_t *p, int64_t n)
{
    return _mm512_maskz_loadu_epi8(n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1), p);
}

/* r[j] lane i = r[i] lane j before: a 16 x 16 transpose of 32-bit elements */
__attribute__((target(VNNI_TARGET), always_inline)) static inline void
transpose16_epi32(__m512i r[16])
{
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);     /* per 128-bit lane: a0 b0 a1 b1 */
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]); /* a2 b2 a3 b3 */
    }
    for (int q = 0; q < 4; q++) { /* rows 4q..4q+3: u[4q + m] lane L = their element 4L + m */
        const __m512i *v = t + 4 * q;
        u[4 * q + 0] = _mm512_unpacklo_epi64(v[0], v[2]);
        u[4 * q + 1] = _mm512_unpackhi_epi64(v[0], v[2]);
        u[4 * q + 2] = _mm512_unpacklo_epi64(v[1], v[3]);
        u[4 * q + 3] = _mm512_unpackhi_epi64(v[1], v[3]);
    }
    for (int m = 0; m < 4; m++) { /* then a 4 x 4 transpose of the 128-bit lanes */
        __m512i x0 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0x44);
        __m512i x1 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0xee);
        __m512i x2 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0x44);
        __m512i x3 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0xee);
        r[m] = _mm512_shuffle_i32x4(x0, x2, 0x88);
        r[4 + m] = _mm512_shuffle_i32x4(x0, x2, 0xdd);
        r[8 + m] = _mm512_shuffle_i32x4(x1, x3, 0x88);
        r[12 + m] = _mm512_shuffle_i32x4(x1, x3, 0xdd);
    }
}

/*
 * Pack weight rows o0.. (nv * 16 of them, zero past OC) and bytes k0..k0+kc of C
 * into pw: group g of four bytes of C, output n at pw[(g * VNNI_NC + n) * 4 ..+4],
 * each byte with its sign bit flipped (w + 128 as unsigned); bytes past kc within
 * the last group are 0x80, a zero weight.
 */
__attribute__((target(VNNI_TARGET))) static void vnni_pack(uint8_t *pw, const int8_t *wq, int64_t C,
                                                           int64_t OC, int64_t o0, int64_t k0,
                                                           int64_t kc, int nv)
{
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int v = 0; v < nv; v++)
        for (int64_t kk = 0; kk < kc; kk += 64) {
            int64_t n = kc - kk < 64 ? kc - kk : 64;
            __m512i r[16];
            for (int i = 0; i < 16; i++) {
                int64_t o = o0 + 16 * v + i;
                r[i] = _mm512_xor_si512(o < OC ? load_tail_512(wq + o * C + k0 + kk, n)
                                               : _mm512_setzero_si512(),
                                        flip);
            }
            transpose16_epi32(r);
            for (int64_t g = 0; g < (n + 3) / 4; g++)
                _mm512_store_si512((void *)(pw + ((kk / 4 + g) * VNNI_NC + 16 * v) * 4), r[g]);
        }
}

/* 4 bytes of x at p as a little-endian int32, the n < 4 bytes of a row's end zero-padded */
static inline int32_t load4_i8(const int8_t *p, int64_t n)
{
    int32_t v = 0;
    memcpy(&v, p, (size_t)(n < 4 ? n : 4));
    return v;
}

/*
 * The full tile's loop over n4 groups of four bytes of C: 24 accumulators (zmm0..23), four
 * weight vectors (zmm24..27) and two broadcast input groups (zmm28, 29). Written as assembly
 * because GCC 12 spills most of the accumulators to the stack in every iteration when the
 * same loop is written with intrinsics. Rows 0..2 at x0 + {0, C, 2C}, rows 3..5 at x3 + ...
 */
__attribute__((target(VNNI_TARGET))) static void vnni_loop_6x4(__m512i a[VNNI_MR][VNNI_NV],
                                                               const int8_t *x, const uint8_t *pw,
                                                               int64_t C, int64_t n4)
{
    const int8_t *x3 = x + 3 * C;
    __asm__ volatile(
        "vmovdqu64 0(%[a]), %%zmm0\n\t"
        "vmovdqu64 64(%[a]), %%zmm1\n\t"
        "vmovdqu64 128(%[a]), %%zmm2\n\t"
        "vmovdqu64 192(%[a]), %%zmm3\n\t"
        "vmovdqu64 256(%[a]), %%zmm4\n\t"
        "vmovdqu64 320(%[a]), %%zmm5\n\t"
        "vmovdqu64 384(%[a]), %%zmm6\n\t"
        "vmovdqu64 448(%[a]), %%zmm7\n\t"
        "vmovdqu64 512(%[a]), %%zmm8\n\t"
        "vmovdqu64 576(%[a]), %%zmm9\n\t"
        "vmovdqu64 640(%[a]), %%zmm10\n\t"
        "vmovdqu64 704(%[a]), %%zmm11\n\t"
        "vmovdqu64 768(%[a]), %%zmm12\n\t"
        "vmovdqu64 832(%[a]), %%zmm13\n\t"
        "vmovdqu64 896(%[a]), %%zmm14\n\t"
        "vmovdqu64 960(%[a]), %%zmm15\n\t"
        "vmovdqu64 1024(%[a]), %%zmm16\n\t"
        "vmovdqu64 1088(%[a]), %%zmm17\n\t"
        "vmovdqu64 1152(%[a]), %%zmm18\n\t"
        "vmovdqu64 1216(%[a]), %%zmm19\n\t"
        "vmovdqu64 1280(%[a]), %%zmm20\n\t"
        "vmovdqu64 1344(%[a]), %%zmm21\n\t"
        "vmovdqu64 1408(%[a]), %%zmm22\n\t"
        "vmovdqu64 1472(%[a]), %%zmm23\n\t"
        "test %[n], %[n]\n\t"
        "jle 2f\n\t"
        "1:\n\t"
        "vmovdqa64 0(%[p]), %%zmm24\n\t"
        "vmovdqa64 64(%[p]), %%zmm25\n\t"
        "vmovdqa64 128(%[p]), %%zmm26\n\t"
        "vmovdqa64 192(%[p]), %%zmm27\n\t"
        "vpbroadcastd (%[x0]), %%zmm28\n\t"
        "vpdpbusd %%zmm28, %%zmm24, %%zmm0\n\t"
        "vpdpbusd %%zmm28, %%zmm25, %%zmm1\n\t"
        "vpdpbusd %%zmm28, %%zmm26, %%zmm2\n\t"
        "vpdpbusd %%zmm28, %%zmm27, %%zmm3\n\t"
        "vpbroadcastd (%[x0],%[c],1), %%zmm29\n\t"
        "vpdpbusd %%zmm29, %%zmm24, %%zmm4\n\t"
        "vpdpbusd %%zmm29, %%zmm25, %%zmm5\n\t"
        "vpdpbusd %%zmm29, %%zmm26, %%zmm6\n\t"
        "vpdpbusd %%zmm29, %%zmm27, %%zmm7\n\t"
        "vpbroadcastd (%[x0],%[c],2), %%zmm28\n\t"
        "vpdpbusd %%zmm28, %%zmm24, %%zmm8\n\t"
        "vpdpbusd %%zmm28, %%zmm25, %%zmm9\n\t"
        "vpdpbusd %%zmm28, %%zmm26, %%zmm10\n\t"
        "vpdpbusd %%zmm28, %%zmm27, %%zmm11\n\t"
        "vpbroadcastd (%[x3]), %%zmm29\n\t"
        "vpdpbusd %%zmm29, %%zmm24, %%zmm12\n\t"
        "vpdpbusd %%zmm29, %%zmm25, %%zmm13\n\t"
        "vpdpbusd %%zmm29, %%zmm26, %%zmm14\n\t"
        "vpdpbusd %%zmm29, %%zmm27, %%zmm15\n\t"
        "vpbroadcastd (%[x3],%[c],1), %%zmm28\n\t"
        "vpdpbusd %%zmm28, %%zmm24, %%zmm16\n\t"
        "vpdpbusd %%zmm28, %%zmm25, %%zmm17\n\t"
        "vpdpbusd %%zmm28, %%zmm26, %%zmm18\n\t"
        "vpdpbusd %%zmm28, %%zmm27, %%zmm19\n\t"
        "vpbroadcastd (%[x3],%[c],2), %%zmm29\n\t"
        "vpdpbusd %%zmm29, %%zmm24, %%zmm20\n\t"
        "vpdpbusd %%zmm29, %%zmm25, %%zmm21\n\t"
        "vpdpbusd %%zmm29, %%zmm26, %%zmm22\n\t"
        "vpdpbusd %%zmm29, %%zmm27, %%zmm23\n\t"
        "add $4, %[x0]\n\t"
        "add $4, %[x3]\n\t"
        "add $256, %[p]\n\t"
        "dec %[n]\n\t"
        "jnz 1b\n\t"
        "2:\n\t"
        "vmovdqu64 %%zmm0, 0(%[a])\n\t"
        "vmovdqu64 %%zmm1, 64(%[a])\n\t"
        "vmovdqu64 %%zmm2, 128(%[a])\n\t"
        "vmovdqu64 %%zmm3, 192(%[a])\n\t"
        "vmovdqu64 %%zmm4, 256(%[a])\n\t"
        "vmovdqu64 %%zmm5, 320(%[a])\n\t"
        "vmovdqu64 %%zmm6, 384(%[a])\n\t"
        "vmovdqu64 %%zmm7, 448(%[a])\n\t"
        "vmovdqu64 %%zmm8, 512(%[a])\n\t"
        "vmovdqu64 %%zmm9, 576(%[a])\n\t"
        "vmovdqu64 %%zmm10, 640(%[a])\n\t"
        "vmovdqu64 %%zmm11, 704(%[a])\n\t"
        "vmovdqu64 %%zmm12, 768(%[a])\n\t"
        "vmovdqu64 %%zmm13, 832(%[a])\n\t"
        "vmovdqu64 %%zmm14, 896(%[a])\n\t"
        "vmovdqu64 %%zmm15, 960(%[a])\n\t"
        "vmovdqu64 %%zmm16, 1024(%[a])\n\t"
        "vmovdqu64 %%zmm17, 1088(%[a])\n\t"
        "vmovdqu64 %%zmm18, 1152(%[a])\n\t"
        "vmovdqu64 %%zmm19, 1216(%[a])\n\t"
        "vmovdqu64 %%zmm20, 1280(%[a])\n\t"
        "vmovdqu64 %%zmm21, 1344(%[a])\n\t"
        "vmovdqu64 %%zmm22, 1408(%[a])\n\t"
        "vmovdqu64 %%zmm23, 1472(%[a])\n\t"
        : [x0] "+r"(x), [x3] "+r"(x3), [p] "+r"(pw), [n] "+r"(n4)
        : [a] "r"(a), [c] "r"(C)
        : "cc", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
          "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18",
          "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28",
          "xmm29");
}

/* One group of 4 bytes of each of the MR input rows (nb of them real, from
 * byte `at` of each row) against the panel's group p: a[i][j] += the dot
 * products of the 16 outputs of vector j with row i. */
__attribute__((target(VNNI_TARGET), always_inline)) static inline void
vnni_group(__m512i a[VNNI_MR][VNNI_NV], const uint8_t *p, const int8_t *x, int64_t C, int64_t at,
           int nb, const int MR, const int NV)
{
    __m512i w[VNNI_NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++)
        w[j] = _mm512_load_si512((const void *)(p + 64 * j));
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        __m512i xb = _mm512_set1_epi32(load4_i8(x + i * C + at, nb));
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++)
            a[i][j] = _mm512_dpbusd_epi32(a[i][j], w[j], xb);
    }
}

/*
 * One register tile: MR input rows (x, stride C, from byte k0 of C) against the
 * packed panel (NV vectors of 16 outputs) over kc bytes. VPDPBUSD multiplies the
 * flipped weights (w + 128, unsigned) by the input bytes (signed, broadcast four
 * at a time), so each sum carries an extra 128 * sum_c x[b][c]: the first block
 * starts from minus that (comp), later blocks from acc. The last block writes acc
 * and the epilogue out = (float)acc * xs[b] * ws[o] + bias[o], rounded after each
 * operation as the scalar loop does. Lanes past OC are masked off (mlast).
 */
__attribute__((target(VNNI_TARGET), always_inline)) static inline void
vnni_tile(int32_t *acc, float *out, const int8_t *x, const uint8_t *pw, const int32_t *comp,
          const float *xs, const float *ws, const float *bias, int64_t C, int64_t OC, int64_t kc,
          int first, int last, __mmask16 mlast, const int MR, const int NV)
{
    __m512i a[VNNI_MR][VNNI_NV];
    __mmask16 m[VNNI_NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++)
        m[j] = j == NV - 1 ? mlast : (__mmask16)0xffff;
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++)
            a[i][j] = first ? _mm512_set1_epi32((int32_t)(0u - (uint32_t)comp[i]))
                            : _mm512_maskz_loadu_epi32(m[j], acc + i * OC + 16 * j);
    int64_t n4 = kc / 4;
    if (MR == VNNI_MR && NV == VNNI_NV)
        vnni_loop_6x4(a, x, pw, C, n4);
    else
        for (int64_t g = 0; g < n4; g++)
            vnni_group(a, pw + g * VNNI_NC * 4, x, C, 4 * g, 4, MR, NV);
    if (kc % 4) /* the row's last 1..3 bytes: zero inputs past C count nothing */
        vnni_group(a, pw + n4 * VNNI_NC * 4, x, C, 4 * n4, (int)(kc % 4), MR, NV);
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++)
            _mm512_mask_storeu_epi32(acc + i * OC + 16 * j, m[j], a[i][j]);
    if (!last)
        return;
    __m512 wv[VNNI_NV], bv[VNNI_NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) {
        wv[j] = _mm512_maskz_loadu_ps(m[j], ws + 16 * j);
        bv[j] = bias ? _mm512_maskz_loadu_ps(m[j], bias + 16 * j) : _mm512_setzero_ps();
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        __m512 sb = _mm512_set1_ps(xs[i]);
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) {
            __m512 y = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(a[i][j]), sb), wv[j]);
            _mm512_mask_storeu_ps(out + i * OC + 16 * j, m[j], _mm512_add_ps(y, bv[j]));
        }
    }
}

/* vnni_tile instantiated per shape (its own function, so that the tile's accumulators get
 * registers of their own), and a table of them by [MR - 1][NV - 1] */
#define VNNI_TILE_FN(M, N)                                                                       \
    __attribute__((target(VNNI_TARGET), noinline)) static void vnni_tile_##M##_##N(            \
        int32_t *acc, float *out, const int8_t *x, const uint8_t *pw, const int32_t *comp,       \
        const float *xs, const float *ws, const float *bias, int64_t C, int64_t OC, int64_t kc, \
        int first, int last, __mmask16 mlast)                                                    \
    {                                                                                            \
        vnni_tile(acc, out, x, pw, comp, xs, ws, bias, C, OC, kc, first, last, mlast, M, N);     \
    }
#define VNNI_TILE_FNS(M) VNNI_TILE_FN(M, 1) VNNI_TILE_FN(M, 2) VNNI_TILE_FN(M, 3) VNNI_TILE_FN(M, 4)
VNNI_TILE_FNS(1)
VNNI_TILE_FNS(2)
VNNI_TILE_FNS(3)
VNNI_TILE_FNS(4)
VNNI_TILE_FNS(5)
VNNI_TILE_FNS(6)

typedef void (*vnni_tile_fn)(int32_t *, float *, const int8_t *, const uint8_t *, const int32_t *,
                             const float *, const float *, const float *, int64_t, int64_t,
                             int64_t, int, int, __mmask16);
#define VNNI_TILE_ROW(M)                                                                         \
    {vnni_tile_##M##_1, vnni_tile_##M##_2, vnni_tile_##M##_3, vnni_tile_##M##_4}
static const vnni_tile_fn vnni_tiles[VNNI_MR][VNNI_NV] = {
    VNNI_TILE_ROW(1), VNNI_TILE_ROW(2), VNNI_TILE_ROW(3),
    VNNI_TILE_ROW(4), VNNI_TILE_ROW(5), VNNI_TILE_ROW(6)};

/* comp[r] = 128 * sum_c x[r][c] (mod 2^32), r < R: the term the flipped weights add */
__attribute__((target(VNNI_TARGET))) static void vnni_row_comp(int32_t *comp, const int8_t *x,
                                                               int64_t R, int64_t C)
{
    const __m512i ones = _mm512_set1_epi8(1);
    for (int64_t r = 0; r < R; r++) {
        __m512i s = _mm512_setzero_si512();
        for (int64_t c = 0; c < C; c += 64)
            s = _mm512_dpbusd_epi32(s, ones, load_tail_512(x + r * C + c, C - c));
        comp[r] = (int32_t)((uint32_t)_mm512_reduce_add_epi32(s) * 128u);
    }
}

/*
 * The whole op with VNNI: blocks of VNNI_MC input rows; for each, panels of
 * VNNI_NC outputs x VNNI_KC bytes of C packed onto the stack (32 KiB, held in L1
 * while every row of the block passes), register tiles of VNNI_MR x VNNI_NC.
 */
__attribute__((target(VNNI_TARGET))) static void linear_i8_vnni(float *out, int32_t *acc,
                                                                const int8_t *xq, const float *xs,
                                                                const int8_t *wq, const float *ws,
                                                                const float *bias, int64_t B,
                                                                int64_t C, int64_t OC)
{
    _Alignas(64) uint8_t pw[VNNI_KC / 4 * VNNI_NC * 4];
    int32_t comp[VNNI_MC];
    /* the C split into near-equal blocks of whole four-byte groups, at most VNNI_KC each */
    int64_t nk = (C + VNNI_KC - 1) / VNNI_KC, kstep = nk > 1 ? ((C + nk - 1) / nk + 3) / 4 * 4 : C;
    for (int64_t b0 = 0; b0 < B; b0 += VNNI_MC) {
        int64_t mc = B - b0 < VNNI_MC ? B - b0 : VNNI_MC;
        vnni_row_comp(comp, xq + b0 * C, mc, C);
        for (int64_t o0 = 0; o0 < OC; o0 += VNNI_NC) {
            int64_t no = OC - o0 < VNNI_NC ? OC - o0 : VNNI_NC;
            int nv = (int)((no + 15) / 16);
            __mmask16 mlast = (__mmask16)((1u << (no - 16 * (nv - 1))) - 1u);
            int64_t k0 = 0;
            do { /* once for C = 0: acc = 0 and the epilogue */
                int64_t kc = C - k0 < kstep ? C - k0 : kstep;
                int first = k0 == 0, last = k0 + kc == C;
                vnni_pack(pw, wq, C, OC, o0, k0, kc, nv);
                for (int64_t b = 0; b < mc; b += VNNI_MR) {
                    int mr = mc - b < VNNI_MR ? (int)(mc - b) : VNNI_MR;
                    int64_t r = b0 + b;
                    vnni_tiles[mr - 1][nv - 1](acc + r * OC + o0, out + r * OC + o0,
                                               xq + r * C + k0, pw, comp + b, xs + r, ws + o0,
                                               bias ? bias + o0 : NULL, C, OC, kc, first, last,
                                               mlast);
                }
                k0 += kc;
            } while (k0 < C);
        }
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
        linear_i8_vnni(out, acc, xq, xs, wq, ws, bias, B, C, OC);
        return;
    case LOWP_AVX2:
        gemm_i8_avx2(acc, xq, wq, B, C, OC);
        epilogue_avx2(out, acc, xs, ws, bias, B, OC);
        return;
#endif
    default:
        gemm_i8_scalar(acc, xq, wq, B, C, OC);
        epilogue_scalar(out, acc, xs, ws, bias, B, OC);
        return;
    }
}
