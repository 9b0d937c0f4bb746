# conductor-loop developer tasks. Every target sets up what it needs from scratch.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export PYO3_PYTHON := $(abspath $(PY))
export VIRTUAL_ENV := $(abspath $(VENV))
PYTEST_ARGS ?=
BENCH_PATHS ?= benches
BENCH_TOLERANCE ?= 0.15
BENCH_RUN = $(PY) -m pytest $(BENCH_PATHS) -p no:cacheprovider --benchmark-json=bench-report.json -q -s $(PYTEST_ARGS)

.PHONY: install venv test cargo-test pytest lint fmt bench bench-check bench-plot wheel sdist demo clean

$(VENV)/.deps: requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.deps

## install: venv with pinned tools + editable build of the package (Rust core in release mode), its bytecode
## compiled as pip compiles an installed wheel's (an editable install is not, and PYTHONDONTWRITEBYTECODE may be set)
install: venv
	$(VENV)/bin/maturin develop --release -q
	$(PY) -m compileall -q python

## test: cargo test, then the whole pytest suite
test: install cargo-test pytest

cargo-test: venv
	cargo test --quiet

pytest: install
	$(PY) -m pytest $(PYTEST_ARGS)

## lint: rustfmt, clippy, ruff, mypy
lint: install
	cargo fmt --check
	cargo clippy --all-targets --quiet -- -D warnings
	$(VENV)/bin/ruff check python tests benches
	$(VENV)/bin/mypy

fmt: venv
	cargo fmt
	$(VENV)/bin/ruff check --fix python tests benches

## bench: benchmarks, each printed beside its baseline measured in the same run (BENCH_PATHS=benches/bench_once.py for one file) and its change against the history; appends the run to benches/history.jsonl
bench: install
	$(BENCH_RUN)
	$(PY) benches/report.py bench-report.json
	$(PY) benches/history.py record bench-report.json

## bench-check: benchmarks, then fail if a ratio dropped more than BENCH_TOLERANCE (0.15) below its best of the last 10 runs on this machine kind; appends nothing
bench-check: install
	$(BENCH_RUN)
	$(PY) benches/report.py bench-report.json
	$(PY) benches/history.py check bench-report.json --tolerance $(BENCH_TOLERANCE)

## bench-plot: each ratio of benches/history.jsonl across commits, one subplot per figure, in bench-history.png
bench-plot: venv
	$(PY) benches/plot_history.py --out bench-history.png

## wheel: abi3 manylinux2014 (glibc >= 2.17) x86_64 wheel into dist/, linked with zig (ziglang from the venv)
wheel: venv
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/maturin build --release -q --zig --compatibility manylinux2014 -o dist

## sdist: source distribution into dist/ (pip builds it where a Rust toolchain is installed)
sdist: venv
	$(VENV)/bin/maturin sdist -o dist

## demo: a demo handoff directory processed once with the built-in porch
demo: install
	rm -rf demo && $(PY) -m conductor_loop.demo demo
	$(VENV)/bin/conductor-loop run --once --handoff demo/handoff --out demo/out; rc=$$?; \
	  echo "exit code $$rc (8 = some intents of this run failed, as the demo intends)"; \
	  find demo -type f | sort; \
	  test $$rc -eq 0 -o $$rc -eq 8

clean:
	rm -rf target dist demo $(VENV) .pytest_cache .mypy_cache .ruff_cache bench-report.json bench-history.png
