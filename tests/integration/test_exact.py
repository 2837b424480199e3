"""Exact contents: kpid's Redis state and DLQ compared field by field with the reference
model (expect.py), and for a few keys with values worked out by hand below, so the
model is checked too.

(a) a hand-written event set touching every counter and validation rule;
(b) a kpi-gen stream over 4 partitions, with and without keys, DLQ and offsets exact;
(c) duplicates across flushes and across a restart;
(d) kpi:updates notifications;
(e) the offsets hash equals the end offsets (checked in (b) and (c)).
"""

import calendar
import json
import re
import time

import expect
import kpitest
from kpitest import DLQ_TOPIC, EVENTS_TOPIC

DAY = 86400
ABSENT = object()


def utc(s):
    """'2026-11-16T09:00:00' (UTC) -> epoch seconds."""
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%S"))


def ev(eid, typ, mgr, ts, **fields):
    """One event as JSON bytes; a field given as ABSENT is left out, None is null."""
    obj = {"event_id": eid, "type": typ, "manager_id": mgr, "ts": ts}
    for k, v in fields.items():
        if v is ABSENT:
            obj.pop(k, None)
        else:
            obj[k] = v
    return json.dumps(obj, ensure_ascii=False).encode()


def call(eid, mgr, ts, direction="outbound", status="connected", **kw):
    return ev(eid, "call", mgr, ts, direction=direction, status=status, **kw)


def email(eid, mgr, ts, direction="outbound", **kw):
    return ev(eid, "email", mgr, ts, direction=direction, **kw)


def meeting(eid, mgr, ts, status="held", **kw):
    return ev(eid, "meeting", mgr, ts, status=status, **kw)


def padded(eid, mgr, ts, size):
    """A valid outbound e-mail event of exactly `size` bytes (padding in an unknown field)."""
    base = email(eid, mgr, ts, pad="")
    pad = size - len(base)
    assert pad >= 0
    out = email(eid, mgr, ts, pad="x" * pad)
    assert len(out) == size
    return out


# --- the hand-written set --------------------------------------------------------

RET_DAY = 7300 * DAY                     # 20 years
RET_WEEK = 7665 * DAY                    # 21 years (differs from RET_DAY on purpose)

HAND_CONFIG = {
    "time_zone": "Europe/Berlin",
    "teams": {
        "msk": {"time_zone": "Europe/Moscow", "lead": "petrov"},
        "nyc": {"time_zone": "America/New_York"},
        "blr": {"time_zone": "Asia/Kolkata"},
        "nozone": {},
    },
    "managers": {
        "ivanov": {"team": "msk", "role": "hunter"},
        "petrov": {"team": "msk"},
        "smith": {"team": "nyc"},
        "rao": {"team": "blr"},
        "weber": {"team": "nozone"},
    },
    "internal": {"domains": ["ourcompany.ru"], "phone_prefixes": ["+7495100"]},
    "touch_min_call_s": 10,
    "future_skew_s": 200 * DAY,          # the set reaches into March 2027
    "max_message_bytes": 2048,
    # Long enough that the 2026/2027 keys outlive this test file; the 2005 event's day
    # and week keys are expired on arrival (absent), its month and quarter keys are not.
    "retention": {"day_s": RET_DAY, "week_s": RET_WEEK},
}

UNASSIGNED_MGR = "j.doe_2@x-y"
LONG_MGR = "m" * 64
IV = "2026-11-16T10:00:00+03:00"         # ivanov's working day (Moscow)

# (key, value, partition). Everything whose order matters (duplicates, invalid-then-valid
# copies of one event_id) sits in partition 0, so the model's order is kpid's order.
HAND_VALID = [
    # ivanov, d:2026-11-16 in Moscow: every activity counter
    call("a01", "ivanov", IV, duration_s=10),                      # touch at exactly 10 s
    call("a02", "ivanov", IV, duration_s=9),                       # 9 s: no touch
    call("a03", "ivanov", IV, status="no_answer", duration_s=25),  # seconds count anyway
    call("a04", "ivanov", IV, status="busy"),
    call("a05", "ivanov", IV, status="failed", duration_s=None),   # null = absent = 0
    call("a06", "ivanov", IV, direction="inbound", duration_s=300),
    email("a07", "ivanov", IV),
    email("a08", "ivanov", IV, direction="inbound"),
    meeting("a09", "ivanov", IV, status="scheduled"),
    meeting("a10", "ivanov", IV, kind="first", next_step=True),
    meeting("a11", "ivanov", IV, kind="first", next_step=False),
    meeting("a12", "ivanov", IV, next_step=True),                  # followup: no next-step count
    meeting("a13", "ivanov", IV, status="cancelled"),
    meeting("a14", "ivanov", IV, status="no_show", kind="first"),
    # internal: by flag, domain (case), subdomain, phone with punctuation, inbound
    call("a15", "ivanov", IV, duration_s=86400, internal=True),
    email("a16", "ivanov", IV, counterpart="Petrov@Sales.OurCompany.RU"),
    call("a17", "ivanov", IV, duration_s=60, counterpart="+7 (495) 100-12-34"),
    meeting("a18", "ivanov", IV, kind="first", counterpart="boss@ourcompany.ru"),
    email("a19", "ivanov", IV, direction="inbound", counterpart="x@ourcompany.ru"),
    call("a20", "ivanov", IV, direction="inbound", internal=True),
    # near misses: external
    email("a21", "ivanov", IV, counterpart="x@ourcompany.ru.example.com"),
    email("a22", "ivanov", IV, counterpart="y@yourcompany.ru"),
    call("a23", "ivanov", IV, duration_s=11, counterpart="+7 (495) 200-00-00"),
    email("a24", "ivanov", IV, counterpart="x@ourcompany.ru@evil.com"),
    call("a25", "ivanov", IV, duration_s=30, internal=False, counterpart="+7495100 7777"),  # internal: prefix
    email("a26", "ivanov", IV, internal=None, counterpart=None),
    call("a27", "ivanov", utc("2026-11-16T09:00:00") * 1000, duration_s=0),   # integer epoch ms
    email("a28", "ivanov", "2026-11-16T12:00:00.123456789+03:00"),
    b'  {"event_id":"a29","type":"email","manager_id":"ivanov","ts":"2026-11-16T07:00:00Z",'
    b'"direction":"inbound","extra":{"nested":[1,2.5,null]},"x":"y"}\n',
    call("a30", "ivanov", IV, duration_s=86400),
    meeting("a31", "ivanov", IV, kind="first", next_step=True, counterpart="client@example.com",
            internal=False),
    email("a40", "ivanov", "2026-11-16T23:30:00+03:00"),           # Moscow 16th, Berlin 16th
    email("a41", "ivanov", "2026-11-17T00:30:00+03:00"),           # Moscow 17th, Berlin 16th
    call("p01", "petrov", "2026-11-16T15:00:00+03:00", duration_s=45),
    # smith, New York: DST end day 2026-11-01 (01:30 twice), day/week/month edges
    call("s01", "smith", "2026-11-01T05:30:00Z", duration_s=20),   # 01:30 EDT
    call("s02", "smith", "2026-11-01T06:30:00Z", duration_s=20),   # 01:30 EST
    email("s03", "smith", "2026-11-01T23:30:00-05:00"),            # NY Nov 1 (W44), Berlin Nov 2 (W45)
    meeting("s04", "smith", "2026-11-16T23:30:00-05:00", kind="first", next_step=True),
    email("s05", "smith", "2026-11-22T23:30:00-05:00", direction="inbound"),  # NY W47, Berlin W48
    call("s06", "smith", "2026-09-30T23:30:00-04:00", direction="inbound"),   # NY Q3, Berlin Q4
    email("s07", "smith", "2027-03-14T23:30:00-04:00"),            # NY DST start day; Berlin Mar 15
    # rao, Kolkata: ISO week 53 of 2026 and New Year
    call("r01", "rao", "2026-11-17T00:30:00+05:30", duration_s=10),   # Kolkata 17th, Berlin 16th
    email("r02", "rao", "2026-12-31T12:00:00+05:30"),
    email("r03", "rao", "2027-01-01T02:00:00+05:30"),              # Kolkata 2027, Berlin 2026
    meeting("r04", "rao", "2027-01-01T10:00:00+05:30"),            # both 2027-01-01, W53
    call("r05", "rao", "2005-03-10T12:00:00+05:30", duration_s=15),   # day, week keys expired
    # weber: team without a zone (Berlin), Berlin DST end day
    call("w01", "weber", "2026-10-25T01:30:00Z", duration_s=12),   # 02:30 CET (second)
    email("w02", "weber", "2026-10-25T00:30:00Z"),                 # 02:30 CEST (first)
    # unassigned managers (global zone)
    call("u01", UNASSIGNED_MGR, "2026-11-16T23:30:00Z", duration_s=100),   # Berlin Nov 17
    email("u02", UNASSIGNED_MGR, "2026-11-16T22:30:00Z"),                  # Berlin Nov 16
    email("u03", LONG_MGR, "2026-11-16T12:00:00Z", direction="inbound"),
    # edges of the id rules, fractions, offsets
    email("e" * 128, "petrov", "2026-11-16T12:00:00.5+03:00"),
    email("evt 1 ~!{}", "petrov", "2026-11-16T12:00:00.000Z", direction="inbound"),
    padded("big-ok", "petrov", "2026-11-16T12:00:00Z", 2048),     # exactly max_message_bytes
    # deal_stage: validated, de-duplicated, counted in meta only (for now)
    ev("d01", "deal_stage", "dealer", "2026-11-16T12:00:00Z", deal_id="D-1", stage="lead", amount=1.005),
    ev("d02", "deal_stage", "ivanov", "2026-11-16T12:00:00Z", deal_id="D.2@x", stage="won", amount=100,
       source="web"),
    ev("d03", "deal_stage", "dealer", "2026-11-16T12:00:00Z", deal_id="D-1", stage="sql", amount=None,
       source=None),
]

NOW_PLUS_201D = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 201 * DAY))
OK = dict(direction="outbound", status="connected")

HAND_INVALID = [
    b"",
    b"not json",
    b"[1,2]",
    b'"a string"',
    b'{"event_id":"x1","type":"email"',
    b'{"event_id":"x2","type":"email","manager_id":"ivanov","ts":"2026-11-16T07:00:00Z",'
    b'"direction":"outbound"} {}',
    b'{"event_id":"x3","type":"email","manager_id":"iva\xffnov","ts":"2026-11-16T07:00:00Z",'
    b'"direction":"outbound"}',                                             # invalid UTF-8
    b'{"event_id":"x4","type":"call","manager_id":"ivanov","ts":"2026-11-16T07:00:00Z",'
    b'"direction":"outbound","status":"connected","duration_s":NaN}',
    json.dumps({"type": "email", "manager_id": "ivanov", "ts": IV, "direction": "outbound"}).encode(),
    email("", "ivanov", IV),
    email("e" * 129, "ivanov", IV),
    email("tab\there", "ivanov", IV),
    email("caf\u00e9", "ivanov", IV),
    ev(5, "email", "ivanov", IV, direction="outbound"),
    ev("x10", "sms", "ivanov", IV),
    ev("x11", "email", "ivanov", IV, direction="outbound", type=ABSENT),
    email("x12", "iva nov", IV),
    email("x13", "m" * 65, IV),
    email("x14", "ivanov!", IV),
    email("x15", None, IV),
    email("x16", "ivanov", "2026-11-16t07:00:00Z"),
    email("x17", "ivanov", "2026-11-16T07:00:00z"),
    email("x18", "ivanov", "2026-11-16T07:00:00"),
    email("x19", "ivanov", "2026-11-16T07:00:60Z"),
    email("x20", "ivanov", "2026-02-29T07:00:00Z"),
    email("x21", "ivanov", "2026-11-16 07:00:00Z"),
    email("x22", "ivanov", 1763283600000.0),
    email("x23", "ivanov", "1763283600000"),
    email("x24", "ivanov", True),
    email("x25", "ivanov", None),
    email("x26", "ivanov", NOW_PLUS_201D),
    ev("x27", "call", "ivanov", IV, status="connected"),
    call("x28", "ivanov", IV, direction="out"),
    call("x29", "ivanov", IV, status="ok"),
    ev("x30", "call", "ivanov", IV, direction="outbound"),
    call("x31", "ivanov", IV, duration_s=60.0),
    call("x32", "ivanov", IV, duration_s=-1),
    call("x33", "ivanov", IV, duration_s=86401),
    call("x34", "ivanov", IV, duration_s="60"),
    call("x35", "ivanov", IV, internal="true"),
    call("x36", "ivanov", IV, counterpart=12345),
    ev("x37", "email", "ivanov", IV),
    meeting("x38", "ivanov", IV, status="done"),
    meeting("x39", "ivanov", IV, kind="second"),
    meeting("x40", "ivanov", IV, next_step="yes"),
    meeting("x41", "ivanov", IV, next_step=1),
    ev("x42", "meeting", "ivanov", IV),
    ev("x43", "deal_stage", "ivanov", IV, stage="lead"),
    ev("x44", "deal_stage", "ivanov", IV, deal_id="d 1", stage="lead"),
    ev("x45", "deal_stage", "ivanov", IV, deal_id="d1", stage="closed"),
    ev("x46", "deal_stage", "ivanov", IV, deal_id="d1", stage="lead", amount=-1),
    ev("x47", "deal_stage", "ivanov", IV, deal_id="d1", stage="lead", amount=1000000000001),
    ev("x48", "deal_stage", "ivanov", IV, deal_id="d1", stage="lead", amount="100"),
    ev("x49", "deal_stage", "ivanov", IV, deal_id="d1", stage="lead", source=5),
    ev("x50", "deal_stage", "ivanov", IV, deal_id="d1"),
    padded("x51", "petrov", "2026-11-16T12:00:00Z", 2049),          # one byte over the limit
]

# Readings at the edges of the JSON and RFC 3339 rules (manager "edge", unassigned).
EDGE_TS = "2026-11-16T12:00:00Z"
EDGE_HEAD = '{"event_id":"%s","type":"email","manager_id":"edge","ts":"2026-11-16T12:00:00Z","direction":"outbound"'
HAND_EDGE_VALID = [
    email("g01", "edge", "2026-11-16T12:00:00-00:00"),
    email("g02", "edge", "2026-11-16T12:00:00+23:59"),
    email("g03", "edge", "2026-11-16T12:00:00.1234567890123456789Z"),
    (EDGE_HEAD % "g04" + ',"x":1e400}').encode(),                         # unknown: any JSON number
    (EDGE_HEAD % "g05" + ',"x":-123456789012345678901234567890}').encode(),
    (EDGE_HEAD % "g06" + '}\r\n \t').encode(),                            # trailing whitespace
    call("g07", "edge", EDGE_TS, kind=5, next_step="x"),                  # fields of other types
    email("g08", "edge", EDGE_TS, status=5),
    ev("g09", "deal_stage", "edge", EDGE_TS, deal_id="d" * 128, stage="lead", internal="x", counterpart=5),
    email("g10", "edge", EDGE_TS, counterpart="@ourcompany.ru"),          # internal
    email("g11", "edge", EDGE_TS, counterpart="a@"),                      # external
    call("g12", "edge", EDGE_TS, duration_s=10, counterpart=" +7495100"),  # internal
    meeting("g13", "edge", EDGE_TS, counterpart="+7-495-100"),            # internal
    b'{"event_id":"g\\u0031\\u0034","type":"email","manager_id":"edg\\u0065","ts":"2026-11-16T12:00:00Z",'
    b'"direction":"inbound"}',                                             # escapes: g14 / edge
]
HAND_EDGE_INVALID = [
    b"\xef\xbb\xbf" + email("h01", "edge", EDGE_TS),                        # BOM
    ("/*c*/" + EDGE_HEAD % "h02" + "}").encode(),                         # comments: not JSON
    (EDGE_HEAD % "h03" + "}//c").encode(),
    (EDGE_HEAD % "h04" + ",}").encode(),
    email("h05", "edge", "2026-11-16T12:00:00+24:00"),
    email("h06", "edge", "2026-11-16T12:00:00.Z"),
    email("h07", "edge", "2026-11-16T12:00:00,5Z"),
    call("h08", "edge", EDGE_TS, duration_s=True),
    ev("h09", "deal_stage", "edge", EDGE_TS, deal_id="d" * 129, stage="lead"),
    b'{"event_id":"h10","type":"deal_stage","manager_id":"edge","ts":"2026-11-16T12:00:00Z",'
    b'"deal_id":"d","stage":"lead","amount":1000000000000.0000001}',
    b'{"event_id":"h11","type":"email","manager_id":"edge","ts":1e3,"direction":"outbound"}',
]

# Order-sensitive part, all in partition 0, after HAND_VALID's copies there.
HAND_ORDERED = [
    (call("a01", "ivanov", IV, duration_s=10), "duplicate"),          # exact copy
    (meeting("a07", "ivanov", IV), "duplicate"),                      # same id, other content
    (call("a15", "ivanov", IV, duration_s=86400, internal=True), "duplicate"),  # internal copy
    (ev("a02", "sms", "ivanov", IV), "invalid"),                      # applied id, but invalid
    (ev("a50", "call", "ivanov", IV, direction="outbound"), "invalid"),  # no status
    (email("a50", "ivanov", IV, direction="inbound"), "valid"),       # its id was not remembered
    (ev("d02", "deal_stage", "ivanov", IV, deal_id="D.2@x", stage="lost"), "duplicate"),
]


def hand_messages():
    """[(key, value, partition)]: keyed by manager mostly, some keyless, spread over
    partitions; the order-sensitive ones in partition 0."""
    out = []
    for i, v in enumerate(HAND_VALID + HAND_INVALID + HAND_EDGE_VALID + HAND_EDGE_INVALID):
        key = None if i % 5 == 0 else b"k%d" % (i % 7)
        out.append((key, v, i % 4))
    # Copies must come after their originals: originals of a01/a07/a15/a02/d02 are in
    # HAND_VALID at positions whose partition is i % 4; pin those to partition 0.
    # A deal's events must share a partition: their order is the deal's history.
    pinned = {b"a01", b"a07", b"a15", b"a02", b"d02", b"d01", b"d03"}
    for j, (key, v, p) in enumerate(out):
        obj = _try_json(v)
        if obj is not None and isinstance(obj, dict) and str(obj.get("event_id")).encode() in pinned:
            out[j] = (key, v, 0)
    out += [(b"ivanov", v, 0) for v, _ in HAND_ORDERED]
    return out


def _try_json(v):
    try:
        return json.loads(v)
    except ValueError:
        return None


def start_stack(env, config_over, topics=None):
    redis = env.redis()
    broker = env.broker(topics)
    cfg = env.config(broker, redis, **config_over)
    kpid = env.kpid(cfg)
    return redis, broker, cfg, kpid


def check_dlq(broker, exp, kpid):
    """The DLQ topic holds exactly the expected invalid messages, unchanged, with origin
    headers pointing at them."""
    if exp.dlq:
        kpitest.wait_topic_count(broker.bootstrap, DLQ_TOPIC, len(exp.dlq), kpid=kpid)
    recs = kpitest.read_topic(broker.bootstrap, DLQ_TOPIC)
    problems = []
    got = []
    for r in recs:
        h = r.headers
        for name in ("kpi.error", "kpi.topic", "kpi.partition", "kpi.offset"):
            if name not in h or not h[name]:
                problems.append("DLQ %d@%d: header %s missing or empty (%r)"
                                % (r.partition, r.offset, name, r.header_list))
        for name in ("kpi.partition", "kpi.offset"):
            if name in h and h[name] and h[name] != str(int(h[name])).encode():
                problems.append("DLQ %d@%d: %s=%r is not a decimal string"
                                % (r.partition, r.offset, name, h[name]))
        try:
            origin = (h["kpi.topic"].decode(), int(h["kpi.partition"]), int(h["kpi.offset"]))
        except (KeyError, ValueError, AttributeError):
            origin = None
        # An empty value may come back as null (Kafka does not tell them apart here).
        got.append((origin, r.key, r.value or b""))
    assert not problems, "\n".join(problems[:20])
    want = [((d["topic"], d["partition"], d["offset"]), d["key"], d["value"] or b"") for d in exp.dlq]
    got.sort(key=lambda x: (x[0] or ("", -1, -1)))
    want.sort(key=lambda x: x[0])
    if got != want:
        gs, ws = set(got), set(want)
        lines = ["DLQ differs: %d records, expected %d" % (len(got), len(want))]
        lines += ["  missing: origin=%s key=%r value=%r" % (o, k, v[:120])
                  for o, k, v in sorted(ws - gs)[:15]]
        lines += ["  unexpected: origin=%s key=%r value=%r" % (o, k, v[:120])
                  for o, k, v in sorted(gs - ws, key=str)[:15]]
        if len(got) != len(set(got)):
            lines.append("  (some records appear more than once)")
        raise AssertionError("\n".join(lines))
    return recs


# Every key kpid may write while only sections 1-4's activity counters exist. Extend it
# when deal state, leaderboards, :kpi figures or alerts arrive.
KNOWN_KEYS = re.compile(
    r"kpi:(%s(:kpi)?|(mgr:\{[^}]+\}|team:\{[^}]+\}|org):pipeline|mgr:\{[^}]+\}:(rolling|hourly|last)"
    r"|deal:\{[^}]+\}|lb:(touches|meetings_held|deals_won|revenue_won_cents):[dwmq]:[0-9A-Z-]+"
    r"|meta|managers|dedup|alerts|offsets:[^:]+:.+)" % kpitest.COUNTER_KEY_RE)


def stable_dump(c):
    """dump_redis taken while the rolling windows' hour stays put (kpid moves it when the
    wall-clock hour turns), and that hour."""
    while True:
        w = c.hget("kpi:meta", "rolling_hour_ms")
        dump = kpitest.dump_redis(c)
        if c.hget("kpi:meta", "rolling_hour_ms") == w:
            return dump, w


def ints(value):
    """A hash or sorted-set value from a dump as {field: int}, zeros dropped."""
    return {f: int(v) for f, v in value.items() if int(v) != 0}


def check_funnel(dump, exp, w):
    """Derived figures, deal states, pipelines, leaderboards and rolling windows."""
    def view(pattern, conv=ints):
        rx = re.compile(pattern)
        out = {k: conv(e["value"]) for k, e in dump.items() if rx.fullmatch(k)}
        return {k: v for k, v in out.items() if v}
    derived = view(r"kpi:.*:kpi", dict)
    kpitest.assert_same(exp.derived, derived, "derived figures (:kpi)")
    kpitest.assert_same(exp.derived_expire_at, {k: dump[k]["expire_at"] for k in derived},
                        ":kpi expiry")
    kpitest.assert_same(exp.deals, view(r"kpi:deal:\{.*\}", dict), "deal states")
    kpitest.assert_same(exp.pipelines, view(r"kpi:.*:pipeline"), "pipelines")
    lbs = view(r"kpi:lb:.*")
    kpitest.assert_same(exp.leaderboards, lbs, "leaderboards")
    kpitest.assert_same(exp.lb_expire_at, {k: dump[k]["expire_at"] for k in lbs}, "leaderboard expiry")
    # The first flush stores the hour the windows are kept for.
    assert w is not None or not exp.counters, "kpi:meta has no rolling_hour_ms"
    if w is not None:
        kpitest.assert_same(exp.rolling(w), view(r"kpi:mgr:\{.*\}:rolling"), "rolling windows")
        kpitest.assert_same(exp.hourly(w), view(r"kpi:mgr:\{.*\}:hourly"), "per-hour sums")
    kpitest.assert_same(exp.last, view(r"kpi:mgr:\{.*\}:last"), "latest activity times")


def check_state(redis, broker, cfg, exp, kpid, topics=(EVENTS_TOPIC,)):
    """Counters, their expiry, meta, managers, dedup ids and offsets all as expected,
    and no other keys."""
    c = redis.client()
    dump, w = stable_dump(c)
    stray = sorted(k for k in dump if not KNOWN_KEYS.fullmatch(k))
    assert not stray, "unexpected keys in Redis: %s" % stray[:20]
    kpitest.assert_same(exp.counters, kpitest.counter_view(dump), "counters")
    kpitest.assert_same(exp.expire_at, kpitest.expiry_view(dump), "counter key expiry (EXPIRETIME)")
    kpitest.assert_same(exp.meta, expect.meta_view(kpitest.meta(c)), "kpi:meta")
    check_funnel(dump, exp, w)
    got_mgrs = set(dump.get("kpi:managers", {}).get("value", []))
    assert got_mgrs == exp.managers, "kpi:managers: missing %s, unexpected %s" % (
        sorted(exp.managers - got_mgrs), sorted(got_mgrs - exp.managers))
    got_ids = set(dump.get("kpi:dedup", {}).get("value", []))
    assert got_ids == exp.dedup_ids, "kpi:dedup members: missing %s, unexpected %s" % (
        sorted(exp.dedup_ids - got_ids)[:10], sorted(got_ids - exp.dedup_ids)[:10])
    for t in topics:
        check_offsets(c, broker, cfg, t)
    return dump


def check_offsets(client, broker, cfg, topic):
    """(e) kpi:offsets:<group>:<topic> = the end offset of every partition that has data."""
    key = "kpi:offsets:%s:%s" % (cfg["kafka"]["group"], topic)
    stored = {int(k): int(v) for k, v in client.hgetall(key).items()}
    ends = kpitest.end_offsets(broker.bootstrap, topic)
    for p, end in ends.items():
        if end == 0:
            assert stored.get(p, 0) == 0, "%s[%d]: stored %s for an empty partition" % (key, p, stored.get(p))
        else:
            assert stored.get(p) == end, "%s[%d]: stored %s, end offset %d" % (key, p, stored.get(p), end)
    extra = set(stored) - set(ends)
    assert not extra, "%s: partitions %s do not exist" % (key, sorted(extra))


# --- (a) -------------------------------------------------------------------------


def check_model_by_hand(exp, msgs):
    """The model's reading of the hand-written set equals values worked out by hand."""
    dups = {(m.partition, m.offset) for m in exp.duplicates}
    invalid = {(m.partition, m.offset) for m, _ in exp.invalid}
    for m, (_, fate) in zip(msgs[-len(HAND_ORDERED):], HAND_ORDERED):
        where = (m.partition, m.offset)
        got = "duplicate" if where in dups else "invalid" if where in invalid else "valid"
        assert got == fate, "model: %r is %s, by hand %s" % (m.value, got, fate)
    n_valid = 57 + 14 + 1                # HAND_VALID + HAND_EDGE_VALID + a50
    n_invalid = 56 + 11 + 2              # HAND_INVALID + HAND_EDGE_INVALID + (a02 as sms, a50)
    n_dup = 4
    assert len(HAND_VALID) == 57 and len(HAND_INVALID) == 56
    assert len(HAND_EDGE_VALID) == 14 and len(HAND_EDGE_INVALID) == 11
    hand_meta = {"schema": "1", "events_applied": str(n_valid), "events_invalid": str(n_invalid),
                 "events_duplicate": str(n_dup), "events_internal": str(7 + 3),
                 "last_event_ts": str(utc("2027-03-15T03:30:00") * 1000)}
    assert exp.meta == hand_meta
    assert exp.managers == {"ivanov", "petrov", "smith", "rao", "weber", UNASSIGNED_MGR, LONG_MGR, "dealer",
                            "edge"}
    hand = {
        "kpi:mgr:{ivanov}:d:2026-11-16": {
            "calls": 8, "calls_connected": 5, "call_seconds": 86455, "calls_in": 1, "emails": 7,
            "emails_in": 3, "meetings_scheduled": 1, "meetings_held": 4, "meetings_first": 3,
            "meetings_next_step": 2, "meetings_cancelled": 1, "meetings_no_show": 1, "touches": 14,
            "internal_filtered": 7,
            # d02: a deal first seen as won: its cycle is 0 s, its revenue the event's amount
            "stage:won": 1, "deals_won": 1, "revenue_won_cents": 10000},
        "kpi:mgr:{ivanov}:d:2026-11-17": {"emails": 1, "touches": 1},
        "kpi:team:{nyc}:d:2026-11-01": {"calls": 2, "calls_connected": 2, "call_seconds": 40,
                                        "emails": 1, "touches": 3},
        "kpi:team:{nyc}:w:2026-W44": {"calls": 2, "calls_connected": 2, "call_seconds": 40,
                                      "emails": 1, "touches": 3},
        "kpi:org:d:2026-11-01": {"calls": 2, "calls_connected": 2, "call_seconds": 40, "touches": 2},
        "kpi:org:d:2026-11-02": {"emails": 1, "touches": 1},
        "kpi:team:{nyc}:m:2026-09": {"calls_in": 1},
        "kpi:org:m:2026-09": ABSENT,                    # s06 is October 1st in Berlin
        "kpi:team:{nyc}:q:2026-Q3": {"calls_in": 1},
        "kpi:org:q:2026-Q3": ABSENT,
        "kpi:org:q:2005-Q1": {"calls": 1, "calls_connected": 1, "call_seconds": 15, "touches": 1},
        "kpi:team:{blr}:w:2026-W53": {"emails": 2, "meetings_held": 1, "touches": 3},
        "kpi:team:{blr}:d:2027-01-01": {"emails": 1, "meetings_held": 1, "touches": 2},
        "kpi:org:d:2026-12-31": {"emails": 2, "touches": 2},
        "kpi:org:q:2027-Q1": {"emails": 1, "meetings_held": 1, "touches": 2},
        "kpi:team:{msk}:d:2026-11-17": {"emails": 1, "touches": 1},
        "kpi:team:{unassigned}:d:2026-11-17": {"calls": 1, "calls_connected": 1, "call_seconds": 100,
                                               "touches": 1},
        "kpi:mgr:{rao}:d:2005-03-10": ABSENT,           # expired: 2005-03-11 + 20 years < now
        "kpi:mgr:{rao}:w:2005-W10": ABSENT,             # 2005-03-14 + 21 years < now
        "kpi:mgr:{rao}:m:2005-03": {"calls": 1, "calls_connected": 1, "call_seconds": 15, "touches": 1},
        "kpi:mgr:{dealer}:d:2026-11-16": {"stage:lead": 1, "stage:sql": 1},   # D-1 entered both
        "kpi:mgr:{edge}:d:2026-11-16": {"emails": 7, "touches": 7, "emails_in": 1, "calls": 1,
                                        "calls_connected": 1, "internal_filtered": 3,
                                        "stage:lead": 1},                 # g09, a 128-byte deal id
        "kpi:mgr:{edge}:d:2026-11-15": {"emails": 1, "touches": 1},      # +23:59
    }
    for key, want in hand.items():
        if want is ABSENT:
            assert key not in exp.counters, "model has %s = %r" % (key, exp.counters.get(key))
        else:
            got = exp.counters.get(key)
            assert got == want, "model %s = %r, by hand %r" % (key, got, want)
    hand_expiry = {
        "kpi:team:{nyc}:d:2026-11-01": utc("2026-11-02T05:00:00") + RET_DAY,     # EST midnight
        "kpi:team:{nyc}:d:2027-03-14": utc("2027-03-15T04:00:00") + RET_DAY,     # EDT midnight
        "kpi:org:d:2026-10-25": utc("2026-10-25T23:00:00") + RET_DAY,            # CET midnight
        "kpi:team:{blr}:w:2026-W53": utc("2027-01-03T18:30:00") + RET_WEEK,
        "kpi:mgr:{ivanov}:w:2026-W47": utc("2026-11-22T21:00:00") + RET_WEEK,
        "kpi:org:m:2026-11": -1,
        "kpi:mgr:{rao}:q:2005-Q1": -1,
    }
    for key, want in hand_expiry.items():
        got = exp.expire_at.get(key)
        assert got == want, "model expiry %s = %r, by hand %r" % (key, got, want)
    assert len(exp.dlq) == n_invalid


def test_hand_written_set(env):
    redis, broker, cfg, kpid = start_stack(env, HAND_CONFIG)
    msgs = kpitest.produce(broker.bootstrap, EVENTS_TOPIC, hand_messages())
    meta = kpitest.wait_consumed(redis.client(), len(msgs), kpid)
    kpitest.assert_low_watermarks_zero(broker, [EVENTS_TOPIC, DLQ_TOPIC])
    exp = expect.model(msgs, cfg, int(time.time() * 1000))
    check_model_by_hand(exp, msgs)

    # kpid against the model, everything.
    assert kpitest.consumed_count(meta) == len(msgs)
    check_state(redis, broker, cfg, exp, kpid)
    check_dlq(broker, exp, kpid)
    assert kpid.running()
    assert kpid.stop() == 0, kpid.log_tail()


# --- (b) -------------------------------------------------------------------------

GEN_CONFIG = {
    "time_zone": "Europe/Moscow",
    "teams": {
        "msk": {"time_zone": "Europe/Moscow"},
        "nyc": {"time_zone": "America/New_York"},
        "blr": {"time_zone": "Asia/Kolkata"},
        "utc": {"time_zone": "UTC"},
    },
    "managers": dict(
        [("m%02d" % i, {"team": ("msk", "nyc", "blr", "utc")[i % 4]}) for i in range(20)]),
    "internal": {"domains": ["ourcompany.ru"], "phone_prefixes": ["+7495100"]},
    "future_skew_s": 86400,
    "max_message_bytes": 16384,   # kpi-gen's oversize messages stay producible
}


def test_generated_stream(env):
    redis, broker, cfg, kpid = start_stack(env, GEN_CONFIG)
    gen = kpitest.run_gen(env.dir, env.write_config(cfg, "gen.json"), seed=7, count=20000,
                          dup_frac=0.02, invalid_frac=0.03)
    assert len(gen) >= 20000
    half = len(gen) // 2
    # First half keyed (the default partitioner keeps a key in one partition), second
    # half without keys (spread at random), except deal events: one deal's events must
    # stay in one partition for their order to be its history.
    keyed = kpitest.produce(broker.bootstrap, EVENTS_TOPIC, [(k, v) for k, v in gen[:half]])
    keyless = kpitest.produce(broker.bootstrap, EVENTS_TOPIC,
                              [(k if b'"deal_stage"' in v else None, v) for k, v in gen[half:]])
    msgs = keyed + keyless
    assert {m.partition for m in msgs} == {0, 1, 2, 3}
    kpitest.wait_consumed(redis.client(), len(msgs), kpid, timeout=90)
    kpitest.assert_low_watermarks_zero(broker, [EVENTS_TOPIC, DLQ_TOPIC])
    exp = expect.model(msgs, cfg, int(time.time() * 1000))
    # The stream must exercise what it claims to.
    n_inv = int(exp.meta.get("events_invalid", 0))
    n_dup = int(exp.meta.get("events_duplicate", 0))
    assert n_inv >= 0.01 * len(msgs) and n_dup >= 0.005 * len(msgs), exp.meta
    assert len(exp.counters) > 100
    check_state(redis, broker, cfg, exp, kpid)
    check_dlq(broker, exp, kpid)
    assert kpid.stop() == 0, kpid.log_tail()


# --- (c) -------------------------------------------------------------------------


def test_duplicates_across_flushes_and_restart(env):
    over = dict(HAND_CONFIG, batch={"max_events": 5000, "max_ms": 50})
    redis, broker, cfg, kpid = start_stack(env, over)
    c = redis.client()
    mgrs = ["ivanov", "petrov", "smith", "rao", UNASSIGNED_MGR]
    batch_a = [(m, email("c-%03d" % i, m, "2026-11-16T%02d:%02d:00Z" % (8 + i // 60, i % 60)))
               for i, m in enumerate(mgrs * 10)]
    batch_a.append(("ivanov", call("c-int", "ivanov", IV, internal=True)))
    sent = kpitest.produce(broker.bootstrap, EVENTS_TOPIC, batch_a, partition=0)
    kpitest.wait_consumed(c, len(sent), kpid)
    assert c.hget("kpi:meta", "events_duplicate") in (None, b"0")

    # Separate flush: exact copies, copies with other content, new ones.
    batch_b = [batch_a[i] for i in range(0, 50, 5)]
    batch_b += [(m, call("c-%03d" % i, m, "2026-11-20T10:00:00Z", duration_s=99))
                for i, m in enumerate(mgrs * 2)]
    batch_b += [("rao", email("c-new-%d" % i, "rao", "2026-11-18T10:00:00Z")) for i in range(5)]
    batch_b.append(("ivanov", meeting("c-int", "ivanov", IV)))
    sent += kpitest.produce(broker.bootstrap, EVENTS_TOPIC, batch_b, partition=0)
    kpitest.wait_consumed(c, len(sent), kpid)
    exp = expect.model(sent, cfg, int(time.time() * 1000))
    assert exp.meta["events_duplicate"] == str(10 + 10 + 1)
    assert exp.meta["events_applied"] == str(51 + 5)
    check_state(redis, broker, cfg, exp, kpid)
    before = kpitest.counter_view(kpitest.dump_redis(c))

    # A restart forgets no id.
    assert kpid.stop() == 0, kpid.log_tail()
    kpid.start()
    batch_c = [batch_a[i] for i in range(1, 51, 7)] + [batch_b[-2], batch_b[-1]]
    sent += kpitest.produce(broker.bootstrap, EVENTS_TOPIC, batch_c, partition=0)
    kpitest.wait_consumed(c, len(sent), kpid)
    kpitest.assert_low_watermarks_zero(broker, [EVENTS_TOPIC, DLQ_TOPIC])
    exp = expect.model(sent, cfg, int(time.time() * 1000))
    assert exp.meta["events_duplicate"] == str(21 + len(batch_c))
    check_state(redis, broker, cfg, exp, kpid)
    kpitest.assert_same(before, kpitest.counter_view(kpitest.dump_redis(c)), "counters after re-sent copies")
    assert kpid.stop() == 0, kpid.log_tail()


# --- (d) -------------------------------------------------------------------------


def test_updates_channel(env):
    redis, broker, cfg, kpid = start_stack(env, HAND_CONFIG)
    sub = redis.client().pubsub(ignore_subscribe_messages=True)
    sub.subscribe("kpi:updates")
    t0 = int(time.time() * 1000)
    batch = [("ivanov", email("u-1", "ivanov", IV)), ("smith", call("u-2", "smith", "2026-11-16T12:00:00Z")),
             ("rao", meeting("u-3", "rao", "2026-11-16T12:00:00Z", counterpart="a@ourcompany.ru")),
             ("x", b"garbage")]
    msgs = kpitest.produce(broker.bootstrap, EVENTS_TOPIC, batch)
    kpitest.wait_consumed(redis.client(), len(msgs), kpid)
    kpitest.assert_low_watermarks_zero(broker, [EVENTS_TOPIC, DLQ_TOPIC])
    seen = set()
    notes = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and seen != {"ivanov", "smith", "rao"}:
        m = sub.get_message(timeout=0.2)
        if m is None:
            continue
        assert m["channel"] == b"kpi:updates"
        body = json.loads(m["data"])
        notes.append(body)
        assert isinstance(body, dict) and set(body) >= {"managers", "ts"}, body
        assert isinstance(body["managers"], list) and all(isinstance(x, str) for x in body["managers"]), body
        assert isinstance(body["ts"], int) and t0 - 1000 <= body["ts"] <= time.time() * 1000 + 1000, body
        seen |= set(body["managers"])
    sub.close()
    assert seen == {"ivanov", "smith", "rao"}, "kpi:updates named %s in %r" % (sorted(seen), notes)
    assert kpid.stop() == 0, kpid.log_tail()


# --- the reference model's own readings (no kpid needed) ----------------------------


def test_reference_model_readings():
    rules = expect.Rules(HAND_CONFIG)
    assert expect.amount_cents("1.005") == 101          # decimal, not binary floating point
    assert expect.amount_cents("0.125") == 13 and expect.amount_cents("2e3") == 200000
    assert expect.amount_cents("-0.001") is None and expect.amount_cents("1000000000000.001") is None
    assert expect.parse_rfc3339("2026-11-16T09:12:00+03:00") == utc("2026-11-16T06:12:00") * 1000
    assert expect.parse_rfc3339("2026-11-16T09:12:00.98765Z") == utc("2026-11-16T09:12:00") * 1000 + 987
    for bad in ("2026-11-16T09:12:60Z", "2026-11-16t09:12:00Z", "2026-11-16T09:12:00z",
                "2026-11-16T09:12Z", "2026-13-01T00:00:00Z", "2028-02-30T00:00:00Z",
                "2026-11-16T09:12:00+0300"):
        assert expect.parse_rfc3339(bad) is None, bad
    assert expect.parse_rfc3339("2028-02-29T00:00:00Z") is not None
    internal = ["a@sales.ourcompany.ru", "A@OURCOMPANY.RU", "+7 (495) 100-00-00", "+7495100",
                "x@y@ourcompany.ru"]
    external = ["a@ourcompany.ru.example.com", "a@yourcompany.ru", "ourcompany.ru", "+7 495 200",
                "a@ourcompany.ru@x.com", "7495100", ""]
    assert all(expect.counterpart_is_internal(rules, x) for x in internal)
    assert not any(expect.counterpart_is_internal(rules, x) for x in external)
    assert expect.period_ids(utc("2026-12-31T12:00:00") * 1000, "UTC") == (
        "d:2026-12-31", "w:2026-W53", "m:2026-12", "q:2026-Q4")
    assert expect.period_ids(utc("2027-01-01T12:00:00") * 1000, "UTC") == (
        "d:2027-01-01", "w:2026-W53", "m:2027-01", "q:2027-Q1")
    assert expect.period_ids(utc("2026-11-16T21:30:00") * 1000, "Europe/Moscow")[0] == "d:2026-11-17"
    # A zone whose midnight did not exist (America/Santiago skips 00:00 -> 01:00 in spring).
    zone = expect.ZoneInfo("America/Santiago")
    end = expect.period_end_s(utc("2026-09-05T12:00:00") * 1000, zone, "d")
    assert expect.local_date(end * 1000, zone).isoformat() == "2026-09-06"
    assert expect.local_date(end * 1000 - 1000, zone).isoformat() == "2026-09-05"
    now = utc("2026-11-16T12:00:00") * 1000
    ok = expect.validate(call("v", "a", now, duration_s=None), rules, now)
    assert ok["duration_s"] == 0 and ok["internal"] is False
    assert expect.increments(expect.validate(call("v", "a", now, duration_s=10), rules, now), rules) == {
        "calls": 1, "calls_connected": 1, "call_seconds": 10, "touches": 1}
    assert "touches" not in expect.increments(
        expect.validate(call("v", "a", now, duration_s=9), rules, now), rules)
    for bad in (call("v", "a", now + 200 * DAY * 1000 + 1), call("v", "a", now, duration_s=1.0),
                call("v", "a", True)):
        try:
            expect.validate(bad, rules, now)
        except expect.Invalid:
            continue
        raise AssertionError("accepted %r" % bad)
    expect.validate(call("v", "a", now + 200 * DAY * 1000), rules, now)   # exactly at the skew: valid
