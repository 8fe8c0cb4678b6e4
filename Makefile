# The README's first two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ../shared/datasets/stanford-cars-crop224
RUN ?= runs/cars
PYTEST_ARGS ?=

.PHONY: demo test test-fast install

$(BIN)/simtune: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch/torchvision first, as a pair: this machine caps them and ships the wheels on disk.
	$(BIN)/pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install -q -e ".[all]"
	touch $(BIN)/simtune

install: $(BIN)/simtune

demo: install
	$(BIN)/simtune cars demo --data $(DATA) --run $(RUN)

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)
