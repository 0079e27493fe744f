/*
 * Strategy `distill`: knowledge distillation (Hinton et al. 2015). A smaller
 * student MLP is trained on the teacher's softened outputs plus the hard
 * labels; the memory saved is the difference between training the student
 * and training the scenario's model.
 *
 * Teacher: the scenario's model with the final weights of the scenario's
 * `none` run (host->reference_params). When they are not available (no
 * `none` in the scenario, or it failed) the teacher falls back to the seeded
 * initial weights with a warning, and metric "teacher_from_none" is 0
 * instead of 1: the run still measures memory and speed, but its soft
 * targets are noise. The teacher runs forward only, each activation freed as
 * soon as the next layer has used it.
 *
 * Student: linear(student_hidden[0]), relu, ..., linear(classes), all with
 * bias, its own parameters and optimizer state (the scenario's optimizer).
 * Initialisation, deterministic in the scenario seed: W and b of a layer with
 * `in` inputs uniform in [-1/sqrt(in), 1/sqrt(in)) (PyTorch's nn.Linear
 * default), from splitmix64 seeded with seed ^ 0x64697374696c6cULL ("distill"),
 * drawn layer by layer, W then b, in host memory and copied to the device.
 *
 * Loss, per sample, with ps = softmax(student / T), pt = softmax(teacher / T):
 *   (1 - alpha) * xent(student, label) + alpha * T^2 * KL(pt || ps)
 * (the T^2 keeps the soft gradients' scale independent of T). Reported loss:
 * the hard cross-entropy alone, mean over the batch, so that it compares with
 * none's; the full objective is metric "distill_loss" (last step).
 *
 * Memory, exactly (Ps, Pt parameters of student and teacher; f_l the
 * student's layer widths; B batch, K classes, f_in input features):
 *   weights     = 4*Pt (teacher) + 4*Ps (student)
 *   grads       = 4*Ps;  optimizer = 8*Ps (Adam) or 4*Ps (SGD)
 *   other       = 4B (labels)
 *   activations = 4B*f_in (input, kept all step) + the larger of
 *     teacher forward: 4B * max over teacher layers l of (out_l + in_l), without
 *                      in_l for the first layer (its input is the kept input);
 *     student:         4B * (sum_l f_l + K + 1)  (saved activations, probs, losses)
 *                      + 4B * max(2K + 1  (teacher logits, dlogits, soft losses),
 *                                 max over linear l of (f_l + in_l), without in_l
 *                                 for the first linear  (backward transient))
 * The teacher's logits live from its forward until the soft gradients are in.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "steps.h"

#define DISTILL_MAX_HIDDEN 16
#define DISTILL_SEED_SALT 0x64697374696c6cULL

struct distill_state {
    const struct oomb_host *h;
    double T, alpha;
    int teacher_from_none;
    struct oomb_net teacher;
    struct oomb_net student;
    /* the student model */
    struct oomb_layer layers[2 * DISTILL_MAX_HIDDEN + 1];
    const struct oomb_layer *layer_ptrs[2 * DISTILL_MAX_HIDDEN + 1];
    struct oomb_model model;
    int64_t teacher_correct, teacher_total;
    double distill_loss;
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1) with 24 random bits. */
static float uniform_pm1(uint64_t *x)
{
    return (float)(splitmix64(x) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

/* Parses "64" or "128,64" into widths; returns the count or -1. */
static int parse_hidden(const char *text, int64_t *out)
{
    int n = 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ')
            p++;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 1 || v > (1LL << 20) || n == DISTILL_MAX_HIDDEN)
            return -1;
        out[n++] = v;
        p = end;
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return n;
        if (*p != ',')
            return -1;
        p++;
    }
}

static void build_student(struct distill_state *s, const int64_t *hidden, int n_hidden)
{
    const struct oomb_model *tm = s->h->info->model;
    int n = 0;
    int64_t in = tm->input_features;
    for (int i = 0; i <= n_hidden; i++) {
        int64_t out = i < n_hidden ? hidden[i] : tm->classes;
        struct oomb_layer *L = &s->layers[n++];
        L->struct_size = sizeof *L;
        L->kind = OOMB_LAYER_LINEAR;
        L->in_features = in;
        L->out_features = out;
        L->has_bias = 1;
        L->n_params = out * in + out;
        if (i < n_hidden) {
            struct oomb_layer *R = &s->layers[n++];
            R->struct_size = sizeof *R;
            R->kind = OOMB_LAYER_RELU;
            R->in_features = R->out_features = out;
        }
        in = out;
    }
    for (int l = 0; l < n; l++)
        s->layer_ptrs[l] = &s->layers[l];
    s->model.struct_size = sizeof s->model;
    s->model.n_layers = n;
    s->model.layers = s->layer_ptrs;
    s->model.input_features = tm->input_features;
    s->model.classes = tm->classes;
}

static int init_student(struct distill_state *s, char *msg, size_t msg_len)
{
    const struct oomb_host *h = s->h;
    struct oomb_net *n = &s->student;
    float *host = malloc((size_t)n->total_params * sizeof *host);
    if (!host) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    uint64_t rng = h->info->seed ^ DISTILL_SEED_SALT;
    for (int l = 0; l < s->model.n_layers; l++) {
        const struct oomb_layer *L = s->model.layers[l];
        float bound = 1.0f / sqrtf((float)L->in_features);
        for (int64_t i = 0; i < L->n_params; i++)
            host[n->offset[l] + i] = bound * uniform_pm1(&rng);
    }
    int rc = oomb_net_op_error(
        n, n->ops->to_device(n->k, n->params, host, (size_t)n->total_params * sizeof *host),
        "student init", msg, msg_len);
    free(host);
    return rc;
}

/* The teacher's weights: none's final ones, else the seeded initial ones. */
static int init_teacher(struct distill_state *s, char *msg, size_t msg_len)
{
    const struct oomb_host *h = s->h;
    const struct oomb_model *m = h->info->model;
    struct oomb_net *n = &s->teacher;
    s->teacher_from_none = 1;
    for (int l = 0; l < m->n_layers && s->teacher_from_none; l++)
        if (m->layers[l]->n_params && h->reference_params(h->run, l, oomb_net_weight(n, l)))
            s->teacher_from_none = 0;
    if (s->teacher_from_none)
        return OOMB_OK;
    h->log(h->run, OOMB_LOG_WARN,
           "no trained weights from a `none` run of this scenario: the teacher uses the "
           "seeded initial weights (metric teacher_from_none = 0)");
    for (int l = 0; l < m->n_layers; l++)
        if (m->layers[l]->n_params && h->init_params(h->run, l, oomb_net_weight(n, l))) {
            oomb_msg(msg, msg_len, "teacher layer %d: host init_params failed", l + 1);
            return OOMB_ERR_INTERNAL;
        }
    return OOMB_OK;
}

static void distill_destroy(void *state)
{
    struct distill_state *s = state;
    if (!s)
        return;
    oomb_net_free(&s->student);
    oomb_net_free(&s->teacher);
    free(s);
}

static int distill_create(const struct oomb_host *h, void **state, char *msg, size_t msg_len)
{
    const char *hidden_text = NULL;
    int64_t hidden[DISTILL_MAX_HIDDEN];
    double T, alpha;
    if (h->param_str(h->run, "student_hidden", &hidden_text) != OOMB_OK)
        hidden_text = "";
    int n_hidden = parse_hidden(hidden_text, hidden);
    if (n_hidden < 0) {
        oomb_msg(msg, msg_len,
                 "parameter student_hidden '%s': expected 1 to %d comma-separated widths in "
                 "[1, 1048576], e.g. \"256\" or \"128,64\"",
                 hidden_text, DISTILL_MAX_HIDDEN);
        return OOMB_ERR_INVALID;
    }
    if (h->param_float(h->run, "temperature", &T) != OOMB_OK || !(T > 0.0) || !isfinite(T)) {
        oomb_msg(msg, msg_len, "parameter temperature must be a positive number");
        return OOMB_ERR_INVALID;
    }
    if (h->param_float(h->run, "alpha", &alpha) != OOMB_OK || !(alpha >= 0.0 && alpha <= 1.0)) {
        oomb_msg(msg, msg_len, "parameter alpha must be a number in [0, 1]");
        return OOMB_ERR_INVALID;
    }
    struct distill_state *s = calloc(1, sizeof *s);
    if (!s) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    s->h = h;
    s->T = T;
    s->alpha = alpha;
    build_student(s, hidden, n_hidden);
    int rc;
    if ((rc = oomb_net_init(&s->teacher, h, h->info->model, OOMB_NET_NO_INIT, msg, msg_len)) ||
        (rc = init_teacher(s, msg, msg_len)) ||
        (rc =
             oomb_net_init(&s->student, h, &s->model,
                           OOMB_NET_GRADS | OOMB_NET_OPTIMIZER | OOMB_NET_NO_INIT, msg, msg_len)) ||
        (rc = init_student(s, msg, msg_len))) {
        distill_destroy(s);
        return rc;
    }
    h->report_metric(h->run, "teacher_from_none", s->teacher_from_none);
    h->report_metric(h->run, "teacher_weight_bytes", 4.0 * (double)s->teacher.total_params);
    h->report_metric(h->run, "student_weight_bytes", 4.0 * (double)s->student.total_params);
    *state = s;
    return OOMB_OK;
}

/* Teacher logits (B, K) for input x, each activation freed once used; the
 * caller frees *logits. */
static int teacher_forward(struct distill_state *s, const float *x, float **logits, char *msg,
                           size_t msg_len)
{
    const struct oomb_host *h = s->h;
    const struct oomb_model *m = h->info->model;
    const int64_t B = h->info->batch;
    float *cur = NULL;
    const float *in = x;
    int rc = OOMB_OK;
    for (int l = 0; l < m->n_layers; l++) {
        float *out;
        size_t bytes = oomb_net_act_bytes(&s->teacher, l, B);
        if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_ACTIVATIONS, "teacher activation",
                                 (void **)&out, msg, msg_len)))
            break;
        /* Batch norm normalises with the batch's statistics: the reference
         * run's running statistics are not carried over. */
        rc = oomb_net_forward(&s->teacher, l, out, in, B, OOMB_FWD_RECOMPUTE, msg, msg_len);
        h->free(h->run, cur);
        cur = out;
        in = out;
        if (rc)
            break;
    }
    if (rc) {
        h->free(h->run, cur);
        return rc;
    }
    *logits = cur;
    return OOMB_OK;
}

static int distill_step(void *state, int64_t step, char *msg, size_t msg_len)
{
    struct distill_state *s = state;
    const struct oomb_host *h = s->h;
    const struct oomb_model *m = &s->model;
    struct oomb_net *n = &s->student;
    const int L = m->n_layers;
    const int64_t B = h->info->batch, K = m->classes;
    const float a = (float)s->alpha;
    int rc = OOMB_OK;
    float *x = NULL, *tlogits = NULL, *probs = NULL, *losses = NULL, *soft = NULL, *dcur = NULL;
    int32_t *y = NULL;
    float *acts[2 * DISTILL_MAX_HIDDEN + 1] = {0};

    h->phase(h->run, OOMB_PHASE_OTHER);
    if ((rc = oomb_net_alloc(h, (size_t)(B * m->input_features) * 4, OOMB_TAG_ACTIVATIONS, "input",
                             (void **)&x, msg, msg_len)) ||
        (rc =
             oomb_net_alloc(h, (size_t)B * 4, OOMB_TAG_OTHER, "labels", (void **)&y, msg, msg_len)))
        goto done;
    if ((rc = h->load_batch(h->run, step, 0, B, x, y))) {
        oomb_msg(msg, msg_len, "load_batch failed");
        goto done;
    }

    h->phase(h->run, OOMB_PHASE_FORWARD);
    if ((rc = teacher_forward(s, x, &tlogits, msg, msg_len)))
        goto done;
    int64_t tcorrect = 0;
    if ((rc = oomb_net_op_error(n, n->ops->count_correct(n->k, tlogits, y, B, K, &tcorrect),
                                "count_correct (teacher)", msg, msg_len)))
        goto done;
    if (step >= h->info->warmup_steps) {
        s->teacher_correct += tcorrect;
        s->teacher_total += B;
    }
    const float *in = x;
    for (int l = 0; l < L; l++) {
        size_t bytes = oomb_net_act_bytes(n, l, B);
        if ((rc = oomb_net_alloc(h, bytes, OOMB_TAG_ACTIVATIONS, "activation", (void **)&acts[l],
                                 msg, msg_len)))
            goto done;
        if ((rc = oomb_net_forward(n, l, acts[l], in, B, OOMB_FWD_TRAIN, msg, msg_len)))
            goto done;
        in = acts[l];
    }
    if ((rc = oomb_net_alloc(h, (size_t)(B * K) * 4, OOMB_TAG_ACTIVATIONS, "probs", (void **)&probs,
                             msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)B * 4, OOMB_TAG_ACTIVATIONS, "losses", (void **)&losses,
                             msg, msg_len)))
        goto done;
    if ((rc = oomb_net_op_error(
             n, n->ops->softmax_xent_forward(n->k, losses, probs, acts[L - 1], y, B, K),
             "softmax_xent_forward", msg, msg_len)))
        goto done;
    int64_t correct = 0;
    if ((rc = oomb_net_op_error(n, n->ops->count_correct(n->k, acts[L - 1], y, B, K, &correct),
                                "count_correct", msg, msg_len)))
        goto done;
    double hard;
    if ((rc = oomb_net_mean_loss(n, losses, B, &hard, msg, msg_len)))
        goto done;
    h->report_loss(h->run, step, hard);
    h->report_accuracy(h->run, correct, B);

    h->phase(h->run, OOMB_PHASE_BACKWARD);
    if ((rc = oomb_net_zero_grads(n, msg, msg_len)))
        goto done;
    if ((rc = oomb_net_alloc(h, (size_t)(B * K) * 4, OOMB_TAG_ACTIVATIONS, "dlogits",
                             (void **)&dcur, msg, msg_len)) ||
        (rc = oomb_net_alloc(h, (size_t)B * 4, OOMB_TAG_ACTIVATIONS, "soft losses", (void **)&soft,
                             msg, msg_len)))
        goto done;
    if ((rc = oomb_net_op_error(
             n, n->ops->softmax_xent_backward(n->k, dcur, probs, y, B, K, (1.0f - a) / (float)B),
             "softmax_xent_backward", msg, msg_len)) ||
        (rc = oomb_net_op_error(n, n->ops->zero(n->k, soft, (size_t)B * 4), "zero soft losses", msg,
                                msg_len)) ||
        (rc = oomb_net_op_error(n,
                                n->ops->soft_xent_accumulate(n->k, soft, dcur, acts[L - 1], tlogits,
                                                             B, K, (float)s->T, a, 1.0f / (float)B),
                                "soft_xent_accumulate", msg, msg_len)))
        goto done;
    double soft_mean;
    if ((rc = oomb_net_mean_loss(n, soft, B, &soft_mean, msg, msg_len)))
        goto done;
    s->distill_loss = (1.0 - s->alpha) * hard + soft_mean;
    h->free(h->run, soft);
    soft = NULL;
    h->free(h->run, tlogits);
    tlogits = NULL;
    for (int l = L - 1; l >= 0; l--) {
        if ((rc = oomb_net_backward_step(n, l, &dcur, l > 0 ? acts[l - 1] : x, acts[l], B, msg,
                                          msg_len)))
            goto done;
    }

    h->phase(h->run, OOMB_PHASE_UPDATE);
    rc = oomb_net_update(n, msg, msg_len);

done:
    h->free(h->run, dcur);
    for (int l = 0; l < L; l++)
        h->free(h->run, acts[l]);
    h->free(h->run, soft);
    h->free(h->run, tlogits);
    h->free(h->run, probs);
    h->free(h->run, losses);
    h->free(h->run, x);
    h->free(h->run, y);
    return rc;
}

static int distill_finish(void *state, char *msg, size_t msg_len)
{
    struct distill_state *s = state;
    const struct oomb_host *h = s->h;
    if (s->teacher_total > 0)
        h->report_metric(h->run, "teacher_accuracy",
                         (double)s->teacher_correct / (double)s->teacher_total);
    h->report_metric(h->run, "distill_loss", s->distill_loss);
    return OOMB_OK;
}

static int distill_evaluate(void *state, char *msg, size_t msg_len)
{
    struct distill_state *s = state;
    /* the student is what this strategy deploys */
    return oomb_step_evaluate(s->h, &s->student, 0, NULL, NULL, msg, msg_len);
}

static const struct oomb_param_desc params[] = {
    {"student_hidden", OOMB_PARAM_STRING, "256", "features",
     "hidden widths of the student MLP (ReLU between), comma-separated: \"256\" or \"128,64\""},
    {"temperature", OOMB_PARAM_FLOAT, "4", "",
     "softmax temperature T of the soft targets (> 0); soft gradients are scaled by T^2"},
    {"alpha", OOMB_PARAM_FLOAT, "0.5", "fraction",
     "weight of the soft-target loss in [0, 1]; the hard-label loss gets 1 - alpha"},
};

static const struct oomb_plugin descriptor = {
    .struct_size = sizeof(struct oomb_plugin),
    .abi_major = OOMB_ABI_MAJOR,
    .abi_minor = OOMB_ABI_MINOR,
    .name = "distill",
    .description = "Knowledge distillation: a smaller student MLP trained on the soft targets "
                   "of the none run's trained model",
    .modes = OOMB_MODE_TRAIN,
    .backends = OOMB_BACKEND_CPU | OOMB_BACKEND_CUDA,
    .params = params,
    .n_params = (int)(sizeof params / sizeof params[0]),
    .create = distill_create,
    .step = distill_step,
    .finish = distill_finish,
    .destroy = distill_destroy,
    .evaluate = distill_evaluate,
};

OOMB_EXPORT const struct oomb_plugin *OOMB_PLUGIN_ENTRY(void)
{
    return &descriptor;
}
