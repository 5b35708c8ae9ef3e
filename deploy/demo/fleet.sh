#!/usr/bin/env bash
# The fleet demo (DEMO_FLEET=1 deploy/demo/run.sh): one gate for three clusters upgraded in two
# waves, canary (c1, c2) then prod (c3). Each cluster is an `upgrade-gate simulate --listen`
# scraped by its own Prometheus agent (`prometheus --enable-feature=agent`, external label
# `cluster`), which remote-writes into one central Prometheus (`--web.enable-remote-write-receiver`),
# as clusters write into AMP, Mimir or Thanos. c2 plays the incident, c1 and c3 are healthy.
# upgrade-gate serves deploy/demo/fleet.yaml against the central Prometheus, and this script polls
# its /fleet and prints every change of a cluster's phase and of a wave's state: c2 turns no-go,
# which holds back wave canary and the start of prod; c1 and c3 stay go. Ctrl-C stops everything.
#
#   DEMO_SCENARIO=istio-5xx-spike    c2's scenario (as for run.sh); c1 and c3 play `healthy`
#   DEMO_DURATION=20m                the scenarios' window: trouble from 10% to 95% of it
#   DEMO_PROMETHEUS_PORT=19090       the central Prometheus (loopback)
#   DEMO_PORT_BASE=19100             simulators on BASE+1..3, agents on BASE+11..13 (loopback)
#   DEMO_LISTEN=127.0.0.1:8080       upgrade-gate's address
#   DEMO_GATE_BIN=                   an upgrade-gate binary to use instead of a release build
#
# As in the single-cluster demo, the hour before the start is backfilled (each cluster's own
# history, with its `cluster` label, into the central TSDB), so every phase starts out go and the
# phases turn go again 2m after a recovery (fleet.yaml's stable_for). prod may start once canary's
# clusters have been go for every phase for 5m (its `soak`): it is held back from the incident
# until 5m after c2 recovers.
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/demo/lib.sh
scripts/ensure-packages.sh prometheus
command -v python3 >/dev/null || { echo "the fleet demo reads /fleet with python3, which is missing" >&2; exit 1; }

scenario=${DEMO_SCENARIO:-istio-5xx-spike}
duration=${DEMO_DURATION:-20m}
prom_port=${DEMO_PROMETHEUS_PORT:-19090}
base=${DEMO_PORT_BASE:-19100}
listen=${DEMO_LISTEN:-127.0.0.1:8080}
clusters=(c1 c2 c3)
scenario_of() { if [ "$1" = c2 ]; then echo "$scenario"; else echo healthy; fi; }

if [ -n "${DEMO_GATE_BIN:-}" ]; then
  gate=$DEMO_GATE_BIN
else
  cargo build --release --locked --quiet
  gate=target/release/upgrade-gate
fi
work=$(mktemp -d)
pids=()
# Ctrl-C reaches every process at once: an agent gives up flushing after 2s rather than 1m.
cleanup() { # last started first: each agent flushes its remote write while the central one runs
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$(date -u +%s)
at() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

# Each cluster's hour of history, its series labelled with the cluster as its agent's
# external_labels will label the live ones, so that the scraped samples continue them.
for i in "${!clusters[@]}"; do
  c=${clusters[$i]}
  echo "backfilling an hour of $(scenario_of "$c") history for cluster $c ..." >&2
  "$gate" simulate --scenario "$(scenario_of "$c")" --openmetrics "$work/$c.om" \
    --from "$(at $((start - 3600)))" --to "$(at "$start")" --step 15s \
    --start "$(at "$start")" --duration "$duration"
  sed -E -e '/^#/b' \
    -e "s/^([a-zA-Z_:][a-zA-Z0-9_:]*)\\{/\\1{cluster=\"$c\",/" -e t \
    -e "s/^([a-zA-Z_:][a-zA-Z0-9_:]*) /\\1{cluster=\"$c\"} /" "$work/$c.om" |
    grep -v '^# EOF$' >"$work/$c.labelled.om"
  # The cluster's own scrapes gave it `up` all along: the gate's presence series, without which
  # it would rightly call the cluster unknown until the agent's first samples are old enough.
  { echo "# TYPE up gauge"
    for ((t = start - 3600; t <= start; t += 15)); do echo "up{cluster=\"$c\"} 1 $t"; done
    echo "# EOF"; } >>"$work/$c.labelled.om"
  promtool tsdb create-blocks-from openmetrics "$work/$c.labelled.om" "$work/tsdb" >/dev/null
done

cat >"$work/central.yml" <<YAML
global: {scrape_interval: 1m, evaluation_interval: 1m}
YAML
prometheus --config.file="$work/central.yml" --storage.tsdb.path="$work/tsdb" \
  --storage.tsdb.retention.time=100y --web.listen-address="127.0.0.1:$prom_port" \
  --web.enable-remote-write-receiver --log.level=warn 2>"$work/central.log" &
pids+=($!)
ready "$prom_port" "$!" "$work/central.log"

for i in "${!clusters[@]}"; do
  c=${clusters[$i]}
  sim_port=$((base + 1 + i))
  agent_port=$((base + 11 + i))
  "$gate" simulate --scenario "$(scenario_of "$c")" --listen "127.0.0.1:$sim_port" \
    --start "$(at "$start")" --duration "$duration" 2> >(sed -u "s/^/simulator $c: /" >&2) &
  pids+=($!)
  # The agent scrapes as run.sh's Prometheus does (lib.sh), adds the cluster and forwards all.
  { cat <<YAML
global:
  scrape_interval: 5s
  external_labels: {cluster: $c}
remote_write:
  - url: http://127.0.0.1:$prom_port/api/v1/write
    queue_config: {batch_send_deadline: 1s}
YAML
    scrape_simulator "$sim_port"; } >"$work/agent-$c.yml"
  prometheus --enable-feature=agent --config.file="$work/agent-$c.yml" \
    --storage.agent.path="$work/agent-$c" --web.listen-address="127.0.0.1:$agent_port" \
    --storage.remote.flush-deadline=2s --log.level=warn 2>"$work/agent-$c.log" &
  pids+=($!)
  ready "$agent_port" "$!" "$work/agent-$c.log"
done

UPGRADE_GATE__PROMETHEUS__URL="http://127.0.0.1:$prom_port" UPGRADE_GATE__SERVER__LISTEN="$listen" \
  UPGRADE_GATE__BASELINE__END="$(at "$start")" "$gate" serve --config deploy/demo/fleet.yaml 2>"$work/upgrade-gate.log" &
gate_pid=$!
pids+=("$gate_pid")

cat >&2 <<MSG

Three clusters from $(at "$start"): c1 and c3 healthy, c2 playing $scenario over $duration.
Waves: canary (c1, c2), then prod (c3) after a 5m soak. Every change of a cluster's phase and of
a wave's state is printed below, as minutes:seconds since the start.

  upgrade-gate   http://$listen/fleet   /gate/istio?cluster=c2   /gate/istio?wave=canary   /waves/prod
  central        http://127.0.0.1:$prom_port   e.g. sum by (cluster) (up)
  agents         http://127.0.0.1:$((base + 11))..$((base + 13))   simulators http://127.0.0.1:$((base + 1))..$((base + 3))/metrics
  logs           $work/*.log (removed on exit)

  curl -s http://$listen/waves/prod
  UPGRADE_GATE__PROMETHEUS__URL=http://127.0.0.1:$prom_port UPGRADE_GATE__BASELINE__END=$(at "$start") $gate check --config deploy/demo/fleet.yaml --cluster c2 --phase istio
  $gate wait --server http://$listen --start-wave prod

MSG

# Poll /fleet; print each cluster x phase decision and each wave's state when they change, with
# the first reason (from /gate/{phase}?cluster= for a cluster that is not go). In the background,
# so that a signal to this script runs the cleanup at once.
python3 - "http://$listen" "$start" "$gate_pid" "$work/upgrade-gate.log" <<'PY' &
import json, os, sys, time, urllib.error, urllib.request

base, start, gate_pid, log = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def get(path):
    try:
        with urllib.request.urlopen(base + path, timeout=5) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)
    except (OSError, ValueError):
        return None

last = {}
while True:
    try:
        os.kill(gate_pid, 0)
    except OSError:
        sys.stderr.write("upgrade-gate stopped:\n" + open(log).read())
        sys.exit(1)
    fleet = get("/fleet")
    if fleet and "clusters" in fleet:
        elapsed = int(time.time()) - start
        stamp = "%02d:%02d" % (elapsed // 60, elapsed % 60)
        for c in fleet["clusters"]:
            for p in c["phases"]:
                key = (c["cluster"], p["phase"])
                if last.get(key) == p["decision"]:
                    continue
                last[key] = p["decision"]
                reason = ""
                if p["decision"] != "go":
                    answer = get("/gate/%s?cluster=%s" % (p["phase"], c["cluster"])) or {}
                    reason = (answer.get("reasons") or [""])[0][:100]
                print("%s  cluster %s (%s)  %-13s %-7s score %5.1f  %s" % (
                    stamp, c["cluster"], c["wave"], p["phase"], p["decision"], p["score"], reason),
                    flush=True)
        for w in fleet["waves"]:
            blocking = ", ".join(b["cluster"] for b in w["blocking"])
            key = ("wave", w["wave"])
            state = (w["decision"], blocking, w["soak_left"] == "0s")
            if last.get(key) == state:
                continue
            last[key] = state
            why = (w["reasons"] or [""])[0][:100]
            print("%s  wave %-7s may start: %-7s %s" % (stamp, w["wave"], w["decision"], why),
                  flush=True)
    time.sleep(5)
PY
watcher=$!
pids+=("$watcher")
wait "$watcher"
