"""Run the operator in-process with ``kopf.testing.KopfRunner``, restartable within a test.

Owns: pointing the operator at its kubeconfig (``MODELWERK_KUBECONFIG``, read by
the operator's kopf login handler and its API client) and at a free metrics
port, starting and stopping kopf, and keeping the output of every run for
assertions and failure reports. The environment is process-wide: one operator
at a time, and the previous values come back at ``close()``.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from kopf.testing import KopfRunner

from tests.cluster.controlplane import free_port

DEFAULT_ARGS: tuple[str, ...] = (
    "run",
    "--standalone",
    "--all-namespaces",
    "-m",
    "modelwerk.handlers",
)


class InProcessOperator:
    """The operator in a thread of the test process; ``restart()`` simulates a pod restart."""

    def __init__(
        self,
        kubeconfig: Path,
        args: Sequence[str] = DEFAULT_ARGS,
        *,
        env: Mapping[str, str] | None = None,
        stop_timeout: float = 30,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.args = list(args)
        self.stop_timeout = stop_timeout
        # A free port rather than the default 9090: nothing fixed, nothing shared between runs.
        self.metrics_port = free_port()
        self.env = {
            "MODELWERK_KUBECONFIG": str(kubeconfig),
            "MODELWERK_METRICS_PORT": str(self.metrics_port),
            # As deployed: the operator acts once it holds the Lease (RBAC in manifests/base).
            # A stop releases it, so the next run (or test) takes it over at once.
            "MODELWERK_LEADER_ELECTION": "true",
            **(env or {}),
        }
        self.runs: list[KopfRunner] = []
        self.logs: list[str] = []  # formatted records of kopf.* and modelwerk.* loggers, all runs
        self._handler = _Collector(self.logs)
        self._runner: KopfRunner | None = None
        self._saved_env: dict[str, str | None] | None = None

    @property
    def running(self) -> bool:
        return self._runner is not None

    def start(self) -> None:
        """Start kopf in a thread; returns at once (the operator then logs in and watches)."""
        if self._runner is not None:
            raise RuntimeError("the operator is already running")
        if self._saved_env is None:
            self._saved_env = {key: os.environ.get(key) for key in self.env}
        os.environ.update(self.env)  # read by the operator's settings at start-up
        if self._handler not in logging.getLogger().handlers:
            # kopf's own stream handler writes wherever stderr pointed when it was
            # configured; collecting records here is reliable across runs.
            logging.getLogger().addHandler(self._handler)
        self.logs.append(f"===== operator run {len(self.runs) + 1} =====")
        # reraise: an exception that ends the operator fails the test at stop().
        runner = KopfRunner(self.args, reraise=True, timeout=self.stop_timeout)
        runner.__enter__()
        self._runner = runner
        self.runs.append(runner)

    def stop(self) -> None:
        """Stop kopf (cancelling its tasks) and wait; re-raise whatever ended it abnormally."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        try:
            runner.__exit__(None, None, None)  # raises the operator's own exception, if any
        finally:
            _collect_leftovers()
        if runner.exit_code not in (0, None):
            raise RuntimeError(
                f"the operator exited with {runner.exit_code}:\n{self.output[-4000:]}"
            )

    def restart(self) -> None:
        """Stop and start again: a new kopf run re-lists everything, like a restarted pod."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop if running and restore the environment."""
        try:
            self.stop()
        finally:
            logging.getLogger().removeHandler(self._handler)
            for key, value in (self._saved_env or {}).items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            self._saved_env = None

    @property
    def output(self) -> str:
        """The operator's log so far (kopf and modelwerk loggers), all runs, oldest first."""
        return "\n".join(self.logs)


def _collect_leftovers() -> None:
    """Collect the stopped operator's sockets now, not during some later test.

    kopf's loop closes with watch connections still open; their sockets warn when collected.
    That is an artefact of running kopf in a thread of the test process (a real operator
    exits), so it is silenced here, at the one moment those objects die, and nowhere else.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


class _Collector(logging.Handler):
    """Keeps formatted records of the operator's loggers (any thread) in a list."""

    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        self._lock_ = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("kopf", "modelwerk")):
            with self._lock_:
                self.sink.append(self.format(record))
