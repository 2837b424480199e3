#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

struct json_member {
    char *key;         /* owned */
    size_t key_len;
    json_node_t *value; /* owned; NULL only while the builder waits for the value */
    int line, column;  /* of the key */
    bool dup;
};

struct json_node {
    enum json_kind kind;
    int line, column;
    union {
        bool b;
        struct { char *text; size_t len; } s;                  /* string or number literal */
        struct { json_node_t **items; size_t n, cap; } a;
        struct { struct json_member *m; size_t n, cap; } o;
    } u;
};

/* Parse state. Every node is attached to its parent (or becomes the root) as soon as it
 * is created, so freeing the root after a cancelled parse frees everything. */
struct builder {
    const char *text;
    size_t len;
    yajl_handle h;
    bool completing;   /* inside yajl_complete_parse: offsets refer to yajl's own buffer */
    size_t last_end;   /* offset just past the previous token */
    size_t cur_off;    /* line/column cursor; only moves forward */
    int cur_line, cur_col;
    json_node_t *root;
    json_node_t *stack[JSON_MAX_DEPTH];
    size_t depth;
    char why[96];      /* our reason when a callback cancels the parse */
    int why_line, why_col;
};

static void node_free(json_node_t *n)
{
    if (!n)
        return;
    switch (n->kind) {
    case JSON_STRING:
    case JSON_NUMBER:
        free(n->u.s.text);
        break;
    case JSON_ARRAY:
        for (size_t i = 0; i < n->u.a.n; i++)
            node_free(n->u.a.items[i]);
        free(n->u.a.items);
        break;
    case JSON_OBJECT:
        for (size_t i = 0; i < n->u.o.n; i++) {
            free(n->u.o.m[i].key);
            node_free(n->u.o.m[i].value);
        }
        free(n->u.o.m);
        break;
    case JSON_NULL:
    case JSON_BOOL:
        break;
    }
    free(n);
}

void json_free(json_node_t *root) { node_free(root); }

/* yajl reports where a token ends, not where it starts; the start is the first byte after
 * the previous token that is not whitespace, a separator or a comment. */
static size_t skip_filler(const char *t, size_t p, size_t end)
{
    while (p < end) {
        char c = t[p];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == ':') {
            p++;
        } else if (c == '/' && p + 1 < end && t[p + 1] == '*') {
            const char *close = NULL;
            for (size_t q = p + 2; q + 1 < end; q++)
                if (t[q] == '*' && t[q + 1] == '/') {
                    close = t + q;
                    break;
                }
            p = close ? (size_t)(close - t) + 2 : end;
        } else if (c == '/' && p + 1 < end && t[p + 1] == '/') {
            while (p < end && t[p] != '\n')
                p++;
        } else {
            break;
        }
    }
    return p;
}

static void cursor_to(struct builder *b, size_t off)
{
    for (; b->cur_off < off && b->cur_off < b->len; b->cur_off++) {
        if (b->text[b->cur_off] == '\n') {
            b->cur_line++;
            b->cur_col = 1;
        } else {
            b->cur_col++;
        }
    }
}

static void token_start(struct builder *b, int *line, int *col)
{
    size_t end = b->completing ? b->len : yajl_get_bytes_consumed(b->h);
    if (end > b->len || end < b->last_end)
        end = b->len;
    size_t start = skip_filler(b->text, b->last_end, end);
    b->last_end = end;
    cursor_to(b, start);
    *line = b->cur_line;
    *col = b->cur_col;
}

static int cancel(struct builder *b, const char *why)
{
    snprintf(b->why, sizeof b->why, "%s", why);
    b->why_line = b->cur_line;
    b->why_col = b->cur_col;
    return 0;
}

static json_node_t *node_new(struct builder *b, enum json_kind kind)
{
    json_node_t *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->kind = kind;
    token_start(b, &n->line, &n->column);
    return n;
}

/* Takes ownership of n whatever happens. Returns 1 (continue) or 0 (cancel). */
static int attach(struct builder *b, json_node_t *n)
{
    if (!n)
        return cancel(b, "out of memory");
    if (b->depth == 0) {
        b->root = n; /* yajl delivers exactly one top-level value */
        return 1;
    }
    json_node_t *top = b->stack[b->depth - 1];
    if (top->kind == JSON_ARRAY) {
        if (top->u.a.n == top->u.a.cap) {
            size_t cap = top->u.a.cap ? top->u.a.cap * 2 : 4;
            json_node_t **items = realloc(top->u.a.items, cap * sizeof *items);
            if (!items) {
                node_free(n);
                return cancel(b, "out of memory");
            }
            top->u.a.items = items;
            top->u.a.cap = cap;
        }
        top->u.a.items[top->u.a.n++] = n;
    } else {
        /* The member was appended by the key callback, which always precedes its value. */
        top->u.o.m[top->u.o.n - 1].value = n;
    }
    return 1;
}

static char *copy_bytes(const void *s, size_t len)
{
    char *c = malloc(len + 1);
    if (c) {
        memcpy(c, s, len);
        c[len] = '\0';
    }
    return c;
}

static int cb_null(void *ctx)
{
    struct builder *b = ctx;
    return attach(b, node_new(b, JSON_NULL));
}

static int cb_bool(void *ctx, int v)
{
    struct builder *b = ctx;
    json_node_t *n = node_new(b, JSON_BOOL);
    if (n)
        n->u.b = v != 0;
    return attach(b, n);
}

static int cb_text(struct builder *b, enum json_kind kind, const void *s, size_t len)
{
    json_node_t *n = node_new(b, kind);
    if (n) {
        n->u.s.text = copy_bytes(s, len);
        n->u.s.len = len;
        if (!n->u.s.text) {
            free(n);
            n = NULL;
        }
    }
    return attach(b, n);
}

static int cb_number(void *ctx, const char *s, size_t len)
{
    return cb_text(ctx, JSON_NUMBER, s, len);
}

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
    return cb_text(ctx, JSON_STRING, s, len);
}

static int open_container(struct builder *b, enum json_kind kind)
{
    int line, col;
    token_start(b, &line, &col);
    if (b->depth == JSON_MAX_DEPTH)
        return cancel(b, "nested deeper than 128 levels");
    json_node_t *n = calloc(1, sizeof *n);
    if (!n)
        return cancel(b, "out of memory");
    n->kind = kind;
    n->line = line;
    n->column = col;
    if (!attach(b, n))
        return 0;
    b->stack[b->depth++] = n;
    return 1;
}

static int cb_start_map(void *ctx) { return open_container(ctx, JSON_OBJECT); }
static int cb_start_array(void *ctx) { return open_container(ctx, JSON_ARRAY); }

static int cb_map_key(void *ctx, const unsigned char *key, size_t len)
{
    struct builder *b = ctx;
    json_node_t *obj = b->stack[b->depth - 1];
    int line, col;
    token_start(b, &line, &col);
    if (obj->u.o.n == obj->u.o.cap) {
        size_t cap = obj->u.o.cap ? obj->u.o.cap * 2 : 4;
        struct json_member *m = realloc(obj->u.o.m, cap * sizeof *m);
        if (!m)
            return cancel(b, "out of memory");
        obj->u.o.m = m;
        obj->u.o.cap = cap;
    }
    char *k = copy_bytes(key, len);
    if (!k)
        return cancel(b, "out of memory");
    obj->u.o.m[obj->u.o.n++] = (struct json_member){k, len, NULL, line, col, false};
    return 1;
}

static bool key_eq(const struct json_member *a, const struct json_member *b)
{
    return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

static int member_cmp(const void *pa, const void *pb)
{
    const struct json_member *a = *(const struct json_member *const *)pa;
    const struct json_member *b = *(const struct json_member *const *)pb;
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(a->key, b->key, n);
    if (c)
        return c;
    if (a->key_len != b->key_len)
        return a->key_len < b->key_len ? -1 : 1;
    /* Equal keys keep document order, so the first occurrence is the one not flagged. */
    return a < b ? -1 : (a > b);
}

/* Large objects (thousands of managers) are sorted instead of compared pairwise. */
static int mark_duplicates(struct json_node *obj)
{
    size_t n = obj->u.o.n;
    struct json_member *m = obj->u.o.m;
    if (n <= 16) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i && !m[i].dup; j++)
                m[i].dup = key_eq(&m[i], &m[j]);
        return 0;
    }
    struct json_member **order = malloc(n * sizeof *order);
    if (!order)
        return -1;
    for (size_t i = 0; i < n; i++)
        order[i] = &m[i];
    qsort(order, n, sizeof *order, member_cmp);
    for (size_t i = 1; i < n; i++)
        if (key_eq(order[i], order[i - 1]))
            order[i]->dup = true;
    free(order);
    return 0;
}

static int cb_end_map(void *ctx)
{
    struct builder *b = ctx;
    int line, col;
    token_start(b, &line, &col);
    if (mark_duplicates(b->stack[b->depth - 1]) != 0)
        return cancel(b, "out of memory");
    b->depth--;
    return 1;
}

static int cb_end_array(void *ctx)
{
    struct builder *b = ctx;
    int line, col;
    token_start(b, &line, &col);
    b->depth--;
    return 1;
}

static const yajl_callbacks callbacks = {
    .yajl_null = cb_null,
    .yajl_boolean = cb_bool,
    .yajl_number = cb_number, /* raw literals: integer/double callbacks are never used */
    .yajl_string = cb_string,
    .yajl_start_map = cb_start_map,
    .yajl_map_key = cb_map_key,
    .yajl_end_map = cb_end_map,
    .yajl_start_array = cb_start_array,
    .yajl_end_array = cb_end_array,
};

static void position_of(const char *t, size_t len, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (t[i] == '\n') {
            ++*line;
            *col = 1;
        } else {
            ++*col;
        }
    }
}

static void report(struct builder *b, yajl_status st, char *err, size_t errlen)
{
    if (st == yajl_status_client_canceled) {
        snprintf(err, errlen, "line %d, column %d: %s", b->why_line, b->why_col, b->why);
        return;
    }
    unsigned char *msg = yajl_get_error(b->h, 0, (const unsigned char *)b->text, b->len);
    size_t off = b->completing ? b->len : yajl_get_bytes_consumed(b->h);
    /* yajl stands just past the offending byte; point at the byte itself. */
    if (off > 0 && !b->completing)
        off--;
    int line, col;
    position_of(b->text, b->len, off, &line, &col);
    const char *text = msg ? (const char *)msg : "invalid JSON";
    size_t tlen = strcspn(text, "\n");
    if (b->completing && b->len == skip_filler(b->text, 0, b->len))
        snprintf(err, errlen, "line %d, column %d: empty document", line, col);
    else
        snprintf(err, errlen, "line %d, column %d: %.*s", line, col, (int)tlen, text);
    if (msg)
        yajl_free_error(b->h, msg);
}

json_node_t *json_parse(const char *text, size_t len, bool allow_comments, char *err,
                        size_t errlen)
{
    struct builder *b = calloc(1, sizeof *b); /* the depth stack is too big for some stacks */
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    b->text = text;
    b->len = len;
    b->cur_line = 1;
    b->cur_col = 1;
    b->h = yajl_alloc(&callbacks, NULL, b);
    if (!b->h) {
        free(b);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (allow_comments)
        yajl_config(b->h, yajl_allow_comments, 1);
    yajl_status st = yajl_parse(b->h, (const unsigned char *)text, len);
    if (st == yajl_status_ok) {
        b->completing = true;
        st = yajl_complete_parse(b->h);
    }
    json_node_t *root = b->root;
    if (st != yajl_status_ok || !root) {
        if (st == yajl_status_ok)
            snprintf(err, errlen, "line 1, column 1: empty document");
        else
            report(b, st, err, errlen);
        node_free(root);
        root = NULL;
    }
    yajl_free(b->h);
    free(b);
    return root;
}

enum json_kind json_kind(const json_node_t *n) { return n ? n->kind : JSON_NULL; }

const char *json_kind_name(enum json_kind kind)
{
    static const char *const names[] = {"null", "boolean", "number", "string", "array",
                                        "object"};
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "?";
}

int json_line(const json_node_t *n) { return n ? n->line : 0; }
int json_column(const json_node_t *n) { return n ? n->column : 0; }
bool json_bool(const json_node_t *n) { return n && n->kind == JSON_BOOL && n->u.b; }

const char *json_string(const json_node_t *n, size_t *len)
{
    if (!n || n->kind != JSON_STRING)
        return NULL;
    if (len)
        *len = n->u.s.len;
    return n->u.s.text;
}

const char *json_number_literal(const json_node_t *n)
{
    return n && n->kind == JSON_NUMBER ? n->u.s.text : NULL;
}

int json_number_int64(const json_node_t *n, int64_t *out)
{
    const char *p = json_number_literal(n);
    if (!p)
        return -1;
    bool neg = *p == '-';
    if (neg)
        p++;
    if (!*p)
        return -1;
    /* Magnitude in uint64 so INT64_MIN is representable before the sign is applied. */
    const uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    bool overflow = false;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        unsigned d = (unsigned)(*p - '0');
        if (v > (limit - d) / 10)
            overflow = true; /* keep scanning: "1e999" must still say "not an integer" */
        else
            v = v * 10 + d;
    }
    if (overflow)
        return -2;
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return 0;
}

int json_number_double(const json_node_t *n, double *out)
{
    const char *p = json_number_literal(n);
    if (!p)
        return -1;
    *out = strtod(p, NULL);
    return 0;
}

size_t json_array_len(const json_node_t *n)
{
    return n && n->kind == JSON_ARRAY ? n->u.a.n : 0;
}

const json_node_t *json_array_at(const json_node_t *n, size_t i)
{
    return i < json_array_len(n) ? n->u.a.items[i] : NULL;
}

size_t json_object_len(const json_node_t *n)
{
    return n && n->kind == JSON_OBJECT ? n->u.o.n : 0;
}

const char *json_object_key_at(const json_node_t *n, size_t i, size_t *key_len)
{
    if (i >= json_object_len(n))
        return NULL;
    if (key_len)
        *key_len = n->u.o.m[i].key_len;
    return n->u.o.m[i].key;
}

const json_node_t *json_object_value_at(const json_node_t *n, size_t i)
{
    return i < json_object_len(n) ? n->u.o.m[i].value : NULL;
}

bool json_object_key_is_dup(const json_node_t *n, size_t i)
{
    return i < json_object_len(n) && n->u.o.m[i].dup;
}

void json_object_key_position(const json_node_t *n, size_t i, int *line, int *column)
{
    bool ok = i < json_object_len(n);
    *line = ok ? n->u.o.m[i].line : 0;
    *column = ok ? n->u.o.m[i].column : 0;
}

const json_node_t *json_object_get(const json_node_t *n, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < json_object_len(n); i++)
        if (n->u.o.m[i].key_len == klen && memcmp(n->u.o.m[i].key, key, klen) == 0)
            return n->u.o.m[i].value;
    return NULL;
}
