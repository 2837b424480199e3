#!/usr/bin/python3
"""kpid benchmark: run by hand (never in CI), prints one block of figures.

  /usr/bin/python3 tools/bench.py [--build build] [--events 1000000] [--big 5000000] [--alerts]
                                  [--metrics]

Measures, on this machine, against a local redis-server and the dev broker:
  raw consume rate   a librdkafka consumer that only reads the pre-produced topic
  end to end         kpid consuming the same events into Redis (first to last applied)
  ratio              end to end / raw
  redis commands     per event (INFO total_commands_processed delta / events)
  latency            produce -> visible in Redis at a steady 20k events/s (p50, p99)
  peak RSS           VmHWM of kpid after 1M and after 5M events
Every topic is checked for dropped data (mock broker low watermark must stay 0).
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import redis
from confluent_kafka import Consumer, Producer, TopicPartition


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --alerts: targets, a score and rules for everyone, so every flush is followed (within a
# second) by an evaluation of the managers it moved, and everyone is evaluated each minute.
ALERTS_CONFIG = {
    "targets": {"default": {"touches": {"d": 40}, "meetings_held": {"w": 5}, "calls": {"d": 50}}},
    "kpi_score": {"period": "m", "budget": 30000,
                  "weights": {"touches": 0.5, "meetings_held": 0.5},
                  "bands": [{"from": 80, "coef": 0.9}, {"from": 100, "coef": 1.0}]},
    "alerts": {"clock": "wall", "eval_interval_s": 60, "rules": [
        {"name": "daily-touches", "metric": "touches", "period": "d"},
        {"name": "weekly-meetings", "metric": "meetings_held", "period": "w",
         "escalate_after_s": 86400},
        {"name": "silent", "kind": "inactivity", "metric": "touches", "idle_s": 7200}]},
}


class Bench:
    def __init__(self, build, work, alerts=False, metrics=False):
        self.build, self.work, self.procs = build, work, []
        self.alerts = alerts
        self.metrics = metrics
        self.metrics_ports = {}  # config path -> metrics port

    def spawn(self, argv, log, **kw):
        p = subprocess.Popen(argv, stdout=kw.pop("stdout", subprocess.DEVNULL),
                             stderr=open(os.path.join(self.work, log), "w"),
                             stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()

    def start_infra(self, topics, groups=()):
        self.redis_port = free_port()
        self.spawn(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir", self.work], "redis.log")
        bootfile = os.path.join(self.work, "bootstrap")
        args = [os.path.join(self.build, "kpi-devbroker"), "-p", bootfile]
        for t in topics:
            args += ["-t", t]
        for g in groups:  # the broker may drop what these groups committed (soak.py)
            args += ["-g", g]
        self.broker_proc = self.spawn(args, "broker.log")
        for _ in range(200):
            if os.path.exists(bootfile) and open(bootfile).read().strip():
                break
            time.sleep(0.05)
        self.brokers = open(bootfile).read().strip()
        self.r = redis.Redis(port=self.redis_port)
        for _ in range(200):
            try:
                self.r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)

    def config(self, name, topic, group, **over):
        cfg = {
            "kafka": {"brokers": self.brokers, "topics": [topic], "group": group,
                      "properties": {"session.timeout.ms": "6000",
                                     "heartbeat.interval.ms": "500"}},
            "redis": {"port": self.redis_port},
            "time_zone": "Europe/Moscow",
            "teams": {"moscow": {"time_zone": "Europe/Moscow"},
                      "nyc": {"time_zone": "America/New_York"},
                      "delhi": {"time_zone": "Asia/Kolkata"}},
            "managers": {f"m{i:03d}": {"team": ["moscow", "nyc", "delhi"][i % 3]}
                         for i in range(60)},
            "internal": {"domains": ["ourcompany.ru"], "phone_prefixes": ["+7495100"]},
        }
        cfg["log_level"] = os.environ.get("KPI_BENCH_LOG_LEVEL", "info")
        if os.environ.get("KPI_BENCH_BATCH"):
            cfg["batch"] = {"max_events": int(os.environ["KPI_BENCH_BATCH"])}
        extra = os.environ.get("KPI_BENCH_KAFKA_PROPS")
        if extra:
            cfg["kafka"]["properties"].update(json.loads(extra))
        if self.alerts:
            cfg.update(ALERTS_CONFIG)
        cfg.update(over)
        path = os.path.join(self.work, name + ".json")
        if self.metrics:
            self.metrics_ports[path] = free_port()
            cfg["metrics"] = {"listen": "127.0.0.1:%d" % self.metrics_ports[path]}
        json.dump(cfg, open(path, "w"))
        return path

    def low_watermarks_zero(self, topic):
        c = Consumer({"bootstrap.servers": self.brokers, "group.id": "bench-wm"})
        md = c.list_topics(topic, timeout=10)
        bad = []
        for p in md.topics[topic].partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if lo != 0:
                bad.append((p, lo))
        c.close()
        if bad:
            sys.exit(f"DATA DROPPED by the mock broker in {topic}: {bad}")

    def generate(self, cfg, topic, count, seed, managers=1000):
        t = time.time()
        out = subprocess.run([os.path.join(self.build, "kpi-gen"), "-b", self.brokers, "-t", topic,
                              "-c", cfg, "--seed", str(seed), "--count", str(count),
                              "--managers", str(managers),
                              "--dup-frac", "0.01", "--invalid-frac", "0.01", "--stats"],
                             check=True, capture_output=True, text=True)
        self.low_watermarks_zero(topic)
        return time.time() - t, out.stdout.strip()

    @staticmethod
    def rss_mib(pid):
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
        return 0

    @staticmethod
    def proc_cpu(pid):
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def meta_consumed(self, prefix="kpi"):
        m = self.r.hgetall(f"{prefix}:meta")
        return sum(int(m.get(k, 0)) for k in (b"events_applied", b"events_invalid",
                                              b"events_duplicate"))

    def commandstats(self):
        return {k[len("cmdstat_"):]: (v["calls"], v["usec"])
                for k, v in self.r.info("commandstats").items()}

    def run_kpid(self, cfg, count, prefix="kpi", binary=None, timeout=900):
        before = int(self.r.info("stats")["total_commands_processed"])
        stats0 = self.commandstats()
        broker_cpu0 = self.proc_cpu(self.broker_proc.pid)
        cpu = self.r.info("cpu")
        redis_cpu0 = cpu["used_cpu_user"] + cpu["used_cpu_sys"]
        wrap = os.environ.get("KPI_BENCH_WRAP", "").split()
        p = self.spawn(wrap + [binary or os.path.join(self.build, "kpid"), "-c", cfg],
                       "kpid-" + prefix + ".log")
        scraper = Scraper(self.metrics_ports.get(cfg))
        t0 = c0 = None
        self.spawned_at = time.time()
        deadline = time.time() + timeout
        samples, next_mark = [], 0.1
        while time.time() < deadline:
            c = self.meta_consumed(prefix)
            if t0 is None and c > 0:
                t0, c0 = time.time(), c
            if c >= next_mark * count:
                samples.append(self.rss_mib(p.pid))
                next_mark += 0.1
            if c >= count:
                break
            time.sleep(0.005)
        print("  RSS at each 10% of the stream (MiB): " + " ".join(str(s) for s in samples))
        t1 = self.caught_up_at = time.time()
        scraper.stop()
        hwm = 0
        for line in open(f"/proc/{p.pid}/status"):
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) // 1024
        after = int(self.r.info("stats")["total_commands_processed"])
        stats1 = self.commandstats()
        used = sorted(((us - stats0.get(c, (0, 0))[1], n - stats0.get(c, (0, 0))[0], c)
                       for c, (n, us) in stats1.items()), reverse=True)
        print("  redis time by command (per event): " + ", ".join(
            f"{c} {us / count:.2f} us ({n / count:.2f} calls)" for us, n, c in used[:8] if n))
        cpu = self.r.info("cpu")
        redis_cpu = cpu["used_cpu_user"] + cpu["used_cpu_sys"] - redis_cpu0
        fields = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
        kpid_cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        broker_cpu = self.proc_cpu(self.broker_proc.pid) - broker_cpu0
        print(f"  cpu seconds: kpid {kpid_cpu:.1f} (all threads), redis {redis_cpu:.1f}, "
              f"dev broker {broker_cpu:.1f}, wall {t1 - (t0 or t1):.1f} (2 cores)")
        p.terminate()
        p.wait(60)
        consumed = self.meta_consumed(prefix)
        if consumed != count:
            sys.exit(f"kpid consumed {consumed}, expected {count}")
        rate = (count - c0) / (t1 - t0) if t1 > t0 else float("nan")
        return rate, (after - before) / count, hwm


class Scraper:
    """--metrics: GET /metrics every 100 ms while kpid runs (Prometheus scrapes every 15 s:
    this is 150 times harsher) and report how long the scrapes took."""

    def __init__(self, port):
        self.port, self.times, self.size, self.failed = port, [], 0, 0
        self.running = port is not None
        if self.running:
            self.thread = threading.Thread(target=self.run, daemon=True)
            self.thread.start()

    def run(self):
        import urllib.request
        while self.running:
            t = time.perf_counter()
            try:
                body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.port,
                                              timeout=2).read()
                self.times.append(time.perf_counter() - t)
                self.size = len(body)
            except OSError:
                self.failed += 1
            time.sleep(0.1)

    def stop(self):
        if not self.running:
            return
        self.running = False
        self.thread.join()
        t = sorted(self.times)
        if t:
            print(f"  /metrics scraped {len(t)} times ({self.failed} failed, the first ones "
                  f"before the port opened), {self.size} bytes: p50 {t[len(t) // 2] * 1000:.2f} ms, "
                  f"p99 {t[int(len(t) * 0.99)] * 1000:.2f} ms")


def latency(b, cfg_path, topic, rate=20000, seconds=20):
    p = b.spawn([os.path.join(b.build, "kpid"), "-c", cfg_path], "kpid-lat.log")
    prod = Producer({"bootstrap.servers": b.brokers, "linger.ms": 2, "compression.type": "lz4",
                     "queue.buffering.max.messages": 1000000})

    def event(i):
        return json.dumps({"event_id": f"lat-{i}", "type": "call", "manager_id": f"m{i % 60:03d}",
                           "ts": int(time.time() * 1000), "direction": "outbound",
                           "status": "connected", "duration_s": 30}).encode()

    # Warm up: wait until kpid has joined and applied one message.
    prod.produce(topic, event(-1), key=b"m000")
    prod.flush()
    deadline = time.time() + 60
    while b.meta_consumed("lat") < 1 and time.time() < deadline:
        time.sleep(0.05)
    base = b.meta_consumed("lat")

    seen = []  # (time, applied) after every flush
    stop = threading.Event()
    sub = redis.Redis(port=b.redis_port).pubsub()
    sub.subscribe("lat:updates")

    def watch():
        rr = redis.Redis(port=b.redis_port)
        while not stop.is_set():
            m = sub.get_message(timeout=0.05)
            if m and m["type"] == "message":
                seen.append((time.time(), int(rr.hget("lat:meta", "events_applied") or 0)))

    th = threading.Thread(target=watch)
    th.start()
    n = rate * seconds
    sent = [0.0] * n
    start = time.time()
    for i in range(n):
        target = start + i / rate
        while True:
            now = time.time()
            if now >= target:
                break
            time.sleep(min(target - now, 0.001))
        sent[i] = time.time()
        prod.produce(topic, event(i), key=f"m{i % 60:03d}".encode())
        if i % 500 == 0:
            prod.poll(0)
    prod.flush()
    deadline = time.time() + 30
    while b.meta_consumed("lat") < base + n and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    stop.set()
    th.join()
    p.terminate()
    p.wait(30)
    achieved = n / (sent[-1] - sent[0])
    lat, j = [], 0
    seen.sort()
    for i in range(n):
        while j < len(seen) and seen[j][1] < base + i + 1:
            j += 1
        if j == len(seen):
            break
        lat.append((seen[j][0] - sent[i]) * 1000)
    lat.sort()
    if len(lat) < n:
        sys.exit(f"only {len(lat)} of {n} latency samples became visible")
    return achieved, lat[len(lat) // 2], lat[int(len(lat) * 0.99)], lat[-1]


def compare(b, args, raw_rate):
    """This build's kpid and another binary, alternately, on the same topic (fresh Redis and
    group each run): the median of each and the relative cost."""
    runs = {"this": [], "other": []}
    for r in range(args.rounds):
        for which, binary in (("this", None), ("other", os.path.abspath(args.compare))):
            b.r.flushall()
            cfg = b.config(f"cmp-{which}-{r}", "bench.a", f"gcmp-{which}-{r}")
            e2e, _, _ = b.run_kpid(cfg, args.events, binary=binary)
            runs[which].append(e2e)
            print(f"  round {r + 1} {which}: {e2e:,.0f} events/s")
    med = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
    print(f"compare: this kpid {med['this']:,.0f} events/s, {args.compare} {med['other']:,.0f} "
          f"events/s (medians of {args.rounds}); this one costs {100 * (1 - med['this'] / med['other']):+.0f}% "
          f"of throughput; raw {raw_rate:,.0f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--big", type=int, default=5_000_000)
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--compare", metavar="KPID",
                    help="another kpid binary (e.g. one built without the funnel): run it and "
                         "this build's kpid in turns on the same 1M events, report the cost")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--alerts", action="store_true",
                    help="configure targets, a score and alert rules (evaluation passes run)")
    ap.add_argument("--metrics", action="store_true",
                    help="enable the /metrics endpoint and scrape it every 100 ms meanwhile")
    args = ap.parse_args()
    # The mock broker keeps <= 5 MiB of compressed batches per partition (~150k events with
    # zstd); keys spread unevenly, so plan ~40k events per partition.
    # Both runs use the same partition count: librdkafka's prefetch buffers grow with the
    # partitions a consumer owns, and the RSS comparison is about the stream's length.
    parts = big_parts = max(8, max(args.events, 0 if args.skip_big else args.big) // 40000)
    work = tempfile.mkdtemp(prefix="kpi-bench.")
    b = Bench(os.path.abspath(args.build), work, alerts=args.alerts, metrics=args.metrics)
    try:
        topics = [f"bench.a:{parts}", "bench.lat:1", "kpi.events.dlq:4"]
        if not args.skip_big:
            topics.append(f"bench.b:{big_parts}")
        b.start_infra(topics)
        cfg_a = b.config("a", "bench.a", "ga")
        secs, stats = b.generate(cfg_a, "bench.a", args.events, 1)
        print(f"produced {args.events} events in {secs:.1f} s ({stats})")
        raw = subprocess.run([os.path.join(b.build, "kpi-bench"), "-b", b.brokers, "-t", "bench.a",
                              "-n", str(args.events)], check=True, capture_output=True,
                             text=True).stdout
        raw_rate = float(raw.split("rate=")[1].split()[0])
        e2e, cmds, rss1 = b.run_kpid(cfg_a, args.events)
        print(f"raw consume:        {raw_rate:,.0f} events/s")
        print(f"kpid end to end:    {e2e:,.0f} events/s ({args.events:,} events)")
        print(f"ratio:              {e2e / raw_rate:.2f}")
        print(f"redis commands:     {cmds:.3f} per event")
        print(f"peak RSS at {args.events / 1e6:g}M:   {rss1} MiB")
        if args.compare:
            compare(b, args, raw_rate)
        cfg_l = b.config("lat", "bench.lat", "gl", redis={"port": b.redis_port, "prefix": "lat"})
        achieved, p50, p99, pmax = latency(b, cfg_l, "bench.lat")
        print(f"latency @ {achieved:,.0f}/s: p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {pmax:.0f} ms "
              "(produce -> visible in redis)")
        if not args.skip_big:
            b.r.flushall()
            cfg_b = b.config("b", "bench.b", "gb")
            secs, stats = b.generate(cfg_b, "bench.b", args.big, 2)
            e2e5, cmds5, rss5 = b.run_kpid(cfg_b, args.big)
            print(f"kpid end to end:    {e2e5:,.0f} events/s ({args.big:,} events)")
            print(f"peak RSS at {args.big / 1e6:g}M:   {rss5} MiB ({(rss5 - rss1) / rss1 * 100:+.0f}% vs "
                  f"{args.events / 1e6:g}M)")
    finally:
        b.close()
        print(f"logs in {work}")


if __name__ == "__main__":
    main()
