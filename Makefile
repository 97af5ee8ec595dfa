# The verbs a person uses. Each target installs what it needs on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.13, found robustly: on PATH on a laptop; under pyenv, whose shim fails unless
# PYENV_VERSION is set, look in pyenv's versions folder.
PYTHON ?= $(shell for c in python3.13 "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13 python3; do \
	"$$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1 && { command -v "$$c"; break; }; done)

VENV := .venv
SAM_VENV := .venv-sam
PY := $(VENV)/bin/python
SAM := $(SAM_VENV)/bin/sam
# sam build looks for `python3.13` on PATH: the project venv provides one.
SAM_ENV := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" SAM_CLI_TELEMETRY=0
SAM_CLI_VERSION := 1.170.0
CFN_LINT_VERSION := 1.58.0

# `make bench` runs the function as built for this machine (the template targets arm64), beside the
# AWS SDK a Lambda Python runtime provides.
BENCH_DIR := .aws-sam/bench
HOST_ARCHITECTURE := $(shell uname -m)

.PHONY: help run token invoke test lint typecheck unit validate build bench bench-build deploy secret web-config \
	clean chromium

# The stack of samconfig.toml's environment (CONFIG_ENV=prod: its [prod]), or STACK_NAME's.
CONFIG_ENV ?= default
STACK_ARGS = --config-env "$(CONFIG_ENV)" $(if $(STACK_NAME),--stack-name "$(STACK_NAME)")

help:
	@echo "make run     serve the API on http://127.0.0.1:$${PORT:-3000} (local Secrets Manager, sign-in, quotas, OpenAI stub"
	@echo "             with a WebRTC Realtime peer, or the real OpenAI when OPENAI_API_KEY is set), and the voice"
	@echo "             demo page on the port after it"
	@echo "             (OPENAI_BASE_URL too: any OpenAI-compatible host; LOG_FORMAT=json: the function's log lines;"
	@echo "             PORT=4000: another port (it takes PORT, PORT+1 and PORT+2); SECRETS_VIA=extension: the key read through the extension stand-in;"
	@echo "             AUTH=none: no token checked, locally only; ALLOWED_ORIGINS=http://localhost:5173: CORS;"
	@echo "             POLICY=path.json: another policy file, re-read when edited)"
	@echo "make token   a user's token for the running make run, alone on stdout: export TOKEN=\$$(make -s token)"
	@echo "             (TOKEN_USER=alice: another user; TOKEN_GROUPS=premium: its groups, comma-separated;"
	@echo "             PORT=4000: the make run on that port)"
	@echo "make invoke EVENT=events/client_secrets.json"
	@echo "             sam local invoke without Docker: the function on one event, its result as JSON"
	@echo "             (POLICY=path.json: another policy file)"
	@echo "make test    lint, type-check, validate and build the template, run the tests"
	@echo "make bench   cold start, warm latency, memory and size against a bare urllib3 handler; the supervisor per call minute"
	@echo "make build   sam build, with the SAM CLI pinned in .venv-sam"
	@echo "make deploy  sam build && sam deploy --guided (samconfig.toml's stack, as below)"
	@echo "make secret  put the OpenAI API key (OPENAI_API_KEY, or typed unseen at a prompt) into the deployed"
	@echo "             stack's secret, keeping its safety identifier key (or making one)"
	@echo "make web-config"
	@echo "             write web/config.json for the demo page from the deployed stack's outputs"
	@echo "             (REDIRECT_URI=https://app.example.com/: the page's URL; CLIENT_ID=...: with your own issuer)"
	@echo "             Both use samconfig.toml's stack: CONFIG_ENV=prod its [prod], STACK_NAME=... another; the"
	@echo "             region and credentials are the AWS CLI's (AWS_PROFILE, AWS_DEFAULT_REGION)"

# Progress goes to stderr, so that `make invoke ... | jq` reads only the result even on a first run.
$(VENV)/.installed: pyproject.toml layers/dependencies/requirements.txt
	@test -n "$(PYTHON)" || { echo "Python 3.13 is required: install it (or set PYTHON=/path/to/python3.13)"; exit 1; }
	@echo "Setting up $(VENV) with $(PYTHON) (once; again only when the pinned versions change):" >&2
	@$(PYTHON) -m venv $(VENV)
	@echo "  pip" >&2
	@$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	@echo "  the function's dependencies (layers/dependencies/requirements.txt) and the dev tools (pyproject.toml:" >&2
	@echo "  boto3, moto, waitress, the openai SDK, pytest, ruff, mypy); about 25 s" >&2
	@$(PY) -m pip install --quiet -r layers/dependencies/requirements.txt --group dev
	@touch $@
	@echo "  $(VENV) is ready" >&2

# aws-sam-cli pins its own boto3 and pydantic: it lives in its own venv so it cannot downgrade ours.
$(SAM_VENV)/.installed:
	@test -n "$(PYTHON)" || { echo "Python 3.13 is required: install it (or set PYTHON=/path/to/python3.13)"; exit 1; }
	@echo "Setting up $(SAM_VENV): the AWS SAM CLI $(SAM_CLI_VERSION) and cfn-lint (once; about 20 s)" >&2
	@$(PYTHON) -m venv $(SAM_VENV)
	@$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	@$(SAM_VENV)/bin/python -m pip install --quiet "aws-sam-cli==$(SAM_CLI_VERSION)" "cfn-lint==$(CFN_LINT_VERSION)"
	@touch $@
	@echo "  $(SAM_VENV) is ready" >&2

# The official Node SDK the tests drive (package.json pins it), with Node.js and npm from Debian if the
# machine has neither and allows apt-get.
node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& echo "Installing Node.js and npm with apt-get (for the Node SDK tests)" >&2 \
		&& apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; } \
		|| { echo "Node.js 20+ with npm is required for the Node SDK tests: install it"; exit 1; }
	npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

# Debian's Chromium for the browser test, where the machine allows apt-get; where it does not, that test
# skips saying how to install it (and fails in CI, where CI=true).
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& echo "Installing Chromium with apt-get (for the browser test)" >&2 \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "Chromium is missing and apt-get (as root) could not install it: the browser test will skip (in CI: fail)" >&2

run: $(VENV)/.installed
	@$(PY) -m local

# The token alone on stdout, so that TOKEN=$$(make -s token) holds just it.
token: $(VENV)/.installed
	@$(PY) -m local.token

# FUNCTION= picks the function when the template has several.
invoke: $(VENV)/.installed
	@test -n "$(EVENT)" || { echo "make invoke: name an event file, e.g. make invoke EVENT=events/client_secrets.json"; exit 2; }
	@$(PY) -m local.invoke "$(EVENT)" $(if $(FUNCTION),--function "$(FUNCTION)")

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy functions/voice_access local openai_stub demo_page bench tests tools

validate: $(SAM_VENV)/.installed
	$(SAM_ENV) $(SAM) validate --lint

build: $(VENV)/.installed $(SAM_VENV)/.installed
	$(SAM_ENV) $(SAM) build

bench-build: $(VENV)/.installed $(SAM_VENV)/.installed $(BENCH_DIR)/runtime/.installed
	$(SAM_ENV) LAMBDA_ARCHITECTURE=$(HOST_ARCHITECTURE) $(SAM) build \
		--build-dir $(BENCH_DIR)/build --cache-dir $(BENCH_DIR)/cache

# The SDK the Lambda runtime provides, at the version the tests pin.
$(BENCH_DIR)/runtime/.installed: pyproject.toml
	rm -rf $(BENCH_DIR)/runtime
	$(PY) -m pip install --quiet --target $(BENCH_DIR)/runtime \
		"boto3==$$($(PY) -c 'import boto3; print(boto3.__version__)')"
	@touch $@

bench: bench-build
	$(PY) -m bench $(BENCH_ARGS)

# The template tests (tests/template) need the SAM CLI's translator in .venv-sam: `make test` runs them.
unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit -q

# The quick bench only proves the benchmark runs; pytest goes last so that its summary ends the output.
test: lint typecheck validate build node_modules/.installed chromium
	$(MAKE) --no-print-directory bench BENCH_ARGS="--quick --output $(BENCH_DIR)/quick-results.json"
	$(PY) -m pytest

deploy: build
	$(SAM_ENV) $(SAM) deploy --guided $(STACK_ARGS)

secret: $(VENV)/.installed
	@$(PY) -m tools.deploy secret $(STACK_ARGS)

web-config: $(VENV)/.installed
	@$(PY) -m tools.deploy web-config $(STACK_ARGS) $(if $(REDIRECT_URI),--redirect-uri "$(REDIRECT_URI)") \
		$(if $(CLIENT_ID),--client-id "$(CLIENT_ID)")

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache node_modules
