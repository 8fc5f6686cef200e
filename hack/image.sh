#!/usr/bin/env bash
# Builds the operator's image from the Dockerfile: with Docker where a Docker engine answers,
# else with buildah (installed by hack/container-tools.sh; storage under .build/containers/).
#
#   hack/image.sh build [--tag REPOSITORY:TAG] [--bases public|local] [--binary PATH]
#       --tag     default actor-token-operator:<Cargo.toml version> (the chart's appVersion)
#       --bases   public (default): the Dockerfile's own base images, pulled as usual;
#                 local: the stand-ins hack/base-images.sh makes from Debian 12's packages
#                 (buildah only; for machines that can't pull the public ones)
#       --binary  put this prebuilt binary in the image (the Dockerfile's BINARY=prebuilt)
#                 instead of compiling it in the build stage
#   hack/image.sh push IMAGE
#       pushes it, with the engine that built it (log in first: docker login / podman login)
#   hack/image.sh report IMAGE
#       the image's size and every file in it (buildah/podman storage)
#
# ATO_IMAGE_ENGINE=docker|buildah overrides the choice of engine.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

log() { printf '[image] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n 1)

# A docker CLI alone is not enough: it needs an engine that answers.
engine() {
  if [[ -n ${ATO_IMAGE_ENGINE:-} ]]; then echo "$ATO_IMAGE_ENGINE"; return; fi
  if command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1; then echo docker; else echo buildah; fi
}

containers_env() {
  eval "$("$here/container-tools.sh")"
  export CONTAINERS_STORAGE_CONF CONTAINERS_CONF
}

build() {
  local tag=actor-token-operator:$version bases=public binary=""
  while [[ $# -gt 0 ]]; do
    case $1 in
      --tag) tag=$2; shift 2 ;;
      --bases) bases=$2; shift 2 ;;
      --binary) binary=$2; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  [[ $bases == public || $bases == local ]] || die "--bases is public or local, not $bases"
  local engine args=()
  engine=$(engine)
  [[ $bases == public || $engine == buildah ]] ||
    die "--bases local makes images in buildah's storage; build with buildah (ATO_IMAGE_ENGINE=buildah)"
  [[ $engine == buildah ]] && containers_env

  # One build at a time per worktree: they share .build/image/ and the storage.
  mkdir -p "$repo/.build/image"
  exec 8>"$repo/.build/image/.lock"
  flock 8

  if [[ -n $binary ]]; then
    [[ -x $binary ]] || die "no executable binary at $binary"
    cp --preserve=mode "$binary" "$repo/.build/image/actor-token-operator"
    args+=(--build-arg BINARY=prebuilt)
  else
    # The default, said out loud: buildah 1.28 skips a stage that only an ARG's default value
    # names as needed.
    args+=(--build-arg BINARY=build)
  fi
  if [[ $bases == local ]]; then
    args+=(--build-arg "RUNTIME_BASE=$("$here/base-images.sh" runtime)")
    # The build stage runs only when the binary is compiled there.
    [[ -n $binary ]] || args+=(--build-arg "BUILD_BASE=$("$here/base-images.sh" build)")
  fi

  # A test build of the same binary, Dockerfile and bases as the image under that tag already
  # holds is skipped: the test binaries of one `cargo test` each ask for the image.
  local key="" stamp=""
  if [[ $engine == buildah && -n $binary ]]; then
    key=$({ sha256sum <"$binary"; cat "$repo/Dockerfile" "$repo/.dockerignore"; printf '%s\n' "${args[@]}"; } | sha256sum | cut -c1-16)
    stamp=$repo/.build/image/$(printf '%s' "$tag" | tr -c 'a-zA-Z0-9._-' _).key
    if [[ -f $stamp && $(<"$stamp") == "$key $(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null)" ]]; then
      log "$tag is up to date (the same binary, Dockerfile and bases)"
      echo "$tag"
      return
    fi
  fi

  local start=$SECONDS
  log "building $tag with $engine (bases: $bases; binary: ${binary:-compiled in the build stage})"
  case $engine in
    docker) docker build "${args[@]}" --tag "$tag" "$repo" >&2 ;;
    buildah)
      # chroot isolation: RUN steps need no OCI runtime, namespaces or cgroups of their own.
      local pull=(--pull)
      [[ $bases == local ]] && pull=(--pull=never)
      buildah bud --isolation chroot "${pull[@]}" "${args[@]}" --tag "$tag" "$repo" >&2 &&
        # The image this tag named before, untagged now: vfs keeps a full copy of each.
        buildah rmi --prune >/dev/null
      ;;
    *) die "unknown engine $engine (docker or buildah)" ;;
  esac || die "building $tag failed (see above)"
  [[ -z $stamp ]] || echo "$key $(podman image inspect --format '{{.Id}}' "$tag")" >"$stamp"
  log "built $tag in $((SECONDS - start)) s"
  echo "$tag"
}

push() {
  local image=${1:?usage: $0 push IMAGE}
  case $(engine) in
    docker) docker push "$image" ;;
    *) containers_env; podman push "$image" ;;
  esac
}

# Size as stored (uncompressed) and every file, largest last.
report() {
  local image=${1:?usage: $0 report IMAGE}
  containers_env
  local size ctr listing
  size=$(podman image inspect --format '{{.Size}}' "$image") || die "no image $image"
  printf '%s: %s bytes (%s MB)\n' "$image" "$size" "$(awk -v s="$size" 'BEGIN {printf "%.1f", s / 1e6}')"
  ctr=$(podman create --quiet "$image")
  listing=$(podman export "$ctr" | tar --list --verbose | sort -k3,3n)
  podman rm --force "$ctr" >/dev/null
  printf '%s\n' "$listing"
}

case ${1:-} in
  build) shift; build "$@" ;;
  push) shift; push "$@" ;;
  report) shift; report "$@" ;;
  *) echo "usage: $0 build [--tag T] [--bases public|local] [--binary PATH] | push IMAGE | report IMAGE" >&2; exit 2 ;;
esac
