"""faultlib: what the crash, fault and group tests share on top of kpitest.

The invariant all of them check: whatever happens to kpid, Redis, the broker or the group
while a stream is consumed, the final Redis contents equal those of ONE CLEAN RUN of the
same messages (one uninterrupted kpid), and every invalid message reached the dead-letter
topic at least once.

To keep the suite fast, a test module generates and produces its stream once (a
module-scoped `Stream`: broker, messages, clean reference) and every test then runs kpid
against the same topic under its own consumer group, its own dead-letter topic and its
own redis-server. Group names differ, so a run's offsets hash is compared with the
reference's under a normalised name (`kpi:offsets:<G>:<topic>`).

Why the stream is fully keyed (--unkeyed-frac 0) and has no oversize messages: with keys,
one manager's events (and so every deal's events and every duplicate copy) sit in one
partition, so the result cannot depend on how kpid interleaves partitions, and a crash
run may interleave them differently from the clean run. kpid's handling of keyless
messages is pinned by test_exact.py. Oversize (> 1 MiB) invalid messages would fill the
mock broker's 5 MiB per partition with a handful of records.

Why session.timeout.ms is 4000 and not the 6000 used elsewhere: after kill -9 the mock
coordinator keeps the dead member until its session times out and runs two rebalance
rounds of (session.timeout.ms - 1 s) each, so a restart costs about 2 x session timeout;
with 20+ kills that dominates the suite. It cannot go lower than ~4 s: the mock holds a
group's first JoinGroup for 3 s without refreshing the member's session, so at 2 s the
member is expired while it waits and its JoinGroup is never answered (measured: kpid then
hangs for max.poll.interval.ms)."""

import os
import random
import re
import signal
import subprocess

import expect
import kpitest
from kpitest import EVENTS_TOPIC, HarnessError

SESSION_TIMEOUT_MS = 4000
GROUP_PROPERTIES = {"session.timeout.ms": str(SESSION_TIMEOUT_MS), "heartbeat.interval.ms": "500"}
ALERTS_TOPIC = "kpi.alerts"
PREFIX = kpitest.DEFAULT_PREFIX

# Teams in three zones, some managers in none (team "unassigned"): many counter keys.
GEN_CONFIG = {
    "time_zone": "Europe/Moscow",
    "teams": {
        "msk": {"time_zone": "Europe/Moscow", "lead": "m00"},
        "nyc": {"time_zone": "America/New_York"},
        "blr": {"time_zone": "Asia/Kolkata"},
    },
    "managers": dict(("m%02d" % i, {"team": ("msk", "nyc", "blr")[i % 3]}) for i in range(15)),
    "internal": {"domains": ["ourcompany.ru"], "phone_prefixes": ["+7495100"]},
}


def gen_stream(workdir, cfg, seed, count, managers=30, dup_frac=0.02, invalid_frac=0.02):
    """kpi-gen messages [(key, payload)]: fully keyed, no oversize messages (see above)."""
    cfg_path = kpitest.write_config(os.path.join(workdir, "gen-%d.json" % seed), cfg)
    out = os.path.join(workdir, "gen-%d-%d.txt" % (seed, count))
    argv = [kpitest.binary("kpi-gen"), "-c", cfg_path, "--seed", str(seed), "--count", str(count),
            "--managers", str(managers), "--dup-frac", str(dup_frac), "--invalid-frac",
            str(invalid_frac), "--unkeyed-frac", "0", "--oversize-every", "0", "--out", out]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    if r.returncode != 0:
        raise HarnessError("kpi-gen failed (%d): %s" % (r.returncode, r.stderr.decode("utf-8", "replace")))
    return kpitest.read_gen_file(out)


# ---------------------------------------------------------------------------------
# Redis views


def snapshot(client, group, topic=EVENTS_TOPIC, prefix=PREFIX):
    """meta, stored offsets, dedup size and fence tokens, read atomically (MULTI) so a kpid
    flushing meanwhile cannot tear them apart."""
    p = client.pipeline(transaction=True)
    p.hgetall(prefix + ":meta")
    p.hgetall("%s:offsets:%s:%s" % (prefix, group, topic))
    p.zcard(prefix + ":dedup")
    p.hgetall("%s:fence:%s:%s" % (prefix, group, topic))
    m, offs, zcard, fence = p.execute()
    return {
        "meta": {k.decode(): v.decode() for k, v in m.items()},
        "offsets": {int(k): int(v) for k, v in offs.items()},
        "dedup": zcard,
        "fence": {int(k): int(v) for k, v in fence.items()},
    }


def check_consistent(client, group, what, topic=EVENTS_TOPIC):
    """The counters and the offsets they cover are written in one transaction, and every
    message from offset 0 on is counted exactly once (applied, invalid or duplicate), so at
    ANY moment: applied + invalid + duplicate == sum of stored offsets. Only applied events
    leave their id in the dedup set: ZCARD dedup == events_applied. A crash or a fenced
    writer that applied something twice breaks one of these at once, which points at the
    very fault that caused it. Returns the snapshot."""
    s = snapshot(client, group, topic)
    consumed = kpitest.consumed_count(s["meta"])
    stored = sum(s["offsets"].values())
    assert consumed == stored, (
        "%s: kpi:meta counts %d consumed messages but the stored offsets cover %d "
        "(meta=%r offsets=%r)" % (what, consumed, stored, s["meta"], s["offsets"]))
    applied = int(s["meta"].get("events_applied", 0))
    assert s["dedup"] == applied, (
        "%s: kpi:dedup holds %d ids but events_applied=%d (meta=%r)" % (what, s["dedup"], applied, s["meta"]))
    return s


def fence_total(client, group, topic=EVENTS_TOPIC):
    return sum(int(v) for v in client.hvals("%s:fence:%s:%s" % (PREFIX, group, topic)))


def consumed_now(client):
    try:
        return kpitest.consumed_count(kpitest.meta(client))
    except kpitest.redis_mod.exceptions.RedisError:
        return -1


# Keys whose content depends on WHEN it is computed, not only on the messages: windows
# ending at the current hour (:rolling; checked instead against the per-hour sums of the
# same run by funnel_invariants) and alerts (evaluated on a wall-clock timer). Two correct
# runs minutes apart may differ there, so the comparison with the clean run leaves them
# out. The per-hour sums (:hourly) are compared, with hours no window needs any more (they
# depend on when the last hour turned) left out; see trim_hourly.
TIME_DEPENDENT_KEYS = (r".*:rolling", r"(.*:)?alerts")
HOUR_MS = 3600000


def normalize(dump, group, prefix=PREFIX):
    """A dump with the group's name taken out of the offsets key and the time-dependent
    keys left out (and kpi:meta's rolling_hour_ms moved to out["<rolling hour>"])."""
    out = {"<rolling hour>": None}
    meta = dump.get(prefix + ":meta")
    if meta:
        meta = dict(meta, value=dict(meta["value"]))
        out["<rolling hour>"] = meta["value"].pop("rolling_hour_ms", None)
        dump = dict(dump, **{prefix + ":meta": meta})
    pre = "%s:offsets:%s:" % (prefix, group)
    for k, v in dump.items():
        rel = k[len(prefix) + 1:] if k.startswith(prefix + ":") else None
        if rel is not None and any(re.fullmatch(p, rel) for p in TIME_DEPENDENT_KEYS):
            continue
        if k.startswith(pre):
            k = "%s:offsets:<G>:%s" % (prefix, k[len(pre):])
        if k.endswith(":pipeline"):
            # A field that went up in one flush and down in a later one stays as 0; within
            # one flush the two net out and it is never written. Both mean "none open".
            v = dict(v, value={f: x for f, x in v["value"].items() if x != "0"})
            if not v["value"]:
                continue
        out[k] = v
    return out


def trim_hourly(dump, rolling_hour_ms, prefix=PREFIX):
    """The dump with the :hourly fields of hours older than 30 days before rolling_hour_ms
    dropped (kpid drops them when the hour turns, so two runs an hour apart differ there)."""
    if rolling_hour_ms is None:
        return dump
    oldest = int(rolling_hour_ms) // HOUR_MS - 720
    rx = re.compile(re.escape(prefix) + r":mgr:\{.*\}:hourly")
    out = {}
    for k, e in dump.items():
        if rx.fullmatch(k):
            v = {f: x for f, x in e["value"].items() if int(f.rsplit(":", 1)[1]) > oldest}
            if not v:
                continue
            e = dict(e, value=v)
        out[k] = e
    return out


def funnel_invariants(dump, cfg, what, prefix=PREFIX):
    """What must hold in ANY state kpid leaves, crash or not: every pipeline hash is the sum
    of the contributions of the deals its scope owns now, and every rolling window is the sum
    of the per-hour counts it covers. Both are written incrementally by different flushes,
    so a flush applied twice or half would break them."""
    rules = expect.Rules(cfg)
    want = {}
    rx = re.compile(re.escape(prefix) + r":deal:\{(.*)\}")
    for k, e in dump.items():
        if not rx.fullmatch(k):
            continue
        h = e["value"]
        deal = expect.Deal(int(h["first_ts"]))
        deal.manager, deal.stage = h["manager"], h["stage"]
        deal.amount = int(h["amount_cents"]) if "amount_cents" in h else None
        contribution = expect.pipeline_contribution(deal, rules)
        team = rules.team_of(deal.manager)
        for key in ("%s:mgr:{%s}:pipeline" % (prefix, deal.manager),
                    "%s:team:{%s}:pipeline" % (prefix, team), "%s:org:pipeline" % prefix):
            acc = want.setdefault(key, {})
            for f, v in contribution.items():
                acc[f] = acc.get(f, 0) + v
    def nonzero(h):
        return {f: int(v) for f, v in h.items() if int(v) != 0}
    want = {k: nonzero(v) for k, v in want.items() if nonzero(v)}
    got = {k: nonzero(e["value"]) for k, e in dump.items()
           if k.endswith(":pipeline") and nonzero(e["value"])}
    d = kpitest.diff_dumps(want, got)
    assert not d, "%s: pipelines differ from the sum of the stored deals:\n%s" % (what, d)
    w = (dump.get(prefix + ":meta") or {"value": {}})["value"].get("rolling_hour_ms")
    if w is None:
        return
    wh = int(w) // HOUR_MS
    want = {}
    for k, e in dump.items():
        if not k.endswith(":hourly"):
            continue
        sums = {}
        for f, v in e["value"].items():
            metric, hour = f.rsplit(":", 1)
            for label, n in (("24h", 24), ("7d", 168), ("30d", 720)):
                if int(hour) > wh - n:
                    sums[metric + ":" + label] = sums.get(metric + ":" + label, 0) + int(v)
        if nonzero(sums):
            want[k[:-len("hourly")] + "rolling"] = nonzero(sums)
    got = {k: nonzero(e["value"]) for k, e in dump.items()
           if k.endswith(":rolling") and nonzero(e["value"])}
    d = kpitest.diff_dumps(want, got)
    assert not d, "%s: rolling windows differ from their per-hour sums:\n%s" % (what, d)


def compare_dumps(ref, got, what, ttl_slack_s=5):
    """Equal keys, types and values; EXPIRETIMEs equal within ttl_slack_s (kpid may compute
    expiries from the wall clock, and the two runs happen seconds apart)."""
    hours = [int(h) for h in (ref.get("<rolling hour>"), got.get("<rolling hour>")) if h is not None]
    if hours:
        ref, got = trim_hourly(ref, max(hours)), trim_hourly(got, max(hours))
    ref = {k: v for k, v in ref.items() if k != "<rolling hour>"}
    got = {k: v for k, v in got.items() if k != "<rolling hour>"}
    vals_ref = {k: (e["type"], e["value"]) for k, e in ref.items()}
    vals_got = {k: (e["type"], e["value"]) for k, e in got.items()}
    d = kpitest.diff_dumps(vals_ref, vals_got)
    if d:
        # Hashes are the usual culprit: show field-level differences.
        lines = [d]
        for k in sorted(set(ref) & set(got)):
            if ref[k]["type"] == "hash" and got[k]["type"] == "hash" and ref[k]["value"] != got[k]["value"]:
                e, a = ref[k]["value"], got[k]["value"]
                for f in sorted(set(e) | set(a)):
                    if e.get(f) != a.get(f):
                        lines.append("  %s [%s]: clean run %r, this run %r" % (k, f, e.get(f), a.get(f)))
                if len(lines) > 40:
                    break
        raise AssertionError("%s: redis differs from the clean run:\n%s" % (what, "\n".join(lines)))
    bad = []
    for k in sorted(ref):
        a, b = ref[k].get("expire_at", -1), got[k].get("expire_at", -1)
        if (a < 0) != (b < 0) or abs(a - b) > ttl_slack_s:
            bad.append("%s: EXPIRETIME clean run %s, this run %s" % (k, a, b))
    assert not bad, "%s: key expiry differs from the clean run:\n%s" % (what, "\n".join(bad[:20]))


# ---------------------------------------------------------------------------------
# the stream a module shares


class Stream:
    """One broker with one produced stream and its clean reference.

    Every run (the reference included) uses its own group and dead-letter topic on this
    broker, so runs do not see each other. Create with Stream(env, ...).setup()."""

    def __init__(self, env, seed, count, partitions=8, brokers=None, managers=30, produce_conf=None):
        self.env = env
        self.produce_conf = produce_conf or {}  # producer settings, e.g. smaller batches
        self.seed = seed
        self.count = count
        self.partitions = partitions
        self.brokers = brokers
        self.managers = managers
        self.runs = 0

    def setup(self):
        env = self.env
        self.broker = env.broker({EVENTS_TOPIC: self.partitions, ALERTS_TOPIC: 1}, brokers=self.brokers)
        probe = kpitest.default_config(self.broker.bootstrap, 6379, **GEN_CONFIG)
        self.gen_cfg = probe
        gen = gen_stream(env.dir, probe, self.seed, self.count, managers=self.managers)
        self.msgs = kpitest.produce(self.broker.bootstrap, EVENTS_TOPIC, gen, **self.produce_conf)
        self.by_origin = {(m.partition, m.offset): m for m in self.msgs}
        self.ends = kpitest.end_offsets(self.broker.bootstrap, EVENTS_TOPIC)
        assert sum(self.ends.values()) == len(self.msgs)
        assert all(self.ends[p] > 0 for p in self.ends), "a partition got no messages: %r" % self.ends
        self.reference()
        return self

    def new_run(self, name):
        """(group, dlq_topic) for a run; creates the DLQ topic."""
        self.runs += 1
        group = "%s-%d" % (name, self.runs)
        dlq = "dlq.%s" % group
        self.broker.create_topic(dlq, 1)
        return group, dlq

    def config(self, redis, group, dlq, properties=None, **over):
        props = dict(GROUP_PROPERTIES)
        props.update(properties or {})
        base = dict(GEN_CONFIG)
        base.update(over)
        cfg = kpitest.default_config(self.broker.bootstrap, redis.port, **base)
        return kpitest.deep_merge(cfg, {"kafka": {"group": group, "dlq_topic": dlq,
                                                  "alerts_topic": ALERTS_TOPIC, "properties": props}})

    def reference(self):
        """The clean run: one kpid, never disturbed, default batches."""
        env = self.env
        redis = env.redis()
        group, dlq = self.new_run("clean")
        cfg = self.config(redis, group, dlq)
        kpid = env.kpid(cfg, name="kpid-clean")
        c = redis.client()
        kpitest.wait_consumed(c, len(self.msgs), kpid, timeout=180)
        rc = kpid.stop()
        assert rc == 0, "clean run: kpid exited %s\n%s" % (rc, kpid.log_tail())
        reports = kpid.sanitizer_reports()
        assert not reports, "clean run: sanitizer reports %r" % reports
        check_consistent(c, group, "clean run")
        dump = kpitest.dump_redis(c)
        funnel_invariants(dump, cfg, "clean run")
        self.ref_dump = normalize(dump, group)
        self.ref_meta = kpitest.meta(c)
        self.check_offsets(c, group, "clean run")
        # The stream must exercise what the tests claim it does.
        inv = int(self.ref_meta.get("events_invalid", 0))
        dup = int(self.ref_meta.get("events_duplicate", 0))
        assert inv >= 0.01 * len(self.msgs) and dup >= 0.01 * len(self.msgs), self.ref_meta
        recs = self.read_dlq(dlq)
        origins = [o for o, _ in recs]
        assert len(origins) == len(set(origins)) == inv, (
            "clean run: %d DLQ records (%d distinct) for %d invalid messages"
            % (len(origins), len(set(origins)), inv))
        self.invalid = set(origins)
        self.check_low_watermarks([dlq])
        redis.close()

    def read_dlq(self, dlq):
        """[(origin (partition, offset), record)] of a run's DLQ; checks every record is an
        unchanged copy of the message its headers point at."""
        out = []
        problems = []
        for r in kpitest.read_topic(self.broker.bootstrap, dlq):
            h = r.headers
            try:
                assert h["kpi.topic"] == EVENTS_TOPIC.encode() and h["kpi.error"]
                origin = (int(h["kpi.partition"]), int(h["kpi.offset"]))
            except (KeyError, ValueError, AssertionError):
                problems.append("DLQ %d@%d: bad origin headers %r" % (r.partition, r.offset, r.header_list))
                continue
            m = self.by_origin.get(origin)
            if m is None or m.key != r.key or (m.value or b"") != (r.value or b""):
                problems.append("DLQ %d@%d: not a copy of %s[%d]@%d" % (r.partition, r.offset, EVENTS_TOPIC,
                                                                       origin[0], origin[1]))
            out.append((origin, r))
        assert not problems, "\n".join(problems[:20])
        return out

    def wait_consumed(self, client, group, kpid, timeout=90.0):
        """Wait until kpi:meta accounts for the whole stream; on failure name the
        partitions whose stored offsets are short of their end (stuck partitions)."""
        try:
            return kpitest.wait_consumed(client, len(self.msgs), kpid, timeout=timeout)
        except HarnessError as e:
            try:
                stored = snapshot(client, group)["offsets"]
                short = ["[%d] stored %s of %d" % (p, stored.get(p), end)
                         for p, end in sorted(self.ends.items()) if stored.get(p) != end]
                extra = "partitions not consumed to their end: " + ", ".join(short)
            except kpitest.redis_mod.exceptions.RedisError as re_err:
                extra = "(stored offsets unreadable: %s)" % re_err
            raise HarnessError("%s\n%s" % (extra, e)) from None

    def check_offsets(self, client, group, what):
        key = "%s:offsets:%s:%s" % (PREFIX, group, EVENTS_TOPIC)
        stored = {int(k): int(v) for k, v in client.hgetall(key).items()}
        assert stored == self.ends, "%s: %s = %r, end offsets %r" % (what, key, stored, self.ends)

    def check_low_watermarks(self, extra_topics=()):
        kpitest.assert_low_watermarks_zero(self.broker, [EVENTS_TOPIC] + list(extra_topics))

    def check_run(self, client, group, dlq, what):
        """The end state of a disturbed run equals the clean run's; DLQ at least once.
        Returns how many DLQ records were repeats (allowed after crashes)."""
        check_consistent(client, group, what)
        self.check_offsets(client, group, what)
        dump = kpitest.dump_redis(client)
        funnel_invariants(dump, self.gen_cfg, what)
        compare_dumps(self.ref_dump, normalize(dump, group), what)
        recs = self.read_dlq(dlq)
        origins = [o for o, _ in recs]
        missing = self.invalid - set(origins)
        assert not missing, "%s: %d invalid messages never reached the DLQ, e.g. %r" % (
            what, len(missing), sorted(missing)[:10])
        extra = set(origins) - self.invalid
        assert not extra, "%s: DLQ copies of messages that are not invalid: %r" % (what, sorted(extra)[:10])
        self.check_low_watermarks([dlq])
        kpitest.tally_compared(len(self.msgs), len(self.invalid))
        return len(origins) - len(set(origins))


# ---------------------------------------------------------------------------------
# process control


def wait_claimed(client, group, before, n, proc, timeout=60.0):
    """Wait until the fence tokens of the group grew by at least n since `before`
    (the kpid claimed its partitions). Returns the new total."""
    def claimed():
        if not proc.running():
            raise HarnessError("kpid exited (%s) before claiming partitions\n%s"
                               % (proc.proc.returncode, proc.log_tail()))
        t = fence_total(client, group)
        return t if t >= before + n else None
    return kpitest.wait_for(claimed, timeout, "kpid to claim %d partitions" % n,
                            interval=0.01, on_timeout=proc.log_tail)


def wait_progress(client, at_least, proc, timeout=60.0):
    """Wait until kpi:meta counts at least `at_least` consumed messages."""
    def done():
        if not proc.running():
            raise HarnessError("kpid exited (%s)\n%s" % (proc.proc.returncode, proc.log_tail()))
        return consumed_now(client) >= at_least
    kpitest.wait_for(done, timeout, "%d consumed messages" % at_least, interval=0.01,
                     on_timeout=proc.log_tail)


def log_lines(kpid, pattern, start=0):
    rx = re.compile(pattern)
    return [l for l in kpid.log()[start:].splitlines() if rx.search(l)]


class Frozen:
    """SIGSTOP a process for the duration of a with-block (SIGCONT on exit, always)."""

    def __init__(self, proc):
        self.proc = proc

    def __enter__(self):
        os.kill(self.proc.pid, signal.SIGSTOP)
        kpitest.tally_fault("SIGSTOP (frozen) %s" % os.path.basename(self.proc.args[0]))
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)


def rng(seed):
    """The seeded random source of a test (printed, so a failure can be replayed)."""
    print("faultlib: random seed %d" % seed)
    return random.Random(seed)


def module_stream(tmp_path_factory, name, **kw):
    """Generator for a module-scoped fixture: a set-up Stream, torn down after the module."""
    env = kpitest.Env(str(tmp_path_factory.mktemp(name)))
    try:
        yield Stream(env, **kw).setup()
    finally:
        env.close()
