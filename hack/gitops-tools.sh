#!/usr/bin/env bash
# Builds the GitOps test tools from hack/gitops/ (their own Go module, pinned by its go.sum)
# and caches them by the hash of their sources:
#   kstatus        kstatus's verdict on objects (sigs.k8s.io/cli-utils, as Flux uses it)
#   flux-health    Flux's CEL healthCheckExprs, by Flux's own evaluator (fluxcd/pkg/runtime/cel)
#   argocd-health  an Argo CD Lua health script run the way Argo CD runs argocd-cm scripts
# Prints the bin directory on stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module=$here/gitops
cache=${ATO_CACHE_DIR:-$HOME/.cache/actor-token-operator}
# readonly: a go.sum that misses a module is an error here, as it would be in a fresh clone.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly

log() { printf '[gitops-tools] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null || die "go is not on PATH; install Go 1.26 or newer (it builds the GitOps test tools)."

# The key covers everything that goes into the binaries: sources, go.mod, go.sum, Go version.
key=$( (cd "$module" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) | LC_ALL=C sort | xargs sha256sum; go version) | sha256sum | cut -c1-16)
out=$cache/gitops-tools-$key
tools=(kstatus flux-health argocd-health)
built() { for t in "${tools[@]}"; do [[ -x $out/$t ]] || return 1; done; }
if built; then echo "$out"; exit 0; fi

mkdir -p "$cache"
exec 9>"$cache/.gitops-tools.lock"
flock 9
# Another process may have built them while this one waited for the lock.
if built; then echo "$out"; exit 0; fi

log "building ${tools[*]} from hack/gitops (first build only; 2-4 min on 2 cores)"
start=$SECONDS
rm -rf "$out.tmp" && mkdir -p "$out.tmp"
(cd "$module" && go build -trimpath -ldflags "-s -w" -o "$out.tmp/" "${tools[@]/#/./cmd/}") ||
  die "building the GitOps tools failed (see the go output above). Check that the Go module proxy is reachable."
rm -rf "$out" && mv "$out.tmp" "$out"
log "built them in $(( SECONDS - start )) s"
echo "$out"
