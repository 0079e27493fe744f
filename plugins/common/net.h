/*
 * The parameter state of a sequential model for strategy plugins: one
 * contiguous buffer per kind (weights, grads, optimizer moments, batch norm
 * buffers), seeded from the host, and the optimizer update. The step itself
 * is the engine's (engine.h). Compiled into each plugin (a plugin links
 * nothing of the harness); every byte is allocated through host->alloc.
 *
 * Status returns follow plugin.h: OOMB_OK or an oomb_status with a message
 * in the caller's buffer.
 */
#ifndef OOMB_PLUGIN_NET_H
#define OOMB_PLUGIN_NET_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "layers.h"
#include "oombench/plugin.h"

enum {
    OOMB_NET_GRADS = 1u << 0,     /* allocate gradients (train) */
    OOMB_NET_OPTIMIZER = 1u << 1, /* allocate optimizer state (train) */
    OOMB_NET_NO_INIT = 1u << 2,   /* leave parameters uninitialised */
    OOMB_NET_NO_PARAMS = 1u << 3, /* lay out the parameters but allocate none (params NULL;
                                     buffers still): a strategy that stores them its own way */
    OOMB_NET_HOST_OPTIMIZER = 1u << 4 /* with OPTIMIZER: the optimizer state, an FP32 master
                                         copy of the parameters and a gradient buffer in pinned
                                         host memory; oomb_net_update copies the gradients
                                         there, updates on the host (host->host_ops) and copies
                                         the parameters back (ZeRO-Offload) */
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
    float *m, *v;    /* Adam moments (tag optimizer); SGD uses m for momentum; in host
                        memory with OOMB_NET_HOST_OPTIMIZER */
    float *host_params, *host_grads; /* OOMB_NET_HOST_OPTIMIZER: pinned host copies (tags
                                        weights, grads), else NULL */
    int64_t t;       /* updates done */
    int64_t total_buffers;
    int64_t *buf_offset; /* (n_layers) element offset of each layer's buffers */
    float *bufs;         /* (total_buffers) device, tag weights ("buffers"), or NULL */
};

/* Allocate (and unless OOMB_NET_NO_INIT, initialise from the host's seeded
 * parameters) a model's state. On failure everything allocated is freed and
 * the status (OOMB_ERR_OOM propagates) returned. Free with oomb_net_free. */
int oomb_net_init(struct oomb_net *n, const struct oomb_host *h, const struct oomb_model *model,
                  unsigned flags, char *msg, size_t msg_len);
void oomb_net_free(struct oomb_net *n);

/* Layer l's parameters (NULL for layers without parameters). */
float *oomb_net_weight(const struct oomb_net *n, int l);

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

/* Allocation helper: host->alloc of device memory with a message on
 * failure; oomb_net_alloc_in in any space. */
int oomb_net_alloc(const struct oomb_host *h, size_t bytes, enum oomb_tag tag, const char *label,
                   void **out, char *msg, size_t msg_len);
int oomb_net_alloc_in(const struct oomb_host *h, enum oomb_space space, size_t bytes,
                      enum oomb_tag tag, const char *label, void **out, char *msg,
                      size_t msg_len);

/* Formats a failed op's message, "<what>: <the ops' last error>"; returns rc. */
int oomb_op_error(const struct oomb_host *h, int rc, const char *what, char *msg, size_t msg_len);

/* snprintf into a message buffer (NULL/0 allowed). */
void oomb_msg(char *msg, size_t msg_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
