"""Paired outcomes: labels that scored two versions' captures of the same row.

A shadow captures each copied request in the stable version and in the candidate under the
same request id; the join scores a label against both. Which of the two was right, row by row,
is McNemar's table (``statistics.agreement.mcnemar`` uses its two discordant cells).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from modelwerk.runtime.capture.figures import PairedFigures


def paired(keys: np.ndarray, versions: np.ndarray, correct: np.ndarray) -> list[PairedFigures]:
    """For each two versions (in name order) the rows ``keys`` both scored, by who was right.
    ``keys`` identify a labelled row, ``versions`` the version scored, ``correct`` the result.

    >>> keys = np.array([1, 1, 2, 2, 3], dtype=np.uint64)
    >>> versions = np.array(["v2", "v1", "v1", "v2", "v1"], dtype=object)
    >>> [(p.first, p.second, p.both_right, p.first_only, p.second_only)
    ...  for p in paired(keys, versions, np.array([True, True, False, True, True]))]
    [('v1', 'v2', 1, 0, 1)]
    """
    if len(set(versions.tolist())) < 2:  # the usual case: nothing to pair, nothing to pivot
        return []
    frame = pd.DataFrame(
        {"key": keys.astype(np.uint64), "version": versions, "correct": correct.astype(bool)}
    ).drop_duplicates(["key", "version"])
    table = frame.pivot(index="key", columns="version", values="correct")
    names = sorted(table.columns)
    out = []
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            both = table[[first, second]].dropna()
            if both.empty:
                continue
            x = both[first].astype(bool).to_numpy()
            y = both[second].astype(bool).to_numpy()
            out.append(
                PairedFigures(
                    first=first,
                    second=second,
                    both_right=int((x & y).sum()),
                    first_only=int((x & ~y).sum()),
                    second_only=int((~x & y).sum()),
                    both_wrong=int((~x & ~y).sum()),
                )
            )
    return out
