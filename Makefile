# Two commands on a fresh machine with Python 3.11+ and git:
#   make reproduce [PAPER=name[,name]] [PROFILE=smoke|cpu|paper] [CORES=2]
#   make test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= cpu
PAPER ?= all
CORES ?= 2
SNAKEMAKE_ARGS ?=

.PHONY: .venv reproduce test lint format report lock clean-smoke

.venv: $(STAMP)

# torch first, alone: pinned to the 2.13.0 build these machines install offline (a newer
# torch, or an unpinned one pulled in by another package, would fetch a multi-GB CUDA build).
$(STAMP): pyproject.toml requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c requirements.txt -e '.[dev,slurm]'
	touch $@

reproduce: .venv
	$(BIN)/snakemake --cores $(CORES) --config profile=$(PROFILE) papers=$(PAPER) $(SNAKEMAKE_ARGS)

report: .venv
	$(BIN)/snakemake --cores $(CORES) --config profile=$(PROFILE) papers=$(PAPER) \
		--report results/$(PROFILE)/report.zip

lint: .venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: .venv
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

test: lint
	$(BIN)/pytest

# After a deliberate upgrade inside .venv: rewrite the pins (torch without its +cpu label, so
# the same file serves CUDA machines).
lock: .venv
	head -n 2 requirements.txt > requirements.txt.new
	$(BIN)/python -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' \
		>> requirements.txt.new && mv requirements.txt.new requirements.txt
