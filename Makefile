# One entry point per job. Every target installs what it needs first (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Dagster's CLI. It warns unless its project's venv is the active one, so say it is.
DG := VIRTUAL_ENV=$(CURDIR)/$(VENV) $(VENV)/bin/dg
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export RL_ASSETS_ARTIFACTS ?= $(CURDIR)/artifacts
# No usage stats or telemetry leave the machine.
export DAGSTER_DISABLE_TELEMETRY := 1
# The embedded default's instruments: a planted edge (promoted) and a realistic null (refused).
DEMO_INSTRUMENTS ?= SYN_MOMENTUM SYN_NULL
export RAY_USAGE_STATS_ENABLED := 0
# Production instance (dagster.postgres.yaml reads only these). Override on the command line
# or in the environment: make dev-postgres DAGSTER_PG_HOST=db.internal DAGSTER_PG_PASSWORD=...
PG_DAGSTER_HOME := $(CURDIR)/.dagster_home_pg
export DAGSTER_PG_HOST ?= 127.0.0.1
export DAGSTER_PG_PORT ?= 5432
export DAGSTER_PG_USER ?= postgres
export DAGSTER_PG_PASSWORD ?=
export DAGSTER_PG_DB ?= rl_assets
# Browser tests drive Debian's Chromium through Playwright (never a downloaded browser).
CHROMIUM := /usr/bin/chromium

.PHONY: install demo test dev dev-postgres migrate-postgres pg-database lint format bench lock clean

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

# Registers the demo's instruments, runs every asset and check of each in its own run (a
# refused candidate fails its run; that is a result, not a crash), then the summary. The
# runs are what `dg launch --assets 'key:"*"' --partition <instrument>` executes, in one
# process (rl_assets/demo.py), so Python, RLlib and Ray start once, not per instrument.
# console_logging.yaml keeps the terminal to INFO (progress, results); the UI keeps the full
# log. DEMO_CONFIG=file.yaml adds run config; DEMO_INSTRUMENTS="SYN_MOMENTUM" runs fewer.
# Naming Ray's default auth mode (token) skips the notice Ray prints when unset.
demo: install $(DAGSTER_HOME)/dagster.yaml
	RAY_AUTH_MODE=$${RAY_AUTH_MODE:-token} $(PY) -m rl_assets.demo \
		$(foreach i,$(DEMO_INSTRUMENTS),--instrument $(i)) \
		-c console_logging.yaml $(if $(DEMO_CONFIG),-c $(DEMO_CONFIG))

# Two workers (pytest-xdist), whole files each, the longest first (conftest.py): most
# end-to-end time is one core waiting on a subprocess, a daemon tick or the browser.
# TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2
test: install $(CHROMIUM)
	$(PY) -m pytest -q -ra -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder rl_assets_tests

# Installed once; as root with apt-get, else say what to install (the browser test then
# skips locally and fails under CI=true).
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else \
		echo "the browser tests need $(CHROMIUM): run 'sudo apt-get install -y chromium'" \
			"(do not run 'playwright install')"; \
	fi

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(DG) dev -h 127.0.0.1 -p 3000

$(PG_DAGSTER_HOME)/dagster.yaml: dagster.postgres.yaml
	mkdir -p $(PG_DAGSTER_HOME)
	cp dagster.postgres.yaml $@

# Creates database $(DAGSTER_PG_DB) if missing (Dagster creates its tables on first use).
define CREATE_PG_DB
import os
import psycopg2
from psycopg2 import sql

env = os.environ
name = env["DAGSTER_PG_DB"]
conn = psycopg2.connect(
    host=env["DAGSTER_PG_HOST"], port=env["DAGSTER_PG_PORT"], user=env["DAGSTER_PG_USER"],
    password=env["DAGSTER_PG_PASSWORD"], dbname="postgres", connect_timeout=10,
)
conn.autocommit = True
with conn.cursor() as cur:
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
    if cur.fetchone() is None:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        print(f"created database {name}")
conn.close()
endef
export CREATE_PG_DB

pg-database: install
	$(PY) -c "$$CREATE_PG_DB"

# The UI and the daemon on PostgreSQL storage, bound to localhost only.
dev-postgres: install $(PG_DAGSTER_HOME)/dagster.yaml pg-database
	DAGSTER_HOME=$(PG_DAGSTER_HOME) $(DG) dev -h 127.0.0.1 -p 3000

# After upgrading Dagster: bring the PostgreSQL schema up to date (safe to repeat).
migrate-postgres: install $(PG_DAGSTER_HOME)/dagster.yaml pg-database
	DAGSTER_HOME=$(PG_DAGSTER_HOME) $(VENV)/bin/dagster instance migrate

lint: install
	$(VENV)/bin/ruff check rl_assets rl_assets_tests benchmarks
	$(VENV)/bin/ruff format --check rl_assets rl_assets_tests benchmarks

format: install
	$(VENV)/bin/ruff format rl_assets rl_assets_tests benchmarks
	$(VENV)/bin/ruff check --fix rl_assets rl_assets_tests benchmarks

# Stable-Baselines3 is a benchmark-only extra, installed against the project's pins.
$(VENV)/.bench-installed: $(STAMP) benchmarks/requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q -r benchmarks/requirements.txt -c requirements.lock
	touch $@

# make bench BENCH_ARGS=--with-calibration adds the gate calibration and power table (90 trainings).
bench: install $(VENV)/.bench-installed
	$(PY) -m benchmarks.run $(BENCH_ARGS)

# A long-lived local Ray for repeated runs (README, "Ray"): after `make ray-up`, run
# `source .ray_env` in the shell that runs the pipeline; `make ray-down` stops that Ray
# alone (`ray stop` would stop every Ray on the machine). RAY_PORT=... picks the port.
.PHONY: ray-up ray-down
ray-up: install
	$(PY) -m rl_assets.rl.local_ray up $(if $(RAY_PORT),--port $(RAY_PORT))

ray-down: install
	$(PY) -m rl_assets.rl.local_ray down

# Refresh the pins from the current venv (after adding a dependency on purpose).
lock:
	{ head -3 requirements.lock; $(PY) -m pip freeze --all --exclude-editable | grep -vE "^(rl_assets|pip)=="; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) .dagster_home artifacts .pytest_cache
	rm -rf .dagster_home_pg
