#!/usr/bin/env bash
# The container tools the image tests use, installed once and configured for this sandbox:
#   podman, buildah, skopeo, runc (conmon comes with them)     Debian packages
#   htpasswd (apache2-utils)                                   Debian package: registry logins
#   registry (github.com/distribution/distribution/v3)         Go module, cached by version
# and, for this worktree, containers-storage on the vfs driver under .build/containers/ (no
# overlay mounts or fuse in this sandbox; a folder of each worktree's own, so that two
# worktrees never tag the same image name in one store).
#
# `--also COMMAND` installs one more of the Debian packages below that only some steps need
# (mmdebstrap, for the local build-stage base).
#
# Prints, on stdout, shell assignments (NAME=value, one a line) that point podman, buildah and
# skopeo at that configuration, and name the registry binary:
#   eval "$(hack/container-tools.sh)"
# Fast when everything is there already: no apt, no Go.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=container-tools.env
source "$here/container-tools.env"

cache=${ATO_CACHE_DIR:-$HOME/.cache/actor-token-operator}
dir=${ATO_CONTAINERS_DIR:-$repo/.build/containers}

log() { printf '[container-tools] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# command -> the Debian package that has it.
declare -A packages=([podman]=podman [buildah]=buildah [skopeo]=skopeo [runc]=runc [htpasswd]=apache2-utils)
declare -A optional=([mmdebstrap]=mmdebstrap)
while [[ $# -gt 0 ]]; do
  case $1 in
    --also) [[ -n ${optional[${2:-}]:-} ]] || die "--also takes one of: ${!optional[*]}"
      packages[$2]=${optional[$2]}; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
missing=()
for command in "${!packages[@]}"; do
  command -v "$command" >/dev/null || missing+=("${packages[$command]}")
done
if ((${#missing[@]})); then
  command -v apt-get >/dev/null || die "${missing[*]} missing and there is no apt-get: install them with your package manager."
  [[ $(id -u) == 0 ]] || die "${missing[*]} missing: install them (as root: apt-get install ${missing[*]})."
  log "installing ${missing[*]} from Debian (once; about 30 s)"
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine has no package lists yet; an old list may name versions gone from the mirror.
  apt-get update -qq >&2 || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
fi

# containers-storage and the engine's settings, read by podman, buildah and skopeo alike
# through CONTAINERS_STORAGE_CONF and CONTAINERS_CONF.
#  - vfs: a plain copy per layer; overlay needs mounts this sandbox does not give.
#  - cgroupfs and a file for events: there is no systemd or journald here.
#  - runc, not crun (podman's default): this machine has cgroup v1 and v2 mounted at once
#    ("hybrid"), which crun refuses; runc applies the v1 limits (memory, CPU) as a kubelet would.
#  - ulimits: the sandbox can't raise its limits, and podman's defaults try to (nofile 1048576).
#  - The run root holds sockets, whose paths must stay short (108 bytes): under /tmp, named by
#    a hash of the worktree's path.
run_root=/tmp/ato-containers-$(printf '%s' "$dir" | sha256sum | cut -c1-12)
mkdir -p "$dir/storage" "$run_root"
storage_conf=$dir/storage.conf
containers_conf=$dir/containers.conf
write_if_changed() {
  local file=$1 content
  content=$(cat)
  [[ -f $file && $(<"$file") == "$content" ]] || printf '%s\n' "$content" >"$file"
}
write_if_changed "$storage_conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$dir/storage"
runroot = "$run_root"
CONF
write_if_changed "$containers_conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$run_root/events.log"
CONF

# The registry, built from its module through a one-line wrapper module, cached by version.
registry=$cache/registry-$REGISTRY_VERSION/registry
if [[ ! -x $registry ]]; then
  command -v go >/dev/null || die "go is not on PATH; install Go 1.26 or newer (it builds the test registry)."
  mkdir -p "$cache"
  exec 9>"$cache/.registry.lock"
  flock 9
  if [[ ! -x $registry ]]; then
    log "building registry $REGISTRY_VERSION from its Go module (first build only; 3 min of CPU, 8 measured on a busy 2-core machine)"
    start=$SECONDS
    work=$cache/src/registry-$REGISTRY_VERSION
    rm -rf "$work" && mkdir -p "$work/bin"
    printf 'module actor-token-operator/hack/registry\n\ngo 1.26\n\nrequire github.com/distribution/distribution/v3 %s\n' \
      "$REGISTRY_VERSION" >"$work/go.mod"
    (cd "$work" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod \
      go build -trimpath -ldflags "-s -w" -o bin/registry github.com/distribution/distribution/v3/cmd/registry) ||
      die "building the registry failed (see the go output above). Check that the Go module proxy is reachable."
    rm -rf "$(dirname "$registry")" && mv "$work/bin" "$(dirname "$registry")"
    log "built it in $((SECONDS - start)) s"
  fi
fi

printf 'CONTAINERS_STORAGE_CONF=%q\n' "$storage_conf"
printf 'CONTAINERS_CONF=%q\n' "$containers_conf"
printf 'REGISTRY_BIN=%q\n' "$registry"
