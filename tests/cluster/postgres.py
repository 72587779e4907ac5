"""A real PostgreSQL server for the test tiers: Debian's binaries, a fresh cluster per server.

Owns: starting ``hack/postgres/postgres.py``'s cluster as a supervised process (its own process
group, stopped at exit or with the test runner, like every component of the harness), waiting
until it accepts connections, creating databases owned by roles with passwords, and removing the
cluster's directory when stopped.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.hack import script
from tests.cluster.process import ManagedProcess


def _hack() -> Any:
    return script("postgres/postgres.py")


class PostgresServer:
    """A running PostgreSQL on ``host:port``; ``cluster.psql`` runs statements as superuser."""

    def __init__(
        self, log_dir: Path, host: str = "127.0.0.1", clients: tuple[str, ...] = ()
    ) -> None:
        self.log_dir = log_dir
        self.clients = clients
        """Networks besides loopback that may connect (with a password): the pods' ones."""
        self.cluster = _hack().Cluster.create(host)
        self.process: ManagedProcess | None = None

    @property
    def host(self) -> str:
        host: str = self.cluster.host
        return host

    @property
    def port(self) -> int:
        port: int = self.cluster.port
        return port

    def start(self, timeout: float = 60) -> None:
        self.cluster.init(self.clients)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(
            "postgres", self.cluster.server_argv(), self.log_dir / "postgres.log"
        )
        deadline = time.monotonic() + timeout
        while not self.cluster.ready():
            if not self.process.alive():
                raise RuntimeError(f"postgres exited at start-up:\n{self.process.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"postgres did not accept connections within {timeout}s")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
        self.cluster.remove()

    def create_database(self, name: str, owner: str, password: str) -> str:
        """A database owned by a new login role; its connection URL (credentials encoded)."""
        self.cluster.create_database(name, owner, password)
        url: str = self.cluster.url(owner, password, name)
        return url

    def psql(self, sql: str, database: str = "postgres") -> str:
        out: str = self.cluster.psql(sql, database)
        return out


IRIS_FEATURES = ("sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)")
IRIS_QUERY = (
    "SELECT " + ", ".join(f'"{c}"' for c in IRIS_FEATURES) + ", target FROM iris ORDER BY id"
)
"""The bundled iris, exactly: the same version as ``source.builtin: iris``."""


def create_iris(server: PostgresServer, database: str, user: str, password: str) -> str:
    """A database owned by ``user`` holding scikit-learn's iris, row by row in the bundled
    order (``id``), under its bundled column names; its connection URL."""
    from sklearn.datasets import load_iris

    url = server.create_database(database, user, password)
    frame = load_iris(as_frame=True).frame
    rows = ",\n".join(
        f"({i}, {', '.join(repr(float(v)) for v in row[:4])}, {int(row[4])})"
        for i, row in enumerate(frame.itertuples(index=False))
    )
    columns = ", ".join(f'"{c}" double precision' for c in IRIS_FEATURES)
    server.psql(
        f"CREATE TABLE iris (id integer PRIMARY KEY, {columns}, target integer);\n"
        f"INSERT INTO iris VALUES {rows};\nALTER TABLE iris OWNER TO {user};\n",
        database=database,
    )
    return url


@contextlib.contextmanager
def running_postgres(
    log_dir: Path, host: str = "127.0.0.1", clients: tuple[str, ...] = ()
) -> Iterator[PostgresServer]:
    """A PostgreSQL server for the duration of the block; always stopped and removed. The test
    fails (never skips) when the binaries are missing: `.ci/run` installs them."""
    try:
        server = PostgresServer(log_dir, host, clients)
    except _hack().Unavailable as error:
        pytest.fail(f"PostgreSQL is needed here: {error}")
    try:
        server.start()
        yield server
    finally:
        server.stop()
