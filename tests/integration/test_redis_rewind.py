"""Redis going back in time under a running kpid: it lost writes kpid had seen
acknowledged. This is what an asynchronous replica promoted by a failover looks like (see
test_sentinel.py, where it happens by chance), made deterministic here:
  - restored from an older snapshot: an RDB saved mid-stream, then more flushes, then
    Redis killed and started again from that RDB;
  - wiped: Redis restarted empty (no persistence at all);
  - older-snapshot-idle: as the first, but kpid has consumed the whole stream when Redis
    comes back, so no new message makes a flush notice: kpid must check the partitions it
    owns when it reconnects;
  - flushed-idle: FLUSHALL while kpid sits idle at the end of the stream, with its
    connections left open, so neither a flush nor a reconnect tells it: kpid re-reads the
    stored offsets of the partitions it owns every 30 s and must notice there.
kpid must notice (a stored offset below what it wrote, or a fence token below its own),
say so, and consume the lost part again from what Redis holds, so the run ends equal to
the clean run (faultlib), with nothing lost or counted twice."""

import os

import pytest

import faultlib
import kpitest

SEED = 5150
PARTITIONS = 4


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    yield from faultlib.module_stream(tmp_path_factory, "rewind-stream", seed=SEED, count=60000,
                                      partitions=PARTITIONS)


def rewind_lines(kpid, start):
    return faultlib.log_lines(kpid, r"is behind what this kpid wrote", start)


@pytest.mark.parametrize("how", ["older-snapshot", "wiped", "older-snapshot-idle", "flushed-idle"])
def test_redis_went_back_in_time(env, stream, how):
    n = len(stream.msgs)
    redis = env.redis()
    c = redis.client()
    group, dlq = stream.new_run("rewind-" + how)
    kpid = env.kpid(stream.config(redis, group, dlq, batch={"max_events": 50, "max_ms": 5}),
                    name="kpid-" + how)
    faultlib.wait_progress(c, n // 5, kpid, timeout=90)
    rdb = os.path.join(redis.dir, "dump.rdb")
    if how.startswith("older-snapshot"):
        with faultlib.Frozen(kpid.proc):  # so that the snapshot is what we read back
            c.save()
            saved = faultlib.check_consistent(c, group, "at the snapshot")
        if how.endswith("idle"):
            stream.wait_consumed(c, group, kpid, timeout=120)
        else:
            faultlib.wait_progress(c, kpitest.consumed_count(saved["meta"]) + n // 5, kpid, timeout=90)
    elif how == "flushed-idle":
        stream.wait_consumed(c, group, kpid, timeout=120)
    elif os.path.exists(rdb):
        os.unlink(rdb)
    before = faultlib.check_consistent(c, group, "before the restart")
    if how.endswith("idle"):
        assert kpitest.consumed_count(before["meta"]) == n
    else:
        assert kpitest.consumed_count(before["meta"]) < n, "the stream ended before Redis was restarted"
    mark = kpid.log_size()
    if how == "flushed-idle":
        c.flushall()
        kpitest.tally_fault("redis flushed (FLUSHALL) under an idle kpid")
    else:
        redis.kill()
        redis.start()
        kpitest.tally_fault("redis restarted empty" if how == "wiped" else "redis restored from an older snapshot")
    # FLUSHALL answered OK: nothing is left (reading it back could race kpid's check).
    after = ({"offsets": {}} if how == "flushed-idle"
             else faultlib.check_consistent(c, group, "right after the restart"))
    if how.startswith("older-snapshot"):
        assert after["offsets"] == saved["offsets"], "Redis did not come back from the snapshot"
    else:
        assert not after["offsets"], "Redis did not come back empty"
    stream.wait_consumed(c, group, kpid, timeout=120)
    lines = rewind_lines(kpid, mark)
    rewound = {int(l.split("kpi.events [")[1].split("]")[0]) for l in lines}
    # A partition kpid had not written past the snapshot (consumption across partitions
    # is uneven: one may not have been fetched yet) has lost nothing and needs no rewind.
    # Every partition Redis held further on before the restart than after it must be
    # rewound; kpid may also rewind one it wrote between our read and the kill.
    lost = {p for p, off in before["offsets"].items() if off > after["offsets"].get(p, 0)}
    assert lost, "the restart lost nothing, so this test proves nothing: %r %r" % (before, after)
    assert lost <= rewound, (
        "Redis lost writes of partitions %s but kpid said it consumes again only %s:\n%s"
        % (sorted(lost), sorted(rewound), kpid.log_tail(40)))
    assert kpid.stop() == 0, kpid.log_tail()
    stream.check_run(c, group, dlq, "redis %s under kpid" % how)
