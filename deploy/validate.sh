#!/usr/bin/env bash
# Offline checks of deploy/ that need promtool (Debian: apt-get install
# prometheus, which ships /usr/bin/promtool), and, where installed,
# docker-compose, kubectl and systemd-analyze. The Go side (Kubernetes
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
# The compose file against the Compose schema, where a compose client is
# installed (Debian: docker-compose; it needs no Docker engine for this).
if command -v docker-compose >/dev/null; then
  step docker-compose -f deploy/docker-compose.yml config -q
else
  echo "==> docker-compose not installed: deploy/docker-compose.yml not checked against the Compose schema"
fi
# The kustomization renders (offline; kubectl ships kustomize).
if command -v kubectl >/dev/null; then
  printf '==> %s\n' "kubectl kustomize deploy/kubernetes"
  kubectl kustomize deploy/kubernetes >/dev/null
else
  echo "==> kubectl not installed: deploy/kubernetes not rendered with kustomize"
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
