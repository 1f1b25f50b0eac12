# Instance Normalization reproduction. `make help` lists the targets.
#
# `make setup` creates .venv (unless a conda or virtual environment is already active) and
# installs the project with its dev extras; every other target uses that interpreter.

SHELL := /bin/bash
.DEFAULT_GOAL := help
PROFILE ?= cpu
# DRY=1: a dry run of PROFILE (tiny images, a few steps, a random VGG-19 stand-in for downloads)
ifneq ($(filter-out 0 1 yes no true false,$(DRY)),)
$(error DRY=$(DRY): say DRY=1 for a dry run, or leave it out)
endif
DRY_RUN := $(if $(filter 1 yes true,$(DRY)),--dry-run,)
# make gpu-check GPU_CHECK_ARGS='--skip bench' (the options: python -m bench.gpu_check --help)
GPU_CHECK_ARGS ?=

ifneq ($(strip $(VIRTUAL_ENV)$(CONDA_PREFIX)),)
PYTHON ?= python
SETUP_STAMP := .setup-stamp-active-env
else
PYTHON ?= .venv/bin/python
SETUP_STAMP := .venv/.setup-stamp
endif

FIGS := fig1 fig2 fig3 fig4 fig5 fig6 adain_fig1 adain cin quality sweep trends

.PHONY: help setup data test smoke figures bench gpu-check notebooks lab explore clean distclean $(FIGS)

help: ## list the targets
	@echo "usage: make TARGET [PROFILE=smoke|cpu|gpu|paper] [DRY=1]"
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  %-16s %s\n", $$1, $$2}'
	@echo "  $(FIGS)"
	@echo "                   one figure's notebook, e.g. make fig2 PROFILE=cpu"

setup: $(SETUP_STAMP) ## create .venv (unless an env is active) and install repro[dev]

$(SETUP_STAMP): pyproject.toml
ifeq ($(strip $(VIRTUAL_ENV)$(CONDA_PREFIX)),)
	test -x .venv/bin/python || python3 -m venv .venv
endif
	$(PYTHON) -m pip install --upgrade pip
	$(PYTHON) -m pip install -e '.[dev]'
	touch $@

data: setup ## fetch and verify VGG weights and images into data/ (mirror or download)
	$(PYTHON) -m repro data

test: setup data ## unit tests and the notebooks' stored smoke runs (nbval)
	$(PYTHON) -m pytest tests notebooks --nbval-lax --nbval-current-env \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg -q

smoke: setup data ## every figure notebook with the smoke profile (a quick end-to-end check)
	$(PYTHON) -m repro figures --profile smoke

figures: setup data ## regenerate every figure into figures/ (PROFILE=cpu by default; DRY=1: a dry run)
	$(PYTHON) -m repro figures --profile $(PROFILE) $(DRY_RUN)

$(FIGS): setup data
	$(PYTHON) -m repro figures --profile $(PROFILE) $(DRY_RUN) --only $@

bench: setup data ## benchmarks vs plain fp32 references -> bench/results/<machine>.json, README table
	$(PYTHON) -m bench

gpu-check: setup data ## on a GPU: its CUDA paths, bench, the gpu figures -> bench/results/gpu-check-<gpu>.json
	$(PYTHON) -m bench.gpu_check $(GPU_CHECK_ARGS)

notebooks: setup data ## rebuild notebooks/*.ipynb from their .py sources with smoke outputs
	$(PYTHON) -m repro notebooks

lab: setup data ## open JupyterLab on the notebooks
	$(PYTHON) -m jupyter lab notebooks/index.ipynb $(if $(filter 0,$(shell id -u)),--allow-root)

explore: setup data ## open the explorer notebook in JupyterLab (the trained models, with widgets)
	$(PYTHON) -m jupyter lab notebooks/explore.ipynb $(if $(filter 0,$(shell id -u)),--allow-root)

clean: ## remove caches and executed notebooks (keeps .venv, data/, runs/)
	rm -rf build .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## also remove .venv, the fetched data and the training runs
	rm -rf .venv runs
	find data -mindepth 1 -maxdepth 1 ! -name README.md ! -name manifests -exec rm -rf {} +
