#include "rconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rconn_target_view(const config_t *cfg, struct rconn_target *out)
{
    *out = (struct rconn_target){
        .host = cfg->redis_host,
        .port = cfg->redis_port,
        .db = cfg->redis_db,
        .user = cfg->redis_user,
        .password = cfg->redis_password,
        .timeout_ms = cfg->redis_timeout_ms,
        .sentinels = cfg->redis_sentinels,
        .n_sentinels = cfg->n_redis_sentinels,
        .master_name = cfg->redis_master_name,
        .sentinel_password = cfg->redis_sentinel_password,
    };
}

static int dup_into(char **dst, const char *src)
{
    *dst = src ? strdup(src) : NULL;
    return src && !*dst ? -1 : 0;
}

int rconn_target_copy(const struct rconn_target *src, struct rconn_target *out)
{
    *out = (struct rconn_target){.port = src->port, .db = src->db,
                                 .timeout_ms = src->timeout_ms};
    int bad = dup_into(&out->host, src->host) | dup_into(&out->user, src->user) |
              dup_into(&out->password, src->password) |
              dup_into(&out->master_name, src->master_name) |
              dup_into(&out->sentinel_password, src->sentinel_password);
    if (src->n_sentinels) {
        out->sentinels = calloc(src->n_sentinels, sizeof *out->sentinels);
        bad |= !out->sentinels;
        for (size_t i = 0; out->sentinels && i < src->n_sentinels; i++, out->n_sentinels++)
            bad |= dup_into(&out->sentinels[i], src->sentinels[i]);
    }
    if (bad) {
        rconn_target_free(out);
        return -1;
    }
    return 0;
}

void rconn_target_free(struct rconn_target *t)
{
    free(t->host);
    free(t->user);
    free(t->password);
    free(t->master_name);
    free(t->sentinel_password);
    for (size_t i = 0; i < t->n_sentinels; i++)
        free(t->sentinels[i]);
    free(t->sentinels);
    *t = (struct rconn_target){0};
}

void rconn_target_address(const struct rconn_target *t, char *buf, size_t size)
{
    if (!t->n_sentinels) {
        snprintf(buf, size, "%s:%d", t->host, t->port);
        return;
    }
    int n = snprintf(buf, size, "primary '%s' via sentinels ", t->master_name);
    for (size_t i = 0; i < t->n_sentinels && n >= 0 && (size_t)n < size; i++)
        n += snprintf(buf + n, size - (size_t)n, "%s%s", i ? "," : "", t->sentinels[i]);
}

void rconn_address(const config_t *cfg, char *buf, size_t size)
{
    struct rconn_target t;
    rconn_target_view(cfg, &t);
    rconn_target_address(&t, buf, size);
}

bool rconn_is_readonly_error(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "READONLY", 8) == 0;
}

static int simple(redisContext *c, const char *addr, int argc, const char **argv, char *err,
                  size_t errlen)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (!r) {
        snprintf(err, errlen, "redis %s: %s", addr, c->errstr);
        return -1;
    }
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "redis %s: %s: %s", addr, argv[0], r->str);
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

static redisContext *open_socket(const char *host, int port, int timeout_ms, const char *addr,
                                 char *err, size_t errlen)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (!c || c->err) {
        snprintf(err, errlen, "redis %s: %s", addr, c ? c->errstr : "cannot allocate a context");
        redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK || redisEnableKeepAlive(c) != REDIS_OK) {
        snprintf(err, errlen, "redis %s: cannot set socket options", addr);
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Asks one sentinel for the primary's address. 0 and host/port filled, or -1 with why. */
static int ask_sentinel(const struct rconn_target *t, const char *sentinel, char *host,
                        size_t hostlen, int *port, char *err, size_t errlen)
{
    char shost[256];
    const char *colon = strrchr(sentinel, ':');
    size_t len = colon ? (size_t)(colon - sentinel) : 0;
    if (!colon || len >= sizeof shost) {
        snprintf(err, errlen, "sentinel %s: not host:port", sentinel);
        return -1;
    }
    memcpy(shost, sentinel, len);
    shost[len] = '\0';
    char saddr[300];
    snprintf(saddr, sizeof saddr, "sentinel %s", sentinel);
    redisContext *c = open_socket(shost, atoi(colon + 1), t->timeout_ms, saddr, err, errlen);
    if (!c)
        return -1;
    const char *auth[] = {"AUTH", t->sentinel_password};
    if (t->sentinel_password && simple(c, saddr, 2, auth, err, errlen) != 0) {
        redisFree(c);
        return -1;
    }
    redisReply *r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", t->master_name);
    int rc = -1;
    if (!r)
        snprintf(err, errlen, "redis sentinel %s: %s", sentinel, c->errstr);
    else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
             r->element[0]->type == REDIS_REPLY_STRING &&
             r->element[1]->type == REDIS_REPLY_STRING && r->element[0]->len < hostlen) {
        snprintf(host, hostlen, "%s", r->element[0]->str);
        *port = atoi(r->element[1]->str);
        rc = 0;
    } else if (r->type == REDIS_REPLY_ERROR)
        snprintf(err, errlen, "redis sentinel %s: %s%s", sentinel, r->str,
                 strncmp(r->str, "NOAUTH", 6) == 0 ? " (set redis.sentinel_password_file)" : "");
    else
        snprintf(err, errlen, "redis sentinel %s: does not monitor a primary named '%s'; check "
                 "redis.master_name", sentinel, t->master_name);
    freeReplyObject(r);
    redisFree(c);
    return rc;
}

/* The sentinels are tried in order, as the Sentinel client guidelines ask; the first
 * that names a primary wins. */
static int find_primary(const struct rconn_target *t, char *host, size_t hostlen, int *port,
                        char *err, size_t errlen)
{
    char last[512] = "";
    for (size_t i = 0; i < t->n_sentinels; i++)
        if (ask_sentinel(t, t->sentinels[i], host, hostlen, port, last, sizeof last) == 0)
            return 0;
    char all[400];
    rconn_target_address(t, all, sizeof all);
    snprintf(err, errlen, "redis %s: no sentinel named the primary (last: %s)", all, last);
    return -1;
}

/* A sentinel's answer can be stale for a moment after a failover: make sure the server
 * we reached is the primary before writing to it. */
static int check_primary(redisContext *c, const char *addr, char *err, size_t errlen)
{
    redisReply *r = redisCommand(c, "ROLE");
    int rc = -1;
    if (!r)
        snprintf(err, errlen, "redis %s: %s", addr, c->errstr);
    else if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
             r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") == 0)
        rc = 0;
    else if (r->type == REDIS_REPLY_ERROR)
        snprintf(err, errlen, "redis %s: ROLE: %s (the kpid ACL user needs +role)", addr, r->str);
    else
        snprintf(err, errlen, "redis %s: is not the primary (yet); a failover is probably in "
                 "progress", addr);
    freeReplyObject(r);
    return rc;
}

redisContext *rconn_connect(const struct rconn_target *t, char *addr, size_t addrlen, char *err,
                            size_t errlen)
{
    char host[256];
    int port = t->port;
    snprintf(host, sizeof host, "%s", t->host ? t->host : "");
    if (t->n_sentinels) {
        rconn_target_address(t, addr, addrlen);
        if (find_primary(t, host, sizeof host, &port, err, errlen) != 0)
            return NULL;
    }
    snprintf(addr, addrlen, "%s:%d", host, port);
    redisContext *c = open_socket(host, port, t->timeout_ms, addr, err, errlen);
    if (!c)
        return NULL;
    if (t->password) {
        const char *auth_user[] = {"AUTH", t->user, t->password};
        const char *auth_pass[] = {"AUTH", t->password};
        if ((t->user ? simple(c, addr, 3, auth_user, err, errlen)
                     : simple(c, addr, 2, auth_pass, err, errlen)) != 0) {
            redisFree(c);
            return NULL;
        }
    }
    if (t->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", t->db);
        const char *select[] = {"SELECT", db};
        if (simple(c, addr, 2, select, err, errlen) != 0) {
            redisFree(c);
            return NULL;
        }
    }
    if (t->n_sentinels && check_primary(c, addr, err, errlen) != 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}

redisContext *rconn_open(const config_t *cfg, char *err, size_t errlen)
{
    struct rconn_target t;
    rconn_target_view(cfg, &t);
    char addr[400];
    return rconn_connect(&t, addr, sizeof addr, err, errlen);
}
