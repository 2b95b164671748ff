# facezoo — `make train` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
ARGS ?=
EXPERIMENT ?= retouchformer_synthetic
# torch threads of train / sweep / ablations: 1 is what the README's figures were measured with (a run repeats
# bit for bit only at the same thread count) and the most robust on a small shared CPU; THREADS=2 is faster idle
THREADS ?= 1
SWEEPS := logs/sweeps
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export HYDRA_FULL_ERROR ?= 0

.PHONY: help install train test test-full sweep ablations bench lint clean
.DEFAULT_GOAL := help

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-10s %s\n", $$1, $$2}'

install: ## Create .venv (pip, torch pinned to the CPU build); fast when nothing changed
	@bash scripts/install.sh

train: install ## Train the default recipe on built-in synthetic data (ARGS="hydra overrides")
	OMP_NUM_THREADS=$(THREADS) $(PY) -m facezoo.train experiment=$(EXPERIMENT) $(ARGS)

test: install ## Run the test suite without `slow` tests (ARGS="pytest arguments")
	WANDB_MODE=disabled HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow" --durations=10 $(ARGS)

test-full: install ## Run every test, `slow` included
	WANDB_MODE=disabled HF_HUB_OFFLINE=1 $(PY) -m pytest $(ARGS)

# SEEDS=0,1,2: every point of `sweep` / `ablations` once per run seed, all in the one multirun (γ or ablation ×
# seed; ARGS="launcher=joblib" runs 2 jobs at a time). SEEDS varies the run seed `seed` only: the model's
# initialisation, the order of the training batches and their random draws. The data split (split.seed) and
# the test set stay fixed, so every seed trains on the same paired / unpaired identities and is tested on the
# same pairs (a restoration EXPERIMENT also draws its test degradations from the run seed). The report
# averages the seeds of each point: mean ± std (n) in the table, error bars in the plot. Empty (the default):
# one run per point. A 3-seed γ sweep is 12 runs of the recipe.
SEEDS ?=
SEED_SWEEP = $(if $(SEEDS),seed=$(SEEDS))

sweep: install ## γ sweep (0.01, 0.1, 0.2, 1) as a Hydra multirun + results table and plot (SEEDS=0,1,2 ARGS=...)
	OMP_NUM_THREADS=$(THREADS) $(PY) -m facezoo.train -m experiment=$(EXPERIMENT) split.gamma=0.01,0.1,0.2,1.0 \
		$(SEED_SWEEP) hydra.sweep.dir=$(SWEEPS)/$(EXPERIMENT)-gamma $(ARGS)
	$(PY) -m facezoo.report $(SWEEPS)/$(EXPERIMENT)-gamma --by split.gamma --x split.gamma --title "$(EXPERIMENT): γ sweep"

ablations: install ## RetouchFormer's ablations (w/o P, w/ SPS, w/ GSA, w/o X_u) at γ = 0.1 + results table (SEEDS=...)
	OMP_NUM_THREADS=$(THREADS) $(PY) -m facezoo.train -m experiment=$(EXPERIMENT) \
		ablation=full,no_prior,sps,gsa,no_unpaired split.gamma=0.1 $(SEED_SWEEP) \
		hydra.sweep.dir=$(SWEEPS)/$(EXPERIMENT)-ablations $(ARGS)
	$(PY) -m facezoo.report $(SWEEPS)/$(EXPERIMENT)-ablations --by ablation --title "$(EXPERIMENT): ablations (γ = 0.1)"

bench: install ## Benchmark every model: time and peak memory, table + JSON in bench/
	$(PY) -m facezoo.bench $(ARGS)

lint: install ## ruff
	$(VENV)/bin/ruff check src tests notebooks

clean: ## Remove the venv, caches and run outputs
	rm -rf $(VENV) logs outputs multirun bench .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
