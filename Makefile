# Two commands matter: `make studio` (set up, prepare the demo models, start the studio) and `make test`
# (set up everything the suite needs, print the architecture figures of scripts/arch_report.py — failing on import
# cycles or a figure over its limit — and run it). Both are idempotent: stamps skip work already done.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORKSPACE ?= workspace
STUDIO_ARGS ?=
# Spinning OpenMP threads slow CPU inference many times over on small shared machines (see core/jobs/launch.py).
export OMP_WAIT_POLICY ?= PASSIVE
PYTEST_ARGS ?=
SETUP_STAMP := $(VENV)/.setup-$(shell cat pyproject.toml scripts/setup_venv.sh | sha1sum | cut -c1-12)

.PHONY: setup studio test test-fast lint bench demo browser proxy system-deps vllm-env llamafactory-env test-env \
	clean-venv

setup: $(SETUP_STAMP)

$(SETUP_STAMP): pyproject.toml scripts/setup_venv.sh
	PYTHON=$(PYTHON) bash scripts/setup_venv.sh $(VENV)
	rm -f $(VENV)/.setup-* && touch $@

browser:
	bash scripts/setup_browser.sh

# Debian's nginx for tests/test_proxy_browser.py (the studio behind a sub-path reverse proxy, like PAI-DSW's).
proxy:
	bash scripts/setup_proxy.sh

vllm-env:
	bash scripts/setup_vllm.sh

# LLaMA-Factory in .venv-llamafactory: tests/test_llamafactory_roundtrip.py loads every export through its pipeline.
llamafactory-env:
	bash scripts/setup_llamafactory.sh

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/easydistill --workspace $(WORKSPACE) models prepare-demo

studio: demo
	$(BIN)/distill-studio --workspace $(WORKSPACE) $(STUDIO_ARGS)

# The four installs are independent (three virtualenvs, one apt step), and pip unpacks on one core: run at once they
# take about as long as the longest. -Otarget keeps each one's log whole (printed when it finishes); apt's two
# installs stay in sequence (one dpkg lock).
system-deps:
	bash scripts/setup_browser.sh
	bash scripts/setup_proxy.sh

test-env:
	@echo "[make] setting up .venv, Chromium + nginx, .venv-vllm and .venv-llamafactory at once (each log follows when it ends)"
	@$(MAKE) --no-print-directory -j4 -Otarget setup system-deps vllm-env llamafactory-env

test: test-env
	$(BIN)/ruff check .
	$(BIN)/python scripts/arch_report.py --strict
	bash scripts/run_tests.sh $(PYTEST_ARGS)

# The edit loop: no browser, no vLLM engine, no LLaMA-Factory, nothing marked slow (CI still runs everything through
# `make test`).
test-fast: setup
	$(BIN)/ruff check .
	bash scripts/run_tests.sh -m "not browser and not vllm and not llamafactory and not slow" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/python scripts/arch_report.py --strict

bench: setup
	for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean-venv:
	rm -rf $(VENV)
