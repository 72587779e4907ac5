"""The fairness sample as a user applies it (``kubectl apply -k manifests/samples/fairness``) on
a real cluster: the real validator and trainer run in restricted pods of the runtime image; the
run whose proxy feature carries the historical bias is Rejected by its fairness gate, with the
figures and intervals in its status, and the run without the proxy registers a ModelVersion that
records them and is verified."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.e2e.chain import JOB_TIMEOUT, status
from tests.e2e.kubectl import JSON, Kubectl, wait_for

SAMPLE = Path(__file__).resolve().parents[2] / "manifests" / "samples" / "fairness"
NAMESPACE = yaml.safe_load((SAMPLE / "kustomization.yaml").read_text())["namespace"]


def finished(kubectl: Kubectl, name: str) -> JSON | None:
    got = status(kubectl, "trainingjob", name, NAMESPACE)
    return got if got.get("phase") in ("Succeeded", "Failed", "Rejected") else None


@pytest.mark.usefixtures("operator")
def test_the_fairness_sample_rejects_the_proxy_and_registers_the_fair_model(
    kubectl: Kubectl,
) -> None:
    kubectl.run("apply", "-k", str(SAMPLE), timeout=120)
    try:
        kubectl.wait("dataset/hiring", "Ready", NAMESPACE, timeout=JOB_TIMEOUT)
        biased = wait_for(
            lambda: finished(kubectl, "hiring-with-proxy"),
            timeout=JOB_TIMEOUT,
            what="hiring-with-proxy to finish",
            interval=3,
        )
        assert biased["phase"] == "Rejected", biased
        ratio = biased["fairness"]["figures"]["demographicParityRatio"]
        low, high = biased["fairness"]["intervals"]["demographicParityRatio"]
        assert ratio < 0.8 and low <= ratio <= high, biased["fairness"]
        gate = next(g for g in biased["gateResults"] if g["metric"].startswith("fairness."))
        assert gate["passed"] is False and gate["value"] == ratio, gate
        assert "modelVersion" not in biased  # nothing registered for a rejected run

        kubectl.wait("trainingjob/hiring-without-proxy", "Ready", NAMESPACE, timeout=JOB_TIMEOUT)
        fair = status(kubectl, "trainingjob", "hiring-without-proxy", NAMESPACE)
        assert fair["phase"] == "Succeeded", fair
        assert fair["fairness"]["figures"]["demographicParityRatio"] >= 0.8, fair["fairness"]
        version = fair["modelVersion"]
        kubectl.wait(f"modelversion/{version}", "Ready", NAMESPACE, timeout=JOB_TIMEOUT)
        spec = kubectl.get("modelversion", version, NAMESPACE)["spec"]
        assert spec["fairness"] == fair["fairness"] and spec["robustness"] == fair["robustness"]
        inputs = [t["name"] for t in spec["signature"]["inputs"]]
        assert "gender" not in inputs and "district" not in inputs, inputs
        assert len(kubectl.list("modelversions", NAMESPACE)) == 1
    finally:
        kubectl.run("delete", "namespace", NAMESPACE, "--wait=false", timeout=60)
