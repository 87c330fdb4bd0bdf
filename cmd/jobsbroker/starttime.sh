#!/usr/bin/env bash
# starttime.sh measures how long jobsbroker takes from exec to answering an
# MQTT CONNECT with a CONNACK, its store in memory and a preload of JOBS
# jobs (one thing each): the start of a test broker in CI. It prints each
# start in milliseconds, then the median and the machine's load.
#
# Usage: bash cmd/jobsbroker/starttime.sh [STARTS [JOBS]]   (default 20 100)
#
# The client is bash itself (/dev/tcp), so no process start is counted:
# it connects as soon as the port takes connections (the broker binds it
# before it loads the preload), sends CONNECT at once and stops the clock
# when the 4 bytes of the CONNACK are read.
set -euo pipefail
starts=${1:-20}
jobs=${2:-100}
cd "$(dirname "$0")/../.."
dir=$(mktemp -d)
pid=""
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

go build -o "$dir/jobsbroker" ./cmd/jobsbroker
if [ "$jobs" -eq 0 ]; then
  echo '{}' >"$dir/preload.yaml"
else {
  echo "things:"
  for i in $(seq "$jobs"); do echo "  - thingName: dev-$i"; done
  echo "jobs:"
  for i in $(seq "$jobs"); do
    printf '  - jobId: job-%d\n    targets: [arn:aws:iot:us-east-1:123456789012:thing/dev-%d]\n    document: {operation: update}\n' "$i" "$i"
  done
} >"$dir/preload.yaml"
fi

# free_port prints a port nothing on 127.0.0.1 listens on, below the
# kernel's ephemeral range: a port in it may be taken by a connection's
# own end, and a connection to it may even connect to itself.
ephemeral_low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
free_port() {
  local port
  while :; do
    port=$((10000 + RANDOM % (ephemeral_low - 10000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}

times=()
for i in $(seq "$starts"); do
  port=$(free_port)
  t0=$EPOCHREALTIME
  "$dir/jobsbroker" -data-dir :memory: -preload "$dir/preload.yaml" -mqtt-addr "127.0.0.1:$port" \
    -api-addr 127.0.0.1:0 -jobs-addr 127.0.0.1:0 -log-level warn >"$dir/log" 2>&1 &
  pid=$!
  until { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$dir/log" >&2; exit 1; }
  done
  # CONNECT, MQTT 3.1.1, clean session, keep-alive 60 s, client id "time".
  printf '\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04time' >&3
  ack=$(head -c 4 <&3 | od -An -tx1 | tr -d ' \n')
  t1=$EPOCHREALTIME
  exec 3>&-
  if [ "$ack" != "20020000" ]; then
    echo "start $i: no CONNACK (got '$ack')" >&2
    cat "$dir/log" >&2
    exit 1
  fi
  kill -INT "$pid"
  wait "$pid" || true
  pid=""
  ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
  times+=("$ms")
  echo "start $i: ${ms} ms"
done
printf '%s\n' "${times[@]}" | sort -n | awk -v n="$starts" -v jobs="$jobs" '
  { t[NR] = $1 }
  END {
    median = (n % 2) ? t[(n + 1) / 2] : (t[n / 2] + t[n / 2 + 1]) / 2
    printf "median of %d starts with %d preloaded jobs: %.1f ms (min %.1f, max %.1f)\n", n, jobs, median, t[1], t[n]
  }'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
