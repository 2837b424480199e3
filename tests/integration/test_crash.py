"""Crashes: kpid killed -9 again and again at random points of one stream, and stopped with
SIGTERM in the middle of a flush-heavy phase. Each time it is restarted; the final Redis
contents must equal one clean run's (faultlib), and every invalid message must have
reached the dead-letter topic at least once (the DLQ is at-least-once: a copy sent before
a crash may be sent again, while events_invalid stays exact).

After every kill, before the restart, faultlib.check_consistent checks that the counters
and the offsets they cover still agree, so a double application is reported at the kill
that caused it, not only at the end."""

import signal
import time

import pytest

import faultlib
import kpitest

SEED = 20261116
KILLS = 20
PARTITIONS = 8


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    yield from faultlib.module_stream(tmp_path_factory, "crash-stream", seed=SEED, count=150000,
                                      partitions=PARTITIONS)


def test_kill9_at_random_points(env, stream):
    n = len(stream.msgs)
    redis = env.redis()
    c = redis.client()
    group, dlq = stream.new_run("kill9")
    # Small batches: most of kpid's time goes into flushes, so the kills land inside
    # sink_begin / sink_commit / the DLQ wait as often as between them.
    cfg = stream.config(redis, group, dlq, batch={"max_events": 100, "max_ms": 20})
    kpid = env.kpid(cfg, name="kpid-kill9", start=False)
    r = faultlib.rng(SEED)
    fence = 0
    rate = 5000.0          # messages/s, re-estimated from every life
    log = []
    for i in range(KILLS):
        kpid.start()
        fence = faultlib.wait_claimed(c, group, fence, PARTITIONS, kpid, timeout=90)
        t0, n0 = time.monotonic(), faultlib.consumed_now(c)
        if i % 7 == 3:
            # Right after the claim: before or during the first flush of a life.
            time.sleep(r.uniform(0, 0.02))
        else:
            # Spread what is left over the lives to come (at least one after the kills),
            # at random: somewhere between 0.3 and 1.7 times the fair share.
            share = (n - n0) / (KILLS - i + 1)
            goal = n0 + int(r.uniform(0.3, 1.7) * share)
            deadline = t0 + 2.0 * share / rate + 5.0
            while faultlib.consumed_now(c) < goal and time.monotonic() < deadline and kpid.running():
                time.sleep(0.002)
            # A random phase of the flush cycle, not always just after a commit.
            time.sleep(r.uniform(0, 0.03))
        assert kpid.running(), "kpid died by itself\n%s" % kpid.log_tail()
        kpid.kill()
        dt = time.monotonic() - t0
        s = faultlib.check_consistent(c, group, "after kill #%d" % (i + 1))
        got = kpitest.consumed_count(s["meta"])
        if got > n0 and dt > 0.05:
            rate = max(500.0, (got - n0) / dt)
        log.append((i + 1, n0, got))
    print("kills (#, consumed at claim, consumed at kill):", log)
    mid = [k for k in log if 0 < k[2] < n]
    assert len(mid) == KILLS, "kills must all land mid-stream (0 < consumed < %d): %r" % (n, log)
    assert sum(1 for k in log if k[2] > k[1]) >= KILLS // 2, "most lives must make progress: %r" % log

    kpid.start()
    stream.wait_consumed(c, group, kpid, timeout=120)
    assert kpid.stop() == 0, kpid.log_tail()
    repeats = stream.check_run(c, group, dlq, "after %d kills" % KILLS)
    print("DLQ repeats after %d kills: %d" % (KILLS, repeats))


def test_sigterm_during_flushes(env, stream):
    """SIGTERM while kpid flushes every few milliseconds: it must flush what it holds,
    store the offsets and exit 0; the restart finishes the stream exactly."""
    n = len(stream.msgs)
    redis = env.redis()
    c = redis.client()
    group, dlq = stream.new_run("sigterm")
    cfg = stream.config(redis, group, dlq, batch={"max_events": 50, "max_ms": 10})
    kpid = env.kpid(cfg, name="kpid-sigterm")
    r = faultlib.rng(SEED + 1)
    for stop in range(2):
        faultlib.wait_progress(c, faultlib.consumed_now(c) + int(r.uniform(0.1, 0.3) * n), kpid, timeout=90)
        time.sleep(r.uniform(0, 0.01))
        mark = kpid.log_size()
        kpid.signal(signal.SIGTERM)
        kpitest.tally_fault("SIGTERM kpid during flushes")
        rc = kpid.wait(30)
        assert rc == 0, "SIGTERM: kpid exited %s\n%s" % (rc, kpid.log_tail())
        # A clean stop leaves nothing held: everything consumed is flushed and covered by
        # the stored offsets, and the log says so.
        s = faultlib.check_consistent(c, group, "after SIGTERM #%d" % (stop + 1))
        assert 0 < kpitest.consumed_count(s["meta"]) < n, "SIGTERM did not land mid-stream: %r" % s["meta"]
        assert faultlib.log_lines(kpid, r"stopping", mark), kpid.log_tail()
        assert not faultlib.log_lines(kpid, r"not flushed", mark), kpid.log_tail()
        kpid.start()
    stream.wait_consumed(c, group, kpid, timeout=120)
    assert kpid.stop() == 0, kpid.log_tail()
    repeats = stream.check_run(c, group, dlq, "after SIGTERM and restart")
    # Nothing crashed: no DLQ copy had a reason to be sent twice.
    assert repeats == 0, "%d DLQ copies repeated without a crash" % repeats
