# persistaudit: `make audit` audits the bundled demo service; `make test` runs every test.
# Both set up what is missing first (venv, Docker engine, Compose v2, base image): see scripts/setup.sh.
VENV := .venv
BIN := $(VENV)/bin
OUT ?= reports/out

.PHONY: setup audit audit-defects audit-compose audit-agent-memory test test-unit lint bench clean

setup:
	@bash scripts/setup.sh all

audit: setup
	$(BIN)/persistaudit run fixtures/targets/notes-app/audit.yaml --out $(OUT)/notes-app

# The demo service through its compose file, and the demo without a port (good, then variants).
audit-compose: setup
	$(BIN)/persistaudit run fixtures/targets/notes-app-compose/audit.yaml --out $(OUT)/notes-app-compose

audit-agent-memory: setup
	@$(BIN)/persistaudit run fixtures/targets/agent-memory/audit.yaml --out $(OUT)/agent-memory; \
	  echo "agent-memory: exit $$?"
	@for f in fixtures/targets/agent-memory/defects/*.yaml; do \
	  n=$$(basename $$f .yaml); $(BIN)/persistaudit run $$f --out $(OUT)/agent-memory-$$n; \
	  echo "$$n: exit $$?"; done

# Every planted-defect variant; each is expected to FAIL or be BLOCKED.
audit-defects: setup
	@for f in fixtures/targets/notes-app/defects/*.yaml; do \
	  n=$$(basename $$f .yaml); $(BIN)/persistaudit run $$f --out $(OUT)/notes-app-$$n; \
	  echo "$$n: exit $$?"; done

test: setup lint
	$(BIN)/python -m pytest

test-unit:
	@bash scripts/setup.sh venv
	@bash scripts/setup.sh tools
	$(BIN)/python -m pytest -m "not docker"

lint:
	@bash scripts/setup.sh venv
	$(BIN)/ruff check src tests suites bench fixtures
	$(BIN)/ruff format --check src tests suites bench fixtures
	$(BIN)/mypy

bench: setup
	$(BIN)/python bench/bench_run.py
	$(BIN)/python bench/bench_manifest.py
	$(BIN)/python bench/bench_cli.py
	$(BIN)/python bench/bench_report.py

clean:
	-$(BIN)/persistaudit clean
	rm -rf $(OUT)
