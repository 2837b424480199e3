/* Secrets kept out of the configuration file: redis.password_file,
 * redis.sentinel_password_file and kafka.property_files name files whose content is the value. A relative name is looked
 * up in $CREDENTIALS_DIRECTORY, where systemd puts what the unit's LoadCredential= lines
 * load (readable by the service alone), so the unit and the world-readable configuration
 * never hold a password. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "config_impl.h"

#define SECRET_MAX_BYTES 4096

/* Reads the secret into *out (owned by the caller): one line, trailing newline dropped. */
static int secret_read(const char *what, const char *name, char **out, char *err,
                       size_t errlen)
{
    char path[4096];
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    if (name[0] == '/') {
        snprintf(path, sizeof path, "%s", name);
    } else if (dir && *dir) {
        snprintf(path, sizeof path, "%s/%s", dir, name);
    } else {
        snprintf(err, errlen,
                 "%s: \"%s\" is relative but CREDENTIALS_DIRECTORY is not set; give an absolute "
                 "path, or run under systemd with LoadCredential=%s:/path/to/file",
                 what, name, name);
        return -1;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s: %s", what, path, strerror(errno));
        return -1;
    }
    char buf[SECRET_MAX_BYTES + 1];
    size_t n = fread(buf, 1, sizeof buf, f);
    int failed = ferror(f);
    fclose(f);
    if (failed || n > SECRET_MAX_BYTES) {
        snprintf(err, errlen, "%s: %s: %s", what, path,
                 failed ? "read failed" : "longer than 4096 bytes");
        return -1;
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    if (n == 0 || strlen(buf) != n) {
        snprintf(err, errlen, "%s: %s: %s", what, path,
                 n ? "contains a NUL byte" : "is empty");
        return -1;
    }
    if (!(*out = strdup(buf))) {
        snprintf(err, errlen, "%s: out of memory", what);
        return -1;
    }
    return 0;
}

int config_read_secrets(config_t *c, char *err, size_t errlen)
{
    if (c->redis_password_file &&
        secret_read("$.redis.password_file", c->redis_password_file, &c->redis_password, err,
                    errlen) != 0)
        return -1;
    if (c->redis_sentinel_password_file &&
        secret_read("$.redis.sentinel_password_file", c->redis_sentinel_password_file,
                    &c->redis_sentinel_password, err, errlen) != 0)
        return -1;
    if (!c->n_kafka_property_files)
        return 0;
    struct config_kv *all =
        realloc(c->kafka_properties,
                (c->n_kafka_properties + c->n_kafka_property_files) * sizeof *all);
    if (!all) {
        snprintf(err, errlen, "$.kafka.property_files: out of memory");
        return -1;
    }
    c->kafka_properties = all;
    for (size_t i = 0; i < c->n_kafka_property_files; i++) {
        const struct config_kv *f = &c->kafka_property_files[i];
        char what[300];
        snprintf(what, sizeof what, "$.kafka.property_files[\"%s\"]", f->key);
        struct config_kv *kv = &c->kafka_properties[c->n_kafka_properties];
        kv->key = strdup(f->key);
        kv->value = NULL;
        if (!kv->key) {
            snprintf(err, errlen, "%s: out of memory", what);
            return -1;
        }
        c->n_kafka_properties++; /* counted once it owns memory: config_free frees */
        if (secret_read(what, f->value, &kv->value, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* librdkafka properties whose value is a secret; ssl.key.location and
 * ssl.keystore.location name a file, which is not. */
static bool property_is_secret(const char *key)
{
    size_t n = strlen(key);
    if (n >= 9 && strcmp(key + n - 9, ".location") == 0)
        return false;
    return strstr(key, "password") || strstr(key, "secret") || strstr(key, "sasl.jaas") ||
           strstr(key, "ssl.key");
}

static bool from_property_file(const config_t *c, const char *key)
{
    for (size_t i = 0; i < c->n_kafka_property_files; i++)
        if (strcmp(c->kafka_property_files[i].key, key) == 0)
            return true;
    return false;
}

int config_check_secret_exposure(const char *path, const config_t *cfg, char *msg, size_t msglen)
{
    char what[320] = "";
    const char *instead = "redis.password_file";
    if (cfg->redis_password && !cfg->redis_password_file) {
        snprintf(what, sizeof what, "redis.password");
    } else if (cfg->redis_sentinel_password && !cfg->redis_sentinel_password_file) {
        snprintf(what, sizeof what, "redis.sentinel_password");
        instead = "redis.sentinel_password_file";
    } else {
        for (size_t i = 0; i < cfg->n_kafka_properties && !what[0]; i++) {
            const char *key = cfg->kafka_properties[i].key;
            if (property_is_secret(key) && !from_property_file(cfg, key)) {
                snprintf(what, sizeof what, "kafka.properties[\"%.256s\"]", key);
                instead = "kafka.property_files";
            }
        }
    }
    struct stat st;
    /* A file that cannot be stat'ed now was read a moment ago: nothing to say. */
    if (!what[0] || stat(path, &st) != 0 || !(st.st_mode & S_IROTH))
        return 0;
    snprintf(msg, msglen,
             "%s is readable by every user and holds %s; move the secret to %s "
             "(LoadCredential=) or chmod o-r %s",
             path, what, instead, path);
    return 1;
}
