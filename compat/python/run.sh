#!/usr/bin/env bash
# Python clients (confluent-kafka / librdkafka and kafka-python) against Runnel.
#
#   compat/python/run.sh              # builds and starts a broker, runs the suite
#   RUNNEL_BOOTSTRAP=host:port ...    # uses a running broker instead
#   RUN_PENDING=1 ...                 # also runs scenarios marked pending
#
# Prints `python: N passed, M failed` and exits non-zero when a scenario listed
# in tests.allow failed or did not run.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../lib.sh"

# Pinned versions, verified to install from PyPI as wheels on Python 3.11.
CONFLUENT_KAFKA=2.16.1   # bundles librdkafka 2.16.0
KAFKA_PYTHON=3.0.12
PYTEST=9.2.0
PYTEST_TIMEOUT=2.4.0

CACHE="$(compat_cache python)"
VENV="$CACHE/venv"
STAMP="$VENV/.runnel-pins"
PINS="confluent-kafka==$CONFLUENT_KAFKA kafka-python==$KAFKA_PYTHON pytest==$PYTEST pytest-timeout==$PYTEST_TIMEOUT"

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$PINS" ]; then
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    # Debian's python3 ships venv/ensurepip separately.
    rm -rf "$VENV"
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q --disable-pip-version-check $PINS
  echo "$PINS" >"$STAMP"
fi

start_broker
export BROKER

MARK="not pending"
[ -n "${RUN_PENDING:-}" ] && MARK=""
RESULTS="$CACHE/results.xml"
rm -f "$RESULTS"
set +e
(cd "$HERE" && PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" -m pytest \
  -p no:cacheprovider -q -rfE --timeout 120 -W ignore::DeprecationWarning \
  -m "$MARK" --junitxml="$RESULTS" test_*.py)
PYTEST_RC=$?
set -e

# Pytest exit code 5 (no tests collected) leaves no results: judged below as
# every allowed scenario missing.
"$VENV/bin/python" - "$RESULTS" "$HERE/tests.allow" "$PYTEST_RC" <<'PY'
import os, sys
import xml.etree.ElementTree as ET

results_path, allow_path, rc = sys.argv[1], sys.argv[2], int(sys.argv[3])
outcome = {}
if os.path.exists(results_path):
    for case in ET.parse(results_path).getroot().iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        name = f"{module}.py::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            outcome[name] = "failed"
        elif case.find("skipped") is not None:
            outcome[name] = "skipped"
        else:
            outcome[name] = "passed"
allow = [l.strip() for l in open(allow_path) if l.strip() and not l.startswith("#")]
passed = sum(1 for v in outcome.values() if v == "passed")
failed = sum(1 for v in outcome.values() if v == "failed")
bad = [a for a in allow if outcome.get(a) != "passed"]
for a in bad:
    print(f"EXPECTED TO PASS: {a}: {outcome.get(a, 'did not run')}")
for name, v in sorted(outcome.items()):
    if name not in allow and v == "passed":
        print(f"passes but is not in tests.allow: {name}")
if not outcome:
    print(f"pytest ran no tests (exit code {rc})")
print(f"python: {passed} passed, {failed} failed")
sys.exit(1 if bad or not outcome else 0)
PY
