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

# The stamp holds pyproject.toml's sha256: a fresh clone (new mtimes) with an up-to-date venv installs nothing.
$(STAMP): pyproject.toml
	@test -x $(PY) || { echo "creating $(VENV)"; $(PYTHON) -m venv $(VENV) && $(PY) -m pip install -q --upgrade pip; }
	@want=$$(sha256sum pyproject.toml | cut -d' ' -f1); \
	if [ "$$(cat $@ 2>/dev/null)" = "$$want" ]; then touch $@; else \
	  echo "installing crackseg and its dependencies into $(VENV) (the first time takes ~5 minutes)"; \
	  $(PY) -m pip install --progress-bar on -e '.[all,dev]' && echo "$$want" > $@; fi

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
