# Orva: `make run` starts the daemon, `make test` runs the whole suite, `make test-fast` what needs
# neither a sandbox nor a browser, `make lint` the linters. Each installs what it needs, and `make run`
# only what running needs (no test tools, no browser). CONTRIBUTING.md says which to run when.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test test-sqlite test-postgresql test-fast lint bench clean system-deps test-system-deps pg-deps haproxy-deps cluster-demo web

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
	  { echo "Orva needs Python 3.11 or newer as $(PYTHON) (make PYTHON=python3.12 run picks another)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# orvad and the orva CLI
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

# ... plus the test tools (pytest, playwright, schemathesis, ruff, mypy)
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP) $(TEST_STAMP)

# The dashboard: npm installs the exact versions of web/package-lock.json, esbuild bundles web/src.
WEB_SOURCES := $(shell find web/src -type f 2>/dev/null) web/build.mjs web/package-lock.json
web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
web/dist/index.html: web/node_modules/.package-lock.json $(WEB_SOURCES)
	cd web && node build.mjs
web: web/dist/index.html

# Host packages, installed with apt when root on Debian/Ubuntu (else a warning): `make run` wants nftables
# and iproute2 (network_mode egress); `make test` also Debian's Chromium (the dashboard's browser tests).
APT_INSTALL = \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; }; \
	  else echo "warning: missing$$missing: $$why"; fi; \
	fi

system-deps:
	@missing=""; command -v nft >/dev/null 2>&1 || missing="$$missing nftables"; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	why="network_mode egress will be unavailable"; $(APT_INSTALL)

test-system-deps: system-deps pg-deps haproxy-deps
	@missing=""; [ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	why="the dashboard's browser tests need /usr/bin/chromium"; $(APT_INSTALL)

# Debian's PostgreSQL server binaries (/usr/lib/postgresql/<major>/bin) for the tests' throwaway clusters
# (tests/pg.py: initdb in a temp dir, no system service used); about 15 s to install here
pg-deps:
	@missing=""; ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	why="the PostgreSQL tests (tests/cluster) need initdb and postgres"; $(APT_INSTALL)

# Debian's HAProxy, the balancer in front of the 3-node test (tests/cluster/test_three_nodes.py) and
# `make cluster-demo` (run by tests/cluster3.py in the foreground; no system service used)
haproxy-deps:
	@missing=""; command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing="$$missing haproxy"; \
	why="the 3-node cluster test and make cluster-demo need haproxy"; $(APT_INSTALL)

# 3 orvad nodes in 3 network namespaces, a throwaway PostgreSQL and HAProxy in front, until Ctrl-C (as root:
# namespaces, nsjail); prints the balancer's URL and the admin key (docs/CLUSTER.md, Trying it)
cluster-demo: $(STAMP) system-deps pg-deps haproxy-deps
	$(BIN)/python -m tests.cluster3 demo

run: $(STAMP) system-deps web
	ORVA_DATA_DIR=$${ORVA_DATA_DIR:-./data} $(BIN)/orvad serve

# `make test`: the whole suite on both database drivers, one pass after the other (side by side on 2 cores
# the load failed timing-bound tests):
# - SQLite (`make test-sqlite`): every test, each orvad on its data dir's orva.db; tests/cluster runs its own
#   throwaway PostgreSQL clusters.
# - PostgreSQL (`make test-postgresql`): every test that starts an orvad, again (--orvad-tests-only: the others
#   do not depend on the driver), each data dir's orvad on a database of its own in one throwaway cluster
#   (tests/databases.py); without the `sqlite_only` tests (about the orva.db file itself) and the tests on
#   their own PostgreSQL (tests/cluster: the same on either pass).
# Both passes run whatever the first's outcome; make test fails if either fails. PYTEST_ARGS reaches both (a
# selection in which no test starts an orvad leaves the PostgreSQL pass nothing to run, which is no failure);
# JUNIT_DIR=<dir> writes each pass's JUnit XML there (sqlite.xml, postgresql.xml).
SQLITE_PASS = $(BIN)/pytest -q $(if $(JUNIT_DIR),--junitxml=$(JUNIT_DIR)/sqlite.xml) $(PYTEST_ARGS)
POSTGRESQL_PASS = ORVA_TEST_DATABASE=postgresql $(BIN)/pytest -q --orvad-tests-only \
	$(if $(JUNIT_DIR),--junitxml=$(JUNIT_DIR)/postgresql.xml) $(PYTEST_ARGS)

test: $(TEST_STAMP) test-system-deps web
	@started=$$(date +%s); \
	echo "make test: the SQLite pass"; $(SQLITE_PASS); sqlite=$$?; \
	echo "make test: the PostgreSQL pass"; $(POSTGRESQL_PASS); postgresql=$$?; \
	$(if $(PYTEST_ARGS),[ $$postgresql = 5 ] && echo "(none of PYTEST_ARGS's tests starts an orvad)" && postgresql=0; )\
	echo "make test: SQLite pass exit $$sqlite, PostgreSQL pass exit $$postgresql, $$(( ($$(date +%s) - $$started) / 60 )) min"; \
	[ $$sqlite = 0 ] && [ $$postgresql = 0 ]

test-sqlite: $(TEST_STAMP) test-system-deps web
	$(SQLITE_PASS)

test-postgresql: $(TEST_STAMP) test-system-deps web
	$(POSTGRESQL_PASS)

# The tests marked neither `sandbox` (nsjail, root, namespaces) nor `browser` (Chromium), without
# tests/repo/test_lint.py (that is `make lint`): about two CPU-minutes, so a minute or two on 2 cores. ORVA_NSJAIL points nowhere, as on a machine
# without nsjail: an unmarked test that deploys, invokes or builds fails here, and its report says to
# mark it (tests/conftest.py).
test-fast: $(TEST_STAMP) web pg-deps haproxy-deps
	ORVA_NSJAIL=/nonexistent/nsjail $(BIN)/pytest -q -n 2 -m "not sandbox and not browser" --ignore=tests/repo/test_lint.py

# Benchmarks are not part of `make test`; they need Debian's wrk (installed here when root),
# py-spy (PyPI) for the overhead breakdown and matplotlib for the chart (bench/chart.py).
bench: $(STAMP) pg-deps
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python -m pip install --quiet -e ".[fast]" py-spy "matplotlib>=3.8"
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# ruff check, ruff format --check and mypy --strict (pyproject.toml [tool.mypy]) on the Python, prettier (pinned in web/package.json) on the dashboard's sources
lint: $(TEST_STAMP) web/node_modules/.package-lock.json
	$(BIN)/ruff check .
	$(BIN)/ruff format --check orvad orva_cli tests bench
	$(BIN)/mypy orvad orva_cli
	cd web && node_modules/.bin/prettier --check src build.mjs

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache dist build web/dist web/node_modules
