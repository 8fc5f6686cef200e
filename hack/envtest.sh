#!/usr/bin/env bash
# A local Kubernetes control plane for tests, in the manner of controller-runtime's envtest:
# etcd + kube-apiserver (TLS, RBAC, ServiceAccount token signing) + kube-controller-manager
# running only the garbage-collector and namespace controllers. Everything runs in one process
# group, so `stop` leaves nothing behind.
#
#   hack/envtest.sh start [--owner-pid PID]   start (or reuse) and print the kubeconfig path;
#                                             with --owner-pid, stop by itself when PID exits
#   hack/envtest.sh stop                      stop everything `start` started
#   hack/envtest.sh status                    exit 0 when running and ready
#   hack/envtest.sh restart-apiserver         SIGKILL kube-apiserver and start it again on the
#                                             same port with the same certificates (etcd keeps
#                                             the data); returns once it is ready again. For
#                                             fault tests: never on a plane others are using.
#
# State (certificates, logs, data) lives in $ENVTEST_DIR (default: <repo>/.build/envtest).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
state=${ENVTEST_DIR:-$repo/.build/envtest}
start_timeout=${ENVTEST_START_TIMEOUT:-180}

log() { printf '[envtest] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need() {
  command -v "$1" >/dev/null || die "$1 is not installed; it is needed to $2 (Debian: apt-get install $3)."
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

running_pgid() {
  [[ -f $state/pgid ]] || return 1
  local pgid; pgid=$(<"$state/pgid")
  kill -0 -- "-$pgid" 2>/dev/null && echo "$pgid"
}

is_ready() {
  [[ -f $state/env ]] || return 1
  # shellcheck disable=SC1091
  source "$state/env"
  curl -fsS --max-time 2 --cacert "$state/pki/ca.crt" --cert "$state/pki/admin.crt" --key "$state/pki/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1
}

make_pki() {
  local pki=$state/pki
  [[ -f $pki/admin.crt ]] && return
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=envtest-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    # The admin identity: any member of system:masters is a cluster admin under RBAC.
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=envtest-admin" -keyout admin.key -out admin.csr 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >admin.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile admin.ext -out admin.crt 2>/dev/null
    # ServiceAccount token signing, so the TokenRequest API works.
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

write_kubeconfig() {
  local port=$1 b64
  b64() { base64 -w0 <"$1"; }
  cat >"$state/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: envtest
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority-data: $(b64 "$state/pki/ca.crt")
users:
- name: envtest-admin
  user:
    client-certificate-data: $(b64 "$state/pki/admin.crt")
    client-key-data: $(b64 "$state/pki/admin.key")
contexts:
- name: envtest
  context: {cluster: envtest, user: envtest-admin, namespace: default}
current-context: envtest
KUBECONFIG
}

# What ServiceAccounts do, at Metadata level, and nothing else: tests/chart.rs runs the operator
# as the chart's ServiceAccount and derives from this log which API calls it really makes, to
# find any grant of the chart's RBAC that nothing uses.
write_audit_policy() {
  cat >"$state/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  userGroups: ["system:serviceaccounts"]
- level: None
POLICY
}

# Starts kube-apiserver as a child of the supervisor (appending to its log, so a restart keeps
# the earlier one) and notes its PID, which `restart-apiserver` watches change.
start_apiserver() {
  "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --advertise-address 127.0.0.1 --endpoint-reconciler-type none \
    --cert-dir "$state/apiserver-certs" \
    --tls-cert-file "$state/pki/apiserver.crt" --tls-private-key-file "$state/pki/apiserver.key" \
    --client-ca-file "$state/pki/ca.crt" \
    --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$state/pki/sa.pub" --service-account-signing-key-file "$state/pki/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 \
    --disable-admission-plugins ServiceAccount \
    --audit-policy-file "$state/audit-policy.yaml" --audit-log-path "$state/audit.log" \
    --audit-log-format json --audit-log-maxsize 200 --audit-log-maxbackup 1 \
    --allow-privileged=true >>"$state/kube-apiserver.log" 2>&1 &
  apiserver_pid=$!
  echo "$apiserver_pid" >"$state/apiserver.pid"
}

# Runs as the process-group leader; every component is its child. If any component dies, or
# the owner process exits, it takes the whole group down.
supervise() {
  local owner=${1:-}
  # shellcheck disable=SC1091
  source "$state/env"
  echo $$ >"$state/pgid"
  trap 'kill -TERM -- -$$ 2>/dev/null; exit 0' TERM INT
  "$BIN/etcd" --name envtest --data-dir "$state/etcd" --unsafe-no-fsync --log-level warn \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "envtest=http://127.0.0.1:$ETCD_PEER_PORT" >"$state/etcd.log" 2>&1 &
  start_apiserver
  "$BIN/kube-controller-manager" \
    --kubeconfig "$state/kubeconfig" \
    --controllers garbage-collector-controller,namespace-controller \
    --leader-elect=false --secure-port 0 >"$state/kube-controller-manager.log" 2>&1 &
  # SIGUSR1 (from `restart-apiserver`) asks for a new kube-apiserver; handled in the loop.
  restart=""
  trap 'restart=1' USR1
  while [[ -z $owner ]] || kill -0 "$owner" 2>/dev/null; do
    if [[ -n $restart ]]; then
      restart=""
      kill -KILL "$apiserver_pid" 2>/dev/null || true
      wait "$apiserver_pid" 2>/dev/null || true
      start_apiserver
    fi
    # A component that exits ends the control plane: a half-running one misleads tests.
    [[ $(jobs -rp | wc -l) -eq 3 ]] || break
    if [[ -n $owner ]]; then
      sleep 1
    else
      # Returns when a component exits, or early (status > 128) on SIGUSR1.
      wait -n && break
      [[ -n $restart ]] || break
    fi
  done
  # Children first, then (for a plane owned by a test process) its state, then ourselves.
  # The apiserver can hang on shutdown once etcd is gone, so give them 10 s, then KILL.
  local children
  children=$(jobs -p)
  kill -TERM $children 2>/dev/null || true
  for _ in $(seq 50); do
    [[ -z $(jobs -rp) ]] && break
    sleep 0.2
  done
  kill -KILL $children 2>/dev/null || true
  wait || true
  [[ -n $owner && ${ENVTEST_EPHEMERAL:-} == 1 ]] && rm -rf "$state"
  kill -TERM -- -$$ 2>/dev/null
}

start() {
  local owner=""
  while [[ $# -gt 0 ]]; do
    case $1 in
      --owner-pid) owner=$2; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  if running_pgid >/dev/null && is_ready; then
    log "already running"
    echo "$state/kubeconfig"
    return
  fi
  running_pgid >/dev/null && stop
  need openssl "make the control plane's certificates" openssl
  need curl "probe the API server" curl
  need python3 "find free ports" python3
  need setsid "run the control plane in its own process group" util-linux
  local bin
  bin=$("$here/build-tools.sh") || die "building the control plane's binaries failed (see above)."
  mkdir -p "$state"
  make_pki
  write_audit_policy
  local attempt
  for attempt in 1 2 3; do
    rm -rf "$state/etcd" "$state"/*.log
    local apiserver_port etcd_port etcd_peer_port
    apiserver_port=$(free_port); etcd_port=$(free_port); etcd_peer_port=$(free_port)
    printf 'BIN=%q\nAPISERVER_PORT=%s\nETCD_PORT=%s\nETCD_PEER_PORT=%s\n' \
      "$bin" "$apiserver_port" "$etcd_port" "$etcd_peer_port" >"$state/env"
    write_kubeconfig "$apiserver_port"
    rm -f "$state/pgid"
    setsid "$BASH" "$here/envtest.sh" _supervise "$owner" </dev/null >"$state/supervisor.log" 2>&1 &
    log "starting etcd and kube-apiserver on 127.0.0.1:$apiserver_port (attempt $attempt)"
    local deadline=$((SECONDS + start_timeout))
    while ((SECONDS < deadline)); do
      if is_ready && "$bin/kubectl" --kubeconfig "$state/kubeconfig" get namespace default >/dev/null 2>&1; then
        log "ready in $((SECONDS - deadline + start_timeout)) s; kubeconfig: $state/kubeconfig"
        echo "$state/kubeconfig"
        return
      fi
      # A component that lost a port race exits early: try again on fresh ports.
      if [[ -f $state/pgid ]] && ! running_pgid >/dev/null; then break; fi
      sleep 0.5
    done
    if ((SECONDS >= deadline)); then
      log "kube-apiserver was not ready within ${start_timeout}s. Its log ends with:"
      tail -n 40 "$state/kube-apiserver.log" >&2 || true
      log "etcd's log ends with:"; tail -n 10 "$state/etcd.log" >&2 || true
      stop
      die "the control plane did not start; logs are in $state"
    fi
    log "a component exited during start (a port race?); its logs:"
    tail -n 5 "$state/etcd.log" "$state/kube-apiserver.log" >&2 || true
    stop
  done
  die "the control plane failed to start three times; logs are in $state"
}

stop() {
  local pgid
  if ! pgid=$(running_pgid); then
    rm -f "$state/pgid"
    return
  fi
  kill -TERM -- "-$pgid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 -- "-$pgid" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL -- "-$pgid" 2>/dev/null || true
  rm -f "$state/pgid"
  log "stopped"
}

restart_apiserver() {
  local pgid old
  pgid=$(running_pgid) || die "no control plane is running in $state"
  old=$(<"$state/apiserver.pid")
  kill -USR1 "$pgid"
  local deadline=$((SECONDS + start_timeout))
  while ((SECONDS < deadline)); do
    if [[ $(<"$state/apiserver.pid") != "$old" ]] && is_ready; then
      log "kube-apiserver restarted (pid $old -> $(<"$state/apiserver.pid"))"
      return
    fi
    running_pgid >/dev/null || die "the control plane stopped while kube-apiserver restarted; logs are in $state"
    sleep 0.2
  done
  die "kube-apiserver was not ready again within ${start_timeout}s; logs are in $state"
}

case ${1:-} in
  start) shift; start "$@" ;;
  stop) stop ;;
  status) running_pgid >/dev/null && is_ready ;;
  restart-apiserver) restart_apiserver ;;
  _supervise) shift; supervise "$@" ;;
  *) echo "usage: $0 start [--owner-pid PID] | stop | status | restart-apiserver" >&2; exit 2 ;;
esac
