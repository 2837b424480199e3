#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang (ASan+UBSan) and runs each for SECONDS:
#   bash tests/fuzz/run.sh SECONDS [OUTDIR]
# CI runs it for 60 s per harness (CTest fuzz.smoke, ASan build); by hand, run it for
# hours: bash tests/fuzz/run.sh 3600. Fails on any crash, sanitizer report, leak, timeout
# (-timeout=10 s per input) or memory blow-up (-rss_limit_mb=2048); the input that did it
# is kept in OUTDIR/artifacts and the run's log in OUTDIR/logs.
#
# Environment: KPI_FUZZ_TARGETS ("event config"), KPI_FUZZ_SEED (libFuzzer -seed, for a
# repeatable run), CLANG (the compiler). To grow the stored corpus after a long run:
#   OUTDIR/fuzz_event -merge=1 tests/fuzz/corpus/event OUTDIR/work/event/corpus
# and keep the result small (it is in git).
#
# It builds outside CMake because CI builds kpid with gcc and libFuzzer needs clang; it
# compiles only the daemon sources the two parsers need, so it needs yajl and (for
# metrics_parse_listen) libmicrohttpd, not Kafka or Redis.
set -euo pipefail

secs=${1:?usage: run.sh SECONDS [OUTDIR]}
# (0 would mean "forever" to libFuzzer)
case $secs in '' | *[!0-9]* | 0*) echo "run.sh: SECONDS must be a whole number > 0" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
out=${2:-}
tmp_out=""
if [ -z "$out" ]; then
    out=$(mktemp -d /tmp/kpid-fuzz.XXXXXX)
    tmp_out=$out
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
targets=${KPI_FUZZ_TARGETS:-event config}

cc=${CLANG:-$(command -v clang || command -v clang-14 || true)}
if [ -z "$cc" ]; then
    echo "run.sh: clang not found; install clang libclang-rt-dev llvm (tools/deps.sh)" >&2
    exit 2
fi

# The daemon sources the harnesses link; a new dependency of event.c or config*.c shows
# up here as an undefined symbol at link time.
daemon_sources="event.c config.c config_goals.c config_calendar.c config_alerts.c
  config_secrets.c json.c period.c log.c ratelimit.c agg.c pacing.c metrics_http.c"

cflags=(-g -O1 -fno-omit-frame-pointer -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
    "-DKPID_VERSION=\"fuzz\"" -Wall -Wextra -Wno-unused-parameter -I"$src/daemon"
    -fno-sanitize-recover=undefined)
read -r -a pkg_cflags <<<"$(pkg-config --cflags yajl libmicrohttpd)"
read -r -a pkg_libs <<<"$(pkg-config --libs yajl libmicrohttpd)"

echo "== fuzz: building with $cc into $out"
rm -rf "$out/obj" "$out/work" "$out/logs" "$out/artifacts"
mkdir -p "$out/obj" "$out/work" "$out/logs" "$out/artifacts"
objs=()
for s in $daemon_sources; do
    o="$out/obj/${s%.c}.o"
    "$cc" "${cflags[@]}" "${pkg_cflags[@]}" -fsanitize=fuzzer-no-link,address,undefined \
        -c "$src/daemon/$s" -o "$o"
    objs+=("$o")
done
for t in $targets; do
    "$cc" "${cflags[@]}" "${pkg_cflags[@]}" -fsanitize=fuzzer,address,undefined \
        -o "$out/fuzz_$t" "$here/fuzz_$t.c" "${objs[@]}" "${pkg_libs[@]}" -lm -lpthread
done

# Inputs too big to keep in git (and bigger than -max_len): run once each, whole.
py=/usr/bin/python3
[ -x "$py" ] || py=python3
"$py" - "$out/work" <<'EOF'
import os, sys
work = sys.argv[1]
MiB = 1 << 20
head = b'"event_id":"e1","manager_id":"ivanov","ts":1794809520000'
call = b'{' + head + b',"type":"call","direction":"outbound","status":"connected"'
deal = b'{' + head + b',"type":"deal_stage","deal_id":"D-1","stage":"won"'

def fill_to(prefix, suffix, total, byte=b"a"):
    return prefix + byte * (total - len(prefix) - len(suffix)) + suffix

ev = {
    # max_message_bytes is 1 MiB: exactly at the limit is parsed (and valid), one over is not
    "string-1mib-at-limit": fill_to(call + b',"note":"', b'"}', MiB),
    "string-1mib-over-limit": fill_to(call + b',"note":"', b'"}', MiB + 1),
    "event-id-1mib": fill_to(b'{"event_id":"', b'","type":"call"}', MiB),
    "counterpart-1mib": fill_to(call + b',"counterpart":"', b'@ourcompany.ru"}', MiB),
    "source-nul-escapes-1mib": deal + b',"source":"' + b"\\u0000" * ((MiB - 200) // 6) + b'"}',
    "source-escapes-1mib": deal + b',"source":"' + b"\\u00e9" * ((MiB - 200) // 6) + b'"}',
    "nul-1mib": b"\0" * MiB,
    "invalid-utf8-1mib": fill_to(call + b',"note":"', b'"}', MiB, b"\xff"),
    "amount-1mib-digits": fill_to(deal + b',"amount":', b'}', MiB, b"9"),
    "amount-1mib-fraction": fill_to(deal + b',"amount":0.', b'1}', MiB, b"0"),
    "nest-10k-arrays": call + b',"x":' + b"[" * 10000 + b"]" * 10000 + b"}",
    "nest-10k-objects": call + b',"x":' + b'{"a":' * 10000 + b"1" + b"}" * 10000 + b"}",
    "nest-10k-unclosed": call + b',"x":' + b"[" * 10000,
    "nest-10k-top": b"[" * 10000 + b"]" * 10000,
    "nest-500k-arrays": call + b',"x":' + b"[" * 500000 + b"]" * 500000 + b"}",
    "nest-1mib-unclosed": fill_to(call + b',"x":', b"", MiB, b"["),
    "dup-keys-50k": call + b',"status":"busy"' * 50000 + b"}",
    "unknown-keys-60k": call + b"".join(b',"k%d":%d' % (i, i) for i in range(60000)) + b"}",
    "whitespace-1mib": fill_to(b"", call + b"}", MiB, b" "),
}
cf_head = b'{"kafka":{"brokers":"127.0.0.1:9092","topics":["kpi.events"]}'
cf = {
    "nest-10k": cf_head + b',"x":' + b"[" * 10000 + b"]" * 10000 + b"}",
    "nest-10k-objects": cf_head + b',"teams":' + b'{"a":' * 10000 + b"{}" + b"}" * 10000 + b"}",
    "brokers-1mib": fill_to(b'{"kafka":{"brokers":"', b'","topics":["t"]}}', MiB),
    "port-1mib-digits": fill_to(cf_head + b',"redis":{"port":', b"}}", MiB, b"9"),
    "comment-1mib": fill_to(cf_head + b"/*", b"*/}", MiB),
    "managers-20k": cf_head + b',"managers":{'
    + b",".join(b'"m%d":{"team":"t%d"}' % (i, i % 50) for i in range(20000))
    + b'},"teams":{' + b",".join(b'"t%d":{}' % i for i in range(50)) + b"}}",
    "topics-50k": b'{"kafka":{"brokers":"b","topics":['
    + b",".join(b'"t%d"' % i for i in range(50000)) + b"]}}",
    "holidays-20k": cf_head + b',"calendar":{"holidays":['
    + b",".join(b'"2026-01-01"' for _ in range(20000)) + b"]}}",
    "invalid-utf8-1mib": fill_to(cf_head + b',"time_zone":"', b'"}', MiB, b"\xc3"),
}
for name, files in (("event", ev), ("config", cf)):
    d = os.path.join(work, name, "big")
    os.makedirs(d, exist_ok=True)
    for k, v in files.items():
        with open(os.path.join(d, k), "wb") as f:
            f.write(v)
EOF

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
for sym in "$(command -v llvm-symbolizer || true)" /usr/lib/llvm-14/bin/llvm-symbolizer; do
    if [ -n "$sym" ] && [ -x "$sym" ]; then
        export ASAN_SYMBOLIZER_PATH=$sym
        break
    fi
done

status=0
for t in $targets; do
    case $t in
    event) max_len=16384 ;;
    *) max_len=32768 ;;
    esac
    w=$out/work/$t
    mkdir -p "$w/corpus"
    cp "$here/corpus/$t"/* "$w/corpus/"
    opts=(-rss_limit_mb=2048 -timeout=10 -artifact_prefix="$out/artifacts/$t-"
        -print_final_stats=1)
    [ -n "${KPI_FUZZ_SEED:-}" ] && opts+=(-seed="$KPI_FUZZ_SEED")
    log=$out/logs/$t.log
    big=("$w/big"/*)
    seeds=("$w/corpus"/*)
    echo "== fuzz $t: ${#big[@]} big inputs, then ${secs}s on ${#seeds[@]} seeds"
    if ! "$out/fuzz_$t" "${opts[@]}" "${big[@]}" >"$out/logs/$t-big.log" 2>&1; then
        echo "FAIL fuzz $t on a big input; log: $out/logs/$t-big.log"
        grep "^Running: " "$out/logs/$t-big.log" | tail -1
        grep -m1 -A40 "==ERROR\|runtime error\|ALARM\|out-of-memory" "$out/logs/$t-big.log" ||
            tail -40 "$out/logs/$t-big.log"
        status=1
        continue
    fi
    if "$out/fuzz_$t" "${opts[@]}" -max_total_time="$secs" -max_len=$max_len \
        -dict="$here/$t.dict" "$w/corpus" >"$log" 2>&1; then
        grep -E "^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb" "$log" |
            sed "s/^/  /"
    else
        echo "FAIL fuzz $t; log: $log; input kept in $out/artifacts:"
        ls -l "$out/artifacts/$t-"* 2>/dev/null || true
        grep -m1 -A60 "==ERROR\|runtime error\|ALARM\|out-of-memory\|Test unit written" "$log" || tail -60 "$log"
        status=1
    fi
done
if [ $status -eq 0 ] && [ -n "$tmp_out" ]; then
    rm -rf "$tmp_out"
fi
exit $status
