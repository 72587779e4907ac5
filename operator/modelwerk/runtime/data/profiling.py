"""Building the reference :class:`~modelwerk.runtime.profile.Profile` of a dataset version.

Every column is profiled, the target included: the server compares live inputs against the
feature entries and can use the target's entry for the prediction distribution. Numeric columns
(integer and float, not boolean) get 10 quantile bins, so each bin holds about a tenth of the
reference data (the usual PSI set-up), plus a sample of at most 1000 values drawn with a fixed
seed (for the Kolmogorov-Smirnov test); the same data therefore always yields the same profile.
Everything else is categorical: value frequencies, the most frequent 1000 values kept and the
rest summed under ``OTHER``, so an id-like column cannot blow up the profile.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from modelwerk.runtime.data.contract import as_text
from modelwerk.runtime.profile import (
    PROFILE_SAMPLE_LIMIT,
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    Profile,
)

BINS = 10
SAMPLE_SEED = 0
MAX_CATEGORIES = 1000
OTHER = "__other__"


def build_profile(frame: pd.DataFrame, dataset: str, version: str, target: str | None) -> Profile:
    features = {str(name): profile_column(frame[name]) for name in frame.columns}
    return Profile(
        dataset=dataset,
        version=version,
        rows=len(frame),
        target=target if target in frame.columns else None,
        features=features,
    )


def profile_column(series: pd.Series) -> FeatureProfile:
    dtype = series.dtype
    numeric = ptypes.is_numeric_dtype(dtype) and not ptypes.is_bool_dtype(dtype)
    if numeric and not isinstance(dtype, pd.CategoricalDtype):
        return _numeric(series)
    return _categorical(series)


def _numeric(series: pd.Series) -> NumericProfile:
    values = series.to_numpy(dtype=float, na_value=np.nan)
    # Infinities count as missing: they have no quantile and would poison mean and std.
    finite = values[np.isfinite(values)]
    missing = len(values) - len(finite)
    if len(finite) == 0:
        # One open bin holding everything: live values then never look like drift.
        return NumericProfile(
            count=0, missing=missing, mean=None, std=None, min=None, max=None,
            bin_edges=[], bin_fractions=[1.0], sample=[],
        )  # fmt: skip
    quantiles = np.quantile(finite, np.linspace(0, 1, BINS + 1)[1:-1])
    edges = np.unique(quantiles)  # discrete data repeats quantiles; bins must not be empty twice
    # searchsorted(side="left") gives i with edges[i-1] < v <= edges[i]: the bins of Profile.
    counts = np.bincount(np.searchsorted(edges, finite, side="left"), minlength=len(edges) + 1)
    fractions = counts / len(finite)
    rng = np.random.default_rng(SAMPLE_SEED)
    if len(finite) > PROFILE_SAMPLE_LIMIT:
        sample = rng.choice(finite, size=PROFILE_SAMPLE_LIMIT, replace=False)
    else:
        sample = finite
    return NumericProfile(
        count=len(finite),
        missing=missing,
        mean=float(finite.mean()),
        std=float(finite.std(ddof=1)) if len(finite) > 1 else None,
        min=float(finite.min()),
        max=float(finite.max()),
        bin_edges=[float(e) for e in edges],
        bin_fractions=[float(f) for f in fractions],
        sample=[float(v) for v in np.sort(sample)],
    )


def _categorical(series: pd.Series) -> CategoricalProfile:
    present = series.dropna()
    texts = present.astype(object).map(as_text)
    counts = texts.value_counts(sort=True)
    # Ties in value_counts keep first-seen order; sort by (-count, value) for a stable profile.
    ordered = sorted(counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
    total = len(present)
    frequencies = {str(k): int(v) / total for k, v in ordered[:MAX_CATEGORIES]}
    rest = sum(int(v) for _, v in ordered[MAX_CATEGORIES:])
    if rest:
        frequencies[OTHER] = rest / total
    return CategoricalProfile(count=total, missing=len(series) - total, frequencies=frequencies)
