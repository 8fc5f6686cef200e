#!/usr/bin/env bash
# `make demo`: the whole story on this machine, then everything stopped again.
# Local control plane + Clerk simulator + the operator; apply examples/; watch a request get
# its link; delete it; see the simulator report the token revoked.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export ENVTEST_DIR=${ENVTEST_DIR:-$PWD/.build/envtest}
work=$PWD/.build/demo
mkdir -p "$work"
pids=()
started_plane=""
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n $started_plane ]]; then hack/envtest.sh stop; fi
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Building the operator and the Clerk simulator"
cargo build --quiet --workspace --bins

step "Starting the local control plane (the first run builds it from source, which takes a while)"
hack/envtest.sh status || started_plane=1
kubeconfig=$(hack/envtest.sh start)
bin=$(sed -n 's/^BIN=//p' "$ENVTEST_DIR/env")
export KUBECONFIG=$kubeconfig
kubectl() { "$bin/kubectl" "$@"; }

step "Starting the Clerk simulator (stands in for api.clerk.com)"
key=$(sed -n 's/^ *secretKey: //p' examples/clerk-instance.yaml)
target/debug/clerk-sim --secret-key "$key" >"$work/clerk-sim.out" 2>"$work/clerk-sim.log" &
pids+=($!)
for _ in $(seq 50); do grep -q listening "$work/clerk-sim.out" 2>/dev/null && break; sleep 0.1; done
sim=$(sed -n 's/^clerk-sim listening on //p' "$work/clerk-sim.out")
[[ -n $sim ]] || { echo "the simulator did not start; see $work/clerk-sim.log" >&2; exit 1; }
echo "simulator: $sim"

step "Installing the CRDs, the admission policies and the example instance"
kubectl apply --server-side -f crds/actortokens.dev.yaml >/dev/null
kubectl wait --for=condition=Established --timeout=60s -f crds/actortokens.dev.yaml >/dev/null
# The policies as the chart installs them, rendered by Helm. They act a few seconds after
# they are created (later still on a fresh CRD): wait until one stamps a requester.
"$bin/helm" template demo charts/actor-token-operator --show-only templates/admission-policies.yaml |
  kubectl apply --server-side -f - >/dev/null
kubectl apply -f examples/namespaces.yaml
probe='{"apiVersion":"actortokens.dev/v1alpha1","kind":"ActorTokenRequest","metadata":{"name":"probe","namespace":"support"},"spec":{"userId":"user_probe","actor":{"sub":"user_probe"}}}'
for _ in $(seq 600); do
  stamped=$(echo "$probe" | kubectl create --dry-run=server -o jsonpath='{.spec.requester.username}' -f - 2>/dev/null || true)
  [[ -n $stamped ]] && break
  sleep 0.2
done
[[ -n $stamped ]] || { echo "the admission policies did not take effect" >&2; exit 1; }
echo "admission policies in force: requests are stamped with their requester ($stamped)"
kubectl apply -f examples/clerk-instance.yaml
# The example talks to Clerk itself; here it talks to the simulator.
kubectl patch clusterclerkinstance default --type merge -p "{\"spec\":{\"apiUrl\":\"$sim/v1\"}}"

step "Running the operator"
# --clerk-api-hosts/--allow-insecure-clerk-http: the simulator is plain http on loopback.
target/debug/actor-token-operator run --cluster-instance-namespace actor-token-operator \
  --metrics-addr 127.0.0.1:0 --clerk-api-hosts 127.0.0.1 --allow-insecure-clerk-http \
  >"$work/operator.log" 2>&1 &
pids+=($!)
echo "operator log: $work/operator.log"

step "Applying examples/actor-token-request.yaml"
kubectl apply -f examples/actor-token-request.yaml
kubectl -n support wait atr/support-ticket-1234 --for=jsonpath='{.status.phase}'=Issued --timeout=60s
kubectl -n support get atr

step "The Secret holds the sign-in link (masked here)"
kubectl -n support get secret support-ticket-1234 -o go-template='{{range $k, $v := .data}}{{$k}}{{"\n"}}{{end}}' |
  while read -r k; do
    v=$(kubectl -n support get secret support-ticket-1234 -o "jsonpath={.data.$k}" | base64 -d)
    case $k in url|token) v="${v:0:24}…(masked)" ;; esac
    printf '  %-10s %s\n' "$k" "$v"
  done
token_id=$(kubectl -n support get atr support-ticket-1234 -o jsonpath='{.status.tokenId}')

step "Deleting the request revokes the token"
kubectl -n support delete atr support-ticket-1234 --timeout=60s
status=$(curl -fsS "$sim/__sim/tokens" | python3 -c "import json,sys; print(next(t['status'] for t in json.load(sys.stdin) if t['id']=='$token_id'))")
echo "simulator: token $token_id is $status"
[[ $status == revoked ]] || { echo "expected the token to be revoked" >&2; exit 1; }
kubectl -n support get secret support-ticket-1234 >/dev/null 2>&1 && { echo "the Secret should be gone" >&2; exit 1; }
echo "the Secret is gone"

step "Cleaning up"
kubectl delete -f examples/namespaces.yaml --wait=false >/dev/null
kubectl delete clusterclerkinstance default >/dev/null
echo "demo finished"
