#!/usr/bin/env python3
"""A throw-away PostgreSQL server for the test tiers, from Debian's ``postgresql-15`` package.

Owns: finding the server binaries (``$PG_BINDIR``, else the newest
``/usr/lib/postgresql/<major>/bin`` with major >= 15), installing the package when it is absent
(``install``: root and apt-get only), creating a cluster in a fresh directory (``initdb``, a
superuser with a random password, scram-sha-256 for every connection, no Unix socket), the
server's command line (127.0.0.1 or another given address, one port, nothing else), and
creating a database owned by a login role with a password (``psql``, statements on stdin).

Standard library only, so it runs before any virtualenv exists. PostgreSQL refuses to run as
root: as root the cluster is made and served as the user ``postgres`` (the Debian package's;
``$PG_USER`` names another), in a directory under the system's temporary directory that user
owns, and the server is started through ``setpriv`` with a parent-death signal, so it dies with
whoever started it. Passwords travel through files and the environment, never a command line
(which every local user can read in /proc).

    python3 hack/postgres/postgres.py install    # apt-get install postgresql-15 when absent
    python3 hack/postgres/postgres.py bindir     # where the binaries are
    python3 hack/postgres/postgres.py run        # a server until Ctrl-C; prints its URL

The tests start it through ``tests/cluster/postgres.py`` (their process supervision on top).
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "postgresql-15"
MIN_MAJOR = 15
ADMIN = "mwadmin"


class Unavailable(RuntimeError):
    """PostgreSQL's binaries are not here and cannot be had."""


def bindir() -> Path:
    """The directory of ``postgres``, ``initdb``, ``psql`` and ``pg_isready``."""
    override = os.environ.get("PG_BINDIR")
    if override:
        path = Path(override)
        if not (path / "postgres").is_file():
            raise Unavailable(f"PG_BINDIR={override} has no postgres binary")
        return path
    found = []
    for candidate in Path("/usr/lib/postgresql").glob("*/bin"):
        major = candidate.parent.name
        if major.isdigit() and int(major) >= MIN_MAJOR and (candidate / "postgres").is_file():
            found.append((int(major), candidate))
    if not found:
        raise Unavailable(
            f"no PostgreSQL >= {MIN_MAJOR} under /usr/lib/postgresql: install Debian's "
            f"{PACKAGE} (`sudo python3 hack/postgres/postgres.py install`) or set PG_BINDIR"
        )
    return max(found)[1]


def install() -> Path:
    """The binaries, installing Debian's package first when they are absent (root only)."""
    try:
        return bindir()
    except Unavailable:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "--no-install-recommends", PACKAGE]
    if subprocess.run(command, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(command, env=env, check=True)
    return bindir()


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _service_user() -> pwd.struct_passwd | None:
    """Whom the server runs as: None for the current (non-root) user."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("PG_USER", "postgres")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise Unavailable(
            f"running as root, and there is no user {name!r} to run PostgreSQL as "
            "(Debian's package creates postgres; PG_USER names another)"
        ) from None


@dataclass
class Cluster:
    """A cluster in ``base`` (created by :meth:`init`) and how to serve and reach it."""

    base: Path
    host: str = "127.0.0.1"
    port: int = 0
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    bin: Path = field(default_factory=bindir)

    @property
    def data(self) -> Path:
        return self.base / "data"

    @classmethod
    def create(cls, host: str = "127.0.0.1") -> Cluster:
        """A new, empty base directory the server's user owns (``init`` fills it)."""
        base = Path(tempfile.mkdtemp(prefix="modelwerk-pg-"))
        user = _service_user()
        if user is not None:
            os.chown(base, user.pw_uid, user.pw_gid)
        return cls(base, host=host)

    def _as_server_user(self) -> list[str]:
        user = _service_user()
        if user is None:
            return []
        return [
            "setpriv",
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--clear-groups",
            "--pdeathsig=KILL",  # setpriv's change of user clears the caller's one
            "--",
        ]

    def init(self, clients: Sequence[str] = ()) -> None:
        """``initdb``: superuser ``mwadmin`` with a random password, scram-sha-256 everywhere.

        Only loopback clients may connect, and the networks in ``clients`` (CIDRs, for a server
        on an address that pods reach), always with a password."""
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.admin_password + "\n")
        user = _service_user()
        if user is not None:
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        pwfile.chmod(0o600)
        try:
            subprocess.run(
                [
                    *self._as_server_user(),
                    str(self.bin / "initdb"),
                    "--pgdata",
                    str(self.data),
                    "--username",
                    ADMIN,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
                text=True,
                cwd=self.base,
            )
        except subprocess.CalledProcessError as error:
            raise RuntimeError(f"initdb failed:\n{error.stdout}\n{error.stderr}") from None
        finally:
            pwfile.unlink(missing_ok=True)
        with open(self.data / "pg_hba.conf", "a") as hba:
            for cidr in clients:
                if not re.fullmatch(r"[0-9a-fA-F.:]+/[0-9]{1,3}", cidr):
                    raise ValueError(f"{cidr!r} is not a CIDR")
                hba.write(f"host all all {cidr} scram-sha-256\n")

    def server_argv(self) -> list[str]:
        """The server in the foreground, its log on stderr, reachable on host:port only."""
        if not self.port:
            self.port = free_port(self.host)
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": "",
            "max_connections": "30",
            "shared_buffers": "16MB",
            # A test database: durability buys nothing and costs the shared disk.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "log_min_messages": "warning",
        }
        argv = [*self._as_server_user(), str(self.bin / "postgres"), "-D", str(self.data)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        return argv

    def ready(self) -> bool:
        probe = subprocess.run(
            [str(self.bin / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port)],
            check=False,
        )
        return probe.returncode == 0

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` (on stdin) as the superuser; its output, unaligned, tuples only."""
        result = subprocess.run(
            [
                *(str(self.bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"),
                *("-h", self.host, "-p", str(self.port), "-U", ADMIN, "-d", database, "-f", "-"),
            ],
            input=sql,
            env={**os.environ, "PGPASSWORD": self.admin_password, "PGCONNECT_TIMEOUT": "10"},
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout

    def create_database(self, name: str, owner: str, password: str) -> None:
        """A login role ``owner`` (with ``password``) and a database it owns."""
        for identifier in (name, owner):
            if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", identifier):
                raise ValueError(f"{identifier!r} is not a plain lower-case identifier")
        literal = "'" + password.replace("'", "''") + "'"
        self.psql(f"CREATE ROLE {owner} LOGIN PASSWORD {literal};\n")
        self.psql(f"CREATE DATABASE {name} OWNER {owner};\n")

    def url(self, user: str, password: str, database: str) -> str:
        """A SQLAlchemy URL, user and password percent-encoded."""
        from urllib.parse import quote

        return (
            f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}"
            f"@{self.host}:{self.port}/{database}"
        )

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


def _run(host: str, port: int) -> int:
    cluster = Cluster.create(host)
    cluster.port = port
    try:
        cluster.init()
        server = subprocess.Popen(cluster.server_argv())
        try:
            deadline = time.monotonic() + 60
            while not cluster.ready():
                if server.poll() is not None or time.monotonic() > deadline:
                    print("the server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.1)
            password = secrets.token_urlsafe(18)
            cluster.create_database("modelwerk", "modelwerk", password)
            print(cluster.url("modelwerk", password, "modelwerk"), flush=True)
            server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        cluster.remove()
    return 0


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="hack/postgres/postgres.py", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help=f"install Debian's {PACKAGE} when absent (root)")
    commands.add_parser("bindir", help="print the directory of the server binaries")
    run = commands.add_parser("run", help="serve a fresh cluster until interrupted")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            print(install())
        elif args.command == "bindir":
            print(bindir())
        else:
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            return _run(args.host, args.port or free_port(args.host))
    except Unavailable as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
