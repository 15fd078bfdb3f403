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
# generated cases one node id, which xdist would run once: that file runs on its own.
# The team stack (PostgreSQL, Redis, an S3 API, an MLflow server: examples/team-stack/up) runs for
# the tests on ports the system picks, in a folder of its own, and is stopped after them, whatever
# they returned (the exit code is pytest's).
test: $(STAMP)
	@stack=$$(mktemp -d "$${TMPDIR:-/tmp}/conveyor-stack.XXXXXX"); \
	trap 'examples/team-stack/down --dir "$$stack" --purge' EXIT; \
	trap 'exit 130' INT TERM; \
	CONVEYOR_PYTHON=$(BIN)/python examples/team-stack/up --dir "$$stack" --free-ports >/dev/null && \
	. "$$stack/env" && \
	$(BIN)/python -m pytest -n 2 --dist loadfile --ignore=tests/unit/test_serving_schemathesis.py --durations=15 && \
	$(BIN)/python -m pytest tests/unit/test_serving_schemathesis.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/serving_latency.py

clean:
	rm -rf build
