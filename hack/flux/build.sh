#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller from their Go modules (versions in
# hack/flux/versions.env) and caches each by version, with the CRDs from its module zip:
#   <cache>/flux-source-controller-VERSION/{source-controller,crds/,build-seconds}
#   <cache>/flux-kustomize-controller-VERSION/{kustomize-controller,crds/,build-seconds}
# Prints a bin directory (symlinks to both binaries, crds/ with every CRD) on stdout; progress
# goes to stderr. Only `make e2e-gitops` needs them: each is a large build (~400 modules).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${ATO_CACHE_DIR:-$HOME/.cache/actor-token-operator}
# -mod=mod: the wrapper has no go.sum of its own; every module is checked against the Go
# checksum database as it is downloaded.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

log() { printf '[flux-build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null || die "go is not on PATH; install Go 1.26 or newer (it builds Flux's controllers)."
command -v python3 >/dev/null || die "python3 is not installed; it reads the controllers' go.mod (Debian: apt-get install python3)."

# shellcheck source=../go-build.sh
source "$here/../go-build.sh"

# The controller's go.mod as a wrapper module's go.mod: its go and godebug lines, a require of
# the controller, and its replace directives (they apply only in the main module, and without
# them the build differs: the digest package needs go-digest's BLAKE3 commit, kustomize-
# controller pins kustomize's api/kyaml and yaml.v3). Read from the release's own go.mod rather
# than written down, as they change between releases. The one kind left out is a replace by a
# local folder: the controller's own `api` submodule (`./api`), which is published at the
# version the controller requires.
wrapper_gomod() {
  local name=$1 module=$2 version=$3 gomod=$4 program
  program=$(cat <<'PY'
import json, sys
name, module, version = sys.argv[1:4]
mod = json.load(sys.stdin)
print(f"module actor-token-operator/hack/flux/{name}\n")
print(f"go {mod['Go']}")
for d in mod.get('Godebug') or []:
    print(f"godebug {d['Key']}={d['Value']}")
print(f"\nrequire {module} {version}\n")
for r in mod.get('Replace') or []:
    old, new = r['Old'], r['New']
    if not new.get('Version'):
        if old['Path'] != module + '/api':
            sys.exit(f"{module}@{version} replaces {old['Path']} by the local folder {new['Path']}; "
                     "hack/flux/build.sh only knows how to leave out the api submodule")
        continue
    lhs = old['Path'] + (' ' + old['Version'] if old.get('Version') else '')
    print(f"replace {lhs} => {new['Path']} {new['Version']}")
for e in mod.get('Exclude') or []:
    print(f"exclude {e['Path']} {e['Version']}")
PY
)
  go mod edit -json "$gomod" | python3 -c "$program" "$name" "$module" "$version"
}

# The cache folder of a build: by version, and by the extra replaces when there are any.
#   out_dir NAME VERSION EXTRA_REPLACES
out_dir() {
  local key=$2
  [[ -n $3 ]] && key+=-$(sha256sum <<<"$3" | cut -c1-8)
  echo "$cache/flux-$1-$key"
}

#   build_controller NAME VERSION EXTRA_REPLACES ESTIMATE
build_controller() {
  local name=$1 version=$2 extra_replaces=$3 estimate=$4
  local module=github.com/fluxcd/$name
  local out
  out=$(out_dir "$name" "$version" "$extra_replaces")
  [[ -x $out/$name && -d $out/crds ]] && return
  local work=$cache/src/${out##*/}
  rm -rf "$work" && mkdir -p "$work/bin/crds"
  local info gomod dir
  info=$(cd "$work" && go mod download -json "$module@$version") ||
    die "could not download $module@$version from the Go module proxy."
  gomod=$(sed -n 's/.*"GoMod": "\(.*\)",/\1/p' <<<"$info")
  dir=$(sed -n 's/.*"Dir": "\(.*\)",/\1/p' <<<"$info")
  [[ -f $gomod && -d $dir/config/crd/bases ]] || die "$module@$version has no go.mod or no config/crd/bases."
  wrapper_gomod "$name" "$module" "$version" "$gomod" >"$work/go.mod" || die "could not make a wrapper go.mod for $module@$version."
  if [[ -n $extra_replaces ]]; then
    printf '\n// hack/flux/versions.env\n' >>"$work/go.mod"
    sed 's/^/replace /' <<<"$extra_replaces" >>"$work/go.mod"
  fi
  cp "$dir"/config/crd/bases/*.yaml "$work/bin/crds/"
  chmod -R u+w "$work/bin/crds"
  local start=$SECONDS
  (cd "$work" && with_progress "$name $version" "$estimate" \
    go build -trimpath -ldflags "-s -w" -o "bin/$name" "$module")
  echo $(( SECONDS - start )) >"$work/bin/build-seconds"
  rm -rf "$out" && mv "$work/bin" "$out"
}

# One folder with both binaries and every CRD, so callers need a single path.
link_bin() {
  local bin=$cache/bin-flux-sc$FLUX_SOURCE_CONTROLLER_VERSION-kc$FLUX_KUSTOMIZE_CONTROLLER_VERSION
  mkdir -p "$bin/crds"
  local name out
  for name in source-controller kustomize-controller; do
    if [[ $name == source-controller ]]; then
      out=$(out_dir "$name" "$FLUX_SOURCE_CONTROLLER_VERSION" "$FLUX_SOURCE_CONTROLLER_EXTRA_REPLACES")
    else
      out=$(out_dir "$name" "$FLUX_KUSTOMIZE_CONTROLLER_VERSION" "$FLUX_KUSTOMIZE_CONTROLLER_EXTRA_REPLACES")
    fi
    ln -sf "$out/$name" "$bin/$name"
    ln -sf "$out/build-seconds" "$bin/$name.build-seconds"
    ln -sf "$out"/crds/*.yaml "$bin/crds/"
  done
  echo "$bin"
}

mkdir -p "$cache"
# Serialise concurrent builds (two terminals, or make -j) on one lock of their own.
exec 9>"$cache/.flux-build.lock"
flock 9
build_controller source-controller "$FLUX_SOURCE_CONTROLLER_VERSION" "$FLUX_SOURCE_CONTROLLER_EXTRA_REPLACES" "8-15 min"
build_controller kustomize-controller "$FLUX_KUSTOMIZE_CONTROLLER_VERSION" "$FLUX_KUSTOMIZE_CONTROLLER_EXTRA_REPLACES" "6-12 min"
link_bin
