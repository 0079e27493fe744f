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
 * Memory (Ps, Pt parameters of student and teacher; B batch, K classes):
 *   weights     = 4*Pt (teacher) + 4*Ps (student)
 *   grads       = 4*Ps;  optimizer = 8*Ps (Adam) or 4*Ps (SGD)
 *   other       = 4B (labels)
 *   activations = the input (kept all step) plus the larger of the
 *     teacher's forward (no autograd state: each activation freed once the
 *     next layer has read it, as under torch.no_grad()) and the student's
 *     training step in the step engine, with the teacher's logits (4BK)
 *     and the student's logits (read again by the soft loss) alive from the
 *     loss until the soft gradients are in (docs/strategies/distill.md).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "net.h"

#define DISTILL_MAX_HIDDEN 16
#define DISTILL_SEED_SALT 0x64697374696c6cULL

struct distill_state {
    const struct oomb_host *h;
    const struct oomb_ext_distill *dx; /* the backend's soft-target loss (OOMB_EXT_DISTILL) */
    double T, alpha;
    int teacher_from_none;
    struct oomb_net teacher;
    struct oomb_net student;
    struct oomb_engine teacher_eng; /* forward only */
    struct oomb_engine eng;         /* the student's step, with the soft loss */
    float *tlogits;                 /* the teacher's logits of the current batch */
    double soft_sum, hard_sum;      /* the last step's loss sums */
    /* the student model */
    struct oomb_layer layers[2 * DISTILL_MAX_HIDDEN + 1];
    const struct oomb_layer *layer_ptrs[2 * DISTILL_MAX_HIDDEN + 1];
    struct oomb_model model;
    int64_t teacher_correct, teacher_total;
    double distill_loss;
    int64_t step;
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
        oomb_layer_make_linear(&s->layers[n++], in, out);
        if (i < n_hidden)
            oomb_layer_make_activation(&s->layers[n++], OOMB_LAYER_RELU, out);
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
    if (OOMB_HAS(h->info, dry_run))
        return OOMB_OK; /* no values to make */
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
    int rc = oomb_op_error(
        n->h, n->ops->to_device(n->k, n->params, host, (size_t)n->total_params * sizeof *host),
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
    oomb_engine_free(&s->eng);
    oomb_engine_free(&s->teacher_eng);
    oomb_net_free(&s->student);
    oomb_net_free(&s->teacher);
    free(s);
}

static const struct oomb_loss_hooks distill_hooks;

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
    const struct oomb_ext_distill *dx =
        OOMB_HAS(h, get_extension)
            ? h->get_extension(h->run, OOMB_EXT_DISTILL, OOMB_EXT_DISTILL_VERSION)
            : NULL;
    if (!dx) {
        oomb_msg(msg, msg_len,
                 "the %s backend has no distillation loss kernel (extension \"%s\" version %u "
                 "or later)",
                 h->ops->backend_name, OOMB_EXT_DISTILL, OOMB_EXT_DISTILL_VERSION);
        return OOMB_ERR_UNSUPPORTED;
    }
    struct distill_state *s = calloc(1, sizeof *s);
    if (!s) {
        oomb_msg(msg, msg_len, "out of host memory");
        return OOMB_ERR_OOM;
    }
    s->h = h;
    s->dx = dx;
    s->T = T;
    s->alpha = alpha;
    build_student(s, hidden, n_hidden);
    struct oomb_policy pol = {.hooks = &distill_hooks, .hooks_user = s};
    int rc;
    if ((rc = oomb_net_init(&s->teacher, h, h->info->model, OOMB_NET_NO_INIT, msg, msg_len)) ||
        (rc = init_teacher(s, msg, msg_len)) ||
        (rc =
             oomb_net_init(&s->student, h, &s->model,
                           OOMB_NET_GRADS | OOMB_NET_OPTIMIZER | OOMB_NET_NO_INIT, msg, msg_len)) ||
        (rc = init_student(s, msg, msg_len)) ||
        (rc = oomb_engine_init(&s->teacher_eng, &s->teacher, NULL, msg, msg_len)) ||
        (rc = oomb_engine_init(&s->eng, &s->student, &pol, msg, msg_len))) {
        distill_destroy(s);
        return rc;
    }
    h->report_metric(h->run, "teacher_from_none", s->teacher_from_none);
    h->report_metric(h->run, "teacher_weight_bytes", 4.0 * (double)s->teacher.total_params);
    h->report_metric(h->run, "student_weight_bytes", 4.0 * (double)s->student.total_params);
    *state = s;
    return OOMB_OK;
}

/* Before the student's forward: the teacher's logits of the batch. Batch
 * norm normalises with the batch's statistics: the reference run's running
 * statistics are not carried over. */
static int hook_begin(void *user, const void *x, const int32_t *y, int64_t count, char *msg,
                      size_t msg_len)
{
    struct distill_state *s = user;
    const struct oomb_host *h = s->h;
    int64_t correct = 0;
    int rc = oomb_engine_forward(&s->teacher_eng, x, count, OOMB_FWD_RECOMPUTE, &s->tlogits, msg,
                                 msg_len);
    if (rc == OOMB_OK)
        rc = oomb_op_error(
            h, h->ops->count_correct(h->ops->ctx, s->tlogits, y, count, s->model.classes, &correct),
            "count_correct (teacher)", msg, msg_len);
    if (rc == OOMB_OK && s->step >= h->info->warmup_steps) {
        s->teacher_correct += correct;
        s->teacher_total += count;
    }
    return rc;
}

/* After the hard loss's gradient: dlogits = (1 - alpha) of it plus the
 * soft targets' gradient. */
static int hook_loss(void *user, const float *logits, float *dlogits, int64_t count,
                     float grad_scale, double hard_sum, char *msg, size_t msg_len)
{
    struct distill_state *s = user;
    const struct oomb_host *h = s->h;
    const struct oomb_ops *o = h->ops;
    const struct oomb_ext_distill *dx = s->dx;
    const int64_t K = s->model.classes;
    float *soft = NULL;
    double sum = 0;
    int rc;
    if ((rc = oomb_net_alloc(h, (size_t)count * 4, OOMB_TAG_ACTIVATIONS, "soft losses",
                             (void **)&soft, msg, msg_len)) ||
        (rc = oomb_op_error(h, o->scale(o->ctx, dlogits, count * K, (float)(1.0 - s->alpha)),
                            "scale hard gradient", msg, msg_len)) ||
        (rc = oomb_op_error(h, o->zero(o->ctx, soft, (size_t)count * 4), "zero soft losses", msg,
                            msg_len)) ||
        (rc = oomb_op_error(h,
                            dx->soft_xent_accumulate(dx->ctx, soft, dlogits, logits, s->tlogits,
                                                     count, K, (float)s->T, (float)s->alpha,
                                                     grad_scale),
                            "soft_xent_accumulate", msg, msg_len)) ||
        (rc = oomb_op_error(h, o->sum(o->ctx, soft, count, &sum), "soft loss sum", msg, msg_len)))
        goto done;
    s->soft_sum += sum;
    s->hard_sum += hard_sum;
    h->free(h->run, s->tlogits); /* read for the last time */
    s->tlogits = NULL;
done:
    h->free(h->run, soft);
    return rc;
}

static void hook_end(void *user)
{
    struct distill_state *s = user;
    s->h->free(s->h->run, s->tlogits);
    s->tlogits = NULL;
}

static const struct oomb_loss_hooks distill_hooks = {hook_begin, hook_loss, hook_end};

static int distill_step(void *state, int64_t step, char *msg, size_t msg_len)
{
    struct distill_state *s = state;
    const int64_t B = s->h->info->batch;
    s->step = step;
    s->soft_sum = s->hard_sum = 0;
    int rc = oomb_engine_train_step(&s->eng, step, msg, msg_len);
    if (rc == OOMB_OK)
        s->distill_loss = ((1.0 - s->alpha) * s->hard_sum + s->soft_sum) / (double)B;
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
    return oomb_engine_evaluate(&s->eng, 0, msg, msg_len);
}

static const struct oomb_param_desc params[] = {
    {.struct_size = OOMB_PARAM_DESC_SIZE, .name = "student_hidden", .type = OOMB_PARAM_STRING,
     .default_value = "256", .unit = "features",
     .help = "hidden widths of the student MLP (ReLU between), comma-separated: \"256\" or "
             "\"128,64\""},
    {.struct_size = OOMB_PARAM_DESC_SIZE, .name = "temperature", .type = OOMB_PARAM_FLOAT,
     .default_value = "4", .unit = "",
     .help = "softmax temperature T of the soft targets; soft gradients are scaled by T^2",
     .bounds = OOMB_PARAM_MIN | OOMB_PARAM_MIN_OPEN, .min = 0},
    {.struct_size = OOMB_PARAM_DESC_SIZE, .name = "alpha", .type = OOMB_PARAM_FLOAT,
     .default_value = "0.5", .unit = "fraction",
     .help = "weight of the soft-target loss; the hard-label loss gets 1 - alpha",
     .bounds = OOMB_PARAM_MIN | OOMB_PARAM_MAX, .min = 0, .max = 1},
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
