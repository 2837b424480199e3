"""kpictl alerts: the last alerts of the kpi:alerts stream, newest last, one line each,
and how many alerts fire now (the managers' kpi:mgr:{<m>}:alerts hashes); and kpictl's
"now" following kpid's event clock.

kpictl only reads Redis (as the read-only `dashboard` ACL user, kpitest.dashboard_config),
so these tests start a redis-server and write by hand what kpid
would write: alert objects as in contract section 5 (plus one garbage entry), firing
hashes, counters. No kpid runs, so nothing else writes the stream while a test reads it.
"""

import json
import subprocess

import kpitest

BROKERS = "127.0.0.1:9092"  # never contacted: kpictl reads Redis only

CONFIG = {
    "time_zone": "Europe/Moscow",
    "teams": {"msk": {"time_zone": "Europe/Moscow", "lead": "sidorov"}},
    "managers": {"ivanov": {"team": "msk", "role": "hunter"},
                 "petrova": {"team": "msk", "role": "hunter"},
                 "sidorov": {"team": "msk", "role": "lead"}},
}


def start(env, **over):
    redis = env.redis()
    cfg = kpitest.default_config(BROKERS, redis.port, **kpitest.deep_merge(CONFIG, over))
    return redis.client(), env.write_config(kpitest.dashboard_config(cfg), "kpictl.json")


def kpictl(path, *args, rc=0):
    r = subprocess.run([kpitest.binary("kpictl"), "-c", path] + list(args),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == rc, (r.returncode, r.stdout, r.stderr)
    return r.stdout.splitlines()


def alert(manager, state, severity, ts, message, **extra):
    a = {"alert_id": "%s/weekly-meetings/w:2026-W47/1" % manager, "state": state,
         "severity": severity, "rule": "weekly-meetings", "manager": manager, "team": "msk",
         "metric": "meetings_held", "period": "w:2026-W47", "actual": 2, "expected": 3.5,
         "target": 5, "pct": 57.1429, "ts": ts, "message": message}
    a.update(extra)
    return a


def xadd(r, obj, manager):
    """An entry as kpid appends it: the alert object as `json`, and `manager`."""
    text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
    return r.xadd("kpi:alerts", {"json": text, "manager": manager}).decode()


def fill(r):
    """Five entries, oldest first; returns their stream ids."""
    ids = [
        xadd(r, alert("ivanov", "firing", "warn", "2026-11-19T12:00:00Z",
                      "ivanov: 2 meetings held this week, 3.5 expected by now (target 5)"),
             "ivanov"),
        xadd(r, alert("petrova", "firing", "critical", "2026-11-19T12:10:00Z",
                      "petrova (critical): 1 meeting held this week, 3.6 expected by now (target 5)"),
             "petrova"),
        xadd(r, "{not json", "petrova"),
        xadd(r, alert("ivanov", "firing", "critical", "2026-11-20T06:00:00Z",
                      "ivanov (critical): 2 meetings held this week, 4 expected by now (target 5);"
                      " open for 18 h, escalated to sidorov",
                      escalated_to="sidorov", digest=True),
             "ivanov"),
        xadd(r, alert("petrova", "resolved", "critical", "2026-11-20T07:30:00Z",
                      "petrova is back on pace: 4 meetings held this week, 3.9 expected by now"
                      " (target 5)"),
             "petrova"),
    ]
    return ids


def firing(r):
    """3 alerts of 2 managers: a configured one and one kpid only saw in events. A hash of
    a manager nobody knows is not counted; an empty one counts nobody."""
    r.hset("kpi:mgr:{ivanov}:alerts", mapping={"weekly-meetings": "{}", "silent": "{}"})
    r.hset("kpi:mgr:{walker}:alerts", "daily-touches", "{}")
    r.hset("kpi:mgr:{ghost}:alerts", "daily-touches", "{}")
    r.sadd("kpi:managers", "ivanov", "walker")


def test_last_alerts_newest_last(env):
    r, path = start(env)
    ids = fill(r)
    firing(r)
    assert kpictl(path, "alerts", "-n", "3") == [
        "last 3 of 5 alerts, newest last (times UTC)",
        "?         entry %s is not an alert" % ids[2],
        "06:00:00Z FIRING   critical ivanov  [→ sidorov] [digest] 2 meetings held this week,"
        " 4 expected by now (target 5); open for 18 h, escalated to sidorov",
        "07:30:00Z RESOLVED critical petrova is back on pace: 4 meetings held this week,"
        " 3.9 expected by now (target 5)",
        "firing now: 3 alerts for 2 managers",
    ]
    # Default: the last 10, here all five, oldest first.
    out = kpictl(path, "alerts")
    assert out[0] == "last 5 of 5 alerts, newest last (times UTC)", out
    assert out[1:3] == [
        "12:00:00Z FIRING   warn     ivanov  2 meetings held this week, 3.5 expected by now"
        " (target 5)",
        "12:10:00Z FIRING   critical petrova 1 meeting held this week, 3.6 expected by now"
        " (target 5)",
    ], out
    assert len(out) == 7 and out[-1] == "firing now: 3 alerts for 2 managers", out


def test_no_alerts(env):
    r, path = start(env)
    assert kpictl(path, "alerts") == [
        "last 0 of 0 alerts, newest last (times UTC)",
        "          (no alerts yet)",
        "firing now: 0 alerts for 0 managers",
    ]
    r.hset("kpi:mgr:{sidorov}:alerts", "silent", "{}")
    assert kpictl(path, "alerts")[-1] == "firing now: 1 alert for 1 manager"


def test_odd_entries(env):
    """Objects kpid would not write still give one line each: missing fields are "?", the
    manager falls back to the entry's field, control characters do not break the line, a
    message that does not start with the manager is shown whole, and a name longer than
    the manager column (18) is shown whole too."""
    r, path = start(env)
    xadd(r, {"state": "firing", "ts": "2026-11-19T12:00:00+03:00",
             "message": "line one\nline two"}, "walker")
    xadd(r, ["an", "array"], "ivanov")
    ids = [xadd(r, {}, "")]
    xadd(r, alert("a-rather-long-manager-name", "firing", "warn", "2026-11-19T12:00:00Z",
                  "someone else: behind"), "a-rather-long-manager-name")
    ids.append(r.xadd("kpi:alerts", {"manager": "ivanov"}).decode())
    out = kpictl(path, "alerts")
    assert out[1:6] == [
        "?         FIRING   ?        walker             line one line two",
        "?         entry %s is not an alert" % r.xrange("kpi:alerts")[1][0].decode(),
        "?         ?        ?        ?                  ?",
        "12:00:00Z FIRING   warn     a-rather-long-manager-name someone else: behind",
        "?         entry %s is not an alert" % ids[1],
    ], out
    assert out[6] == "firing now: 0 alerts for 0 managers", out


def test_options(env):
    _, path = start(env)
    for bad in (["alerts", "-n", "0"], ["alerts", "--period", "d"],
                ["alerts", "--metric", "touches"], ["alerts", "--scope", "org"]):
        kpictl(path, *bad, rc=2)
    r = subprocess.run([kpitest.binary("kpictl"), "-c", path, "nope"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "kpictl -c FILE alerts [-n N] [--watch SECONDS]" in r.stderr


def test_board_follows_the_event_clock(env):
    """With "clock": "event" kpictl's "now" is kpi:meta last_event_ts, as kpid's pacing: a
    replayed day shows as "today" however long ago it was."""
    r, path = start(env, alerts={"clock": "event"})
    r.hset("kpi:mgr:{ivanov}:d:2025-03-14", mapping={"touches": 7, "emails": 7})
    r.hset("kpi:org:d:2025-03-14", mapping={"touches": 7, "emails": 7})
    r.sadd("kpi:managers", "ivanov")
    # Before any event: the wall clock (today's hashes are empty).
    board = kpictl(path, "board")
    assert board[1].split()[:2] == ["ivanov", "msk"] and board[1].split()[8] == "0", board
    r.hset("kpi:meta", "last_event_ts", 1741942800000)  # 2025-03-14T09:00:00Z, 12:00 Moscow
    board = kpictl(path, "board")
    assert board[1].split()[8] == "7", board  # touches
    assert board[-3].split()[:2] == ["org", "d:2025-03-14"], board
    top = kpictl(path, "top", "--period", "w")
    assert top[0].startswith("top 10 by touches, w:2025-W11 (Europe/Moscow)"), top
