#!/usr/bin/env bash
# The e2e suite (tests/e2e) on a cluster this script creates, and ALWAYS removes again.
#   hack/e2e.sh node [pytest args]   the local single-node cluster (root; hack/node)
#   hack/e2e.sh kind [pytest args]   a kind cluster from kind-config.yaml (Docker + kind)
# Exit status: the suite's, or non-zero when the teardown left something behind.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: hack/e2e.sh node|kind [pytest args]}
shift
PY=${PY:-.venv/bin/python}
KIND_CLUSTER=${KIND_CLUSTER:-modelwerk}
started=$SECONDS
stamp() { echo "== [e2e-$target $((SECONDS - started))s] $*"; }

case "$target" in
node)
  "$PY" hack/node/node.py prereqs --install --images
  teardown() {
    rc=$?
    stamp "tearing the node down"
    "$PY" hack/node/node.py down || rc=1
    stamp "done (exit $rc)"
    exit "$rc"
  }
  trap teardown EXIT
  trap 'exit 130' INT TERM
  stamp "Prometheus server for the monitoring tests (built once from its Go module, then cached)"
  "$PY" hack/tools.py prometheus
  stamp "node up"
  kubeconfig=$("$PY" hack/node/node.py up | tail -n 1)
  stamp "images (offline: local base + wheelhouse), imported into the node"
  "$PY" hack/images/build.py --offline --load node
  export MODELWERK_E2E_OVERLAY=kind # images are imported, never pulled
  # Pods reach the host on the node's bridge address: tests/e2e/test_s3_store.py runs its S3
  # server (hack/s3) there.
  export MODELWERK_E2E_S3_HOST=${MODELWERK_E2E_S3_HOST:-10.88.0.1}
  # ... and tests/e2e/test_sql_source.py its PostgreSQL (hack/postgres, Debian's package).
  export MODELWERK_E2E_DB_HOST=${MODELWERK_E2E_DB_HOST:-10.88.0.1}
  "$PY" hack/postgres/postgres.py install >/dev/null
  "$PY" hack/tools.py versitygw >/dev/null
  ;;
kind)
  kubeconfig=$(mktemp --suffix=.kubeconfig)
  teardown() {
    rc=$?
    stamp "deleting the kind cluster"
    kind delete cluster --name "$KIND_CLUSTER" --kubeconfig "$kubeconfig" || rc=1
    rm -f "$kubeconfig"
    stamp "done (exit $rc)"
    exit "$rc"
  }
  trap teardown EXIT
  trap 'exit 130' INT TERM
  stamp "kind create cluster"
  kind create cluster --name "$KIND_CLUSTER" --config kind-config.yaml --kubeconfig "$kubeconfig" --wait 120s
  stamp "images, loaded into kind"
  "$PY" hack/images/build.py --registry --load kind --kind-cluster "$KIND_CLUSTER"
  export MODELWERK_E2E_OVERLAY=kind
  ;;
*)
  echo "unknown target $target (node or kind)" >&2
  exit 2
  ;;
esac

stamp "e2e suite"
MODELWERK_E2E_KUBECONFIG=$kubeconfig "$PY" -m pytest tests/e2e -v -rP -p no:cacheprovider "$@"
