/* event: one Kafka message -> a validated event, or the reason it is invalid.
 *
 * Implements section 1 of the contract and the settled readings of section 2 that concern
 * input (null handling, integer literals, decimal amounts, RFC 3339, internal detection).
 * Parsing uses yajl's callback parser; no I/O, no clock (now_ms is an argument). */
#ifndef KPI_EVENT_H
#define KPI_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum event_type { EVENT_CALL, EVENT_EMAIL, EVENT_MEETING, EVENT_DEAL_STAGE };
enum event_direction { DIRECTION_OUTBOUND, DIRECTION_INBOUND };
enum call_status { CALL_CONNECTED, CALL_NO_ANSWER, CALL_BUSY, CALL_FAILED };
enum meeting_status { MEETING_SCHEDULED, MEETING_HELD, MEETING_CANCELLED, MEETING_NO_SHOW };

#define EVENT_ID_MAX 128
#define EVENT_MANAGER_MAX 64
#define EVENT_DEAL_MAX 128
#define EVENT_SOURCE_MAX 64

/* A valid event, self-contained (no pointers into the message). */
typedef struct event {
    enum event_type type;
    char event_id[EVENT_ID_MAX + 1];
    char manager_id[EVENT_MANAGER_MAX + 1];
    int64_t ts_ms;                      /* event time, UTC epoch ms */
    bool internal;                      /* call/email/meeting: the other side is a colleague */
    enum event_direction direction;     /* call, email */
    enum call_status call_status;       /* call */
    int32_t duration_s;                 /* call, 0..86400 */
    enum meeting_status meeting_status; /* meeting */
    bool meeting_first;                 /* meeting: kind == "first" */
    bool next_step;                     /* meeting */
    char deal_id[EVENT_DEAL_MAX + 1];   /* deal_stage */
    int stage;                          /* deal_stage: index into event_rules.stages */
    bool has_amount;                    /* deal_stage */
    int64_t amount_cents;               /* deal_stage, when has_amount */
    char source[EVENT_SOURCE_MAX + 1];  /* deal_stage, optional; longer values are cut */
} event_t;

/* What validation needs from the configuration. Pointers are borrowed from the caller. */
typedef struct event_rules {
    const char *const *stages;          /* configured stage names, in order */
    size_t n_stages;
    const char *const *internal_domains; /* lower-case */
    size_t n_internal_domains;
    const char *const *phone_prefixes;  /* as configured, e.g. "+7495100" */
    size_t n_phone_prefixes;
    int64_t future_skew_ms;             /* ts may be at most this far after now_ms */
    size_t max_message_bytes;           /* larger messages are invalid */
} event_rules_t;

typedef struct event_parser event_parser_t; /* reusable; owns its yajl handle and buffers */

event_parser_t *event_parser_new(void);
void event_parser_free(event_parser_t *parser);

/* Parses and validates one message. Returns 0 and fills *out when valid; returns -1 and
 * writes a one-line reason (e.g. "manager_id: does not match ^[A-Za-z0-9._@-]{1,64}$")
 * to err when invalid. Never reads past len; msg need not be NUL-terminated.
 *
 * Reasons are printable ASCII and start with what is wrong: "message: N bytes exceeds
 * max_message_bytes M", "json: invalid UTF-8 at byte N", "json: parse error at byte N: <yajl>",
 * "json: top level must be an object", then "<field>: ..." for event_id, type, manager_id,
 * ts and "<type>.<field>: ..." for the type's own fields (call.status, deal_stage.amount):
 * "missing", "duplicate field", "must be a string|an integer|a boolean|a number",
 * "unknown value \"x\"" (value sanitized, cut to 32 bytes), or a rule ("ts: more than
 * 86400 s in the future"). With several problems the first in this order is reported:
 * size, UTF-8, JSON, event_id, type, manager_id, ts, then the type's fields in contract order.
 * Fields that the event's type does not define are ignored, even if malformed or repeated.
 * On error *out holds no useful data. */
int event_parse(event_parser_t *parser, const event_rules_t *rules, const void *msg, size_t len,
                int64_t now_ms, event_t *out, char *err, size_t errlen);

/* RFC 3339 ("2026-11-16T09:12:00.5+03:00") -> UTC epoch ms. 0 or -1. Upper-case T and Z,
 * any number of fraction digits (truncated to ms), real calendar dates, no ":60". Years
 * 0000..9999 parse (the result may be negative); event_parse accepts only 1970..9999. */
int event_parse_rfc3339(const char *s, size_t len, int64_t *out_ms);

/* A JSON number literal as written ("1.005", "2e3") -> round-half-away(value * 100).
 * -1 when it is not a number literal, is negative, or exceeds 10^12 units. */
int event_parse_amount_cents(const char *literal, size_t len, int64_t *out_cents);

/* The counterpart rules of the contract (e-mail domain or phone prefix). */
bool event_counterpart_is_internal(const event_rules_t *rules, const char *counterpart, size_t len);

const char *event_type_name(enum event_type type);

/* One line with every field of the event's type, for logs, tools and the gold tests:
 *   type=call id=e1 manager=ivanov ts=1763273520000 internal=0 direction=outbound
 *     status=connected duration=42
 *   type=email ... internal=0 direction=inbound
 *   type=meeting ... internal=0 status=held kind=first next_step=1
 *   type=deal_stage id=.. manager=.. ts=.. deal=D1 stage=won amount_cents=10050 source=web
 * (amount_cents=- when absent). A string that is empty or holds a space, '"', '\\' or a
 * byte outside 0x21..0x7E is quoted with C escapes (\" \\ \xNN). stage is printed by name,
 * or as "#<index>" when rules is NULL. Returns the length, or -1 when buflen is too small
 * (1024 always suffices). */
int event_format(const event_t *ev, const event_rules_t *rules, char *buf, size_t buflen);

#endif
