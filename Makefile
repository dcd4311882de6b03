# Orva: `make run` starts the daemon, `make test` runs the whole suite. Both install what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench clean system-deps web

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The dashboard: npm installs the exact versions of web/package-lock.json, esbuild bundles web/src.
WEB_SOURCES := $(shell find web/src -type f 2>/dev/null) web/build.mjs web/package-lock.json
web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
web/dist/index.html: web/node_modules/.package-lock.json $(WEB_SOURCES)
	cd web && node build.mjs
web: web/dist/index.html

# Host packages (installed when root on Debian): nftables and iproute2 for network_mode egress,
# Chromium for the dashboard's browser tests.
system-deps:
	@missing=""; command -v nft >/dev/null 2>&1 || missing="$$missing nftables"; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; }; \
	  else echo "warning: missing$$missing: network_mode egress will be unavailable"; fi; \
	fi

run: $(STAMP) system-deps web
	ORVA_DATA_DIR=$${ORVA_DATA_DIR:-./data} $(BIN)/orvad serve

test: $(STAMP) system-deps web
	$(BIN)/pytest -q

# Benchmarks are not part of `make test`; they need Debian's wrk (installed here when root), and
# py-spy (PyPI) for the overhead breakdown.
bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python -m pip install --quiet -e ".[fast]" py-spy
	$(BIN)/python bench/run.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache dist build web/dist web/node_modules
