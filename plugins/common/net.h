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

/* How a forward pass treats batch norm: training (batch statistics, running
 * statistics updated), recomputation for backward (batch statistics, running
 * statistics untouched) or evaluation (running statistics). */
enum oomb_fwd_mode { OOMB_FWD_TRAIN = 0, OOMB_FWD_RECOMPUTE = 1, OOMB_FWD_EVAL = 2 };

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
    int64_t total_buffers;
    int64_t *buf_offset; /* (n_layers) element offset of each layer's buffers */
    float *bufs;         /* (total_buffers) device, tag weights ("buffers"), or NULL */
    void *ws;            /* workspace of conv2d / attention ops (tag workspace), grown on demand */
    size_t ws_bytes;
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

/*
 * A layer's activation buffer: its output (B, out_l) followed by what its
 * backward needs besides its input (batch norm and layer norm statistics,
 * attention's qkv, probabilities and head outputs, a residual body's
 * intermediate activations). oomb_net_act_bytes is its size for a batch of
 * B; layers with nothing saved need exactly 4 * B * out_l bytes.
 */
size_t oomb_net_act_bytes(const struct oomb_net *n, int l, int64_t B);
/* The same for any layer (the saved part alone: oomb_layer_saved_floats). */
int64_t oomb_layer_saved_floats(const struct oomb_layer *L, int64_t B);

/* act (oomb_net_act_bytes) = layer l applied to in (B, in_l), F32. Batch
 * norm follows `mode`. */
int oomb_net_forward(struct oomb_net *n, int l, float *act, const float *in, int64_t B,
                     enum oomb_fwd_mode mode, char *msg, size_t msg_len);
/* Backward of layer l after a forward in mode TRAIN or RECOMPUTE: parameter
 * gradients accumulate; din (B, in_l) is overwritten (NULL: not needed);
 * `act` is what the forward wrote. For element-wise layers (relu, gelu,
 * flatten) din may equal dout; dout may be overwritten. Temporary buffers
 * come from host->alloc (tag activations) and are freed before returning. */
int oomb_net_backward(struct oomb_net *n, int l, float *din, float *dout, const float *in,
                      const float *act, int64_t B, char *msg, size_t msg_len);

/* One layer of a backward pass that keeps only the running activation
 * gradient. On entry *dcur is the gradient of layer l's output (B, out_l);
 * on return it is the gradient of its input (B, in_l): computed in place for
 * activation layers, else into a new buffer (tag activations) after which
 * the old one is freed; layer 0 computes no input gradient (*dcur becomes
 * NULL, the old buffer freed). `in` is layer l's input. Parameter gradients
 * accumulate. On failure *dcur is unchanged and still the caller's. */
int oomb_net_backward_step(struct oomb_net *n, int l, float **dcur, const float *in,
                           const float *act, int64_t B, char *msg, size_t msg_len);

/* Layer l without parameters (relu, gelu, flatten, maxpool) for code that
 * has no net: out (B, out_l) from in. Returns OOMB_ERR_NOT_APPLICABLE for a
 * layer with parameters or saved state. */
int oomb_layer_forward_bare(const struct oomb_host *h, int l, float *out, const float *in,
                            int64_t B, char *msg, size_t msg_len);

/* A linear layer's per-row shape: rows per sample, inputs, outputs. */
void oomb_linear_dims(const struct oomb_layer *L, int64_t *rows, int64_t *in, int64_t *out);
/* Elements of a linear layer's weight matrix (out x in per row). */
int64_t oomb_linear_weights(const struct oomb_layer *L);
/* Name of a layer kind ("linear", "conv2d", ...). */
const char *oomb_layer_kind_name(enum oomb_layer_kind kind);
/* For strategies that replace only linear layers: OOMB_OK when every
 * top-level layer with parameters (or buffers) is LINEAR, else
 * OOMB_ERR_NOT_APPLICABLE with "<what>; layer N (<kind>) has parameters and
 * no such kernel" in msg. */
int oomb_net_require_linear_params(const struct oomb_model *model, const char *what, char *msg,
                                   size_t msg_len);

/* Zero all gradients. */
int oomb_net_zero_grads(struct oomb_net *n, char *msg, size_t msg_len);
/* One optimizer step over all parameters (the run's optimizer and settings). */
int oomb_net_update(struct oomb_net *n, char *msg, size_t msg_len);

/* Largest per-sample feature count over the input and all layer outputs. */
int64_t oomb_net_max_features(const struct oomb_model *model);
/* Whether layer l is element-wise (relu, gelu, flatten: backward in place). */
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
