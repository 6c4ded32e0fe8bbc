# Two commands from a fresh clone: `make demo` and `make test`. Both create .venv and
# install abfsm with what they need the first time (and again when pyproject.toml changes).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: demo test graph bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[demo,test,graph]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/abfsm demo

test: $(VENV)/.installed
	$(PY) -m pytest -n 4

graph: $(VENV)/.installed
	$(PY) -m tests.support.readme_graph --write
	$(PY) -m abfsm sfn compile --output tests/golden/packaged.asl.json

bench: $(VENV)/.installed
	$(PY) benchmarks/api_calls.py
	$(PY) benchmarks/startup.py
	$(PY) benchmarks/added_latency.py

clean:
	rm -rf $(VENV) .pytest_cache .abfsm
