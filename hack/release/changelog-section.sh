#!/usr/bin/env bash
# Prints the CHANGELOG.md section of one version (its heading `## [VERSION]` excluded), the
# release notes of that version; fails, saying so, when there is none or it is empty.
#   hack/release/changelog-section.sh 0.2.0
#   hack/release/changelog-section.sh Unreleased
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
version=${1:?usage: hack/release/changelog-section.sh VERSION}
notes=$(awk -v v="$version" '
  /^## \[/ { inside = (index($0, "## [" v "]") == 1); next }
  /^\[[^]]+\]: / { inside = 0 }
  inside { print }
' CHANGELOG.md | sed -e '/./,$!d')
if [[ -z ${notes//[[:space:]]/} ]]; then
  echo "CHANGELOG.md has no notes under '## [$version]': add them (what changed for users) before tagging." >&2
  exit 1
fi
printf '%s\n' "$notes"
