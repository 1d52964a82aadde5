# One entry point per job. Every target installs what it needs first (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export RL_ASSETS_ARTIFACTS ?= $(CURDIR)/artifacts
# No usage stats or telemetry leave the machine.
export DAGSTER_DISABLE_TELEMETRY := 1
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: install demo test dev lint format bench lock clean

install: $(STAMP)

# Reinstalls only when the lock or the project metadata changed.
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.lock
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster asset materialize --select '*' -m rl_assets.definitions
	$(PY) -m rl_assets.summary

test: install
	$(PY) -m pytest -q -ra rl_assets_tests

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

lint: install
	$(VENV)/bin/ruff check rl_assets rl_assets_tests benchmarks
	$(VENV)/bin/ruff format --check rl_assets rl_assets_tests benchmarks

format: install
	$(VENV)/bin/ruff format rl_assets rl_assets_tests benchmarks
	$(VENV)/bin/ruff check --fix rl_assets rl_assets_tests benchmarks

bench: install
	$(PY) -m benchmarks.run

# Refresh the pins from the current venv (after adding a dependency on purpose).
lock:
	{ head -3 requirements.lock; $(PY) -m pip freeze --all --exclude-editable | grep -vE "^(rl_assets|pip)=="; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) .dagster_home artifacts .pytest_cache
