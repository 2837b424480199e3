"""expect: an independent reference model of the kpid contract (CONTRACT.md, schema 1).

Written from the contract alone (not from kpid's code), so the integration tests check
kpid against a second reading of the same text. Covers what is in scope now:
section 1 (validation, with the settled readings), section 2 (activity counters and
internal detection; deal_stage events are validated, de-duplicated and counted in
kpi:meta but produce no counters yet), section 3 (periods, scopes, zones), section 4
(counter keys, their expiry, kpi:managers, kpi:meta, the DLQ copies).

    exp = expect.model(messages, config_dict, now_ms)
    exp.counters    {"kpi:mgr:{ivanov}:d:2026-11-16": {"calls": 3, ...}, ...}  non-zero only
    exp.expire_at   {key: unix seconds, or -1 for month/quarter keys}
    exp.meta        {"schema": "1", "events_applied": "12", ...}  zero counters dropped
    exp.managers    set of manager ids of applied events
    exp.dedup_ids   set of event_ids of applied events
    exp.dlq         [{"key", "value", "topic", "partition", "offset", "reason"}], by origin

`messages` are kpitest.Msg records (topic, partition, offset, key, value) or plain
(key, value) pairs (origin unknown). They are applied partition by partition in offset
order; when valid copies of one event_id sit in different partitions with different
content, the outcome depends on the consumer's interleaving and model() raises
AmbiguousInput instead of guessing.
"""

import datetime as _dt
import json
import re
from collections import namedtuple
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

SCHEMA = 1
DEFAULT_STAGES = ["lead", "mql", "sql", "proposal", "negotiation", "won", "lost"]
UNASSIGNED = "unassigned"

# Section 2 activity counters (deal counters come with the deals issue).
COUNTERS = (
    "calls", "calls_connected", "call_seconds", "calls_in", "emails", "emails_in",
    "meetings_scheduled", "meetings_held", "meetings_no_show", "meetings_cancelled",
    "meetings_first", "meetings_next_step", "touches", "internal_filtered",
)

ID_RE = re.compile(r"[A-Za-z0-9._@-]{1,64}", re.ASCII)
DEAL_RE = re.compile(r"[A-Za-z0-9._@-]{1,128}", re.ASCII)
RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|([+-])(\d{2}):(\d{2}))", re.ASCII)

# Epoch ms of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: the calendar the
# period ids can name.
MIN_TS_MS = -62135596800000
MAX_TS_MS = 253402300799999


class AmbiguousInput(Exception):
    """The expected outcome depends on something the contract leaves open (consumer
    interleaving of partitions, duplicate JSON keys); the test input must avoid it."""


class Invalid(Exception):
    pass


# ---------------------------------------------------------------------------------
# configuration


class Rules:
    """What the model needs from a kpid config dict, with the contract's defaults."""

    def __init__(self, cfg):
        cfg = cfg or {}
        self.prefix = (cfg.get("redis") or {}).get("prefix") or "kpi"
        self.time_zone = cfg.get("time_zone") or "UTC"
        self.team_zone = {}
        for name, t in (cfg.get("teams") or {}).items():
            self.team_zone[name] = (t or {}).get("time_zone") or self.time_zone
        self.manager_team = {}
        for name, m in (cfg.get("managers") or {}).items():
            self.manager_team[name] = (m or {}).get("team") or UNASSIGNED
        internal = cfg.get("internal") or {}
        self.domains = [ascii_lower(d) for d in internal.get("domains") or []]
        self.prefixes = list(internal.get("phone_prefixes") or [])
        self.touch_min_call_s = cfg.get("touch_min_call_s", 10)
        self.dedup_window_s = cfg.get("dedup_window_s", 604800)
        self.future_skew_s = cfg.get("future_skew_s", 86400)
        stages = cfg.get("stages")
        self.stages = [s["name"] for s in stages] if stages else list(DEFAULT_STAGES)
        self.max_message_bytes = cfg.get("max_message_bytes", 1048576)
        ret = cfg.get("retention") or {}
        self.retention_day_s = ret.get("day_s", 120 * 86400)
        self.retention_week_s = ret.get("week_s", 730 * 86400)
        self._zones = {}

    def zone(self, name):
        z = self._zones.get(name)
        if z is None:
            z = self._zones[name] = ZoneInfo(name)
        return z

    def team_of(self, manager):
        return self.manager_team.get(manager, UNASSIGNED)

    def zone_of_team(self, team):
        # "unassigned" and teams without a zone use the global default.
        return self.team_zone.get(team, self.time_zone)


def ascii_lower(s):
    return s.translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


# ---------------------------------------------------------------------------------
# section 1: validation


class _Int(int):
    """A JSON integer literal (json gives floats for every other number literal)."""


class _Num:
    """A JSON non-integer number literal, kept as written (amount is decimal, not double)."""

    def __init__(self, literal):
        self.literal = literal


def _no_constants(name):
    raise ValueError("not JSON: %s" % name)


class _Obj(dict):
    dup_keys = ()


def _pairs(pairs):
    o = _Obj(pairs)
    if len(o) != len(pairs):
        seen, dups = set(), set()
        for k, _ in pairs:
            if k in seen:
                dups.add(k)
            seen.add(k)
        o.dup_keys = tuple(sorted(dups))
    return o


def _loads(value):
    text = value.decode("utf-8")  # strict: invalid UTF-8 is invalid JSON text
    return json.loads(text, parse_int=_Int, parse_float=_Num, parse_constant=_no_constants,
                      object_pairs_hook=_pairs)


def _is_int(v):
    return isinstance(v, _Int)


def _is_bool(v):
    return v is True or v is False


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _days_in_month(y, m):
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    return 30 if m in (4, 6, 9, 11) else 31


def parse_rfc3339(s):
    """RFC 3339 as the contract reads it -> UTC epoch ms; None when invalid.
    Upper-case T and Z only, fraction truncated to ms, seconds 00..59 (":60" invalid)."""
    m = RFC3339_RE.fullmatch(s)
    if not m:
        return None
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7) or ""
    if not (1 <= mo <= 12 and 1 <= d <= _days_in_month(y, mo) and h <= 23 and mi <= 59 and sec <= 59):
        return None
    off = 0
    if m.group(8) != "Z":
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            return None
        off = (oh * 60 + om) * 60 * (1 if m.group(9) == "+" else -1)
    ms = int((frac + "000")[:3])
    return ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off) * 1000) + ms


def amount_cents(literal):
    """A number literal -> round-half-away(value x 100) as int; None when out of 0..10^12."""
    try:
        v = Decimal(literal)
    except InvalidOperation:
        return None
    if v < 0 or v > Decimal(10) ** 12:
        return None
    return int((v * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def counterpart_is_internal(rules, cp):
    if "@" in cp:
        dom = ascii_lower(cp.rsplit("@", 1)[1])
        return any(dom == d or dom.endswith("." + d) for d in rules.domains)
    digits = cp
    for ch in " -()":
        digits = digits.replace(ch, "")
    return any(digits.startswith(p) for p in rules.prefixes)


def _present(obj, name):
    """An optional field given as null is absent."""
    return obj.get(name) is not None


def _req_str(obj, name, allowed=None):
    v = obj.get(name)
    if v is None:
        raise Invalid("%s: missing" % name)
    if not isinstance(v, str):
        raise Invalid("%s: not a string" % name)
    if allowed is not None and v not in allowed:
        raise Invalid("%s: %r not one of %s" % (name, v, "/".join(allowed)))
    return v


def validate(value, rules, now_ms):
    """One message value (bytes) -> the normalized event dict; raises Invalid(reason)."""
    if value is None:
        raise Invalid("empty message")
    if len(value) > rules.max_message_bytes:
        raise Invalid("message larger than max_message_bytes")
    try:
        obj = _loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise Invalid("bad JSON: %s" % e)
    if not isinstance(obj, dict):
        raise Invalid("not a JSON object")
    if obj.dup_keys:
        raise AmbiguousInput("duplicate JSON keys %s in %r" % (obj.dup_keys, value[:200]))

    eid = _req_str(obj, "event_id")
    if not (1 <= len(eid.encode("utf-8")) <= 128) or any(not (0x20 <= ord(c) <= 0x7E) for c in eid):
        raise Invalid("event_id: not 1..128 printable ASCII bytes")
    etype = _req_str(obj, "type", ("call", "email", "meeting", "deal_stage"))
    mgr = _req_str(obj, "manager_id")
    if not ID_RE.fullmatch(mgr):
        raise Invalid("manager_id: bad charset or length")
    ts = obj.get("ts")
    if ts is None:
        raise Invalid("ts: missing")
    if _is_int(ts):
        ts_ms = int(ts)
        if not (MIN_TS_MS <= ts_ms <= MAX_TS_MS):
            raise Invalid("ts: epoch ms out of range")
    elif isinstance(ts, str):
        ts_ms = parse_rfc3339(ts)
        if ts_ms is None or not (MIN_TS_MS <= ts_ms <= MAX_TS_MS):
            raise Invalid("ts: not RFC 3339")
    else:
        raise Invalid("ts: neither string nor integer")
    if ts_ms - now_ms > rules.future_skew_s * 1000:
        raise Invalid("ts: too far in the future")

    ev = {"event_id": eid, "type": etype, "manager_id": mgr, "ts_ms": ts_ms}
    if etype in ("call", "email", "meeting"):
        cp = obj.get("counterpart")
        if cp is not None and not isinstance(cp, str):
            raise Invalid("counterpart: not a string")
        flag = obj.get("internal")
        if flag is not None and not _is_bool(flag):
            raise Invalid("internal: not a bool")
        ev["internal"] = bool(flag) or (cp is not None and counterpart_is_internal(rules, cp))
    if etype in ("call", "email"):
        ev["direction"] = _req_str(obj, "direction", ("outbound", "inbound"))
    if etype == "call":
        ev["status"] = _req_str(obj, "status", ("connected", "no_answer", "busy", "failed"))
        dur = obj.get("duration_s")
        if dur is None:
            dur = 0
        elif not _is_int(dur) or not (0 <= dur <= 86400):
            raise Invalid("duration_s: not an integer 0..86400")
        ev["duration_s"] = int(dur)
    elif etype == "meeting":
        ev["status"] = _req_str(obj, "status", ("scheduled", "held", "cancelled", "no_show"))
        kind = obj.get("kind")
        if kind is None:
            kind = "followup"
        elif not isinstance(kind, str) or kind not in ("first", "followup"):
            raise Invalid("kind: not first/followup")
        ev["kind"] = kind
        ns = obj.get("next_step")
        if ns is not None and not _is_bool(ns):
            raise Invalid("next_step: not a bool")
        ev["next_step"] = bool(ns)
    elif etype == "deal_stage":
        deal = _req_str(obj, "deal_id")
        if not DEAL_RE.fullmatch(deal):
            raise Invalid("deal_id: bad charset or length")
        ev["deal_id"] = deal
        ev["stage"] = _req_str(obj, "stage", tuple(rules.stages))
        amt = obj.get("amount")
        if amt is not None:
            if _is_int(amt):
                lit = str(int(amt))
            elif isinstance(amt, _Num):
                lit = amt.literal
            else:
                raise Invalid("amount: not a number")
            cents = amount_cents(lit)
            if cents is None:
                raise Invalid("amount: out of 0..10^12")
            ev["amount_cents"] = cents
        src = obj.get("source")
        if src is not None and not isinstance(src, str):
            raise Invalid("source: not a string")
        if src is not None:
            ev["source"] = src
    return ev


# ---------------------------------------------------------------------------------
# section 2: what counts


def increments(ev, rules):
    """{counter: delta} an applied event adds to each of its scopes."""
    t = ev["type"]
    if t == "deal_stage":
        return {}  # deal counters: a later issue
    if ev["internal"]:
        return {"internal_filtered": 1}
    inc = {}
    if t == "call":
        if ev["direction"] == "inbound":
            inc["calls_in"] = 1
        else:
            inc["calls"] = 1
            inc["call_seconds"] = ev["duration_s"]
            if ev["status"] == "connected":
                inc["calls_connected"] = 1
                if ev["duration_s"] >= rules.touch_min_call_s:
                    inc["touches"] = 1
    elif t == "email":
        if ev["direction"] == "inbound":
            inc["emails_in"] = 1
        else:
            inc["emails"] = 1
            inc["touches"] = 1
    elif t == "meeting":
        st = ev["status"]
        inc["meetings_" + st] = 1
        if st == "held":
            inc["touches"] = 1
            if ev["kind"] == "first":
                inc["meetings_first"] = 1
                if ev["next_step"]:
                    inc["meetings_next_step"] = 1
    return inc


# ---------------------------------------------------------------------------------
# section 3: periods


def local_date(ts_ms, zone):
    return _dt.datetime.fromtimestamp(ts_ms // 1000, zone).date()


def period_ids(ts_ms, zone):
    """(day, week, month, quarter) ids of an instant in a zone (a ZoneInfo or a name)."""
    if isinstance(zone, str):
        zone = ZoneInfo(zone)
    d = local_date(ts_ms, zone)
    iso = d.isocalendar()
    return ("d:%04d-%02d-%02d" % (d.year, d.month, d.day),
            "w:%04d-W%02d" % (iso[0], iso[1]),
            "m:%04d-%02d" % (d.year, d.month),
            "q:%04d-Q%d" % (d.year, (d.month - 1) // 3 + 1))


def first_second_on_or_after(date, zone, lo_s):
    """The first UTC second whose local date is >= date (searching from lo_s, which
    must be before it). Exact through DST changes and midnights skipped by a zone."""
    lo, hi = lo_s, lo_s + 10 * 86400
    while _dt.datetime.fromtimestamp(hi, zone).date() < date:
        hi += 10 * 86400
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _dt.datetime.fromtimestamp(mid, zone).date() >= date:
            hi = mid
        else:
            lo = mid
    return hi


def period_end_s(ts_ms, zone, kind):
    """End (first UTC second after) of the day ("d") or ISO week ("w") holding ts_ms."""
    d = local_date(ts_ms, zone)
    if kind == "d":
        nxt = d + _dt.timedelta(days=1)
    else:
        nxt = d + _dt.timedelta(days=8 - d.isoweekday())
    return first_second_on_or_after(nxt, zone, ts_ms // 1000 - 1)


# ---------------------------------------------------------------------------------
# the whole model


class Expected:
    def __init__(self):
        self.counters = {}
        self.expire_at = {}
        self.expired = set()     # keys whose expiry is already past: absent from Redis
        self.meta = {}
        self.managers = set()
        self.dedup_ids = set()
        self.dlq = []
        self.applied = []        # normalized events, in model apply order
        self.duplicates = []     # Msgs counted as duplicates
        self.invalid = []        # (Msg, reason)


def _as_msg(i, m):
    if hasattr(m, "value") and hasattr(m, "partition"):
        return m
    return _Msg(None, None, i, m[0], m[1])


_Msg = namedtuple("Msg", "topic partition offset key value")


def scopes(rules, manager):
    """[(key infix, zone name)] the counters of a manager's event go to."""
    team = rules.team_of(manager)
    tz = rules.zone_of_team(team)
    return [("mgr:{%s}" % manager, tz), ("team:{%s}" % team, tz), ("org", rules.time_zone)]


def model(messages, cfg, now_ms):
    """The expected Redis state and DLQ after kpid consumed `messages` once each."""
    rules = Rules(cfg)
    exp = Expected()
    msgs = [_as_msg(i, m) for i, m in enumerate(messages)]
    order = sorted(range(len(msgs)), key=lambda i: (
        msgs[i].topic or "", -1 if msgs[i].partition is None else msgs[i].partition,
        msgs[i].offset if msgs[i].offset is not None else i))

    # Valid copies of an event_id in different partitions race each other; fine only
    # when they are the same event.
    first_valid = {}
    parsed = {}
    for i in order:
        m = msgs[i]
        try:
            ev = validate(m.value, rules, now_ms)
        except Invalid as e:
            parsed[i] = e
            continue
        parsed[i] = ev
        prev = first_valid.get(ev["event_id"])
        if prev is None:
            first_valid[ev["event_id"]] = (i, ev)
        else:
            pm = msgs[prev[0]]
            if (pm.topic, pm.partition) != (m.topic, m.partition) and prev[1] != ev:
                raise AmbiguousInput(
                    "event_id %r: different valid copies in %s[%s]@%s and %s[%s]@%s"
                    % (ev["event_id"], pm.topic, pm.partition, pm.offset, m.topic, m.partition, m.offset))

    prefix = rules.prefix
    n_applied = n_invalid = n_dup = n_internal = 0
    last_ts = None
    for i in order:
        m = msgs[i]
        ev = parsed[i]
        if isinstance(ev, Invalid):
            n_invalid += 1
            exp.invalid.append((m, str(ev)))
            exp.dlq.append({"key": m.key, "value": m.value, "topic": m.topic,
                            "partition": m.partition, "offset": m.offset, "reason": str(ev)})
            continue
        if ev["event_id"] in exp.dedup_ids:
            n_dup += 1
            exp.duplicates.append(m)
            continue
        exp.dedup_ids.add(ev["event_id"])
        exp.applied.append(ev)
        n_applied += 1
        if ev.get("internal"):
            n_internal += 1
        last_ts = ev["ts_ms"] if last_ts is None else max(last_ts, ev["ts_ms"])
        exp.managers.add(ev["manager_id"])
        inc = increments(ev, rules)
        if not inc:
            continue
        for infix, tzname in scopes(rules, ev["manager_id"]):
            zone = rules.zone(tzname)
            for pid in period_ids(ev["ts_ms"], zone):
                key = "%s:%s:%s" % (prefix, infix, pid)
                h = exp.counters.setdefault(key, {})
                for f, v in inc.items():
                    h[f] = h.get(f, 0) + v
                if key not in exp.expire_at:
                    if pid[0] == "d":
                        exp.expire_at[key] = period_end_s(ev["ts_ms"], zone, "d") + rules.retention_day_s
                    elif pid[0] == "w":
                        exp.expire_at[key] = period_end_s(ev["ts_ms"], zone, "w") + rules.retention_week_s
                    else:
                        exp.expire_at[key] = -1

    for key, h in list(exp.counters.items()):
        for f in [f for f, v in h.items() if v == 0]:
            del h[f]
        at = exp.expire_at[key]
        if not h or (at != -1 and at * 1000 <= now_ms):
            exp.expired.add(key)
            del exp.counters[key]
            del exp.expire_at[key]

    meta = {"schema": str(SCHEMA), "events_applied": n_applied, "events_invalid": n_invalid,
            "events_duplicate": n_dup, "events_internal": n_internal}
    if last_ts is not None:
        meta["last_event_ts"] = last_ts
    exp.meta = {k: str(v) for k, v in meta.items() if not (k != "schema" and v == 0)}
    exp.dlq.sort(key=lambda d: (d["topic"] or "", d["partition"] or 0, d["offset"] or 0))
    return exp


def meta_view(meta):
    """A kpi:meta dict as read from Redis, comparable with Expected.meta: volatile
    last_flush_ms and zero counters dropped."""
    return {k: v for k, v in meta.items() if k != "last_flush_ms" and not (k != "schema" and v == "0")}
