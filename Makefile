# make run  : create .venv on first use, then run the default study (search_spaces/default.yaml)
# make test : create .venv on first use, then run the whole test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch; on a CUDA machine use e.g. `make TORCH=torch==2.13.0 ...` with your index.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
ARGS ?=

.PHONY: install run test lint bench clean-studies

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/hpo run $(ARGS)

test: install
	$(BIN)/python -m pytest $(ARGS)

bench: install
	$(BIN)/python -m bench.run_all
	$(BIN)/python bench/memory.py

lint: install
	$(BIN)/ruff check hpo tests
	$(BIN)/mypy hpo

clean-studies:
	find studies -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
