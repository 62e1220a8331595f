# One command per habit: `make run`, `make test`, `make lint`, `make bench`, `make demo`.
# Every target installs what is missing first and is safe to re-run.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed

.PHONY: install run test lint format bench demo clean

install: $(PY_STAMP) $(NPM_STAMP)

$(PY_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

run: install
	$(BIN)/lepton dev

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff format --check src tests bench function_app.py
	$(BIN)/ruff check src tests bench function_app.py
	$(BIN)/mypy

format: install
	$(BIN)/ruff format src tests bench function_app.py
	$(BIN)/ruff check --fix src tests bench function_app.py

bench: install
	$(BIN)/python -m bench

demo: install
	$(BIN)/lepton demo

clean:
	rm -rf .lepton .pytest_cache .mypy_cache .ruff_cache
