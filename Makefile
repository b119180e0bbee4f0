# Lantian: every target sets up what it needs. `make demo` and `make test` are the quick start.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements/server.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo demo-month test test-month test-all lint format bench bench-agent bench-month lock clean distributed setup

setup: $(STAMP)

$(STAMP): requirements/server.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found; install Python 3.11"; exit 1; }
	@bash infra/local/system-packages.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo ">> installing pinned dependencies into $(VENV) (first time: about 2 minutes)"
	@$(BIN)/pip install -q --disable-pip-version-check -r requirements/server.lock 2>&1 | grep -v "^WARNING: Location" || true
	@$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 | grep -v "^WARNING: Location" || true
	@$(BIN)/python -c "import airflow.sdk, great_expectations, serial, fastapi, lantian" >/dev/null 2>&1 || { echo "make: dependency install failed"; exit 1; }
	@rm -f $(VENV)/.installed-*; touch $@

demo: $(STAMP)
	$(BIN)/lantian demo $(DEMO_ARGS)

demo-month: $(STAMP)
	$(BIN)/lantian demo --month

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not distributed and not month" $(PYTEST_ARGS)

# The simulated month end to end (tests/month): too long for the everyday run, run by CI.
test-month: $(STAMP)
	$(BIN)/python -m pytest -q -m month tests/month $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench

# A whole measured district month (hours; `make bench` extrapolates it from a few days).
bench-month: $(STAMP)
	$(BIN)/python -m bench.scale_month --full-month

lock:
	$(PYTHON) -m venv /tmp/lantian-lock && /tmp/lantian-lock/bin/pip install -q -r requirements/server.in
	{ echo "# Pinned central-side environment (Python 3.11). Regenerate with 'make lock' after editing server.in."; /tmp/lantian-lock/bin/pip freeze; /tmp/lantian-lock/bin/pip freeze --all | grep -E "^(setuptools|wheel)=="; } > requirements/server.lock

clean:
	rm -rf var out .pytest_cache

# --- distributed mode (infra/distributed, docs/distributed.md) ----------------------------------
.PHONY: distributed-stop distributed-status test-distributed

# Airflow on PostgreSQL + CeleryExecutor + Redis, two workers, two ingest replicas, on this host.
distributed: $(STAMP)
	bash infra/distributed/start.sh

distributed-stop:
	bash infra/distributed/stop.sh

distributed-status:
	bash infra/distributed/status.sh

# Needs PostgreSQL and Redis (bash infra/local/ensure-services.sh); about 5 minutes.
test-distributed: $(STAMP)
	$(BIN)/python -m pytest -q -m distributed tests/distributed $(PYTEST_ARGS)
