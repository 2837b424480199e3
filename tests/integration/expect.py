"""expect: an independent reference model of the kpid contract (CONTRACT.md, schema 1).

Written from the contract (and the decided deal-funnel semantics of issue 4) alone, not
from kpid's code, so the integration tests check kpid against a second reading of the
same text. Covers: section 1 (validation, with the settled readings), section 2 (activity
counters, internal detection, the deal funnel counters), section 3 (periods, scopes,
zones), section 4 (counter keys and their expiry, derived figures without targets,
deal state, pipelines, leaderboards, rolling windows, kpi:managers, kpi:meta, the DLQ).

    exp = expect.model(messages, config_dict, now_ms)
    exp.counters    {"kpi:mgr:{ivanov}:d:2026-11-16": {"calls": 3, "stage:sql": 1, ...}, ...}
                    non-zero fields only; a deal event adds to counters only when it enters
                    a stage the deal had not reached (stage:<s>, deals_won, deals_lost,
                    revenue_won_cents, cycle_seconds_won)
    exp.expire_at   {counters key: unix seconds, or -1 for month/quarter keys}
    exp.expired     counters keys whose expiry is already past (absent from Redis)
    exp.derived     {"<counters key>:kpi": {"win_rate": "0.1667", ...}}  present figures only;
                    keys without any figure left out
    exp.derived_expire_at  {":kpi key": the expiry of its counters key (-1 or unix seconds)}
    exp.deals       {"kpi:deal:{D1}": {"manager", "stage", "amount_cents" (only when known),
                    "first_ts", "stage_ts", "reached"}}  all values strings
    exp.pipelines   {"kpi:mgr:{m}:pipeline" | "kpi:team:{t}:pipeline" | "kpi:org:pipeline":
                    {"open_count": 1, "open_amount_cents": .., "weighted_amount_cents": ..,
                    "open:<stage>": ..}}  ints, zero fields and all-zero keys dropped
    exp.leaderboards  {"kpi:lb:<metric>:<org period>": {manager: int score}}  non-zero only
    exp.lb_expire_at  {leaderboard key: unix seconds, or -1}
    exp.lb_expired  leaderboard keys whose expiry is already past (absent from Redis)
    exp.rolling(W)  {"kpi:mgr:{m}:rolling": {"touches:24h": 3, ...}}  non-zero only, for
                    W = kpi:meta rolling_hour_ms (int, str or bytes)
    exp.hourly(W)   {"kpi:mgr:{m}:hourly": {"touches:<H>": 1, ...}}  non-zero, H > W/3600000-720
    exp.meta        {"schema": "1", "events_applied": "12", ...}  zero counters dropped
    exp.managers    set of manager ids of applied events
    exp.dedup_ids   set of event_ids of applied events
    exp.dlq         [{"key", "value", "topic", "partition", "offset", "reason"}], by origin

`messages` are kpitest.Msg records (topic, partition, offset, key, value) or plain
(key, value) pairs (origin unknown: treated as one partition in list order). They are
applied partition by partition in offset order. model() raises AmbiguousInput instead
of guessing when the outcome depends on the consumer's interleaving of partitions: valid
copies of one event_id in different partitions with different content, or a deal with
more than one applied event whose events (any valid copy) sit in more than one partition.

deal_model_examples() checks the deal-funnel reading against numbers worked out by hand.
"""

import datetime as _dt
import json
import re
from collections import namedtuple
from decimal import (MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_HALF_UP, Context, Decimal, InvalidOperation,
                     localcontext)
from fractions import Fraction
from zoneinfo import ZoneInfo

SCHEMA = 1
DEFAULT_STAGES = ["lead", "mql", "sql", "proposal", "negotiation", "won", "lost"]
# The contract's default configuration (section 6): win probability, terminal.
DEFAULT_STAGE_CONFIG = [
    {"name": "lead", "p": 0.05}, {"name": "mql", "p": 0.1}, {"name": "sql", "p": 0.2},
    {"name": "proposal", "p": 0.4}, {"name": "negotiation", "p": 0.6},
    {"name": "won", "p": 1, "terminal": True}, {"name": "lost", "p": 0, "terminal": True},
]
UNASSIGNED = "unassigned"

# Section 2 activity counters.
COUNTERS = (
    "calls", "calls_connected", "call_seconds", "calls_in", "emails", "emails_in",
    "meetings_scheduled", "meetings_held", "meetings_no_show", "meetings_cancelled",
    "meetings_first", "meetings_next_step", "touches", "internal_filtered",
)
# Section 2 deal counters, besides stage:<name> for every configured stage.
DEAL_COUNTERS = ("deals_won", "deals_lost", "revenue_won_cents", "cycle_seconds_won")
LB_METRICS = ("touches", "meetings_held", "deals_won", "revenue_won_cents")
ROLLING_METRICS = ("calls", "emails", "meetings_held", "touches")
# The counters whose latest event time kpi:mgr:{m}:last keeps (internal_filtered is no
# activity of the manager's).
ACTIVITY_COUNTERS = ("calls", "calls_connected", "call_seconds", "calls_in", "emails",
                     "emails_in", "meetings_scheduled", "meetings_held", "meetings_no_show",
                     "meetings_cancelled", "meetings_first", "meetings_next_step", "touches")
ROLLING_WINDOWS = (("24h", 24), ("7d", 168), ("30d", 720))    # (field suffix, hours)
HOUR_MS = 3600000

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
        stages = cfg.get("stages") or DEFAULT_STAGE_CONFIG
        self.stages = [s["name"] for s in stages]
        self.stage_bit = {s["name"]: 1 << i for i, s in enumerate(stages)}
        self.terminal = {s["name"] for s in stages if s.get("terminal")}
        # p as the decimal it is written as, taken to 9 decimals (the weighted pipeline).
        self.stage_p = {s["name"]: Decimal(repr(s["p"])).quantize(Decimal("1e-9")) for s in stages}
        # conv:<a>><b>: consecutive non-terminal stages, then the last of them -> won.
        open_stages = [n for n in self.stages if n not in self.terminal]
        self.conversions = list(zip(open_stages, open_stages[1:]))
        if open_stages and "won" in self.stages:
            self.conversions.append((open_stages[-1], "won"))
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
    # Exact: the default 28-digit context would round a long literal before the half-up
    # rounding to cents ("0.00499999999999999999999999999999" must give 0, not 1).
    with localcontext(_EXACT):
        return int(v.scaleb(2).quantize(Decimal(1), rounding=ROUND_HALF_UP))


_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def round_half_away(x):
    """A Decimal or Fraction -> the nearest int, halves away from zero."""
    if isinstance(x, Decimal):
        with localcontext(_EXACT):
            return int(x.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    x = Fraction(x)
    q = (2 * abs(x.numerator) + x.denominator) // (2 * x.denominator)
    return -q if x < 0 else q


def weighted_cents(amount_cents, p):
    """round-half-away(amount_cents x p), p a Decimal taken to 9 decimals (Rules.stage_p)."""
    with localcontext(_EXACT):
        return round_half_away(Decimal(amount_cents) * p)


def figure(x):
    """A derived figure as kpid writes it: the exact rational x rounded half away from
    zero to 4 fraction digits, trailing zeros and a trailing '.' trimmed."""
    q = round_half_away(Fraction(x) * 10000)
    sign = "-" if q < 0 else ""
    s = "%s%d.%04d" % ((sign,) + divmod(abs(q), 10000))
    return s.rstrip("0").rstrip(".")


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
    """{counter: delta} an applied activity event adds to each of its scopes ({} for a
    deal_stage event: what it adds depends on the deal's state, see deal_step())."""
    t = ev["type"]
    if t == "deal_stage":
        return {}
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


class Deal:
    """The state kpid keeps per deal_id (kpi:deal:{<id>})."""

    def __init__(self, first_ts):
        self.manager = None
        self.stage = None
        self.amount = None       # cents, None while unknown
        self.first_ts = first_ts
        self.stage_ts = None
        self.reached = set()

    def view(self, rules):
        """The kpi:deal hash as Redis returns it (strings)."""
        h = {"manager": self.manager, "stage": self.stage, "first_ts": str(self.first_ts),
             "stage_ts": str(self.stage_ts),
             "reached": str(sum(rules.stage_bit[s] for s in self.reached))}
        if self.amount is not None:
            h["amount_cents"] = str(self.amount)
        return h


def deal_step(deal, ev, rules):
    """Apply one deal_stage event to its deal's state (None for a deal never seen).
    Returns (state, {counter: delta}): the delta is empty unless the event enters a
    stage the deal had not reached, and goes to the event's manager's scopes."""
    s, t = ev["stage"], ev["ts_ms"]
    if deal is None:
        deal = Deal(t)
        deal.stage_ts = t
    elif s != deal.stage:
        deal.stage_ts = t
    deal.stage = s
    deal.manager = ev["manager_id"]
    if "amount_cents" in ev:
        deal.amount = ev["amount_cents"]
    if s in deal.reached:
        return deal, {}
    deal.reached.add(s)
    inc = {"stage:" + s: 1}
    if s == "won":
        inc["deals_won"] = 1
        inc["revenue_won_cents"] = deal.amount or 0
        inc["cycle_seconds_won"] = max(0, t - deal.first_ts) // 1000
    elif s == "lost":
        inc["deals_lost"] = 1
    return deal, inc


def pipeline_contribution(deal, rules):
    """{pipeline field: value} an open deal adds to its owner's pipelines ({} if closed)."""
    if deal.stage in rules.terminal:
        return {}
    amount = deal.amount or 0
    return {"open_count": 1, "open_amount_cents": amount,
            "weighted_amount_cents": weighted_cents(amount, rules.stage_p[deal.stage]),
            "open:" + deal.stage: 1}


def derived_figures(h, rules):
    """The :kpi hash (figures without targets) of one counters hash; {} when none exists."""
    def g(f):
        return h.get(f, 0)

    out = {}

    def put(name, num, den):
        if den:
            out[name] = figure(Fraction(num, den))

    put("win_rate", g("deals_won"), g("deals_won") + g("deals_lost"))
    put("avg_deal_cents", g("revenue_won_cents"), g("deals_won"))
    put("avg_cycle_days", g("cycle_seconds_won"), g("deals_won") * 86400)
    for a, b in rules.conversions:
        put("conv:%s>%s" % (a, b), g("stage:" + b), g("stage:" + a))
    put("touches_per_first_meeting", g("touches"), g("meetings_first"))
    put("next_step_rate", g("meetings_next_step"), g("meetings_first"))
    return out


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
    def __init__(self, prefix="kpi"):
        self.prefix = prefix
        self.counters = {}
        self.expire_at = {}
        self.expired = set()     # counters keys whose expiry is already past: absent from Redis
        self.derived = {}
        self.derived_expire_at = {}
        self.deals = {}
        self.deal_state = {}     # deal_id -> Deal
        self.pipelines = {}
        self.leaderboards = {}
        self.lb_expire_at = {}
        self.lb_expired = set()
        self.hours = {}          # manager -> {hour index H: {rolling metric: sum}}
        self.last = {}           # "<prefix>:mgr:{m}:last" -> {activity counter: latest ts ms}
        self.meta = {}
        self.managers = set()
        self.dedup_ids = set()
        self.dlq = []
        self.applied = []        # normalized events, in model apply order
        self.duplicates = []     # Msgs counted as duplicates
        self.invalid = []        # (Msg, reason)

    @staticmethod
    def _hour(rolling_hour_ms):
        if rolling_hour_ms is None:
            raise ValueError("kpi:meta has no rolling_hour_ms")
        w = int(rolling_hour_ms)
        if w % HOUR_MS:
            raise ValueError("rolling_hour_ms %d is not the start of an hour" % w)
        return w // HOUR_MS

    def rolling(self, rolling_hour_ms):
        """{"<prefix>:mgr:{m}:rolling": {"<metric>:24h"|":7d"|":30d": n}} for the window end
        W = rolling_hour_ms: an event counts in an N-hour window when floor(ts/1h) > W/1h - N
        (future-dated ones too). Non-zero fields only; managers with none left out."""
        wh = self._hour(rolling_hour_ms)
        out = {}
        for mgr, hours in self.hours.items():
            h = {}
            for hour, sums in hours.items():
                for suffix, n in ROLLING_WINDOWS:
                    if hour > wh - n:
                        for metric, v in sums.items():
                            f = "%s:%s" % (metric, suffix)
                            h[f] = h.get(f, 0) + v
            h = {f: v for f, v in h.items() if v}
            if h:
                out["%s:mgr:{%s}:rolling" % (self.prefix, mgr)] = h
        return out

    def hourly(self, rolling_hour_ms):
        """{"<prefix>:mgr:{m}:hourly": {"<metric>:<H>": n}} for H > W/1h - 720, non-zero only."""
        wh = self._hour(rolling_hour_ms)
        out = {}
        for mgr, hours in self.hours.items():
            h = {"%s:%d" % (metric, hour): v for hour, sums in hours.items() if hour > wh - 720
                 for metric, v in sums.items() if v}
            if h:
                out["%s:mgr:{%s}:hourly" % (self.prefix, mgr)] = h
        return out


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


def _expiry(rules, zone, ts_ms, pid):
    """Unix seconds a day or week key expires at; -1 for month and quarter keys."""
    if pid[0] == "d":
        return period_end_s(ts_ms, zone, "d") + rules.retention_day_s
    if pid[0] == "w":
        return period_end_s(ts_ms, zone, "w") + rules.retention_week_s
    return -1


def _add(h, inc):
    for f, v in inc.items():
        h[f] = h.get(f, 0) + v


def _drop_zeros(hashes):
    """{key: {field: int}} with zero fields, then empty keys, removed (in place)."""
    for key, h in list(hashes.items()):
        for f in [f for f, v in h.items() if v == 0]:
            del h[f]
        if not h:
            del hashes[key]


def _drop_expired(keys, expire_at, expired, now_ms):
    """Zero fields dropped, then keys whose expiry (unix s, -1 none) is past by now_ms moved
    to `expired`; expire_at keeps only the keys left."""
    _drop_zeros(keys)
    for key in list(expire_at):
        at = expire_at[key]
        if key not in keys or (at != -1 and at * 1000 <= now_ms):
            if key in keys:
                expired.add(key)
                del keys[key]
            del expire_at[key]


def model(messages, cfg, now_ms):
    """The expected Redis state and DLQ after kpid consumed `messages` once each."""
    rules = Rules(cfg)
    prefix = rules.prefix
    exp = Expected(prefix)
    msgs = [_as_msg(i, m) for i, m in enumerate(messages)]
    order = sorted(range(len(msgs)), key=lambda i: (
        msgs[i].topic or "", -1 if msgs[i].partition is None else msgs[i].partition,
        msgs[i].offset if msgs[i].offset is not None else i))

    # Valid copies of an event_id in different partitions race each other; fine only
    # when they are the same event.
    first_valid = {}
    parsed = {}
    origins = {}             # event_id -> {(topic, partition)} of its valid copies
    for i in order:
        m = msgs[i]
        try:
            ev = validate(m.value, rules, now_ms)
        except Invalid as e:
            parsed[i] = e
            continue
        parsed[i] = ev
        origins.setdefault(ev["event_id"], set()).add((m.topic, m.partition))
        prev = first_valid.get(ev["event_id"])
        if prev is None:
            first_valid[ev["event_id"]] = (i, ev)
        else:
            pm = msgs[prev[0]]
            if (pm.topic, pm.partition) != (m.topic, m.partition) and prev[1] != ev:
                raise AmbiguousInput(
                    "event_id %r: different valid copies in %s[%s]@%s and %s[%s]@%s"
                    % (ev["event_id"], pm.topic, pm.partition, pm.offset, m.topic, m.partition, m.offset))

    n_applied = n_invalid = n_dup = n_internal = 0
    last_ts = None
    deal_events = {}         # deal_id -> event_ids applied, in order
    org_zone = rules.zone(rules.time_zone)
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
        mgr = ev["manager_id"]
        exp.managers.add(mgr)
        if ev["type"] == "deal_stage":
            deal_events.setdefault(ev["deal_id"], []).append(ev["event_id"])
            state, inc = deal_step(exp.deal_state.get(ev["deal_id"]), ev, rules)
            exp.deal_state[ev["deal_id"]] = state
        else:
            inc = increments(ev, rules)
        if not inc:
            continue
        for infix, tzname in scopes(rules, mgr):
            zone = rules.zone(tzname)
            for pid in period_ids(ev["ts_ms"], zone):
                key = "%s:%s:%s" % (prefix, infix, pid)
                _add(exp.counters.setdefault(key, {}), inc)
                if key not in exp.expire_at:
                    exp.expire_at[key] = _expiry(rules, zone, ev["ts_ms"], pid)
        for pid in period_ids(ev["ts_ms"], org_zone):
            for metric in LB_METRICS:
                if inc.get(metric):
                    key = "%s:lb:%s:%s" % (prefix, metric, pid)
                    _add(exp.leaderboards.setdefault(key, {}), {mgr: inc[metric]})
                    if key not in exp.lb_expire_at:
                        exp.lb_expire_at[key] = _expiry(rules, org_zone, ev["ts_ms"], pid)
        last = exp.last.setdefault("%s:mgr:{%s}:last" % (prefix, mgr), {})
        for f, v in inc.items():
            if f in ACTIVITY_COUNTERS and v > 0 and ev["ts_ms"] > last.get(f, 0):
                last[f] = ev["ts_ms"]
        if not last:
            del exp.last["%s:mgr:{%s}:last" % (prefix, mgr)]
        roll = {f: v for f, v in inc.items() if f in ROLLING_METRICS}
        if roll:
            hours = exp.hours.setdefault(mgr, {})
            _add(hours.setdefault(ev["ts_ms"] // HOUR_MS, {}), roll)

    # A deal's state depends on the order of its events: one partition only (a copy
    # elsewhere may be applied first), unless a single event makes the whole history.
    for deal, eids in deal_events.items():
        where = set().union(*(origins[e] for e in eids))
        if len(eids) > 1 and len(where) > 1:
            raise AmbiguousInput("deal %r: %d events in partitions %s; their order is the consumer's"
                                 % (deal, len(eids), sorted(where, key=str)))

    _drop_expired(exp.counters, exp.expire_at, exp.expired, now_ms)
    for key, h in exp.counters.items():
        fig = derived_figures(h, rules)
        if fig:
            exp.derived[key + ":kpi"] = fig
            exp.derived_expire_at[key + ":kpi"] = exp.expire_at[key]

    _drop_expired(exp.leaderboards, exp.lb_expire_at, exp.lb_expired, now_ms)

    for deal_id, state in exp.deal_state.items():
        exp.deals["%s:deal:{%s}" % (prefix, deal_id)] = state.view(rules)
        contrib = pipeline_contribution(state, rules)
        if contrib:
            team = rules.team_of(state.manager)
            for infix in ("mgr:{%s}" % state.manager, "team:{%s}" % team, "org"):
                _add(exp.pipelines.setdefault("%s:%s:pipeline" % (prefix, infix), {}), contrib)
    _drop_zeros(exp.pipelines)

    meta = {"schema": str(SCHEMA), "events_applied": n_applied, "events_invalid": n_invalid,
            "events_duplicate": n_dup, "events_internal": n_internal}
    if last_ts is not None:
        meta["last_event_ts"] = last_ts
    exp.meta = {k: str(v) for k, v in meta.items() if not (k != "schema" and v == 0)}
    exp.dlq.sort(key=lambda d: (d["topic"] or "", d["partition"] or 0, d["offset"] or 0))
    return exp


def meta_view(meta):
    """A kpi:meta dict as read from Redis, comparable with Expected.meta: the volatile
    last_flush_ms, rolling_hour_ms and eval_ts (wall clock), flush_seq (a count of flushes)
    and zero counters dropped."""
    return {k: v for k, v in meta.items()
            if k not in ("last_flush_ms", "rolling_hour_ms", "flush_seq", "eval_ts")
            and not (k != "schema" and v == "0")}


# ---------------------------------------------------------------------------------
# hand-worked readings of the deal funnel, rolling windows and leaderboards


def _utc_ms(s):
    """'2026-11-16T10:00:00' or '...:00.900' (UTC) -> epoch ms."""
    return parse_rfc3339(s + "Z")


def _ev(eid, typ, mgr, ts, **fields):
    obj = {"event_id": eid, "type": typ, "manager_id": mgr, "ts": ts + "Z"}
    obj.update(fields)
    return (mgr.encode(), json.dumps(obj).encode())


def _deal(eid, mgr, ts, deal, stage, **fields):
    return _ev(eid, "deal_stage", mgr, ts, deal_id=deal, stage=stage, **fields)


def _same(got, want, what):
    if got != want:
        raise AssertionError("%s: model %r, by hand %r" % (what, got, want))


def deal_model_examples():
    """The model's deal-funnel reading equals numbers worked out by hand; AssertionError
    otherwise. Org zone Moscow (UTC+3), teams a and b in UTC, so manager days are UTC
    days and leaderboard/org days Moscow days."""
    cfg = {"time_zone": "Europe/Moscow",
           "teams": {"a": {"time_zone": "UTC"}, "b": {"time_zone": "UTC"}},
           "managers": {"ann": {"team": "a"}, "bob": {"team": "b"}, "carl": {"team": "a"},
                        "dora": {"team": "a"}, "eve": {"team": "a"}}}
    now = _utc_ms("2026-11-20T12:30:00")
    msgs = [
        # D1 (ann): lead -> sql -> proposal -> sql -> proposal -> won with amount updates.
        _deal("d1-1", "ann", "2026-11-16T10:00:00", "D1", "lead", amount=100),
        _deal("d1-2", "ann", "2026-11-16T11:00:00", "D1", "sql", amount=150),
        _deal("d1-3", "ann", "2026-11-16T12:00:00", "D1", "proposal"),
        _deal("d1-4", "ann", "2026-11-16T13:00:00", "D1", "sql", amount=200),
        _deal("d1-5", "ann", "2026-11-16T14:00:00", "D1", "proposal"),
        _deal("d1-5", "ann", "2026-11-16T14:00:00", "D1", "negotiation"),      # duplicate id
        _deal("d1-x", "ann", "2026-11-16T14:10:00", "D1", "signed"),           # invalid stage
        _deal("d1-6", "ann", "2026-11-17T15:30:00.999", "D1", "won", amount=250.5),
        # D2: opened by ann, reassigned to bob (team b), amount-only update keeps stage_ts.
        _deal("d2-1", "ann", "2026-11-18T09:00:00", "D2", "lead", amount=1000),
        _deal("d2-2", "bob", "2026-11-18T10:00:00", "D2", "proposal"),
        _deal("d2-3", "bob", "2026-11-18T11:00:00", "D2", "proposal", amount=1234.56),
        # D3 (bob): lost, then reopened.
        _deal("d3-1", "bob", "2026-11-18T09:00:00", "D3", "sql"),
        _deal("d3-2", "bob", "2026-11-18T10:00:00", "D3", "lost"),
        _deal("d3-3", "bob", "2026-11-18T11:00:00", "D3", "sql", amount=50),
        # D4 (ann): won without any amount, 1.2 s after its first event.
        _deal("d4-1", "ann", "2026-11-19T10:00:00.900", "D4", "lead"),
        _deal("d4-2", "ann", "2026-11-19T10:00:02.100", "D4", "won"),
        # D5 (bob): won with a ts before its first event's: cycle 0.
        _deal("d5-1", "bob", "2026-11-19T12:00:00", "D5", "lead"),
        _deal("d5-2", "bob", "2026-11-19T11:00:00", "D5", "won"),
    ]
    # carl: 5 won, 25 lost on 2026-11-17.
    for i, amt in enumerate((10, 20, 30, 40, 50.01)):
        msgs.append(_deal("c-w%d" % i, "carl", "2026-11-17T10:00:00", "CW%d" % i, "won", amount=amt))
    msgs += [_deal("c-l%d" % i, "carl", "2026-11-17T11:00:00", "CL%d" % i, "lost") for i in range(25)]
    # dora on 2026-11-17: a funnel (E skips mql) and first meetings.
    for deal, path in (("A", ["lead", "mql", "sql", "proposal", "negotiation", "won"]),
                       ("B", ["lead", "mql", "sql"]), ("C", ["lead", "mql"]), ("D", ["lead"]),
                       ("E", ["lead", "sql"])):
        msgs += [_deal("do-%s%d" % (deal, j), "dora", "2026-11-17T%02d:00:00" % (8 + j), "DO" + deal, st)
                 for j, st in enumerate(path)]
    msgs += [_ev("do-e%d" % i, "email", "dora", "2026-11-17T15:00:00", direction="outbound")
             for i in range(7)]
    msgs += [_ev("do-m%d" % i, "meeting", "dora", "2026-11-17T16:00:00", status="held", kind="first",
                 next_step=i < 2) for i in range(3)]
    # eve: rolling windows at W = 2026-11-20T12:00Z.
    msgs += [
        _ev("e1", "email", "eve", "2026-11-19T12:00:00", direction="outbound"),       # H = Wh-24
        _ev("e2", "email", "eve", "2026-11-19T12:59:59.999", direction="outbound"),   # H = Wh-24
        _ev("e3", "email", "eve", "2026-11-19T13:00:00", direction="outbound"),       # H = Wh-23
        _ev("e4", "email", "eve", "2026-11-19T21:30:00", direction="outbound"),       # Wh-15, MSK Nov 20
        _ev("e5", "email", "eve", "2026-11-20T15:00:00", direction="outbound"),       # H = Wh+3 (future)
        _ev("e6", "meeting", "eve", "2026-11-13T12:30:00", status="held"),            # H = Wh-168
        _ev("e7", "meeting", "eve", "2026-11-13T13:00:00", status="held"),            # H = Wh-167
        _ev("e8", "call", "eve", "2026-10-21T12:00:00", direction="outbound", status="connected",
            duration_s=30),                                                            # H = Wh-720
        _ev("e9", "call", "eve", "2026-10-21T13:00:00", direction="outbound", status="connected",
            duration_s=30),                                                            # H = Wh-719
        _ev("e10", "call", "eve", "2026-11-20T12:00:00", direction="outbound", status="connected",
            duration_s=30, internal=True),
    ]
    exp = model(msgs, cfg, now)
    _same(exp.meta["events_invalid"], "1", "invalid")
    _same(exp.meta["events_duplicate"], "1", "duplicates")

    # D1: each stage counted once, on the day of its first entry; revenue = the won
    # event's amount; cycle = 1 d 5 h 30 min 0.999 s -> 106200 s.
    c = exp.counters
    _same(c["kpi:mgr:{ann}:d:2026-11-16"], {"stage:lead": 1, "stage:sql": 1, "stage:proposal": 1},
          "D1 day 1")
    _same(c["kpi:mgr:{ann}:d:2026-11-17"], {"stage:won": 1, "deals_won": 1, "revenue_won_cents": 25050,
                                           "cycle_seconds_won": 106200}, "D1 won day")
    _same(exp.derived["kpi:mgr:{ann}:d:2026-11-16:kpi"],
          {"conv:lead>mql": "0", "conv:sql>proposal": "1", "conv:proposal>negotiation": "0"},
          "D1 day 1 kpi")
    _same(exp.derived["kpi:mgr:{ann}:d:2026-11-17:kpi"],
          {"win_rate": "1", "avg_deal_cents": "25050", "avg_cycle_days": "1.2292"}, "D1 won day kpi")
    _same(exp.deals["kpi:deal:{D1}"], {
        "manager": "ann", "stage": "won", "amount_cents": "25050",
        "first_ts": str(_utc_ms("2026-11-16T10:00:00")),
        "stage_ts": str(_utc_ms("2026-11-17T15:30:00.999")), "reached": str(1 + 4 + 8 + 32)}, "D1 state")
    _same(exp.derived_expire_at["kpi:mgr:{ann}:d:2026-11-16:kpi"],
          _utc_ms("2026-11-17T00:00:00") // 1000 + 120 * 86400, "day :kpi expiry")
    _same(exp.derived_expire_at["kpi:org:m:2026-11:kpi"], -1, "month :kpi expiry")

    # D2: stage counts go to each event's manager; the pipeline follows the last owner.
    _same(c["kpi:mgr:{ann}:d:2026-11-18"], {"stage:lead": 1}, "D2 ann")
    _same(c["kpi:mgr:{bob}:d:2026-11-18"], {"stage:proposal": 1, "stage:sql": 1, "stage:lost": 1,
                                           "deals_lost": 1}, "D2+D3 bob")
    _same(exp.deals["kpi:deal:{D2}"], {
        "manager": "bob", "stage": "proposal", "amount_cents": "123456",
        "first_ts": str(_utc_ms("2026-11-18T09:00:00")), "stage_ts": str(_utc_ms("2026-11-18T10:00:00")),
        "reached": str(1 + 8)}, "D2 state")
    # D3: reopened, so open again (sql, 50.00 at p 0.2); lost counted once and stays.
    _same(exp.deals["kpi:deal:{D3}"], {
        "manager": "bob", "stage": "sql", "amount_cents": "5000",
        "first_ts": str(_utc_ms("2026-11-18T09:00:00")), "stage_ts": str(_utc_ms("2026-11-18T11:00:00")),
        "reached": str(4 + 64)}, "D3 state")
    bob_pipe = {"open_count": 2, "open_amount_cents": 123456 + 5000,
                "weighted_amount_cents": 49382 + 1000,          # 123456 x 0.4 = 49382.4
                "open:proposal": 1, "open:sql": 1}
    _same(exp.pipelines.get("kpi:mgr:{bob}:pipeline"), bob_pipe, "bob pipeline")
    _same(exp.pipelines.get("kpi:team:{b}:pipeline"), bob_pipe, "team b pipeline")
    _same(exp.pipelines.get("kpi:mgr:{ann}:pipeline"), None, "ann pipeline (D2 moved away)")
    # Team a holds only dora's open deals B (sql), C (mql), D (lead), E (sql), no amounts.
    dora_pipe = {"open_count": 4, "open:lead": 1, "open:mql": 1, "open:sql": 2}
    _same(exp.pipelines.get("kpi:mgr:{dora}:pipeline"), dora_pipe, "dora pipeline")
    _same(exp.pipelines.get("kpi:team:{a}:pipeline"), dora_pipe, "team a pipeline")
    _same(exp.pipelines.get("kpi:org:pipeline"), {
        "open_count": 6, "open_amount_cents": 128456, "weighted_amount_cents": 50382,
        "open:lead": 1, "open:mql": 1, "open:sql": 3, "open:proposal": 1}, "org pipeline")

    # D4: won without amount: revenue 0 (absent), cycle 1.2 s -> 1 s. D5: cycle 0.
    _same(c["kpi:mgr:{ann}:d:2026-11-19"], {"stage:lead": 1, "stage:won": 1, "deals_won": 1,
                                           "cycle_seconds_won": 1}, "D4")
    _same(exp.derived["kpi:mgr:{ann}:d:2026-11-19:kpi"],
          {"win_rate": "1", "avg_deal_cents": "0", "avg_cycle_days": "0", "conv:lead>mql": "0"}, "D4 kpi")
    _same("amount_cents" in exp.deals["kpi:deal:{D4}"], False, "D4 amount unknown")
    _same(c["kpi:mgr:{bob}:d:2026-11-19"], {"stage:lead": 1, "stage:won": 1, "deals_won": 1}, "D5")

    # carl: 5 won of 30 closed; revenue 1000+2000+3000+4000+5001 over 5.
    _same(c["kpi:mgr:{carl}:d:2026-11-17"], {"stage:won": 5, "stage:lost": 25, "deals_won": 5,
                                            "deals_lost": 25, "revenue_won_cents": 15001}, "carl")
    _same(exp.derived["kpi:mgr:{carl}:d:2026-11-17:kpi"],
          {"win_rate": "0.1667", "avg_deal_cents": "3000.2", "avg_cycle_days": "0"}, "carl kpi")

    # dora: lead 5, mql 3 (E skipped it), sql 3, proposal 1, negotiation 1, won 1;
    # touches 7 e-mails + 3 held meetings = 10 over 3 first meetings, 2 with a next step.
    _same(exp.derived["kpi:mgr:{dora}:d:2026-11-17:kpi"], {
        "conv:lead>mql": "0.6", "conv:mql>sql": "1", "conv:sql>proposal": "0.3333",
        "conv:proposal>negotiation": "1", "conv:negotiation>won": "1",
        "win_rate": "1", "avg_deal_cents": "0", "avg_cycle_days": "0.2083",     # 5 h / 24 h
        "touches_per_first_meeting": "3.3333", "next_step_rate": "0.6667"}, "dora kpi")
    _same(exp.deals["kpi:deal:{DOE}"]["reached"], "5", "lead -> sql enters sql only")

    # Team and org sums; org days are Moscow days (all of the above fall on the same one).
    _same(c["kpi:team:{a}:d:2026-11-17"]["deals_won"], 1 + 5 + 1, "team a won")
    _same(c["kpi:org:d:2026-11-17"]["deals_lost"], 25, "org lost")
    _same(exp.derived["kpi:org:d:2026-11-17:kpi"]["win_rate"], "0.2188", "org win rate 7/32")

    # Leaderboards: org-zone periods, non-zero members only.
    lb = exp.leaderboards
    _same(lb["kpi:lb:deals_won:d:2026-11-17"], {"ann": 1, "carl": 5, "dora": 1}, "lb won day")
    _same(lb["kpi:lb:revenue_won_cents:d:2026-11-17"], {"ann": 25050, "carl": 15001}, "lb revenue day")
    _same(lb["kpi:lb:deals_won:d:2026-11-19"], {"ann": 1, "bob": 1}, "lb won D4/D5 day")
    _same("kpi:lb:revenue_won_cents:d:2026-11-19" in lb, False, "lb revenue zero -> absent")
    _same(lb["kpi:lb:touches:d:2026-11-19"], {"eve": 3}, "lb touches Moscow Nov 19")
    _same(lb["kpi:lb:touches:d:2026-11-20"], {"eve": 2}, "lb touches Moscow Nov 20 (21:30Z)")
    _same(c["kpi:mgr:{eve}:d:2026-11-19"], {"emails": 4, "touches": 4}, "eve UTC day")
    _same(exp.lb_expire_at["kpi:lb:touches:d:2026-11-20"],
          _utc_ms("2026-11-20T21:00:00") // 1000 + 120 * 86400, "lb day expiry (Moscow midnight)")
    _same(exp.lb_expire_at["kpi:lb:touches:w:2026-W47"],
          _utc_ms("2026-11-22T21:00:00") // 1000 + 730 * 86400, "lb week expiry")
    _same(exp.lb_expire_at["kpi:lb:deals_won:q:2026-Q4"], -1, "lb quarter expiry")

    # Rolling windows at W: H(ts) > Wh - N. 12:00 and 12:59:59.999 yesterday are hour
    # Wh-24 (out of 24h, 23 h 00 min 00.001 s and 24 h old), 13:00 yesterday is Wh-23 (in).
    w = _utc_ms("2026-11-20T12:00:00")
    wh = w // HOUR_MS
    _same(exp.rolling(w), {"kpi:mgr:{eve}:rolling": {
        "emails:24h": 3, "emails:7d": 5, "emails:30d": 5,
        "meetings_held:7d": 1, "meetings_held:30d": 2, "calls:30d": 1,
        "touches:24h": 3, "touches:7d": 6, "touches:30d": 8},
        # dora's 7 e-mails and 3 held meetings of Nov 17 (3 days before W)
        "kpi:mgr:{dora}:rolling": {"emails:7d": 7, "emails:30d": 7, "meetings_held:7d": 3,
                                   "meetings_held:30d": 3, "touches:7d": 10, "touches:30d": 10}},
          "rolling at W")
    _same(exp.rolling(str(w + HOUR_MS))["kpi:mgr:{eve}:rolling"]["emails:24h"], 2,
          "rolling an hour later")
    _same(exp.rolling(b"%d" % (w - HOUR_MS))["kpi:mgr:{eve}:rolling"]["emails:24h"], 5, "an hour earlier")
    want_hourly = {"emails:%d" % (wh - 24): 2, "emails:%d" % (wh - 23): 1, "emails:%d" % (wh - 15): 1,
                   "emails:%d" % (wh + 3): 1, "meetings_held:%d" % (wh - 168): 1,
                   "meetings_held:%d" % (wh - 167): 1, "calls:%d" % (wh - 719): 1}
    want_hourly.update({"touches:" + k.split(":")[1]: v for k, v in want_hourly.items()})
    _same(exp.hourly(w)["kpi:mgr:{eve}:hourly"], want_hourly, "hourly at W")
    _same(sorted(exp.hourly(w)), ["kpi:mgr:{dora}:hourly", "kpi:mgr:{eve}:hourly"], "hourly keys")
    _same("calls:%d" % (wh - 719) in exp.hourly(w + HOUR_MS)["kpi:mgr:{eve}:hourly"], False,
          "hourly drops hour Wh-720")

    # Figures: half away from zero at 4 digits, trimmed.
    for x, want in ((Fraction(1, 6), "0.1667"), (Fraction(5, 20000), "0.0003"), (Fraction(1, 20001), "0"),
                    (Fraction(1, 2), "0.5"), (Fraction(2), "2"), (Fraction(12500050), "12500050"),
                    (Fraction(-5, 20000), "-0.0003")):
        _same(figure(x), want, "figure(%s)" % x)

    # Weighted: per deal, half away from zero: 10 and 30 cents at p 0.15 -> 2 + 5 = 7 (not 6).
    stages = [dict(s) for s in DEFAULT_STAGE_CONFIG]
    stages[0]["p"] = 0.15
    wcfg = {"stages": stages, "redis": {"prefix": "crm"}}
    exp = model([_deal("w1", "zed", "2026-11-16T10:00:00", "W1", "lead", amount=0.1),
                 _deal("w2", "zed", "2026-11-16T10:00:00", "W2", "lead", amount=0.3)], wcfg, now)
    _same(exp.pipelines["crm:mgr:{zed}:pipeline"],
          {"open_count": 2, "open_amount_cents": 40, "weighted_amount_cents": 7, "open:lead": 2}, "weighted")
    _same(sorted(exp.pipelines), ["crm:mgr:{zed}:pipeline", "crm:org:pipeline",
                                  "crm:team:{unassigned}:pipeline"], "prefixed pipelines")
    _same(sorted(exp.deals), ["crm:deal:{W1}", "crm:deal:{W2}"], "prefixed deals")
    _same(exp.derived, {"crm:mgr:{zed}:d:2026-11-16:kpi": {"conv:lead>mql": "0"},
                        "crm:team:{unassigned}:d:2026-11-16:kpi": {"conv:lead>mql": "0"},
                        "crm:org:d:2026-11-16:kpi": {"conv:lead>mql": "0"},
                        **{"crm:%s:%s:kpi" % (s, p): {"conv:lead>mql": "0"}
                           for s in ("mgr:{zed}", "team:{unassigned}", "org")
                           for p in ("w:2026-W47", "m:2026-11", "q:2026-Q4")}}, "prefixed :kpi")
    _same(weighted_cents(10, Rules(wcfg).stage_p["lead"]), 2, "10 cents at 0.15")
    _same(weighted_cents(25, Decimal("0.5")), 13, "12.5 -> 13")
    _same(Rules({"stages": [{"name": "x", "p": 0.1234567895}]}).stage_p["x"], Decimal("0.123456790"),
          "p to 9 decimals")
    _same(amount_cents("0.004999999999999999999999999999999"), 0, "long amount literal")

    # Partitions: a deal's events in two partitions are ambiguous; one event with
    # identical copies in two partitions is not.
    def at(p, o, kv):
        return _Msg("t", p, o, kv[0], kv[1])
    two = [at(0, 0, _deal("p1", "ann", "2026-11-16T10:00:00", "P", "lead")),
           at(1, 0, _deal("p2", "ann", "2026-11-16T11:00:00", "P", "sql"))]
    try:
        model(two, cfg, now)
    except AmbiguousInput:
        pass
    else:
        raise AssertionError("deal events in two partitions: no AmbiguousInput")
    copy = _deal("q1", "ann", "2026-11-16T10:00:00", "Q", "lead")
    exp = model([at(0, 0, copy), at(1, 0, copy)], cfg, now)
    _same(exp.meta["events_duplicate"], "1", "copy in another partition")
    both = [at(0, 0, copy), at(0, 1, _deal("q2", "ann", "2026-11-16T11:00:00", "Q", "sql")),
            at(1, 0, copy)]
    try:
        model(both, cfg, now)
    except AmbiguousInput:
        pass
    else:
        raise AssertionError("a copy of a deal event in another partition: no AmbiguousInput")
