# fleet-monitor developer entry points. `make help` lists them.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/.tools/bin:$(CURDIR)/$(VENV)/bin:$(PATH)

.DEFAULT_GOAL := help
.PHONY: help setup setup-kube cluster cluster-down run test test-unit lint format bench

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-22s %s\n", $$1, $$2}'

setup: ## install system packages, the .venv and the pinned Java artifacts (idempotent)
	@scripts/setup.sh

setup-kube: setup ## build helm, kubectl, kwok, etcd and the Kubernetes control plane from pinned Go modules (once per machine, ~25 min on 2 cores)
	@scripts/setup-kube.sh

run: setup ## run the platform locally on embedded defaults (ARGS="--duration 60")
	@$(PY) -m devstack.run $(ARGS)

test: setup-kube ## run every test (unit, integration on real services, chart and operator checks)
	@$(PY) -m pytest $(ARGS)

test-unit: setup ## run the fast unit tests only
	@$(PY) -m pytest tests/unit $(ARGS)

lint: setup ## ruff lint and format check
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup ## apply ruff fixes and formatting
	@$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

bench: setup ## run the benchmarks (components + end-to-end) and write tests/bench/results
	@$(PY) -m tests.bench.run_all $(ARGS)

.PHONY: test-e2e bench-e2e
test-e2e: setup ## make run lifecycle + end-to-end tests (generator -> Kafka -> jobs -> loader -> database -> API, with crashes; ~5 min)
	@$(PY) -m pytest tests/integration/test_local_platform.py tests/e2e $(ARGS)

bench-e2e: setup ## whole pipeline: events/s in and processed, alarm latency p50/p99 event -> API (ARGS=--quick)
	@$(PY) -m tests.bench.bench_e2e $(ARGS)

# --- operator (kopf, FleetMonitor CRD, charts/fleet-operator) -----------------------------------
.PHONY: test-operator bench-operator

test-operator: setup-kube ## operator tests: unit, then kopf on the local cluster's real API server with real helm and broker
	@$(PY) -m pytest tests/unit/test_operator_model.py tests/integration/test_operator.py tests/integration/test_operator_healing.py tests/integration/test_operator_charts.py $(ARGS)

bench-operator: setup-kube ## FleetMonitor create -> Ready vs bare helm --wait; unchanged reconciles vs helm list (ARGS=--quick)
	@$(PY) -m tests.bench.bench_operator $(ARGS)

cluster: setup-kube ## start a local Kubernetes cluster (real control plane, kwok nodes; the operator's pods run as local processes) and print its KUBECONFIG
	@$(PY) -m devstack.kube up $(ARGS)

cluster-down: setup ## stop the local cluster and remove everything it made
	@$(PY) -m devstack.kube down $(ARGS)

deploy-%: setup-kube ## deploy-dev|qa|prod: operator chart + environments/<env>/fleetmonitor.yaml, wait for Ready (KUBECONFIG, KUBE_CONTEXT)
	@scripts/deploy.sh $*

undeploy-%: setup-kube ## undeploy-dev|qa|prod: delete the FleetMonitor (releases removed in reverse order, volumes kept)
	@scripts/deploy.sh --undeploy $*

port-forward-%: setup-kube ## port-forward-dev|qa|prod: Grafana, API and Flink UIs on localhost, prints URLs and credentials
	@scripts/port-forward.sh $*

# --- charts (charts/*, dashboards, Vector config, Prometheus rules, environments/*/values) -------
.PHONY: charts-lint charts-sync test-charts
# The installable charts: fleet_operator.model.CHARTS, the one list (read only when a target runs).
CHARTS = $(shell $(PY) -c 'from fleet_operator.model import CHARTS; print(*CHARTS)')
CHART_TESTS := tests/unit/test_charts_render.py tests/unit/test_charts_config.py tests/unit/test_charts_schemas.py \
	tests/unit/test_prometheus_rules.py \
	tests/integration/test_dashboards.py tests/integration/test_vector.py tests/integration/test_charts_install.py

# charts/<chart>/charts/fleet-common is a symbolic link to the library chart: helm notes each link it
# follows on stderr, which says nothing here (errors still go to stderr).
HELM_LINK_NOTICES := 2> >(grep -v 'found symbolic link in path' >&2)

charts-lint: setup-kube ## helm lint --strict every chart with every environment overlay, promtool the rules
	@.tools/bin/helm lint --strict --quiet charts/fleet-common  # the library chart every chart depends on
	@for c in $(CHARTS); do for e in dev qa prod; do \
	  .tools/bin/helm lint --strict --quiet charts/$$c -f environments/$$e/values/$$c.yaml $(HELM_LINK_NOTICES) || exit 1; done; done
	@.tools/bin/helm lint --strict --quiet charts/fleet-operator $(HELM_LINK_NOTICES)  # one per cluster, no environment overlay
	@promtool check rules charts/*/rules/*.rules.yaml

charts-sync: setup-kube ## regenerate the chart copies of contracts (topics, thresholds), values.schema.json + README.md (scripts/chart_values), the Grafana dashboards
	@$(PY) scripts/sync-chart-config.py && $(PY) scripts/chart-schemas.py && $(PY) scripts/build-dashboards.py

test-charts: setup-kube ## chart tests: lint, kubernetes-validate, policies, dashboards SQL, Vector SQL, promtool, helm install/upgrade
	@$(PY) -m pytest $(CHART_TESTS) $(ARGS)

# --- generator (fleet simulator: generator/, devstack/run.py) ------------------------------------
.PHONY: generate test-generator bench-generator

generate: setup ## run the fleet simulator (ARGS="--count 20 --seed 1"; --help lists every option)
	@$(PY) -m generator $(ARGS)

test-generator: setup ## generator tests: unit, then against the real broker (incl. make run's SIGTERM stop)
	@$(PY) -m pytest tests/unit/test_generator.py tests/unit/test_generator_runtime.py tests/integration/test_generator_kafka.py $(ARGS)

bench-generator: setup ## simulator produce rate vs a bare confluent-kafka loop of the same messages
	@$(PY) -m tests.bench.bench_generator $(ARGS)

# --- storage and api (storage/ migrations and policies, api/ FastAPI service) --------------------
.PHONY: migrate migrate-status api test-storage test-api bench-api
STORAGE_API_TESTS := tests/unit/test_storage_policies.py tests/unit/test_api_security.py \
	tests/integration/test_storage_migrations.py tests/integration/test_storage_timescale.py \
	tests/integration/test_api.py tests/integration/test_api_fuzz.py

migrate: setup ## apply schema migrations and TimescaleDB policies to DATABASE_URL (ARGS="--retention readings=7 days")
	@$(PY) -m storage.migrate up $(ARGS)

migrate-status: setup ## show applied/pending migrations and TimescaleDB policies of DATABASE_URL
	@$(PY) -m storage.migrate status $(ARGS)

api: setup ## run the API on DATABASE_URL (ARGS="--port 8000"; API_KEYS, API_READ_AUTH, API_CORS_ORIGINS)
	@$(PY) -m api $(ARGS)

test-storage: setup ## storage tests: migrations on PostgreSQL and on the real TimescaleDB engine (PGlite)
	@$(PY) -m pytest tests/unit/test_storage_policies.py tests/integration/test_storage_migrations.py \
	  tests/integration/test_storage_timescale.py $(ARGS)

test-api: setup ## storage + API tests: every endpoint on real PostgreSQL, auth, 422s, schemathesis fuzz
	@$(PY) -m pytest $(STORAGE_API_TESTS) $(ARGS)

bench-api: setup ## API p50/p99/rps (fleet, trends, alarms) on 1M readings vs a SELECT 1 endpoint
	@$(PY) -m tests.bench.bench_api $(ARGS)

# --- jobs (jobs/ PyFlink stream jobs, storage/writes.py) -----------------------------------------
.PHONY: jobs test-jobs bench-jobs
JOBS_TESTS := tests/unit/test_jobs.py tests/integration/test_loader.py tests/integration/test_jobs_fastpath.py \
	tests/integration/test_jobs_pipeline.py tests/integration/test_jobs_followed.py tests/integration/test_jobs_inactivity.py \
	tests/integration/test_jobs_event_time.py tests/integration/test_jobs_seed_inputs.py

jobs: setup ## run every stream job in a local mini-cluster (ARGS="--bootstrap-servers HOST:PORT --start-from earliest")
	@$(PY) -m jobs all $(ARGS)

test-jobs: setup ## jobs and loader tests: real Flink, Kafka and PostgreSQL (~8 min on 2 cores)
	@$(PY) -m pytest $(JOBS_TESTS) $(ARGS)

bench-jobs: setup ## events/s and Flink CPU us/event of all jobs on a pre-loaded topic vs a bare Kafka pass-through
	@$(PY) -m tests.bench.bench_jobs $(ARGS)
