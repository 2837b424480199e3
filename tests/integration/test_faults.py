"""Faults around a running kpid: Redis killed and restarted (AOF on, appendfsync always),
Redis unreachable for over two minutes,
Redis frozen (SIGSTOP: connections hang, an EXEC may be applied after kpid gave up on
it), the Kafka broker down and up again, request errors injected into the broker, and
partition leaders moving between the brokers of a three-broker cluster (one of them
down meanwhile). kpid must keep running, say what is wrong in its log, and end with
exactly the clean run's Redis contents (faultlib)."""

import re
import time

import pytest
from confluent_kafka.admin import AdminClient

import faultlib
import kpitest

SEED = 4242
PARTITIONS = 6


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    yield from faultlib.module_stream(tmp_path_factory, "faults-stream", seed=SEED, count=100000,
                                      partitions=PARTITIONS)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A stream of its own on three brokers (every partition replicated on all three, so
    any of them can lead it), for the leader test only: the other tests want the one
    broker that `down 1` takes away entirely. Smaller, so its clean run is cheap, and in
    small record batches (~200 messages), so that a consumer with a shallow prefetch
    keeps fetching all along the stream (one batch is the least a fetch returns)."""
    yield from faultlib.module_stream(tmp_path_factory, "faults-cluster", seed=SEED + 1, count=50000,
                                      partitions=3, brokers=3,
                                      produce_conf={"batch.num.messages": 200, "linger.ms": 5})


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


def rss_kib(kpid):
    with open("/proc/%d/status" % kpid.proc.pid) as f:
        return int(next(l for l in f if l.startswith("VmRSS:")).split()[1])


OUTAGE_S = 130


def test_redis_down_for_minutes(env, stream):
    """Redis unreachable (killed, connection refused) for over two minutes mid-stream, then
    back from its AOF: kpid keeps running with everything paused, its backoff grows to 30 s
    and stays there, its memory does not grow while it waits (nothing is consumed), and
    once Redis answers it finishes the stream exactly."""
    n = len(stream.msgs)
    redis = env.redis(appendonly=True)
    redis, c, group, dlq, kpid = start_run(env, stream, "redis-down-minutes", redis=redis)
    faultlib.wait_progress(c, n // 4, kpid, timeout=90)
    mark = kpid.log_size()
    redis.kill()
    t0 = time.monotonic()
    time.sleep(20)
    rss_early = rss_kib(kpid)
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - t0)))
    assert kpid.running(), kpid.log_tail()
    rss_late = rss_kib(kpid)
    assert rss_late < rss_early + 16 * 1024, "kpid grew from %d to %d KiB while Redis was down" % (
        rss_early, rss_late)
    waits = [float(m) for m in re.findall(r"flush failed, consumption paused, .* retrying in ([0-9.]+) s",
                                          kpid.log()[mark:])]
    assert waits and max(waits) == 30.0, "the backoff did not reach its 30 s cap: %r" % waits
    redis.start()
    before = faultlib.check_consistent(c, group, "after %d s without Redis" % OUTAGE_S)
    assert kpitest.consumed_count(before["meta"]) < n, "the stream ended before the outage"
    finish_run(stream, kpid, c, group, dlq, "redis unreachable for %d s" % OUTAGE_S)


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


def metadata(bootstrap):
    # log_level 2: with a broker down, librdkafka would print connection errors to stderr.
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 2}).list_topics(timeout=10)


def leaders(bootstrap, topics):
    """{(topic, partition): leader broker id} from the cluster's metadata."""
    md = metadata(bootstrap)
    return {(t, p): pm.leader for t in topics for p, pm in md.topics[t].partitions.items()}


def broker_address(bootstrap, broker_id):
    b = metadata(bootstrap).brokers[broker_id]
    return "%s:%d" % (b.host, b.port)


def move_leaders(broker, want):
    """Moves every partition of `want` to its leader there, and checks that the cluster's
    metadata says so."""
    for (t, p), b in sorted(want.items()):
        broker.cmd("leader %s %d %d" % (t, p, b))
    got = leaders(broker.bootstrap, {t for t, _ in want})
    assert {k: got[k] for k in want} == want, "leaders %r, wanted %r" % (got, want)


def test_partition_leaders_move(env, cluster):
    """Leaders of the events, DLQ and alerts partitions move between the three brokers
    while kpid consumes: every partition to another broker; then broker 2 goes down and
    the partitions it leads fail over to broker 3 (as a controller would elect a new
    leader) before it comes back; then every partition back to its first leader. The
    group's coordinator is pinned to broker 1, which stays up: this is about partition
    leadership, not the group (test_broker_down_and_up covers losing the coordinator)."""
    stream = cluster
    n = len(stream.msgs)
    redis = env.redis()
    c = redis.client()
    group, dlq = stream.new_run("leaders")
    stream.broker.cmd("coordinator %s 1" % group)
    # Known leaders to start from (the mock places them at random): the events partitions
    # spread over the three brokers, the DLQ on broker 1 and the alerts topic on broker 2,
    # so that after the first move broker 2 leads events partition 0 and the DLQ.
    first = {(kpitest.EVENTS_TOPIC, p): p % 3 + 1 for p in range(stream.partitions)}
    first.update({(dlq, 0): 1, (faultlib.ALERTS_TOPIC, 0): 2})
    move_leaders(stream.broker, first)
    # A shallow prefetch (kpid's default holds the whole stream after a second), so that
    # kpid must fetch from the new leaders for the stream to go on after each move, which
    # progress by more than it can hold between the moves proves: per partition up to
    # queued.min.messages plus one fetch (16 KiB: a few 200-message batches) in its
    # queue, and a batch of 200 not flushed yet.
    queued, max_events = 2000, 200
    props = {"queued.min.messages": str(queued), "max.partition.fetch.bytes": "16384"}
    kpid = env.kpid(stream.config(redis, group, dlq, properties=props,
                                  batch={"max_events": max_events, "max_ms": 20}), name="kpid-leaders")
    held = stream.partitions * (queued + 600) + max_events
    step = held + n // 50

    def mid_stream(what):
        s = faultlib.check_consistent(c, group, what)
        done = kpitest.consumed_count(s["meta"])
        print("%s: %d of %d consumed" % (what, done, n))
        assert done < n, "the stream ended before: " + what
        return done

    faultlib.wait_progress(c, n // 10, kpid, timeout=90)
    moved = {k: b % 3 + 1 for k, b in first.items()}
    move_leaders(stream.broker, moved)
    done = mid_stream("after every leader moved")

    faultlib.wait_progress(c, done + step, kpid, timeout=90)
    on2 = {k: 3 for k, b in moved.items() if b == 2}
    addr2 = broker_address(stream.broker.bootstrap, 2)
    mark = kpid.log_size()
    stream.broker.cmd("down 2")
    try:
        # kpid's fetches from broker 2 fail until its partitions get a new leader.
        kpid.wait_log(re.escape(addr2), timeout=10, start=mark)
        time.sleep(0.5)
        move_leaders(stream.broker, on2)
        time.sleep(1)
        assert kpid.running(), kpid.log_tail()
    finally:
        stream.broker.cmd("up 2")
    done = mid_stream("after broker 2 was down and its partitions failed over")

    faultlib.wait_progress(c, done + step, kpid, timeout=90)
    move_leaders(stream.broker, first)
    done = mid_stream("after every leader moved back")
    assert n - done > held, "too little of the stream left after the last move"
    finish_run(stream, kpid, c, group, dlq, "partition leaders moved, broker 2 down")
