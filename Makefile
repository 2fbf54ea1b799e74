# quantplan: the two commands a newcomer needs.
#   make run    set up, then open the dashboard on the embedded catalog (the main job)
#   make test   set up, start PostgreSQL, build the toolchains, run the whole test suite
# Everything heavy (toolchain environments, built wheels, model artifacts) is cached under the
# user cache directory (QUANTPLAN_CACHE_DIR overrides), keyed by content hash.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml setup.py | sha256sum | cut -c1-16)

.PHONY: setup run test lint clean

setup: $(STAMP)

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@rm -f $(VENV)/.installed-*
	@touch $@

run: setup
	$(BIN)/quantplan dashboard

test: setup
	$(BIN)/quantplan toolchain install --all
	QUANTPLAN_TEST_POSTGRES_URL="$$(scripts/postgres-up)" $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
