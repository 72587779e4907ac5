"""The Argo CD health checks in manifests/argocd/health, executed by a real Lua interpreter.

Argo CD runs these scripts in gopher-lua (Lua 5.1) with the object as the global ``obj`` and only
the base, string, table and math libraries. lupa embeds Lua 5.4; the scripts run in an
environment holding only what both versions offer, and a syntax guard refuses 5.2+ syntax, so a
script that passes here also runs in Argo CD. Objects are built from the API models, so the field
names (observedGeneration, paused, conditions) are the ones the API server stores.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from lupa import lua54

from modelwerk.api.conditions import Condition
from modelwerk.api.v1alpha1.common import StatusBase
from modelwerk.api.v1alpha1.dataset import DatasetPhase, DatasetStatus
from modelwerk.api.v1alpha1.deployment import DeploymentStatus, RolloutPhase
from modelwerk.api.v1alpha1.model_version import ModelVersionPhase, ModelVersionStatus
from modelwerk.api.v1alpha1.training_job import TrainingJobStatus, TrainingPhase

ROOT = Path(__file__).resolve().parents[3]
HEALTH = ROOT / "manifests" / "argocd" / "health"
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
T = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

# What gopher-lua's base, string, table and math libraries have in common with Lua 5.4's.
LUA51_GLOBALS = (
    "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber", "tostring",
    "type", "unpack", "xpcall", "string", "table", "math",
)  # fmt: skip
_LUA = lua54.LuaRuntime(unpack_returned_tuples=False)
_RUN = _LUA.eval(
    """
    function(source, name, obj, allowed)
      local env = {obj = obj}
      for _, key in ipairs(allowed) do env[key] = _G[key] end
      env.unpack = table.unpack  -- Lua 5.1's global name
      local chunk, err = load(source, name, "t", env)
      if chunk == nil then error(err) end
      return chunk()
    end
    """
)


def _generator() -> Any:
    path = ROOT / "hack" / "monitoring" / "argocd_health.py"
    spec = importlib.util.spec_from_file_location("argocd_health", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("argocd_health", module)
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    source = (HEALTH / f"{kind.lower()}.lua").read_text()
    result = _RUN(
        source,
        f"{kind.lower()}.lua",
        _LUA.table_from(obj, recursive=True),
        _LUA.table_from(LUA51_GLOBALS),
    )
    assert result is not None, f"{kind}: the script returned nothing"
    answer = dict(result.items())
    assert set(answer) <= {"status", "message"}, answer
    assert answer["status"] in ARGO_STATUSES, answer
    assert isinstance(answer.get("message"), str) and answer["message"], answer
    return answer["status"], answer["message"]


def obj(kind: str, status: StatusBase | None, generation: int = 2) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "modelwerk.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "team", "generation": generation},
        "spec": {},
    }
    if status is not None:
        body["status"] = status.to_k8s()
    return body


def cond(type_: str, status: str, reason: str, message: str = "") -> Condition:
    return Condition(
        type=type_, status=status, reason=reason, message=message, last_transition_time=T
    )  # type: ignore[arg-type]


# Every phase of every kind and the Argo CD health it maps to.
DATASET = {
    "Pending": "Progressing",
    "Validating": "Progressing",
    "Ready": "Healthy",
    "Invalid": "Degraded",
    "Failed": "Degraded",
}
TRAINING_JOB = {
    "Pending": "Progressing",
    "Suspended": "Suspended",
    "Searching": "Progressing",
    "Running": "Progressing",
    "Succeeded": "Healthy",
    "Failed": "Degraded",
    "Rejected": "Degraded",
}
MODEL_VERSION = {
    "Pending": "Progressing",
    "Ready": "Healthy",
    "Failed": "Degraded",
}
DEPLOYMENT = {
    "Progressing": "Progressing",
    "Paused": "Suspended",
    "Healthy": "Healthy",
    "Degraded": "Degraded",
    "Aborted": "Degraded",
}
KINDS: dict[str, tuple[type[StatusBase], Any, dict[str, str]]] = {
    "Dataset": (DatasetStatus, DatasetPhase, DATASET),
    "TrainingJob": (TrainingJobStatus, TrainingPhase, TRAINING_JOB),
    "ModelVersion": (ModelVersionStatus, ModelVersionPhase, MODEL_VERSION),
    "Deployment": (DeploymentStatus, RolloutPhase, DEPLOYMENT),
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_phase_of_the_api_has_a_case(kind: str) -> None:
    _, phases, table = KINDS[kind]
    assert set(table) == set(get_args(phases))


@pytest.mark.parametrize(
    ("kind", "phase"), [(kind, phase) for kind, (_, _, table) in KINDS.items() for phase in table]
)
def test_each_phase(kind: str, phase: str) -> None:
    status_type, _, table = KINDS[kind]
    status = status_type(phase=phase, observed_generation=2, message=f"{phase} because of x")
    assert health(kind, obj(kind, status)) == (table[phase], f"{phase} because of x")


@pytest.mark.parametrize("kind", KINDS)
def test_a_fresh_object_without_status_is_progressing(kind: str) -> None:
    status, message = health(kind, obj(kind, None, generation=1))
    assert status == "Progressing"
    assert "Waiting for the operator" in message


@pytest.mark.parametrize("kind", KINDS)
def test_a_status_without_phase_is_progressing(kind: str) -> None:
    status_type = KINDS[kind][0]
    assert health(kind, obj(kind, status_type(observed_generation=1)))[0] == "Progressing"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("observed", [1, None])
def test_a_spec_the_operator_has_not_seen_yet_is_progressing(
    kind: str, observed: int | None
) -> None:
    status_type, phases, _ = KINDS[kind]
    healthy = {"Dataset": "Ready", "TrainingJob": "Succeeded", "ModelVersion": "Ready"}
    phase = healthy.get(kind, "Healthy")
    assert phase in get_args(phases)
    stale = status_type(phase=phase, observed_generation=observed, message="old news")
    assert health(kind, obj(kind, stale, generation=2)) == (
        "Progressing",
        "Waiting for the operator to observe the latest spec",
    )
    current = status_type(phase=phase, observed_generation=2, message="old news")
    assert health(kind, obj(kind, current, generation=2))[0] == "Healthy"


@pytest.mark.parametrize("kind", KINDS)
def test_an_unknown_phase_is_reported_as_unknown(kind: str) -> None:
    body = obj(kind, None)
    body["status"] = {"phase": "Exploded", "observedGeneration": 2, "message": "boom"}
    assert health(kind, body) == ("Unknown", "Unknown phase Exploded: boom")


@pytest.mark.parametrize("kind", KINDS)
def test_a_phase_without_message_still_explains_itself(kind: str) -> None:
    status_type, _, table = KINDS[kind]
    phase = next(iter(table))
    status, message = health(kind, obj(kind, status_type(phase=phase, observed_generation=2)))
    assert status == table[phase]
    assert phase in message and kind in message


def test_a_deployment_paused_by_a_person_is_suspended_whatever_its_phase() -> None:
    paused = DeploymentStatus(
        phase="Progressing", paused=True, observed_generation=2, message="Paused at step 2"
    )
    assert health("Deployment", obj("Deployment", paused)) == ("Suspended", "Paused at step 2")
    silent = DeploymentStatus(phase="Healthy", paused=True, observed_generation=2)
    assert health("Deployment", obj("Deployment", silent))[0] == "Suspended"


def test_a_deployment_waiting_for_a_manual_promotion_is_suspended() -> None:
    waiting = DeploymentStatus(
        phase="Progressing",
        observed_generation=2,
        message="iris-v2 is Ready on green; waiting for promote",
        conditions=[cond("Progressing", "True", "WaitingForPromotion")],
    )
    assert health("Deployment", obj("Deployment", waiting)) == (
        "Suspended",
        "iris-v2 is Ready on green; waiting for promote",
    )
    rolling = waiting.model_copy(
        update={"conditions": [cond("Progressing", "True", "RollingOut")], "message": "step 1"}
    )
    assert health("Deployment", obj("Deployment", rolling)) == ("Progressing", "step 1")


def test_an_aborted_deployment_stays_degraded_when_also_paused() -> None:
    aborted = DeploymentStatus(
        phase="Aborted", paused=True, observed_generation=2, message="errorRate 0.2 > 0.01"
    )
    assert health("Deployment", obj("Deployment", aborted)) == ("Degraded", "errorRate 0.2 > 0.01")


def test_a_healthy_deployment_mentions_detected_drift() -> None:
    drifting = DeploymentStatus(
        phase="Healthy",
        observed_generation=2,
        message="Serving iris-v1",
        conditions=[
            cond("Ready", "True", "Serving"),
            cond("DriftDetected", "True", "DriftAboveThreshold", "petal width psi 0.41 > 0.2"),
        ],
    )
    assert health("Deployment", obj("Deployment", drifting)) == (
        "Healthy",
        "Serving iris-v1; drift detected: petal width psi 0.41 > 0.2",
    )
    settled = drifting.model_copy(
        update={"conditions": [cond("DriftDetected", "False", "WithinThreshold")]}
    )
    assert health("Deployment", obj("Deployment", settled)) == ("Healthy", "Serving iris-v1")


def _code(source: str) -> str:
    """``source`` without comments and string literals."""
    source = re.sub(r"--\[(=*)\[.*?\]\1\]", " ", source, flags=re.S)
    source = re.sub(r"\[(=*)\[.*?\]\1\]", '""', source, flags=re.S)
    source = re.sub(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', '""', source)
    return re.sub(r"--[^\n]*", " ", source)


@pytest.mark.parametrize("script", sorted(HEALTH.glob("*.lua")), ids=lambda p: p.name)
def test_scripts_use_only_lua_5_1_syntax(script: Path) -> None:
    code = _code(script.read_text())
    # integer division, bitwise operators, goto and labels arrived with Lua 5.2/5.3
    for token in ("//", "&", "|", "<<", ">>", "::", "goto"):
        assert token not in code, f"{script.name} uses {token!r}, which Argo CD's Lua 5.1 lacks"
    assert not re.search(r"~(?!=)", code), f"{script.name} uses ~ (bitwise xor/not)"


def test_the_syntax_guard_sees_through_comments_and_strings() -> None:
    assert _code('x = "a // b" -- c // d\n') == 'x = ""  \n'
    assert "//" in _code("x = 7 // 2")


def test_there_is_one_script_per_kind() -> None:
    assert {p.stem for p in HEALTH.glob("*.lua")} == set(GENERATOR.KINDS)
    assert set(GENERATOR.KINDS.values()) == set(KINDS)


def test_the_argocd_cm_snippet_is_generated_from_the_scripts() -> None:
    assert GENERATOR.SNIPPET.read_text() == GENERATOR.render(), (
        "manifests/argocd/argocd-cm.yaml is stale: run python hack/monitoring/argocd_health.py"
    )
    snippet = yaml.safe_load(GENERATOR.SNIPPET.read_text())
    assert snippet["kind"] == "ConfigMap" and snippet["metadata"]["name"] == "argocd-cm"
    assert snippet["data"] == {
        f"resource.customizations.health.modelwerk.dev_{kind}": (HEALTH / f"{stem}.lua").read_text()
        for stem, kind in GENERATOR.KINDS.items()
    }


def test_check_mode_fails_on_a_stale_snippet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "argocd-cm.yaml"
    stale.write_text(GENERATOR.render().replace("Healthy", "Degraded", 1))
    monkeypatch.setattr(GENERATOR, "SNIPPET", stale)
    assert GENERATOR.main(["--check"]) == 1
    assert "stale" in capsys.readouterr().out
    stale.write_text(GENERATOR.render())
    assert GENERATOR.main(["--check"]) == 0


# -- statuses the real Deployment decision produces (tests/unit/logic/rollout_sim) -----------


def _body(sim: Any) -> dict[str, Any]:
    """The Deployment as the API server would hand it to Argo CD."""
    return dict(sim.dep.model_dump(by_alias=True, exclude_none=True, mode="json"))


def _health_of(sim: Any) -> str:
    return health("Deployment", _body(sim))[0]


def test_argo_cd_follows_a_blue_green_rollout_waiting_for_a_person() -> None:
    from tests.unit.logic.rollout_sim import Sim, deployment, version

    v1, v2 = "iris-classifier-v1", "iris-classifier-v2"
    bluegreen = {"blueGreen": {"autoPromote": False, "previewReplicas": 1}}
    sim = Sim(deployment(modelVersion=v1, strategy=bluegreen), [version(1), version(2)])
    assert _health_of(sim) == "Progressing"  # not reconciled yet: no status
    while sim.status.phase != "Healthy":
        sim.step()
        expected = "Healthy" if sim.status.phase == "Healthy" else "Progressing"
        assert _health_of(sim) == expected, sim.status.message
        assert len(sim.plans) < 20

    sim.set_spec(modelVersion=v2)
    assert health("Deployment", _body(sim)) == (
        "Progressing",
        "Waiting for the operator to observe the latest spec",
    )
    sim.until(lambda s: s.status.phase == "Paused")
    status, message = health("Deployment", _body(sim))
    assert status == "Suspended" and message == sim.status.message
    sim.command("promote")
    sim.until(lambda s: s.status.stable_version == v2)
    assert _health_of(sim) == "Healthy"


def test_argo_cd_sees_a_manual_pause_and_a_missed_deadline() -> None:
    from tests.unit.logic.rollout_sim import Sim, deployment, version

    v1, v2 = "iris-classifier-v1", "iris-classifier-v2"
    sim = Sim(deployment(modelVersion=v1, progressDeadlineSeconds=30), [version(1), version(2)])
    sim.until(lambda s: s.status.phase == "Healthy")
    sim.command("pause")
    sim.set_spec(modelVersion=v2)
    sim.step()
    assert (sim.status.phase, _health_of(sim)) == ("Paused", "Suspended")
    sim.command("resume")
    sim.pods_ready = False
    sim.step()
    assert _health_of(sim) == "Progressing"
    sim.step(seconds=31)
    sim.step()
    sim.step()
    assert sim.status.phase == "Aborted"
    assert health("Deployment", _body(sim)) == ("Degraded", sim.status.message)
