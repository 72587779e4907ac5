# modelwerk developer commands. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
VERSION := 0.1.0
OPERATOR_IMAGE ?= modelwerk/operator:$(VERSION)
RUNTIME_IMAGE ?= modelwerk/runtime:$(VERSION)
KIND_CLUSTER ?= modelwerk

.PHONY: help install test unit integration lint format crds dist monitoring images kind-up kind-load deploy-kind samples kind-down \
	demo node-up node-down node-status e2e e2e-node e2e-kind

help: ## Show the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

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
	$(VENV)/bin/ruff check operator tests hack
	$(VENV)/bin/ruff format --check operator tests hack
	$(VENV)/bin/mypy
	MYPYPATH=hack/node:. $(VENV)/bin/mypy --strict --explicit-package-bases \
		hack/node/nodectl hack/node/node.py hack/images/build.py hack/demo.py \
		hack/kube/build.py hack/tools.py hack/dist.py hack/postgres/postgres.py
	$(VENV)/bin/lint-imports
	$(PY) -m modelwerk.crdgen --check

format: ## Format the code
	$(VENV)/bin/ruff check --fix operator tests hack
	$(VENV)/bin/ruff format operator tests hack

crds: ## Regenerate crds/ from the API models (and what dist/ and the chart copy of them)
	$(PY) -m modelwerk.crdgen
	$(PY) hack/dist.py

dist: ## Render dist/install.yaml and the chart's generated parts (CRDs, monitoring objects)
	$(PY) hack/dist.py

monitoring: ## Regenerate the Grafana dashboard and the Argo CD health snippet
	$(PY) hack/monitoring/grafana_dashboard.py
	$(PY) hack/monitoring/argocd_health.py

images: ## Build the operator and runtime images (offline when it must start its own dockerd)
	$(PY) hack/images/build.py

kind-up: ## Create the local kind cluster
	kind create cluster --config kind-config.yaml

kind-load: ## Build the images and load them into the kind cluster
	$(PY) hack/images/build.py --load kind --kind-cluster $(KIND_CLUSTER)

deploy-kind: ## Install CRDs and the operator into the kind cluster
	kubectl apply --server-side -k manifests/overlays/kind
	kubectl -n modelwerk-system rollout status deployment/modelwerk-operator --timeout=120s

samples: ## Apply the iris sample chain
	kubectl apply --server-side -k manifests/samples/iris

kind-down: ## Delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

demo: ## The iris chain on the current context, else kind, else the local node; prints where to predict
	$(PY) hack/demo.py

node-up: ## Start the local single-node cluster (root; hack/node/README.md)
	$(PY) hack/node/node.py up

node-down: ## Stop it and restore the host (fails if anything is left)
	$(PY) hack/node/node.py down

node-status: ## State, timings and memory of the local node cluster
	$(PY) hack/node/node.py status

e2e: ## The e2e suite against the cluster in MODELWERK_E2E_KUBECONFIG
	$(PY) -m pytest tests/e2e -v

e2e-node: ## Node up, images built offline and imported, e2e suite, node ALWAYS down (root)
	hack/e2e.sh node

e2e-kind: ## kind cluster from kind-config.yaml, images loaded, e2e suite, cluster ALWAYS deleted
	KIND_CLUSTER=$(KIND_CLUSTER) hack/e2e.sh kind
