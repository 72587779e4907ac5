"""Generated builtin datasets: the same rows from the same code, on every machine, offline.

``fairness-demo`` — hiring decisions with a deliberate, documented bias (``builtin:
fairness-demo``; ``python -m modelwerk.runtime.data.synthetic`` writes it as csv).

4,000 applicants. ``gender`` (female/male, half each) is the sensitive attribute. The merit
features — ``skill_score``, ``years_experience``, ``education`` — and the irrelevant
``commute_km`` are drawn the same way for everybody. ``district`` (north/south) is the proxy:
80 % of women live in the south, 80 % of men in the north, and it says nothing about merit.

The label ``hired`` (1/0) comes from *historical* decisions that were biased: the odds of
being hired rise with skill, experience and education, and fall by a factor e^1.6 ≈ 5 for
women. A model trained without ``gender`` but with ``district`` learns the bias through the
proxy and hires women at a far lower rate; without ``district`` it can only use merit, which
is distributed the same in both groups, and hires both at about the same rate. (Training on
biased labels still reproduces some of their history: merit explains part of the gap only,
which is why the holdout accuracy of the fair model is lower.)
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

FAIRNESS_DEMO = "fairness-demo"
FAIRNESS_DEMO_TARGET = "hired"
ROWS = 4000
SEED = 20240611
PROXY_SHARE = 0.8
"""Share of each gender living in "its" district."""
BIAS = 1.6
"""Log-odds penalty of being a woman in the historical decisions."""
_EDUCATION = ("school", "bachelor", "master", "phd")
_EDUCATION_P = (0.35, 0.4, 0.2, 0.05)
_EDUCATION_EFFECT = {"school": 0.0, "bachelor": 0.5, "master": 0.9, "phd": 1.2}


def fairness_demo(rows: int = ROWS, seed: int = SEED) -> pd.DataFrame:
    """The hiring dataset described in the module docstring; floats rounded to one decimal so
    the content (and so the Dataset version) does not depend on the last bits of a float."""
    rng = np.random.default_rng(seed)
    female = rng.random(rows) < 0.5
    in_own_district = rng.random(rows) < PROXY_SHARE
    south = np.where(female, in_own_district, ~in_own_district)
    skill = np.clip(rng.normal(60, 12, rows), 0, 100).round(1)
    years = np.clip(rng.gamma(2.0, 3.0, rows), 0, 40).round(1)
    education = rng.choice(_EDUCATION, size=rows, p=_EDUCATION_P)
    commute = np.clip(rng.normal(15, 8, rows), 0.5, 80).round(1)
    merit = (
        0.09 * (skill - 60)
        + 0.12 * (years - 6)
        + np.vectorize(_EDUCATION_EFFECT.get)(education)
        - 0.5
    )
    logit = merit - BIAS * female + 0.6
    hired = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame(
        {
            "gender": np.where(female, "female", "male"),
            "district": np.where(south, "south", "north"),
            "skill_score": skill,
            "years_experience": years,
            "education": education,
            "commute_km": commute,
            FAIRNESS_DEMO_TARGET: hired,
        }
    )


GENERATED = {FAIRNESS_DEMO: fairness_demo}


if __name__ == "__main__":
    fairness_demo().to_csv(sys.argv[1] if len(sys.argv) > 1 else sys.stdout, index=False)
