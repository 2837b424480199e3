/* libFuzzer harness: one Kafka message value -> event_parse, as loop_take does it.
 *
 * The parser object lives across inputs (as in the daemon, where its free list of yajl
 * blocks is reused), and the rules come from a small fixed configuration built the way
 * runtime_build does, so the fuzzer exercises the real stage names, internal domains and
 * phone prefixes. now_ms is fixed so every run is deterministic.
 *
 * Beyond "no crash, no leak" it checks what the rest of kpid relies on: a reason is a
 * printable ASCII line that fits its buffer (it goes into a Kafka header of the DLQ), a
 * valid event formats, and parsing the same bytes twice gives the same outcome (nothing
 * leaks from one message into the next through the reused parser). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "event.h"
#include "log.h"

#define NOW_MS 1795132800000LL /* 2026-11-20T00:00:00Z, as in tests/unit/test_event.c */

static const char fixed_config[] =
    "{\"kafka\": {\"brokers\": \"127.0.0.1:9092\", \"topics\": [\"kpi.events\"]},"
    " \"internal\": {\"domains\": [\"OurCompany.ru\", \"corp.example\"],"
    "               \"phone_prefixes\": [\"+7495100\", \"+1555\"]}}";

static config_t *cfg;
static event_rules_t rules;
static event_parser_t *parser;

static void cleanup(void)
{
    event_parser_free(parser);
    config_free(cfg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[1024];
    log_set_level(LOG_LEVEL_ERROR);
    if (config_load_string(fixed_config, sizeof fixed_config - 1, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_event: fixed config rejected: %s\n", err);
        abort();
    }
    rules = config_event_rules(cfg);
    if (!(parser = event_parser_new()))
        abort();
    atexit(cleanup); /* so LSan at exit sees nothing of ours still reachable */
    return 0;
}

static bool id_chars_ok(const char *s, size_t max, bool printable)
{
    size_t n = strnlen(s, max + 1);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = printable ? c >= 0x20 && c <= 0x7e
                            : (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '@' ||
                                  c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* What the aggregation, the key names and the dedup store take for granted of a valid
 * event (contract section 1); a violation here is a validator bug even without a crash. */
static void check_valid(const event_t *ev)
{
    bool ok = id_chars_ok(ev->event_id, EVENT_ID_MAX, true) &&
              id_chars_ok(ev->manager_id, EVENT_MANAGER_MAX, false) && ev->ts_ms >= 0 &&
              ev->ts_ms <= NOW_MS + rules.future_skew_ms &&
              ev->ts_ms < 253402300800000LL && /* 10000-01-01 */
              (unsigned)ev->type <= EVENT_DEAL_STAGE;
    if (ok && ev->type == EVENT_CALL)
        ok = ev->duration_s >= 0 && ev->duration_s <= 86400 &&
             (unsigned)ev->call_status <= CALL_FAILED;
    if (ok && ev->type == EVENT_MEETING)
        ok = (unsigned)ev->meeting_status <= MEETING_NO_SHOW;
    if (ok && ev->type == EVENT_DEAL_STAGE)
        ok = id_chars_ok(ev->deal_id, EVENT_DEAL_MAX, false) && ev->stage >= 0 &&
             (size_t)ev->stage < rules.n_stages &&
             (!ev->has_amount || (ev->amount_cents >= 0 && ev->amount_cents <= 100000000000000LL)) &&
             strnlen(ev->source, EVENT_SOURCE_MAX + 1) <= EVENT_SOURCE_MAX;
    if (!ok)
        abort();
}

/* The outcome as one line: "valid <event_format>" or "invalid <reason>". */
static void outcome(const uint8_t *data, size_t size, char *line, size_t cap)
{
    event_t ev;
    char reason[256]; /* the size loop_take uses */
    memset(reason, 'X', sizeof reason);
    if (event_parse(parser, &rules, data, size, NOW_MS, &ev, reason, sizeof reason) == 0) {
        check_valid(&ev);
        char text[1024]; /* event.h: 1024 always suffices */
        if (event_format(&ev, &rules, text, sizeof text) <= 0)
            abort();
        snprintf(line, cap, "valid %s", text);
        return;
    }
    if (memchr(reason, '\0', sizeof reason) == NULL || reason[0] == '\0')
        abort(); /* no reason, or not terminated within its buffer */
    for (const char *p = reason; *p != '\0'; p++)
        if (*p < 0x20 || *p > 0x7e)
            abort(); /* would corrupt the DLQ header or the log line */
    snprintf(line, cap, "invalid %s", reason);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so ASan catches any read past len (the daemon's value
     * is not NUL-terminated). */
    uint8_t *msg = malloc(size ? size : 1);
    if (!msg)
        return 0;
    memcpy(msg, data, size);
    char first[1400], second[1400];
    outcome(msg, size, first, sizeof first);
    outcome(msg, size, second, sizeof second);
    free(msg);
    if (strcmp(first, second) != 0) {
        fprintf(stderr, "fuzz_event: same bytes, two outcomes:\n  %s\n  %s\n", first, second);
        abort();
    }
    return 0;
}
