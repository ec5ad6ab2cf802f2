# fleet-monitor developer entry points. `make help` lists them.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/.tools/bin:$(CURDIR)/$(VENV)/bin:$(PATH)

.DEFAULT_GOAL := help
.PHONY: help setup run test test-unit lint format bench

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-22s %s\n", $$1, $$2}'

setup: ## install system packages, the .venv and pinned tools (idempotent)
	@scripts/setup.sh

run: setup ## run the platform locally on embedded defaults (ARGS="--duration 60")
	@$(PY) -m devstack.run $(ARGS)

test: setup ## run every test (unit, integration on real services, chart and operator checks)
	@$(PY) -m pytest $(ARGS)

test-unit: setup ## run the fast unit tests only
	@$(PY) -m pytest tests/unit $(ARGS)

lint: setup ## ruff lint and format check
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup ## apply ruff fixes and formatting
	@$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

bench: setup ## run the benchmarks and write tests/bench/results
	@$(PY) -m tests.bench.run_all $(ARGS)
