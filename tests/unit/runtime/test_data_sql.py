"""SQL sources against a real PostgreSQL 15 (hack/postgres) and SQLite: the result is a normal
dataset version, the query is read-only and bounded in time, and no error carries a credential."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from modelwerk.api.v1alpha1.dataset import SqlSource
from modelwerk.runtime.data import job, load, snapshot, sql
from tests.cluster.postgres import PostgresServer, running_postgres

from .helpers import dataset, write_csv

# Characters a URL must encode, and one ("%") whose encoding is itself a "%".
PASSWORD = "pa:ss@w/o%rd?#1"
USER = "mw_reader"
TABLE = """
CREATE TABLE flowers (
    id integer PRIMARY KEY, petal double precision, width numeric(6, 2), kind text,
    seen date, fresh boolean
);
INSERT INTO flowers VALUES
    (1, 1.4, 0.20, 'setosa', '2026-01-02', true),
    (2, 4.7, 1.40, 'versicolor', '2026-01-03', false),
    (3, NULL, 2.50, 'virginica', NULL, true);
"""
CSV = """id,petal,width,kind,seen,fresh
1,1.4,0.2,setosa,2026-01-02,True
2,4.7,1.4,versicolor,2026-01-03,False
3,,2.5,virginica,,True
"""


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    with running_postgres(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture(scope="module")
def url(postgres: PostgresServer) -> str:
    url = postgres.create_database("flowers", USER, PASSWORD)
    postgres.psql(f"{TABLE}\nALTER TABLE flowers OWNER TO {USER};", database="flowers")
    return url


def source(query: str, timeout: int = 30) -> SqlSource:
    return SqlSource.model_validate(
        {"query": query, "urlSecretRef": {"name": "db", "key": "url"}, "timeoutSeconds": timeout}
    )


def failure(query: str, url: str, timeout: int = 30) -> sql.SqlSourceError:
    with pytest.raises(sql.SqlSourceError) as caught:
        sql.load_sql(source(query, timeout), url)
    return caught.value


def assert_no_credential(message: str, *secrets: str) -> None:
    for secret in secrets:
        for spelling in {secret, quote(secret, safe=""), quote(secret)}:
            assert spelling.lower() not in message.lower(), (spelling, message)


def test_a_query_reads_the_table_as_a_csv_export_of_it_would(url: str, tmp_path: Path) -> None:
    frame = load.load_sql(source("SELECT * FROM flowers ORDER BY id"), url)
    assert list(frame.columns) == ["id", "petal", "width", "kind", "seen", "fresh"]
    assert frame["width"].tolist() == [0.2, 1.4, 2.5]  # numeric: float, as in a csv
    assert frame["seen"].tolist()[:2] == ["2026-01-02", "2026-01-03"]
    from_csv = load.load_uri(write_csv(tmp_path, CSV))
    # Content addressing: the query and a csv export of its result are one version.
    assert snapshot.version_of(frame) == snapshot.version_of(from_csv)


def test_types_a_csv_has_no_word_for_become_text(url: str) -> None:
    query = """SELECT 1.5::numeric AS n, '2026-01-02 03:04:05+00'::timestamptz AS ts,
        '1 day'::interval AS iv, '{"b": [1, 2], "a": null}'::jsonb AS doc, ARRAY[1, 2] AS arr,
        '\\x00ff'::bytea AS raw, '12:30'::time AS tm"""
    (row,) = load.load_sql(source(query), url).to_dict("records")
    assert row == {
        "n": 1.5,
        "ts": "2026-01-02T03:04:05+00:00",
        "iv": "P1DT0H0M0S",
        "doc": '{"a": null, "b": [1, 2]}',
        "arr": "[1, 2]",
        "raw": "00ff",
        "tm": "12:30:00",
    }


def test_the_validation_job_publishes_a_version_of_the_result(
    url: str, root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(sql.URL_ENV, url)
    ds = dataset(
        target="kind",
        sql={
            "query": "SELECT * FROM flowers ORDER BY id",
            "urlSecretRef": {"name": "d", "key": "u"},
        },
        schema={"minRows": 3, "columns": [{"name": "petal", "type": "float", "nullable": True}]},
    )
    outcome = job.validate(ds, root)
    assert outcome.exit_code == job.EXIT_VERDICT and outcome.valid, outcome.result
    assert outcome.result["rows"] == 3 and outcome.result["columns"] == 6
    assert outcome.result["version"].startswith("sha256:")
    for uri in (outcome.result["snapshotUri"], outcome.result["profileUri"]):
        assert Path(uri.removeprefix("file://")).is_file(), uri
    again = job.validate(ds, root)
    assert again.result["version"] == outcome.result["version"]


def test_the_timeout_cancels_the_query_on_the_server(url: str, postgres: PostgresServer) -> None:
    started = time.monotonic()
    error = failure("SELECT pg_sleep(30)", url, timeout=1)
    elapsed = time.monotonic() - started
    assert error.reason == "QueryTimedOut"
    assert "canceling statement due to statement timeout" in str(error)
    assert "timeoutSeconds (1s)" in str(error)
    assert elapsed < 10, elapsed
    # Cancelled by the server: no backend is still sleeping.
    running = postgres.psql(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"
    )
    assert running.strip() == "0"


def test_the_query_is_sent_as_written(url: str) -> None:
    """No placeholder syntax of any layer: "%" and ":name" are plain SQL."""
    query = "SELECT kind, ':x' AS colon FROM flowers WHERE kind LIKE 'v%' ORDER BY id"
    frame = load.load_sql(source(query), url)
    assert frame["kind"].tolist() == ["versicolor", "virginica"]
    assert frame["colon"].tolist() == [":x", ":x"]


def test_the_transaction_is_read_only(url: str, postgres: PostgresServer) -> None:
    error = failure("WITH gone AS (DELETE FROM flowers RETURNING id) SELECT * FROM gone", url)
    assert error.reason == "QueryFailed"
    assert "read-only transaction" in str(error)
    assert postgres.psql("SELECT count(*) FROM flowers", database="flowers").strip() == "3"


def test_a_second_statement_cannot_leave_the_read_only_transaction(
    url: str, postgres: PostgresServer
) -> None:
    error = failure("COMMIT; DELETE FROM flowers; SELECT 1", url)
    assert error.reason == "QueryFailed"
    assert "cannot insert multiple commands into a prepared statement" in str(error)
    assert postgres.psql("SELECT count(*) FROM flowers", database="flowers").strip() == "3"


def test_a_wrong_password_fails_with_the_servers_message_and_no_credential(
    postgres: PostgresServer,
) -> None:
    wrong = "Wr%ng/p@ss:word"
    bad = f"postgresql://{USER}:{quote(wrong, safe='')}@{postgres.host}:{postgres.port}/flowers"
    error = failure("SELECT 1", bad)
    assert error.reason == "ConnectionFailed"
    message = str(error)
    assert 'password authentication failed for user "***"' in message
    assert_no_credential(message, USER, wrong, bad)


def test_bad_sql_fails_with_the_servers_message(url: str) -> None:
    error = failure("SELEC id FROM flowers", url)
    assert error.reason == "QueryFailed"
    assert 'syntax error at or near "SELEC"' in str(error)
    assert_no_credential(str(error), USER, PASSWORD, url)


def test_a_message_quoting_the_password_is_scrubbed(url: str) -> None:
    # The server repeats a bad literal: here, the password itself.
    literal = PASSWORD.replace("'", "''")
    error = failure(f"SELECT CAST('{literal}' AS integer)", url)
    assert "invalid input syntax for type integer" in str(error)
    assert '"***"' in str(error)
    assert_no_credential(str(error), USER, PASSWORD)


def test_an_unreachable_server_fails_fast_without_credentials() -> None:
    from tests.cluster.hack import script

    port = script("postgres/postgres.py").free_port("127.0.0.1")  # nothing listens there
    bad = f"postgresql://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/flowers"
    started = time.monotonic()
    error = failure("SELECT 1", bad)
    assert time.monotonic() - started < sql.CONNECT_TIMEOUT_SECONDS
    assert error.reason == "ConnectionFailed"
    assert "Connection refused" in str(error) or "connection refused" in str(error).lower()
    assert_no_credential(str(error), USER, PASSWORD, bad)


def test_a_failure_reaches_the_result_scrubbed(
    postgres: PostgresServer, root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = f"postgresql://{USER}:nope-{quote(PASSWORD, safe='')}@{postgres.host}:{postgres.port}/flowers"
    monkeypatch.setenv(sql.URL_ENV, bad)
    ds = dataset(sql={"query": "SELECT 1", "urlSecretRef": {"name": "d", "key": "u"}})
    outcome = job.validate(ds, root)
    assert outcome.exit_code == job.EXIT_UNREADABLE
    assert outcome.result["reason"] == "ConnectionFailed"
    assert "password authentication failed" in outcome.result["error"]
    assert_no_credential(str(outcome.result), USER, PASSWORD, bad)


def test_without_the_url_in_the_environment_the_source_is_invalid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(sql.URL_ENV, raising=False)
    with pytest.raises(sql.SqlSourceError, match=sql.URL_ENV) as caught:
        sql.load_sql(source("SELECT 1"))
    assert caught.value.reason == "InvalidSource"


def test_an_unsupported_database_is_named_without_its_credentials() -> None:
    bad = f"mysql://{USER}:{quote(PASSWORD, safe='')}@db/x"
    error = failure("SELECT 1", bad)
    assert error.reason == "InvalidSource" and "'mysql'" in str(error)
    assert_no_credential(str(error), USER, PASSWORD, bad)


@pytest.mark.parametrize(
    "bad", [f"{USER}:{PASSWORD}", f"postgresql://{USER}:{quote(PASSWORD, safe='')}@h:port/d"]
)
def test_a_malformed_url_is_refused_without_repeating_it(bad: str) -> None:
    error = failure("SELECT 1", bad)
    assert error.reason == "InvalidSource" and "not a SQLAlchemy URL" in str(error)
    assert_no_credential(str(error), USER, PASSWORD, bad)


def test_secrets_of_covers_every_spelling() -> None:
    url = f"postgresql://{USER}:{quote(PASSWORD, safe='')}@h:1/d"
    found = sql.secrets_of(url)
    assert {url, USER, PASSWORD, quote(PASSWORD, safe="")} <= set(found)
    message = f"user {USER} pw {PASSWORD} enc {quote(PASSWORD, safe='').lower()} url {url}"
    assert sql.scrub(message, found) == "user *** pw *** enc *** url ***"


# --------------------------------------------------------------------------- SQLite


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    path = tmp_path / "flowers.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE flowers (id integer, petal real, kind text)")
        db.executemany(
            "INSERT INTO flowers VALUES (?, ?, ?)", [(1, 1.4, "setosa"), (2, None, "virginica")]
        )
    db.close()
    return f"sqlite:///{path}"


def test_sqlite_reads_a_table(sqlite_url: str) -> None:
    frame = load.load_sql(source("SELECT * FROM flowers ORDER BY id"), sqlite_url)
    assert frame.shape == (2, 3)
    assert frame["kind"].tolist() == ["setosa", "virginica"]


def test_sqlite_is_read_only(sqlite_url: str) -> None:
    error = failure("DELETE FROM flowers RETURNING id", sqlite_url)
    assert error.reason == "QueryFailed" and "readonly" in str(error).replace(" ", "")
    frame = load.load_sql(source("SELECT count(*) AS n FROM flowers"), sqlite_url)
    assert frame["n"].tolist() == [2]


def test_sqlite_runs_one_statement(sqlite_url: str) -> None:
    error = failure("SELECT 1; DELETE FROM flowers", sqlite_url)
    assert error.reason == "QueryFailed" and "one statement at a time" in str(error)


def test_a_missing_sqlite_file_fails_and_is_not_created(tmp_path: Path) -> None:
    error = failure("SELECT 1", f"sqlite:///{tmp_path}/absent.db")
    assert error.reason == "ConnectionFailed"
    assert not (tmp_path / "absent.db").exists()


def test_sqlite_queries_are_interrupted_at_the_timeout(sqlite_url: str) -> None:
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n"
    started = time.monotonic()
    error = failure(endless, sqlite_url, timeout=1)
    assert error.reason == "QueryTimedOut", error
    assert time.monotonic() - started < 10


def test_the_operator_passes_the_url_in_the_variable_the_pod_reads() -> None:
    from modelwerk.builders.dataset import SQL_URL_ENV

    assert SQL_URL_ENV == sql.URL_ENV
