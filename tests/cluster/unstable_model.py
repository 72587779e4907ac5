"""A model version that fails at predict time on some real rows: a candidate that answers 500.

``publish_unstable(card_uri)`` reads a published model (its card names the artifact), puts a
numerically fragile feature step in front of the fitted pipeline and publishes the result as a
new content-addressed artifact, with a copy of the card naming it. The step computes
``log(log(exp(exp(x))))`` per value: the identity in exact arithmetic, an ``OverflowError`` in
floating point wherever ``x > ln(ln(max double)) ≈ 6.565``, which 30 of iris' 150 rows reach
(sepal or petal length). The server answers an ``OverflowError`` with 500: it is not an input
error (those are ``ValueError``/``TypeError``, 422). Every other row gets the original
model's answer, and the warm-up on the profile's means passes, so the version loads and
becomes Ready like any other, then fails on real traffic, as a candidate with a bug would.

Only scikit-learn, NumPy and the standard library are pickled, so the runtime image loads it.
The file also runs as a script in a pod of the runtime image (``python3 -c <this file>
CARD_URI``, the e2e tier does), printing ``{"uri": …, "sha256": …}``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import operator
import sys
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer

from modelwerk.runtime import publish, storage
from modelwerk.runtime.artifacts import MODEL_CARD_FILE, MODEL_FILE, ModelCard

THRESHOLD = math.log(math.log(sys.float_info.max))


def fragile_step(columns: list[str]) -> Any:
    """``log(log(exp(exp(x))))`` per value of a frame, returning a frame with the same columns.

    ``DataFrame.map(math.exp)`` raises where NumPy's ``exp`` would return ``inf``; a
    ``methodcaller`` pickles (by name), where a vectorized function would not.
    """
    exp = operator.methodcaller("map", math.exp)
    step = make_pipeline(*(FunctionTransformer(f) for f in (exp, exp, np.log, np.log)))
    return step.fit(pd.DataFrame([[0.0] * len(columns)], columns=columns))


def publish_unstable(card_uri: str) -> dict[str, str]:
    """Publish the unstable twin of the model whose card is at ``card_uri``; its uri and sha256."""
    with storage.open_uri(card_uri) as handle:
        card = ModelCard.model_validate_json(handle.read())
    if storage.sha256_of(card.artifact.uri) != card.artifact.sha256:
        raise RuntimeError(f"{card.artifact.uri} does not match its card's sha256")
    with storage.open_uri(card.artifact.uri) as handle:
        original = joblib.load(handle)
    columns = [t.name for t in card.signature.inputs]
    unstable = Pipeline([("fragile", fragile_step(columns)), ("model", original)])
    buffer = io.BytesIO()
    joblib.dump(unstable, buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    parent = card.artifact.uri.rsplit("/", 2)[0]  # .../models/<model>
    final = storage.join(parent, digest)
    uri = storage.join(final, MODEL_FILE)
    twin = card.model_copy(
        update={
            "artifact": card.artifact.model_copy(
                update={"uri": uri, "sha256": digest, "size_bytes": len(data)}
            )
        }
    )
    staging = publish.staging_dir(parent)
    with storage.open_uri(storage.join(staging, MODEL_FILE), "wb") as handle:
        handle.write(data)
    with storage.open_uri(storage.join(staging, MODEL_CARD_FILE), "w") as handle:
        handle.write(twin.model_dump_json(by_alias=True, indent=2))
    publish.commit(staging, final, MODEL_CARD_FILE)
    return {"uri": uri, "sha256": digest}


if __name__ == "__main__":
    print(json.dumps(publish_unstable(sys.argv[1])))
