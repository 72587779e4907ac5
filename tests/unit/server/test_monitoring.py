"""Metrics: request counters, drift against the training profile, live accuracy from feedback."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelwerk.runtime.server.app import ModelServer, create_app
from modelwerk.runtime.server.drift import ks_statistic, numeric_psi
from modelwerk.runtime.server.model import LoadedModel, load_model

from .helpers import Artifact, v2_matrix

pytestmark = pytest.mark.anyio

Client = Callable[[ModelServer], httpx.AsyncClient]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def find(samples: Samples, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    want = set(labels.items())
    return {k[1]: v for k, v in samples.items() if k[0] == name and want <= k[1]}


MV = {"model": "iris", "version": "v1"}


async def test_request_metrics_are_labelled(
    iris_app: ModelServer, client_for: Client, iris: Artifact
) -> None:
    rows = iris.frame.iloc[:10]
    async with client_for(iris_app) as client:
        for _ in range(3):
            await client.post("/v2/models/iris/infer", json=v2_matrix(rows))
        await client.post("/v1/models/iris:predict", json={"instances": rows.to_numpy().tolist()})
        await client.post("/v2/models/iris/infer", json={"inputs": []})
        samples = await scrape(client)
    assert value(samples, "modelwerk_model_requests_total", **MV, protocol="v2", code="200") == 3
    assert value(samples, "modelwerk_model_requests_total", **MV, protocol="v1", code="200") == 1
    assert value(samples, "modelwerk_model_requests_total", **MV, protocol="v2", code="400") == 1
    assert value(samples, "modelwerk_model_request_seconds_count", **MV) == 5
    assert value(samples, "modelwerk_model_requests_in_flight", **MV) == 0
    assert value(samples, "modelwerk_model_info", **MV, sha256=iris.sha256) == 1
    per_class = find(samples, "modelwerk_model_predictions_total", **MV)
    assert sum(per_class.values()) == 40
    expected = np.bincount(iris.estimator.predict(rows), minlength=3) * 4
    for cls in range(3):
        assert (
            value(samples, "modelwerk_model_predictions_total", **MV, **{"class": str(cls)})
            == expected[cls]
        )
    assert value(samples, "modelwerk_model_batch_rows_sum", **MV) == 40
    # every series of every model metric names its model and version
    for (name, labels), _ in samples.items():
        if name.startswith("modelwerk_model_"):
            assert {("model", "iris"), ("version", "v1")} <= labels, name


async def test_registries_are_isolated(
    iris: Artifact, iris_model: LoadedModel, client_for: Client
) -> None:
    first, second = create_app(iris.settings(), iris_model), create_app(iris.settings(), iris_model)
    async with client_for(first) as a, client_for(second) as b:
        await a.post("/v2/models/iris/infer", json=v2_matrix(iris.frame.iloc[:1]))
        assert (
            value(
                await scrape(a), "modelwerk_model_requests_total", **MV, protocol="v2", code="200"
            )
            == 1
        )
        assert not find(await scrape(b), "modelwerk_model_requests_total")


def shifted(frame: pd.DataFrame, column: str, stds: float) -> pd.DataFrame:
    out = frame.copy()
    out[column] = out[column] + stds * frame[column].std()
    return out


async def _drift_after(app: ModelServer, client: httpx.AsyncClient, frame: pd.DataFrame) -> Samples:
    for start in range(0, len(frame), 50):
        response = await client.post(
            "/v2/models/iris/infer", json=v2_matrix(frame.iloc[start : start + 50])
        )
        assert response.status_code == 200
    return await scrape(client)


async def test_drift_low_in_distribution_high_when_shifted(
    iris: Artifact, iris_model: LoadedModel, client_for: Client
) -> None:
    live = iris.frame.sample(n=500, replace=True, random_state=3)  # the training distribution
    settings = iris.settings(drift_window=500)
    same, moved = create_app(settings, iris_model), create_app(settings, iris_model)
    async with client_for(same) as a, client_for(moved) as b:
        calm = await _drift_after(same, a, live)
        drifted = await _drift_after(moved, b, shifted(live, "petal length (cm)", 3.0))
    assert value(calm, "modelwerk_model_drift_window_rows", **MV) == 500
    calm_psi = find(calm, "modelwerk_model_feature_drift", **MV, method="psi")
    calm_ks = find(calm, "modelwerk_model_feature_drift", **MV, method="ks")
    assert len(calm_psi) == 4 and len(calm_ks) == 4
    assert max(calm_psi.values()) < 0.1, calm_psi
    assert max(calm_ks.values()) < 0.1, calm_ks
    feature = {"feature": "petal length (cm)"}
    assert value(drifted, "modelwerk_model_feature_drift", **MV, **feature, method="psi") > 1.0
    assert value(drifted, "modelwerk_model_feature_drift", **MV, **feature, method="ks") > 0.5
    others = find(drifted, "modelwerk_model_feature_drift", **MV, method="psi")
    assert sorted(others.values())[-2] < 0.1  # only the shifted feature moved
    assert value(drifted, "modelwerk_model_drift_score", **MV, method="psi") > 1.0
    assert value(calm, "modelwerk_model_drift_score", **MV, method="psi") < 0.1


async def test_drift_window_slides(
    iris: Artifact, iris_model: LoadedModel, client_for: Client
) -> None:
    """After a shift the window fills with normal rows again and the score falls back."""
    app = create_app(iris.settings(drift_window=200), iris_model)
    normal = iris.frame.sample(n=200, replace=True, random_state=5)
    async with client_for(app) as client:
        high = await _drift_after(app, client, shifted(normal, "sepal width (cm)", 4.0))
        low = await _drift_after(app, client, normal)
    key = {"feature": "sepal width (cm)", "method": "ks"}
    assert value(high, "modelwerk_model_feature_drift", **MV, **key) > 0.8
    assert value(low, "modelwerk_model_feature_drift", **MV, **key) < 0.15


async def test_drift_is_lazy(iris: Artifact, iris_model: LoadedModel, client_for: Client) -> None:
    app = create_app(iris.settings(drift_interval_seconds=3600, drift_min_rows=10), iris_model)
    async with client_for(app) as client:
        await _drift_after(app, client, iris.frame.iloc[:50])  # first scrape computes
        first = await scrape(client)
        await _drift_after(app, client, shifted(iris.frame.iloc[:50], "petal width (cm)", 5))
        second = await scrape(client)
    key = {"feature": "petal width (cm)", "method": "psi"}
    assert value(first, "modelwerk_model_feature_drift", **MV, **key) == value(
        second, "modelwerk_model_feature_drift", **MV, **key
    )


def test_drift_statistics() -> None:
    edges = np.array([0.0, 1.0])
    assert numeric_psi(np.array([-1.0, 0.5, 2.0]), edges, np.array([1 / 3] * 3)) == pytest.approx(0)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=400), np.sort(rng.normal(size=400))
    assert ks_statistic(a, b) < 0.1
    assert ks_statistic(a + 50, b) == 1.0
    from scipy.stats import ks_2samp

    assert ks_statistic(a + 0.3, b) == pytest.approx(ks_2samp(a + 0.3, b).statistic)


async def test_feedback_moves_live_accuracy(
    iris_app: ModelServer, client_for: Client, iris: Artifact
) -> None:
    rows = iris.frame.iloc[::30]  # 5 rows
    truth = iris.estimator.predict(rows).tolist()
    async with client_for(iris_app) as client:
        # No accuracy before any feedback: a 0 would read as a terrible model, and with several
        # workers it would win the pod-wide minimum.
        assert not find(await scrape(client), "modelwerk_model_live_accuracy")
        for i in range(4):
            await client.post("/v2/models/iris/infer", json=v2_matrix(rows.iloc[[i]], id=f"q{i}"))
        multi = await client.post("/v2/models/iris/infer", json=v2_matrix(rows, id="many"))
        assert multi.status_code == 200
        ok = await client.post("/v2/models/iris/feedback", json={"id": "q0", "label": truth[0]})
        assert ok.json() == {"received": 1, "matched": 1, "unmatched": 0, "accuracy": 1.0}
        assert value(await scrape(client), "modelwerk_model_live_accuracy", **MV) == 1.0
        wrong = [{"id": f"q{i}", "label": (truth[i] + 1) % 3} for i in (1, 2, 3)]
        batch = await client.post(
            "/v2/models/iris/feedback", json=[*wrong, {"id": "nope", "label": 1}]
        )
        assert batch.json()["matched"] == 3 and batch.json()["unmatched"] == 1
        rows_fb = await client.post(
            "/v2/models/iris/feedback", json={"id": "many", "labels": truth}
        )
        assert rows_fb.json()["matched"] == 5
        again = await client.post("/v2/models/iris/feedback", json={"id": "q0", "label": truth[0]})
        assert again.json()["unmatched"] == 1  # each prediction is labelled once
        samples = await scrape(client)
        bad = await client.post("/v2/models/iris/feedback", json={"label": 1})
        mismatch_body = {"id": "x", "labels": [1]}
        await client.post("/v2/models/iris/infer", json=v2_matrix(rows.iloc[:2], id="x"))
        mismatch = await client.post("/v2/models/iris/feedback", json=mismatch_body)
    assert value(samples, "modelwerk_model_live_accuracy", **MV) == pytest.approx(6 / 9)
    assert value(samples, "modelwerk_model_live_labelled_rows", **MV) == 9
    assert value(samples, "modelwerk_model_feedback_total", **MV, result="correct") == 6
    assert value(samples, "modelwerk_model_feedback_total", **MV, result="incorrect") == 3
    assert value(samples, "modelwerk_model_feedback_total", **MV, result="unmatched") == 2
    assert bad.status_code == 400 and "needs the 'id'" in bad.json()["error"]
    assert mismatch.status_code == 400 and "had 2 rows" in mismatch.json()["error"]


async def test_feedback_live_mae(diabetes: Artifact, client_for: Client) -> None:
    app = create_app(diabetes.settings(), load_model(diabetes.settings()))
    rows = diabetes.frame.iloc[:4]
    pred = diabetes.estimator.predict(rows)
    async with client_for(app) as client:
        await client.post("/v2/models/diabetes/infer", json=v2_matrix(rows, id="d"))
        labels = (pred + np.array([1.0, -2.0, 3.0, -4.0])).tolist()
        response = await client.post(
            "/v2/models/diabetes/feedback", json={"id": "d", "labels": labels}
        )
        bad = await client.post("/v2/models/diabetes/feedback", json={"id": "d", "label": "high"})
        samples = await scrape(client)
    assert response.json()["mae"] == pytest.approx(2.5)
    assert value(
        samples, "modelwerk_model_live_mae", model="diabetes", version="v1"
    ) == pytest.approx(2.5)
    assert value(
        samples, "modelwerk_model_feedback_absolute_error_total", model="diabetes", version="v1"
    ) == pytest.approx(10.0)
    assert bad.status_code == 400
    assert find(samples, "modelwerk_model_prediction_value_count", model="diabetes")


async def test_with_a_threshold_drift_waits_for_the_rows_it_needs(
    iris: Artifact, iris_model: LoadedModel, client_for: Client
) -> None:
    """Before the floor a feature has no score at all (not 0), and /metrics says how many
    rows it waits for; the other method's scores only wait for drift_min_rows."""
    app = create_app(iris.settings(drift_window=1000, drift_threshold=0.25), iris_model)
    assert app.drift is not None
    needed = {f: v for (f, m), v in app.drift.rows_needed.items() if m == "psi"}
    floor = int(max(needed.values()))
    assert 100 < floor <= 1000 and len(needed) == 4
    live = iris.frame.sample(n=floor, replace=True, random_state=8)
    async with client_for(app) as client:
        early = await _drift_after(app, client, live.iloc[:50])
        later = await _drift_after(app, client, live.iloc[50:])
    for feature, rows in needed.items():
        key = {"feature": feature, "method": "psi"}
        assert value(early, "modelwerk_model_drift_rows_needed", **MV, **key) == rows
    assert find(early, "modelwerk_model_drift_rows_needed", **MV, method="ks") == {}
    assert find(early, "modelwerk_model_feature_drift", **MV, method="psi") == {}
    assert find(early, "modelwerk_model_drift_score", **MV) == {}
    assert len(find(early, "modelwerk_model_feature_drift", **MV, method="ks")) == 4
    assert value(later, "modelwerk_model_drift_window_rows", **MV) == floor
    assert len(find(later, "modelwerk_model_feature_drift", **MV, method="psi")) == 4
    assert value(later, "modelwerk_model_drift_score", **MV, method="psi") <= 0.25


async def test_without_a_threshold_rows_needed_is_drift_min_rows(
    iris: Artifact, iris_model: LoadedModel, client_for: Client
) -> None:
    app = create_app(iris.settings(drift_min_rows=20), iris_model)
    async with client_for(app) as client:
        samples = await scrape(client)
    needed = find(samples, "modelwerk_model_drift_rows_needed", **MV)
    assert len(needed) == 4 and set(needed.values()) == {20}
