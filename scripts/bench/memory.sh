#!/usr/bin/env bash
# Memory and CPU of the gate on huge answers, and the RSS of `serve`, against fake-prometheus.py.
# Usage: scripts/bench/memory.sh [--huge] [BINARY]   (default target/release/upgrade-gate; build it
# first with `cargo build --release`). `--huge` runs only section 1, the judge time of a huge
# answer. Needs python3 and GNU time (/usr/bin/time); loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
huge_only=false
if [[ ${1:-} == --huge ]]; then huge_only=true; shift; fi
bin=${1:-target/release/upgrade-gate}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fake() { # PORT SERIES [--burst B D]
  python3 scripts/bench/fake-prometheus.py "$@" & pids+=($!)
  until curl -s -o /dev/null "http://127.0.0.1:$1/api/v1/query_range?query=up&start=0&end=0&step=1"; do sleep 0.2; done
}
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# --- 1. One signal answered by 50,000 series x 61 steps (`check`), against a bare fetch.
port=$(free_port)
fake "$port" 50000
at=1800000000
cat > "$work/huge.yaml" <<YAML
prometheus: {url: "http://127.0.0.1:$port", timeout: 60s}
evaluation: {interval: 30s, max_series: 60000}
phases: [{name: p, stable_for: 30m}]
signals: [{name: huge, query: huge, warn: "> 0.9", fail: "> 1"}]
YAML
form="query=huge&start=$((at - 1800))&end=$at&step=30"
curl -s -o /dev/null -d "$form" "http://127.0.0.1:$port/api/v1/query_range"   # warms the fake's cache
bytes=$(curl -s -d "$form" "http://127.0.0.1:$port/api/v1/query_range" | wc -c)
fetch=$(for _ in 1 2 3; do curl -s -o /dev/null -w '%{time_total}\n' -d "$form" "http://127.0.0.1:$port/api/v1/query_range"; done | sort -n | sed -n 2p)
echo "answer: $((bytes / 1000000)) MB of JSON; bare fetch (curl, median of 3): ${fetch}s"
for _ in 1 2 3; do
  /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$bin" check --config "$work/huge.yaml" --at 2027-01-15T08:00:00Z --output json >/dev/null 2>&1 || true
  tail -1 "$work/time"   # GNU time puts "Command exited with non-zero status" first on no-go
done | sort -n | sed -n 2p | awk -v f="$fetch" '{cpu=$2+$3; printf "check: %.2fs wall, %.2fs CPU (%.1fx the bare fetch), peak RSS %d MB\n", $1, cpu, cpu/f, $4/1024}'
sed -i 's/, max_series: 60000//' "$work/huge.yaml"
"$bin" check --config "$work/huge.yaml" --at 2027-01-15T08:00:00Z --output json 2>/dev/null | grep -o '"error": "[^"]*"' | head -1 || true
/usr/bin/time -f '%M' -o "$work/time" "$bin" check --config "$work/huge.yaml" --at 2027-01-15T08:00:00Z >/dev/null 2>&1 || echo "default max_series: exit $?, peak RSS $(( $(tail -1 "$work/time") / 1024 )) MB"
kill "${pids[-1]}"
$huge_only && exit 0

# --- 2. serve, the default pack (28 signals), 5 series each, default settings: steady-state RSS.
port=$(free_port); fake "$port" 5; listen=$(free_port)
UPGRADE_GATE__PROMETHEUS__URL="http://127.0.0.1:$port" UPGRADE_GATE__SERVER__LISTEN="127.0.0.1:$listen" \
  "$bin" serve >"$work/default.log" 2>&1 & gate=$!; pids+=($gate)
until curl -sf -o /dev/null "http://127.0.0.1:$listen/readyz"; do sleep 0.5; done
sleep 65
echo "serve, default pack, after $(grep -c 'evaluation finished' "$work/default.log") evaluations: RSS $(( $(rss_kb $gate) / 1024 )) MB"
kill "$gate"; kill "${pids[-2]}"

# --- 3. serve, 100 signals x 1,000 series (15 s interval, 15m windows): steady-state RSS.
port=$(free_port); fake "$port" 1000; listen=$(free_port)
{
  echo "prometheus: {url: \"http://127.0.0.1:$port\", timeout: 30s}"
  echo "evaluation: {interval: 15s}"
  echo "server: {listen: \"127.0.0.1:$listen\"}"
  echo "phases: [{name: p, stable_for: 10m}]"
  echo "signals:"
  for i in $(seq 1 100); do echo "  - {name: s$i, query: m$i, warn: \"> 0.9\", fail: \"> 1\", for: 5m}"; done
} > "$work/many.yaml"
"$bin" serve --config "$work/many.yaml" >"$work/many.log" 2>&1 & gate=$!; pids+=($gate)
until curl -sf -o /dev/null "http://127.0.0.1:$listen/readyz"; do sleep 0.5; done
sleep 50
echo "serve, 100 signals x 1,000 series, after $(grep -c 'evaluation finished' "$work/many.log") evaluations: RSS $(( $(rss_kb $gate) / 1024 )) MB"
kill "$gate"; kill "${pids[-2]}"

# --- 4. serve, a burst: five signals answered by 60,000 series for 20 s, then by 10 again.
port=$(free_port); fake "$port" 60000 --burst 25 20; listen=$(free_port)
{
  echo "prometheus: {url: \"http://127.0.0.1:$port\", timeout: 30s}"
  echo "evaluation: {interval: 2s}"
  echo "server: {listen: \"127.0.0.1:$listen\"}"
  echo "phases: [{name: p, stable_for: 10m}]"
  echo "signals:"
  for i in 1 2 3 4 5; do echo "  - {name: b$i, query: b$i, fail: \"> 1\"}"; done
} > "$work/burst.yaml"
"$bin" serve --config "$work/burst.yaml" >"$work/burst.log" 2>&1 & gate=$!; pids+=($gate)
until curl -sf -o /dev/null "http://127.0.0.1:$listen/readyz"; do sleep 0.5; done
sleep 15; before=$(rss_kb $gate)
peak=0; for _ in $(seq 1 40); do r=$(rss_kb $gate); ((r > peak)) && peak=$r; sleep 1; done
sleep 30; after=$(rss_kb $gate)
echo "serve, burst of 5 x 60,000 series: RSS before $((before / 1024)) MB, during $((peak / 1024)) MB, 30 s after $((after / 1024)) MB ($(python3 -c "print(round($after / $before, 2))")x before)"
grep -o 'more than max_series[^"]*' "$work/burst.log" | head -1 || true
