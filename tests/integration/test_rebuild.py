"""kpid --rebuild: a changed counting rule (touch_min_call_s) applied to history. The
rebuild runs next to the live kpid, switches in one transaction, fences the live kpid out,
and after a restart on the new rules the data equals a clean run on the new rules over
the whole topic: nothing lost, nothing counted twice, the alert history kept."""

import subprocess
import threading
import time

import faultlib
import kpitest

SEED = 20261124
GROUP = kpitest.GROUP


def rebuild(path, timeout=120):
    return subprocess.run([kpitest.binary("kpid"), "-c", path, "--rebuild"], capture_output=True,
                          text=True, timeout=timeout)


def comparable(client, group):
    """The dump without fence tokens (they count claims, which differ by design) and
    without the alert keys (compared on their own)."""
    d = faultlib.normalize(kpitest.dump_redis(client), group)
    return {k: v for k, v in d.items()
            if ":fence:" not in k and not k.endswith((":alertstate", ":alerts"))}


def test_rebuild_applies_a_changed_rule_to_history(env):
    broker = env.broker()
    redis = env.redis()
    c = redis.client()
    old = env.config(broker, redis, **faultlib.GEN_CONFIG)
    # The live kpid holds the metrics port: the rebuild must not need it.
    old["metrics"] = {"listen": "127.0.0.1:%d" % kpitest.free_port()}
    msgs = faultlib.gen_stream(env.dir, old, SEED, 4000)
    first, during, fenced, after = msgs[:3000], msgs[3000:3400], msgs[3400:3500], msgs[3500:]

    live = env.kpid(old, name="live")
    n = len(kpitest.produce(broker.bootstrap, kpitest.EVENTS_TOPIC, first))
    kpitest.wait_consumed(c, n, live)
    # Alert history and states of the live data, as an evaluation would have left them.
    c.xadd("kpi:alerts", {"json": '{"alert_id":"a1"}'})
    c.hset("kpi:mgr:{m01}:alertstate", "rule", "v1|1|d:2026-11-20|1|w|1|1|0")
    touches_before = touch_rate(c)

    new = kpitest.deep_merge(old, {"touch_min_call_s": 120})
    path = env.write_config(new, "new.json")
    # Leftovers of an interrupted earlier rebuild are cleared first.
    c.set("kpi.rebuild:meta:stale", "x")
    # Events keep coming while the rebuild runs and switches: the live kpid keeps flushing
    # them into the old data until it is fenced out.
    mark = live.log_size()
    producer = threading.Thread(target=produce_slowly, args=(broker, during))
    producer.start()
    try:
        r = rebuild(path)
    finally:
        producer.join()
    assert r.returncode == 0, r.stderr[-3000:]
    assert "removed 1 keys an earlier unfinished rebuild left" in r.stderr
    assert "rebuild: switched:" in r.stderr and "Restart the live kpid now" in r.stderr
    assert not c.keys("kpi.rebuild:*")
    # Stricter touches: history now counts fewer of them per event (more events came in
    # meanwhile, so compare rates).
    assert touch_rate(c) < 0.95 * touches_before
    assert c.xlen("kpi:alerts") == 1
    assert c.hget("kpi:mgr:{m01}:alertstate", "rule") == b"v1|1|d:2026-11-20|1|w|1|1|0"

    # The live kpid, still on the old rules, is fenced out of the new data.
    before = kpitest.consumed_count(kpitest.meta(c))
    kpitest.produce(broker.bootstrap, kpitest.EVENTS_TOPIC, fenced)
    live.wait_log(r"is owned by another kpid now", start=mark, timeout=30)
    time.sleep(1)
    assert kpitest.consumed_count(kpitest.meta(c)) == before
    assert live.stop() == 0

    # Restarted on the new rules, it resumes where the rebuild stopped.
    env.kpid(path, name="live-new")
    kpitest.produce(broker.bootstrap, kpitest.EVENTS_TOPIC, after)
    kpitest.wait_consumed(c, len(msgs), env.kpids[-1])
    faultlib.check_consistent(c, GROUP, "after the rebuild")

    # The reference: one clean run of the new rules over the whole topic.
    ref_redis = env.redis()
    ref_cfg = kpitest.deep_merge(env.config(broker, ref_redis, **faultlib.GEN_CONFIG),
                                 {"touch_min_call_s": 120, "kafka": {"group": "reference"}})
    ref = env.kpid(ref_cfg, name="reference")
    rc = ref_redis.client()
    kpitest.wait_consumed(rc, len(msgs), ref)
    ref.stop()
    env.kpids[-2].stop()
    faultlib.compare_dumps(comparable(rc, "reference"), comparable(c, GROUP), "rebuilt")


def produce_slowly(broker, msgs, per_second=200):
    """msgs in small bursts, about per_second a second."""
    for i in range(0, len(msgs), 20):
        kpitest.produce(broker.bootstrap, kpitest.EVENTS_TOPIC, msgs[i:i + 20])
        time.sleep(20.0 / per_second)


def touch_rate(c):
    applied = int(kpitest.meta(c)["events_applied"])
    return int(c.hget("kpi:org:q:" + quarter(c), "touches")) / applied


def quarter(c):
    """The organisation's current quarter id with data (the stream's events are recent)."""
    keys = sorted(k.decode() for k in c.keys("kpi:org:q:*") if k.count(b":") == 3)
    assert keys, "no quarter keys"
    return keys[-1].split(":", 3)[3]


def test_rebuild_refuses_a_prefix_too_long(env):
    broker = env.broker()
    redis = env.redis()
    cfg = env.config(broker, redis)
    cfg["redis"]["prefix"] = "p" * 30
    r = rebuild(env.write_config(cfg, "long.json"))
    assert r.returncode == 2
    assert "would exceed 32 characters" in r.stderr


def test_interrupted_rebuild_leaves_the_live_data_alone(env):
    broker = env.broker()
    redis = env.redis()
    c = redis.client()
    cfg = env.config(broker, redis)
    c.hset("kpi:meta", "schema", "1")
    # No broker answers: the rebuild never catches up; SIGTERM stops it.
    cfg["kafka"]["brokers"] = "127.0.0.1:%d" % kpitest.free_port()
    path = env.write_config(cfg, "dead.json")
    p = subprocess.Popen([kpitest.binary("kpid"), "-c", path, "--rebuild"],
                         stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        p.terminate()
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 1, err[-2000:]
    assert "stopped before it caught up; the live data under kpi is untouched" in err
    assert c.hgetall("kpi:meta") == {b"schema": b"1"}
