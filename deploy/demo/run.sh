#!/usr/bin/env bash
# The demo: watch the gate flip. `upgrade-gate simulate --listen` plays a synthetic EKS upgrade
# whose trouble starts a couple of minutes in, a local Prometheus scrapes it every 5 s, and
# upgrade-gate serves the default pack against that Prometheus; this script prints every change
# of a phase's decision. Ctrl-C stops everything.
#
#   DEMO_SCENARIO=istio-5xx-spike    or karpenter-launch-failures, apiserver-latency,
#                                    apiserver-list-regression, al2023-migration, healthy
#   DEMO_DURATION=20m                the scenario's window: trouble from 10% to 95% of it
#   DEMO_PROMETHEUS_PORT=19090       (loopback)
#   DEMO_SIMULATOR_PORT=19091        (loopback)
#   DEMO_LISTEN=127.0.0.1:8080       (upgrade-gate's address)
#   DEMO_FLEET=1                     the fleet demo instead: three clusters in two waves through
#                                    Prometheus agents and a central Prometheus (deploy/demo/fleet.sh)
#
# Timing. The pack's signals need their `for` (istio_5xx_ratio 5m, apiserver latency 10m) before a
# phase turns no-go, and a phase needs its `stable_for` of health before it is go. So that the
# phases are go from the start, the hour before it is backfilled from the same scenario and window
# (`simulate --openmetrics --start`: the same functions of time as the live simulator, so the
# scraped samples continue the backfilled series); and so that a phase turns go again a couple of
# minutes after it recovers, upgrade-gate runs with deploy/demo/demo.yaml: the default pack and
# phases with a 2m stable_for and a 10 s evaluation interval.
#
# Baseline. The upgrade "starts" with the live simulator: as a pipeline would, the script pins
# UPGRADE_GATE__BASELINE__END to that moment, so the pack's relative thresholds compare each
# series with its mean over the backfilled hour before it. apiserver-list-regression shows what
# only that catches: LIST latency 4x its baseline, far below any absolute threshold.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${DEMO_FLEET:-0}" != 0 ]; then exec deploy/demo/fleet.sh; fi
. deploy/demo/lib.sh
scripts/ensure-packages.sh prometheus

scenario=${DEMO_SCENARIO:-istio-5xx-spike}
duration=${DEMO_DURATION:-20m}
prom_port=${DEMO_PROMETHEUS_PORT:-19090}
sim_port=${DEMO_SIMULATOR_PORT:-19091}
listen=${DEMO_LISTEN:-127.0.0.1:8080}
phases=(precheck karpenter istio addons control-plane nodes)

cargo build --release --locked --quiet
gate=target/release/upgrade-gate
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One start time for the history and the live simulator.
start=$(date -u +%s)
at() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
echo "backfilling an hour of $scenario history ..." >&2
"$gate" simulate --scenario "$scenario" --openmetrics "$work/history.om" \
  --from "$(at $((start - 3600)))" --to "$(at "$start")" --step 15s \
  --start "$(at "$start")" --duration "$duration"
promtool tsdb create-blocks-from openmetrics "$work/history.om" "$work/tsdb" >/dev/null

"$gate" simulate --scenario "$scenario" --listen "127.0.0.1:$sim_port" \
  --start "$(at "$start")" --duration "$duration" 2> >(sed -u 's/^/simulator: /' >&2) &
pids+=($!)

{ echo "global: {scrape_interval: 5s, evaluation_interval: 1m}"
  scrape_simulator "$sim_port"; } >"$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --storage.tsdb.retention.time=100y --web.listen-address="127.0.0.1:$prom_port" \
  --log.level=warn 2>"$work/prometheus.log" &
prom_pid=$!
pids+=("$prom_pid")

ready "$prom_port" "$prom_pid" "$work/prometheus.log"

UPGRADE_GATE__PROMETHEUS__URL="http://127.0.0.1:$prom_port" UPGRADE_GATE__SERVER__LISTEN="$listen" \
  UPGRADE_GATE__BASELINE__END="$(at "$start")" "$gate" serve --config deploy/demo/demo.yaml 2>"$work/upgrade-gate.log" &
gate_pid=$!
pids+=("$gate_pid")
gate_port=${listen##*:}

cat >&2 <<MSG

Scenario $scenario over $duration from $(at "$start"); the simulator's timeline is above.
Each phase turns no-go once a signal has failed for its \`for\`, and go again once it has been
healthy for 2m (deploy/demo/demo.yaml). Changes are printed below, as minutes:seconds since the start.

  upgrade-gate   http://$listen/gate/istio   (and /gate/<phase>, /gate, /signals, /metrics)
  report page    http://$listen/   (rebuilt once a minute; a past window: /report?from=...&to=...)
  Prometheus     http://127.0.0.1:$prom_port   e.g. istio_requests_total, kube_node_info
  simulator      http://127.0.0.1:$sim_port/metrics
  logs           $work/upgrade-gate.log, $work/prometheus.log (removed on exit)

  curl -s http://$listen/gate/istio
  UPGRADE_GATE__PROMETHEUS__URL=http://127.0.0.1:$prom_port UPGRADE_GATE__BASELINE__END=$(at "$start") $gate check --config deploy/demo/demo.yaml --phase istio

MSG

# Print each phase's decision whenever it changes, with the first reason of a no-go.
declare -A last
while true; do
  kill -0 "$gate_pid" 2>/dev/null || { echo "upgrade-gate stopped:" >&2; cat "$work/upgrade-gate.log" >&2; exit 1; }
  elapsed=$(($(date -u +%s) - start))
  stamp=$(printf '%02d:%02d' $((elapsed / 60)) $((elapsed % 60)))
  for phase in "${phases[@]}"; do
    body=$(get "$gate_port" "/gate/$phase" 2>/dev/null) || true
    decision=$(sed -n 's/.*"decision":"\([a-z_]*\)".*/\1/p' <<<"$body")
    [ -n "$decision" ] || continue
    # A verdict has a score; the answer before the first evaluation has an error instead.
    score=$(sed -n 's/.*"score":\([0-9.]*\).*/\1/p' <<<"$body")
    [ -n "$score" ] || continue
    if [ "${last[$phase]:-}" != "$decision" ]; then
      reason=""
      if [ "$decision" = no_go ]; then
        reason=$(sed -n 's/.*"reasons":\["\(\([^"\\]\|\\.\)*\)".*/\1/p' <<<"$body" | sed 's/\\"/"/g' | cut -c1-110)
      fi
      printf '%s  %-13s %-5s score %5.1f  %s\n' "$stamp" "$phase" "$decision" "$score" "$reason"
      last[$phase]=$decision
    fi
  done
  sleep 5
done
