# Everything a user or CI runs. Each target installs what it needs (idempotent, cached).
SHELL := /bin/bash
.DEFAULT_GOAL := help
export FRAUD_CACHE_DIR ?= $(HOME)/.cache/fraud-detection
UV = $(FRAUD_CACHE_DIR)/uv-0.13.8/bin/uv
RUN = $(UV) run --frozen --all-extras
DATASET ?= creditcard

.PHONY: help setup demo test test-python test-chart lint docs monitoring bench tools images postgres postgres-stop kind-up e2e faults kind-down clean

help: ## Show the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: ## Install uv and the locked Python environment into .venv
	@bash scripts/bootstrap.sh >/dev/null

demo: setup ## Run the model lifecycle end to end on this machine (DATASET=creditcard|paysim)
	@DATASET=$(DATASET) bash scripts/demo.sh

tools: ## Install helm, kube-apiserver, etcd and the CRDs for the chart tests (cached)
	@bash scripts/tools.sh

# FRAUD_REQUIRE_CHART_TOOLS: missing chart tools fail the run instead of skipping those tests.
test: setup tools lint ## Lint, then the whole suite (unit, integration, chart) with coverage >= 80 %
	FRAUD_REQUIRE_CHART_TOOLS=1 $(RUN) pytest -m "not e2e" --cov --cov-report=term --cov-report=xml

test-python: setup ## Only the Python tiers (no chart tools needed)
	$(RUN) pytest -m "not e2e and not chart"

test-chart: setup tools ## Only the chart tier (helm, schemas, kube-apiserver)
	FRAUD_REQUIRE_CHART_TOOLS=1 $(RUN) pytest -m chart

lint: setup ## ruff lint and format check
	$(RUN) ruff check .
	$(RUN) ruff format --check .

docs: ## Render the chart README's values table from values.yaml (helm-docs, built by scripts/tools.sh)
	@bash scripts/tools.sh helm-docs
	$(FRAUD_CACHE_DIR)/bin/helm-docs --chart-search-root charts --template-files README.md.gotmpl --sort-values-order file

monitoring: setup ## Write the chart's recording rules and dashboard expressions from fraudcore/promql.py
	$(RUN) python scripts/monitoring.py

bench: setup ## Predictor vs MLServer vs the bare HTTP stack and in-process; reason codes; audit-log cost; drift power; canary analysis
	@source scripts/debian.sh && need_packages wrk
	$(RUN) python -m benchmarks.run
	$(RUN) python -m benchmarks.reasons
	export FRAUD_PG_DIR=.fraud/bench/postgres FRAUD_PG_PORT=54327; dsn=$$(scripts/postgres.sh start) \
	  && $(RUN) python benchmarks/audit_record.py --dsn "$$dsn" --rate 500 --seconds 20; \
	  rc=$$?; scripts/postgres.sh stop; exit $$rc
	$(RUN) python benchmarks/drift_power.py --windows 100 --sizes 500 1000 2000 --corrections bonferroni
	$(RUN) python -m benchmarks.canary_analysis

images: ## Build the predictor and jobs images (needs a Docker engine; BASE_IMAGE=local builds offline)
	docker/build.sh all

postgres: ## Start a throwaway PostgreSQL for the audit log (prints its DSN)
	@scripts/postgres.sh start

postgres-stop: ## Stop it
	@scripts/postgres.sh stop

kind-up: setup tools ## kind cluster with KServe, Envoy Gateway, Prometheus; every image built locally, cached
	@bash scripts/kind/e2e.sh up

e2e: setup tools ## End-to-end tier on kind (brings the cluster up first); a full pass arms CI's e2e run
	@bash scripts/kind/e2e.sh run

faults: setup tools ## Fault suite on kind under constant load (pod deletes, outages, upgrade, node restart); figures printed
	@bash scripts/kind/e2e.sh faults

kind-down: ## Delete the kind cluster (the build cache stays)
	@bash scripts/kind/e2e.sh down

clean: ## Remove local state (.fraud/) and caches of this checkout
	rm -rf .fraud .pytest_cache .ruff_cache .coverage coverage.xml bench-results
