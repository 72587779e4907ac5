"""Where production data lives in the artifact store, and the columns of its files.

::

    <root>/captures/<namespace>/<deployment>/<version>/date=YYYY-MM-DD/hour=HH/<file>.parquet
    <root>/labels/<namespace>/<deployment>/date=YYYY-MM-DD/hour=HH/<file>.parquet

``<file>`` is ``<pod>-<pid>-<boot>-<seq>``: the pod and process that wrote it, a random token
drawn when the process started (pids repeat after a container restart; the token does not, so
a restarted process never overwrites a file of its predecessor) and a sequence number. The
date and hour are UTC, of the time in the rows (the prediction, the label's arrival), so a
late write after a store outage still lands in the hour its rows belong to.

Q: Why Hive-style ``date=``/``hour=`` directories?
A: pyarrow, pandas, DuckDB and Spark read them as partition columns and prune on them: a
   time range of one version reads only the hours it covers, and lists nothing else.

Q: Why are names encoded?
A: Every directory name comes from a name (namespace, Deployment, ModelVersion, pod) rather
   than from a client, but the server also runs outside Kubernetes, where they are whatever
   it is told. :func:`component` maps any string to one safe path segment, injectively:
   nothing can climb out of its Deployment's prefix, look like a partition (``=``) or be
   hidden from readers (a leading ``.`` or ``_``). Request ids, labels and other values a
   client sends are only ever column values.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa

CAPTURES = "captures"
LABELS = "labels"
SUFFIX = ".parquet"
MAX_COMPONENT = 200
"""Longest encoded path segment (object stores allow 1,024 bytes per key; filesystems 255)."""

_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")

# ------------------------------------------------------------------ columns
REQUEST_ID = "request_id"
ROW = "row"
TIME = "time"
MODEL = "model"
VERSION = "version"
TRACK = "track"
POD = "pod"
ARM = "arm"
UNIT = "unit"
PREDICTION = "prediction"
PROBABILITIES = "probabilities"
INPUTS = "inputs"
LABEL = "label"
REWARD = "reward"

TIME_TYPE = pa.timestamp("ms", tz="UTC")


def prediction_type(task: str) -> pa.DataType:
    """Classes are stored as text (``"1"``, ``"setosa"``): labels arrive as JSON, and text
    compares the same whatever type a client used; regression values are float64."""
    return pa.float64() if task == "regression" else pa.string()


def capture_schema(task: str, inputs: list[tuple[str, pa.DataType]]) -> pa.Schema:
    """One row per predicted row. ``inputs`` is null for rows whose request was not sampled;
    ``probabilities`` maps each class (as text) to its probability, null when not captured;
    ``arm`` and ``unit`` name an experiment's arm and the unit (user, session) assigned to it,
    null outside experiments."""
    fields = [
        pa.field(REQUEST_ID, pa.string(), nullable=False),
        pa.field(ROW, pa.int32(), nullable=False),
        pa.field(TIME, TIME_TYPE, nullable=False),
        pa.field(MODEL, pa.string()),
        pa.field(VERSION, pa.string()),
        pa.field(TRACK, pa.string()),
        pa.field(POD, pa.string()),
        pa.field(ARM, pa.string()),
        pa.field(UNIT, pa.string()),
        pa.field(PREDICTION, prediction_type(task)),
        pa.field(PROBABILITIES, pa.map_(pa.string(), pa.float64())),
        pa.field(INPUTS, pa.struct([pa.field(name, kind) for name, kind in inputs])),
    ]
    return pa.schema(fields)


def label_schema(task: str) -> pa.Schema:
    """One row per labelled row: the label (null when only a reward came) and the reward."""
    return pa.schema(
        [
            pa.field(REQUEST_ID, pa.string(), nullable=False),
            pa.field(ROW, pa.int32(), nullable=False),
            pa.field(TIME, TIME_TYPE, nullable=False),
            pa.field(LABEL, prediction_type(task)),
            pa.field(REWARD, pa.float64()),
            pa.field(POD, pa.string()),
        ]
    )


# ------------------------------------------------------------------ paths
def component(name: str) -> str:
    """``name`` as one path segment: plain names stay as they are, anything else is
    percent-encoded (``%`` included, so two names never share a segment).

    >>> component("iris-classifier-v2")
    'iris-classifier-v2'
    >>> component("../../etc")
    '%2E.%2F..%2Fetc'
    >>> component("date=2024-01-01")
    'date%3D2024-01-01'
    """
    if not name:
        raise ValueError("an empty name cannot be a path segment")
    if _PLAIN.fullmatch(name):
        encoded = name
    else:
        encoded = "".join(
            c if c in _SAFE and not (i == 0 and c in "._") else _percent(c)
            for i, c in enumerate(name)
        )
    if len(encoded) > MAX_COMPONENT:
        raise ValueError(f"name {name[:40]!r}… is too long for a path segment")
    return encoded


def _percent(char: str) -> str:
    return "".join(f"%{b:02X}" for b in char.encode("utf-8"))


def deployment_prefix(stream: str, namespace: str, deployment: str) -> str:
    """``captures/<namespace>/<deployment>`` or ``labels/<namespace>/<deployment>``, relative
    to the store's root."""
    if stream not in (CAPTURES, LABELS):
        raise ValueError(f"unknown stream {stream!r}")
    return f"{stream}/{component(namespace)}/{component(deployment)}"


def captures_prefix(namespace: str, deployment: str, version: str) -> str:
    return f"{deployment_prefix(CAPTURES, namespace, deployment)}/{component(version)}"


def labels_prefix(namespace: str, deployment: str) -> str:
    return deployment_prefix(LABELS, namespace, deployment)


def hour_of(t: datetime | float) -> datetime:
    """The UTC hour that holds ``t`` (a datetime or seconds since the epoch)."""
    when = datetime.fromtimestamp(t, UTC) if isinstance(t, int | float) else t.astimezone(UTC)
    return when.replace(minute=0, second=0, microsecond=0)


def partition(hour: datetime) -> str:
    """``date=YYYY-MM-DD/hour=HH`` of an hour.

    >>> partition(datetime(2024, 3, 9, 7, tzinfo=UTC))
    'date=2024-03-09/hour=07'
    """
    return f"date={hour:%Y-%m-%d}/hour={hour:%H}"


def parse_partition(path: str) -> datetime | None:
    """The hour a path's ``date=…/hour=…`` names, or None when it names none."""
    match = re.search(r"date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})(/|$)", path)
    if match is None:
        return None
    try:
        day = datetime.strptime(match.group(1), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    hour = int(match.group(2))
    return day + timedelta(hours=hour) if hour < 24 else None


def hours(start: datetime | float, end: datetime | float) -> Iterator[datetime]:
    """Every UTC hour from the one holding ``start`` to the one holding ``end``."""
    hour, last = hour_of(start), hour_of(end)
    while hour <= last:
        yield hour
        hour += timedelta(hours=1)


def file_name(pod: str, pid: int, boot: str, seq: int) -> str:
    """``<pod>-<pid>-<boot>-<seq>.parquet``; readers skip names starting with ``.``/``_``,
    which is where files being written live until they are complete."""
    return f"{component(pod)}-{pid}-{boot}-{seq:08d}{SUFFIX}"
