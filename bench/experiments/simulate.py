"""The figures of the README's "A/B experiments": the statistics' error rates and power, by
seeded simulation through the real decision function, and the sample-size table.

Runs the scenarios of tests/unit/statistics/test_simulation.py (which asserts on them) and a
few more, and contrasts the always-valid test with what a fixed-horizon z-test does when it is
looked at after every batch. Not a timing benchmark: the figures do not depend on the machine.

    .venv/bin/python -m bench.experiments.simulate [--experiments 1000]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from tests.unit.statistics import test_simulation as sim

from modelwerk.statistics.distributions import normal_quantile
from modelwerk.statistics.sample_size import (
    binary_variances,
    fixed_sample_size,
    sequential_sample_size,
)


def naive_z(data: sim.Data, alpha: float, *, every_look: bool, min_sample: int = 150) -> float:
    """Share of experiments a two-sided unpooled z-test at ``alpha`` declares significant,
    peeked at after every batch (once the minimum sample is reached) or only at the end."""
    n_a, n_b = data.units_a.astype(float), data.units_b.astype(float)
    p_a, p_b = data.sum_a / n_a, data.sum_b / n_b
    se = np.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(p_b - p_a) / se
    hit = (z > normal_quantile(1 - alpha / 2)) & (np.minimum(n_a, n_b) >= min_sample)
    return float(hit.any(axis=1).mean() if every_look else hit[:, -1].mean())


def stopping(outcomes: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1%}" for k, v in sorted(outcomes.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experiments", type=int, default=sim.EXPERIMENTS)
    args = parser.parse_args()
    sim.EXPERIMENTS = args.experiments
    se = math.sqrt(sim.ALPHA * (1 - sim.ALPHA) / args.experiments)
    print(f"{args.experiments} experiments per scenario, alpha {sim.ALPHA}, simulation SE {se:.4f}")

    print("\n| scenario | looks | outcome shares (always-valid) | z-test peeked | z-test once |")
    print("|---|---:|---|---:|---:|")
    rng = np.random.default_rng(20250101)
    data = sim.binary(rng, 0.8, 0.8, (50, 50), 40)
    out = sim.run(data, kind="binary", tau=0.05)
    print(
        f"| A/A accuracy 80 %, 50/50, 50 units per arm per look | 40 | {stopping(out)} | "
        f"{naive_z(data, sim.ALPHA, every_look=True):.1%} | "
        f"{naive_z(data, sim.ALPHA, every_look=False):.1%} |"
    )
    data = sim.binary(np.random.default_rng(20250102), 0.9, 0.9, (80, 20), 60)
    out = sim.run(data, kind="binary", tau=0.03, share_b=0.2)
    print(
        f"| A/A accuracy 90 %, 80/20, 100 units per look | 60 | {stopping(out)} | "
        f"{naive_z(data, sim.ALPHA, every_look=True):.1%} | "
        f"{naive_z(data, sim.ALPHA, every_look=False):.1%} |"
    )

    def lognormal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.lognormal(0.0, 1.0, shape)

    data = sim.continuous(np.random.default_rng(20250103), lognormal, 40, 40)
    out = sim.run(data, kind="continuous", tau=0.15)
    print(f"| A/A revenue (lognormal, sigma 1), 40 per arm per look | 40 | {stopping(out)} | | |")

    va, vb = binary_variances(0.80, 0.05)
    size = sequential_sample_size(0.05, va, vb)
    looks = math.ceil(size.a / 50)
    data = sim.binary(np.random.default_rng(20250104), 0.80, 0.85, (50, 50), looks)
    out = sim.run(data, kind="binary", tau=0.05)
    print(
        f"| 80 % vs 85 %, stop at the recommended {size.a} per arm | {looks} | {stopping(out)} | "
        f"{naive_z(data, sim.ALPHA, every_look=True):.1%} | "
        f"{naive_z(data, sim.ALPHA, every_look=False):.1%} |"
    )
    for true_share in (0.47, 0.49, 0.5):
        rng = np.random.default_rng(20250105)
        to_b = rng.binomial(250, true_share, (args.experiments, 40)).cumsum(axis=1)
        total = np.full((args.experiments, 40), 250).cumsum(axis=1)
        data = sim.binary(rng, 1.0, 1.0, (125, 125), 40)  # only SRM can stop it
        out = sim.run(data, kind="binary", tau=0.05, units=(total - to_b, to_b))
        print(
            f"| SRM: configured 50/50, really {1 - true_share:.0%}/{true_share:.0%}, "
            f"250 units per look | 40 | {stopping(out)} | | |"
        )

    print("\nUnits per arm (50/50, alpha 0.05, power 0.8): always-valid (fixed-horizon)")
    effects = (0.01, 0.02, 0.05, 0.10)
    print("\n| accuracy of A | " + " | ".join(f"+{e:.0%}" for e in effects) + " |")
    print("|---|" + "---:|" * len(effects))
    for baseline in (0.5, 0.7, 0.8, 0.9, 0.95):
        cells = []
        for effect in effects:
            if baseline + effect >= 1:
                cells.append("n/a")
                continue
            va, vb = binary_variances(baseline, effect)
            seq, fixed = sequential_sample_size(effect, va, vb), fixed_sample_size(effect, va, vb)
            cells.append(f"{seq.a:,} ({fixed.a:,})")
        print(f"| {baseline:.0%} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
