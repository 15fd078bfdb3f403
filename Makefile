# Conveyor: `make demo` runs the whole lifecycle on the bundled data; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/bike-sharing/demo.py

# two workers, each test file on one of them (module fixtures stay whole); schemathesis gives its
# generated cases one node id, which xdist would run once: that file runs on its own
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile --ignore=tests/unit/test_serving_schemathesis.py --durations=15
	$(BIN)/python -m pytest tests/unit/test_serving_schemathesis.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/serving_latency.py

clean:
	rm -rf build
