# Two commands on a fresh machine with Python 3.11 and pip: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint setup services clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

serve: $(STAMP)
	$(BIN)/openpersonalize serve --host $${OPENPERSONALIZE_HOST:-127.0.0.1} --port $${OPENPERSONALIZE_PORT:-8080} --data-dir $${OPENPERSONALIZE_DATA_DIR:-data}

# What the tests need beside Python packages: PostgreSQL's server binaries, for the
# PostgreSQL e2e test; the AWS CLI; headless Chromium and its driver, for the console's
# browser tests (Debian's packages, where apt-get runs as root; under CI=true those tests
# fail rather than skip when they are missing). Fast when already installed.
# PG_INITDB: where Debian's package puts initdb (a path that is not there forces the install).
PG_INITDB ?= /usr/lib/postgresql/*/bin/initdb
services:
	@if ! ls $(PG_INITDB) >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing PostgreSQL (Debian package postgresql) for the PostgreSQL test"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends postgresql >/dev/null; } || \
	      echo "could not install PostgreSQL; its test will skip (or fail under CI=true)"; \
	  else \
	    echo "PostgreSQL server binaries missing; its test will skip (or fail under CI=true)"; \
	  fi; \
	fi
	@if ! /usr/bin/aws --version 2>/dev/null | grep -q '^aws-cli/2'; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing the AWS CLI v2 (Debian package awscli) for the CLI workflow test"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q --no-install-recommends awscli >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends awscli >/dev/null; } || \
	      echo "could not install awscli; its test will skip (or fail under CI=true)"; \
	  else \
	    echo "AWS CLI v2 missing; its test will skip (or fail under CI=true)"; \
	  fi; \
	fi
	@if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Chromium (Debian packages chromium, chromium-driver) for the console's browser tests"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null; } || \
	      echo "could not install Chromium; the browser tests will skip (or fail under CI=true)"; \
	  else \
	    echo "Chromium or chromedriver missing; the browser tests will skip (or fail under CI=true)"; \
	  fi; \
	fi

test: $(STAMP) services
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider; status=$$?; if [ $$status -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) data
