#!/usr/bin/env bash
# `make docker-test`: builds the images (scripts/docker-build.sh), starts
# docker/compose.yaml, waits for the broker's HEALTHCHECK, and checks with
# real clients:
#   - produce in the client container (kcat, broker:19092), consume on the host
#     (kcat, localhost:9092), and the other way round: each client must be
#     told the advertised address of the listener it came in through;
#   - a consumer group (balanced consumer) commits offsets and resumes;
#   - the data survives `docker compose restart` and a re-created container
#     (the image's volume at /tmp/kraft-combined-logs);
#   - start-up time: container start -> first ApiVersions answered.
# Tears everything down (containers, volumes) and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

export IMAGE=${RUNNEL_IMAGE:-runnel:local}
export CLIENT_IMAGE=${RUNNEL_CLIENT_IMAGE:-runnel-kcat:local}
PROJECT=${RUNNEL_DOCKER_PROJECT:-runnel-docker-test}
FILE=docker/compose.yaml

if docker compose version >/dev/null 2>&1; then
  compose() { docker compose -p "$PROJECT" -f "$FILE" "$@"; }
elif command -v docker-compose >/dev/null; then
  compose() { docker-compose -p "$PROJECT" -f "$FILE" "$@"; }
else
  echo "docker-test: neither 'docker compose' nor docker-compose found" >&2
  exit 1
fi

fail() { echo "docker-test: FAIL: $*" >&2; exit 1; }
step() { echo "docker-test: $*" >&2; }

command -v kcat >/dev/null || scripts/install-deps.sh
command -v python3 >/dev/null || fail "python3 is needed for the start-up probe"

# The compose file publishes 9092 and advertises localhost:9092, as Kafka's does.
if python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(0.5); sys.exit(0 if s.connect_ex(("127.0.0.1",9092))==0 else 1)'; then
  fail "something already listens on localhost:9092; the compose file needs that port"
fi
if docker ps -a --format '{{.Names}}' | grep -qx broker; then
  fail "a container named 'broker' already exists (the compose file fixes container_name: broker)"
fi

scripts/docker-build.sh

cleanup() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    echo "---- broker logs ----" >&2
    compose logs --no-color broker 2>&1 | tail -50 >&2 || true
  fi
  compose down -v --remove-orphans >/dev/null 2>&1 || true
  # A re-created container mounts the volume by name, so `down -v` keeps it.
  for v in $volumes; do docker volume rm "$v" >/dev/null 2>&1 || true; done
  exit $rc
}
volumes=""
# Remembers the broker's data volume for the clean-up.
note_volumes() {
  volumes="$volumes $(docker inspect --format '{{range .Mounts}}{{.Name}} {{end}}' "$(compose ps -q broker)")"
}
trap cleanup EXIT

# Sends ApiVersions v0 to localhost:9092 until answered; prints the ms
# elapsed since the epoch-ms given as $1. (docker-proxy accepts connections
# before the broker listens, so only an answer counts.)
probe_ms() {
  python3 - "$1" <<'PY'
import socket, struct, sys, time
start = int(sys.argv[1]) / 1000.0
req = struct.pack(">hhih", 18, 0, 7, 0)
deadline = time.time() + 30
while time.time() < deadline:
    try:
        with socket.create_connection(("127.0.0.1", 9092), timeout=1) as s:
            s.sendall(struct.pack(">i", len(req)) + req)
            head = s.recv(10)
            if len(head) >= 10:
                size, corr, code = struct.unpack(">iih", head[:10])
                if corr == 7 and code == 0:
                    print(round((time.time() - start) * 1000))
                    sys.exit(0)
    except OSError:
        pass
    time.sleep(0.005)
sys.exit(1)
PY
}
now_ms() { date +%s%3N; }

# The broker's own share: docker's StartedAt for the container to its
# "runnel started" log line (the process's start-up, without the engine's).
inside_ms() {
  local started ready
  started=$(docker inspect --format '{{.State.StartedAt}}' "$1")
  ready=$(docker logs "$1" 2>&1 | grep 'runnel started' | tail -1 | awk '{ print $1 }')
  python3 - "$started" "$ready" <<'PY'
import sys
from datetime import datetime
def parse(s):
    s = s.strip().rstrip("Z")
    main, _, frac = s.partition(".")
    return datetime.fromisoformat(main).timestamp() + float("0." + (frac or "0"))
print(round((parse(sys.argv[2]) - parse(sys.argv[1])) * 1000))
PY
}

wait_healthy() {
  local id status
  id=$(compose ps -q broker)
  for _ in $(seq 1 150); do
    status=$(docker inspect --format '{{.State.Health.Status}}' "$id")
    [ "$status" = healthy ] && return 0
    [ "$(docker inspect --format '{{.State.Running}}' "$id")" = true ] || fail "broker container exited"
    sleep 0.2
  done
  fail "broker not healthy after 30s (status: $status)"
}

client() { compose run --rm -T client "$@"; }

step "starting the broker"
compose up --no-start broker >/dev/null 2>&1
id=$(compose ps -q broker)
note_volumes
# Timed with the docker CLI itself: docker-compose's own start-up would
# dominate the number.
t0=$(now_ms)
docker start "$id" >/dev/null
first_ms=$(probe_ms "$t0") || fail "no ApiVersions answer on localhost:9092 within 30s"
step "fresh start: first ApiVersions answered ${first_ms} ms after 'docker start'"
wait_healthy
fresh_inside=$(inside_ms "$id")
step "healthy (HEALTHCHECK: runnel healthcheck); StartedAt -> 'runnel started' ${fresh_inside} ms"

step "produce in the client container (broker:19092), consume on the host (localhost:9092)"
printf 'k1:from-container-1\nk2:from-container-2\nk3:from-container-3\n' |
  client -b broker:19092 -t compose-test -K: -P
got=$(kcat -b localhost:9092 -t compose-test -C -e -q -o beginning -f '%k=%s\n' -m 20)
want=$'k1=from-container-1\nk2=from-container-2\nk3=from-container-3'
[ "$got" = "$want" ] || fail "host consumer read: '$got', want '$want'"

step "produce on the host, consume in the client container"
printf 'from-host-1\nfrom-host-2\n' | kcat -b localhost:9092 -t host-test -P
got=$(client -b broker:19092 -t host-test -C -e -q -o beginning)
[ "$got" = $'from-host-1\nfrom-host-2' ] || fail "container consumer read: '$got'"

step "each listener advertises its own address"
brokers() { python3 -c 'import json,sys; print(" ".join(b["name"] for b in json.load(sys.stdin)["brokers"]))'; }
got=$(client -b broker:19092 -L -J | brokers)
[ "$got" = "broker:19092" ] || fail "Metadata through broker:19092 lists brokers '$got'"
got=$(kcat -b localhost:9092 -L -J | brokers)
[ "$got" = "localhost:9092" ] || fail "Metadata through localhost:9092 lists brokers '$got'"

step "a consumer group in the client container commits and resumes"
# No -o: kcat would assign that offset itself instead of the committed one.
got=$(client -b broker:19092 -G docker-test-group -X auto.offset.reset=earliest -e -q compose-test | sort)
[ "$(echo "$got" | wc -l)" -eq 3 ] || fail "group consumer read: '$got'"
printf 'k4:after-commit\n' | client -b broker:19092 -t compose-test -K: -P
got=$(client -b broker:19092 -G docker-test-group -X auto.offset.reset=earliest -e -q compose-test)
[ "$got" = "after-commit" ] || fail "group did not resume from its committed offset: '$got'"

step "docker compose restart keeps the data"
compose restart broker >/dev/null
wait_healthy
got=$(kcat -b localhost:9092 -t compose-test -C -e -q -o beginning -f '%s\n' | tr '\n' ' ')
[ "$got" = "from-container-1 from-container-2 from-container-3 after-commit " ] ||
  fail "after restart the host read: '$got'"

t0=$(now_ms)
docker stop "$id" >/dev/null
stop_ms=$(( $(now_ms) - t0 ))
t0=$(now_ms)
docker start "$id" >/dev/null
restart_ms=$(probe_ms "$t0") || fail "no ApiVersions answer after docker stop/start"
wait_healthy
data_inside=$(inside_ms "$id")
step "docker stop took ${stop_ms} ms; first ApiVersions ${restart_ms} ms after 'docker start' with data; StartedAt -> 'runnel started' ${data_inside} ms"

step "a re-created container keeps the data (the volume)"
before=$(compose ps -q broker)
compose up -d --force-recreate broker >/dev/null 2>&1
[ "$(compose ps -q broker)" != "$before" ] || fail "the container was not re-created"
note_volumes
wait_healthy
got=$(client -b broker:19092 -t host-test -C -e -q -o beginning | tr '\n' ' ')
[ "$got" = "from-host-1 from-host-2 " ] || fail "after re-creating the container: '$got'"

size=$(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{ printf "%.1f MB", $1 / 1e6 }')
step "PASS: image $IMAGE $size; 'docker start' -> first ApiVersions on localhost:9092: ${first_ms} ms (empty volume), ${restart_ms} ms (with data); of which the process (StartedAt -> 'runnel started'): ${fresh_inside} ms, ${data_inside} ms; docker stop ${stop_ms} ms"
