# technic_v4 — every target builds .venv from requirements.txt first if it is missing or stale.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST := $(VPY) -m pytest
# the machine's pip config lists local mirror folders that may not exist; hide that noise only
PIPQUIET := grep -v "is ignored: it is neither a file nor a directory" || true

.PHONY: venv scan test test-slow test-all bench server stop status clean-data
venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	@echo "installing requirements into $(VENV) (first run takes about a minute)"
	@$(VPY) -m pip install -q --disable-pip-version-check -r requirements.txt 2>&1 | $(PIPQUIET)
	@# the project itself, editable: importable by Ray and Prefect workers from any directory, `technic` on PATH
	@$(VPY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 | $(PIPQUIET)
	@touch $(STAMP)

## make scan: a full-universe scan on the embedded default source (simulated market unless POLYGON_API_KEY is set)
scan: $(STAMP)
	$(VPY) -m technic_v4.cli scan $(ARGS)

## make test: the fast default suite (slow and benchmark tests are marked and excluded; <= 6 min on 2 cores) in
## TEST_WORKERS pytest-xdist processes, a test file per worker at a time (module fixtures run once), the longest
## files first (tests/conftest.py); TEST_WORKERS=0 runs it in this process. The 15 slowest tests are listed, so a new
## slow one shows. pytest's exit code 5 (no test ran) fails the target too.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PYTEST) -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15 $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PYTEST) -m slow $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PYTEST) -m "slow or not slow" $(PYTEST_ARGS)

## make bench: side-by-side benchmarks; regenerates docs/performance.md and docs/performance.json
bench: $(STAMP)
	$(VPY) -m benchmarks.run $(ARGS)

## make server: a local Prefect server + work pool + deployments + worker (TECHNIC_RAY_HEAD=1 adds a Ray head);
## Ctrl-C or `make stop` stops all of it. `make status` says what runs and where the UI is.
server: $(STAMP)
	@exec $(VPY) deployments/local_stack.py start

stop: $(STAMP)
	@$(VPY) deployments/local_stack.py stop

status: $(STAMP)
	@$(VPY) deployments/local_stack.py status
