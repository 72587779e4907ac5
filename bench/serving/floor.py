#!/usr/bin/env python3
"""The in-process floor: what one request costs without HTTP, per model and body size.

For each model and body (1 and 100 rows), the median over 7 timeit repeats of:
  predict        estimator.predict(x) on a ready numpy array (the bare floor)
  onnx-predict   the compiled model's predict on the same array (ONNX Runtime, one thread)
  modelwerk-rt   the server's own path without HTTP and without batching: orjson.loads(body)
                 -> codec.decode_v2 -> LoadedModel.predict -> codec.encode_v2 -> orjson.dumps,
                 with the joblib backend
  onnx-rt        the same path with the ONNX backend
Writes <out>/floor.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import timeit
from pathlib import Path

import numpy as np
import orjson

from modelwerk.runtime.server.codec import decode_v2, encode_v2
from modelwerk.runtime.server.model import LoadedModel, load_model
from modelwerk.runtime.server.settings import ServerSettings

WORK = Path(os.environ.get("PERF_WORK", str(Path(tempfile.gettempdir()) / "mlserver-baseline")))
HERE = Path(__file__).resolve().parent


def bench(fn: object) -> dict[str, float]:
    timer = timeit.Timer(fn)  # type: ignore[arg-type]
    loops, _ = timer.autorange()
    times = [t / loops * 1e6 for t in timer.repeat(repeat=7, number=loops)]
    return {"loops": loops, "median_us": statistics.median(times), "min_us": min(times)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(HERE / "out"))
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    points = []
    for model in ("iris-rf", "bc-gb"):
        card = json.loads((WORK / "modelwerk" / model / "model-card.json").read_text())
        common = {
            "model_uri": str(WORK / "modelwerk" / model / "model.joblib"),
            "sha256": card["artifact"]["sha256"],
            "model_name": model,
            "version": "v1",
        }
        loaded = load_model(ServerSettings(**common, backend="joblib"))
        compiled = load_model(
            ServerSettings(**common, backend="onnx", compiled_sha256=card["compiled"]["sha256"])
        )
        estimator = loaded.backend.estimator  # type: ignore[attr-defined]
        for rows in (1, 100):
            x = np.load(WORK / "bodies" / f"{model}-{rows}.npy")
            body = (WORK / "bodies" / f"{model}-{rows}.json").read_bytes()

            def runtime(body: bytes = body, loaded: LoadedModel = loaded) -> bytes:
                decoded = decode_v2(loaded, orjson.loads(body))
                pred, proba = loaded.predict(decoded.x, decoded.probabilities)
                return orjson.dumps(
                    encode_v2(loaded, "id", pred, proba), option=orjson.OPT_SERIALIZE_NUMPY
                )

            def onnx_runtime(body: bytes = body, loaded: LoadedModel = compiled) -> bytes:
                return runtime(body, loaded)

            for what, fn in (
                ("predict", lambda x=x, est=estimator: est.predict(x)),
                ("onnx-predict", lambda x=x, m=compiled: m.predict(x, False)),
                ("modelwerk-rt", runtime),
                ("onnx-rt", onnx_runtime),
            ):
                r = bench(fn)
                r.update(model=model, rows=rows, what=what)  # type: ignore[arg-type]
                points.append(r)
                print(
                    f"{model:8s} rows={rows:<3d} {what:13s} median {r['median_us']:9.1f} us  "
                    f"min {r['min_us']:9.1f} us",
                    flush=True,
                )
    (out / "floor.json").write_text(json.dumps({"python": sys.version, "points": points}, indent=2))


if __name__ == "__main__":
    main()
