/* Tests for event: every rule of contract section 1 and the input readings of section 2.
 * Most cases are tables of (message, expected line) where the line is what the gold files
 * hold: "valid <event_format>" or "invalid <reason>". */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "event.h"

#define NOW 1795132800000LL /* 2026-11-20T00:00:00Z */

static const char *const stages[] = {"lead", "mql", "sql", "proposal", "negotiation", "won", "lost"};
static const char *const domains[] = {"ourcompany.ru"};
static const char *const prefixes[] = {"+7495100"};
static const event_rules_t rules = {stages, 7, domains, 1, prefixes, 1, 86400000, 1048576};

static event_parser_t *parser;

static int setup(void **state)
{
    (void)state;
    parser = event_parser_new();
    return parser == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    event_parser_free(parser);
    return 0;
}

/* The gold line for a message: "valid <event_format>" or "invalid <reason>". */
static void outcome(const void *msg, size_t len, const event_rules_t *r, char *line, size_t cap)
{
    event_t ev;
    char err[512];
    if (event_parse(parser, r, msg, len, NOW, &ev, err, sizeof err) == 0) {
        char text[1024];
        assert_true(event_format(&ev, r, text, sizeof text) > 0);
        snprintf(line, cap, "valid %s", text);
    } else {
        for (const char *p = err; *p != '\0'; p++) /* reasons go into Kafka headers */
            assert_true(*p >= 0x20 && *p < 0x7f);
        snprintf(line, cap, "invalid %s", err);
    }
}

struct tcase { const char *json; const char *want; };

static void run_cases(const struct tcase *cases, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        char got[1200];
        outcome(cases[i].json, strlen(cases[i].json), &rules, got, sizeof got);
        if (strcmp(got, cases[i].want) != 0) {
            print_error("case %zu: %s\n  want: %s\n  got:  %s\n", i, cases[i].json, cases[i].want, got);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}
#define RUN(cases) run_cases(cases, sizeof(cases) / sizeof(cases[0]))

/* Building blocks. ts 1794809520000 = 2026-11-16T09:12:00+03:00. */
#define HEAD "\"event_id\":\"e1\",\"manager_id\":\"ivanov\",\"ts\":1794809520000"
#define CALL "{" HEAD ",\"type\":\"call\",\"direction\":\"outbound\",\"status\":\"connected\""
#define EMAIL "{" HEAD ",\"type\":\"email\",\"direction\":\"inbound\""
#define MEETING "{" HEAD ",\"type\":\"meeting\",\"status\":\"held\""
#define DEAL "{" HEAD ",\"type\":\"deal_stage\",\"deal_id\":\"D-1\",\"stage\":\"won\""
#define V "valid type="
#define VHEAD " id=e1 manager=ivanov ts=1794809520000"
#define VCALL(internal, rest) V "call" VHEAD " internal=" internal " direction=outbound status=connected " rest
#define VCALL0 VCALL("0", "duration=0")
#define VEMAIL(internal) V "email" VHEAD " internal=" internal " direction=inbound"
#define VMEET(internal, rest) V "meeting" VHEAD " internal=" internal " status=held " rest
#define VDEAL(rest) V "deal_stage" VHEAD " deal=D-1 stage=won " rest

static void test_types_valid(void **state)
{
    (void)state;
    static const struct tcase cases[] = {
        {"{\"event_id\":\"e1\",\"type\":\"call\",\"manager_id\":\"ivanov\","
         "\"ts\":\"2025-11-16T09:12:00+03:00\",\"direction\":\"outbound\",\"status\":\"connected\","
         "\"duration_s\":42}",
         "valid type=call id=e1 manager=ivanov ts=1763273520000 internal=0 direction=outbound "
         "status=connected duration=42"},
        {CALL "}", VCALL0},
        {EMAIL "}", VEMAIL("0")},
        {MEETING "}", VMEET("0", "kind=followup next_step=0")},
        {DEAL "}", VDEAL("amount_cents=- source=\"\"")},
        {DEAL ",\"amount\":1500.5,\"source\":\"web\"}", VDEAL("amount_cents=150050 source=web")},
        /* type may come last; everything is collected first */
        {"{\"status\":\"busy\",\"direction\":\"inbound\",\"duration_s\":7," HEAD ",\"type\":\"call\"}",
         V "call" VHEAD " internal=0 direction=inbound status=busy duration=7"},
        /* escaped key names are keys like any other */
        {"{\"ev\\u0065nt_id\":\"e1\",\"type\":\"email\",\"manager_id\":\"ivanov\",\"ts\":1794809520000,"
         "\"direction\":\"inbound\"}",
         VEMAIL("0")},
        /* insignificant whitespace anywhere */
        {" \n\t{ \"event_id\" : \"e1\" , \"type\":\"email\",\"manager_id\":\"ivanov\",\"ts\":1794809520000,"
         "\"direction\":\"inbound\" } \r\n",
         VEMAIL("0")},
    };
    RUN(cases);
}

static void test_type_field(void **state)
{
    (void)state;
    static const struct tcase cases[] = {
        {"{" HEAD ",\"direction\":\"inbound\"}", "invalid type: missing"},
        {"{" HEAD ",\"type\":null}", "invalid type: missing"},
        {"{" HEAD ",\"type\":1}", "invalid type: must be a string"},
        {"{" HEAD ",\"type\":[\"call\"]}", "invalid type: must be a string"},
        {"{" HEAD ",\"type\":{}}", "invalid type: must be a string"},
        {"{" HEAD ",\"type\":true}", "invalid type: must be a string"},
        {"{" HEAD ",\"type\":\"fax\"}", "invalid type: unknown value \"fax\""},
        {"{" HEAD ",\"type\":\"Call\"}", "invalid type: unknown value \"Call\""},
        {"{" HEAD ",\"type\":\"call \"}", "invalid type: unknown value \"call \""},
        {"{" HEAD ",\"type\":\"\"}", "invalid type: unknown value \"\""},
        {"{" HEAD ",\"type\":\"deal-stage\"}", "invalid type: unknown value \"deal-stage\""},
        /* quoted values are sanitized and cut */
        {"{" HEAD ",\"type\":\"a\\\"b\\\\c\\u0001\\n\xd1\x84\"}", "invalid type: unknown value \"a?b?c????\""},
        {"{" HEAD ",\"type\":\"0123456789012345678901234567890123456789\"}",
         "invalid type: unknown value \"01234567890123456789012345678901...\""},
        {"{" HEAD ",\"type\":\"call\",\"type\":\"call\"}", "invalid type: duplicate field"},
        {"{" HEAD ",\"type\":\"call\",\"type\":null}", "invalid type: duplicate field"},
    };
    RUN(cases);
}

static void test_event_id(void **state)
{
    (void)state;
    static const struct tcase cases[] = {
        {"{\"type\":\"email\",\"manager_id\":\"m\",\"ts\":0,\"direction\":\"inbound\"}", "invalid event_id: missing"},
        {"{\"event_id\":null,\"type\":\"email\",\"manager_id\":\"m\",\"ts\":0,\"direction\":\"inbound\"}",
         "invalid event_id: missing"},
        {"{\"event_id\":7,\"type\":\"email\",\"manager_id\":\"m\",\"ts\":0,\"direction\":\"inbound\"}",
         "invalid event_id: must be a string"},
        {"{\"event_id\":\"\",\"type\":\"email\",\"manager_id\":\"m\",\"ts\":0,\"direction\":\"inbound\"}",
         "invalid event_id: must be 1..128 printable ASCII bytes"},
        {"{\"event_id\":\"a\\tb\",\"type\":\"email\",\"manager_id\":\"m\",\"ts\":0,\"direction\":\"inbound\"}",
         "invalid event_id: must be 1..128 printable ASCII bytes"},
        {"{\"event_id\":\"a\\u007f\",\"type\":\"email\",\"manager_id\":\"m\",\"ts\":0,\"direction\":\"inbound\"}",
         "invalid event_id: must be 1..128 printable ASCII bytes"},
        {"{\"event_id\":\"a\\u0000\",\"type\":\"email\",\"manager_id\":\"m\",\"ts\":0,\"direction\":\"inbound\"}",
         "invalid event_id: must be 1..128 printable ASCII bytes"},
        {"{\"event_id\":\"\xd0\xb9\",\"type\":\"email\",\"manager_id\":\"m\",\"ts\":0,\"direction\":\"inbound\"}",
         "invalid event_id: must be 1..128 printable ASCII bytes"},
        {"{\"event_id\":\" ~!\\\"\\\\{}\",\"type\":\"email\",\"manager_id\":\"m\",\"ts\":0,\"direction\":\"inbound\"}",
         "valid type=email id=\" ~!\\\"\\\\{}\" manager=m ts=0 internal=0 direction=inbound"},
        {"{\"event_id\":\"a\",\"event_id\":\"b\",\"type\":\"email\",\"manager_id\":\"m\",\"ts\":0,"
         "\"direction\":\"inbound\"}",
         "invalid event_id: duplicate field"},
        /* errors are reported in contract order whatever the key order */
        {"{\"ts\":\"x\",\"manager_id\":\"\",\"type\":\"fax\",\"event_id\":\"\"}",
         "invalid event_id: must be 1..128 printable ASCII bytes"},
        {"{\"ts\":\"x\",\"manager_id\":\"\",\"type\":\"fax\",\"event_id\":\"e\"}", "invalid type: unknown value \"fax\""},
        {"{\"ts\":\"x\",\"manager_id\":\"\",\"type\":\"call\",\"event_id\":\"e\"}",
         "invalid manager_id: does not match ^[A-Za-z0-9._@-]{1,64}$"},
        {"{\"ts\":\"x\",\"manager_id\":\"m\",\"type\":\"call\",\"event_id\":\"e\"}",
         "invalid ts: not RFC 3339 or epoch ms"},
        {"{\"ts\":1,\"manager_id\":\"m\",\"type\":\"call\",\"event_id\":\"e\"}", "invalid call.direction: missing"},
    };
    RUN(cases);

    /* length limit: 128 bytes ok, 129 not */
    char msg[512], got[1200], want[600];
    char id[130];
    memset(id, 'x', 129);
    id[128] = '\0';
    snprintf(msg, sizeof msg, "{\"event_id\":\"%s\",\"type\":\"email\",\"manager_id\":\"m\",\"ts\":0,"
             "\"direction\":\"inbound\"}", id);
    outcome(msg, strlen(msg), &rules, got, sizeof got);
    snprintf(want, sizeof want, "valid type=email id=%s manager=m ts=0 internal=0 direction=inbound", id);
    assert_string_equal(got, want);
    id[128] = 'x';
    id[129] = '\0';
    snprintf(msg, sizeof msg, "{\"event_id\":\"%s\",\"type\":\"email\",\"manager_id\":\"m\",\"ts\":0,"
             "\"direction\":\"inbound\"}", id);
    outcome(msg, strlen(msg), &rules, got, sizeof got);
    assert_string_equal(got, "invalid event_id: must be 1..128 printable ASCII bytes");
}

static void test_manager_and_deal_id(void **state)
{
    (void)state;
    static const struct tcase cases[] = {
        {"{\"event_id\":\"e\",\"type\":\"email\",\"manager_id\":\"A.z_0-9@x\",\"ts\":0,\"direction\":\"inbound\"}",
         "valid type=email id=e manager=A.z_0-9@x ts=0 internal=0 direction=inbound"},
        {"{\"event_id\":\"e\",\"type\":\"email\",\"ts\":0,\"direction\":\"inbound\"}", "invalid manager_id: missing"},
        {"{\"event_id\":\"e\",\"type\":\"email\",\"manager_id\":null,\"ts\":0,\"direction\":\"inbound\"}",
         "invalid manager_id: missing"},
        {"{\"event_id\":\"e\",\"type\":\"email\",\"manager_id\":5,\"ts\":0,\"direction\":\"inbound\"}",
         "invalid manager_id: must be a string"},
        {"{\"event_id\":\"e\",\"type\":\"email\",\"manager_id\":\"a b\",\"ts\":0,\"direction\":\"inbound\"}",
         "invalid manager_id: does not match ^[A-Za-z0-9._@-]{1,64}$"},
        {"{\"event_id\":\"e\",\"type\":\"email\",\"manager_id\":\"a+b\",\"ts\":0,\"direction\":\"inbound\"}",
         "invalid manager_id: does not match ^[A-Za-z0-9._@-]{1,64}$"},
        {"{\"event_id\":\"e\",\"type\":\"email\",\"manager_id\":\"\xd0\xb8\",\"ts\":0,\"direction\":\"inbound\"}",
         "invalid manager_id: does not match ^[A-Za-z0-9._@-]{1,64}$"},
        {"{\"event_id\":\"e\",\"type\":\"email\",\"manager_id\":\"m\\u0000\",\"ts\":0,\"direction\":\"inbound\"}",
         "invalid manager_id: does not match ^[A-Za-z0-9._@-]{1,64}$"},
        {"{\"event_id\":\"e\",\"type\":\"email\",\"manager_id\":\"\",\"ts\":0,\"direction\":\"inbound\"}",
         "invalid manager_id: does not match ^[A-Za-z0-9._@-]{1,64}$"},
        {"{\"event_id\":\"e\",\"type\":\"email\",\"manager_id\":"
         "\"0123456789012345678901234567890123456789012345678901234567890123\",\"ts\":0,\"direction\":\"inbound\"}",
         "valid type=email id=e manager=0123456789012345678901234567890123456789012345678901234567890123 ts=0 "
         "internal=0 direction=inbound"},
        {"{\"event_id\":\"e\",\"type\":\"email\",\"manager_id\":"
         "\"01234567890123456789012345678901234567890123456789012345678901234\",\"ts\":0,\"direction\":\"inbound\"}",
         "invalid manager_id: does not match ^[A-Za-z0-9._@-]{1,64}$"},
        {"{\"event_id\":\"e\",\"type\":\"email\",\"manager_id\":\"a\",\"manager_id\":\"b\",\"ts\":0,"
         "\"direction\":\"inbound\"}",
         "invalid manager_id: duplicate field"},
        /* deal_id: same charset, 1..128 */
        {"{" HEAD ",\"type\":\"deal_stage\",\"stage\":\"won\"}", "invalid deal_stage.deal_id: missing"},
        {"{" HEAD ",\"type\":\"deal_stage\",\"stage\":\"won\",\"deal_id\":null}", "invalid deal_stage.deal_id: missing"},
        {"{" HEAD ",\"type\":\"deal_stage\",\"stage\":\"won\",\"deal_id\":12}",
         "invalid deal_stage.deal_id: must be a string"},
        {"{" HEAD ",\"type\":\"deal_stage\",\"stage\":\"won\",\"deal_id\":\"D 1\"}",
         "invalid deal_stage.deal_id: does not match ^[A-Za-z0-9._@-]{1,128}$"},
        {"{" HEAD ",\"type\":\"deal_stage\",\"stage\":\"won\",\"deal_id\":\"\"}",
         "invalid deal_stage.deal_id: does not match ^[A-Za-z0-9._@-]{1,128}$"},
        {"{" HEAD ",\"type\":\"deal_stage\",\"stage\":\"won\",\"deal_id\":\"x@y.z_-9\"}",
         V "deal_stage" VHEAD " deal=x@y.z_-9 stage=won amount_cents=- source=\"\""},
    };
    RUN(cases);

    char msg[512], got[1200], want[600], id[130];
    memset(id, 'd', 128);
    id[128] = '\0';
    snprintf(msg, sizeof msg, "{" HEAD ",\"type\":\"deal_stage\",\"stage\":\"won\",\"deal_id\":\"%s\"}", id);
    outcome(msg, strlen(msg), &rules, got, sizeof got);
    snprintf(want, sizeof want, V "deal_stage" VHEAD " deal=%s stage=won amount_cents=- source=\"\"", id);
    assert_string_equal(got, want);
    strcat(id, "d");
    snprintf(msg, sizeof msg, "{" HEAD ",\"type\":\"deal_stage\",\"stage\":\"won\",\"deal_id\":\"%s\"}", id);
    outcome(msg, strlen(msg), &rules, got, sizeof got);
    assert_string_equal(got, "invalid deal_stage.deal_id: does not match ^[A-Za-z0-9._@-]{1,128}$");
}

static void test_rfc3339(void **state)
{
    (void)state;
    static const struct { const char *s; int64_t ms; } ok[] = {
        {"2026-11-16T09:12:00Z", 1794820320000},
        {"2026-11-16T09:12:00+03:00", 1794809520000},
        {"2026-11-16T09:12:00.5Z", 1794820320500},
        {"2026-11-16T09:12:00.123Z", 1794820320123},
        {"2026-11-16T09:12:00.123999999999Z", 1794820320123}, /* truncated, not rounded */
        {"2026-11-16T09:12:00.1-01:30", 1794825720100},
        {"2026-11-16T09:12:00.000000000000000000000000000000000001Z", 1794820320000},
        {"2024-02-29T00:00:00Z", 1709164800000},
        {"2000-02-29T00:00:00Z", 951782400000},
        {"2026-11-16T23:59:59+23:59", 1794787259000},
        {"2026-11-16T00:00:00-00:00", 1794787200000},
        {"1970-01-01T00:00:00Z", 0},
        {"1969-12-31T23:59:59.999Z", -1},
        {"9999-12-31T23:59:59.999Z", 253402300799999},
        {"2026-12-31T23:59:59Z", 1798761599000},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ms = 42;
        if (event_parse_rfc3339(ok[i].s, strlen(ok[i].s), &ms) != 0 || ms != ok[i].ms)
            fail_msg("%s -> %lld", ok[i].s, (long long)ms);
    }
    static const char *const bad[] = {
        "2026-11-16t09:12:00Z", "2026-11-16T09:12:00z", "2026-11-16 09:12:00Z", "2026-11-16T09:12:60Z",
        "2026-11-16T24:00:00Z", "2026-11-16T09:60:00Z", "2025-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z", "2026-11-00T00:00:00Z",
        "2026-11-32T00:00:00Z", "2026-11-16T09:12:00", "2026-11-16T09:12:00.Z", "2026-11-16T09:12:00+0300",
        "2026-11-16T09:12:00+03", "2026-11-16T09:12:00+24:00", "2026-11-16T09:12:00+03:60",
        "2026-11-16T09:12Z", "26-11-16T09:12:00Z", "2026-1-16T09:12:00Z", "2026-11-16T09:12:00Z ",
        " 2026-11-16T09:12:00Z", "2026-11-16T09:12:00,5Z", "2026-11-16T09:12:00.5.5Z",
        "2026-11-16T09:12:00Z+03:00", "2026-11-16T09:12:00+03:00:00", "2026-11-16T09:12:00+3:00",
        "2026-11-16T9:12:00Z", "2026/11/16T09:12:00Z", "2026-11-16T09:12:00UTC", "", "Z",
        "2026-11-16T09:12:00.+03:00", "2026-11-16T09:12:00.5", "+2026-11-16T09:12:00Z",
        "2026-11-16T09:12:00\xd0\x97",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 42;
        if (event_parse_rfc3339(bad[i], strlen(bad[i]), &ms) != -1)
            fail_msg("accepted %s", bad[i]);
    }
    /* never reads past len */
    int64_t ms = 0;
    assert_int_equal(event_parse_rfc3339("2026-11-16T09:12:00Zjunk", 20, &ms), 0);
    assert_int_equal(ms, 1794820320000);
    assert_int_equal(event_parse_rfc3339("2026-11-16T09:12:00Z", 19, &ms), -1);
}

#define EM(ts) "{\"event_id\":\"e\",\"type\":\"email\",\"manager_id\":\"m\",\"direction\":\"inbound\",\"ts\":" ts "}"
#define VEM(ts) "valid type=email id=e manager=m ts=" ts " internal=0 direction=inbound"

static void test_ts_field(void **state)
{
    (void)state;
    static const struct tcase cases[] = {
        {EM("\"2026-11-16T09:12:00+03:00\""), VEM("1794809520000")},
        {EM("1794809520000"), VEM("1794809520000")},
        {EM("0"), VEM("0")},
        {EM("-0"), VEM("0")},
        {EM("-1"), "invalid ts: out of range (years 1970..9999)"},
        {EM("\"1969-12-31T23:59:59.999Z\""), "invalid ts: out of range (years 1970..9999)"},
        {EM("\"0001-01-01T00:00:00Z\""), "invalid ts: out of range (years 1970..9999)"},
        {EM("253402300800000"), "invalid ts: out of range (years 1970..9999)"},
        {EM("99999999999999999999999999"), "invalid ts: out of range (years 1970..9999)"},
        {EM("-99999999999999999999999999"), "invalid ts: out of range (years 1970..9999)"},
        {EM("1794809520000.0"), "invalid ts: not RFC 3339 or epoch ms"},
        {EM("1.79480952e12"), "invalid ts: not RFC 3339 or epoch ms"},
        {EM("1794809520000e0"), "invalid ts: not RFC 3339 or epoch ms"},
        {EM("\"1794809520000\""), "invalid ts: not RFC 3339 or epoch ms"},
        {EM("\"2026-11-16t09:12:00Z\""), "invalid ts: not RFC 3339 or epoch ms"},
        {EM("\"2026-11-16T09:12:60Z\""), "invalid ts: not RFC 3339 or epoch ms"},
        {EM("\"2026-11-16T09:12:00\""), "invalid ts: not RFC 3339 or epoch ms"},
        {EM("true"), "invalid ts: not RFC 3339 or epoch ms"},
        {EM("{}"), "invalid ts: not RFC 3339 or epoch ms"},
        {EM("[1]"), "invalid ts: not RFC 3339 or epoch ms"},
        {EM("null"), "invalid ts: missing"},
        {"{\"event_id\":\"e\",\"type\":\"email\",\"manager_id\":\"m\",\"direction\":\"inbound\"}", "invalid ts: missing"},
        {"{\"event_id\":\"e\",\"type\":\"email\",\"manager_id\":\"m\",\"direction\":\"inbound\",\"ts\":1,\"ts\":1}",
         "invalid ts: duplicate field"},
        /* future skew: now = 2026-11-20T00:00:00Z, skew 86400 s; the limit itself is fine */
        {EM("1795219200000"), VEM("1795219200000")},
        {EM("1795219200001"), "invalid ts: more than 86400 s in the future"},
        {EM("\"2026-11-21T00:00:00Z\""), VEM("1795219200000")},
        {EM("\"2026-11-21T03:00:00+03:00\""), VEM("1795219200000")},
        {EM("\"2026-11-21T03:00:00.001+03:00\""), "invalid ts: more than 86400 s in the future"},
        {EM("\"2026-11-21T00:00:00.0009Z\""), VEM("1795219200000")},
        {EM("\"9999-12-31T23:59:59.999Z\""), "invalid ts: more than 86400 s in the future"},
    };
    RUN(cases);

    /* the skew comes from the rules, and the reason says what it is */
    event_rules_t r = rules;
    char got[1200];
    r.future_skew_ms = 0;
    outcome(EM("1795132800001"), strlen(EM("1795132800001")), &r, got, sizeof got);
    assert_string_equal(got, "invalid ts: more than 0 s in the future");
    outcome(EM("1795132800000"), strlen(EM("1795132800000")), &r, got, sizeof got);
    assert_string_equal(got, VEM("1795132800000"));
    r.future_skew_ms = 1500;
    outcome(EM("1795132801501"), strlen(EM("1795132801501")), &r, got, sizeof got);
    assert_string_equal(got, "invalid ts: more than 1500 ms in the future");
}

static void test_call_fields(void **state)
{
    (void)state;
    static const struct tcase cases[] = {
        {CALL ",\"duration_s\":0}", VCALL0},
        {CALL ",\"duration_s\":86400}", VCALL("0", "duration=86400")},
        {CALL ",\"duration_s\":null}", VCALL0},
        {CALL ",\"duration_s\":86401}", "invalid call.duration_s: out of range 0..86400"},
        {CALL ",\"duration_s\":-1}", "invalid call.duration_s: out of range 0..86400"},
        {CALL ",\"duration_s\":-0}", VCALL0},
        {CALL ",\"duration_s\":99999999999999999999999}", "invalid call.duration_s: out of range 0..86400"},
        {CALL ",\"duration_s\":60.0}", "invalid call.duration_s: must be an integer"},
        {CALL ",\"duration_s\":6e1}", "invalid call.duration_s: must be an integer"},
        {CALL ",\"duration_s\":6E+1}", "invalid call.duration_s: must be an integer"},
        {CALL ",\"duration_s\":\"60\"}", "invalid call.duration_s: must be an integer"},
        {CALL ",\"duration_s\":true}", "invalid call.duration_s: must be an integer"},
        {CALL ",\"duration_s\":[60]}", "invalid call.duration_s: must be an integer"},
        {CALL ",\"duration_s\":1,\"duration_s\":1}", "invalid call.duration_s: duplicate field"},
        {"{" HEAD ",\"type\":\"call\",\"direction\":\"inbound\",\"status\":\"no_answer\"}",
         V "call" VHEAD " internal=0 direction=inbound status=no_answer duration=0"},
        {"{" HEAD ",\"type\":\"call\",\"direction\":\"inbound\",\"status\":\"busy\"}",
         V "call" VHEAD " internal=0 direction=inbound status=busy duration=0"},
        {"{" HEAD ",\"type\":\"call\",\"direction\":\"outbound\",\"status\":\"failed\"}",
         V "call" VHEAD " internal=0 direction=outbound status=failed duration=0"},
        {"{" HEAD ",\"type\":\"call\",\"status\":\"busy\"}", "invalid call.direction: missing"},
        {"{" HEAD ",\"type\":\"call\",\"status\":\"busy\",\"direction\":null}", "invalid call.direction: missing"},
        {"{" HEAD ",\"type\":\"call\",\"status\":\"busy\",\"direction\":\"Outbound\"}",
         "invalid call.direction: unknown value \"Outbound\""},
        {"{" HEAD ",\"type\":\"call\",\"status\":\"busy\",\"direction\":\"out\"}",
         "invalid call.direction: unknown value \"out\""},
        {"{" HEAD ",\"type\":\"call\",\"status\":\"busy\",\"direction\":1}", "invalid call.direction: must be a string"},
        {"{" HEAD ",\"type\":\"call\",\"direction\":\"inbound\"}", "invalid call.status: missing"},
        {"{" HEAD ",\"type\":\"call\",\"direction\":\"inbound\",\"status\":null}", "invalid call.status: missing"},
        {"{" HEAD ",\"type\":\"call\",\"direction\":\"inbound\",\"status\":\"held\"}",
         "invalid call.status: unknown value \"held\""},
        {"{" HEAD ",\"type\":\"call\",\"direction\":\"inbound\",\"status\":\"Connected\"}",
         "invalid call.status: unknown value \"Connected\""},
        {"{" HEAD ",\"type\":\"call\",\"direction\":\"inbound\",\"status\":false}", "invalid call.status: must be a string"},
        /* fields of other types are ignored whatever they hold */
        {CALL ",\"kind\":5,\"next_step\":\"x\",\"deal_id\":\"bad id\",\"stage\":[],\"amount\":\"x\",\"source\":1,"
              "\"amount\":-1}",
         VCALL0},
    };
    RUN(cases);
}

static void test_email_fields(void **state)
{
    (void)state;
    static const struct tcase cases[] = {
        {"{" HEAD ",\"type\":\"email\",\"direction\":\"outbound\"}",
         V "email" VHEAD " internal=0 direction=outbound"},
        {"{" HEAD ",\"type\":\"email\"}", "invalid email.direction: missing"},
        {"{" HEAD ",\"type\":\"email\",\"direction\":null}", "invalid email.direction: missing"},
        {"{" HEAD ",\"type\":\"email\",\"direction\":\"sideways\"}", "invalid email.direction: unknown value \"sideways\""},
        {"{" HEAD ",\"type\":\"email\",\"direction\":[]}", "invalid email.direction: must be a string"},
        /* status, duration_s, kind ... are not e-mail fields */
        {EMAIL ",\"status\":\"nonsense\",\"duration_s\":1.5,\"kind\":{},\"status\":1}", VEMAIL("0")},
    };
    RUN(cases);
}

static void test_meeting_fields(void **state)
{
    (void)state;
    static const struct tcase cases[] = {
        {MEETING ",\"kind\":\"first\",\"next_step\":true}", VMEET("0", "kind=first next_step=1")},
        {MEETING ",\"kind\":\"followup\",\"next_step\":false}", VMEET("0", "kind=followup next_step=0")},
        {MEETING ",\"kind\":null,\"next_step\":null}", VMEET("0", "kind=followup next_step=0")},
        {"{" HEAD ",\"type\":\"meeting\",\"status\":\"scheduled\"}",
         V "meeting" VHEAD " internal=0 status=scheduled kind=followup next_step=0"},
        {"{" HEAD ",\"type\":\"meeting\",\"status\":\"cancelled\"}",
         V "meeting" VHEAD " internal=0 status=cancelled kind=followup next_step=0"},
        {"{" HEAD ",\"type\":\"meeting\",\"status\":\"no_show\"}",
         V "meeting" VHEAD " internal=0 status=no_show kind=followup next_step=0"},
        {"{" HEAD ",\"type\":\"meeting\"}", "invalid meeting.status: missing"},
        {"{" HEAD ",\"type\":\"meeting\",\"status\":null}", "invalid meeting.status: missing"},
        {"{" HEAD ",\"type\":\"meeting\",\"status\":\"connected\"}", "invalid meeting.status: unknown value \"connected\""},
        {"{" HEAD ",\"type\":\"meeting\",\"status\":\"canceled\"}", "invalid meeting.status: unknown value \"canceled\""},
        {"{" HEAD ",\"type\":\"meeting\",\"status\":\"HELD\"}", "invalid meeting.status: unknown value \"HELD\""},
        {MEETING ",\"kind\":\"First\"}", "invalid meeting.kind: unknown value \"First\""},
        {MEETING ",\"kind\":\"second\"}", "invalid meeting.kind: unknown value \"second\""},
        {MEETING ",\"kind\":1}", "invalid meeting.kind: must be a string"},
        {MEETING ",\"next_step\":\"true\"}", "invalid meeting.next_step: must be a boolean"},
        {MEETING ",\"next_step\":1}", "invalid meeting.next_step: must be a boolean"},
        {MEETING ",\"next_step\":true,\"next_step\":true}", "invalid meeting.next_step: duplicate field"},
        {MEETING ",\"direction\":\"nowhere\",\"duration_s\":\"x\"}", VMEET("0", "kind=followup next_step=0")},
    };
    RUN(cases);
}

static void test_deal_fields(void **state)
{
    (void)state;
    static const struct tcase cases[] = {
        {"{" HEAD ",\"type\":\"deal_stage\",\"deal_id\":\"D-1\"}", "invalid deal_stage.stage: missing"},
        {"{" HEAD ",\"type\":\"deal_stage\",\"deal_id\":\"D-1\",\"stage\":null}", "invalid deal_stage.stage: missing"},
        {"{" HEAD ",\"type\":\"deal_stage\",\"deal_id\":\"D-1\",\"stage\":\"Won\"}",
         "invalid deal_stage.stage: unknown value \"Won\""},
        {"{" HEAD ",\"type\":\"deal_stage\",\"deal_id\":\"D-1\",\"stage\":\"closed\"}",
         "invalid deal_stage.stage: unknown value \"closed\""},
        {"{" HEAD ",\"type\":\"deal_stage\",\"deal_id\":\"D-1\",\"stage\":\"won\\u0000\"}",
         "invalid deal_stage.stage: unknown value \"won?\""},
        {"{" HEAD ",\"type\":\"deal_stage\",\"deal_id\":\"D-1\",\"stage\":\"wo\"}",
         "invalid deal_stage.stage: unknown value \"wo\""},
        {"{" HEAD ",\"type\":\"deal_stage\",\"deal_id\":\"D-1\",\"stage\":5}", "invalid deal_stage.stage: must be a string"},
        {DEAL ",\"amount\":null}", VDEAL("amount_cents=- source=\"\"")},
        {DEAL ",\"amount\":0}", VDEAL("amount_cents=0 source=\"\"")},
        {DEAL ",\"amount\":1.005}", VDEAL("amount_cents=101 source=\"\"")},
        {DEAL ",\"amount\":2.675}", VDEAL("amount_cents=268 source=\"\"")},
        {DEAL ",\"amount\":1e12}", VDEAL("amount_cents=100000000000000 source=\"\"")},
        {DEAL ",\"amount\":1000000000000.01}", "invalid deal_stage.amount: out of range 0..10^12"},
        {DEAL ",\"amount\":-1}", "invalid deal_stage.amount: out of range 0..10^12"},
        {DEAL ",\"amount\":\"100\"}", "invalid deal_stage.amount: must be a number"},
        {DEAL ",\"amount\":true}", "invalid deal_stage.amount: must be a number"},
        {DEAL ",\"amount\":1,\"amount\":2}", "invalid deal_stage.amount: duplicate field"},
        {DEAL ",\"source\":null}", VDEAL("amount_cents=- source=\"\"")},
        {DEAL ",\"source\":\"\"}", VDEAL("amount_cents=- source=\"\"")},
        {DEAL ",\"source\":\"cold call\"}", VDEAL("amount_cents=- source=\"cold call\"")},
        {DEAL ",\"source\":7}", "invalid deal_stage.source: must be a string"},
        {DEAL ",\"source\":\"a\\u0000b\"}", "invalid deal_stage.source: not valid UTF-8 text"},
        {DEAL ",\"source\":\"\\udc00\"}", "invalid deal_stage.source: not valid UTF-8 text"},
        {DEAL ",\"source\":\"\\ud83d\\ude00\"}", VDEAL("amount_cents=- source=\"\\xf0\\x9f\\x98\\x80\"")},
        /* cut to 64 bytes, never inside a character */
        {DEAL ",\"source\":\"0123456789012345678901234567890123456789012345678901234567890123456789\"}",
         VDEAL("amount_cents=- source=0123456789012345678901234567890123456789012345678901234567890123")},
        {DEAL ",\"source\":\"012345678901234567890123456789012345678901234567890123456789012\xd0\xb9\"}",
         VDEAL("amount_cents=- source=012345678901234567890123456789012345678901234567890123456789012")},
        /* call/e-mail/meeting fields are ignored, internal included */
        {DEAL ",\"internal\":true,\"counterpart\":\"a@ourcompany.ru\",\"direction\":5,\"status\":\"x\"}",
         VDEAL("amount_cents=- source=\"\"")},
    };
    RUN(cases);

    /* every configured stage, by exact name; custom stage lists work */
    for (size_t i = 0; i < 7; i++) {
        char msg[256], got[1200], want[300];
        snprintf(msg, sizeof msg, "{" HEAD ",\"type\":\"deal_stage\",\"deal_id\":\"D-1\",\"stage\":\"%s\"}", stages[i]);
        outcome(msg, strlen(msg), &rules, got, sizeof got);
        snprintf(want, sizeof want, V "deal_stage" VHEAD " deal=D-1 stage=%s amount_cents=- source=\"\"", stages[i]);
        assert_string_equal(got, want);
    }
    static const char *const custom[] = {"new", "won"};
    event_rules_t r = rules;
    r.stages = custom;
    r.n_stages = 2;
    event_t ev;
    char err[256];
    const char *msg = DEAL "}";
    assert_int_equal(event_parse(parser, &r, msg, strlen(msg), NOW, &ev, err, sizeof err), 0);
    assert_int_equal(ev.stage, 1);
    msg = "{" HEAD ",\"type\":\"deal_stage\",\"deal_id\":\"D-1\",\"stage\":\"lead\"}";
    assert_int_equal(event_parse(parser, &r, msg, strlen(msg), NOW, &ev, err, sizeof err), -1);
    assert_string_equal(err, "deal_stage.stage: unknown value \"lead\"");
}

static void test_amount_literals(void **state)
{
    (void)state;
    static const struct { const char *lit; int64_t cents; } ok[] = {
        {"0", 0}, {"-0", 0}, {"-0.0", 0}, {"0.0e-7", 0}, {"0e999999999999", 0}, {"1", 100},
        {"1.005", 101}, {"0.005", 1}, {"0.004", 0}, {"0.0049999999", 0}, {"2.675", 268},
        {"1.015", 102}, {"1.025", 103}, {"0.125", 13}, {"0.135", 14}, {"10.994999", 1099},
        {"1e12", 100000000000000}, {"1E12", 100000000000000}, {"1e+12", 100000000000000},
        {"1000000000000", 100000000000000}, {"1000000000000.00", 100000000000000},
        {"999999999999.995", 100000000000000}, {"999999999999.994", 99999999999999},
        {"0.1e13", 100000000000000}, {"1.5e2", 15000}, {"1.5E+2", 15000}, {"15e-1", 150},
        {"1e-2", 1}, {"5e-3", 1}, {"4.9999e-3", 0}, {"1e-999999999999", 0}, {"123.456", 12346},
        {"0.000000000000000000000000000000000000000000000000000000000000000000000000000001", 0},
        {"1500.50", 150050}, {"12345678901.23", 1234567890123},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t c = -7;
        if (event_parse_amount_cents(ok[i].lit, strlen(ok[i].lit), &c) != 0 || c != ok[i].cents)
            fail_msg("%s -> %lld", ok[i].lit, (long long)c);
    }
    static const char *const bad[] = {
        "1000000000000.01", "1000000000000.005", "1000000000000.0000001", "1.0000000000001e12",
        "1e13", "1e999999999999", "99999999999999999999999", "-1", "-0.001", "-1e-9",
        "01", "1.", ".5", "1e", "1e+", "+1", "", "-", "0x10", "1 ", " 1", "1.5.5", "1e5.5", "NaN",
        "Infinity", "1,5", "--1", "1ee5", "\"1\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t c = -7;
        if (event_parse_amount_cents(bad[i], strlen(bad[i]), &c) != -1)
            fail_msg("accepted %s -> %lld", bad[i], (long long)c);
    }
    int64_t c = 0;
    assert_int_equal(event_parse_amount_cents("1.25xyz", 4, &c), 0); /* never reads past len */
    assert_int_equal(c, 125);
}

static void test_internal_detection(void **state)
{
    (void)state;
    static const struct { const char *cp; bool internal; } cases[] = {
        {"a@ourcompany.ru", true}, {"a@sales.ourcompany.ru", true}, {"a@x.y.ourcompany.ru", true},
        {"x@ourcompany.ru.example.com", false}, {"x@yourcompany.ru", false}, {"x@ourcompany.r", false},
        {"A@OurCompany.RU", true}, {"a@SALES.OURCOMPANY.RU", true}, {"a@b@ourcompany.ru", true},
        {"ourcompany.ru@evil.com", false}, {"@ourcompany.ru", true}, {"x@", false}, {"x@.ourcompany.ru", true},
        {"x@ourcompany.ru.", false}, {"x@ourcompany-ru", false}, {"x@xourcompany.ru", false},
        {"+74951001234", true}, {"+7495100", true}, {"+7 (495) 100-12-34", true}, {" +7-495-100 ", true},
        {"+7 (495) 1001234", true}, {"+7495101", false}, {"+749510", false}, {"84951001234", false},
        {"7495100", false}, {"", false}, {"ourcompany.ru", false}, {"+7495100@gmail.com", false},
        {"+7\t495100", false}, {"+7.495.100", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (event_counterpart_is_internal(&rules, cases[i].cp, strlen(cases[i].cp)) != cases[i].internal)
            fail_msg("%s should be %s", cases[i].cp, cases[i].internal ? "internal" : "external");

    /* several domains and prefixes; configured prefixes may carry formatting */
    static const char *const doms[] = {"a.example", "ourcompany.ru"};
    static const char *const pres[] = {"", "+7 (812) 55", "+7495100"};
    event_rules_t r = rules;
    r.internal_domains = doms;
    r.n_internal_domains = 2;
    r.phone_prefixes = pres;
    r.n_phone_prefixes = 3;
    assert_true(event_counterpart_is_internal(&r, "z@mail.a.example", 16));
    assert_true(event_counterpart_is_internal(&r, "z@ourcompany.ru", 15));
    assert_true(event_counterpart_is_internal(&r, "+78125512", 9));
    assert_false(event_counterpart_is_internal(&r, "+78125612", 9));
    assert_false(event_counterpart_is_internal(&r, "+1", 2)); /* an empty prefix matches nothing */
    r.n_internal_domains = 0;
    r.n_phone_prefixes = 0;
    assert_false(event_counterpart_is_internal(&r, "a@ourcompany.ru", 15));
    assert_false(event_counterpart_is_internal(&r, "+74951001234", 12));
    /* NUL bytes are data, not terminators */
    assert_false(event_counterpart_is_internal(&rules, "a@ourcompany.ru\0x", 17));
    assert_true(event_counterpart_is_internal(&rules, "x\0y@ourcompany.ru", 17));

    static const struct tcase msgs[] = {
        {CALL ",\"counterpart\":\"a@sales.ourcompany.ru\"}", VCALL("1", "duration=0")},
        {CALL ",\"counterpart\":\"x@yourcompany.ru\"}", VCALL0},
        {CALL ",\"counterpart\":\"+7 (495) 100-00-01\"}", VCALL("1", "duration=0")},
        {CALL ",\"counterpart\":\"+7 (495) 200-00-01\"}", VCALL0},
        {CALL ",\"counterpart\":\"a\\u0040ourcompany.ru\"}", VCALL("1", "duration=0")},
        {CALL ",\"internal\":true}", VCALL("1", "duration=0")},
        {CALL ",\"internal\":false}", VCALL0},
        {CALL ",\"internal\":null,\"counterpart\":null}", VCALL0},
        {CALL ",\"internal\":false,\"counterpart\":\"a@ourcompany.ru\"}", VCALL("1", "duration=0")},
        {CALL ",\"internal\":true,\"counterpart\":\"a@client.com\"}", VCALL("1", "duration=0")},
        {CALL ",\"internal\":\"yes\"}", "invalid call.internal: must be a boolean"},
        {CALL ",\"internal\":1}", "invalid call.internal: must be a boolean"},
        {CALL ",\"counterpart\":42}", "invalid call.counterpart: must be a string"},
        {CALL ",\"counterpart\":\"a\",\"counterpart\":\"a\"}", "invalid call.counterpart: duplicate field"},
        {EMAIL ",\"counterpart\":\"Boss@OURCOMPANY.RU\"}", VEMAIL("1")},
        {EMAIL ",\"internal\":true}", VEMAIL("1")},
        {EMAIL ",\"internal\":[]}", "invalid email.internal: must be a boolean"},
        {MEETING ",\"counterpart\":\"+74951009999\"}", VMEET("1", "kind=followup next_step=0")},
        {MEETING ",\"internal\":true}", VMEET("1", "kind=followup next_step=0")},
        {MEETING ",\"counterpart\":{}}", "invalid meeting.counterpart: must be a string"},
    };
    RUN(msgs);
}

static void test_unknown_and_nested(void **state)
{
    (void)state;
    static const struct tcase cases[] = {
        {CALL ",\"x\":1,\"y\":\"s\",\"z\":null,\"w\":true,\"v\":[1,{\"a\":[]}],\"u\":{\"type\":\"fax\"},\"t\":1.5e300}",
         VCALL0},
        /* known names inside nested objects are not top-level fields, duplicates there are fine */
        {CALL ",\"meta\":{\"event_id\":1,\"event_id\":2,\"duration_s\":\"x\",\"ts\":{}}}", VCALL0},
        {CALL ",\"x\":1,\"x\":2}", VCALL0},
        /* keys are compared exactly */
        {CALL ",\"Duration_s\":\"x\",\"duration_s \":5,\"duration\":5}", VCALL0},
        {CALL ",\"\":1}", VCALL0},
    };
    RUN(cases);
}

static void test_json_errors(void **state)
{
    (void)state;
    static const struct tcase cases[] = {
        {"", "invalid json: parse error at byte 0: premature EOF"},
        {"   ", "invalid json: parse error at byte 3: premature EOF"},
        {"{", "invalid json: parse error at byte 1: premature EOF"},
        {CALL, "invalid json: parse error at byte 115: premature EOF"},
        {CALL "}}", "invalid json: parse error at byte 117: trailing garbage"},
        {CALL "}{}", "invalid json: parse error at byte 117: trailing garbage"},
        {CALL "} x", "invalid json: parse error at byte 118: trailing garbage"},
        {"[]", "invalid json: top level must be an object"},
        {"[" CALL "}]", "invalid json: top level must be an object"},
        {"\"call\"", "invalid json: top level must be an object"},
        {"42", "invalid json: top level must be an object"},
        {"null", "invalid json: top level must be an object"},
        {"true", "invalid json: top level must be an object"},
        {"{\"a\":1,}", "invalid json: parse error at byte 8: invalid object key (must be a string)"},
        {"{\"a\" 1}", "invalid json: parse error at byte 6: object key and value must be separated by a colon (':')"},
        {"{'a':1}", "invalid json: parse error at byte 2: invalid char in json text."},
        {"{\"a\":NaN}", "invalid json: parse error at byte 6: invalid char in json text."},
        {"{\"a\":01}", "invalid json: parse error at byte 6: after key and value, inside map, I expect ',' or '}'"},
        {"{\"a\":1.}", "invalid json: parse error at byte 7: malformed number, a digit is required after the decimal point."},
        {"{/*c*/\"a\":1}", "invalid json: parse error at byte 1: probable comment found in input text, comments are not enabled."},
        {"{\"a\":\"\\x\"}", "invalid json: parse error at byte 7: inside a string, '\\' occurs before a character which it may not."},
        {"{\"a\":\"\\u12\"}", "invalid json: parse error at byte 10: invalid (non-hex) character occurs after '\\u' inside string."},
        {"{\"a\":\"tab\there\"}", "invalid json: parse error at byte 9: invalid character inside string."},
        {"\xef\xbb\xbf{}", "invalid json: parse error at byte 1: invalid char in json text."},
        /* UTF-8 is checked strictly before parsing: overlongs, surrogates, > U+10FFFF, truncation */
        {"{\"a\":\"\xc0\xaf\"}", "invalid json: invalid UTF-8 at byte 6"},
        {"{\"a\":\"\xe0\x80\xaf\"}", "invalid json: invalid UTF-8 at byte 6"},
        {"{\"a\":\"\xed\xa0\x80\"}", "invalid json: invalid UTF-8 at byte 6"},
        {"{\"a\":\"\xf4\x90\x80\x80\"}", "invalid json: invalid UTF-8 at byte 6"},
        {"{\"a\":\"\xf5\x80\x80\x80\"}", "invalid json: invalid UTF-8 at byte 6"},
        {"{\"a\":\"\xff\"}", "invalid json: invalid UTF-8 at byte 6"},
        {"{\"a\":\"\x80\"}", "invalid json: invalid UTF-8 at byte 6"},
        {"{\"a\":\"\xd0\"}", "invalid json: invalid UTF-8 at byte 6"},
        {"{\"a\":\"\xe2\x82\"}", "invalid json: invalid UTF-8 at byte 6"},
        {"{\"\xd0\xb0\xd0\xb1\xd0\xb2\xd0\xb3\xd0\xb4\xd0\xb5\xd0\xb6\xd0\xb7\xff\":1}", "invalid json: invalid UTF-8 at byte 18"},
        {"{\"a\":\"\xd0\"", "invalid json: invalid UTF-8 at byte 6"},
        /* well-formed multi-byte text anywhere is fine */
        {CALL ",\"note\":\"\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"}",
         VCALL0},
    };
    RUN(cases);

    /* NUL bytes: raw inside a string, after the object; and a buffer with no terminator */
    char got[1200];
    static const char raw_nul[] = "{\"a\":\"x\0y\"}";
    outcome(raw_nul, sizeof raw_nul - 1, &rules, got, sizeof got);
    assert_string_equal(got, "invalid json: parse error at byte 7: invalid character inside string.");
    static const char after[] = CALL "}\0";
    outcome(after, sizeof after - 1, &rules, got, sizeof got);
    assert_string_equal(got, "invalid json: parse error at byte 117: trailing garbage");
    size_t n = strlen(CALL "}");
    char *exact = malloc(n);
    assert_non_null(exact);
    memcpy(exact, CALL "}", n);
    outcome(exact, n, &rules, got, sizeof got);
    assert_string_equal(got, VCALL0);
    free(exact);
}

static void test_message_size(void **state)
{
    (void)state;
    const char *base = CALL "}";
    size_t blen = strlen(base), max = rules.max_message_bytes;
    char *buf = malloc(max + 1);
    assert_non_null(buf);
    memcpy(buf, base, blen);
    memset(buf + blen, ' ', max + 1 - blen); /* trailing whitespace is still one object */
    char got[1200];
    outcome(buf, max, &rules, got, sizeof got);
    assert_string_equal(got, VCALL0);
    outcome(buf, max + 1, &rules, got, sizeof got);
    assert_string_equal(got, "invalid message: 1048577 bytes exceeds max_message_bytes 1048576");
    event_rules_t r = rules;
    r.max_message_bytes = blen - 1;
    outcome(base, blen, &r, got, sizeof got);
    snprintf(buf, max, "invalid message: %zu bytes exceeds max_message_bytes %zu", blen, blen - 1);
    assert_string_equal(got, buf);
    free(buf);
}

/* pre + n bytes of fill + post, not NUL-terminated. */
static char *big(const char *pre, char fill, size_t n, const char *post, size_t *len)
{
    size_t lp = strlen(pre), lq = strlen(post);
    char *m = malloc(lp + n + lq);
    assert_non_null(m);
    memcpy(m, pre, lp);
    memset(m + lp, fill, n);
    memcpy(m + lp + n, post, lq);
    *len = lp + n + lq;
    return m;
}

static void expect_big(const char *pre, char fill, size_t n, const char *post, const char *want)
{
    size_t len;
    char got[1200];
    char *m = big(pre, fill, n, post, &len);
    outcome(m, len, &rules, got, sizeof got);
    free(m);
    assert_string_equal(got, want);
}

static void test_big_inputs(void **state)
{
    (void)state;
    const size_t mib = 1000 * 1000;
    size_t len;
    char got[1200], want[200];

    expect_big(CALL ",\"note\":\"", 'x', mib, "\"}", VCALL0);
    expect_big(CALL ",\"counterpart\":\"a@example.com", ' ', mib, "x@sales.ourcompany.ru\"}",
               VCALL("1", "duration=0"));
    expect_big(CALL ",\"counterpart\":\"+7", ' ', mib, "495 100 1\"}", VCALL("1", "duration=0"));
    expect_big("{\"event_id\":\"", 'x', mib, "\",\"type\":\"email\",\"manager_id\":\"m\",\"ts\":0}",
               "invalid event_id: must be 1..128 printable ASCII bytes");
    expect_big(EMAIL ",\"type\":\"", 'x', mib, "\"}", "invalid type: duplicate field");
    snprintf(want, sizeof want, "%s%.64s", VDEAL("amount_cents=- source="),
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    expect_big(DEAL ",\"source\":\"", 'x', mib, "\"}", want);

    /* escapes make yajl decode into its own buffer */
    char *m = big(CALL ",\"note\":\"", 'x', mib, "\\n\\u0041\"}", &len);
    for (size_t i = 0; i + 2 < mib; i += 1000)
        memcpy(m + strlen(CALL ",\"note\":\"") + i, "\\t", 2);
    outcome(m, len, &rules, got, sizeof got);
    free(m);
    assert_string_equal(got, VCALL0);

    /* deep nesting in an unknown field: the parser keeps its own stack, not the C stack */
    char *deep = big(CALL ",\"deep\":", '[', mib / 2, "", &len);
    char *m2 = realloc(deep, len + mib / 2 + 1);
    assert_non_null(m2);
    memset(m2 + len, ']', mib / 2);
    m2[len + mib / 2] = '}';
    outcome(m2, len + mib / 2 + 1, &rules, got, sizeof got);
    assert_string_equal(got, VCALL0);
    outcome(m2, len + mib / 2, &rules, got, sizeof got); /* unterminated */
    snprintf(want, sizeof want, "invalid json: parse error at byte %zu: premature EOF", len + mib / 2);
    assert_string_equal(got, want);
    free(m2);
    expect_big("", '[', 1024 * 1024, "", "invalid json: top level must be an object");
    expect_big("{\"a\":", '[', 1024 * 1024 - 5, "", "invalid json: parse error at byte 1048576: premature EOF");

    /* huge numbers */
    expect_big(CALL ",\"duration_s\":1", '9', mib, "}", "invalid call.duration_s: out of range 0..86400");
    expect_big(CALL ",\"t\":0.", '0', mib, "1e-5}", VCALL0);
    expect_big(DEAL ",\"amount\":0.", '0', mib, "5e3}", VDEAL("amount_cents=0 source=\"\""));
    expect_big(DEAL ",\"amount\":0.", '0', mib, "5e1000002}", VDEAL("amount_cents=5000 source=\"\""));
    expect_big(DEAL ",\"amount\":1", '0', mib, "}", "invalid deal_stage.amount: out of range 0..10^12");
    expect_big(EM("1"), '0', 0, "", VEM("1"));
    expect_big("{\"event_id\":\"e\",\"type\":\"email\",\"manager_id\":\"m\",\"direction\":\"inbound\",\"ts\":1", '0', mib,
               "}", "invalid ts: out of range (years 1970..9999)");

    /* after all that, an ordinary message still parses */
    const char *msg = CALL ",\"duration_s\":5}";
    outcome(msg, strlen(msg), &rules, got, sizeof got);
    assert_string_equal(got, VCALL("0", "duration=5"));
}

static void test_parser_reuse(void **state)
{
    (void)state;
    event_t ev;
    char err[256];
    /* nothing leaks from one message into the next */
    const char *m1 = MEETING ",\"kind\":\"first\",\"next_step\":true,\"internal\":true,\"deal_id\":\"X\",\"source\":\"s\"}";
    const char *m2 = MEETING "}";
    const char *m3 = DEAL ",\"amount\":5,\"source\":\"web\"}";
    const char *m4 = DEAL "}";
    const char *m5 = CALL ",\"deal_id\":\"D9\",\"source\":\"web\"}";
    assert_int_equal(event_parse(parser, &rules, m1, strlen(m1), NOW, &ev, err, sizeof err), 0);
    assert_true(ev.meeting_first && ev.next_step && ev.internal);
    assert_string_equal(ev.deal_id, "");
    assert_string_equal(ev.source, "");
    assert_int_equal(event_parse(parser, &rules, "{[", 2, NOW, &ev, err, sizeof err), -1);
    assert_int_equal(event_parse(parser, &rules, m2, strlen(m2), NOW, &ev, err, sizeof err), 0);
    assert_false(ev.meeting_first || ev.next_step || ev.internal);
    assert_int_equal(event_parse(parser, &rules, m3, strlen(m3), NOW, &ev, err, sizeof err), 0);
    assert_true(ev.has_amount);
    assert_int_equal(ev.amount_cents, 500);
    assert_string_equal(ev.source, "web");
    assert_int_equal(event_parse(parser, &rules, m4, strlen(m4), NOW, &ev, err, sizeof err), 0);
    assert_false(ev.has_amount);
    assert_int_equal(ev.amount_cents, 0);
    assert_string_equal(ev.source, "");
    assert_int_equal(event_parse(parser, &rules, m5, strlen(m5), NOW, &ev, err, sizeof err), 0);
    assert_int_equal(ev.type, EVENT_CALL);
    assert_string_equal(ev.deal_id, "");
    assert_string_equal(ev.source, "");
    assert_string_equal(ev.event_id, "e1");
    assert_string_equal(ev.manager_id, "ivanov");
    assert_int_equal(ev.ts_ms, 1794809520000);

    /* two parsers are independent */
    event_parser_t *other = event_parser_new();
    assert_non_null(other);
    assert_int_equal(event_parse(other, &rules, m3, strlen(m3), NOW, &ev, err, sizeof err), 0);
    event_parser_free(other);
    event_parser_free(NULL);
}

static void test_err_buffer_and_names(void **state)
{
    (void)state;
    event_t ev;
    char small[8];
    const char *m = "{\"type\":\"fax\"}";
    assert_int_equal(event_parse(parser, &rules, m, strlen(m), NOW, &ev, small, sizeof small), -1);
    assert_string_equal(small, "event_i"); /* cut, still terminated */
    assert_int_equal(event_parse(parser, &rules, m, strlen(m), NOW, &ev, NULL, 0), -1);
    assert_string_equal(event_type_name(EVENT_CALL), "call");
    assert_string_equal(event_type_name(EVENT_EMAIL), "email");
    assert_string_equal(event_type_name(EVENT_MEETING), "meeting");
    assert_string_equal(event_type_name(EVENT_DEAL_STAGE), "deal_stage");
    assert_string_equal(event_type_name((enum event_type)9), "unknown");

    /* event_format: quoting and a too small buffer */
    const char *d = DEAL ",\"source\":\"a \\\"b\\\\\\u0001\"}";
    assert_int_equal(event_parse(parser, &rules, d, strlen(d), NOW, &ev, small, sizeof small), 0);
    char line[200];
    assert_true(event_format(&ev, &rules, line, sizeof line) > 0);
    assert_string_equal(line, "type=deal_stage id=e1 manager=ivanov ts=1794809520000 deal=D-1 stage=won "
                              "amount_cents=- source=\"a \\\"b\\\\\\x01\"");
    assert_true(event_format(&ev, NULL, line, sizeof line) > 0);
    assert_non_null(strstr(line, " stage=#5 "));
    assert_int_equal(event_format(&ev, &rules, line, 20), -1);
    assert_int_equal(event_format(&ev, &rules, line, 0), -1);
}

/* ---- gold files: tests/gold/events/NN-name.json + NN-name.expected ---------------------- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf != NULL && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (nb == NULL)
                free(buf);
            buf = nb;
        }
    }
    fclose(f);
    *len = n;
    return buf;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_gold(void **state)
{
    (void)state;
    char dir[4096];
    const char *src = getenv("KPI_SRC");
    DIR *d = NULL;
    if (src != NULL) {
        snprintf(dir, sizeof dir, "%s/tests/gold/events", src);
        d = opendir(dir);
    }
    static const char *const rel[] = {"gold/events", "tests/gold/events"};
    for (size_t i = 0; d == NULL && i < 2; i++) {
        snprintf(dir, sizeof dir, "%s", rel[i]);
        d = opendir(dir);
    }
    if (d == NULL)
        fail_msg("gold directory not found (set KPI_SRC)");
    char *names[1000] = {NULL};
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 5 && strcmp(e->d_name + l - 5, ".json") == 0) {
            assert_true(n < 1000);
            names[n] = strdup(e->d_name);
            assert_non_null(names[n]);
            n++;
        }
    }
    closedir(d);
    qsort(names, n, sizeof names[0], cmp_names);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        char path[8192];
        size_t mlen, elen;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        char *msg = read_file(path, &mlen);
        snprintf(path + strlen(path) - 5, 16, ".expected");
        char *exp = read_file(path, &elen);
        if (msg == NULL || exp == NULL) {
            print_error("%s: cannot read the message or its .expected\n", names[i]);
            bad++;
        } else {
            while (elen > 0 && (exp[elen - 1] == '\n' || exp[elen - 1] == '\r'))
                elen--;
            exp[elen] = '\0';
            char got[1200];
            outcome(msg, mlen, &rules, got, sizeof got);
            if (strcmp(got, exp) != 0) {
                print_error("%s\n  want: %s\n  got:  %s\n", names[i], exp, got);
                bad++;
            }
        }
        free(msg);
        free(exp);
        free(names[i]);
    }
    print_message("%zu gold pairs in %s\n", n, dir);
    assert_true(n >= 40);
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types_valid),
        cmocka_unit_test(test_type_field),
        cmocka_unit_test(test_event_id),
        cmocka_unit_test(test_manager_and_deal_id),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_ts_field),
        cmocka_unit_test(test_call_fields),
        cmocka_unit_test(test_email_fields),
        cmocka_unit_test(test_meeting_fields),
        cmocka_unit_test(test_deal_fields),
        cmocka_unit_test(test_amount_literals),
        cmocka_unit_test(test_internal_detection),
        cmocka_unit_test(test_unknown_and_nested),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_message_size),
        cmocka_unit_test(test_big_inputs),
        cmocka_unit_test(test_parser_reuse),
        cmocka_unit_test(test_err_buffer_and_names),
        cmocka_unit_test(test_gold),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
