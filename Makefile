# crackseg — the two commands are `make up` (the system) and `make test` (the proof).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.install.stamp
PYTEST_ARGS ?=
export CRACKSEG_DATASETS ?= $(abspath ../shared/datasets)
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: help install test test-fast lint format bench eval train data starter-model clean

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv with everything (re-runs only when pyproject.toml changes)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar on --upgrade pip
	$(PY) -m pip install --progress-bar on -e '.[all,dev]'
	@touch $@

test: install ## run the whole test suite (non-zero on any failure)
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install ## unit tests only (no slow or integration suites)
	$(BIN)/pytest -m "not slow and not integration" $(PYTEST_ARGS)

lint: install ## ruff, mypy and import-linter
	$(BIN)/ruff check ml services tests
	$(BIN)/ruff format --check ml services tests
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix ml services tests
	$(BIN)/ruff format ml services tests

-include mk/*.mk
