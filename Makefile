# Two commands on a fresh machine with python3 and git:  `make repro`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1

.PHONY: install repro test test-fast exp-show clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed  ## create .venv with lsdm and its dependencies

repro: install  ## run the default pipeline (only what changed reruns)
	dvc repro

test: install  ## the whole test suite (what CI runs)
	pytest -q

test-fast: install  ## unit tests only, without the end-to-end DVC / Prefect runs
	pytest -q -m "not slow"

exp-show: install
	dvc exp show --md

clean-venv:
	rm -rf $(VENV)
