# The README's two commands: `make serve` and `make test`. Both build the project's own virtualenv from
# pyproject.toml first, so a fresh machine needs nothing but python3. `make serve` installs only what serving
# needs; `make test` adds the dev extras (pytest, ruff, the fuzzers and SDKs the suite drives) to the same venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SERVE_STAMP := $(VENV)/.installed-serve
DEV_STAMP := $(VENV)/.installed-dev
ARGS ?=

.PHONY: serve test lint bench soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(SERVE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(SERVE_STAMP)

serve: $(SERVE_STAMP)
	$(BIN)/nanobanana-sim serve $(ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -n auto

# Never part of `make test`: minutes of load. Installs its own extra (uvloop, httptools), wrk (apt-get) and
# Prism 5 (npm, cached) when missing; ARGS="--duration 5 --providers civitai" to narrow it.
bench: $(DEV_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/bench.py $(ARGS)

# Never part of `make test` (which runs a 6-second version): at most a minute of 200 clients under the chaos
# scenario, then an audit; prints `name value unit` figures. ARGS="--duration 20 --clients 50" to shorten it.
soak: $(DEV_STAMP)
	$(BIN)/python benchmarks/soak.py $(ARGS)

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
