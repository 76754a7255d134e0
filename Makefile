# One-command entry points for a fresh machine (Python >= 3.10 with venv).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: env test bench cube evaluate lint

# The main job: a global 1-degree cube with the bundled L = 40 model (offline).
LEVEL ?= 40
RESOLUTION ?= 1
CUBE ?= cube.zarr

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=25.1"
	$(PY) -m pip install -q torch==2.13.0  # CPU build; take a CUDA build yourself on a GPU box
	$(PY) -m pip install -q -e ".[all]" --group dev
	$(PY) -m pip install -q --no-deps "geoclip==1.3.0"  # GeoCLIP's weights; its imports are not needed
	touch $@

env: $(VENV)/.installed

test: env
	$(PY) -m pytest -q

lint: env
	$(VENV)/bin/ruff check xsatclip tests benchmarks examples tools
	$(VENV)/bin/mypy

cube: env
	$(VENV)/bin/xsatclip precompute $(CUBE) --resolution $(RESOLUTION) --level $(LEVEL)
	$(VENV)/bin/xsatclip info $(CUBE)

evaluate: env
	$(VENV)/bin/xsatclip evaluate --out evaluation.md

bench: env
	$(PY) benchmarks/run.py
