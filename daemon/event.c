/* event: one Kafka message -> a validated event, or the reason it is invalid.
 *
 * Design: yajl's callback parser feeds a small state machine that looks only at the keys
 * of the top-level object. Each known field is checked as soon as its value arrives (no
 * copies of the message are kept), and what a field *means* is decided at the end, because
 * `type` may come after the fields it governs. Errors are reported in a fixed order (JSON,
 * then the common fields, then the type's fields in contract order) so a message always
 * gets the same reason whatever its key order. */
#include "event.h"

#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

/* ---- allocator ------------------------------------------------------------------------
 * yajl 2.1 has no reset: a handle that finished (or failed) a message cannot parse another,
 * so each message needs a fresh handle. Its five small blocks come from this free list, so
 * in steady state parsing allocates nothing. Blocks above POOL_KEEP_MAX (a deep nesting
 * stack, a long escaped string) go back to malloc at once, which keeps the idle footprint
 * small while a single message may still use memory proportional to its size. */
#define POOL_SLOTS 8
#define POOL_KEEP_MAX ((size_t)64 * 1024)

typedef union blk_hdr {
    /* cppcheck-suppress unusedStructMember ; only here so user memory stays maximally aligned */
    max_align_t align;
    size_t cap;
} blk_hdr_t;

enum field {
    F_EVENT_ID, F_TYPE, F_MANAGER_ID, F_TS, F_DIRECTION, F_STATUS, F_DURATION_S, F_KIND,
    F_NEXT_STEP, F_DEAL_ID, F_STAGE, F_AMOUNT, F_SOURCE, F_COUNTERPART, F_INTERNAL,
    F_COUNT,
    F_UNKNOWN = F_COUNT /* also: a duplicate whose value is ignored */
};

static const char *const field_names[F_COUNT] = {
    "event_id", "type", "manager_id", "ts", "direction", "status", "duration_s", "kind",
    "next_step", "deal_id", "stage", "amount", "source", "counterpart", "internal"};

enum fstate { FS_ABSENT, FS_NULL, FS_OK, FS_DUP, FS_BADTYPE, FS_BADVALUE, FS_RANGE };

#define RAW_MAX 32 /* enum values are kept this long, for the error message only */

struct raw {
    unsigned char len;
    bool cut;
    char s[RAW_MAX];
};

struct pctx {
    const event_rules_t *rules;
    event_t *out;               /* ids and source are written straight into it */
    size_t depth;               /* 1 = inside the top-level object */
    int cur;                    /* field whose value comes next (depth 1) */
    bool top_not_object;
    unsigned char state[F_COUNT];
    int type, direction, call_status, meeting_status, kind, stage; /* -1: unknown value */
    bool next_step, internal_flag, counterpart_internal;
    int32_t duration_s;
    int64_t ts_ms, amount_cents;
    struct raw raw[F_COUNT];    /* used for enum fields only */
};

struct event_parser {
    yajl_alloc_funcs afs;
    blk_hdr_t *free_blk[POOL_SLOTS];
    size_t n_free;
    struct pctx c;
};

static void *raw_realloc(blk_hdr_t *old, size_t sz)
{
    blk_hdr_t *h = NULL;
    if (sz <= SIZE_MAX - sizeof *h)
        h = realloc(old, sizeof *h + sz);
    if (h == NULL) {
        /* yajl 2.1 dereferences whatever its allocator returns, so NULL is not an option. */
        log_error("event: out of memory (%zu bytes) in the JSON parser", sz);
        abort();
    }
    h->cap = sz;
    return h + 1;
}

static void *pool_malloc(void *ctx, size_t sz)
{
    struct event_parser *p = ctx;
    size_t best = SIZE_MAX, bi = 0;
    for (size_t i = 0; i < p->n_free; i++)
        if (p->free_blk[i]->cap >= sz && p->free_blk[i]->cap < best) {
            best = p->free_blk[i]->cap;
            bi = i;
        }
    if (best == SIZE_MAX)
        return raw_realloc(NULL, sz);
    blk_hdr_t *h = p->free_blk[bi];
    p->free_blk[bi] = p->free_blk[--p->n_free];
    return h + 1;
}

static void *pool_realloc(void *ctx, void *ptr, size_t sz)
{
    if (ptr == NULL)
        return pool_malloc(ctx, sz);
    blk_hdr_t *h = (blk_hdr_t *)ptr - 1;
    if (h->cap >= sz)
        return ptr;
    /* Grow geometrically: yajl's nesting stack asks for 128 more bytes at a time. */
    return raw_realloc(h, h->cap > sz / 2 ? 2 * h->cap : sz);
}

static void pool_free(void *ctx, void *ptr)
{
    struct event_parser *p = ctx;
    if (ptr == NULL)
        return;
    blk_hdr_t *h = (blk_hdr_t *)ptr - 1;
    if (h->cap <= POOL_KEEP_MAX && p->n_free < POOL_SLOTS)
        p->free_blk[p->n_free++] = h;
    else
        free(h);
}

event_parser_t *event_parser_new(void)
{
    event_parser_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->afs.malloc = pool_malloc;
    p->afs.realloc = pool_realloc;
    p->afs.free = pool_free;
    p->afs.ctx = p;
    return p;
}

void event_parser_free(event_parser_t *parser)
{
    if (parser == NULL)
        return;
    for (size_t i = 0; i < parser->n_free; i++)
        free(parser->free_blk[i]);
    free(parser);
}

/* ---- value checks ------------------------------------------------------------------- */

struct name { const char *s; size_t len; };
#define NAME(x) {x, sizeof(x) - 1}

static const struct name type_names[] = {NAME("call"), NAME("email"), NAME("meeting"),
                                         NAME("deal_stage")};
static const struct name direction_names[] = {NAME("outbound"), NAME("inbound")};
static const struct name call_status_names[] = {NAME("connected"), NAME("no_answer"),
                                                NAME("busy"), NAME("failed")};
static const struct name meeting_status_names[] = {NAME("scheduled"), NAME("held"),
                                                   NAME("cancelled"), NAME("no_show")};
static const struct name kind_names[] = {NAME("followup"), NAME("first")};
#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static int match_name(const struct name *names, int n, const unsigned char *s, size_t len)
{
    for (int i = 0; i < n; i++)
        if (names[i].len == len && memcmp(names[i].s, s, len) == 0)
            return i;
    return -1;
}

/* Configured stage names are plain C strings; compare without reading past either end. */
static int match_stage(const event_rules_t *rules, const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < rules->n_stages; i++) {
        const char *st = rules->stages[i];
        size_t k = 0;
        while (k < len && st[k] != '\0' && (unsigned char)st[k] == s[k])
            k++;
        if (k == len && st[k] == '\0')
            return (int)i;
    }
    return -1;
}

static bool is_id_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '@' || ch == '-';
}

/* ^[A-Za-z0-9._@-]{1,max}$ (or printable ASCII when printable is set), copied to dst. */
static bool take_id(char *dst, size_t max, const unsigned char *s, size_t len, bool printable)
{
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if (printable ? (s[i] < 0x20 || s[i] > 0x7e) : !is_id_char(s[i]))
            return false;
    memcpy(dst, s, len);
    dst[len] = '\0';
    return true;
}

/* Offset of the first byte that is not well-formed UTF-8 (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or len. yajl only checks the shape of sequences. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (len - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ULL) == 0) {
                i += 8;
                continue;
            }
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf)
            n = 1;
        else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f;
        } else
            return i;
        if (len - i <= n || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k <= n; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return i;
        i += n + 1;
    }
    return len;
}

/* A JSON integer literal (no fraction, no exponent) -> *v. 0, -1 not an integer literal,
 * -2 too large for int64. */
static int parse_int_literal(const char *s, size_t len, int64_t *v)
{
    size_t i = 0;
    bool neg = false;
    if (i < len && s[i] == '-') {
        neg = true;
        i++;
    }
    if (i == len)
        return -1;
    int64_t acc = 0;
    bool overflow = false;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        int d = s[i] - '0';
        if (acc > (INT64_MAX - d) / 10)
            overflow = true;
        else
            acc = acc * 10 + d;
    }
    if (overflow)
        return -2;
    *v = neg ? -acc : acc;
    return 0;
}

/* Digit k of the mantissa read as one digit string, the decimal point skipped. */
static int mantissa_digit(const char *s, size_t int_beg, size_t n_int, size_t frac_beg, size_t k)
{
    return s[k < n_int ? int_beg + k : frac_beg + k - n_int] - '0';
}

#define AMOUNT_MAX_CENTS 100000000000000LL /* 10^12 units */

int event_parse_amount_cents(const char *literal, size_t len, int64_t *out_cents)
{
    const char *s = literal;
    size_t i = 0, int_beg, int_end, frac_beg = 0, frac_end = 0;
    bool neg = false;
    int64_t exp10 = 0;

    /* Grammar: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
    if (i < len && s[i] == '-') {
        neg = true;
        i++;
    }
    int_beg = i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    int_end = i;
    if (int_end == int_beg || (s[int_beg] == '0' && int_end - int_beg > 1))
        return -1;
    if (i < len && s[i] == '.') {
        frac_beg = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        frac_end = i;
        if (frac_end == frac_beg)
            return -1;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        bool eneg = false;
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        size_t ebeg = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            /* Saturate: beyond 10^9 the result is 0 or too large either way. */
            if (exp10 < 1000000000)
                exp10 = exp10 * 10 + (s[i] - '0');
            i++;
        }
        if (i == ebeg)
            return -1;
        if (eneg)
            exp10 = -exp10;
    }
    if (i != len)
        return -1;

    /* value = D * 10^shift cents, D = all mantissa digits. Walk D's significant digits:
     * the first (m + shift) form the integer cents, the next one rounds, any later nonzero
     * digit only matters for "strictly above 10^12". */
    size_t n_int = int_end - int_beg, n_frac = frac_end - frac_beg, n_all = n_int + n_frac;
    size_t lead = 0;
    while (lead < n_all && mantissa_digit(s, int_beg, n_int, frac_beg, lead) == 0)
        lead++;
    if (lead == n_all) {
        *out_cents = 0;
        return 0;
    }
    size_t m = n_all - lead;
    if (neg)
        return -1;
    int64_t keep = (int64_t)m + exp10 - (int64_t)n_frac + 2; /* digits left of the cent point */
    if (keep > 15)
        return -1; /* >= 10^15 cents */
    int64_t cents = 0;
    int round_digit = 0;
    bool rest_nonzero = false;
    for (size_t k = 0; k < m; k++) {
        int d = mantissa_digit(s, int_beg, n_int, frac_beg, lead + k);
        if ((int64_t)k < keep)
            cents = cents * 10 + d;
        else if ((int64_t)k == keep)
            round_digit = d;
        else if (d != 0) {
            rest_nonzero = true;
            break;
        }
    }
    for (int64_t k = (int64_t)m; k < keep; k++)
        cents *= 10;
    if (cents > AMOUNT_MAX_CENTS ||
        (cents == AMOUNT_MAX_CENTS && (round_digit != 0 || rest_nonzero)))
        return -1;
    *out_cents = cents + (round_digit >= 5);
    return 0;
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool digits(const char *s, size_t n, int *v)
{
    int acc = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        acc = acc * 10 + (s[i] - '0');
    }
    *v = acc;
    return true;
}

int event_parse_rfc3339(const char *s, size_t len, int64_t *out_ms)
{
    int y, mo, d, h, mi, sec, ms = 0, oh = 0, om = 0, sign = 0;
    if (len < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || s[10] != 'T' || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec))
        return -1;
    size_t i = 19;
    if (s[i] == '.') {
        size_t beg = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (i - beg < 3)
                ms = ms * 10 + (s[i] - '0');
            i++;
        }
        if (i == beg)
            return -1;
        for (size_t k = i - beg; k < 3; k++)
            ms *= 10;
    }
    if (i + 1 == len && s[i] == 'Z') {
        /* UTC */
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && digits(s + i + 1, 2, &oh) &&
               s[i + 3] == ':' && digits(s + i + 4, 2, &om)) {
        sign = s[i] == '+' ? 1 : -1;
    } else
        return -1;
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 ||
        mi > 59 || sec > 59 || oh > 23 || om > 59)
        return -1;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
                   sign * (oh * 3600 + om * 60);
    *out_ms = secs * 1000 + ms;
    return 0;
}

static unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static bool is_phone_filler(unsigned char c) { return c == ' ' || c == '-' || c == '(' || c == ')'; }

bool event_counterpart_is_internal(const event_rules_t *rules, const char *counterpart, size_t len)
{
    const unsigned char *s = (const unsigned char *)counterpart;
    size_t at = len;
    while (at > 0 && s[at - 1] != '@')
        at--;
    if (at > 0) { /* e-mail: the domain is what follows the last '@' */
        const unsigned char *dom = s + at;
        size_t dl = len - at;
        for (size_t i = 0; i < rules->n_internal_domains; i++) {
            const char *cfg = rules->internal_domains[i];
            size_t cl = strlen(cfg);
            if (cl == 0 || cl > dl || (cl < dl && dom[dl - cl - 1] != '.'))
                continue;
            size_t k = 0;
            while (k < cl && lower(dom[dl - cl + k]) == lower((unsigned char)cfg[k]))
                k++;
            if (k == cl)
                return true;
        }
        return false;
    }
    /* Phone: compare while skipping formatting characters on both sides, so "+7 (495) 100"
     * in the configuration works as well as "+7495100". */
    for (size_t i = 0; i < rules->n_phone_prefixes; i++) {
        const unsigned char *pre = (const unsigned char *)rules->phone_prefixes[i];
        size_t a = 0, matched = 0;
        bool ok = true;
        for (; *pre != '\0'; pre++) {
            if (is_phone_filler(*pre))
                continue;
            while (a < len && is_phone_filler(s[a]))
                a++;
            if (a == len || s[a] != *pre) {
                ok = false;
                break;
            }
            a++;
            matched++;
        }
        if (ok && matched > 0)
            return true;
    }
    return false;
}

const char *event_type_name(enum event_type type)
{
    return (unsigned)type < (unsigned)N_OF(type_names) ? type_names[type].s : "unknown";
}

/* ---- callbacks ---------------------------------------------------------------------- */

static void keep_raw(struct pctx *c, int f, const unsigned char *s, size_t len)
{
    struct raw *r = &c->raw[f];
    r->cut = len > RAW_MAX;
    r->len = (unsigned char)(r->cut ? RAW_MAX : len);
    memcpy(r->s, s, r->len);
}

static int field_of(const unsigned char *k, size_t len)
{
    /* Dispatch on length first: one memcmp per key in the common case. Entries are
     * field + 1 so that 0 marks an empty slot. */
    static const unsigned char by_len[12][3] = {
        [2] = {F_TS + 1},
        [4] = {F_TYPE + 1, F_KIND + 1},
        [5] = {F_STAGE + 1},
        [6] = {F_STATUS + 1, F_AMOUNT + 1, F_SOURCE + 1},
        [7] = {F_DEAL_ID + 1},
        [8] = {F_EVENT_ID + 1, F_INTERNAL + 1},
        [9] = {F_DIRECTION + 1, F_NEXT_STEP + 1},
        [10] = {F_MANAGER_ID + 1, F_DURATION_S + 1},
        [11] = {F_COUNTERPART + 1},
    };
    if (len >= 12)
        return F_UNKNOWN;
    for (int i = 0; i < 3 && by_len[len][i] != 0; i++) {
        int f = by_len[len][i] - 1;
        if (memcmp(field_names[f], k, len) == 0)
            return f;
    }
    return F_UNKNOWN;
}

/* The value of the current top-level field, or F_UNKNOWN when it is not ours to look at. */
static int value_field(struct pctx *c)
{
    return c->depth == 1 ? c->cur : F_UNKNOWN;
}

static int cb_top_scalar(struct pctx *c)
{
    c->top_not_object = true;
    return 0; /* cancels the parse */
}

static int cb_null(void *ctx)
{
    struct pctx *c = ctx;
    if (c->depth == 0)
        return cb_top_scalar(c);
    int f = value_field(c);
    if (f != F_UNKNOWN)
        c->state[f] = FS_NULL;
    return 1;
}

static int cb_boolean(void *ctx, int val)
{
    struct pctx *c = ctx;
    if (c->depth == 0)
        return cb_top_scalar(c);
    int f = value_field(c);
    if (f == F_UNKNOWN)
        return 1;
    c->state[f] = FS_OK;
    if (f == F_NEXT_STEP)
        c->next_step = val != 0;
    else if (f == F_INTERNAL)
        c->internal_flag = val != 0;
    else
        c->state[f] = FS_BADTYPE;
    return 1;
}

static int cb_number(void *ctx, const char *s, size_t len)
{
    struct pctx *c = ctx;
    if (c->depth == 0)
        return cb_top_scalar(c);
    int f = value_field(c);
    if (f == F_UNKNOWN)
        return 1;
    int64_t v = 0;
    int rc;
    switch (f) {
    case F_TS: /* range (and the future) is checked once the value is known, see check_ts */
        rc = parse_int_literal(s, len, &c->ts_ms);
        c->state[f] = rc == 0 ? FS_OK : rc == -1 ? FS_BADTYPE : FS_RANGE;
        break;
    case F_DURATION_S:
        rc = parse_int_literal(s, len, &v);
        c->state[f] = rc == -1 ? FS_BADTYPE : rc == 0 && v >= 0 && v <= 86400 ? FS_OK : FS_BADVALUE;
        c->duration_s = (int32_t)(c->state[f] == FS_OK ? v : 0);
        break;
    case F_AMOUNT:
        c->state[f] = event_parse_amount_cents(s, len, &c->amount_cents) == 0 ? FS_OK : FS_BADVALUE;
        break;
    default:
        c->state[f] = FS_BADTYPE;
    }
    return 1;
}

static void take_source(struct pctx *c, const unsigned char *s, size_t len)
{
    /* Escapes can smuggle in NUL or lone surrogates; the kept value must be clean text. */
    if (memchr(s, 0, len) != NULL || utf8_invalid_at(s, len) != len) {
        c->state[F_SOURCE] = FS_BADVALUE;
        return;
    }
    size_t n = len < EVENT_SOURCE_MAX ? len : EVENT_SOURCE_MAX;
    while (n > 0 && n < len && (s[n] & 0xc0) == 0x80)
        n--; /* never cut inside a UTF-8 sequence */
    memcpy(c->out->source, s, n);
    c->out->source[n] = '\0';
}

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
    struct pctx *c = ctx;
    if (c->depth == 0)
        return cb_top_scalar(c);
    int f = value_field(c);
    if (f == F_UNKNOWN)
        return 1;
    unsigned char st = FS_OK;
    switch (f) {
    case F_EVENT_ID:
        if (!take_id(c->out->event_id, EVENT_ID_MAX, s, len, true))
            st = FS_BADVALUE;
        break;
    case F_MANAGER_ID:
        if (!take_id(c->out->manager_id, EVENT_MANAGER_MAX, s, len, false))
            st = FS_BADVALUE;
        break;
    case F_DEAL_ID:
        if (!take_id(c->out->deal_id, EVENT_DEAL_MAX, s, len, false))
            st = FS_BADVALUE;
        break;
    case F_TS:
        if (event_parse_rfc3339((const char *)s, len, &c->ts_ms) != 0)
            st = FS_BADTYPE;
        break;
    case F_TYPE:
        c->type = match_name(type_names, N_OF(type_names), s, len);
        keep_raw(c, f, s, len);
        break;
    case F_DIRECTION:
        c->direction = match_name(direction_names, N_OF(direction_names), s, len);
        keep_raw(c, f, s, len);
        break;
    case F_STATUS:
        c->call_status = match_name(call_status_names, N_OF(call_status_names), s, len);
        c->meeting_status = match_name(meeting_status_names, N_OF(meeting_status_names), s, len);
        keep_raw(c, f, s, len);
        break;
    case F_KIND:
        c->kind = match_name(kind_names, N_OF(kind_names), s, len);
        keep_raw(c, f, s, len);
        break;
    case F_STAGE:
        c->stage = match_stage(c->rules, s, len);
        keep_raw(c, f, s, len);
        break;
    case F_SOURCE:
        take_source(c, s, len);
        st = c->state[F_SOURCE] == FS_BADVALUE ? FS_BADVALUE : FS_OK;
        break;
    case F_COUNTERPART:
        c->counterpart_internal = event_counterpart_is_internal(c->rules, (const char *)s, len);
        break;
    default:
        st = FS_BADTYPE;
    }
    c->state[f] = st;
    return 1;
}

static int cb_map_key(void *ctx, const unsigned char *k, size_t len)
{
    struct pctx *c = ctx;
    if (c->depth != 1)
        return 1;
    int f = field_of(k, len);
    if (f != F_UNKNOWN && c->state[f] != FS_ABSENT) {
        c->state[f] = FS_DUP; /* sticky; the second value is not looked at */
        f = F_UNKNOWN;
    }
    c->cur = f;
    return 1;
}

static int cb_open(struct pctx *c)
{
    int f = value_field(c);
    if (f != F_UNKNOWN)
        c->state[f] = FS_BADTYPE;
    c->depth++;
    return 1;
}

static int cb_start_map(void *ctx) { return cb_open(ctx); }

static int cb_start_array(void *ctx)
{
    struct pctx *c = ctx;
    return c->depth == 0 ? cb_top_scalar(c) : cb_open(c);
}

static int cb_close(void *ctx)
{
    struct pctx *c = ctx;
    c->depth--;
    return 1;
}

static const yajl_callbacks callbacks = {
    .yajl_null = cb_null,
    .yajl_boolean = cb_boolean,
    .yajl_number = cb_number, /* literal text; the integer/double callbacks are never used */
    .yajl_string = cb_string,
    .yajl_start_map = cb_start_map,
    .yajl_map_key = cb_map_key,
    .yajl_end_map = cb_close,
    .yajl_start_array = cb_start_array,
    .yajl_end_array = cb_close,
};

/* ---- validation --------------------------------------------------------------------- */

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static const char *const type_word[F_COUNT] = {
    [F_EVENT_ID] = "a string", [F_TYPE] = "a string", [F_MANAGER_ID] = "a string",
    [F_DIRECTION] = "a string", [F_STATUS] = "a string", [F_DURATION_S] = "an integer",
    [F_KIND] = "a string", [F_NEXT_STEP] = "a boolean", [F_DEAL_ID] = "a string",
    [F_STAGE] = "a string", [F_AMOUNT] = "a number", [F_SOURCE] = "a string",
    [F_COUNTERPART] = "a string", [F_INTERNAL] = "a boolean"};

static const char *const bad_value[F_COUNT] = {
    [F_EVENT_ID] = "must be 1..128 printable ASCII bytes",
    [F_MANAGER_ID] = "does not match ^[A-Za-z0-9._@-]{1,64}$",
    [F_DURATION_S] = "out of range 0..86400",
    [F_DEAL_ID] = "does not match ^[A-Za-z0-9._@-]{1,128}$",
    [F_AMOUNT] = "out of range 0..10^12",
    [F_SOURCE] = "not valid UTF-8 text"};

#define TS_END_MS 253402300800000LL /* 10000-01-01T00:00:00Z */

/* Per-type fields in contract order, which is also the order errors are reported in. */
struct tfield { unsigned char f; bool required; };
static const struct tfield type_fields[4][5] = {
    [EVENT_CALL] = {{F_DIRECTION, true}, {F_STATUS, true}, {F_DURATION_S, false},
                    {F_COUNTERPART, false}, {F_INTERNAL, false}},
    [EVENT_EMAIL] = {{F_DIRECTION, true}, {F_COUNTERPART, false}, {F_INTERNAL, false}},
    [EVENT_MEETING] = {{F_STATUS, true}, {F_KIND, false}, {F_NEXT_STEP, false},
                       {F_COUNTERPART, false}, {F_INTERNAL, false}},
    [EVENT_DEAL_STAGE] = {{F_DEAL_ID, true}, {F_STAGE, true}, {F_AMOUNT, false},
                          {F_SOURCE, false}},
};
static const int type_n_fields[4] = {5, 3, 5, 4};

/* 1 present and well-formed, 0 absent (optional), -1 error written. Per-type fields are
 * named "<type>.<field>" because `status` means different things for calls and meetings. */
static int check_field(const struct pctx *c, int f, bool required, const char *prefix,
                       char *err, size_t errlen)
{
    const char *dot = prefix[0] != '\0' ? "." : "";
    const char *name = field_names[f];
    switch (c->state[f]) {
    case FS_OK:
        return 1;
    case FS_ABSENT:
    case FS_NULL:
        return required ? fail(err, errlen, "%s%s%s: missing", prefix, dot, name) : 0;
    case FS_DUP:
        return fail(err, errlen, "%s%s%s: duplicate field", prefix, dot, name);
    case FS_BADTYPE:
        if (f == F_TS)
            return fail(err, errlen, "ts: not RFC 3339 or epoch ms");
        return fail(err, errlen, "%s%s%s: must be %s", prefix, dot, name, type_word[f]);
    case FS_RANGE:
        return fail(err, errlen, "ts: out of range (years 1970..9999)");
    default:
        return fail(err, errlen, "%s%s%s: %s", prefix, dot, name, bad_value[f]);
    }
}

/* The value is quoted in the reason, which ends up in Kafka headers and logs: keep it
 * short and printable ASCII. */
static int fail_unknown(const struct pctx *c, int f, const char *prefix, char *err, size_t errlen)
{
    const struct raw *r = &c->raw[f];
    char q[RAW_MAX + 1];
    for (size_t i = 0; i < r->len; i++) {
        unsigned char ch = (unsigned char)r->s[i];
        q[i] = ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\' ? (char)ch : '?';
    }
    q[r->len] = '\0';
    return fail(err, errlen, "%s%s%s: unknown value \"%s%s\"", prefix, prefix[0] ? "." : "",
                field_names[f], q, r->cut ? "..." : "");
}

static int validate(const struct pctx *c, int64_t now_ms, event_t *out, char *err, size_t errlen)
{
    if (check_field(c, F_EVENT_ID, true, "", err, errlen) < 0)
        return -1;
    if (check_field(c, F_TYPE, true, "", err, errlen) < 0)
        return -1;
    if (c->type < 0)
        return fail_unknown(c, F_TYPE, "", err, errlen);
    if (check_field(c, F_MANAGER_ID, true, "", err, errlen) < 0 ||
        check_field(c, F_TS, true, "", err, errlen) < 0)
        return -1;
    if (c->ts_ms < 0 || c->ts_ms >= TS_END_MS)
        return fail(err, errlen, "ts: out of range (years 1970..9999)");
    int64_t skew = c->rules->future_skew_ms;
    if (c->ts_ms > now_ms && c->ts_ms - now_ms > skew) {
        if (skew % 1000 == 0)
            return fail(err, errlen, "ts: more than %lld s in the future", (long long)(skew / 1000));
        return fail(err, errlen, "ts: more than %lld ms in the future", (long long)skew);
    }

    enum event_type type = (enum event_type)c->type;
    const char *prefix = type_names[type].s;
    for (int i = 0; i < type_n_fields[type]; i++) {
        int f = type_fields[type][i].f;
        int rc = check_field(c, f, type_fields[type][i].required, prefix, err, errlen);
        if (rc < 0)
            return -1;
        if (rc == 0)
            continue;
        bool known = true;
        if (f == F_DIRECTION)
            known = c->direction >= 0;
        else if (f == F_STATUS)
            known = (type == EVENT_CALL ? c->call_status : c->meeting_status) >= 0;
        else if (f == F_KIND)
            known = c->kind >= 0;
        else if (f == F_STAGE)
            known = c->stage >= 0;
        if (!known)
            return fail_unknown(c, f, prefix, err, errlen);
    }

    /* Absent optional fields kept the defaults set in event_parse. */
    out->type = type;
    out->ts_ms = c->ts_ms;
    if (type != EVENT_DEAL_STAGE) {
        out->internal = c->internal_flag || c->counterpart_internal;
        out->deal_id[0] = '\0';
        out->source[0] = '\0';
    }
    switch (type) {
    case EVENT_CALL:
        out->direction = (enum event_direction)c->direction;
        out->call_status = (enum call_status)c->call_status;
        out->duration_s = c->duration_s;
        break;
    case EVENT_EMAIL:
        out->direction = (enum event_direction)c->direction;
        break;
    case EVENT_MEETING:
        out->meeting_status = (enum meeting_status)c->meeting_status;
        out->meeting_first = c->kind == 1;
        out->next_step = c->next_step;
        break;
    case EVENT_DEAL_STAGE:
        out->stage = c->stage;
        out->has_amount = c->state[F_AMOUNT] == FS_OK;
        out->amount_cents = out->has_amount ? c->amount_cents : 0;
        break;
    }
    return 0;
}

static int json_error(yajl_handle h, const struct pctx *c, yajl_status st, size_t at,
                      char *err, size_t errlen)
{
    if (st == yajl_status_client_canceled && c->top_not_object)
        return fail(err, errlen, "json: top level must be an object");
    /* yajl's own text is a fixed ASCII phrase such as "parse error: trailing garbage". */
    unsigned char *text = yajl_get_error(h, 0, NULL, 0);
    const char *what = text != NULL ? (const char *)text : "parse error";
    const char *colon = strstr(what, ": ");
    if (colon != NULL)
        what = colon + 2;
    size_t n = strcspn(what, "\n");
    fail(err, errlen, "json: parse error at byte %zu: %.*s", at, (int)n, what);
    if (text != NULL)
        yajl_free_error(h, text);
    return -1;
}

int event_parse(event_parser_t *parser, const event_rules_t *rules, const void *msg, size_t len,
                int64_t now_ms, event_t *out, char *err, size_t errlen)
{
    const unsigned char *m = msg;
    if (len > rules->max_message_bytes)
        return fail(err, errlen, "message: %zu bytes exceeds max_message_bytes %zu", len,
                    rules->max_message_bytes);
    size_t bad = utf8_invalid_at(m, len);
    if (bad != len)
        return fail(err, errlen, "json: invalid UTF-8 at byte %zu", bad);

    struct pctx *c = &parser->c;
    memset(out, 0, sizeof *out);
    memset(c->state, FS_ABSENT, sizeof c->state);
    c->rules = rules;
    c->out = out;
    c->depth = 0;
    c->cur = F_UNKNOWN;
    c->top_not_object = false;
    c->type = c->direction = c->call_status = c->meeting_status = c->stage = -1;
    c->kind = 0; /* followup */
    c->next_step = c->internal_flag = c->counterpart_internal = false;
    c->duration_s = 0;
    c->ts_ms = c->amount_cents = 0;

    yajl_handle h = yajl_alloc(&callbacks, &parser->afs, c); /* blocks come from the pool */
    if (h == NULL)
        return fail(err, errlen, "json: cannot allocate the parser");
    yajl_status st = yajl_parse(h, m, len);
    size_t at = yajl_get_bytes_consumed(h);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
        at = len; /* the only errors left are about the end of the input */
    }
    int rc = st == yajl_status_ok ? 0 : json_error(h, c, st, at, err, errlen);
    yajl_free(h);
    c->out = NULL;
    if (rc != 0)
        return -1;
    return validate(c, now_ms, out, err, errlen);
}

/* ---- formatting --------------------------------------------------------------------- */

struct sbuf { char *p; size_t cap, len; bool full; };

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len)
        b->full = true;
    else
        b->len += (size_t)n;
}

/* Bare when unambiguous, otherwise quoted with C escapes. */
static void sb_str(struct sbuf *b, const char *key, const char *s)
{
    bool bare = s[0] != '\0';
    for (const char *q = s; *q != '\0' && bare; q++)
        bare = *q > 0x20 && *q < 0x7f && *q != '"' && *q != '\\';
    if (bare) {
        sb_printf(b, " %s=%s", key, s);
        return;
    }
    sb_printf(b, " %s=\"", key);
    for (const unsigned char *q = (const unsigned char *)s; *q != '\0' && !b->full; q++) {
        if (*q == '"' || *q == '\\')
            sb_printf(b, "\\%c", *q);
        else if (*q < 0x20 || *q >= 0x7f)
            sb_printf(b, "\\x%02x", *q);
        else
            sb_printf(b, "%c", *q);
    }
    sb_printf(b, "\"");
}

int event_format(const event_t *ev, const event_rules_t *rules, char *buf, size_t buflen)
{
    if (buflen == 0)
        return -1;
    struct sbuf b = {buf, buflen, 0, false};
    buf[0] = '\0';
    sb_printf(&b, "type=%s", event_type_name(ev->type));
    sb_str(&b, "id", ev->event_id);
    sb_str(&b, "manager", ev->manager_id);
    sb_printf(&b, " ts=%lld", (long long)ev->ts_ms);
    if (ev->type != EVENT_DEAL_STAGE)
        sb_printf(&b, " internal=%d", ev->internal);
    switch (ev->type) {
    case EVENT_CALL:
        sb_printf(&b, " direction=%s status=%s duration=%d", direction_names[ev->direction & 1].s,
                  call_status_names[ev->call_status & 3].s, (int)ev->duration_s);
        break;
    case EVENT_EMAIL:
        sb_printf(&b, " direction=%s", direction_names[ev->direction & 1].s);
        break;
    case EVENT_MEETING:
        sb_printf(&b, " status=%s kind=%s next_step=%d", meeting_status_names[ev->meeting_status & 3].s,
                  ev->meeting_first ? "first" : "followup", ev->next_step);
        break;
    case EVENT_DEAL_STAGE:
        sb_str(&b, "deal", ev->deal_id);
        if (rules != NULL && ev->stage >= 0 && (size_t)ev->stage < rules->n_stages)
            sb_str(&b, "stage", rules->stages[ev->stage]);
        else
            sb_printf(&b, " stage=#%d", ev->stage);
        if (ev->has_amount)
            sb_printf(&b, " amount_cents=%lld", (long long)ev->amount_cents);
        else
            sb_printf(&b, " amount_cents=-");
        sb_str(&b, "source", ev->source);
        break;
    }
    return b.full ? -1 : (int)b.len;
}
