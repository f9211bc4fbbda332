# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python
PIP ?= $(PYTHON) -m pip
# torch is installed explicitly first: the CPU build on disk satisfies it, while a
# bare `torch` requirement would pull a multi-GB CUDA build.
TORCH = torch==2.13.0

.PHONY: install install-dev demo test test-all bench

install:
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e .

install-dev:
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e ".[dev,dp,mlflow,bench,skops,serve,monitor,dask]"

demo: install
	mkdir -p demo
	poisonguard attack --dataset digits --kind flip --rate 0.1 --seed 0 --out demo/digits_poisoned.csv --truth demo/digits_truth.csv
	poisonguard scan demo/digits_poisoned.csv --label label --out demo/suspicious_samples.csv --scores demo/scores.csv

test: install-dev
	$(PYTHON) -m pytest -q -n 2 -p no:cacheprovider

# benchmark-style checks left out of CI
test-all: install-dev
	$(PYTHON) -m pytest -q -n 2 -m "slow or not slow"

bench: install-dev
	$(PYTHON) benchmarks/bench_scan.py
