# One entry point for humans and CI. Targets create .venv on first use.
#
# What a fresh clone installs is decided by requirements-dev.txt (every package of the
# dependency tree pinned, with hashes), not by the day it runs. `make lock` refreshes it.
# The installer is uv when it can be had (on PATH, or bootstrapped into .venv from PyPI with
# the pinned version below); plain pip reads the same lock file otherwise.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements-dev.txt
UV_VERSION := 0.13.9
# `make INSTALLER=pip test` skips uv.
INSTALLER ?= uv

.PHONY: demo test lint typecheck unit chaos bench proto lock clean

$(STAMP): $(LOCK) pyproject.toml
	$(PY) -m venv $(VENV)
	@if [ "$(INSTALLER)" = pip ]; then UV=; \
	elif command -v uv >/dev/null 2>&1; then UV=uv; \
	elif $(BIN)/pip install -q "uv==$(UV_VERSION)" >/dev/null 2>&1; then UV=$(BIN)/uv; \
	else UV=; fi; \
	if [ -n "$$UV" ]; then \
		echo "installing from $(LOCK) with $$UV"; \
		$$UV pip install -q --python $(BIN)/python --require-hashes -r $(LOCK) && \
		$$UV pip install -q --python $(BIN)/python --no-deps --no-build-isolation -e .; \
	else \
		echo "installing from $(LOCK) with pip (uv not available)"; \
		$(BIN)/pip install -q --require-hashes -r $(LOCK) && \
		$(BIN)/pip install -q --no-deps --no-build-isolation -e .; \
	fi
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tierq dev --demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

# Every fault-injection scenario, the long ones too (figures appended to artifacts/chaos.jsonl),
# and the region and worker scenarios of tests/region (they print their figures).
chaos: $(STAMP)
	$(BIN)/pytest -q -s tests/chaos tests/region tests/integration/test_cluster.py -m "chaos or chaos_full"
	$(BIN)/python -m tests.chaos.report

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

proto: $(STAMP)
	$(BIN)/python proto/generate.py

# Re-resolve every dependency to its newest release allowed by pyproject.toml, for every
# Python from 3.11 on and every platform, with hashes. Review the diff, run `make test`, commit.
lock:
	@command -v uv >/dev/null 2>&1 || { echo "make lock needs uv: $(PY) -m pip install uv"; exit 1; }
	uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes --upgrade -q -o $(LOCK)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
