# Shared by the scripts that build tools from Go modules. Source it after defining `log`
# and `die` (each script prefixes its own lines) and setting `cache`.

# Runs a build, printing a line every minute so a long first build is visibly alive.
with_progress() {
  local what=$1 estimate=$2; shift 2
  local start=$SECONDS
  log "building $what (first build only; about $estimate on 2 cores, cached afterwards)"
  "$@" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && log "  still building $what: $(( (SECONDS - start) / 60 )) min so far"
  done
  if ! wait "$pid"; then
    die "building $what failed (see the go output above). Check that the Go module proxy is reachable and that there is disk space under $cache."
  fi
  log "built $what in $(( SECONDS - start )) s"
}
