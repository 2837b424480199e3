"""The metrics endpoint (issue 6): /metrics parsed by the Prometheus client's own text
parser against known traffic (outcomes, dedup hits, flush histograms, lag, reloads), and
/healthz following Redis down and up again; a port already taken stops kpid at start."""

import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

import kpitest
from kpitest import EVENTS_TOPIC, DLQ_TOPIC, ALERTS_TOPIC


def http_get(port, path):
    """(status, content type, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def scrape(port):
    """{(sample name, frozenset of labels): value} and the family types by name."""
    status, ctype, body = http_get(port, "/metrics")
    assert status == 200, body
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    samples, types = {}, {}
    for fam in text_string_to_metric_families(body):
        types[fam.name] = fam.type
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, "sample %r twice" % (key,)
            samples[key] = s.value
    return samples, types


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def call(event_id, manager, ts_ms, **extra):
    ev = {"event_id": event_id, "type": "call", "manager_id": manager, "ts": ts_ms,
          "direction": "outbound", "status": "connected", "duration_s": 60}
    ev.update(extra)
    return json.dumps(ev)


def wait_healthy(kpid, port, timeout=30.0):
    def ok():
        if not kpid.running():
            raise kpitest.HarnessError("kpid exited\n" + kpid.log_tail())
        return kpitest.port_is_open(port) and http_get(port, "/healthz")[0] == 200
    kpitest.wait_for(ok, timeout, "/healthz 200", on_timeout=kpid.log_tail)


def wait_metrics(port, pred, what, kpid, timeout=15.0):
    """Scrape until pred(samples) holds (the text is rendered once a second)."""
    last = {}

    def ok():
        nonlocal last
        last = scrape(port)[0]
        return pred(last)
    kpitest.wait_for(ok, timeout, what, interval=0.2,
                     on_timeout=lambda: "%r\n%s" % (sorted(last.items()), kpid.log_tail()))
    return last


def test_metrics_and_health(env):
    redis = env.redis()
    broker = env.broker({EVENTS_TOPIC: 2, DLQ_TOPIC: 1, ALERTS_TOPIC: 1})
    port = kpitest.free_port()
    cfg = env.config(broker, redis, metrics={"listen": "127.0.0.1:%d" % port})
    kpid = env.kpid(cfg)
    t0 = time.time()
    wait_healthy(kpid, port)
    assert http_get(port, "/healthz")[2] == "ok\n"
    assert http_get(port, "/nope")[0] == 404

    ts = int(time.time() * 1000) - 3600 * 1000
    first = [("ivanov", call("c1", "ivanov", ts), 0), ("ivanov", call("c2", "ivanov", ts), 0),
             ("petrov", call("c3", "petrov", ts), 1), ("petrov", call("c4", "petrov", ts), 1),
             ("petrov", call("c5", "petrov", ts), 1),
             ("ivanov", call("c6", "ivanov", ts, internal=True), 0),
             ("ivanov", b'{"event_id":"bad1","type":"fax"}', 0),
             ("petrov", b"not json", 1)]
    kpitest.produce(broker.bootstrap, EVENTS_TOPIC, first)
    client = redis.client()
    kpitest.wait_consumed(client, len(first), kpid)
    # Applied already: the second copies are duplicates found in Redis.
    dups = [("ivanov", call("c1", "ivanov", ts), 0), ("petrov", call("c3", "petrov", ts), 1)]
    kpitest.produce(broker.bootstrap, EVENTS_TOPIC, dups)
    meta = kpitest.wait_consumed(client, len(first) + len(dups), kpid)
    kpitest.assert_low_watermarks_zero(broker, [EVENTS_TOPIC, DLQ_TOPIC])

    wait_metrics(port, lambda s: sum(v for (n, _), v in s.items()
                                         if n == "kpid_events_total") == 10
                     and value(s, "kpid_consumer_lag_messages", topic=EVENTS_TOPIC, partition="0") == 0
                     and value(s, "kpid_consumer_lag_messages", topic=EVENTS_TOPIC, partition="1") == 0,
                     "all 10 events counted and lag 0", kpid)
    samples, types = scrape(port)
    s = samples
    assert value(s, "kpid_events_total", outcome="applied") == 5
    assert value(s, "kpid_events_total", outcome="internal") == 1
    assert value(s, "kpid_events_total", outcome="invalid") == 2
    assert value(s, "kpid_events_total", outcome="duplicate") == 2
    assert value(s, "kpid_dedup_hits_total") == 2
    # kpi:meta's events_applied counts internal ones too.
    assert int(meta["events_applied"]) == 6 and int(meta["events_invalid"]) == 2
    assert value(s, "kpid_partitions_owned") == 2
    assert value(s, "kpid_redis_up") == 1 and value(s, "kpid_kafka_up") == 1
    assert value(s, "kpid_paused") == 0

    flushes = value(s, "kpid_flushes_total")
    assert flushes >= 2  # two produce rounds, each waited for
    for h in ("kpid_flush_duration_seconds", "kpid_batch_events"):
        assert types[h] == "histogram"
        assert value(s, h + "_count") == flushes
        buckets = sorted(((float(dict(labels)["le"]), v) for (n, labels), v in s.items()
                          if n == h + "_bucket"))
        assert buckets[-1] == (float("inf"), flushes)
        assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets
    # Every message flushed is in exactly one batch.
    assert value(s, "kpid_batch_events_sum") == 10
    assert 0 < value(s, "kpid_flush_duration_seconds_sum") < 10 * flushes

    assert types["kpid_events"] == "counter"  # the parser drops _total from family names
    version = subprocess.run([kpitest.binary("kpid"), "--version"],
                             capture_output=True).stdout.decode().split()[1]
    assert value(s, "kpid_build_info", version=version) == 1
    assert t0 - 5 <= value(s, "kpid_start_time_seconds") <= t0 + 5
    # The metric is taken when the flush's answer arrived, kpi:meta when it was sent.
    assert 0 <= value(s, "kpid_last_flush_timestamp_seconds") - int(meta["last_flush_ms"]) / 1000 < 2
    assert value(s, "kpid_alerts_total", state="firing") == 0
    assert value(s, "kpid_alert_deliveries_total", channel="webhook") == 0
    assert value(s, "kpid_config_reloads_total", result="ok") == 0

    # Reloads: one good, one rejected.
    kpid.signal(signal.SIGHUP)
    kpid.wait_log(r"reloaded ")
    with open(kpid.config_path, "w") as f:
        f.write("{ broken")
    start = kpid.log_size()
    kpid.signal(signal.SIGHUP)
    kpid.wait_log(r"reload of .* rejected", start=start)
    kpitest.write_config(kpid.config_path, cfg)
    wait_metrics(port, lambda s: value(s, "kpid_config_reloads_total", result="ok") == 1
                 and value(s, "kpid_config_reloads_total", result="rejected") == 1,
                 "one good and one rejected reload counted", kpid)

    # Redis away while idle: the health probe notices it, and notices it coming back.
    errors_before = scrape(port)[0][("kpid_redis_errors_total", frozenset())]
    redis.stop()
    kpitest.wait_for(lambda: http_get(port, "/healthz")[0] == 503, 10, "/healthz 503",
                     on_timeout=kpid.log_tail)
    status, _, body = http_get(port, "/healthz")
    assert status == 503 and ("redis 127.0.0.1:%d" % redis.port) in body, body
    assert body.count("\n") == 1, body
    s = wait_metrics(port, lambda s: value(s, "kpid_redis_up") == 0, "kpid_redis_up 0", kpid)
    assert value(s, "kpid_redis_errors_total") > errors_before
    redis.start()
    wait_healthy(kpid, port, timeout=10)
    s = wait_metrics(port, lambda s: value(s, "kpid_redis_up") == 1, "kpid_redis_up 1", kpid)
    assert value(s, "kpid_redis_reconnects_total") >= 1
    assert kpid.stop() == 0


def test_metrics_port_taken(env):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        cfg = kpitest.default_config("127.0.0.1:1", kpitest.free_port(),
                                     metrics={"listen": "127.0.0.1:%d" % port})
        kpid = env.kpid(cfg)
        rc = kpid.wait(30)
    assert rc == 1, kpid.log_tail()
    assert ("metrics.listen 127.0.0.1:%d: cannot listen: Address already in use" % port) in kpid.log()
