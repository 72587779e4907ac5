"""``modelwerk serve``: verify and load the model, then serve it with uvicorn.

Every flag has a ``MODELWERK_SERVER_*`` environment twin (see :mod:`.settings`); flags win.
The model is verified, loaded and warmed up *before* the port opens, so a tampered or missing
artifact ends the process with exit code 1 and the reason on stderr (and in
``/dev/termination-log`` inside Kubernetes) instead of a server that never becomes ready.

With ``--workers N`` > 1, uvicorn starts N processes sharing the socket; each loads the model
again (from the environment the CLI exports) and Prometheus runs in multiprocess mode over a
fresh temporary directory, so ``/metrics`` shows the sum of all workers, whichever answers.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from modelwerk.runtime.flags import add_flags, configure_logging, settings_from
from modelwerk.runtime.server.settings import ServerSettings

log = logging.getLogger("modelwerk.serve")
TERMINATION_LOG = "/dev/termination-log"

_FLAGS: list[tuple[str, dict[str, Any]]] = [
    ("--model-uri", {"help": "the model.joblib to serve (pvc://, file://, path, fsspec URL)"}),
    ("--sha256", {"help": "expected sha256 of the artifact (required)"}),
    ("--name", {"dest": "model_name", "help": "model name in /v2/models/<name>"}),
    ("--version", {"help": "version label (default: first 12 hex of sha256)"}),
    ("--model-card-uri", {"help": "model card (default: model-card.json next to the model)"}),
    ("--profile-uri", {"help": "reference profile for drift (default: from the model card)"}),
    (
        "--artifact-format",
        {
            "choices": ["joblib", "onnx"],
            "help": "the form of --model-uri (default joblib); onnx is served by the onnx backend",
        },
    ),
    (
        "--backend",
        {
            "choices": ["auto", "onnx", "joblib"],
            "help": "onnx: the verified compiled model; joblib: the original; auto (default): "
            "onnx when --compiled-sha256 is given or the artifact is ONNX",
        },
    ),
    ("--compiled-uri", {"help": "the compiled model.onnx (default: from the model card)"}),
    ("--compiled-sha256", {"help": "expected sha256 of the compiled model"}),
    ("--intra-op-threads", {"type": int, "help": "ONNX Runtime threads per worker (default 1)"}),
    ("--host", {"help": "address to bind (default 0.0.0.0)"}),
    ("--port", {"type": int, "help": "port (default 8080)"}),
    ("--workers", {"type": int, "help": "server processes (default 1)"}),
    ("--max-batch-size", {"type": int, "help": "most requests per predict call (default 64)"}),
    ("--max-batch-delay-ms", {"type": float, "help": "longest wait for a batch (default 2)"}),
    ("--max-request-bytes", {"type": int, "help": "413 above this body size (default 16 MiB)"}),
    (
        "--drift-method",
        {"choices": ["psi", "ks"], "help": "method of the drift score (default psi)"},
    ),
    (
        "--drift-window",
        {"type": int, "help": "recent rows compared with the profile (default 1000)"},
    ),
    (
        "--drift-threshold",
        {
            "type": float,
            "help": "the threshold drift is compared with; scores wait for enough rows that "
            "noise stays below it (default: none, only --drift-min-rows)",
        },
    ),
    (
        "--drift-false-alarm",
        {
            "type": float,
            "help": "chance that an undrifted window crosses --drift-threshold (default 0.01)",
        },
    ),
    (
        "--drift-min-rows",
        {"type": int, "help": "rows needed before drift is reported, at least (default 50)"},
    ),
    ("--drift-interval-seconds", {"type": float, "help": "recompute drift at most this often"}),
    ("--feedback-capacity", {"type": int, "help": "predictions remembered for feedback"}),
    ("--feedback-window", {"type": int, "help": "labelled rows behind live accuracy"}),
    ("--capture-root", {"help": "store for capture (default: $MODELWERK_ARTIFACT_ROOT)"}),
    ("--namespace", {"help": "namespace in capture paths (default: default)"}),
    ("--deployment", {"help": "Deployment in capture paths (default: the model name)"}),
    ("--track", {"help": "the pod's color, recorded with each prediction"}),
    ("--pod", {"help": "pod name in capture rows and file names (default: host name)"}),
    (
        "--capture-input-rate",
        {"type": float, "help": "share of requests whose inputs are captured (default 0.1)"},
    ),
    (
        "--capture-flush-seconds",
        {"type": float, "help": "write buffered capture rows at least this often (default 10)"},
    ),
    ("--capture-file-rows", {"type": int, "help": "rows per capture file at most (default 50000)"}),
    (
        "--capture-buffer-rows",
        {"type": int, "help": "rows buffered per stream before dropping (default 100000)"},
    ),
    ("--log-level", {"choices": ["critical", "error", "warning", "info", "debug"]}),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelwerk serve",
        description="Serve a scikit-learn model over the Open Inference Protocol (V2 REST).",
        epilog="Every option can also be set as MODELWERK_SERVER_<OPTION> (e.g. "
        "MODELWERK_SERVER_MODEL_URI, MODELWERK_SERVER_MODEL_NAME); options win.",
    )
    add_flags(parser, _FLAGS)
    parser.add_argument(
        "--no-drift",
        dest="drift_enabled",
        action="store_false",
        default=None,
        help="do not compute drift even if a profile is available",
    )
    parser.add_argument(
        "--allow-version-mismatch",
        action="store_true",
        default=None,
        help="serve an artifact written by another scikit-learn minor version (unsupported)",
    )
    parser.add_argument(
        "--capture",
        action="store_true",
        default=None,
        help="write predictions, sampled inputs and labels to the store (Parquet)",
    )
    parser.add_argument(
        "--no-capture-probabilities",
        dest="capture_probabilities",
        action="store_false",
        default=None,
        help="do not capture class probabilities",
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        default=None,
        help="log every request (off by default: it costs throughput)",
    )
    return parser


def _fail(message: str) -> int:
    print(f"modelwerk serve: {message}", file=sys.stderr)
    path = Path(TERMINATION_LOG)
    if path.exists() and os.access(path, os.W_OK):
        path.write_text(message[:4000])
    return 1


def main(argv: list[str] | None = None) -> int:
    settings = settings_from(ServerSettings, build_parser().parse_args(argv), "modelwerk serve")
    if settings is None:
        return 2
    configure_logging(settings.log_level)

    from modelwerk.runtime.server.compatibility import EXIT_INCOMPATIBLE, IncompatibleModel
    from modelwerk.runtime.server.model import ModelLoadError, load_model

    try:
        model = load_model(settings)
    except ModelLoadError as exc:
        return _fail(str(exc))
    except IncompatibleModel as exc:
        _fail(str(exc))
        return EXIT_INCOMPATIBLE

    import uvicorn

    from modelwerk.runtime.server import traffic
    from modelwerk.runtime.server.app import create_app

    common = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": settings.access_log,
        "server_header": False,
        "lifespan": "on",
    }
    if settings.workers == 1:
        uvicorn.run(traffic.wrap(create_app(settings, model)), **common)  # type: ignore[arg-type]
        return 0
    # Workers are fresh interpreters (spawn): each verifies and loads the model again from the
    # environment; this process only proved it can be loaded, and drops it.
    del model
    os.environ.update(settings.to_env())
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="modelwerk-metrics-"))
    uvicorn.run(
        "modelwerk.runtime.server.app:create_app_from_env",
        factory=True,
        workers=settings.workers,
        **common,  # type: ignore[arg-type]
    )
    return 0
