"""kpictl manager, team, top, the --json documents of every command, its errors, and
kpictl watch following kpi:updates across a Redis restart.

kpictl only reads Redis (as the read-only `dashboard` ACL user, kpitest.dashboard_config),
so each test starts a redis-server and writes by hand what kpid
would write (the README's "Redis layout"), then checks kpictl's output line by line and
its JSON value by value. The configuration uses the event clock, so "now" is
kpi:meta last_event_ts: 2026-11-20T00:00:00Z, 03:00 in Moscow, whatever day the tests run.
"""

import json
import os
import queue
import signal
import subprocess
import threading

import kpitest

BROKERS = "127.0.0.1:9092"  # never contacted: kpictl reads Redis only
NOW_MS = 1795132800000  # 2026-11-20T00:00:00Z: d:2026-11-20, w:2026-W47, m:2026-11 in Moscow

CONFIG = {
    "time_zone": "Europe/Moscow",
    "teams": {"moscow-smb": {"time_zone": "Europe/Moscow", "lead": "sidorov"},
              "nyc-mm": {"time_zone": "America/New_York"}},
    "managers": {"ivanov": {"team": "moscow-smb", "role": "hunter"},
                 "petrova": {"team": "moscow-smb", "role": "farmer"},
                 "sidorov": {"team": "moscow-smb", "role": "lead"},
                 "johnson": {"team": "nyc-mm"}},
    "alerts": {"clock": "event"},
}

ALERT = {"alert_id": "ivanov/weekly-meetings/w:2026-W47/1", "state": "firing",
         "severity": "warn", "rule": "weekly-meetings", "manager": "ivanov",
         "team": "moscow-smb", "metric": "meetings_held", "period": "w:2026-W47", "actual": 2,
         "expected": 3.5, "target": 5, "ts": "2026-11-19T12:00:00Z",
         "message": "ivanov: 2 meetings held this week, 3.5 expected by now (target 5)"}


def start(env):
    redis = env.redis()
    cfg = kpitest.default_config(BROKERS, redis.port, **kpitest.deep_merge(CONFIG, {}))
    return redis, env.write_config(kpitest.dashboard_config(cfg), "kpictl.json")


def run(path, *args, rc=0):
    argv = [kpitest.binary("kpictl")] + (["-c", path] if path else []) + list(args)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert r.returncode == rc, (r.returncode, r.stdout, r.stderr)
    return r


def lines(path, *args):
    return run(path, *args).stdout.splitlines()


def doc(path, *args):
    out = run(path, *args, "--json").stdout
    assert out.endswith("\n") and out.count("\n") == 1, out  # one document, one line
    return json.loads(out)


def fill(r):
    """Ivanov's week and day, Petrova's week, a manager kpid only saw in events, the team's
    week, the organisation's day and a leaderboard."""
    r.hset("kpi:meta", mapping={"schema": 1, "events_applied": 120, "events_invalid": 3,
                                "events_duplicate": 2, "events_internal": 7,
                                "last_event_ts": NOW_MS})
    r.sadd("kpi:managers", "ivanov", "petrova", "walker")
    r.hset("kpi:mgr:{ivanov}:w:2026-W47", mapping={
        "calls": 30, "calls_connected": 12, "call_seconds": 3600, "emails": 9,
        "meetings_held": 2, "meetings_first": 1, "touches": 23, "stage:proposal": 2,
        "deals_won": 1, "deals_lost": 1, "revenue_won_cents": 12500050, "x_future": "abc"})
    r.hset("kpi:mgr:{ivanov}:w:2026-W47:kpi", mapping={
        "meetings_held:target": 5, "meetings_held:expected": "3.5",
        "meetings_held:pct": "57.1429", "meetings_held:state": "warn",
        "stage:proposal:target": 3, "stage:proposal:expected": "2.1",
        "stage:proposal:pct": "95.2381", "stage:proposal:state": "ok",
        "win_rate": "0.5", "avg_deal_cents": "12500050", "conv:sql>proposal": "0.6667"})
    r.hset("kpi:mgr:{ivanov}:d:2026-11-20", mapping={"touches": 4, "calls": 5})
    r.hset("kpi:mgr:{ivanov}:d:2026-11-20:kpi", mapping={
        "touches:target": 40, "touches:expected": "0", "touches:pct": "10",
        "touches:state": "critical"})
    r.hset("kpi:mgr:{ivanov}:pipeline", mapping={
        "open_count": 3, "open_amount_cents": 30000000, "weighted_amount_cents": 10000000,
        "open:proposal": 2, "open:negotiation": 1})
    r.hset("kpi:mgr:{ivanov}:rolling", mapping={"touches:24h": 4, "touches:7d": 23,
                                                "touches:30d": 80, "calls:7d": 30})
    r.hset("kpi:mgr:{ivanov}:alerts", "weekly-meetings", json.dumps(ALERT))
    r.zadd("kpi:mgr:{ivanov}:last", {"touches": NOW_MS - 60000, "calls": NOW_MS - 3600000})
    r.hset("kpi:mgr:{petrova}:w:2026-W47", mapping={"calls": 11, "touches": 7,
                                                    "meetings_held": 4})
    r.hset("kpi:mgr:{petrova}:w:2026-W47:kpi", mapping={"meetings_held:state": "ok"})
    r.hset("kpi:mgr:{walker}:w:2026-W47", mapping={"emails": 6, "touches": 6})
    r.hset("kpi:team:{moscow-smb}:w:2026-W47", mapping={
        "calls": 41, "touches": 30, "meetings_held": 6, "deals_won": 1})
    r.hset("kpi:team:{moscow-smb}:w:2026-W47:kpi", mapping={
        "meetings_held:target": 13, "meetings_held:expected": "9.1",
        "meetings_held:pct": "65.9341", "meetings_held:state": "warn", "win_rate": "0.5"})
    r.hset("kpi:team:{moscow-smb}:pipeline", mapping={"open_count": 3,
                                                      "open_amount_cents": 30000000})
    r.zadd("kpi:lb:touches:d:2026-11-20", {"ivanov": 4, "petrova": 9, "walker": 4})


def test_manager(env):
    redis, path = start(env)
    fill(redis.client())
    out = lines(path, "manager", "ivanov", "--period", "w")
    assert out[0] == "manager ivanov: team moscow-smb, role hunter; w:2026-W47 (Europe/Moscow)"
    assert out[1] == "last activity 2026-11-19T23:59:00Z (touches)"
    # Every counter, absent ones 0, in the README's order; unknown fields after them.
    assert "  calls                              30" in out
    assert "  calls_in                            0" in out
    assert "  revenue_won_cents            12500050" in out
    assert out.index("  calls                              30") < out.index(
        "  stage:proposal                      2") < out.index(
        "  x_future                          abc")
    i = out.index("  target             actual     target   expected       pct  state")
    assert out[i + 1:i + 3] == [
        "  meetings_held           2          5        3.5   57.1429  warn",
        "  stage:proposal          2          3        2.1   95.2381  ok",
    ], out
    assert "  win_rate                          0.5" in out
    assert "  conv:sql>proposal              0.6667" in out
    assert "pipeline now: 3 open deals, amount 300,000, weighted 100,000" in out
    assert "  open by stage: proposal 2, negotiation 1" in out
    assert ("rolling (24h / 7d / 30d): calls 0/30/0, emails 0/0/0, meetings_held 0/0/0,"
            " touches 4/23/80") in out
    i = out.index("firing alerts: 1")
    assert out[i + 1] == ("  weekly-meetings warn     w:2026-W47   ivanov: 2 meetings held this"
                          " week, 3.5 expected by now (target 5)")
    assert out[-3:] == ["last activity by counter (UTC)",
                        "  touches                  2026-11-19T23:59:00Z",
                        "  calls                    2026-11-19T23:00:00Z"]

    d = doc(path, "manager", "ivanov", "--period", "w")
    assert {k: d[k] for k in ("manager", "team", "role", "configured", "period", "zone")} == {
        "manager": "ivanov", "team": "moscow-smb", "role": "hunter", "configured": True,
        "period": "w:2026-W47", "zone": "Europe/Moscow"}
    assert d["counters"]["calls"] == 30 and d["counters"]["emails_in"] == 0
    assert d["counters"]["revenue_won_cents"] == 12500050 and d["counters"]["x_future"] == "abc"
    assert d["targets"] == {
        "meetings_held": {"actual": 2, "target": 5, "expected": 3.5, "pct": 57.1429,
                          "state": "warn"},
        "stage:proposal": {"actual": 2, "target": 3, "expected": 2.1, "pct": 95.2381,
                           "state": "ok"}}
    assert d["kpi_score"] is None and d["bonus"] is None
    assert d["derived"] == {"win_rate": 0.5, "avg_deal_cents": 12500050,
                            "conv:sql>proposal": 0.6667}
    assert d["pipeline"] == {"open_count": 3, "open_amount_cents": 30000000,
                             "weighted_amount_cents": 10000000,
                             "open": {"lead": 0, "mql": 0, "sql": 0, "proposal": 2,
                                      "negotiation": 1}}
    assert d["rolling"]["touches"] == {"24h": 4, "7d": 23, "30d": 80}
    assert d["alerts"] == [{"rule": "weekly-meetings", "alert": ALERT}]
    assert d["last_activity"] == {"counter": "touches", "ts_ms": NOW_MS - 60000,
                                  "ts": "2026-11-19T23:59:00Z",
                                  "by_counter": {"touches": NOW_MS - 60000,
                                                 "calls": NOW_MS - 3600000}}

    # Default period: today in the team's zone; a full period id works too.
    d = doc(path, "manager", "ivanov")
    assert d["period"] == "d:2026-11-20" and d["counters"]["touches"] == 4
    assert d["targets"]["touches"]["state"] == "critical"
    assert doc(path, "manager", "ivanov", "--period", "w:2026-W47")["counters"]["calls"] == 30
    assert doc(path, "manager", "ivanov", "--period", "w:2026-W46")["counters"]["calls"] == 0

    # Known from events only: team unassigned, role default.
    d = doc(path, "manager", "walker", "--period", "w")
    assert (d["team"], d["role"], d["configured"]) == ("unassigned", "default", False)
    assert d["counters"]["emails"] == 6 and d["alerts"] == [] and d["last_activity"]["ts"] is None
    # Configured but without any data: all zeros, not an error.
    d = doc(path, "manager", "sidorov")
    assert d["counters"]["touches"] == 0 and d["targets"] == {}
    # Score and bonus when the period's :kpi has them.
    redis.client().hset("kpi:mgr:{ivanov}:m:2026-11:kpi", mapping={"kpi_score": "0.9",
                                                                   "bonus": "27000"})
    d = doc(path, "manager", "ivanov", "--period", "m")
    assert (d["kpi_score"], d["bonus"]) == (0.9, 27000)
    assert "kpi score 0.9, bonus 27000" in lines(path, "manager", "ivanov", "--period", "m")


def test_team(env):
    redis, path = start(env)
    fill(redis.client())
    out = lines(path, "team", "moscow-smb", "--period", "w")
    assert out[0] == "team moscow-smb (lead sidorov): 3 managers; w:2026-W47 (Europe/Moscow)"
    assert "  calls                              41" in out
    assert "  meetings_held          6         13        9.1   65.9341  warn" in out
    i = out.index("manager role    calls emails  meet touches  won     revenue    pipeline"
                  " alerts  state")
    assert out[i + 1:] == [
        "ivanov  hunter     30      9     2      23    1     125,001     300,000      1  warn",
        "petrova farmer     11      0     4       7    0           0           0      0  ok",
        "sidorov lead        0      0     0       0    0           0           0      0  -",
    ], out
    d = doc(path, "team", "moscow-smb", "--period", "w")
    assert (d["team"], d["lead"], d["configured"], d["period"], d["zone"]) == (
        "moscow-smb", "sidorov", True, "w:2026-W47", "Europe/Moscow")
    assert d["counters"]["calls"] == 41 and d["counters"]["emails"] == 0
    assert d["targets"]["meetings_held"] == {"actual": 6, "target": 13, "expected": 9.1,
                                             "pct": 65.9341, "state": "warn"}
    assert d["derived"] == {"win_rate": 0.5}
    assert d["pipeline"]["open_amount_cents"] == 30000000
    assert [m["manager"] for m in d["managers"]] == ["ivanov", "petrova", "sidorov"]
    iv = d["managers"][0]
    assert (iv["role"], iv["state"], iv["alerts_firing"], iv["open_amount_cents"]) == (
        "hunter", "warn", 1, 30000000)
    assert iv["counters"]["touches"] == 23 and iv["targets"]["meetings_held"]["pct"] == 57.1429
    # unassigned: the managers kpid saw without a configuration.
    d = doc(path, "team", "unassigned", "--period", "w")
    assert [m["manager"] for m in d["managers"]] == ["walker"]
    assert d["managers"][0]["counters"]["touches"] == 6 and d["lead"] is None
    # Another zone: New York's day at 2026-11-20T00:00Z is still the 19th.
    assert doc(path, "team", "nyc-mm")["period"] == "d:2026-11-19"


def test_top_and_other_json(env):
    redis, path = start(env)
    r = redis.client()
    fill(r)
    out = lines(path, "top", "touches", "--period", "d")
    # Equal values share a place; Redis orders them in reverse byte order.
    assert out == [
        "top 10 by touches, d:2026-11-20 (Europe/Moscow): 3 ranked",
        "   #  manager team                touches",
        "   1  petrova moscow-smb                9",
        "   2  walker  unassigned                4",
        "   2  ivanov  moscow-smb                4",
    ], out
    assert lines(path, "top", "--metric", "touches", "--period", "d") == out
    d = doc(path, "top", "touches", "--period", "d", "-n", "2")
    assert (d["metric"], d["period"], d["zone"], d["ranked"]) == (
        "touches", "d:2026-11-20", "Europe/Moscow", 3)
    assert d["rows"][0] == {"rank": 1, "manager": "petrova", "team": "moscow-smb", "value": 9}
    assert len(d["rows"]) == 2 and d["rows"][1]["rank"] == 2 and d["rows"][1]["value"] == 4

    assert doc(path, "meta") == {"schema": 1, "events_applied": 120, "events_invalid": 3,
                                 "events_duplicate": 2, "events_internal": 7,
                                 "last_event_ts": NOW_MS}
    d = doc(path, "board", "--period", "w")
    assert [m["manager"] for m in d["managers"]] == ["ivanov", "petrova", "walker"]
    assert d["managers"][0]["calls"] == 30 and d["managers"][0]["win_rate"] == 0.5
    assert d["managers"][0]["open_amount_cents"] == 30000000
    assert d["meta"] == {"events_applied": 120, "events_invalid": 3, "events_duplicate": 2,
                         "events_internal": 7}
    assert d["org"]["period"] == "w:2026-W47" and d["org"]["win_rate"] is None
    d = doc(path, "funnel", "--scope", "mgr:ivanov", "--period", "w")
    assert d["stages"][3] == {"stage": "proposal", "entered": 2,
                              "conversion_field": "conv:sql>proposal", "conversion": 0.6667,
                              "open": 2}
    assert d["win_rate"] == 0.5 and d["pipeline"]["open_count"] == 3

    r.xadd("kpi:alerts", {"json": json.dumps(ALERT), "manager": "ivanov"})
    sid = r.xadd("kpi:alerts", {"json": "{not json", "manager": "petrova"}).decode()
    d = doc(path, "alerts")
    assert d["total"] == 2 and d["alerts"][0]["alert"] == ALERT
    assert d["alerts"][1] == {"id": sid, "manager": "petrova", "alert": None}
    assert d["firing"] == {"alerts": 1, "managers": 1, "by_manager": {"ivanov": 1}}


def test_errors(env):
    redis, path = start(env)
    fill(redis.client())
    r = run(path, "manager", "nobody", rc=1)
    assert r.stdout == "" and r.stderr == (
        "kpictl: unknown manager 'nobody' (not in %s and no data in redis)\n" % path)
    r = run(path, "team", "nowhere", "--json", rc=1)
    assert r.stdout == "" and r.stderr == (
        "kpictl: unknown team 'nowhere' (not in %s and no data in redis)\n" % path)
    # A manager no longer configured whose keys are still there is not unknown.
    redis.client().hset("kpi:mgr:{gone}:pipeline", "open_count", 1)
    assert doc(path, "manager", "gone")["pipeline"]["open_count"] == 1

    for bad in (["manager"], ["team"], ["manager", "a", "b"], ["manager", "ivanov", "-n", "3"],
                ["manager", "ivanov", "--period", "x"], ["top", "calls"],
                ["top", "touches", "--metric", "deals_won"], ["board", "--json", "--watch", "1"],
                ["watch", "--watch", "1"], ["meta", "--period", "d"], ["board", "--bogus"],
                ["funnel", "ivanov"], []):
        r = run(path, *bad, rc=2)
        assert r.stderr.startswith("kpictl: ") and "usage: kpictl" in r.stderr, (bad, r.stderr)

    redis.stop()
    r = run(path, "manager", "ivanov", rc=1)
    assert r.stderr == ("kpictl: redis 127.0.0.1:%d: Connection refused; is kpid's redis"
                        " running?\n" % redis.port)
    run(path, "watch", rc=1)

    r = run(None, "--help")
    for word in ("manager MANAGER", "team TEAM", "board", "funnel", "top [METRIC]", "alerts",
                 "watch", "meta", "--period", "--json", "--watch", "--scope", "--metric", "-n N",
                 "-c FILE", "/etc/kpid/kpid.json", "EXIT STATUS"):
        assert word in r.stdout, word
    assert all(ord(ch) < 128 for ch in r.stdout)  # plain text for the man page


class Watch:
    """kpictl watch with its stdout read line by line in a thread."""

    def __init__(self, env, path, *args):
        self.log = os.path.join(env.dir, "watch%d.log" % len(os.listdir(env.dir)))
        self.proc = kpitest.spawn([kpitest.binary("kpictl"), "-c", path, "watch"] + list(args),
                                  self.log, stdout=subprocess.PIPE)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.decode())

    def line(self, timeout=10.0):
        return self.lines.get(timeout=timeout).rstrip("\n")

    def stderr(self):
        with open(self.log) as f:
            return f.read()


def subscribed(r):
    return dict(r.pubsub_numsub("kpi:updates")).get(b"kpi:updates", 0) >= 1


def test_watch(env):
    redis, path = start(env)
    r = redis.client()
    fill(r)
    w = Watch(env, path)
    wj = Watch(env, path, "--json")
    try:
        kpitest.wait_for(lambda: dict(r.pubsub_numsub("kpi:updates"))[b"kpi:updates"] == 2,
                         10, "two kpictl watch subscribed")
        # kpictl authenticated as the read-only user, not as the harness's `default`.
        assert set(redis.connection_users()) == {kpitest.DASHBOARD_USER}, redis.connection_users()
        r.publish("kpi:updates", json.dumps({"managers": ["ivanov", "walker"], "ts": NOW_MS}))
        assert w.line() == (
            "2026-11-20T00:00:00Z ivanov d:2026-11-20 touches=4 calls=5 emails=0"
            " meetings_held=0 deals_won=0 revenue_won_cents=0 alerts=1 state=critical;"
            " walker d:2026-11-20 touches=0 calls=0 emails=0 meetings_held=0 deals_won=0"
            " revenue_won_cents=0 alerts=0 state=-")
        assert json.loads(wj.line()) == {"ts": NOW_MS, "managers": [
            {"manager": "ivanov", "team": "moscow-smb", "period": "d:2026-11-20", "touches": 4,
             "calls": 5, "emails": 0, "meetings_held": 0, "deals_won": 0,
             "revenue_won_cents": 0, "alerts_firing": 1, "state": "critical"},
            {"manager": "walker", "team": "unassigned", "period": "d:2026-11-20", "touches": 0,
             "calls": 0, "emails": 0, "meetings_held": 0, "deals_won": 0,
             "revenue_won_cents": 0, "alerts_firing": 0, "state": None}]}

        # Redis restarts (empty: no persistence): both say so and subscribe again.
        redis.restart()
        kpitest.wait_for(lambda: dict(r.pubsub_numsub("kpi:updates"))[b"kpi:updates"] == 2,
                         15, "kpictl watch re-subscribed")
        for x in (w, wj):
            assert "connection lost" in x.stderr() and "re-subscribed to kpi:updates" in x.stderr()
        r.publish("kpi:updates", "not an update")
        r.hset("kpi:mgr:{petrova}:d:2026-11-20", "touches", 2)
        r.publish("kpi:updates", json.dumps({"managers": ["petrova"], "ts": NOW_MS + 1000}))
        # No kpi:meta after the restart: the event clock falls back to the wall clock, so
        # the period is today's; petrova's touches show only if today is the 20th.
        line = w.line()
        assert line.startswith("2026-11-20T00:00:01Z petrova d:"), line
        assert json.loads(wj.line())["managers"][0]["manager"] == "petrova"
        assert "ignored a message that is not an update" in w.stderr()

        for x in (w, wj):
            x.proc.send_signal(signal.SIGINT)
            assert x.proc.wait(timeout=5) == 0
    finally:
        for x in (w, wj):
            if x.proc.poll() is None:
                x.proc.kill()
