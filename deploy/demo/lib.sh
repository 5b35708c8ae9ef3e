# Shell helpers shared by the demos (run.sh, fleet.sh): sourced, not run.

get() { # HTTP GET on loopback without curl: prints the body, fails unless the status is 200
  local port=$1 path=$2 head body
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
  body=$(cat <&3)
  exec 3<&-
  head=${body%%$'\r'*}
  printf '%s' "${body#*$'\r\n\r\n'}"
  [[ $head == *" 200 "* ]]
}
ready() { # waits for a Prometheus' /-/ready, or shows its log
  local port=$1 pid=$2 log=$3
  for _ in $(seq 1 300); do
    get "$port" /-/ready >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  echo "Prometheus on port $port is not ready: $log" >&2
  cat "$log" >&2
  exit 1
}

# The scrape of a simulator on `port`, as YAML for a Prometheus' `scrape_configs`. honor_labels
# keeps the series' own job and instance (kubelet and apiserver builds are told apart by them); the
# relabelling removes the ones the scrape would add to the other series, so that the scraped series
# have the label sets of the backfilled ones and continue them.
scrape_simulator() {
  local port=$1
  cat <<YAML
scrape_configs:
  - job_name: simulate
    honor_labels: true
    static_configs: [{targets: ["127.0.0.1:$port"]}]
    metric_relabel_configs:
      - {source_labels: [job], regex: simulate, target_label: job, replacement: ""}
      - {source_labels: [instance], regex: "127\\\\.0\\\\.0\\\\.1:$port", target_label: instance, replacement: ""}
YAML
}
