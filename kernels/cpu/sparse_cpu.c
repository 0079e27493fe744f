/*
 * The sparse linear layers of linear_forward_csr and linear_forward_2of4
 * (lowp_cpu.h): out = inp W^T + bias with W stored as CSR or as 2:4.
 *
 * The plain loops gather one input element per kept weight and add one output
 * at a time. The AVX2 path turns each kept weight into a vector operation over
 * the batch instead: a tile of SP_BT input rows is transposed onto the stack,
 * column c of the tile being SP_BT contiguous floats, so a weight w[o][c]
 * adds w * tile[c] to SP_BT outputs with two FMAs; the time is then
 * proportional to the number of kept weights, not to C. The tile covers
 * SP_CB columns at a time (32 KiB); for a wider C the rows' column ranges
 * are found by binary search, which needs the CSR columns ascending within a
 * row (dense_to_csr writes them so; a CSR that is not takes the plain loop).
 * Each output's sum is split over two accumulators (even and odd kept
 * weights) to hide the FMA latency, so the order of the sum differs from the
 * plain loop's: the results agree to rounding (u sqrt(n/3) relative, n the
 * kept weights of a row, docs/numerics.md), not bit for bit.
 */
#include <stddef.h>
#include <string.h>

#include "lowp_cpu.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SPARSE_X86 1
#endif

/* ------------------------------------------------------------ plain ------ */

static void csr_scalar(float *out, const float *inp, const int32_t *rowptr, const uint16_t *colidx,
                       const float *vals, const float *bias, int64_t B, int64_t C, int64_t OC)
{
    for (int64_t b = 0; b < B; b++) {
        const float *x = inp + b * C;
        float *y = out + b * OC;
        for (int64_t o = 0; o < OC; o++) {
            float s = 0.0f;
            for (int32_t j = rowptr[o]; j < rowptr[o + 1]; j++)
                s += vals[j] * x[colidx[j]];
            y[o] = s + (bias ? bias[o] : 0.0f);
        }
    }
}

static void twofour_scalar(float *out, const float *inp, const float *vals, const uint8_t *idx,
                           const float *bias, int64_t B, int64_t C, int64_t OC)
{
    for (int64_t b = 0; b < B; b++) {
        const float *x = inp + b * C;
        float *y = out + b * OC;
        for (int64_t o = 0; o < OC; o++) {
            const float *v = vals + o * (C / 2);
            const uint8_t *ir = idx + o * (C / 8);
            float s = 0.0f;
            for (int64_t j = 0; j < C / 8; j++) {
                unsigned byte = ir[j];
                const float *x0 = x + 8 * j, *v0 = v + 4 * j;
                s += v0[0] * x0[byte & 3u] + v0[1] * x0[(byte >> 2) & 3u];
                s += v0[2] * x0[4 + ((byte >> 4) & 3u)] + v0[3] * x0[4 + ((byte >> 6) & 3u)];
            }
            y[o] = s + (bias ? bias[o] : 0.0f);
        }
    }
}

/* ------------------------------------------------------------ AVX2 ------- */

#ifdef SPARSE_X86

#define SP_BT 16  /* input rows per tile: two 8-float vectors */
#define SP_CB 512 /* columns per tile: SP_BT * SP_CB floats = 32 KiB, a multiple of 8 */

static int avx2_usable(void)
{
    const char *isa = oomb_cpu_lowp_isa();
    return strcmp(isa, "scalar") != 0;
}

/* t[k * SP_BT + i] = x[i * C + k] for i, k < 8: an 8 x 8 block of the input
 * (rows i, columns k) into the tile, transposed in registers. */
__attribute__((target("avx2,fma"))) static inline void transpose8x8(float *t, const float *x,
                                                                    int64_t C)
{
    __m256 r[8], u[8], v[8];
    for (int i = 0; i < 8; i++)
        r[i] = _mm256_loadu_ps(x + i * C);
    for (int i = 0; i < 8; i += 2) {
        u[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        u[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        v[i] = _mm256_shuffle_ps(u[i], u[i + 2], 0x44);
        v[i + 1] = _mm256_shuffle_ps(u[i], u[i + 2], 0xee);
        v[i + 2] = _mm256_shuffle_ps(u[i + 1], u[i + 3], 0x44);
        v[i + 3] = _mm256_shuffle_ps(u[i + 1], u[i + 3], 0xee);
    }
    for (int k = 0; k < 4; k++) {
        _mm256_storeu_ps(t + k * SP_BT, _mm256_permute2f128_ps(v[k], v[k + 4], 0x20));
        _mm256_storeu_ps(t + (k + 4) * SP_BT, _mm256_permute2f128_ps(v[k], v[k + 4], 0x31));
    }
}

/* t[c][i] = inp[b0 + i][c0 + c] for i < bt, 0 for bt <= i < SP_BT; the full
 * 8 x 8 blocks transposed in registers */
__attribute__((target("avx2,fma"))) static void
transpose_tile_avx2(float *t, const float *inp, int64_t C, int64_t b0, int bt, int64_t c0,
                    int64_t cn)
{
    int full = bt - bt % 8;
    int64_t cn8 = cn - cn % 8;
    if (bt < SP_BT)
        memset(t, 0, (size_t)cn * SP_BT * sizeof *t);
    for (int i = 0; i < full; i += 8) {
        const float *x = inp + (b0 + i) * C + c0;
        for (int64_t c = 0; c < cn8; c += 8)
            transpose8x8(t + c * SP_BT + i, x + c, C);
        for (int r = 0; r < 8; r++)
            for (int64_t c = cn8; c < cn; c++)
                t[c * SP_BT + i + r] = x[r * C + c];
    }
    for (int i = full; i < bt; i++) {
        const float *x = inp + (b0 + i) * C + c0;
        for (int64_t c = 0; c < cn; c++)
            t[c * SP_BT + i] = x[c];
    }
}

/* y[i * OC] (+)= s lanes i < bt: the first column block stores, later ones add */
__attribute__((target("avx2,fma"))) static inline void
store_lanes(float *y, int64_t OC, int bt, __m256 s0, __m256 s1, int add)
{
    float l[SP_BT];
    _mm256_storeu_ps(l, s0);
    _mm256_storeu_ps(l + 8, s1);
    if (add)
        for (int i = 0; i < bt; i++)
            y[i * OC] += l[i];
    else
        for (int i = 0; i < bt; i++)
            y[i * OC] = l[i];
}

/* first j in [lo, hi) with col[j] >= c (hi if none); col ascending there */
static int32_t lower_bound_u16(const uint16_t *col, int32_t lo, int32_t hi, int64_t c)
{
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (col[mid] < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

__attribute__((target("avx2,fma"))) static void
csr_avx2(float *out, const float *inp, const int32_t *rowptr, const uint16_t *colidx,
         const float *vals, const float *bias, int64_t B, int64_t C, int64_t OC)
{
    float tile[SP_BT * SP_CB] __attribute__((aligned(32)));
    for (int64_t b0 = 0; b0 < B; b0 += SP_BT) {
        int bt = B - b0 < SP_BT ? (int)(B - b0) : SP_BT;
        float *yb = out + b0 * OC;
        for (int64_t c0 = 0; c0 < C || c0 == 0; c0 += SP_CB) {
            int64_t cn = C - c0 < SP_CB ? C - c0 : SP_CB;
            int first = c0 == 0, last = c0 + cn >= C;
            transpose_tile_avx2(tile, inp, C, b0, bt, c0, cn);
            for (int64_t o = 0; o < OC; o++) {
                int32_t j = rowptr[o], end = rowptr[o + 1];
                if (!first)
                    j = lower_bound_u16(colidx, j, end, c0);
                if (!last)
                    end = lower_bound_u16(colidx, j, end, c0 + cn);
                __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
                __m256 e0 = _mm256_setzero_ps(), e1 = _mm256_setzero_ps();
                for (; j + 1 < end; j += 2) {
                    const float *p = tile + (ptrdiff_t)(colidx[j] - c0) * SP_BT;
                    const float *q = tile + (ptrdiff_t)(colidx[j + 1] - c0) * SP_BT;
                    __m256 v = _mm256_set1_ps(vals[j]), w = _mm256_set1_ps(vals[j + 1]);
                    a0 = _mm256_fmadd_ps(v, _mm256_load_ps(p), a0);
                    a1 = _mm256_fmadd_ps(v, _mm256_load_ps(p + 8), a1);
                    e0 = _mm256_fmadd_ps(w, _mm256_load_ps(q), e0);
                    e1 = _mm256_fmadd_ps(w, _mm256_load_ps(q + 8), e1);
                }
                if (j < end) {
                    const float *p = tile + (ptrdiff_t)(colidx[j] - c0) * SP_BT;
                    __m256 v = _mm256_set1_ps(vals[j]);
                    a0 = _mm256_fmadd_ps(v, _mm256_load_ps(p), a0);
                    a1 = _mm256_fmadd_ps(v, _mm256_load_ps(p + 8), a1);
                }
                store_lanes(yb + o, OC, bt, _mm256_add_ps(a0, e0), _mm256_add_ps(a1, e1), !first);
            }
            if (C == 0)
                break;
        }
        if (bias)
            for (int i = 0; i < bt; i++)
                for (int64_t o = 0; o < OC; o++)
                    yb[i * OC + o] += bias[o];
    }
}

__attribute__((target("avx2,fma"))) static void twofour_avx2(float *out, const float *inp,
                                                             const float *vals, const uint8_t *idx,
                                                             const float *bias, int64_t B,
                                                             int64_t C, int64_t OC)
{
    float tile[SP_BT * SP_CB] __attribute__((aligned(32)));
    for (int64_t b0 = 0; b0 < B; b0 += SP_BT) {
        int bt = B - b0 < SP_BT ? (int)(B - b0) : SP_BT;
        float *yb = out + b0 * OC;
        for (int64_t c0 = 0; c0 < C || c0 == 0; c0 += SP_CB) {
            int64_t cn = C - c0 < SP_CB ? C - c0 : SP_CB; /* a multiple of 8 */
            transpose_tile_avx2(tile, inp, C, b0, bt, c0, cn);
            for (int64_t o = 0; o < OC; o++) {
                const float *v = vals + o * (C / 2) + c0 / 2;
                const uint8_t *ir = idx + o * (C / 8) + c0 / 8;
                __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
                __m256 e0 = _mm256_setzero_ps(), e1 = _mm256_setzero_ps();
                for (int64_t j = 0; j < cn / 8; j++) {
                    unsigned byte = ir[j];
                    const float *t = tile + j * 8 * SP_BT, *v0 = v + 4 * j;
                    const float *p0 = t + (byte & 3u) * SP_BT;
                    const float *p1 = t + ((byte >> 2) & 3u) * SP_BT;
                    const float *p2 = t + (4 + ((byte >> 4) & 3u)) * SP_BT;
                    const float *p3 = t + (4 + ((byte >> 6) & 3u)) * SP_BT;
                    __m256 w0 = _mm256_set1_ps(v0[0]), w1 = _mm256_set1_ps(v0[1]);
                    __m256 w2 = _mm256_set1_ps(v0[2]), w3 = _mm256_set1_ps(v0[3]);
                    a0 = _mm256_fmadd_ps(w0, _mm256_load_ps(p0), a0);
                    a1 = _mm256_fmadd_ps(w0, _mm256_load_ps(p0 + 8), a1);
                    e0 = _mm256_fmadd_ps(w1, _mm256_load_ps(p1), e0);
                    e1 = _mm256_fmadd_ps(w1, _mm256_load_ps(p1 + 8), e1);
                    a0 = _mm256_fmadd_ps(w2, _mm256_load_ps(p2), a0);
                    a1 = _mm256_fmadd_ps(w2, _mm256_load_ps(p2 + 8), a1);
                    e0 = _mm256_fmadd_ps(w3, _mm256_load_ps(p3), e0);
                    e1 = _mm256_fmadd_ps(w3, _mm256_load_ps(p3 + 8), e1);
                }
                store_lanes(yb + o, OC, bt, _mm256_add_ps(a0, e0), _mm256_add_ps(a1, e1),
                            c0 != 0);
            }
            if (C == 0)
                break;
        }
        if (bias)
            for (int i = 0; i < bt; i++)
                for (int64_t o = 0; o < OC; o++)
                    yb[i * OC + o] += bias[o];
    }
}

/* whether the columns ascend within every row (the blocked AVX2 path relies on it) */
static int csr_sorted(const int32_t *rowptr, const uint16_t *colidx, int64_t OC)
{
    for (int64_t o = 0; o < OC; o++)
        for (int32_t j = rowptr[o] + 1; j < rowptr[o + 1]; j++)
            if (colidx[j] <= colidx[j - 1])
                return 0;
    return 1;
}
#endif /* SPARSE_X86 */

void oomb_cpu_linear_csr_run(float *out, const float *inp, const int32_t *rowptr,
                             const uint16_t *colidx, const float *vals, const float *bias,
                             int64_t B, int64_t C, int64_t OC)
{
#ifdef SPARSE_X86
    if (avx2_usable() && (C <= SP_CB || csr_sorted(rowptr, colidx, OC))) {
        csr_avx2(out, inp, rowptr, colidx, vals, bias, B, C, OC);
        return;
    }
#endif
    csr_scalar(out, inp, rowptr, colidx, vals, bias, B, C, OC);
}

void oomb_cpu_linear_2of4_run(float *out, const float *inp, const float *vals, const uint8_t *idx,
                              const float *bias, int64_t B, int64_t C, int64_t OC)
{
#ifdef SPARSE_X86
    if (avx2_usable()) {
        twofour_avx2(out, inp, vals, idx, bias, B, C, OC);
        return;
    }
#endif
    twofour_scalar(out, inp, vals, idx, bias, B, C, OC);
}
