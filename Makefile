# Relevo: `make run` starts a demo server on 127.0.0.1:8000, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
HOST   ?= 127.0.0.1
PORT   ?= 8000

ifndef PG_URL
PG_URL := postgres://postgres@127.0.0.1:5432/test
endif

.PHONY: install run test test-sqlite test-postgres test-windows test-browser bench clean packages packages-linux packages-windows screenshots

$(VENV)/.installed: requirements.txt requirements-dev.txt agent/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

# A local, git-ignored .env with a generated secret key, so that
# `python manage.py runserver` works by hand after the first `make run`/`make test`.
.env: | $(VENV)/.installed
	$(PY) -m inventory_site.envfile .env

run: install .env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py demo_setup --env-file .env
	$(PY) scripts/run_demo.py --host $(HOST) --port $(PORT)

# The whole suite twice: on the embedded SQLite, then on PostgreSQL (PG_URL); the
# backend_free tests (packages, Wine, a booted Debian) prove nothing new the second time.
# postgres_only tests (a PostgreSQL restart) are deselected on the SQLite run by conftest.py.
# pytest-django creates and drops test_relevo_<pid>, so parallel runs on one
# server do not collide. Outside CI a missing PostgreSQL skips that run with a
# message; under CI=true pytest runs anyway and fails on it.
test: test-sqlite test-postgres

test-sqlite: install .env
	DATABASE_URL= $(PY) -m pytest

test-postgres: install .env
	@if $(PY) -c "import psycopg, sys; psycopg.connect(sys.argv[1], connect_timeout=5).close()" "$(PG_URL)" 2>/dev/null \
	    || [ "$${CI:-}" = true ]; then \
	  echo "DATABASE_URL=$(PG_URL) $(PY) -m pytest -m 'not backend_free'"; \
	  DATABASE_URL="$(PG_URL)" RELEVO_TEST_DB_NAME="test_relevo_$$$$" $(PY) -m pytest -m "not backend_free"; \
	else \
	  echo "SKIPPED the PostgreSQL run: nothing answers at $(PG_URL) (start PostgreSQL or set PG_URL=...)"; \
	fi

test-browser: install .env
	$(PY) -m pytest -m browser

test-windows: install .env
	$(PY) -m pytest -m windows

# Installable agents in dist/, each with a .sha256 beside it; the version is
# agent/__init__.py's __version__.
packages: packages-linux packages-windows

# The zip and the MSI (needs wixl and msitools: apt-get install -y wixl msitools).
packages-windows: install
	$(PY) -m relevo_packaging.windows --dist dist

# Every page at 1440 and 390 px in build/screenshots/, from a throwaway server with demo data
# (needs chromium and chromium-driver, as test-browser does).
screenshots: install
	$(PY) scripts/screenshots.py

bench: install .env
	$(PY) bench/run_all.py

# relevo-agent_<version>_all.deb and relevo-agent-<version>.noarch.rpm (needs dpkg-deb and rpmbuild).
packages-linux: install
	PYTHON=$(PY) scripts/packages/build-linux.sh dist

clean:
	rm -rf $(VENV) build dist staticfiles .pytest_cache
