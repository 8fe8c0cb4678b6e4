# The README's first two commands, `make demo` and `make test`, and `make lint` (CI runs it before the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ../shared/datasets/stanford-cars-crop224
RUN ?= runs/cars
PYTEST_ARGS ?=
# tests/apps/cars/test_browser.py drives Debian's chromium + chromium-driver at these paths (override them only
# to test the browser rule itself).
CHROMIUM ?= /usr/bin/chromium
CHROMEDRIVER ?= /usr/bin/chromedriver
BROWSER_PACKAGES := chromium chromium-driver
# The ruff release the dev extra pins (pyproject.toml): formatting can change between releases.
RUFF := $(shell grep -o '"ruff==[^"]*"' pyproject.toml | tr -d '"')
LINTED := src tests benchmarks

.PHONY: demo test test-fast install browser lint

# constraints.txt holds the pinned versions (torch and torchvision, as a pair).
$(BIN)/simtune: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[all]"
	touch $(BIN)/simtune

install: $(BIN)/simtune

# Lint needs ruff alone, not the whole install.
$(BIN)/ruff: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(RUFF)"
	touch $(BIN)/ruff

lint: $(BIN)/ruff
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

demo: install
	$(BIN)/simtune cars demo --data $(DATA) --run $(RUN)

# Installs the browser as root where apt-get exists; anywhere else it stops before anything else runs,
# naming the one command to run.
browser:
	@if [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ]; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing $(BROWSER_PACKAGES) for the browser test (apt-get)"; \
		{ DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null; } || \
		{ echo "error: apt-get could not install $(BROWSER_PACKAGES); fix that, then run make test again" >&2; exit 1; }; \
		[ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ] || \
		{ echo "error: $(BROWSER_PACKAGES) installed, but $(CHROMIUM) or $(CHROMEDRIVER) is missing" >&2; exit 1; }; \
	else \
		echo "error: the tests need Chromium ($(CHROMIUM)) and its driver ($(CHROMEDRIVER)); install them with:" >&2; \
		echo "  sudo apt-get install -y $(BROWSER_PACKAGES)" >&2; \
		exit 1; \
	fi

test: browser install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)
