/* Secrets kept out of the configuration file: redis.password_file and
 * kafka.property_files name files whose content is the value. A relative name is looked
 * up in $CREDENTIALS_DIRECTORY, where systemd puts what the unit's LoadCredential= lines
 * load (readable by the service alone), so the unit and the world-readable configuration
 * never hold a password. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
