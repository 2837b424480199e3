"""Faults around a running kpid: Redis killed and restarted (AOF on, appendfsync always),
Redis frozen (SIGSTOP: connections hang, an EXEC may be applied after kpid gave up on
it), the Kafka broker down and up again, and request errors injected into the broker.
kpid must keep running, say what is wrong in its log, and end with exactly the clean
run's Redis contents (faultlib)."""

import re
import time

import pytest

import faultlib
import kpitest

SEED = 4242
PARTITIONS = 6


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    yield from faultlib.module_stream(tmp_path_factory, "faults-stream", seed=SEED, count=100000,
                                      partitions=PARTITIONS)


def start_run(env, stream, name, redis=None, **over):
    redis = redis or env.redis()
    group, dlq = stream.new_run(name)
    over.setdefault("batch", {"max_events": 200, "max_ms": 20})
    kpid = env.kpid(stream.config(redis, group, dlq, **over), name="kpid-" + name)
    return redis, redis.client(), group, dlq, kpid


def finish_run(stream, kpid, c, group, dlq, what, timeout=90):
    stream.wait_consumed(c, group, kpid, timeout=timeout)
    assert kpid.stop() == 0, kpid.log_tail()
    return stream.check_run(c, group, dlq, what)


def redis_retry_lines(kpid, redis, start):
    """Log lines naming the redis address and saying that kpid retries."""
    addr = re.escape("127.0.0.1:%d" % redis.port)
    return [l for l in faultlib.log_lines(kpid, addr, start) if "retrying" in l]


def test_redis_killed_and_restarted(env, stream):
    """kill -9 of redis-server mid-stream; while it is down a rebalance also happens (so
    kpid must claim partitions from a dead Redis: they stay paused); then redis comes back
    from its AOF on the same port."""
    n = len(stream.msgs)
    redis = env.redis(appendonly=True)
    redis, c, group, dlq, kpid = start_run(env, stream, "redis-kill", redis=redis)
    faultlib.wait_progress(c, n // 4, kpid, timeout=90)
    fence = faultlib.fence_total(c, group)
    mark = kpid.log_size()
    redis.kill()
    kpitest.wait_for(lambda: redis_retry_lines(kpid, redis, mark), 15,
                     "a log line naming redis 127.0.0.1:%d and 'retrying'" % redis.port,
                     on_timeout=kpid.log_tail)
    # Force a rebalance while redis is down: the revoke cannot flush, the new claims fail.
    stream.broker.cmd("error Heartbeat 1 REBALANCE_IN_PROGRESS")
    kpid.wait_log(r"assigned kpi\.events", timeout=30, start=mark)
    time.sleep(1)
    assert kpid.running(), kpid.log_tail()
    redis.start()
    finish_run(stream, kpid, c, group, dlq, "redis killed and restarted")
    # The partitions assigned during the outage were claimed once redis was back.
    assert faultlib.fence_total(c, group) > fence, "no claim after the rebalance\n" + kpid.log_tail()


def test_redis_frozen(env, stream):
    """redis-server stopped (SIGSTOP): requests time out (timeout_ms 2000), and a
    transaction kpid sent before the freeze may still be executed when redis wakes up,
    after kpid has given up on it. kpid must notice on its retry that those messages were
    written and not count them again. Several short freezes (2.5 s, at random points of
    the flush cycle, so some catch an EXEC in flight), each followed by the consistency
    check, then one of 12 s (redis unreachable long enough for the backoff to grow)."""
    n = len(stream.msgs)
    redis, c, group, dlq, kpid = start_run(env, stream, "redis-freeze",
                                           batch={"max_events": 10, "max_ms": 5})
    r = faultlib.rng(SEED)
    faultlib.wait_progress(c, n // 10, kpid, timeout=90)
    for i in range(4):
        time.sleep(r.uniform(0, 0.3))
        with faultlib.Frozen(redis.proc):
            time.sleep(2.5)
        time.sleep(0.7)
        s = faultlib.check_consistent(c, group, "after short freeze #%d" % (i + 1))
        assert kpitest.consumed_count(s["meta"]) < n, "the stream ended before the freezes did"
    mark = kpid.log_size()
    with faultlib.Frozen(redis.proc):
        time.sleep(12)
        assert kpid.running(), kpid.log_tail()
        lines = redis_retry_lines(kpid, redis, mark)
        assert lines, "no log line names redis and says 'retrying':\n" + kpid.log_tail()
    finish_run(stream, kpid, c, group, dlq, "redis frozen (4 x 2.5 s, 12 s)")


def test_broker_down_and_up(env, stream):
    """The only broker down for 8 s (longer than the session timeout, so the group loses
    kpid's membership and the DLQ producer cannot deliver), then up again."""
    n = len(stream.msgs)
    redis, c, group, dlq, kpid = start_run(env, stream, "broker-down")
    faultlib.wait_progress(c, n // 4, kpid, timeout=90)
    mark = kpid.log_size()
    stream.broker.cmd("down 1")
    try:
        time.sleep(8)
        assert kpid.running(), kpid.log_tail()
        assert faultlib.log_lines(kpid, r"kafka", mark), "kpid logged nothing about the broker\n" + kpid.log_tail()
    finally:
        stream.broker.cmd("up 1")
    finish_run(stream, kpid, c, group, dlq, "broker down and up")


def test_request_errors(env, stream):
    """Errors injected into the broker's answers mid-stream: fetches and DLQ produces
    answered NOT_LEADER_FOR_PARTITION, Kafka offset commits failing, and a heartbeat
    answered REBALANCE_IN_PROGRESS (an ordinary revoke: kpid flushes, then claims again)."""
    n = len(stream.msgs)
    redis, c, group, dlq, kpid = start_run(env, stream, "req-errors")
    faultlib.wait_progress(c, n // 5, kpid, timeout=90)
    fence = faultlib.fence_total(c, group)
    for line in ("error Fetch 5 NOT_LEADER_FOR_PARTITION",
                 "error Produce 3 NOT_LEADER_FOR_PARTITION",
                 "error Produce 2 REQUEST_TIMED_OUT",
                 "error OffsetCommit 3 REQUEST_TIMED_OUT",
                 "error Heartbeat 1 REBALANCE_IN_PROGRESS"):
        stream.broker.cmd(line)
    finish_run(stream, kpid, c, group, dlq, "injected request errors")
    assert faultlib.fence_total(c, group) > fence, "the forced rebalance did not happen (no new claim)"
