# quantplan: the two commands a newcomer needs.
#   make run    set up, then open the dashboard on the embedded catalog (the main job)
#   make test   set up, start PostgreSQL, build the toolchains, run the whole test suite
#   make test-fast   the tests that need no toolchain, engine, Ray cluster or PostgreSQL
#   make lock   upgrade requirements/core.lock, the pinned versions `make setup` installs
# Everything heavy (toolchain environments, built wheels, model artifacts) is cached under the
# user cache directory (QUANTPLAN_CACHE_DIR overrides), keyed by content hash.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Every dependency, direct or not, pinned to the versions the test suite last passed with, for
# Python 3.11-3.13 (markers where they differ). `make lock` upgrades it; commit it with the
# test run that passed on it.
LOCK := requirements/core.lock
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml setup.py $(LOCK) | sha256sum | cut -c1-16)
# Markers of the tests that need nothing but this checkout (see pyproject.toml).
FAST_TESTS := not toolchain and not engine and not ray_cluster and not postgres and not slow
# Where `make lint` builds the symlink view of the installed package (scripts/package_view.py).
PACKAGE_VIEW := build/package-view
# `make lock LOCK_ARGS="--upgrade-package typer"` upgrades one package and keeps the rest.
LOCK_ARGS ?= --upgrade

.PHONY: setup run test test-fast lint lock clean

setup: $(STAMP)

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[dev]"
	@rm -f $(VENV)/.installed-*
	@touch $@

run: setup
	$(BIN)/quantplan dashboard

test: setup
	$(BIN)/quantplan toolchain install --all
	QUANTPLAN_TEST_POSTGRES_URL="$$(scripts/postgres-up)" $(BIN)/python -m pytest $(PYTEST_ARGS)

# Three workers on two cores, each taking whole test files (module fixtures are built once):
# about a sixth of the tests' time is waiting (timeouts, servers starting, the dashboard going
# idle), which a third worker fills. Few generated hypothesis examples
# (tests/hypothesis_budget.py); `make test` runs every test at full counts. Bytecode is written
# even where the environment says not to, so pytest keeps its rewritten test modules (each
# worker's collection 8.9 -> 5.8 s) and the `quantplan` processes the tests start reuse theirs.
test-fast: setup
	PYTHONDONTWRITEBYTECODE= QUANTPLAN_HYPOTHESIS_PROFILE=fast $(BIN)/python -m pytest \
		-n 3 --dist loadfile -m "$(FAST_TESTS)" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# import-linter and mypy find packages by folder; the view lays the folders out as the
	@# installed quantplan package (setup.py maps catalog/ to quantplan.catalog, ...).
	$(BIN)/python scripts/package_view.py $(PACKAGE_VIEW)
	cd $(PACKAGE_VIEW) && $(CURDIR)/$(BIN)/lint-imports --no-cache $(CURDIR)/pyproject.toml
	cd $(PACKAGE_VIEW) && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml

# uv resolves for every platform and Python >= 3.11 at once (pip cannot); it is needed only here.
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		$(LOCK_ARGS) -o $(LOCK)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
