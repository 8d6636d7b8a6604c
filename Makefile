# Two commands set everything up on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# A CPU torch build is the default; GPU users pass e.g.
#   make run TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu126"
TORCH_SPEC ?= torch==2.13.0
SAMPLES ?= resources/samples

.PHONY: run test test-fast lint bench clean screenshots

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/vfmstudio gui $(SAMPLES)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports
	$(PY) -m vfmstudio.settings --check README.md

test: lint
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest -q

# The quick tier while editing (tests marked slow are left out; CI runs them all with `make test`).
test-fast: $(VENV)/.installed
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest -q -m "not slow"

bench: $(VENV)/.installed
	$(PY) benchmarks/run_all.py

screenshots: $(VENV)/.installed
	QT_QPA_PLATFORM=offscreen $(PY) scripts/screenshots.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
