# `make demo` and `make test` are the two commands of the README; `.ci/run` calls `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test check install-test chromium

$(BIN)/quorum: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/quorum
	$(BIN)/quorum serve --demo

install-test: $(VENV)/.test-deps

check: install-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

# Browser tests drive Debian's chromium (never a downloaded browser): install it when missing.
CHROMIUM := /usr/bin/chromium
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if ! command -v apt-get >/dev/null; then \
	    echo "make test: the browser tests need Chromium at $(CHROMIUM); install your system's chromium package" >&2; exit 1; fi; \
	  if [ "$$(id -u)" -eq 0 ]; then as_root=""; elif command -v sudo >/dev/null; then as_root="sudo"; else \
	    echo "make test: the browser tests need Chromium; as root run: apt-get install -y chromium" >&2; exit 1; fi; \
	  echo "make test: installing Debian's chromium for the browser tests"; \
	  $$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null \
	    || { $$as_root apt-get update -q >/dev/null \
	         && $$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null; } \
	    || { echo "make test: could not install chromium; run: sudo apt-get install -y chromium" >&2; exit 1; }; \
	fi

test: check chromium
	$(BIN)/pytest -n 2
