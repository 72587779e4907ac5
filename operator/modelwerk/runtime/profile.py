"""The reference profile of a dataset version: what "normal" inputs look like, for drift.

Numeric features keep quantile bin edges with the reference fraction per bin (for PSI) and a
bounded sample (for the two-sample Kolmogorov-Smirnov test); categorical features keep value
frequencies. The validator writes it once per dataset version; the server reads it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

PROFILE_SAMPLE_LIMIT = 1000


class _Contract(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


class NumericProfile(_Contract):
    kind: Literal["numeric"] = "numeric"
    count: int
    missing: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    bin_edges: list[float] = Field(alias="binEdges")
    """Interior quantile edges; bin i holds values in (edges[i-1], edges[i]], open at both ends."""
    bin_fractions: list[float] = Field(alias="binFractions")
    """Reference fraction per bin; ``len(bin_edges) + 1`` entries summing to 1."""
    sample: list[float] = Field(max_length=PROFILE_SAMPLE_LIMIT)


class CategoricalProfile(_Contract):
    kind: Literal["categorical"] = "categorical"
    count: int
    missing: int
    frequencies: dict[str, float]
    """Reference fraction per value (values as strings)."""


FeatureProfile = Annotated[NumericProfile | CategoricalProfile, Field(discriminator="kind")]


class Profile(_Contract):
    schema_version: Literal[1] = Field(default=1, alias="schemaVersion")
    dataset: str
    version: str
    rows: int
    target: str | None = None
    features: dict[str, FeatureProfile]
