/* sink: Redis, written in one MULTI/EXEC per flush.
 *
 * A flush is two round trips:
 *   sink_begin   WATCH the keys every writer touches, then read what the batch needs to
 *                know: which event ids were already applied (sorted set <prefix>:dedup),
 *                whether this process still owns each partition (fence tokens), the stored
 *                state of the batch's deals, and the current values the derived figures of
 *                each touched hash are computed from.
 *   sink_commit  MULTI, counters + derived figures + deal states + pipelines + leaderboards
 *                + rolling windows + dedup ids + meta + offsets + change feed, EXEC.
 * Every flush writes <prefix>:meta, which every flush WATCHes: whatever a flush read is
 * still true when its EXEC runs, or the EXEC fails and the flush is redone.
 * If another writer changed a watched key in between, EXEC answers nil and the caller starts
 * over from sink_begin: flushes of several kpid are serialised, never interleaved.
 *
 * Fencing: a kpid that is assigned a partition bumps its token (sink_claim). A process
 * that lost the partition still holds the old token, so its next sink_begin reports the
 * partition fenced, and a flush already past sink_begin fails at EXEC because the token
 * key is watched. Either way it can never write that partition again. */
#ifndef KPI_SINK_H
#define KPI_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agg.h"
#include "batch.h"
#include "config.h"
#include "dealset.h"
#include "deals.h"
#include "tally.h"

typedef struct sink sink_t;

struct sink_params {
    const struct rconn_target *redis;
    const char *prefix;
    const char *group;
    const char *const *topics; /* topic names by index, as used in batch records */
    size_t n_topics;
    int64_t dedup_window_ms;
    int64_t retention_day_s;
    int64_t retention_week_s;
};

/* Copies every string of params. */
sink_t *sink_new(const struct sink_params *params);
void sink_free(sink_t *sink);

/* The stage rules and configured stages (borrowed: they must outlive their use, i.e. call
 * again after a configuration reload, between flushes). */
void sink_set_funnel(sink_t *sink, const deals_rules_t *rules, const struct config_stage *stages,
                     size_t n_stages);

/* Connects when not connected. 0, or -1 with an operator-facing reason in err. */
int sink_connect(sink_t *sink, char *err, size_t errlen);
bool sink_connected(const sink_t *sink);
/* "127.0.0.1:6379", for log lines. */
const char *sink_address(const sink_t *sink);

/* Nothing sent and unanswered: the connection can take a synchronous command. */
bool sink_idle(const sink_t *sink);

/* Reads the fence tokens and stored next offsets of partitions of one topic (-1 when
 * absent), for a check, not a claim: nothing is WATCHed or changed. */
int sink_read_owned(sink_t *sink, int topic, const int32_t *partitions, size_t n,
                    int64_t *tokens, int64_t *offsets, char *err, size_t errlen);

/* Takes ownership of partitions of one topic: increments each fence token and reads the
 * stored next offsets, atomically. offsets[i] = -1 when none is stored. */
int sink_claim(sink_t *sink, int topic, const int32_t *partitions, size_t n, int64_t *tokens,
               int64_t *offsets, char *err, size_t errlen);

/* What this process holds for one of the batch's partitions: its fence token, and the
 * next offset Redis is known to hold for it (-1: none). Returns false when not owned. */
struct sink_owned {
    int64_t token;
    int64_t written;
};
typedef bool (*sink_owner_fn)(void *ctx, int topic, int32_t partition, struct sink_owned *out);

enum sink_fence_kind {
    SINK_OTHER_OWNER,     /* another kpid claimed it since (a greater fence token) */
    SINK_ALREADY_WRITTEN, /* ours, and the stored offset covers this batch: a previous
                           * commit of it landed and only its reply was lost */
    SINK_REDIS_BEHIND,    /* ours, but Redis holds less than we wrote (a smaller token or
                           * offset): it lost acknowledged writes, e.g. a failover to a
                           * replica that was behind */
};

struct sink_fenced {
    int topic;
    int32_t partition;
    enum sink_fence_kind kind;
    int64_t stored_token, stored_offset; /* as read (-1: none), for the log */
};

/* First round trip. Marks duplicates (within the batch and against Redis) in the batch and
 * lists the partitions whose records must not be written (at most `max_fenced`): those this
 * process no longer owns, those an earlier, unanswered commit already wrote, and those
 * Redis lost writes of. Returns 0;
 * 1 when values this process had cached (instead of reading them) were changed by another
 * writer meanwhile: begin again, at once (the cache is forgotten, the next begin reads
 * everything); or -1 with err (connection dropped; the caller backs off and retries). */
int sink_begin(sink_t *sink, batch_t *batch, const tally_t *tally, sink_owner_fn owner_of,
               void *owner_ctx,
               int64_t now_ms, struct sink_fenced *fenced, size_t max_fenced, size_t *n_fenced,
               char *err, size_t errlen);

/* sink_begin in two halves, for pipelining: send the reads of a batch (they queue behind a
 * commit in flight, so they see its writes), and read them later, after sink_commit_wait of
 * that commit. sink_begin_discard drops a pending begin (and its WATCH).
 * tally: the batch as counted so far; the current values of every hash it touches are
 * read (the flush writes base + delta), so the final tally of the flush should touch a
 * subset of these hashes (any other hash is written with HINCRBY, and gets no figures). */
int sink_begin_send(sink_t *sink, batch_t *batch, const tally_t *tally, char *err,
                    size_t errlen);
int sink_begin_read(sink_t *sink, batch_t *batch, sink_owner_fn owner_of, void *owner_ctx,
                    int64_t now_ms, struct sink_fenced *fenced, size_t max_fenced,
                    size_t *n_fenced, char *err, size_t errlen);
void sink_begin_discard(sink_t *sink);

/* The deals of the batch with their stored state, valid from sink_begin(_read) until the
 * next begin: the caller applies the batch's deal events to them (deals_apply, marking
 * entries changed) and sink_commit writes the changed ones back. */
dealset_t *sink_deals(sink_t *sink);

enum sink_commit_result { SINK_COMMITTED, SINK_CONFLICT, SINK_FAILED };

struct sink_totals {
    uint64_t applied, duplicate, invalid, internal;
};

/* Second round trip: the whole batch in one MULTI/EXEC. The caller has dropped fenced
 * partitions, counted the non-duplicate events into tally and applied the deal events to
 * sink_deals. On SINK_COMMITTED *totals
 * holds what this flush added to <prefix>:meta. */
enum sink_commit_result sink_commit(sink_t *sink, batch_t *batch, const tally_t *tally,
                                    int64_t now_ms, struct sink_totals *totals, char *err,
                                    size_t errlen);

/* The same in two halves, so Redis can apply one batch while the next is consumed:
 * send the transaction without waiting (0, or -1 when the connection failed), then read
 * its answer. Only the begin of the next batch may be sent in between. */
int sink_commit_send(sink_t *sink, batch_t *batch, const tally_t *tally, int64_t now_ms,
                     char *err, size_t errlen);
bool sink_commit_pending(const sink_t *sink);
enum sink_commit_result sink_commit_wait(sink_t *sink, struct sink_totals *totals, char *err,
                                         size_t errlen);

/* Rolling windows (kpi:mgr:{m}:rolling) are kept for the UTC hour stored in kpi:meta
 * rolling_hour_ms. When the wall-clock hour has moved past it, this recomputes every
 * manager's windows from the per-hour sums for the new hour, drops hours older than 30 days
 * and stores the new hour, in one transaction. The connection must be idle. Returns 0 when
 * done (or nothing was due), 1 when another writer got in between (try again), -1 with err. */
int sink_rolling_advance(sink_t *sink, int64_t now_ms, char *err, size_t errlen);

/* Drops any WATCH (the caller abandoned a flush after sink_begin). */
void sink_abort(sink_t *sink);

/* For metrics: failures of the connection (failed connects, transport errors, timeouts)
 * and successful connects after the first, since sink_new. */
struct sink_stats {
    uint64_t errors, reconnects;
};
void sink_get_stats(const sink_t *sink, struct sink_stats *out);

/* Health probe for an idle connection: connects if needed and sends PING. 0 when Redis
 * answered (or the connection is busy with a flush, which probes it anyway), -1 with err. */
int sink_ping(sink_t *sink, char *err, size_t errlen);

/* Redis commands sent since start (for the benchmark's commands-per-event figure). */
uint64_t sink_commands_sent(const sink_t *sink);

#endif
