#!/usr/bin/env bash
# The demo: a local redis-server and dev Kafka broker on free loopback ports in a temp dir,
# a generated sales floor of 18 managers in four teams on three continents, kpid consuming
# it with the targets and alert rules of config/demo.jsonc, and a screen refreshed from
# Redis: the event clock, the per-manager KPIs of the day, the organisation's funnel this
# month, the last alerts and kpid's log. Ctrl-C stops everything it started.
#
#   bash tools/demo.sh            the last three working days replayed in about 90 s, then live
#   bash tools/demo.sh --fast     a month of history as fast as it goes, then live
#
# Why a replay. Targets and alerts are about a working day: a manager is behind at 11:00,
# catches up by 15:00, goes quiet for an hour, closes the day short. A live stream dense
# enough to watch (any rate above a few events a minute) meets every target in minutes, and
# a stream as thin as a real floor shows nothing for hours, and only when the demo happens
# to run in someone's working hours. So config/demo.jsonc sets "alerts": {"clock": "event"}
# ("now" is the latest event time kpid applied) and the demo replays real-looking days:
#   1. up to the last three working days before today, from a Monday four weeks before
#      theirs, at full speed (a few seconds): deals old enough to be won for the funnel,
#      and the week so far, so weekly targets start from real figures whatever weekday
#      today is;
#   2. the last three working days (ending yesterday, so never in the future) paced at
#      65 events/s, about 30 s a simulated day: the event clock walks from Delhi's morning
#      to New York's evening, alerts fire, repeat, escalate to team leads and resolve on
#      screen, days close, and each morning brings the digest of what happened after hours;
#   3. live at 20 events/s stamped with the wall clock. The event clock jumps to now: the
#      week or day the replay ended in closes (resolved alerts with the final figures),
#      today starts at zero, so managers in working hours fall behind at that evaluation
#      (no touches today, silent since the last working day) and catch up one by one
#      within two minutes; the others get theirs as a digest when their working day
#      starts. 20 events/s is some 300 times a real floor (18 managers do about 0.06
#      events/s): every target is met within minutes and the board keeps moving, so live
#      shows the counters, and alerts again only when a day or week turns.
# --fast replays its month unpaced; kpid then evaluates about once per flush, so that month
# leaves few alerts and the screen shows mostly what live brings.
# kpictl follows the event clock as kpid does, so the board shows the replayed day (each
# team's, in its zone); only its "touch 24h" column, a rolling window kept by the wall
# clock, stays 0 until live events arrive.
# The same seed in every phase keeps the same managers ahead and behind; distinct id
# prefixes keep the phases' event ids from being taken for duplicates.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/deps.sh
kpi_install_deps

fast=0
[ "${1:-}" = "--fast" ] && fast=1
live_rate=20 replay_rate=65 seed=42

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

gen() {
    build/kpi-gen -b "$brokers" -t kpi.events -c "$work/kpid.jsonc" --seed "$seed" \
        --dup-frac 0.01 --invalid-frac 0.01 "$@"
}
days_between() { echo $(( ($(date -u -d "$2" +%s) - $(date -u -d "$1" +%s)) / 86400 )); }

today=$(date -u +%F)
replay_pid=
if [ $fast -eq 1 ]; then
    gen --id-prefix h$seed --days 30 --start "$(date -u -d "$today -30 days" +%F)" --stats \
        >"$work/gen-history.out" 2>"$work/gen-history.log"
else
    # The paced days: the last three working days before today (kpi-gen simulates Mon-Fri).
    paced=$today
    for ((n = 0; n < 3;)); do
        paced=$(date -u -d "$paced -1 day" +%F)
        [ "$(date -u -d "$paced" +%u)" -le 5 ] && n=$((n + 1))
    done
    # Unpaced before them: from the Monday four weeks before the first paced day's week.
    early=$(date -u -d "$paced -$(($(date -u -d "$paced" +%u) + 27)) days" +%F)
    gen --id-prefix h$seed --days "$(days_between "$early" "$paced")" --start "$early" --stats \
        >"$work/gen-history.out" 2>"$work/gen-history.log"
    setsid build/kpi-gen -b "$brokers" -t kpi.events -c "$work/kpid.jsonc" --seed "$seed" \
        --dup-frac 0.01 --invalid-frac 0.01 --id-prefix r$seed --rate $replay_rate \
        --days "$(days_between "$paced" "$today")" --start "$paced" --stats \
        >"$work/gen-replay.out" 2>"$work/gen-replay.log" </dev/null &
    replay_pid=$!
    pids+=($!)
fi
live_pid=
start_live() {
    setsid build/kpi-gen -b "$brokers" -t kpi.events -c "$work/kpid.jsonc" --seed "$seed" \
        --live --rate $live_rate --dup-frac 0.01 --invalid-frac 0.01 \
        >"$work/gen.out" 2>"$work/gen.log" </dev/null &
    live_pid=$!
    pids+=($!)
}
[ -z "$replay_pid" ] && start_live

# The event clock in UTC and in each team's zone: who is at work right now.
clock_line() {
    local ms s
    ms=$(redis-cli -p "$redis_port" HGET kpi:meta last_event_ts 2>/dev/null || true)
    [ -n "$ms" ] || { echo "event clock: no events yet"; return; }
    s=$((ms / 1000))
    printf 'event clock %s UTC   Moscow %s  Berlin %s  New York %s  Delhi %s' \
        "$(date -u -d "@$s" '+%a %F %H:%M')" "$(TZ=Europe/Moscow date -d "@$s" +%H:%M)" \
        "$(TZ=Europe/Berlin date -d "@$s" +%H:%M)" "$(TZ=America/New_York date -d "@$s" +%H:%M)" \
        "$(TZ=Asia/Kolkata date -d "@$s" +%H:%M)"
}

echo "redis 127.0.0.1:$redis_port, broker $brokers, logs in $work; waiting for kpid to join..."
sleep 4
width=$(tput cols 2>/dev/null || echo 160)
# About 46 lines: the clock, the board (a line per manager), the organisation's funnel
# this month in three lines, the last 8 alerts, the log.
while true; do
    if [ -n "$replay_pid" ] && [ -z "$live_pid" ] && ! kill -0 "$replay_pid" 2>/dev/null; then
        start_live
    fi
    if [ -z "$live_pid" ]; then
        phase="replaying the last three working days, ~30 s a day"
    else
        phase="live, $live_rate events/s stamped now"
    fi
    clock=$(clock_line)
    out=$(build/kpictl -c "$work/kpid.jsonc" board 2>&1 || true)
    funnel=$(build/kpictl -c "$work/kpid.jsonc" funnel --scope org --period m 2>&1 || true)
    alerts=$(build/kpictl -c "$work/kpid.jsonc" alerts -n 8 2>&1 || true)
    printf '\033[H\033[2J'
    echo "kpid demo — $phase; Ctrl-C to stop"
    echo "$clock"
    echo
    echo "$out"
    echo
    # Here-strings, not echo | head: with pipefail a head that exits first would end the demo.
    { head -n 1 <<<"$funnel"; tail -n 2 <<<"$funnel"; } | cut -c1-"$width"
    echo
    cut -c1-"$width" <<<"$alerts"
    echo
    echo "kpid log:"
    tail -n 3 "$work/kpid.log" | cut -c1-"$width"
    sleep 2
done
