#!/usr/bin/env bash
# Offline checks of deploy/ that need promtool (Debian: apt-get install
# prometheus, which ships /usr/bin/promtool), and, where installed,
# docker-compose, kubectl, haproxy and systemd-analyze. The Go side (Kubernetes
# manifests, Dockerfile, compose and StatefulSet command lines run on the
# real binary, README commands, dashboard and alert metric names against a
# real broker) is `go test ./deploy/`.
#
#   bash deploy/validate.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null; then
  echo "validate.sh: promtool not found; install it with: apt-get install prometheus" >&2
  exit 1
fi
promtool --version 2>&1 | head -n 1

step() { printf '==> %s\n' "$*"; "$@"; }

# The alerting rules parse and their PromQL is valid.
step promtool check rules deploy/prometheus/alerts.yml
# Each alert fires on a crafted failing series and stays quiet on healthy ones.
step promtool test rules deploy/prometheus/alerts_test.yml
# The compose Prometheus configuration, with the rule file it loads
# (rule_files resolve relative to the configuration file).
step promtool check config deploy/prometheus/prometheus.yml
# The compose files against the Compose schema, where a compose client is
# installed (Debian: docker-compose; it needs no Docker engine for this).
if command -v docker-compose >/dev/null; then
  step docker-compose -f deploy/docker-compose.yml config -q
  step docker-compose -f deploy/docker-compose.cluster.yml config -q
else
  echo "==> docker-compose not installed: deploy/docker-compose*.yml not checked against the Compose schema"
fi
# The kustomizations render (offline; kubectl ships kustomize).
if command -v kubectl >/dev/null; then
  for k in deploy/kubernetes deploy/kubernetes/cluster; do
    printf '==> %s\n' "kubectl kustomize $k"
    kubectl kustomize "$k" >/dev/null
  done
else
  echo "==> kubectl not installed: deploy/kubernetes and deploy/kubernetes/cluster not rendered with kustomize"
fi
# The compose cluster's HAProxy configuration (Debian: apt-get install
# haproxy). Its servers are compose service names, which resolve only
# inside compose: HAProxy warns that it cannot resolve them (init-addr
# none lets it start anyway); any other warning or alert fails.
if command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ]; then
  haproxy_bin=$(command -v haproxy || echo /usr/sbin/haproxy)
  printf '==> %s\n' "haproxy -c -f deploy/haproxy/haproxy.cfg"
  if ! out=$("$haproxy_bin" -c -f deploy/haproxy/haproxy.cfg 2>&1); then
    printf '%s\n' "$out" >&2
    exit 1
  fi
  if printf '%s\n' "$out" | grep -E '\[(WARNING|ALERT)\]' | grep -v "could not resolve address 'jobsbroker-[0-9]*'" >&2; then
    echo "validate.sh: haproxy -c warns about deploy/haproxy/haproxy.cfg (above)" >&2
    exit 1
  fi
else
  echo "==> haproxy not installed: deploy/haproxy/haproxy.cfg not checked"
fi
# The systemd unit: systemd-analyze verify warns (and still exits 0) about
# unknown or misplaced keys, so any output fails. It also wants ExecStart's
# binary to exist: verify a copy that runs /bin/true instead.
if command -v systemd-analyze >/dev/null; then
  unit_dir=$(mktemp -d)
  trap 'rm -rf "$unit_dir"' EXIT
  sed 's#^ExecStart=/usr/local/bin/jobsbroker #ExecStart=/bin/true #' deploy/jobsbroker.service >"$unit_dir/jobsbroker.service"
  printf '==> %s\n' "systemd-analyze verify deploy/jobsbroker.service"
  if ! out=$(systemd-analyze verify "$unit_dir/jobsbroker.service" 2>&1) || [ -n "$out" ]; then
    printf '%s\n' "$out" >&2
    exit 1
  fi
else
  echo "==> systemd-analyze not installed: deploy/jobsbroker.service not verified"
fi
# The shell scripts parse.
for f in deploy/*.sh; do
  step bash -n "$f"
done
echo "deploy/validate.sh: ok"
