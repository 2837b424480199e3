#!/usr/bin/python3
"""kpid load runs, by hand (never in CI), against a local redis-server and the dev broker.

  /usr/bin/python3 tools/soak.py [--build build] [--minutes 30] [--rate 5000] [--managers 1000]
                                 [--interval 60] [--warmup 5] [--partitions 16]
  /usr/bin/python3 tools/soak.py --backfill 20000000 [--managers 1000] [--partitions N/10000]

Soak: kpi-gen --live writes realistic events (calls, e-mails, meetings, deal stages of
--managers managers, ts = now, 1 % duplicates, 1 % invalid) into a pipe; a paced producer
sends them at --rate while kpid consumes. One row per --interval; at the end a verdict on
flatness (first window after the warm-up against the last one, and the slope) and a check
that nothing was lost. Backfill: kpi-gen produces N events (from --managers managers, a
time span that ends today) before kpid starts; kpid consumes them from the start.
The columns are explained in tools/README-tools.md.
"""
import argparse
import collections
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

import redis
from confluent_kafka import Producer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import Bench  # noqa: E402

TOPIC, GROUP = "soak", "gsoak"


class Feed:
    """Paces kpi-gen's stream to the topic and remembers when each burst left, so a flush
    that makes message `seq` visible gives its latency. The producer compresses and
    lingers a little, as a real one would; its CPU time is reported at the end."""

    def __init__(self, b, cfg, rate, managers):
        self.rate, self.topic = rate, TOPIC
        self.gen = b.spawn([os.path.join(b.build, "kpi-gen"), "-c", cfg, "--out", "-", "--live",
                            "--managers", str(managers), "--seed", "7", "--dup-frac", "0.01",
                            "--invalid-frac", "0.01"], "gen.log", stdout=subprocess.PIPE)
        # kpi-gen's own settings, but a short linger: it adds to the latency measured.
        # message.max.bytes: every 256th invalid message is oversize (> 1 MiB).
        self.prod = Producer({"bootstrap.servers": b.brokers, "linger.ms": 5,
                              "compression.type": "zstd", "compression.level": 1,
                              "batch.num.messages": 10000, "enable.idempotence": True,
                              "message.max.bytes": 4 << 20,
                              "queue.buffering.max.messages": 1000000})
        self.produced = self.delivered = self.failed = 0
        self.bursts = collections.deque()  # [first seq, last seq, time sent]
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def delivery(self, err, _msg):
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1

    def run(self):
        start, f = time.time(), self.gen.stdout
        while self.running:
            now = time.time()
            due, first = int((now - start) * self.rate), self.produced + 1
            while self.produced < due:
                key, _, value = f.readline().rstrip(b"\n").partition(b"\t")
                self.prod.produce(self.topic, value, key=key or None, on_delivery=self.delivery)
                self.produced += 1
            if self.produced >= first:
                self.bursts.append([first, self.produced, now])
            self.prod.poll(0)
            time.sleep(0.002)
        self.prod.flush(60)

    def stop(self):
        self.running = False
        self.thread.join()
        self.gen.terminate()


class Watch:
    """After each kpi:updates message, the consumed count says which messages are now
    visible (bench.py's latency method; with several partitions it is approximate, since
    the count assumes the messages were consumed in the order they were sent)."""

    def __init__(self, b, feed):
        self.b, self.feed, self.lat, self.running = b, feed, [], True
        self.sub = redis.Redis(port=b.redis_port).pubsub()
        self.sub.subscribe("kpi:updates")
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        bursts = self.feed.bursts
        while self.running:
            m = self.sub.get_message(timeout=0.05)
            if not m or m["type"] != "message":
                continue
            now, seen = time.time(), self.b.meta_consumed()
            while bursts and bursts[0][0] <= seen:
                first, last, sent = bursts[0]
                n = min(last, seen) - first + 1
                self.lat.extend([(now - sent) * 1000] * n)
                if last <= seen:
                    bursts.popleft()
                else:
                    bursts[0][0] = seen + 1

    def take(self):
        lat, self.lat = self.lat, []
        lat.sort()
        if not lat:
            return float("nan"), float("nan")
        return lat[len(lat) // 2], lat[int(len(lat) * 0.99)]

    def stop(self):
        self.running = False
        self.thread.join()


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def slope_per_10min(pts):
    """Least-squares slope of (seconds, value) points, per 10 minutes."""
    if len(pts) < 2:
        return float("nan")
    mx, my = mean([p[0] for p in pts]), mean([p[1] for p in pts])
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx * 600 if sxx else float("nan")


def verdict(rows, args):
    """Flat when the last window's mean exceeds the first window's after the warm-up by at
    most 10 % (or a small absolute margin: 2 MiB, half a second of backlog, 50 ms)."""
    end, warm = rows[-1]["t"], args.warmup * 60
    win = min(300, (end - warm) / 3)
    after = [r for r in rows if r["t"] > warm]
    first = [r for r in after if r["t"] <= warm + win]
    last = [r for r in after if r["t"] > end - win]
    print(f"\nflatness: first window {warm / 60:g}-{(warm + win) / 60:g} min "
          f"({len(first)} rows) vs last {(end - win) / 60:g}-{end / 60:g} min ({len(last)} rows)")
    flat = True
    for col, unit, margin in (("rss", "MiB", 2), ("redis", "MiB", 2),
                              ("lag", "events", args.rate / 2), ("p99", "ms", 50)):
        a, z = mean([r[col] for r in first]), mean([r[col] for r in last])
        slope = slope_per_10min([(r["t"], r[col]) for r in after if r[col] == r[col]])
        ok = z - a <= max(margin, 0.1 * abs(a))  # only growth counts against it
        flat = flat and ok
        print(f"  {col:6} first {a:10.1f} last {z:10.1f} {unit:6} change {z - a:+10.1f} "
              f"slope {slope:+9.2f}/10 min  {'flat' if ok else 'GROWS'}")
    print("verdict: " + ("FLAT" if flat else "NOT FLAT (see GROWS above)"))
    return flat


def soak(b, args):
    b.start_infra([f"{TOPIC}:{args.partitions}", "kpi.events.dlq:4"], groups=[GROUP])
    over = {"dedup_window_s": args.dedup_window} if args.dedup_window else {}
    cfg = b.config("soak", TOPIC, GROUP, **over)
    kpid = b.spawn([os.path.join(b.build, "kpid"), "-c", cfg], "kpid-soak.log")
    feed = Feed(b, cfg, args.rate, args.managers)
    watch = Watch(b, feed)
    t0, cpu0, rows = time.time(), resource.getrusage(resource.RUSAGE_SELF), []
    print(f"soak: {args.minutes} min at {args.rate}/s, {args.managers} managers, "
          f"{args.partitions} partitions, dedup window {args.dedup_window or 'default'} s; "
          f"logs in {b.work}")
    print(f"{'min':>6} {'produced':>10} {'/s':>6} {'applied':>10} {'consumed':>10} {'lag':>7} "
          f"{'rss MiB':>7} {'redis MiB':>9} {'dedup':>8} {'p50 ms':>7} {'p99 ms':>7} {'load1':>5}", flush=True)
    last_t, last_p = t0, 0
    while time.time() - t0 < args.minutes * 60:
        time.sleep(args.interval - (time.time() - t0) % args.interval)
        now, produced = time.time(), feed.produced
        meta = b.r.hgetall("kpi:meta")
        consumed = b.meta_consumed()
        p50, p99 = watch.take()
        r = {"t": now - t0, "produced": produced, "consumed": consumed,
             "applied": int(meta.get(b"events_applied", 0)), "lag": produced - consumed,
             "rss": b.rss_mib(kpid.pid), "redis": b.r.info("memory")["used_memory"] / 2 ** 20,
             "dedup": b.r.zcard("kpi:dedup"), "p50": p50, "p99": p99, "rate": (produced - last_p) / (now - last_t)}
        rows.append(r)
        last_t, last_p = now, produced
        print(f"{r['t'] / 60:6.1f} {produced:10d} {r['rate']:6.0f} {r['applied']:10d} "
              f"{consumed:10d} {r['lag']:7d} {r['rss']:7d} {r['redis']:9.1f} {r['dedup']:8d} {p50:7.0f} "
              f"{p99:7.0f} {os.getloadavg()[0]:5.2f}", flush=True)
    gen_cpu = b.proc_cpu(feed.gen.pid)
    feed.stop()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.time() - t0
    deadline = time.time() + 300
    while b.meta_consumed() < feed.delivered and time.time() < deadline:
        time.sleep(0.2)
    watch.stop()
    consumed = b.meta_consumed()
    py_cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    print(f"\nproducer: {feed.produced} sent ({feed.produced / wall:.0f}/s over {wall:.0f} s), "
          f"{feed.delivered} delivered, {feed.failed} failed; cpu: this script "
          f"{100 * py_cpu / wall:.0f} % of a core, kpi-gen {100 * gen_cpu / wall:.0f} %")
    print(f"kpid: cpu {b.proc_cpu(kpid.pid):.0f} s, RSS {b.rss_mib(kpid.pid)} MiB at the end")
    flat = verdict(rows, args)
    # Only the soak topic: the DLQ (1 % invalid, some of them > 1 MiB) has no reader and
    # outgrows the mock's 5 MiB per partition, which is the mock's limit, not a loss.
    lost = [line.strip() for line in open(os.path.join(b.work, "broker.log"))
            if f"DATA LOST: {TOPIC} [" in line]
    ok = consumed == feed.delivered == feed.produced and not lost
    print(f"after catching up: kpi:meta consumed {consumed}, produced {feed.produced}, "
          f"delivered {feed.delivered}; dev broker data lost: {lost or 'none'}")
    print("loss check: " + ("OK, nothing lost" if ok else "FAILED"))
    return ok and flat


def backfill(b, args):
    b.start_infra([f"{TOPIC}:{args.partitions}", "kpi.events.dlq:4"])
    cfg = b.config("backfill", TOPIC, GROUP)
    secs, stats = b.generate(cfg, TOPIC, args.backfill, 3, managers=args.managers)
    print(f"produced {args.backfill} events in {secs:.0f} s ({stats})", flush=True)
    e2e, cmds, hwm = b.run_kpid(cfg, args.backfill, timeout=7200)
    total = b.caught_up_at - b.spawned_at
    days = {k.decode(): int(v) for k, v in b.r.hgetall("kpi:meta").items()
            if k in (b"events_applied", b"events_invalid", b"events_duplicate")}
    print(f"backfill: {args.backfill:,} events, {args.managers} managers, "
          f"{args.partitions} partitions; kpi:meta {days}")
    print(f"  total {total:.0f} s from kpid start to the last event applied "
          f"({args.backfill / total:,.0f} events/s; {e2e:,.0f}/s from the first event applied)")
    print(f"  kpid peak RSS {hwm} MiB; redis used_memory {b.r.info('memory')['used_memory'] / 2 ** 20:.0f} "
          f"MiB, {b.r.dbsize()} keys; {cmds:.3f} redis commands per event; "
          f"load average {os.getloadavg()[0]:.2f}")
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--managers", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=60, help="seconds between rows")
    ap.add_argument("--warmup", type=float, default=5, help="minutes left out of the verdict")
    ap.add_argument("--partitions", type=int)
    ap.add_argument("--dedup-window", type=int, metavar="S",
                    help="kpid's dedup_window_s (default kpid's, 7 days: the dedup set, ~110 "
                         "bytes an id, then grows all through the soak)")
    ap.add_argument("--backfill", type=int, metavar="N",
                    help="instead of a soak: N events produced first, then consumed by kpid")
    args = ap.parse_args()
    # Backfill: all events sit in the mock broker at once (<= ~150k per partition, keys
    # spread unevenly: plan ~40k). Soak: the broker drops only what the group committed.
    # The mock broker keeps at most 5 MiB a partition (~25k of these ~200-byte events); keys
    # spread managers unevenly, so a backfill gets 10k events a partition (N / 40000 lost
    # data at 20 M).
    args.partitions = args.partitions or (max(8, args.backfill // 10000) if args.backfill else 16)
    b = Bench(os.path.abspath(args.build), tempfile.mkdtemp(prefix="kpi-soak."))
    try:
        ok = backfill(b, args) if args.backfill else soak(b, args)
    finally:
        b.close()
        print(f"logs in {b.work}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
