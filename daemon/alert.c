#include "alert.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ID_MSG_MAX 128  /* an id quoted inside a message is cut here */

/* ---------------------------------------------------------------- state encoding */

static const char SEV_CODE[] = "nwc"; /* by enum alert_severity */

/* Period ids travel between '|' separators, so only printable ASCII without '|'. */
static bool period_ok(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] < 0x21 || p[i] > 0x7e || p[i] == '|')
            return false;
    return true;
}

int alert_state_encode(const alert_state_t *st, char *buf, size_t cap)
{
    size_t plen = strnlen(st->period, sizeof st->period);
    if (plen == sizeof st->period || !period_ok(st->period, plen) ||
        st->severity < ALERT_NONE || st->severity > ALERT_CRITICAL)
        return -1;
    int n = snprintf(buf, cap, "v1|%d|%s|%d|%c|%" PRId64 "|%" PRId64 "|%d", st->open ? 1 : 0,
                     st->period, st->seq, SEV_CODE[st->severity], st->fired_ms, st->sent_ms,
                     st->escalated ? 1 : 0);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

static bool parse_i64(const char *s, int64_t *out)
{
    bool neg = *s == '-';
    if (neg)
        s++;
    if (!*s)
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (v > (uint64_t)INT64_MAX + (neg ? 1u : 0u))
        return false;
    *out = !neg ? (int64_t)v : v == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)v;
    return true;
}

static bool parse_flag(const char *s, bool *out)
{
    if ((s[0] != '0' && s[0] != '1') || s[1])
        return false;
    *out = s[0] == '1';
    return true;
}

static int decode_fields(char **f, alert_state_t *out)
{
    int64_t seq;
    const char *sev = f[4][0] && !f[4][1] ? strchr(SEV_CODE, f[4][0]) : NULL;
    size_t plen = strlen(f[2]);
    if (strcmp(f[0], "v1") != 0 || !parse_flag(f[1], &out->open) ||
        plen >= sizeof out->period || !period_ok(f[2], plen) || !parse_i64(f[3], &seq) ||
        seq < 0 || seq > INT_MAX || !sev ||
        !parse_i64(f[5], &out->fired_ms) || !parse_i64(f[6], &out->sent_ms) ||
        !parse_flag(f[7], &out->escalated))
        return -1;
    memcpy(out->period, f[2], plen + 1);
    out->seq = (int)seq;
    out->severity = (enum alert_severity)(sev - SEV_CODE);
    /* An open alert without these could not be rendered or repeated under a stable id. */
    if (out->open && (!plen || seq < 1 || out->severity == ALERT_NONE))
        return -1;
    return 0;
}

int alert_state_decode(const char *s, size_t len, alert_state_t *out)
{
    memset(out, 0, sizeof *out);
    if (!s || !len)
        return 0;
    char copy[ALERT_STATE_MAX];
    if (len >= sizeof copy || memchr(s, '\0', len))
        return -1;
    memcpy(copy, s, len);
    copy[len] = '\0';
    char *f[8];
    size_t n = 0;
    for (char *p = copy;; p++) {
        if (n == 8)
            return -1;
        f[n++] = p;
        p = strchr(p, '|');
        if (!p)
            break;
        *p = '\0';
    }
    if (n != 8 || decode_fields(f, out) != 0) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    return 0;
}

const char *alert_severity_name(enum alert_severity sev)
{
    return sev == ALERT_CRITICAL ? "critical" : sev == ALERT_WARN ? "warn" : "none";
}

/* ---------------------------------------------------------------- text building */

/* An append-only buffer: a piece that does not fit is dropped whole and marks it full, so
 * JSON is never cut inside an escape. */
struct buf {
    char *p;
    size_t cap, len;
    bool full;
};

static void put_raw(struct buf *b, const char *s, size_t n)
{
    if (b->full || n >= b->cap - b->len) {
        b->full = true;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void put(struct buf *b, const char *s)
{
    put_raw(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void putf(struct buf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        b->full = true;
    else
        put_raw(b, tmp, (size_t)n);
}

/* Length of the valid UTF-8 sequence starting at s (n bytes left); 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80; /* overlong */
        hi = c == 0xed ? 0x9f : 0xbf; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf; /* beyond U+10FFFF */
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

/* The JSON text of the character at s into piece (<= 6 bytes, *plen): the bytes
 * themselves, an escape, or U+FFFD for a byte that is not valid UTF-8, which would make
 * the whole object unparsable. Returns the bytes of s consumed. */
static size_t esc_piece(const unsigned char *s, size_t n, char piece[8], size_t *plen)
{
    static const char short_esc[] = {'"', '"', '\\', '\\', '\n', 'n', '\r', 'r', '\t', 't',
                                      '\b', 'b', '\f', 'f'};
    for (size_t i = 0; i < sizeof short_esc; i += 2)
        if (s[0] == (unsigned char)short_esc[i]) {
            piece[0] = '\\';
            piece[1] = short_esc[i + 1];
            *plen = 2;
            return 1;
        }
    if (s[0] < 0x20 || s[0] == 0x7f) {
        *plen = (size_t)snprintf(piece, 8, "\\u%04x", s[0]);
        return 1;
    }
    size_t k = utf8_len(s, n);
    if (!k) {
        memcpy(piece, "\\ufffd", 6);
        *plen = 6;
        return 1;
    }
    memcpy(piece, s, k);
    *plen = k;
    return k;
}

/* s escaped, at most limit (>= 3) bytes of output: cut with "..." when longer. */
static void put_esc(struct buf *b, const char *s, size_t limit)
{
    const unsigned char *u = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)u), total = 0, used = 0, plen;
    char piece[8];
    for (size_t i = 0; i < n;) {
        i += esc_piece(u + i, n - i, piece, &plen);
        total += plen;
    }
    size_t room = total <= limit ? total : limit - 3;
    for (size_t i = 0; i < n;) {
        size_t adv = esc_piece(u + i, n - i, piece, &plen);
        if (used + plen > room)
            break;
        put_raw(b, piece, plen);
        used += plen;
        i += adv;
    }
    if (total > limit)
        put(b, "...");
}

static void member_str(struct buf *b, const char *key, const char *s, size_t limit)
{
    putf(b, ",\"%s\":\"", key);
    put_esc(b, s, limit);
    put(b, "\"");
}

/* JSON number grammar without exponent (pacing writes none): -?(0|[1-9][0-9]*)(.[0-9]+)? */
static bool is_decimal(const char *s)
{
    if (!s)
        return false;
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9')
            s++;
    else
        return false;
    if (*s == '.') {
        if (*++s < '0' || *s > '9')
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

static void member_decimal(struct buf *b, const char *key, const char *s)
{
    putf(b, ",\"%s\":", key);
    /* unquoted text is spliced into JSON: only a well-formed number may pass */
    put(b, is_decimal(s) && strlen(s) < 48 ? s : "null");
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* UTC time of ms: ISO 8601 to the second ("2026-11-19T12:00:00Z"), or for people to the
 * minute ("2026-11-19 12:00 UTC"). */
static void put_time(struct buf *b, int64_t ms, bool iso)
{
    int64_t sec = floor_div(ms, 1000), day = floor_div(sec, 86400), s = sec - day * 86400;
    int y, m, d;
    period_civil_from_days(day, &y, &m, &d);
    int hh = (int)(s / 3600), mi = (int)(s % 3600 / 60), ss = (int)(s % 60);
    if (iso)
        putf(b, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d, hh, mi, ss);
    else
        putf(b, "%04d-%02d-%02d %02d:%02d UTC", y, m, d, hh, mi);
}

/* ---------------------------------------------------------------- messages */

struct noun {
    const char *metric, *one, *many;
};

static const struct noun NOUNS[] = {
    {"calls", "call", "calls"},
    {"calls_connected", "connected call", "connected calls"},
    {"calls_in", "inbound call", "inbound calls"},
    {"call_seconds", "second on calls", "seconds on calls"},
    {"emails", "e-mail", "e-mails"},
    {"emails_in", "inbound e-mail", "inbound e-mails"},
    {"meetings_held", "meeting held", "meetings held"},
    {"meetings_scheduled", "meeting scheduled", "meetings scheduled"},
    {"meetings_first", "first meeting", "first meetings"},
    {"meetings_next_step", "first meeting with a next step", "first meetings with a next step"},
    {"meetings_no_show", "no-show meeting", "no-show meetings"},
    {"meetings_cancelled", "cancelled meeting", "cancelled meetings"},
    {"touches", "touch", "touches"},
    {"deals_won", "deal won", "deals won"},
    {"deals_lost", "deal lost", "deals lost"},
    {"revenue_won_cents", "revenue won", "revenue won"},
};

static bool is_money(const char *metric)
{
    return metric && strcmp(metric, "revenue_won_cents") == 0;
}

/* An id inside a message, cut at a character boundary so the message stays readable. */
static void put_id(struct buf *b, const char *s)
{
    size_t n = strlen(s ? s : "");
    if (n <= ID_MSG_MAX) {
        put_raw(b, s ? s : "", n);
        return;
    }
    n = ID_MSG_MAX - 3;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    put_raw(b, s, n);
    put(b, "...");
}

static void put_noun(struct buf *b, const char *metric, bool one)
{
    if (metric && strncmp(metric, "stage:", 6) == 0) {
        put(b, one ? "deal reaching " : "deals reaching ");
        put_id(b, metric + 6);
        return;
    }
    for (size_t i = 0; metric && i < sizeof NOUNS / sizeof NOUNS[0]; i++)
        if (strcmp(metric, NOUNS[i].metric) == 0) {
            put(b, one ? NOUNS[i].one : NOUNS[i].many);
            return;
        }
    put_id(b, metric);
}

static void put_money(struct buf *b, int64_t cents)
{
    uint64_t u = cents < 0 ? 0u - (uint64_t)cents : (uint64_t)cents;
    putf(b, "%s%" PRIu64 ".%02" PRIu64, cents < 0 ? "-" : "", u / 100, u % 100);
}

/* A count as people read it: "1234.56" for money in cents, else the integer. */
static void put_count(struct buf *b, const char *metric, int64_t v)
{
    if (is_money(metric))
        put_money(b, v);
    else
        putf(b, "%" PRId64, v);
}

/* "2 meetings held", "1 meeting held", "1234.56 revenue won" */
static void put_quantity(struct buf *b, const char *metric, int64_t v)
{
    put_count(b, metric, v);
    put(b, " ");
    put_noun(b, metric, v == 1 || v == -1);
}

/* A decimal string as people read it: money cents rounded half away from zero to whole
 * cents and shown in units ("333333.3333" -> "3333.33"); anything else as written. */
static void put_decimal(struct buf *b, const char *metric, const char *dec)
{
    if (!is_decimal(dec)) {
        put(b, "?");
        return;
    }
    if (!is_money(metric)) {
        put(b, dec);
        return;
    }
    const char *s = dec + (*dec == '-');
    int64_t whole = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (whole > (INT64_MAX - 9) / 10) {
            put(b, dec); /* too big to be money here; say it as written */
            return;
        }
        whole = whole * 10 + (*s - '0');
    }
    if (*s == '.' && s[1] >= '5')
        whole++;
    put_money(b, *dec == '-' ? -whole : whole);
}

/* A running period ("this week") and an ended one ("week w:2026-W47"). */
static const char *period_word(enum period_kind kind, bool ended)
{
    static const char *const running[] = {"today", "this week", "this month", "this quarter"};
    static const char *const past[] = {"day", "week", "month", "quarter"};
    unsigned k = kind >= PERIOD_DAY && kind < PERIOD_KINDS ? (unsigned)kind : PERIOD_QUARTER;
    return ended ? past[k] : running[k];
}

/* "3 h 5 min": working or wall seconds, to the minute (days past two days). */
static void put_duration(struct buf *b, int64_t s)
{
    if (s < 0)
        s = 0;
    int64_t h = s / 3600, mi = s % 3600 / 60;
    if (s < 60)
        putf(b, "%" PRId64 " s", s);
    else if (h >= 48)
        putf(b, "%" PRId64 " d %" PRId64 " h", h / 24, h % 24);
    else if (h && mi)
        putf(b, "%" PRId64 " h %" PRId64 " min", h, mi);
    else if (h)
        putf(b, "%" PRId64 " h", h);
    else
        putf(b, "%" PRId64 " min", mi);
}

enum msg { MSG_FIRING, MSG_RESOLVED, MSG_NO_TARGET, MSG_FINAL, MSG_IDLE, MSG_ACTIVE };

/* Everything one output is rendered from. */
struct view {
    const struct config_rule *rule;
    const alert_state_t *st;
    const struct alert_subject *who;
    const struct alert_figures *fig;  /* threshold rules */
    const struct alert_idle *idle;    /* inactivity rules */
    int64_t now_ms;
    enum msg msg;
    bool digest;
    bool age;                         /* a repeat or escalation: say how long it is open */
};

static bool is_resolved(enum msg m)
{
    return m == MSG_RESOLVED || m == MSG_NO_TARGET || m == MSG_FINAL || m == MSG_ACTIVE;
}

/* The lead an alert may go to: set, and not the manager (a lead's own alerts stay theirs). */
static const char *lead_of(const struct alert_subject *who)
{
    if (!who->lead || !who->lead[0] || (who->manager && strcmp(who->lead, who->manager) == 0))
        return NULL;
    return who->lead;
}

/* "2 meetings held this week, 3.5 expected by now (target 5)" */
static void put_pace(struct buf *b, const struct view *v)
{
    const char *metric = v->rule->metric;
    put_quantity(b, metric, v->fig->actual);
    put(b, " ");
    put(b, period_word(v->fig->kind, false));
    put(b, ", ");
    put_decimal(b, metric, v->fig->expected);
    put(b, " expected by now (target ");
    put_count(b, metric, v->fig->target);
    put(b, ")");
}

static void put_body(struct buf *b, const struct view *v)
{
    const char *metric = v->rule->metric;
    switch (v->msg) {
    case MSG_FIRING:
        put(b, v->st->severity == ALERT_CRITICAL ? " (critical): " : ": ");
        put_pace(b, v);
        break;
    case MSG_RESOLVED:
        put(b, " is back on pace: ");
        put_pace(b, v);
        break;
    case MSG_NO_TARGET:
        put(b, ": the target for ");
        put_noun(b, metric, false);
        putf(b, " %s was removed (", period_word(v->fig->kind, false));
        put_count(b, metric, v->fig->actual);
        put(b, " so far)");
        break;
    case MSG_FINAL:
        putf(b, ": %s ", period_word(v->fig->kind, true));
        put_id(b, v->st->period);
        put(b, " closed with ");
        put_quantity(b, metric, v->fig->actual);
        put(b, " of ");
        put_count(b, metric, v->fig->target);
        put(b, " targeted");
        break;
    case MSG_IDLE:
        put(b, ": no ");
        put_noun(b, metric, false);
        put(b, " for ");
        put_duration(b, v->idle->idle_work_s);
        put(b, " of working time (");
        if (v->idle->last_ms >= 0) {
            put(b, "last at ");
            put_time(b, v->idle->last_ms, false);
        } else
            put(b, "none on record");
        put(b, ")");
        break;
    case MSG_ACTIVE:
        put(b, " is active again: ");
        put_quantity(b, metric, v->idle->actual_today);
        put(b, " today");
        if (v->idle->last_ms >= 0) {
            put(b, ", the last at ");
            put_time(b, v->idle->last_ms, false);
        }
        break;
    }
}

static void build_message(const struct view *v, char *text, size_t cap)
{
    struct buf b = {text, cap, 0, false};
    text[0] = '\0';
    put_id(&b, v->who->manager);
    put_body(&b, v);
    if (is_resolved(v->msg))
        return;
    const char *lead = v->st->escalated ? lead_of(v->who) : NULL;
    if (v->age) {
        put(&b, "; open for ");
        put_duration(&b, v->now_ms < v->st->fired_ms ? 0
                         : (int64_t)(((uint64_t)v->now_ms - (uint64_t)v->st->fired_ms) / 1000u));
    }
    if (lead) {
        put(&b, v->age ? ", escalated to " : "; escalated to ");
        put_id(&b, lead);
    }
}

/* ---------------------------------------------------------------- JSON */

/* The alert object with ids cut at id_cap and the message at msg_cap escaped bytes;
 * false when it does not fit ALERT_JSON_MAX. */
static bool render(const struct view *v, char *json, size_t id_cap, size_t msg_cap)
{
    const alert_state_t *st = v->st;
    const char *team = v->who->team ? v->who->team : CONFIG_UNASSIGNED_TEAM;
    const char *lead = st->escalated ? lead_of(v->who) : NULL;
    char text[1024];
    build_message(v, text, sizeof text);

    struct buf b = {json, ALERT_JSON_MAX, 0, false};
    put(&b, "{\"alert_id\":\"");
    put_esc(&b, v->who->manager, id_cap);
    put(&b, "/");
    put_esc(&b, v->rule->name, id_cap);
    put(&b, "/");
    put_esc(&b, st->period, id_cap);
    putf(&b, "/%d\"", st->seq);
    putf(&b, ",\"state\":\"%s\"", is_resolved(v->msg) ? "resolved" : "firing");
    putf(&b, ",\"severity\":\"%s\"", alert_severity_name(st->severity));
    member_str(&b, "rule", v->rule->name, id_cap);
    member_str(&b, "manager", v->who->manager, id_cap);
    member_str(&b, "team", team, id_cap);
    member_str(&b, "metric", v->rule->metric, id_cap);
    member_str(&b, "period", st->period, id_cap);
    if (v->fig) {
        putf(&b, ",\"actual\":%" PRId64, v->fig->actual);
        if (v->msg == MSG_FINAL)
            putf(&b, ",\"expected\":%" PRId64, v->fig->target); /* the whole period is due */
        else
            member_decimal(&b, "expected", v->fig->expected);
        putf(&b, ",\"target\":%" PRId64, v->fig->target);
        if (v->fig->has_pct)
            member_decimal(&b, "pct", v->fig->pct);
    } else
        putf(&b, ",\"actual\":%" PRId64, v->idle->actual_today);
    put(&b, ",\"ts\":\"");
    put_time(&b, v->now_ms, true);
    put(&b, "\"");
    if (lead)
        member_str(&b, "escalated_to", lead, id_cap);
    if (v->msg == MSG_FINAL)
        put(&b, ",\"final\":true");
    if (v->idle) {
        putf(&b, ",\"idle_s\":%" PRId64, v->idle->idle_work_s);
        if (v->idle->last_ms >= 0) {
            put(&b, ",\"last_activity_ts\":\"");
            put_time(&b, v->idle->last_ms, true);
            put(&b, "\"");
        }
    }
    if (v->digest)
        put(&b, ",\"digest\":true");
    member_str(&b, "message", text, msg_cap);
    put(&b, "}");
    return !b.full;
}

/* Renders one output, cutting strings harder until it fits. The last tier always fits:
 * 16-byte ids and a 96-byte message leave the fixed members (well under 500 bytes at their
 * longest) plenty of room. */
static size_t emit(const struct view *v, struct alert_out *out, size_t cap)
{
    static const size_t tiers[][2] = {{128, 640}, {48, 256}, {16, 96}};
    if (!out || cap < 1)
        return 0;
    for (size_t i = 0; i < sizeof tiers / sizeof tiers[0]; i++)
        if (render(v, out->json, tiers[i][0], tiers[i][1]))
            break;
    out->digest = v->digest;
    return 1;
}

/* ---------------------------------------------------------------- lifecycle */

/* now - since >= after_s seconds, without overflow on odd stored times; false when
 * after_s is not positive (the timer is off) or time went backwards. */
static bool due(int64_t now_ms, int64_t since_ms, int64_t after_s)
{
    if (after_s <= 0 || now_ms < since_ms)
        return false;
    return ((uint64_t)now_ms - (uint64_t)since_ms) / 1000u >= (uint64_t)after_s;
}

static bool same_period(const alert_state_t *st, const char *period)
{
    char p[sizeof st->period];
    snprintf(p, sizeof p, "%s", period ? period : "");
    return strcmp(st->period, p) == 0;
}

static void open_alert(alert_state_t *st, const char *period, enum alert_severity sev,
                       int64_t now_ms)
{
    if (same_period(st, period) && st->seq > 0) {
        if (st->seq < INT_MAX)
            st->seq++;
    } else {
        snprintf(st->period, sizeof st->period, "%s", period ? period : "");
        st->seq = 1;
    }
    st->open = true;
    st->severity = sev;
    st->fired_ms = st->sent_ms = now_ms;
    st->escalated = false;
}

/* An open alert still behind, in working hours: escalate once when due, else repeat
 * when due. False when neither is. */
static bool follow_up(const struct config_rule *rule, alert_state_t *st,
                      const struct alert_subject *who, const struct alert_clock *clk)
{
    if (!clk->working)
        return false;
    if (!st->escalated && lead_of(who) && due(clk->now_ms, st->fired_ms, rule->escalate_after_s))
        st->escalated = true;
    else if (!due(clk->now_ms, st->sent_ms, clk->repeat_s))
        return false;
    st->sent_ms = clk->now_ms;
    return true;
}

bool alert_needs_close(const struct config_rule *rule, const alert_state_t *st,
                       const char *period)
{
    return rule->kind == RULE_THRESHOLD && st->open && !same_period(st, period);
}

size_t alert_step_threshold(const struct config_rule *rule, alert_state_t *st,
                            const struct alert_subject *who, const struct alert_figures *fig,
                            const struct alert_clock *clk, struct alert_out *out, size_t cap)
{
    struct view v = {rule, st, who, fig, NULL, clk->now_ms, MSG_FIRING, !clk->working, false};
    if (st->open && !same_period(st, fig->period))
        return 0;
    if (!st->open) {
        if (fig->target <= 0 || fig->state == PACING_OK ||
            fig->elapsed_pct < rule->min_elapsed_pct)
            return 0;
        open_alert(st, fig->period,
                   fig->state == PACING_CRITICAL ? ALERT_CRITICAL : ALERT_WARN, clk->now_ms);
        return emit(&v, out, cap);
    }
    if (fig->target <= 0 || fig->state == PACING_OK) {
        st->open = false;
        v.msg = fig->target <= 0 ? MSG_NO_TARGET : MSG_RESOLVED;
        return emit(&v, out, cap);
    }
    if (st->severity != ALERT_CRITICAL && fig->state == PACING_CRITICAL) {
        st->severity = ALERT_CRITICAL;
        st->sent_ms = clk->now_ms;
        return emit(&v, out, cap);
    }
    if (!follow_up(rule, st, who, clk))
        return 0;
    v.age = true;
    return emit(&v, out, cap);
}

size_t alert_close_period(const struct config_rule *rule, alert_state_t *st,
                          const struct alert_subject *who, const struct alert_figures *final_fig,
                          const struct alert_clock *clk, struct alert_out *out, size_t cap)
{
    if (rule->kind != RULE_THRESHOLD || !st->open)
        return 0;
    st->open = false;
    struct view v = {rule, st, who, final_fig, NULL, clk->now_ms, MSG_FINAL, !clk->working, false};
    return emit(&v, out, cap);
}

size_t alert_step_inactivity(const struct config_rule *rule, alert_state_t *st,
                             const struct alert_subject *who, const struct alert_idle *idle,
                             const struct alert_clock *clk, struct alert_out *out, size_t cap)
{
    struct view v = {rule, st, who, NULL, idle, clk->now_ms, MSG_IDLE, !clk->working, false};
    bool idle_now = rule->idle_s > 0 && idle->idle_work_s >= rule->idle_s;
    if (!st->open) {
        if (!idle_now)
            return 0;
        open_alert(st, idle->day, ALERT_WARN, clk->now_ms);
        return emit(&v, out, cap);
    }
    if (!idle_now) {
        st->open = false;
        v.msg = MSG_ACTIVE;
        return emit(&v, out, cap);
    }
    if (!follow_up(rule, st, who, clk))
        return 0;
    v.age = true;
    return emit(&v, out, cap);
}
