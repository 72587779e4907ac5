"""Reading a Dataset from a SQL query (``source.sql``): PostgreSQL through psycopg 3, or SQLite.

The connection URL comes from the environment (:data:`URL_ENV`, a ``secretKeyRef`` of the
validation pod), never from the spec; the result set becomes a frame like a csv file's (the
values a csv reader would see: dates and times as ISO text, ``numeric`` as float).

Q: Why a read-only transaction and a timeout enforced by the database?
A: The validator only reads, and a query that runs for ever must end with its cause before the
   Job's deadline kills the pod without one. PostgreSQL gets ``SET TRANSACTION READ ONLY`` and
   ``SET LOCAL statement_timeout`` inside the query's own transaction (so a connection pooler in
   transaction mode keeps them too): the server cancels the statement itself and frees its
   resources, which a client-side timer could not. The query goes as one prepared statement,
   so it cannot be several (``COMMIT; DELETE …`` would leave the read-only transaction). SQLite has no server: the file is opened
   read-only (``mode=ro``, ``query_only``) and a progress handler interrupts the query at the
   deadline.

Q: Why scrub every message?
A: A message leaves the pod as the termination message and becomes the Dataset's status, an
   Event and log lines. Drivers quote the user name (``password authentication failed for user
   "…"``) and, on a malformed URL, parts of it. Every spelling of the URL, the user name and the
   password (as written, decoded, percent-encoded) is replaced by ``***`` before an error leaves
   this module; the original exception is dropped from the chain (``from None``) so no
   traceback can carry it either.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from typing import Any
from urllib.parse import quote, quote_plus, unquote

import pandas as pd

from modelwerk.api.v1alpha1.dataset import SqlSource

URL_ENV = "MODELWERK_SQL_URL"
"""The variable the validation pod gets the connection URL in (``SQL_URL_ENV`` of the builder)."""
REDACTED = "***"
CONNECT_TIMEOUT_SECONDS = 10
"""How long connecting may take: an unreachable server must fail the run, not hang it."""
_MESSAGE_LIMIT = 1500
_SQLITE_CHECK_EVERY = 10_000
"""SQLite virtual-machine instructions between two looks at the clock (microseconds apart)."""


class SqlSourceError(Exception):
    """The query could not deliver a result; ``reason`` is a CamelCase cause for the status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def load_sql(source: SqlSource, url: str | None = None) -> pd.DataFrame:
    """The result of ``source.query`` on the database at ``url`` (default: ``$MODELWERK_SQL_URL``)."""
    url = os.environ.get(URL_ENV) if url is None else url
    if not url:
        raise SqlSourceError(
            "InvalidSource",
            f"{URL_ENV} is not set: the key named by source.sql.urlSecretRef was not given "
            "to the pod",
        )
    secrets = secrets_of(url)
    try:
        return _query(url, source.query, source.timeout_seconds)
    except SqlSourceError as error:
        raise SqlSourceError(error.reason, _shortened(scrub(str(error), secrets))) from None
    except Exception as error:  # any driver or SQLAlchemy failure: report it, scrubbed
        raise SqlSourceError("QueryFailed", _shortened(scrub(_describe(error), secrets))) from None


def secrets_of(url: str) -> list[str]:
    """Every spelling of the credentials in ``url``, longest first (so a longer one is replaced
    before a shorter one inside it).

    >>> found = secrets_of("postgresql://ann:p%40ss@db/x")
    >>> found[0], [s for s in ("ann", "p@ss", "p%40ss", "ann:p%40ss") if s not in found]
    ('postgresql://ann:p%40ss@db/x', [])
    """
    found = {url}
    userinfo = re.match(r"^[^:/?#]+://([^/?#]*)@", url)
    if userinfo:
        found.add(userinfo.group(1))
        found.update(userinfo.group(1).split(":", 1))
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:  # a malformed URL: its raw parts above are all there is
        parsed = None
    parts = [p for p in found if p != url]
    if parsed is not None:
        parts += [parsed.username or "", str(parsed.password or "")]
        found.add(parsed.render_as_string(hide_password=False))
    for part in parts:
        if part:
            found |= {part, unquote(part), quote(part, safe=""), quote_plus(part), quote(part)}
    return sorted((s for s in found if s), key=lambda s: (-len(s), s))


def scrub(message: str, secrets: Iterable[str]) -> str:
    """``message`` with every secret replaced by ``***`` (case-insensitively, so ``%2f`` and
    ``%2F`` both go).

    >>> scrub('password authentication failed for user "ann"', ["ann"])
    'password authentication failed for user "***"'
    """
    for secret in secrets:
        message = re.sub(re.escape(secret), REDACTED, message, flags=re.IGNORECASE)
    return message


def _query(url: str, query: str, timeout: int) -> pd.DataFrame:
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError
    from sqlalchemy.pool import NullPool

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise SqlSourceError(
            "InvalidSource", "the connection URL is not a SQLAlchemy URL (dialect://…)"
        ) from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        # psycopg 3 is the one PostgreSQL driver in the image, whatever the URL names.
        engine = create_engine(
            parsed.set(drivername="postgresql+psycopg"),
            poolclass=NullPool,
            connect_args={
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                "application_name": "modelwerk-dataset",
            },
        )
        prepare = [
            "SET TRANSACTION READ ONLY",
            f"SET LOCAL statement_timeout = {timeout * 1000}",
        ]
    elif backend == "sqlite":
        engine = create_engine(_sqlite_read_only(parsed), poolclass=NullPool)
        prepare = ["PRAGMA query_only = ON"]
        deadline = time.monotonic() + timeout

        @event.listens_for(engine, "connect")
        def _interrupt_at_deadline(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.set_progress_handler(
                lambda: int(time.monotonic() > deadline), _SQLITE_CHECK_EVERY
            )

    else:
        raise SqlSourceError(
            "InvalidSource",
            f"unsupported database {backend!r}: source.sql reads PostgreSQL (postgresql://) "
            "and SQLite (sqlite://)",
        )
    try:
        try:
            connection = engine.connect()
        except Exception as error:
            raise SqlSourceError(
                "ConnectionFailed", f"cannot connect to the database: {_describe(error)}"
            ) from None
        with connection:
            try:
                for statement in prepare:
                    connection.exec_driver_sql(statement)
                # The driver's own cursor, without parameters: the query is the user's SQL
                # as written, so a "%" or ":name" in it is never taken for a placeholder.
                dbapi: Any = connection.connection.dbapi_connection
                cursor = dbapi.cursor()
                if backend == "sqlite":
                    cursor.execute(query)  # sqlite3 runs one statement per call, no more
                else:
                    # A prepared statement is one statement: "COMMIT; DELETE …" cannot end the
                    # read-only transaction and write after it (the simple protocol would).
                    cursor.execute(query, prepare=True)
                if cursor.description is None:
                    raise SqlSourceError("QueryFailed", "the query returned no result set")
                columns = [str(column[0]) for column in cursor.description]
                rows = cursor.fetchall()
            except SqlSourceError:
                raise
            except Exception as error:
                raise SqlSourceError(*_query_failure(error, backend, timeout)) from None
        # Closing rolled the transaction back: it only read, there is nothing to keep.
    finally:
        engine.dispose()
    frame = pd.DataFrame.from_records(rows, columns=columns, coerce_float=True)
    return _as_text_where_a_csv_would_be(frame)


def _sqlite_read_only(parsed: Any) -> Any:
    """A SQLite URL opened read-only: a missing file is an error, never a new empty database."""
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return parsed
    return parsed.set(
        database=f"file:{quote(database)}", query={**parsed.query, "mode": "ro", "uri": "true"}
    )


def _query_failure(error: Exception, backend: str, timeout: int) -> tuple[str, str]:
    message = _describe(error)
    cause = getattr(error, "orig", None) or error
    timed_out = type(cause).__name__ == "QueryCanceled" or (
        backend == "sqlite" and str(cause) == "interrupted"
    )
    if timed_out:
        return "QueryTimedOut", (
            f"the query was cancelled after source.sql.timeoutSeconds ({timeout}s): {message}"
        )
    return "QueryFailed", f"the query failed: {message}"


def _describe(error: BaseException) -> str:
    """The database's own message (the driver's exception inside SQLAlchemy's wrapper, which
    would add the statement and a documentation link)."""
    orig = getattr(error, "orig", None)
    source = orig if isinstance(orig, BaseException) else error
    text = str(source).strip() or type(source).__name__
    return f"{type(source).__name__}: {text}"


def _shortened(message: str) -> str:
    """Cut after scrubbing, never before: a cut could leave half a password unrecognised."""
    return message if len(message) <= _MESSAGE_LIMIT else message[: _MESSAGE_LIMIT - 1] + "…"


def _as_text_where_a_csv_would_be(frame: pd.DataFrame) -> pd.DataFrame:
    """Dates, times, intervals, UUIDs, bytes, JSON and arrays as text (ISO 8601 for time, JSON
    for documents and arrays, hex for bytes), so a query and a csv export of its result are
    the same data; numbers and booleans stay."""
    frame.columns = [str(c) for c in frame.columns]
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_datetime64_any_dtype(column) or pd.api.types.is_timedelta64_dtype(
            column
        ):
            frame[name] = column.astype(object).map(_cell_text, na_action="ignore")
        elif column.dtype == object and any(not _plain(v) for v in column):
            frame[name] = column.map(_cell_text, na_action="ignore")
    return frame


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _cell_text(value: Any) -> Any:
    if isinstance(value, pd.Timestamp | datetime | date | clock_time):
        return value.isoformat()
    if isinstance(value, pd.Timedelta | timedelta):
        return str(pd.Timedelta(value).isoformat())
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict | list | tuple):  # json, jsonb and arrays: as JSON text
        return json.dumps(value, default=str, sort_keys=True, ensure_ascii=False)
    return value if _plain(value) else str(value)
