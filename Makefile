# Two commands on a fresh machine with only Python: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SRC    := src tests benchmarks tools
MINUTES ?= 5

.PHONY: run test lint bench chaos format clean

# (Re)install whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,dev]'
	touch $(STAMP)

run: $(STAMP)  ## the service on the repository's own instance: http://127.0.0.1:8080/ (Ctrl-C stops it)
	$(BIN)/newsdrop --home . run

test: $(STAMP)  ## the whole suite; skipped tests are listed with their reason
	$(BIN)/pytest

lint: $(STAMP)  ## ruff (lint + format), mypy --strict on src/, bandit on src/
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)
	$(BIN)/mypy --strict src
	$(BIN)/bandit -q -r src

chaos: $(STAMP)  ## newsdrop run under every fault at once for MINUTES (default 5), WITHOUT=421,disk to leave some out; exits 1 on a violation
	$(BIN)/python tools/chaos.py --minutes $(MINUTES) $(if $(WITHOUT),--without $(WITHOUT))

format: $(STAMP)
	$(BIN)/ruff check --fix $(SRC)
	$(BIN)/ruff format $(SRC)

bench: $(STAMP)  ## benchmarks; writes benchmarks/README.md tables
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
