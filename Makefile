# Qudao — two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
QUDAO_TEST_PG    ?= postgres://postgres@127.0.0.1:5432/test
QUDAO_TEST_REDIS ?= redis://127.0.0.1:6379/0
export QUDAO_TEST_PG QUDAO_TEST_REDIS

.PHONY: run install test test-embedded test-server lint migrations bench faults soak clean vendor browser-deps

$(BIN)/qudao: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $@

install: $(BIN)/qudao

## make run: embedded default (SQLite + in-process kv) on http://127.0.0.1:8080
run: install
	$(BIN)/qudao migrate
	$(BIN)/qudao seed-demo
	$(BIN)/qudao serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# pytest-xdist workers per pass (0 = one process): ~1.5x faster on 2 cores.
TEST_WORKERS ?= 2

test-embedded: install
	QUDAO_TEST_BACKEND=embedded $(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS)

# PostgreSQL + Redis: run when they answer; under CI=true they must answer.
test-server: install
	@if $(PY) -m tests.probe; then \
	  QUDAO_TEST_BACKEND=server $(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS); \
	elif [ "$$CI" = "true" ]; then \
	  echo "CI=true but PostgreSQL ($(QUDAO_TEST_PG)) or Redis ($(QUDAO_TEST_REDIS)) does not answer"; exit 1; \
	else \
	  echo "PostgreSQL/Redis not answering: server-backend tests not run (set QUDAO_TEST_PG / QUDAO_TEST_REDIS)"; \
	fi

## make test: lint + the suite on SQLite+memory, then on PostgreSQL+Redis
test: lint browser-deps test-embedded test-server

# The console's browser tests drive Debian's chromium (Playwright cannot download a browser
# here) and need a CJK font: installed with apt when missing and running as root (CI).
browser-deps:
	@if dpkg-query -W -f='$${Status}\n' chromium fonts-noto-cjk 2>/dev/null | grep -vq "ok installed" \
	    || ! dpkg-query -W chromium fonts-noto-cjk >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk; \
	  else \
	    echo "chromium / fonts-noto-cjk missing (not root): console browser tests skip (fail under CI=true)"; \
	  fi; \
	fi

migrations: install
	$(PY) -c "import asyncio, core.migrations_tool as m; asyncio.run(m.make_migrations(fresh=True))"

bench: install
	$(PY) -m bench

## make faults: kill -9, PostgreSQL/Redis stop, freeze and restart against throw-away servers
## on free ports (needs initdb/postgres and redis-server); exit 1 on an invariant violation
faults: install
	$(PY) -m bench.faults

## make soak: SOAK_MINUTES (default 10) of orders, stock reads, chat and payments with the
## scheduler on, against throw-away servers; exit 1 on an invariant violation
soak: install
	$(PY) -m bench.soak

## make vendor: refresh the console's front-end assets from package-lock.json (npm) into
## console/static/vendor (committed: nothing is fetched at run time)
VENDOR := console/static/vendor
vendor:
	npm ci --no-audit --no-fund --ignore-scripts
	cp node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/htmx.min.js
	cp node_modules/echarts/dist/echarts.common.min.js $(VENDOR)/echarts.common.min.js

clean:
	rm -rf $(VENV) data/*.sqlite3*
