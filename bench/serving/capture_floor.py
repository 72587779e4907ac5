#!/usr/bin/env python3
"""What inference capture costs in CPU, in-process: per predict call and per captured row.

A load test on a shared machine measures the other tenants as much as the server. CPU time
spent by the server's own code is not affected by them (only by cache effects), so this
measures it directly, for each model and batch shape the load test produces at c=64
(64 requests of 1 row, merged by the batcher; one request of 100 rows):

  batch          what the batcher thread runs per batch without capture: LoadedModel.predict
  batch+capture  the same with capture on: predict (with probabilities where the model has
                 them) + ServerCapture.predicted (the sample draw and the buffer append)
  writer/row     the writer thread's work per captured row: encoding a flush's worth of
                 batches to Arrow, Parquet (zstd) and writing the file, divided by its rows

Median and minimum of 7 timeit repeats, microseconds. Writes <out>/capture_floor.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from modelwerk.runtime.capture import layout
from modelwerk.runtime.capture.records import PredictionBatch
from modelwerk.runtime.capture.store import Store
from modelwerk.runtime.capture.writer import _parquet
from modelwerk.runtime.server.capture import ServerCapture
from modelwerk.runtime.server.model import LoadedModel, load_model
from modelwerk.runtime.server.settings import ServerSettings

WORK = Path(os.environ.get("PERF_WORK", str(Path(tempfile.gettempdir()) / "mlserver-baseline")))
HERE = Path(__file__).resolve().parent
SHAPES = ((64, 1), (1, 100))  # (requests, rows per request) of one predict call


def bench(fn: object) -> dict[str, float]:
    timer = timeit.Timer(fn)  # type: ignore[arg-type]
    loops, _ = timer.autorange()
    times = [t / loops * 1e6 for t in timer.repeat(repeat=7, number=loops)]
    return {"loops": loops, "median_us": statistics.median(times), "min_us": min(times)}


def measure(
    model: str, loaded: LoadedModel, capture: ServerCapture, x: np.ndarray, shape: tuple[int, int],
    store: Store, flush_rows: int,
) -> list[dict[str, Any]]:  # fmt: skip
    requests, rows = shape
    ids = [os.urandom(16).hex() for _ in range(requests)]
    counts = [rows] * requests
    writer = capture.predictions

    def batch() -> object:
        return loaded.predict(x, False)

    def batch_capture() -> None:
        pred, proba = loaded.predict(x, capture.probabilities)
        capture.predicted(time.time(), ids, counts, x, pred, proba)
        writer._pieces.clear()  # the buffer would grow for ever here
        writer._queued = 0

    points = []
    for what, fn in (("batch", batch), ("batch+capture", batch_capture)):
        r: dict[str, Any] = bench(fn)
        r.update(model=model, requests=requests, rows=rows, what=what)
        points.append(r)
        print(
            f"{model:8s} {requests:>2d}x{rows:<3d} {what:14s} median {r['median_us']:9.1f} us"
            f"  min {r['min_us']:9.1f} us",
            flush=True,
        )
    # The writer: a flush's worth of these batches, encoded and written as one file.
    pred, proba = loaded.predict(x, capture.probabilities)
    rng = np.random.default_rng(0)
    per_flush = max(1, flush_rows // (requests * rows))
    batches = [
        PredictionBatch(
            time=time.time(),
            request_ids=ids,
            counts=counts,
            prediction=pred,
            probabilities=proba,
            x=x,
            sampled=(rng.random(requests) < capture.input_rate).tolist(),
        )
        for _ in range(per_flush)
    ]
    prefix = layout.captures_prefix("bench", model, "v1")
    seq = iter(range(10**9))

    def write() -> None:
        store.write(f"{prefix}/f-{next(seq)}.parquet", _parquet(writer._encode(batches)))

    total = per_flush * requests * rows
    r = {k: (v / total if k.endswith("_us") else v) for k, v in bench(write).items()}
    r.update(model=model, requests=requests, rows=rows, what="writer/row", flush_rows=total)
    points.append(r)
    print(
        f"{model:8s} {requests:>2d}x{rows:<3d} writer/row     median {r['median_us']:9.2f} us"
        f"  min {r['min_us']:9.2f} us  ({total} rows per file)",
        flush=True,
    )
    return points


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(HERE / "out"))
    ap.add_argument("--flush-rows", type=int, default=27_000, help="rows per written file")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    points = []
    store_dir = Path(tempfile.mkdtemp(prefix="capture-floor-"))
    for model in ("iris-rf", "bc-gb"):
        card = json.loads((WORK / "modelwerk" / model / "model-card.json").read_text())
        settings = ServerSettings(
            model_uri=str(WORK / "modelwerk" / model / "model.joblib"),
            sha256=card["artifact"]["sha256"],
            model_name=model,
            version="v1",
            capture=True,
            capture_root=str(store_dir),
            capture_flush_seconds=3600,
            capture_buffer_rows=10**9,
        )
        loaded = load_model(settings)
        capture = ServerCapture(settings, loaded, CollectorRegistry())
        x100 = np.load(WORK / "bodies" / f"{model}-100.npy")
        for requests, rows in SHAPES:
            x = x100[: requests * rows]
            points += measure(
                model, loaded, capture, x, (requests, rows), Store(str(store_dir)), args.flush_rows
            )
        capture.close(1)
    shutil.rmtree(store_dir, ignore_errors=True)
    (out / "capture_floor.json").write_text(
        json.dumps({"python": sys.version, "points": points}, indent=2)
    )


if __name__ == "__main__":
    main()
