"""``modelwerk monitor``: join one Deployment's captured predictions with its labels, serve the
live figures (see :mod:`.aggregator`). Every flag has a ``MODELWERK_MONITOR_*`` twin."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from modelwerk.runtime.capture.store import Store
from modelwerk.runtime.flags import add_flags, configure_logging, settings_from
from modelwerk.runtime.monitor.aggregator import Aggregator
from modelwerk.runtime.monitor.http import serve
from modelwerk.runtime.monitor.settings import MonitorSettings

ROOT_ENV = "MODELWERK_ARTIFACT_ROOT"
log = logging.getLogger("modelwerk.monitor")

_FLAGS: list[tuple[str, dict[str, Any]]] = [
    ("--root", {"help": f"the store's root URI (default: ${ROOT_ENV})"}),
    ("--namespace", {"help": "the Deployment's namespace"}),
    ("--deployment", {"help": "the Deployment"}),
    ("--window-seconds", {"type": float, "help": "labels the figures cover (default 3600)"}),
    ("--horizon-seconds", {"type": float, "help": "how long predictions stay joinable"}),
    ("--grace-seconds", {"type": float, "help": "how long a label waits for its prediction"}),
    ("--interval-seconds", {"type": float, "help": "read the store this often (default 10)"}),
    ("--retention-days", {"type": int, "help": "delete data older than this (default 30)"}),
    ("--max-rows", {"type": int, "help": "predictions held for the join at most"}),
    ("--host", {"help": "address to bind (default 0.0.0.0)"}),
    ("--port", {"type": int, "help": "port (default 8080)"}),
    ("--log-level", {"choices": ["critical", "error", "warning", "info", "debug"]}),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="modelwerk monitor",
        description="Join a Deployment's captured predictions with its labels; serve the live "
        "accuracy / MAE per model version on /live (JSON) and /metrics.",
    )
    add_flags(parser, _FLAGS)
    settings = settings_from(MonitorSettings, parser.parse_args(argv), "modelwerk monitor")
    if settings is None:
        return 2
    root = settings.root or os.environ.get(ROOT_ENV)
    if not root:
        print(f"modelwerk monitor: no store named (--root or {ROOT_ENV})", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    aggregator = Aggregator(settings, Store(root))
    stop = threading.Event()
    server = serve(aggregator, settings.host, settings.port)

    def finish(signum: int, frame: FrameType | None) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    loop = threading.Thread(target=aggregator.run, args=(stop,), name="aggregator", daemon=True)
    loop.start()
    log.info(
        "Joining %s/%s from %s every %gs", settings.namespace, settings.deployment, root,
        settings.interval_seconds,
    )  # fmt: skip
    server.serve_forever()
    server.server_close()
    stop.set()
    loop.join(timeout=5)
    return 0
