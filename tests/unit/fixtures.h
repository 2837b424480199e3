/* Shared by the unit tests that build period sets by hand. */
#ifndef KPI_TEST_FIXTURES_H
#define KPI_TEST_FIXTURES_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "period.h"

/* A period set with the given day and week ids, November 2026 and Q4, and a day end. */
static inline period_set_t fixture_periods(const char *day, const char *week, int64_t day_end)
{
    period_set_t p;
    memset(&p, 0, sizeof p);
    snprintf(p.id[PERIOD_DAY], sizeof p.id[0], "%s", day);
    snprintf(p.id[PERIOD_WEEK], sizeof p.id[0], "%s", week);
    snprintf(p.id[PERIOD_MONTH], sizeof p.id[0], "m:2026-11");
    snprintf(p.id[PERIOD_QUARTER], sizeof p.id[0], "q:2026-Q4");
    p.end_ms[PERIOD_DAY] = day_end;
    return p;
}

/* True when some line of err starts with prefix. */
static inline bool fixture_has_line(const char *err, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = err; p && *p;) {
        if (strncmp(p, prefix, n) == 0)
            return true;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return false;
}

static inline size_t fixture_count_lines(const char *err)
{
    size_t n = *err ? 1 : 0;
    for (const char *p = err; *p; p++)
        n += *p == '\n';
    return n;
}

/* The configuration block of CONTRACT.md section 6, verbatim, without its closing brace
 * (section 7's members may follow). */
#define CONTRACT_SECTION6_OPEN \
        "{\n" \
        "  \"kafka\": {\n" \
        "    \"brokers\": \"127.0.0.1:9092\",          // bootstrap servers\n" \
        "    \"topics\": [\"kpi.events\"],\n" \
        "    \"group\": \"kpid\",                      // consumer group; several kpid share the load\n" \
        "    \"dlq_topic\": \"kpi.events.dlq\",\n" \
        "    \"alerts_topic\": \"kpi.alerts\",\n" \
        "    \"properties\": {}                      // passed to librdkafka as-is (SASL/SSL, ...)\n" \
        "  },\n" \
        "  \"redis\": { \"host\": \"127.0.0.1\", \"port\": 6379, \"db\": 0, \"user\": null, \"password\": null, \"prefix\": \"kpi\" },\n" \
        "  \"time_zone\": \"Europe/Moscow\",           // default IANA zone\n" \
        "  \"teams\": { \"moscow-smb\": { \"time_zone\": \"Europe/Moscow\", \"lead\": \"sidorov\" } },\n" \
        "  \"managers\": { \"ivanov\": { \"team\": \"moscow-smb\", \"role\": \"hunter\" } },\n" \
        "  \"internal\": { \"domains\": [\"ourcompany.ru\"], \"phone_prefixes\": [\"+7495100\"] },\n" \
        "  \"touch_min_call_s\": 10,\n" \
        "  \"dedup_window_s\": 604800,\n" \
        "  \"future_skew_s\": 86400,\n" \
        "  \"stages\": [ {\"name\": \"lead\", \"p\": 0.05}, {\"name\": \"mql\", \"p\": 0.1}, {\"name\": \"sql\", \"p\": 0.2},\n" \
        "              {\"name\": \"proposal\", \"p\": 0.4}, {\"name\": \"negotiation\", \"p\": 0.6},\n" \
        "              {\"name\": \"won\", \"p\": 1, \"terminal\": true}, {\"name\": \"lost\", \"p\": 0, \"terminal\": true} ]\n"

#endif
