/*
 * Check expressions: a small recursive-descent parser into an expression
 * tree, and its evaluation against values the caller resolves. See check.h
 * for the grammar and the contract.
 */
#include "check.h"

#include "results.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deep enough for any expression a person writes, shallow enough that the
 * recursion cannot exhaust the stack on hostile input. The parser's recursion
 * is bounded by OOMB_CHECK_MAX_DEPTH; that of free_node() and eval_node()
 * follows the tree, whose depth is below its node count, which the length
 * bound OOMB_CHECK_MAX_LEN keeps under OOMB_CHECK_MAX_LEN. */
#define CHECK_MAX_DEPTH OOMB_CHECK_MAX_DEPTH

enum node_kind { N_NUM, N_REF, N_NEG, N_ADD, N_SUB, N_MUL, N_DIV };

struct node {
    enum node_kind kind;
    int col;    /* 1-based column of the token that made this node */
    double num; /* N_NUM */
    int ref;    /* N_REF: index into refs */
    struct node *a, *b;
};

enum cmp_op { OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE };

static const char *const op_text[] = {"<", "<=", ">", ">=", "==", "!="};

struct oomb_check {
    char *expr;
    struct node *lhs, *rhs;
    enum cmp_op op;
    char **refs;
    int n_refs;
};

/* ------------------------------------------------------------- parsing -- */

struct parser {
    const char *s;
    size_t pos;
    int depth;
    struct oomb_check *c;
    char *err;
    size_t err_len;
    int status; /* first error wins */
};

static void perr(struct parser *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void perr(struct parser *p, size_t at, const char *fmt, ...)
{
    if (p->status != OOMB_OK)
        return;
    p->status = OOMB_ERR_PARSE;
    if (p->err == NULL || p->err_len == 0)
        return;
    int n = snprintf(p->err, p->err_len, "column %zu: ", at + 1);
    if (n < 0 || (size_t)n >= p->err_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->err_len - (size_t)n, fmt, ap);
    va_end(ap);
}

static void oom(struct parser *p)
{
    if (p->status != OOMB_OK)
        return;
    p->status = OOMB_ERR_OOM;
    if (p->err != NULL && p->err_len > 0)
        snprintf(p->err, p->err_len, "out of memory");
}

static void skip_ws(struct parser *p)
{
    while (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
           p->s[p->pos] == '\r')
        p->pos++;
}

/* A short description of what stands at `pos`, for error messages. */
static void describe_at(const struct parser *p, size_t pos, char *buf, size_t len)
{
    const char *s = p->s + pos;
    if (*s == '\0') {
        snprintf(buf, len, "the end of the expression");
        return;
    }
    size_t n = 1;
    if (isalnum((unsigned char)*s) || *s == '_' || *s == '.') {
        while (n < 24 && (isalnum((unsigned char)s[n]) || s[n] == '_' || s[n] == '.'))
            n++;
    }
    snprintf(buf, len, "'%.*s'", (int)n, s);
}

static void free_node(struct node *n)
{
    if (n == NULL)
        return;
    free_node(n->a);
    free_node(n->b);
    free(n);
}

static struct node *new_node(struct parser *p, enum node_kind kind, size_t at)
{
    struct node *n = calloc(1, sizeof *n);
    if (n == NULL) {
        oom(p);
        return NULL;
    }
    n->kind = kind;
    n->col = (int)at + 1;
    return n;
}

static int is_ident_start(char ch)
{
    return isalpha((unsigned char)ch) || ch == '_';
}

static int is_ident_char(char ch)
{
    return isalnum((unsigned char)ch) || ch == '_';
}

/* Index of `name` in the check's reference list, adding it if new; -1 on OOM. */
static int intern_ref(struct parser *p, const char *name, size_t len)
{
    struct oomb_check *c = p->c;
    for (int i = 0; i < c->n_refs; i++)
        if (strlen(c->refs[i]) == len && memcmp(c->refs[i], name, len) == 0)
            return i;
    char **grown = realloc(c->refs, (size_t)(c->n_refs + 1) * sizeof *grown);
    if (grown == NULL) {
        oom(p);
        return -1;
    }
    c->refs = grown;
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        oom(p);
        return -1;
    }
    memcpy(copy, name, len);
    copy[len] = '\0';
    c->refs[c->n_refs] = copy;
    return c->n_refs++;
}

static struct node *parse_sum(struct parser *p);

static struct node *parse_number(struct parser *p)
{
    size_t start = p->pos, i = p->pos;
    const char *s = p->s;
    int digits = 0;
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
    if (digits == 0) {
        perr(p, start, "malformed number");
        return NULL;
    }
    if (s[i] == 'e' || s[i] == 'E') {
        size_t e = i + 1;
        if (s[e] == '+' || s[e] == '-')
            e++;
        if (!isdigit((unsigned char)s[e])) {
            perr(p, i, "malformed exponent in number");
            return NULL;
        }
        while (isdigit((unsigned char)s[e]))
            e++;
        i = e;
    }
    if (is_ident_start(s[i]) || s[i] == '.') {
        perr(p, i, "unexpected '%c' after a number", s[i]);
        return NULL;
    }
    char buf[128];
    if (i - start >= sizeof buf) {
        perr(p, start, "number too long");
        return NULL;
    }
    memcpy(buf, s + start, i - start);
    buf[i - start] = '\0';
    double v = strtod(buf, NULL);
    if (!isfinite(v)) {
        perr(p, start, "number out of range");
        return NULL;
    }
    struct node *n = new_node(p, N_NUM, start);
    if (n == NULL)
        return NULL;
    n->num = v;
    p->pos = i;
    return n;
}

static struct node *parse_ref(struct parser *p)
{
    size_t start = p->pos, i = p->pos;
    const char *s = p->s;
    int parts = 0;
    for (;;) {
        if (!is_ident_start(s[i])) {
            perr(p, i, "expected a name after '.' in a reference");
            return NULL;
        }
        while (is_ident_char(s[i]))
            i++;
        parts++;
        if (s[i] != '.')
            break;
        i++;
    }
    if (parts < 2) {
        perr(p, start, "'%.*s' is not a reference; expected label.section.field", (int)(i - start),
             s + start);
        return NULL;
    }
    int idx = intern_ref(p, s + start, i - start);
    if (idx < 0)
        return NULL;
    struct node *n = new_node(p, N_REF, start);
    if (n == NULL)
        return NULL;
    n->ref = idx;
    p->pos = i;
    return n;
}

static struct node *parse_unary(struct parser *p)
{
    skip_ws(p);
    if (++p->depth > CHECK_MAX_DEPTH) {
        perr(p, p->pos, "expression nested too deeply");
        return NULL;
    }
    struct node *out = NULL;
    char ch = p->s[p->pos];
    size_t at = p->pos;
    if (ch == '-' || ch == '+') {
        p->pos++;
        struct node *operand = parse_unary(p);
        if (operand == NULL)
            goto done;
        if (ch == '+') {
            out = operand;
            goto done;
        }
        out = new_node(p, N_NEG, at);
        if (out == NULL) {
            free_node(operand);
            goto done;
        }
        out->a = operand;
    } else if (ch == '(') {
        p->pos++;
        out = parse_sum(p);
        if (out == NULL)
            goto done;
        skip_ws(p);
        if (p->s[p->pos] != ')') {
            char what[64];
            describe_at(p, p->pos, what, sizeof what);
            perr(p, p->pos, "expected ')' to close the '(' at column %zu, got %s", at + 1, what);
            free_node(out);
            out = NULL;
            goto done;
        }
        p->pos++;
    } else if (isdigit((unsigned char)ch) || ch == '.') {
        out = parse_number(p);
    } else if (is_ident_start(ch)) {
        out = parse_ref(p);
    } else {
        char what[64];
        describe_at(p, at, what, sizeof what);
        perr(p, at, "expected a number, a reference or '(', got %s", what);
    }
done:
    p->depth--;
    return out;
}

static struct node *parse_product(struct parser *p)
{
    struct node *lhs = parse_unary(p);
    while (lhs != NULL) {
        skip_ws(p);
        char ch = p->s[p->pos];
        if (ch != '*' && ch != '/')
            break;
        size_t at = p->pos++;
        struct node *rhs = parse_unary(p);
        struct node *n = rhs ? new_node(p, ch == '*' ? N_MUL : N_DIV, at) : NULL;
        if (n == NULL) {
            free_node(lhs);
            free_node(rhs);
            return NULL;
        }
        n->a = lhs;
        n->b = rhs;
        lhs = n;
    }
    return lhs;
}

static struct node *parse_sum(struct parser *p)
{
    struct node *lhs = parse_product(p);
    while (lhs != NULL) {
        skip_ws(p);
        char ch = p->s[p->pos];
        if (ch != '+' && ch != '-')
            break;
        size_t at = p->pos++;
        struct node *rhs = parse_product(p);
        struct node *n = rhs ? new_node(p, ch == '+' ? N_ADD : N_SUB, at) : NULL;
        if (n == NULL) {
            free_node(lhs);
            free_node(rhs);
            return NULL;
        }
        n->a = lhs;
        n->b = rhs;
        lhs = n;
    }
    return lhs;
}

/* Reads a comparison operator at p->pos; returns its length or 0. */
static size_t match_op(const char *s, enum cmp_op *op)
{
    if (s[0] == '<' && s[1] == '=') {
        *op = OP_LE;
        return 2;
    }
    if (s[0] == '>' && s[1] == '=') {
        *op = OP_GE;
        return 2;
    }
    if (s[0] == '=' && s[1] == '=') {
        *op = OP_EQ;
        return 2;
    }
    if (s[0] == '!' && s[1] == '=') {
        *op = OP_NE;
        return 2;
    }
    if (s[0] == '<') {
        *op = OP_LT;
        return 1;
    }
    if (s[0] == '>') {
        *op = OP_GT;
        return 1;
    }
    return 0;
}

void oomb_check_destroy(struct oomb_check *c)
{
    if (c == NULL)
        return;
    free_node(c->lhs);
    free_node(c->rhs);
    for (int i = 0; i < c->n_refs; i++)
        free(c->refs[i]);
    free(c->refs);
    free(c->expr);
    free(c);
}

int oomb_check_parse(const char *expr, struct oomb_check **out, char *err, size_t err_len)
{
    if (err != NULL && err_len > 0)
        err[0] = '\0';
    if (out == NULL)
        return OOMB_ERR_INVALID;
    *out = NULL;
    if (expr == NULL) {
        if (err != NULL && err_len > 0)
            snprintf(err, err_len, "no expression");
        return OOMB_ERR_INVALID;
    }

    struct parser p = {.s = expr, .err = err, .err_len = err_len, .status = OOMB_OK};
    size_t len = strnlen(expr, OOMB_CHECK_MAX_LEN + 1);
    if (len > OOMB_CHECK_MAX_LEN) {
        perr(&p, OOMB_CHECK_MAX_LEN, "expression longer than %d bytes", OOMB_CHECK_MAX_LEN);
        return p.status;
    }
    p.c = calloc(1, sizeof *p.c);
    if (p.c == NULL || (p.c->expr = strdup(expr)) == NULL) {
        oom(&p);
        goto fail;
    }

    skip_ws(&p);
    if (expr[p.pos] == '\0') {
        perr(&p, p.pos, "empty expression; expected a comparison such as 'a.b.c <= 2 * d.b.c'");
        goto fail;
    }
    p.c->lhs = parse_sum(&p);
    if (p.c->lhs == NULL)
        goto fail;
    skip_ws(&p);
    size_t oplen = match_op(expr + p.pos, &p.c->op);
    if (oplen == 0) {
        if (expr[p.pos] == '=')
            perr(&p, p.pos, "'=' is not a comparison; use '=='");
        else if (expr[p.pos] == '\0')
            perr(&p, p.pos,
                 "expected a comparison operator (<, <=, >, >=, ==, !=) before the "
                 "end of the expression");
        else {
            char what[64];
            describe_at(&p, p.pos, what, sizeof what);
            perr(&p, p.pos, "expected a comparison operator (<, <=, >, >=, ==, !=), got %s", what);
        }
        goto fail;
    }
    p.pos += oplen;
    p.c->rhs = parse_sum(&p);
    if (p.c->rhs == NULL)
        goto fail;
    skip_ws(&p);
    if (expr[p.pos] != '\0') {
        enum cmp_op dummy;
        char what[64];
        describe_at(&p, p.pos, what, sizeof what);
        if (match_op(expr + p.pos, &dummy) > 0)
            perr(&p, p.pos, "only one comparison is allowed, got a second one %s", what);
        else
            perr(&p, p.pos, "unexpected %s after the expression", what);
        goto fail;
    }
    *out = p.c;
    return OOMB_OK;

fail:
    oomb_check_destroy(p.c);
    return p.status != OOMB_OK ? p.status : OOMB_ERR_INTERNAL;
}

/* ----------------------------------------------------------- evaluation -- */

struct evaluator {
    const double *values;
    char *err;
    size_t err_len;
};

static int eval_node(const struct node *n, struct evaluator *ev, double *out)
{
    double a = 0, b = 0;
    int rc;
    switch (n->kind) {
    case N_NUM:
        *out = n->num;
        return OOMB_OK;
    case N_REF:
        *out = ev->values[n->ref];
        return OOMB_OK;
    case N_NEG:
        if ((rc = eval_node(n->a, ev, &a)) != OOMB_OK)
            return rc;
        *out = -a;
        return OOMB_OK;
    default:
        break;
    }
    if ((rc = eval_node(n->a, ev, &a)) != OOMB_OK || (rc = eval_node(n->b, ev, &b)) != OOMB_OK)
        return rc;
    switch (n->kind) {
    case N_ADD:
        *out = a + b;
        break;
    case N_SUB:
        *out = a - b;
        break;
    case N_MUL:
        *out = a * b;
        break;
    case N_DIV:
        if (b == 0.0) {
            if (ev->err != NULL && ev->err_len > 0)
                snprintf(ev->err, ev->err_len, "column %d: division by zero", n->col);
            return OOMB_ERR_NUMERIC;
        }
        *out = a / b;
        break;
    default:
        return OOMB_ERR_INTERNAL;
    }
    return OOMB_OK;
}

int oomb_check_eval(const struct oomb_check *c, oomb_check_resolver r, void *user,
                    struct oomb_check_result *res, char *err, size_t err_len)
{
    if (err != NULL && err_len > 0)
        err[0] = '\0';
    if (res != NULL)
        *res = (struct oomb_check_result){.pass = 0, .lhs = NAN, .rhs = NAN, .op = ""};
    if (c == NULL || res == NULL || (r == NULL && c->n_refs > 0)) {
        if (err != NULL && err_len > 0)
            snprintf(err, err_len, "oomb_check_eval: NULL argument");
        return OOMB_ERR_INVALID;
    }
    res->op = op_text[c->op];

    double *values = NULL;
    int rc = OOMB_OK;
    if (c->n_refs > 0) {
        values = calloc((size_t)c->n_refs, sizeof *values);
        if (values == NULL) {
            if (err != NULL && err_len > 0)
                snprintf(err, err_len, "out of memory");
            return OOMB_ERR_OOM;
        }
    }
    for (int i = 0; i < c->n_refs; i++) {
        if (err != NULL && err_len > 0)
            err[0] = '\0';
        rc = r(user, c->refs[i], &values[i], err, err_len);
        if (rc != OOMB_OK) {
            if (err != NULL && err_len > 0 && err[0] == '\0')
                snprintf(err, err_len, "cannot resolve '%s'", c->refs[i]);
            goto fail;
        }
    }

    struct evaluator ev = {.values = values, .err = err, .err_len = err_len};
    double lhs, rhs;
    if ((rc = eval_node(c->lhs, &ev, &lhs)) != OOMB_OK ||
        (rc = eval_node(c->rhs, &ev, &rhs)) != OOMB_OK)
        goto fail;

    int pass = 0;
    if (!isnan(lhs) && !isnan(rhs)) {
        switch (c->op) {
        case OP_LT:
            pass = lhs < rhs;
            break;
        case OP_LE:
            pass = lhs <= rhs;
            break;
        case OP_GT:
            pass = lhs > rhs;
            break;
        case OP_GE:
            pass = lhs >= rhs;
            break;
        case OP_EQ:
            pass = lhs == rhs;
            break;
        case OP_NE:
            pass = lhs != rhs;
            break;
        }
    }
    res->pass = pass;
    res->lhs = lhs;
    res->rhs = rhs;
    free(values);
    return OOMB_OK;

fail:
    free(values);
    return rc;
}

int oomb_check_ref_count(const struct oomb_check *c)
{
    return c != NULL ? c->n_refs : 0;
}

const char *oomb_check_ref(const struct oomb_check *c, int i)
{
    if (c == NULL || i < 0 || i >= c->n_refs)
        return NULL;
    return c->refs[i];
}

const char *oomb_check_expr(const struct oomb_check *c)
{
    return c != NULL ? c->expr : NULL;
}

/* ------------------------------------------------------- run fields ---- */

static int run_field(const struct oomb_run_result *r, const char *section, const char *field,
                     double *out)
{
    if (strcmp(section, "memory") == 0) {
        if (strcmp(field, "peak") == 0 || strcmp(field, "peak_bytes") == 0 ||
            strcmp(field, "total") == 0) {
            *out = (double)r->peak_bytes;
            return 1;
        }
        for (int t = 0; t < OOMB_TAG_COUNT; t++)
            if (strcmp(field, oomb_tag_name((enum oomb_tag)t)) == 0) {
                *out = (double)r->peak_by_tag[t];
                return 1;
            }
        if (strcmp(field, "host_peak_rss") == 0) {
            *out = (double)r->host_peak_rss_bytes;
            return 1;
        }
        /* the host spaces: host_peak (both), host_<tag> (pageable + pinned),
         * to_host, to_device (bytes copied) */
        if (strcmp(field, "host_peak") == 0) {
            *out = (double)r->space_peak[0];
            return 1;
        }
        if (strcmp(field, "to_host") == 0 || strcmp(field, "to_device") == 0) {
            *out = (double)(field[3] == 'h' ? r->to_host_bytes : r->to_device_bytes);
            return 1;
        }
        /* the input pipeline: data set held in host memory, staging */
        if (strcmp(field, "dataset") == 0 || strcmp(field, "staging") == 0) {
            *out = (double)(field[0] == 'd' ? r->input_dataset_bytes : r->input_staging_bytes);
            return 1;
        }
        /* allocator: caching: the model's reserved peak and at the end,
         * fragmentation at the reserved peak, the largest cached free block */
        if (r->alloc_kind == 1) {
            const struct oomb_cachealloc_stats *a = &r->alloc;
            const char *const names[] = {"reserved", "reserved_end", "fragmentation",
                                         "largest_free"};
            const uint64_t vals[] = {a->reserved_peak, r->reserved_end,
                                     a->reserved_peak - a->requested_at_reserved_peak,
                                     a->largest_free};
            for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
                if (strcmp(field, names[i]) == 0) {
                    *out = (double)vals[i];
                    return 1;
                }
        }
        if (strncmp(field, "host_", 5) == 0)
            for (int t = 0; t < OOMB_TAG_COUNT; t++)
                if (strcmp(field + 5, oomb_tag_name((enum oomb_tag)t)) == 0) {
                    *out = (double)r->space_peak_by_tag[0][t];
                    return 1;
                }
        return 0;
    }
    if (strcmp(section, "time") == 0) {
        if (strcmp(field, "median") == 0 || strcmp(field, "step") == 0) {
            *out = r->step_stats.median;
            return 1;
        }
        if (strcmp(field, "data") == 0) { /* waiting for the input */
            *out = r->data_ns ? r->data_stats.median : NAN;
            return 1;
        }
        for (int p = 0; p < OOMB_PHASE_COUNT; p++)
            if (strcmp(field, oomb_phase_name((enum oomb_phase)p)) == 0) {
                *out = r->phase_stats[p].median;
                return 1;
            }
        return 0;
    }
    if (strcmp(section, "throughput") == 0) {
        if (strcmp(field, "samples_per_s") != 0)
            return 0;
        *out = r->samples_per_s;
        return 1;
    }
    if (strcmp(section, "numerics") == 0) {
        if (strcmp(field, "loss_rel_err") == 0)
            *out = r->loss_rel_err;
        else if (strcmp(field, "grad_rel_err") == 0)
            *out = r->grad_rel_err;
        else if (strcmp(field, "output_rel_err") == 0)
            *out = r->output_rel_err;
        else if (strcmp(field, "weight_rel_err") == 0)
            *out = r->weight_rel_err;
        else
            return 0;
        return 1;
    }
    if (strcmp(section, "quality") == 0) {
        if (strcmp(field, "final_loss") == 0)
            *out = r->final_loss;
        else if (strcmp(field, "accuracy") == 0)
            *out = r->has_accuracy ? r->accuracy : NAN;
        else if (strcmp(field, "accuracy_delta") == 0)
            *out = r->accuracy_delta;
        else if (strcmp(field, "test_accuracy") == 0)
            *out = r->has_eval ? r->test_accuracy : NAN;
        else if (strcmp(field, "test_accuracy_delta") == 0)
            *out = r->has_eval ? r->test_accuracy_delta : NAN;
        else if (strcmp(field, "test_loss") == 0)
            *out = r->has_eval ? r->test_loss : NAN;
        else
            return 0;
        return 1;
    }
    if (strcmp(section, "metrics") == 0) {
        for (int i = 0; r->metrics && i < r->n_metrics; i++)
            if (r->metrics[i].name && strcmp(r->metrics[i].name, field) == 0) {
                *out = r->metrics[i].value;
                return 1;
            }
        return 0;
    }
    return 0;
}

int oomb_check_run_field(const struct oomb_run_result *r, const char *ref, const char *section,
                         const char *field, double *out, char *err, size_t err_len)
{
    if (r == NULL || section == NULL || field == NULL || out == NULL) {
        if (err != NULL && err_len > 0)
            snprintf(err, err_len, "invalid arguments");
        return OOMB_ERR_INVALID;
    }
    if (run_field(r, section, field, out))
        return OOMB_OK;
    *out = NAN;
    if (err == NULL || err_len == 0)
        return OOMB_ERR_INVALID;
    char name[256];
    if (ref == NULL) {
        snprintf(name, sizeof name, "%s.%s", section, field);
        ref = name;
    }
    int n = snprintf(err, err_len, "'%s': no metric '%s.%s' (", ref, section, field);
    if (n < 0 || (size_t)n >= err_len)
        return OOMB_ERR_INVALID;
    size_t o = (size_t)n;
    char list[512] = "";
    if (strcmp(section, "memory") == 0) {
        snprintf(list, sizeof list, "memory fields: peak, peak_bytes, total");
        for (int t = 0; t < OOMB_TAG_COUNT; t++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, ", %s", oomb_tag_name((enum oomb_tag)t));
        }
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l,
                 ", host_peak_rss, host_peak, host_<tag>, to_host, to_device, dataset, staging; "
                 "with allocator "
                 "caching: reserved, reserved_end, fragmentation, largest_free");
    } else if (strcmp(section, "time") == 0) {
        snprintf(list, sizeof list, "time fields: median, step");
        for (int p = 0; p < OOMB_PHASE_COUNT; p++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, ", %s", oomb_phase_name((enum oomb_phase)p));
        }
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, ", data");
    } else if (strcmp(section, "throughput") == 0) {
        snprintf(list, sizeof list, "throughput fields: samples_per_s");
    } else if (strcmp(section, "numerics") == 0) {
        snprintf(list, sizeof list,
                 "numerics fields: loss_rel_err, grad_rel_err, output_rel_err, weight_rel_err");
    } else if (strcmp(section, "quality") == 0) {
        snprintf(list, sizeof list, "quality fields: " OOMB_CHECK_QUALITY_FIELDS);
    } else if (strcmp(section, "metrics") == 0) {
        snprintf(list, sizeof list, "metrics of this run:");
        for (int i = 0; r->metrics && i < r->n_metrics; i++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s %s", i ? "," : "",
                     r->metrics[i].name ? r->metrics[i].name : "");
        }
        if (r->n_metrics <= 0) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, " none");
        }
    } else {
        snprintf(list, sizeof list, "sections: " OOMB_CHECK_SECTIONS);
    }
    snprintf(err + o, err_len - o, "%s)", list);
    return OOMB_ERR_INVALID;
}
