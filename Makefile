# ThermostatRTOS Platform. `make run` serves on SQLite; `make test` runs every test.
SHELL := /bin/bash
CONFIGURATION ?= release
SWIFT_BUILD_FLAGS ?=
RUN_PACKAGES := libsqlite3-dev liblua5.4-dev libqrencode-dev libjs-chart.js libcurl4-openssl-dev pkg-config
TEST_PACKAGES := $(RUN_PACKAGES) postgresql python3 python3-aiosmtpd libcmocka-dev
BENCH_PACKAGES := $(TEST_PACKAGES) wrk
PG_DIR := $(CURDIR)/.build/test-postgres
# Swift Testing starts every test at once unless told otherwise; on two cores that starves the
# tests that hold a script or a connection to a wall-clock bound. Twice the cores runs fastest here.
TEST_WIDTH ?= $(shell echo $$(( 2 * $$(nproc) )))

.PHONY: run build build-release deps test test-swift test-firmware test-faults test-browser bench clean

deps:
	@scripts/install-deps.sh $(RUN_PACKAGES)

build: deps
	swift build -c $(CONFIGURATION) $(SWIFT_BUILD_FLAGS) --product thermostat

run: build
	mkdir -p var
	swift run -c $(CONFIGURATION) --skip-build thermostat serve

test: test-swift test-firmware test-faults test-browser

test-swift:
	@scripts/install-deps.sh $(TEST_PACKAGES)
	swift build -c release --product thermostat
	swift build --build-tests
	@scripts/test-postgres.sh stop "$(PG_DIR)"; \
	url=$$(scripts/test-postgres.sh start "$(PG_DIR)") || exit 1; \
	trap 'scripts/test-postgres.sh stop "$(PG_DIR)"' EXIT; \
	TEST_DATABASE_URL="$$url" THERMOSTAT_BIN="$(CURDIR)/.build/release/thermostat" \
		SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=$(TEST_WIDTH) swift test --skip-build && \
	THERMOSTAT_BIN="$(CURDIR)/.build/release/thermostat" THERMOSTAT_EXPORT_MEMORY_TEST=1 \
		swift test --skip-build --filter aMillionRowExportStreamsInBoundedMemory

# The release binary under database faults: PostgreSQL restarted and paused mid-ingest, SQLite
# on a full volume (a tmpfs it mounts; skipped with a message where mounting is impossible).
test-faults:
	@scripts/install-deps.sh $(TEST_PACKAGES)
	swift build -c release --product thermostat
	python3 scripts/fault_suite.py --binary "$(CURDIR)/.build/release/thermostat"

# The web dashboard in headless Chromium (scripts/browser_suite.py): one release server on SQLite,
# Selenium from PyPI in .build/browser-venv; screenshots (and a failed step's page) in
# .build/browser-artifacts/.
test-browser:
	@scripts/install-deps.sh $(RUN_PACKAGES) chromium chromium-driver zbar-tools python3-venv
	@scripts/browser-venv.sh "$(CURDIR)/.build/browser-venv"
	swift build -c release --product thermostat
	"$(CURDIR)/.build/browser-venv/bin/python" scripts/browser_suite.py --binary "$(CURDIR)/.build/release/thermostat"

test-firmware:
	@scripts/install-deps.sh $(TEST_PACKAGES)
	$(MAKE) -C Firmware test sim
	swift build -c release --product thermostat
	THERMOSTAT_BIN="$(CURDIR)/.build/release/thermostat" $(MAKE) -C Firmware e2e

bench:
	@scripts/install-deps.sh $(BENCH_PACKAGES)
	swift build -c release --product thermostat
	swift build -c release --product LuaBenchmark
	.build/release/LuaBenchmark 1000000
	cc -O2 scripts/bench/pipe_floor.c -o .build/pipe_floor && .build/pipe_floor 20000
	@scripts/test-postgres.sh stop "$(PG_DIR)-bench"; \
	url=$$(scripts/test-postgres.sh start "$(PG_DIR)-bench") || exit 1; \
	trap 'scripts/test-postgres.sh stop "$(PG_DIR)-bench"' EXIT; \
	BENCH_DATABASE_URL="$$url" python3 scripts/bench.py --binary .build/release/thermostat

clean:
	rm -rf .build var
