#!/usr/bin/env bash
# Builds the operator of an earlier release, for `make upgrade-test`: the test runs it first,
# then upgrades to the work tree's operator.
#
#   hack/upgrade-base.sh [COMMIT]     default: $UPGRADE_FROM, else 533781f (the last release
#                                     before requests carried a requester)
#
# Prints a folder on stdout holding `commit` (the full hash), `actor-token-operator` (that
# commit's binary) and `src/` (that commit's tree: its CRDs are in src/crds/); progress goes
# to stderr. Needs the commit in the clone's history: a shallow clone fails with what to fetch.
#
# Cheap because it compiles no dependency twice: the old tree is extracted once per commit,
# and its operator is built into the SAME target dir as the work tree's, renamed so that it
# collides with nothing of ours: the package becomes `actor-token-operator-base` and so does
# its binary, while the library keeps the name `actor_token_operator` that its main.rs
# imports. A dependency is reused when its version, features and profile are the same, so:
# `--locked` to the old Cargo.lock (the versions it shipped with; what differs from ours is
# listed), and the features resolved the way `make test` resolves them for our workspace
# (`--workspace --all-targets`: every member, dev-dependencies included), by selecting both
# members and `--examples` (of which there are none) next to the one binary. Only that binary
# and the old library are compiled: not its tests, nor its clerk-sim.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
wanted=${1:-${UPGRADE_FROM:-533781f040d2b64c266ea4247cf96307858f1177}}
target=${CARGO_TARGET_DIR:-$repo/target}
case $target in /*) ;; *) target=$repo/$target ;; esac
base=$target/upgrade-base
src=$base/src
package=actor-token-operator-base

log() { printf '[upgrade-base] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

commit=$(git -C "$repo" rev-parse --verify --quiet "$wanted^{commit}") || {
  if [[ $(git -C "$repo" rev-parse --is-shallow-repository 2>/dev/null) == true ]]; then
    die "commit $wanted is not in this clone: it is shallow. Fetch the history (git fetch --unshallow), or at least that commit (git fetch origin $wanted), and run this again."
  fi
  die "commit $wanted is not in this clone's history. Fetch it (git fetch origin $wanted), or name another release: UPGRADE_FROM=<commit> make upgrade-test."
}

# The old tree, once per commit. Only what its operator's build reads (its workspace holds
# clerk-sim too) and its CRDs.
if [[ ! -f $src/.commit || $(<"$src/.commit") != "$commit" ]]; then
  log "extracting ${commit:0:12} into $src"
  rm -rf "$src" && mkdir -p "$src"
  git -C "$repo" archive --format=tar "$commit" Cargo.toml Cargo.lock src clerk-sim/Cargo.toml clerk-sim/src crds | tar -x -C "$src"
  manifest=$src/Cargo.toml lock=$src/Cargo.lock
  grep -qx 'name = "actor-token-operator"' "$manifest" ||
    die "$commit's Cargo.toml has no package named actor-token-operator; this script needs changing for it."
  grep -q '^\[lib\]\|^\[\[bin\]\]' "$manifest" &&
    die "$commit's Cargo.toml declares its own [lib] or [[bin]]; this script needs changing for it."
  sed -i -e 's/^name = "actor-token-operator"$/name = "'$package'"/' \
    -e 's/^default-run = "actor-token-operator"$/default-run = "'$package'"/' "$manifest"
  cat >>"$manifest" <<TOML

# Renamed by hack/upgrade-base.sh: a package and binary of their own in the shared target dir;
# the library keeps its name, which main.rs imports.
[lib]
name = "actor_token_operator"
path = "src/lib.rs"

[[bin]]
name = "$package"
path = "src/main.rs"
TOML
  # The lock names the root package; renamed the same way, it still holds every version, so
  # the build is --locked to exactly what that release shipped with.
  sed -i 's/^name = "actor-token-operator"$/name = "'$package'"/' "$lock"
  echo "$commit" >"$src/.commit"
fi

# Crates whose version the work tree doesn't use are compiled anew: say so, it costs time.
versions() { awk '/^name = /{n=$3} /^version = /{print n, $3}' "$1" | tr -d '"' | sort -u; }
new=$(comm -23 <(versions "$src/Cargo.lock") <(versions "$repo/Cargo.lock") | grep -v "^$package " || true)
if [[ -n $new ]]; then
  log "$(wc -l <<<"$new") crate version(s) of ${commit:0:12} are not in the work tree's Cargo.lock and are compiled for it alone: $(tr '\n' ' ' <<<"$new")"
fi

out=$base/actor-token-operator
if [[ ! -x $out || ! -f $base/commit || $(<"$base/commit") != "$commit" ]]; then
  log "building ${commit:0:12}'s operator into $target"
  start=$SECONDS
  cargo build --locked --manifest-path "$src/Cargo.toml" --target-dir "$target" \
    -p "$package" -p clerk-sim --bin "$package" --examples >&2 ||
    die "building ${commit:0:12}'s operator failed (see the cargo output above)."
  cp "$target/debug/$package" "$out.tmp" && mv "$out.tmp" "$out"
  echo "$commit" >"$base/commit"
  log "built it in $((SECONDS - start)) s"
fi
echo "$base"
