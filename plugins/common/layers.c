/*
 * The table of layer kinds (see layers.h). What each PyTorch op saves comes
 * from its autograd formula (tools/autograd/derivatives.yaml in PyTorch):
 * the tensors named in the backward expression of each input are the ones
 * its node keeps.
 */
#include "layers.h"

#include <string.h>

static const struct oomb_layer_kind_info kinds[] = {
    {OOMB_LAYER_LINEAR, "linear", "torch.nn.Linear (addmm; matmul per token)",
     "its input (and the weight, a parameter)", OOMB_SAVES_INPUT, OOMB_INIT_UNIFORM},
    {OOMB_LAYER_RELU, "relu", "torch.relu", "its result", OOMB_SAVES_OUTPUT, OOMB_INIT_NONE},
    {OOMB_LAYER_GELU, "gelu", "torch.nn.functional.gelu(approximate='tanh')", "its input",
     OOMB_SAVES_INPUT, OOMB_INIT_NONE},
    {OOMB_LAYER_CONV2D, "conv2d", "torch.nn.Conv2d (convolution)",
     "its input (and the weight, a parameter)", OOMB_SAVES_INPUT, OOMB_INIT_UNIFORM},
    {OOMB_LAYER_MAXPOOL, "maxpool", "torch.nn.functional.max_pool2d (max_pool2d_with_indices)",
     "its input and the int64 indices of the maxima (oombench: the input only, the maxima "
     "found again in backward)",
     OOMB_SAVES_INPUT, OOMB_INIT_NONE},
    {OOMB_LAYER_BATCHNORM, "batchnorm", "torch.nn.BatchNorm (native_batch_norm)",
     "its input, save_mean and save_invstd (C floats each)", OOMB_SAVES_INPUT, OOMB_INIT_NORM},
    {OOMB_LAYER_LAYERNORM, "layernorm", "torch.nn.LayerNorm (native_layer_norm)",
     "its input, mean and rstd (one float per row each)", OOMB_SAVES_INPUT, OOMB_INIT_NORM},
    {OOMB_LAYER_FLATTEN, "flatten", "torch.flatten (a view)", "nothing: the output is a view",
     OOMB_SAVES_VIEW, OOMB_INIT_NONE},
    {OOMB_LAYER_RESIDUAL, "residual", "x + body(x) (add)",
     "nothing for the add; the body's layers save their own", 0, OOMB_INIT_BODY},
    {OOMB_LAYER_ATTENTION, "attention",
     "qkv = Linear(x); softmax(q k^T / sqrt(d)) v per head; Linear(heads)",
     "x (qkv projection), qkv and the softmax probabilities (attention core), the heads' "
     "output (output projection)",
     OOMB_SAVES_INPUT, OOMB_INIT_UNIFORM},
};

const struct oomb_layer_kind_info *oomb_layer_kind_info(enum oomb_layer_kind kind)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i].kind == kind)
            return &kinds[i];
    return NULL;
}

const char *oomb_layer_kind_name(enum oomb_layer_kind kind)
{
    const struct oomb_layer_kind_info *k = oomb_layer_kind_info(kind);
    return k ? k->name : "unknown";
}

void oomb_linear_dims(const struct oomb_layer *L, int64_t *rows, int64_t *in, int64_t *out)
{
    int64_t R = L->kind == OOMB_LAYER_LINEAR && L->attrs[0] > 1 ? L->attrs[0] : 1;
    *rows = R;
    *in = L->in_features / R;
    *out = L->out_features / R;
}

int64_t oomb_linear_weights(const struct oomb_layer *L)
{
    int64_t R, C, OC;
    oomb_linear_dims(L, &R, &C, &OC);
    return OC * C;
}

static int64_t mul3(int64_t a, int64_t b, int64_t c)
{
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r) || __builtin_mul_overflow(r, c, &r))
        return -1;
    return r;
}

/* w + (bias ? b : 0), -1 when w is -1 or the sum overflows */
static int64_t plus(int64_t w, int64_t b)
{
    int64_t r;
    if (w < 0 || b < 0 || __builtin_add_overflow(w, b, &r))
        return -1;
    return r;
}

int64_t oomb_layer_param_count(const struct oomb_layer *L)
{
    switch (L->kind) {
    case OOMB_LAYER_LINEAR: {
        int64_t R, C, OC;
        oomb_linear_dims(L, &R, &C, &OC);
        return plus(mul3(OC, C, 1), L->has_bias ? OC : 0);
    }
    case OOMB_LAYER_CONV2D: {
        int64_t C = L->attrs[0], OC = L->attrs[3], K = L->attrs[4];
        int64_t w = mul3(OC, C, 1);
        return plus(w < 0 ? -1 : mul3(w, K, K), L->has_bias ? OC : 0);
    }
    case OOMB_LAYER_BATCHNORM:
        return mul3(L->attrs[0], 2, 1);
    case OOMB_LAYER_LAYERNORM:
        return mul3(L->attrs[1], 2, 1);
    case OOMB_LAYER_ATTENTION: {
        int64_t C = L->attrs[1];
        return plus(mul3(C, C, 4), mul3(C, 4, 1)); /* Wqkv, bqkv, Wo, bo */
    }
    case OOMB_LAYER_RESIDUAL: {
        int64_t n = 0;
        for (int j = 0; j < L->n_body && L->body; j++)
            n = plus(n, oomb_layer_param_count(L->body[j]));
        return n;
    }
    default:
        return 0;
    }
}

int64_t oomb_layer_buffer_count(const struct oomb_layer *L)
{
    switch (L->kind) {
    case OOMB_LAYER_BATCHNORM:
        return mul3(L->attrs[0], 2, 1); /* running mean, running variance */
    case OOMB_LAYER_RESIDUAL: {
        int64_t n = 0;
        for (int j = 0; j < L->n_body && L->body; j++)
            n = plus(n, oomb_layer_buffer_count(L->body[j]));
        return n;
    }
    default:
        return 0;
    }
}

int64_t oomb_layer_fan_in(const struct oomb_layer *L)
{
    switch (L->kind) {
    case OOMB_LAYER_LINEAR: {
        int64_t R, C, OC;
        oomb_linear_dims(L, &R, &C, &OC);
        return C;
    }
    case OOMB_LAYER_CONV2D:
        return mul3(L->attrs[0], L->attrs[4], L->attrs[4]);
    case OOMB_LAYER_ATTENTION:
        return L->attrs[1];
    default:
        return L->in_features;
    }
}

void oomb_layer_make_linear(struct oomb_layer *L, int64_t in, int64_t out)
{
    memset(L, 0, sizeof *L);
    L->struct_size = sizeof *L;
    L->kind = OOMB_LAYER_LINEAR;
    L->in_features = in;
    L->out_features = out;
    L->has_bias = 1;
    L->n_params = oomb_layer_param_count(L);
}

void oomb_layer_make_activation(struct oomb_layer *L, enum oomb_layer_kind kind, int64_t n)
{
    memset(L, 0, sizeof *L);
    L->struct_size = sizeof *L;
    L->kind = kind;
    L->in_features = L->out_features = n;
}

void oomb_layer_conv2d(const struct oomb_layer *L, struct oomb_conv2d *cv)
{
    memset(cv, 0, sizeof *cv);
    cv->struct_size = sizeof *cv;
    cv->C = L->attrs[0];
    cv->H = L->attrs[1];
    cv->W = L->attrs[2];
    cv->OC = L->attrs[3];
    cv->K = L->attrs[4];
    cv->stride = L->attrs[5];
    cv->pad = L->attrs[6];
    cv->OH = (cv->H + 2 * cv->pad - cv->K) / cv->stride + 1;
    cv->OW = (cv->W + 2 * cv->pad - cv->K) / cv->stride + 1;
}

void oomb_layer_pool2d(const struct oomb_layer *L, struct oomb_pool2d *p)
{
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->C = L->attrs[0];
    p->H = L->attrs[1];
    p->W = L->attrs[2];
    p->K = L->attrs[3];
    p->stride = L->attrs[4];
    p->OH = (p->H - p->K) / p->stride + 1;
    p->OW = (p->W - p->K) / p->stride + 1;
}
