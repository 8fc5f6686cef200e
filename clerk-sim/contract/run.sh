#!/usr/bin/env bash
# SDK contract check: Clerk's official SDKs, at pinned versions, against the clerk-sim binary.
#
#   clerk-sim/contract/run.sh [PATH_TO_CLERK_SIM_BINARY]
#
# Installs the SDKs into the build folder (target/contract/, never globally; skipped when
# already there): Python clerk-backend-api 7.0.0 in a venv, npm @clerk/backend 3.25.0 with
# `npm ci` from the committed package-lock.json. Without a binary argument it builds one with
# cargo. Starts clerk-sim on a free port, runs sdk_check.py and sdk_check.mjs against it, prints
# `sdk contract: N passed, N failed` and exits non-zero if any failed. The simulator it started
# is always stopped.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
work="$target/contract"
python_sdk="clerk-backend-api==7.0.0"
node_sdk="@clerk/backend 3.25.0"
key="sk_test_sdk_contract_key"
mkdir -p "$work"

bin="${1:-}"
if [[ -z "$bin" ]]; then
    echo "building clerk-sim..."
    cargo build --quiet --manifest-path "$root/Cargo.toml" -p clerk-sim --bin clerk-sim
    bin="$target/debug/clerk-sim"
fi
[[ -x "$bin" ]] || { echo "no clerk-sim binary at $bin" >&2; exit 2; }

venv="$work/venv"
if ! "$venv/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("clerk-backend-api") != "7.0.0")' 2>/dev/null; then
    echo "installing $python_sdk into $venv..."
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$python_sdk"
fi

node_dir="$work/node"
if ! cmp -s "$here/node/package-lock.json" "$node_dir/package-lock.json" \
    || [[ ! -f "$node_dir/node_modules/@clerk/backend/package.json" ]]; then
    echo "installing $node_sdk into $node_dir..."
    rm -rf "$node_dir"
    mkdir -p "$node_dir"
    cp "$here/node/package.json" "$here/node/package-lock.json" "$node_dir/"
    (cd "$node_dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
# ES modules resolve packages from the script's own folder.
cp "$here/sdk_check.mjs" "$node_dir/sdk_check.mjs"

out="$work/clerk-sim.out"
log="$work/clerk-sim.log"
"$bin" --secret-key "$key" >"$out" 2>"$log" &
sim_pid=$!
stop_sim() {
    kill -TERM "$sim_pid" 2>/dev/null || true
    wait "$sim_pid" 2>/dev/null || true
}
trap stop_sim EXIT

line=""
for _ in $(seq 100); do
    line="$(head -n 1 "$out" 2>/dev/null || true)"
    [[ "$line" == "clerk-sim listening on "* ]] && break
    if ! kill -0 "$sim_pid" 2>/dev/null; then
        echo "clerk-sim exited at start; its log:" >&2
        cat "$log" >&2
        exit 2
    fi
    sleep 0.1
done
[[ "$line" == "clerk-sim listening on "* ]] || { echo "clerk-sim did not start in 10 s" >&2; exit 2; }
base="${line#clerk-sim listening on }"
echo "clerk-sim at $base"

passed=0
failed=0
check() {
    local name="$1"
    shift
    echo "$name:"
    if CLERK_SECRET_KEY="$key" "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "$name: FAILED"
    fi
}
check "python sdk ($python_sdk)" "$venv/bin/python" "$here/sdk_check.py" "$base"
check "node sdk ($node_sdk)" node "$node_dir/sdk_check.mjs" "$base"

echo "sdk contract: $passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
