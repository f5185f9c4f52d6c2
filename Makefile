# kdtemp: the two commands a new user needs are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench bench-gpu clean

# Create the virtual environment and install kdtemp with its test extras (once, and again when
# pyproject.toml changes). pip resolves torch, torchvision and timm together.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]" 2>&1 | grep -v "is neither a file nor a directory" || true
	$(PY) -c "import kdtemp, torch, torchvision, timm"
	touch $(STAMP)

# Prepare a small teacher on scikit-learn's digits, distill a cohort over the study's
# temperature grid and print the accuracy per temperature.
run: $(STAMP)
	$(VENV)/bin/kdtemp demo

# Run the test suite.
test: $(STAMP)
	$(PY) -m pytest -q

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
