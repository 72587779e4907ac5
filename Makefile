# modelwerk developer commands. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
VERSION := 0.1.0
OPERATOR_IMAGE ?= modelwerk/operator:$(VERSION)
RUNTIME_IMAGE ?= modelwerk/runtime:$(VERSION)
KIND_CLUSTER ?= modelwerk

.PHONY: help install test unit integration lint format crds monitoring images kind-up kind-load deploy-kind samples kind-down

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

install: $(PY) ## Create .venv and install modelwerk with the dev extras
	$(PY) -m pip install -e ".[dev]"

test: ## Run every test tier that runs here (unit + real control plane)
	$(PY) -m pytest

unit: ## Only the fast unit tests
	$(PY) -m pytest -m "not integration"

integration: ## Only the tests against the real control plane
	$(PY) -m pytest -m integration

lint: ## ruff, mypy --strict, import layering, CRD drift
	$(VENV)/bin/ruff check operator tests
	$(VENV)/bin/ruff format --check operator tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m modelwerk.crdgen --check

format: ## Format the code
	$(VENV)/bin/ruff check --fix operator tests
	$(VENV)/bin/ruff format operator tests

crds: ## Regenerate crds/ from the API models
	$(PY) -m modelwerk.crdgen

monitoring: ## Regenerate the Grafana dashboard and the Argo CD health snippet
	$(PY) hack/monitoring/grafana_dashboard.py
	$(PY) hack/monitoring/argocd_health.py

images: ## Build the operator and runtime images
	docker build -f images/operator/Dockerfile -t $(OPERATOR_IMAGE) .
	docker build -f images/runtime/Dockerfile -t $(RUNTIME_IMAGE) .

kind-up: ## Create the local kind cluster
	kind create cluster --config kind-config.yaml

kind-load: images ## Load the images into the kind cluster
	kind load docker-image --name $(KIND_CLUSTER) $(OPERATOR_IMAGE) $(RUNTIME_IMAGE)

deploy-kind: ## Install CRDs and the operator into the kind cluster
	kubectl apply --server-side -k manifests/overlays/kind
	kubectl -n modelwerk-system rollout status deployment/modelwerk-operator --timeout=120s

samples: ## Apply the iris sample chain
	kubectl apply --server-side -k manifests/samples/iris

kind-down: ## Delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)
