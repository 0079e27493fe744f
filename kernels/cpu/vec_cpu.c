/*
 * Vector versions of the CPU backend's element-wise kernels (vec_cpu.h):
 * one portable scalar loop per kernel, and on x86-64 an AVX2+FMA+F16C
 * version compiled with a target attribute (the rest of the build stays
 * baseline x86-64), chosen per call by oomb_cpu_isa_get(). The scalar
 * per-element functions below are shared by both paths (the vector loops
 * use them for their last n % 8 elements), so the two can only differ where
 * the vector code does the same operation differently, which it must not:
 * this file is compiled with -ffp-contract=off (kernels/CMakeLists.txt),
 * and no FMA is written by hand, because a fused multiply-add rounds once
 * where the scalar loop rounds twice. Adam is memory-bound (7 float streams
 * for 3 divisions and a square root per element): fusing would not make it
 * faster, only different.
 */
#include "vec_cpu.h"

#include <math.h>

#include "isa.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define OOMB_VEC_X86 1
#define AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

/* ------------------------------------------------------------ scalar ----- */

static inline void adam_elem(float *p, float g, float *m, float *v,
                             const struct oomb_vec_adam_hp *hp)
{
    float mi = hp->beta1 * *m + (1.0f - hp->beta1) * g;
    float vi = hp->beta2 * *v + (1.0f - hp->beta2) * g * g;
    *m = mi;
    *v = vi;
    float mhat = mi / hp->c1, vhat = vi / hp->c2;
    *p -= hp->lr * (mhat / (sqrtf(vhat) + hp->eps) + hp->weight_decay * *p);
}

/* The new moments of one 8-bit element from its codes and the old scales. */
static inline void adam8_moments(float g, int8_t mq, uint8_t vq, float ms, float vs,
                                 const struct oomb_vec_adam_hp *hp, float *m, float *v)
{
    float m_old = (float)mq * ms;
    float sv_old = (float)vq * vs;
    *m = hp->beta1 * m_old + (1.0f - hp->beta1) * g;
    *v = hp->beta2 * (sv_old * sv_old) + (1.0f - hp->beta2) * g * g;
}

/* Pass 1 of an 8-bit block on one element: step the parameter, fold the new
 * moments into the block's maxima (NaN moments are skipped by the compares). */
static inline void adam8_step_elem(float *p, float g, int8_t mq, uint8_t vq, float ms, float vs,
                                   const struct oomb_vec_adam_hp *hp, float *m_absmax,
                                   float *sv_max)
{
    float m, v;
    adam8_moments(g, mq, vq, ms, vs, hp, &m, &v);
    float sv = sqrtf(v);
    *m_absmax = fabsf(m) > *m_absmax ? fabsf(m) : *m_absmax;
    *sv_max = sv > *sv_max ? sv : *sv_max;
    float mhat = m / hp->c1, vhat = v / hp->c2;
    *p -= hp->lr * (mhat / (sqrtf(vhat) + hp->eps) + hp->weight_decay * *p);
}

/* Pass 2 on one element: the new codes. */
static inline void adam8_quant_elem(float g, int8_t *mq, uint8_t *vq, float ms, float vs,
                                    const struct oomb_vec_adam_hp *hp, float m_inv, float v_inv)
{
    float m, v;
    adam8_moments(g, *mq, *vq, ms, vs, hp, &m, &v);
    long qm = lrintf(m * m_inv);
    /* sqrt(v) is rounded to nearest but never to 0 when v > 0: v is a
     * denominator, and an element whose small v rounded to 0 next to its
     * block's large one would next step divide its momentum by eps alone (a
     * step of m/eps, seen to diverge training). Code 1 can only shorten that
     * element's step. */
    long qv = lrintf(sqrtf(v) * v_inv);
    if (qv == 0 && v > 0.0f)
        qv = 1;
    *mq = (int8_t)(qm > 127 ? 127 : qm < -127 ? -127 : qm);
    *vq = (uint8_t)(qv > 255 ? 255 : qv < 0 ? 0 : qv);
}

/* ------------------------------------------------------------ exp, GELU -- */

/* exp for the activations and softmaxes, built from +, -, *, / only (no
 * libm), so that the scalar and vector versions give the same bits.
 * exp_elem: n = nearest integer to y log2(e) (adding and subtracting 1.5 2^23
 * rounds to nearest even), r = y - n ln2 in two parts (Cody and Waite: n ln2_hi
 * is exact for |n| < 2^15), exp(r) by its Taylor polynomial of degree 7 on
 * |r| <= ln2/2 (truncation below 5e-9 relative), times 2^n from the exponent
 * bits. Within 2 ulp of exp over [-87, 88]; below -87 it gives 0 (exp is
 * below 2^-125 there: nothing next to the 1 of a softmax row), above 88 inf.
 * GELU's tanh form 0.5 x (1 + tanh u) is computed as the equal x / (1 +
 * exp(-2u)) (0.5 (1 + tanh u) is the logistic function of 2u): one exp and
 * one division, and no cancellation in 1 + tanh u for negative x, so the
 * result is within a few ulp of GELU relative to itself everywhere.
 * tests/test_kernels_cpu.c measures both against double precision. */
#define EXP_LOG2E 1.44269504089f
#define EXP_LN2_HI 0.693359375f
#define EXP_LN2_LO (-2.12194440e-4f)
#define EXP_ROUND 12582912.0f
#define EXP_MIN (-87.0f)
#define EXP_MAX 88.0f
#define EXP_C7 1.98412698e-4f /* 1/7! */
#define EXP_C6 1.38888889e-3f
#define EXP_C5 8.33333333e-3f
#define EXP_C4 4.16666667e-2f
#define EXP_C3 1.66666667e-1f
#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_CUBE 0.044715f

static inline float exp_elem(float y)
{
    if (y != y)
        return y;
    if (y < EXP_MIN)
        return 0.0f;
    if (y > EXP_MAX)
        return INFINITY;
    float n = (y * EXP_LOG2E + EXP_ROUND) - EXP_ROUND;
    float r = (y - n * EXP_LN2_HI) - n * EXP_LN2_LO;
    float p = EXP_C7;
    p = p * r + EXP_C6;
    p = p * r + EXP_C5;
    p = p * r + EXP_C4;
    p = p * r + EXP_C3;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float gelu_u(float x)
{
    return GELU_SCALE * (x + GELU_CUBE * x * x * x);
}

/* The logistic function of 2u(x): 0.5 (1 + tanh u). */
static inline float gelu_sig(float x)
{
    return 1.0f / (1.0f + exp_elem(-2.0f * gelu_u(x)));
}

static inline float gelu_elem(float x)
{
    return x / (1.0f + exp_elem(-2.0f * gelu_u(x)));
}

/* d gelu / dx = s + x s (1 - s) 2 u'(x), s = gelu_sig(x): the tanh form's
 * 0.5 (1 + t) + 0.5 x (1 - t^2) u', finite for every finite x. */
static inline float gelu_grad_elem(float x)
{
    float s = gelu_sig(x);
    return s + 2.0f * x * s * (1.0f - s) * GELU_SCALE * (1.0f + 3.0f * GELU_CUBE * x * x);
}

/* The 8 partial sums of a softmax row (element j in acc[j % 8]) added in the
 * order the vector version adds its two 4-lane accumulators. */
static inline double sum8(const double acc[8])
{
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static void f2h_scalar(uint16_t *d, const float *s, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        d[i] = oomb_f2h(s[i]);
}

static void h2f_scalar(float *d, const uint16_t *s, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        d[i] = oomb_h2f(s[i]);
}

static void adam_scalar(float *param, const float *grad, float *m, float *v, int64_t n,
                        const struct oomb_vec_adam_hp *hp)
{
    for (int64_t i = 0; i < n; i++)
        adam_elem(param + i, grad[i], m + i, v + i, hp);
}

static void adam8_block_scalar(float *param, const float *grad, int8_t *m_q, uint8_t *v_q,
                               float *m_scale, float *v_scale, int64_t n,
                               const struct oomb_vec_adam_hp *hp)
{
    float ms = *m_scale, vs = *v_scale;
    float m_absmax = 0.0f, sv_max = 0.0f;
    for (int64_t i = 0; i < n; i++)
        adam8_step_elem(param + i, grad[i], m_q[i], v_q[i], ms, vs, hp, &m_absmax, &sv_max);
    float m_inv = m_absmax > 0.0f ? 127.0f / m_absmax : 0.0f;
    float v_inv = sv_max > 0.0f ? 255.0f / sv_max : 0.0f;
    for (int64_t i = 0; i < n; i++)
        adam8_quant_elem(grad[i], m_q + i, v_q + i, ms, vs, hp, m_inv, v_inv);
    *m_scale = m_absmax / 127.0f;
    *v_scale = sv_max / 255.0f;
}

static double sum_scalar(const float *x, int64_t n)
{
    double acc[8] = {0};
    int64_t n8 = n - n % 8;
    for (int64_t j = 0; j < n8; j++)
        acc[j % 8] += x[j];
    double s = sum8(acc);
    for (int64_t j = n8; j < n; j++)
        s += x[j];
    return s;
}

static double sum_sq_dev_scalar(const float *x, int64_t n, double mu)
{
    double acc[8] = {0};
    int64_t n8 = n - n % 8;
    for (int64_t j = 0; j < n8; j++) {
        double d = x[j] - mu;
        acc[j % 8] += d * d;
    }
    double s = sum8(acc);
    for (int64_t j = n8; j < n; j++) {
        double d = x[j] - mu;
        s += d * d;
    }
    return s;
}

static inline double norm_g(const float *dy, const float *gamma, int64_t j)
{
    return gamma ? (double)dy[j] * gamma[j] : (double)dy[j];
}

/* The last elements [j0, n) of the norm sums in order, then into sums. */
static inline void norm_sums_finish(const float *dy, const float *gamma, const float *x, int64_t j0,
                                    int64_t n, double mu, double rs, double sa, double sb,
                                    double sums[2])
{
    for (int64_t j = j0; j < n; j++) {
        double g = norm_g(dy, gamma, j);
        sa += g;
        sb += g * ((x[j] - mu) * rs);
    }
    sums[0] += sa;
    sums[1] += sb;
}

static void norm_sums_scalar(const float *dy, const float *gamma, const float *x, int64_t n,
                             double mu, double rs, double sums[2])
{
    double a[8] = {0}, b[8] = {0};
    int64_t n8 = n - n % 8;
    for (int64_t j = 0; j < n8; j++) {
        double g = norm_g(dy, gamma, j);
        a[j % 8] += g;
        b[j % 8] += g * ((x[j] - mu) * rs);
    }
    double sa = sum8(a), sb = sum8(b);
    norm_sums_finish(dy, gamma, x, n8, n, mu, rs, sa, sb, sums);
}

static void relu_scalar(float *out, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void relu_backward_scalar(float *dx, const float *dy, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

static void gelu_scalar(float *out, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = gelu_elem(x[i]);
}

static void gelu_backward_scalar(float *dx, const float *dy, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dx[i] = dy[i] * gelu_grad_elem(x[i]);
}

static void softmax_row_scalar(float *p, int64_t n, float scale)
{
    float m = -INFINITY;
    for (int64_t j = 0; j < n; j++) {
        p[j] *= scale;
        m = p[j] > m ? p[j] : m;
    }
    double acc[8] = {0};
    int64_t n8 = n - n % 8;
    for (int64_t j = 0; j < n8; j++) {
        p[j] = exp_elem(p[j] - m);
        acc[j % 8] += p[j];
    }
    double s = sum8(acc);
    for (int64_t j = n8; j < n; j++) {
        p[j] = exp_elem(p[j] - m);
        s += p[j];
    }
    float inv = (float)(1.0 / s);
    for (int64_t j = 0; j < n; j++)
        p[j] *= inv;
}

static void softmax_row_backward_scalar(float *d, const float *p, int64_t n, float scale)
{
    double acc[8] = {0};
    int64_t n8 = n - n % 8;
    for (int64_t j = 0; j < n8; j++)
        acc[j % 8] += (double)p[j] * d[j];
    double s = sum8(acc);
    for (int64_t j = n8; j < n; j++)
        s += (double)p[j] * d[j];
    float fs = (float)s;
    for (int64_t j = 0; j < n; j++)
        d[j] = p[j] * (d[j] - fs) * scale;
}

/* ------------------------------------------------------------ AVX2 ------- */

#ifdef OOMB_VEC_X86

AVX2 static void f2h_avx2(uint16_t *d, const float *s, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(d + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT));
    f2h_scalar(d + i, s + i, n - i);
}

AVX2 static void h2f_avx2(float *d, const uint16_t *s, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
    h2f_scalar(d + i, s + i, n - i);
}

AVX2 static void adam_avx2(float *param, const float *grad, float *m, float *v, int64_t n,
                           const struct oomb_vec_adam_hp *hp)
{
    const __m256 b1 = _mm256_set1_ps(hp->beta1), ob1 = _mm256_set1_ps(1.0f - hp->beta1);
    const __m256 b2 = _mm256_set1_ps(hp->beta2), ob2 = _mm256_set1_ps(1.0f - hp->beta2);
    const __m256 c1 = _mm256_set1_ps(hp->c1), c2 = _mm256_set1_ps(hp->c2);
    const __m256 eps = _mm256_set1_ps(hp->eps), lr = _mm256_set1_ps(hp->lr);
    const __m256 wd = _mm256_set1_ps(hp->weight_decay);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(grad + i);
        __m256 mi = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(ob1, g));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)),
                                  _mm256_mul_ps(_mm256_mul_ps(ob2, g), g));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        __m256 mhat = _mm256_div_ps(mi, c1), vhat = _mm256_div_ps(vi, c2);
        __m256 p = _mm256_loadu_ps(param + i);
        __m256 u = _mm256_add_ps(_mm256_div_ps(mhat, _mm256_add_ps(_mm256_sqrt_ps(vhat), eps)),
                                 _mm256_mul_ps(wd, p));
        _mm256_storeu_ps(param + i, _mm256_sub_ps(p, _mm256_mul_ps(lr, u)));
    }
    adam_scalar(param + i, grad + i, m + i, v + i, n - i, hp);
}

/* The new moments of 8 elements from their codes, as adam8_moments. */
AVX2 static inline void adam8_moments8(const float *grad, const int8_t *m_q, const uint8_t *v_q,
                                       __m256 ms, __m256 vs, __m256 b1, __m256 ob1, __m256 b2,
                                       __m256 ob2, __m256 *m, __m256 *v)
{
    __m256 g = _mm256_loadu_ps(grad);
    __m256i mq = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)m_q));
    __m256i vq = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)v_q));
    __m256 m_old = _mm256_mul_ps(_mm256_cvtepi32_ps(mq), ms);
    __m256 sv_old = _mm256_mul_ps(_mm256_cvtepi32_ps(vq), vs);
    *m = _mm256_add_ps(_mm256_mul_ps(b1, m_old), _mm256_mul_ps(ob1, g));
    *v = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_mul_ps(sv_old, sv_old)),
                       _mm256_mul_ps(_mm256_mul_ps(ob2, g), g));
}

/* The largest lane; the lanes hold no NaN (VMAXPS kept the accumulator). */
AVX2 static inline float hmax8(__m256 x)
{
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}

AVX2 static void adam8_block_avx2(float *param, const float *grad, int8_t *m_q, uint8_t *v_q,
                                  float *m_scale, float *v_scale, int64_t n,
                                  const struct oomb_vec_adam_hp *hp)
{
    const __m256 b1 = _mm256_set1_ps(hp->beta1), ob1 = _mm256_set1_ps(1.0f - hp->beta1);
    const __m256 b2 = _mm256_set1_ps(hp->beta2), ob2 = _mm256_set1_ps(1.0f - hp->beta2);
    const __m256 c1 = _mm256_set1_ps(hp->c1), c2 = _mm256_set1_ps(hp->c2);
    const __m256 eps = _mm256_set1_ps(hp->eps), lr = _mm256_set1_ps(hp->lr);
    const __m256 wd = _mm256_set1_ps(hp->weight_decay);
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const float ms = *m_scale, vs = *v_scale;
    const __m256 vms = _mm256_set1_ps(ms), vvs = _mm256_set1_ps(vs);
    __m256 amax = _mm256_setzero_ps(), smax = _mm256_setzero_ps();
    int64_t n8 = n - n % 8;
    for (int64_t i = 0; i < n8; i += 8) {
        __m256 m, v;
        adam8_moments8(grad + i, m_q + i, v_q + i, vms, vvs, b1, ob1, b2, ob2, &m, &v);
        /* max(a, acc) is a > acc ? a : acc, NaN a included: the scalar compare */
        amax = _mm256_max_ps(_mm256_and_ps(m, abs_mask), amax);
        smax = _mm256_max_ps(_mm256_sqrt_ps(v), smax);
        __m256 mhat = _mm256_div_ps(m, c1), vhat = _mm256_div_ps(v, c2);
        __m256 p = _mm256_loadu_ps(param + i);
        __m256 u = _mm256_add_ps(_mm256_div_ps(mhat, _mm256_add_ps(_mm256_sqrt_ps(vhat), eps)),
                                 _mm256_mul_ps(wd, p));
        _mm256_storeu_ps(param + i, _mm256_sub_ps(p, _mm256_mul_ps(lr, u)));
    }
    /* max is exact and order-free on the non-NaN values it keeps */
    float m_absmax = hmax8(amax), sv_max = hmax8(smax);
    for (int64_t i = n8; i < n; i++)
        adam8_step_elem(param + i, grad[i], m_q[i], v_q[i], ms, vs, hp, &m_absmax, &sv_max);

    float m_inv = m_absmax > 0.0f ? 127.0f / m_absmax : 0.0f;
    float v_inv = sv_max > 0.0f ? 255.0f / sv_max : 0.0f;
    const __m256 vmi = _mm256_set1_ps(m_inv), vvi = _mm256_set1_ps(v_inv);
    const __m256i one = _mm256_set1_epi32(1), zero = _mm256_setzero_si256();
    const __m256i lo_m = _mm256_set1_epi32(-127), hi_m = _mm256_set1_epi32(127);
    const __m256i hi_v = _mm256_set1_epi32(255);
    for (int64_t i = 0; i < n8; i += 8) {
        __m256 m, v;
        adam8_moments8(grad + i, m_q + i, v_q + i, vms, vvs, b1, ob1, b2, ob2, &m, &v);
        /* VCVTPS2DQ rounds as lrintf (MXCSR, nearest even by default) and gives
         * INT32_MIN for NaN and out-of-range values where lrintf gives LONG_MIN:
         * both clamp to the same code. The products are bounded by 127 and
         * 255 (each |m| <= m_absmax) unless they are inf or NaN. */
        __m256i qm = _mm256_cvtps_epi32(_mm256_mul_ps(m, vmi));
        __m256i qv = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_sqrt_ps(v), vvi));
        __m256i bump = _mm256_and_si256(
            _mm256_cmpeq_epi32(qv, zero),
            _mm256_castps_si256(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ)));
        qv = _mm256_or_si256(qv, _mm256_and_si256(bump, one));
        qm = _mm256_min_epi32(_mm256_max_epi32(qm, lo_m), hi_m);
        qv = _mm256_min_epi32(_mm256_max_epi32(qv, zero), hi_v);
        __m128i m16 = _mm_packs_epi32(_mm256_castsi256_si128(qm), _mm256_extracti128_si256(qm, 1));
        __m128i v16 = _mm_packus_epi32(_mm256_castsi256_si128(qv), _mm256_extracti128_si256(qv, 1));
        _mm_storel_epi64((__m128i *)(m_q + i), _mm_packs_epi16(m16, m16));
        _mm_storel_epi64((__m128i *)(v_q + i), _mm_packus_epi16(v16, v16));
    }
    for (int64_t i = n8; i < n; i++)
        adam8_quant_elem(grad[i], m_q + i, v_q + i, ms, vs, hp, m_inv, v_inv);
    *m_scale = m_absmax / 127.0f;
    *v_scale = sv_max / 255.0f;
}

/* exp_elem on 8 lanes, the same operations in the same order. */
AVX2 static inline __m256 exp8(__m256 y)
{
    const __m256 rnd = _mm256_set1_ps(EXP_ROUND);
    __m256 nan = _mm256_cmp_ps(y, y, _CMP_UNORD_Q);
    __m256 lo = _mm256_cmp_ps(y, _mm256_set1_ps(EXP_MIN), _CMP_LT_OQ);
    __m256 hi = _mm256_cmp_ps(y, _mm256_set1_ps(EXP_MAX), _CMP_GT_OQ);
    __m256 yc = _mm256_min_ps(_mm256_max_ps(y, _mm256_set1_ps(EXP_MIN)), _mm256_set1_ps(EXP_MAX));
    __m256 n = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(yc, _mm256_set1_ps(EXP_LOG2E)), rnd), rnd);
    __m256 r = _mm256_sub_ps(_mm256_sub_ps(yc, _mm256_mul_ps(n, _mm256_set1_ps(EXP_LN2_HI))),
                             _mm256_mul_ps(n, _mm256_set1_ps(EXP_LN2_LO)));
    __m256 p = _mm256_set1_ps(EXP_C7);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(EXP_C6));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(EXP_C5));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(EXP_C4));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(EXP_C3));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(0.5f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 out = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    out = _mm256_andnot_ps(lo, out);
    out = _mm256_blendv_ps(out, _mm256_set1_ps(INFINITY), hi);
    return _mm256_blendv_ps(out, y, nan);
}

AVX2 static inline __m256 gelu_u8(__m256 x)
{
    __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(GELU_CUBE), x), x), x);
    return _mm256_mul_ps(_mm256_set1_ps(GELU_SCALE), _mm256_add_ps(x, x3));
}

AVX2 static void relu_avx2(float *out, const float *x, int64_t n)
{
    const __m256 z = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        _mm256_storeu_ps(out + i, _mm256_and_ps(_mm256_cmp_ps(v, z, _CMP_GT_OQ), v));
    }
    relu_scalar(out + i, x + i, n - i);
}

AVX2 static void relu_backward_avx2(float *dx, const float *dy, const float *x, int64_t n)
{
    const __m256 z = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 m = _mm256_cmp_ps(_mm256_loadu_ps(x + i), z, _CMP_GT_OQ);
        _mm256_storeu_ps(dx + i, _mm256_and_ps(m, _mm256_loadu_ps(dy + i)));
    }
    relu_backward_scalar(dx + i, dy + i, x + i, n - i);
}

/* 1 + exp(-2u(x)) on 8 lanes, as gelu_elem's denominator. */
AVX2 static inline __m256 gelu_den8(__m256 x)
{
    return _mm256_add_ps(_mm256_set1_ps(1.0f),
                         exp8(_mm256_mul_ps(_mm256_set1_ps(-2.0f), gelu_u8(x))));
}

AVX2 static void gelu_avx2(float *out, const float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        _mm256_storeu_ps(out + i, _mm256_div_ps(v, gelu_den8(v)));
    }
    gelu_scalar(out + i, x + i, n - i);
}

AVX2 static void gelu_backward_avx2(float *dx, const float *dy, const float *x, int64_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f);
    const __m256 sc = _mm256_set1_ps(GELU_SCALE), c3 = _mm256_set1_ps(3.0f * GELU_CUBE);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 s = _mm256_div_ps(one, gelu_den8(v));
        __m256 b = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(two, v), s), _mm256_sub_ps(one, s));
        b = _mm256_mul_ps(_mm256_mul_ps(b, sc),
                          _mm256_add_ps(one, _mm256_mul_ps(_mm256_mul_ps(c3, v), v)));
        _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_loadu_ps(dy + i), _mm256_add_ps(s, b)));
    }
    gelu_backward_scalar(dx + i, dy + i, x + i, n - i);
}

/* Adds the 8 lanes of x to the partial sums lo (lanes 0-3) and hi (4-7) in double. */
AVX2 static inline void acc8(__m256d *lo, __m256d *hi, __m256 x)
{
    *lo = _mm256_add_pd(*lo, _mm256_cvtps_pd(_mm256_castps256_ps128(x)));
    *hi = _mm256_add_pd(*hi, _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)));
}

/* sum8 of the partial sums lo, hi. */
AVX2 static inline double sum8_avx2(__m256d lo, __m256d hi)
{
    double t[4];
    _mm256_storeu_pd(t, _mm256_add_pd(lo, hi));
    return (t[0] + t[1]) + (t[2] + t[3]);
}

AVX2 static double sum_avx2(const float *x, int64_t n)
{
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    int64_t n8 = n - n % 8;
    for (int64_t j = 0; j < n8; j += 8)
        acc8(&lo, &hi, _mm256_loadu_ps(x + j));
    double s = sum8_avx2(lo, hi);
    for (int64_t j = n8; j < n; j++)
        s += x[j];
    return s;
}

AVX2 static double sum_sq_dev_avx2(const float *x, int64_t n, double mu)
{
    const __m256d m = _mm256_set1_pd(mu);
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    int64_t n8 = n - n % 8;
    for (int64_t j = 0; j < n8; j += 8) {
        __m256 v = _mm256_loadu_ps(x + j);
        __m256d a = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), m);
        __m256d b = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), m);
        lo = _mm256_add_pd(lo, _mm256_mul_pd(a, a));
        hi = _mm256_add_pd(hi, _mm256_mul_pd(b, b));
    }
    double s = sum8_avx2(lo, hi);
    for (int64_t j = n8; j < n; j++) {
        double d = x[j] - mu;
        s += d * d;
    }
    return s;
}

/* One half (4 lanes) of norm_sums: g and g xhat added to *a and *b. */
AVX2 static inline void norm_sums4(__m128 dy, __m128 gm, int has_gamma, __m128 x, __m256d mu,
                                   __m256d rs, __m256d *a, __m256d *b)
{
    __m256d g = _mm256_cvtps_pd(dy);
    if (has_gamma)
        g = _mm256_mul_pd(g, _mm256_cvtps_pd(gm));
    __m256d xh = _mm256_mul_pd(_mm256_sub_pd(_mm256_cvtps_pd(x), mu), rs);
    *a = _mm256_add_pd(*a, g);
    *b = _mm256_add_pd(*b, _mm256_mul_pd(g, xh));
}

AVX2 static void norm_sums_avx2(const float *dy, const float *gamma, const float *x, int64_t n,
                                double mu, double rs, double sums[2])
{
    const __m256d vm = _mm256_set1_pd(mu), vr = _mm256_set1_pd(rs);
    __m256d alo = _mm256_setzero_pd(), ahi = _mm256_setzero_pd();
    __m256d blo = _mm256_setzero_pd(), bhi = _mm256_setzero_pd();
    int64_t n8 = n - n % 8;
    for (int64_t j = 0; j < n8; j += 8) {
        __m256 d = _mm256_loadu_ps(dy + j), v = _mm256_loadu_ps(x + j);
        __m256 gm = gamma ? _mm256_loadu_ps(gamma + j) : _mm256_setzero_ps();
        norm_sums4(_mm256_castps256_ps128(d), _mm256_castps256_ps128(gm), gamma != NULL,
                   _mm256_castps256_ps128(v), vm, vr, &alo, &blo);
        norm_sums4(_mm256_extractf128_ps(d, 1), _mm256_extractf128_ps(gm, 1), gamma != NULL,
                   _mm256_extractf128_ps(v, 1), vm, vr, &ahi, &bhi);
    }
    double sa = sum8_avx2(alo, ahi), sb = sum8_avx2(blo, bhi);
    norm_sums_finish(dy, gamma, x, n8, n, mu, rs, sa, sb, sums);
}

AVX2 static void softmax_row_avx2(float *p, int64_t n, float scale)
{
    const __m256 vs = _mm256_set1_ps(scale);
    int64_t n8 = n - n % 8;
    __m256 vm = _mm256_set1_ps(-INFINITY);
    for (int64_t j = 0; j < n8; j += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(p + j), vs);
        _mm256_storeu_ps(p + j, v);
        vm = _mm256_max_ps(v, vm); /* a NaN v keeps vm, as the scalar compare */
    }
    float m = n8 ? hmax8(vm) : -INFINITY;
    for (int64_t j = n8; j < n; j++) {
        p[j] *= scale;
        m = p[j] > m ? p[j] : m;
    }
    const __m256 bm = _mm256_set1_ps(m);
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    for (int64_t j = 0; j < n8; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p + j), bm));
        _mm256_storeu_ps(p + j, e);
        acc8(&lo, &hi, e);
    }
    double s = sum8_avx2(lo, hi);
    for (int64_t j = n8; j < n; j++) {
        p[j] = exp_elem(p[j] - m);
        s += p[j];
    }
    float inv = (float)(1.0 / s);
    const __m256 vi = _mm256_set1_ps(inv);
    for (int64_t j = 0; j < n8; j += 8)
        _mm256_storeu_ps(p + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), vi));
    for (int64_t j = n8; j < n; j++)
        p[j] *= inv;
}

AVX2 static void softmax_row_backward_avx2(float *d, const float *p, int64_t n, float scale)
{
    int64_t n8 = n - n % 8;
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    for (int64_t j = 0; j < n8; j += 8) {
        __m256 pv = _mm256_loadu_ps(p + j), dv = _mm256_loadu_ps(d + j);
        lo = _mm256_add_pd(lo, _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(pv)),
                                             _mm256_cvtps_pd(_mm256_castps256_ps128(dv))));
        hi = _mm256_add_pd(hi, _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(pv, 1)),
                                             _mm256_cvtps_pd(_mm256_extractf128_ps(dv, 1))));
    }
    double s = sum8_avx2(lo, hi);
    for (int64_t j = n8; j < n; j++)
        s += (double)p[j] * d[j];
    float fs = (float)s;
    const __m256 vf = _mm256_set1_ps(fs), vs = _mm256_set1_ps(scale);
    for (int64_t j = 0; j < n8; j += 8) {
        __m256 pv = _mm256_loadu_ps(p + j), dv = _mm256_loadu_ps(d + j);
        _mm256_storeu_ps(d + j, _mm256_mul_ps(_mm256_mul_ps(pv, _mm256_sub_ps(dv, vf)), vs));
    }
    for (int64_t j = n8; j < n; j++)
        d[j] = p[j] * (d[j] - fs) * scale;
}

#define DISPATCH(name, ...)                                                                        \
    do {                                                                                           \
        if (oomb_cpu_isa_get() == OOMB_CPU_ISA_AVX2) {                                             \
            name##_avx2(__VA_ARGS__);                                                              \
            return;                                                                                \
        }                                                                                          \
        name##_scalar(__VA_ARGS__);                                                                \
    } while (0)
#else
#define DISPATCH(name, ...) name##_scalar(__VA_ARGS__)
#endif

/* ------------------------------------------------------------ entries ---- */

void oomb_vec_f2h(uint16_t *d, const float *s, int64_t n)
{
    DISPATCH(f2h, d, s, n);
}

void oomb_vec_h2f(float *d, const uint16_t *s, int64_t n)
{
    DISPATCH(h2f, d, s, n);
}

void oomb_vec_adam(float *param, const float *grad, float *m, float *v, int64_t n,
                   const struct oomb_vec_adam_hp *hp)
{
    DISPATCH(adam, param, grad, m, v, n, hp);
}

void oomb_vec_adam8_block(float *param, const float *grad, int8_t *m_q, uint8_t *v_q,
                          float *m_scale, float *v_scale, int64_t n,
                          const struct oomb_vec_adam_hp *hp)
{
    DISPATCH(adam8_block, param, grad, m_q, v_q, m_scale, v_scale, n, hp);
}

void oomb_vec_gelu(float *out, const float *x, int64_t n)
{
    DISPATCH(gelu, out, x, n);
}

void oomb_vec_gelu_backward(float *dx, const float *dy, const float *x, int64_t n)
{
    DISPATCH(gelu_backward, dx, dy, x, n);
}

void oomb_vec_softmax_row(float *p, int64_t n, float scale)
{
    DISPATCH(softmax_row, p, n, scale);
}

void oomb_vec_softmax_row_backward(float *d, const float *p, int64_t n, float scale)
{
    DISPATCH(softmax_row_backward, d, p, n, scale);
}

void oomb_vec_relu(float *out, const float *x, int64_t n)
{
    DISPATCH(relu, out, x, n);
}

void oomb_vec_relu_backward(float *dx, const float *dy, const float *x, int64_t n)
{
    DISPATCH(relu_backward, dx, dy, x, n);
}

double oomb_vec_sum(const float *x, int64_t n)
{
#ifdef OOMB_VEC_X86
    if (oomb_cpu_isa_get() == OOMB_CPU_ISA_AVX2)
        return sum_avx2(x, n);
#endif
    return sum_scalar(x, n);
}

double oomb_vec_sum_sq_dev(const float *x, int64_t n, double mu)
{
#ifdef OOMB_VEC_X86
    if (oomb_cpu_isa_get() == OOMB_CPU_ISA_AVX2)
        return sum_sq_dev_avx2(x, n, mu);
#endif
    return sum_sq_dev_scalar(x, n, mu);
}

void oomb_vec_norm_sums(const float *dy, const float *gamma, const float *x, int64_t n, double mu,
                        double rs, double sums[2])
{
    DISPATCH(norm_sums, dy, gamma, x, n, mu, rs, sums);
}
