#!/usr/bin/env bash
# Builds hack/promcheck (the check of the chart's alert rules and Grafana dashboard with
# Prometheus' own rule-file and PromQL parsers; a Go module pinned by its go.sum) and caches it
# by the hash of its sources. Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module=$here/promcheck
cache=${ATO_CACHE_DIR:-$HOME/.cache/actor-token-operator}
# readonly: a go.sum that misses a module is an error here, as it would be in a fresh clone.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly

log() { printf '[promcheck] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null || die "go is not on PATH; install Go 1.26 or newer (it builds the rule and dashboard checker)."

key=$( (cd "$module" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) | LC_ALL=C sort | xargs sha256sum; go version) | sha256sum | cut -c1-16)
out=$cache/promcheck-$key/promcheck
if [[ -x $out ]]; then echo "$out"; exit 0; fi

mkdir -p "$cache"
exec 9>"$cache/.promcheck.lock"
flock 9
if [[ -x $out ]]; then echo "$out"; exit 0; fi

log "building promcheck from hack/promcheck (first build only; about 2 min on 2 cores)"
start=$SECONDS
rm -rf "${out%/*}.tmp" && mkdir -p "${out%/*}.tmp"
(cd "$module" && go build -trimpath -ldflags "-s -w" -o "${out%/*}.tmp/promcheck" .) ||
  die "building promcheck failed (see the go output above). Check that the Go module proxy is reachable."
rm -rf "${out%/*}" && mv "${out%/*}.tmp" "${out%/*}"
log "built it in $(( SECONDS - start )) s"
echo "$out"
