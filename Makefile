# Electra: the two commands are `make run` and `make test`. Each installs what it needs.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PY := .venv/bin/python
export UV_LINK_MODE ?= copy

.PHONY: run test test-all test-web soak bench bench-quick faults faults-quick security gas settlement-gas anchor-gas compile lint deps py-deps npm-deps web-vendor pg-deps browser-deps clean-data

## Install uv if missing, then the locked Python and npm dependencies.
deps: py-deps npm-deps

$(UV):
	python3 -m pip install --user --quiet 'uv==0.13.8' || python3 -m pip install --quiet 'uv==0.13.8'

py-deps: $(UV)
	$(UV) sync --frozen --quiet

# npm ci only when the lock changed since the last install.
node_modules/.electra-installed: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

npm-deps: node_modules/.electra-installed web-vendor

## The web app's browser assets (leaflet, world-atlas, chart.js, ...), copied from node_modules into
## src/electra/web/static/vendor/. The copies are committed, so a Python-only install serves them too.
web-vendor: node_modules/.electra-installed
	node src/electra/web/vendor.js

## PostgreSQL server binaries for the store tests, from Debian's package, only if none are installed.
## The tests start a throwaway cluster of their own (tests/pgserver.py), never the package's one on 5432.
pg-deps:
	@if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then \
		echo "pg-deps: no initdb under /usr/lib/postgresql/*/bin; installing Debian's postgresql package"; \
		sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	fi

## Debian's chromium for the browser tests (Playwright drives it; its own browser download cannot work here).
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "browser-deps: no /usr/bin/chromium; installing Debian's chromium package"; \
		sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi

## Run the platform on its embedded defaults (anvil dev chain + SQLite under ./.electra).
run: deps
	$(UV) run --frozen electra up

## The whole test suite, minus the slow soak/load runs.
test: deps pg-deps browser-deps
	$(UV) run --frozen pytest -m "not slow" -q

## Only the browser tests of the web app (screenshots in test-artifacts/screenshots/).
test-web: deps browser-deps
	$(UV) run --frozen pytest tests/test_web_browser.py tests/test_web_assets.py -q

## The slow runs: the pytest runs marked slow, then a 30-minute soak of the whole platform
## (memory over time, errors, settlement and anchor lag; docs/benchmarks.md#soak, docs/img/soak_memory.png).
soak: deps pg-deps
	$(UV) run --frozen pytest -m slow -q
	mkdir -p bench/results && $(UV) run --frozen python bench/soak.py --minutes 30 --chargers 60 --write docs/benchmarks.md --json bench/results/soak.json

## Every benchmark in bench/, each beside its baseline, then the report: the summary table at the top
## of docs/benchmarks.md and the figures in docs/img/ (about an hour with the 30-minute soak).
BENCH_DOC ?= docs/benchmarks.md
BENCH_IMG ?= docs/img
SOAK_MINUTES ?= 30
bench: deps pg-deps
	mkdir -p bench/results
	$(UV) run --frozen python bench/gas.py --write $(BENCH_DOC)
	$(UV) run --frozen python bench/settlement_gas.py --write $(BENCH_DOC)
	$(UV) run --frozen python bench/anchor_gas.py --write $(BENCH_DOC)
	$(UV) run --frozen python bench/ledger.py --write $(BENCH_DOC)
	$(UV) run --frozen python bench/meter_data.py --write $(BENCH_DOC)
	$(UV) run --frozen python bench/discovery.py --write $(BENCH_DOC) --json bench/results/discovery.json
	$(UV) run --frozen python bench/ocpp_load.py --write $(BENCH_DOC) --json bench/results/ocpp_load.json
	$(UV) run --frozen python bench/forecast_eval.py --write docs/intelligence.md
	$(UV) run --frozen python bench/maintenance_eval.py --write docs/intelligence.md
	$(UV) run --frozen python bench/ratelimit.py --write $(BENCH_DOC)
	$(UV) run --frozen python bench/holdings.py --write $(BENCH_DOC)
	$(UV) run --frozen python bench/soak.py --minutes $(SOAK_MINUTES) --write $(BENCH_DOC) --plot $(BENCH_IMG)/soak_memory.png --json bench/results/soak.json
	$(UV) run --frozen python bench/report.py --doc $(BENCH_DOC) --img $(BENCH_IMG)

## A short run of the benchmarks that take minutes (CI runs it so they cannot rot): into
## bench/results/, never into docs/.
bench-quick: deps pg-deps
	mkdir -p bench/results/img
	cp docs/benchmarks.md bench/results/benchmarks-quick.md
	$(UV) run --frozen python bench/discovery.py --stations 20000 --queries 200 --brute-queries 20 --http-queries 100 --write bench/results/benchmarks-quick.md --json bench/results/discovery.json
	$(UV) run --frozen python bench/ocpp_load.py --quick --write bench/results/benchmarks-quick.md --json bench/results/ocpp_load.json
	$(UV) run --frozen python bench/soak.py --minutes 1 --chargers 8 --round-s 30 --sample-s 5 --write bench/results/benchmarks-quick.md --plot bench/results/img/soak_memory.png --json bench/results/soak.json
	$(UV) run --frozen python bench/ratelimit.py --quick --write bench/results/benchmarks-quick.md
	$(UV) run --frozen python bench/holdings.py --quick --write bench/results/benchmarks-quick.md
	$(UV) run --frozen python bench/report.py --doc bench/results/benchmarks-quick.md --img bench/results/img

## The fault suite (faults/): SIGKILL under 1,000 chargers, a 60 s chain outage, reorgs, a PostgreSQL
## restart, a 10,000-charger reconnect storm, a full and a read-only disk. About 6.5 minutes.
faults: deps pg-deps
	nice -n 10 $(UV) run --frozen python -m faults

## The same scenarios, short (smaller fleets, 10 s outages); .ci/run runs it after make test.
faults-quick: deps pg-deps
	nice -n 10 $(UV) run --frozen python -m faults --quick

## The security suite (docs/security.md): OCPP fuzzing with counts, signatures, access control,
## reentrancy, contract invariants; the API's schemathesis run where the api branch brought it.
security: deps pg-deps
	$(UV) run --frozen pytest -q tests/test_security_fuzz.py tests/test_signatures.py tests/test_access_control.py \
		tests/test_reentrancy.py tests/test_payment_hub_stateful.py tests/test_staking_stateful.py \
		tests/test_rewards_stateful.py tests/test_ocpp_frames.py tests/test_ocpp_security.py
	@if grep -rlq schemathesis tests/; then \
		$(UV) run --frozen pytest -q -k schemathesis tests/; \
	else \
		echo "security: no schemathesis test in tests/ yet (the API fuzzing comes with the api branch)"; \
	fi

## Gas per operation on a fresh dev chain; updates docs/benchmarks.md.
gas: deps
	$(UV) run --frozen python bench/gas.py --write docs/benchmarks.md

## Gas per settled session on PaymentHub vs two baselines (about 2 minutes); updates docs/benchmarks.md.
settlement-gas: deps
	$(UV) run --frozen python bench/settlement_gas.py --write docs/benchmarks.md

## Gas per anchored session on SessionAnchor vs one tx per session (seconds); updates docs/benchmarks.md.
anchor-gas: deps
	$(UV) run --frozen python bench/anchor_gas.py --write docs/benchmarks.md

## Recompile the contracts into src/electra/chain/artifacts.
compile: npm-deps
	node contracts/compile.js

lint: deps
	$(UV) run --frozen ruff check src tests bench faults
	$(UV) run --frozen ruff format --check src tests bench faults
	$(UV) run --frozen mypy src/electra/domain

clean-data:
	rm -rf .electra
