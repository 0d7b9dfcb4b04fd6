# Electra: the two commands are `make run` and `make test`. Each installs what it needs.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PY := .venv/bin/python
export UV_LINK_MODE ?= copy

.PHONY: run test test-all soak faults faults-quick security gas settlement-gas anchor-gas compile lint deps py-deps npm-deps pg-deps clean-data

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

npm-deps: node_modules/.electra-installed

## PostgreSQL server binaries for the store tests, from Debian's package, only if none are installed.
## The tests start a throwaway cluster of their own (tests/pgserver.py), never the package's one on 5432.
pg-deps:
	@if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then \
		echo "pg-deps: no initdb under /usr/lib/postgresql/*/bin; installing Debian's postgresql package"; \
		sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	fi

## Run the platform on its embedded defaults (anvil dev chain + SQLite under ./.electra).
run: deps
	$(UV) run --frozen electra up

## The whole test suite, minus the slow soak/load runs.
test: deps pg-deps
	$(UV) run --frozen pytest -m "not slow" -q

## Only the slow soak and load runs.
soak: deps pg-deps
	$(UV) run --frozen pytest -m slow -q

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
