# `make demo` and `make test` set everything up themselves: a virtual environment in .venv,
# created once and reinstalled only when pyproject.toml changes.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo demo-docker demo-dg test test-fast test-slow check sandbox dev clean

# The product with its test tools, and the sandbox (its own distribution, never the product's
# dependency), resolved together.
$(STAMP): pyproject.toml sandbox/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./sandbox -e '.[test]'
	touch $(STAMP)

# STRATEGY=per_location: move the locations to the Hybrid agent one at a time, then switch.
STRATEGY ?= switch

demo: $(STAMP)
	$(BIN)/python -m demo --strategy $(STRATEGY)

# The same migration to a real Docker agent: a private Docker engine (installed with apt as root),
# a local base image (debootstrap, cached in ~/.cache/migration-pipeline), a registry on loopback.
demo-docker: $(STAMP)
	$(BIN)/python -m demo --agent docker --strategy $(STRATEGY)

# The dg workspace examples/serverless_dg_workspace (three projects, one with a uv.lock) to the
# real Docker agent: its images built from the generated Dockerfiles, pushed, proven, LOADED.
demo-dg: $(STAMP)
	$(BIN)/python -m demo --example dg --agent docker --strategy $(STRATEGY)

# Lint, format and types first: they take seconds and fail for the simplest reasons.
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: check
	bash scripts/debian-packages.sh
	$(BIN)/python -m pytest

test-fast: check
	bash scripts/debian-packages.sh
	$(BIN)/python -m pytest -m "not slow"

test-slow: $(STAMP)
	bash scripts/debian-packages.sh
	$(BIN)/python -m pytest -m slow

# A long-running sandbox for the UI; its URL and admin token go to .demo/sandbox.env (0600).
sandbox: $(STAMP)
	$(BIN)/python -m dagster_plus_sandbox serve --port 3030 --state .demo/sandbox.db --env-file .demo/sandbox.env \
		--scenario examples/serverless_repo/sandbox_scenario.yaml

dev: $(STAMP)
	mkdir -p .dagster_home
	set -a; [ -f .demo/sandbox.env ] && . ./.demo/sandbox.env; set +a; \
	DAGSTER_HOME=$(CURDIR)/.dagster_home $(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf $(VENV) .dagster_home .demo
