# The single entry point. `make up` runs the platform; `make test` runs every test.
# Needs only python3 (3.11+) and make: uv is installed into .tools/ when it is missing.
SHELL := /bin/bash
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
PYTEST_ARGS ?=
# Trust the system's certificate store (where a machine's registry mirror or proxy CA lives),
# not only uv's bundled roots.
export UV_SYSTEM_CERTS ?= 1

.PHONY: up dev test check fmt lock sync tools bench clean

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools/venv
	.tools/venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	mkdir -p .tools/bin && ln -sf ../venv/bin/uv .tools/bin/uv

tools: $(UV)

sync: tools
	$(UV) sync --frozen

## Run auth, users and orgs on an embedded PostgreSQL and Redis, migrated and seeded.
up: sync
	$(UV) run python scripts/up.py

## The same, reloading on source changes.
dev: sync
	$(UV) run python scripts/up.py --reload

## The whole test suite (PostgreSQL/Redis from TEST_DATABASE_URL/TEST_REDIS_URL when set,
## else embedded ones); installs nginx, promtool, wrk and helm first when they are missing.
test: sync
	bash scripts/install-test-tools.sh
	$(UV) run pytest $(PYTEST_ARGS)

## Format check, lint and types.
check: sync
	$(UV) run ruff format --check .
	$(UV) run ruff check .
	$(UV) run mypy

fmt: sync
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

lock: tools
	$(UV) lock

bench: sync
	$(UV) run python bench/run.py

clean:
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache
