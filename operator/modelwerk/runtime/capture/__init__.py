"""Production data: inference capture, labels, and their join.

Serving pods write every prediction (and a sample of the inputs) and every label they are
sent to the artifact store as Parquet, through :class:`PartitionedWriter`; the aggregator
(``modelwerk monitor``) joins them with :class:`JoinState`. The layout (:mod:`.layout`) is
the contract for everyone who reads the data::

    <root>/captures/<namespace>/<deployment>/<version>/date=YYYY-MM-DD/hour=HH/*.parquet
    <root>/labels/<namespace>/<deployment>/date=YYYY-MM-DD/hour=HH/*.parquet

joined on ``request_id`` + ``row``. :mod:`.reader` reads a time range back, e.g.
``read_labelled(Store("s3://bucket/prefix"), "ml", "iris", start, end)``.
"""

from modelwerk.runtime.capture.figures import LabelCounts, PairedFigures, VersionFigures
from modelwerk.runtime.capture.join import JoinState
from modelwerk.runtime.capture.reader import (
    read_captures,
    read_labelled,
    read_labels,
    versions,
)
from modelwerk.runtime.capture.records import (
    LabelBatch,
    PredictionBatch,
    PredictionEncoder,
    encode_labels,
)
from modelwerk.runtime.capture.store import Store
from modelwerk.runtime.capture.writer import Observer, PartitionedWriter

__all__ = [
    "JoinState",
    "LabelBatch",
    "LabelCounts",
    "Observer",
    "PairedFigures",
    "PartitionedWriter",
    "PredictionBatch",
    "PredictionEncoder",
    "Store",
    "VersionFigures",
    "encode_labels",
    "read_captures",
    "read_labelled",
    "read_labels",
    "versions",
]
