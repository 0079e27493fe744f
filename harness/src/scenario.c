/*
 * Scenario files: libyaml loads the file into a node tree (nodes carry their
 * line and column), and the walkers below turn it into a validated
 * `struct oomb_scenario`. Strict on purpose: unknown keys, duplicate keys and
 * wrong types are errors, and every error names file:line:column and the key,
 * so a typo in a nightly scenario fails loudly instead of running the wrong
 * thing. The format is documented in docs/scenario-format.md.
 */
#include "scenario.h"
#include "check.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

struct ctx {
    const char *file; /* sc->path */
    yaml_document_t *doc;
    struct oomb_scenario *sc;
    char *err;
    size_t err_len;
    int status; /* first error wins */
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
            if (key != NULL)
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

static int is_ident(const char *s)
{
    if (!isalpha((unsigned char)s[0]) && s[0] != '_')
        return 0;
    for (size_t i = 1; s[i]; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return 0;
    return 1;
}

static int is_plugin_name(const char *s)
{
    if (s[0] == '\0')
        return 0;
    for (size_t i = 0; s[i]; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_')
            return 0;
    return 1;
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

static const char *layer_kind_name(enum oomb_layer_kind k)
{
    switch (k) {
    case OOMB_LAYER_LINEAR:
        return "linear";
    case OOMB_LAYER_RELU:
        return "relu";
    case OOMB_LAYER_GELU:
        return "gelu";
    }
    return "?";
}

/* One item of model.layers. `in` is the width coming in; `in_from` says from
 * where, for messages. */
static int read_layer(struct ctx *c, yaml_node_t *item, int idx, int64_t in, const char *in_from,
                      struct oomb_layer *l)
{
    const char *key = "model.layers";
    char buf[64];
    memset(l, 0, sizeof *l);
    l->struct_size = sizeof *l;
    l->in_features = in;
    l->out_features = in;
    l->has_bias = 1;

    if (item->type == YAML_SCALAR_NODE && !is_null(item)) {
        const char *k = text(item);
        if (strcmp(k, "relu") == 0) {
            l->kind = OOMB_LAYER_RELU;
            return OOMB_OK;
        }
        if (strcmp(k, "gelu") == 0) {
            l->kind = OOMB_LAYER_GELU;
            return OOMB_OK;
        }
        if (strcmp(k, "linear") == 0)
            return err_at(c, item, key,
                          "layer %d (linear): needs its output size, e.g. '- linear: 256'", idx);
        return err_at(c, item, key,
                      "layer %d: unknown layer kind '%s'; expected one of: linear, relu, gelu", idx,
                      k);
    }
    if (item->type != YAML_MAPPING_NODE)
        return err_at(c, item, key,
                      "layer %d: expected a layer kind (relu, gelu) or a one-key mapping such as "
                      "'linear: 256', got %s",
                      idx, describe(item, buf, sizeof buf));
    yaml_node_pair_t *pairs = item->data.mapping.pairs.start;
    int np = (int)(item->data.mapping.pairs.top - pairs);
    if (np != 1)
        return err_at(c, item, key,
                      "layer %d: expected a one-key mapping such as 'linear: 256', got %d keys",
                      idx, np);
    yaml_node_t *kn = node(c, pairs[0].key), *vn = node(c, pairs[0].value);
    if (kn->type != YAML_SCALAR_NODE)
        return err_at(c, kn, key, "layer %d: the layer kind must be a name", idx);
    const char *kind = text(kn);
    if (strcmp(kind, "relu") == 0 || strcmp(kind, "gelu") == 0)
        return err_at(c, kn, key, "layer %d (%s): takes no arguments; write '- %s'", idx, kind,
                      kind);
    if (strcmp(kind, "linear") != 0)
        return err_at(c, kn, key,
                      "layer %d: unknown layer kind '%s'; expected one of: linear, relu, gelu", idx,
                      kind);

    l->kind = OOMB_LAYER_LINEAR;
    int64_t out = 0, in_given = -1;
    if (vn->type == YAML_MAPPING_NODE) {
        struct field f[] = {{.name = "out"}, {.name = "in"}, {.name = "bias"}};
        if (read_map(c, vn, "model.layers.linear", f, 3) != OOMB_OK)
            return c->status;
        if (f[0].val == NULL)
            return err_at(c, vn, "model.layers.linear.out",
                          "layer %d (linear): missing required key 'out'", idx);
        if (get_int(c, f[0].val, "model.layers.linear.out", 1, &out) != OOMB_OK)
            return c->status;
        if (f[1].val != NULL) {
            if (get_int(c, f[1].val, "model.layers.linear.in", 1, &in_given) != OOMB_OK)
                return c->status;
            if (in_given != in)
                return err_at(c, f[1].val, "model.layers.linear.in",
                              "layer %d (linear): in_features %lld does not match the %lld "
                              "features coming in (%s)",
                              idx, (long long)in_given, (long long)in, in_from);
        }
        if (f[2].val != NULL && get_bool(c, f[2].val, "model.layers.linear.bias", &l->has_bias))
            return c->status;
    } else if (get_int(c, vn, "model.layers.linear", 1, &out) != OOMB_OK) {
        return c->status;
    }
    l->out_features = out;

    int64_t w, n;
    if (__builtin_mul_overflow(out, in, &w) ||
        __builtin_add_overflow(w, l->has_bias ? out : 0, &n) || n > INT64_MAX / 4)
        return err_at(c, item, key,
                      "layer %d (linear): %lld x %lld parameters overflow a 64-bit byte count", idx,
                      (long long)out, (long long)in);
    l->n_params = n;
    return OOMB_OK;
}

static int read_model(struct ctx *c, yaml_node_t *mn)
{
    struct oomb_scenario *sc = c->sc;
    struct field f[] = {{.name = "input"}, {.name = "classes"}, {.name = "layers"}};
    if (read_map(c, mn, "model", f, 3) != OOMB_OK)
        return c->status;
    for (int i = 0; i < 3; i++)
        if (f[i].val == NULL) {
            char key[64];
            join(key, sizeof key, "model", f[i].name);
            return err_at(c, mn, key, "missing required key '%s' in 'model'", f[i].name);
        }
    sc->model.struct_size = sizeof sc->model;
    if (get_int(c, f[0].val, "model.input", 1, &sc->model.input_features) != OOMB_OK)
        return c->status;
    if (get_int(c, f[1].val, "model.classes", 1, &sc->model.classes) != OOMB_OK)
        return c->status;
    if (sc->model.classes < 2)
        return err_at(c, f[1].val, "model.classes", "expected at least 2 classes, got %lld",
                      (long long)sc->model.classes);

    yaml_node_t *ln = f[2].val;
    if (ln->type != YAML_SEQUENCE_NODE)
        return err_type(c, ln, "model.layers", "a sequence of layers");
    int n = (int)(ln->data.sequence.items.top - ln->data.sequence.items.start);
    if (n == 0)
        return err_at(c, ln, "model.layers", "expected at least one layer, got an empty list");
    sc->layer_storage = calloc((size_t)n, sizeof *sc->layer_storage);
    sc->layer_ptrs = calloc((size_t)n, sizeof *sc->layer_ptrs);
    if (sc->layer_storage == NULL || sc->layer_ptrs == NULL)
        return err_oom(c);

    int64_t in = sc->model.input_features;
    char from[96] = "model.input";
    yaml_node_t *last = NULL;
    for (int i = 0; i < n; i++) {
        last = node(c, ln->data.sequence.items.start[i]);
        struct oomb_layer *l = &sc->layer_storage[i];
        if (read_layer(c, last, i + 1, in, from, l) != OOMB_OK)
            return c->status;
        sc->layer_ptrs[i] = l;
        sc->model.n_layers = i + 1;
        in = l->out_features;
        snprintf(from, sizeof from, "output of layer %d (%s)", i + 1, layer_kind_name(l->kind));
    }
    sc->model.layers = sc->layer_ptrs;
    const struct oomb_layer *tail = &sc->layer_storage[n - 1];
    if (tail->out_features != sc->model.classes)
        return err_at(c, last, "model.layers",
                      "layer %d (%s), the last layer, outputs %lld features but model.classes "
                      "is %lld; the last layer must output one value per class",
                      n, layer_kind_name(tail->kind), (long long)tail->out_features,
                      (long long)sc->model.classes);
    return OOMB_OK;
}

/* ------------------------------------------------------------ sections -- */

static int read_input(struct ctx *c, yaml_node_t *n, int *seed_set)
{
    yaml_node_t *kind = n;
    if (n->type == YAML_MAPPING_NODE) {
        struct field f[] = {{.name = "kind"}, {.name = "seed"}};
        if (read_map(c, n, "input", f, 2) != OOMB_OK)
            return c->status;
        if (f[1].val != NULL) {
            int64_t seed;
            if (get_int(c, f[1].val, "input.seed", 0, &seed) != OOMB_OK)
                return c->status;
            c->sc->seed = (uint64_t)seed;
            *seed_set = 1;
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

/* The widest activation of the model, in features per sample. */
static int64_t widest(const struct oomb_scenario *sc)
{
    int64_t w = sc->model.input_features;
    for (int i = 0; i < sc->model.n_layers; i++)
        if (sc->layer_storage[i].out_features > w)
            w = sc->layer_storage[i].out_features;
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
        int count = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
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
    struct field f[] = {{.name = "warmup"}, {.name = "measured"}};
    if (read_map(c, n, "steps", f, 2) != OOMB_OK)
        return c->status;
    if (f[0].val != NULL && get_int(c, f[0].val, "steps.warmup", 0, &c->sc->warmup_steps))
        return c->status;
    if (f[1].val != NULL && get_int(c, f[1].val, "steps.measured", 1, &c->sc->measured_steps))
        return c->status;
    return OOMB_OK;
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
    if (!(s > 0))
        return err_at(c, n, "timeout", "expected a duration > 0, got '%s'", text(n));
    c->sc->timeout_s = s;
    return OOMB_OK;
}

static int read_params(struct ctx *c, yaml_node_t *n, struct oomb_strategy_spec *st)
{
    const char *path = "strategies.params";
    if (n->type != YAML_MAPPING_NODE)
        return err_type(c, n, path, "a mapping of parameter names to values");
    int count = (int)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
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
        struct field f[] = {{.name = "plugin"}, {.name = "label"}, {.name = "params"}};
        if (read_map(c, n, "strategies", f, 3) != OOMB_OK)
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
                              "strategy %d: label '%s' must be a name ([A-Za-z_][A-Za-z0-9_]*) "
                              "so that checks can refer to it",
                              idx, label);
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
                      "strategy %d: '%s' is not a plugin name ([a-z0-9_]+)", idx, plugin);
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
    int count = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0)
        return err_at(c, n, "strategies", "expected at least one strategy, got an empty list");
    sc->strategies = calloc((size_t)count, sizeof *sc->strategies);
    if (sc->strategies == NULL)
        return err_oom(c);
    for (int i = 0; i < count; i++) {
        struct oomb_strategy_spec *st = &sc->strategies[i];
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
    int count = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
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
                    return err_at(c, f[1].val, "checks.mode",
                                  "expected train or infer, got '%s'", m);
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

static int read_name(struct ctx *c, yaml_node_t *n)
{
    const char *s = NULL;
    if (get_str(c, n, "name", &s) != OOMB_OK)
        return c->status;
    if (s[0] == '\0')
        return err_at(c, n, "name", "expected a non-empty name");
    for (size_t i = 0; s[i]; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
            return err_at(c, n, "name", "name '%s' may only hold letters, digits, '_', '-' and '.'",
                          s);
    return dup_str(c, s, &c->sc->name);
}

/* The file name without directories and without its last extension. */
static int default_name(struct ctx *c)
{
    const char *base = strrchr(c->sc->path, '/');
    base = base != NULL ? base + 1 : c->sc->path;
    const char *dot = strrchr(base, '.');
    size_t len = dot != NULL && dot != base ? (size_t)(dot - base) : strlen(base);
    c->sc->name = strndup(base, len);
    return c->sc->name != NULL ? OOMB_OK : err_oom(c);
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
        F_BUDGET,
        F_BACKEND,
        F_TIMEOUT,
        F_STRATEGIES,
        F_CHECKS,
        F_N
    };
    struct field f[F_N] = {
        {.name = "name"},       {.name = "description"}, {.name = "model"},   {.name = "input"},
        {.name = "seed"},       {.name = "mode"},        {.name = "batch"},   {.name = "optimizer"},
        {.name = "steps"},      {.name = "budget"},      {.name = "backend"}, {.name = "timeout"},
        {.name = "strategies"}, {.name = "checks"},
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

    if (f[F_NAME].val != NULL ? read_name(c, f[F_NAME].val) : default_name(c))
        return c->status;
    const char *desc = "";
    if (f[F_DESC].val != NULL && !is_null(f[F_DESC].val) &&
        get_str(c, f[F_DESC].val, "description", &desc) != OOMB_OK)
        return c->status;
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
    if (f[F_MODE].val != NULL ? read_mode(c, f[F_MODE].val) != OOMB_OK
                              : (sc->modes = OOMB_MODE_TRAIN, 0))
        return c->status;
    if (read_batch(c, f[F_BATCH].val) != OOMB_OK)
        return c->status;
    if (f[F_OPT].val != NULL && read_optimizer(c, f[F_OPT].val) != OOMB_OK)
        return c->status;
    if (f[F_STEPS].val != NULL && read_steps(c, f[F_STEPS].val) != OOMB_OK)
        return c->status;
    if (f[F_BUDGET].val != NULL && read_budget(c, f[F_BUDGET].val) != OOMB_OK)
        return c->status;
    if (f[F_BACKEND].val != NULL && read_backend(c, f[F_BACKEND].val) != OOMB_OK)
        return c->status;
    if (f[F_TIMEOUT].val != NULL && read_timeout(c, f[F_TIMEOUT].val) != OOMB_OK)
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

int oomb_scenario_load(const char *path, struct oomb_scenario **out, char *err, size_t err_len)
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
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    int parser_ready = 0, doc_ready = 0;
    FILE *fp = NULL;

    c.sc = calloc(1, sizeof *c.sc);
    if (c.sc == NULL || (c.sc->path = strdup(path)) == NULL) {
        err_oom(&c);
        goto fail;
    }
    c.file = c.sc->path;
    fp = fopen(path, "rb");
    if (fp == NULL) {
        c.status = OOMB_ERR_IO;
        if (err != NULL && err_len > 0)
            snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (!yaml_parser_initialize(&parser)) {
        err_oom(&c);
        goto fail;
    }
    parser_ready = 1;
    yaml_parser_set_input_file(&parser, fp);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_error(&c, &parser);
        goto fail;
    }
    doc_ready = 1;
    c.doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL) {
        err_at(&c, NULL, NULL,
               "empty scenario file; expected a mapping with model, batch and "
               "strategies");
        goto fail;
    }
    if (read_root(&c, root) != OOMB_OK)
        goto fail;

    /* One document per file: a second one is almost certainly a mistake. */
    if (!yaml_parser_load(&parser, &extra)) {
        yaml_error(&c, &parser);
        goto fail;
    }
    yaml_node_t *extra_root = yaml_document_get_root_node(&extra);
    if (extra_root != NULL)
        err_at(&c, extra_root, NULL, "a scenario file holds one YAML document; found a second");
    yaml_document_delete(&extra);
    if (c.status != OOMB_OK)
        goto fail;

    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(fp);
    *out = c.sc;
    return OOMB_OK;

fail:
    if (doc_ready)
        yaml_document_delete(&doc);
    if (parser_ready)
        yaml_parser_delete(&parser);
    if (fp != NULL)
        fclose(fp);
    oomb_scenario_destroy(c.sc);
    return c.status != OOMB_OK ? c.status : OOMB_ERR_INTERNAL;
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
    free(sc->description);
    free(sc->name);
    free(sc->path);
    free(sc);
}
