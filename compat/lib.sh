# Shared helpers for compat/*/run.sh. Source it: `. "$(dirname "$0")/../lib.sh"`.
#
# start_broker [--override k=v ...]
#   Builds target/release/runnel if needed and starts it on a free loopback
#   port with a fresh data directory, with COMPAT_BROKER_ARGS first. Sets
#   BROKER (host:port), BROKER_PID and BROKER_DIR; the broker is stopped when
#   the calling script exits.
#   If RUNNEL_BOOTSTRAP is set, no broker is started and BROKER takes it.
# COMPAT_BROKER_ARGS
#   What every compat broker starts with (librdkafka/run.sh uses it too):
#   group.initial.rebalance.delay.ms=0, as Kafka's shipped
#   config/server.properties sets it, so a group's first rebalance is not held
#   for the 3 s default.
# compat_cache DIR
#   Prints (and creates) a cache directory under compat/.cache that survives
#   between runs (CI keeps the checkout for one run only, so it mostly helps
#   local reruns).

COMPAT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$COMPAT_ROOT/.." && pwd)"

compat_cache() {
  local d="$COMPAT_ROOT/.cache/$1"
  mkdir -p "$d"
  echo "$d"
}

COMPAT_BROKER_ARGS=(--override group.initial.rebalance.delay.ms=0)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start_broker() {
  if [ -n "${RUNNEL_BOOTSTRAP:-}" ]; then
    BROKER="$RUNNEL_BOOTSTRAP"
    return 0
  fi
  local bin="$REPO_ROOT/target/release/runnel"
  (cd "$REPO_ROOT" && cargo build --release --bin runnel -q)
  local port
  port="$(free_port)"
  BROKER_DIR="$(mktemp -d /tmp/runnel-compat.XXXXXX)"
  "$bin" --override "listeners=PLAINTEXT://127.0.0.1:$port" \
         --override "log.dirs=$BROKER_DIR/data" "${COMPAT_BROKER_ARGS[@]}" "$@" \
         >"$BROKER_DIR/broker.log" 2>&1 &
  BROKER_PID=$!
  BROKER="127.0.0.1:$port"
  trap 'stop_broker' EXIT
  local i
  for i in $(seq 1 200); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
      echo "broker exited early:" >&2; cat "$BROKER_DIR/broker.log" >&2; return 1
    fi
    sleep 0.05
  done
  echo "broker did not start on $BROKER" >&2
  return 1
}

stop_broker() {
  if [ -n "${BROKER_PID:-}" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  if [ -n "${BROKER_DIR:-}" ] && [ -z "${KEEP_BROKER_DIR:-}" ]; then
    rm -rf "$BROKER_DIR"
  fi
}
