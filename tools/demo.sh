#!/usr/bin/env bash
# The demo: a local redis-server and dev Kafka broker on free loopback ports in a temp dir,
# a generated stream of sales activity for ~20 managers, kpid consuming it, and a live
# table of per-manager KPIs with the organisation's deal funnel this month, refreshed from
# Redis. Ctrl-C stops everything it started.
#
#   bash tools/demo.sh            paced: about 40 events/s, event time = now
#   bash tools/demo.sh --fast     a month of history as fast as it goes, then live
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/deps.sh
kpi_install_deps

fast=0
[ "${1:-}" = "--fast" ] && fast=1

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

work=$(mktemp -d /tmp/kpid-demo.XXXXXX)
pids=()
# Children run in their own sessions so Ctrl-C reaches only this script, which then stops
# them newest first and waits for each: kpid flushes while Redis and the broker still run.
cleanup() {
    trap - INT TERM EXIT
    printf '\nstopping demo...\n'
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[$i]}" 2>/dev/null || continue
        for _ in $(seq 300); do kill -0 "${pids[$i]}" 2>/dev/null || break; sleep 0.1; done
    done
    echo "logs kept in $work"
}
# Ctrl-C stops the children and then the script itself (cleanup alone would return to the
# refresh loop).
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

redis_port=$(free_port)
setsid redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save '' \
    --appendonly yes --logfile "$work/redis.log" &
pids+=($!)

setsid build/kpi-devbroker -t kpi.events:8 -t kpi.events.dlq:1 -t kpi.alerts:1 \
    -p "$work/bootstrap" >"$work/broker.out" 2>"$work/broker.log" </dev/null &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/bootstrap" ] && break; sleep 0.1; done
brokers=$(cat "$work/bootstrap")
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

sed -e "s/@BROKERS@/$brokers/" -e "s/@REDIS_PORT@/$redis_port/" config/demo.jsonc >"$work/kpid.jsonc"
build/kpid -c "$work/kpid.jsonc" --check-config

setsid build/kpid -c "$work/kpid.jsonc" 2>"$work/kpid.log" &
pids+=($!)

if [ $fast -eq 1 ]; then
    start=$(date -u -d '30 days ago' +%F)
    build/kpi-gen -b "$brokers" -t kpi.events -c "$work/kpid.jsonc" --seed 42 \
        --days 30 --start "$start" --dup-frac 0.01 --invalid-frac 0.01 --stats \
        >"$work/gen-history.out" 2>"$work/gen-history.log"
fi
setsid build/kpi-gen -b "$brokers" -t kpi.events -c "$work/kpid.jsonc" --seed 7 --live --rate 40 \
    --dup-frac 0.01 --invalid-frac 0.01 >"$work/gen.out" 2>"$work/gen.log" &
pids+=($!)

echo "redis 127.0.0.1:$redis_port, broker $brokers, logs in $work; waiting for kpid to join..."
sleep 4
# About 43 lines: the board (a line per manager), the organisation's funnel this month, the log.
while true; do
    out=$(build/kpictl -c "$work/kpid.jsonc" board 2>&1 || true)
    funnel=$(build/kpictl -c "$work/kpid.jsonc" funnel --scope org --period m 2>&1 || true)
    printf '\033[H\033[2J'
    echo "kpid demo — today's KPIs per manager (each in their team's time zone); Ctrl-C to stop"
    echo
    echo "$out"
    echo
    echo "$funnel"
    echo
    echo "kpid log:"
    tail -n 5 "$work/kpid.log" | cut -c1-150
    sleep 2
done
