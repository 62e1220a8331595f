# One command per habit: `make run`, `make test`, `make lint`, `make bench`, `make demo`.
# Every target installs what is missing first and is safe to re-run.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
# The peer server the worker benchmark compares against (KServe), in its own venv: it pins
# fastapi/pydantic/uvicorn versions of its own that must not touch .venv.
PEER_VENV := .venv-peer
PEER_STAMP := $(PEER_VENV)/.installed

.PHONY: install run test lint format bench bench-peer-env demo clean

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

# The worker benchmark drives load with wrk (C, event-driven): a Python client would be the
# bottleneck. Installed from Debian's packages when missing and we are root (CI, dev boxes).
$(PEER_STAMP): Makefile
	@test -x $(PEER_VENV)/bin/python || $(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install --quiet --upgrade pip
	# Same ONNX Runtime and numpy as .venv, so both servers run the same kernels.
	$(PEER_VENV)/bin/python -m pip install --quiet kserve==0.21.0 onnxruntime==1.32.0 numpy==2.4.6
	@touch $@

bench-peer-env: $(PEER_STAMP)

bench: install $(PEER_STAMP)
	@command -v wrk >/dev/null || { test "$$(id -u)" = 0 && apt-get update -qq && apt-get install -y -qq wrk; } \
		|| { echo "make bench needs wrk: sudo apt-get install wrk"; exit 1; }
	$(BIN)/python -m bench $(BENCH_ARGS)

demo: install
	$(BIN)/lepton demo

clean:
	rm -rf .lepton .pytest_cache .mypy_cache .ruff_cache .hypothesis
