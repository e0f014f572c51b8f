# Relevo: `make run` starts a demo server on 127.0.0.1:8000, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install run test test-windows test-browser bench clean

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

test: install .env
	$(PY) -m pytest

test-browser: install .env
	$(PY) -m pytest -m browser

test-windows: install .env
	$(PY) -m pytest -m windows

bench: install .env
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) build staticfiles .pytest_cache
