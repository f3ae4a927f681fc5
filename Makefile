# The two commands of the README. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
# Pinned versions (a pip constraints file); the upgrade routine is in docs/dependencies.md.
LOCK := requirements.lock
BIN := $(VENV)/bin

.PHONY: demo test lint install install-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -c $(LOCK) -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[test]'

## make demo: install, migrate the SQLite database, seed the demo and serve on http://127.0.0.1:5000
demo: install
	$(BIN)/idp demo

## make test: install the test dependencies and run the whole suite
test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make lint: install the test dependencies, then ruff and mypy --strict (settings in pyproject.toml)
lint: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy
