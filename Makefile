# pausectl: `make demo` runs the main job, `make test` runs the tests. Both set themselves up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m reconciler.demo

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) bench/resolve.py
	$(PY) bench/live.py

clean:
	rm -rf $(VENV) .airflow .pytest_cache
