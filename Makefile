# Two commands do all set-up on a fresh machine with Python 3.11:
#   make reproduce   install, build the seed family if missing, run the offline default experiment
#   make test        install, run nbdev_test and the pytest suite
# torch comes first, from TORCH_SPEC: by default PyTorch's CPU build (the CPU index's 2.13.0+cpu ranks above PyPI's
# 2.13.0, which would pull the CUDA libraries on Linux), so nothing pulls a CUDA build; on a GPU machine override it, e.g.
#   make reproduce TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0 --extra-index-url https://download.pytorch.org/whl/cpu
PARAMS ?= params/mini.yml
# the run's folder, where the notebooks write its results: the parameter file's `output_dir`/`run_name`, as the package
# reads them (expanded when a recipe runs, after the install)
RUN_DIR = $(shell $(PY) -c "from explainable_soft_prompts.config import print_run_dir; print_run_dir('$(PARAMS)')")
FAMILY_DIR ?= families/tweets-mini
STAMP := $(VENV)/.installed
# progress bars as plain text lines, which papermill copies into its log (a widget would be invisible there)
export ESP_PROGRESS ?= text

.PHONY: install reproduce released dry-run test family lock lab readme check-sync docs bench params-file

$(STAMP): setup.py settings.ini requirements-lock.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' || { echo "$(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'); the locked packages need 3.11 or newer. Fix: install Python 3.11, or run make PYTHON=/path/to/python3.11 ..."; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q --require-hashes --no-deps -r requirements-lock.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m pip check
	touch $@

install: $(STAMP)

reproduce: params-file install
	@test -n "$(RUN_DIR)" || { echo "$(PARAMS) names no run folder (see the error above). Fix the file, then run make reproduce again."; exit 1; }
	mkdir -p "$(RUN_DIR)"
	$(BIN)/papermill nbs/experiments/train_and_evaluate.ipynb "$(RUN_DIR)/train_and_evaluate.ipynb" -f $(PARAMS) --cwd . --log-output --no-progress-bar
	$(BIN)/papermill nbs/experiments/analyse_and_report.ipynb "$(RUN_DIR)/analyse_and_report.ipynb" -f $(PARAMS) --cwd . --log-output --no-progress-bar
	@echo "Results: $(RUN_DIR)/report.md (tables/, figures/, prompts/, the executed notebooks)"

params-file:
	@test -f "$(PARAMS)" || { echo "No parameter file $(PARAMS) (PARAMS=...). Fix: one of $$(ls params/*.yml | tr '\n' ' ')"; exit 1; }

# the study's released prompts and masking matrices through the analysis notebook
ARTIFACTS ?= ../shared/paper_artifacts
released: install
	mkdir -p outputs/released_artifacts
	$(BIN)/papermill nbs/experiments/released_artifacts.ipynb outputs/released_artifacts/released_artifacts.ipynb -p artifacts_dir $(ARTIFACTS) -p output_dir outputs/released_artifacts --cwd . --log-output --no-progress-bar
	@echo "Results: outputs/released_artifacts/"

# the benchmarks (benchmarks/*.py): JSON lines on stdout, JSON files in outputs/bench/; 12-15 minutes on 2 cores
bench: install
	@start=$$(date +%s); \
	ESP_PROGRESS=off $(PY) benchmarks/bench_training.py --real-data && \
	ESP_PROGRESS=off $(PY) benchmarks/bench_masking.py --examples 64 && \
	PYTHONWARNINGS=ignore ESP_PROGRESS=off $(PY) benchmarks/bench_peft.py && \
	ESP_PROGRESS=off $(PY) benchmarks/bench_flops.py && \
	ESP_PROGRESS=off $(PY) benchmarks/bench_e2e.py && \
	echo "make bench: $$(( $$(date +%s) - start )) s in all; results in outputs/bench/"

# check a parameter file and print the plan (prompts, models, steps) without loading anything
dry-run: params-file install
	$(PY) -c "from explainable_soft_prompts.experiment import plan; from explainable_soft_prompts.config import load_params; import pandas as pd; pd.set_option('display.width', 200); print(plan(load_params('$(PARAMS)')).to_string())"

# rebuild the default seed family from scratch (7 cycles of about 45 minutes each on 2 cores), ship it as fp16 in $(FAMILY_DIR),
# then check that every member is promptable and record the table beside it (params/promptability.yml)
family: install
	$(PY) -c "from explainable_soft_prompts.models import *; build_seed_family('.cache/families/tweets-mini', FamilyBuildConfig(), workers=2); save_family_fp16('.cache/families/tweets-mini', '$(FAMILY_DIR)')"
	$(PY) -c "from explainable_soft_prompts.experiment import *; from explainable_soft_prompts.config import load_params; \
	  table = promptability(run_experiment({**load_params('params/promptability.yml'), 'family_dir': '$(FAMILY_DIR)'})['tables']['test_by_model']); \
	  write_table(table, '$(FAMILY_DIR)/promptability.csv'); print(table.to_string())"

# README.md is the markdown of nbs/index.ipynb (nbdev_readme needs Quarto; this needs nothing)
readme: install
	$(PY) -c "import json; cells = json.load(open('nbs/index.ipynb'))['cells']; open('README.md', 'w').write('\n\n'.join(''.join(c['source']) for c in cells if c['cell_type'] == 'markdown') + '\n')"

# the library and README must be what the notebooks export, and the notebooks clean: nothing may change here
SYNCED := explainable_soft_prompts nbs README.md
check-sync: install
	@before=$$(git status --porcelain -- $(SYNCED); git diff -- $(SYNCED); git ls-files -o --exclude-standard -- $(SYNCED) | xargs -r cat); \
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean && $(MAKE) --no-print-directory readme >/dev/null && \
	after=$$(git status --porcelain -- $(SYNCED); git diff -- $(SYNCED); git ls-files -o --exclude-standard -- $(SYNCED) | xargs -r cat); \
	if [ "$$before" != "$$after" ]; then git --no-pager diff --stat -- $(SYNCED); \
	  echo "Notebooks and library/README were out of sync, or notebooks not clean: nbdev_export, nbdev_clean and make readme changed files. Review and commit them."; exit 1; fi

test: install check-sync
	$(BIN)/nbdev_test --n_workers 2
	$(MAKE) --no-print-directory docs
	$(BIN)/pytest -q tests

# the documentation site in _docs/ (nbdev_docs with Quarto when installed, else nbconvert), failing on broken cross-references
docs: install
	$(PY) tools/build_docs.py

# requirements-lock.txt: pins from a fresh resolve of settings.ini's requirements (torch excluded), with PyPI's hashes;
# conda-lock.yml from environment.yml (needs the conda channels)
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv && .lock-venv/bin/pip install -q $(TORCH_SPEC) && .lock-venv/bin/pip install -q -e ".[dev]"
	{ echo "# Pinned versions of every Python dependency except torch (installed first from TORCH_SPEC), resolved on Python 3.11, linux x86_64."; \
	  echo "# Regenerate with: make lock (a fresh resolve, then PyPI's sha256 of each release's files, tools/lock_hashes.py)."; \
	  .lock-venv/bin/pip freeze --all --exclude-editable | grep -v -i -E '^(torch|pip|triton|nvidia-[a-z0-9_-]+)=='; } > requirements-lock.txt.new
	.lock-venv/bin/python tools/lock_hashes.py requirements-lock.txt.new && mv requirements-lock.txt.new requirements-lock.txt && rm -rf .lock-venv
	-$(PY) -m pip install -q conda-lock && $(BIN)/conda-lock lock -f environment.yml -p linux-64 --lockfile conda-lock.yml

LAB_PORT ?= 8888
lab: install
	ESP_PROGRESS=auto $(BIN)/jupyter lab --notebook-dir=nbs --no-browser --port=$(LAB_PORT) $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)
