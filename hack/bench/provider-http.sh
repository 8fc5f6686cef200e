#!/usr/bin/env bash
# Builds crossplane-contrib's provider-http, the bench's peer that somebody else wrote (issue
# 14), from its Go module, and caches it by version beside the control plane's binaries:
#   ~/.cache/actor-token-operator/provider-http-<version>/provider   the controller binary
#   ~/.cache/actor-token-operator/provider-http-<version>/crds/      its module's package/crds
# Prints that folder on stdout; progress goes to stderr. Only Go modules are downloaded.
#
# v1.0.14 is the newest tag the Go module proxy serves here, and builds with Go 1.26.
# Its metrics server has no flag and listens on :8080 (controller-runtime's default): the
# build moves that default to a free loopback port, so that two benches, or anything else
# on 8080, can't collide with it. Nothing else about it changes.
set -euo pipefail

version=${PROVIDER_HTTP_VERSION:-v1.0.14}
module=github.com/crossplane-contrib/provider-http
cache=${ATO_CACHE_DIR:-$HOME/.cache/actor-token-operator}
out=$cache/provider-http-$version
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

log() { printf '[provider-http] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null || die "go is not on PATH; install Go 1.26 or newer."

if [[ -x $out/provider && -d $out/crds ]]; then
  echo "$out"
  exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.provider-http.lock"
flock 9
if [[ -x $out/provider && -d $out/crds ]]; then
  echo "$out"
  exit 0
fi

work=$cache/src/provider-http-$version
rm -rf "$work" && mkdir -p "$work/bin"
info=$(cd "$work" && go mod download -json "$module@$version") ||
  die "could not download $module@$version from the Go module proxy."
gomod=$(sed -n 's/.*"GoMod": "\(.*\)",/\1/p' <<<"$info")
dir=$(sed -n 's/.*"Dir": "\(.*\)",/\1/p' <<<"$info")
[[ -f $gomod && -d $dir/package/crds ]] || die "$module@$version has no go.mod or package/crds."

# A wrapper module, so that the provider's own replace directives (if a release has any)
# apply: Go honours them only in the main module. Its godebug line likewise.
{
  echo "module actor-token-operator/hack/provider-http"
  echo
  echo "go 1.26"
  grep -E '^godebug ' "$gomod" || true
  echo
  echo "require $module $version"
  echo
  grep -E '^replace ' "$gomod" || true
  # A replace block: `replace (` … `)`.
  awk '/^replace \($/{on=1; next} on && /^\)$/{on=0} on {print "replace " $0}' "$gomod"
} >"$work/go.mod"

start=$SECONDS
log "building provider-http $version (first time only; a few minutes on 2 cores)"
metrics=sigs.k8s.io/controller-runtime/pkg/metrics/server.DefaultBindAddress
(cd "$work" && go build -trimpath -ldflags "-s -w -X $metrics=127.0.0.1:0" -o bin/provider "$module/cmd/provider") ||
  die "building provider-http $version failed (see the go output above)."
cp -r "$dir/package/crds" "$work/bin/crds"
chmod -R u+w "$work/bin/crds"
rm -rf "$out" && mv "$work/bin" "$out"
log "built provider-http $version in $((SECONDS - start)) s"
echo "$out"
