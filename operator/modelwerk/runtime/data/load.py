"""Reading a Dataset's source into a DataFrame: bundled scikit-learn data, a csv/parquet URI or
the result of a SQL query.

Builtin datasets come from the files shipped inside scikit-learn (``load_<name>``), never from
the network; their label column is ``target``. ``fairness-demo`` is generated instead (label
``hired``, see :mod:`~modelwerk.runtime.data.synthetic`). URIs go through :mod:`modelwerk.runtime.storage`,
so ``pvc://`` maps onto the mounted claim and every other scheme goes to fsspec. Anything that
stops the data from being read becomes :class:`Unreadable`, which the validator reports as a
verdict on the source rather than a crash.
"""

from __future__ import annotations

from typing import Literal, get_args

import pandas as pd

from modelwerk.api.v1alpha1.dataset import BuiltinDataset, DatasetSource, SqlSource
from modelwerk.runtime import storage

BUILTIN_TARGET = "target"
BUILTINS: tuple[str, ...] = get_args(BuiltinDataset)
Format = Literal["auto", "csv", "parquet"]

# (suffix, format, pandas compression); longest suffixes first so ".csv.gz" wins over ".gz".
_SUFFIXES: tuple[tuple[str, Literal["csv", "parquet"], str | None], ...] = (
    (".csv.gz", "csv", "gzip"),
    (".csv.bz2", "csv", "bz2"),
    (".csv.zst", "csv", "zstd"),
    (".csv", "csv", None),
    (".parquet", "parquet", None),
    (".pq", "parquet", None),
)


class Unreadable(Exception):
    """The source could not be read: bad URI, missing file, unknown format, corrupt content, a
    query that failed; ``reason`` is the cause in CamelCase for the Dataset's status."""

    def __init__(self, message: str, reason: str = "Unreadable") -> None:
        super().__init__(message)
        self.reason = reason


def load_source(source: DatasetSource) -> pd.DataFrame:
    """The data a :class:`DatasetSource` names."""
    if source.builtin is not None:
        return load_builtin(source.builtin)
    if source.sql is not None:
        return load_sql(source.sql)
    assert source.uri is not None  # DatasetSource guarantees exactly one source
    return load_uri(source.uri, source.format)


def load_sql(source: SqlSource, url: str | None = None) -> pd.DataFrame:
    """The result of a query (:mod:`~modelwerk.runtime.data.sql`), credentials scrubbed from
    every error."""
    from modelwerk.runtime.data import sql  # deferred: SQLAlchemy is only needed for queries

    try:
        frame = sql.load_sql(source, url)
    except sql.SqlSourceError as error:
        raise Unreadable(str(error), error.reason) from None
    return _normalise(frame)


def load_builtin(name: str) -> pd.DataFrame:
    """A bundled scikit-learn dataset as one frame: the features plus a ``target`` column; or
    a generated one (:mod:`~modelwerk.runtime.data.synthetic`, its own label column)."""
    if name not in BUILTINS:
        raise Unreadable(f"unknown builtin dataset {name!r}; choose one of {', '.join(BUILTINS)}")
    from modelwerk.runtime.data import synthetic

    if name in synthetic.GENERATED:
        return _normalise(synthetic.GENERATED[name]())
    import sklearn.datasets  # deferred: the operator image imports this module's callers only

    bunch = getattr(sklearn.datasets, f"load_{name}")(as_frame=True)
    frame: pd.DataFrame = bunch.frame
    return _normalise(frame)


def load_uri(uri: str, fmt: Format = "auto") -> pd.DataFrame:
    """Read a csv or parquet file from ``uri``; the format is taken from the extension on auto."""
    check_uri(uri)
    kind, compression = _format_of(uri, fmt)
    try:
        with storage.open_uri(uri, "rb", storage.source_options()) as handle:
            if kind == "parquet":
                frame = pd.read_parquet(handle)
            else:
                frame = pd.read_csv(handle, compression=compression)
    except Unreadable:
        raise
    except Exception as error:  # every reader failure (I/O, parse, codec) means "unreadable"
        raise Unreadable(f"cannot read {uri}: {type(error).__name__}: {error}") from error
    return _normalise(frame)


def check_uri(uri: str) -> None:
    """Refuse URIs that are malformed or climb out of their base with ``..`` segments.

    The API refuses ``..`` too, but this code also runs from local files and other callers,
    and ``file://`` paths are not checked by :func:`storage.to_local`.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep or not scheme or not rest:
        raise Unreadable(f"{uri!r} is not a URI (expected scheme://path)")
    if ".." in rest.split("?")[0].split("/"):
        raise Unreadable(f"{uri!r} must not contain '..' path segments")
    if scheme == "pvc":
        try:
            storage.to_local(uri)
        except storage.StorageError as error:
            raise Unreadable(str(error)) from error


def _format_of(uri: str, fmt: Format) -> tuple[Literal["csv", "parquet"], str | None]:
    path = uri.split("?", 1)[0].lower()
    for suffix, kind, compression in _SUFFIXES:
        if path.endswith(suffix) and fmt in ("auto", kind):
            return kind, compression
    if fmt == "csv":
        return "csv", None
    if fmt == "parquet":
        return "parquet", None
    raise Unreadable(f"cannot tell the format of {uri} from its extension; set source.format")


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """String column names, unique, and a plain 0..n-1 row index (row order is kept)."""
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
        # A named or non-default index (parquet written with index=True) carries data.
        frame = frame.reset_index()
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    duplicated = sorted(set(frame.columns[frame.columns.duplicated()]))
    if duplicated:
        raise Unreadable(f"duplicate column names: {', '.join(duplicated)}")
    return frame
