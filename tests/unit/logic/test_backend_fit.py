"""A Deployment's server backend against the ModelVersion it would serve: an ONNX artifact is
never handed to the joblib backend, a version without a verified compilation never to the onnx
backend; the Deployment says why and nothing is created (or the stable version keeps serving)."""

from __future__ import annotations

from typing import Any

from modelwerk.api.conditions import get_condition
from modelwerk.api.v1alpha1.model_version import ModelVersion
from modelwerk.builders.serving import server_args

from .rollout_sim import MODEL, Sim, deployment, version


def onnx_version(n: int) -> ModelVersion:
    body = version(n).model_dump(by_alias=True, exclude_none=True, mode="json")
    artifact = body["spec"]["artifact"]
    artifact["uri"] = artifact["uri"].replace("model.joblib", "model.onnx")
    artifact |= {"format": "onnx", "framework": "onnx", "frameworkVersion": "opset 18"}
    return ModelVersion.from_k8s(body)


def reason(sim: Sim) -> tuple[str, str]:
    ready = get_condition(sim.status.conditions, "Ready")
    assert ready is not None
    return ready.status, ready.reason


def args_of(sim: Sim) -> list[str]:
    track = next(c for c in sim.plans[-1].apply if c["kind"] == "Deployment")
    args: list[str] = track["spec"]["template"]["spec"]["containers"][0]["command"]
    return args


def test_joblib_is_never_asked_of_an_onnx_version() -> None:
    sim = Sim(deployment(modelVersion=f"{MODEL}-v1", server={"backend": "joblib"}), [])
    sim.versions = [onnx_version(1)]
    plan = sim.step()
    assert plan.apply == () and plan.requeue_after
    assert reason(sim) == ("False", "BackendUnavailable")
    assert "is an ONNX model" in (sim.status.message or "")
    assert "use auto or onnx" in (sim.status.message or "")


def test_auto_serves_an_onnx_version_with_the_onnx_backend() -> None:
    sim = Sim(deployment(modelVersion=f"{MODEL}-v1"), [onnx_version(1)])
    sim.step()
    args = args_of(sim)
    assert args[args.index("--artifact-format") + 1] == "onnx"
    assert args[args.index("--model-uri") + 1].endswith("/model.onnx")
    assert "--compiled-sha256" not in args
    sim.step()
    assert (sim.status.phase, sim.status.stable_version) == ("Healthy", f"{MODEL}-v1")


def test_a_followed_model_keeps_its_stable_version_when_the_newest_cannot_be_served() -> None:
    sim = Sim(
        deployment(modelSelector={"model": MODEL}, server={"backend": "joblib"}), [version(1)]
    )
    sim.until(lambda s: s.status.phase == "Healthy")
    sim.versions = [version(1), onnx_version(2)]
    sim.step()
    assert sim.version_on("blue") == f"{MODEL}-v1"
    assert f"{MODEL}-v2 is an ONNX model" in (sim.status.message or "")


def test_onnx_is_never_asked_of_a_version_without_a_verified_compilation() -> None:
    sim = Sim(deployment(modelVersion=f"{MODEL}-v1", server={"backend": "onnx"}), [version(1)])
    plan = sim.step()
    assert plan.apply == ()
    assert reason(sim) == ("False", "BackendUnavailable")
    assert "no verified compiled model" in (sim.status.message or "")


def test_joblib_versions_keep_their_flags() -> None:
    dep: Any = deployment(modelVersion=f"{MODEL}-v1")
    assert "--artifact-format" not in server_args(dep, version(1))
