# gridmap — two commands do all set-up: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
GRIDS ?= 6500

.PHONY: setup system demo serve test lint bench clean db-down

setup: system $(STAMP) node_modules/.installed

system:
	@bash scripts/setup-system.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

# The page's scripts (MapLibre GL JS, Leaflet) come from the npm registry, served locally.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

demo: setup
	$(BIN)/gridmap db up
	$(BIN)/gridmap db migrate
	$(BIN)/gridmap sample --grids $(GRIDS) --if-empty
	@echo "gridmap: serving on http://$(HOST):$(PORT) (Ctrl-C to stop)"
	$(BIN)/gridmap serve --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy gridmap api sample_data

bench: setup
	$(BIN)/python -m benchmarks.run_all

db-down:
	-$(BIN)/gridmap db down

clean: db-down
	rm -rf $(VENV) .gridmap
