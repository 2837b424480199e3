/* sink internals shared by sink.c (transport, claims, dedup, offsets) and sink_funnel.c
 * (deal state, pipelines, derived figures, leaderboards, rolling windows). Not an API. */
#ifndef KPI_SINK_IMPL_H
#define KPI_SINK_IMPL_H

#include <hiredis/hiredis.h>
#include <stdbool.h>

#include "dealset.h"
#include "dedup.h"
#include "keys.h"
#include "rconn.h"
#include "sink.h"
#include "tally.h"

struct sink {
    struct rconn_target target; /* owned copy */
    char *prefix, *group;
    int timeout_ms;
    char **topics;
    size_t n_topics;
    int64_t dedup_window_ms, retention_day_s, retention_week_s;

    redisContext *redis; /* NULL while disconnected */
    uint64_t errors, reconnects; /* for metrics: failures of this connection, reconnects after one */
    bool ever_connected;
    bool readonly_seen; /* a READONLY reply: the server became a replica; reconnect */
    char address[400];  /* the server connected to, or how it is looked up */
    uint64_t commands;
    bool watching;
    int64_t last_event_ts; /* read under WATCH in sink_begin */
    /* A commit sent and not yet answered: how many replies precede EXEC's, and what it
     * adds to the meta counters if it commits. */
    bool in_flight;
    size_t in_flight_queued;
    struct sink_totals in_flight_totals;

    char key_meta[KEYS_MAX], key_dedup[KEYS_MAX], key_managers[KEYS_MAX], key_updates[KEYS_MAX];
    char (*key_offsets)[KEYS_MAX]; /* per topic */
    char (*key_fence)[KEYS_MAX];

    /* Scratch reused by every flush: argument vectors and in-batch sets. */
    const char **argv;
    size_t *argvlen;
    size_t argv_cap;
    dedup_t *seen, *managers;
    char *json;
    size_t json_cap;
    char (*part_ids)[12]; /* partition numbers as strings, by batch partition index */
    size_t part_ids_cap;
    size_t *candidates;   /* batch event indices asked about with ZMSCORE */
    size_t candidates_cap, n_candidates;
    bool *present;        /* topics present in the batch */
    size_t n_hmget;
    /* A begin sent and not yet read: its replies follow those of any commit in flight. */
    bool begin_pending;
    const batch_t *begin_batch;

    /* The funnel (sink_funnel.c). Rules and stages are borrowed from the running
     * configuration (sink_set_funnel). */
    const deals_rules_t *rules;
    const struct config_stage *stages;
    size_t n_stages;
    size_t inputs[TALLY_COUNTERS]; /* counter indices the derived figures read */
    const char *input_names[TALLY_COUNTERS];
    size_t n_inputs;
    agg_t *scratch;          /* distinct leaderboard keys of one flush */
    dealset_t *deals;        /* the batch's deals: ids at begin_send, states at begin_read */
    /* Current values read at begin, keyed like the tally's buckets; SINK_UNKNOWN where a
     * value was not read (or the read failed): such a field is written with HINCRBY. */
    agg_t *base;             /* per counters hash of the batch: the counters it may change */
    size_t *req, n_req, req_cap;     /* counter indices asked for, all reads in a row */
    size_t *req_start, req_start_cap; /* where each read's indices start in req */
    agg_t *windows;          /* scratch: rolling-window deltas per manager */
    int64_t rolling_hour_ms; /* kpi:meta rolling_hour_ms read at begin; -1 when absent */
    size_t n_deal_reads, n_base_reads;

    /* The values this process's own flushes left in Redis, keyed like base. Every flush
     * increments kpi:meta flush_seq: while it equals cache_seq, nobody else has written
     * since, and a hash whose needed fields are all cached is not read at all. */
    agg_t *cache_counters, *cache_hours, *cache_rolling;
    int64_t cache_seq;   /* flush_seq after our last committed flush; -1: cache empty */
    int64_t pending_seq; /* flush_seq the commit in flight leaves */
    int64_t seen_seq;    /* flush_seq read by the last begin (-1: absent) */
    bool cache_trusted;  /* the last begin found flush_seq == cache_seq */
    size_t n_skipped;    /* hashes this begin took from the cache instead of reading */
    /* Fields written with HINCRBY while unknown: EXEC's reply (element `index`) tells their
     * new value, which goes into the cache `slot`. */
    struct sink_learn {
        size_t index;
        int64_t *slot;
    } *learn;
    size_t n_learn, learn_cap;
    long mq; /* funnel commands queued so far in the transaction being built */
};


#define SINK_UNKNOWN INT64_MIN

/* Transport helpers (sink.c). */
void sink_disconnect(sink_t *s);
redisReply *sink_read(sink_t *s, char *err, size_t errlen);
int sink_simple(sink_t *s, char *err, size_t errlen, int argc, const char **argv);
int sink_argv_reserve(sink_t *s, size_t n);
int sink_append_argv(sink_t *s, int argc);
void sink_arg(sink_t *s, size_t i, const char *str);
int sink_write_all(sink_t *s, char *err, size_t errlen);

/* Funnel parts of the flush (sink_funnel.c). Each returns the number of commands queued
 * (reads: whose replies the caller must read back in the same order), or -1 on OOM. */
int sink_funnel_begin_send(sink_t *s, batch_t *batch, const tally_t *tally);
/* Reads the replies queued by sink_funnel_begin_send; -1 when the connection failed. */
int sink_funnel_begin_read(sink_t *s, char *err, size_t errlen);
/* (returns 1 when hashes were taken from the cache but another writer has flushed since:
 * the begin must be done again; the cache is forgotten) */
/* Appends the funnel writes to the open MULTI; returns commands queued or -1 on OOM. */
long sink_funnel_commit_append(sink_t *s, const tally_t *tally, int64_t now_ms);
/* How many replies sink_funnel_begin_send queued. */
size_t sink_funnel_read_count(const sink_t *s);
/* The commit in flight was answered (committed: its values are now Redis' values). */
void sink_funnel_commit_done(sink_t *s, bool committed);
/* Forgets every cached value (connection lost, another writer, rolling windows moved). */
void sink_funnel_forget(sink_t *s);
/* Reads the new values of fields written with HINCRBY from EXEC's reply (committed). */
void sink_funnel_learn(sink_t *s, const redisReply *exec);

#endif
