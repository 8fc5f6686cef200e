#!/usr/bin/env bash
# `make test`: builds what the tests need, starts one control plane for the whole run, runs
# every test suite, and stops the control plane on the way out, whatever happened.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export ENVTEST_DIR=${ENVTEST_DIR:-$PWD/.build/envtest}
started=""
cleanup() { [[ -n $started ]] && hack/envtest.sh stop || true; }
trap cleanup EXIT

echo "== building the test control plane (cached after the first run)"
hack/build-tools.sh >/dev/null

echo "== building the GitOps test tools (kstatus, Flux CEL, Argo CD health runner; cached)"
hack/gitops-tools.sh >/dev/null

echo "== checking formatting and lints (cargo fmt --check, clippy -D warnings)"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== building promcheck (checks the chart's alert rules and dashboard; cached)"
hack/promcheck.sh >/dev/null

echo "== linting the GitHub Actions workflows (actionlint, shellcheck on their scripts)"
hack/lint-workflows.sh

echo "== building the Rust workspace"
cargo build --workspace --all-targets

echo "== starting the local control plane"
if ! hack/envtest.sh status; then started=1; fi
hack/envtest.sh start >/dev/null

echo "== cargo test (unit and integration tests)"
cargo test --workspace -- ${TEST_FILTER:-}

echo "== Clerk SDK contract checks against the simulator"
clerk-sim/contract/run.sh target/debug/clerk-sim
