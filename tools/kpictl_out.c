/* kpictl: text formatting and a small JSON writer for --json. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kpictl_impl.h"

void fmt_grouped(char *buf, size_t size, long long v)
{
    char digits[24], out[40];
    unsigned long long m = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    int n = snprintf(digits, sizeof digits, "%llu", m), o = 0;
    if (v < 0)
        out[o++] = '-';
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
    snprintf(buf, size, "%s", out);
}

/* Rounded half away from zero. */
void fmt_units(char *buf, size_t size, long long cents)
{
    long long units = cents / 100, rest = cents % 100;
    units += rest >= 50 ? 1 : rest <= -50 ? -1 : 0;
    fmt_grouped(buf, size, units);
}

/* A decimal string kpid wrote (avg_deal_cents "5835850.3333") as whole units; "-" when
 * absent. Display only, so a double is exact enough. */
void fmt_units_decimal(char *buf, size_t size, const char *cents)
{
    if (!cents) {
        snprintf(buf, size, "-");
        return;
    }
    double u = strtod(cents, NULL) / 100;
    fmt_grouped(buf, size, (long long)(u < 0 ? u - 0.5 : u + 0.5));
}

/* "-" when absent: its denominator was 0. */
void fmt_percent(char *buf, size_t size, const char *ratio)
{
    if (ratio)
        snprintf(buf, size, "%.1f", strtod(ratio, NULL) * 100);
    else
        snprintf(buf, size, "-");
}

void fmt_utc(char *buf, size_t size, int64_t ms)
{
    time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    if (!gmtime_r(&s, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, size, "?");
}

int clamp_width(size_t w, int lo, int hi)
{
    return w < (size_t)lo ? lo : w > (size_t)hi ? hi : (int)w;
}

void put_clean(const char *s, int width)
{
    int n = 0;
    for (; *s; s++, n++)
        putchar((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s);
    for (; n < width; n++)
        putchar(' ');
}

/* ---- JSON ---- */

int json_number_text(const char *s)
{
    if (!s)
        return 0;
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (isdigit((unsigned char)*s))
            s++;
    else
        return 0;
    if (*s == '.') {
        if (!isdigit((unsigned char)*++s))
            return 0;
        while (isdigit((unsigned char)*s))
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!isdigit((unsigned char)*s))
            return 0;
        while (isdigit((unsigned char)*s))
            s++;
    }
    return *s == '\0';
}

static void jw_quote(const char *s, size_t len)
{
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", stdout);
        else if (ch == '\t')
            fputs("\\t", stdout);
        else if (ch < 0x20 || ch == 0x7f)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

/* The comma before an item and its key. */
static void jw_item(struct jw *w, const char *key)
{
    if (w->depth > 0 && w->has_items[w->depth - 1])
        putchar(',');
    if (w->depth > 0)
        w->has_items[w->depth - 1] = 1;
    if (key) {
        jw_quote(key, strlen(key));
        putchar(':');
    }
}

void jw_begin(struct jw *w, const char *key, char open)
{
    jw_item(w, key);
    putchar(open);
    if (w->depth < (int)sizeof w->has_items)
        w->has_items[w->depth] = 0;
    w->depth++;
}

void jw_end(struct jw *w, char close)
{
    putchar(close);
    w->depth--;
}

void jw_str(struct jw *w, const char *key, const char *s)
{
    jw_item(w, key);
    if (s)
        jw_quote(s, strlen(s));
    else
        fputs("null", stdout);
}

void jw_int(struct jw *w, const char *key, long long v)
{
    jw_item(w, key);
    printf("%lld", v);
}

void jw_bool(struct jw *w, const char *key, int v)
{
    jw_item(w, key);
    fputs(v ? "true" : "false", stdout);
}

void jw_null(struct jw *w, const char *key)
{
    jw_item(w, key);
    fputs("null", stdout);
}

void jw_num(struct jw *w, const char *key, const char *text)
{
    jw_item(w, key);
    fputs(json_number_text(text) ? text : "null", stdout);
}

void jw_auto(struct jw *w, const char *key, const char *text)
{
    if (json_number_text(text))
        jw_num(w, key, text);
    else
        jw_str(w, key, text);
}

/* Re-written from the tree rather than copied, so a document stays on one line. */
void jw_node(struct jw *w, const char *key, const json_node_t *node)
{
    size_t len = 0;
    switch (json_kind(node)) {
    case JSON_BOOL:
        jw_item(w, key);
        fputs(json_bool(node) ? "true" : "false", stdout);
        break;
    case JSON_NUMBER:
        jw_num(w, key, json_number_literal(node));
        break;
    case JSON_STRING: {
        const char *s = json_string(node, &len);
        jw_item(w, key);
        jw_quote(s, len);
        break;
    }
    case JSON_ARRAY:
        jw_begin(w, key, '[');
        for (size_t i = 0; i < json_array_len(node); i++)
            jw_node(w, NULL, json_array_at(node, i));
        jw_end(w, ']');
        break;
    case JSON_OBJECT:
        jw_begin(w, key, '{');
        for (size_t i = 0; i < json_object_len(node); i++) {
            size_t klen = 0;
            const char *k = json_object_key_at(node, i, &klen);
            /* A key with an embedded NUL is cut there: kpid never writes one. */
            jw_node(w, k, json_object_value_at(node, i));
        }
        jw_end(w, '}');
        break;
    case JSON_NULL:
    default:
        jw_null(w, key);
        break;
    }
}

void jw_done(struct jw *w)
{
    (void)w;
    putchar('\n');
    fflush(stdout);
}
