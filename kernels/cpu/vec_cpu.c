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
