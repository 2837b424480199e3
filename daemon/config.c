#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config_impl.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "period.h"

#define CONFIG_MAX_FILE_BYTES (64u << 20)
#define CONFIG_MAX_STAGES 64 /* a deal's reached stages fit one 64-bit mask */
#define RETENTION_MAX_S 3153600000LL /* 100 years: keeps every ms conversion far from overflow */

/* Open-addressing hash of indexes into a config array; slot 0 = empty, else index + 1. */
struct name_table {
    size_t *slots;
    size_t mask;
};

struct config_index {
    struct name_table teams;
    struct name_table managers;
    const char **stage_names; /* borrowed from cfg->stages */
};

/* ---- errors and paths ---------------------------------------------------------------- */

/* JSON-style quoting, cut at 64 bytes, so a value with quotes or newlines cannot break the
 * one-error-per-line output. */
const char *cfg_quote(const char *s, size_t len, char *buf, size_t cap)
{
    size_t o = 0;
    buf[o++] = '"';
    for (size_t i = 0; i < len && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 64) {
            o += (size_t)snprintf(buf + o, cap - o, "...");
            break;
        }
        if (c == '"' || c == '\\')
            o += (size_t)snprintf(buf + o, cap - o, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(buf + o, cap - o, "\\u%04x", c);
        else
            buf[o++] = (char)c;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

static void errs_add(struct vctx *v, int line, int col, const char *text)
{
    if (v->n_errs == v->errs_cap) {
        size_t cap = v->errs_cap ? v->errs_cap * 2 : 16;
        struct verror *p = realloc(v->errs, cap * sizeof *p);
        if (!p) {
            v->oom = true;
            return;
        }
        v->errs = p;
        v->errs_cap = cap;
    }
    char *copy = strdup(text);
    if (!copy) {
        v->oom = true;
        return;
    }
    struct verror *e = &v->errs[v->n_errs];
    e->line = line;
    e->col = col;
    e->seq = v->n_errs++;
    e->text = copy;
}

static void errs_free(struct vctx *v)
{
    for (size_t i = 0; i < v->n_errs; i++)
        free(v->errs[i].text);
    free(v->errs);
}

static int verror_cmp(const void *pa, const void *pb)
{
    const struct verror *a = pa, *b = pb;
    if (a->line != b->line)
        return a->line < b->line ? -1 : 1;
    if (a->col != b->col)
        return a->col < b->col ? -1 : 1;
    return a->seq < b->seq ? -1 : (a->seq > b->seq);
}

void cfg_err_at(struct vctx *v, int line, int col, const char *fmt, ...)
{
    char msg[768], full[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(full, sizeof full, "%s: %s (line %d, column %d)", v->path, msg, line, col);
    else
        snprintf(full, sizeof full, "%s: %s", v->path, msg);
    errs_add(v, line, col, full);
}

/* Keys made of [A-Za-z0-9_-] read as ".key"; anything else as ["key"], so a manager id
 * with a dot cannot be mistaken for nesting. Returns the length to restore. */
size_t cfg_path_key(struct vctx *v, const char *key, size_t klen)
{
    size_t saved = v->plen;
    bool plain = klen > 0;
    for (size_t i = 0; i < klen && plain; i++) {
        char c = key[i];
        plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '-';
    }
    char q[128];
    int n = plain ? snprintf(v->path + v->plen, CFG_PATH_CAP - v->plen, ".%.*s", (int)klen, key)
                  : snprintf(v->path + v->plen, CFG_PATH_CAP - v->plen, "[%s]",
                             cfg_quote(key, klen, q, sizeof q));
    if (n > 0)
        v->plen = v->plen + (size_t)n < CFG_PATH_CAP ? v->plen + (size_t)n : CFG_PATH_CAP - 1;
    return saved;
}

size_t cfg_path_index(struct vctx *v, size_t i)
{
    size_t saved = v->plen;
    int n = snprintf(v->path + v->plen, CFG_PATH_CAP - v->plen, "[%zu]", i);
    if (n > 0)
        v->plen = v->plen + (size_t)n < CFG_PATH_CAP ? v->plen + (size_t)n : CFG_PATH_CAP - 1;
    return saved;
}

void cfg_path_pop(struct vctx *v, size_t saved)
{
    v->plen = saved;
    v->path[saved] = '\0';
}

/* ---- typed node readers: the path already names the node ------------------------------ */

char *cfg_dup(struct vctx *v, const char *s)
{
    char *c = strdup(s);
    if (!c)
        v->oom = true;
    return c;
}

static void replace(struct vctx *v, char **slot, const char *s)
{
    char *c = s ? cfg_dup(v, s) : NULL;
    if (s && !c)
        return;
    free(*slot);
    *slot = c;
}

/* A non-empty string without NUL bytes; NULL (error reported) otherwise. */
const char *cfg_node_str(struct vctx *v, const json_node_t *n, bool nullable)
{
    size_t len;
    const char *s = json_string(n, &len);
    if (!s || len == 0) {
        ERR(v, n, "must be a non-empty string%s", nullable ? " or null" : "");
        return NULL;
    }
    if (strlen(s) != len) {
        ERR(v, n, "must not contain NUL characters");
        return NULL;
    }
    return s;
}

int cfg_node_int(struct vctx *v, const json_node_t *n, int64_t min, int64_t max,
                 int64_t *out)
{
    int64_t x = 0;
    int rc = json_number_int64(n, &x);
    if (rc == -1) {
        ERR(v, n, "must be an integer");
        return -1;
    }
    if (rc != 0 || x < min || x > max) {
        ERR(v, n, "must be between %lld and %lld", (long long)min, (long long)max);
        return -1;
    }
    *out = x;
    return 0;
}

/* ---- member readers: 1 set, 0 absent, -1 error reported ------------------------------- */

const json_node_t *cfg_enter(struct vctx *v, const json_node_t *obj, const char *key,
                             bool required, size_t *saved)
{
    *saved = cfg_path_key(v, key, strlen(key));
    const json_node_t *n = json_object_get(obj, key);
    if (!n && required)
        ERR(v, obj, "is required");
    return n;
}

int cfg_read_int(struct vctx *v, const json_node_t *obj, const char *key, int64_t min,
                 int64_t max, int64_t *out)
{
    size_t saved;
    const json_node_t *n = cfg_enter(v, obj, key, false, &saved);
    int rc = n ? (cfg_node_int(v, n, min, max, out) == 0 ? 1 : -1) : 0;
    cfg_path_pop(v, saved);
    return rc;
}

static void read_int_field(struct vctx *v, const json_node_t *obj, const char *key, int64_t min,
                           int64_t max, int *out)
{
    int64_t x;
    if (cfg_read_int(v, obj, key, min, max, &x) == 1)
        *out = (int)x; /* every range given here lies within int */
}

/* Replaces *out with the string (or NULL for an allowed null) when present and valid. */
int cfg_read_str(struct vctx *v, const json_node_t *obj, const char *key, bool required,
                 bool nullable, char **out)
{
    size_t saved;
    const json_node_t *n = cfg_enter(v, obj, key, required, &saved);
    int rc = 0;
    if (n && nullable && json_kind(n) == JSON_NULL) {
        replace(v, out, NULL);
        rc = 1;
    } else if (n) {
        const char *s = cfg_node_str(v, n, nullable);
        if (s)
            replace(v, out, s);
        rc = s ? 1 : -1;
    }
    cfg_path_pop(v, saved);
    return rc;
}

/* An object member that must itself be an object; NULL when absent or reported. */
const json_node_t *cfg_read_obj(struct vctx *v, const json_node_t *obj, const char *key,
                                bool required, size_t *saved)
{
    const json_node_t *n = cfg_enter(v, obj, key, required, saved);
    if (n && json_kind(n) != JSON_OBJECT) {
        ERR(v, n, "must be an object");
        return NULL;
    }
    return n;
}

/* Reports duplicate keys, and unknown ones when allowed is not NULL (then the message
 * lists the known keys, which makes the typo obvious). */
void cfg_check_keys(struct vctx *v, const json_node_t *obj, const char *const *allowed)
{
    char known[512] = "";
    size_t klen = 0;
    for (size_t i = 0; allowed && allowed[i]; i++) {
        int n = snprintf(known + klen, sizeof known - klen, "%s%s", i ? ", " : "", allowed[i]);
        if (n > 0 && klen + (size_t)n < sizeof known)
            klen += (size_t)n;
    }
    for (size_t i = 0; i < json_object_len(obj); i++) {
        size_t len;
        const char *key = json_object_key_at(obj, i, &len);
        bool ok = !allowed;
        for (size_t j = 0; !ok && allowed[j]; j++)
            ok = strlen(allowed[j]) == len && strcmp(allowed[j], key) == 0;
        if (ok && !json_object_key_is_dup(obj, i))
            continue;
        int line, col;
        json_object_key_position(obj, i, &line, &col);
        size_t saved = cfg_path_key(v, key, len);
        if (json_object_key_is_dup(obj, i))
            cfg_err_at(v, line, col, "duplicate key");
        else
            cfg_err_at(v, line, col, "unknown key (known keys: %s)", known);
        cfg_path_pop(v, saved);
    }
}

/* The contract's id rules, without a regex engine:
 * CS_ID ^[A-Za-z0-9._@-]{1,64}$, CS_PREFIX ^[A-Za-z0-9_.-]{1,32}$, CS_STAGE ^[a-z0-9_-]{1,32}$ */
bool cfg_charset_ok(enum charset cs, const char *s)
{
    size_t max = cs == CS_ID ? 64 : 32, len = strlen(s);
    if (len == 0 || len > max)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                  (cs != CS_STAGE && ((c >= 'A' && c <= 'Z') || c == '.')) ||
                  (cs == CS_ID && c == '@');
        if (!ok)
            return false;
    }
    return true;
}

const char *cfg_charset_rule(enum charset cs)
{
    return cs == CS_ID ? "^[A-Za-z0-9._@-]{1,64}$"
                       : cs == CS_PREFIX ? "^[A-Za-z0-9_.-]{1,32}$" : "^[a-z0-9_-]{1,32}$";
}

static void check_zone(struct vctx *v, const json_node_t *n, const char *name)
{
    char why[512];
    period_zone_t *z = period_zone_open(name, why, sizeof why);
    if (!z)
        ERR(v, n, "%s", why);
    period_zone_free(z);
}

/* ---- sections ------------------------------------------------------------------------- */

/* A non-empty array of non-empty strings, each passed through fix (may be NULL), which
 * returns an error message or NULL. */
static void read_str_array(struct vctx *v, const json_node_t *obj, const char *key,
                           bool required, bool nonempty, char ***out, size_t *n_out,
                           const char *(*fix)(char *s))
{
    size_t saved;
    const json_node_t *a = cfg_enter(v, obj, key, required, &saved);
    if (a && (json_kind(a) != JSON_ARRAY || (nonempty && json_array_len(a) == 0))) {
        ERR(v, a, "must be a%s array of strings", nonempty ? " non-empty" : "n");
        a = NULL;
    }
    size_t n = json_array_len(a);
    char **items = n ? calloc(n, sizeof *items) : NULL;
    if (n && !items)
        v->oom = true;
    size_t k = 0;
    for (size_t i = 0; items && i < n; i++) {
        size_t s2 = cfg_path_index(v, i);
        const json_node_t *e = json_array_at(a, i);
        const char *s = cfg_node_str(v, e, false);
        char *c = s ? cfg_dup(v, s) : NULL;
        const char *why = c && fix ? fix(c) : NULL;
        if (why) {
            ERR(v, e, "%s", why);
            free(c);
        } else if (c) {
            items[k++] = c;
        }
        cfg_path_pop(v, s2);
    }
    if (a) {
        for (size_t i = 0; i < *n_out; i++)
            free((*out)[i]);
        free(*out);
        *out = items;
        *n_out = k;
    } else {
        free(items);
    }
    cfg_path_pop(v, saved);
}

/* A flat object of string-ish values into key/value pairs. value_of returns the value's
 * text, or NULL after reporting what is wrong with it. */
static void read_kv_map(struct vctx *v, const json_node_t *parent, const char *name,
                        struct config_kv **out, size_t *n_out,
                        const char *(*value_of)(struct vctx *, const json_node_t *, const char *))
{
    size_t s2;
    const json_node_t *p = cfg_read_obj(v, parent, name, false, &s2);
    cfg_check_keys(v, p, NULL);
    size_t n = json_object_len(p);
    *out = n ? calloc(n, sizeof **out) : NULL;
    if (n && !*out)
        v->oom = true;
    for (size_t i = 0; *out && i < n; i++) {
        size_t klen;
        const char *key = json_object_key_at(p, i, &klen);
        const json_node_t *val = json_object_value_at(p, i);
        if (json_object_key_is_dup(p, i))
            continue;
        size_t s3 = cfg_path_key(v, key, klen);
        const char *text = value_of(v, val, key);
        if (text) {
            struct config_kv *kv = &(*out)[*n_out];
            kv->key = cfg_dup(v, key);
            kv->value = cfg_dup(v, text);
            (*n_out)++; /* counted even when half-filled: config_free frees */
        }
        cfg_path_pop(v, s3);
    }
    cfg_path_pop(v, s2);
}

/* kafka.properties: passed to librdkafka as text. */
static const char *property_value(struct vctx *v, const json_node_t *val, const char *key)
{
    (void)key;
    const char *text = json_kind(val) == JSON_STRING ? json_string(val, NULL)
                       : json_kind(val) == JSON_NUMBER ? json_number_literal(val)
                       : json_kind(val) == JSON_BOOL ? (json_bool(val) ? "true" : "false")
                       : NULL;
    if (!text)
        ERR(v, val, "must be a string, number or boolean");
    return text;
}

/* kafka.property_files: {"sasl.password": "kafka-sasl-password"}. The files are read by
 * config_load_file (config_secrets.c); here only the shape is checked. */
static const char *property_file_value(struct vctx *v, const json_node_t *val, const char *key)
{
    const config_t *c = v->cfg;
    const char *file = cfg_node_str(v, val, false);
    for (size_t j = 0; file && j < c->n_kafka_properties; j++)
        if (strcmp(c->kafka_properties[j].key, key) == 0) {
            ERR(v, val, "also set in kafka.properties; keep the secret in the file only");
            return NULL;
        }
    if (file && !*file) {
        ERR(v, val, "must be a file name");
        return NULL;
    }
    return file;
}

static void read_kafka(struct vctx *v, const json_node_t *root)
{
    static const char *const keys[] = {"brokers", "topics", "group", "dlq_topic",
                                       "alerts_topic", "properties", "property_files", NULL};
    config_t *c = v->cfg;
    size_t saved;
    const json_node_t *k = cfg_read_obj(v, root, "kafka", true, &saved);
    if (k) {
        cfg_check_keys(v, k, keys);
        cfg_read_str(v, k, "brokers", true, false, &c->kafka_brokers);
        read_str_array(v, k, "topics", true, true, &c->kafka_topics, &c->n_kafka_topics, NULL);
        cfg_read_str(v, k, "group", false, false, &c->kafka_group);
        cfg_read_str(v, k, "dlq_topic", false, false, &c->kafka_dlq_topic);
        cfg_read_str(v, k, "alerts_topic", false, false, &c->kafka_alerts_topic);

        read_kv_map(v, k, "properties", &c->kafka_properties, &c->n_kafka_properties,
                    property_value);
        read_kv_map(v, k, "property_files", &c->kafka_property_files,
                    &c->n_kafka_property_files, property_file_value);
    }
    cfg_path_pop(v, saved);
}

/* "host:port" with a port in range, or why not. */
static const char *sentinel_address(char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return "must be \"host:port\"";
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 1 || port > 65535)
        return "must be \"host:port\" with a port from 1 to 65535";
    return NULL;
}

/* A secret given inline (key) or as the name of a file holding it (file_key), not both. */
static void read_secret(struct vctx *v, const json_node_t *obj, const char *key,
                        const char *file_key, char **value, char **file)
{
    cfg_read_str(v, obj, key, false, true, value);
    if (cfg_read_str(v, obj, file_key, false, true, file) == 1 && *file && (*value || !**file)) {
        size_t s = cfg_path_key(v, file_key, strlen(file_key));
        ERR(v, json_object_get(obj, file_key),
            *value ? "%s and %s exclude each other" : "must be a file name", key, file_key);
        cfg_path_pop(v, s);
    }
}

/* Sentinels replace host/port: naming both would leave the reader guessing which wins. */
static void read_sentinels(struct vctx *v, const json_node_t *r)
{
    config_t *c = v->cfg;
    read_str_array(v, r, "sentinels", false, true, &c->redis_sentinels, &c->n_redis_sentinels,
                   sentinel_address);
    cfg_read_str(v, r, "master_name", false, false, &c->redis_master_name);
    bool named = json_object_get(r, "master_name") != NULL;
    const json_node_t *list = json_object_get(r, "sentinels");
    if (list && !named) {
        size_t s = cfg_path_key(v, "sentinels", 9);
        ERR(v, list, "needs redis.master_name, the name the sentinels monitor the primary by");
        cfg_path_pop(v, s);
    } else if (named && !list) {
        size_t s = cfg_path_key(v, "master_name", 11);
        ERR(v, json_object_get(r, "master_name"), "needs redis.sentinels");
        cfg_path_pop(v, s);
    }
    read_secret(v, r, "sentinel_password", "sentinel_password_file", &c->redis_sentinel_password,
                &c->redis_sentinel_password_file);
    for (int i = 0; !list && i < 2; i++) {
        const char *key = i ? "sentinel_password_file" : "sentinel_password";
        const json_node_t *node = json_object_get(r, key);
        if (!node || json_kind(node) == JSON_NULL)
            continue;
        size_t s = cfg_path_key(v, key, strlen(key));
        ERR(v, node, "needs redis.sentinels");
        cfg_path_pop(v, s);
    }
    for (int i = 0; list && i < 2; i++) {
        const char *key = i ? "port" : "host";
        const json_node_t *node = json_object_get(r, key);
        if (!node)
            continue;
        size_t s = cfg_path_key(v, key, strlen(key));
        ERR(v, node, "remove it: with redis.sentinels the primary's address comes from the "
                     "sentinels");
        cfg_path_pop(v, s);
    }
}

static void read_redis(struct vctx *v, const json_node_t *root)
{
    static const char *const keys[] = {"host",     "port",      "db",        "user",
                                       "password", "password_file", "prefix", "timeout_ms",
                                       "sentinels", "master_name", "sentinel_password",
                                       "sentinel_password_file", NULL};
    config_t *c = v->cfg;
    size_t saved;
    const json_node_t *r = cfg_read_obj(v, root, "redis", false, &saved);
    if (r) {
        cfg_check_keys(v, r, keys);
        cfg_read_str(v, r, "host", false, false, &c->redis_host);
        read_int_field(v, r, "port", 1, 65535, &c->redis_port);
        read_int_field(v, r, "db", 0, INT_MAX, &c->redis_db);
        cfg_read_str(v, r, "user", false, true, &c->redis_user);
        read_secret(v, r, "password", "password_file", &c->redis_password,
                    &c->redis_password_file);
        if (cfg_read_str(v, r, "prefix", false, false, &c->redis_prefix) == 1 &&
            !cfg_charset_ok(CS_PREFIX, c->redis_prefix)) {
            size_t s2 = cfg_path_key(v, "prefix", 6);
            ERR(v, json_object_get(r, "prefix"), "must match %s", cfg_charset_rule(CS_PREFIX));
            cfg_path_pop(v, s2);
        }
        read_int_field(v, r, "timeout_ms", 100, 600000, &c->redis_timeout_ms);
        read_sentinels(v, r);
    }
    cfg_path_pop(v, saved);
}

/* An optional string-or-null member that must match the charset's rule. */
static void read_checked(struct vctx *v, const json_node_t *obj, const char *key, char **out,
                         enum charset cs)
{
    if (cfg_read_str(v, obj, key, false, true, out) == 1 && *out && !cfg_charset_ok(cs, *out)) {
        size_t s = cfg_path_key(v, key, strlen(key));
        ERR(v, json_object_get(obj, key), "must match %s", cfg_charset_rule(cs));
        cfg_path_pop(v, s);
    }
}

static void read_zone(struct vctx *v, const json_node_t *obj, const char *key, bool nullable,
                      char **out)
{
    if (cfg_read_str(v, obj, key, false, nullable, out) == 1 && *out) {
        size_t s = cfg_path_key(v, key, strlen(key));
        check_zone(v, json_object_get(obj, key), *out);
        cfg_path_pop(v, s);
    }
}

static int table_build(struct name_table *t, size_t n, const char *(*name_of)(const config_t *,
                       size_t), const config_t *cfg);
static const char *team_name_at(const config_t *c, size_t i) { return c->teams[i].name; }
static const char *manager_id_at(const config_t *c, size_t i) { return c->managers[i].id; }

/* Iterates a name -> object map, reporting duplicate keys and non-object values; calls
 * each() for the rest with the path at the entry and the key's position. */
void cfg_read_map(struct vctx *v, const json_node_t *m, const char *const *body_keys,
                  void (*each)(struct vctx *, const char *, const json_node_t *, int, int))
{
    cfg_check_keys(v, m, NULL);
    for (size_t i = 0; i < json_object_len(m); i++) {
        if (json_object_key_is_dup(m, i))
            continue;
        size_t klen;
        const char *name = json_object_key_at(m, i, &klen);
        const json_node_t *body = json_object_value_at(m, i);
        int line, col;
        json_object_key_position(m, i, &line, &col);
        size_t saved = cfg_path_key(v, name, klen);
        if (strlen(name) != klen) {
            cfg_err_at(v, line, col, "must not contain NUL characters");
        } else if (json_kind(body) != JSON_OBJECT) {
            ERR(v, body, "must be an object");
        } else {
            cfg_check_keys(v, body, body_keys);
            each(v, name, body, line, col);
        }
        cfg_path_pop(v, saved);
    }
}

static void team_entry(struct vctx *v, const char *name, const json_node_t *body, int line,
                       int col)
{
    config_t *c = v->cfg;
    struct config_team *t = &c->teams[c->n_teams];
    if (!cfg_charset_ok(CS_ID, name)) {
        cfg_err_at(v, line, col, "team name must match %s", cfg_charset_rule(CS_ID));
        return;
    }
    if (strcmp(name, CONFIG_UNASSIGNED_TEAM) == 0) {
        cfg_err_at(v, line, col, "team name \"" CONFIG_UNASSIGNED_TEAM "\" is reserved for "
               "managers without a team");
        return;
    }
    t->name = cfg_dup(v, name);
    c->n_teams++; /* before the fields, so config_free sees what they allocate */
    read_zone(v, body, "time_zone", true, &t->time_zone);
    read_checked(v, body, "lead", &t->lead, CS_ID);
    cfg_read_team_calendar(v, body, t);
}

static void manager_entry(struct vctx *v, const char *id, const json_node_t *body, int line,
                          int col)
{
    config_t *c = v->cfg;
    struct config_manager *m = &c->managers[c->n_managers];
    if (!cfg_charset_ok(CS_ID, id)) {
        cfg_err_at(v, line, col, "manager id must match %s", cfg_charset_rule(CS_ID));
        return;
    }
    m->id = cfg_dup(v, id);
    m->team = cfg_dup(v, CONFIG_UNASSIGNED_TEAM);
    m->role = cfg_dup(v, CONFIG_DEFAULT_ROLE);
    c->n_managers++;
    if (cfg_read_str(v, body, "team", false, false, &m->team) == 1 && m->team &&
        strcmp(m->team, CONFIG_UNASSIGNED_TEAM) != 0 && !config_team_find(c, m->team)) {
        char q[160];
        size_t s = cfg_path_key(v, "team", 4);
        ERR(v, json_object_get(body, "team"), "unknown team %s",
            cfg_quote(m->team, strlen(m->team), q, sizeof q));
        cfg_path_pop(v, s);
    }
    cfg_read_str(v, body, "role", false, false, &m->role);
}

static void read_teams_and_managers(struct vctx *v, const json_node_t *root)
{
    static const char *const team_keys[] = {"time_zone", "lead", "calendar", NULL};
    static const char *const manager_keys[] = {"team", "role", NULL};
    config_t *c = v->cfg;
    size_t saved;
    const json_node_t *t = cfg_read_obj(v, root, "teams", false, &saved);
    size_t n = json_object_len(t);
    c->teams = n ? calloc(n, sizeof *c->teams) : NULL;
    if (n && !c->teams)
        v->oom = true;
    else if (t)
        cfg_read_map(v, t, team_keys, team_entry);
    cfg_path_pop(v, saved);
    /* Managers name their team: the team index must exist before they are read. */
    if (table_build(&c->index->teams, c->n_teams, team_name_at, c) != 0)
        v->oom = true;

    const json_node_t *m = cfg_read_obj(v, root, "managers", false, &saved);
    n = json_object_len(m);
    c->managers = n ? calloc(n, sizeof *c->managers) : NULL;
    if (n && !c->managers)
        v->oom = true;
    else if (m)
        cfg_read_map(v, m, manager_keys, manager_entry);
    cfg_path_pop(v, saved);
}

static const char *fix_domain(char *s)
{
    /* Matching compares the part after the last '@', so an '@' anywhere never matches. */
    if (s[0] == '.' || strchr(s, '@'))
        return "must be a bare domain name (no '@', no leading '.')";
    for (char *p = s; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return NULL;
}

static const char *check_prefix(char *s)
{
    /* Phone numbers lose these before matching, so a prefix holding one never matches. */
    return strpbrk(s, " -()") ? "must not contain spaces, '-', '(' or ')' (they are removed "
                                "from phone numbers before matching)"
                              : NULL;
}

static void read_internal(struct vctx *v, const json_node_t *root)
{
    static const char *const keys[] = {"domains", "phone_prefixes", NULL};
    config_t *c = v->cfg;
    size_t saved;
    const json_node_t *in = cfg_read_obj(v, root, "internal", false, &saved);
    if (in) {
        cfg_check_keys(v, in, keys);
        read_str_array(v, in, "domains", false, false, &c->internal_domains,
                       &c->n_internal_domains, fix_domain);
        read_str_array(v, in, "phone_prefixes", false, false, &c->internal_phone_prefixes,
                       &c->n_internal_phone_prefixes, check_prefix);
    }
    cfg_path_pop(v, saved);
}

static int stage_find(const config_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_stages; i++)
        if (strcmp(c->stages[i].name, name) == 0)
            return (int)i;
    return -1;
}

static void stage_entry(struct vctx *v, const json_node_t *e, const json_node_t **where)
{
    static const char *const keys[] = {"name", "p", "terminal", NULL};
    config_t *c = v->cfg;
    if (json_kind(e) != JSON_OBJECT) {
        ERR(v, e, "must be an object");
        return;
    }
    cfg_check_keys(v, e, keys);
    struct config_stage st = {0};
    size_t s;
    const json_node_t *n = cfg_enter(v, e, "name", true, &s);
    const char *name = n ? cfg_node_str(v, n, false) : NULL;
    char q[160];
    if (name && !cfg_charset_ok(CS_STAGE, name)) {
        ERR(v, n, "must match %s", cfg_charset_rule(CS_STAGE));
        name = NULL;
    } else if (name && stage_find(c, name) >= 0) {
        ERR(v, n, "duplicate stage %s", cfg_quote(name, strlen(name), q, sizeof q));
        name = NULL;
    }
    cfg_path_pop(v, s);

    n = cfg_enter(v, e, "p", true, &s);
    if (n && (json_number_double(n, &st.p) != 0 || !(st.p >= 0 && st.p <= 1)))
        ERR(v, n, "must be a number between 0 and 1");
    cfg_path_pop(v, s);

    n = cfg_enter(v, e, "terminal", false, &s);
    if (n && json_kind(n) != JSON_BOOL)
        ERR(v, n, "must be a boolean");
    st.terminal = json_bool(n);
    cfg_path_pop(v, s);

    /* Kept despite field errors, so one bad "p" does not also claim "won" is missing. */
    if (name) {
        st.name = cfg_dup(v, name);
        where[c->n_stages] = e;
        c->stages[c->n_stages++] = st;
    }
}

static void read_stages(struct vctx *v, const json_node_t *root)
{
    config_t *c = v->cfg;
    size_t saved;
    const json_node_t *a = cfg_enter(v, root, "stages", false, &saved);
    size_t n = json_array_len(a);
    if (a && (json_kind(a) != JSON_ARRAY || n == 0 || n > CONFIG_MAX_STAGES)) {
        ERR(v, a, "must be an array of 1 to %d stages", CONFIG_MAX_STAGES);
    } else if (a) {
        for (size_t i = 0; i < c->n_stages; i++)
            free(c->stages[i].name);
        free(c->stages);
        c->n_stages = 0;
        c->stages = calloc(n, sizeof *c->stages);
        const json_node_t *where[CONFIG_MAX_STAGES];
        if (!c->stages)
            v->oom = true;
        for (size_t i = 0; c->stages && i < n; i++) {
            size_t s = cfg_path_index(v, i);
            stage_entry(v, json_array_at(a, i), where);
            cfg_path_pop(v, s);
        }
        /* A stage lost to a bad name could be the missing one: judge the list only
         * when every stage made it in. */
        bool complete = c->n_stages == n, open = false;
        for (size_t i = 0; i < c->n_stages; i++)
            open |= !c->stages[i].terminal;
        if (!open && complete)
            ERR(v, a, "at least one stage must be non-terminal (open deals sit in them)");
        /* The funnel counters deals_won/deals_lost are entries into these two. */
        static const char *const required[] = {"won", "lost"};
        for (size_t r = 0; r < 2; r++) {
            int i = stage_find(c, required[r]);
            if (i < 0 && complete) {
                ERR(v, a, "a terminal stage named \"%s\" is required (deals_%s counts entries "
                    "into it)", required[r], required[r]);
            } else if (i >= 0 && !c->stages[i].terminal) {
                size_t s = cfg_path_index(v, (size_t)i);
                cfg_path_key(v, "terminal", 8);
                const json_node_t *t = json_object_get(where[i], "terminal");
                ERR(v, t ? t : where[i], "stage \"%s\" must be terminal", required[r]);
                cfg_path_pop(v, s);
            }
        }
    }
    cfg_path_pop(v, saved);
}

static void read_scalars(struct vctx *v, const json_node_t *root)
{
    config_t *c = v->cfg;
    static const char *const batch_keys[] = {"max_events", "max_ms", NULL};
    static const char *const retention_keys[] = {"day_s", "week_s", NULL};
    int64_t x;
    size_t saved;

    read_zone(v, root, "time_zone", false, &c->time_zone);
    read_int_field(v, root, "touch_min_call_s", 0, 86400, &c->touch_min_call_s);
    cfg_read_int(v, root, "dedup_window_s", 60, 31536000, &c->dedup_window_s);
    cfg_read_int(v, root, "future_skew_s", 0, 31536000, &c->future_skew_s);

    const json_node_t *b = cfg_read_obj(v, root, "batch", false, &saved);
    cfg_check_keys(v, b, batch_keys);
    read_int_field(v, b, "max_events", 1, 1000000, &c->batch_max_events);
    read_int_field(v, b, "max_ms", 1, 60000, &c->batch_max_ms);
    cfg_path_pop(v, saved);

    if (cfg_read_int(v, root, "max_message_bytes", 1024, 67108864, &x) == 1)
        c->max_message_bytes = (size_t)x;

    const json_node_t *r = cfg_read_obj(v, root, "retention", false, &saved);
    cfg_check_keys(v, r, retention_keys);
    cfg_read_int(v, r, "day_s", 86400, RETENTION_MAX_S, &c->retention_day_s);
    cfg_read_int(v, r, "week_s", 86400, RETENTION_MAX_S, &c->retention_week_s);
    cfg_path_pop(v, saved);

    enum log_level level;
    if (cfg_read_str(v, root, "log_level", false, false, &c->log_level) == 1 &&
        log_level_parse(c->log_level, &level) != 0) {
        saved = cfg_path_key(v, "log_level", 9);
        ERR(v, json_object_get(root, "log_level"),
            "must be one of \"error\", \"warn\", \"info\", \"debug\"");
        cfg_path_pop(v, saved);
    }
}

/* "metrics": null or absent: no endpoint; an object: listen defaults to loopback. */
static void read_metrics(struct vctx *v, const json_node_t *root)
{
    static const char *const keys[] = {"listen", NULL};
    config_t *c = v->cfg;
    size_t saved;
    const json_node_t *m = json_object_get(root, "metrics");
    if (!m || json_kind(m) == JSON_NULL)
        return;
    m = cfg_read_obj(v, root, "metrics", false, &saved);
    if (m) {
        cfg_check_keys(v, m, keys);
        c->metrics_listen = cfg_dup(v, "127.0.0.1:9464");
        if (cfg_read_str(v, m, "listen", false, true, &c->metrics_listen) == 1 &&
            c->metrics_listen) {
            char host[64], why[256];
            int port;
            if (metrics_parse_listen(c->metrics_listen, host, sizeof host, &port, why,
                                     sizeof why) != 0) {
                size_t s2 = cfg_path_key(v, "listen", 6);
                ERR(v, json_object_get(m, "listen"), "%s", why);
                cfg_path_pop(v, s2);
            }
        }
    }
    cfg_path_pop(v, saved);
}

/* ---- defaults, index, load, free ------------------------------------------------------ */

static void set_defaults(struct vctx *v)
{
    static const struct { const char *name; double p; bool terminal; } stages[] = {
        {"lead", 0.05, false}, {"mql", 0.1, false}, {"sql", 0.2, false},
        {"proposal", 0.4, false}, {"negotiation", 0.6, false}, {"won", 1, true},
        {"lost", 0, true}};
    config_t *c = v->cfg;
    c->kafka_group = cfg_dup(v, "kpid");
    c->kafka_dlq_topic = cfg_dup(v, "kpi.events.dlq");
    c->kafka_alerts_topic = cfg_dup(v, "kpi.alerts");
    c->redis_host = cfg_dup(v, "127.0.0.1");
    c->redis_port = 6379;
    c->redis_prefix = cfg_dup(v, "kpi");
    c->redis_timeout_ms = 5000;
    c->time_zone = cfg_dup(v, "UTC");
    c->touch_min_call_s = 10;
    c->dedup_window_s = 604800;
    c->future_skew_s = 86400;
    c->batch_max_events = 20000;
    c->batch_max_ms = 100;
    c->max_message_bytes = 1048576;
    c->retention_day_s = 120 * 86400;
    c->retention_week_s = 730 * 86400;
    c->log_level = cfg_dup(v, "info");
    cfg_goals_defaults(c);
    size_t n = sizeof stages / sizeof stages[0];
    c->stages = calloc(n, sizeof *c->stages);
    if (!c->stages) {
        v->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        c->stages[i] = (struct config_stage){cfg_dup(v, stages[i].name), stages[i].p,
                                             stages[i].terminal};
        c->n_stages++;
    }
}

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int table_build(struct name_table *t, size_t n,
                       const char *(*name_of)(const config_t *, size_t), const config_t *cfg)
{
    size_t cap = 8;
    while (cap < 2 * n) /* load factor <= 1/2 keeps linear probes short */
        cap *= 2;
    free(t->slots);
    t->slots = calloc(cap, sizeof *t->slots);
    if (!t->slots)
        return -1;
    t->mask = cap - 1;
    for (size_t i = 0; i < n; i++) {
        const char *name = name_of(cfg, i);
        if (!name) /* out of memory earlier; the load fails anyway */
            continue;
        size_t s = (size_t)hash_name(name) & t->mask;
        while (t->slots[s])
            s = (s + 1) & t->mask;
        t->slots[s] = i + 1;
    }
    return 0;
}

static size_t table_find(const struct name_table *t, const char *name,
                         const char *(*name_of)(const config_t *, size_t), const config_t *cfg)
{
    if (!t->slots || !name)
        return 0;
    for (size_t s = (size_t)hash_name(name) & t->mask; t->slots[s]; s = (s + 1) & t->mask) {
        const char *cand = name_of(cfg, t->slots[s] - 1);
        if (cand && strcmp(cand, name) == 0)
            return t->slots[s];
    }
    return 0;
}

const struct config_team *config_team_find(const config_t *cfg, const char *name)
{
    size_t i = cfg && cfg->index ? table_find(&cfg->index->teams, name, team_name_at, cfg) : 0;
    return i ? &cfg->teams[i - 1] : NULL;
}

const struct config_manager *config_manager_find(const config_t *cfg, const char *id)
{
    size_t i = cfg && cfg->index ? table_find(&cfg->index->managers, id, manager_id_at, cfg)
                                 : 0;
    return i ? &cfg->managers[i - 1] : NULL;
}

int config_stage_find(const config_t *cfg, const char *name)
{
    return cfg && name ? stage_find(cfg, name) : -1;
}

const char *const *config_stage_names(const config_t *cfg)
{
    return cfg && cfg->index ? cfg->index->stage_names : NULL;
}

event_rules_t config_event_rules(const config_t *cfg)
{
    return (event_rules_t){
        .stages = config_stage_names(cfg),
        .n_stages = cfg->n_stages,
        .internal_domains = (const char *const *)cfg->internal_domains,
        .n_internal_domains = cfg->n_internal_domains,
        .phone_prefixes = (const char *const *)cfg->internal_phone_prefixes,
        .n_phone_prefixes = cfg->n_internal_phone_prefixes,
        .future_skew_ms = cfg->future_skew_s * 1000,
        .max_message_bytes = cfg->max_message_bytes,
    };
}

bool config_same_sentinels(const config_t *a, const config_t *b)
{
    if (a->n_redis_sentinels != b->n_redis_sentinels ||
        (a->redis_master_name == NULL) != (b->redis_master_name == NULL) ||
        (a->redis_master_name && strcmp(a->redis_master_name, b->redis_master_name) != 0))
        return false;
    for (size_t i = 0; i < a->n_redis_sentinels; i++)
        if (strcmp(a->redis_sentinels[i], b->redis_sentinels[i]) != 0)
            return false;
    return true;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void config_free(config_t *c)
{
    if (!c)
        return;
    free(c->kafka_brokers);
    free_strings(c->kafka_topics, c->n_kafka_topics);
    free(c->kafka_group);
    free(c->kafka_dlq_topic);
    free(c->kafka_alerts_topic);
    for (size_t i = 0; i < c->n_kafka_properties; i++) {
        free(c->kafka_properties[i].key);
        free(c->kafka_properties[i].value);
    }
    free(c->kafka_properties);
    for (size_t i = 0; i < c->n_kafka_property_files; i++) {
        free(c->kafka_property_files[i].key);
        free(c->kafka_property_files[i].value);
    }
    free(c->kafka_property_files);
    free(c->redis_password_file);
    free_strings(c->redis_sentinels, c->n_redis_sentinels);
    free(c->redis_master_name);
    free(c->redis_sentinel_password);
    free(c->redis_sentinel_password_file);
    free(c->kafka_group_id);
    free(c->redis_host);
    free(c->redis_user);
    free(c->redis_password);
    free(c->redis_prefix);
    free(c->time_zone);
    for (size_t i = 0; i < c->n_teams; i++) {
        free(c->teams[i].name);
        free(c->teams[i].time_zone);
        free(c->teams[i].lead);
        cfg_calendar_free(&c->teams[i].calendar);
    }
    free(c->teams);
    for (size_t i = 0; i < c->n_managers; i++) {
        free(c->managers[i].id);
        free(c->managers[i].team);
        free(c->managers[i].role);
    }
    free(c->managers);
    free_strings(c->internal_domains, c->n_internal_domains);
    free_strings(c->internal_phone_prefixes, c->n_internal_phone_prefixes);
    for (size_t i = 0; i < c->n_stages; i++)
        free(c->stages[i].name);
    free(c->stages);
    free(c->log_level);
    free(c->metrics_listen);
    cfg_goals_free(c);
    if (c->index) {
        free(c->index->teams.slots);
        free(c->index->managers.slots);
        free(c->index->stage_names);
        free(c->index);
    }
    free(c);
}

/* Errors in document order (a reader fixes the file top to bottom); whole lines while
 * they fit, then how many were left out. */
static void copy_errors(struct vctx *v, char *err, size_t errlen)
{
    if (!err || errlen == 0)
        return;
    err[0] = '\0';
    if (v->n_errs == 0) { /* only when even recording an error ran out of memory */
        snprintf(err, errlen, "$: out of memory");
        return;
    }
    qsort(v->errs, v->n_errs, sizeof *v->errs, verror_cmp);
    size_t used = 0, shown = 0;
    for (; shown < v->n_errs; shown++) {
        const char *line = v->errs[shown].text;
        size_t len = strlen(line) + (used ? 1 : 0);
        size_t reserve = shown + 1 < v->n_errs ? 32 : 0; /* room for the "more" line */
        if (len + reserve > errlen - used - 1) {
            if (used == 0) { /* even the first line is too long: cut it */
                snprintf(err, errlen, "%s", line);
                shown = 1;
            }
            break;
        }
        used += (size_t)snprintf(err + used, errlen - used, "%s%s", used ? "\n" : "", line);
    }
    if (shown < v->n_errs && used + 32 < errlen)
        snprintf(err + used, errlen - used, "\n... and %zu more errors", v->n_errs - shown);
}

int config_load_string(const char *text, size_t len, config_t **out, char *err, size_t errlen)
{
    char jerr[300];
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    json_node_t *root = json_parse(text, len, true, jerr, sizeof jerr);
    if (!root) {
        if (err && errlen)
            snprintf(err, errlen, "$: invalid JSON at %s", jerr);
        return -1;
    }
    static const char *const root_keys[] = {
        "kafka", "redis", "time_zone", "teams", "managers", "internal", "touch_min_call_s",
        "dedup_window_s", "future_skew_s", "stages", "batch", "max_message_bytes",
        "retention", "log_level", "calendar", "targets", "plans", "kpi_score", "alerts",
        "metrics", NULL};
    struct vctx v = {.path = "$", .plen = 1};
    v.cfg = calloc(1, sizeof *v.cfg);
    if (v.cfg)
        v.cfg->index = calloc(1, sizeof *v.cfg->index);
    if (!v.cfg || !v.cfg->index) {
        v.oom = true;
    } else if (json_kind(root) != JSON_OBJECT) {
        ERR(&v, root, "must be an object");
    } else {
        set_defaults(&v);
        cfg_check_keys(&v, root, root_keys);
        read_kafka(&v, root);
        read_redis(&v, root);
        cfg_read_calendar(&v, root);
        read_teams_and_managers(&v, root);
        read_internal(&v, root);
        size_t before = v.n_errs;
        read_stages(&v, root);
        v.stages_bad = v.n_errs > before;
        read_scalars(&v, root);
        read_metrics(&v, root);
        cfg_read_goals(&v, root);
    }
    json_free(root);
    config_t *c = v.cfg;
    if (!v.oom && v.n_errs == 0) {
        if (table_build(&c->index->managers, c->n_managers, manager_id_at, c) != 0)
            v.oom = true;
        c->index->stage_names = calloc(c->n_stages, sizeof *c->index->stage_names);
        if (!c->index->stage_names)
            v.oom = true;
        for (size_t i = 0; !v.oom && i < c->n_stages; i++)
            c->index->stage_names[i] = c->stages[i].name;
    }
    if (v.oom || v.n_errs) {
        if (v.oom)
            errs_add(&v, 0, 0, "$: out of memory");
        copy_errors(&v, err, errlen);
        errs_free(&v);
        config_free(c);
        return -1;
    }
    errs_free(&v);
    *out = c;
    return 0;
}

int config_load_file(const char *path, config_t **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > CONFIG_MAX_FILE_BYTES) {
        snprintf(err, errlen, "%s: not a regular file of at most %u bytes", path,
                 CONFIG_MAX_FILE_BYTES);
        fclose(f);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size ? size : 1);
    size_t got = buf ? fread(buf, 1, size, f) : 0;
    int read_failed = !buf || got != size || ferror(f);
    fclose(f);
    if (read_failed) {
        snprintf(err, errlen, "%s: %s", path, buf ? "read failed" : "out of memory");
        free(buf);
        return -1;
    }
    int rc = config_load_string(buf, size, out, err, errlen);
    free(buf);
    if (rc == 0 && config_read_secrets(*out, err, errlen) != 0) {
        config_free(*out);
        *out = NULL;
        return -1;
    }
    return rc;
}
