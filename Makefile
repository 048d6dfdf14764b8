# Two commands on a fresh machine with only Python: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SRC    := src tests benchmarks tools
MINUTES ?= 5

# uv installs into .venv exactly what uv.lock pins (the versions CI tested); uv itself
# comes from PyPI through the venv's pip, at this version.
UV_VERSION := 0.13.10
UV         := $(BIN)/uv
UV_STAMP   := $(VENV)/.uv-$(UV_VERSION)
# --locked: fails, instead of re-resolving, when pyproject.toml and uv.lock disagree
# (run `make lock`). --inexact: leaves what another target installed (make run after
# make test keeps the test extras, so alternating does not reinstall).
SYNC       := $(UV) sync --locked --inexact
# The system's CA certificates (as pip.conf's `cert`), and the venv's Python, never one
# that uv downloads.
export UV_SYSTEM_CERTS     := 1
export UV_PYTHON_DOWNLOADS := never

# One stamp per set of extras: re-synced whenever pyproject.toml or uv.lock changes.
RUNTIME := $(VENV)/.runtime-stamp
TESTS   := $(VENV)/.test-stamp
DEV     := $(VENV)/.dev-stamp

.PHONY: run test lint bench chaos format lock messages clean

$(UV_STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	touch $@

$(RUNTIME): pyproject.toml uv.lock $(UV_STAMP)  # the runtime dependencies only
	$(SYNC)
	touch $@

$(TESTS): pyproject.toml uv.lock $(UV_STAMP)  # + the test extras
	$(SYNC) --extra test
	touch $@

$(DEV): pyproject.toml uv.lock $(UV_STAMP)  # + the test and dev extras (lint, format, bench)
	$(SYNC) --extra test --extra dev
	touch $@

run: $(RUNTIME)  ## the service on the repository's own instance: http://127.0.0.1:8080/ (Ctrl-C stops it)
	$(BIN)/newsdrop --home . run

test: $(TESTS)  ## the whole suite; skipped tests are listed with their reason
	$(BIN)/pytest

lint: $(DEV)  ## ruff (lint + format, function sizes), module and class sizes, mypy --strict on src/, bandit on src/
	$(BIN)/ruff check $(SRC)
	$(BIN)/python tools/sizes.py
	$(BIN)/ruff format --check $(SRC)
	$(BIN)/mypy --strict src
	$(BIN)/bandit -q -r src

chaos: $(TESTS)  ## newsdrop run under every fault at once for MINUTES (default 5), WITHOUT=421,disk to leave some out; exits 1 on a violation
	$(BIN)/python tools/chaos.py --minutes $(MINUTES) $(if $(WITHOUT),--without $(WITHOUT))

format: $(DEV)
	$(BIN)/ruff check --fix $(SRC)
	$(BIN)/ruff format $(SRC)

bench: $(DEV)  ## benchmarks; writes benchmarks/README.md tables
	$(BIN)/python benchmarks/run.py

messages: $(DEV)  ## src/newsdrop/locale/messages.pot anew from the code and templates (Babel)
	$(BIN)/pybabel extract -F babel.cfg --no-location --sort-output --project newsdrop \
		--omit-header -o src/newsdrop/locale/messages.pot .

lock: $(UV_STAMP)  ## uv.lock anew after pyproject.toml's dependencies change (ARGS=--upgrade: newest releases)
	$(UV) lock $(ARGS)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
