#!/usr/bin/env bash
# The demo: a local Prometheus filled with synthetic upgrade metrics (`upgrade-gate simulate`),
# and upgrade-gate serving the default pack against it. Ctrl-C stops both.
#
#   DEMO_SCENARIO=healthy|istio-5xx-spike   (default healthy)
#   DEMO_PROMETHEUS_PORT=19090              (loopback)
#   DEMO_LISTEN=127.0.0.1:8080              (upgrade-gate's address)
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/ensure-packages.sh prometheus

scenario=${DEMO_SCENARIO:-healthy}
prom_port=${DEMO_PROMETHEUS_PORT:-19090}
listen=${DEMO_LISTEN:-127.0.0.1:8080}

cargo build --release --locked --quiet
gate=target/release/upgrade-gate
work=$(mktemp -d)
prom_pid=""
cleanup() {
  [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo "writing synthetic metrics ($scenario, now-2h .. now+4h) ..." >&2
"$gate" simulate --scenario "$scenario" --openmetrics "$work/demo.om" --from now-2h --to now+4h --step 30s
promtool tsdb create-blocks-from openmetrics "$work/demo.om" "$work/tsdb" >/dev/null
printf 'global: {scrape_interval: 1m}\n' >"$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --storage.tsdb.retention.time=100y --web.listen-address="127.0.0.1:$prom_port" \
  --log.level=warn 2>"$work/prometheus.log" &
prom_pid=$!

ready() { # HTTP GET on loopback without curl: 0 when the answer is 200
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET %s HTTP/1.0\r\n\r\n' "$2" >&3
  head -n1 <&3 | grep -q ' 200'
  local ok=$?
  exec 3<&-
  return $ok
}
for _ in $(seq 1 300); do
  ready "$prom_port" /-/ready 2>/dev/null && break
  kill -0 "$prom_pid" 2>/dev/null || { cat "$work/prometheus.log" >&2; exit 1; }
  sleep 0.1
done

cat >&2 <<MSG

Prometheus: http://127.0.0.1:$prom_port   upgrade-gate: http://$listen
Try, in another terminal:
  curl -s http://$listen/gate/istio        # 200 go / 503 no-go, with reasons
  curl -s http://$listen/gate              # every signal
  curl -s http://$listen/metrics | grep upgrade_gate_decision
  $gate check --phase istio                # (with UPGRADE_GATE__PROMETHEUS__URL=http://127.0.0.1:$prom_port)
Then stop, and run again with DEMO_SCENARIO=istio-5xx-spike to see a no-go.

MSG
UPGRADE_GATE__PROMETHEUS__URL="http://127.0.0.1:$prom_port" UPGRADE_GATE__SERVER__LISTEN="$listen" \
  "$gate" serve
