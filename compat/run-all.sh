#!/usr/bin/env bash
# Runs every compat suite and prints a summary table (also written to
# compat/.cache/summary.md).
#
#   compat/run-all.sh           make compat: every suite, librdkafka's allowed tests,
#                               then librdkafka's tests.idempotent with -P
#   compat/run-all.sh --quick   make compat-quick: librdkafka's quick subset and the
#                               quick -P subset, kcat, Python, Java
#
# Exit status is non-zero when any suite reported an expected-to-pass test
# that did not pass.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib.sh"

QUICK=""
[ "${1:-}" = "--quick" ] && QUICK=1
CACHE="$(compat_cache .)"
SUMMARY="$CACHE/summary.md"

# Build the broker once for every suite.
(cd "$REPO_ROOT" && cargo build --release --bin runnel -q) || exit 2

# librdkafka-idempotent: librdkafka/run.sh --idempotent (runner -P).
suites=(kcat python java librdkafka librdkafka-idempotent)
declare -A line status secs
fail=0
for s in "${suites[@]}"; do
  args=()
  dir="$s"
  if [ "$s" = librdkafka-idempotent ]; then
    dir=librdkafka
    args=(--idempotent)
  fi
  if [ "$dir" = librdkafka ] && [ -n "$QUICK" ]; then
    args+=(--quick)
  fi
  log="$CACHE/$s.log"
  echo "=== $s ${args[*]:-}" >&2
  start=$(date +%s)
  "$HERE/$dir/run.sh" "${args[@]}" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  secs[$s]=$(( $(date +%s) - start ))
  # Every suite ends with a line "<name>: N passed, M failed[, K skipped]".
  line[$s]="$(grep -E "^$s: [0-9]+ passed, [0-9]+ failed" "$log" | tail -1)"
  if [ "$rc" -eq 0 ]; then status[$s]=ok; else status[$s]="FAILED (exit $rc)"; fail=1; fi
done

{
  echo "| suite | result | status | seconds |"
  echo "|---|---|---|---|"
  for s in "${suites[@]}"; do
    echo "| $s | ${line[$s]:-no summary line} | ${status[$s]} | ${secs[$s]} |"
  done
} >"$SUMMARY"
echo
mode=full; [ -n "$QUICK" ] && mode=quick
echo "compat summary ($(date -u +%Y-%m-%d), $mode):"
cat "$SUMMARY"
exit "$fail"
