#!/usr/bin/env bash
# kcat (Debian's package, built on librdkafka 2.0.2) against Runnel.
#
#   compat/kcat/run.sh                # builds and starts a broker, runs every scenario
#   RUNNEL_BOOTSTRAP=host:port ...    # uses a running broker instead
#   RUN_PENDING=1 ...                 # also runs scenarios that need missing features
#
# Each scenario is a shell function that returns non-zero with a message on
# stdout when a check fails. Topics are auto-created by the first produce
# (auto.create.topics.enable, the default) and named per run, so a shared
# broker can be reused. Every kcat call is bounded by `timeout`.
#
# Prints `kcat: N passed, M failed` and exits non-zero when a scenario listed
# in tests.allow failed or did not run.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../lib.sh"

if ! command -v kcat >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null || exit 1
fi

# 4 partitions per auto-created topic, so `-G` consumers have some to share
# (every other scenario names partition 0).
start_broker --override num.partitions=4 || exit 1
TMP="$(mktemp -d /tmp/runnel-kcat.XXXXXX)"
trap 'stop_broker; rm -rf "$TMP"' EXIT
RUN="$(date +%s)-$$"

kc() { timeout 30 kcat -b "$BROKER" -m 10 "$@"; }
now_ms() { date +%s%3N; }
topic() { echo "kcat-$1-$RUN"; }

# consume TOPIC FORMAT [kcat consumer args...]: partition 0, to the end,
# batch CRCs verified, stdout only. A short fetch wait: at the end of the log
# the broker holds each fetch that long (as Kafka does) before kcat sees EOF.
consume() {
  local t=$1 fmt=$2
  shift 2
  kc -C -t "$t" -p 0 -e -X check.crcs=true -X fetch.wait.max.ms=100 -f "$fmt" "$@" 2>"$TMP/consume.err"
}

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() {
  if [ "$2" != "$3" ]; then
    echo "$1: expected"
    printf '%s\n' "$2" | head -5 | sed 's/^/    /'
    echo "  got"
    printf '%s\n' "$3" | head -5 | sed 's/^/    /'
    [ -s "$TMP/consume.err" ] && sed 's/^/  stderr: /' "$TMP/consume.err" | head -5
    return 1
  fi
}

# ------------------------------------------------------------------ scenarios

metadata_list() {
  local t
  t=$(topic meta)
  echo hello | kc -P -t "$t" -p 0 || { echo "produce failed"; return 1; }
  local out
  out=$(kc -L -t "$t") || { echo "kcat -L failed: $out"; return 1; }
  grep -q '^ 1 brokers:$' <<<"$out" || { echo "no broker line: $out"; return 1; }
  grep -Eq "^  broker [0-9]+ at ${BROKER} \(controller\)$" <<<"$out" || { echo "broker line: $out"; return 1; }
  grep -q "^  topic \"$t\" with [0-9]* partitions:$" <<<"$out" || { echo "topic line: $out"; return 1; }
  grep -Eq '^    partition 0, leader ([0-9]+), replicas: \1, isrs: \1$' <<<"$out" || { echo "partition line: $out"; return 1; }
  # The full listing (no -t) includes it too.
  kc -L | grep -q "topic \"$t\"" || { echo "topic missing from full listing"; return 1; }
}

metadata_json() {
  local t
  t=$(topic meta-json)
  echo hello | kc -P -t "$t" -p 0 || { echo "produce failed"; return 1; }
  kc -L -J -t "$t" | python3 -c '
import json, sys
md = json.load(sys.stdin)
node = md["brokers"][0]["id"]
assert md["controllerid"] == node, md
(topic,) = md["topics"]
assert topic["topic"] == sys.argv[1], topic
assert "error" not in topic, topic
p0 = [p for p in topic["partitions"] if p["partition"] == 0][0]
assert p0["leader"] == node and p0["replicas"] == [{"id": node}] and p0["isrs"] == [{"id": node}], p0
' "$t"
}

# produce_codec CODEC: keyed lines with headers, read back exactly.
produce_codec() {
  local codec=$1 t input expected got
  t=$(topic "codec-$codec")
  input=$(for i in $(seq 1 300); do printf 'key-%d:value-%d-%s\n' "$i" "$i" "$(printf '%*s' $((i % 40)) '' | tr ' ' z)"; done)
  printf '%s\n' "$input" | kc -P -t "$t" -p 0 -K: -z "$codec" -H src=kcat -H "codec=$codec" ||
    { echo "produce failed"; return 1; }
  expected=$(printf '%s\n' "$input" | awk -F: -v c="$codec" '{ printf "%d|%s|%s|src=kcat,codec=%s\n", NR-1, $1, $2, c }')
  got=$(consume "$t" '%o|%k|%s|%h\n' -o beginning)
  expect_eq "records" "$expected" "$got"
}

produce_idempotent() {
  local t got
  t=$(topic idempotent)
  seq 1 2000 | kc -P -t "$t" -p 0 -X enable.idempotence=true -X linger.ms=5 ||
    { echo "produce failed"; return 1; }
  got=$(consume "$t" '%s\n' -o beginning)
  expect_eq "records in order, no duplicates" "$(seq 1 2000)" "$got"
}

null_keys_and_values() {
  local t got
  t=$(topic nulls)
  printf 'k:\n:v\nk2:v2\n' | kc -P -t "$t" -p 0 -K: -Z || { echo "produce failed"; return 1; }
  got=$(consume "$t" '%K|%k|%S|%s\n' -o beginning -Z)
  expect_eq "null key/value" $'1|k|-1|NULL\n-1|NULL|1|v\n2|k2|2|v2' "$got"
}

binary_payload() {
  local t
  t=$(topic binary)
  head -c 524288 /dev/urandom >"$TMP/payload.bin"
  # A file argument is sent whole, as one message.
  kc -P -t "$t" -p 0 -z lz4 "$TMP/payload.bin" || { echo "produce failed"; return 1; }
  consume "$t" '%s' -o beginning -c 1 >"$TMP/payload.out" || { echo "consume failed"; return 1; }
  cmp -s "$TMP/payload.bin" "$TMP/payload.out" ||
    { echo "payload differs ($(stat -c %s "$TMP/payload.out") bytes back of 524288)"; return 1; }
}

# The consumer offset forms, on one 10-record topic.
# Made by the first scenario that needs it (call directly, not in $(...), so
# the global survives).
OFFSETS_TOPIC=""
offsets_topic() {
  if [ -z "$OFFSETS_TOPIC" ]; then
    seq 0 9 | sed 's/^/m/' | kc -P -t "$(topic offsets)" -p 0 || return 1
    OFFSETS_TOPIC=$(topic offsets)
  fi
}

consume_beginning() {
  offsets_topic || { echo "produce failed"; return 1; }
  local t=$OFFSETS_TOPIC
  expect_eq "-o beginning" "$(seq 0 9 | sed 's/^/m/')" "$(consume "$t" '%s\n' -o beginning)"
}

consume_absolute() {
  offsets_topic || { echo "produce failed"; return 1; }
  local t=$OFFSETS_TOPIC
  expect_eq "-o 6" $'6|m6\n7|m7\n8|m8\n9|m9' "$(consume "$t" '%o|%s\n' -o 6)" &&
    expect_eq "-o 3 -c 2" $'3|m3\n4|m4' "$(consume "$t" '%o|%s\n' -o 3 -c 2)"
}

consume_relative() {
  offsets_topic || { echo "produce failed"; return 1; }
  local t=$OFFSETS_TOPIC
  expect_eq "-o -3" $'7|m7\n8|m8\n9|m9' "$(consume "$t" '%o|%s\n' -o -3)"
}

consume_end() {
  offsets_topic || { echo "produce failed"; return 1; }
  local t=$OFFSETS_TOPIC
  expect_eq "-o end" "" "$(consume "$t" '%o|%s\n' -o end)" &&
    grep -q 'Reached end of topic .* at offset 10' "$TMP/consume.err" ||
    { echo "no end-of-partition at 10: $(cat "$TMP/consume.err")"; return 1; }
}

# Two batches produced at different times, t_mid strictly between them.
TIMES_TOPIC=""
T_MID=""
times_topic() {
  if [ -z "$TIMES_TOPIC" ]; then
    local t
    t=$(topic times)
    printf 'a0\na1\na2\n' | kc -P -t "$t" -p 0 || return 1
    T_MID=$(now_ms)
    # Wait out the clock (not a synchronisation sleep): every later record
    # gets a timestamp > T_MID + 1, every earlier one has <= T_MID.
    local deadline=$((T_MID + 1000))
    while [ "$(now_ms)" -le $((T_MID + 1)) ] && [ "$(now_ms)" -lt $deadline ]; do :; done
    printf 'b3\nb4\n' | kc -P -t "$t" -p 0 || return 1
    TIMES_TOPIC=$t
  fi
}

consume_by_timestamp() {
  times_topic || { echo "produce failed"; return 1; }
  local t=$TIMES_TOPIC
  expect_eq "-o s@mid" $'3|b3\n4|b4' "$(consume "$t" '%o|%s\n' -o "s@$((T_MID + 1))")" &&
    expect_eq "-o s@0" $'0|a0\n1|a1\n2|a2\n3|b3\n4|b4' "$(consume "$t" '%o|%s\n' -o s@0)" &&
    expect_eq "-o beginning -o e@mid" $'0|a0\n1|a1\n2|a2' \
      "$(consume "$t" '%o|%s\n' -o beginning -o "e@$((T_MID + 1))")"
}

query_offsets_for_times() {
  times_topic || { echo "produce failed"; return 1; }
  local t=$TIMES_TOPIC got
  got=$(kc -Q -t "$t:0:$((T_MID + 1))" 2>&1)
  expect_eq "-Q mid" "$t [0] offset 3" "$got" || return 1
  got=$(kc -Q -t "$t:0:0" 2>&1)
  expect_eq "-Q 0" "$t [0] offset 0" "$got" || return 1
  # Past every timestamp: Kafka answers offset -1.
  got=$(kc -Q -t "$t:0:$(($(now_ms) + 3600000))" 2>&1)
  expect_eq "-Q future" "$t [0] offset -1" "$got"
}

timestamps_in_output() {
  times_topic || { echo "produce failed"; return 1; }
  local ts
  ts=$(consume "$TIMES_TOPIC" '%T\n' -o beginning)
  python3 - "$T_MID" "$ts" <<'PY'
import sys
mid, ts = int(sys.argv[1]), [int(x) for x in sys.argv[2].split()]
assert len(ts) == 5, ts
assert all(t <= mid for t in ts[:3]) and all(t > mid + 1 for t in ts[3:]), (mid, ts)
assert ts[0] > mid - 60_000, "CreateTime from the producer's clock"
PY
}

json_envelope() {
  local t
  t=$(topic json)
  printf 'k:v\n' | kc -P -t "$t" -p 0 -K: -H h1=x -H h2=y || { echo "produce failed"; return 1; }
  consume "$t" '' -o beginning -J | python3 -c '
import json, sys
m = json.loads(sys.stdin.readline())
assert (m["offset"], m["key"], m["payload"], m["tstype"]) == (0, "k", "v", "create"), m
assert m["headers"] == ["h1", "x", "h2", "y"] or m["headers"] == {"h1": "x", "h2": "y"}, m
'
}

# ------------------------------------------------------------------ groups

# On a fresh broker no group has been used yet: Kafka creates
# __consumer_offsets on the first FindCoordinator for a group, so until then
# `kcat -L` does not list it. (Run first; skipped with RUNNEL_BOOTSTRAP.)
metadata_no_offsets_topic_before_groups() {
  local out
  out=$(kc -L) || { echo "kcat -L failed: $out"; return 1; }
  if grep -q 'topic "__consumer_offsets"' <<<"$out"; then
    echo "__consumer_offsets listed before any group was used"
    grep -A2 '__consumer_offsets' <<<"$out"
    return 1
  fi
}

# group_consumer NAME GROUP TOPIC [kcat args...]: a balanced consumer in the
# background, records to $TMP/NAME.out ("partition|offset|value"), rebalance
# log to $TMP/NAME.err; its pid in $TMP/NAME.pid.
group_consumer() {
  local name=$1 g=$2 t=$3
  shift 3
  timeout 120 kcat -b "$BROKER" -G "$g" -X check.crcs=true -X fetch.wait.max.ms=100 \
    -X session.timeout.ms=6000 -X heartbeat.interval.ms=500 \
    -f '%p|%o|%s\n' "$@" "$t" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  echo $! >"$TMP/$name.pid"
}

# The partitions of the last rebalance a group consumer logged ("" when the
# last event was a revoke).
assigned_of() {
  grep 'rebalanced' "$TMP/$1.err" | tail -1 | sed -n 's/.*assigned: //p' | grep -o '\[[0-9]*\]' | tr -d '[]' | sort -n | tr '\n' ' '
}

stop_consumer() { # SIGTERM: kcat closes the consumer, which commits
  local pid
  pid=$(cat "$TMP/$1.pid")
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  true
}

partition_count() {
  kc -L -J -t "$1" >/dev/null # the first request may answer before the topic exists
  kc -L -J -t "$1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["topics"][0]["partitions"]))'
}

# Two `kcat -G` instances share a topic's partitions, consume every record
# exactly once between them and commit on exit; a restarted `-G` consumer
# (default offsets, then `-o stored`) resumes after the commits.
group_balanced_consumers() {
  local t g n i a b all want
  t=$(topic group)
  g="kcat-group-$RUN"
  # Created by the metadata request (a producer handle asks to auto-create),
  # so nothing is in it while the group forms.
  n=$(partition_count "$t")
  [ "$n" -ge 2 ] || { echo "topic has $n partitions; needs num.partitions >= 2"; return 1; }
  group_consumer ga "$g" "$t" -X auto.offset.reset=earliest
  group_consumer gb "$g" "$t" -X auto.offset.reset=earliest
  # Stable: both hold partitions and together all of them.
  local deadline=$(($(date +%s) + 30))
  while :; do
    a=$(assigned_of ga); b=$(assigned_of gb)
    all=$(printf '%s %s' "$a" "$b" | tr ' ' '\n' | grep -v '^$' | sort -n | tr '\n' ' ')
    if [ -n "$a" ] && [ -n "$b" ] && [ "$all" = "$(seq 0 $((n - 1)) | tr '\n' ' ')" ]; then break; fi
    if [ "$(date +%s)" -ge $deadline ]; then
      echo "group not stable after 30 s: ga=[$a] gb=[$b]"
      sed 's/^/  ga: /' "$TMP/ga.err" | tail -5; sed 's/^/  gb: /' "$TMP/gb.err" | tail -5
      stop_consumer ga; stop_consumer gb; return 1
    fi
    sleep 0.2
  done
  # 40 records per partition, produced once the group is stable.
  for ((i = 0; i < n; i++)); do
    seq 1 40 | sed "s/^/p$i-/" | kc -P -t "$t" -p "$i" || { echo "produce failed"; stop_consumer ga; stop_consumer gb; return 1; }
  done
  want=$((n * 40))
  deadline=$(($(date +%s) + 30))
  while [ "$(cat "$TMP/ga.out" "$TMP/gb.out" | wc -l)" -lt $want ] && [ "$(date +%s)" -lt $deadline ]; do
    sleep 0.2
  done
  sleep 1 # a late duplicate would show up now
  stop_consumer ga; stop_consumer gb
  local got expected
  got=$(cat "$TMP/ga.out" "$TMP/gb.out" | cut -d'|' -f3 | sort)
  expected=$(for ((i = 0; i < n; i++)); do seq 1 40 | sed "s/^/p$i-/"; done | sort)
  expect_eq "every record exactly once between the two" "$expected" "$got" || return 1
  # Each instance read only its own partitions.
  local p
  for p in $(cut -d'|' -f1 "$TMP/ga.out" | sort -u); do
    [[ " $a " == *" $p "* ]] || { echo "ga read partition $p, assigned [$a]"; return 1; }
  done
  for p in $(cut -d'|' -f1 "$TMP/gb.out" | sort -u); do
    [[ " $b " == *" $p "* ]] || { echo "gb read partition $p, assigned [$b]"; return 1; }
  done
  # Restart with the default offsets (the committed ones): only new records.
  echo after-1 | kc -P -t "$t" -p 1 || { echo "produce failed"; return 1; }
  got=$(timeout 40 kcat -b "$BROKER" -G "$g" -X fetch.wait.max.ms=100 -e -f '%p|%o|%s\n' "$t" 2>"$TMP/gr.err")
  expect_eq "restarted -G consumer (committed offsets)" "1|40|after-1" "$got" ||
    { tail -3 "$TMP/gr.err"; return 1; }
  echo after-2 | kc -P -t "$t" -p 0 || { echo "produce failed"; return 1; }
  got=$(timeout 40 kcat -b "$BROKER" -G "$g" -o stored -X fetch.wait.max.ms=100 -e -f '%p|%o|%s\n' "$t" 2>"$TMP/gr.err")
  expect_eq "restarted -G consumer with -o stored" "0|40|after-2" "$got" ||
    { tail -3 "$TMP/gr.err"; return 1; }
}

# Once a group has been used, __consumer_offsets exists and Kafka lists it in
# a full Metadata request (is_internal=true; kcat -L shows every topic) with
# offsets.topic.num.partitions (50) partitions, each led by the node.
metadata_offsets_topic_after_groups() {
  local out
  out=$(kc -L) || { echo "kcat -L failed: $out"; return 1; }
  grep -q '^  topic "__consumer_offsets" with 50 partitions:$' <<<"$out" ||
    { echo "no '__consumer_offsets with 50 partitions' in kcat -L:"; grep '^  topic' <<<"$out" | head -5; return 1; }
  out=$(kc -L -t __consumer_offsets) || { echo "kcat -L -t failed: $out"; return 1; }
  [ "$(grep -Ec '^    partition [0-9]+, leader ([0-9]+), replicas: \1, isrs: \1$' <<<"$out")" = 50 ] ||
    { echo "partition lines: $(grep -c '^    partition' <<<"$out") well-formed of 50"; return 1; }
}

pending_transactional_produce() {
  local t
  t=$(topic txn)
  echo txn | kc -P -t "$t" -p 0 -X "transactional.id=kcat-$RUN" || { echo "transactional produce failed"; return 1; }
  expect_eq "committed record" "txn" "$(consume "$t" '%s\n' -o beginning -X isolation.level=read_committed)"
}

# ------------------------------------------------------------------ runner

SCENARIOS=()
# Only meaningful on a broker this script started (fresh data directory).
[ -z "${RUNNEL_BOOTSTRAP:-}" ] && SCENARIOS+=(metadata_no_offsets_topic_before_groups)
SCENARIOS+=(metadata_list metadata_json)
for codec in none gzip snappy lz4 zstd; do
  eval "produce_codec_$codec() { produce_codec $codec; }"
  SCENARIOS+=("produce_codec_$codec")
done
SCENARIOS+=(produce_idempotent null_keys_and_values binary_payload json_envelope
  consume_beginning consume_absolute consume_relative consume_end
  consume_by_timestamp query_offsets_for_times timestamps_in_output
  group_balanced_consumers metadata_offsets_topic_after_groups)
[ -n "${RUN_PENDING:-}" ] && SCENARIOS+=(pending_transactional_produce)

declare -A RESULT
passed=0
failed=0
for s in "${SCENARIOS[@]}"; do
  # Run in the current shell (not $(...)) so lazily made topics are shared.
  if "$s" >"$TMP/out" 2>&1; then
    RESULT[$s]=pass
    passed=$((passed + 1))
    echo "PASS $s"
  else
    RESULT[$s]=fail
    failed=$((failed + 1))
    echo "FAIL $s: $(head -1 "$TMP/out")"
    tail -n +2 "$TMP/out" | head -20 | sed 's/^/  /'
  fi
done

bad=0
while read -r name; do
  case "$name" in '' | '#'*) continue ;; esac
  if [ "$name" = metadata_no_offsets_topic_before_groups ] && [ -n "${RUNNEL_BOOTSTRAP:-}" ]; then
    echo "not run with RUNNEL_BOOTSTRAP (needs a fresh broker): $name"
    continue
  fi
  if [ "${RESULT[$name]:-}" != pass ]; then
    echo "EXPECTED TO PASS: $name (${RESULT[$name]:-did not run})"
    bad=1
  fi
done <"$HERE/tests.allow"
echo "kcat: $passed passed, $failed failed"
exit "$bad"
