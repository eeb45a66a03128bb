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

# Bytecode of the editable sources written once, as a wheel install does, so that every command starts
# without compiling them (also where PYTHONDONTWRITEBYTECODE is set).
BYTECODE = $(BIN)/python -m compileall -q pycro_gpu kernels

.PHONY: all demo test test-cpu test-cudasim lint bench gpu-check compile clean

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BYTECODE)
	touch $(STAMP)

# pyUSID in its own environment: tests/test_usid_conformance.py has pyUSID itself read our files.
PYUSID_VENV := .venv-pyusid
$(PYUSID_VENV)/.installed:
	test -x $(PYUSID_VENV)/bin/python || $(PYTHON) -m venv $(PYUSID_VENV)
	$(PYUSID_VENV)/bin/python -m pip install -q pyUSID h5py
	touch $@

# The demo needs only the package and its instrument readers (the io extra): no test, GPU or lint tools.
# Where the full developer install exists it is used as it is.
DEMO_STAMP := $(VENV)/.installed-demo
# pip compiles the bytecode of every installed module on one core (46 of its 79 s here), the libraries'
# own test suites (two fifths of the files) included; the demo installs without it, then compiles
# site-packages less those test folders on every core, skipping errors as pip does.
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-compile -e ".[io]"
	$(BIN)/python -c "import compileall, re, sysconfig; compileall.compile_dir(sysconfig.get_paths()['purelib'], quiet=2, workers=0, rx=re.compile('/tests?/'))"
	$(BYTECODE)
	touch $(DEMO_STAMP)

demo: $(if $(wildcard $(STAMP)),$(STAMP),$(DEMO_STAMP))
	$(BIN)/pycro-gpu demo --out demo_out

lint: $(STAMP)
	$(BIN)/ruff check pycro_gpu kernels tests benchmarks
	$(BIN)/ruff format --check -q pycro_gpu kernels tests benchmarks

# Whole suite: lint, NumPy + array_api_strict (+ CuPy where a device exists), PTX/ptxas compilation and
# the wheel check, then the CUDA kernels again under numba's simulator (a separate process: the
# simulator must be switched on before numba is imported).
test: lint test-cpu test-cudasim

# One BLAS thread in tests: numba's threads and BLAS's would otherwise oversubscribe a small machine.
# Two test processes (pytest-xdist): the slowest tests compile kernels or run subprocesses, one core each.
# TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2
test-cpu: $(STAMP) $(PYUSID_VENV)/.installed
	OPENBLAS_NUM_THREADS=1 PYCRO_GPU_PYUSID_PYTHON=$(abspath $(PYUSID_VENV))/bin/python \
		$(PYTEST) -m "not cudasim" -q -n $(TEST_WORKERS) --durations=15

test-cudasim: $(STAMP)
	NUMBA_ENABLE_CUDASIM=1 $(PYTEST) -m cudasim -q

# Every benchmark at the issues' sizes, side by side with its peer (JSON + Markdown in bench_out/).
# BENCH_ARGS=--quick for a smoke run, BENCH_ARGS="--backend cupy" on a GPU node.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all $(BENCH_ARGS)

# On a GPU node: every GPU path against the CPU path, with timings (bench_out/gpu_check/), then SHO fits/s
# at 1M and 4M spectra (bench_out/gpu_fit/); the second runs even when the first reports a failure.
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py --out bench_out/gpu_check; status=$$?; \
	$(BIN)/python benchmarks/bench_gpu_fit.py --out bench_out/gpu_fit && exit $$status

# Compile the kernels once for this machine into the on-disk cache (later runs load them).
compile: $(STAMP)
	$(BIN)/pycro-gpu compile

clean:
	rm -rf $(VENV) $(PYUSID_VENV) build dist *.egg-info demo_out bench_out .pytest_cache .ruff_cache
