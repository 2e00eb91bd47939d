# Each target creates .venv itself, so a fresh clone needs nothing but python3.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench chaos clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m durabatch.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy durabatch workflows activities worker.py tests bench examples

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q

# Ingest: durabatch beside the raw COPY and download limits and the plain openai-SDK script
# (docs/benchmarks.md); `make bench BENCH_INGEST_ARGS=--big` adds 500k results and 1 GB.
BENCH_INGEST_ARGS ?=

bench: $(STAMP)
	$(BIN)/python bench/bench_emulator.py
	$(BIN)/python bench/bench_pipeline.py $(BENCH_INGEST_ARGS)
	$(BIN)/python bench/bench_starts.py
	$(BIN)/python bench/bench_orchestration.py --batches 200 1000 --interval 10 --window 30
	$(BIN)/python bench/bench_orchestration.py --batches 200 --interval 10 --window 30 --burst 1000
	$(BIN)/python bench/bench_fleet.py --batches 1000 --window 60 --sample 20
	$(BIN)/python bench/bench_realtime.py
	$(BIN)/python bench/bench_admission.py

chaos: $(STAMP)
	$(BIN)/python bench/chaos.py

clean:
	rm -rf $(VENV) .durabatch .mypy_cache .ruff_cache .pytest_cache
