/* The HTTP side of metrics.h: libmicrohttpd with its own polling thread. That thread never
 * touches loop state: it serves copies of what the loop published, under a mutex, and
 * reads the loop's heartbeat atomically. */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEALTH_MAX 256

struct metrics_server {
    struct MHD_Daemon *mhd;
    pthread_mutex_t lock;
    char *text; /* guarded by lock */
    size_t text_len;
    char health[HEALTH_MAX]; /* guarded by lock; "" = healthy */
    bool published;
    _Atomic int64_t heartbeat_ms;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int metrics_parse_listen(const char *spec, char *host, size_t hostlen, int *port, char *err,
                         size_t errlen)
{
    const char *colon;
    size_t hlen;
    const char *h = spec;
    if (spec[0] == '[') {
        const char *rb = strchr(spec, ']');
        if (!rb || rb[1] != ':') {
            snprintf(err, errlen, "must be \"[ipv6]:port\" such as \"[::1]:9464\"");
            return -1;
        }
        h = spec + 1;
        hlen = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(spec, ':');
        if (!colon || strchr(spec, ':') != colon) {
            snprintf(err, errlen, "must be \"host:port\" such as \"127.0.0.1:9464\" (IPv6: "
                                  "\"[::1]:9464\")");
            return -1;
        }
        hlen = (size_t)(colon - spec);
    }
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || errno || p < 1 || p > 65535 || colon[1] == '+' || colon[1] == '-') {
        snprintf(err, errlen, "port must be between 1 and 65535");
        return -1;
    }
    if (hlen == 0 || hlen >= hostlen || hlen >= INET6_ADDRSTRLEN) {
        snprintf(err, errlen, "must name an IP address (\"127.0.0.1:9464\")");
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    unsigned char addr[sizeof(struct in6_addr)];
    int family = spec[0] == '[' ? AF_INET6 : AF_INET;
    if (inet_pton(family, host, addr) != 1) {
        snprintf(err, errlen, "%s is not an IP%s address (host names are not resolved: give "
                              "\"127.0.0.1:%ld\" or \"[::1]:%ld\")",
                 host, family == AF_INET6 ? "v6" : "v4", p, p);
        return -1;
    }
    *port = (int)p;
    return 0;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int status, const char *type,
                             const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result serve_metrics(struct metrics_server *s, struct MHD_Connection *c)
{
    pthread_mutex_lock(&s->lock);
    enum MHD_Result ret = reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                                s->text ? s->text : "", s->text ? s->text_len : 0);
    pthread_mutex_unlock(&s->lock);
    return ret;
}

static enum MHD_Result serve_health(struct metrics_server *s, struct MHD_Connection *c)
{
    char body[HEALTH_MAX + 64];
    /* Checked here, not by the loop: a stuck loop cannot report itself. */
    int64_t age = mono_ms() - atomic_load_explicit(&s->heartbeat_ms, memory_order_relaxed);
    pthread_mutex_lock(&s->lock);
    if (age > METRICS_STALE_MS)
        snprintf(body, sizeof body, "loop stuck: no iteration for %.1f s\n", (double)age / 1000.0);
    else if (!s->published)
        snprintf(body, sizeof body, "starting\n");
    else if (s->health[0])
        snprintf(body, sizeof body, "%s\n", s->health);
    else
        snprintf(body, sizeof body, "ok\n");
    pthread_mutex_unlock(&s->lock);
    unsigned int status = strcmp(body, "ok\n") == 0 ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
    return reply(c, status, "text/plain; charset=utf-8", body, strlen(body));
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    struct metrics_server *s = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "GET only\n", 9);
    if (strcmp(url, "/metrics") == 0)
        return serve_metrics(s, c);
    if (strcmp(url, "/healthz") == 0)
        return serve_health(s, c);
    static const char nf[] = "not found: try /metrics or /healthz\n";
    return reply(c, MHD_HTTP_NOT_FOUND, "text/plain", nf, sizeof nf - 1);
}

/* Bound here rather than by libmicrohttpd, whose failure carries no reason. */
static int bind_listen(const char *spec, bool *v6, char *err, size_t errlen)
{
    char host[INET6_ADDRSTRLEN], why[200];
    int port;
    if (metrics_parse_listen(spec, host, sizeof host, &port, why, sizeof why) != 0) {
        snprintf(err, errlen, "metrics.listen \"%s\": %s", spec, why);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    *v6 = spec[0] == '[';
    if (*v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, host, &a->sin6_addr);
        sl = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, host, &a->sin_addr);
        sl = sizeof *a;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (*v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
        bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 16) != 0) {
        int e = errno;
        snprintf(err, errlen,
                 "metrics.listen %s: cannot listen: %s (%s)", spec, strerror(e),
                 e == EADDRINUSE ? "another process holds the port: stop it or choose another "
                                   "metrics.listen"
                 : e == EADDRNOTAVAIL ? "no local interface has this address"
                                      : "check metrics.listen");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

metrics_server_t *metrics_server_start(const char *spec, char *err, size_t errlen)
{
    bool v6;
    int fd = bind_listen(spec, &v6, err, errlen);
    if (fd < 0)
        return NULL;
    struct metrics_server *s = calloc(1, sizeof *s);
    if (!s || pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s);
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_store(&s->heartbeat_ms, mono_ms());
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | (v6 ? MHD_USE_IPv6 : 0);
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle, s, MHD_OPTION_LISTEN_SOCKET, fd,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned int)32,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_END);
    if (!s->mhd) {
        close(fd);
        pthread_mutex_destroy(&s->lock);
        free(s);
        snprintf(err, errlen, "metrics.listen %s: the HTTP server could not start", spec);
        return NULL;
    }
    return s;
}

void metrics_server_stop(metrics_server_t *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->mhd); /* joins its thread and closes the listening socket */
    pthread_mutex_destroy(&s->lock);
    free(s->text);
    free(s);
}

void metrics_server_publish(metrics_server_t *s, const struct metrics_buf *text,
                            const char *unhealthy)
{
    /* Copied outside the lock so the HTTP thread waits only for a pointer swap. */
    char *copy = NULL;
    size_t len = 0;
    if (text && text->data && !text->oom) {
        len = text->len;
        copy = malloc(len + 1);
        if (copy)
            memcpy(copy, text->data, len + 1);
    }
    pthread_mutex_lock(&s->lock);
    if (copy) {
        char *old = s->text;
        s->text = copy;
        s->text_len = len;
        copy = old;
    }
    snprintf(s->health, sizeof s->health, "%s", unhealthy ? unhealthy : "");
    s->published = true;
    pthread_mutex_unlock(&s->lock);
    free(copy);
}

void metrics_server_heartbeat(metrics_server_t *s)
{
    atomic_store_explicit(&s->heartbeat_ms, mono_ms(), memory_order_relaxed);
}
