"""Several kpid in one consumer group, sharing one Redis: one killed -9 mid-stream (the
survivor takes its partitions over after the session timeout), with the eager and the
cooperative assignor; members killed -9 and added by turns (two kpid, then three,
two, three and two); and one frozen with SIGSTOP past max.poll.interval.ms while the other goes
on, then woken up: its fence tokens are stale, so it must not write the partitions it
lost. Every run ends equal to the clean run (faultlib)."""

import re
import time

import pytest

import faultlib
import kpitest

SEED = 777
PARTITIONS = 8


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    yield from faultlib.module_stream(tmp_path_factory, "group-stream", seed=SEED, count=150000,
                                      partitions=PARTITIONS)


def assigned_partitions(kpid, start=0):
    """Partitions kpid logged as assigned or claimed after log position `start`."""
    rx = re.compile(r"(?:assigned|claimed) kpi\.events \[(\d+)\]")
    return {int(m.group(1)) for m in rx.finditer(kpid.log(), start)}


def current_partitions(kpid):
    """Partitions assigned since kpid last gave its partitions up (eager assignor)."""
    log = kpid.log()
    ends = [m.end() for m in re.finditer(r"(?:revoking|lost) \d+ partition", log)]
    return assigned_partitions(kpid, ends[-1] if ends else 0)


def wait_shared(env, members, partitions, what, timeout=60):
    """Wait until the (eager) group settled: every member owns partitions, none twice,
    all of them owned. Returns {member name: partitions}."""
    def shared():
        owned = [current_partitions(k) for k in members]
        every = set().union(*owned)
        if all(owned) and sum(len(o) for o in owned) == len(every) == partitions:
            return {k.name: o for k, o in zip(members, owned)}
        return None
    return kpitest.wait_for(shared, timeout, what, on_timeout=env.logs)


@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
def test_member_killed(env, stream, assignor):
    n = len(stream.msgs)
    redis = env.redis()
    c = redis.client()
    group, dlq = stream.new_run("kill-" + assignor)
    cfg = stream.config(redis, group, dlq, properties={"partition.assignment.strategy": assignor},
                        batch={"max_events": 200, "max_ms": 20})
    a = env.kpid(cfg, name="kpid-a")
    b = env.kpid(cfg, name="kpid-b")
    # Both must own partitions before one dies.
    kpitest.wait_for(lambda: assigned_partitions(a) and assigned_partitions(b), 60,
                     "both kpid to be assigned partitions", on_timeout=env.logs)
    faultlib.wait_progress(c, n // 4, a, timeout=90)
    victim, survivor = (a, b) if faultlib.rng(SEED).random() < 0.5 else (b, a)
    lost = assigned_partitions(victim)
    mark = survivor.log_size()
    victim.kill()
    at_kill = faultlib.check_consistent(c, group, "right after the kill")
    assert kpitest.consumed_count(at_kill["meta"]) < n, "the kill did not land mid-stream"
    stream.wait_consumed(c, group, survivor, timeout=120)
    taken = assigned_partitions(survivor, mark)
    assert lost <= taken, "survivor took %s, the dead member had %s\n%s" % (
        sorted(taken), sorted(lost), survivor.log_tail())
    assert survivor.stop() == 0, survivor.log_tail()
    stream.check_run(c, group, dlq, "one of two kpid killed (%s)" % assignor)


def test_members_killed_and_added(env, stream):
    """Four kpid in one group, at most three at a time (eager assignor, so every change
    moves partitions between all members): A and B start, C joins, one of the three
    (seeded choice) is killed -9, D joins (while the dead member is still in the group),
    another one is killed; the two left finish the stream. After every change the counters match the stored offsets, and
    the end state equals the clean run's."""
    n = len(stream.msgs)
    r = faultlib.rng(SEED + 1)
    redis = env.redis()
    c = redis.client()
    group, dlq = stream.new_run("churn")
    cfg = stream.config(redis, group, dlq, properties={"partition.assignment.strategy": "range"},
                        batch={"max_events": 50, "max_ms": 5})
    live = [env.kpid(cfg, name="kpid-a"), env.kpid(cfg, name="kpid-b")]
    wait_shared(env, live, stream.partitions, "A and B to share the partitions")

    def mid_stream(what):
        s = faultlib.check_consistent(c, group, what)
        done = kpitest.consumed_count(s["meta"])
        print("%s: %d of %d consumed" % (what, done, n))
        assert done < n, "the stream ended before: " + what

    def join(name, at_least):
        faultlib.wait_progress(c, at_least, live[0], timeout=90)
        k = env.kpid(cfg, name=name)
        live.append(k)
        mid_stream("right after %s started" % name)
        shares = wait_shared(env, live, stream.partitions, "%s to get partitions" % name)
        mid_stream("after %s got partitions %s" % (name, sorted(shares[name])))

    def kill(at_least):
        faultlib.wait_progress(c, at_least, live[0], timeout=90)
        victim = r.choice(live)
        owned = current_partitions(victim)
        assert owned, "%s owns no partitions" % victim.name
        live.remove(victim)
        victim.kill()
        mid_stream("right after %s (partitions %s) was killed" % (victim.name, sorted(owned)))

    join("kpid-c", n // 10)
    kill(n // 4)
    join("kpid-d", 0)
    kill(kpitest.consumed_count(kpitest.meta(c)) + n // 10)
    stream.wait_consumed(c, group, live[0], timeout=120)
    for k in live:
        assert k.stop() == 0, k.log_tail()
    stream.check_run(c, group, dlq, "members killed and added mid-stream")


@pytest.mark.parametrize("batching", ["holding", "flushing"])
def test_frozen_member_is_fenced(env, stream, batching):
    """A frozen (SIGSTOP) past the session timeout and max.poll.interval.ms while B takes
    its partitions over; then A is woken up (SIGCONT), and later B stops, so A ends up
    owning every partition, including those it was fenced off: it must consume them again.

    holding: A flushes at most every 1.5 s, so it is frozen holding unflushed messages (on
    waking it tries to flush them, and sink_begin must find its fence tokens stale).
    flushing: A flushes every few milliseconds, so it is likely frozen between WATCH and
    EXEC (the EXEC must fail)."""
    n = len(stream.msgs)
    redis = env.redis()
    c = redis.client()
    group, dlq = stream.new_run("freeze-" + batching)
    # As low as librdkafka allows (>= session.timeout.ms): the freeze outlasts it quickly,
    # so the stream is far from its end when A wakes up.
    props = {"max.poll.interval.ms": str(faultlib.SESSION_TIMEOUT_MS + 1000)}
    batch_a = {"holding": {"max_events": 100000, "max_ms": 1500},
               "flushing": {"max_events": 50, "max_ms": 5}}[batching]
    a = env.kpid(stream.config(redis, group, dlq, properties=props, batch=batch_a), name="kpid-frozen")
    b = env.kpid(stream.config(redis, group, dlq, properties=props,
                               batch={"max_events": 50, "max_ms": 5}), name="kpid-other")
    # The group settles in rounds (A may get everything, then give it up as B joins):
    # wait until the two share the partitions between them.
    kpitest.wait_for(lambda: current_partitions(a) and current_partitions(b) and
                     not current_partitions(a) & current_partitions(b) and
                     len(current_partitions(a) | current_partitions(b)) == stream.partitions,
                     60, "the two kpid to share the partitions", on_timeout=env.logs)
    settled = a.log_size()
    faultlib.wait_progress(c, n // 10, a, timeout=90)
    time.sleep(faultlib.rng(SEED).uniform(0, 0.5))
    held = current_partitions(a)
    early = faultlib.log_lines(a, r"(?i)\blost\b|fence|MAXPOLL|revok", settled)
    assert not early, ("kpid-frozen gave up its partitions before it was frozen (is its flush "
                       "blocking the poll loop?):\n" + a.log_tail(40))
    fence_before = faultlib.fence_total(c, group)
    t0 = time.monotonic()
    with faultlib.Frozen(a.proc):
        # The group drops the frozen member after the session timeout; B then claims
        # A's partitions in Redis (new fence tokens).
        kpitest.wait_for(lambda: faultlib.fence_total(c, group) >= fence_before + len(held), 30,
                         "B to claim the frozen kpid's partitions %s" % sorted(held),
                         on_timeout=env.logs)
        # Stay frozen past max.poll.interval.ms too.
        time.sleep(max(0.0, (faultlib.SESSION_TIMEOUT_MS + 1500) / 1000.0 - (time.monotonic() - t0)))
        mark = a.log_size()
        assert kpitest.consumed_count(kpitest.meta(c)) < n, "the stream ended during the freeze"
    # A rejoins the group and gets partitions again.
    kpitest.wait_for(lambda: assigned_partitions(a, mark), 60, "the woken kpid to be assigned partitions",
                     on_timeout=env.logs)
    assert a.running(), a.log_tail()
    # The woken kpid must have noticed that it lost its partitions, through the group
    # (lost assignment) or through Redis (fence tokens changed).
    said = faultlib.log_lines(a, r"(?i)\blost\b|fence", mark)
    assert said, "the frozen kpid logged nothing about lost partitions or fencing:\n" + a.log_tail(60)
    faultlib.check_consistent(c, group, "after the frozen kpid woke up")
    # B leaves: A must take everything over, the partitions it was fenced off included.
    assert b.stop() == 0, b.log_tail()
    s = faultlib.check_consistent(c, group, "after B stopped")
    assert kpitest.consumed_count(s["meta"]) < n, "the stream ended before B stopped"
    stream.wait_consumed(c, group, a, timeout=90)
    assert a.stop() == 0, a.log_tail()
    stream.check_run(c, group, dlq, "kpid frozen past max.poll.interval.ms (%s)" % batching)
