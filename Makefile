# One-command entry points for a fresh machine (Python >= 3.10 with venv).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: env test bench cube lint

# Until bundled default models ship, the main job uses the golden fixtures' real tiny
# checkpoint, which is on disk: it runs offline.
MODEL ?= ../shared/golden/satclip-tiny-l40.ckpt
CUBE ?= cube.zarr

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=25.1"
	$(PY) -m pip install -q torch==2.13.0  # CPU build; take a CUDA build yourself on a GPU box
	$(PY) -m pip install -q -e ".[all]" --group dev
	touch $@

env: $(VENV)/.installed

test: env
	$(PY) -m pytest -q

lint: env
	$(VENV)/bin/ruff check xsatclip tests benchmarks examples tools

cube: env
	$(VENV)/bin/xsatclip precompute $(CUBE) --resolution 10 --model $(MODEL)
	$(VENV)/bin/xsatclip info $(CUBE)

bench: env
	$(PY) benchmarks/run.py
