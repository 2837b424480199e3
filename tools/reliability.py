#!/usr/bin/python3
"""Totals of what the test suite did to kpid, from the records the tests leave in a
build directory (tools/test.sh prints them after the suite):

  /usr/bin/python3 tools/reliability.py BUILD_DIR [BUILD_DIR ...]

Sources:
  BUILD/reliability/*.json  one per pytest process (kpitest.Tally): faults injected by
                            kind (kill -9, SIGTERM, SIGSTOP, broker commands, Redis
                            restarts, failovers, ...), and the runs whose final Redis
                            contents were compared with a clean run and found equal,
                            with their message counts (malformed ones included)
  BUILD/fuzz/logs/*.log     libFuzzer's final stats (fuzz.smoke, sanitizer build only)

A record is written only by a test process that ran to its end; a comparison is counted
only after it passed. So "lost 0, doubled 0" below is what the passing comparisons prove:
every compared run holds exactly the clean run's counters, offsets and dedup set."""

import glob
import json
import os
import re
import sys


def load_records(build):
    recs = []
    for path in sorted(glob.glob(os.path.join(build, "reliability", "*.json"))):
        with open(path) as f:
            recs.append(json.load(f))
    return recs


def fuzz_units(build):
    """{target: inputs executed} from libFuzzer's -print_final_stats output."""
    out = {}
    for path in glob.glob(os.path.join(build, "fuzz", "logs", "*.log")):
        target = os.path.basename(path)[:-4]
        with open(path, errors="replace") as f:
            text = f.read()
        m = re.search(r"stat::number_of_executed_units:\s*(\d+)", text)
        if m:
            out[target] = out.get(target, 0) + int(m.group(1))
    return out


def is_kill(kind):
    return kind.startswith("kill -9")


def main(builds):
    total_faults, per_test = {}, {}
    runs = events = malformed = 0
    fuzz = {}
    for build in builds:
        for r in load_records(build):
            t = per_test.setdefault(r["test"], {"faults": 0, "kills": 0, "runs": 0, "events": 0,
                                                "malformed": 0})
            for kind, n in r["faults"].items():
                total_faults[kind] = total_faults.get(kind, 0) + n
                t["faults"] += n
                t["kills"] += n if is_kill(kind) else 0
            t["runs"] += r["runs_compared"]
            t["events"] += r["messages_compared"]
            t["malformed"] += r["malformed_compared"]
            runs += r["runs_compared"]
            events += r["messages_compared"]
            malformed += r["malformed_compared"]
        for target, n in fuzz_units(build).items():
            fuzz[target] = fuzz.get(target, 0) + n
    if not per_test and not fuzz:
        print("reliability: no records under %s (run the suite first)" % ", ".join(builds))
        return 1
    print("== reliability totals (%s)" % ", ".join(builds))
    print("%-34s %7s %6s %5s %10s %10s" % ("test file", "faults", "kills", "runs", "messages",
                                           "malformed"))
    for name in sorted(per_test):
        t = per_test[name]
        print("%-34s %7d %6d %5d %10d %10d" % (name, t["faults"], t["kills"], t["runs"],
                                               t["events"], t["malformed"]))
    print("faults injected by kind:")
    for kind in sorted(total_faults):
        print("  %-44s %6d" % (kind, total_faults[kind]))
    kills = sum(n for k, n in total_faults.items() if is_kill(k))
    fuzzed = sum(fuzz.values())
    print("faults injected: %d, of which kill -9: %d (all survived)" % (sum(total_faults.values()), kills))
    print("malformed inputs tried: %d in compared streams + %d fuzzer inputs (%s)" % (
        malformed, fuzzed, ", ".join("%s %d" % kv for kv in sorted(fuzz.items())) or "no fuzz logs"))
    print("runs compared with a clean run: %d, %d messages: events lost 0, doubled 0" % (runs, events))
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
