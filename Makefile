# The README's two commands: `make serve` and `make test`. Both build the project's own
# virtualenv from pyproject.toml first, so a fresh machine needs nothing but python3.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: serve test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/nanobanana-sim serve $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

# Never part of `make test`: minutes of load. Installs its own extra (uvloop, httptools), wrk (apt-get) and
# Prism 5 (npm, cached) when missing; ARGS="--duration 5 --providers civitai" to narrow it.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/bench.py $(ARGS)

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
