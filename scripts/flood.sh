#!/usr/bin/env bash
# Flood figures for BENCHMARKS.md ("HTTP under a flood"); a benchmark, not a test. Starts a local
# Prometheus (no targets: every signal of the default pack is no_data, so each /gate answer carries
# all its reasons) and the release build of upgrade-gate under a 1,024 open-file limit (systemd's
# default soft limit), then measures, all on loopback:
#   1. the reference: wrk with 10 connections on /gate/istio;
#   2. the flood: wrk with 1,000 connections on /gate/istio, /healthz asked every 0.2 s meanwhile;
#   3. 1,100 connections that never send a byte, /healthz asked meanwhile, until the header
#      timeout has closed them;
# with the gate's resident memory (VmRSS, and its peak VmHWM) after each.
#
#   FLOOD_SECONDS=20   length of each wrk run
#   FLOOD_PORT=19180   upgrade-gate's port (loopback); Prometheus gets FLOOD_PORT+1
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-packages.sh prometheus curl wrk util-linux

seconds=${FLOOD_SECONDS:-20}
port=${FLOOD_PORT:-19180}
prom_port=$((port + 1))
listen="127.0.0.1:$port"
base="http://$listen"

cargo build --release --locked --quiet
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

echo "global: {scrape_interval: 1m}" >"$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn 2>"$work/prometheus.log" &
pids+=($!)
UPGRADE_GATE__PROMETHEUS__URL="http://127.0.0.1:$prom_port" UPGRADE_GATE__SERVER__LISTEN="$listen" \
  UPGRADE_GATE__EVALUATION__INTERVAL=5s \
  prlimit --nofile=1024:1024 target/release/upgrade-gate --log-format json serve 2>"$work/gate.log" &
gate_pid=$!
pids+=("$gate_pid")
for _ in $(seq 300); do
  curl -fso /dev/null "$base/readyz" && break
  sleep 0.1
done
curl -fso /dev/null "$base/readyz" || { cat "$work/gate.log" >&2; exit 1; }
grep '"HTTP connections capped"' "$work/gate.log" | head -1

memory() { awk '/^VmRSS|^VmHWM/ {printf "%s %d MiB  ", $1, $2 / 1024} END {print ""}' "/proc/$gate_pid/status"; }

# Asks /healthz every 0.2 s until $1 exists; prints how many answered, the median and the slowest.
probe() {
  local stop=$1 failed=0 t times=()
  while [ ! -e "$stop" ]; do
    if t=$(curl -fso /dev/null --max-time 5 -w '%{time_total}' "$base/healthz"); then
      times+=("$t")
    else
      failed=$((failed + 1))
    fi
    sleep 0.2
  done
  printf '%s\n' "${times[@]}" | sort -g | awk -v failed="$failed" '
    { t[NR] = $1 }
    END { printf "/healthz: %d answered, %d failed, median %.1f ms, slowest %.1f ms\n",
          NR, failed, 1000 * t[int((NR + 1) / 2)], 1000 * t[NR] }'
}

echo "--- idle gate:  $(memory)"
probe "$work/stop0" >"$work/probe0" &
sleep 3
touch "$work/stop0"
wait $!
echo "    reference $(cat "$work/probe0")"
echo "--- 1. reference: wrk -t2 -c10 -d${seconds}s $base/gate/istio"
wrk -t2 -c10 -d"${seconds}s" --latency "$base/gate/istio" | grep -E 'Requests/sec|Latency|99%|Socket errors|Non-2xx'
echo "    $(memory)"

echo "--- 2. flood: wrk -t2 -c1000 -d${seconds}s $base/gate/istio"
probe "$work/stop2" >"$work/probe2" &
wrk -t2 -c1000 -d"${seconds}s" --latency "$base/gate/istio" | grep -E 'Requests/sec|Latency|99%|Socket errors|Non-2xx'
touch "$work/stop2"
wait $!
cat "$work/probe2"
echo "    $(memory)"

echo "--- 3. 1,100 idle connections, never a byte (header_read_timeout 10s)"
probe "$work/stop3" >"$work/probe3" &
probe_pid=$!
python3 - "$port" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(1100)]
opened = time.monotonic()
open_count = lambda: sum(1 for s in idle if s.fileno() >= 0)
closed_at = {}
while len(closed_at) < len(idle) and time.monotonic() - opened < 30:
    for i, s in enumerate(idle):
        if i in closed_at:
            continue
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed_at[i] = time.monotonic() - opened
        except BlockingIOError:
            pass
        except OSError:
            closed_at[i] = time.monotonic() - opened
    time.sleep(0.1)
times = sorted(closed_at.values())
early = sum(1 for t in times if t < 1)
print(f"closed {len(times)} of {len(idle)}: {early} within 1 s (the cap making room), "
      f"the last after {times[-1]:.1f} s (the header timeout)")
PY
touch "$work/stop3"
wait "$probe_pid"
cat "$work/probe3"
echo "    $(memory)"
