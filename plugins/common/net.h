/*
 * Shared model code for strategy plugins: parameters of a sequential model
 * in one contiguous buffer per kind (weights, grads, optimizer moments), and
 * per-layer forward/backward dispatch onto the host's kernel ops. Compiled
 * into each plugin (a plugin links nothing of the harness); every byte is
 * allocated through host->alloc.
 *
 * Status returns follow plugin.h: OOMB_OK or an oomb_status with a message
 * in the caller's buffer.
 */
#ifndef OOMB_PLUGIN_NET_H
#define OOMB_PLUGIN_NET_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "oombench/plugin.h"

enum {
    OOMB_NET_GRADS = 1u << 0,     /* allocate gradients (train) */
    OOMB_NET_OPTIMIZER = 1u << 1, /* allocate optimizer state (train) */
    OOMB_NET_NO_INIT = 1u << 2    /* leave parameters uninitialised */
};

struct oomb_net {
    const struct oomb_host *h;
    const struct oomb_ops *ops;
    void *k;
    const struct oomb_model *model;
    int n_layers;
    int64_t total_params;
    int64_t *offset; /* (n_layers) element offset of each layer's params */
    float *params;   /* (total_params) device, tag weights */
    float *grads;    /* (total_params) device, tag grads, or NULL */
    float *m, *v;    /* Adam moments (tag optimizer); SGD uses m for momentum */
    int64_t t;       /* updates done */
};

/* Allocate (and unless OOMB_NET_NO_INIT, initialise from the host's seeded
 * parameters) a model's state. On failure everything allocated is freed and
 * the status (OOMB_ERR_OOM propagates) returned. Free with oomb_net_free. */
int oomb_net_init(struct oomb_net *n, const struct oomb_host *h, const struct oomb_model *model,
                  unsigned flags, char *msg, size_t msg_len);
void oomb_net_free(struct oomb_net *n);

/* Layer l's parameter pointers (NULL for layers without parameters). */
float *oomb_net_weight(const struct oomb_net *n, int l);
float *oomb_net_bias(const struct oomb_net *n, int l); /* NULL without bias */
float *oomb_net_dweight(const struct oomb_net *n, int l);
float *oomb_net_dbias(const struct oomb_net *n, int l);

/* out (B, out_l) = layer l applied to in (B, in_l), F32. */
int oomb_net_forward(struct oomb_net *n, int l, float *out, const float *in, int64_t B, char *msg,
                     size_t msg_len);
/* Backward of layer l: parameter gradients accumulate; din (B, in_l) is
 * overwritten (NULL: not needed). For activation layers din may equal dout. */
int oomb_net_backward(struct oomb_net *n, int l, float *din, float *dout, const float *in,
                      int64_t B, char *msg, size_t msg_len);

/* One layer of a backward pass that keeps only the running activation
 * gradient. On entry *dcur is the gradient of layer l's output (B, out_l);
 * on return it is the gradient of its input (B, in_l): computed in place for
 * activation layers, else into a new buffer (tag activations) after which
 * the old one is freed; layer 0 computes no input gradient (*dcur becomes
 * NULL, the old buffer freed). `in` is layer l's input. Parameter gradients
 * accumulate. On failure *dcur is unchanged and still the caller's. */
int oomb_net_backward_step(struct oomb_net *n, int l, float **dcur, const float *in, int64_t B,
                           char *msg, size_t msg_len);

/* Zero all gradients. */
int oomb_net_zero_grads(struct oomb_net *n, char *msg, size_t msg_len);
/* One optimizer step over all parameters (the run's optimizer and settings). */
int oomb_net_update(struct oomb_net *n, char *msg, size_t msg_len);

/* Largest per-sample feature count over the input and all layer outputs. */
int64_t oomb_net_max_features(const struct oomb_model *model);
/* Whether layer l is an element-wise activation (may run in place). */
int oomb_net_is_elementwise(const struct oomb_model *model, int l);

/* Allocation helper: host->alloc with a message on failure. */
int oomb_net_alloc(const struct oomb_host *h, size_t bytes, enum oomb_tag tag, const char *label,
                   void **out, char *msg, size_t msg_len);

/* Formats a failed op's message: "<what>: <ops last error>". Returns rc. */
int oomb_net_op_error(const struct oomb_net *n, int rc, const char *what, char *msg,
                      size_t msg_len);

/* Mean loss over B samples from per-sample losses (device), synchronising. */
int oomb_net_mean_loss(struct oomb_net *n, const float *losses, int64_t B, double *mean, char *msg,
                       size_t msg_len);

/* snprintf into a message buffer (NULL/0 allowed). */
void oomb_msg(char *msg, size_t msg_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
