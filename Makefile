# The two commands of the README: `make demo` and `make test`. Each installs what it needs.
.PHONY: demo test unit integration bench bench-full bench-parts setup services-install tools clean

setup:
	scripts/bootstrap.sh --test

# helm and promtool, built from their Go modules once into the Go bin (the chart's tests need them)
tools:
	scripts/tools.sh

services-install: setup
	scripts/kafka.sh install
	scripts/clickhouse-server.sh install
	scripts/chromium.sh install

demo: setup
	scripts/kafka.sh start
	.venv/bin/mimamori demo

# the ten slowest tests and their times at the end of the run
test: services-install tools
	.venv/bin/python -m pytest tests --durations=10

unit: setup tools
	.venv/bin/python -m pytest tests/unit

integration: services-install
	.venv/bin/python -m pytest tests/integration

# one worker, two workers and the Quix Streams peer on one backlog, latency, mails, RSS (< 5 min)
bench: services-install
	scripts/bootstrap.sh --bench
	.venv/bin/python -m benchmarks.bench_side --quick

bench-full: services-install
	scripts/bootstrap.sh --bench
	.venv/bin/python -m benchmarks.bench_side --full --profile

# the parts one by one: validation, correlation, heartbeats, store, one whole worker
bench-parts: services-install
	for b in validation correlate heartbeat store worker; do .venv/bin/python -m benchmarks.bench_$$b || exit 1; done

clean:
	rm -rf var .pytest_cache .hypothesis
