"""Real artifacts for the server tests: small sklearn pipelines, their model cards and profiles.

Everything is written the way the trainer and the validator write it (``model.joblib``,
``model-card.json``, ``profile.json``), so the server is tested against the artifact contract
rather than against mocks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelwerk.runtime.server.app import ModelServer, create_app
from modelwerk.runtime.server.model import LoadedModel, load_model

from .helpers import Artifact, write_artifact


@pytest.fixture(scope="session")
def artifact_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def iris(artifact_root: Path) -> Artifact:
    data = load_iris(as_frame=True)
    estimator = Pipeline(
        [
            ("scale", StandardScaler()),
            ("forest", RandomForestClassifier(n_estimators=20, random_state=0)),
        ]
    )
    return write_artifact(
        artifact_root, "iris", estimator, data.data, data.target, "classification"
    )


@pytest.fixture(scope="session")
def diabetes(artifact_root: Path) -> Artifact:
    data = load_diabetes(as_frame=True)
    estimator = Pipeline([("scale", StandardScaler()), ("ridge", Ridge())])
    return write_artifact(
        artifact_root, "diabetes", estimator, data.data, data.target, "regression"
    )


@pytest.fixture(scope="session")
def mixed(artifact_root: Path) -> Artifact:
    """Numeric and categorical inputs; unknown categories make the model raise."""
    data = load_iris(as_frame=True)
    frame = data.data.copy()
    frame["colour"] = np.where(frame["petal length (cm)"] > 3, "red", "blue").astype(object)
    transform = ColumnTransformer(
        [
            ("num", StandardScaler(), list(data.data.columns)),
            ("cat", OneHotEncoder(handle_unknown="error"), ["colour"]),
        ]
    )
    estimator = Pipeline([("prep", transform), ("clf", LogisticRegression(max_iter=500))])
    return write_artifact(artifact_root, "mixed", estimator, frame, data.target, "classification")


@pytest.fixture(scope="session")
def iris_model(iris: Artifact) -> LoadedModel:
    return load_model(iris.settings())


@pytest.fixture
def client_for() -> Callable[..., httpx.AsyncClient]:
    def make(app: ModelServer) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")

    return make


@pytest.fixture
def iris_app(iris: Artifact, iris_model: LoadedModel) -> ModelServer:
    # A fresh app (fresh registry, batcher, drift window) around the once-loaded model.
    return create_app(iris.settings(), iris_model)
