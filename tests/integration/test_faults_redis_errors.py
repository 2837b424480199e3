"""Disk-full-like Redis errors: Redis up and answering, but refusing every write, with OOM
(maxmemory reached under noeviction) or MISCONF (the last RDB save failed and
stop-writes-on-bgsave-error is on). Every flush transaction is then aborted (EXECABORT):
kpid must pause consumption and say so (log, /healthz 503, kpid_paused 1), keep the
messages it holds, never move the stored offsets, and resume by itself once Redis takes
writes again, ending with exactly the clean run's Redis contents and the DLQ complete
(faultlib)."""

import os
import time

import pytest

import faultlib
import kpitest
import test_metrics

SEED = 7171
PARTITIONS = 4
PAUSE_HOLD_S = 2.5  # how long the stored offsets must stay still while paused


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    yield from faultlib.module_stream(tmp_path_factory, "redis-errors-stream", seed=SEED,
                                      count=40000, partitions=PARTITIONS)


def start_run(env, stream, name):
    """kpid with small batches (the stream must still be running when writes are refused)
    and the metrics endpoint on a free port."""
    redis = env.redis()
    group, dlq = stream.new_run(name)
    port = kpitest.free_port()
    cfg = stream.config(redis, group, dlq, batch={"max_events": 50, "max_ms": 10},
                        metrics={"listen": "127.0.0.1:%d" % port})
    kpid = env.kpid(cfg, name="kpid-" + name)
    return redis, redis.client(), group, dlq, kpid, port


def still_view(c, group, what):
    """meta and stored offsets, with faultlib.check_consistent's invariants. Plain reads,
    not its MULTI: under OOM Redis refuses every command queued in a transaction, and
    nothing can write in between anyway."""
    m = kpitest.meta(c)
    offsets = {int(k): int(v) for k, v in
               c.hgetall("%s:offsets:%s:%s" % (faultlib.PREFIX, group, kpitest.EVENTS_TOPIC)).items()}
    consumed = kpitest.consumed_count(m)
    assert consumed == sum(offsets.values()), (
        "%s: kpi:meta counts %d consumed messages, stored offsets cover %d (%r)"
        % (what, consumed, sum(offsets.values()), offsets))
    applied = int(m.get("events_applied", 0))
    dedup = c.zcard(faultlib.PREFIX + ":dedup")
    assert dedup == applied, "%s: kpi:dedup holds %d ids, events_applied=%d" % (what, dedup, applied)
    return m, offsets


def check_paused(stream, kpid, c, group, port, reason, mark, what):
    """kpid logged `reason` and the pause (after `mark`), /healthz is 503, kpid_paused is 1,
    and the stored offsets (and counters) stay still while Redis refuses writes."""
    n = len(stream.msgs)
    kpid.wait_log(reason, timeout=20, start=mark)
    kpid.wait_log(r"flush failed, consumption paused", timeout=20, start=mark)
    assert kpid.running(), kpid.log_tail()
    test_metrics.wait_metrics(port, lambda s: test_metrics.value(s, "kpid_paused") == 1,
                              "kpid_paused 1", kpid)
    status, _, body = test_metrics.http_get(port, "/healthz")
    assert status == 503, "/healthz answered %d %r while redis refuses writes" % (status, body)
    assert "paused" in body, body
    meta, offsets = still_view(c, group, what + ": paused")
    assert kpitest.consumed_count(meta) < n, "the stream ended before writes were refused"
    time.sleep(PAUSE_HOLD_S)
    meta2, offsets2 = still_view(c, group, what + ": still paused")
    assert offsets2 == offsets, (
        "%s: stored offsets moved while redis refused writes: %r -> %r" % (what, offsets, offsets2))
    assert meta2 == meta, "%s: kpi:meta moved while paused: %r -> %r" % (what, meta, meta2)
    assert kpid.running(), kpid.log_tail()
    assert not faultlib.log_lines(kpid, r"consumption resumed", mark), kpid.log_tail()
    assert test_metrics.value(test_metrics.scrape(port)[0], "kpid_paused") == 1


def finish(stream, kpid, c, group, dlq, port, mark, what):
    """Redis takes writes again: kpid resumes by itself, health recovers, the end state
    equals the clean run's."""
    kpid.wait_log(r"consumption resumed", timeout=40, start=mark)
    test_metrics.wait_metrics(port, lambda s: test_metrics.value(s, "kpid_paused") == 0,
                              "kpid_paused 0", kpid)
    stream.wait_consumed(c, group, kpid, timeout=90)
    test_metrics.wait_healthy(kpid, port)
    assert kpid.stop() == 0, kpid.log_tail()
    stream.check_run(c, group, dlq, what)


def expect_write_refused(c, prefix):
    """A write of our own is refused with `prefix` (and never left behind if it was not)."""
    key = "kpitest:write-probe"
    try:
        c.set(key, "1")
    except kpitest.redis_mod.exceptions.ResponseError as e:
        assert str(e).startswith(prefix), "write refused with %r, not %s" % (str(e), prefix)
        return
    c.delete(key)
    raise AssertionError("redis accepted a write; expected %s" % prefix)


def test_redis_oom(env, stream):
    """maxmemory set just above what Redis uses, noeviction: kpid's writes fill it and
    fail with OOM."""
    n = len(stream.msgs)
    redis, c, group, dlq, kpid, port = start_run(env, stream, "redis-oom")
    test_metrics.wait_healthy(kpid, port)
    faultlib.wait_progress(c, n // 4, kpid, timeout=60)
    mark = kpid.log_size()
    c.config_set("maxmemory-policy", "noeviction")
    used = int(c.info("memory")["used_memory"])
    c.config_set("maxmemory", used + 256 * 1024)
    kpitest.tally_fault("redis refusing writes: OOM")
    try:
        # kpid's own flushes fill Redis up to the limit and are refused from then on...
        kpid.wait_log(r"OOM command not allowed", timeout=20, start=mark)
        # ...but used_memory counts client buffers and drops between two flushes, so the
        # limit is pinned well below it: the paused state must not depend on that jitter.
        # (kpid may have resumed in such a dip before this; it must pause again after.)
        c.config_set("maxmemory", int(c.info("memory")["used_memory"]) // 2)
        mark = kpid.log_size()
        expect_write_refused(c, "OOM")
        check_paused(stream, kpid, c, group, port, r"OOM command not allowed", mark, "OOM")
    finally:
        c.config_set("maxmemory", 0)
    finish(stream, kpid, c, group, dlq, port, mark, "redis OOM (maxmemory, noeviction)")


def bgsave(c, status, timeout=20):
    """BGSAVE and wait for it to end with rdb_last_bgsave_status == status."""
    c.bgsave()

    def ended():
        p = c.info("persistence")
        return not p["rdb_bgsave_in_progress"] and p
    p = kpitest.wait_for(ended, timeout, "BGSAVE to end", interval=0.05)
    assert p["rdb_last_bgsave_status"] == status, p


def test_redis_misconf(env, stream):
    """The RDB save fails, with save points configured and stop-writes-on-bgsave-error on:
    writes fail with MISCONF until a save succeeds. The save is made to fail in a way
    that holds as root (who may write into read-only directories): the dump file's name
    is taken by a directory, so renaming the finished temp file onto it fails (EISDIR)."""
    n = len(stream.msgs)
    redis, c, group, dlq, kpid, port = start_run(env, stream, "redis-misconf")
    test_metrics.wait_healthy(kpid, port)
    faultlib.wait_progress(c, n // 4, kpid, timeout=60)
    mark = kpid.log_size()
    # (dir and dbfilename are protected configs in Redis 7: the file name stays, a
    # directory takes it.)
    dump = os.path.join(redis.dir, c.config_get("dbfilename")["dbfilename"])
    assert not os.path.exists(dump), dump
    os.mkdir(dump)
    c.config_set("save", "3600 1")
    c.config_set("stop-writes-on-bgsave-error", "yes")
    try:
        bgsave(c, "err")
        kpitest.tally_fault("redis refusing writes: MISCONF")
        expect_write_refused(c, "MISCONF")
        check_paused(stream, kpid, c, group, port, r"MISCONF", mark, "MISCONF")
    finally:
        os.rmdir(dump)
    bgsave(c, "ok")
    c.config_set("save", "")
    finish(stream, kpid, c, group, dlq, port, mark, "redis MISCONF (failed RDB save)")
