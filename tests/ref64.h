/*
 * A float64 forward pass of a sequential model, written from the layer
 * definitions in harness/include/oombench/plugin.h with plain loops: the
 * mean softmax cross-entropy of a batch, for central differences whose
 * rounding noise (about 1e-16 of the loss over the step) is far below FP32
 * gradient errors. Batch norm uses the batch's statistics (training), as the
 * engine's backward assumes. For tests only: no allocation failure is
 * expected (abort on one).
 */
#ifndef OOMB_TEST_REF64_H
#define OOMB_TEST_REF64_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oombench/plugin.h"

static double *r64_alloc(int64_t n)
{
    double *p = calloc((size_t)(n > 0 ? n : 1), sizeof *p);
    if (!p)
        abort();
    return p;
}

/* y (B*R, OC) = x (B*R, C) W^T + b */
static void r64_linear(double *y, const double *x, const double *w, const double *b, int64_t rows,
                       int64_t C, int64_t OC)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0;
            for (int64_t c = 0; c < C; c++)
                s += x[r * C + c] * w[o * C + c];
            y[r * OC + o] = s;
        }
}

static double r64_gelu(double x)
{
    return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}

/* One layer: out (B, out_features) from in (B, in_features); p its parameters. */
static void r64_layer(const struct oomb_layer *L, double *out, const double *in, const double *p,
                      int64_t B)
{
    const int64_t nin = B * L->in_features, nout = B * L->out_features;
    switch (L->kind) {
    case OOMB_LAYER_LINEAR: {
        int64_t R = L->attrs[0] > 1 ? L->attrs[0] : 1, C = L->in_features / R,
                OC = L->out_features / R;
        r64_linear(out, in, p, L->has_bias ? p + OC * C : NULL, B * R, C, OC);
        break;
    }
    case OOMB_LAYER_RELU:
        for (int64_t i = 0; i < nin; i++)
            out[i] = in[i] > 0 ? in[i] : 0.0;
        break;
    case OOMB_LAYER_GELU:
        for (int64_t i = 0; i < nin; i++)
            out[i] = r64_gelu(in[i]);
        break;
    case OOMB_LAYER_FLATTEN:
        memcpy(out, in, (size_t)nin * sizeof *out);
        break;
    case OOMB_LAYER_CONV2D: {
        const int64_t C = L->attrs[0], H = L->attrs[1], W = L->attrs[2], OC = L->attrs[3],
                      K = L->attrs[4], st = L->attrs[5], pad = L->attrs[6];
        const int64_t OH = (H + 2 * pad - K) / st + 1, OW = (W + 2 * pad - K) / st + 1;
        const double *bias = L->has_bias ? p + OC * C * K * K : NULL;
        for (int64_t b = 0; b < B; b++)
            for (int64_t o = 0; o < OC; o++)
                for (int64_t oh = 0; oh < OH; oh++)
                    for (int64_t ow = 0; ow < OW; ow++) {
                        double s = bias ? bias[o] : 0.0;
                        for (int64_t c = 0; c < C; c++)
                            for (int64_t i = 0; i < K; i++)
                                for (int64_t j = 0; j < K; j++) {
                                    int64_t h = oh * st - pad + i, w = ow * st - pad + j;
                                    if (h < 0 || h >= H || w < 0 || w >= W)
                                        continue;
                                    s += p[((o * C + c) * K + i) * K + j] *
                                         in[((b * C + c) * H + h) * W + w];
                                }
                        out[((b * OC + o) * OH + oh) * OW + ow] = s;
                    }
        break;
    }
    case OOMB_LAYER_MAXPOOL: {
        const int64_t C = L->attrs[0], H = L->attrs[1], W = L->attrs[2], K = L->attrs[3],
                      st = L->attrs[4];
        const int64_t OH = (H - K) / st + 1, OW = (W - K) / st + 1;
        for (int64_t pl = 0; pl < B * C; pl++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    double m = -INFINITY;
                    for (int64_t i = 0; i < K; i++)
                        for (int64_t j = 0; j < K; j++)
                            m = fmax(m, in[pl * H * W + (oh * st + i) * W + ow * st + j]);
                    out[pl * OH * OW + oh * OW + ow] = m;
                }
        break;
    }
    case OOMB_LAYER_BATCHNORM: {
        const int64_t C = L->attrs[0], S = L->attrs[1];
        for (int64_t c = 0; c < C; c++) {
            double mean = 0, var = 0;
            for (int64_t b = 0; b < B; b++)
                for (int64_t s = 0; s < S; s++)
                    mean += in[(b * C + c) * S + s];
            mean /= (double)(B * S);
            for (int64_t b = 0; b < B; b++)
                for (int64_t s = 0; s < S; s++) {
                    double d = in[(b * C + c) * S + s] - mean;
                    var += d * d;
                }
            var /= (double)(B * S);
            double rstd = 1.0 / sqrt(var + 1e-5);
            for (int64_t b = 0; b < B; b++)
                for (int64_t s = 0; s < S; s++) {
                    int64_t at = (b * C + c) * S + s;
                    out[at] = (in[at] - mean) * rstd * p[c] + p[C + c];
                }
        }
        break;
    }
    case OOMB_LAYER_LAYERNORM: {
        const int64_t C = L->attrs[1], N = nin / C;
        for (int64_t r = 0; r < N; r++) {
            const double *x = in + r * C;
            double mean = 0, var = 0;
            for (int64_t c = 0; c < C; c++)
                mean += x[c];
            mean /= (double)C;
            for (int64_t c = 0; c < C; c++)
                var += (x[c] - mean) * (x[c] - mean);
            double rstd = 1.0 / sqrt(var / (double)C + 1e-5);
            for (int64_t c = 0; c < C; c++)
                out[r * C + c] = (x[c] - mean) * rstd * p[c] + p[C + c];
        }
        break;
    }
    case OOMB_LAYER_ATTENTION: {
        const int64_t T = L->attrs[0], C = L->attrs[1], H = L->attrs[2], d = C / H;
        const int causal = L->attrs[3] != 0;
        const double *wqkv = p, *bqkv = p + 3 * C * C, *wo = bqkv + 3 * C, *bo = wo + C * C;
        double *qkv = r64_alloc(B * T * 3 * C), *heads = r64_alloc(B * T * C), *sc = r64_alloc(T);
        r64_linear(qkv, in, wqkv, bqkv, B * T, C, 3 * C);
        for (int64_t b = 0; b < B; b++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t i = 0; i < T; i++) {
                    const double *q = qkv + (b * T + i) * 3 * C + h * d;
                    int64_t n = causal ? i + 1 : T;
                    double mx = -INFINITY, sum = 0;
                    for (int64_t j = 0; j < n; j++) {
                        const double *kk = qkv + (b * T + j) * 3 * C + C + h * d;
                        double s = 0;
                        for (int64_t e = 0; e < d; e++)
                            s += q[e] * kk[e];
                        sc[j] = s / sqrt((double)d);
                        mx = fmax(mx, sc[j]);
                    }
                    for (int64_t j = 0; j < n; j++)
                        sum += (sc[j] = exp(sc[j] - mx));
                    for (int64_t e = 0; e < d; e++) {
                        double s = 0;
                        for (int64_t j = 0; j < n; j++)
                            s += sc[j] / sum * qkv[(b * T + j) * 3 * C + 2 * C + h * d + e];
                        heads[(b * T + i) * C + h * d + e] = s;
                    }
                }
        r64_linear(out, heads, wo, bo, B * T, C, C);
        free(qkv);
        free(heads);
        free(sc);
        break;
    }
    case OOMB_LAYER_RESIDUAL: {
        double *cur = r64_alloc(nin), *nxt;
        memcpy(cur, in, (size_t)nin * sizeof *cur);
        const double *bp = p;
        for (int j = 0; j < L->n_body; j++) {
            const struct oomb_layer *b = L->body[j];
            nxt = r64_alloc(B * b->out_features);
            r64_layer(b, nxt, cur, bp, B);
            bp += b->n_params;
            free(cur);
            cur = nxt;
        }
        for (int64_t i = 0; i < nout; i++)
            out[i] = in[i] + cur[i];
        free(cur);
        break;
    }
    }
}

/* Mean softmax cross-entropy over B samples of the model on x (B, f_in),
 * parameters `p` (the net's layout: layer after layer). */
static double r64_loss(const struct oomb_model *m, const double *p, const double *x,
                       const int32_t *y, int64_t B)
{
    double *cur = r64_alloc(B * m->input_features);
    memcpy(cur, x, (size_t)(B * m->input_features) * sizeof *cur);
    for (int l = 0; l < m->n_layers; l++) {
        const struct oomb_layer *L = m->layers[l];
        double *nxt = r64_alloc(B * L->out_features);
        r64_layer(L, nxt, cur, p, B);
        p += L->n_params;
        free(cur);
        cur = nxt;
    }
    const int64_t K = m->classes;
    double sum = 0;
    for (int64_t b = 0; b < B; b++) {
        const double *z = cur + b * K;
        double mx = z[0], se = 0;
        for (int64_t k = 1; k < K; k++)
            mx = fmax(mx, z[k]);
        for (int64_t k = 0; k < K; k++)
            se += exp(z[k] - mx);
        sum += mx + log(se) - z[y[b]];
    }
    free(cur);
    return sum / (double)B;
}

#endif
