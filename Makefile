# The two commands of the README: `make run` and `make test`. Both build .venv on first use.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: install run simulator test lint format clean translations translation

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

# `make compare OTHER=../other-tree`: this tree's widget against another checkout's, side by
# side, CPU per panel load (about a minute; bench/compare.py). `COMPARE_ARGS="--what save"`.
.PHONY: compare
compare: install
	$(BIN)/python -m bench.compare $(OTHER) $(COMPARE_ARGS)

# `make drill`: the fault drill (issue 22, about 2 minutes): real Redis and PostgreSQL, two
# instances, outages and killed workers, and the reconciliation table (docs/operations.md).
# Not part of `make test`.
.PHONY: drill
drill: install
	$(BIN)/python -m bench.drill $(DRILL_ARGS)

# Translations (docs/translating.md). The app compiles the catalogues itself at start-up.
# `make translations`: extract every text from the code and templates, update each language.
# `make translation CODE=ta`: start a new language's catalogue (not LANG: the shell sets that).
EXTRACT := $(BIN)/pybabel extract -F babel.cfg -k lazy_gettext -k N_ --add-location=file \
	--sort-by-file --omit-header -o translations/messages.pot .
translations: install
	$(EXTRACT)
	$(BIN)/pybabel update -i translations/messages.pot -d translations --width=100 \
		--no-fuzzy-matching --ignore-pot-creation-date

translation: install
	@echo "$(CODE)" | grep -Eqx '[a-z]{2,3}' || { echo "usage: make translation CODE=ta"; exit 2; }
	test ! -e translations/$(CODE) || { echo "translations/$(CODE) exists: make translations"; exit 2; }
	$(EXTRACT)
	$(BIN)/pybabel init -i translations/messages.pot -d translations -l $(CODE) --width=100
