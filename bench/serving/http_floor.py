#!/usr/bin/env python3
"""The HTTP floor: ``modelwerk serve`` exactly as benchmarked, with a model that does nothing.

Same settings, same card and signature, same app (request decoding, micro-batcher, metrics,
drift window, feedback memory, encoding), same uvicorn: only the backend's ``predict`` is
replaced by one that returns zeros. What this server sustains is the ceiling any backend can
reach on this machine; the report gives each backend's share of it.

Usage: the ``modelwerk serve`` flags (``--model-uri``, ``--sha256``, ``--name``, …).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import uvicorn

from modelwerk.runtime.server.app import create_app
from modelwerk.runtime.server.cli import build_parser
from modelwerk.runtime.server.model import LoadedModel, load_model
from modelwerk.runtime.server.settings import ServerSettings


class NothingBackend:
    """Answers class 0 (probability 1) for every row without computing anything."""

    name = "nothing"

    def __init__(self, classes: list[Any] | None, has_proba: bool) -> None:
        self.classes = classes
        self.has_proba = has_proba
        self._width = len(classes or [1])

    def predict(self, x: np.ndarray, proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        n = len(x)
        probabilities = None
        if proba:
            probabilities = np.zeros((n, self._width))
            probabilities[:, 0] = 1.0
        return np.zeros(n, dtype=np.int64), probabilities


def main(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    settings = ServerSettings(**{k: v for k, v in vars(args).items() if v is not None})
    real = load_model(settings)  # the card, profile and signature as served
    model = LoadedModel(
        name=real.name,
        version=real.version,
        sha256=real.sha256,
        card=real.card,
        backend=NothingBackend(real.classes, real.has_proba),
        profile=real.profile,
    )
    uvicorn.run(
        create_app(settings, model),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
