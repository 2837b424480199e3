#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "fixtures.h"

#define KAFKA_MIN "\"kafka\": {\"brokers\": \"b:9092\", \"topics\": [\"t\"]}"

static char errbuf[16384];

/* Loads KAFKA_MIN plus extra top-level members ("" for none). */
static config_t *load_with(const char *extra)
{
    char text[8192];
    snprintf(text, sizeof text, "{" KAFKA_MIN "%s%s}", *extra ? ", " : "", extra);
    config_t *cfg = NULL;
    errbuf[0] = '\0';
    int rc = config_load_string(text, strlen(text), &cfg, errbuf, sizeof errbuf);
    if (rc != 0 || !cfg)
        fail_msg("load failed for %s:\n%s", text, errbuf);
    return cfg;
}

/* The text must fail to load and report a line starting with want. */
static void expect_fail_text(const char *text, const char *want)
{
    config_t *cfg = (config_t *)1;
    errbuf[0] = '\0';
    int rc = config_load_string(text, strlen(text), &cfg, errbuf, sizeof errbuf);
    if (rc == 0) {
        config_free(cfg);
        fail_msg("loaded but should fail (%s): %s", want, text);
    }
    assert_null(cfg);
    if (!fixture_has_line(errbuf, want))
        fail_msg("want a line starting \"%s\" for %s\ngot:\n%s", want, text, errbuf);
}

static void expect_fail(const char *extra, const char *want)
{
    char text[8192];
    snprintf(text, sizeof text, "{" KAFKA_MIN "%s%s}", *extra ? ", " : "", extra);
    expect_fail_text(text, want);
    /* Each case in the tables below holds exactly one mistake. */
    if (fixture_count_lines(errbuf) != 1)
        fail_msg("want exactly one error for %s, got:\n%s", text, errbuf);
}

static void test_defaults(void **state)
{
    (void)state;
    config_t *c = load_with("");
    assert_string_equal(c->kafka_brokers, "b:9092");
    assert_int_equal(c->n_kafka_topics, 1);
    assert_string_equal(c->kafka_topics[0], "t");
    assert_string_equal(c->kafka_group, "kpid");
    assert_string_equal(c->kafka_dlq_topic, "kpi.events.dlq");
    assert_string_equal(c->kafka_alerts_topic, "kpi.alerts");
    assert_int_equal(c->n_kafka_properties, 0);
    assert_string_equal(c->redis_host, "127.0.0.1");
    assert_int_equal(c->redis_port, 6379);
    assert_int_equal(c->redis_db, 0);
    assert_null(c->redis_user);
    assert_null(c->redis_password);
    assert_string_equal(c->redis_prefix, "kpi");
    assert_int_equal(c->redis_timeout_ms, 5000);
    assert_string_equal(c->time_zone, "UTC");
    assert_int_equal(c->n_teams, 0);
    assert_int_equal(c->n_managers, 0);
    assert_int_equal(c->n_internal_domains, 0);
    assert_int_equal(c->n_internal_phone_prefixes, 0);
    assert_int_equal(c->touch_min_call_s, 10);
    assert_int_equal(c->dedup_window_s, 604800);
    assert_int_equal(c->future_skew_s, 86400);
    static const struct { const char *name; double p; bool terminal; } stages[] = {
        {"lead", 0.05, false}, {"mql", 0.1, false}, {"sql", 0.2, false},
        {"proposal", 0.4, false}, {"negotiation", 0.6, false}, {"won", 1, true},
        {"lost", 0, true}};
    assert_int_equal(c->n_stages, 7);
    const char *const *names = config_stage_names(c);
    assert_non_null(names);
    for (size_t i = 0; i < 7; i++) {
        assert_string_equal(c->stages[i].name, stages[i].name);
        assert_true(c->stages[i].p == stages[i].p);
        assert_int_equal(c->stages[i].terminal, stages[i].terminal);
        assert_string_equal(names[i], stages[i].name);
    }
    assert_int_equal(c->batch_max_events, 20000);
    assert_int_equal(c->batch_max_ms, 100);
    assert_int_equal(c->max_message_bytes, 1048576);
    assert_int_equal(c->retention_day_s, 10368000);
    assert_int_equal(c->retention_week_s, 63072000);
    assert_string_equal(c->log_level, "info");
    assert_null(config_manager_find(c, "ivanov"));
    assert_null(config_team_find(c, "unassigned"));
    config_free(c);
}

static void test_every_key_set(void **state)
{
    (void)state;
    const char *text =
        "{\"kafka\": {\"brokers\": \"k1:9092,k2:9092\", \"topics\": [\"a\", \"b\"],"
        " \"group\": \"g\", \"dlq_topic\": \"d\", \"alerts_topic\": \"al\","
        " \"properties\": {\"client.id\": \"x\", \"fetch.wait.max.ms\": 50,"
        " \"socket.keepalive.enable\": true, \"x.ratio\": 1.50}},"
        " \"redis\": {\"host\": \"r\", \"port\": 7000, \"db\": 3, \"user\": \"u\","
        " \"password\": \"pw\", \"prefix\": \"K_1.x-y\", \"timeout_ms\": 100},"
        " \"time_zone\": \"Europe/Moscow\","
        " \"teams\": {\"t1\": {\"time_zone\": \"Asia/Tokyo\", \"lead\": \"boss\"},"
        "            \"t2\": {\"time_zone\": null, \"lead\": null}, \"t3\": {}},"
        " \"managers\": {\"m1\": {\"team\": \"t1\", \"role\": \"hunter\"}, \"m2\": {},"
        "               \"m.3@x\": {\"team\": \"unassigned\"}},"
        " \"internal\": {\"domains\": [\"OurCompany.RU\"], \"phone_prefixes\": [\"+7495\", \"8800\"]},"
        " \"touch_min_call_s\": 0, \"dedup_window_s\": 60, \"future_skew_s\": 31536000,"
        " \"stages\": [{\"name\": \"open\", \"p\": 0.5}, {\"name\": \"won\", \"p\": 1, \"terminal\": true},"
        "              {\"name\": \"lost\", \"p\": 0, \"terminal\": true}],"
        " \"batch\": {\"max_events\": 1, \"max_ms\": 60000}, \"max_message_bytes\": 67108864,"
        " \"retention\": {\"day_s\": 86400, \"week_s\": 3153600000}, \"log_level\": \"debug\"}";
    config_t *c = NULL;
    assert_int_equal(config_load_string(text, strlen(text), &c, errbuf, sizeof errbuf), 0);
    assert_string_equal(c->kafka_brokers, "k1:9092,k2:9092");
    assert_int_equal(c->n_kafka_topics, 2);
    assert_string_equal(c->kafka_topics[1], "b");
    assert_string_equal(c->kafka_group, "g");
    assert_string_equal(c->kafka_dlq_topic, "d");
    assert_string_equal(c->kafka_alerts_topic, "al");
    assert_int_equal(c->n_kafka_properties, 4);
    assert_string_equal(c->kafka_properties[0].key, "client.id");
    assert_string_equal(c->kafka_properties[0].value, "x");
    assert_string_equal(c->kafka_properties[1].value, "50");
    assert_string_equal(c->kafka_properties[2].value, "true");
    assert_string_equal(c->kafka_properties[3].value, "1.50"); /* the literal as written */
    assert_string_equal(c->redis_host, "r");
    assert_int_equal(c->redis_port, 7000);
    assert_int_equal(c->redis_db, 3);
    assert_string_equal(c->redis_user, "u");
    assert_string_equal(c->redis_password, "pw");
    assert_string_equal(c->redis_prefix, "K_1.x-y");
    assert_int_equal(c->redis_timeout_ms, 100);
    assert_string_equal(c->time_zone, "Europe/Moscow");
    assert_int_equal(c->n_teams, 3);
    const struct config_team *t = config_team_find(c, "t1");
    assert_non_null(t);
    assert_string_equal(t->time_zone, "Asia/Tokyo");
    assert_string_equal(t->lead, "boss");
    t = config_team_find(c, "t2");
    assert_null(t->time_zone);
    assert_null(t->lead);
    assert_non_null(config_team_find(c, "t3"));
    const struct config_manager *m = config_manager_find(c, "m1");
    assert_string_equal(m->team, "t1");
    assert_string_equal(m->role, "hunter");
    m = config_manager_find(c, "m2");
    assert_string_equal(m->team, CONFIG_UNASSIGNED_TEAM);
    assert_string_equal(m->role, CONFIG_DEFAULT_ROLE);
    m = config_manager_find(c, "m.3@x");
    assert_string_equal(m->team, CONFIG_UNASSIGNED_TEAM);
    assert_int_equal(c->n_internal_domains, 1);
    assert_string_equal(c->internal_domains[0], "ourcompany.ru"); /* lower-cased */
    assert_int_equal(c->n_internal_phone_prefixes, 2);
    assert_string_equal(c->internal_phone_prefixes[1], "8800");
    assert_int_equal(c->touch_min_call_s, 0);
    assert_int_equal(c->dedup_window_s, 60);
    assert_int_equal(c->future_skew_s, 31536000);
    assert_int_equal(c->n_stages, 3);
    assert_string_equal(c->stages[0].name, "open");
    assert_true(c->stages[0].p == 0.5);
    assert_false(c->stages[0].terminal);
    assert_true(c->stages[2].terminal);
    assert_int_equal(config_stage_find(c, "won"), 1);
    assert_int_equal(config_stage_find(c, "lead"), -1);
    assert_int_equal(c->batch_max_events, 1);
    assert_int_equal(c->batch_max_ms, 60000);
    assert_int_equal(c->max_message_bytes, 67108864);
    assert_int_equal(c->retention_day_s, 86400);
    assert_int_equal(c->retention_week_s, 3153600000LL);
    assert_string_equal(c->log_level, "debug");
    config_free(c);
}

/* The configuration block of CONTRACT.md section 6, verbatim. */
static void test_contract_example(void **state)
{
    (void)state;
    const char *text = CONTRACT_SECTION6_OPEN "}\n";
    config_t *c = NULL;
    if (config_load_string(text, strlen(text), &c, errbuf, sizeof errbuf) != 0)
        fail_msg("%s", errbuf);
    assert_string_equal(c->time_zone, "Europe/Moscow");
    const struct config_manager *m = config_manager_find(c, "ivanov");
    assert_non_null(m);
    assert_string_equal(m->team, "moscow-smb");
    assert_string_equal(m->role, "hunter");
    const struct config_team *t = config_team_find(c, m->team);
    assert_non_null(t);
    assert_string_equal(t->lead, "sidorov");
    assert_string_equal(c->internal_phone_prefixes[0], "+7495100");
    assert_int_equal(c->n_stages, 7);
    assert_true(c->stages[4].p == 0.6);
    config_free(c);
}

static void test_shipped_files(void **state)
{
    (void)state;
    const char *src = getenv("KPI_SRC");
    if (!src)
        src = "..";
    char path[4096];
    config_t *c = NULL;
    snprintf(path, sizeof path, "%s/config/kpid.example.jsonc", src);
    if (config_load_file(path, &c, errbuf, sizeof errbuf) != 0)
        fail_msg("%s", errbuf);
    /* The example documents the defaults by spelling them out. */
    assert_string_equal(c->kafka_group, "kpid");
    assert_int_equal(c->redis_port, 6379);
    assert_int_equal(c->batch_max_events, 20000);
    assert_int_equal(c->retention_week_s, 63072000);
    assert_int_equal(c->n_stages, 7);
    assert_non_null(config_team_find(c, "moscow-smb"));
    assert_string_equal(config_manager_find(c, "ivanov")->team, "moscow-smb");
    config_free(c);

    snprintf(path, sizeof path, "%s/config/test-minimal.json", src);
    if (config_load_file(path, &c, errbuf, sizeof errbuf) != 0)
        fail_msg("%s", errbuf);
    config_free(c);

    snprintf(path, sizeof path, "%s/config/no-such-file.json", src);
    assert_int_equal(config_load_file(path, &c, errbuf, sizeof errbuf), -1);
    assert_null(c);
    assert_non_null(strstr(errbuf, "No such file"));
}

struct bad_case {
    const char *extra;
    const char *want;
};

static void run_cases(const struct bad_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        expect_fail(cases[i].extra, cases[i].want);
}

static void test_type_and_range_errors(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"\"redis\": {\"host\": 1}", "$.redis.host: must be a non-empty string"},
        {"\"redis\": {\"host\": \"\"}", "$.redis.host: must be a non-empty string"},
        {"\"redis\": {\"port\": \"6379\"}", "$.redis.port: must be an integer"},
        {"\"redis\": {\"port\": 6379.0}", "$.redis.port: must be an integer"},
        {"\"redis\": {\"port\": 0}", "$.redis.port: must be between 1 and 65535"},
        {"\"redis\": {\"port\": 65536}", "$.redis.port: must be between 1 and 65535"},
        {"\"redis\": {\"db\": -1}", "$.redis.db: must be between 0 and"},
        {"\"redis\": {\"db\": 99999999999999999999}", "$.redis.db: must be between 0 and"},
        {"\"redis\": {\"user\": 5}", "$.redis.user: must be a non-empty string or null"},
        {"\"redis\": {\"password\": \"\"}", "$.redis.password: must be a non-empty string or null"},
        {"\"redis\": {\"prefix\": \"kpi:x\"}", "$.redis.prefix: must match ^[A-Za-z0-9_.-]{1,32}$"},
        {"\"redis\": {\"prefix\": \"abcdefghijabcdefghijabcdefghijabc\"}", "$.redis.prefix: must match"},
        {"\"redis\": {\"prefix\": null}", "$.redis.prefix: must be a non-empty string ("},
        {"\"redis\": {\"timeout_ms\": 99}", "$.redis.timeout_ms: must be between 100 and 600000"},
        {"\"redis\": {\"timeout_ms\": 600001}", "$.redis.timeout_ms: must be between 100 and 600000"},
        {"\"redis\": []", "$.redis: must be an object"},
        {"\"time_zone\": 3", "$.time_zone: must be a non-empty string"},
        {"\"time_zone\": \"Mars/Olympus_Mons\"", "$.time_zone: unknown time zone"},
        {"\"time_zone\": \"../../etc/passwd\"", "$.time_zone: "},
        {"\"teams\": {\"a\": {\"time_zone\": \"Nowhere/City\"}}", "$.teams.a.time_zone: unknown time zone"},
        {"\"teams\": {\"a\": {\"lead\": \"bad lead\"}}", "$.teams.a.lead: must match ^[A-Za-z0-9._@-]{1,64}$"},
        {"\"teams\": {\"a\": 1}", "$.teams.a: must be an object"},
        {"\"teams\": []", "$.teams: must be an object"},
        {"\"teams\": {\"unassigned\": {}}", "$.teams.unassigned: team name \"unassigned\" is reserved"},
        {"\"teams\": {\"a b\": {}}", "$.teams[\"a b\"]: team name must match ^[A-Za-z0-9._@-]{1,64}$"},
        {"\"managers\": {\"ivanov\": {\"team\": \"moskow-smb\"}}", "$.managers.ivanov.team: unknown team \"moskow-smb\""},
        {"\"managers\": {\"ivanov\": {\"team\": 1}}", "$.managers.ivanov.team: must be a non-empty string"},
        {"\"managers\": {\"ivanov\": {\"role\": \"\"}}", "$.managers.ivanov.role: must be a non-empty string"},
        {"\"managers\": {\"i/v\": {}}", "$.managers[\"i/v\"]: manager id must match ^[A-Za-z0-9._@-]{1,64}$"},
        {"\"managers\": {\"a.b\": []}", "$.managers[\"a.b\"]: must be an object"},
        {"\"managers\": 1", "$.managers: must be an object"},
        {"\"managers\": {\"a\\u0000b\": {}}", "$.managers[\"a\\u0000b\"]: must not contain NUL characters"},
        {"\"internal\": {\"domains\": \"x.ru\"}", "$.internal.domains: must be an array of strings"},
        {"\"internal\": {\"domains\": [\"x.ru\", 1]}", "$.internal.domains[1]: must be a non-empty string"},
        {"\"internal\": {\"domains\": [\"@x.ru\"]}", "$.internal.domains[0]: must be a bare domain name"},
        {"\"internal\": {\"domains\": [\".x.ru\"]}", "$.internal.domains[0]: must be a bare domain name"},
        {"\"internal\": {\"phone_prefixes\": [\"\"]}", "$.internal.phone_prefixes[0]: must be a non-empty string"},
        {"\"internal\": {\"phone_prefixes\": [\"+7 495\"]}", "$.internal.phone_prefixes[0]: must not contain spaces"},
        {"\"touch_min_call_s\": -1", "$.touch_min_call_s: must be between 0 and 86400"},
        {"\"touch_min_call_s\": 86401", "$.touch_min_call_s: must be between 0 and 86400"},
        {"\"touch_min_call_s\": 1e1", "$.touch_min_call_s: must be an integer"},
        {"\"touch_min_call_s\": true", "$.touch_min_call_s: must be an integer"},
        {"\"dedup_window_s\": 59", "$.dedup_window_s: must be between 60 and 31536000"},
        {"\"dedup_window_s\": 31536001", "$.dedup_window_s: must be between 60 and 31536000"},
        {"\"dedup_window_s\": 60.0", "$.dedup_window_s: must be an integer"},
        {"\"future_skew_s\": -1", "$.future_skew_s: must be between 0 and 31536000"},
        {"\"future_skew_s\": null", "$.future_skew_s: must be an integer"},
        {"\"batch\": {\"max_events\": 0}", "$.batch.max_events: must be between 1 and 1000000"},
        {"\"batch\": {\"max_events\": 1000001}", "$.batch.max_events: must be between 1 and 1000000"},
        {"\"batch\": {\"max_ms\": 0}", "$.batch.max_ms: must be between 1 and 60000"},
        {"\"batch\": {\"max_ms\": 60001}", "$.batch.max_ms: must be between 1 and 60000"},
        {"\"batch\": 5", "$.batch: must be an object"},
        {"\"max_message_bytes\": 1023", "$.max_message_bytes: must be between 1024 and 67108864"},
        {"\"max_message_bytes\": 67108865", "$.max_message_bytes: must be between 1024 and 67108864"},
        {"\"retention\": {\"day_s\": 86399}", "$.retention.day_s: must be between 86400 and"},
        {"\"retention\": {\"week_s\": 0}", "$.retention.week_s: must be between 86400 and"},
        {"\"retention\": {\"week_s\": \"2y\"}", "$.retention.week_s: must be an integer"},
        {"\"log_level\": \"verbose\"", "$.log_level: must be one of \"error\", \"warn\", \"info\", \"debug\""},
        {"\"log_level\": \"INFO\"", "$.log_level: must be one of"},
        {"\"log_level\": 1", "$.log_level: must be a non-empty string"},
    };
    run_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_kafka_errors(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"{}", "$.kafka: is required"},
        {"{\"kafka\": 1}", "$.kafka: must be an object"},
        {"{\"kafka\": {\"topics\": [\"t\"]}}", "$.kafka.brokers: is required"},
        {"{\"kafka\": {\"brokers\": \"b\"}}", "$.kafka.topics: is required"},
        {"{\"kafka\": {\"brokers\": \"\", \"topics\": [\"t\"]}}", "$.kafka.brokers: must be a non-empty string"},
        {"{\"kafka\": {\"brokers\": [\"b\"], \"topics\": [\"t\"]}}", "$.kafka.brokers: must be a non-empty string"},
        {"{\"kafka\": {\"brokers\": \"b\", \"topics\": []}}", "$.kafka.topics: must be a non-empty array"},
        {"{\"kafka\": {\"brokers\": \"b\", \"topics\": \"t\"}}", "$.kafka.topics: must be a non-empty array"},
        {"{\"kafka\": {\"brokers\": \"b\", \"topics\": [\"t\", \"\"]}}", "$.kafka.topics[1]: must be a non-empty string"},
        {"{\"kafka\": {\"brokers\": \"b\", \"topics\": [\"t\", null]}}", "$.kafka.topics[1]: must be a non-empty string"},
        {"{\"kafka\": {\"brokers\": \"b\", \"topics\": [\"t\"], \"group\": 1}}", "$.kafka.group: must be a non-empty string"},
        {"{\"kafka\": {\"brokers\": \"b\", \"topics\": [\"t\"], \"dlq_topic\": \"\"}}", "$.kafka.dlq_topic: must be a non-empty string"},
        {"{\"kafka\": {\"brokers\": \"b\", \"topics\": [\"t\"], \"alerts_topic\": false}}", "$.kafka.alerts_topic: must be a non-empty string"},
        {"{\"kafka\": {\"brokers\": \"b\", \"topics\": [\"t\"], \"properties\": []}}", "$.kafka.properties: must be an object"},
        {"{\"kafka\": {\"brokers\": \"b\", \"topics\": [\"t\"], \"properties\": {\"a.b\": null}}}", "$.kafka.properties[\"a.b\"]: must be a string, number or boolean"},
        {"{\"kafka\": {\"brokers\": \"b\", \"topics\": [\"t\"], \"properties\": {\"x\": {}}}}", "$.kafka.properties.x: must be a string, number or boolean"},
        {"{\"kafka\": {\"brokers\": \"b\", \"topics\": [\"t\"], \"brokerz\": \"b\"}}", "$.kafka.brokerz: unknown key"},
        {"[]", "$: must be an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect_fail_text(cases[i].extra, cases[i].want);
        if (fixture_count_lines(errbuf) != 1)
            fail_msg("want one error for %s, got:\n%s", cases[i].extra, errbuf);
    }
}

static void test_redis_sentinels(void **state)
{
    (void)state;
    config_t *cfg = load_with("\"redis\": {\"sentinels\": [\"10.0.0.1:26379\", \"[::1]:26380\"], "
                              "\"master_name\": \"kpi\"}");
    assert_int_equal(cfg->n_redis_sentinels, 2);
    assert_string_equal(cfg->redis_sentinels[0], "10.0.0.1:26379");
    assert_string_equal(cfg->redis_sentinels[1], "[::1]:26380");
    assert_string_equal(cfg->redis_master_name, "kpi");
    config_t *plain = load_with("");
    assert_int_equal(plain->n_redis_sentinels, 0);
    assert_null(plain->redis_master_name);
    assert_false(config_same_sentinels(cfg, plain));
    assert_true(config_same_sentinels(cfg, cfg));
    config_free(plain);
    config_free(cfg);

    static const struct bad_case cases[] = {
        {"\"redis\": {\"sentinels\": [\"a:1\"]}", "$.redis.sentinels: needs redis.master_name"},
        {"\"redis\": {\"master_name\": \"kpi\"}", "$.redis.master_name: needs redis.sentinels"},
        {"\"redis\": {\"sentinels\": [], \"master_name\": \"m\"}", "$.redis.sentinels: must be a non-empty array"},
        {"\"redis\": {\"sentinels\": [\"a\"], \"master_name\": \"m\"}", "$.redis.sentinels[0]: must be \"host:port\""},
        {"\"redis\": {\"sentinels\": [\"a:0\"], \"master_name\": \"m\"}", "$.redis.sentinels[0]: must be \"host:port\" with a port from 1 to 65535"},
        {"\"redis\": {\"sentinels\": [\"a:1x\"], \"master_name\": \"m\"}", "$.redis.sentinels[0]: must be \"host:port\" with a port from 1 to 65535"},
        {"\"redis\": {\"sentinels\": [\":1\"], \"master_name\": \"m\"}", "$.redis.sentinels[0]: must be \"host:port\""},
        {"\"redis\": {\"sentinels\": [\"a:1\"], \"master_name\": \"\"}", "$.redis.master_name: must be a non-empty string"},
        {"\"redis\": {\"host\": \"h\", \"sentinels\": [\"a:1\"], \"master_name\": \"m\"}", "$.redis.host: remove it"},
        {"\"redis\": {\"port\": 6380, \"sentinels\": [\"a:1\"], \"master_name\": \"m\"}", "$.redis.port: remove it"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_fail(cases[i].extra, cases[i].want);
}

static void test_stage_errors(void **state)
{
    (void)state;
#define WON "{\"name\": \"won\", \"p\": 1, \"terminal\": true}"
#define LOST "{\"name\": \"lost\", \"p\": 0, \"terminal\": true}"
    static const struct bad_case cases[] = {
        {"\"stages\": []", "$.stages: must be an array of 1 to 64 stages"},
        {"\"stages\": {}", "$.stages: must be an array of 1 to 64 stages"},
        {"\"stages\": [1, {\"name\": \"a\", \"p\": 0}, " WON ", " LOST "]", "$.stages[0]: must be an object"},
        {"\"stages\": [{\"p\": 0.1}, " WON ", " LOST "]", "$.stages[0].name: is required"},
        {"\"stages\": [{\"name\": \"a\"}, " WON ", " LOST "]", "$.stages[0].p: is required"},
        {"\"stages\": [{\"name\": \"a\", \"p\": 1.01}, " WON ", " LOST "]", "$.stages[0].p: must be a number between 0 and 1"},
        {"\"stages\": [{\"name\": \"a\", \"p\": -0.1}, " WON ", " LOST "]", "$.stages[0].p: must be a number between 0 and 1"},
        {"\"stages\": [{\"name\": \"a\", \"p\": \"0.1\"}, " WON ", " LOST "]", "$.stages[0].p: must be a number between 0 and 1"},
        {"\"stages\": [{\"name\": \"a\", \"p\": 1e999}, " WON ", " LOST "]", "$.stages[0].p: must be a number between 0 and 1"},
        {"\"stages\": [{\"name\": \"a\", \"p\": 0, \"terminal\": 1}, " WON ", " LOST "]", "$.stages[0].terminal: must be a boolean"},
        {"\"stages\": [{\"name\": \"A\", \"p\": 0}, {\"name\": \"b\", \"p\": 0}, " WON ", " LOST "]", "$.stages[0].name: must match ^[a-z0-9_-]{1,32}$"},
        {"\"stages\": [{\"name\": \"a.b\", \"p\": 0}, {\"name\": \"b\", \"p\": 0}, " WON ", " LOST "]", "$.stages[0].name: must match"},
        {"\"stages\": [{\"name\": \"a\", \"p\": 0}, {\"name\": \"a\", \"p\": 0.5}, " WON ", " LOST "]", "$.stages[1].name: duplicate stage \"a\""},
        {"\"stages\": [{\"name\": \"a\", \"p\": 0, \"x\": 1}, " WON ", " LOST "]", "$.stages[0].x: unknown key"},
        {"\"stages\": [" WON ", " LOST "]", "$.stages: at least one stage must be non-terminal"},
        {"\"stages\": [{\"name\": \"a\", \"p\": 0}, " LOST "]", "$.stages: a terminal stage named \"won\" is required"},
        {"\"stages\": [{\"name\": \"a\", \"p\": 0}, " WON "]", "$.stages: a terminal stage named \"lost\" is required"},
        {"\"stages\": [{\"name\": \"a\", \"p\": 0}, " WON ", {\"name\": \"lost\", \"p\": 0}]", "$.stages[2].terminal: stage \"lost\" must be terminal"},
        {"\"stages\": [{\"name\": \"a\", \"p\": 0}, {\"name\": \"won\", \"p\": 1, \"terminal\": false}, " LOST "]", "$.stages[1].terminal: stage \"won\" must be terminal"},
    };
    run_cases(cases, sizeof cases / sizeof cases[0]);

    /* Errors at one position keep the order they were found in. */
    expect_fail_text("{" KAFKA_MIN ", \"stages\": [{\"name\": \"a\", \"p\": 0}]}",
                     "$.stages: a terminal stage named \"won\"");
    assert_int_equal(fixture_count_lines(errbuf), 2);
    assert_true(strstr(errbuf, "\"won\"") < strstr(errbuf, "\"lost\""));

    /* 64 stages load, 65 do not. */
    char extra[8192];
    for (int n = 64; n <= 65; n++) {
        size_t o = (size_t)snprintf(extra, sizeof extra, "\"stages\": [" WON ", " LOST);
        for (int i = 2; i < n; i++)
            o += (size_t)snprintf(extra + o, sizeof extra - o, ", {\"name\": \"s%d\", \"p\": 0.5}", i);
        snprintf(extra + o, sizeof extra - o, "]");
        if (n == 64) {
            config_t *c = load_with(extra);
            assert_int_equal(c->n_stages, 64);
            config_free(c);
        } else {
            expect_fail(extra, "$.stages: must be an array of 1 to 64 stages");
        }
    }
#undef WON
#undef LOST
}

static void test_unknown_keys_everywhere(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"\"kafak\": {}", "$.kafak: unknown key (known keys: kafka, redis,"},
        {"\"targets\": {\"defaults\": {}}", "$.targets.defaults: unknown key (known keys: default,"},
        {"\"calendar\": {\"workdays\": []}", "$.calendar.workdays: unknown key"},
        {"\"redis\": {\"hots\": \"x\"}", "$.redis.hots: unknown key (known keys: host, port, db,"},
        {"\"teams\": {\"a\": {\"calender\": {}}}", "$.teams.a.calender: unknown key (known keys: time_zone, lead, calendar)"},
        {"\"managers\": {\"m\": {\"teem\": \"a\"}}", "$.managers.m.teem: unknown key (known keys: team, role)"},
        {"\"internal\": {\"domain\": []}", "$.internal.domain: unknown key"},
        {"\"batch\": {\"max_event\": 1}", "$.batch.max_event: unknown key"},
        {"\"retention\": {\"month_s\": 86400}", "$.retention.month_s: unknown key"},
        {"\"a b\": 1", "$[\"a b\"]: unknown key"},
        {"\"q\\\"\\n\": 1", "$[\"q\\\"\\u000a\"]: unknown key"},
    };
    run_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"\"log_level\": \"info\", \"log_level\": \"debug\"", "$.log_level: duplicate key"},
        {"\"kafka\": {}", "$.kafka: duplicate key"},
        {"\"redis\": {\"port\": 1, \"port\": 2}", "$.redis.port: duplicate key"},
        {"\"teams\": {\"a\": {}, \"a\": {}}", "$.teams.a: duplicate key"},
        {"\"managers\": {\"m\": {}, \"n\": {}, \"m\": {\"role\": \"x\"}}", "$.managers.m: duplicate key"},
        {"\"stages\": [{\"name\": \"a\", \"name\": \"b\", \"p\": 0}, {\"name\": \"won\", \"p\": 1, \"terminal\": true}, {\"name\": \"lost\", \"p\": 0, \"terminal\": true}]", "$.stages[0].name: duplicate key"},
    };
    run_cases(cases, sizeof cases / sizeof cases[0]);
    /* The position is that of the second occurrence. */
    expect_fail_text("{" KAFKA_MIN ",\n \"batch\": {\"max_ms\": 1,\n   \"max_ms\": 2}}",
                     "$.batch.max_ms: duplicate key (line 3, column 4)");
}

static void test_many_errors_at_once(void **state)
{
    (void)state;
    const char *text = "{\n"
                       "  \"kafka\": {\"brokers\": \"\", \"topics\": [\"a\", 7], \"grup\": \"x\"},\n"
                       "  \"redis\": {\"port\": 0, \"prefix\": \"a b\"},\n"
                       "  \"managers\": {\"ivanov\": {\"team\": \"moskow-smb\"}},\n"
                       "  \"batch\": {\"max_ms\": 1.5},\n"
                       "  \"log_level\": \"loud\",\n"
                       "  \"bogus\": true\n"
                       "}";
    config_t *c = (config_t *)1;
    assert_int_equal(config_load_string(text, strlen(text), &c, errbuf, sizeof errbuf), -1);
    assert_null(c);
    /* Every error, one per line, in document order, each with its position. */
    const char *want =
        "$.kafka.brokers: must be a non-empty string (line 2, column 24)\n"
        "$.kafka.topics[1]: must be a non-empty string (line 2, column 44)\n"
        "$.kafka.grup: unknown key (known keys: brokers, topics, group, dlq_topic, alerts_topic, properties, property_files) (line 2, column 48)\n"
        "$.redis.port: must be between 1 and 65535 (line 3, column 21)\n"
        "$.redis.prefix: must match ^[A-Za-z0-9_.-]{1,32}$ (line 3, column 34)\n"
        "$.managers.ivanov.team: unknown team \"moskow-smb\" (line 4, column 35)\n"
        "$.batch.max_ms: must be an integer (line 5, column 23)\n"
        "$.log_level: must be one of \"error\", \"warn\", \"info\", \"debug\" (line 6, column 16)\n"
        "$.bogus: unknown key (known keys: kafka, redis, time_zone, teams, managers, internal, "
        "touch_min_call_s, dedup_window_s, future_skew_s, stages, batch, max_message_bytes, "
        "retention, log_level, calendar, targets, plans, kpi_score, alerts, metrics) (line 7, column 3)";
    assert_string_equal(errbuf, want);
}

static void test_error_truncation(void **state)
{
    (void)state;
    const char *text = "{\"kafka\": {\"brokers\": \"\", \"topics\": [1, 2, 3, 4, 5]}}";
    config_t *c = NULL;
    char small[200];
    assert_int_equal(config_load_string(text, strlen(text), &c, small, sizeof small), -1);
    /* Whole lines only, then a count of what did not fit. */
    assert_true(fixture_has_line(small, "$.kafka.brokers: must be a non-empty string"));
    assert_true(fixture_has_line(small, "... and "));
    assert_null(strstr(small, "topics[4]"));
    char tiny[16];
    assert_int_equal(config_load_string(text, strlen(text), &c, tiny, sizeof tiny), -1);
    assert_string_equal(tiny, "$.kafka.brokers");
}

static void test_comments_and_syntax(void **state)
{
    (void)state;
    const char *text = "// leading comment\n"
                       "{ /* block */ " KAFKA_MIN ", // trailing\n"
                       "  \"log_level\": /* inline */ \"warn\"\n"
                       "}\n";
    config_t *c = NULL;
    if (config_load_string(text, strlen(text), &c, errbuf, sizeof errbuf) != 0)
        fail_msg("%s", errbuf);
    assert_string_equal(c->log_level, "warn");
    config_free(c);

    expect_fail_text("{" KAFKA_MIN ",\n  \"log_level\": \"info\",\n}",
                     "$: invalid JSON at line 3, column 1: parse error");
    expect_fail_text("{" KAFKA_MIN ",\n  \"x\": tru\n}", "$: invalid JSON at line 2, column");
    expect_fail_text("", "$: invalid JSON at line 1, column 1: empty document");
    expect_fail_text("{" KAFKA_MIN, "$: invalid JSON at line 1, column");
}

static void test_lookups_many(void **state)
{
    (void)state;
    enum { N = 3000 };
    size_t cap = 64 + (size_t)N * 64;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t o = (size_t)snprintf(text, cap, "{" KAFKA_MIN ", \"teams\": {\"t0\": {}, \"t1\": {}}, \"managers\": {");
    for (int i = 0; i < N; i++)
        o += (size_t)snprintf(text + o, cap - o, "%s\"m%d\": {\"team\": \"t%d\"}", i ? "," : "", i, i % 2);
    snprintf(text + o, cap - o, "}}");
    config_t *c = NULL;
    if (config_load_string(text, strlen(text), &c, errbuf, sizeof errbuf) != 0)
        fail_msg("%s", errbuf);
    free(text);
    assert_int_equal(c->n_managers, N);
    for (int i = 0; i < N; i++) {
        char id[16], team[8];
        snprintf(id, sizeof id, "m%d", i);
        snprintf(team, sizeof team, "t%d", i % 2);
        const struct config_manager *m = config_manager_find(c, id);
        assert_non_null(m);
        assert_string_equal(m->id, id);
        assert_string_equal(m->team, team);
        assert_ptr_equal(config_team_find(c, m->team), &c->teams[i % 2]);
    }
    assert_null(config_manager_find(c, "m3000"));
    assert_null(config_manager_find(c, "M1"));
    assert_null(config_manager_find(c, ""));
    assert_null(config_manager_find(c, NULL));
    assert_null(config_team_find(c, "t2"));
    assert_null(config_team_find(NULL, "t1"));
    config_free(c);
}

static void test_load_free_cycles(void **state)
{
    (void)state;
    /* Successful and failing loads alike must free everything (LeakSanitizer checks at
     * exit; the failing text allocates in every section before it is rejected). */
    const char *bad = "{\"kafka\": {\"brokers\": \"b\", \"topics\": [\"t\", 1], \"properties\": {\"a\": \"1\", \"b\": []}},"
                      " \"teams\": {\"t\": {\"time_zone\": \"Europe/Moscow\", \"lead\": \"x\"}},"
                      " \"managers\": {\"m\": {\"team\": \"t\", \"role\": \"r\"}},"
                      " \"internal\": {\"domains\": [\"a.ru\"], \"phone_prefixes\": [\"1\"]},"
                      " \"stages\": [{\"name\": \"a\", \"p\": 0}], \"log_level\": \"nope\"}";
    for (int i = 0; i < 20; i++) {
        config_t *c = load_with("\"redis\": {\"user\": \"u\", \"password\": \"p\"}, \"teams\": {\"t\": {\"lead\": \"x\"}}");
        config_free(c);
        c = NULL;
        assert_int_equal(config_load_string(bad, strlen(bad), &c, errbuf, sizeof errbuf), -1);
        assert_null(c);
    }
    config_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_key_set),
        cmocka_unit_test(test_contract_example),
        cmocka_unit_test(test_shipped_files),
        cmocka_unit_test(test_type_and_range_errors),
        cmocka_unit_test(test_kafka_errors),
        cmocka_unit_test(test_redis_sentinels),
        cmocka_unit_test(test_stage_errors),
        cmocka_unit_test(test_unknown_keys_everywhere),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_many_errors_at_once),
        cmocka_unit_test(test_error_truncation),
        cmocka_unit_test(test_comments_and_syntax),
        cmocka_unit_test(test_lookups_many),
        cmocka_unit_test(test_load_free_cycles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
