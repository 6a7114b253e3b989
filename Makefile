# Two commands on a fresh machine with Python 3.11+ and git:
#   make reproduce [PAPER=name[,name]] [PROFILE=smoke|cpu|paper] [CORES=2]
#   make test           (CI: lint, unit tests, every paper's smoke DAG against its baseline)
#   make report [PAPER=...] [PROFILE=...]  (the results as one HTML file to open in a browser)
# and for development: make test-fast (no end-to-end DAGs), make unlock (after a killed run),
# make bench (the speed benchmarks side by side, devinterp 1.3.2 among them; minutes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= cpu
PAPER ?= all
CORES ?= 2
SNAKEMAKE_ARGS ?=

.PHONY: .venv reproduce unlock test test-fast lint format report lock bench

.venv: $(STAMP)

# torch first, alone: pinned to the 2.13.0 build these machines install offline (a newer
# torch, or an unpinned one pulled in by another package, would fetch a multi-GB CUDA build).
$(STAMP): pyproject.toml requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c requirements.txt -e '.[dev,slurm]'
	touch $@

# The bench extra (devinterp 1.3.2, timed beside our estimator) only where benchmarks run.
$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -m pip install --quiet -c requirements.txt -e '.[dev,slurm,bench]'
	touch $@

SNAKEMAKE_RUN = $(BIN)/snakemake --cores $(CORES) --config profile=$(PROFILE) papers=$(PAPER)

# A killed run resumes with this same command (profiles/default reruns incomplete jobs). Only
# a lock left by a killed Snakemake stops it; locks are never removed automatically, because
# another instance may be running, so the message says what to run.
reproduce: .venv
	@$(SNAKEMAKE_RUN) $(SNAKEMAKE_ARGS) || { status=$$?; \
	  if [ -n "$$(ls -A .snakemake/locks 2>/dev/null)" ]; then \
	    echo ""; \
	    echo "A Snakemake lock is held in $$(pwd)/.snakemake/locks. If no other Snakemake"; \
	    echo "is running in this folder (a killed run leaves its lock behind), run"; \
	    echo "  make unlock PROFILE=$(PROFILE) PAPER=$(PAPER)"; \
	    echo "and then the same make reproduce command again: it resumes where it stopped."; \
	  fi; exit $$status; }

unlock: .venv
	$(SNAKEMAKE_RUN) --unlock

# One self-contained HTML file (figures embedded) of the finished results of PAPER and
# PROFILE; it runs nothing, so `make reproduce` with the same PAPER and PROFILE comes first.
report: .venv
	$(SNAKEMAKE_RUN) --report results/$(PROFILE)/report.html

lint: .venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/snakefmt --check Snakefile workflows tests/toy/workflows

format: .venv
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/snakefmt Snakefile workflows tests/toy/workflows

test: lint
	$(BIN)/pytest

# Unit and workflow tests only: no paper's DAG end to end (the e2e marker), for development.
test-fast: lint
	$(BIN)/pytest -m "not e2e"

# Side by side in one process each; run on an idle machine (they print ratios, not verdicts).
bench: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/bench_llc.py
	$(BIN)/python benchmarks/bench_step.py

# After a deliberate upgrade inside .venv: rewrite the pins (torch without its +cpu label, so
# the same file serves CUDA machines).
lock: .venv
	head -n 2 requirements.txt > requirements.txt.new
	$(BIN)/python -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' \
		>> requirements.txt.new && mv requirements.txt.new requirements.txt
