#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "notify_impl.h"
#include "source.h"

/* ---- delivery outcomes ---------------------------------------------------------------- */

void notify_delivered(struct channel *ch, struct entry *e)
{
    ch->delivered++;
    e->state = DONE; /* acknowledged at the next Redis round */
}

void notify_failed(notify_t *n, struct channel *ch, struct entry *e, int64_t now, const char *why)
{
    ch->failed++;
    e->failures++;
    if (e->orphan) {
        notify_held_remove(ch, e);
        return;
    }
    int64_t delay = RETRY_FIRST_MS;
    for (int i = 1; i < e->failures && delay < RETRY_MAX_MS; i++)
        delay *= 2;
    if (delay > RETRY_MAX_MS)
        delay = RETRY_MAX_MS;
    e->state = WAITING;
    e->retry_at_ms = now + delay;
    if (ch == &n->ch[CH_KAFKA])
        log_warn("kafka topic %s: alert %s not delivered: %s; retry #%d in %" PRId64 " s",
                 n->topic, e->id, why, e->failures, delay / 1000);
    else
        log_warn("webhook %s: alert %s not delivered: %s; retry #%d in %" PRId64 " s",
                 n->url_shown, e->id, why, e->failures, delay / 1000);
}

/* ---- Kafka ---------------------------------------------------------------------------- */

static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    source_kafka_log("kafka alerts producer", level, fac, buf);
}

static void kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)opaque;
    /* The consumer reports broker trouble already; failed deliveries are logged apart. */
    if (err == RD_KAFKA_RESP_ERR__FATAL)
        log_error("kafka alerts producer: fatal: %s; restarting it", reason);
    else
        log_debug("kafka alerts producer: %s: %s", rd_kafka_err2name(err), reason);
}

static void kafka_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    notify_t *n = opaque;
    /* One report per message, at most one message per held entry: it always fits. */
    if (n->n_results < HOLD_MAX)
        n->results[n->n_results++] = (struct dr_result){(uint64_t)(uintptr_t)m->_private, m->err};
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err,
                    size_t errlen)
{
    char kerr[256];
    if (rd_kafka_conf_set(conf, key, value, kerr, sizeof kerr) != RD_KAFKA_CONF_OK)
        return log_errbuf(err, errlen, "kafka property %s=%s: %s", key, value, kerr);
    return 0;
}

rd_kafka_t *notify_kafka_new(notify_t *n, const config_t *cfg, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int bad = conf_set(conf, "bootstrap.servers", cfg->kafka_brokers, err, errlen);
    for (size_t i = 0; !bad && i < cfg->n_kafka_properties; i++)
        bad = conf_set(conf, cfg->kafka_properties[i].key, cfg->kafka_properties[i].value, err,
                       errlen);
    /* Retries inside librdkafka must neither duplicate nor reorder an alert. */
    if (bad || conf_set(conf, "enable.idempotence", "true", err, errlen) != 0 ||
        conf_set(conf, "acks", "all", err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    rd_kafka_conf_set_error_cb(conf, kafka_error_cb);
    rd_kafka_conf_set_dr_msg_cb(conf, kafka_dr_cb);
    rd_kafka_conf_set_opaque(conf, n);
    char kerr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof kerr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        log_errbuf(err, errlen, "kafka alerts producer: %s", kerr);
    }
    return rk;
}

void notify_kafka_destroy(notify_t *n)
{
    if (!n->producer)
        return;
    /* What is still queued was not acknowledged in Redis: it is delivered again later. */
    rd_kafka_purge(n->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_destroy(n->producer);
    n->producer = NULL;
}

void notify_kafka_start(notify_t *n, struct channel *ch, struct entry *e, int64_t now)
{
    e->seq = ++n->next_seq;
    rd_kafka_resp_err_t err = rd_kafka_producev(
        n->producer, RD_KAFKA_V_TOPIC(n->topic), RD_KAFKA_V_KEY(e->manager, strlen(e->manager)),
        RD_KAFKA_V_VALUE(e->json, e->json_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE((void *)(uintptr_t)e->seq), RD_KAFKA_V_END);
    if (err)
        notify_failed(n, ch, e, now, rd_kafka_err2str(err));
    else
        e->state = SENDING;
}

void notify_kafka_serve(notify_t *n, int64_t now)
{
    struct channel *ch = &n->ch[CH_KAFKA];
    rd_kafka_poll(n->producer, 0);
    for (size_t i = 0; i < n->n_results; i++) {
        struct entry *e = NULL;
        for (size_t k = 0; k < ch->n_held && !e; k++)
            if (ch->held[k]->state == SENDING && ch->held[k]->seq == n->results[i].seq)
                e = ch->held[k];
        if (e && n->results[i].err)
            notify_failed(n, ch, e, now, rd_kafka_err2str(n->results[i].err));
        else if (e)
            notify_delivered(ch, e);
    }
    n->n_results = 0;
    if (rd_kafka_fatal_error(n->producer, NULL, 0) == RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    /* An idempotent producer that hit a fatal error accepts nothing more: start afresh. */
    char err[512];
    notify_kafka_destroy(n);
    n->n_results = 0;
    for (size_t k = ch->n_held; k-- > 0;) /* backwards: failed() may remove an orphan */
        if (ch->held[k]->state == SENDING)
            notify_failed(n, ch, ch->held[k], now, "the producer was restarted");
    if (!(n->producer = notify_kafka_new(n, n->cfg, err, sizeof err))) {
        log_error("%s; alerts are not sent to Kafka until kpid is restarted", err);
        ch->enabled = false;
    }
}

/* ---- webhook -------------------------------------------------------------------------- */

static size_t discard_body(char *p, size_t size, size_t nmemb, void *ud)
{
    (void)p;
    (void)ud;
    return size * nmemb;
}

void notify_webhook_start(notify_t *n, struct channel *ch, struct entry *e, int64_t now)
{
    CURL *h = curl_easy_init();
    if (!h) {
        notify_failed(n, ch, e, now, "out of memory");
        return;
    }
    long timeout = n->cfg->webhook_timeout_ms > 0 ? n->cfg->webhook_timeout_ms : 2000;
    e->curl_err[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, n->cfg->webhook_url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, e->json);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)e->json_len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, n->headers);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, e->curl_err);
    curl_easy_setopt(h, CURLOPT_PRIVATE, (char *)e);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "kpid/" KPID_VERSION);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (curl_multi_add_handle(n->multi, h) != CURLM_OK) {
        curl_easy_cleanup(h);
        notify_failed(n, ch, e, now, "curl refused the transfer");
        return;
    }
    e->easy = h;
    e->state = SENDING;
}

void notify_webhook_end(notify_t *n, struct entry *e)
{
    curl_multi_remove_handle(n->multi, e->easy);
    curl_easy_cleanup(e->easy);
    e->easy = NULL;
}

void notify_webhook_serve(notify_t *n, int64_t now)
{
    struct channel *ch = &n->ch[CH_WEBHOOK];
    int running, left;
    curl_multi_perform(n->multi, &running);
    CURLMsg *m;
    while ((m = curl_multi_info_read(n->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURLcode res = m->data.result;
        char *priv = NULL;
        long status = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        struct entry *e = (struct entry *)priv;
        notify_webhook_end(n, e); /* m is invalid from here on */
        char why[CURL_ERROR_SIZE + 64];
        if (res == CURLE_OK && status >= 200 && status < 300) {
            notify_delivered(ch, e);
            continue;
        }
        if (res == CURLE_OK)
            snprintf(why, sizeof why, "HTTP %ld", status);
        else
            snprintf(why, sizeof why, "%s", e->curl_err[0] ? e->curl_err : curl_easy_strerror(res));
        notify_failed(n, ch, e, now, why);
    }
}

/* Credentials and tokens in the query stay out of the log. */
char *notify_url_for_logs(const char *url)
{
    CURLU *u = curl_url();
    char *shown = NULL, *out;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
        curl_url_set(u, CURLUPART_USER, NULL, 0);
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
        curl_url_set(u, CURLUPART_QUERY, NULL, 0);
        curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
        if (curl_url_get(u, CURLUPART_URL, &shown, 0) != CURLUE_OK)
            shown = NULL;
    }
    out = strdup(shown ? shown : "(unparsable URL)");
    curl_free(shown);
    curl_url_cleanup(u);
    return out;
}
