# kdtemp: the two commands a new user needs are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The locked test environment of this Python (locks/py<X.Y>.txt, written by `make lock`).
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
LOCK := locks/py$(PYVER).txt
# The interpreters `make lock` resolves for: every python3.10 ... python3.13 on the PATH.
LOCK_PYTHONS ?= $(shell for v in 3.10 3.11 3.12 3.13; do python$$v -c '' >/dev/null 2>&1 && echo python$$v; done)

.PHONY: run test test-slow test-all lock bench bench-gpu clean

# Create the virtual environment and install kdtemp with its test extras (once, and again when
# pyproject.toml or the lock changes), pinned by the lock of this Python where there is one.
$(STAMP): pyproject.toml $(wildcard $(LOCK))
	$(PYTHON) -m venv $(VENV)
	@if [ -f "$(LOCK)" ]; then echo "installing the locked test environment $(LOCK)"; \
	else echo "kdtemp: no lock for Python $(PYVER) in locks/: installing the ranges of pyproject.toml (make lock writes one)"; fi
	$(PY) -m pip install --quiet --disable-pip-version-check $(if $(wildcard $(LOCK)),-c $(LOCK)) -e ".[test]" \
		> $(VENV)/pip.log 2>&1 || { grep -v "is neither a file nor a directory" $(VENV)/pip.log; exit 1; }
	@grep -v "is neither a file nor a directory" $(VENV)/pip.log || true
	$(PY) -c "import kdtemp, torch, torchvision, timm"
	touch $(STAMP)

# Prepare a small teacher on scikit-learn's digits, distill a cohort over the study's
# temperature grid and print the accuracy per temperature.
run: $(STAMP)
	$(VENV)/bin/kdtemp demo

# The test suite without the end-to-end runs marked slow (CI runs those too: make test-slow).
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

test-all: $(STAMP)
	$(PY) -m pytest -q

# Resolve kdtemp[test] anew for every Python on the PATH (new releases, a changed dependency in
# pyproject.toml) and write locks/py<X.Y>.txt; commit them once `make test` passes with them.
lock:
	$(PYTHON) locks/make.py $(LOCK_PYTHONS)

bench: $(STAMP)
	$(PY) bench/cohort.py
	$(PY) bench/augment.py
	$(PY) bench/gpu.py --steps 20 --warmup 2
	$(PY) bench/lm.py

# On a CUDA machine, in one go: the CUDA-only tests, both augmentation arms on the device, and the
# GPU benchmark's two configurations (BENCHMARKS.md records what they print).
bench-gpu: $(STAMP)
	$(PY) -m pytest -q -rs tests/tasks/image/test_augment.py tests/engine/test_member.py -k cuda
	$(PY) bench/augment.py --device cuda --repeats 5
	$(PY) bench/gpu.py --device cuda --teacher resnet56 --student resnet20 --resolution 32 --batch-size 64 --steps 50 --members 9
	$(PY) bench/gpu.py --device cuda --teacher resnet50 --student resnet18 --resolution 224 --crop --batch-size 64 --steps 30 --members 9
	$(PY) bench/lm.py --device cuda --preset gpt2 --members 4 --epochs 1 --records 256 --batch-size 8

clean:
	rm -rf $(VENV) .pytest_cache
