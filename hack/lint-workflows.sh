#!/usr/bin/env bash
# Lints .github/workflows with actionlint (built from its Go module by hack/build-tools.sh),
# which also runs shellcheck on every `run:` script. shellcheck is Debian's package, installed
# here when missing (GitHub's runners have it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[lint-workflows] %s\n' "$*" >&2; }

bin=$(hack/build-tools.sh)
if ! command -v shellcheck >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "installing shellcheck (Debian package), which actionlint runs on the workflows' scripts"
    { apt-get install -y -qq shellcheck || { apt-get update -qq && apt-get install -y -qq shellcheck; }; } >/dev/null
  else
    log "ERROR: shellcheck is not installed; actionlint needs it to check the workflows' scripts (apt-get install shellcheck)."
    exit 1
  fi
fi
"$bin/actionlint" -shellcheck "$(command -v shellcheck)"
