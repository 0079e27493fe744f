/*
 * Scenario files: libyaml loads the file into a node tree (nodes carry their
 * line and column), and the walkers below turn it into a validated
 * `struct oomb_scenario`. Strict on purpose: unknown keys, duplicate keys and
 * wrong types are errors, and every error names file:line:column and the key,
 * so a typo in a nightly scenario fails loudly instead of running the wrong
 * thing. The format is documented in docs/scenario-format.md.
 */
#include "scenario.h"

#include "layers.h"
#include "check.h"
#include "data.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

/* Defaults (documented in docs/scenario-format.md). */
#define DEF_SEED 42
#define DEF_ADAM_LR 1e-3
#define DEF_SGD_LR 0.01
#define DEF_MOMENTUM 0.9
#define DEF_BETA1 0.9
#define DEF_BETA2 0.999
#define DEF_EPS 1e-8
#define DEF_WARMUP 1
#define DEF_MEASURED 5
#define DEF_TIMEOUT_S 300.0
#define FMNIST_CLASSES 10
#define MAX_EPOCHS 1e6

struct ctx {
    const char *file; /* sc->path */
    yaml_document_t *doc;
    struct oomb_scenario *sc;
    char *err;
    size_t err_len;
    int status;                               /* first error wins */
    yaml_node_t *model_input, *model_classes; /* for later checks against the input */
    int nested_used, nested_cap;              /* of sc->nested_storage */
    const char *who; /* when set, messages start with it ("layer 3 (conv2d)") */
    yaml_node_t *batch, *steps_key, *eval, *layers; /* for check_run_sizes() */
};

/* A key a mapping may hold, and what was found for it. */
struct field {
    const char *name;
    yaml_node_t *key; /* NULL when absent */
    yaml_node_t *val;
};

/* ------------------------------------------------------------ errors ---- */

static int verr_at(struct ctx *c, int line, int col, const char *key, const char *fmt, va_list ap)
{
    if (c->status == OOMB_OK) {
        c->status = OOMB_ERR_PARSE;
        if (c->err != NULL && c->err_len > 0) {
            int n;
            if (key != NULL && c->who != NULL)
                n = snprintf(c->err, c->err_len, "%s:%d:%d: key '%s': %s: ", c->file, line, col,
                             key, c->who);
            else if (key != NULL)
                n = snprintf(c->err, c->err_len, "%s:%d:%d: key '%s': ", c->file, line, col, key);
            else
                n = snprintf(c->err, c->err_len, "%s:%d:%d: ", c->file, line, col);
            if (n >= 0 && (size_t)n < c->err_len)
                vsnprintf(c->err + n, c->err_len - (size_t)n, fmt, ap);
        }
    }
    return c->status;
}

static int err_at(struct ctx *c, const yaml_node_t *n, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int err_at(struct ctx *c, const yaml_node_t *n, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int line = n != NULL ? (int)n->start_mark.line + 1 : 1;
    int col = n != NULL ? (int)n->start_mark.column + 1 : 1;
    int rc = verr_at(c, line, col, key, fmt, ap);
    va_end(ap);
    return rc;
}

static int err_oom(struct ctx *c)
{
    if (c->status == OOMB_OK) {
        c->status = OOMB_ERR_OOM;
        if (c->err != NULL && c->err_len > 0)
            snprintf(c->err, c->err_len, "%s: out of memory", c->file);
    }
    return c->status;
}

/* ------------------------------------------------------------ nodes ----- */

static yaml_node_t *node(struct ctx *c, int id)
{
    return yaml_document_get_node(c->doc, id);
}

static const char *text(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static int is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = text(n);
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static int is_scalar(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && !is_null(n);
}

/* "a sequence", "a mapping", "nothing (null)" or the scalar quoted. */
static const char *describe(const yaml_node_t *n, char *buf, size_t len)
{
    switch (n->type) {
    case YAML_SEQUENCE_NODE:
        return "a sequence";
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SCALAR_NODE:
        if (is_null(n))
            return "nothing (null)";
        if (n->data.scalar.length > 40)
            snprintf(buf, len, "'%.37s...'", text(n));
        else
            snprintf(buf, len, "'%s'", text(n));
        return buf;
    default:
        return "nothing";
    }
}

static int err_type(struct ctx *c, const yaml_node_t *n, const char *key, const char *expected)
{
    char buf[64];
    return err_at(c, n, key, "expected %s, got %s", expected, describe(n, buf, sizeof buf));
}

static void join(char *buf, size_t len, const char *path, const char *name)
{
    if (path == NULL || path[0] == '\0')
        snprintf(buf, len, "%s", name);
    else
        snprintf(buf, len, "%s.%s", path, name);
}

/* Matches the keys of mapping `map` (at `path`) against `f`: unknown and
 * duplicate keys are errors. Absent keys leave f[i].val NULL. */
static int read_map(struct ctx *c, yaml_node_t *map, const char *path, struct field *f, int nf)
{
    char key[160];
    for (int i = 0; i < nf; i++)
        f[i].key = f[i].val = NULL;
    if (map->type != YAML_MAPPING_NODE)
        return err_type(c, map, path, "a mapping");
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node(c, p->key), *v = node(c, p->value);
        if (k->type != YAML_SCALAR_NODE)
            return err_at(c, k, path[0] ? path : "(top level)", "keys must be plain names, got %s",
                          k->type == YAML_MAPPING_NODE ? "a mapping" : "a sequence");
        const char *name = text(k);
        join(key, sizeof key, path, name);
        int found = -1;
        for (int i = 0; i < nf; i++)
            if (strcmp(f[i].name, name) == 0)
                found = i;
        if (found < 0) {
            char expected[512];
            size_t off = 0;
            expected[0] = '\0';
            for (int i = 0; i < nf && off < sizeof expected; i++) {
                int n = snprintf(expected + off, sizeof expected - off, "%s%s", i ? ", " : "",
                                 f[i].name);
                if (n < 0)
                    break;
                off += (size_t)n;
            }
            if (path[0] == '\0')
                return err_at(c, k, key, "unknown top-level key '%s'; expected one of: %s", name,
                              expected);
            return err_at(c, k, key, "unknown key '%s' in '%s'; expected one of: %s", name, path,
                          expected);
        }
        if (f[found].key != NULL)
            return err_at(c, k, key, "duplicate key '%s' (first at line %d, column %d)", name,
                          (int)f[found].key->start_mark.line + 1,
                          (int)f[found].key->start_mark.column + 1);
        f[found].key = k;
        f[found].val = v;
    }
    return OOMB_OK;
}

/* ------------------------------------------------------------ scalars --- */

/* Integer in [min, INT64_MAX]; min is 0 or 1. */
static int get_int(struct ctx *c, const yaml_node_t *n, const char *key, int64_t min, int64_t *out)
{
    const char *what = min >= 1 ? "a positive integer" : "a non-negative integer";
    if (!is_scalar(n))
        return err_type(c, n, key, what);
    const char *s = text(n);
    if (s[0] == '-' && isdigit((unsigned char)s[1])) {
        size_t i = 1;
        while (isdigit((unsigned char)s[i]))
            i++;
        if (s[i] == '\0')
            return err_at(c, n, key, "expected %s, got a negative number %s", what, s);
    }
    size_t i = s[0] == '+' ? 1 : 0;
    if (!isdigit((unsigned char)s[i]))
        return err_type(c, n, key, what);
    uint64_t v = 0;
    int overflow = 0;
    for (; isdigit((unsigned char)s[i]); i++) {
        if (v > ((uint64_t)INT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            overflow = 1;
        else
            v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (s[i] != '\0')
        return err_type(c, n, key, what);
    if (overflow)
        return err_at(c, n, key, "%s is too large: it does not fit in a signed 64-bit integer", s);
    if ((int64_t)v < min)
        return err_at(c, n, key, "expected %s, got %s", what, s);
    *out = (int64_t)v;
    return OOMB_OK;
}

/* A decimal number: [+-]digits[.digits][e[+-]digits]; no hex, inf or nan. */
static int parse_real(const char *s, double *out, size_t *used)
{
    size_t i = 0;
    int digits = 0;
    if (s[i] == '+' || s[i] == '-')
        i++;
    while (isdigit((unsigned char)s[i])) {
        i++;
        digits++;
    }
    if (s[i] == '.') {
        i++;
        while (isdigit((unsigned char)s[i])) {
            i++;
            digits++;
        }
    }
    if (digits == 0)
        return -1;
    if (s[i] == 'e' || s[i] == 'E') {
        size_t e = i + 1;
        if (s[e] == '+' || s[e] == '-')
            e++;
        if (!isdigit((unsigned char)s[e]))
            return -1;
        while (isdigit((unsigned char)s[e]))
            e++;
        i = e;
    }
    char buf[128];
    if (i >= sizeof buf)
        return -1;
    memcpy(buf, s, i);
    buf[i] = '\0';
    errno = 0;
    double v = strtod(buf, NULL);
    if (!isfinite(v))
        return -1;
    *out = v;
    *used = i;
    return 0;
}

static int get_real(struct ctx *c, const yaml_node_t *n, const char *key, double *out)
{
    size_t used = 0;
    if (!is_scalar(n) || parse_real(text(n), out, &used) != 0 || text(n)[used] != '\0')
        return err_type(c, n, key, "a number");
    return OOMB_OK;
}

static int get_bool(struct ctx *c, const yaml_node_t *n, const char *key, int *out)
{
    if (is_scalar(n)) {
        const char *s = text(n);
        if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0) {
            *out = 1;
            return OOMB_OK;
        }
        if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0) {
            *out = 0;
            return OOMB_OK;
        }
    }
    return err_type(c, n, key, "true or false");
}

static int get_str(struct ctx *c, const yaml_node_t *n, const char *key, const char **out)
{
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return err_type(c, n, key, "a string");
    *out = text(n);
    return OOMB_OK;
}

static int dup_str(struct ctx *c, const char *s, char **out)
{
    *out = strdup(s);
    return *out != NULL ? OOMB_OK : err_oom(c);
}

static struct oomb_src_loc loc_of(struct ctx *c, const yaml_node_t *n)
{
    return (struct oomb_src_loc){.file = c->sc->path,
                                 .line = (int)n->start_mark.line + 1,
                                 .col = (int)n->start_mark.column + 1};
}

/* [A-Za-z_][A-Za-z0-9_]*, at most OOMB_SCENARIO_MAX_NAME characters. */
static int is_ident(const char *s)
{
    if (!isalpha((unsigned char)s[0]) && s[0] != '_')
        return 0;
    size_t i = 1;
    for (; s[i] && i <= OOMB_SCENARIO_MAX_NAME; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return 0;
    return i <= OOMB_SCENARIO_MAX_NAME;
}

/* [a-z0-9_]+, at most OOMB_SCENARIO_MAX_NAME characters. */
static int is_plugin_name(const char *s)
{
    if (s[0] == '\0')
        return 0;
    size_t i = 0;
    for (; s[i] && i <= OOMB_SCENARIO_MAX_NAME; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_')
            return 0;
    return i <= OOMB_SCENARIO_MAX_NAME;
}

/* ------------------------------------------------------- public parsers - */

static int strcase_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return 0;
    return *a == *b;
}

int oomb_parse_bytes(const char *text_in, uint64_t *out)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {
        {"", 1},
        {"B", 1},
        {"KB", 1000ull},
        {"MB", 1000ull * 1000},
        {"GB", 1000ull * 1000 * 1000},
        {"TB", 1000ull * 1000 * 1000 * 1000},
        {"KiB", 1ull << 10},
        {"MiB", 1ull << 20},
        {"GiB", 1ull << 30},
        {"TiB", 1ull << 40},
    };
    if (text_in == NULL || out == NULL)
        return OOMB_ERR_PARSE;
    const char *s = text_in;
    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s) && *s != '.')
        return OOMB_ERR_PARSE; /* also rejects signs: sizes are never negative */

    /* Number part: an exact integer when it is one, else a decimal. */
    size_t n_digits = 0;
    while (isdigit((unsigned char)s[n_digits]))
        n_digits++;
    int is_integer = s[n_digits] != '.' && s[n_digits] != 'e' && s[n_digits] != 'E';
    uint64_t whole = 0;
    double real = 0;
    size_t used;
    if (is_integer) {
        for (size_t i = 0; i < n_digits; i++) {
            uint64_t d = (uint64_t)(s[i] - '0');
            if (whole > (UINT64_MAX - d) / 10)
                return OOMB_ERR_PARSE;
            whole = whole * 10 + d;
        }
        used = n_digits;
    } else if (parse_real(s, &real, &used) != 0) {
        return OOMB_ERR_PARSE;
    }

    const char *u = s + used;
    while (*u == ' ' || *u == '\t')
        u++;
    size_t ulen = 0;
    while (isalpha((unsigned char)u[ulen]))
        ulen++;
    const char *rest = u + ulen;
    while (isspace((unsigned char)*rest))
        rest++;
    if (*rest != '\0')
        return OOMB_ERR_PARSE;
    char unit[8];
    if (ulen >= sizeof unit)
        return OOMB_ERR_PARSE;
    memcpy(unit, u, ulen);
    unit[ulen] = '\0';

    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (!strcase_eq(unit, units[i].suffix))
            continue;
        if (is_integer) {
            if (units[i].mult != 0 && whole > UINT64_MAX / units[i].mult)
                return OOMB_ERR_PARSE;
            *out = whole * units[i].mult;
            return OOMB_OK;
        }
        double v = real * (double)units[i].mult;
        /* 2^64 is exactly representable; anything at or above it overflows. */
        if (!(v >= 0) || v >= 18446744073709551616.0)
            return OOMB_ERR_PARSE;
        double r = floor(v + 0.5);
        if (r >= 18446744073709551616.0)
            return OOMB_ERR_PARSE;
        *out = (uint64_t)r;
        return OOMB_OK;
    }
    return OOMB_ERR_PARSE;
}

int oomb_parse_duration(const char *text_in, double *seconds)
{
    static const struct {
        const char *suffix;
        double mult;
    } units[] = {
        {"", 1.0},   {"s", 1.0},    {"ms", 1e-3},  {"us", 1e-6},
        {"m", 60.0}, {"min", 60.0}, {"h", 3600.0},
    };
    if (text_in == NULL || seconds == NULL)
        return OOMB_ERR_PARSE;
    const char *s = text_in;
    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s) && *s != '.')
        return OOMB_ERR_PARSE; /* no sign: durations are never negative */
    double v;
    size_t used;
    if (parse_real(s, &v, &used) != 0)
        return OOMB_ERR_PARSE;
    const char *u = s + used;
    while (*u == ' ' || *u == '\t')
        u++;
    size_t ulen = 0;
    while (isalpha((unsigned char)u[ulen]))
        ulen++;
    const char *rest = u + ulen;
    while (isspace((unsigned char)*rest))
        rest++;
    if (*rest != '\0')
        return OOMB_ERR_PARSE;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strlen(units[i].suffix) == ulen && strncmp(u, units[i].suffix, ulen) == 0) {
            double r = v * units[i].mult;
            if (!isfinite(r))
                return OOMB_ERR_PARSE;
            *seconds = r;
            return OOMB_OK;
        }
    }
    return OOMB_ERR_PARSE;
}

/* ------------------------------------------------------------ model ----- */

/* snprintf for messages and names that may be cut short on purpose. */
static void textf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void textf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

#define KEY_LAYERS "model.layers"
#define MAX_NEST 16 /* residuals inside residuals, at most */
#define DEF_TRANSFORMER_MLP 4

static const char *const layer_kinds = "linear, relu, gelu, conv2d, maxpool, batchnorm, "
                                       "layernorm, flatten, attention, residual, transformer";

/* What flows from one layer to the next, per sample. */
enum shape_kind { SHAPE_FLAT = 1, SHAPE_TOKENS = 2, SHAPE_IMAGE = 3 };
struct shape {
    enum shape_kind kind;
    int64_t d[3]; /* flat: F; tokens: T, C; image: C, H, W */
};

/* Within limits checked when the shape was made. */
static int64_t shape_features(const struct shape *s)
{
    switch (s->kind) {
    case SHAPE_TOKENS:
        return s->d[0] * s->d[1];
    case SHAPE_IMAGE:
        return s->d[0] * s->d[1] * s->d[2];
    case SHAPE_FLAT:
        break;
    }
    return s->d[0];
}

/* "784 features", "tokens 28x64" (T x C), "an image 16x14x14" (C x H x W). */
static const char *shape_text(const struct shape *s, char *buf, size_t len)
{
    switch (s->kind) {
    case SHAPE_TOKENS:
        textf(buf, len, "tokens %lldx%lld", (long long)s->d[0], (long long)s->d[1]);
        break;
    case SHAPE_IMAGE:
        textf(buf, len, "an image %lldx%lldx%lld", (long long)s->d[0], (long long)s->d[1],
              (long long)s->d[2]);
        break;
    case SHAPE_FLAT:
        textf(buf, len, "%lld features", (long long)s->d[0]);
        break;
    }
    return buf;
}

static int shape_eq(const struct shape *a, const struct shape *b)
{
    int rank = a->kind == SHAPE_FLAT ? 1 : a->kind == SHAPE_TOKENS ? 2 : 3;
    if (a->kind != b->kind)
        return 0;
    for (int i = 0; i < rank; i++)
        if (a->d[i] != b->d[i])
            return 0;
    return 1;
}

/* Sizes whose F32 byte count fits in 64 bits. */
static int fits(int64_t v)
{
    return v >= 0 && v <= INT64_MAX / 4;
}

static int mul_ok(int64_t a, int64_t b, int64_t *r)
{
    return !__builtin_mul_overflow(a, b, r) && fits(*r);
}

static int add_ok(int64_t a, int64_t b, int64_t *r)
{
    return !__builtin_add_overflow(a, b, r) && fits(*r);
}

static int err_size(struct ctx *c, const yaml_node_t *n, const char *who, const char *what)
{
    return err_at(c, n, KEY_LAYERS, "%s: %s overflows a 64-bit byte count", who, what);
}

/* A layer of `kind` that keeps the shape `sh`, no parameters. */
static void layer_init(struct oomb_layer *l, enum oomb_layer_kind kind, const struct shape *sh)
{
    memset(l, 0, sizeof *l);
    l->struct_size = sizeof *l;
    l->kind = kind;
    l->in_features = shape_features(sh);
    l->out_features = l->in_features;
}

/*
 * The builders below fill `l` for the input shape *sh and set *sh to the
 * output shape. `who` names the layer in messages ("layer 3 (linear)"); `n`
 * is the node the errors point at.
 */

static void build_activation(struct oomb_layer *l, enum oomb_layer_kind kind,
                             const struct shape *sh)
{
    layer_init(l, kind, sh);
    l->has_bias = 1; /* relu and gelu have always been loaded with has_bias = 1 */
}

static int build_linear(struct ctx *c, const yaml_node_t *n, const char *who, struct shape *sh,
                        int64_t out, int bias, struct oomb_layer *l)
{
    char buf[96];
    layer_init(l, OOMB_LAYER_LINEAR, sh);
    l->has_bias = bias;
    if (sh->kind == SHAPE_IMAGE)
        return err_at(c, n, KEY_LAYERS, "%s: its input is %s; add '- flatten' before it", who,
                      shape_text(sh, buf, sizeof buf));
    int tokens = sh->kind == SHAPE_TOKENS;
    int64_t rows = tokens ? sh->d[0] : 1, in = tokens ? sh->d[1] : sh->d[0];
    int64_t of;
    if (!mul_ok(rows, out, &of)) {
        textf(buf, sizeof buf, "its output of %lld tokens x %lld features", (long long)rows,
              (long long)out);
        return err_size(c, n, who, buf);
    }
    l->out_features = of;
    if (tokens)
        l->attrs[0] = rows;
    if ((l->n_params = oomb_layer_param_count(l)) < 0)
        return err_at(c, n, KEY_LAYERS, "%s: %lld x %lld parameters overflow a 64-bit byte count",
                      who, (long long)out, (long long)in);
    sh->d[tokens ? 1 : 0] = out;
    return OOMB_OK;
}

static int build_conv2d(struct ctx *c, const yaml_node_t *n, const char *who, struct shape *sh,
                        int64_t oc, int64_t k, int64_t stride, int64_t pad, int bias,
                        struct oomb_layer *l)
{
    char buf[96];
    layer_init(l, OOMB_LAYER_CONV2D, sh);
    l->has_bias = bias;
    if (sh->kind != SHAPE_IMAGE)
        return err_at(c, n, KEY_LAYERS,
                      "%s: its input is %s; conv2d needs an image (C, H, W) such as "
                      "model.input: [1, 28, 28]",
                      who, shape_text(sh, buf, sizeof buf));
    int64_t C = sh->d[0], H = sh->d[1], W = sh->d[2], hp, wp, pad2;
    if (!mul_ok(pad, 2, &pad2) || !add_ok(H, pad2, &hp) || !add_ok(W, pad2, &wp))
        return err_size(c, n, who, "its padded input");
    if (k > hp || k > wp)
        return err_at(c, n, KEY_LAYERS,
                      "%s: kernel %lld does not fit its input %lldx%lld (H x W) with padding %lld",
                      who, (long long)k, (long long)H, (long long)W, (long long)pad);
    int64_t oh = (hp - k) / stride + 1, ow = (wp - k) / stride + 1;
    int64_t of;
    if (!mul_ok(oc, oh, &of) || !mul_ok(of, ow, &of))
        return err_size(c, n, who, "its output");
    l->out_features = of;
    int64_t a[] = {C, H, W, oc, k, stride, pad};
    memcpy(l->attrs, a, sizeof a);
    if ((l->n_params = oomb_layer_param_count(l)) < 0)
        return err_size(c, n, who, "its parameter count");
    *sh = (struct shape){.kind = SHAPE_IMAGE, .d = {oc, oh, ow}};
    return OOMB_OK;
}

static int build_maxpool(struct ctx *c, const yaml_node_t *n, const char *who, struct shape *sh,
                         int64_t k, int64_t stride, struct oomb_layer *l)
{
    char buf[96];
    layer_init(l, OOMB_LAYER_MAXPOOL, sh);
    if (sh->kind != SHAPE_IMAGE)
        return err_at(c, n, KEY_LAYERS,
                      "%s: its input is %s; maxpool needs an image (C, H, W) such as "
                      "model.input: [1, 28, 28]",
                      who, shape_text(sh, buf, sizeof buf));
    int64_t C = sh->d[0], H = sh->d[1], W = sh->d[2];
    if (k > H || k > W)
        return err_at(c, n, KEY_LAYERS, "%s: kernel %lld does not fit its input %lldx%lld (H x W)",
                      who, (long long)k, (long long)H, (long long)W);
    int64_t oh = (H - k) / stride + 1, ow = (W - k) / stride + 1;
    l->out_features = C * oh * ow;
    int64_t a[] = {C, H, W, k, stride};
    memcpy(l->attrs, a, sizeof a);
    *sh = (struct shape){.kind = SHAPE_IMAGE, .d = {C, oh, ow}};
    return OOMB_OK;
}

static int build_batchnorm(struct ctx *c, const yaml_node_t *n, const char *who,
                           const struct shape *sh, struct oomb_layer *l)
{
    char buf[96];
    layer_init(l, OOMB_LAYER_BATCHNORM, sh);
    if (sh->kind == SHAPE_TOKENS)
        return err_at(c, n, KEY_LAYERS,
                      "%s: its input is %s; batchnorm normalises the channels of an image or "
                      "flat features: use layernorm on tokens",
                      who, shape_text(sh, buf, sizeof buf));
    int64_t C = sh->d[0], S = sh->kind == SHAPE_IMAGE ? sh->d[1] * sh->d[2] : 1;
    l->attrs[0] = C;
    l->attrs[1] = S;
    if ((l->n_params = oomb_layer_param_count(l)) < 0)
        return err_size(c, n, who, "its parameter count");
    l->n_buffers = oomb_layer_buffer_count(l);
    return OOMB_OK;
}

static int build_layernorm(struct ctx *c, const yaml_node_t *n, const char *who,
                           const struct shape *sh, struct oomb_layer *l)
{
    char buf[96];
    layer_init(l, OOMB_LAYER_LAYERNORM, sh);
    if (sh->kind == SHAPE_IMAGE)
        return err_at(c, n, KEY_LAYERS,
                      "%s: its input is %s; layernorm normalises tokens or flat features: use "
                      "batchnorm on an image, or add '- flatten' before it",
                      who, shape_text(sh, buf, sizeof buf));
    int tokens = sh->kind == SHAPE_TOKENS;
    l->attrs[0] = tokens ? sh->d[0] : 1;
    l->attrs[1] = tokens ? sh->d[1] : sh->d[0];
    if ((l->n_params = oomb_layer_param_count(l)) < 0)
        return err_size(c, n, who, "its parameter count");
    return OOMB_OK;
}

static void build_flatten(struct shape *sh, struct oomb_layer *l)
{
    layer_init(l, OOMB_LAYER_FLATTEN, sh);
    *sh = (struct shape){.kind = SHAPE_FLAT, .d = {l->in_features}};
}

static int need_tokens(struct ctx *c, const yaml_node_t *n, const char *who, const struct shape *sh,
                       const char *what, int64_t heads)
{
    char buf[96];
    if (sh->kind != SHAPE_TOKENS)
        return err_at(c, n, KEY_LAYERS,
                      "%s: its input is %s; %s needs tokens (T, C) such as model.input: [28, 28]",
                      who, shape_text(sh, buf, sizeof buf), what);
    if (sh->d[1] % heads != 0)
        return err_at(c, n, KEY_LAYERS,
                      "%s: %lld features per token do not split into %lld heads; C must be a "
                      "multiple of the number of heads",
                      who, (long long)sh->d[1], (long long)heads);
    return OOMB_OK;
}

static int build_attention(struct ctx *c, const yaml_node_t *n, const char *who,
                           const struct shape *sh, int64_t heads, int causal, struct oomb_layer *l)
{
    layer_init(l, OOMB_LAYER_ATTENTION, sh);
    if (need_tokens(c, n, who, sh, "attention", heads) != OOMB_OK)
        return c->status;
    int64_t T = sh->d[0], C = sh->d[1], tt, probs, qkv;
    if (!mul_ok(T, T, &tt) || !mul_ok(tt, heads, &probs) || !mul_ok(3 * C, T, &qkv))
        return err_size(c, n, who, "its attention matrix");
    int64_t a[] = {T, C, heads, causal ? 1 : 0};
    memcpy(l->attrs, a, sizeof a);
    if ((l->n_params = oomb_layer_param_count(l)) < 0)
        return err_size(c, n, who, "its parameter count");
    return OOMB_OK;
}

/* A residual over the n_body layers at nested_storage[start]. */
static int build_residual(struct ctx *c, const yaml_node_t *n, const char *who,
                          const struct shape *sh, int start, int n_body, struct oomb_layer *l)
{
    struct oomb_scenario *sc = c->sc;
    layer_init(l, OOMB_LAYER_RESIDUAL, sh);
    l->n_body = n_body;
    l->body = &sc->body_ptrs[start];
    if ((l->n_params = oomb_layer_param_count(l)) < 0 ||
        (l->n_buffers = oomb_layer_buffer_count(l)) < 0)
        return err_size(c, n, who, "its parameter count");
    return OOMB_OK;
}

/* ---- counting: how many layers a list becomes, before reading it */

static const char *item_kind(struct ctx *c, yaml_node_t *item, yaml_node_t **value)
{
    *value = NULL;
    if (item->type == YAML_SCALAR_NODE)
        return text(item);
    if (item->type != YAML_MAPPING_NODE ||
        item->data.mapping.pairs.top - item->data.mapping.pairs.start != 1)
        return "";
    yaml_node_t *k = node(c, item->data.mapping.pairs.start[0].key);
    *value = node(c, item->data.mapping.pairs.start[0].value);
    return k->type == YAML_SCALAR_NODE ? text(k) : "";
}

/* Layers the items of `seq` become (a transformer is two residuals) in *items,
 * plus the layers of all residual bodies below in *nested. Bodies deeper than
 * MAX_NEST are not counted: read_residual() refuses them before reading. */
static void count_layers(struct ctx *c, yaml_node_t *seq, int depth, int64_t *items,
                         int64_t *nested)
{
    *items = *nested = 0;
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
        yaml_node_t *v, *item = node(c, *it);
        const char *kind = item_kind(c, item, &v);
        if (v != NULL && strcmp(kind, "transformer") == 0) {
            *items += 2;
            *nested += 6; /* [layernorm, attention], [layernorm, linear, gelu, linear] */
        } else if (v != NULL && strcmp(kind, "residual") == 0 && v->type == YAML_SEQUENCE_NODE &&
                   depth < MAX_NEST) {
            int64_t bi, bn;
            count_layers(c, v, depth + 1, &bi, &bn);
            *items += 1;
            *nested += bi + bn;
        } else {
            *items += 1;
        }
    }
}

/* Reserves n layers of nested_storage for one residual body. */
static int reserve_body(struct ctx *c, const yaml_node_t *n, int64_t count, int *start)
{
    if (count > c->nested_cap - c->nested_used) {
        err_at(c, n, KEY_LAYERS, "internal error: residual bodies miscounted");
        c->status = OOMB_ERR_INTERNAL;
        return c->status;
    }
    *start = c->nested_used;
    c->nested_used += (int)count;
    c->sc->n_nested = c->nested_used;
    return OOMB_OK;
}

/* ---- reading */

static int read_list(struct ctx *c, yaml_node_t *seq, const char *prefix, int depth,
                     struct shape *sh, const char *from, struct oomb_layer *dst, int64_t room,
                     yaml_node_t **last, char *last_who, size_t last_who_len);

/* A key of a layer's option mapping, e.g. model.layers.conv2d.kernel. */
static const char *opt_key(char *buf, size_t len, const char *kind, const char *name)
{
    textf(buf, len, "%s.%s.%s", KEY_LAYERS, kind, name);
    return buf;
}

/* Reads the options of a mapping-valued layer: f[i].val set or NULL, and
 * required ones (`required` bits) present. */
static int read_options(struct ctx *c, yaml_node_t *vn, const char *kind, const char *who,
                        struct field *f, int nf, unsigned required)
{
    char path[64], key[96];
    textf(path, sizeof path, "%s.%s", KEY_LAYERS, kind);
    c->who = who;
    int rc = read_map(c, vn, path, f, nf);
    c->who = NULL;
    if (rc != OOMB_OK)
        return c->status;
    for (int i = 0; i < nf; i++)
        if ((required & (1u << i)) && f[i].val == NULL)
            return err_at(c, vn, opt_key(key, sizeof key, kind, f[i].name),
                          "%s: missing required key '%s'", who, f[i].name);
    return OOMB_OK;
}

/* get_int for a layer's value, the message naming the layer `who`. */
static int layer_int(struct ctx *c, const yaml_node_t *n, const char *key, const char *who,
                     int64_t min, int64_t *out)
{
    c->who = who;
    int rc = get_int(c, n, key, min, out);
    c->who = NULL;
    return rc;
}

static int opt_int(struct ctx *c, const struct field *f, const char *kind, const char *who,
                   int64_t min, int64_t *out)
{
    char key[96];
    if (f->val == NULL)
        return OOMB_OK;
    return layer_int(c, f->val, opt_key(key, sizeof key, kind, f->name), who, min, out);
}

static int opt_bool(struct ctx *c, const struct field *f, const char *kind, const char *who,
                    int *out)
{
    char key[96];
    if (f->val == NULL)
        return OOMB_OK;
    c->who = who;
    int rc = get_bool(c, f->val, opt_key(key, sizeof key, kind, f->name), out);
    c->who = NULL;
    return rc;
}

static int read_linear(struct ctx *c, yaml_node_t *item, yaml_node_t *vn, const char *who,
                       struct shape *sh, const char *from, struct oomb_layer *l)
{
    int64_t out = 0, in_given = -1;
    int bias = 1;
    if (vn->type == YAML_MAPPING_NODE) {
        struct field f[] = {{.name = "out"}, {.name = "in"}, {.name = "bias"}};
        if (read_options(c, vn, "linear", who, f, 3, 1u) != OOMB_OK ||
            opt_int(c, &f[0], "linear", who, 1, &out) != OOMB_OK ||
            opt_int(c, &f[1], "linear", who, 1, &in_given) != OOMB_OK)
            return c->status;
        if (f[1].val != NULL && sh->kind != SHAPE_IMAGE) {
            int tokens = sh->kind == SHAPE_TOKENS;
            int64_t in = tokens ? sh->d[1] : sh->d[0];
            if (in_given != in)
                return err_at(c, f[1].val, "model.layers.linear.in",
                              "%s: in_features %lld does not match the %lld features%s coming in "
                              "(%s)",
                              who, (long long)in_given, (long long)in, tokens ? " per token" : "",
                              from);
        }
        if (opt_bool(c, &f[2], "linear", who, &bias) != OOMB_OK)
            return c->status;
    } else if (layer_int(c, vn, "model.layers.linear", who, 1, &out) != OOMB_OK) {
        return c->status;
    }
    return build_linear(c, item, who, sh, out, bias, l);
}

static int read_conv2d(struct ctx *c, yaml_node_t *item, yaml_node_t *vn, const char *who,
                       struct shape *sh, struct oomb_layer *l)
{
    char buf[64];
    if (vn->type != YAML_MAPPING_NODE)
        return err_at(c, vn, "model.layers.conv2d",
                      "%s: expected a mapping such as {out: 16, kernel: 3, stride: 1, pad: 1}, "
                      "got %s",
                      who, describe(vn, buf, sizeof buf));
    struct field f[] = {
        {.name = "out"}, {.name = "kernel"}, {.name = "stride"}, {.name = "pad"}, {.name = "bias"}};
    int64_t oc = 0, k = 0, stride = 1, pad = 0;
    int bias = 1;
    if (read_options(c, vn, "conv2d", who, f, 5, 3u) != OOMB_OK ||
        opt_int(c, &f[0], "conv2d", who, 1, &oc) != OOMB_OK ||
        opt_int(c, &f[1], "conv2d", who, 1, &k) != OOMB_OK ||
        opt_int(c, &f[2], "conv2d", who, 1, &stride) != OOMB_OK ||
        opt_int(c, &f[3], "conv2d", who, 0, &pad) != OOMB_OK ||
        opt_bool(c, &f[4], "conv2d", who, &bias) != OOMB_OK)
        return c->status;
    return build_conv2d(c, item, who, sh, oc, k, stride, pad, bias, l);
}

static int read_maxpool(struct ctx *c, yaml_node_t *item, yaml_node_t *vn, const char *who,
                        struct shape *sh, struct oomb_layer *l)
{
    int64_t k = 0, stride = 0;
    if (vn->type == YAML_MAPPING_NODE) {
        struct field f[] = {{.name = "kernel"}, {.name = "stride"}};
        if (read_options(c, vn, "maxpool", who, f, 2, 1u) != OOMB_OK ||
            opt_int(c, &f[0], "maxpool", who, 1, &k) != OOMB_OK ||
            opt_int(c, &f[1], "maxpool", who, 1, &stride) != OOMB_OK)
            return c->status;
    } else if (layer_int(c, vn, "model.layers.maxpool", who, 1, &k) != OOMB_OK) {
        return c->status;
    }
    return build_maxpool(c, item, who, sh, k, stride > 0 ? stride : k, l);
}

static int read_attention(struct ctx *c, yaml_node_t *item, yaml_node_t *vn, const char *who,
                          const struct shape *sh, struct oomb_layer *l)
{
    int64_t heads = 0;
    int causal = 0;
    if (vn->type == YAML_MAPPING_NODE) {
        struct field f[] = {{.name = "heads"}, {.name = "causal"}};
        if (read_options(c, vn, "attention", who, f, 2, 1u) != OOMB_OK ||
            opt_int(c, &f[0], "attention", who, 1, &heads) != OOMB_OK ||
            opt_bool(c, &f[1], "attention", who, &causal) != OOMB_OK)
            return c->status;
    } else if (layer_int(c, vn, "model.layers.attention", who, 1, &heads) != OOMB_OK) {
        return c->status;
    }
    return build_attention(c, item, who, sh, heads, causal, l);
}

static int read_residual(struct ctx *c, yaml_node_t *item, yaml_node_t *vn, const char *path,
                         int depth, const char *who, struct shape *sh, struct oomb_layer *l)
{
    char buf[64], from[320], prefix[256], in_text[96], out_text[96];
    if (vn->type != YAML_SEQUENCE_NODE)
        return err_at(c, vn, KEY_LAYERS,
                      "%s: expected its body, a non-empty list of layers, got %s", who,
                      describe(vn, buf, sizeof buf));
    if (vn->data.sequence.items.top == vn->data.sequence.items.start)
        return err_at(c, vn, KEY_LAYERS,
                      "%s: expected its body, a non-empty list of layers, got an empty list", who);
    if (depth >= MAX_NEST)
        return err_at(c, item, KEY_LAYERS, "%s: residuals are nested more than %d deep", who,
                      MAX_NEST);
    int64_t n_body, below;
    count_layers(c, vn, depth + 1, &n_body, &below);
    int start;
    if (reserve_body(c, item, n_body, &start) != OOMB_OK)
        return c->status;
    struct shape body = *sh;
    textf(prefix, sizeof prefix, "%s.", path);
    textf(from, sizeof from, "input of %s", who);
    yaml_node_t *last = NULL;
    char last_who[300];
    if (read_list(c, vn, prefix, depth + 1, &body, from, &c->sc->nested_storage[start], n_body,
                  &last, last_who, sizeof last_who) != OOMB_OK)
        return c->status;
    if (!shape_eq(&body, sh))
        return err_at(c, item, KEY_LAYERS,
                      "%s: its body maps %s to %s (output of %s); a residual's body must keep "
                      "the shape",
                      who, shape_text(sh, in_text, sizeof in_text),
                      shape_text(&body, out_text, sizeof out_text), last_who);
    return build_residual(c, item, who, sh, start, (int)n_body, l);
}

/* A pre-LN transformer block: two residual layers written to l[0], l[1]. */
static int read_transformer(struct ctx *c, yaml_node_t *item, yaml_node_t *vn, int depth,
                            const char *who, struct shape *sh, struct oomb_layer *l)
{
    int64_t heads = 0, mlp = DEF_TRANSFORMER_MLP;
    int causal = 0;
    if (vn->type == YAML_MAPPING_NODE) {
        struct field f[] = {{.name = "heads"}, {.name = "mlp"}, {.name = "causal"}};
        if (read_options(c, vn, "transformer", who, f, 3, 1u) != OOMB_OK ||
            opt_int(c, &f[0], "transformer", who, 1, &heads) != OOMB_OK ||
            opt_int(c, &f[1], "transformer", who, 1, &mlp) != OOMB_OK ||
            opt_bool(c, &f[2], "transformer", who, &causal) != OOMB_OK)
            return c->status;
    } else if (layer_int(c, vn, "model.layers.transformer", who, 1, &heads) != OOMB_OK) {
        return c->status;
    }
    if (need_tokens(c, item, who, sh, "a transformer block", heads) != OOMB_OK)
        return c->status;
    if (depth >= MAX_NEST)
        return err_at(c, item, KEY_LAYERS, "%s: residuals are nested more than %d deep", who,
                      MAX_NEST);
    int64_t C = sh->d[1], hidden;
    if (!mul_ok(mlp, C, &hidden))
        return err_size(c, item, who, "its MLP width");
    int start;
    if (reserve_body(c, item, 6, &start) != OOMB_OK)
        return c->status;
    struct oomb_layer *b = &c->sc->nested_storage[start];
    struct shape s = *sh;
    /* residual: [layernorm, attention: {heads, causal}] */
    if (build_layernorm(c, item, who, &s, &b[0]) != OOMB_OK ||
        build_attention(c, item, who, &s, heads, causal, &b[1]) != OOMB_OK ||
        build_residual(c, item, who, sh, start, 2, &l[0]) != OOMB_OK)
        return c->status;
    /* residual: [layernorm, linear: mlp*C, gelu, linear: C] */
    if (build_layernorm(c, item, who, &s, &b[2]) != OOMB_OK ||
        build_linear(c, item, who, &s, hidden, 1, &b[3]) != OOMB_OK)
        return c->status;
    build_activation(&b[4], OOMB_LAYER_GELU, &s);
    if (build_linear(c, item, who, &s, C, 1, &b[5]) != OOMB_OK ||
        build_residual(c, item, who, sh, start + 2, 4, &l[1]) != OOMB_OK)
        return c->status;
    return OOMB_OK;
}

/* One item of a layer list, at position `path` ("3", "4.2"); writes *written
 * layers (two for a transformer) to l. */
static int read_layer(struct ctx *c, yaml_node_t *item, const char *path, int depth,
                      struct shape *sh, const char *from, struct oomb_layer *l, int *written,
                      char *who, size_t who_len)
{
    char buf[64];
    *written = 1;
    textf(who, who_len, "layer %s", path);

    if (item->type == YAML_SCALAR_NODE && !is_null(item)) {
        const char *k = text(item);
        static const struct {
            const char *kind, *example;
        } needs[] = {
            {"linear", "its output size, e.g. '- linear: 256'"},
            {"conv2d", "its options, e.g. '- conv2d: {out: 16, kernel: 3, pad: 1}'"},
            {"maxpool", "its kernel size, e.g. '- maxpool: 2'"},
            {"attention", "its number of heads, e.g. '- attention: 4'"},
            {"residual", "its body, a list of layers, e.g. '- residual: [relu, linear: 256]'"},
            {"transformer", "its number of heads, e.g. '- transformer: {heads: 4, mlp: 4}'"},
        };
        textf(who, who_len, "layer %s (%s)", path, k);
        if (strcmp(k, "relu") == 0 || strcmp(k, "gelu") == 0) {
            build_activation(l, k[0] == 'r' ? OOMB_LAYER_RELU : OOMB_LAYER_GELU, sh);
            return OOMB_OK;
        }
        if (strcmp(k, "flatten") == 0) {
            build_flatten(sh, l);
            return OOMB_OK;
        }
        if (strcmp(k, "batchnorm") == 0)
            return build_batchnorm(c, item, who, sh, l);
        if (strcmp(k, "layernorm") == 0)
            return build_layernorm(c, item, who, sh, l);
        for (size_t i = 0; i < sizeof needs / sizeof needs[0]; i++)
            if (strcmp(k, needs[i].kind) == 0)
                return err_at(c, item, KEY_LAYERS, "%s: needs %s", who, needs[i].example);
        return err_at(c, item, KEY_LAYERS, "layer %s: unknown layer kind '%s'; expected one of: %s",
                      path, k, layer_kinds);
    }
    if (item->type != YAML_MAPPING_NODE)
        return err_at(c, item, KEY_LAYERS,
                      "layer %s: expected a layer kind (relu, gelu, flatten, batchnorm, "
                      "layernorm) or a one-key mapping such as 'linear: 256', got %s",
                      path, describe(item, buf, sizeof buf));
    yaml_node_pair_t *pairs = item->data.mapping.pairs.start;
    int np = (int)(item->data.mapping.pairs.top - pairs);
    if (np != 1)
        return err_at(c, item, KEY_LAYERS,
                      "layer %s: expected a one-key mapping such as 'linear: 256', got %d keys",
                      path, np);
    yaml_node_t *kn = node(c, pairs[0].key), *vn = node(c, pairs[0].value);
    if (kn->type != YAML_SCALAR_NODE)
        return err_at(c, kn, KEY_LAYERS, "layer %s: the layer kind must be a name", path);
    const char *kind = text(kn);
    textf(who, who_len, "layer %s (%s)", path, kind);
    if (strcmp(kind, "relu") == 0 || strcmp(kind, "gelu") == 0 || strcmp(kind, "flatten") == 0 ||
        strcmp(kind, "batchnorm") == 0 || strcmp(kind, "layernorm") == 0)
        return err_at(c, kn, KEY_LAYERS, "%s: takes no arguments; write '- %s'", who, kind);
    if (strcmp(kind, "linear") == 0)
        return read_linear(c, item, vn, who, sh, from, l);
    if (strcmp(kind, "conv2d") == 0)
        return read_conv2d(c, item, vn, who, sh, l);
    if (strcmp(kind, "maxpool") == 0)
        return read_maxpool(c, item, vn, who, sh, l);
    if (strcmp(kind, "attention") == 0)
        return read_attention(c, item, vn, who, sh, l);
    if (strcmp(kind, "residual") == 0)
        return read_residual(c, item, vn, path, depth, who, sh, l);
    if (strcmp(kind, "transformer") == 0) {
        *written = 2;
        return read_transformer(c, item, vn, depth, who, sh, l);
    }
    return err_at(c, kn, KEY_LAYERS, "layer %s: unknown layer kind '%s'; expected one of: %s", path,
                  kind, layer_kinds);
}

/* Reads the items of `seq` into dst (room layers, as counted), positions
 * named prefix + 1-based index. *sh goes from the list's input shape to its
 * output shape; *last and last_who tell the last item. */
static int read_list(struct ctx *c, yaml_node_t *seq, const char *prefix, int depth,
                     struct shape *sh, const char *from, struct oomb_layer *dst, int64_t room,
                     yaml_node_t **last, char *last_who, size_t last_who_len)
{
    char path[256], prev_from[320];
    textf(prev_from, sizeof prev_from, "%s", from);
    int64_t used = 0;
    int count = (int)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    for (int i = 0; i < count; i++) {
        yaml_node_t *item = node(c, seq->data.sequence.items.start[i]);
        yaml_node_t *v;
        int64_t need = strcmp(item_kind(c, item, &v), "transformer") == 0 && v != NULL ? 2 : 1;
        if (need > room - used) {
            err_at(c, item, KEY_LAYERS, "internal error: layers miscounted");
            c->status = OOMB_ERR_INTERNAL;
            return c->status;
        }
        textf(path, sizeof path, "%s%d", prefix, i + 1);
        int written = 0;
        if (read_layer(c, item, path, depth, sh, prev_from, &dst[used], &written, last_who,
                       last_who_len) != OOMB_OK)
            return c->status;
        used += written;
        *last = item;
        textf(prev_from, sizeof prev_from, "output of %s", last_who);
    }
    return OOMB_OK;
}

/* model.input: features, [T, C] tokens or [C, H, W] an image. */
static int read_model_input(struct ctx *c, yaml_node_t *n, struct shape *sh)
{
    struct oomb_scenario *sc = c->sc;
    const char *key = "model.input";
    const char *what = "features (784), an image [C, H, W] or tokens [T, C]";
    char buf[64];
    if (n->type == YAML_SEQUENCE_NODE) {
        int len = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
        if (len != 2 && len != 3)
            return err_at(c, n, key, "expected %s, got a list of %d", what, len);
        int64_t f = 1;
        for (int i = 0; i < len; i++) {
            if (get_int(c, node(c, n->data.sequence.items.start[i]), key, 1, &sh->d[i]) != OOMB_OK)
                return c->status;
            if (!mul_ok(f, sh->d[i], &f))
                return err_at(c, n, key,
                              "the product of the dimensions overflows a 64-bit byte count");
        }
        sh->kind = len == 2 ? SHAPE_TOKENS : SHAPE_IMAGE;
        sc->input_rank = len;
        sc->model.input_features = f;
    } else {
        if (n->type != YAML_SCALAR_NODE)
            return err_at(c, n, key, "expected %s, got %s", what, describe(n, buf, sizeof buf));
        if (get_int(c, n, key, 1, &sh->d[0]) != OOMB_OK)
            return c->status;
        sh->kind = SHAPE_FLAT;
        sc->input_rank = 1;
        sc->model.input_features = sh->d[0];
    }
    for (int i = 0; i < sc->input_rank; i++)
        sc->input_shape[i] = sh->d[i];
    return OOMB_OK;
}

static int read_model(struct ctx *c, yaml_node_t *mn)
{
    struct oomb_scenario *sc = c->sc;
    struct field f[] = {
        {.name = "input"}, {.name = "classes"}, {.name = "layers"}, {.name = "init"}};
    if (read_map(c, mn, "model", f, 4) != OOMB_OK)
        return c->status;
    if (f[3].val) {
        const char *s = NULL;
        if (get_str(c, f[3].val, "model.init", &s) != OOMB_OK)
            return c->status;
        if (strcmp(s, "kaiming") == 0)
            sc->init_kaiming = 1;
        else if (strcmp(s, "pytorch") != 0)
            return err_at(c, f[3].val, "model.init", "expected pytorch or kaiming, got '%s'", s);
    }
    for (int i = 0; i < 3; i++)
        if (f[i].val == NULL) {
            char key[64];
            join(key, sizeof key, "model", f[i].name);
            return err_at(c, mn, key, "missing required key '%s' in 'model'", f[i].name);
        }
    c->model_input = f[0].val;
    c->model_classes = f[1].val;
    sc->model.struct_size = sizeof sc->model;
    struct shape sh = {0};
    if (read_model_input(c, f[0].val, &sh) != OOMB_OK)
        return c->status;
    if (get_int(c, f[1].val, "model.classes", 1, &sc->model.classes) != OOMB_OK)
        return c->status;
    if (sc->model.classes < 2)
        return err_at(c, f[1].val, "model.classes", "expected at least 2 classes, got %lld",
                      (long long)sc->model.classes);

    yaml_node_t *ln = f[2].val;
    c->layers = ln;
    if (ln->type != YAML_SEQUENCE_NODE)
        return err_type(c, ln, KEY_LAYERS, "a sequence of layers");
    if (ln->data.sequence.items.top == ln->data.sequence.items.start)
        return err_at(c, ln, KEY_LAYERS, "expected at least one layer, got an empty list");
    int64_t n, nested;
    count_layers(c, ln, 0, &n, &nested);
    if (n > INT32_MAX || nested > INT32_MAX)
        return err_at(c, ln, KEY_LAYERS, "too many layers");
    sc->layer_storage = calloc((size_t)n, sizeof *sc->layer_storage);
    sc->layer_ptrs = calloc((size_t)n, sizeof *sc->layer_ptrs);
    if (sc->layer_storage == NULL || sc->layer_ptrs == NULL)
        return err_oom(c);
    if (nested > 0) {
        sc->nested_storage = calloc((size_t)nested, sizeof *sc->nested_storage);
        sc->body_ptrs = calloc((size_t)nested, sizeof *sc->body_ptrs);
        if (sc->nested_storage == NULL || sc->body_ptrs == NULL)
            return err_oom(c);
        for (int64_t i = 0; i < nested; i++)
            sc->body_ptrs[i] = &sc->nested_storage[i];
    }
    c->nested_cap = (int)nested;
    c->nested_used = 0;

    yaml_node_t *last = NULL;
    char last_who[300];
    if (read_list(c, ln, "", 0, &sh, "model.input", sc->layer_storage, n, &last, last_who,
                  sizeof last_who) != OOMB_OK)
        return c->status;
    for (int i = 0; i < (int)n; i++)
        sc->layer_ptrs[i] = &sc->layer_storage[i];
    sc->model.n_layers = (int)n;
    sc->model.layers = sc->layer_ptrs;
    if (sh.kind != SHAPE_FLAT) {
        char buf[96];
        return err_at(c, last, KEY_LAYERS,
                      "%s, the last layer, outputs %s but the model must end with model.classes "
                      "(%lld) flat features; add '- flatten' and '- linear: %lld'",
                      last_who, shape_text(&sh, buf, sizeof buf), (long long)sc->model.classes,
                      (long long)sc->model.classes);
    }
    if (sh.d[0] != sc->model.classes)
        return err_at(c, last, KEY_LAYERS,
                      "%s, the last layer, outputs %lld features but model.classes "
                      "is %lld; the last layer must output one value per class",
                      last_who, (long long)sh.d[0], (long long)sc->model.classes);
    return OOMB_OK;
}

/* Fashion-MNIST fixes the model's input and classes. */
static int check_fashion_mnist(struct ctx *c)
{
    struct oomb_scenario *sc = c->sc;
    const int64_t *d = sc->input_shape;
    if (sc->input_kind != OOMB_INPUT_FASHION_MNIST)
        return OOMB_OK;
    int ok = (sc->input_rank == 1 && d[0] == 784) ||
             (sc->input_rank == 2 && d[0] == 28 && d[1] == 28) ||
             (sc->input_rank == 3 && d[0] == 1 && d[1] == 28 && d[2] == 28);
    if (!ok) {
        char got[96];
        if (sc->input_rank == 1)
            textf(got, sizeof got, "%lld", (long long)d[0]);
        else if (sc->input_rank == 2)
            textf(got, sizeof got, "[%lld, %lld]", (long long)d[0], (long long)d[1]);
        else
            textf(got, sizeof got, "[%lld, %lld, %lld]", (long long)d[0], (long long)d[1],
                  (long long)d[2]);
        return err_at(c, c->model_input, "model.input",
                      "the input is fashion-mnist, and Fashion-MNIST images are 1x28x28 in 10 "
                      "classes: model.input must be 784, [1, 28, 28] or [28, 28], got %s",
                      got);
    }
    if (sc->model.classes != FMNIST_CLASSES)
        return err_at(c, c->model_classes, "model.classes",
                      "the input is fashion-mnist, and Fashion-MNIST images are 1x28x28 in 10 "
                      "classes: model.classes must be 10, got %lld",
                      (long long)sc->model.classes);
    return OOMB_OK;
}

/* ------------------------------------------------------------ sections -- */

static int read_input(struct ctx *c, yaml_node_t *n, int *seed_set)
{
    yaml_node_t *kind = n, *separation = NULL;
    if (n->type == YAML_MAPPING_NODE) {
        struct field f[] = {{.name = "kind"}, {.name = "seed"}, {.name = "separation"}};
        if (read_map(c, n, "input", f, 3) != OOMB_OK)
            return c->status;
        if (f[1].val != NULL) {
            int64_t seed;
            if (get_int(c, f[1].val, "input.seed", 0, &seed) != OOMB_OK)
                return c->status;
            c->sc->seed = (uint64_t)seed;
            *seed_set = 1;
        }
        if ((separation = f[2].val) != NULL) {
            double v;
            if (get_real(c, separation, "input.separation", &v) != OOMB_OK)
                return c->status;
            if (!(v >= 0 && v <= OOMB_DATA_SEPARATION_MAX))
                return err_at(c, separation, "input.separation",
                              "expected a number in [0, %g], got %s", OOMB_DATA_SEPARATION_MAX,
                              text(separation));
            c->sc->separation = v;
        }
        if (f[0].val == NULL)
            return OOMB_OK; /* synthetic */
        kind = f[0].val;
    }
    const char *key = kind == n ? "input" : "input.kind";
    const char *s;
    if (!is_scalar(kind))
        return err_type(c, kind, key, "an input kind (synthetic, fashion-mnist)");
    if (get_str(c, kind, key, &s) != OOMB_OK)
        return c->status;
    if (strcmp(s, "synthetic") == 0)
        c->sc->input_kind = OOMB_INPUT_SYNTHETIC;
    else if (strcmp(s, "fashion-mnist") == 0)
        c->sc->input_kind = OOMB_INPUT_FASHION_MNIST;
    else
        return err_at(c, kind, key,
                      "unknown input kind '%s'; expected one of: synthetic, "
                      "fashion-mnist",
                      s);
    if (separation && c->sc->input_kind != OOMB_INPUT_SYNTHETIC)
        return err_at(c, separation, "input.separation",
                      "separation shapes synthetic input only; input.kind is %s", s);
    return OOMB_OK;
}

static int read_mode_item(struct ctx *c, yaml_node_t *n)
{
    const char *s;
    if (!is_scalar(n))
        return err_type(c, n, "mode", "train or infer");
    s = text(n);
    uint32_t bit;
    if (strcmp(s, "train") == 0)
        bit = OOMB_MODE_TRAIN;
    else if (strcmp(s, "infer") == 0)
        bit = OOMB_MODE_INFER;
    else
        return err_at(c, n, "mode", "unknown mode '%s'; expected one of: train, infer", s);
    if (c->sc->modes & bit)
        return err_at(c, n, "mode", "mode '%s' is listed twice", s);
    c->sc->modes |= bit;
    return OOMB_OK;
}

static int read_mode(struct ctx *c, yaml_node_t *n)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return read_mode_item(c, n);
    if (n->data.sequence.items.top == n->data.sequence.items.start)
        return err_at(c, n, "mode", "expected train, infer or a list of them, got an empty list");
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++)
        if (read_mode_item(c, node(c, *it)) != OOMB_OK)
            return c->status;
    return OOMB_OK;
}

/* The number of items of sequence or mapping `n`, refused above
 * OOMB_SCENARIO_MAX_LIST (the readers compare items pairwise). */
static int list_len(struct ctx *c, const yaml_node_t *n, const char *key, const char *what,
                    int *count)
{
    ptrdiff_t len = n->type == YAML_SEQUENCE_NODE
                        ? n->data.sequence.items.top - n->data.sequence.items.start
                        : n->data.mapping.pairs.top - n->data.mapping.pairs.start;
    if (len > OOMB_SCENARIO_MAX_LIST)
        return err_at(c, n, key, "%td %s; a scenario is limited to %d", len, what,
                      OOMB_SCENARIO_MAX_LIST);
    *count = (int)len;
    return OOMB_OK;
}

static int64_t widest_of(const struct oomb_layer *l, int64_t w)
{
    if (l->out_features > w)
        w = l->out_features;
    if (l->kind == OOMB_LAYER_ATTENTION) {
        /* qkv (T, 3C) and the attention matrix (H, T, T), checked to fit */
        int64_t T = l->attrs[0], C = l->attrs[1], H = l->attrs[2];
        if (3 * C * T > w)
            w = 3 * C * T;
        if (H * T * T > w)
            w = H * T * T;
    }
    return w;
}

/* The widest activation of the model, in features per sample. */
static int64_t widest(const struct oomb_scenario *sc)
{
    int64_t w = sc->model.input_features;
    for (int i = 0; i < sc->model.n_layers; i++)
        w = widest_of(&sc->layer_storage[i], w);
    for (int i = 0; i < sc->n_nested; i++)
        w = widest_of(&sc->nested_storage[i], w);
    return w;
}

static int read_batch_item(struct ctx *c, yaml_node_t *n)
{
    struct oomb_scenario *sc = c->sc;
    int64_t b;
    if (get_int(c, n, "batch", 1, &b) != OOMB_OK)
        return c->status;
    uint64_t elems, bytes;
    int64_t w = widest(sc);
    if (__builtin_mul_overflow((uint64_t)b, (uint64_t)w, &elems) ||
        __builtin_mul_overflow(elems, (uint64_t)4, &bytes))
        return err_at(c, n, "batch",
                      "batch %lld x %lld features x 4 bytes overflows a 64-bit byte count",
                      (long long)b, (long long)w);
    for (int i = 0; i < sc->n_batches; i++)
        if (sc->batches[i] == b)
            return err_at(c, n, "batch", "batch size %lld is listed twice", (long long)b);
    sc->batches[sc->n_batches++] = b;
    return OOMB_OK;
}

static int read_batch(struct ctx *c, yaml_node_t *n)
{
    struct oomb_scenario *sc = c->sc;
    if (n->type == YAML_SEQUENCE_NODE) {
        int count = 0;
        if (list_len(c, n, "batch", "batch sizes", &count) != OOMB_OK)
            return c->status;
        if (count == 0)
            return err_at(c, n, "batch",
                          "expected a positive integer or a list of them, got an empty list");
        sc->batches = calloc((size_t)count, sizeof *sc->batches);
        if (sc->batches == NULL)
            return err_oom(c);
        for (int i = 0; i < count; i++)
            if (read_batch_item(c, node(c, n->data.sequence.items.start[i])) != OOMB_OK)
                return c->status;
        return OOMB_OK;
    }
    if (n->type != YAML_SCALAR_NODE)
        return err_type(c, n, "batch", "a positive integer or a list of them");
    sc->batches = calloc(1, sizeof *sc->batches);
    if (sc->batches == NULL)
        return err_oom(c);
    return read_batch_item(c, n);
}

static int read_optimizer_name(struct ctx *c, yaml_node_t *n, const char *key)
{
    if (!is_scalar(n))
        return err_type(c, n, key, "an optimizer name (adam, sgd)");
    const char *s = text(n);
    if (strcmp(s, "adam") == 0)
        c->sc->optimizer = OOMB_OPT_ADAM;
    else if (strcmp(s, "sgd") == 0)
        c->sc->optimizer = OOMB_OPT_SGD;
    else
        return err_at(c, n, key, "unknown optimizer '%s'; expected one of: adam, sgd", s);
    return OOMB_OK;
}

/* In [lo, hi) (hi_open) or [lo, hi]; lo_open excludes lo. */
static int check_range(struct ctx *c, yaml_node_t *n, const char *key, double v, double lo,
                       int lo_open, double hi, const char *expected)
{
    if ((lo_open ? v <= lo : v < lo) || v >= hi)
        return err_at(c, n, key, "expected %s, got %s", expected, text(n));
    return OOMB_OK;
}

static int read_optimizer(struct ctx *c, yaml_node_t *n)
{
    struct oomb_scenario *sc = c->sc;
    if (n->type != YAML_MAPPING_NODE) {
        if (read_optimizer_name(c, n, "optimizer") != OOMB_OK)
            return c->status;
        sc->lr = sc->optimizer == OOMB_OPT_SGD ? DEF_SGD_LR : DEF_ADAM_LR;
        return OOMB_OK;
    }
    enum { F_NAME, F_LR, F_MOM, F_B1, F_B2, F_EPS, F_WD, F_N };
    struct field f[F_N] = {{.name = "name"},        {.name = "lr"},    {.name = "momentum"},
                           {.name = "beta1"},       {.name = "beta2"}, {.name = "eps"},
                           {.name = "weight_decay"}};
    if (read_map(c, n, "optimizer", f, F_N) != OOMB_OK)
        return c->status;
    if (f[F_NAME].val != NULL && read_optimizer_name(c, f[F_NAME].val, "optimizer.name"))
        return c->status;
    int sgd = sc->optimizer == OOMB_OPT_SGD;
    sc->lr = sgd ? DEF_SGD_LR : DEF_ADAM_LR;
    const char *own = sgd ? "sgd" : "adam";
    for (int i = F_MOM; i <= F_EPS; i++) {
        int for_sgd = i == F_MOM;
        if (f[i].val != NULL && for_sgd != sgd) {
            char key[64];
            join(key, sizeof key, "optimizer", f[i].name);
            return err_at(c, f[i].key, key, "'%s' applies to %s only, but the optimizer is %s",
                          f[i].name, for_sgd ? "sgd" : "adam", own);
        }
    }
    struct {
        int idx;
        double *dst;
        double lo;
        int lo_open;
        double hi;
        const char *expected;
    } nums[] = {
        {F_LR, &sc->lr, 0, 1, INFINITY, "a learning rate > 0"},
        {F_MOM, &sc->momentum, 0, 0, 1, "a momentum in [0, 1)"},
        {F_B1, &sc->beta1, 0, 0, 1, "beta1 in [0, 1)"},
        {F_B2, &sc->beta2, 0, 0, 1, "beta2 in [0, 1)"},
        {F_EPS, &sc->eps, 0, 1, INFINITY, "eps > 0"},
        {F_WD, &sc->weight_decay, 0, 0, INFINITY, "a weight decay >= 0"},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        yaml_node_t *v = f[nums[i].idx].val;
        if (v == NULL)
            continue;
        char key[64];
        join(key, sizeof key, "optimizer", f[nums[i].idx].name);
        if (get_real(c, v, key, nums[i].dst) != OOMB_OK ||
            check_range(c, v, key, *nums[i].dst, nums[i].lo, nums[i].lo_open, nums[i].hi,
                        nums[i].expected) != OOMB_OK)
            return c->status;
    }
    return OOMB_OK;
}

static int read_steps(struct ctx *c, yaml_node_t *n)
{
    struct oomb_scenario *sc = c->sc;
    struct field f[] = {{.name = "warmup"}, {.name = "measured"}, {.name = "epochs"}};
    if (read_map(c, n, "steps", f, 3) != OOMB_OK)
        return c->status;
    if (f[0].val != NULL && get_int(c, f[0].val, "steps.warmup", 0, &sc->warmup_steps))
        return c->status;
    if (f[1].val != NULL && get_int(c, f[1].val, "steps.measured", 1, &sc->measured_steps))
        return c->status;
    for (int i = 0; i < 2; i++) {
        int64_t v = i == 0 ? sc->warmup_steps : sc->measured_steps;
        if (f[i].val != NULL && v > OOMB_SCENARIO_MAX_STEPS)
            return err_at(c, f[i].val, i == 0 ? "steps.warmup" : "steps.measured",
                          "expected at most %d steps, got %lld", OOMB_SCENARIO_MAX_STEPS,
                          (long long)v);
    }
    if (f[2].val == NULL)
        return OOMB_OK;
    if (f[1].val != NULL)
        return err_at(c, f[2].key, "steps.epochs",
                      "give either 'measured' (line %d) or 'epochs', not both",
                      (int)f[1].key->start_mark.line + 1);
    double e;
    if (get_real(c, f[2].val, "steps.epochs", &e) != OOMB_OK)
        return c->status;
    if (!(e > 0) || e > MAX_EPOCHS)
        return err_at(c, f[2].val, "steps.epochs",
                      "expected a number of epochs > 0 and at most %g, got %s", MAX_EPOCHS,
                      text(f[2].val));
    if (sc->input_kind != OOMB_INPUT_FASHION_MNIST)
        return err_at(c, f[2].val, "steps.epochs",
                      "epochs needs a finite data set (input: fashion-mnist); synthetic input "
                      "has no epochs: give steps.measured instead");
    sc->epochs = e;
    c->steps_key = f[2].val;
    return OOMB_OK;
}

static int read_eval(struct ctx *c, yaml_node_t *n)
{
    struct oomb_scenario *sc = c->sc;
    int64_t v;
    if (get_int(c, n, "eval", 0, &v) != OOMB_OK)
        return c->status;
    if (sc->input_kind == OOMB_INPUT_FASHION_MNIST && v > OOMB_SCENARIO_FMNIST_TEST_SAMPLES)
        return err_at(c, n, "eval",
                      "the Fashion-MNIST test set holds %d samples; expected at most %d, got %lld",
                      OOMB_SCENARIO_FMNIST_TEST_SAMPLES, OOMB_SCENARIO_FMNIST_TEST_SAMPLES,
                      (long long)v);
    sc->eval_samples = v;
    return OOMB_OK;
}

int64_t oomb_scenario_measured_steps(const struct oomb_scenario *sc, int64_t batch)
{
    if (sc == NULL || batch < 1)
        return 0;
    if (!(sc->epochs > 0))
        return sc->measured_steps;
    double samples = sc->epochs * OOMB_SCENARIO_FMNIST_TRAIN_SAMPLES;
    double whole = nearbyint(samples);
    /* A whole number of samples (2 epochs, 0.5 epochs) divides exactly. */
    if (fabs(samples - whole) <= 1e-9 * samples) {
        int64_t n = (int64_t)whole;
        return n / batch + (n % batch != 0);
    }
    return (int64_t)ceil(samples / (double)batch);
}

static int read_budget(struct ctx *c, yaml_node_t *n)
{
    if (!is_scalar(n))
        return err_type(c, n, "budget", "a byte size such as 2GiB, or none");
    if (strcmp(text(n), "none") == 0) {
        c->sc->budget_bytes = 0;
        return OOMB_OK;
    }
    if (oomb_parse_bytes(text(n), &c->sc->budget_bytes) != OOMB_OK)
        return err_at(c, n, "budget",
                      "expected a byte size such as 2GiB, 512MiB, 1.5GB or 1e9 (at most 64 "
                      "bits), or none, got '%s'",
                      text(n));
    return OOMB_OK;
}

static int read_backend(struct ctx *c, yaml_node_t *n)
{
    if (!is_scalar(n))
        return err_type(c, n, "backend", "cpu, cuda or cuda:N");
    const char *s = text(n);
    if (strcmp(s, "cpu") == 0) {
        c->sc->backend = OOMB_BACKEND_CPU;
        return OOMB_OK;
    }
    if (strncmp(s, "cuda", 4) == 0) {
        c->sc->backend = OOMB_BACKEND_CUDA;
        if (s[4] == '\0')
            return OOMB_OK;
        if (s[4] == ':' && isdigit((unsigned char)s[5])) {
            long dev = 0;
            size_t i = 5;
            for (; isdigit((unsigned char)s[i]) && dev <= 100000; i++)
                dev = dev * 10 + (s[i] - '0');
            if (s[i] == '\0' && dev <= 100000) {
                c->sc->device = (int)dev;
                return OOMB_OK;
            }
        }
    }
    return err_at(c, n, "backend", "unknown backend '%s'; expected one of: cpu, cuda, cuda:N", s);
}

static int read_timeout(struct ctx *c, yaml_node_t *n)
{
    double s;
    if (!is_scalar(n) || oomb_parse_duration(text(n), &s) != OOMB_OK)
        return err_type(c, n, "timeout", "a duration such as 30s, 2m, 500ms or 1h");
    if (!(s > 0) || s > OOMB_SCENARIO_MAX_TIMEOUT_S)
        return err_at(c, n, "timeout",
                      "expected a duration > 0 and at most %d s (one week), got '%s'",
                      OOMB_SCENARIO_MAX_TIMEOUT_S, text(n));
    c->sc->timeout_s = s;
    return OOMB_OK;
}

const char *oomb_allocator_kind_name(enum oomb_allocator_kind k)
{
    return k == OOMB_ALLOCATOR_CACHING ? "caching" : "exact";
}

const char *oomb_pipeline_kind_name(enum oomb_pipeline_kind k)
{
    return k == OOMB_PIPELINE_STREAMING ? "streaming" : "resident";
}

/* `allocator:` at `key` ("allocator" or "strategies.allocator") over *a,
 * which holds the defaults (or the scenario's). A scalar is the kind alone;
 * a mapping gives the kind and PYTORCH_CUDA_ALLOC_CONF's options, checked
 * as PyTorch checks them (CUDAAllocatorConfig): max_split_size_mb above 20,
 * roundup_power2_divisions a power of two up to 64, the garbage collection
 * threshold strictly between 0 and 1. */
static int read_allocator(struct ctx *c, yaml_node_t *n, const char *key,
                          struct oomb_allocator_spec *a)
{
    char k[96];
    yaml_node_t *kind = n;
    if (n->type == YAML_MAPPING_NODE) {
        enum { A_KIND, A_SPLIT, A_DIV, A_EXP, A_GC, A_EMPTY, A_N };
        struct field f[A_N] = {{.name = "kind"},
                               {.name = "max_split_size_mb"},
                               {.name = "roundup_power2_divisions"},
                               {.name = "expandable_segments"},
                               {.name = "garbage_collection_threshold"},
                               {.name = "empty_cache"}};
        if (read_map(c, n, key, f, A_N) != OOMB_OK)
            return c->status;
        if (f[A_SPLIT].val != NULL) {
            int64_t mb;
            snprintf(k, sizeof k, "%s.max_split_size_mb", key);
            if (get_int(c, f[A_SPLIT].val, k, 1, &mb) != OOMB_OK)
                return c->status;
            if (mb <= 20 || mb > (int64_t)1 << 30)
                return err_at(c, f[A_SPLIT].val, k,
                              "expected more than 20 (MiB; PyTorch refuses a split size not above "
                              "its 20 MiB large-segment size) and at most 2^30, got %lld",
                              (long long)mb);
            a->conf.max_split_size = (uint64_t)mb << 20;
        }
        if (f[A_DIV].val != NULL) {
            int64_t d;
            snprintf(k, sizeof k, "%s.roundup_power2_divisions", key);
            if (get_int(c, f[A_DIV].val, k, 0, &d) != OOMB_OK)
                return c->status;
            if (d > 64 || (d & (d - 1)) != 0)
                return err_at(c, f[A_DIV].val, k,
                              "expected a power of two up to 64 (1, 2, 4, ..., 64) or 0 for off, "
                              "got %lld",
                              (long long)d);
            a->conf.roundup_power2_divisions = (int)d;
        }
        if (f[A_EXP].val != NULL) {
            snprintf(k, sizeof k, "%s.expandable_segments", key);
            if (get_bool(c, f[A_EXP].val, k, &a->conf.expandable_segments) != OOMB_OK)
                return c->status;
        }
        if (f[A_GC].val != NULL) {
            double g;
            snprintf(k, sizeof k, "%s.garbage_collection_threshold", key);
            if (get_real(c, f[A_GC].val, k, &g) != OOMB_OK)
                return c->status;
            if (!(g > 0 && g < 1))
                return err_at(c, f[A_GC].val, k,
                              "expected a fraction strictly between 0 and 1, got %s",
                              text(f[A_GC].val));
            a->conf.gc_threshold = g;
        }
        if (f[A_EMPTY].val != NULL) {
            const char *s = "";
            snprintf(k, sizeof k, "%s.empty_cache", key);
            if (get_str(c, f[A_EMPTY].val, k, &s) != OOMB_OK)
                return c->status;
            if (strcmp(s, "never") == 0)
                a->conf.empty_cache = OOMB_EMPTY_CACHE_NEVER;
            else if (strcmp(s, "step") == 0)
                a->conf.empty_cache = OOMB_EMPTY_CACHE_STEP;
            else
                return err_at(c, f[A_EMPTY].val, k,
                              "unknown value '%.80s'; expected one of: never, step", s);
        }
        kind = f[A_KIND].val;
        if (kind == NULL) {
            /* options without a kind mean the caching model */
            a->kind = OOMB_ALLOCATOR_CACHING;
            return OOMB_OK;
        }
        snprintf(k, sizeof k, "%s.kind", key);
    } else {
        snprintf(k, sizeof k, "%s", key);
    }
    if (!is_scalar(kind))
        return err_type(c, kind, k, "an allocator kind (exact, caching) or a mapping");
    const char *s = text(kind);
    if (strcmp(s, "exact") == 0)
        a->kind = OOMB_ALLOCATOR_EXACT;
    else if (strcmp(s, "caching") == 0)
        a->kind = OOMB_ALLOCATOR_CACHING;
    else
        return err_at(c, kind, k, "unknown allocator kind '%.80s'; expected one of: exact, caching",
                      s);
    return OOMB_OK;
}

int oomb_parse_alloc_conf(const char *text, struct oomb_cachealloc_conf *out, char *err,
                          size_t err_len)
{
    memset(out, 0, sizeof *out);
    const char *p = text;
    while (*p) {
        char opt[128], val[128];
        size_t n = strcspn(p, ",");
        const char *colon = memchr(p, ':', n);
        if (n == 0 || colon == NULL || (size_t)(colon - p) >= sizeof opt ||
            n - (size_t)(colon - p) - 1 >= sizeof val || colon + 1 == p + n) {
            snprintf(err, err_len, "'%.*s': expected option:value", (int)(n < 80 ? n : 80), p);
            return OOMB_ERR_PARSE;
        }
        memcpy(opt, p, (size_t)(colon - p));
        opt[colon - p] = '\0';
        memcpy(val, colon + 1, n - (size_t)(colon - p) - 1);
        val[n - (size_t)(colon - p) - 1] = '\0';
        char *end;
        errno = 0;
        if (strcmp(opt, "max_split_size_mb") == 0) {
            long long mb = strtoll(val, &end, 10);
            if (errno || *end || end == val || mb <= 20 || mb > (1LL << 30)) {
                snprintf(err, err_len, "max_split_size_mb '%s': expected an integer above 20",
                         val);
                return OOMB_ERR_PARSE;
            }
            out->max_split_size = (uint64_t)mb << 20;
        } else if (strcmp(opt, "roundup_power2_divisions") == 0) {
            long d = strtol(val, &end, 10);
            if (errno || *end || end == val || d < 0 || d > 64 || (d & (d - 1)) != 0) {
                snprintf(err, err_len,
                         "roundup_power2_divisions '%s': expected a power of two up to 64", val);
                return OOMB_ERR_PARSE;
            }
            out->roundup_power2_divisions = (int)d;
        } else if (strcmp(opt, "expandable_segments") == 0) {
            if (strcmp(val, "True") == 0 || strcmp(val, "true") == 0)
                out->expandable_segments = 1;
            else if (strcmp(val, "False") == 0 || strcmp(val, "false") == 0)
                out->expandable_segments = 0;
            else {
                snprintf(err, err_len, "expandable_segments '%s': expected True or False", val);
                return OOMB_ERR_PARSE;
            }
        } else if (strcmp(opt, "garbage_collection_threshold") == 0) {
            double g = strtod(val, &end);
            if (errno || *end || end == val || !(g > 0 && g < 1)) {
                snprintf(err, err_len,
                         "garbage_collection_threshold '%s': expected a fraction between 0 and 1",
                         val);
                return OOMB_ERR_PARSE;
            }
            out->gc_threshold = g;
        } else if (strcmp(opt, "empty_cache") == 0) {
            if (strcmp(val, "never") == 0)
                out->empty_cache = OOMB_EMPTY_CACHE_NEVER;
            else if (strcmp(val, "step") == 0)
                out->empty_cache = OOMB_EMPTY_CACHE_STEP;
            else {
                snprintf(err, err_len, "empty_cache '%s': expected never or step", val);
                return OOMB_ERR_PARSE;
            }
        } else {
            snprintf(err, err_len,
                     "unknown option '%s'; expected one of: max_split_size_mb, "
                     "roundup_power2_divisions, expandable_segments, "
                     "garbage_collection_threshold, empty_cache",
                     opt);
            return OOMB_ERR_PARSE;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return OOMB_OK;
}

/* `pipeline:` at `key` over *p, as read_allocator. A scalar is the kind. */
static int read_pipeline(struct ctx *c, yaml_node_t *n, const char *key,
                         struct oomb_pipeline_spec *p)
{
    char k[96];
    yaml_node_t *kind = n;
    if (n->type == YAML_MAPPING_NODE) {
        struct field f[] = {{.name = "kind"}, {.name = "prefetch"}, {.name = "pinned"}};
        if (read_map(c, n, key, f, 3) != OOMB_OK)
            return c->status;
        if (f[1].val != NULL) {
            int64_t d;
            snprintf(k, sizeof k, "%s.prefetch", key);
            if (get_int(c, f[1].val, k, 0, &d) != OOMB_OK)
                return c->status;
            if (d > OOMB_SCENARIO_MAX_PREFETCH)
                return err_at(c, f[1].val, k, "expected at most %d batches ahead, got %lld",
                              OOMB_SCENARIO_MAX_PREFETCH, (long long)d);
            p->prefetch = (int)d;
        }
        if (f[2].val != NULL) {
            snprintf(k, sizeof k, "%s.pinned", key);
            if (get_bool(c, f[2].val, k, &p->pinned) != OOMB_OK)
                return c->status;
        }
        kind = f[0].val;
        if (kind == NULL)
            return OOMB_OK;
        snprintf(k, sizeof k, "%s.kind", key);
    } else {
        snprintf(k, sizeof k, "%s", key);
    }
    if (!is_scalar(kind))
        return err_type(c, kind, k, "a pipeline kind (resident, streaming) or a mapping");
    const char *s = text(kind);
    if (strcmp(s, "resident") == 0)
        p->kind = OOMB_PIPELINE_RESIDENT;
    else if (strcmp(s, "streaming") == 0)
        p->kind = OOMB_PIPELINE_STREAMING;
    else
        return err_at(c, kind, k, "unknown pipeline kind '%.80s'; expected one of: resident, "
                      "streaming", s);
    return OOMB_OK;
}

static int read_params(struct ctx *c, yaml_node_t *n, struct oomb_strategy_spec *st)
{
    const char *path = "strategies.params";
    if (n->type != YAML_MAPPING_NODE)
        return err_type(c, n, path, "a mapping of parameter names to values");
    int count = 0;
    if (list_len(c, n, path, "parameters", &count) != OOMB_OK)
        return c->status;
    if (count == 0)
        return OOMB_OK;
    st->params = calloc((size_t)count, sizeof *st->params);
    if (st->params == NULL)
        return err_oom(c);
    for (int i = 0; i < count; i++) {
        yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
        yaml_node_t *k = node(c, p->key), *v = node(c, p->value);
        char key[160];
        if (!is_scalar(k) || !is_ident(text(k)))
            return err_type(c, k, path, "a parameter name");
        join(key, sizeof key, path, text(k));
        for (int j = 0; j < st->n_params; j++)
            if (strcmp(st->params[j].key, text(k)) == 0)
                return err_at(c, k, key, "duplicate key '%s' (first at line %d, column %d)",
                              text(k), st->params[j].loc.line, st->params[j].loc.col);
        if (!is_scalar(v))
            return err_type(c, v, key, "a scalar value");
        if (v->data.scalar.length > OOMB_SCENARIO_MAX_STRING)
            return err_at(c, v, key, "the value is %zu bytes; expected at most %d",
                          v->data.scalar.length, OOMB_SCENARIO_MAX_STRING);
        struct oomb_kv *kv = &st->params[st->n_params];
        if (dup_str(c, text(k), &kv->key) != OOMB_OK)
            return c->status;
        st->n_params++; /* from here on destroy() frees kv */
        if (dup_str(c, text(v), &kv->value) != OOMB_OK)
            return c->status;
        /* The value's location: the runner's type errors point at it. */
        kv->loc = loc_of(c, v);
    }
    return OOMB_OK;
}

static int read_strategy(struct ctx *c, yaml_node_t *n, int idx, struct oomb_strategy_spec *st)
{
    const char *plugin = NULL, *label = NULL;
    yaml_node_t *plugin_node = n, *label_node = n;
    st->loc = loc_of(c, n);
    if (n->type == YAML_MAPPING_NODE) {
        struct field f[] = {{.name = "plugin"},
                            {.name = "label"},
                            {.name = "params"},
                            {.name = "allocator"},
                            {.name = "pipeline"}};
        if (read_map(c, n, "strategies", f, 5) != OOMB_OK)
            return c->status;
        if (f[3].val != NULL &&
            read_allocator(c, f[3].val, "strategies.allocator", &st->allocator) != OOMB_OK)
            return c->status;
        if (f[4].val != NULL &&
            read_pipeline(c, f[4].val, "strategies.pipeline", &st->pipeline) != OOMB_OK)
            return c->status;
        if (f[0].val == NULL)
            return err_at(c, n, "strategies.plugin", "strategy %d: missing required key 'plugin'",
                          idx);
        plugin_node = f[0].val;
        if (get_str(c, plugin_node, "strategies.plugin", &plugin) != OOMB_OK)
            return c->status;
        if (f[1].val != NULL) {
            label_node = f[1].val;
            if (get_str(c, label_node, "strategies.label", &label) != OOMB_OK)
                return c->status;
            if (!is_ident(label))
                return err_at(c, label_node, "strategies.label",
                              "strategy %d: label '%.80s%s' must be a name "
                              "([A-Za-z_][A-Za-z0-9_]*, at most %d characters) so that checks "
                              "can refer to it",
                              idx, label, strlen(label) > 80 ? "..." : "", OOMB_SCENARIO_MAX_NAME);
        }
        if (f[2].val != NULL && read_params(c, f[2].val, st) != OOMB_OK)
            return c->status;
    } else if (is_scalar(n)) {
        plugin = text(n);
    } else {
        return err_at(c, n, "strategies",
                      "strategy %d: expected a plugin name or a mapping with plugin, label and "
                      "params, got %s",
                      idx, n->type == YAML_SEQUENCE_NODE ? "a sequence" : "nothing (null)");
    }
    if (!is_plugin_name(plugin))
        return err_at(c, plugin_node, plugin_node == n ? "strategies" : "strategies.plugin",
                      "strategy %d: '%.80s%s' is not a plugin name ([a-z0-9_]+, at most %d "
                      "characters)",
                      idx, plugin, strlen(plugin) > 80 ? "..." : "", OOMB_SCENARIO_MAX_NAME);
    if (label == NULL)
        label = plugin;
    for (int j = 0; j < c->sc->n_strategies; j++)
        if (strcmp(c->sc->strategies[j].label, label) == 0)
            return err_at(c, label_node, label_node == n ? "strategies" : "strategies.label",
                          "strategy %d: duplicate label '%s' (strategy %d at line %d has it); "
                          "give each a unique 'label'",
                          idx, label, j + 1, c->sc->strategies[j].loc.line);
    if (dup_str(c, plugin, &st->plugin) != OOMB_OK || dup_str(c, label, &st->label) != OOMB_OK)
        return c->status;
    return OOMB_OK;
}

static int read_strategies(struct ctx *c, yaml_node_t *n)
{
    struct oomb_scenario *sc = c->sc;
    if (n->type != YAML_SEQUENCE_NODE)
        return err_type(c, n, "strategies", "a non-empty list of strategies");
    int count = 0;
    if (list_len(c, n, "strategies", "strategies", &count) != OOMB_OK)
        return c->status;
    if (count == 0)
        return err_at(c, n, "strategies", "expected at least one strategy, got an empty list");
    sc->strategies = calloc((size_t)count, sizeof *sc->strategies);
    if (sc->strategies == NULL)
        return err_oom(c);
    for (int i = 0; i < count; i++) {
        struct oomb_strategy_spec *st = &sc->strategies[i];
        st->allocator = sc->allocator;
        st->pipeline = sc->pipeline;
        /* Counted before reading so that destroy() frees a partial spec. */
        sc->n_strategies = i;
        int rc = read_strategy(c, node(c, n->data.sequence.items.start[i]), i + 1, st);
        sc->n_strategies = i + 1;
        if (rc != OOMB_OK)
            return c->status;
    }
    return OOMB_OK;
}

static int read_checks(struct ctx *c, yaml_node_t *n)
{
    struct oomb_scenario *sc = c->sc;
    if (n->type != YAML_SEQUENCE_NODE)
        return err_type(c, n, "checks", "a list of check expressions");
    int count = 0;
    if (list_len(c, n, "checks", "checks", &count) != OOMB_OK)
        return c->status;
    if (count == 0)
        return OOMB_OK;
    sc->checks = calloc((size_t)count, sizeof *sc->checks);
    if (sc->checks == NULL)
        return err_oom(c);
    for (int i = 0; i < count; i++) {
        yaml_node_t *item = node(c, n->data.sequence.items.start[i]);
        uint32_t modes = 0;
        if (item->type == YAML_MAPPING_NODE) {
            /* {expr: "...", mode: infer}: a check for one mode only */
            struct field f[] = {{.name = "expr"}, {.name = "mode"}};
            if (read_map(c, item, "checks", f, 2) != OOMB_OK)
                return c->status;
            if (f[0].val == NULL)
                return err_at(c, item, "checks", "missing required key 'expr' in a check");
            if (f[1].val != NULL) {
                const char *m = is_scalar(f[1].val) ? text(f[1].val) : "";
                if (strcmp(m, "train") == 0)
                    modes = OOMB_MODE_TRAIN;
                else if (strcmp(m, "infer") == 0)
                    modes = OOMB_MODE_INFER;
                else
                    return err_at(c, f[1].val, "checks.mode", "expected train or infer, got '%s'",
                                  m);
            }
            item = f[0].val;
        }
        if (!is_scalar(item))
            return err_type(c, item, "checks",
                            "an expression such as 'a.memory.peak <= b.memory.peak', or "
                            "{expr: ..., mode: train|infer}");
        struct oomb_check *chk = NULL;
        char msg[256];
        int rc = oomb_check_parse(text(item), &chk, msg, sizeof msg);
        if (rc == OOMB_ERR_OOM)
            return err_oom(c);
        if (rc != OOMB_OK)
            return err_at(c, item, "checks", "%s", msg);
        for (int r = 0; r < oomb_check_ref_count(chk); r++) {
            const char *ref = oomb_check_ref(chk, r);
            size_t len = strcspn(ref, ".");
            int known = 0;
            for (int s = 0; s < sc->n_strategies && !known; s++)
                known = strlen(sc->strategies[s].label) == len &&
                        strncmp(sc->strategies[s].label, ref, len) == 0;
            if (!known) {
                char labels[256];
                size_t off = 0;
                labels[0] = '\0';
                for (int s = 0; s < sc->n_strategies && off < sizeof labels; s++) {
                    int w = snprintf(labels + off, sizeof labels - off, "%s%s", s ? ", " : "",
                                     sc->strategies[s].label);
                    if (w < 0)
                        break;
                    off += (size_t)w;
                }
                err_at(c, item, "checks",
                       "'%s' refers to strategy '%.*s', which is not a strategy label of this "
                       "scenario; labels: %s",
                       ref, (int)len, ref, labels);
                oomb_check_destroy(chk);
                return c->status;
            }
        }
        oomb_check_destroy(chk);
        if (dup_str(c, text(item), &sc->checks[i].expr) != OOMB_OK)
            return c->status;
        sc->checks[i].loc = loc_of(c, item);
        sc->checks[i].modes = modes;
        sc->n_checks = i + 1;
    }
    return OOMB_OK;
}

/* ------------------------------------------------------------ top level - */

int oomb_scenario_name_ok(const char *s)
{
    if (s == NULL || !isalnum((unsigned char)s[0]))
        return 0;
    size_t i = 0;
    for (; s[i] != '\0' && i <= OOMB_SCENARIO_MAX_NAME; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
            return 0;
    return i <= OOMB_SCENARIO_MAX_NAME;
}

#define NAME_RULE "1 to 64 letters, digits, '_', '-' and '.', starting with a letter or digit"

static int read_name(struct ctx *c, yaml_node_t *n)
{
    const char *s = NULL;
    if (get_str(c, n, "name", &s) != OOMB_OK)
        return c->status;
    if (s[0] == '\0')
        return err_at(c, n, "name", "expected a non-empty name");
    if (!oomb_scenario_name_ok(s))
        return err_at(c, n, "name", "name '%.80s%s' is not a scenario name: expected " NAME_RULE, s,
                      strlen(s) > 80 ? "..." : "");
    return dup_str(c, s, &c->sc->name);
}

/* The file name without directories and without its last extension, when
 * that is a safe name; else an error asking for `name:` (a name made up from
 * an unsafe file name could collide with another or surprise its reader). */
static int default_name(struct ctx *c, yaml_node_t *root)
{
    const char *base = strrchr(c->sc->path, '/');
    base = base != NULL ? base + 1 : c->sc->path;
    const char *dot = strrchr(base, '.');
    size_t len = dot != NULL && dot != base ? (size_t)(dot - base) : strlen(base);
    c->sc->name = strndup(base, len);
    if (c->sc->name == NULL)
        return err_oom(c);
    if (!oomb_scenario_name_ok(c->sc->name))
        return err_at(c, root, "name",
                      "the file name '%.80s%s' does not make a scenario name (" NAME_RULE
                      "); add a 'name:' key",
                      c->sc->name, strlen(c->sc->name) > 80 ? "..." : "");
    return OOMB_OK;
}

/* The sum of what the model's layers output per sample (attention also its
 * qkv and probabilities): what a step may keep for backward at once. */
static int total_features(const struct oomb_scenario *sc, int64_t *sum)
{
    int64_t s = sc->model.input_features;
    for (int i = 0; i < sc->model.n_layers + sc->n_nested; i++) {
        const struct oomb_layer *l = i < sc->model.n_layers
                                         ? &sc->layer_storage[i]
                                         : &sc->nested_storage[i - sc->model.n_layers];
        if (!add_ok(s, widest_of(l, 0), &s))
            return 0;
    }
    *sum = s;
    return 1;
}

/*
 * Sizes that combine numbers from different keys, checked once all are read,
 * so that no product of user numbers wraps anywhere downstream (the child
 * allocates the input of every step at once, and plugins add up parameters
 * and activations): the model's parameters with their gradients and two
 * optimizer moments, and per batch size the steps of a run, its input data
 * (steps x batch x features x 4 bytes) and its activations; the held-out
 * samples of `eval`.
 */
static int check_run_sizes(struct ctx *c)
{
    struct oomb_scenario *sc = c->sc;
    const int64_t F = sc->model.input_features;
    int64_t params = 0, acts, x;
    for (int i = 0; i < sc->model.n_layers; i++)
        if (!add_ok(params, sc->layer_storage[i].n_params, &params))
            params = -1;
    if (params < 0 || !mul_ok(params, 4, &x))
        return err_at(c, c->layers, "model.layers",
                      "the model's parameters, with their gradients and optimizer state, "
                      "overflow a 64-bit byte count");
    if (!total_features(sc, &acts))
        return err_at(c, c->layers, "model.layers",
                      "the model's activations per sample overflow a 64-bit byte count");
    if (sc->eval_samples > 0 && !mul_ok(sc->eval_samples, F, &x))
        return err_at(c, c->eval, "eval",
                      "%lld held-out samples x %lld features x 4 bytes overflow a 64-bit byte "
                      "count",
                      (long long)sc->eval_samples, (long long)F);
    int n = c->batch->type == YAML_SEQUENCE_NODE
                ? (int)(c->batch->data.sequence.items.top - c->batch->data.sequence.items.start)
                : 1;
    for (int i = 0; i < n && i < sc->n_batches; i++) {
        yaml_node_t *bn = c->batch->type == YAML_SEQUENCE_NODE
                              ? node(c, c->batch->data.sequence.items.start[i])
                              : c->batch;
        const int64_t b = sc->batches[i];
        int64_t steps = oomb_scenario_measured_steps(sc, b), total;
        if (!add_ok(sc->warmup_steps, steps, &total) || total > OOMB_SCENARIO_MAX_STEPS)
            return err_at(c, c->steps_key != NULL ? c->steps_key : bn,
                          c->steps_key != NULL ? "steps.epochs" : "batch",
                          "at batch %lld a run takes %lld warm-up and %lld measured steps; "
                          "a run is limited to %d steps",
                          (long long)b, (long long)sc->warmup_steps, (long long)steps,
                          OOMB_SCENARIO_MAX_STEPS);
        if (!mul_ok(total, b, &x) || !mul_ok(x, F, &x))
            return err_at(c, bn, "batch",
                          "batch %lld x %lld steps (warm-up and measured) x %lld features x 4 "
                          "bytes of input data overflow a 64-bit byte count",
                          (long long)b, (long long)total, (long long)F);
        if (!mul_ok(b, acts, &x))
            return err_at(c, bn, "batch",
                          "batch %lld x %lld features of activations over all layers x 4 bytes "
                          "overflow a 64-bit byte count",
                          (long long)b, (long long)acts);
    }
    return OOMB_OK;
}

static int read_root(struct ctx *c, yaml_node_t *root)
{
    struct oomb_scenario *sc = c->sc;
    enum {
        F_NAME,
        F_DESC,
        F_MODEL,
        F_INPUT,
        F_SEED,
        F_MODE,
        F_BATCH,
        F_OPT,
        F_STEPS,
        F_EVAL,
        F_BUDGET,
        F_BACKEND,
        F_TIMEOUT,
        F_THREADS,
        F_STRATEGIES,
        F_CHECKS,
        F_ALLOCATOR,
        F_PIPELINE,
        F_N
    };
    struct field f[F_N] = {
        {.name = "name"},    {.name = "description"}, {.name = "model"},      {.name = "input"},
        {.name = "seed"},    {.name = "mode"},        {.name = "batch"},      {.name = "optimizer"},
        {.name = "steps"},   {.name = "eval"},        {.name = "budget"},     {.name = "backend"},
        {.name = "timeout"}, {.name = "threads"},     {.name = "strategies"}, {.name = "checks"},
        {.name = "allocator"}, {.name = "pipeline"},
    };
    if (root->type != YAML_MAPPING_NODE)
        return err_type(c, root, "(top level)", "a mapping of scenario keys");
    if (read_map(c, root, "", f, F_N) != OOMB_OK)
        return c->status;
    static const int required[] = {F_MODEL, F_BATCH, F_STRATEGIES};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (f[required[i]].val == NULL)
            return err_at(c, root, f[required[i]].name, "missing required key '%s'",
                          f[required[i]].name);

    /* Defaults. */
    sc->input_kind = OOMB_INPUT_SYNTHETIC;
    sc->seed = DEF_SEED;
    sc->separation = OOMB_DATA_SEPARATION;
    sc->optimizer = OOMB_OPT_ADAM;
    sc->lr = DEF_ADAM_LR;
    sc->momentum = DEF_MOMENTUM;
    sc->beta1 = DEF_BETA1;
    sc->beta2 = DEF_BETA2;
    sc->eps = DEF_EPS;
    sc->weight_decay = 0;
    sc->warmup_steps = DEF_WARMUP;
    sc->measured_steps = DEF_MEASURED;
    sc->budget_bytes = 0;
    sc->backend = OOMB_BACKEND_CPU;
    sc->device = 0;
    sc->timeout_s = DEF_TIMEOUT_S;
    sc->threads = OOMB_SCENARIO_DEFAULT_THREADS;

    if (f[F_NAME].val != NULL ? read_name(c, f[F_NAME].val) : default_name(c, root))
        return c->status;
    const char *desc = "";
    if (f[F_DESC].val != NULL && !is_null(f[F_DESC].val) &&
        get_str(c, f[F_DESC].val, "description", &desc) != OOMB_OK)
        return c->status;
    if (strlen(desc) > OOMB_SCENARIO_MAX_STRING)
        return err_at(c, f[F_DESC].val, "description",
                      "the description is %zu bytes; expected at most %d", strlen(desc),
                      OOMB_SCENARIO_MAX_STRING);
    if (dup_str(c, desc, &sc->description) != OOMB_OK)
        return c->status;
    if (read_model(c, f[F_MODEL].val) != OOMB_OK)
        return c->status;

    /* The top-level seed first, so that input.seed overrides it. */
    int seed_set = 0;
    if (f[F_SEED].val != NULL) {
        int64_t seed;
        if (get_int(c, f[F_SEED].val, "seed", 0, &seed) != OOMB_OK)
            return c->status;
        sc->seed = (uint64_t)seed;
    }
    if (f[F_INPUT].val != NULL && read_input(c, f[F_INPUT].val, &seed_set) != OOMB_OK)
        return c->status;
    if (check_fashion_mnist(c) != OOMB_OK)
        return c->status;
    sc->eval_samples =
        sc->input_kind == OOMB_INPUT_FASHION_MNIST ? OOMB_SCENARIO_FMNIST_TEST_SAMPLES : 0;
    c->eval = f[F_EVAL].val;
    if (f[F_EVAL].val != NULL && read_eval(c, f[F_EVAL].val) != OOMB_OK)
        return c->status;
    if (f[F_MODE].val != NULL ? read_mode(c, f[F_MODE].val) != OOMB_OK
                              : (sc->modes = OOMB_MODE_TRAIN, 0))
        return c->status;
    c->batch = f[F_BATCH].val;
    if (read_batch(c, f[F_BATCH].val) != OOMB_OK)
        return c->status;
    if (f[F_OPT].val != NULL && read_optimizer(c, f[F_OPT].val) != OOMB_OK)
        return c->status;
    if (f[F_STEPS].val != NULL && read_steps(c, f[F_STEPS].val) != OOMB_OK)
        return c->status;
    if (check_run_sizes(c) != OOMB_OK)
        return c->status;
    if (f[F_BUDGET].val != NULL && read_budget(c, f[F_BUDGET].val) != OOMB_OK)
        return c->status;
    if (f[F_BACKEND].val != NULL && read_backend(c, f[F_BACKEND].val) != OOMB_OK)
        return c->status;
    if (f[F_TIMEOUT].val != NULL && read_timeout(c, f[F_TIMEOUT].val) != OOMB_OK)
        return c->status;
    if (f[F_THREADS].val != NULL) {
        int64_t t;
        if (get_int(c, f[F_THREADS].val, "threads", 1, &t) != OOMB_OK)
            return c->status;
        if (t > OOMB_SCENARIO_MAX_THREADS)
            return err_at(c, f[F_THREADS].val, "threads", "expected at most %d threads, got %lld",
                          OOMB_SCENARIO_MAX_THREADS, (long long)t);
        sc->threads = (int)t;
    }
    if (f[F_ALLOCATOR].val != NULL &&
        read_allocator(c, f[F_ALLOCATOR].val, "allocator", &sc->allocator) != OOMB_OK)
        return c->status;
    if (f[F_PIPELINE].val != NULL &&
        read_pipeline(c, f[F_PIPELINE].val, "pipeline", &sc->pipeline) != OOMB_OK)
        return c->status;
    if (read_strategies(c, f[F_STRATEGIES].val) != OOMB_OK)
        return c->status;
    if (f[F_CHECKS].val != NULL && read_checks(c, f[F_CHECKS].val) != OOMB_OK)
        return c->status;
    return OOMB_OK;
}

static int yaml_error(struct ctx *c, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR)
        return err_oom(c);
    const yaml_mark_t *m = p->error == YAML_READER_ERROR ? &p->mark : &p->problem_mark;
    /* libyaml decodes a small input whole before scanning it, so a reader
     * error (bad UTF-8, a control character) has its mark at 1:1: place it
     * from the byte offset of the problem in the input instead. */
    yaml_mark_t at;
    const unsigned char *in = p->input.string.start;
    if (p->error == YAML_READER_ERROR && in != NULL &&
        p->problem_offset <= (size_t)(p->input.string.end - in)) {
        memset(&at, 0, sizeof at);
        for (size_t i = 0; i < p->problem_offset; i++) {
            if (in[i] == '\n') {
                at.line++;
                at.column = 0;
            } else {
                at.column++;
            }
        }
        m = &at;
    }
    char where[64] = "";
    if (p->context != NULL)
        snprintf(where, sizeof where, " (%s at line %d, column %d)", p->context,
                 (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    char msg[256];
    snprintf(msg, sizeof msg, "YAML syntax error: %s%s",
             p->problem != NULL ? p->problem : "malformed YAML", where);
    yaml_node_t fake; /* err_at reads only the mark */
    memset(&fake, 0, sizeof fake);
    fake.start_mark = *m;
    return err_at(c, &fake, NULL, "%s", msg);
}

/* ------------------------------------------------------------ bounds ---- */

/*
 * A first pass over the parser's events, before libyaml builds the document
 * and before any walker recurses into it: it bounds the nesting depth, the
 * number of nodes and of scalar bytes the document has once its aliases are
 * expanded (an alias counts as the whole node it names, so a "billion laughs"
 * stops here after a few hundred events), the number of anchors, and rejects
 * an alias inside the node it names (a cycle, which libyaml's loader accepts).
 * Iterative: the only stack is `open`, at most OOMB_SCENARIO_MAX_DEPTH deep.
 */
struct expanded {
    uint64_t nodes, bytes;
};

struct anchor {
    char *name;
    struct expanded size;
    int open; /* still being read: an alias to it would be a cycle */
    int line;
};

struct bounds {
    struct ctx *c;
    struct expanded open[OOMB_SCENARIO_MAX_DEPTH]; /* of each open collection */
    int anchor_of[OOMB_SCENARIO_MAX_DEPTH];        /* its anchor, or -1 */
    /* For messages: whether each open collection is a mapping, whether its
     * next node is a key, and its current key (cut to fit). */
    char is_map[OOMB_SCENARIO_MAX_DEPTH], want_key[OOMB_SCENARIO_MAX_DEPTH];
    char key[OOMB_SCENARIO_MAX_DEPTH][40];
    int depth;
    struct expanded total;
    struct anchor anchors[OOMB_SCENARIO_MAX_ANCHORS];
    int n_anchors;
};

/* The keys of the open mappings joined with '.', "model.layers", for the
 * node being read (at a key position, the keys above it). */
static const char *bounds_key(const struct bounds *b, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int d = 0; d < b->depth; d++) {
        if (!b->is_map[d] || (b->want_key[d] && d == b->depth - 1) || b->key[d][0] == '\0')
            continue;
        int n = snprintf(buf + off, len - off, "%s%s", off ? "." : "", b->key[d]);
        if (n < 0 || (size_t)n >= len - off)
            break;
        off += (size_t)n;
    }
    return buf[0] != '\0' ? buf : NULL;
}

static int err_mark(struct bounds *b, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int err_mark(struct bounds *b, const yaml_mark_t *m, const char *fmt, ...)
{
    char key[256];
    va_list ap;
    va_start(ap, fmt);
    int rc = verr_at(b->c, (int)m->line + 1, (int)m->column + 1, bounds_key(b, key, sizeof key),
                     fmt, ap);
    va_end(ap);
    return rc;
}

/* A node of the innermost open collection is complete: a mapping's key is
 * followed by its value and a value by the next key. */
static void bounds_next(struct bounds *b)
{
    if (b->depth > 0 && b->is_map[b->depth - 1])
        b->want_key[b->depth - 1] = !b->want_key[b->depth - 1];
}

/* Adds a finished node of size `sz` to its parent (or the document). */
static int bounds_add(struct bounds *b, struct expanded sz, const yaml_mark_t *m)
{
    struct expanded *to = b->depth > 0 ? &b->open[b->depth - 1] : &b->total;
    /* Each operand is at most the limit, so the sums cannot wrap. */
    to->nodes += sz.nodes;
    to->bytes += sz.bytes;
    if (to->nodes > OOMB_SCENARIO_MAX_NODES || b->total.nodes > OOMB_SCENARIO_MAX_NODES)
        return err_mark(b, m,
                        "the document holds more than %d nodes once its aliases are expanded; "
                        "a scenario is limited to %d",
                        OOMB_SCENARIO_MAX_NODES, OOMB_SCENARIO_MAX_NODES);
    if (to->bytes > OOMB_SCENARIO_MAX_TEXT || b->total.bytes > OOMB_SCENARIO_MAX_TEXT)
        return err_mark(b, m,
                        "the document holds more than %d bytes of scalars once its aliases are "
                        "expanded; a scenario is limited to %d",
                        OOMB_SCENARIO_MAX_TEXT, OOMB_SCENARIO_MAX_TEXT);
    return OOMB_OK;
}

/* Registers `name` (may be NULL) for the node starting at m; returns its
 * index, -1 for none, or -2 on error. */
static int bounds_anchor(struct bounds *b, const yaml_char_t *name, const yaml_mark_t *m)
{
    if (name == NULL)
        return -1;
    if (b->n_anchors == OOMB_SCENARIO_MAX_ANCHORS) {
        err_mark(b, m, "more than %d anchors ('&name'); a scenario is limited to %d",
                 OOMB_SCENARIO_MAX_ANCHORS, OOMB_SCENARIO_MAX_ANCHORS);
        return -2;
    }
    struct anchor *a = &b->anchors[b->n_anchors];
    a->name = strdup((const char *)name);
    if (a->name == NULL) {
        err_oom(b->c);
        return -2;
    }
    a->size = (struct expanded){0, 0};
    a->open = 1;
    a->line = (int)m->line + 1;
    return b->n_anchors++;
}

static int bounds_event(struct bounds *b, const yaml_event_t *e)
{
    const yaml_mark_t *m = &e->start_mark;
    switch (e->type) {
    case YAML_SCALAR_EVENT: {
        struct expanded sz = {1, e->data.scalar.length};
        if (b->depth > 0 && b->is_map[b->depth - 1] && b->want_key[b->depth - 1])
            snprintf(b->key[b->depth - 1], sizeof b->key[0], "%s",
                     (const char *)e->data.scalar.value);
        int a = bounds_anchor(b, e->data.scalar.anchor, m);
        if (a == -2)
            return b->c->status;
        if (a >= 0) {
            b->anchors[a].size = sz;
            b->anchors[a].open = 0;
        }
        int rc = bounds_add(b, sz, m);
        bounds_next(b);
        return rc;
    }
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)e->data.alias.anchor;
        /* The latest definition of a name wins, as in YAML. */
        for (int i = b->n_anchors - 1; i >= 0; i--) {
            struct anchor *a = &b->anchors[i];
            if (strcmp(a->name, name) != 0)
                continue;
            if (a->open)
                return err_mark(b, m,
                                "alias '*%.64s' is inside the node it names (anchor '&%.64s' at "
                                "line %d): aliases must not form a cycle",
                                name, name, a->line);
            int rc = bounds_add(b, a->size, m);
            bounds_next(b);
            return rc;
        }
        return err_mark(b, m, "alias '*%.64s' names no anchor defined before it", name);
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        if (b->depth == OOMB_SCENARIO_MAX_DEPTH)
            return err_mark(b, m,
                            "sequences and mappings are nested more than %d deep; a scenario "
                            "is limited to %d",
                            OOMB_SCENARIO_MAX_DEPTH, OOMB_SCENARIO_MAX_DEPTH);
        const yaml_char_t *name = e->type == YAML_SEQUENCE_START_EVENT
                                      ? e->data.sequence_start.anchor
                                      : e->data.mapping_start.anchor;
        int a = bounds_anchor(b, name, m);
        if (a == -2)
            return b->c->status;
        b->open[b->depth] = (struct expanded){1, 0};
        b->anchor_of[b->depth] = a;
        b->is_map[b->depth] = e->type == YAML_MAPPING_START_EVENT;
        b->want_key[b->depth] = 1;
        b->key[b->depth][0] = '\0';
        b->depth++;
        return OOMB_OK;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        if (b->depth == 0) /* the parser never does this */
            return OOMB_OK;
        b->depth--;
        struct expanded sz = b->open[b->depth];
        int a = b->anchor_of[b->depth];
        if (a >= 0) {
            b->anchors[a].size = sz;
            b->anchors[a].open = 0;
        }
        int rc = bounds_add(b, sz, m);
        bounds_next(b);
        return rc;
    }
    default:
        return OOMB_OK;
    }
}

/* The bounds pass over text[0..len). */
static int check_bounds(struct ctx *c, const unsigned char *text, size_t len)
{
    yaml_parser_t parser;
    struct bounds *b = calloc(1, sizeof *b);
    if (b == NULL)
        return err_oom(c);
    b->c = c;
    if (!yaml_parser_initialize(&parser)) {
        free(b);
        return err_oom(c);
    }
    yaml_parser_set_input_string(&parser, text, len);
    for (int done = 0; !done && c->status == OOMB_OK;) {
        yaml_event_t e;
        if (!yaml_parser_parse(&parser, &e)) {
            yaml_error(c, &parser);
            break;
        }
        done = e.type == YAML_STREAM_END_EVENT;
        bounds_event(b, &e);
        yaml_event_delete(&e);
    }
    yaml_parser_delete(&parser);
    for (int i = 0; i < b->n_anchors; i++)
        free(b->anchors[i].name);
    free(b);
    return c->status;
}

/* ------------------------------------------------------------ reading --- */

static const char *file_kind(mode_t m)
{
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO (named pipe)";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a regular file";
}

static int err_io(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int err_io(struct ctx *c, const char *fmt, ...)
{
    if (c->status != OOMB_OK)
        return c->status;
    c->status = OOMB_ERR_IO;
    if (c->err != NULL && c->err_len > 0) {
        int n = snprintf(c->err, c->err_len, "%s: ", c->file);
        if (n >= 0 && (size_t)n < c->err_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->err + n, c->err_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return c->status;
}

/*
 * Reads a whole scenario file into *buf (heap, NUL-terminated, caller frees).
 * Only regular files: a FIFO, a device or a directory is refused by its type
 * before it is read (and a FIFO is opened without blocking), so a wrong path
 * cannot hang the harness. At most OOMB_SCENARIO_MAX_FILE bytes.
 */
static int read_file(struct ctx *c, const char *path, unsigned char **buf, size_t *len)
{
    struct stat st;
    *buf = NULL;
    *len = 0;
    if (stat(path, &st) != 0)
        return err_io(c, "cannot open: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return err_io(c, "cannot read: %s, not a scenario file (a regular YAML file)",
                      file_kind(st.st_mode));
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return err_io(c, "cannot open: %s", strerror(errno));
    /* Again on what was opened: the path may have changed in between. */
    if (fstat(fd, &st) != 0) {
        err_io(c, "cannot read: %s", strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        err_io(c, "cannot read: %s, not a scenario file (a regular YAML file)",
               file_kind(st.st_mode));
        goto fail;
    }
    if (st.st_size > OOMB_SCENARIO_MAX_FILE) {
        err_io(c, "the file is %lld bytes; a scenario file holds at most %d bytes",
               (long long)st.st_size, OOMB_SCENARIO_MAX_FILE);
        goto fail;
    }
    /* One byte more than allowed, to notice a file that grew meanwhile. */
    *buf = malloc((size_t)OOMB_SCENARIO_MAX_FILE + 2);
    if (*buf == NULL) {
        err_oom(c);
        goto fail;
    }
    size_t got = 0;
    while (got <= (size_t)OOMB_SCENARIO_MAX_FILE) {
        ssize_t n = read(fd, *buf + got, (size_t)OOMB_SCENARIO_MAX_FILE + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err_io(c, "cannot read: %s", strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got > (size_t)OOMB_SCENARIO_MAX_FILE) {
        err_io(c, "the file is larger than %d bytes, the most a scenario file holds",
               OOMB_SCENARIO_MAX_FILE);
        goto fail;
    }
    (*buf)[got] = '\0';
    *len = got;
    close(fd);
    return OOMB_OK;

fail:
    close(fd);
    free(*buf);
    *buf = NULL;
    return c->status;
}

/* Parses text[0..len) as the scenario named `path`; c->sc is allocated. */
static int load_text(struct ctx *c, const unsigned char *text, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    int parser_ready = 0, doc_ready = 0;

    if (check_bounds(c, text, len) != OOMB_OK)
        return c->status;
    if (!yaml_parser_initialize(&parser))
        return err_oom(c);
    parser_ready = 1;
    yaml_parser_set_input_string(&parser, text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_error(c, &parser);
        goto fail;
    }
    doc_ready = 1;
    c->doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL) {
        err_at(c, NULL, NULL,
               "empty scenario file; expected a mapping with model, batch and "
               "strategies");
        goto fail;
    }
    if (read_root(c, root) != OOMB_OK)
        goto fail;

    /* One document per file: a second one is almost certainly a mistake. */
    if (!yaml_parser_load(&parser, &extra)) {
        yaml_error(c, &parser);
        goto fail;
    }
    yaml_node_t *extra_root = yaml_document_get_root_node(&extra);
    if (extra_root != NULL)
        err_at(c, extra_root, NULL, "a scenario file holds one YAML document; found a second");
    yaml_document_delete(&extra);

fail:
    c->doc = NULL;
    if (doc_ready)
        yaml_document_delete(&doc);
    if (parser_ready)
        yaml_parser_delete(&parser);
    return c->status;
}

/* Shared by both loaders: `text` NULL reads the file at `path`. */
static int load(const char *path, const void *text, size_t len, struct oomb_scenario **out,
                char *err, size_t err_len)
{
    if (err != NULL && err_len > 0)
        err[0] = '\0';
    if (out == NULL)
        return OOMB_ERR_INVALID;
    *out = NULL;
    if (path == NULL) {
        if (err != NULL && err_len > 0)
            snprintf(err, err_len, "no scenario file given");
        return OOMB_ERR_INVALID;
    }

    struct ctx c = {.file = path, .err = err, .err_len = err_len, .status = OOMB_OK};
    unsigned char *buf = NULL;

    c.sc = calloc(1, sizeof *c.sc);
    if (c.sc == NULL || (c.sc->path = strdup(path)) == NULL) {
        err_oom(&c);
        goto fail;
    }
    c.file = c.sc->path;
    if (text == NULL) {
        if (read_file(&c, path, &buf, &len) != OOMB_OK)
            goto fail;
        text = buf;
    } else if (len > (size_t)OOMB_SCENARIO_MAX_FILE) {
        err_io(&c, "the text is %zu bytes; a scenario holds at most %d bytes", len,
               OOMB_SCENARIO_MAX_FILE);
        goto fail;
    }
    if (load_text(&c, text, len) != OOMB_OK)
        goto fail;
    free(buf);
    *out = c.sc;
    return OOMB_OK;

fail:
    free(buf);
    oomb_scenario_destroy(c.sc);
    return c.status != OOMB_OK ? c.status : OOMB_ERR_INTERNAL;
}

int oomb_scenario_load(const char *path, struct oomb_scenario **out, char *err, size_t err_len)
{
    return load(path, NULL, 0, out, err, err_len);
}

int oomb_scenario_load_mem(const char *path, const void *text, size_t len,
                           struct oomb_scenario **out, char *err, size_t err_len)
{
    if (text == NULL && len > 0)
        return OOMB_ERR_INVALID;
    return load(path, text != NULL ? text : "", len, out, err, err_len);
}

void oomb_scenario_destroy(struct oomb_scenario *sc)
{
    if (sc == NULL)
        return;
    for (int i = 0; i < sc->n_strategies; i++) {
        struct oomb_strategy_spec *st = &sc->strategies[i];
        for (int j = 0; j < st->n_params; j++) {
            free(st->params[j].key);
            free(st->params[j].value);
        }
        free(st->params);
        free(st->plugin);
        free(st->label);
    }
    free(sc->strategies);
    for (int i = 0; i < sc->n_checks; i++)
        free(sc->checks[i].expr);
    free(sc->checks);
    free(sc->batches);
    free(sc->layer_storage);
    free(sc->layer_ptrs);
    free(sc->nested_storage);
    free(sc->body_ptrs);
    free(sc->description);
    free(sc->name);
    free(sc->path);
    free(sc);
}
