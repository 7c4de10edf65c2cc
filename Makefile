# Two commands on a fresh machine with python3 and git:  `make repro`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1

.PHONY: install repro lint test test-fast exp-show docs clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed  ## create .venv with lsdm and its dependencies

repro: install  ## run the default pipeline (only what changed reruns)
	dvc repro

lint: install  ## ruff's rules and its formatter's layout (pyproject.toml); `ruff format .` rewrites the layout
	ruff check . && ruff format --check .

test: install lint  ## the linter, then the whole test suite (what CI runs): two workers, each test file on one of them
	pytest -q -n 2 --dist loadfile --durations=12

test-fast: install  ## unit tests only, without the end-to-end DVC / Prefect runs
	pytest -q -m "not slow"

# `dvc exp show` as a reader compares runs: each experiment's name, the params that differ between the
# runs shown, and the headline eval.label_accuracy and eval.fid_evalnet (kept even where equal). Dropped:
# the creation time, the other metrics (all in `dvc exp show` and the reports), the training stages'
# summaries and every dependency's hash. DVC has no setting for its default columns, hence the flags;
# tests/test_pipeline.py runs this command and holds it to that. EXP_SHOW_ARGS=--md: a Markdown table.
EXP_SHOW_KEEP := ^eval\.(label_accuracy|fid_evalnet)$$
EXP_SHOW_DROP := ^Created$$|^eval\.|^prepare\.|^baseline\.|^(latent|matcher|evalnet)\.(train_|test_|target$$|n_images$$|n_pairs$$|n_pool$$|n_pseudo$$|variant$$)|^pseudo\.unpaired|.*/|^params\.yaml$$|^inputs$$
EXP_SHOW_ARGS ?=
exp-show: install
	dvc exp show --only-changed --keep '$(EXP_SHOW_KEEP)' --drop '$(EXP_SHOW_DROP)' $(EXP_SHOW_ARGS)

# The documentation site (docs/, mkdocs.yml) into site/; `mkdocs serve` previews it at 127.0.0.1:8000.
docs: install
	mkdocs build --strict

clean-venv:
	rm -rf $(VENV)

# --- Run with Prefect (docs/orchestration-and-scale-out.md) ---------------------------------------
# A local Prefect server (SQLite under .prefect/, no cloud, analytics off), the process work pool
# `gpu`, the deployments of prefect.yaml (lsdm/full, lsdm/sweep, lsdm/point) and a worker in this checkout.
# `make prefect-up` starts it all in the background, `make prefect-run` runs lsdm/full (a completed run
# leaves the workspace as `dvc exp run -S` does: its params beside its outputs),
# `make prefect-down` stops it. OVERRIDES='{"split.n_paired_per_class": 3}' for other params.
PREFECT_PORT ?= 4200
PREFECT_POOL := gpu
OVERRIDES    ?= {}
PREFECT_DIR  := $(CURDIR)/.prefect
prefect-%: export PREFECT_HOME := $(PREFECT_DIR)
prefect-%: export PREFECT_API_URL := http://127.0.0.1:$(PREFECT_PORT)/api
prefect-%: export PREFECT_SERVER_ANALYTICS_ENABLED := false
prefect-%: export LSDM_REPO := $(CURDIR)

.PHONY: prefect-server prefect-pool prefect-deploy prefect-worker prefect-run prefect-sweep prefect-up prefect-down

prefect-server: install  ## Prefect server on 127.0.0.1:$(PREFECT_PORT), in the foreground
	prefect server start --host 127.0.0.1 --port $(PREFECT_PORT) --analytics-off

PREFECT_POOL_CMD   = prefect work-pool inspect $(PREFECT_POOL) >/dev/null 2>&1 || prefect work-pool create $(PREFECT_POOL) --type process
PREFECT_DEPLOY_CMD = prefect --no-prompt deploy --all

prefect-pool: install  ## the process work pool `gpu` (once)
	$(PREFECT_POOL_CMD)

prefect-deploy: install prefect-pool  ## register lsdm/full, lsdm/sweep and lsdm/point (prefect.yaml)
	$(PREFECT_DEPLOY_CMD)

prefect-worker: install  ## a process worker in this checkout ($$LSDM_REPO), in the foreground
	prefect worker start --pool $(PREFECT_POOL) --type process

prefect-run: install  ## prefect deployment run lsdm/full (OVERRIDES='{"split.n_paired_per_class": 3}'), watched
	prefect deployment run lsdm/full --params '{"overrides": $(OVERRIDES)}' --watch

prefect-sweep: install  ## prefect deployment run lsdm/sweep (params.yaml sweep section, one lsdm/point run per point)
	prefect deployment run lsdm/sweep

prefect-up: install  ## server + pool + deployments + worker in the background (logs in .prefect/)
	@mkdir -p $(PREFECT_DIR)
	@if [ -f $(PREFECT_DIR)/server.pid ] && kill -0 $$(cat $(PREFECT_DIR)/server.pid) 2>/dev/null; then \
	  echo "server already running (pid $$(cat $(PREFECT_DIR)/server.pid))"; \
	else \
	  setsid prefect server start --host 127.0.0.1 --port $(PREFECT_PORT) --analytics-off \
	    > $(PREFECT_DIR)/server.log 2>&1 < /dev/null & echo $$! > $(PREFECT_DIR)/server.pid; \
	fi
	@for i in $$(seq 120); do python -c "import urllib.request as u; u.urlopen('$(PREFECT_API_URL)/health')" 2>/dev/null && break; sleep 1; done; \
	python -c "import urllib.request as u; u.urlopen('$(PREFECT_API_URL)/health')" 2>/dev/null || { tail -20 $(PREFECT_DIR)/server.log; exit 1; }
	$(PREFECT_POOL_CMD)
	$(PREFECT_DEPLOY_CMD)
	@if [ -f $(PREFECT_DIR)/worker.pid ] && kill -0 $$(cat $(PREFECT_DIR)/worker.pid) 2>/dev/null; then \
	  echo "worker already running (pid $$(cat $(PREFECT_DIR)/worker.pid))"; \
	else \
	  setsid prefect worker start --pool $(PREFECT_POOL) --type process \
	    > $(PREFECT_DIR)/worker.log 2>&1 < /dev/null & echo $$! > $(PREFECT_DIR)/worker.pid; \
	fi
	@echo "Prefect UI: http://127.0.0.1:$(PREFECT_PORT)  (logs: .prefect/*.log; stop: make prefect-down)"

prefect-down:  ## stop the worker (and its flow runs), then the server, started by prefect-up
	@for p in worker server; do \
	  f=$(PREFECT_DIR)/$$p.pid; [ -f $$f ] || continue; g=$$(cat $$f); \
	  kill -TERM -$$g 2>/dev/null; \
	  for i in $$(seq 30); do kill -0 -$$g 2>/dev/null || break; sleep 1; done; \
	  kill -KILL -$$g 2>/dev/null; rm -f $$f; echo "stopped $$p"; \
	done

# --- Baselines, sweeps and the comparison report (docs/experiments.md) ----------------------------
# `make sweep` queues one DVC experiment per paired count x seed (params.yaml's `sweep:` section),
# runs them one at a time (dvc queue start -j 1), collects `dvc exp show --json` into results/sweep/
# and writes reports/comparison.md. SWEEP_ARGS='--counts 1 10 --seeds 0 -S matcher.steps=500' for others.
SWEEP_ARGS ?=

.PHONY: sweep compare bench bench-gpu readme

sweep: install  ## DVC experiments over split.n_paired_per_class x split.seed, then the comparison report
	lsdm sweep $(SWEEP_ARGS)

compare: install  ## rebuild reports/comparison.md from results/sweep/sweep.parquet
	lsdm compare

bench: install  ## full vs incremental repro, LSDM vs latent flow throughput, peak memory per stage
	python benchmarks/bench_pipeline.py

bench-gpu: install  ## on a GPU box: the gpu tests, the matcher eager vs CUDA graph, bench_pipeline on CUDA
	benchmarks/gpu_checks.sh

# --- The figures of README.md and docs/: each `<!-- generated: NAME -->` block is rendered from the
# committed files it names (lsdm/reports/readme.py). After rerunning what writes one of them, `make readme`;
# README_ARGS=--check only compares (exit 1 names the stale blocks), as tests/test_readme.py does.
README_ARGS ?=

readme: install  ## rewrite the generated blocks of README.md and docs/ from their committed files
	python -m lsdm.reports.readme $(README_ARGS)

# --- Pretrained weights of the optional metrics (docs/metrics.md): the only download --------------
# `make weights` lists what fid_inception/kid_inception and lpips_diversity need and whether it is on
# disk; WEIGHTS_ARGS='fetch all' downloads them, checked, into the caches the evaluate stage reads.
WEIGHTS_ARGS ?=

.PHONY: weights

weights: install  ## list the optional metrics' pretrained files; WEIGHTS_ARGS='fetch all' fetches them, checked
	lsdm weights $(WEIGHTS_ARGS)
