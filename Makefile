# The two commands of the contract: `make demo` and `make test`. Both create .venv when it is
# missing and install the pinned requirements; re-running is fast when nothing changed
# (the install step re-runs only when a requirements file is newer than its stamp).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.deps-installed
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: venv demo test lint reliability bench bench-quick constraints package services-down clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required, found " + sys.version.split()[0] + " at $(PYTHON); set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt -c constraints.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

venv: $(STAMP)  ## create .venv and install the pinned dependencies

demo: $(STAMP)  ## the whole pipeline end to end on embedded services
	$(BIN)/lakehouse demo $(DEMO_ARGS)

test: $(STAMP)  ## the full test suite (what CI runs), with the fast subset of the reliability suite
	$(BIN)/python -m pytest -m "not reliability" --durations=30 $(PYTEST_ARGS)

reliability: $(STAMP)  ## the fault-injection, crash, concurrency and security suite; rewrites docs/reliability.md
	LAKEHOUSE_RELIABILITY_REPORT=docs/reliability.md $(BIN)/python -m pytest tests/reliability $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

BENCH_ARGS ?=
bench: $(STAMP)  ## every benchmark in bench/ (setup, warm-up, N fresh-process runs), then docs/performance.md
	$(BIN)/python -m bench.harness $(BENCH_ARGS); status=$$?; $(BIN)/python -m bench.report && exit $$status

bench-quick: $(STAMP)  ## every benchmark at tiny sizes, one run each (bench/results/quick/): a smoke test
	$(BIN)/python -m bench.harness --quick $(BENCH_ARGS)

# Only the transitive pins: what requirements*.txt pin themselves is left out (names compared as
# pip does, case and -_. folded), so the file does not repeat them.
CONSTRAINTS_OUT ?= constraints.txt
constraints: $(STAMP)  ## re-freeze the transitive pins after changing requirements.txt
	@{ echo "# Transitive pins (pip freeze of a working .venv), so a fresh clone resolves the same set."; \
	   echo "# Regenerate with: make constraints"; \
	   $(BIN)/pip freeze --exclude-editable | awk ' \
	     function norm(s) { s = tolower(s); gsub(/[-_.]+/, "-", s); return s } \
	     FILENAME != "-" { if ($$0 ~ /^[A-Za-z0-9]/) { split($$0, a, /[=<>~!;[ ]/); pinned[norm(a[1])] = 1 }; next } \
	     { split($$0, a, /==/); if (!(norm(a[1]) in pinned)) print }' requirements.txt requirements-dev.txt -; \
	 } > $(CONSTRAINTS_OUT).new
	@mv $(CONSTRAINTS_OUT).new $(CONSTRAINTS_OUT)

ARTIFACTS ?= build
package: $(STAMP)  ## every deployable, built once: $(ARTIFACTS)/functions.zip (lakehouse vendored), $(ARTIFACTS)/dist/*.whl (no local/), $(ARTIFACTS)/notebooks
	$(BIN)/python -m infra.artifacts --out $(ARTIFACTS)

services-down: $(STAMP)
	$(BIN)/lakehouse services down

clean: services-down
	rm -rf .lakehouse
