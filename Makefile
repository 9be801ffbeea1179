# Two entry points for a fresh machine (Linux, Python >= 3.11): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test setup clean

demo: $(VENV)/.installed
	$(PY) -m infill.cli demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

setup: $(VENV)/.installed

# torch is pinned and installed first: an unpinned torch pulls a multi-GB CUDA build. The
# editable install also builds speculative/_ngram.c in place (again when it changes).
$(VENV)/.installed: pyproject.toml speculative/_ngram.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
