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
