#!/usr/bin/env bash
# The one build command for a release binary of jobsbroker. CI runs it and
# deploy/Dockerfile runs it, so both build the same way:
#
#   deploy/build.sh OUTPUT        e.g. deploy/build.sh bin/jobsbroker
#
# The binary is static (CGO_ENABLED=0, it runs on scratch or distroless),
# built with -trimpath and stripped (-s -w). Its version (broker.Version,
# reported in jobsbroker_build_info) is $VERSION if set, else
# `git describe --always --dirty`, else "dev". GOOS and GOARCH from the
# environment cross-compile as usual.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 OUTPUT" >&2
  exit 2
fi
out=$1
case $out in
  /*) ;;
  *) out=$PWD/$out ;; # relative to where the script was called from
esac

cd "$(dirname "$0")/.."

version=${VERSION:-}
if [ -z "$version" ]; then
  version=$(git describe --always --dirty 2>/dev/null || true)
fi
version=${version:-dev}

export CGO_ENABLED=0
exec go build -trimpath \
  -ldflags "-s -w -X github.com/jobsbroker/jobsbroker/broker.Version=$version" \
  -o "$out" ./cmd/jobsbroker
