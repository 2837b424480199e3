/* rconn: one synchronous hiredis connection opened the way every kpid module needs it
 * (timeouts, keepalive, AUTH, SELECT, and the primary looked up through Redis Sentinel
 * when sentinels are configured), so the flush, the alert evaluation and the alert
 * delivery connect identically and report failures in the same words. */
#ifndef KPI_RCONN_H
#define KPI_RCONN_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "config.h"

/* Where and how to connect: the redis.* settings. Either a view borrowing a config's
 * strings (rconn_target_view) or an owned copy (rconn_target_copy / rconn_target_free),
 * for modules that outlive a reload or run on another thread. */
struct rconn_target {
    char *host;
    int port;
    int db;
    char *user;     /* NULL: AUTH with the password only */
    char *password; /* NULL: no AUTH */
    int timeout_ms;
    char **sentinels; /* "host:port"; none: connect to host:port directly */
    size_t n_sentinels;
    char *master_name;
    char *sentinel_password; /* NULL: the sentinels need no AUTH */
};

void rconn_target_view(const config_t *cfg, struct rconn_target *out);
int rconn_target_copy(const struct rconn_target *src, struct rconn_target *out);
void rconn_target_free(struct rconn_target *t);

/* Connects (asking the sentinels for the current primary first, and checking it still is
 * one). NULL with "redis 127.0.0.1:6379: Connection refused" in err on failure. addr gets
 * the address connected to, or the best description of it on failure. The caller owns
 * the context (redisFree). */
redisContext *rconn_connect(const struct rconn_target *t, char *addr, size_t addrlen, char *err,
                            size_t errlen);

/* rconn_connect on cfg's settings. */
redisContext *rconn_open(const config_t *cfg, char *err, size_t errlen);

/* "127.0.0.1:6379", or "primary 'kpi' via sentinels 10.0.0.1:26379,10.0.0.2:26379". */
void rconn_address(const config_t *cfg, char *buf, size_t size);
void rconn_target_address(const struct rconn_target *t, char *buf, size_t size);

/* A reply saying the server is a replica now (READONLY): the connection must be dropped
 * so that the next connect asks the sentinels again. */
bool rconn_is_readonly_error(const redisReply *r);

#endif
