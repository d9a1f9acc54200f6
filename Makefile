# make run  : create .venv on first use, then run the default study (search_spaces/default.yaml)
# make test : create .venv on first use, then run the whole test suite (what CI runs)
# make test-fast : the unit tests only (no `slow` end-to-end tests): run it after every change
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch; on a CUDA machine use e.g. `make TORCH=torch==2.13.0 ...` with your index.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
ARGS ?=

.PHONY: install browser run test test-fast lint bench clean-studies

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/hpo run $(ARGS)

# The browser tests drive Debian's Chromium; install it where this machine allows (root, or passwordless sudo).
# Where it cannot be had, the browser tests are skipped with the reason (under CI=true they fail instead).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	    SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	    if command -v apt-get >/dev/null && { [ -z "$$SUDO" ] || sudo -n true 2>/dev/null; }; then \
	        echo "Installing Debian's chromium and chromium-driver for the browser tests..."; \
	        $$SUDO apt-get update -q >/dev/null && \
	        DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null \
	        || echo "note: chromium could not be installed; the browser tests will be skipped"; \
	    else echo "note: no apt-get or no root here; the browser tests will be skipped"; fi; \
	fi

test: install browser
	$(BIN)/python -m pytest $(ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

bench: install
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python -m bench.run_all
	$(BIN)/python bench/memory.py
	$(BIN)/python -m bench.quality   # docs/quality.md: about 20 minutes on 2 cores

lint: install
	$(BIN)/ruff check hpo tests
	$(BIN)/mypy hpo

clean-studies:
	find studies -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
