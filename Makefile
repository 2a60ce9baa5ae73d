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

# on two processes, a module's tests in one (their fixtures are the module's), the slowest modules
# first (tests/conftest.py); the ten slowest tests and their times at the end of the run
test: services-install tools
	.venv/bin/python -m pytest tests -n 2 --dist loadfile --no-loadscope-reorder --durations=10

unit: setup tools
	.venv/bin/python -m pytest tests/unit

integration: services-install
	.venv/bin/python -m pytest tests/integration -n 2 --dist loadfile --no-loadscope-reorder --durations=10

# issue 22's figures beside their targets, in one run: one worker, two workers, the Quix Streams and
# Arroyo peers on one 200,000-event backlog, latency and mails at half rate, the RSS of every process,
# the detect state with 24 h of dedup (scaled up from 1% of the UTMs), a py-spy profile (~10-15 min)
bench: services-install
	scripts/bootstrap.sh --bench
	.venv/bin/python -m benchmarks.bench_side --quick --profile

# every run twice, a 60 s live phase, the dedup day from 10% of the UTMs, the restore of a partition
bench-full: services-install
	scripts/bootstrap.sh --bench
	.venv/bin/python -m benchmarks.bench_side --full --profile

# the parts one by one: validation, correlation, heartbeats, store, one whole worker
bench-parts: services-install
	for b in validation correlate heartbeat store worker; do .venv/bin/python -m benchmarks.bench_$$b || exit 1; done

clean:
	rm -rf var .pytest_cache .hypothesis
