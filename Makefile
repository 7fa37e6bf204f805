# `make demo` runs the main job and `make test` the checks and the test suite; each first sets up .venv if needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench check-floors clean

# uv installs the same packages as pip, several times faster (benchmarks/README.md); pip only installs uv.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip install --quiet --python $(PY) -e '.[dev,cloud]'
	touch $(STAMP)

# LeRobot, a test-time tool only (tests/test_lerobot.py runs it in a subprocess), in a folder of its own: its pins
# (torch < 2.11) do not fit the project's environment, which stays clean (pip check passes).
LEROBOT := $(VENV)/lerobot-0.4.4
$(LEROBOT)/.installed: $(STAMP)
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps --target $(LEROBOT) lerobot==0.4.4 accelerate==1.16.0 av==18.1.0
	touch $@

install: $(STAMP) $(LEROBOT)/.installed

demo: $(STAMP)  # LeRobot is for the tests only
	$(PY) -m bridge run lineage --preset tiny --readme README.md

# Style and import direction first (seconds), then the suite.
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n 2 --durations=10

bench: install
	$(PY) benchmarks/zoo_throughput.py

# The lowest version of every direct dependency must install, import and train (.ci/check_floors). Not part of
# `make test`: it downloads old releases.
check-floors:
	PYTHON=$(PYTHON) .ci/check_floors

clean:
	rm -rf $(VENV) .venv-floors .pytest_cache .ruff_cache .import_linter_cache .grimp_cache runs wandb lightning_logs
