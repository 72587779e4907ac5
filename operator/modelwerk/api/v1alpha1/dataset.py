"""Dataset: where data lives, the contract it must meet, and its validated versions."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from modelwerk.api.base import (
    ApiModel,
    CrdMeta,
    ObjectName,
    PrinterColumn,
    Resource,
    name_rules,
    with_cel,
)
from modelwerk.api.v1alpha1.common import (
    ResourceRequirements,
    SecretReference,
    StatusBase,
    Uri,
)
from modelwerk.api.v1alpha1.dataset_production import (
    DatasetHistoryEntry,
    ProductionSource,
    Provenance,
)

BuiltinDataset = Literal["iris", "wine", "breast_cancer", "diabetes", "digits", "fairness-demo"]
ColumnType = Literal["integer", "float", "string", "boolean", "category"]
DatasetPhase = Literal["Pending", "Validating", "Ready", "Invalid", "Failed"]

SOURCE_KINDS: tuple[str, ...] = ("builtin", "uri", "sql", "production")
"""The fields of spec.source of which exactly one is set (one more source: one more name)."""
ONE_SOURCE_MESSAGE = (
    "set exactly one of "
    + ", ".join(f"source.{k}" for k in SOURCE_KINDS[:-1])
    + f" or source.{SOURCE_KINDS[-1]}"
)


def _count_set(fields: tuple[str, ...]) -> str:
    """A CEL expression counting which of ``fields`` are set."""
    return " + ".join(f"(has(self.{f}) ? 1 : 0)" for f in fields)


class SecretKeyReference(ApiModel):
    """One key of a Secret in the same namespace."""

    name: ObjectName
    """Name of the Secret."""
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """The key in the Secret whose value is used."""


class SqlSource(ApiModel):
    """A query whose result becomes the dataset, run read-only through SQLAlchemy."""

    query: str = Field(min_length=1, max_length=65536)
    """The SELECT to run; its result set (column names as selected, row order as returned:
    add an ORDER BY for a stable version) is validated like a file."""
    url_secret_ref: SecretKeyReference
    """The key of a Secret holding the SQLAlchemy connection URL, for example
    postgresql://user:password@host:5432/db (PostgreSQL through psycopg 3) or
    sqlite:////path/file.db. It reaches the pod as a secretKeyRef, never in the pod spec."""
    timeout_seconds: int = Field(default=300, ge=1, le=86400)
    """How long the query may run: PostgreSQL cancels it on the server (statement_timeout),
    SQLite interrupts it. Defaults to 300."""


class DatasetSource(ApiModel):
    """Exactly one of builtin, uri, sql or production."""

    builtin: BuiltinDataset | None = None
    """A dataset bundled with scikit-learn (no download): iris, wine, breast_cancer, diabetes or
    digits; or fairness-demo, generated hiring data with a deliberate proxy bias (label hired)."""
    uri: Uri | None = None
    """Location of a csv or parquet file: pvc://<claim>/<path> (on the artifact volume),
    s3://bucket/key (GCS too, through its S3 interoperability endpoint), https://host/path or
    file:///path (inside the pod)."""
    sql: SqlSource | None = None
    """A query against a PostgreSQL or SQLite database."""
    production: ProductionSource | None = None
    """Captured, labelled production rows of a Deployment (spec.monitoring.capture), optionally
    appended to a base Dataset."""
    format: Literal["auto", "csv", "parquet"] = "auto"
    """File format; auto decides by the file extension. Defaults to auto."""
    secret_ref: SecretReference | None = None
    """Credentials for the uri, exposed to the validation pod as environment variables."""

    model_config = with_cel(
        {
            "rule": f"{_count_set(SOURCE_KINDS)} == 1",
            "message": ONE_SOURCE_MESSAGE,
        }
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> DatasetSource:
        if sum(getattr(self, kind) is not None for kind in SOURCE_KINDS) != 1:
            raise ValueError(ONE_SOURCE_MESSAGE)
        return self

    @property
    def kind(self) -> str:
        """Which source is set: builtin, uri, sql or production."""
        return next(kind for kind in SOURCE_KINDS if getattr(self, kind) is not None)


class ColumnContract(ApiModel):
    """What one column must look like."""

    name: str = Field(min_length=1, max_length=256)
    """Column name as it appears in the data."""
    type: ColumnType
    """Logical type: integer, float, string, boolean or category."""
    nullable: bool = False
    """Whether missing values are allowed at all. Defaults to false."""
    max_missing_fraction: float | None = Field(default=None, ge=0, le=1)
    """Upper bound on the fraction of missing values when nullable (0 to 1)."""
    min: float | None = None
    """Smallest allowed value (numeric columns)."""
    max: float | None = None
    """Largest allowed value (numeric columns)."""
    allowed_values: list[str] | None = Field(default=None, max_length=1000)
    """The only values allowed (compared as strings)."""

    model_config = with_cel(
        *[
            {
                "rule": "!has(self.min) || !has(self.max) || self.min <= self.max",
                "message": "min must not exceed max",
            }
        ]
    )

    @model_validator(mode="after")
    def _bounds(self) -> ColumnContract:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class DataContract(ApiModel):
    """The declared schema of the data; when absent, the inferred schema is recorded in status."""

    columns: list[ColumnContract] = Field(
        default_factory=list,
        max_length=1000,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """Required columns with their rules."""
    min_rows: int | None = Field(default=None, ge=1)
    """Fewest rows the data may have."""
    allow_extra_columns: bool = True
    """Whether columns not listed are allowed. Defaults to true."""


class DatasetSpec(ApiModel):
    """Desired state of a Dataset."""

    source: DatasetSource
    """Where the data lives."""
    target: str | None = Field(default=None, min_length=1, max_length=256)
    """The label column; builtin datasets name it target. Required for training."""
    contract: DataContract | None = Field(default=None, alias="schema")
    """The data contract checked by the validation Job."""
    refresh_interval_seconds: int | None = Field(default=None, ge=60)
    """Re-read the source this often and publish a new version when its content changed
    (identical content keeps its version). Production sources default to 3600."""
    resources: ResourceRequirements | None = None
    """Resources of the validation pod."""
    active_deadline_seconds: int = Field(default=900, ge=10, le=86400)
    """How long validation may run before it fails. Defaults to 900."""

    model_config = with_cel(
        {
            "rule": "!has(self.source.production) || has(self.target)",
            "message": "a production source needs spec.target: the column its labels fill",
        }
    )

    @model_validator(mode="after")
    def _labels_need_a_column(self) -> DatasetSpec:
        if self.source.production is not None and self.target is None:
            raise ValueError("a production source needs spec.target: the column its labels fill")
        return self


class Violation(ApiModel):
    """One broken rule of the data contract."""

    column: str | None = None
    """The column concerned, if any."""
    rule: str
    """The rule: missingColumn, extraColumn, type, min, max, allowedValues, nullable,
    maxMissingFraction, minRows, target."""
    observed: str | None = Field(default=None, max_length=1024)
    """What was found, for example the smallest value or the offending type."""
    count: int | None = Field(default=None, ge=0)
    """How many values broke the rule."""
    message: str = Field(default="", max_length=2048)
    """The violation in words."""


class InferredColumn(ApiModel):
    """A column as the validator found it."""

    name: str
    """Column name."""
    type: ColumnType
    """Logical type detected."""
    missing: int = 0
    """Number of missing values."""


HISTORY_LIMIT = 20


class DatasetStatus(StatusBase):
    """Observed state of a Dataset."""

    phase: DatasetPhase | None = None
    """Pending, Validating, Ready, Invalid or Failed."""
    version: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    """Content hash of the canonical snapshot: the same data always has the same version."""
    short_version: str | None = None
    """The first 12 hex digits of version, for display."""
    rows: int | None = None
    """Number of rows in the validated snapshot."""
    columns: int | None = None
    """Number of columns in the validated snapshot."""
    snapshot_uri: str | None = None
    """Where the canonical snapshot of this version is stored."""
    profile_uri: str | None = None
    """Where the reference profile (per-feature distributions for drift) is stored."""
    inferred_schema: list[InferredColumn] | None = Field(default=None, max_length=1000)
    """The schema found in the data."""
    violations: list[Violation] | None = Field(default=None, max_length=100)
    """Broken rules of the contract, when Invalid (at most 100 are listed)."""
    validation_job: str | None = None
    """Name of the most recent validation Job."""
    last_validated_time: datetime | None = None
    """When the data was last validated."""
    provenance: Provenance | None = None
    """Where the rows of this version came from (production sources)."""
    history: list[DatasetHistoryEntry] | None = Field(default=None, max_length=HISTORY_LIMIT)
    """The versions published, newest first (at most 20); a TrainingJob can pin any of them
    with spec.datasetRef.version."""


class Dataset(Resource):
    """A versioned, validated dataset."""

    crd: ClassVar[CrdMeta] = CrdMeta(
        kind="Dataset",
        plural="datasets",
        singular="dataset",
        short_names=("dset",),
        extra_validations=name_rules(),
        printer_columns=(
            PrinterColumn("Phase", ".status.phase"),
            PrinterColumn("Version", ".status.shortVersion"),
            PrinterColumn("Rows", ".status.rows", "integer"),
            PrinterColumn("Columns", ".status.columns", "integer", priority=1),
            PrinterColumn("Source", ".spec.source.uri", priority=1),
            PrinterColumn("Deployment", ".spec.source.production.deployment", priority=1),
            PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
        ),
    )

    spec: DatasetSpec
    status: DatasetStatus = Field(default_factory=DatasetStatus)
