/* metrics: the Prometheus text exposition (naming rules, escaping, histograms), the
 * systemd status line, metrics.listen parsing and its configuration key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "metrics.h"

/* The text of every line that starts with prefix, joined by '\n'. */
static const char *lines_starting(const char *text, const char *prefix, char *out, size_t cap)
{
    size_t n = strlen(prefix), o = 0;
    out[0] = '\0';
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len >= n && strncmp(p, prefix, n) == 0 && o + len + 2 < cap) {
            memcpy(out + o, p, len);
            o += len;
            out[o++] = '\n';
            out[o] = '\0';
        }
        p += len + (nl ? 1 : 0);
    }
    return out;
}

static void test_name_rules(void **state)
{
    (void)state;
    assert_true(metrics_name_ok("kpid_events_total", METRICS_COUNTER));
    assert_false(metrics_name_ok("kpid_events", METRICS_COUNTER));       /* counter: _total */
    assert_false(metrics_name_ok("kpid_up_total", METRICS_GAUGE));       /* only counters */
    assert_false(metrics_name_ok("events_total", METRICS_COUNTER));      /* kpid_ prefix */
    assert_false(metrics_name_ok("kpid_", METRICS_GAUGE));
    assert_false(metrics_name_ok("kpid_lag-ms", METRICS_GAUGE));         /* charset */
    assert_false(metrics_name_ok("kpid_flush_count", METRICS_HISTOGRAM)); /* series suffix */
    assert_true(metrics_name_ok("kpid_flush_duration_seconds", METRICS_HISTOGRAM));

    struct metrics_buf b = {0};
    assert_int_equal(metrics_family(&b, "kpid_bad", METRICS_COUNTER, "x"), -1);
    assert_int_equal(b.len, 0);
    assert_int_equal(metrics_family(&b, "kpid_x_total", METRICS_COUNTER, "a\\b\nc"), 0);
    assert_string_equal(b.data, "# HELP kpid_x_total a\\\\b\\nc\n# TYPE kpid_x_total counter\n");
    metrics_buf_free(&b);
}

static void test_label_escaping_and_values(void **state)
{
    (void)state;
    struct metrics_buf b = {0};
    struct metrics_label l[2] = {{"topic", "a\"b\\c\nd"}, {"partition", "3"}};
    metrics_sample(&b, "kpid_consumer_lag_messages", NULL, l, 2, 42);
    metrics_sample(&b, "kpid_t", NULL, NULL, 0, 1767225600.123);
    metrics_sample(&b, "kpid_t", "_sum", NULL, 0, 0.0025);
    metrics_sample(&b, "kpid_big", NULL, NULL, 0, 18446744073709.0);
    assert_string_equal(b.data, "kpid_consumer_lag_messages{topic=\"a\\\"b\\\\c\\nd\",partition=\"3\"} 42\n"
                                "kpid_t 1767225600.123\n"
                                "kpid_t_sum 0.0025\n"
                                "kpid_big 18446744073709\n");
    metrics_buf_free(&b);
}

static void test_histogram_cumulative(void **state)
{
    (void)state;
    static const double bounds[] = {0.01, 0.1, 1};
    struct metrics_hist h = {0};
    metrics_hist_observe(&h, bounds, 3, 0.005);
    metrics_hist_observe(&h, bounds, 3, 0.01); /* le is inclusive */
    metrics_hist_observe(&h, bounds, 3, 0.5);
    metrics_hist_observe(&h, bounds, 3, 7);
    struct metrics_buf b = {0};
    metrics_hist_write(&b, "kpid_h_seconds", &h, bounds, 3);
    assert_string_equal(b.data, "kpid_h_seconds_bucket{le=\"0.01\"} 2\n"
                                "kpid_h_seconds_bucket{le=\"0.1\"} 2\n"
                                "kpid_h_seconds_bucket{le=\"1\"} 3\n"
                                "kpid_h_seconds_bucket{le=\"+Inf\"} 4\n"
                                "kpid_h_seconds_sum 7.515\n"
                                "kpid_h_seconds_count 4\n");
    metrics_buf_free(&b);
}

static void test_render_kpid(void **state)
{
    (void)state;
    struct metrics_values v = {0};
    v.events[METRICS_APPLIED] = 10;
    v.events[METRICS_INVALID] = 2;
    v.events[METRICS_DUPLICATE] = 3;
    v.events[METRICS_INTERNAL] = 1;
    v.dedup_hits = 3;
    v.alerts_firing = 5;
    v.alerts_resolved = 4;
    v.deliveries[METRICS_WEBHOOK] = 7;
    v.delivery_failures[METRICS_WEBHOOK] = 2;
    v.reloads_rejected = 1;
    v.redis_up = true;
    v.version = "1.2.3";
    v.start_time_s = 1767225600.5;
    struct metrics_lag lags[] = {{"kpi.events", 0, 0}, {"kpi.events", 3, 17}};
    v.lags = lags;
    v.n_lags = 2;
    metrics_observe_flush(&v, 0.003, 1);
    metrics_observe_flush(&v, 0.2, 5000);
    v.flushes = 2;
    struct metrics_buf b = {0};
    assert_int_equal(metrics_render(&v, &b), 0);
    char got[4096];

    assert_string_equal(lines_starting(b.data, "kpid_events_total", got, sizeof got),
                        "kpid_events_total{outcome=\"applied\"} 10\n"
                        "kpid_events_total{outcome=\"invalid\"} 2\n"
                        "kpid_events_total{outcome=\"duplicate\"} 3\n"
                        "kpid_events_total{outcome=\"internal\"} 1\n");
    assert_string_equal(lines_starting(b.data, "kpid_consumer_lag_messages", got, sizeof got),
                        "kpid_consumer_lag_messages{topic=\"kpi.events\",partition=\"0\"} 0\n"
                        "kpid_consumer_lag_messages{topic=\"kpi.events\",partition=\"3\"} 17\n");
    assert_string_equal(lines_starting(b.data, "kpid_alerts_total", got, sizeof got),
                        "kpid_alerts_total{state=\"firing\"} 5\n"
                        "kpid_alerts_total{state=\"resolved\"} 4\n");
    assert_string_equal(lines_starting(b.data, "kpid_alert_delivery_failures_total", got,
                                       sizeof got),
                        "kpid_alert_delivery_failures_total{channel=\"kafka\"} 0\n"
                        "kpid_alert_delivery_failures_total{channel=\"webhook\"} 2\n");
    assert_string_equal(lines_starting(b.data, "kpid_config_reloads_total", got, sizeof got),
                        "kpid_config_reloads_total{result=\"ok\"} 0\n"
                        "kpid_config_reloads_total{result=\"rejected\"} 1\n");
    assert_string_equal(lines_starting(b.data, "kpid_build_info", got, sizeof got),
                        "kpid_build_info{version=\"1.2.3\"} 1\n");
    assert_string_equal(lines_starting(b.data, "kpid_start_time_seconds", got, sizeof got),
                        "kpid_start_time_seconds 1767225600.5\n");
    assert_string_equal(lines_starting(b.data, "kpid_batch_events_", got, sizeof got),
                        "kpid_batch_events_bucket{le=\"1\"} 1\n"
                        "kpid_batch_events_bucket{le=\"10\"} 1\n"
                        "kpid_batch_events_bucket{le=\"50\"} 1\n"
                        "kpid_batch_events_bucket{le=\"100\"} 1\n"
                        "kpid_batch_events_bucket{le=\"500\"} 1\n"
                        "kpid_batch_events_bucket{le=\"1000\"} 1\n"
                        "kpid_batch_events_bucket{le=\"2000\"} 1\n"
                        "kpid_batch_events_bucket{le=\"5000\"} 2\n"
                        "kpid_batch_events_bucket{le=\"10000\"} 2\n"
                        "kpid_batch_events_bucket{le=\"20000\"} 2\n"
                        "kpid_batch_events_bucket{le=\"100000\"} 2\n"
                        "kpid_batch_events_bucket{le=\"+Inf\"} 2\n"
                        "kpid_batch_events_sum 5001\n"
                        "kpid_batch_events_count 2\n");
    assert_string_equal(lines_starting(b.data, "kpid_flush_duration_seconds_count", got,
                                       sizeof got),
                        "kpid_flush_duration_seconds_count 2\n");
    assert_string_equal(lines_starting(b.data, "kpid_flush_duration_seconds_bucket{le=\"0.005\"}",
                                       got, sizeof got),
                        "kpid_flush_duration_seconds_bucket{le=\"0.005\"} 1\n");

    /* Every family: HELP then TYPE, a kpid_ name that follows the rules for its type, and
     * every sample line belongs to the family announced last. */
    char family[128] = "";
    size_t families = 0;
    for (const char *p = b.data; *p;) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        char line[512];
        size_t len = (size_t)(nl - p);
        assert_true(len < sizeof line);
        memcpy(line, p, len);
        line[len] = '\0';
        if (strncmp(line, "# HELP ", 7) == 0) {
            char name[128], type[32], next[512];
            assert_int_equal(sscanf(line + 7, "%127s", name), 1);
            const char *nl2 = strchr(nl + 1, '\n');
            assert_non_null(nl2);
            memcpy(next, nl + 1, (size_t)(nl2 - nl - 1));
            next[nl2 - nl - 1] = '\0';
            char tname[128];
            assert_int_equal(sscanf(next, "# TYPE %127s %31s", tname, type), 2);
            assert_string_equal(tname, name);
            enum metrics_type t = strcmp(type, "counter") == 0 ? METRICS_COUNTER
                                  : strcmp(type, "gauge") == 0 ? METRICS_GAUGE
                                                               : METRICS_HISTOGRAM;
            assert_true(metrics_name_ok(name, t));
            snprintf(family, sizeof family, "%s", name);
            families++;
        } else if (line[0] != '#') {
            assert_true(family[0]);
            assert_memory_equal(line, family, strlen(family));
            char c = line[strlen(family)];
            assert_true(c == ' ' || c == '{' || c == '_');
        }
        p = nl + 1;
    }
    assert_int_equal(families, 21);
    metrics_buf_free(&b);
}

static void test_status_line(void **state)
{
    (void)state;
    char line[256];
    struct metrics_status s = {.ready = true, .redis_up = true, .kafka_up = true,
                               .redis_address = "127.0.0.1:6379", .events_per_s = 1234.4,
                               .lag = 56, .partitions = 3};
    metrics_status_line(&s, line, sizeof line);
    assert_string_equal(line, "consuming 1234 ev/s, lag 56, redis ok, kafka ok, 3 partitions");
    s.paused = true;
    s.redis_up = false;
    s.held = 5000;
    metrics_status_line(&s, line, sizeof line);
    assert_string_equal(line, "PAUSED: redis 127.0.0.1:6379 unreachable, 5000 messages held");
    s = (struct metrics_status){.redis_up = false, .redis_address = "10.0.0.1:6379"};
    metrics_status_line(&s, line, sizeof line);
    assert_string_equal(line, "starting: waiting for redis 10.0.0.1:6379");
}

static void test_parse_listen(void **state)
{
    (void)state;
    char host[64], err[256];
    int port = 0;
    assert_int_equal(metrics_parse_listen("127.0.0.1:9464", host, sizeof host, &port, err,
                                          sizeof err), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 9464);
    assert_int_equal(metrics_parse_listen("[::1]:80", host, sizeof host, &port, err, sizeof err),
                     0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 80);
    const char *bad[] = {"127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:+80",
                         ":9464", "localhost:9464", "::1:9464", "[::1]9464", "[127.0.0.1]:80",
                         "1.2.3.4:80x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(metrics_parse_listen(bad[i], host, sizeof host, &port, err, sizeof err),
                         -1);
}

static void test_config_key(void **state)
{
    (void)state;
    static char err[4096];
    config_t *c = NULL;
#define BASE "{\"kafka\":{\"brokers\":\"b:9092\",\"topics\":[\"t\"]}%s}"
    char text[512];

    snprintf(text, sizeof text, BASE, "");
    assert_int_equal(config_load_string(text, strlen(text), &c, err, sizeof err), 0);
    assert_null(c->metrics_listen);
    config_free(c);
    snprintf(text, sizeof text, BASE, ",\"metrics\":null");
    assert_int_equal(config_load_string(text, strlen(text), &c, err, sizeof err), 0);
    assert_null(c->metrics_listen);
    config_free(c);
    snprintf(text, sizeof text, BASE, ",\"metrics\":{}");
    assert_int_equal(config_load_string(text, strlen(text), &c, err, sizeof err), 0);
    assert_string_equal(c->metrics_listen, "127.0.0.1:9464");
    config_free(c);
    snprintf(text, sizeof text, BASE, ",\"metrics\":{\"listen\":\"[::1]:9100\"}");
    assert_int_equal(config_load_string(text, strlen(text), &c, err, sizeof err), 0);
    assert_string_equal(c->metrics_listen, "[::1]:9100");
    config_free(c);

    snprintf(text, sizeof text, BASE, ",\"metrics\":{\"listen\":\"localhost:9100\"}");
    assert_int_equal(config_load_string(text, strlen(text), &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "$.metrics.listen: "));
    assert_non_null(strstr(err, "not an IPv4 address"));
    snprintf(text, sizeof text, BASE, ",\"metrics\":{\"listen\":\"127.0.0.1:99999\",\"x\":1}");
    assert_int_equal(config_load_string(text, strlen(text), &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "$.metrics.listen: port must be between 1 and 65535"));
    assert_non_null(strstr(err, "$.metrics.x: unknown key"));
    snprintf(text, sizeof text, BASE, ",\"metrics\":\"127.0.0.1:9100\"");
    assert_int_equal(config_load_string(text, strlen(text), &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "$.metrics: must be an object"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_rules),
        cmocka_unit_test(test_label_escaping_and_values),
        cmocka_unit_test(test_histogram_cumulative),
        cmocka_unit_test(test_render_kpid),
        cmocka_unit_test(test_status_line),
        cmocka_unit_test(test_parse_listen),
        cmocka_unit_test(test_config_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
