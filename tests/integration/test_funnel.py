"""The deal funnel in Redis (contract sections 2 and 4): stage counters, deal state,
pipelines, derived figures, leaderboards and rolling windows.

(a) a hand-written deal history (skip, return, amount-only update, reassignment, lost and
    reopened, won without amount, won on first sight, unknown and tiny amounts) whose
    values are worked out by hand below, and the whole state against the model;
(b) a kpi-gen history with every kind of move, against the model, keyed by deal;
(c) rolling windows falling when nothing happens as the hour turns, and exact after a
    restart an hour and a day later (kpid's stored state is moved back in time while it
    is stopped, since the wall clock cannot be moved: libfaketime breaks librdkafka's
    timed waits);
(d) a manager-keyed stream, where a reassigned deal's events sit in several partitions
    and their order is the consumer's: whatever that order, pipelines equal the sum of
    the stored deals and each stage is counted once per deal;
(e) kpictl board, funnel and top on a small set of today's events.
"""

import json
import os
import subprocess
import time

import expect
import faultlib
import kpitest
from kpitest import EVENTS_TOPIC
from test_exact import (RET_DAY, RET_WEEK, check_state, email, ev, meeting, stable_dump,
                        start_stack, utc)

DAY = 86400

FUNNEL_CONFIG = {
    "time_zone": "Europe/Moscow",
    "teams": {"msk": {"time_zone": "Europe/Moscow"}, "ber": {"time_zone": "Europe/Berlin"}},
    "managers": {"ivanov": {"team": "msk"}, "petrov": {"team": "msk"}, "weber": {"team": "ber"}},
    # The history is dated November 2026: its day keys must outlive the test whenever it runs.
    "retention": {"day_s": RET_DAY, "week_s": RET_WEEK},
}


def deal(eid, mgr, ts, deal_id, stage, **kw):
    return ev(eid, "deal_stage", mgr, ts, deal_id=deal_id, stage=stage, **kw)


def ms(s):
    return utc(s) * 1000


HISTORY = [
    deal("x01", "ivanov", "2026-11-02T09:00:00Z", "D1", "lead", amount=1000),
    meeting("x02", "ivanov", "2026-11-03T08:00:00Z", kind="first", next_step=True),
    deal("x03", "ivanov", "2026-11-03T09:00:00Z", "D1", "sql"),                  # skips mql
    deal("x04", "ivanov", "2026-11-04T09:00:00Z", "D1", "proposal", amount=2500.50),
    deal("x05", "ivanov", "2026-11-05T09:00:00Z", "D1", "sql"),                  # goes back
    deal("x06", "ivanov", "2026-11-06T09:00:00Z", "D1", "proposal"),             # not again
    deal("x07", "ivanov", "2026-11-07T09:00:00Z", "D1", "proposal", amount=3000),  # amount only
    deal("x08", "ivanov", "2026-11-09T09:00:00Z", "D1", "won"),                  # last amount
    email("x09", "ivanov", "2026-11-09T10:00:00Z"),
    email("x10", "ivanov", "2026-11-09T11:00:00Z"),
    deal("x11", "petrov", "2026-11-02T10:00:00Z", "D2", "lead", amount=500),
    deal("x12", "petrov", "2026-11-03T10:00:00Z", "D2", "mql"),
    deal("x13", "weber", "2026-11-04T10:00:00Z", "D2", "proposal"),             # reassigned
    deal("x14", "weber", "2026-11-05T10:00:00Z", "D2", "lost"),
    deal("x15", "weber", "2026-11-10T10:00:00Z", "D2", "negotiation", amount=800),  # reopened
    deal("x16", "ivanov", "2026-11-10T10:00:00Z", "D3", "lead"),                # amount unknown
    deal("x17", "petrov", "2026-11-10T12:00:00Z", "D4", "won", amount=10),       # won at once
    deal("x18", "ivanov", "2026-11-11T10:00:00Z", "D5", "lead", amount=0.1),    # 10 c x .05
    deal("x12", "petrov", "2026-11-03T10:00:00Z", "D2", "lost"),                # duplicate id
]

# Worked by hand from HISTORY (default stages: lead .05, mql .1, sql .2, proposal .4,
# negotiation .6; bits lead 1, mql 2, sql 4, proposal 8, negotiation 16, won 32, lost 64).
HAND = {
    # D1: lead, sql, proposal, won once each; revenue = last amount 3000.00; cycle
    # 11-02 09:00 -> 11-09 09:00 = 604800 s. D3, D5: leads. Activity: one first meeting
    # with a next step, two e-mails: 3 touches.
    "kpi:mgr:{ivanov}:m:2026-11": {
        "stage:lead": 3, "stage:sql": 1, "stage:proposal": 1, "stage:won": 1, "deals_won": 1,
        "revenue_won_cents": 300000, "cycle_seconds_won": 604800, "meetings_held": 1,
        "meetings_first": 1, "meetings_next_step": 1, "emails": 2, "touches": 3},
    "kpi:mgr:{ivanov}:m:2026-11:kpi": {
        "win_rate": "1", "avg_deal_cents": "300000", "avg_cycle_days": "7",
        "conv:lead>mql": "0", "conv:sql>proposal": "1", "conv:proposal>negotiation": "0",
        "touches_per_first_meeting": "3", "next_step_rate": "1"},
    # D2's entries go to the manager of each event; D4 won on first sight: cycle 0.
    "kpi:mgr:{petrov}:m:2026-11": {
        "stage:lead": 1, "stage:mql": 1, "stage:won": 1, "deals_won": 1, "revenue_won_cents": 1000},
    "kpi:mgr:{petrov}:m:2026-11:kpi": {
        "win_rate": "1", "avg_deal_cents": "1000", "avg_cycle_days": "0", "conv:lead>mql": "1",
        "conv:mql>sql": "0"},
    "kpi:mgr:{weber}:m:2026-11": {
        "stage:proposal": 1, "stage:lost": 1, "deals_lost": 1, "stage:negotiation": 1},
    "kpi:mgr:{weber}:m:2026-11:kpi": {
        "win_rate": "0", "conv:proposal>negotiation": "1", "conv:negotiation>won": "0"},
    # msk = ivanov + petrov: 2 won, 301000 c, 604800 s / 2 deals = 3.5 days; 4 leads, 1
    # entered mql (D2 entered proposal under weber, in team ber).
    "kpi:team:{msk}:m:2026-11:kpi": {
        "win_rate": "1", "avg_deal_cents": "150500", "avg_cycle_days": "3.5",
        "conv:lead>mql": "0.25", "conv:mql>sql": "1", "conv:sql>proposal": "1",
        "conv:proposal>negotiation": "0", "touches_per_first_meeting": "3", "next_step_rate": "1"},
    # organisation: 2 won of 3 closed; entries lead 4, mql 1, sql 1, proposal 2,
    # negotiation 1, won 2 (rates of entries in the period, so one can exceed 1).
    "kpi:org:m:2026-11:kpi": {
        "win_rate": "0.6667", "avg_deal_cents": "150500", "avg_cycle_days": "3.5",
        "conv:lead>mql": "0.25", "conv:mql>sql": "1", "conv:sql>proposal": "2",
        "conv:proposal>negotiation": "0.5", "conv:negotiation>won": "2",
        "touches_per_first_meeting": "3", "next_step_rate": "1"},
    # D2 (weber, negotiation, 800.00 x .6 = 480.00), D3 (ivanov, lead, no amount),
    # D5 (ivanov, lead, 10 c x .05 = 0.5 -> 1 c): petrov has nothing open any more.
    "kpi:mgr:{ivanov}:pipeline": {"open_count": 2, "open_amount_cents": 10,
                                  "weighted_amount_cents": 1, "open:lead": 2},
    "kpi:mgr:{petrov}:pipeline": {},
    "kpi:mgr:{weber}:pipeline": {"open_count": 1, "open_amount_cents": 80000,
                                 "weighted_amount_cents": 48000, "open:negotiation": 1},
    "kpi:team:{ber}:pipeline": {"open_count": 1, "open_amount_cents": 80000,
                                "weighted_amount_cents": 48000, "open:negotiation": 1},
    "kpi:org:pipeline": {"open_count": 3, "open_amount_cents": 80010,
                         "weighted_amount_cents": 48001, "open:lead": 2, "open:negotiation": 1},
    "kpi:deal:{D1}": {"manager": "ivanov", "stage": "won", "amount_cents": "300000",
                      "first_ts": str(ms("2026-11-02T09:00:00")),
                      "stage_ts": str(ms("2026-11-09T09:00:00")), "reached": "45"},
    "kpi:deal:{D2}": {"manager": "weber", "stage": "negotiation", "amount_cents": "80000",
                      "first_ts": str(ms("2026-11-02T10:00:00")),
                      "stage_ts": str(ms("2026-11-10T10:00:00")), "reached": "91"},
    "kpi:deal:{D3}": {"manager": "ivanov", "stage": "lead",
                      "first_ts": str(ms("2026-11-10T10:00:00")),
                      "stage_ts": str(ms("2026-11-10T10:00:00")), "reached": "1"},
    # boards on the organisation's calendar
    "kpi:lb:deals_won:m:2026-11": {"ivanov": 1, "petrov": 1},
    "kpi:lb:revenue_won_cents:m:2026-11": {"ivanov": 300000, "petrov": 1000},
    "kpi:lb:touches:d:2026-11-09": {"ivanov": 2},
    "kpi:lb:meetings_held:w:2026-W45": {"ivanov": 1},
}


def view(entry):
    """A dumped hash/zset as the HAND literals write it."""
    if entry is None:
        return {}
    v = entry["value"]
    if entry["type"] == "zset":
        return {m: int(s) for m, s in v.items()}
    if all(f.startswith(("stage:", "deals_", "revenue", "cycle", "open", "weighted", "meetings",
                         "emails", "touches")) for f in v):
        return {f: int(x) for f, x in v.items() if int(x) != 0}
    return v


def test_hand_history(env):
    redis, broker, cfg, kpid = start_stack(env, FUNNEL_CONFIG)
    msgs = kpitest.produce(broker.bootstrap, EVENTS_TOPIC, [(None, v, 0) for v in HISTORY])
    kpitest.wait_consumed(redis.client(), len(msgs), kpid)
    exp = expect.model(msgs, cfg, int(time.time() * 1000))
    dump, _ = stable_dump(redis.client())
    for key, want in HAND.items():
        got = view(dump.get(key))
        assert got == want, "%s: kpid %r, by hand %r" % (key, got, want)
        # and the model agrees with the hand
        model = {**exp.counters, **exp.derived, **exp.pipelines, **exp.deals,
                 **exp.leaderboards}.get(key, {})
        assert model == want, "model %s: %r, by hand %r" % (key, model, want)
    check_state(redis, broker, cfg, exp, kpid)
    assert kpid.stop() == 0, kpid.log_tail()


def gen_messages(env, cfg, count, seed, deal_key="deal", start=None):
    path = env.write_config(cfg, "gen-%d.json" % seed)
    out = os.path.join(env.dir, "gen-%d.txt" % seed)
    argv = [kpitest.binary("kpi-gen"), "-c", path, "--seed", str(seed), "--count", str(count),
            "--deal-key", deal_key, "--unkeyed-frac", "0", "--dup-frac", "0.01",
            "--invalid-frac", "0.01", "--oversize-every", "0", "--out", out]
    if start:
        argv += ["--start", start]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode("utf-8", "replace")
    return kpitest.read_gen_file(out)


GEN_CONFIG = {
    "time_zone": "Europe/Moscow",
    "teams": {"moscow-smb": {"time_zone": "Europe/Moscow"},
              "berlin-ent": {"time_zone": "Europe/Berlin"},
              "nyc-mm": {"time_zone": "America/New_York"}},
    "managers": dict(("m%02d" % i, {"team": ("moscow-smb", "berlin-ent", "nyc-mm")[i % 3]})
                     for i in range(12)),
    "internal": {"domains": ["ourcompany.ru"], "phone_prefixes": ["+7495100"]},
}


def test_generated_history(env):
    redis, broker, cfg, kpid = start_stack(env, GEN_CONFIG)
    gen = gen_messages(env, cfg, 60000, seed=11)
    msgs = kpitest.produce(broker.bootstrap, EVENTS_TOPIC, gen)
    kpitest.wait_consumed(redis.client(), len(msgs), kpid, timeout=120)
    kpitest.assert_low_watermarks_zero(broker, [EVENTS_TOPIC])
    exp = expect.model(msgs, cfg, int(time.time() * 1000))
    # The history must exercise every kind of move the funnel handles.
    states = exp.deal_state.values()
    owners = {}
    for _, v in gen:
        try:
            obj = json.loads(v)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("type") == "deal_stage":
            owners.setdefault(obj.get("deal_id"), set()).add(obj.get("manager_id"))
    reassigned = sum(1 for o in owners.values() if len(o) > 1)
    assert sum(1 for d in states if d.stage == "won") >= 20, "too few won deals"
    assert sum(1 for d in states if d.stage == "lost") >= 20, "too few lost deals"
    assert any(d.stage not in ("won", "lost") and "lost" in d.reached for d in states), "no reopened deal"
    assert reassigned, "no reassigned deal"
    assert any(len(d.reached) < 1 + ["lead", "mql", "sql", "proposal", "negotiation", "won"].index(d.stage)
               for d in states if d.stage != "lost"), "no skipped stage"
    check_state(redis, broker, cfg, exp, kpid)
    assert kpid.stop() == 0, kpid.log_tail()


# --- (c) rolling windows and the hour turning -----------------------------------------

HOUR_MS = 3600000


def rolling(c, mgr="ivanov"):
    return {f.decode(): int(v) for f, v in c.hgetall("kpi:mgr:{%s}:rolling" % mgr).items()
            if int(v) != 0}


def wait_for(pred, timeout=30, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out waiting for %s" % what)


def iso(ms_):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms_ // 1000))


def shift_back(c, hours):
    """Rewrites kpid's rolling state as if everything had happened `hours` earlier (and
    kpid had been stopped since): the stored hour and every per-hour field move back.
    The windows' sums are left as they were, stale: the restart must recompute them."""
    w = int(c.hget("kpi:meta", "rolling_hour_ms"))
    c.hset("kpi:meta", "rolling_hour_ms", w - hours * HOUR_MS)
    for key in c.scan_iter("kpi:mgr:*:hourly"):
        fields = c.hgetall(key)
        c.delete(key)
        c.hset(key, mapping={"%s:%d" % (f.decode().rsplit(":", 1)[0],
                                        int(f.decode().rsplit(":", 1)[1]) - hours): v
                             for f, v in fields.items()})


def test_rolling_windows_move_with_the_clock(env):
    """The timer that moves the windows when the wall-clock hour turns is the one that
    catches up at start: after a stop of an hour, then of a day, the windows are exactly
    those of the new hour, without any event arriving."""
    # Not within a minute of the hour: the first checks assume it does not turn.
    while time.time() % 3600 > 3540:
        time.sleep(1)
    w = int(time.time() * 1000) // HOUR_MS * HOUR_MS
    redis = env.redis()
    broker = env.broker()
    cfg = env.config(broker, redis, **FUNNEL_CONFIG)
    c = redis.client()
    kpid = env.kpid(cfg)
    events = [
        email("r1", "ivanov", iso(w - 23 * HOUR_MS + 600000)),   # in 24h until W+1h
        email("r2", "ivanov", iso(w - 719 * HOUR_MS + 1800000)),  # in 30d until W+1h
        email("r3", "ivanov", iso(w - 168 * HOUR_MS + 1800000)),  # hour W-168: not in 7d
        email("r4", "ivanov", iso(w)),
        email("r5", "ivanov", iso(w - 720 * HOUR_MS + 1800000)),  # in no window at all
        meeting("r6", "ivanov", iso(w)),                          # meetings_held, touches
    ]
    msgs = kpitest.produce(broker.bootstrap, EVENTS_TOPIC, [(None, v, 0) for v in events])
    kpitest.wait_consumed(c, len(msgs), kpid)
    assert int(c.hget("kpi:meta", "rolling_hour_ms")) == w
    assert rolling(c) == {"emails:24h": 2, "emails:7d": 2, "emails:30d": 4,
                          "touches:24h": 3, "touches:7d": 3, "touches:30d": 5,
                          "meetings_held:24h": 1, "meetings_held:7d": 1, "meetings_held:30d": 1}
    exp = expect.model(msgs, cfg, w)
    assert exp.rolling(w) == {"kpi:mgr:{ivanov}:rolling": rolling(c)}
    assert kpid.stop() == 0, kpid.log_tail()

    # An hour later: r1 leaves 24h, r2 leaves 30d (and its hour is dropped); the change feed
    # names every manager whose windows moved.
    shift_back(c, 1)
    feed = c.pubsub(ignore_subscribe_messages=True)
    feed.subscribe("kpi:updates")
    kpid = env.kpid(cfg)
    wait_for(lambda: int(c.hget("kpi:meta", "rolling_hour_ms")) >= w, what="the windows to move")
    note = wait_for(lambda: feed.get_message(timeout=0.5), what="a kpi:updates message")
    assert json.loads(note["data"])["managers"] == ["ivanov"], note
    feed.close()
    assert rolling(c) == {"emails:24h": 1, "emails:7d": 2, "emails:30d": 3,
                          "touches:24h": 2, "touches:7d": 3, "touches:30d": 4,
                          "meetings_held:24h": 1, "meetings_held:7d": 1, "meetings_held:30d": 1}
    hours = {int(f.decode().rsplit(":", 1)[1]) for f in c.hkeys("kpi:mgr:{ivanov}:hourly")}
    assert min(hours) == w // HOUR_MS - 169, sorted(hours)    # r3's; r2's hour was dropped
    faultlib.funnel_invariants(kpitest.dump_redis(c), cfg, "after an hour")
    assert kpid.stop() == 0, kpid.log_tail()

    # A day later: r4 and r6 leave 24h; nothing is left in it. Then one more e-mail counts.
    shift_back(c, 24)
    kpid = env.kpid(cfg)
    wait_for(lambda: int(c.hget("kpi:meta", "rolling_hour_ms")) >= w, what="the windows to move")
    assert rolling(c) == {"emails:7d": 2, "emails:30d": 3, "touches:7d": 3, "touches:30d": 4,
                          "meetings_held:7d": 1, "meetings_held:30d": 1}
    more = kpitest.produce(broker.bootstrap, EVENTS_TOPIC,
                           [(None, email("r7", "ivanov", iso(w + 1000)), 0)])
    kpitest.wait_consumed(c, len(msgs) + len(more), kpid)
    assert rolling(c) == {"emails:24h": 1, "emails:7d": 3, "emails:30d": 4,
                          "touches:24h": 1, "touches:7d": 4, "touches:30d": 5,
                          "meetings_held:7d": 1, "meetings_held:30d": 1}
    faultlib.funnel_invariants(kpitest.dump_redis(c), cfg, "after a day")
    assert kpid.stop() == 0, kpid.log_tail()


# --- (d) deals keyed by manager ---------------------------------------------------------


def test_manager_keyed_deals_stay_consistent(env):
    redis, broker, cfg, kpid = start_stack(env, GEN_CONFIG)
    gen = gen_messages(env, cfg, 30000, seed=12, deal_key="manager")
    msgs = kpitest.produce(broker.bootstrap, EVENTS_TOPIC, gen)
    kpitest.wait_consumed(redis.client(), len(msgs), kpid, timeout=120)
    dump = kpitest.dump_redis(redis.client())
    faultlib.funnel_invariants(dump, cfg, "manager-keyed stream")
    # Each stage counted once per deal that reached it, whatever the order.
    reached = {}
    stages = ["lead", "mql", "sql", "proposal", "negotiation", "won", "lost"]
    for k, e in dump.items():
        if k.startswith("kpi:deal:"):
            for i, s in enumerate(stages):
                if int(e["value"]["reached"]) >> i & 1:
                    reached[s] = reached.get(s, 0) + 1
    counted = {}
    for k, e in dump.items():
        if k.startswith("kpi:org:q:") and not k.endswith(":kpi"):
            for f, v in e["value"].items():
                if f.startswith("stage:"):
                    counted[f[6:]] = counted.get(f[6:], 0) + int(v)
    assert counted == reached and reached.get("won"), (counted, reached)
    assert kpid.stop() == 0, kpid.log_tail()


def test_hand_literals_are_json():
    """HISTORY is what a CRM would send: valid JSON objects."""
    for v in HISTORY:
        assert isinstance(json.loads(v), dict)


# --- (e) kpictl's views of the funnel ---------------------------------------------------


def kpictl(cfg_path, *args):
    r = subprocess.run([kpitest.binary("kpictl"), "-c", cfg_path] + list(args),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def line_of(lines, first_word):
    for line in lines:
        if line.split() and line.split()[0] == first_word:
            return line.split()
    raise AssertionError("no line for %s in:\n%s" % (first_word, "\n".join(lines)))


def test_kpictl_views(env):
    """board, funnel and top read today's hashes (kpictl picks the current period, so the
    events are dated a minute ago, away from Moscow's midnight)."""
    while (time.time() + 3 * 3600) % 86400 < 300:
        time.sleep(5)
    now = int(time.time() * 1000) - 60000
    at = iso(now)
    redis, broker, cfg, kpid = start_stack(env, FUNNEL_CONFIG)
    events = [
        email("k1", "ivanov", at), email("k2", "ivanov", at),
        meeting("k3", "ivanov", at, kind="first", next_step=True),
        email("k4", "petrov", at),
        deal("k5", "ivanov", at, "K1", "lead", amount=1000),
        deal("k6", "petrov", at, "K2", "won", amount=500),
        deal("k7", "weber", at, "K3", "lost"),
    ]
    msgs = kpitest.produce(broker.bootstrap, EVENTS_TOPIC, [(None, v, 0) for v in events])
    kpitest.wait_consumed(redis.client(), len(msgs), kpid)
    path = env.write_config(kpitest.dashboard_config(cfg), "kpictl.json")
    board = kpictl(path, "board", "--period", "d")
    # manager team calls conn talk_m emails meet first touches internal won win% pipeline touch24h
    iv = line_of(board, "ivanov")
    assert (iv[5], iv[6], iv[7], iv[8], iv[10], iv[11], iv[12], iv[13]) == \
        ("2", "1", "1", "3", "0", "-", "1,000", "3"), iv
    pe = line_of(board, "petrov")
    assert (pe[5], pe[8], pe[10], pe[11]) == ("1", "1", "1", "100.0"), pe
    funnel = kpictl(path, "funnel", "--scope", "org", "--period", "d")
    assert line_of(funnel, "lead")[1:] == ["1", "1"], funnel      # entered 1, open now 1
    assert line_of(funnel, "won")[1] == "1" and line_of(funnel, "lost")[1] == "1", funnel
    assert any(l.startswith("win rate 50.0%") for l in funnel), funnel
    assert any(l.startswith("open now 1 deals   amount 1,000") for l in funnel), funnel
    top = kpictl(path, "top", "--metric", "touches", "--period", "d")
    assert line_of(top, "1")[1:4] == ["ivanov", "msk", "3"], top
    assert line_of(top, "2")[1:4] == ["petrov", "msk", "1"], top
    assert kpid.stop() == 0, kpid.log_tail()
