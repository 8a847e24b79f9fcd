# The two commands of the README: `make run` and `make test`. Both build .venv on first use.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: install run simulator test lint format clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

run: install
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

simulator: install
	$(BIN)/python -m webapp.simulator

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# `make bench`: the performance figures against their targets, one table (docs/benchmarks.md).
# Options go in BENCH_ARGS, e.g. `make bench BENCH_ARGS="--latency 0.1 --no-browser"`.
.PHONY: bench
bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)
