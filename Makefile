# digitlab: `make run` sets everything up and runs the whole pipeline; `make test` checks it all.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: help install system-data browser run quick dashboard test lint typecheck pytest bench clean

help:
	@echo "make run    - create .venv, install digitlab and run the whole pipeline on MNIST"
	@echo "make quick  - the same on a 6,000/1,000 subset (about a minute)"
	@echo "make test   - install test tools, then ruff, lint-imports (the floors), mypy and pytest"
	@echo "make dashboard - the Streamlit dashboard on the latest run"
	@echo "make bench  - full-data benchmarks, written to benchmarks/BENCHMARKS.md"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[dev,dask,torch,augment,keras,mlflow,serve,onnx,explain]"
	@touch $(STAMP)

install: $(STAMP)

# Fashion-MNIST comes from Debian's package when apt is there and we are root; optional.
system-data:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
		|| echo "note: could not install dataset-fashion-mnist; Fashion-MNIST tests will be skipped"; fi

# The browser tests drive Debian's chromium (Playwright cannot download browsers here); they never skip.
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x $(CHROMIUM) ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi
	@[ -x $(CHROMIUM) ] || { echo "error: $(CHROMIUM) is missing; install Debian's chromium (sudo apt-get install chromium) for the browser tests."; exit 1; }

run: install
	$(VENV)/bin/digitlab run $(ARGS)

quick: install
	$(VENV)/bin/digitlab run --quick $(ARGS)

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/lint-imports

typecheck: install
	$(VENV)/bin/mypy

dashboard: install
	$(VENV)/bin/digitlab dashboard $(ARGS)

# Two workers (pytest-xdist), each test file on one of them: most tests wait on a `digitlab` process or a
# server, so one worker alone leaves a core idle. TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 2
pytest: install system-data browser
	DIGITLAB_CHROMIUM=$(CHROMIUM) $(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test: lint typecheck pytest

bench: install
	$(PY) benchmarks/compare.py
	$(PY) benchmarks/data_load.py
	$(PY) benchmarks/tune.py
	$(PY) benchmarks/cnn.py
	$(PY) benchmarks/cnn_speed.py
	$(PY) benchmarks/make_run.py
	$(PY) benchmarks/shared_cpu.py
	$(PY) benchmarks/augment.py
	$(PY) benchmarks/scratch.py
	$(PY) benchmarks/dashboard.py
	$(PY) benchmarks/deskew.py
	$(PY) benchmarks/serve.py
	$(PY) benchmarks/batch.py
	$(PY) benchmarks/personalise.py
	$(PY) benchmarks/explain.py
	$(PY) benchmarks/datasets.py
	$(PY) benchmarks/realworld.py
	$(PY) benchmarks/heldout.py
	$(PY) benchmarks/cli_start.py
	$(PY) benchmarks/readme_table.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
