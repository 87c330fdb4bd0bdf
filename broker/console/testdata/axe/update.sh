#!/usr/bin/env bash
# Refreshes the vendored axe-core (the accessibility engine the browser
# test runs in each console page) from the npm registry. The test needs no
# network: it reads axe.min.js from this directory.
set -euo pipefail
cd "$(dirname "$0")"
version="${1:-4.11.4}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "axe-core@$version" >/dev/null && tar xzf axe-core-*.tgz)
cp "$tmp/package/axe.min.js" "$tmp/package/LICENSE" .
echo "$version" > VERSION
