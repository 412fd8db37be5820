# Every target makes its own virtual environment: a fresh machine needs only python3, pip and make.
PYTHON ?= python3
VENV ?= .venv
AIRFLOW_VERSION ?= 3.3.2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(AIRFLOW_VERSION)
# Pinned versions for a reproducible, fast install (a free resolve of moto + amazon backtracks).
CONSTRAINTS ?= .ci/constraints-airflow-$(AIRFLOW_VERSION).txt
PIN := $(if $(wildcard $(CONSTRAINTS)),-c $(CONSTRAINTS),)
# The oldest Airflow the provider supports (apache-airflow>=3.0.0), tested in a venv of its own.
AIRFLOW_MIN_VERSION ?= 3.0.6
AIRFLOW_MIN_VENV ?= .venv-airflow-3.0
# The oldest and the newest Python the suite runs on besides the default venv's (Airflow 3.3 supports
# 3.10 to 3.14; 3.14 is not on these machines), each in a venv .venv-py3.X of its own, found
# through pyenv or as python3.X on PATH. A Python whose pins differ (3.10: past its end of life,
# newer releases of many dependencies need 3.11) has .ci/constraints-airflow-VERSION-py3.X.txt.
# Decision: `make test-all` runs them, not `.ci/run`: each takes as long as the fast suite (~7 min
# on an idle machine, 31 min when first run here under load, plus ~3 min for a first install), and
# CI (~26 min and growing) must stay under 45 min.
PY_OLDEST ?= 3.10
PY_NEWEST ?= 3.13
PY_VENV = .venv-py$(PY)
PY_BIN = $(or $(lastword $(wildcard $(shell pyenv root 2>/dev/null)/versions/$(PY).*/bin/python)),$(shell command -v python$(PY)))
PY_CONSTRAINTS = $(firstword $(wildcard .ci/constraints-airflow-$(AIRFLOW_VERSION)-py$(PY).txt) .ci/constraints-airflow-$(AIRFLOW_VERSION).txt)

.PHONY: demo test test-all test-slow test-airflow-min test-py-oldest test-py-newest test-python dist faults bench soak lint typecheck clean constraints chromium services

$(STAMP): pyproject.toml $(wildcard $(CONSTRAINTS))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(PIN) "apache-airflow==$(AIRFLOW_VERSION)" -e ".[test]"
	touch $@

## constraints: re-pin the test environment after changing dependencies (PY=3.10: that Python's pins)
ifdef PY
constraints:
	$(MAKE) --no-print-directory constraints PY= PYTHON="$(PY_BIN)" VENV=$(PY_VENV) CONSTRAINTS=$(PY_CONSTRAINTS)
else
constraints: $(STAMP)
	(head -3 $(CONSTRAINTS); $(BIN)/python -m pip freeze --exclude-editable) > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
endif

## demo: start the bundled simulator and generate a real MP4 with the example DAG (no key needed)
demo: $(STAMP)
	$(BIN)/python dags_examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## test: lint, type-check and run the test suite (without the slow end-to-end tests)
test: lint typecheck
	$(BIN)/pytest -q -m "not slow"

## test-all: everything, including end-to-end runs on a real scheduler + triggerer, the oldest Airflow,
## and the oldest and newest Python
test-all: lint typecheck chromium services
	$(BIN)/pytest -q
	$(MAKE) --no-print-directory test-airflow-min
	$(MAKE) --no-print-directory test-py-oldest
	$(MAKE) --no-print-directory test-py-newest

## test-slow: only the slow end-to-end tests (CI runs `make test` and then this)
test-slow: $(STAMP) chromium services
	$(BIN)/pytest -q -m slow

## chromium: Debian's chromium, which the UI test (tests/e2e/test_ui.py) drives with Playwright
## (Playwright never downloads a browser here); installed with apt when missing (CI runs as root)
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && SUDO= || SUDO=sudo; \
		$$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends chromium; }

## services: Debian's PostgreSQL and Redis servers, for the production-shaped cluster of the soak
## (tests/e2e/services.py starts throwaway instances on loopback; no system service is started)
services:
	@{ ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v redis-server >/dev/null; } || \
		{ [ "$$(id -u)" = 0 ] && SUDO= || SUDO=sudo; \
		$$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends postgresql redis-server; }

## soak: SOAK_N generations (default 1,000) on PostgreSQL + Celery + Redis, two workers, two triggerers,
## through ~5 % failing requests and a kill every 30-90 s; prints the table (docs/reliability.md)
soak: $(STAMP) services
	PYTHONPATH=tests $(BIN)/python -m soak

## test-airflow-min: the fast suite on the oldest supported Airflow (3.0.6), less tests marked newer_airflow
test-airflow-min:
	$(MAKE) --no-print-directory VENV=$(AIRFLOW_MIN_VENV) AIRFLOW_VERSION=$(AIRFLOW_MIN_VERSION) \
		$(AIRFLOW_MIN_VENV)/.installed-$(AIRFLOW_MIN_VERSION)
	$(AIRFLOW_MIN_VENV)/bin/pytest -q -m "not slow and not newer_airflow"

## test-py-oldest / test-py-newest: the fast suite on Python 3.10 / 3.13 (test-python PY=3.12 for any other)
test-py-oldest:
	$(MAKE) --no-print-directory test-python PY=$(PY_OLDEST)
test-py-newest:
	$(MAKE) --no-print-directory test-python PY=$(PY_NEWEST)
test-python:
	@test -n "$(PY)" -a -n "$(PY_BIN)" || { echo "no Python '$(PY)': pyenv install $(PY), or put python$(PY) on PATH" >&2; exit 2; }
	$(MAKE) --no-print-directory PYTHON="$(PY_BIN)" VENV=$(PY_VENV) CONSTRAINTS=$(PY_CONSTRAINTS) \
		$(PY_VENV)/.installed-$(AIRFLOW_VERSION)
	$(PY_VENV)/bin/pytest -q -m "not slow"

## dist: build the sdist and the wheel into dist/ and check their metadata
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

## faults: run the fault matrix (every simulator fault x phase x operator mode) and print it as a table
faults: $(STAMP)
	$(BIN)/pytest -q tests/reliability/test_fault_matrix.py

## bench: the performance benchmarks (bench/README.md), each figure next to a same-run baseline (~10 min)
bench: $(STAMP)
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) $(AIRFLOW_MIN_VENV) .venv-py3.* .pytest_cache .mypy_cache .ruff_cache demo-output build dist *.egg-info
