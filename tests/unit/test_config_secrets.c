/* Secrets read from files (redis.password_file, redis.sentinel_password_file,
 * kafka.property_files), as systemd's
 * LoadCredential= provides them in $CREDENTIALS_DIRECTORY. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static char dir[] = "/tmp/kpi-secrets-XXXXXX";
static char errbuf[4096];

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int load(const char *redis, const char *kafka_extra, config_t **cfg)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"kafka\": {\"brokers\": \"b:9092\", \"topics\": [\"t\"]%s}, \"redis\": {%s}}",
             kafka_extra, redis);
    write_file("kpid.json", text);
    char path[512];
    snprintf(path, sizeof path, "%s/kpid.json", dir);
    errbuf[0] = '\0';
    return config_load_file(path, cfg, errbuf, sizeof errbuf);
}

static const char *property(const config_t *c, const char *key)
{
    for (size_t i = 0; i < c->n_kafka_properties; i++)
        if (!strcmp(c->kafka_properties[i].key, key))
            return c->kafka_properties[i].value;
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    setenv("CREDENTIALS_DIRECTORY", dir, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_relative_names_come_from_the_credentials_directory(void **state)
{
    (void)state;
    write_file("redis-password", "s3cret\n");
    write_file("sasl", "kafka-pw\r\n");
    config_t *c = NULL;
    assert_int_equal(load("\"password_file\": \"redis-password\"",
                          ", \"properties\": {\"sasl.username\": \"kpid\"},"
                          " \"property_files\": {\"sasl.password\": \"sasl\"}",
                          &c),
                     0);
    assert_string_equal(c->redis_password, "s3cret");
    assert_string_equal(property(c, "sasl.password"), "kafka-pw");
    assert_string_equal(property(c, "sasl.username"), "kpid");
    assert_int_equal(c->n_kafka_properties, 2);
    config_free(c);
}

static void test_absolute_path_and_no_credentials_directory(void **state)
{
    (void)state;
    char abs[600];
    write_file("pw", "abs-pw");
    snprintf(abs, sizeof abs, "\"password_file\": \"%s/pw\"", dir);
    unsetenv("CREDENTIALS_DIRECTORY");
    config_t *c = NULL;
    assert_int_equal(load(abs, "", &c), 0);
    assert_string_equal(c->redis_password, "abs-pw");
    config_free(c);
    /* A relative name without systemd's directory says what to do. */
    assert_int_equal(load("\"password_file\": \"pw\"", "", &c), -1);
    assert_null(c);
    assert_non_null(strstr(errbuf, "$.redis.password_file: \"pw\" is relative but "
                                   "CREDENTIALS_DIRECTORY is not set"));
    assert_non_null(strstr(errbuf, "LoadCredential=pw:"));
    setenv("CREDENTIALS_DIRECTORY", dir, 1);
}

static void test_errors_name_the_key_and_the_file(void **state)
{
    (void)state;
    config_t *c = NULL;
    assert_int_equal(load("\"password_file\": \"missing\"", "", &c), -1);
    assert_non_null(strstr(errbuf, "$.redis.password_file: "));
    assert_non_null(strstr(errbuf, "/missing: No such file or directory"));
    write_file("empty", "\n");
    assert_int_equal(load("", ", \"property_files\": {\"sasl.password\": \"empty\"}", &c), -1);
    assert_non_null(strstr(errbuf, "$.kafka.property_files[\"sasl.password\"]: "));
    assert_non_null(strstr(errbuf, "/empty: is empty"));
    /* Inline and file at once: refused at parse time, with the path. */
    assert_int_equal(load("\"password\": \"x\", \"password_file\": \"pw\"", "", &c), -1);
    assert_non_null(strstr(errbuf, "$.redis.password_file: password and password_file exclude "
                                   "each other"));
    assert_int_equal(load("", ", \"properties\": {\"sasl.password\": \"x\"},"
                              " \"property_files\": {\"sasl.password\": \"pw\"}", &c), -1);
    assert_non_null(strstr(errbuf, "also set in kafka.properties"));
    assert_null(c);
}

#define SENTINELS "\"sentinels\": [\"10.0.0.1:26379\"], \"master_name\": \"kpi\", "

static void test_sentinel_password_inline_or_from_a_file(void **state)
{
    (void)state;
    write_file("sentinel-password", "sentinel-pw\n");
    config_t *c = NULL;
    assert_int_equal(load(SENTINELS "\"sentinel_password_file\": \"sentinel-password\"", "", &c), 0);
    assert_string_equal(c->redis_sentinel_password, "sentinel-pw");
    assert_null(c->redis_password);
    config_free(c);
    assert_int_equal(load(SENTINELS "\"sentinel_password\": \"inline\"", "", &c), 0);
    assert_string_equal(c->redis_sentinel_password, "inline");
    config_free(c);

    assert_int_equal(load(SENTINELS "\"sentinel_password\": \"x\", \"sentinel_password_file\": \"y\"",
                          "", &c), -1);
    assert_non_null(strstr(errbuf, "$.redis.sentinel_password_file: sentinel_password and "
                                   "sentinel_password_file exclude each other"));
    assert_int_equal(load(SENTINELS "\"sentinel_password_file\": \"missing\"", "", &c), -1);
    assert_non_null(strstr(errbuf, "$.redis.sentinel_password_file: "));
    /* Without sentinels there is nobody to send it to: a mistake worth saying. */
    assert_int_equal(load("\"sentinel_password\": \"x\"", "", &c), -1);
    assert_non_null(strstr(errbuf, "$.redis.sentinel_password: needs redis.sentinels"));
    assert_int_equal(load("\"sentinel_password_file\": \"sentinel-password\"", "", &c), -1);
    assert_non_null(strstr(errbuf, "$.redis.sentinel_password_file: needs redis.sentinels"));
    assert_null(c);
}

static int exposure(const config_t *c, mode_t mode)
{
    char path[512];
    snprintf(path, sizeof path, "%s/kpid.json", dir);
    assert_int_equal(chmod(path, mode), 0);
    errbuf[0] = '\0';
    return config_check_secret_exposure(path, c, errbuf, sizeof errbuf);
}

static void test_world_readable_file_with_an_inline_secret_is_reported(void **state)
{
    (void)state;
    config_t *c = NULL;
    assert_int_equal(load("\"password\": \"inline\"", "", &c), 0);
    assert_int_equal(exposure(c, 0644), 1);
    assert_non_null(strstr(errbuf, "/kpid.json is readable by every user and holds "
                                   "redis.password; move the secret to redis.password_file "
                                   "(LoadCredential=) or chmod o-r "));
    assert_int_equal(exposure(c, 0640), 0);
    assert_string_equal(errbuf, "");
    config_free(c);

    assert_int_equal(load("", ", \"properties\": {\"sasl.username\": \"kpid\","
                              " \"sasl.password\": \"x\"}", &c), 0);
    assert_int_equal(exposure(c, 0604), 1);
    assert_non_null(strstr(errbuf, "holds kafka.properties[\"sasl.password\"]; move the "
                                   "secret to kafka.property_files"));
    config_free(c);
    const char *secret_keys[] = {"sasl.oauthbearer.client.secret", "sasl.jaas.config",
                                 "ssl.key.pem", "ssl.keystore.password"};
    for (size_t i = 0; i < sizeof secret_keys / sizeof *secret_keys; i++) {
        char extra[200];
        snprintf(extra, sizeof extra, ", \"properties\": {\"%s\": \"x\"}", secret_keys[i]);
        assert_int_equal(load("", extra, &c), 0);
        assert_int_equal(exposure(c, 0644), 1);
        assert_non_null(strstr(errbuf, secret_keys[i]));
        config_free(c);
    }
    assert_int_equal(load(SENTINELS "\"sentinel_password\": \"inline\"", "", &c), 0);
    assert_int_equal(exposure(c, 0644), 1);
    assert_non_null(strstr(errbuf, "holds redis.sentinel_password; move the secret to "
                                   "redis.sentinel_password_file (LoadCredential=)"));
    config_free(c);
}

static void test_secrets_from_files_and_plain_settings_are_not_reported(void **state)
{
    (void)state;
    write_file("redis-password", "s3cret\n");
    write_file("sasl", "kafka-pw\n");
    config_t *c = NULL;
    /* The values are in c (read from the files), but the world-readable file holds none. */
    assert_int_equal(load("\"user\": \"kpid\", \"password_file\": \"redis-password\"",
                          ", \"properties\": {\"security.protocol\": \"SASL_SSL\","
                          " \"ssl.key.location\": \"/etc/kpid/client.key\","
                          " \"ssl.ca.location\": \"/etc/ssl/ca.pem\"},"
                          " \"property_files\": {\"sasl.password\": \"sasl\"}",
                          &c),
                     0);
    assert_string_equal(c->redis_password, "s3cret");
    assert_int_equal(exposure(c, 0644), 0);
    assert_string_equal(errbuf, "");
    config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relative_names_come_from_the_credentials_directory),
        cmocka_unit_test(test_absolute_path_and_no_credentials_directory),
        cmocka_unit_test(test_errors_name_the_key_and_the_file),
        cmocka_unit_test(test_sentinel_password_inline_or_from_a_file),
        cmocka_unit_test(test_world_readable_file_with_an_inline_secret_is_reported),
        cmocka_unit_test(test_secrets_from_files_and_plain_settings_are_not_reported),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
