/*
 * The table of layer kinds: for each kind of struct oomb_layer, its name,
 * how many parameters and buffers it has, how they are initialised, and
 * what its autograd node keeps for backward (the PyTorch op it stands for
 * and the tensors that op saves). The scenario reader (shape inference),
 * the seeded initialisation (harness/src/data.c), the step engine
 * (engine.c: its tape and forward/backward) and distillation's student all
 * read this one table. Pure functions of the layer; nothing allocates.
 */
#ifndef OOMB_PLUGIN_LAYERS_H
#define OOMB_PLUGIN_LAYERS_H

#include <stdint.h>

#include "oombench/plugin.h"

/* What an autograd node keeps for backward besides the parameters. */
enum {
    OOMB_SAVES_INPUT = 1u << 0,  /* its input tensor */
    OOMB_SAVES_OUTPUT = 1u << 1, /* its output tensor */
    OOMB_SAVES_VIEW = 1u << 2    /* its output is a view of its input: no memory */
};

enum oomb_init {
    OOMB_INIT_NONE = 0,    /* no parameters */
    OOMB_INIT_UNIFORM = 1, /* every parameter U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
    OOMB_INIT_NORM = 2,    /* gamma (C) = 1, then beta (C) = 0 */
    OOMB_INIT_BODY = 3     /* a residual: its body's layers, in order */
};

struct oomb_layer_kind_info {
    enum oomb_layer_kind kind;
    const char *name;    /* as in scenario files: "linear", "conv2d", ... */
    const char *pytorch; /* the op it stands for: "torch.nn.Linear (addmm)" */
    const char *saved;   /* what that op's autograd node saves, in words */
    unsigned saves;      /* OOMB_SAVES_* of the layer's (first) node */
    enum oomb_init init;
};

/* The table entry of `kind`, or NULL for a kind this build does not know. */
const struct oomb_layer_kind_info *oomb_layer_kind_info(enum oomb_layer_kind kind);
/* Name of a layer kind ("linear", ...; "unknown"). */
const char *oomb_layer_kind_name(enum oomb_layer_kind kind);

/* Trained F32 parameters of layer L from its kind, features and attrs (the
 * layout in plugin.h), residual bodies summed; -1 when the count overflows
 * int64. */
int64_t oomb_layer_param_count(const struct oomb_layer *L);
/* F32 buffers (batch norm running statistics), bodies summed; -1 on overflow. */
int64_t oomb_layer_buffer_count(const struct oomb_layer *L);
/* The fan-in of OOMB_INIT_UNIFORM kinds (inputs per output: in/R for a
 * linear layer, C*K*K for a convolution, C for attention). */
int64_t oomb_layer_fan_in(const struct oomb_layer *L);

/* A linear layer's per-row shape: rows per sample, inputs, outputs. */
void oomb_linear_dims(const struct oomb_layer *L, int64_t *rows, int64_t *in, int64_t *out);
/* Elements of a linear layer's weight matrix (out x in per row). */
int64_t oomb_linear_weights(const struct oomb_layer *L);
/* Fills *L as a LINEAR layer in -> out (one row per sample), with bias. */
void oomb_layer_make_linear(struct oomb_layer *L, int64_t in, int64_t out);
/* Fills *L as an element-wise layer (RELU, GELU) of n features. */
void oomb_layer_make_activation(struct oomb_layer *L, enum oomb_layer_kind kind, int64_t n);

/* Geometry of a CONV2D / MAXPOOL layer from its attrs. */
void oomb_layer_conv2d(const struct oomb_layer *L, struct oomb_conv2d *cv);
void oomb_layer_pool2d(const struct oomb_layer *L, struct oomb_pool2d *p);

#endif
