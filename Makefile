# pycro_gpu developer commands. Each target creates .venv from a bare python3 when it is missing and
# installs what it needs; re-installs when pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest
export PYCRO_GPU_TEST_DATA ?= $(abspath ../shared/data)
# Tests never need a GPU and never pick one up by accident through 'auto'.
export MPLBACKEND = Agg

.PHONY: all demo test test-cpu test-cudasim lint bench gpu-check clean

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pycro-gpu demo --out demo_out

lint: $(STAMP)
	$(BIN)/ruff check pycro_gpu kernels tests benchmarks
	$(BIN)/ruff format --check -q pycro_gpu kernels tests benchmarks

# Whole suite: lint, NumPy + array_api_strict (+ CuPy where a device exists), PTX/ptxas compilation and
# the wheel check, then the CUDA kernels again under numba's simulator (a separate process: the
# simulator must be switched on before numba is imported).
test: lint test-cpu test-cudasim

test-cpu: $(STAMP)
	$(PYTEST) -m "not cudasim" -q

test-cudasim: $(STAMP)
	NUMBA_ENABLE_CUDASIM=1 $(PYTEST) -m cudasim -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) build dist *.egg-info demo_out bench_out .pytest_cache .ruff_cache
