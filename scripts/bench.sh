#!/usr/bin/env bash
# `make bench`: builds the release broker and the benchmark, then runs it.
#
#   scripts/bench.sh                      3 runs, Markdown report on stdout
#   scripts/bench.sh --quick              short smoke run
#   scripts/bench.sh --runs 5 --flush --json bench.json
#
# Every flag goes to runnel-bench (see `target/release/runnel-bench --help`).
# Progress goes to stderr, the report to stdout: `scripts/bench.sh > bench.md`.
# The numbers mean most on an otherwise idle machine: the report prints the
# load average before and after.
set -euo pipefail

cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"

cargo build --release --features bench --bins >&2

RUNNEL_BENCH_REVISION="$(git describe --always --dirty 2>/dev/null || true)"
export RUNNEL_BENCH_REVISION
exec "$target_dir/release/runnel-bench" --broker "$target_dir/release/runnel" "$@"
