#!/usr/bin/env bash
# What a moving baseline costs Prometheus, two ways (BENCHMARKS.md, "Moving baselines"):
#   offset:   the signal's own query as a range query over the judged window moved back by the
#             offset and stretched back by the baseline window; the gate takes the sliding means.
#             (The same samples as PromQL's `offset`, without rewriting the query.)
#   subquery: avg_over_time((QUERY)[WINDOW:STEP] offset OFFSET) as a range query over the judged
#             window; Prometheus takes the means.
# Both over 32 hours of the simulator's healthy data in a local Prometheus on loopback; each query
# is asked with stats=all and its totalQueryableSamples and wall time are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-packages.sh prometheus curl

port=${BENCH_PROMETHEUS_PORT:-19190}
step=30
window=3600
offset=86400
query='histogram_quantile(0.99, sum by (le, scope) (rate(apiserver_request_duration_seconds_bucket{verb="LIST"}[5m]))) >= 0'

cargo build --quiet --locked
gate=target/debug/upgrade-gate
work=$(mktemp -d)
trap 'kill "$prom" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
end=$(( $(date -u +%s) / step * step ))
at() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
"$gate" simulate --scenario healthy --openmetrics "$work/data.om" \
  --from "$(at $((end - offset - 8 * 3600)))" --to "$(at "$end")" --step 60s
promtool tsdb create-blocks-from openmetrics "$work/data.om" "$work/tsdb" >/dev/null
printf 'global: {scrape_interval: 1m}\n' >"$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --storage.tsdb.retention.time=100y --web.listen-address="127.0.0.1:$port" \
  --log.level=error 2>"$work/prometheus.log" &
prom=$!
for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break
  sleep 0.1
done

ask() { # name, query, start, end: prints samples and milliseconds (best of 5)
  local best=999999 samples
  for _ in 1 2 3 4 5; do
    local t0 t1 body
    t0=$(date +%s%N)
    body=$(curl -fsS "http://127.0.0.1:$port/api/v1/query_range" --data-urlencode "query=$2" \
      -d "start=$3" -d "end=$4" -d "step=$step" -d stats=all)
    t1=$(date +%s%N)
    samples=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["stats"]["samples"]["totalQueryableSamples"])' <<<"$body")
    (( (t1 - t0) / 1000000 < best )) && best=$(( (t1 - t0) / 1000000 ))
  done
  printf '%-9s totalQueryableSamples %8d  %4d ms\n' "$1" "$samples" "$best"
}
for judged in $((25 * 60)) $((6 * 3600)); do   # one `serve` evaluation; a 6h `replay`
  echo "judged window $((judged / 60))m at ${step}s, baseline window $((window / 60))m, offset 1d:"
  ask offset "$query" $((end - offset - judged - window)) $((end - offset))
  ask subquery "avg_over_time(($query)[${window}s:${step}s] offset ${offset}s)" $((end - judged)) "$end"
done
