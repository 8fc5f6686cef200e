#!/usr/bin/env bash
# Local stand-ins for the Dockerfile's public base images, which can't be pulled here, made
# from Debian 12's own packages and loaded into this worktree's container storage (see
# hack/container-tools.sh). Prints the image's name on stdout; progress goes to stderr.
#
#   hack/base-images.sh runtime   what gcr.io/distroless/cc-debian12:nonroot is made of, for
#                                 what the operator uses: glibc (libc6), libgcc (libgcc-s1), the
#                                 CA bundle (ca-certificates), the users root, nobody and
#                                 nonroot (65532) in /etc/passwd and /etc/group, /tmp and
#                                 /home/nonroot, nsswitch.conf, os-release and the packages'
#                                 records in /var/lib/dpkg/status.d/ (as distroless keeps them,
#                                 for scanners). No shell, no package manager.
#   hack/base-images.sh build     what docker.io/library/rust:<version>-bookworm gives the build
#                                 stage: Debian 12 with a C toolchain, and this machine's Rust
#                                 toolchain at /usr/local/{cargo,rustup}, as that image has it.
#
# Each is cached under ~/.cache/actor-token-operator/ by the versions of what goes into it
# (Debian package versions, the Rust version) and this script's own hash, so a new Debian point
# release or a change here makes a new one.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${ATO_CACHE_DIR:-$HOME/.cache/actor-token-operator}

log() { printf '[base-images] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

eval "$("$here/container-tools.sh")"
export CONTAINERS_STORAGE_CONF CONTAINERS_CONF

# shellcheck disable=SC1091
source /etc/os-release
[[ ${VERSION_CODENAME:-} == bookworm ]] ||
  die "the local base images are made from Debian 12 (bookworm) packages, and this machine's apt serves ${VERSION_CODENAME:-something else}."

# "name=version" for each package, from the machine's package lists (updated once if empty).
package_versions() {
  local versions
  versions=$(apt-cache show --no-all-versions "$@" 2>/dev/null | sed -n 's/^Package: //p; s/^Version: //p' | paste -d= - -)
  if [[ $(wc -l <<<"$versions") -ne $# ]]; then
    log "updating the package lists"
    apt-get update -qq >&2 || die "apt-get update failed"
    versions=$(apt-cache show --no-all-versions "$@" | sed -n 's/^Package: //p; s/^Version: //p' | paste -d= - -)
  fi
  [[ $(wc -l <<<"$versions") -eq $# ]] || die "apt knows no version of some of: $*"
  echo "$versions"
}

# A cache key: a hash of what goes in (versions, recipes as `declare -f` prints them).
key_of() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }

has_image() { podman image exists "$1"; }

# Removes the other tags of an image's repository (stand-ins of earlier versions).
drop_other_tags() {
  local image=$1 other
  for other in $(podman images --format '{{.Repository}}:{{.Tag}}' "${image%:*}"); do
    [[ $other == "$image" ]] || podman rmi --force "$other" >/dev/null 2>&1 || true
  done
}

runtime_packages=(libc6 libgcc-s1 ca-certificates)

# Unpacks the packages' files (no maintainer scripts run, as in distroless) and adds what
# their scripts or the distroless recipe would: the CA bundle, users, folders.
make_runtime_rootfs() {
  local out=$1 work
  work=$(mktemp -d)
  mkdir -p "$work/debs" "$work/root"
  (cd "$work/debs" && apt-get download "${runtime_packages[@]}" >/dev/null 2>&1) ||
    (cd "$work/debs" && apt-get download "${runtime_packages[@]}" >&2) ||
    die "apt-get download ${runtime_packages[*]} failed"
  local root=$work/root deb name
  mkdir -p "$root/var/lib/dpkg/status.d"
  for deb in "$work"/debs/*.deb; do
    dpkg-deb --extract "$deb" "$root"
    name=$(dpkg-deb --field "$deb" Package)
    dpkg-deb --field "$deb" >"$root/var/lib/dpkg/status.d/$name"
  done
  # Documentation goes; each package's copyright file stays (licences).
  find "$root/usr/share/doc" -type f ! -name copyright -delete
  find "$root/usr/share/doc" -xtype l -delete   # links to packages left out (gcc-12-base)
  rm -rf "$root/usr/share/man" "$root/usr/share/lintian" "$root/usr/sbin/update-ca-certificates" \
    "$root/etc/ca-certificates/update.d"
  # What update-ca-certificates would write: every certificate the package ships, in one file.
  mkdir -p "$root/etc/ssl/certs"
  find "$root/usr/share/ca-certificates" -name '*.crt' | LC_ALL=C sort | xargs cat >"$root/etc/ssl/certs/ca-certificates.crt"
  cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
  cat >"$root/etc/group" <<'GROUP'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
GROUP
  # glibc's built-in default asks DNS before /etc/hosts; a Pod's names are in both.
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
  cp /etc/os-release "$root/etc/os-release"
  mkdir -p "$root/tmp" "$root/home/nonroot" "$root/root"
  chmod 1777 "$root/tmp"
  chmod 0700 "$root/root"
  # Reproducible: fixed times, numeric owners, sorted names.
  tar --create --file "$out.tmp" --directory "$root" --sort=name --mtime=@0 --numeric-owner \
    --owner=0 --group=0 --exclude=./home/nonroot .
  tar --append --file "$out.tmp" --directory "$root" --mtime=@0 --numeric-owner \
    --owner=65532 --group=65532 ./home/nonroot
  mv "$out.tmp" "$out"
  rm -rf "$work"
}

runtime() {
  local versions key image rootfs
  versions=$(package_versions "${runtime_packages[@]}")
  key=$(key_of "$versions" "$(declare -f make_runtime_rootfs)")
  image=localhost/actor-token-operator-base/runtime:$key
  if ! has_image "$image"; then
    rootfs=$cache/base-runtime-$key/rootfs.tar
    if [[ ! -f $rootfs ]]; then
      log "making the runtime base from Debian 12 packages: $(tr '\n' ' ' <<<"$versions")"
      mkdir -p "$(dirname "$rootfs")"
      make_runtime_rootfs "$rootfs"
    fi
    # distroless nonroot's image configuration.
    podman import --quiet \
      --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
      "$rootfs" "$image" >/dev/null || die "podman import of $rootfs failed"
    drop_other_tags "$image"
    log "loaded $image"
  fi
  echo "$image"
}

# What the build stage uses of rust:<version>-bookworm (itself buildpack-deps:bookworm): a
# C compiler and linker, libc headers, make, pkg-config, the CA bundle (crates.io).
build_packages=(gcc libc6-dev make pkg-config ca-certificates)

# Debian 12 with the build packages, made by mmdebstrap from Debian's mirror.
mmdebstrap_args=(--mode=root --variant=minbase
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/locale/*')

build() {
  command -v rustc >/dev/null || die "rustc is not on PATH: the local build base carries this machine's Rust toolchain."
  eval "$("$here/container-tools.sh" --also mmdebstrap)"
  local versions rust sysroot toolchain key image debian trusted
  versions=$(package_versions "${build_packages[@]}")
  rust=$(rustc --version)
  sysroot=$(rustc --print sysroot)
  toolchain=$(rustc -vV | sed -n 's/^release: //p')-$(rustc -vV | sed -n 's/^host: //p')
  # This machine's CA bundle: Debian's, plus the CAs it trusts for its own network (a proxy's,
  # say). The build stage downloads crates through that network; the runtime base keeps
  # Debian's bundle only.
  trusted=/etc/ssl/certs/ca-certificates.crt
  [[ -f $trusted ]] || die "no CA bundle at $trusted"
  debian=$cache/base-build-$(key_of "$versions" "${mmdebstrap_args[*]}")/debian.tar
  key=$(key_of "$debian" "$rust" "$(sha256sum <"$trusted")" "$(declare -f build)")
  image=localhost/actor-token-operator-base/build:$key
  if has_image "$image"; then echo "$image"; return; fi

  if [[ ! -f $debian ]]; then
    log "making Debian 12 with $(tr '\n' ' ' <<<"$versions")(mmdebstrap; once, about 2 min)"
    mkdir -p "$(dirname "$debian")"
    mmdebstrap "${mmdebstrap_args[@]}" --include="$(IFS=,; echo "${build_packages[*]}")" \
      bookworm "$debian.tmp.tar" >&2 || die "mmdebstrap failed (see above)"
    mv "$debian.tmp.tar" "$debian"
  fi

  # The toolchain where the official image has it (RUSTUP_HOME, CARGO_HOME), as this
  # machine's rustup installed it: compiler, cargo, the standard library; no docs.
  log "adding $rust and this machine's CA bundle to it"
  local stage ctr
  stage=$(mktemp -d)
  mkdir -p "$stage/rustup/toolchains/$toolchain/bin" "$stage/cargo/bin"
  cp -a "$sysroot/bin/cargo" "$sysroot/bin/rustc" "$sysroot/bin/rustdoc" "$stage/rustup/toolchains/$toolchain/bin/"
  cp -a "$sysroot/lib" "$sysroot/libexec" "$stage/rustup/toolchains/$toolchain/"
  for tool in cargo rustc rustdoc; do
    ln -s "../../rustup/toolchains/$toolchain/bin/$tool" "$stage/cargo/bin/$tool"
  done
  ctr=$(buildah from --quiet scratch)
  buildah add --quiet "$ctr" "$debian" / >/dev/null
  buildah add --quiet "$ctr" "$stage" /usr/local >/dev/null
  buildah copy --quiet "$ctr" "$trusted" /etc/ssl/certs/ca-certificates.crt >/dev/null
  rm -rf "$stage"
  buildah config --env RUSTUP_HOME=/usr/local/rustup --env CARGO_HOME=/usr/local/cargo \
    --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env RUST_VERSION="$(rustc -vV | sed -n 's/^release: //p')" "$ctr"
  buildah commit --quiet --rm "$ctr" "$image" >/dev/null || die "committing $image failed"
  drop_other_tags "$image"
  log "loaded $image"
  echo "$image"
}

case ${1:-} in
  runtime) runtime ;;
  build) build ;;
  *) echo "usage: $0 runtime | build" >&2; exit 2 ;;
esac
