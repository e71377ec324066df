#!/usr/bin/env bash
# Runs librdkafka's own test suite (tests/test-runner, librdkafka 2.12.1)
# against Runnel.
#
#   run.sh            the tests in tests.allow
#   run.sh --quick    the tests in tests.quick (a fast subset of tests.allow)
#   run.sh --all      every broker test of the suite (not the -l local ones)
#   run.sh 0001 0012  these test numbers (or full names such as 0012_produce_consume)
#   run.sh --idempotent [--quick]
#                     the tests in tests.idempotent (only those marked quick)
#                     with the runner's -P: every producer idempotent; must
#                     all pass. The summary line says "librdkafka-idempotent".
#
# An entry NAME/SUB (in a list or on the command line, e.g.
# 0103_transactions/do_test_misuse_txn) runs only the sub-tests of NAME whose
# name contains SUB (the runner's SUBTESTS), as its own runner invocation,
# and is reported as NAME/SUB; it passes only if at least one such sub-test
# ran and passed and none failed.
#
# Every test number runs in its own test-runner process, against a fresh
# broker, under a wall-clock cap: the runner SIGKILLs itself when a test
# times out, and a hung or crashed test must not poison the next one.
# Results are kept per test *name* (one number may hold several tests,
# e.g. 0045_*). Exit status is non-zero only if a test listed in tests.allow
# ran and did not pass.
#
# Environment:
#   TEST_CAP=300        wall-clock cap per test number, seconds (the runner's
#                       own per-test timeouts normally fire first)
#   RUNNER_ARGS=        extra test-runner flags (e.g. -Q for quick mode, -P)
#   RESULTS_DIR=...     where logs go (default: compat/.cache/librdkafka/runs/<time>)
#   RUNNEL_BOOTSTRAP    use this broker instead of starting one per test
#   RUNNEL_LOG=debug    more broker logging (the broker log is kept per test)
#
# KAFKA_PATH: a few tests run "$KAFKA_PATH/bin/kafka-topics.sh" (0045's
# noautocreate tests, 0052, 0077). There is no Kafka distribution here:
# KAFKA_PATH is kafka-path/, whose bin/kafka-topics.sh does the same Admin
# calls as Kafka's for --create/--alter --partitions/--delete and refuses
# anything else (see kafka-path/bin/kafka-topics.sh).
#
# Source: the crates.io package rdkafka-sys 4.10.0+2.12.1 ships librdkafka's
# full source tree (with tests/); it is fetched with cargo, copied into the
# cache and built there once.
set -euo pipefail
# The whole script is one compound command, parsed before it runs, so that
# editing this file during a long run cannot derail the run.
{
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"

RDKAFKA_SYS_VERSION="4.10.0+2.12.1"
LIBRDKAFKA_VERSION="2.12.1"
CONFIGURE_ARGS=(--disable-ssl --disable-gssapi --disable-curl --disable-lz4-ext)
# Runnel emulates Kafka 4.1's protocol surface; the suite gates tests on it.
export TEST_KAFKA_VERSION="${TEST_KAFKA_VERSION:-4.1.0}"
TEST_CAP="${TEST_CAP:-300}"
# The suite is written for trivup's default cluster: 4 partitions per
# auto-created topic (e.g. 0012 and 0015 produce to partitions 0-2).
BROKER_ARGS=(--override num.partitions=4)

log() { printf '%s\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 2; }

# ---------------------------------------------------------------- arguments
MODE=allow
SELECTED=()
IDEMPOTENT=""
for arg in "$@"; do
  case "$arg" in
    --quick) [ "$MODE" = idempotent ] && MODE=idempotent-quick || MODE=quick ;;
    --all) MODE=all ;;
    --idempotent) IDEMPOTENT=1; [ "$MODE" = quick ] && MODE=idempotent-quick || MODE=idempotent ;;
    -h|--help) sed -n '2,43p' "$0"; exit 0 ;;
    [0-9][0-9][0-9][0-9]*) MODE=named; SELECTED+=("$arg") ;;
    *) die "unknown argument: $arg" ;;
  esac
done
SUITE_NAME=librdkafka
if [ -n "$IDEMPOTENT" ]; then
  SUITE_NAME=librdkafka-idempotent
  RUNNER_ARGS="${RUNNER_ARGS:-} -P"
fi

# ---------------------------------------------------------------- build deps
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_packages() {
  local missing=() p
  for p in build-essential python3 zlib1g-dev libzstd-dev rapidjson-dev; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing build dependencies: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
    { as_root apt-get update -qq && as_root apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
}

# Prints the librdkafka source tree inside the unpacked rdkafka-sys crate,
# fetching the crate with cargo first if this machine has not got it yet.
locate_source() {
  local home="${CARGO_HOME:-$HOME/.cargo}" d
  for attempt in 1 2; do
    for d in "$home"/registry/src/*/rdkafka-sys-"$RDKAFKA_SYS_VERSION"/librdkafka; do
      [ -f "$d/tests/test.c" ] && { echo "$d"; return 0; }
    done
    [ "$attempt" = 2 ] && break
    log "rdkafka-sys $RDKAFKA_SYS_VERSION not in $home/registry/src: cargo fetch" >&2
    (cd "$REPO_ROOT" && cargo fetch -q) >&2
  done
  # cargo fetch leaves the .crate archive in registry/cache; unpack it ourselves.
  local crate
  for crate in "$home"/registry/cache/*/rdkafka-sys-"$RDKAFKA_SYS_VERSION".crate; do
    [ -f "$crate" ] || continue
    local dir
    dir="$(compat_cache librdkafka)/crate"
    rm -rf "$dir" && mkdir -p "$dir"
    tar -xzf "$crate" -C "$dir"
    echo "$dir/rdkafka-sys-$RDKAFKA_SYS_VERSION/librdkafka"
    return 0
  done
  die "cannot find rdkafka-sys $RDKAFKA_SYS_VERSION (is it still Runnel's dev-dependency?)"
}

CACHE="$(compat_cache librdkafka)"
TREE="$CACHE/src-$LIBRDKAFKA_VERSION"
RUNNER="$TREE/tests/test-runner"
STAMP="$TREE/.runnel-build-ok"

build_suite() {
  local want="librdkafka $LIBRDKAFKA_VERSION ${CONFIGURE_ARGS[*]}"
  if [ -x "$RUNNER" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  ensure_packages
  local src start
  src="$(locate_source)"
  start=$(date +%s)
  log "building librdkafka $LIBRDKAFKA_VERSION and its test-runner in $TREE (takes ~6 min on 2 cores)"
  rm -rf "$TREE"
  cp -a "$src" "$TREE"
  (
    cd "$TREE"
    ./configure "${CONFIGURE_ARGS[@]}" >"$TREE/build.log" 2>&1
    make -j2 libs >>"$TREE/build.log" 2>&1
    make -j2 -C tests build >>"$TREE/build.log" 2>&1
  ) || { tail -40 "$TREE/build.log" >&2; die "build failed, see $TREE/build.log"; }
  echo "$want" >"$STAMP"
  log "built in $(($(date +%s) - start)) s"
}

# ------------------------------------------------------------ test catalogue
# The suite's own table (tests/test.c) is the catalogue: NAME FLAGS SCENARIO
# for every test that needs a broker (not TEST_F_LOCAL, not TEST_F_MANUAL).
catalogue() {
  python3 - "$TREE/tests/test.c" <<'EOF'
import re, sys
src = open(sys.argv[1]).read()
start = src.index("struct test tests[] = {")
body = re.sub(r"/\*.*?\*/", "", src[start:src.index("{NULL}};", start)], flags=re.S)
body = re.sub(r"^\s*#.*$", "", body, flags=re.M)
# Split at each _TEST( and keep text up to the next one.
for chunk in body.split("_TEST(")[1:]:
    m = re.match(r"\s*(\w+)\s*,\s*([A-Z_0-9| ]+)", chunk)
    name, flags = m.group(1), m.group(2).strip()
    if "TEST_F_LOCAL" in flags or "TEST_F_MANUAL" in flags:
        continue
    sc = re.search(r'\.scenario\s*=\s*"([^"]*)"', chunk)
    print(name, flags.replace(" ", "") or "0", sc.group(1) if sc else "default")
EOF
}

# ---------------------------------------------------------------- selection
listed() { # file -> test names/numbers (first column), comments and blanks dropped
  sed -e 's/#.*//' "$1" | awk 'NF {print $1}' || true
}
listed_quick() { # file -> first column of the lines whose second column is "quick"
  sed -e 's/#.*//' "$1" | awk 'NF && $2 == "quick" {print $1}' || true
}

build_suite
CATALOGUE="$(catalogue)"
[ -n "$CATALOGUE" ] || die "could not read the test table from $TREE/tests/test.c"

case "$MODE" in
  allow) mapfile -t SELECTED < <(listed "$HERE/tests.allow") ;;
  quick) mapfile -t SELECTED < <(listed "$HERE/tests.quick") ;;
  idempotent) mapfile -t SELECTED < <(listed "$HERE/tests.idempotent") ;;
  idempotent-quick) mapfile -t SELECTED < <(listed_quick "$HERE/tests.idempotent") ;;
  all) mapfile -t SELECTED < <(awk '{print $1}' <<<"$CATALOGUE") ;;
esac
[ ${#SELECTED[@]} -gt 0 ] || die "no tests selected"

# Sub-test selections (NAME/SUB): each is its own run, after the others.
SUBRUNS=()
declare -A SUBNAME=()
plain=()
for s in "${SELECTED[@]}"; do
  if [[ "$s" == */* ]]; then
    base="${s%%/*}" sub="${s#*/}"
    [ -n "$sub" ] || die "empty sub-test in '$s'"
    hit="$(awk -v n="$base" '$1==n {print $1 " " $3}' <<<"$CATALOGUE")"
    [ -n "$hit" ] || die "no broker test is named '$base' (NAME/SUB needs a full name)"
    sc=default
    [[ "${hit#* }" == *default* ]] || sc="${hit#* }"
    SUBRUNS+=("${base:0:4}@$sc@$sub")
    SUBNAME["${base:0:4}@$sc@$sub"]="$base"
  else
    plain+=("$s")
  fi
done
SELECTED=("${plain[@]}")

# Names to report: catalogue entries whose name starts with a selected item.
declare -A WANT=()
for s in "${SELECTED[@]}"; do
  found=0
  while read -r name _ _; do
    # A number selects all its tests (0045 -> 0045_*); a name only itself.
    if [[ "$name" == "$s" || ( "$s" =~ ^[0-9]{4}$ && "$name" == "$s"_* ) ]]; then
      WANT[$name]=1; found=1
    fi
  done <<<"$CATALOGUE"
  [ $found = 1 ] || die "no broker test matches '$s'"
done

# Runs: one per (number, scenario) among the wanted names, in suite order.
RUNS=()
declare -A SEEN=()
while read -r name _ scenario; do
  [ -n "${WANT[$name]:-}" ] || continue
  sc=default
  [[ "$scenario" == *default* ]] || sc="$scenario"
  key="${name:0:4}@$sc"
  [ -n "${SEEN[$key]:-}" ] && continue
  SEEN[$key]=1
  RUNS+=("$key")
done <<<"$CATALOGUE"
RUNS+=("${SUBRUNS[@]}")

declare -A ALLOW=()
case "$MODE" in
  idempotent|idempotent-quick)
    # Every test of the -P list must pass.
    while read -r a; do ALLOW[$a]=1; done < <(listed "$HERE/tests.idempotent") ;;
  *) while read -r a; do ALLOW[$a]=1; done < <(listed "$HERE/tests.allow") ;;
esac

# ------------------------------------------------------------------ brokers
RESULTS_DIR="${RESULTS_DIR:-$CACHE/runs/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$RESULTS_DIR" "$CACHE/runs"
ln -sfn "$RESULTS_DIR" "$CACHE/runs/latest" 2>/dev/null || true

# Build once and run a private copy, so other people's edits (and the shared
# target dir's lock) cannot change the broker in the middle of a run.
RUNNEL_BIN=""
BIN_DIR="$(mktemp -d /tmp/runnel-compat-bin.XXXXXX)"
trap 'stop_broker; rm -rf "$BIN_DIR"' EXIT
if [ -z "${RUNNEL_BOOTSTRAP:-}" ]; then
  (cd "$REPO_ROOT" && cargo build --release --bin runnel -q)
  RUNNEL_BIN="$BIN_DIR/runnel"
  cp "$REPO_ROOT/target/release/runnel" "$RUNNEL_BIN"
fi

# Like lib.sh's start_broker, but with the private binary and no rebuild.
start_test_broker() {
  if [ -n "${RUNNEL_BOOTSTRAP:-}" ]; then BROKER="$RUNNEL_BOOTSTRAP"; return 0; fi
  local port i
  port="$(free_port)"
  BROKER_DIR="$(mktemp -d /tmp/runnel-compat.XXXXXX)"
  "$RUNNEL_BIN" --override "listeners=PLAINTEXT://127.0.0.1:$port" \
    --override "log.dirs=$BROKER_DIR/data" "${COMPAT_BROKER_ARGS[@]}" "${BROKER_ARGS[@]}" "$@" \
    >"$BROKER_DIR/broker.log" 2>&1 &
  BROKER_PID=$!
  BROKER="127.0.0.1:$port"
  for i in $(seq 1 200); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null; then
      return 0
    fi
    kill -0 "$BROKER_PID" 2>/dev/null || { cat "$BROKER_DIR/broker.log" >&2; return 1; }
    sleep 0.05
  done
  return 1
}

# ------------------------------------------------------------------ running
export LD_LIBRARY_PATH="$TREE/src:$TREE/src-cpp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
declare -A RESULT=() DURATION=() NOTE=()
REPORTED=()

strip_ansi() { sed -e 's/\x1b\[[0-9;]*m//g' -e 's/\x1b(B//g'; }

run_one() { # key = NNNN@scenario or NNNN@scenario@SUB (sub-tests matching SUB)
  local key="$1" num="${1%%@*}" rest="${1#*@}" sc sub=""
  sc="${rest%%@*}"
  [[ "$rest" == *@* ]] && sub="${rest#*@}"
  local tag="$num" extra=() bextra=() envs=()
  if [ "$sc" != default ]; then
    tag="$num-$sc"; extra=(-s "$sc")
    [ "$sc" = noautocreate ] && bextra=(--override auto.create.topics.enable=false)
  fi
  if [ -n "$sub" ]; then
    tag="$tag-sub-$(printf '%s' "$sub" | tr -c 'A-Za-z0-9_.-' '_')"
    envs=(SUBTESTS="$sub")
  fi
  local dir="$RESULTS_DIR/$tag"
  mkdir -p "$dir"
  local t0 rc=0
  t0=$(date +%s)
  if start_test_broker "${bextra[@]}"; then
    printf 'bootstrap.servers=%s\n' "$BROKER" >"$dir/test.conf"
    # Tests that shell out to kafka-topics.sh get the stand-in (kafka-path/).
    envs+=(KAFKA_PATH="$HERE/kafka-path" BROKERS="$BROKER")
    # shellcheck disable=SC2086
    # (The braces keep bash's "Aborted" job message out of the output: the
    # runner abort()s after a failure when client threads are still alive.)
    # cwd is tests/: 0053 reads ../src/statistics_schema.json.
    { (cd "$TREE/tests" && env "${envs[@]}" RDKAFKA_TEST_CONF="$dir/test.conf" TESTS="$num" \
        timeout -k 10 "$TEST_CAP" stdbuf -oL -eL "$RUNNER" -L -p1 ${RUNNER_ARGS:-} "${extra[@]}" \
        >"$dir/runner.log" 2>&1); } 2>/dev/null || rc=$?
  else
    echo "broker did not start" >"$dir/runner.log"
    rc=255
  fi
  local secs=$(($(date +%s) - t0))
  mv "$TREE"/tests/stats_"$num"_*.json "$dir"/ 2>/dev/null || true
  local broker_dead=""
  if [ -n "${BROKER_PID:-}" ] && ! kill -0 "$BROKER_PID" 2>/dev/null; then
    broker_dead="broker died during the test"
  fi
  [ -n "${BROKER_DIR:-}" ] && cp "$BROKER_DIR/broker.log" "$dir/broker.log" 2>/dev/null
  stop_broker
  BROKER_PID=""

  # Summary rows: |<color> NAME | STATE | 1.234s |...
  local rows
  rows="$(strip_ansi <"$dir/runner.log" | sed -n 's/^| *\([0-9][0-9][0-9][0-9]_[A-Za-z0-9_]*\) *| *\([A-Z_]*\) *| *\([0-9.]*\)s.*/\1 \2 \3/p')"
  local name state d names
  if [ -n "$sub" ]; then
    names="${SUBNAME[$key]} - -"
  else
    names="$(awk -v n="$num" 'index($1, n "_") == 1' <<<"$CATALOGUE")"
  fi
  while read -r name _ scenario; do
    local rname="$name"
    if [ -n "$sub" ]; then
      rname="$name/$sub"
    else
      [ -n "${WANT[$name]:-}" ] || continue
      local s2=default
      [[ "$scenario" == *default* ]] || s2="$scenario"
      [ "$s2" = "$sc" ] || continue
    fi
    state="$(awk -v n="$name" '$1==n {s=$2} END {print s}' <<<"$rows")"
    d="$(awk -v n="$name" '$1==n {s=$3} END {print s}' <<<"$rows")"
    case "$state" in
      PASSED|FAILED|SKIPPED) ;;
      RUNNING) state=FAILED; NOTE[$rname]="still running when the runner stopped" ;;
      *)
        state=FAILED
        if [ $rc = 124 ] || [ $rc = 137 ]; then
          NOTE[$rname]="killed by the ${TEST_CAP}s cap"
        else
          NOTE[$rname]="no result (runner exit $rc)"
        fi ;;
    esac
    if [ -z "${NOTE[$rname]:-}" ] && [ "$state" != PASSED ]; then
      # The runner's own reason: what follows the duration column.
      NOTE[$rname]="$(strip_ansi <"$dir/runner.log" |
        sed -n "s/^| *$name *| *[A-Z]* *| *[0-9.]*s *| *//p" | tail -1 | cut -c1-160)"
    fi
    if [ -z "${NOTE[$rname]:-}" ] && [ "$state" = FAILED ]; then
      # Timeouts are reported after the summary: the line after "### Test".
      NOTE[$rname]="$(strip_ansi <"$dir/runner.log" |
        sed -n "/^### Test \"$name/{n;p;q}" | cut -c1-160)"
    fi
    if [ -n "$sub" ] && [ "$state" = PASSED ]; then
      # The runner passes a test whose sub-tests were all filtered out:
      # demand a PASS line of a matching sub-test and no FAIL line.
      local subs_passed subs_failed
      subs_passed="$(strip_ansi <"$dir/runner.log" | grep -F "$sub" | grep -c ': PASS (' || true)"
      subs_failed="$(strip_ansi <"$dir/runner.log" | grep -F "$sub" | grep -c ': FAIL' || true)"
      if [ "$subs_passed" = 0 ] || [ "$subs_failed" != 0 ]; then
        state=FAILED
        NOTE[$rname]="sub-tests matching '$sub': $subs_passed passed, $subs_failed failed"
      else
        NOTE[$rname]="$subs_passed sub-test(s) passed"
      fi
    fi
    [ -n "$broker_dead" ] && NOTE[$rname]="${NOTE[$rname]:+${NOTE[$rname]}; }$broker_dead"
    RESULT[$rname]="$state"
    REPORTED+=("$rname")
    DURATION[$rname]="${d:-$secs}"
    printf '%-52s %-8s %7ss  %s\n' "$rname" "$state" "${DURATION[$rname]}" "${NOTE[$rname]:-}"
  done <<<"$names"
}

log "librdkafka $LIBRDKAFKA_VERSION suite vs Runnel: ${#RUNS[@]} runner invocation(s), logs in $RESULTS_DIR"
for key in "${RUNS[@]}"; do
  run_one "$key"
done

# ------------------------------------------------------------------ summary
passed=() failed=() skipped=() allow_bad=()
for name in "${REPORTED[@]}"; do
  case "${RESULT[$name]}" in
    PASSED) passed+=("$name") ;;
    SKIPPED) skipped+=("$name") ;;
    *) failed+=("$name") ;;
  esac
  if [ "${RESULT[$name]}" != PASSED ] && { [ -n "${ALLOW[$name]:-}" ] || [ -n "${ALLOW[${name:0:4}]:-}" ]; }; then
    allow_bad+=("$name")
  fi
done

{
  printf 'name\tresult\tseconds\tnote\n'
  for name in "${REPORTED[@]}"; do
    printf '%s\t%s\t%s\t%s\n' "$name" "${RESULT[$name]}" "${DURATION[$name]}" "${NOTE[$name]:-}"
  done
} >"$RESULTS_DIR/results.tsv"

echo
echo "== librdkafka $LIBRDKAFKA_VERSION test suite against Runnel (TEST_KAFKA_VERSION=$TEST_KAFKA_VERSION${IDEMPOTENT:+, runner -P}) =="
echo "passed:  ${passed[*]:-}"
echo "failed:  ${failed[*]:-}"
echo "skipped: ${skipped[*]:-}"
echo "logs and results.tsv: $RESULTS_DIR"
[ ${#allow_bad[@]} -gt 0 ] && echo "NOT PASSING but listed in tests.allow: ${allow_bad[*]}"
# The last line follows compat/run-all.sh's convention.
echo "$SUITE_NAME: ${#passed[@]} passed, ${#failed[@]} failed, ${#skipped[@]} skipped"
[ ${#allow_bad[@]} -eq 0 ] || exit 1
exit 0
}
