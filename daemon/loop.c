#include "loop.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "agg.h"
#include "batch.h"
#include "dealset.h"
#include "deals.h"
#include "dedup.h"
#include "evaluate.h"
#include "event.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "period.h"
#include "rconn.h"
#include "sink.h"
#include "source.h"
#include "tally.h"
#include "targets.h"

#define MAX_COMMIT_ATTEMPTS 50
#define MAX_BATCH_BYTES (64u << 20)
#define DLQ_ACK_WAIT_MS 10000
#define BACKOFF_FIRST_MS 500
#define BACKOFF_MAX_MS 30000
#define STATS_EVERY_MS 60000
#define PIPELINE_STEP_MS 10
#define TOUCHED_EVAL_EVERY_MS 1000 /* managers a flush moved are evaluated this often */
#define EVAL_RETRY_MS 5000
#define NOTIFY_DRAIN_MS 2000
#define OWNED_CHECK_MS 30000 /* stored offsets of owned partitions re-read at least this often */
#define STATUS_EVERY_MS 5000 /* systemd STATUS= line */

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;

void loop_request_stop(void) { stop_requested = 1; }
void loop_request_reload(void) { reload_requested = 1; }

/* What the hot path derives from the configuration: zones opened once, validation rules.
 * Rebuilt whole on reload. */
struct runtime {
    config_t *cfg;
    period_zone_t **team_zones; /* parallel to cfg->teams */
    period_zone_t *default_zone;  /* managers of "unassigned" and teams without a zone */
    period_zone_t *org_zone;      /* the organisation; a separate handle keeps caches apart */
    event_rules_t rules;
    deals_rules_t *deal_rules;
    bool *team_org_zone; /* parallel to cfg->teams: the team's zone is the organisation's */
    targets_t *targets;
};

struct stats {
    uint64_t consumed, applied, invalid, duplicate, flushes, conflicts;
    uint64_t internal; /* of applied */
    uint64_t flush_us, flush_us_max; /* time from sink_begin to EXEC's reply */
};

struct loop {
    struct runtime rt;
    char *config_path;
    event_parser_t *parser;
    source_t *src;
    sink_t *sink;
    batch_t *batch;      /* being filled */
    batch_t *checking;   /* reads sent (or to be redone), or NULL */
    batch_t *committing; /* transaction sent (or to be redone), or NULL */
    batch_t *spares[3];  /* the batch objects not in use */
    struct batch_agg {
        const batch_t *batch;
        tally_t *tally;
        bool stale; /* records were removed or deals applied since counting: recompute */
    } aggs[3];
    bool checking_sent, committing_sent;
    int64_t checking_sent_ms, checking_started_us, committing_started_us;
    int64_t flush_started_us;
    int64_t batch_first_ms;
    bool stalled;
    int64_t stalled_since_ms, retry_at_ms;
    int backoff_ms;
    int64_t next_cron_ms, next_stats_ms;
    int64_t rolling_hour_done; /* wall-clock hour whose rolling windows are stored */
    int64_t rolling_retry_ms;  /* after a failure to move them */
    struct stats total, at_last_stats;
    bool claims_pending;
    uint64_t reconnects_checked; /* the flush connection's reconnects loop_check_owned saw */
    int64_t owned_checked_ms;    /* when loop_check_owned last read the stored offsets */

    /* Alerts: evaluated for the managers flushes moved (at most every second) and for
     * everyone every eval_interval_s (of wall time, or of event time with the event clock). */
    evaluator_t *evaluator;
    notify_t *notify;
    char **touched;      /* manager ids (owned) flushed since the last pass */
    size_t n_touched, touched_cap;
    dedup_t *touched_set; /* borrows the strings of touched */
    int64_t last_touched_eval_ms, next_full_eval_ms, eval_retry_ms;
    int64_t event_now_ms;     /* latest event time this process flushed */
    int64_t last_full_event_ms; /* event time of the last full pass (event clock) */
    struct notify_stats notify_at_last_stats;
    bool eval_failing;

    bool rebuild;            /* kpid --rebuild: see loop_set_rebuild */
    bool rebuild_caught_up;
    int64_t rebuild_check_ms;

    /* Observability: metrics.h figures (filled from the counters here once a second), the
     * HTTP endpoint, systemd readiness, watchdog and status. */
    struct metrics_values mv;
    struct metrics_buf mtext;
    metrics_server_t *http; /* NULL: no metrics.listen */
    struct source_lag *lags;
    struct metrics_lag *mlags;
    size_t lags_cap;
    uint64_t alerts_firing, alerts_resolved, reloads_ok, reloads_rejected;
    int64_t last_flush_ms;
    bool ready; /* READY=1 sent */
    char redis_err[256]; /* why the last health probe failed; "" while it works */
    uint64_t watchdog_us; /* WatchdogSec, 0 without */
    int64_t next_kick_us, next_status_ms, status_at_ms, next_probe_ms;
    uint64_t status_consumed;
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void runtime_release(struct runtime *rt)
{
    if (rt->cfg && rt->team_zones)
        for (size_t i = 0; i < rt->cfg->n_teams; i++)
            period_zone_free(rt->team_zones[i]);
    free(rt->team_zones);
    period_zone_free(rt->default_zone);
    period_zone_free(rt->org_zone);
    free(rt->team_org_zone);
    deals_rules_free(rt->deal_rules);
    targets_free(rt->targets);
    config_free(rt->cfg);
    memset(rt, 0, sizeof *rt);
}

/* Takes ownership of cfg, also on failure. */
static int runtime_build(struct runtime *rt, config_t *cfg, char *err, size_t errlen)
{
    memset(rt, 0, sizeof *rt);
    rt->cfg = cfg;
    rt->team_zones = calloc(cfg->n_teams ? cfg->n_teams : 1, sizeof *rt->team_zones);
    rt->team_org_zone = calloc(cfg->n_teams ? cfg->n_teams : 1, sizeof *rt->team_org_zone);
    if (!rt->team_zones || !rt->team_org_zone) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!(rt->default_zone = period_zone_open(cfg->time_zone, err, errlen)) ||
        !(rt->org_zone = period_zone_open(cfg->time_zone, err, errlen)))
        goto fail;
    for (size_t i = 0; i < cfg->n_teams; i++) {
        const char *zone = cfg->teams[i].time_zone ? cfg->teams[i].time_zone : cfg->time_zone;
        if (!(rt->team_zones[i] = period_zone_open(zone, err, errlen)))
            goto fail;
        rt->team_org_zone[i] = strcmp(zone, cfg->time_zone) == 0;
    }
    if (!(rt->deal_rules = deals_rules_new(cfg->stages, cfg->n_stages, err, errlen)) ||
        !(rt->targets = targets_new(cfg, err, errlen)))
        goto fail;
    rt->rules = config_event_rules(cfg);
    return 0;
fail:
    runtime_release(rt);
    return -1;
}

static void loop_scope_of(loop_t *l, const char *manager, int64_t ts_ms, struct tally_scope *w)
{
    struct runtime *rt = &l->rt;
    const struct config_manager *m = config_manager_find(rt->cfg, manager);
    w->manager = manager;
    w->team = m ? m->team : CONFIG_UNASSIGNED_TEAM;
    const struct config_team *t = config_team_find(rt->cfg, w->team);
    /* unassigned and unknown teams use the default zone, which is the organisation's */
    w->org_zone = !t || rt->team_org_zone[t - rt->cfg->teams];
    w->mine = period_of(t ? rt->team_zones[t - rt->cfg->teams] : rt->default_zone, ts_ms);
    w->org = period_of(rt->org_zone, ts_ms);
    w->ts_ms = ts_ms;
}

static const char *loop_team_of(loop_t *l, const char *manager)
{
    const struct config_manager *m = config_manager_find(l->rt.cfg, manager);
    return m ? m->team : CONFIG_UNASSIGNED_TEAM;
}

/* Adds what one event counts without its deal's state: activity counters; for a deal event
 * only the hashes it may change, so that their current figures are read with the batch
 * (what it counts is known once the deal state is read). */
static int loop_count_event(loop_t *l, tally_t *tally, const event_t *ev)
{
    int64_t deltas[TALLY_VALUES] = {0};
    agg_event_deltas(ev, l->rt.cfg->touch_min_call_s, deltas);
    bool any = false;
    for (int c = 0; c < COUNTER_ACTIVITY_COUNT; c++)
        any |= deltas[c] != 0;
    if (ev->type == EVENT_DEAL_STAGE) {
        deltas[TALLY_DEAL_MARK] = 1;
        any = true;
    }
    if (!any)
        return 0;
    struct tally_scope where;
    loop_scope_of(l, ev->manager_id, ev->ts_ms, &where);
    return tally_add(tally, &where, deltas);
}

/* Each batch object has its aggregate. Events are counted as they are consumed, so a
 * flush without duplicates does not aggregate the whole batch while Redis waits; duplicates
 * and anything that removes records (fencing, revocation) make it stale and it is
 * recomputed. */
static struct batch_agg *agg_slot(loop_t *l, const batch_t *b)
{
    for (int i = 0; i < 3; i++)
        if (l->aggs[i].batch == b)
            return &l->aggs[i];
    return &l->aggs[0]; /* unreachable: every batch object has a slot */
}

static void agg_forget(loop_t *l, const batch_t *b)
{
    struct batch_agg *s = agg_slot(l, b);
    tally_reset(s->tally);
    s->stale = false;
}

/* The batch's tally recomputed from its records: of its non-duplicate events, or (before
 * duplicates are known) of all, which touches a superset of the hashes. */
static tally_t *loop_aggregate(loop_t *l, batch_t *b, bool with_duplicates)
{
    struct batch_agg *s = agg_slot(l, b);
    tally_reset(s->tally);
    s->stale = true;
    for (size_t i = 0; i < batch_event_count(b); i++) {
        batch_event_t *rec = batch_event_at(b, i);
        if ((with_duplicates || !rec->duplicate) &&
            loop_count_event(l, s->tally, &rec->event) != 0)
            return NULL;
    }
    s->stale = with_duplicates;
    return s->tally;
}

/* The tally after duplicates were marked: the running one minus the duplicates. */
static tally_t *loop_aggregate_checked(loop_t *l, batch_t *b)
{
    struct batch_agg *s = agg_slot(l, b);
    if (s->stale)
        return loop_aggregate(l, b, false);
    /* Duplicates were counted on arrival. Counters could be taken back one by one, but the
     * latest activity times cannot (a copy may carry another time): count again without
     * them. Duplicates are rare, so this is rarely paid. */
    for (size_t i = 0; i < batch_event_count(b); i++)
        if (batch_event_at(b, i)->duplicate)
            return loop_aggregate(l, b, false);
    /* A later redo recomputes from the records. */
    s->stale = true;
    return s->tally;
}

/* Applies the batch's deal events, in batch order, to the deal states the sink read, and
 * adds what they count and how they move the pipelines to the tally. Processing order is
 * the deal's history (deals.h). The slot must already be stale: the states are only valid
 * for this attempt. */
static int loop_apply_deals(loop_t *l, batch_t *b, tally_t *tally)
{
    char err[256];
    dealset_t *deals = sink_deals(l->sink);
    tally_reset_pipeline(tally);
    for (size_t i = 0; i < batch_event_count(b); i++) {
        const batch_event_t *rec = batch_event_at(b, i);
        const event_t *ev = &rec->event;
        if (rec->duplicate || ev->type != EVENT_DEAL_STAGE)
            continue;
        dealset_entry_t *e = dealset_find(deals, ev->deal_id);
        if (!e) {
            log_error("internal error: deal %s was not read with its batch; event %s skipped",
                      ev->deal_id, ev->event_id);
            continue;
        }
        deals_effects_t fx;
        bool known = e->exists || e->changed;
        if (deals_apply(known ? &e->state : NULL, ev, l->rt.deal_rules, &e->state, &fx, err,
                        sizeof err) != 0) {
            log_error("%s; event %s skipped", err, ev->event_id);
            continue;
        }
        e->changed |= fx.state_changed;
        if (fx.counted) {
            int64_t deltas[TALLY_VALUES] = {0};
            for (size_t c = 0; c < deals_counter_count(l->rt.deal_rules); c++)
                deltas[TALLY_DEAL_BASE + c] = fx.counters[c];
            struct tally_scope where;
            loop_scope_of(l, ev->manager_id, ev->ts_ms, &where);
            if (tally_add(tally, &where, deltas) != 0)
                return -1;
        }
        for (size_t p = 0; p < fx.n_pipe; p++)
            if (tally_add_pipeline(tally, fx.pipe[p].manager,
                                   loop_team_of(l, fx.pipe[p].manager), fx.pipe[p].values) != 0)
                return -1;
    }
    return 0;
}

/* --- partition ownership, called by the source during rebalances --- */

static int loop_flush(loop_t *l, bool wait);
static int loop_settle(loop_t *l);

static int loop_claim(void *ctx, int topic, const int32_t *partitions, size_t n, int64_t *tokens,
                      int64_t *offsets)
{
    loop_t *l = ctx;
    char err[512] = "";
    /* The connection must be free of the batch in flight before anything else is sent. */
    if (loop_settle(l) != 0) {
        l->claims_pending = true;
        return -1;
    }
    if (sink_claim(l->sink, topic, partitions, n, tokens, offsets, err, sizeof err) != 0) {
        log_warn("%s; partitions stay paused until it answers", err);
        l->claims_pending = true;
        return -1;
    }
    return 0;
}


static void loop_revoke(void *ctx, const struct source_partition *parts, size_t n, bool lost)
{
    loop_t *l = ctx;
    /* Even for lost partitions the batch in flight is settled: a write of a partition
     * someone else owns now fails on its fence, anything else in it is legitimately ours. */
    int rc = lost ? loop_settle(l) : loop_flush(l, true);
    if (rc != 0)
        log_warn("could not flush before giving up %zu partition(s); their unflushed messages "
                 "will be consumed again by the next owner",
                 n);
    /* Whatever is left of them was never written: the next owner re-reads it. */
    agg_slot(l, l->batch)->stale = true;
    if (l->checking)
        agg_slot(l, l->checking)->stale = true;
    if (l->committing)
        agg_slot(l, l->committing)->stale = true;
    for (size_t i = 0; i < n; i++) {
        batch_drop_partition(l->batch, parts[i].topic, parts[i].partition);
        if (l->checking)
            batch_drop_partition(l->checking, parts[i].topic, parts[i].partition);
        if (l->committing)
            batch_drop_partition(l->committing, parts[i].topic, parts[i].partition);
    }
}

static const struct source_owner_ops owner_ops = {loop_claim, loop_revoke};

static bool loop_owned(void *ctx, int topic, int32_t partition, struct sink_owned *out)
{
    source_t *src = ((loop_t *)ctx)->src;
    out->token = source_token(src, topic, partition);
    out->written = source_written(src, topic, partition);
    return out->token >= 0;
}

/* --- the data path --- */

static void loop_take(loop_t *l, source_message_t *msg, int64_t now)
{
    char reason[256];
    if (batch_message_count(l->batch) == 0)
        l->batch_first_ms = now;
    l->total.consumed++;
    batch_event_t *rec = batch_add_event(l->batch, msg->topic, msg->partition, msg->offset);
    if (!rec) {
        log_error("out of memory holding a batch; stopping so systemd restarts kpid");
        stop_requested = 1;
        return;
    }
    int valid = msg->value
                    ? event_parse(l->parser, &l->rt.rules, msg->value, msg->value_len, now,
                                  &rec->event, reason, sizeof reason)
                    : (snprintf(reason, sizeof reason, "message: empty (no value)"), -1);
    if (valid == 0) {
        struct batch_agg *s = agg_slot(l, l->batch);
        if (!s->stale && loop_count_event(l, s->tally, &rec->event) != 0)
            s->stale = true;
        return;
    }
    batch_unadd_event(l->batch);
    batch_invalid_t *inv =
        batch_add_invalid(l->batch, msg->topic, msg->partition, msg->offset, msg->key,
                          msg->key_len, msg->value, msg->value_len, reason);
    if (!inv) {
        log_error("out of memory holding a batch; stopping so systemd restarts kpid");
        stop_requested = 1;
        return;
    }
    log_debug("invalid message %s [%d] @%lld: %s", source_topic_name(l->src, msg->topic),
              (int)msg->partition, (long long)msg->offset, reason);
    char err[256];
    if (source_dlq_send(l->src, inv, err, sizeof err) != 0)
        log_warn("%s; will retry before the next flush", err);
}



/* Every DLQ copy of the batch must be acknowledged before the offsets covering the
 * invalid messages are stored. */
static int loop_wait_dlq(loop_t *l, batch_t *b)
{
    int64_t deadline = wall_ms() + DLQ_ACK_WAIT_MS;
    for (;;) {
        bool all_acked = true;
        for (size_t i = 0; i < batch_invalid_count(b); i++) {
            batch_invalid_t *rec = batch_invalid_at(b, i);
            if (rec->dlq == DLQ_UNSENT || rec->dlq == DLQ_FAILED) {
                char err[256];
                if (source_dlq_send(l->src, rec, err, sizeof err) != 0)
                    log_warn("%s", err);
            }
            all_acked &= rec->dlq == DLQ_ACKED;
        }
        if (all_acked)
            return 0;
        if (wall_ms() > deadline) {
            log_warn("kafka dead-letter topic %s: copies of invalid messages not acknowledged "
                     "within %d s; holding the batch",
                     l->rt.cfg->kafka_dlq_topic, DLQ_ACK_WAIT_MS / 1000);
            return -1;
        }
        batch_t *const live[] = {l->batch, l->checking, l->committing};
        source_dlq_poll(l->src, live, 3, 20);
    }
}

/* The managers a committed batch moved, for the next evaluation of the touched. */
static void loop_note_touched(loop_t *l, batch_t *b)
{
    for (size_t i = 0; i < batch_event_count(b); i++) {
        const batch_event_t *rec = batch_event_at(b, i);
        if (rec->duplicate)
            continue;
        if (rec->event.ts_ms > l->event_now_ms)
            l->event_now_ms = rec->event.ts_ms;
        if (l->n_touched == l->touched_cap) {
            size_t cap = l->touched_cap ? l->touched_cap * 2 : 64;
            char **p = realloc(l->touched, cap * sizeof *p);
            if (!p)
                return; /* the next full pass evaluates them */
            l->touched = p;
            l->touched_cap = cap;
        }
        /* The set borrows its strings: give it a copy that lives until the pass. */
        char *copy = strdup(rec->event.manager_id);
        if (!copy)
            return;
        if (dedup_seen(l->touched_set, copy))
            free(copy);
        else
            l->touched[l->n_touched++] = copy;
    }
}

static void loop_forget_touched(loop_t *l)
{
    for (size_t i = 0; i < l->n_touched; i++)
        free(l->touched[i]);
    l->n_touched = 0;
    if (l->touched_set)
        dedup_reset(l->touched_set);
}

static void loop_finalize(loop_t *l, batch_t *b, const struct sink_totals *t, int64_t started_us)
{
    uint64_t took = (uint64_t)(mono_us() - started_us);
    log_debug("flushed %zu messages in %.1f ms", batch_message_count(b), (double)took / 1000.0);
    l->total.flush_us += took;
    if (took > l->total.flush_us_max)
        l->total.flush_us_max = took;
    l->total.applied += t->applied;
    l->total.invalid += t->invalid;
    l->total.duplicate += t->duplicate;
    l->total.flushes++;
    l->total.internal += t->internal;
    l->last_flush_ms = wall_ms();
    l->redis_err[0] = '\0'; /* a flush went through: whatever the last probe said is over */
    metrics_observe_flush(&l->mv, (double)took / 1e6, batch_message_count(b));
    loop_note_touched(l, b);
    source_committed(l->src, b);
    batch_clear(b);
    agg_forget(l, b);
}

/* Redis lost writes of a partition we own: what every held batch has of it is consumed
 * again from the offset Redis holds, so none of it may be written now. */
static void loop_rewind(loop_t *l, const struct sink_fenced *f)
{
    const char *topic = source_topic_name(l->src, f->topic);
    log_warn("redis %s: %s [%d] is behind what this kpid wrote (redis holds offset %lld, "
             "fence token %lld, we wrote up to %lld with token %lld): redis lost acknowledged "
             "writes (a failover to a replica that was behind, or a restore); consuming the "
             "partition again from offset %lld",
             sink_address(l->sink), topic, (int)f->partition, (long long)f->stored_offset,
             (long long)f->stored_token,
             (long long)source_written(l->src, f->topic, f->partition),
             (long long)source_token(l->src, f->topic, f->partition),
             (long long)f->stored_offset);
    batch_t *held[] = {l->committing, l->checking, l->batch};
    for (size_t i = 0; i < sizeof held / sizeof *held; i++)
        if (held[i]) {
            batch_drop_partition(held[i], f->topic, f->partition);
            agg_slot(l, held[i])->stale = true;
        }
    source_reclaim(l->src, f->topic, f->partition);
    l->claims_pending = true;
}

/* After the flush connection reconnected, Redis may be older than what we wrote to it (a
 * failover to a replica that was behind, a restore). A partition with messages coming
 * notices at its next flush; this catches the idle ones, which would otherwise wait for
 * their next message with their lost counts missing. It also runs every OWNED_CHECK_MS,
 * for losses that keep the connection open (FLUSHALL, a key deleted by hand): one HMGET
 * pair per topic, nothing next to the flushes. */
static void loop_check_owned(loop_t *l, int64_t now)
{
    struct sink_stats ss;
    sink_get_stats(l->sink, &ss);
    bool due = ss.reconnects != l->reconnects_checked || now - l->owned_checked_ms >= OWNED_CHECK_MS;
    if (!due || !sink_connected(l->sink) || !sink_idle(l->sink))
        return;
    l->owned_checked_ms = now;
    l->reconnects_checked = ss.reconnects;
    int32_t parts[1024];
    int64_t tokens[1024], offsets[1024];
    char err[1024];
    for (size_t t = 0; t < l->rt.cfg->n_kafka_topics; t++) {
        size_t n = source_owned_of_topic(l->src, (int)t, parts, 1024);
        if (sink_read_owned(l->sink, (int)t, parts, n, tokens, offsets, err, sizeof err) != 0) {
            log_warn("%s; checking the stored offsets again in %d s", err, OWNED_CHECK_MS / 1000);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            int64_t mine = source_token(l->src, (int)t, parts[i]);
            if (tokens[i] < mine || (tokens[i] == mine &&
                                     offsets[i] < source_written(l->src, (int)t, parts[i]))) {
                struct sink_fenced f = {(int)t, parts[i], SINK_REDIS_BEHIND, tokens[i], offsets[i]};
                loop_rewind(l, &f);
            }
        }
    }
}

static void loop_drop_fenced(loop_t *l, batch_t *b, const struct sink_fenced *fenced, size_t n)
{
    if (n)
        agg_slot(l, b)->stale = true;
    for (size_t i = 0; i < n; i++) {
        batch_drop_partition(b, fenced[i].topic, fenced[i].partition);
        if (fenced[i].kind == SINK_ALREADY_WRITTEN)
            log_info("%s [%d]: the previous flush was applied though its answer was "
                     "lost; not applying it again",
                     source_topic_name(l->src, fenced[i].topic), (int)fenced[i].partition);
        else if (fenced[i].kind == SINK_REDIS_BEHIND)
            loop_rewind(l, &fenced[i]);
        else
            source_disown(l->src, fenced[i].topic, fenced[i].partition);
    }
}

/* Writes one batch synchronously: DLQ acknowledged, sink_begin, aggregate, commit, with
 * conflicts retried. 0 when written (or fencing left nothing to write); -1 on failure,
 * with the batch intact for a retry. The connection must be idle. */
static int loop_write(loop_t *l, batch_t *b)
{
    char err[1024] = "";
    if (batch_message_count(b) == 0)
        return 0;
    if (loop_wait_dlq(l, b) != 0)
        return -1;
    for (int attempt = 0; attempt < MAX_COMMIT_ATTEMPTS; attempt++) {
        int64_t now = wall_ms();
        struct sink_fenced fenced[256];
        size_t n_fenced = 0;
        l->flush_started_us = mono_us();
        tally_t *tally = loop_aggregate(l, b, true);
        if (!tally) {
            snprintf(err, sizeof err, "out of memory aggregating a batch");
            goto failed;
        }
        int begun = sink_begin(l->sink, b, tally, loop_owned, l, now, fenced, 256, &n_fenced, err,
                               sizeof err);
        if (begun < 0)
            goto failed;
        if (begun > 0)
            continue; /* another writer changed what we had cached: read it all */
        loop_drop_fenced(l, b, fenced, n_fenced);
        if (batch_message_count(b) == 0) {
            sink_abort(l->sink);
            return 0;
        }
        if (!(tally = loop_aggregate(l, b, false)) || loop_apply_deals(l, b, tally) != 0) {
            agg_slot(l, b)->stale = true;
            sink_abort(l->sink);
            snprintf(err, sizeof err, "out of memory aggregating a batch");
            goto failed;
        }
        agg_slot(l, b)->stale = true;
        struct sink_totals t;
        switch (sink_commit(l->sink, b, tally, now, &t, err, sizeof err)) {
        case SINK_COMMITTED:
            loop_finalize(l, b, &t, l->flush_started_us);
            return 0;
        case SINK_CONFLICT:
            /* Another kpid flushed in between: read again and redo the batch. */
            l->total.conflicts++;
            continue;
        case SINK_FAILED:
            goto failed;
        }
    }
    snprintf(err, sizeof err, "redis %s: %d flush attempts in a row conflicted with other writers",
             sink_address(l->sink), MAX_COMMIT_ATTEMPTS);
failed:
    log_warn("%s", err);
    return -1;
}

/* --- the flush pipeline ---
 *
 * Three batch objects circulate: `batch` is being filled; `checking` has its reads
 * (WATCH, dedup scores, fences) sent; `committing` has its MULTI/EXEC sent. Both sends
 * queue on the one Redis connection, so Redis runs the reads of one batch after the EXEC of
 * the previous (they see its writes, and the WATCH is set after that EXEC cleared the old
 * one), while kpid parses the next batch: Redis and kpid work at the same time. */

static batch_t *loop_take_spare(loop_t *l)
{
    for (int i = 0; i < 3; i++)
        if (l->spares[i]) {
            batch_t *b = l->spares[i];
            l->spares[i] = NULL;
            return b;
        }
    return NULL; /* cannot happen: three objects, at most three in use */
}

static void loop_give_spare(loop_t *l, batch_t *b)
{
    batch_clear(b);
    agg_forget(l, b);
    for (int i = 0; i < 3; i++)
        if (!l->spares[i]) {
            l->spares[i] = b;
            return;
        }
}

/* Reads the answer of the transaction in flight. 0 when it committed (or nothing was in
 * flight); -1 when it did not, leaving it as `committing`, unsent, for a synchronous redo. */
static int loop_confirm(loop_t *l)
{
    if (!l->committing || !l->committing_sent)
        return l->committing ? -1 : 0;
    char err[1024] = "";
    struct sink_totals t;
    l->committing_sent = false;
    enum sink_commit_result res = sink_commit_wait(l->sink, &t, err, sizeof err);
    if (res == SINK_COMMITTED) {
        loop_finalize(l, l->committing, &t, l->committing_started_us);
        loop_give_spare(l, l->committing);
        l->committing = NULL;
        return 0;
    }
    if (res == SINK_CONFLICT)
        l->total.conflicts++;
    else
        log_warn("%s", err);
    return -1;
}

/* Brings everything sent to Redis to an end and leaves the connection idle: the batch in
 * flight is confirmed or written again, the batch being checked is written synchronously.
 * Used on the rare paths (failures, rebalances, reload, shutdown). */
static int loop_settle(loop_t *l)
{
    loop_confirm(l);
    if (l->checking && l->checking_sent) {
        sink_begin_discard(l->sink);
        l->checking_sent = false;
    }
    if (l->committing) {
        if (loop_write(l, l->committing) != 0)
            return -1;
        loop_give_spare(l, l->committing);
        l->committing = NULL;
    }
    if (l->checking) {
        if (loop_write(l, l->checking) != 0)
            return -1;
        loop_give_spare(l, l->checking);
        l->checking = NULL;
    }
    return 0;
}

/* Moves the pipeline one step: confirm the batch in flight, turn the checked batch into a
 * transaction, and (with fill) send the reads of the batch being filled. */
static int loop_advance(loop_t *l, bool fill)
{
    char err[1024] = "";
    /* After a failure a stage may hold a batch that is no longer sent: redo synchronously. */
    if ((l->committing && !l->committing_sent) || (l->checking && !l->checking_sent)) {
        if (loop_settle(l) != 0)
            return -1;
    } else if (loop_confirm(l) != 0 && loop_settle(l) != 0) {
        return -1;
    }
    if (l->checking) {
        batch_t *b = l->checking;
        tally_t *tally = NULL;
        struct sink_fenced fenced[256];
        size_t n_fenced = 0;
        int64_t now = wall_ms();
        l->checking_sent = false;
        int begun = sink_begin_read(l->sink, b, loop_owned, l, now, fenced, 256, &n_fenced, err,
                                    sizeof err);
        if (begun != 0) {
            if (begun < 0)
                log_warn("%s", err);
            return loop_settle(l); /* 1: another writer changed what we cached: redo */
        }
        loop_drop_fenced(l, b, fenced, n_fenced);
        if (batch_message_count(b) == 0) {
            sink_abort(l->sink);
            loop_give_spare(l, b);
            l->checking = NULL;
        } else if (loop_wait_dlq(l, b) != 0 || !(tally = loop_aggregate_checked(l, b)) ||
                   loop_apply_deals(l, b, tally) != 0 ||
                   sink_commit_send(l->sink, b, tally, now, err, sizeof err) != 0) {
            if (err[0])
                log_warn("%s", err);
            sink_abort(l->sink);
            return loop_settle(l);
        } else {
            l->committing = b;
            l->committing_sent = true;
            l->committing_started_us = l->checking_started_us;
            l->checking = NULL;
        }
    }
    if (fill && batch_message_count(l->batch)) {
        l->checking_started_us = mono_us();
        /* The reads must cover every hash the batch can touch. */
        if (agg_slot(l, l->batch)->stale && !loop_aggregate(l, l->batch, true)) {
            log_warn("out of memory aggregating a batch");
            return -1;
        }
        if (sink_begin_send(l->sink, l->batch, agg_slot(l, l->batch)->tally, err, sizeof err) !=
            0) {
            log_warn("%s", err);
            return -1; /* the batch stays being filled; retried after the backoff */
        }
        l->checking = l->batch;
        l->checking_sent = true;
        l->checking_sent_ms = wall_ms();
        l->batch = loop_take_spare(l);
    }
    return 0;
}

/* Flushes everything held. wait=true: synchronously, leaving nothing in flight. */
static int loop_flush(loop_t *l, bool wait)
{
    if (!wait)
        return loop_advance(l, true);
    if (loop_settle(l) != 0)
        return -1;
    if (loop_write(l, l->batch) != 0)
        return -1;
    return 0;
}

static size_t loop_held(const loop_t *l)
{
    return batch_message_count(l->batch) +
           (l->checking ? batch_message_count(l->checking) : 0) +
           (l->committing ? batch_message_count(l->committing) : 0);
}

/* Flushes (or, with settle_only, just confirms the batch in flight); on failure pauses
 * consumption and schedules a retry with exponential backoff. */
static void loop_try_flush(loop_t *l, int64_t now, bool fill)
{
    if (loop_advance(l, fill) == 0) {
        if (l->stalled) {
            log_info("nothing held is pending any more after %.1f s; consumption resumed",
                     (double)(wall_ms() - l->stalled_since_ms) / 1000.0);
            l->stalled = false;
            l->backoff_ms = 0;
            source_resume_all(l->src);
        }
        return;
    }
    if (!l->stalled) {
        l->stalled = true;
        l->stalled_since_ms = now;
        source_pause_all(l->src);
    }
    l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : BACKOFF_FIRST_MS;
    if (l->backoff_ms > BACKOFF_MAX_MS)
        l->backoff_ms = BACKOFF_MAX_MS;
    l->retry_at_ms = wall_ms() + l->backoff_ms;
    /* The line before this one says why (redis error, DLQ not acknowledged, conflicts). */
    log_warn("redis %s: flush failed, consumption paused, %zu messages held; retrying in %.1f s",
             sink_address(l->sink), loop_held(l), l->backoff_ms / 1000.0);
}

static void loop_set_world(loop_t *l)
{
    struct evaluate_world w = {
        .cfg = l->rt.cfg,
        .targets = l->rt.targets,
        .team_zones = l->rt.team_zones,
        .default_zone = l->rt.default_zone,
        .org_zone = l->rt.org_zone,
    };
    evaluate_set_world(l->evaluator, &w);
}

static void loop_reload(loop_t *l)
{
    static char err[16384];
    config_t *cfg = NULL;
    if (config_load_file(l->config_path, &cfg, err, sizeof err) != 0) {
        log_error("reload of %s rejected, the running configuration stays in force:\n%s",
                  l->config_path, err);
        l->reloads_rejected++;
        return;
    }
    if (config_check_secret_exposure(l->config_path, cfg, err, sizeof err))
        log_warn("%s", err);
    const config_t *old = l->rt.cfg;
    if (strcmp(old->kafka_brokers, cfg->kafka_brokers) || strcmp(old->kafka_group, cfg->kafka_group) ||
        strcmp(old->redis_host, cfg->redis_host) || old->redis_port != cfg->redis_port ||
        !config_same_sentinels(old, cfg) ||
        old->redis_db != cfg->redis_db || strcmp(old->redis_prefix, cfg->redis_prefix) ||
        old->n_kafka_topics != cfg->n_kafka_topics)
        log_warn("reload: kafka brokers/group/topics and redis address/db/prefix cannot change "
                 "live; restart kpid to apply them");
    if ((old->metrics_listen == NULL) != (cfg->metrics_listen == NULL) ||
        (old->metrics_listen && strcmp(old->metrics_listen, cfg->metrics_listen) != 0))
        log_warn("reload: metrics.listen cannot change live; restart kpid to apply it");
    /* Counted so far under the old rules: flush before switching. */
    if (!l->stalled)
        loop_flush(l, true);
    struct runtime rt;
    if (runtime_build(&rt, cfg, err, sizeof err) != 0) {
        log_error("reload of %s rejected: %s", l->config_path, err);
        l->reloads_rejected++;
        return;
    }
    runtime_release(&l->rt);
    l->rt = rt;
    sink_set_funnel(l->sink, l->rt.deal_rules, l->rt.cfg->stages, l->rt.cfg->n_stages);
    loop_set_world(l);
    notify_reconfigure(l->notify, l->rt.cfg);
    l->next_full_eval_ms = 0; /* new targets and rules: evaluate everyone now */
    l->last_full_event_ms = -1;
    enum log_level level;
    if (log_level_parse(l->rt.cfg->log_level, &level) == 0)
        log_set_level(level);
    log_info("reloaded %s: %zu teams, %zu managers", l->config_path, l->rt.cfg->n_teams,
             l->rt.cfg->n_managers);
    l->reloads_ok++;
}

/* Once per wall-clock hour (and at start): move every manager's rolling windows. */
static void loop_roll_windows(loop_t *l, int64_t now)
{
    int64_t hour = now / TALLY_HOUR_MS;
    if (hour == l->rolling_hour_done || l->stalled || now < l->rolling_retry_ms ||
        loop_settle(l) != 0)
        return;
    char err[512];
    int rc = sink_rolling_advance(l->sink, now, err, sizeof err);
    if (rc == 0) {
        l->rolling_hour_done = hour;
    } else if (rc < 0) {
        /* Redis is failing: the flush path reports it too, so say it once in a while. */
        log_warn("%s; rolling windows not moved to the new hour, retrying in 30 s", err);
        l->rolling_retry_ms = now + 30000;
    }
}

/* Alert evaluation: a full pass when due, else the managers flushes moved. Runs between
 * flushes, on its own connection; a failure waits EVAL_RETRY_MS (the flush path keeps
 * going: alerts are late, counters are not). */
static void loop_evaluate(loop_t *l, int64_t now)
{
    const config_t *cfg = l->rt.cfg;
    if (now < l->eval_retry_ms)
        return;
    bool full;
    if (cfg->alerts_event_clock)
        full = l->last_full_event_ms < 0 ||
               l->event_now_ms - l->last_full_event_ms >= cfg->alerts_eval_interval_s * 1000;
    else
        full = now >= l->next_full_eval_ms;
    bool touched = l->n_touched && now - l->last_touched_eval_ms >= TOUCHED_EVAL_EVERY_MS;
    if (!full && !touched)
        return;
    char err[512];
    struct evaluate_result res;
    int64_t started_us = mono_us();
    int rc = full ? evaluate_pass(l->evaluator, NULL, 0, now, &res, err, sizeof err)
                  : evaluate_pass(l->evaluator, (const char *const *)l->touched, l->n_touched,
                                  now, &res, err, sizeof err);
    double took_ms = (double)(mono_us() - started_us) / 1000.0;
    /* A pass holds up consumption while it runs: say so when it gets long. */
    if (took_ms > 1000.0)
        log_warn("alert evaluation of %zu managers took %.0f ms", res.managers, took_ms);
    else
        log_debug("alert evaluation (%s) of %zu managers took %.1f ms", full ? "everyone" : "touched",
                  res.managers, took_ms);
    if (rc != 0) {
        if (!l->eval_failing)
            log_warn("%s; alerts not evaluated, retrying every %d s", err, EVAL_RETRY_MS / 1000);
        l->eval_failing = true;
        l->eval_retry_ms = now + EVAL_RETRY_MS;
        return;
    }
    if (res.now_ms < 0) /* event clock before any event: ask again in a while */
        l->eval_retry_ms = now + EVAL_RETRY_MS;
    if (l->eval_failing)
        log_info("alert evaluation works again");
    l->eval_failing = false;
    l->last_touched_eval_ms = now;
    loop_forget_touched(l);
    if (full) {
        l->next_full_eval_ms = now + cfg->alerts_eval_interval_s * 1000;
        if (res.now_ms >= 0)
            l->last_full_event_ms = res.now_ms;
    }
    l->alerts_resolved += res.resolved;
    l->alerts_firing += res.alerts - res.resolved;
    if (res.alerts || res.queued) {
        log_info("alerts: %zu sent, %zu held for working hours (%zu managers evaluated)",
                 res.alerts, res.queued, res.managers);
        notify_kick(l->notify);
    }
}

/* --- observability: metrics, /healthz, systemd --- */

/* Once a second: probe Redis when idle, compute health, publish metrics, tell systemd. */
static void loop_observe(loop_t *l, int64_t now)
{
    /* With nothing in flight no flush would notice Redis going away: ask it. A failed probe
     * may have waited redis.timeout_ms (an address that drops packets): the loop spends at
     * most a third of its time probing. */
    if (!l->stalled && !l->checking && !l->committing && now >= l->next_probe_ms) {
        char err[256];
        if (sink_ping(l->sink, err, sizeof err) != 0) {
            if (!l->redis_err[0])
                log_warn("%s; /healthz fails until redis answers", err);
            snprintf(l->redis_err, sizeof l->redis_err, "%s", err);
            int64_t took = wall_ms() - now;
            l->next_probe_ms = now + (took > 500 ? 3 * took : 0);
        } else if (l->redis_err[0]) {
            log_info("redis %s answers again", sink_address(l->sink));
            l->redis_err[0] = '\0';
        }
    }
    /* Connected is not enough: a PING answered with an error (LOADING, NOAUTH) fails too. */
    bool redis_up = sink_connected(l->sink) && !l->redis_err[0];
    const char *kafka_why = NULL;
    bool kafka_up = source_kafka_up(l->src, &kafka_why);
    if (!l->ready && redis_up && kafka_up) {
        l->ready = true;
        l->next_status_ms = 0;
        sd_notify(0, "READY=1");
    }

    size_t owned = source_owned_count(l->src);
    if (owned > l->lags_cap) {
        struct source_lag *a = realloc(l->lags, owned * sizeof *a);
        if (a)
            l->lags = a;
        struct metrics_lag *b = realloc(l->mlags, owned * sizeof *b);
        if (b)
            l->mlags = b;
        if (a && b)
            l->lags_cap = owned;
    }
    size_t n_lags = l->lags_cap ? source_lags(l->src, l->lags, l->lags_cap) : 0;
    int64_t lag = n_lags == owned ? 0 : -1; /* -1: not known for every partition yet */
    for (size_t i = 0; i < n_lags; i++) {
        l->mlags[i] = (struct metrics_lag){l->lags[i].topic, l->lags[i].partition, l->lags[i].lag};
        if (lag >= 0)
            lag += l->lags[i].lag;
    }

    struct metrics_values *v = &l->mv;
    struct sink_stats ss;
    struct notify_stats ns;
    sink_get_stats(l->sink, &ss);
    notify_get_stats(l->notify, &ns);
    v->events[METRICS_APPLIED] = l->total.applied - l->total.internal;
    v->events[METRICS_INTERNAL] = l->total.internal;
    v->events[METRICS_INVALID] = l->total.invalid;
    v->events[METRICS_DUPLICATE] = l->total.duplicate;
    v->dedup_hits = l->total.duplicate;
    v->flushes = l->total.flushes;
    v->flush_conflicts = l->total.conflicts;
    v->redis_errors = ss.errors;
    v->redis_reconnects = ss.reconnects;
    v->alerts_firing = l->alerts_firing;
    v->alerts_resolved = l->alerts_resolved;
    v->deliveries[METRICS_KAFKA] = ns.kafka_delivered;
    v->deliveries[METRICS_WEBHOOK] = ns.webhook_delivered;
    v->delivery_failures[METRICS_KAFKA] = ns.kafka_failed;
    v->delivery_failures[METRICS_WEBHOOK] = ns.webhook_failed;
    v->alerts_lost = ns.lost;
    v->reloads_ok = l->reloads_ok;
    v->reloads_rejected = l->reloads_rejected;
    v->redis_up = redis_up;
    v->kafka_up = kafka_up;
    v->paused = l->stalled;
    v->partitions_owned = owned;
    v->last_flush_s = (double)l->last_flush_ms / 1000.0;
    v->lags = l->mlags;
    v->n_lags = n_lags;

    if (l->http) {
        char why[512] = "";
        if (!kafka_up)
            snprintf(why, sizeof why, "kafka %s: %s", l->rt.cfg->kafka_brokers, kafka_why);
        else if (!redis_up)
            snprintf(why, sizeof why, "%s",
                     l->redis_err[0] ? l->redis_err : "redis: not connected");
        else if (l->stalled)
            snprintf(why, sizeof why, "consumption paused: flushes failing, %zu messages held",
                     loop_held(l));
        if (metrics_render(v, &l->mtext) != 0)
            log_warn("out of memory rendering /metrics; serving the previous text");
        metrics_server_publish(l->http, &l->mtext, why[0] ? why : NULL);
    }

    if (now >= l->next_status_ms) {
        double secs = (double)(now - l->status_at_ms) / 1000.0;
        struct metrics_status st = {
            .ready = l->ready,
            .paused = l->stalled,
            .redis_up = redis_up,
            .kafka_up = kafka_up,
            .redis_address = sink_address(l->sink),
            .kafka_why = kafka_why,
            .events_per_s = l->status_at_ms && secs > 0
                                ? (double)(l->total.consumed - l->status_consumed) / secs
                                : 0,
            .lag = lag,
            .partitions = owned,
            .held = loop_held(l),
        };
        char line[300];
        metrics_status_line(&st, line, sizeof line);
        sd_notifyf(0, "STATUS=%s", line);
        l->status_consumed = l->total.consumed;
        l->status_at_ms = now;
        l->next_status_ms = now + STATUS_EVERY_MS;
    }
}

/* Every iteration: the heartbeat /healthz checks and the systemd watchdog. Only the loop
 * feeds them, so a loop stuck anywhere stops both. */
static void loop_alive(loop_t *l)
{
    if (l->http)
        metrics_server_heartbeat(l->http);
    if (l->watchdog_us) {
        int64_t t = mono_us();
        if (t >= l->next_kick_us) {
            sd_notify(0, "WATCHDOG=1");
            l->next_kick_us = t + (int64_t)(l->watchdog_us / 2);
        }
    }
}

/* RELOADING=1 before a reload, READY=1 after it (only once READY=1 was sent at all). */
static void loop_notify_reload(loop_t *l, bool begin)
{
    if (!l->ready)
        return;
    if (begin)
        sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%lld\nSTATUS=reloading %s",
                   (long long)mono_us(), l->config_path);
    else
        sd_notify(0, "READY=1");
    l->next_status_ms = 0;
}

static void loop_cron(loop_t *l, int64_t now)
{
    l->next_cron_ms = now + 1000;
    log_tick();
    loop_roll_windows(l, now);
    loop_check_owned(l, now);
    if (l->claims_pending) {
        l->claims_pending = false;
        if (source_retry_claims(l->src) != 0)
            l->claims_pending = true;
    }
    loop_observe(l, now);
    if (now >= l->next_stats_ms) {
        struct stats d = l->total, p = l->at_last_stats;
        double secs = (STATS_EVERY_MS + (now - l->next_stats_ms)) / 1000.0;
        if (d.consumed != p.consumed || l->stalled)
            log_info("last %.0f s: %llu messages (%.0f/s): %llu applied, %llu invalid, "
                     "%llu duplicate; %llu flushes (avg %.1f ms, max %.1f ms); "
                     "%zu partitions owned%s",
                     secs, (unsigned long long)(d.consumed - p.consumed),
                     (double)(d.consumed - p.consumed) / secs,
                     (unsigned long long)(d.applied - p.applied),
                     (unsigned long long)(d.invalid - p.invalid),
                     (unsigned long long)(d.duplicate - p.duplicate),
                     (unsigned long long)(d.flushes - p.flushes),
                     d.flushes > p.flushes
                         ? (double)(d.flush_us - p.flush_us) / 1000.0 / (double)(d.flushes - p.flushes)
                         : 0.0,
                     (double)d.flush_us_max / 1000.0, source_owned_count(l->src),
                     l->stalled ? "; PAUSED: redis not accepting writes" : "");
        struct notify_stats ns;
        notify_get_stats(l->notify, &ns);
        if (memcmp(&ns, &l->notify_at_last_stats, sizeof ns) != 0)
            log_info("alerts delivered so far: kafka %llu (%llu failed attempts), webhook %llu "
                     "(%llu failed attempts), %llu lost to the stream cap",
                     (unsigned long long)ns.kafka_delivered, (unsigned long long)ns.kafka_failed,
                     (unsigned long long)ns.webhook_delivered,
                     (unsigned long long)ns.webhook_failed, (unsigned long long)ns.lost);
        l->notify_at_last_stats = ns;
        l->at_last_stats = l->total;
        l->total.flush_us_max = 0;
        l->next_stats_ms = now + STATS_EVERY_MS;
    }
}

loop_t *loop_new(config_t *cfg, const char *config_path, char *err, size_t errlen)
{
    loop_t *l = calloc(1, sizeof *l);
    if (!l) {
        config_free(cfg);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (runtime_build(&l->rt, cfg, err, errlen) != 0) {
        free(l);
        return NULL;
    }
    cfg = l->rt.cfg;
    l->config_path = strdup(config_path);
    l->parser = event_parser_new();
    bool aggs_ok = true;
    l->batch = batch_new();
    l->spares[0] = batch_new();
    l->spares[1] = batch_new();
    const batch_t *objects[3] = {l->batch, l->spares[0], l->spares[1]};
    for (int i = 0; i < 3; i++) {
        l->aggs[i].batch = objects[i];
        aggs_ok &= (l->aggs[i].tally = tally_new()) != NULL;
    }
    struct rconn_target redis;
    rconn_target_view(cfg, &redis);
    struct sink_params sp = {
        .redis = &redis,
        .prefix = cfg->redis_prefix,
        .group = cfg->kafka_group,
        .topics = (const char *const *)cfg->kafka_topics,
        .n_topics = cfg->n_kafka_topics,
        .dedup_window_ms = cfg->dedup_window_s * 1000,
        .retention_day_s = cfg->retention_day_s,
        .retention_week_s = cfg->retention_week_s,
    };
    l->sink = sink_new(&sp);
    if (!l->config_path || !l->parser || !aggs_ok || !l->batch || !l->spares[0] || !l->spares[1] || !l->sink) {
        snprintf(err, errlen, "out of memory");
        loop_free(l);
        return NULL;
    }
    sink_set_funnel(l->sink, l->rt.deal_rules, cfg->stages, cfg->n_stages);
    l->last_full_event_ms = -1;
    l->touched_set = dedup_new();
    l->evaluator = evaluate_new();
    if (!l->touched_set || !l->evaluator) {
        snprintf(err, errlen, "out of memory");
        loop_free(l);
        return NULL;
    }
    loop_set_world(l);
    if (!(l->notify = notify_new(cfg, err, errlen))) {
        loop_free(l);
        return NULL;
    }
    char rerr[512];
    if (sink_connect(l->sink, rerr, sizeof rerr) != 0)
        log_warn("%s; will keep retrying (is redis-server running and reachable?)", rerr);
    l->src = source_new(cfg, &owner_ops, l, err, errlen);
    if (!l->src) {
        loop_free(l);
        return NULL;
    }
    l->mv.version = KPID_VERSION;
    l->mv.start_time_s = (double)wall_ms() / 1000.0;
    if (cfg->metrics_listen && !(l->http = metrics_server_start(cfg->metrics_listen, err, errlen))) {
        loop_free(l);
        return NULL;
    }
    if (cfg->metrics_listen)
        log_info("metrics: http://%s/metrics and /healthz", cfg->metrics_listen);
    if (sd_watchdog_enabled(0, &l->watchdog_us) <= 0)
        l->watchdog_us = 0;
    return l;
}

void loop_set_rebuild(loop_t *l) { l->rebuild = true; }

bool loop_rebuild_caught_up(const loop_t *l) { return l->rebuild_caught_up; }

/* Every partition owned and consumed up to the high watermark its last fetch reported,
 * nothing held: what the topics held when the rebuild started is in Redis. */
static bool loop_check_caught_up(loop_t *l)
{
    size_t owned = source_owned_count(l->src);
    if (l->stalled || loop_held(l) || l->checking || l->committing || owned == 0)
        return false;
    struct source_lag *lags = malloc(owned * sizeof *lags);
    size_t n = lags ? source_lags(l->src, lags, owned) : 0;
    bool at_end = n == owned;
    for (size_t i = 0; at_end && i < n; i++)
        at_end = lags[i].lag == 0;
    free(lags);
    if (!at_end)
        return false;
    /* Last, as it asks the cluster: are the owned partitions all there are? */
    return source_partition_count(l->src) == owned;
}

void loop_free(loop_t *l)
{
    if (!l)
        return;
    source_close(l->src); /* may flush through loop_revoke: everything else still alive */
    sink_free(l->sink);
    if (l->notify)
        notify_free(l->notify, NOTIFY_DRAIN_MS);
    evaluate_free(l->evaluator);
    loop_forget_touched(l);
    free(l->touched);
    dedup_free(l->touched_set);
    batch_free(l->batch);
    batch_free(l->checking);
    batch_free(l->committing);
    for (int i = 0; i < 3; i++)
        batch_free(l->spares[i]);
    for (int i = 0; i < 3; i++)
        tally_free(l->aggs[i].tally);
    event_parser_free(l->parser);
    runtime_release(&l->rt);
    free(l->config_path);
    metrics_server_stop(l->http);
    metrics_buf_free(&l->mtext);
    free(l->lags);
    free(l->mlags);
    free(l);
}

int loop_run(loop_t *l)
{
    const config_t *cfg = l->rt.cfg;
    log_info("kpid %s: consuming %zu topic(s) from %s as group %s into redis %s prefix %s",
             KPID_VERSION, cfg->n_kafka_topics, cfg->kafka_brokers, cfg->kafka_group,
             sink_address(l->sink), cfg->redis_prefix);
    l->next_stats_ms = wall_ms() + STATS_EVERY_MS;
    while (!stop_requested) {
        int64_t now = wall_ms();
        if (reload_requested) {
            reload_requested = 0;
            if (l->rebuild) {
                log_warn("SIGHUP ignored: a rebuild runs with the configuration it started with");
            } else {
                loop_notify_reload(l, true);
                loop_reload(l);
                loop_notify_reload(l, false);
            }
        }
        if (now >= l->next_cron_ms)
            loop_cron(l, now);
        int64_t wait = 100;
        if (l->stalled)
            wait = l->retry_at_ms - now;
        else if (batch_message_count(l->batch))
            wait = l->batch_first_ms + l->rt.cfg->batch_max_ms - now;
        wait = wait < 0 ? 0 : wait > 100 ? 100 : wait;
        source_message_t msg;
        /* Messages still arriving while paused were fetched before the pause: keep them,
         * dropping one would skip it for good (the consumer position is past it). */
        int got = source_poll(l->src, (int)wait, &msg);
        if (got == 1) {
            loop_take(l, &msg, now);
            source_message_done(l->src, &msg);
        }
        now = wall_ms();
        loop_alive(l);
        if (l->rebuild) {
            /* History must not page anyone: no evaluation, no delivery. */
            if (now >= l->rebuild_check_ms) {
                l->rebuild_check_ms = now + 500;
                if (loop_check_caught_up(l)) {
                    l->rebuild_caught_up = true;
                    break;
                }
            }
        } else {
            notify_poll(l->notify, now);
            if (!l->stalled)
                loop_evaluate(l, now);
        }
        size_t held = batch_message_count(l->batch);
        if (l->stalled) {
            if (now >= l->retry_at_ms)
                loop_try_flush(l, now, true);
        } else if (held && (held >= (size_t)l->rt.cfg->batch_max_events ||
                            batch_bytes(l->batch) >= MAX_BATCH_BYTES ||
                            now - l->batch_first_ms >= l->rt.cfg->batch_max_ms)) {
            loop_try_flush(l, now, true);
        } else if ((l->checking && !l->committing &&
                    now - l->checking_sent_ms >= PIPELINE_STEP_MS) ||
                   (l->committing && got == 0)) {
            /* Keep the pipeline moving between flushes, so an event does not wait for the
             * next batch to become visible; but never block on a transaction Redis may
             * still be executing while messages are waiting to be parsed. */
            loop_try_flush(l, now, false);
        }
    }
    sd_notifyf(0, "STOPPING=1\nSTATUS=stopping: flushing %zu held messages", loop_held(l));
    log_info("stopping: flushing %zu held messages", batch_message_count(l->batch));
    for (int attempt = 0; attempt < 3; attempt++) {
        if (loop_flush(l, true) == 0)
            break;
        nanosleep(&(struct timespec){1, 0}, NULL);
    }
    size_t left = loop_held(l);
    if (left)
        log_warn("%zu messages not flushed; their offsets were not stored, so they will be "
                 "consumed again at the next start",
                 left);
    return 0;
}
