/* rconn: one synchronous hiredis connection opened the way every kpid module needs it
 * (timeouts, keepalive, AUTH, SELECT), so the flush, the alert evaluation and the alert
 * delivery connect identically and report failures in the same words. */
#ifndef KPI_RCONN_H
#define KPI_RCONN_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "config.h"

/* Connects to cfg's redis. NULL and "redis 127.0.0.1:6379: Connection refused" in err on
 * failure. The caller owns the context (redisFree). */
redisContext *rconn_open(const config_t *cfg, char *err, size_t errlen);

/* "127.0.0.1:6379" */
void rconn_address(const config_t *cfg, char *buf, size_t size);

#endif
