# One-command setup: every target creates .venv and installs what is missing (idempotent).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cardiobench-installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## the main job: train (or reuse), sample, evaluate, store and print one benchmark run
run: $(STAMP)
	$(BIN)/cardiobench run --noise gaussian --sampler ddpm

## lint + the whole test suite (what CI runs)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

## throughput benchmarks (pytest-benchmark), not part of `make test`
bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
