"""The join of labels with captured predictions: order, duplicates, expiry, figures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from modelwerk.runtime.capture import layout
from modelwerk.runtime.capture.join import JoinState

T = 1_750_000_000.0


def captures(
    ids: list[str],
    predictions: list[object],
    *,
    version: str = "v1",
    t: float = T,
    rows: list[int] | None = None,
    arm: str | None = None,
) -> pa.Table:
    regression = any(isinstance(p, float) for p in predictions)
    return pa.table(
        {
            layout.REQUEST_ID: ids,
            layout.ROW: pa.array(rows or [0] * len(ids), pa.int32()),
            layout.TIME: pa.array([int(t * 1000)] * len(ids), pa.int64()).cast(layout.TIME_TYPE),
            layout.VERSION: [version] * len(ids),
            layout.ARM: pa.array([arm] * len(ids), pa.string()),
            layout.PREDICTION: pa.array(predictions, pa.float64() if regression else pa.string()),
        }
    )


def labels(
    ids: list[str],
    values: list[object],
    *,
    t: float = T,
    rows: list[int] | None = None,
    rewards: list[float | None] | None = None,
) -> pa.Table:
    regression = any(isinstance(v, float) for v in values)
    return pa.table(
        {
            layout.REQUEST_ID: ids,
            layout.ROW: pa.array(rows or [0] * len(ids), pa.int32()),
            layout.TIME: pa.array([int(t * 1000)] * len(ids), pa.int64()).cast(layout.TIME_TYPE),
            layout.LABEL: pa.array(values, pa.float64() if regression else pa.string()),
            layout.REWARD: pa.array(rewards or [None] * len(ids), pa.float64()),
        }
    )


def state(**kwargs: float) -> JoinState:
    settings = {"window_seconds": 3600, "horizon_seconds": 3600, "grace_seconds": 60}
    settings.update(kwargs)
    return JoinState(**settings)  # type: ignore[arg-type]


def test_labels_join_predictions_in_either_order() -> None:
    early, late = state(), state()
    preds = captures(["a", "b", "c", "d"], ["1", "0", "2", "1"])
    truth = labels(["a", "b", "c", "d"], ["1", "1", "2", "0"])
    early.add_labels(truth, now=T)  # labels before the capture file appears
    early.add_predictions(preds)
    late.add_predictions(preds)
    late.add_labels(truth, now=T)
    for s in (early, late):
        figures, counts = s.figures(T + 1)
        assert [(f.version, f.matched, f.correct, f.accuracy) for f in figures] == [
            ("v1", 4, 2, 0.5)
        ]
        assert counts.matched == 4 and counts.unmatched == counts.pending == 0


def test_a_label_waits_for_its_prediction_only_for_the_grace_period() -> None:
    s = state(grace_seconds=60)
    s.add_labels(labels(["x", "y"], ["1", "0"]), now=T)
    s.advance(T + 30)
    assert s.figures(T + 30)[1].pending == 2
    s.add_predictions(captures(["x"], ["1"]))
    s.advance(T + 61)
    _figures, counts = s.figures(T + 61)
    assert counts.matched == 1 and counts.unmatched == 1 and counts.pending == 0
    # The prediction for "y" arriving after the grace period finds no label any more.
    s.add_predictions(captures(["y"], ["0"]))
    assert s.figures(T + 62)[1].matched == 1


def test_duplicates_count_once() -> None:
    s = state()
    s.add_predictions(captures(["a", "b"], ["1", "1"]))
    s.add_labels(labels(["a", "a"], ["1", "0"]), now=T)  # twice in one batch: the first wins
    s.add_labels(labels(["a", "b"], ["0", "1"]), now=T)  # "a" again later
    figures, counts = s.figures(T)
    assert figures[0].matched == 2 and figures[0].correct == 2
    assert counts.duplicates == 2 and counts.matched == 2
    pending = state()
    pending.add_labels(labels(["z"], ["1"]), now=T)
    pending.add_labels(labels(["z"], ["0"]), now=T)  # while the first still waits
    pending.add_predictions(captures(["z"], ["1"]))
    figures, counts = pending.figures(T)
    assert figures[0].correct == 1 and counts.duplicates == 1


def test_a_request_id_captured_twice_joins_its_earliest_capture() -> None:
    s = state()
    s.add_predictions(captures(["reused"], ["1"], t=T))
    s.add_predictions(captures(["reused"], ["2"], t=T + 5))
    s.add_labels(labels(["reused"], ["1"], t=T + 10), now=T + 10)
    assert s.figures(T + 10)[0][0].correct == 1


def test_rows_of_one_request_are_joined_separately() -> None:
    s = state()
    s.add_predictions(captures(["r", "r", "r"], ["0", "1", "2"], rows=[0, 1, 2]))
    s.add_labels(labels(["r"], ["2"], rows=[2]), now=T)
    s.add_labels(labels(["r"], ["0"], rows=[1]), now=T)
    (figure,), counts = s.figures(T)
    assert figure.matched == 2 and figure.correct == 1 and counts.duplicates == 0


def test_predictions_older_than_the_horizon_leave_their_labels_unmatched() -> None:
    s = state(horizon_seconds=600, grace_seconds=10)
    s.add_predictions(captures(["old"], ["1"], t=T))
    s.advance(T + 601)
    s.add_labels(labels(["old"], ["1"], t=T + 601), now=T + 601)
    s.advance(T + 612)
    figures, counts = s.figures(T + 612)
    assert figures == [] and counts.unmatched == 1


def test_the_window_covers_labels_by_their_time() -> None:
    s = state(window_seconds=600, horizon_seconds=7200)
    s.add_predictions(captures(["a", "b"], ["1", "1"], t=T))
    s.add_labels(labels(["a"], ["1"], t=T), now=T)
    s.add_labels(labels(["b"], ["0"], t=T + 500), now=T + 500)
    assert s.figures(T + 550)[0][0].matched == 2
    s.advance(T + 700)
    (figure,), counts = s.figures(T + 700)
    assert figure.matched == 1 and figure.accuracy == 0.0 and counts.matched == 1


def test_regression_figures_and_rewards_per_version_and_arm() -> None:
    s = state()
    s.add_predictions(captures(["a", "b"], [1.0, 3.0], version="v1", arm="A"))
    s.add_predictions(captures(["c"], [10.0], version="v2", arm="B"))
    s.add_labels(labels(["a", "b", "c"], [2.0, 1.0, 10.0], rewards=[1.0, None, 5.0]), now=T)
    s.add_labels(labels(["z"], [None], rewards=[3.0]), now=T)  # a reward for an unknown id
    figures, counts = s.figures(T)
    by = {(f.version, f.arm): f for f in figures}
    a, b = by[("v1", "A")], by[("v2", "B")]
    assert a.matched == 2 and a.mae == pytest.approx(1.5)
    assert a.rmse == pytest.approx(math.sqrt((1 + 4) / 2))
    assert a.rewards == 1 and a.mean_reward == 1.0 and a.accuracy is None
    assert b.mae == 0.0 and b.mean_reward == 5.0
    assert counts.pending == 1


def test_reward_only_labels_join_without_counting_as_labelled() -> None:
    s = state()
    s.add_predictions(captures(["a"], ["1"]))
    s.add_labels(labels(["a"], [None], rewards=[2.5]), now=T)
    (figure,), counts = s.figures(T)
    assert figure.matched == 0 and figure.rewards == 1 and figure.accuracy is None
    assert counts.matched == 1


def test_the_state_keeps_at_most_max_rows_predictions() -> None:
    s = JoinState(window_seconds=3600, horizon_seconds=3600, grace_seconds=1, max_rows=1000)
    for i in range(5):
        ids = [f"{i}-{j}" for j in range(400)]
        s.add_predictions(captures(ids, ["1"] * 400, t=T + i))
    assert s.rows <= 1000 and s.forgotten_rows >= 1000
    s.add_labels(labels(["0-1", "4-1"], ["1", "1"]), now=T + 10)
    s.advance(T + 12)
    assert s.figures(T + 12)[1].matched == 1 and s.figures(T + 12)[1].unmatched == 1


def test_large_random_join_matches_a_direct_computation() -> None:
    """A seeded simulation: 20,000 predictions from 8 writers arriving in random order, labels
    for 60 % of them in random batches, some before their predictions, 3 % duplicated."""
    rng = np.random.default_rng(7)
    n = 20_000
    ids = np.array([f"{rng.integers(1 << 62):x}-{i}" for i in range(n)], dtype=object)
    pred = rng.integers(0, 3, n).astype(str)
    truth = np.where(rng.random(n) < 0.8, pred, rng.integers(0, 3, n).astype(str))
    labelled = rng.random(n) < 0.6
    s = state()
    capture_parts = np.array_split(rng.permutation(n), 40)
    label_idx = rng.permutation(np.flatnonzero(labelled))
    label_idx = np.concatenate([label_idx, rng.choice(label_idx, len(label_idx) // 33)])
    label_parts = np.array_split(label_idx, 30)
    events = [("c", p) for p in capture_parts] + [("l", p) for p in label_parts]
    for k in rng.permutation(len(events)):
        kind, part = events[k]
        if kind == "c":
            s.add_predictions(captures(list(ids[part]), list(pred[part]), t=T))
        else:
            s.add_labels(labels(list(ids[part]), list(truth[part]), t=T), now=T)
    (figure,), counts = s.figures(T)
    expected = float((pred[labelled] == truth[labelled]).mean())
    assert figure.matched == int(labelled.sum())
    assert figure.accuracy == pytest.approx(expected, abs=1e-12)
    assert counts.duplicates == len(label_idx) - int(labelled.sum())
    assert counts.pending == counts.unmatched == 0


def test_experiment_arms_add_up_beyond_the_window_from_the_prediction_minute() -> None:
    from modelwerk.runtime.capture.figures import totals_since

    s = state(window_seconds=60, horizon_seconds=3600)
    start = 60 * math.ceil(T / 60)  # an experiment that began on a minute
    s.add_predictions(captures(["early"], ["1"], version="v1", arm="a", t=start - 30))
    s.add_predictions(captures(["p1", "p2"], ["1", "2"], version="v1", arm="a", t=start + 5))
    s.add_predictions(captures(["q1"], ["1"], version="v2", arm="b", t=start + 70))
    s.add_predictions(captures(["plain"], ["1"], version="v1", t=start + 5))  # no experiment
    s.add_labels(labels(["early", "p1", "p2", "plain"], ["1", "1", "1", "1"], t=start + 10), start)
    s.add_labels(labels(["q1"], ["2"], t=start + 80, rewards=[4.0]), start + 80)
    s.advance(start + 900)  # long past the 60 s window: the live figures are empty ...
    assert s.figures(start + 900)[0] == []
    # ... the experiment's are not, and count only predictions made from its start on
    by = {(f.version, f.arm): f for f in totals_since(s.experiment_buckets(), start)}
    assert set(by) == {("v1", "a"), ("v2", "b")}
    a, b = by[("v1", "a")], by[("v2", "b")]
    assert (a.matched, a.correct) == (2, 1)
    assert (b.matched, b.correct, b.rewards, b.reward_sum, b.reward_squares) == (1, 0, 1, 4.0, 16.0)
    earlier = {(f.version, f.arm): f for f in totals_since(s.experiment_buckets(), start - 60)}
    assert (earlier[("v1", "a")].matched, earlier[("v1", "a")].correct) == (3, 2)


def test_experiment_sums_of_errors_give_mae_and_mse_variances() -> None:
    from modelwerk.runtime.capture.figures import totals_since

    s = state()
    errors = [0.5, -1.0, 2.0]
    s.add_predictions(captures(["a", "b", "c"], [10.0, 10.0, 10.0], version="v2", arm="b"))
    s.add_labels(labels(["a", "b", "c"], [10.0 - e for e in errors]), now=T)
    (b,) = totals_since(s.experiment_buckets(), T - 60)
    assert b.matched == 3 and b.rewards == 0
    assert b.abs_error == pytest.approx(sum(abs(e) for e in errors))
    assert b.squared_error == pytest.approx(sum(e**2 for e in errors))
    assert b.error_fourth == pytest.approx(sum(e**4 for e in errors))


def test_experiment_sums_are_kept_for_keep_seconds_only() -> None:
    s = state(keep_seconds=3600)
    s.add_predictions(captures(["a"], ["1"], arm="a"))
    s.add_labels(labels(["a"], ["1"]), now=T)
    s.advance(T + 1800)
    assert len(s.experiment_buckets()) == 1
    s.advance(T + 3700)
    assert s.experiment_buckets() == []


def test_a_label_scores_the_capture_of_its_request_in_each_version() -> None:
    """A shadow captures one request in two versions: the label scores both, once each."""
    s = state()
    s.add_predictions(captures(["r1", "r2"], ["1", "2"], version="v1"))
    s.add_labels(labels(["r1", "r2"], ["1", "1"], t=T + 1), now=T + 1)
    # the shadow's file arrives after the labels matched the primary's
    s.add_predictions(captures(["r1", "r2"], ["0", "1"], version="v2", t=T))
    s.add_predictions(captures(["r1"], ["1"], version="v2", t=T + 2))  # r1 again in v2
    figures, counts = s.figures(T + 2)
    by = {f.version: (f.matched, f.correct) for f in figures}
    assert by == {"v1": (2, 1), "v2": (2, 1)}
    assert (counts.matched, counts.duplicates, counts.pending, counts.unmatched) == (2, 0, 0, 0)
    s.add_labels(labels(["r1"], ["0"], t=T + 3), now=T + 3)  # a second label: a duplicate
    figures, counts = s.figures(T + 3)
    assert {f.version: f.matched for f in figures} == {"v1": 2, "v2": 2}
    assert counts.duplicates == 1


def test_a_matched_label_waits_for_other_versions_up_to_the_horizon_only() -> None:
    s = state(horizon_seconds=600, window_seconds=3600)
    s.add_predictions(captures(["r"], ["1"], version="v1"))
    s.add_labels(labels(["r"], ["1"], t=T + 1), now=T + 1)
    s.advance(T + 700)  # the label is past the horizon: a late capture no longer joins
    s.add_predictions(captures(["r"], ["1"], version="v2", t=T + 650))
    figures, counts = s.figures(T + 700)
    assert [f.version for f in figures] == ["v1"] and counts.unmatched == 0


def test_paired_outcomes_of_two_versions_are_mcnemars_table() -> None:
    s = state()
    ids = [f"r{i}" for i in range(8)]
    truth = ["1"] * 8
    primary = ["1", "1", "1", "0", "0", "1", "0", "1"]
    shadow = ["1", "0", "0", "1", "0", "1", "1", "1"]
    s.add_predictions(captures(ids, primary, version="v1"))
    s.add_predictions(captures(ids, shadow, version="v2"))
    s.add_predictions(captures(["only"], ["1"], version="v1"))  # not paired
    s.add_labels(labels([*ids, "only"], [*truth, "1"], t=T + 5), now=T + 5)
    (pair,) = s.pairs(T + 5)
    assert (pair.first, pair.second) == ("v1", "v2")
    assert (pair.both_right, pair.first_only, pair.second_only, pair.both_wrong) == (3, 2, 2, 1)
    s.advance(T + 3700)
    assert s.pairs(T + 3700) == []


def unit_captures(
    units: list[str], arm: str, version: str, t: float = T, start: int = 0
) -> pa.Table:
    table = captures(
        [f"{arm}{start + i}" for i in range(len(units))],
        ["1"] * len(units),
        version=version,
        arm=arm,
        t=t,
    )
    return table.append_column(layout.UNIT, pa.array(units, pa.string()))


def test_distinct_units_per_arm_with_their_last_time() -> None:
    s = state()
    s.add_predictions(unit_captures(["u1", "u2", "u1", "u3"], "a", "v1", t=T))
    s.add_predictions(unit_captures(["u4", "u4"], "b", "v2", t=T + 120, start=10))
    s.add_predictions(unit_captures(["u2"], "a", "v1", t=T + 300, start=20))
    units = s.units()
    assert {k: len(v) for k, v in units.items()} == {("v1", "a"): 3, ("v2", "b"): 1}
    a = units[("v1", "a")]
    assert int((a["last"] >= T + 200).sum()) == 1  # only u2 came back
    assert a.loc[a["last"] >= T + 200, "first"].tolist() == [T]
    assert s.unit_rate == 1.0


def test_units_beyond_the_limit_are_sampled_at_one_rate_in_every_arm() -> None:
    s = state(max_units=5_000)
    rng = np.random.default_rng(7)
    keys = [f"user-{i}" for i in range(20_000)]
    arm_b = rng.random(len(keys)) < 0.3
    a = [k for k, b in zip(keys, arm_b, strict=True) if not b]
    b = [k for k, b in zip(keys, arm_b, strict=True) if b]
    s.add_predictions(unit_captures(a, "a", "v1"))
    s.add_predictions(unit_captures(b, "b", "v2"))
    kept = {k: len(v) for k, v in s.units().items()}
    total = sum(kept.values())
    assert total <= 5_000 and s.unit_rate < 1.0
    assert abs(total - 20_000 * s.unit_rate) < 4 * math.sqrt(20_000 * s.unit_rate)
    assert abs(kept[("v2", "b")] / total - 0.3) < 0.03
    # each arm keeps exactly its units whose hash is below the one threshold
    limit = np.uint64(s.unit_counter.threshold)
    for arm, version, units in (("a", "v1", a), ("b", "v2", b)):
        hashes = pd.util.hash_array(np.array(units, dtype=object))
        assert kept[(version, arm)] == int((hashes <= limit).sum())
