"""Reading production data back: captures, labels, and labelled rows, over a time range.

Only the hour partitions a range covers are listed and read, whichever store holds them.
The functions return Arrow tables (``.to_pandas()`` them) except :func:`read_labelled`, which
returns the joined rows as a pandas DataFrame with one column per model input.
"""

from __future__ import annotations

import logging
import urllib.parse
from datetime import datetime, timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modelwerk.runtime.capture import layout
from modelwerk.runtime.capture.store import Store

log = logging.getLogger(__name__)


def versions(store: Store, namespace: str, deployment: str) -> list[str]:
    """The model versions that have captures."""
    prefix = layout.deployment_prefix(layout.CAPTURES, namespace, deployment)
    return sorted(urllib.parse.unquote(d) for d in store.dirs(prefix))


def files(store: Store, prefix: str, start: datetime, end: datetime) -> list[str]:
    """The Parquet files under ``prefix`` in the hour partitions from ``start`` to ``end``."""
    out = []
    for hour in layout.hours(start, end):
        directory = f"{prefix}/{layout.partition(hour)}"
        out += [
            f"{directory}/{n}" for n in sorted(store.files(directory)) if n.endswith(".parquet")
        ]
    return out


def capture_files(
    store: Store,
    namespace: str,
    deployment: str,
    start: datetime,
    end: datetime,
    version: str | None = None,
) -> list[str]:
    chosen = [version] if version is not None else versions(store, namespace, deployment)
    out = []
    for v in chosen:
        out += files(store, layout.captures_prefix(namespace, deployment, v), start, end)
    return out


def label_files(
    store: Store, namespace: str, deployment: str, start: datetime, end: datetime
) -> list[str]:
    return files(store, layout.labels_prefix(namespace, deployment), start, end)


def read_file(store: Store, rel: str, columns: list[str] | None = None) -> pa.Table:
    with store.open(rel) as handle:
        return pq.read_table(handle, columns=columns)


def read_captures(
    store: Store,
    namespace: str,
    deployment: str,
    start: datetime,
    end: datetime,
    *,
    version: str | None = None,
    columns: list[str] | None = None,
) -> pa.Table:
    """Captured rows made from ``start`` up to (excluding) ``end``."""
    paths = capture_files(store, namespace, deployment, start, end, version)
    return _read(store, paths, start, end, columns)


def read_labels(
    store: Store, namespace: str, deployment: str, start: datetime, end: datetime
) -> pa.Table:
    """Label rows received from ``start`` up to (excluding) ``end``."""
    return _read(store, label_files(store, namespace, deployment, start, end), start, end, None)


def read_labelled(
    store: Store,
    namespace: str,
    deployment: str,
    start: datetime,
    end: datetime,
    *,
    version: str | None = None,
    label_delay: float = 86400.0,
) -> pd.DataFrame:
    """Captured rows made in the range that have a label (the first label of each row, received
    within ``label_delay`` seconds after the range), with the inputs as columns of their own.
    Rows whose inputs were not sampled have no inputs and are left out."""
    captures = read_captures(store, namespace, deployment, start, end, version=version)
    later = end + timedelta(seconds=label_delay)
    labels = read_labels(store, namespace, deployment, start, later)
    if captures.num_rows == 0 or labels.num_rows == 0:
        return pd.DataFrame()
    sampled = captures.filter(pc.is_valid(captures.column(layout.INPUTS)))
    inputs = sampled.column(layout.INPUTS).combine_chunks().flatten()
    names = [f.name for f in sampled.schema.field(layout.INPUTS).type]
    frame = sampled.drop_columns([layout.INPUTS, layout.PROBABILITIES]).to_pandas()
    for name, values in zip(names, inputs, strict=True):
        frame[name] = values.to_pandas()
    first = (
        labels.to_pandas()
        .sort_values(layout.TIME, kind="stable")
        .drop_duplicates([layout.REQUEST_ID, layout.ROW])
        .rename(columns={layout.TIME: "label_time", layout.POD: "label_pod"})
    )
    first = first[first[layout.LABEL].notna()]
    joined = frame.drop_duplicates([layout.REQUEST_ID, layout.ROW]).merge(
        first, on=[layout.REQUEST_ID, layout.ROW], how="inner"
    )
    return joined.reset_index(drop=True)


def _read(
    store: Store, paths: list[str], start: datetime, end: datetime, columns: list[str] | None
) -> pa.Table:
    tables = []
    for rel in paths:
        try:
            tables.append(read_file(store, rel, columns))
        except FileNotFoundError:
            continue  # deleted by retention meanwhile
    if not tables:
        return pa.table({})
    table = pa.concat_tables(tables, promote_options="permissive")
    if layout.TIME not in table.column_names:
        return table
    t = table.column(layout.TIME)
    lo = pa.scalar(start, layout.TIME_TYPE)
    hi = pa.scalar(end, layout.TIME_TYPE)
    return table.filter(pc.and_(pc.greater_equal(t, lo), pc.less(t, hi)))
