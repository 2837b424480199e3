#include "rconn.h"

#include <stdio.h>
#include <string.h>

void rconn_address(const config_t *cfg, char *buf, size_t size)
{
    snprintf(buf, size, "%s:%d", cfg->redis_host,
             cfg->redis_port);
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

redisContext *rconn_open(const config_t *cfg, char *err, size_t errlen)
{
    char addr[300];
    rconn_address(cfg, addr, sizeof addr);
    struct timeval tv = {cfg->redis_timeout_ms / 1000, (cfg->redis_timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(cfg->redis_host, cfg->redis_port, tv);
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
    if (cfg->redis_password) {
        const char *auth_user[] = {"AUTH", cfg->redis_user, cfg->redis_password};
        const char *auth_pass[] = {"AUTH", cfg->redis_password};
        if ((cfg->redis_user ? simple(c, addr, 3, auth_user, err, errlen)
                             : simple(c, addr, 2, auth_pass, err, errlen)) != 0) {
            redisFree(c);
            return NULL;
        }
    }
    if (cfg->redis_db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", cfg->redis_db);
        const char *select[] = {"SELECT", db};
        if (simple(c, addr, 2, select, err, errlen) != 0) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}
