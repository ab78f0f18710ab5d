# ISAFE analysis handbook. `make` lists the targets.
SHELL := bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | sha1sum | cut -c1-12)
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: help env book test faults lint typecheck hooks wheel notebooks bundled-data bench browser clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

env: $(STAMP) ## make the virtual environment (.venv) if it is missing or stale

book: env ## run every strand for every LA and the pooled trial on the bundled data, then build the book and its PDFs
	$(PY) -m isafe_helpers run --pdf

browser: ## install Debian's headless Chromium and poppler-utils (the browser and PDF tests) if missing (needs root)
	@if { command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium; } && command -v pdftotext >/dev/null 2>&1 \
	  && command -v pdfinfo >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium and poppler-utils for the browser and PDF tests"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver poppler-utils \
	  || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver poppler-utils; } \
	  || echo "could not install chromium/poppler-utils: the browser and PDF tests (tests/test_browser.py, tests/test_pdf.py) will be skipped"; \
	else echo "chromium or poppler-utils is missing and this user cannot apt-get install them (not root, or no apt-get):" \
	  "the browser and PDF tests will be skipped; install Debian's chromium and poppler-utils to run them"; fi

test: env browser ## run the whole test suite (pytest, doctests, nbval, ruff, the browser test, the fault matrix)
	ISAFE_FAULT_TESTS=1 $(PY) -m pytest

faults: env browser ## the fault matrix (tests/test_build_faults.py: kill -9, two commands, read-only and full folders; about 6 minutes, root for the tmpfs cases)
	ISAFE_FAULT_TESTS=1 $(PY) -m pytest tests/test_build_faults.py -o addopts="-p no:cacheprovider"

lint: env ## ruff
	$(PY) -m ruff check isafe_helpers tests

typecheck: env ## mypy on the package (configured in pyproject.toml)
	$(PY) -m mypy

hooks: env ## install the pre-commit hooks (.pre-commit-config.yaml) into .git/hooks
	$(PY) -m pre_commit install

wheel: env ## build the wheel into dist/ (setuptools' build/ is cleared before and after: stale copies would ship)
	rm -rf build isafe_helpers.egg-info
	$(PY) -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation -w dist .
	rm -rf build isafe_helpers.egg-info
	@ls dist/*.whl

notebooks: env ## re-execute the committed notebooks in place on the bundled data
	cd notebooks && for nb in impact process cost; do \
	  ../$(PY) -m papermill --no-progress-bar $$nb.ipynb $$nb.ipynb || exit 1; done
	$(PY) -m isafe_helpers.run.tidy_notebooks notebooks/*.ipynb

bundled-data: env ## regenerate the bundled synthetic data root (data/synthetic)
	rm -rf data/synthetic && $(PY) -m isafe_helpers synth --out data/synthetic

bench: env ## run the benchmark (bench/run_bench.py; about 20 minutes) and write bench/RESULTS.md
	$(PY) bench/run_bench.py

clean: ## remove results and the built book
	rm -rf results _build
