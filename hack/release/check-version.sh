#!/usr/bin/env bash
# One version for everything a release ships: the crate (Cargo.toml), the image tag, the
# chart's `version` and its `appVersion`. A release tag must be `v` and that version.
#   hack/release/check-version.sh v0.2.0    prints 0.2.0, or says what disagrees and fails
# The release workflow runs it first; tests/chart.rs runs it too.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

tag=${1:?usage: hack/release/check-version.sh TAG (e.g. v0.2.0)}
chart=charts/actor-token-operator/Chart.yaml

# The [package] version of the root crate (the first `version =` line, as the Makefile reads it).
crate=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
chart_version=$(sed -n 's/^version: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$chart")
app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$chart")

semver='^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$'
problems=()
[[ $tag =~ ^v ]] || problems+=("the tag $tag does not start with v")
[[ ${tag#v} =~ $semver ]] || problems+=("the tag $tag is not v followed by a semantic version (v1.2.3, v1.2.3-rc.1)")
[[ ${tag#v} == "$crate" ]] || problems+=("the tag $tag is not v + Cargo.toml's version $crate")
[[ $chart_version == "$crate" ]] || problems+=("$chart: version $chart_version is not Cargo.toml's version $crate")
[[ $app_version == "$crate" ]] || problems+=("$chart: appVersion $app_version is not Cargo.toml's version $crate")
if (( ${#problems[@]} )); then
  printf 'version check failed:\n' >&2
  printf '  - %s\n' "${problems[@]}" >&2
  printf 'Set one version in Cargo.toml and in Chart.yaml (version and appVersion), add it to CHANGELOG.md, and tag v<version>.\n' >&2
  exit 1
fi
echo "$crate"
