/*
 * Private to the CPU backend: the element-wise kernels that have a vector
 * version (vec_cpu.c), each with one entry point that runs the level chosen
 * by isa.h, and the scalar IEEE binary16 conversions they and the other ops
 * share.
 *
 * Every vector version computes exactly what its scalar loop computes: the
 * same IEEE operations (+, -, *, /, sqrt, conversions, each correctly
 * rounded) in the same order per element, no FMA contraction (the file is
 * compiled with -ffp-contract=off), so the two paths give the same bits for
 * every input (tests/test_kernels_cpu.c checks this; docs/numerics.md).
 * Pointers need no alignment; lengths may be any n >= 0. Nothing allocates.
 */
#ifndef OOMB_KERNELS_VEC_CPU_H
#define OOMB_KERNELS_VEC_CPU_H

#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------ F16 -------- */

/* IEEE binary16 -> binary32, exact for every number; a NaN keeps its sign and
 * payload and is quietened (the top mantissa bit set), as IEEE 754 converts a
 * signalling NaN and as VCVTPH2PS does, so that both paths give the same bits. */
static inline float oomb_h2f(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in FP32 */
        float f = (float)mant * 0x1p-24f;
        memcpy(&bits, &f, sizeof bits);
        bits |= sign;
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13) | (mant ? 0x400000u : 0u);
    } else {
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    }
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

/* binary32 -> binary16 with round-to-nearest-even; overflow gives inf,
 * underflow gives subnormals or signed zero, NaN stays NaN (quietened, its
 * top 9 payload bits kept: what VCVTPS2PH gives). */
static inline uint16_t oomb_f2h(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;

    if (ax >= 0x7f800000u) /* inf or NaN */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0));
    if (ax >= 0x47800000u) /* >= 65536: beyond rounding range of the largest half */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) {    /* below 2^-14: subnormal half or zero */
        if (ax <= 0x33000000u) /* <= 2^-25: rounds to zero (the tie goes to even 0) */
            return (uint16_t)sign;
        uint32_t e = ax >> 23;                     /* 102 .. 112 */
        uint32_t m = (ax & 0x7fffffu) | 0x800000u; /* value = m * 2^(e-150) */
        uint32_t shift = 126u - e;                 /* to units of 2^-24: 14 .. 24 */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (r & 1u)))
            r++; /* may carry into the smallest normal, which is the right encoding */
        return (uint16_t)(sign | r);
    }
    uint32_t h = ((ax >> 23) - 112u) << 10 | ((ax >> 13) & 0x3ffu);
    uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++; /* a carry into the exponent is correct, up to inf */
    return (uint16_t)(sign | h);
}

/* d (n) = oomb_f2h(s (n)); with F16C eight at a time (VCVTPS2PH with an
 * immediate round-to-nearest-even, which ignores MXCSR: the same bits). */
void oomb_vec_f2h(uint16_t *d, const float *s, int64_t n);

/* d (n) = oomb_h2f(s (n)); with F16C eight at a time (VCVTPH2PS, exact). */
void oomb_vec_h2f(float *d, const uint16_t *s, int64_t n);

/* ------------------------------------------------------------ Adam ------- */

/* The scalars of one Adam step; c1 = 1 - beta1^t and c2 = 1 - beta2^t, the
 * bias corrections, computed once by the caller. */
struct oomb_vec_adam_hp {
    float lr, beta1, beta2, eps, weight_decay, c1, c2;
};

/*
 * One fused AdamW step over param, grad, m, v (n), each element once:
 *   m = b1 m + (1-b1) g;  v = b2 v + ((1-b2) g) g;
 *   p -= lr * ((m / c1) / (sqrt(v / c2) + eps) + wd * p).
 */
void oomb_vec_adam(float *param, const float *grad, float *m, float *v, int64_t n,
                   const struct oomb_vec_adam_hp *hp);

/*
 * One block of 8-bit Adam (the adam8_update op of ops_cpu.c): elements
 * [0, n) of param, grad, m_q, v_q, with the block's scales *m_scale and
 * *v_scale, read and then replaced by the new ones. Moments dequantised,
 * updated in FP32 as oomb_vec_adam with v = b2 (s s) + ((1-b2) g) g for
 * s = v_q * v_scale, the parameter stepped, the moments requantised with
 * round-to-nearest-even (the current rounding mode) against the block's new
 * absmax(m) / 127 and max(sqrt v) / 255; a v > 0 never gets code 0.
 */
void oomb_vec_adam8_block(float *param, const float *grad, int8_t *m_q, uint8_t *v_q,
                          float *m_scale, float *v_scale, int64_t n,
                          const struct oomb_vec_adam_hp *hp);

/* ------------------------------------------------------------ activations */

/* out (n) = x > 0 ? x : 0 (NaN gives 0); out may alias x. */
void oomb_vec_relu(float *out, const float *x, int64_t n);

/* dx (n) = x > 0 ? dy : 0; dx may alias dy. */
void oomb_vec_relu_backward(float *dx, const float *dy, const float *x, int64_t n);

/* out (n) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) of x (n),
 * computed as x / (1 + exp(-2 sqrt(2/pi) (x + 0.044715 x^3))) with vec_cpu.c's
 * own exp (a few ulp of GELU; the same bits on every path). out may alias x. */
void oomb_vec_gelu(float *out, const float *x, int64_t n);

/* dx (n) = dy (n) * gelu'(x (n)); dx may alias dy. */
void oomb_vec_gelu_backward(float *dx, const float *dy, const float *x, int64_t n);

/* ------------------------------------------------------------ sums ------- */

/* The sums below run in double over 8 partial sums, element j in partial
 * sum j % 8 for the first n - n % 8 elements, the 8 added pairwise
 * ((0+4)+(1+5))+((2+6)+(3+7)), then the last n % 8 elements in order: the
 * same bits on every path. n >= 0. */

/* sum of x (n). */
double oomb_vec_sum(const float *x, int64_t n);

/* sum of (x - mu)^2 over x (n), each difference in double. */
double oomb_vec_sum_sq_dev(const float *x, int64_t n, double mu);

/*
 * The sums of a norm layer's backward over n elements: with g = dy (times
 * gamma element-wise when gamma is not NULL) and xhat = (x - mu) rs, all in
 * double, sums[0] += sum g and sums[1] += sum g xhat.
 */
void oomb_vec_norm_sums(const float *dy, const float *gamma, const float *x, int64_t n, double mu,
                        double rs, double sums[2]);

/* ------------------------------------------------------------ softmax ---- */

/*
 * One softmax row in place, n >= 1: p = p * scale, then p = exp(p - max p) /
 * sum, the sum in double over the 8 partial sums of the elements j % 8 (then
 * the last n % 8 in order), exp vec_cpu.c's own (0 below -87).
 */
void oomb_vec_softmax_row(float *p, int64_t n, float scale);

/*
 * The softmax's backward on one row in place, n >= 1, p the row's
 * probabilities: d = p (d - sum_j p_j d_j) scale, the sum in double in the
 * order of oomb_vec_softmax_row.
 */
void oomb_vec_softmax_row_backward(float *d, const float *p, int64_t n, float scale);

#endif
