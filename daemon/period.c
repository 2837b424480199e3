/* period: TZif + POSIX TZ rules -> UTC offset segments -> calendar periods.
 *
 * A zone is a table of transitions (UTC seconds, offset in force from then on) plus an
 * optional POSIX rule for instants after the table, exactly as RFC 8536 lays them out.
 * All internal times are seconds; only the cache and the public API speak milliseconds. */
#include "period.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SEC_MIN (-(INT64_C(1) << 40)) /* "no bound": ~35,000 years out, far from any input */
#define SEC_MAX (INT64_C(1) << 40)
#define TRANS_LIMIT (INT64_C(1) << 60) /* zic's "big bang" is -2^59; beyond that is garbage */
#define OFF_MIN (-89999)                /* RFC 8536 utoff range: -24:59:59 .. +25:59:59 */
#define OFF_MAX 93599
#define MAX_FILE (1 << 20)  /* real zone files are < 5 KiB */
#define MAX_TRANS 100000    /* real ones have < 2,000 */
#define MAX_FOOTER 255
#define CACHE_N 8
/* Instants are clamped so every local date stays within years 1..9999 (4-digit ids). */
#define MIN_MS (INT64_C(-719160) * 86400000)  /* 0001-01-03T00:00Z */
#define MAX_MS (INT64_C(2932894) * 86400000)  /* 9999-12-29T00:00Z */

struct rule_date {
    char kind;    /* 'J': a = 1..365 ignoring Feb 29; 'n': a = 0..365; 'M': month a, week b, wday c */
    int a, b, c;
    int32_t secs; /* local time of day of the change, -167h..167h */
};

struct posix_rule {
    int32_t std_off, dst_off; /* seconds east of UTC */
    int has_dst;
    struct rule_date start, end;
};

struct seg {
    int64_t lo, hi; /* [lo, hi) UTC seconds with a constant offset */
    int32_t off;
};

struct cache_ent {
    int64_t lo_ms, hi_ms; /* offset and local date are constant here; empty when unused */
    int32_t off;
    period_set_t set;
};

struct period_zone {
    char *name;          /* owned */
    int64_t *trans;      /* owned; ntrans strictly ascending UTC seconds */
    int32_t *trans_off;  /* owned; offset in force from trans[i] until trans[i+1] */
    int32_t ntrans;
    int32_t first_off;   /* before trans[0]: time type 0 (RFC 8536 3.2) */
    int has_rule;        /* rule governs from trans[ntrans-1] on (or always if ntrans == 0) */
    struct posix_rule rule;
    struct cache_ent cache[CACHE_N];
    int last, next;      /* last hit; round-robin victim */
};

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- calendar ---------------------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Months and days out of range carry over (m = 13 is January of y + 1, d = 0 the last day
 * of the previous month), which keeps "next day/month/quarter" arithmetic trivial. */
int64_t period_days_from_civil(int y, int m, int d)
{
    int64_t carry = floor_div((int64_t)m - 1, 12);
    int64_t mm = (int64_t)m - 1 - carry * 12 + 1;
    int64_t yy = (int64_t)y + carry - (mm <= 2);
    int64_t era = floor_div(yy, 400);
    int64_t yoe = yy - era * 400;
    int64_t doy = (153 * (mm > 2 ? mm - 3 : mm + 9) + 2) / 5;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468 + (int64_t)d - 1;
}

void period_civil_from_days(int64_t days, int *y, int *m, int *d)
{
    int64_t z = days + 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int weekday_of_days(int64_t days) /* 1970-01-01 was a Thursday */
{
    return (int)(days - floor_div(days + 3, 7) * 7 + 3) + 1;
}

int period_weekday(int y, int m, int d)
{
    return weekday_of_days(period_days_from_civil(y, m, d));
}

/* The ISO week belongs to the year holding its Thursday. */
void period_iso_week(int y, int m, int d, int *iso_year, int *iso_week)
{
    int64_t days = period_days_from_civil(y, m, d);
    int64_t thu = days + 4 - weekday_of_days(days);
    int ty, tm, td;
    period_civil_from_days(thu, &ty, &tm, &td);
    *iso_year = ty;
    *iso_week = (int)((thu - period_days_from_civil(ty, 1, 1)) / 7 + 1);
}

/* ---- POSIX TZ strings (RFC 8536 3.3) ----------------------------------------------- */

/* Not <ctype.h>: the locale must not change what a zone name or TZ string may contain. */
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

static const char *parse_abbr(const char *p)
{
    const char *q;
    if (*p == '<') {
        for (q = ++p; is_alpha(*q) || is_digit(*q) || *q == '+' || *q == '-'; q++)
            ;
        return (*q == '>' && q - p >= 3) ? q + 1 : NULL;
    }
    for (q = p; is_alpha(*q); q++)
        ;
    return q - p >= 3 ? q : NULL;
}

static const char *parse_uint(const char *p, int maxdigits, int lo, int hi, int *out)
{
    int v = 0, n = 0;
    while (is_digit(*p) && n < maxdigits)
        v = v * 10 + (*p++ - '0'), n++;
    if (n == 0 || is_digit(*p) || v < lo || v > hi)
        return NULL;
    *out = v;
    return p;
}

/* [+-]h[hh][:mm[:ss]] in seconds, hours at most maxh. */
static const char *parse_hms(const char *p, int maxh, int32_t *secs)
{
    int sign = 1, h, mi = 0, s = 0;
    if (*p == '+' || *p == '-')
        sign = (*p++ == '-') ? -1 : 1;
    p = parse_uint(p, 3, 0, maxh, &h);
    if (p != NULL && *p == ':') {
        p = parse_uint(p + 1, 2, 0, 59, &mi);
        if (p != NULL && *p == ':')
            p = parse_uint(p + 1, 2, 0, 59, &s);
    }
    if (p != NULL)
        *secs = sign * (h * 3600 + mi * 60 + s);
    return p;
}

static const char *parse_rule_date(const char *p, struct rule_date *r)
{
    r->kind = *p;
    r->b = r->c = 0;
    if (*p == 'J') {
        p = parse_uint(p + 1, 3, 1, 365, &r->a);
    } else if (*p == 'M') {
        p = parse_uint(p + 1, 2, 1, 12, &r->a);
        p = (p && *p == '.') ? parse_uint(p + 1, 1, 1, 5, &r->b) : NULL;
        p = (p && *p == '.') ? parse_uint(p + 1, 1, 0, 6, &r->c) : NULL;
    } else {
        r->kind = 'n';
        p = parse_uint(p, 3, 0, 365, &r->a);
    }
    r->secs = 7200; /* POSIX default 02:00 */
    if (p != NULL && *p == '/')
        p = parse_hms(p + 1, 167, &r->secs);
    return p;
}

static int parse_posix(const char *s, struct posix_rule *r)
{
    int32_t v;
    const char *p = parse_abbr(s);
    if (p == NULL || (p = parse_hms(p, 24, &v)) == NULL)
        return -1;
    memset(r, 0, sizeof(*r));
    r->std_off = r->dst_off = -v; /* POSIX counts west-positive */
    if (*p == '\0')
        return 0;
    if ((p = parse_abbr(p)) == NULL)
        return -1;
    r->has_dst = 1;
    r->dst_off = r->std_off + 3600;
    if (*p != '\0' && *p != ',') {
        if ((p = parse_hms(p, 24, &v)) == NULL)
            return -1;
        r->dst_off = -v;
    }
    if (*p == '\0') { /* no rule given: glibc's (and POSIX's customary) US default */
        (void)parse_rule_date("M3.2.0", &r->start);
        p = parse_rule_date("M11.1.0", &r->end);
    } else if (*p++ != ',' || (p = parse_rule_date(p, &r->start)) == NULL || *p++ != ','
             || (p = parse_rule_date(p, &r->end)) == NULL)
        return -1;
    return (p != NULL && *p == '\0') ? 0 : -1;
}

static int is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int64_t rule_day(const struct rule_date *r, int y)
{
    int64_t jan1 = period_days_from_civil(y, 1, 1);
    if (r->kind == 'J')
        return jan1 + r->a - 1 + (is_leap(y) && r->a >= 60);
    if (r->kind == 'n')
        return jan1 + r->a;
    int64_t first = period_days_from_civil(y, r->a, 1);
    int64_t mlen = period_days_from_civil(y, r->a + 1, 1) - first;
    int64_t day = first + (r->c - weekday_of_days(first) % 7 + 7) % 7 + (r->b - 1) * 7;
    while (day - first >= mlen) /* week 5 = the last such weekday */
        day -= 7;
    return day;
}

/* The rule's segment around t: changes of the years around t's, in time order. */
static void rule_seg(const struct posix_rule *r, int64_t t, struct seg *s)
{
    struct { int64_t at; int32_t off; } ev[10], tmp;
    int n = 0, y, m, d;

    *s = (struct seg){ SEC_MIN, SEC_MAX, r->std_off };
    if (!r->has_dst)
        return;
    period_civil_from_days(floor_div(t, 86400), &y, &m, &d);
    /* The start happens on the standard-time clock, the end on the daylight one. */
    for (int yy = y - 2; yy <= y + 2; yy++) {
        ev[n].at = rule_day(&r->start, yy) * 86400 + r->start.secs - r->std_off;
        ev[n++].off = r->dst_off;
        ev[n].at = rule_day(&r->end, yy) * 86400 + r->end.secs - r->dst_off;
        ev[n++].off = r->std_off;
    }
    /* Stable insertion sort: for all-year DST, end(Y) == start(Y+1) and the start wins. */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && ev[j - 1].at > ev[j].at; j--)
            tmp = ev[j], ev[j] = ev[j - 1], ev[j - 1] = tmp;
    int32_t cur = (ev[0].off == r->dst_off) ? r->std_off : r->dst_off;
    for (int i = 0; i < n; i++) {
        if (ev[i].off == cur)
            continue;
        if (ev[i].at > t) {
            s->hi = ev[i].at;
            break;
        }
        cur = ev[i].off;
        s->lo = ev[i].at;
    }
    s->off = cur;
}

/* ---- zone lookup ------------------------------------------------------------------- */

static void seg_at(const period_zone_t *z, int64_t t, struct seg *s)
{
    int32_t n = z->ntrans;
    if (n > 0 && t < z->trans[0]) {
        *s = (struct seg){ SEC_MIN, z->trans[0], z->first_off };
        return;
    }
    if (n == 0 || t >= z->trans[n - 1]) {
        if (z->has_rule) {
            rule_seg(&z->rule, t, s);
        } else {
            *s = (struct seg){ SEC_MIN, SEC_MAX, n > 0 ? z->trans_off[n - 1] : z->first_off };
        }
        if (n > 0 && s->lo < z->trans[n - 1])
            s->lo = z->trans[n - 1];
        return;
    }
    int32_t lo = 0, hi = n - 1; /* invariant: trans[lo] <= t < trans[hi] */
    while (hi - lo > 1) {
        int32_t mid = lo + (hi - lo) / 2;
        if (z->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    *s = (struct seg){ z->trans[lo], z->trans[hi], z->trans_off[lo] };
}

/* Walk offset segments forward from a UTC instant surely before local time L: the first
 * segment whose local range reaches past L either contains L (earliest instance) or
 * starts after it (L fell into a gap: the change itself is the answer). */
static int64_t local_to_utc_s(const period_zone_t *z, int64_t L)
{
    struct seg s;
    int64_t t = L - OFF_MAX - 1;
    for (int i = 0; i < 64; i++) {
        seg_at(z, t, &s);
        if (L < s.hi + s.off)
            return L >= s.lo + s.off ? L - s.off : s.lo;
        t = s.hi;
    }
    return L - s.off; /* only a pathological table gets here; stay close, stay bounded */
}

int64_t period_local_to_utc(period_zone_t *zone, int y, int m, int d, int h, int mi)
{
    int64_t L = period_days_from_civil(y, m, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60;
    L = L < SEC_MIN / 2 ? SEC_MIN / 2 : L > SEC_MAX / 2 ? SEC_MAX / 2 : L;
    return local_to_utc_s(zone, L) * 1000;
}

static void fill(const period_zone_t *z, struct cache_ent *e, int64_t ms)
{
    struct seg s;
    int64_t t = floor_div(ms, 1000);
    int y, m, d, gy, gw;
    seg_at(z, t, &s);
    int64_t day = floor_div(t + s.off, 86400);
    int64_t lo = day * 86400 - s.off, hi = lo + 86400; /* where this offset keeps the date */
    e->lo_ms = (s.lo > lo ? s.lo : lo) * 1000;
    e->hi_ms = (s.hi < hi ? s.hi : hi) * 1000;
    e->off = s.off;

    period_set_t *ps = &e->set;
    period_civil_from_days(day, &y, &m, &d);
    period_iso_week(y, m, d, &gy, &gw);
    int64_t monday = day - (weekday_of_days(day) - 1);
    int q0 = (m - 1) / 3 * 3 + 1;
    const int64_t first[PERIOD_KINDS] = {day, monday, period_days_from_civil(y, m, 1),
                                         period_days_from_civil(y, q0, 1)};
    const int64_t next[PERIOD_KINDS] = {day + 1, monday + 7, period_days_from_civil(y, m + 1, 1),
                                        period_days_from_civil(y, q0 + 3, 1)};
    for (int k = 0; k < PERIOD_KINDS; k++) {
        ps->start_ms[k] = local_to_utc_s(z, first[k] * 86400) * 1000;
        ps->end_ms[k] = local_to_utc_s(z, next[k] * 86400) * 1000;
        /* A date that recurs after a backward jump across midnight (Alaska 1867) is not
         * one interval; widen so that start <= t < end always holds for the caller. */
        if (ps->start_ms[k] > e->lo_ms)
            ps->start_ms[k] = e->lo_ms;
        if (ps->end_ms[k] < e->hi_ms)
            ps->end_ms[k] = e->hi_ms;
    }
    /* y, gy lie in 1..9999 (instants are clamped); the modulos only show gcc the widths. */
    unsigned uy = (unsigned)y % 10000u, um = (unsigned)m % 100u;
    snprintf(ps->id[PERIOD_DAY], sizeof(ps->id[0]), "d:%04u-%02u-%02u", uy, um, (unsigned)d % 100u);
    snprintf(ps->id[PERIOD_WEEK], sizeof(ps->id[0]), "w:%04u-W%02u", (unsigned)gy % 10000u,
             (unsigned)gw % 100u);
    snprintf(ps->id[PERIOD_MONTH], sizeof(ps->id[0]), "m:%04u-%02u", uy, um);
    snprintf(ps->id[PERIOD_QUARTER], sizeof(ps->id[0]), "q:%04u-Q%u", uy, (um + 2) / 3);
}

static struct cache_ent *lookup(period_zone_t *z, int64_t ms)
{
    struct cache_ent *e = &z->cache[z->last];
    if (ms >= e->lo_ms && ms < e->hi_ms)
        return e;
    ms = ms < MIN_MS ? MIN_MS : ms > MAX_MS ? MAX_MS : ms;
    for (int i = 0; i < CACHE_N; i++) {
        if (ms >= z->cache[i].lo_ms && ms < z->cache[i].hi_ms) {
            z->last = i;
            return &z->cache[i];
        }
    }
    z->last = z->next;
    z->next = (z->next + 1) % CACHE_N;
    e = &z->cache[z->last];
    fill(z, e, ms);
    return e;
}

const period_set_t *period_of(period_zone_t *zone, int64_t utc_ms)
{
    const struct cache_ent *e = &zone->cache[zone->last];
    if (utc_ms >= e->lo_ms && utc_ms < e->hi_ms) /* the common case: same day as last time */
        return &e->set;
    return &lookup(zone, utc_ms)->set;
}

int32_t period_utc_offset_s(period_zone_t *zone, int64_t utc_ms)
{
    return lookup(zone, utc_ms)->off;
}

/* ---- loading ----------------------------------------------------------------------- */

struct reader {
    const unsigned char *p;
    size_t left;
};

static const unsigned char *take(struct reader *r, uint64_t n)
{
    if (n > r->left)
        return NULL;
    const unsigned char *p = r->p;
    r->p += n;
    r->left -= (size_t)n;
    return p;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int32_t be32s(const unsigned char *p)
{
    int64_t v = be32(p);
    return (int32_t)(v >= INT64_C(0x80000000) ? v - INT64_C(0x100000000) : v);
}

static int64_t be64s(const unsigned char *p)
{
    uint64_t u = (uint64_t)be32(p) << 32 | be32(p + 4);
    return u > (uint64_t)INT64_MAX ? -(int64_t)(~u) - 1 : (int64_t)u;
}

struct tzhead {
    char version;
    uint32_t isut, isstd, leap, time, type, chars;
};

static int read_head(struct reader *r, struct tzhead *h)
{
    const unsigned char *p = take(r, 44);
    if (p == NULL || memcmp(p, "TZif", 4) != 0)
        return -1;
    h->version = (char)p[4];
    h->isut = be32(p + 20);
    h->isstd = be32(p + 24);
    h->leap = be32(p + 28);
    h->time = be32(p + 32);
    h->type = be32(p + 36);
    h->chars = be32(p + 40);
    return 0;
}

/* Fills z->trans, trans_off, first_off, rule from a whole TZif file (v2+, 64-bit part). */
static const char *parse_tzif(period_zone_t *z, const unsigned char *buf, size_t len)
{
    struct reader r = { buf, len };
    struct tzhead h;
    int32_t offs[256];
    char footer[MAX_FOOTER + 1];

    if (read_head(&r, &h) != 0)
        return "not a TZif file";
    if (h.version < '2')
        return "TZif version 1 files are not supported";
    if (take(&r, (uint64_t)h.time * 5 + (uint64_t)h.type * 6 + h.chars + (uint64_t)h.leap * 8
                     + h.isstd + h.isut) == NULL || read_head(&r, &h) != 0)
        return "truncated TZif file";
    if (h.leap != 0)
        return "leap-second ('right/') zone files are not supported";
    if (h.time > MAX_TRANS || h.type < 1 || h.type > 256 || h.chars < 1
        || (h.isstd != 0 && h.isstd != h.type) || (h.isut != 0 && h.isut != h.type))
        return "implausible TZif header counts";
    const unsigned char *tp = take(&r, (uint64_t)h.time * 8), *ip = take(&r, h.time),
                        *ty = take(&r, (uint64_t)h.type * 6);
    if (tp == NULL || ip == NULL || ty == NULL || take(&r, (uint64_t)h.chars + h.isstd + h.isut) == NULL)
        return "truncated TZif file";
    for (uint32_t i = 0; i < h.type; i++) {
        offs[i] = be32s(ty + 6 * i);
        if (offs[i] < OFF_MIN || offs[i] > OFF_MAX || ty[6 * i + 4] > 1 || ty[6 * i + 5] >= h.chars)
            return "invalid local time type";
    }
    z->first_off = offs[0];
    z->trans = malloc(sizeof(int64_t) * (h.time ? h.time : 1));
    z->trans_off = malloc(sizeof(int32_t) * (h.time ? h.time : 1));
    if (z->trans == NULL || z->trans_off == NULL)
        return "out of memory";
    for (uint32_t i = 0; i < h.time; i++) {
        int64_t t = be64s(tp + 8 * i);
        if (t < -TRANS_LIMIT || t > TRANS_LIMIT || (i > 0 && t <= z->trans[i - 1]))
            return "transition times out of range or not ascending";
        if (ip[i] >= h.type)
            return "transition refers to a missing time type";
        z->trans[i] = t;
        z->trans_off[i] = offs[ip[i]];
    }
    z->ntrans = (int32_t)h.time;

    const unsigned char *nl = take(&r, 1), *end;
    if (nl == NULL || *nl != '\n' || (end = memchr(r.p, '\n', r.left)) == NULL)
        return "missing TZ string footer";
    size_t flen = (size_t)(end - r.p);
    if (flen > MAX_FOOTER || r.left != flen + 1 || memchr(r.p, '\0', flen) != NULL)
        return "malformed TZ string footer";
    memcpy(footer, r.p, flen);
    footer[flen] = '\0';
    if (flen > 0) {
        if (parse_posix(footer, &z->rule) != 0)
            return "unsupported TZ string footer";
        z->has_rule = 1;
    }
    return NULL;
}

static int name_is_safe(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 200 || name[0] == '/' || strstr(name, "..") != NULL)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!is_alpha(c) && !is_digit(c) && strchr("_+./-", c) == NULL)
            return 0;
    }
    return 1;
}

/* Reads a whole regular file of at most MAX_FILE bytes; *buf is the caller's to free. */
static int slurp(const char *path, unsigned char **buf, size_t *len)
{
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return errno;
    int rc = 0;
    if (fstat(fileno(f), &st) != 0)
        rc = errno;
    else if (!S_ISREG(st.st_mode))
        rc = EISDIR;
    else if (st.st_size > MAX_FILE)
        rc = EFBIG;
    else if ((*buf = malloc((size_t)st.st_size + 1)) == NULL)
        rc = ENOMEM;
    else if ((*len = fread(*buf, 1, (size_t)st.st_size + 1, f)) != (size_t)st.st_size) {
        rc = EIO; /* a read error, or the file changed size under us */
        free(*buf);
        *buf = NULL;
    }
    fclose(f);
    return rc;
}

static period_zone_t *zone_new(const char *name)
{
    period_zone_t *z = calloc(1, sizeof(*z));
    if (z != NULL && (z->name = strdup(name)) == NULL) {
        free(z);
        z = NULL;
    }
    return z;
}

period_zone_t *period_zone_open(const char *iana_name, char *err, size_t errlen)
{
    char path[4096];
    unsigned char *buf = NULL;
    size_t len = 0;

    if (iana_name == NULL || !name_is_safe(iana_name)) {
        set_err(err, errlen, "time zone name '%.64s' is not a safe IANA name",
                iana_name ? iana_name : "(null)");
        return NULL;
    }
    const char *dir = getenv("TZDIR");
    if (dir == NULL || dir[0] == '\0')
        dir = "/usr/share/zoneinfo";
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, iana_name) >= sizeof(path)) {
        set_err(err, errlen, "time zone directory path too long");
        return NULL;
    }
    int rc = slurp(path, &buf, &len);
    period_zone_t *z = zone_new(iana_name);
    if (z == NULL) {
        free(buf);
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    if (rc == ENOENT && (strcmp(iana_name, "UTC") == 0 || strcmp(iana_name, "Etc/UTC") == 0))
        return z; /* no tzdata installed: UTC needs none (calloc'd zone = offset 0, no rule) */
    if (rc != 0) {
        set_err(err, errlen, "unknown time zone '%s' (%s: %s)", iana_name, path, strerror(rc));
        period_zone_free(z);
        return NULL;
    }
    const char *why = parse_tzif(z, buf, len);
    free(buf);
    if (why != NULL) {
        set_err(err, errlen, "time zone '%s' (%s): %s", iana_name, path, why);
        period_zone_free(z);
        return NULL;
    }
    return z;
}

period_zone_t *period_zone_open_posix(const char *tz, char *err, size_t errlen)
{
    struct posix_rule rule;
    if (tz == NULL || strlen(tz) > MAX_FOOTER || parse_posix(tz, &rule) != 0) {
        set_err(err, errlen, "invalid POSIX TZ string '%.64s'", tz ? tz : "(null)");
        return NULL;
    }
    period_zone_t *z = zone_new(tz);
    if (z == NULL) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    z->rule = rule;
    z->has_rule = 1;
    z->first_off = rule.std_off;
    return z;
}

void period_zone_free(period_zone_t *zone)
{
    if (zone == NULL)
        return;
    free(zone->name);
    free(zone->trans);
    free(zone->trans_off);
    free(zone);
}

const char *period_zone_name(const period_zone_t *zone)
{
    return zone->name;
}

/* ---- period ids back to dates ------------------------------------------------------ */

static int parse_fixed(const char *s, int digits, int *out)
{
    int v = 0;
    for (int i = 0; i < digits; i++) {
        if (!is_digit(s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int period_id_first_day(const char *id, enum period_kind *kind, int *y, int *m, int *d)
{
    int a, b, c;
    size_t len = strlen(id);
    if (len == 12 && id[0] == 'd' && id[1] == ':' && id[6] == '-' && id[9] == '-' &&
        !parse_fixed(id + 2, 4, &a) && !parse_fixed(id + 7, 2, &b) && !parse_fixed(id + 10, 2, &c) &&
        b >= 1 && b <= 12 && c >= 1 && c <= 31) {
        *kind = PERIOD_DAY;
        period_civil_from_days(period_days_from_civil(a, b, c), y, m, d);
        return 0;
    }
    if (len == 10 && id[0] == 'w' && id[1] == ':' && id[6] == '-' && id[7] == 'W' &&
        !parse_fixed(id + 2, 4, &a) && !parse_fixed(id + 8, 2, &b) && b >= 1 && b <= 53) {
        /* ISO week 1 is the one holding 4 January. */
        int64_t jan4 = period_days_from_civil(a, 1, 4);
        int64_t monday = jan4 - (weekday_of_days(jan4) - 1) + 7 * (int64_t)(b - 1);
        *kind = PERIOD_WEEK;
        period_civil_from_days(monday, y, m, d);
        return 0;
    }
    if (len == 9 && id[0] == 'm' && id[1] == ':' && id[6] == '-' && !parse_fixed(id + 2, 4, &a) &&
        !parse_fixed(id + 7, 2, &b) && b >= 1 && b <= 12) {
        *kind = PERIOD_MONTH;
        *y = a, *m = b, *d = 1;
        return 0;
    }
    if (len == 9 && id[0] == 'q' && id[1] == ':' && id[6] == '-' && id[7] == 'Q' &&
        !parse_fixed(id + 2, 4, &a) && id[8] >= '1' && id[8] <= '4') {
        *kind = PERIOD_QUARTER;
        *y = a, *m = (id[8] - '1') * 3 + 1, *d = 1;
        return 0;
    }
    return -1;
}
