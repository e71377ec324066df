# Runnel — the commands a newcomer needs are `make run` and `make test`.
CARGO ?= cargo

.PHONY: all build run test lint fmt bench compat compat-quick deps clean docker docker-test

all: build

build:
	$(CARGO) build --release

# The embedded default: one node on localhost:9092, data in ./runnel-data.
run:
	$(CARGO) run --release --bin runnel

deps:
	scripts/install-deps.sh

# Everything CI runs: unit/property tests, protocol-tests/ (raw wire), and the
# client tests (rdkafka, kcat) against real brokers.
test: deps
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Throughput, latency, RSS and CPU with librdkafka clients against the
# release binary; reported, never asserted.
bench: deps
	scripts/bench.sh

# Other projects' clients and suites against Runnel (compat/*/run.sh):
# librdkafka's test suite, kcat, confluent-kafka, kafka-python, the Java client.
compat: deps
	compat/run-all.sh

# The fast subset CI runs after `make test`.
compat-quick: deps
	compat/run-all.sh --quick

# The FROM scratch image runnel:local (static glibc build) and the kcat
# client image of docker/compose.yaml; prints their sizes.
docker: deps
	scripts/docker-build.sh

# docker/compose.yaml end to end with real clients (in a container and on the
# host), restart and volume, start-up time. Needs a docker engine; about a
# minute plus the static build, so not part of `make test`; CI runs it.
docker-test: deps
	scripts/docker-test.sh

clean:
	$(CARGO) clean
