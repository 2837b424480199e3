"""Alert delivery (contract section 5): every entry of the kpi:alerts stream goes to the
Kafka alerts topic (key = manager) and to the HTTP webhook, through the Redis consumer
groups "kafka" and "webhook". The tests XADD the entries themselves, as the evaluator
does, so they do not depend on alert evaluation.

Cases: delivered once on both channels and acknowledged; a webhook that is down (not
listening, then answering 500) while kpid keeps consuming events, then delivery in order
once it is back; entries a previous run left pending are taken over at start, and one
deleted from the stream meanwhile is counted as lost; a kpid killed -9 while holding
undelivered entries, whose entries the other kpid takes over once they have been idle 60 s
(the slow one, ~1.5 min)."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import kpitest
from kpitest import ALERTS_TOPIC, EVENTS_TOPIC

STREAM = "kpi:alerts"
GROUPS = ("kafka", "webhook")


class Webhook:
    """A webhook receiver on a fixed loopback port: records every POST (body, content
    type, the status it answered) and answers `status` (200 or 500); stop() closes the
    port, start() opens it again."""

    def __init__(self):
        self.port = kpitest.free_port()
        self.url = "http://127.0.0.1:%d/hook?token=secret" % self.port
        self.status = 200
        self.posts = []  # (body str, content type, status answered)
        self.lock = threading.Lock()
        self.server = None

    def start(self, status=200):
        self.status = status
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with hook.lock:
                    status = hook.status
                    hook.posts.append((body.decode(), self.headers.get("Content-Type"), status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def delivered(self):
        """Bodies answered 2xx, in arrival order."""
        with self.lock:
            return [b for b, _, s in self.posts if 200 <= s < 300]

    def answered(self, status):
        with self.lock:
            return sum(1 for _, _, s in self.posts if s == status)


def alert(i, manager, state="firing"):
    return json.dumps({
        "alert_id": "t-%d" % i, "state": state, "severity": "warn", "rule": "weekly-meetings",
        "manager": manager, "team": "unassigned", "metric": "meetings_held", "period": "w:2026-W47",
        "actual": i, "expected": 3.5, "target": 5, "ts": "2026-11-19T12:00:00Z",
        "message": "%s: alert %d" % (manager, i)}, sort_keys=True)


def xadd(c, alerts):
    """[(manager, json)] appended the way the evaluator does it."""
    for manager, body in alerts:
        c.execute_command("XADD", STREAM, "MAXLEN", "~", 1000, "*", "json", body, "manager", manager)


def wait_groups(c, kpid):
    def ready():
        try:
            names = {g["name"].decode() for g in c.xinfo_groups(STREAM)}
        except kpitest.redis_mod.exceptions.ResponseError:
            return False
        return names >= set(GROUPS)
    kpitest.wait_for(ready, 20, "consumer groups %s on %s" % (GROUPS, STREAM), on_timeout=kpid.log_tail)


def pending(c, group):
    return c.xpending(STREAM, group)["pending"]


def by_manager(bodies):
    out = {}
    for b in bodies:
        out.setdefault(json.loads(b)["manager"], []).append(b)
    return out


def event(i, manager="ivanov"):
    return (manager, json.dumps({"event_id": "n-%d" % i, "type": "call", "manager_id": manager,
                                 "ts": int(time.time() * 1000), "direction": "outbound",
                                 "status": "connected", "duration_s": 30}))


def start(env, hook, name=None):
    redis = env.redis()
    broker = env.broker()
    cfg = env.config(broker, redis, alerts={"webhook": {"url": hook.url, "timeout_ms": 1000}})
    kpid = env.kpid(cfg, name=name)
    c = redis.client()
    wait_groups(c, kpid)
    return redis, broker, cfg, kpid, c


def test_delivered_once_on_both_channels(env):
    hook = Webhook().start()
    try:
        redis, broker, cfg, kpid, c = start(env, hook)
        sent = [(m, alert(i, m)) for i, m in enumerate(["ivanov", "petrov", "ivanov", "sidorov",
                                                        "petrov", "ivanov", "ivanov", "kozlov"])]
        xadd(c, sent)
        kpitest.wait_for(lambda: len(hook.delivered()) >= len(sent), 20, "webhook deliveries",
                         on_timeout=kpid.log_tail)
        kpitest.wait_topic_count(broker.bootstrap, ALERTS_TOPIC, len(sent), kpid=kpid)
        kpitest.wait_for(lambda: all(pending(c, g) == 0 for g in GROUPS), 10,
                         "every entry acknowledged in both groups", on_timeout=kpid.log_tail)
        time.sleep(0.5)  # anything delivered twice would show up by now
        bodies = [b for _, b in sent]
        assert sorted(hook.delivered()) == sorted(bodies)
        assert all(ct == "application/json" for _, ct, _ in hook.posts)
        records = kpitest.read_topic(broker.bootstrap, ALERTS_TOPIC)
        assert sorted((r.key.decode(), r.value.decode()) for r in records) == sorted(sent)
        # One manager's alerts keep their order on both channels.
        assert by_manager(hook.delivered()) == by_manager(bodies)
        assert by_manager(r.value.decode() for r in records) == by_manager(bodies)
        assert kpid.stop() == 0, kpid.log_tail()
        # A clean stop with nothing pending removes this kpid's consumer from the groups.
        for g in GROUPS:
            assert c.xinfo_consumers(STREAM, g) == [], g
    finally:
        hook.stop()


def test_webhook_down_then_back(env):
    hook = Webhook()  # not listening yet
    try:
        redis, broker, cfg, kpid, c = start(env, hook)
        mark = kpid.log_size()
        sent = [("ivanov", alert(i, "ivanov", "firing" if i % 2 == 0 else "resolved"))
                for i in range(5)] + [("petrov", alert(10 + i, "petrov")) for i in range(2)]
        xadd(c, sent)
        # Kafka does not wait for the webhook.
        kpitest.wait_topic_count(broker.bootstrap, ALERTS_TOPIC, len(sent), kpid=kpid)
        port = r"webhook http://127\.0\.0\.1:%d/hook: alert \S+ not delivered: .*" % hook.port
        kpid.wait_log(port + r"retry #2 in 2 s", timeout=15, start=mark)
        assert "secret" not in kpid.log(), "the webhook URL's query (a token) was logged"
        # Events are consumed meanwhile.
        events = [event(i) for i in range(20)]
        kpitest.produce(broker.bootstrap, EVENTS_TOPIC, events)
        m = kpitest.wait_consumed(c, len(events), kpid, timeout=20)
        assert int(m["events_applied"]) == len(events)
        assert hook.delivered() == []
        # Up, but failing.
        hook.start(status=500)
        kpid.wait_log(port + r"HTTP 500; retry #\d+ in \d+ s", timeout=20, start=mark)
        assert pending(c, "webhook") == len(sent)
        hook.status = 200
        kpitest.wait_for(lambda: len(hook.delivered()) >= len(sent), 40, "webhook deliveries",
                         on_timeout=kpid.log_tail)
        kpitest.wait_for(lambda: pending(c, "webhook") == 0, 10, "webhook entries acknowledged",
                         on_timeout=kpid.log_tail)
        time.sleep(0.5)
        got = hook.delivered()
        assert sorted(got) == sorted(b for _, b in sent), "not every alert delivered exactly once"
        assert by_manager(got) == by_manager(b for _, b in sent), "one manager's alerts out of order"
        # One log line per failed attempt, no more.
        lines = [l for l in kpid.log()[mark:].splitlines()
                 if "webhook http://" in l and "HTTP 500" in l]
        assert len(lines) == hook.answered(500), "not one log line per failed attempt"
        assert kpid.stop() == 0, kpid.log_tail()
    finally:
        hook.stop()


def test_restart_takes_over_what_a_previous_run_left(env):
    """Entries pending under the consumer of a run that died (its name has another pid),
    idle for more than 60 s (XCLAIM IDLE stands for the time that passed), one of them
    deleted from the stream by MAXLEN trimming meanwhile: a starting kpid claims them at
    once, delivers the others and counts the deleted one as lost in each channel."""
    hook = Webhook().start()
    try:
        redis, broker, cfg, kpid, c = start(env, hook)
        assert kpid.stop() == 0, kpid.log_tail()
        sent = [("m", alert(i, "m")) for i in range(4)]
        ids = [c.xadd(STREAM, {"json": body, "manager": m}) for m, body in sent]
        for g in GROUPS:
            c.xreadgroup(g, "deadhost-1", {STREAM: ">"})
            c.xclaim(STREAM, g, "deadhost-1", 0, ids, idle=120000, justid=True)
        c.xdel(STREAM, ids[0])
        mark = kpid.log_size()
        kpid.start()
        kpitest.wait_for(lambda: len(hook.delivered()) >= 3, 15, "the left entries delivered",
                         on_timeout=kpid.log_tail)
        kpitest.wait_topic_count(broker.bootstrap, ALERTS_TOPIC, 3, kpid=kpid)
        kpitest.wait_for(lambda: all(pending(c, g) == 0 for g in GROUPS), 10,
                         "every entry acknowledged in both groups", on_timeout=kpid.log_tail)
        assert hook.delivered() == [b for _, b in sent[1:]]
        for g in GROUPS:
            kpid.wait_log(r"alert %s: deleted from the stream \(MAXLEN\) before channel %s "
                          r"delivered it; acknowledged, counted as lost" % (ids[0].decode(), g),
                          timeout=5, start=mark)
        assert kpid.stop() == 0, kpid.log_tail()
    finally:
        hook.stop()


def test_killed_kpid_entries_taken_over(env):
    hook = Webhook().start(status=500)
    try:
        redis, broker, cfg, a, c = start(env, hook, name="kpid-a")
        b = env.kpid(cfg, name="kpid-b")
        host = socket.gethostname()
        names = {"%s-%d" % (host, k.pid): k for k in (a, b)}
        # Entries one by one, so both kpid are likely to hold some.
        sent = []
        for i in range(8):
            sent.append(("m%d" % i, alert(i, "m%d" % i)))
            xadd(c, sent[-1:])
            time.sleep(0.13)
        kpitest.wait_for(lambda: hook.answered(500) >= len(sent), 20, "every alert tried once",
                         on_timeout=env.logs)
        held = {}
        for row in c.xpending_range(STREAM, "webhook", "-", "+", 100):
            held.setdefault(row["consumer"].decode(), []).append(row["message_id"])
        assert set(held) <= set(names), held
        victim = names[max(held, key=lambda k: len(held[k]))]
        survivor = b if victim is a else a
        victim.kill()
        t0 = time.monotonic()
        hook.status = 200
        kpitest.wait_for(lambda: len(hook.delivered()) >= len(sent), 120,
                         "every alert delivered (the dead kpid's after 60 s idle)",
                         on_timeout=survivor.log_tail)
        # The dead kpid's entries could only be delivered after they were idle 60 s.
        assert time.monotonic() - t0 > 50
        kpitest.wait_for(lambda: pending(c, "webhook") == 0, 10, "webhook entries acknowledged",
                         on_timeout=survivor.log_tail)
        time.sleep(0.5)
        assert sorted(hook.delivered()) == sorted(bd for _, bd in sent)
        assert survivor.stop() == 0, survivor.log_tail()
    finally:
        hook.stop()
