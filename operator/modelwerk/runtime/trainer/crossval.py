"""Scoring one candidate by cross-validation, fold by fold, into a trial record.

The folds, the scorer and the fitting are scikit-learn's, as GridSearchCV uses them
(``check_cv``: stratified k-fold for classifiers, unshuffled), so a candidate scores the same
whether a search pod, the serial search or GridSearchCV evaluates it. Folds are run one by one
rather than through ``cross_validate`` so that a Bayesian search can stop a hopeless trial
after any fold. Successive halving gives early rungs fewer samples: each fold's train and test
parts are subsampled (stratified for classifiers, the run's seed), as scikit-learn's halving
search does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelwerk.runtime.trainer import trials
from modelwerk.runtime.trainer.errors import TrainingFailure
from modelwerk.runtime.trainer.search import STEP, scorer

Report = Callable[[int, float], bool]
"""Called after each fold with (fold, mean score so far); True stops the trial (pruned)."""


@dataclass
class Evaluator:
    """Everything fixed while a search scores candidates on one training split."""

    pipeline: Any
    x: Any
    y: Any
    task: str
    scoring: str
    cv: int
    seed: int
    splits: list[tuple[Any, Any]] = field(init=False)
    _scorer: Any = field(init=False)

    def __post_init__(self) -> None:
        from sklearn.base import is_classifier
        from sklearn.metrics import get_scorer
        from sklearn.model_selection import check_cv

        n_classes = int(self.y.nunique()) if self.task == "classification" else 0
        self._scorer = get_scorer(scorer(self.scoring, n_classes))
        folds = check_cv(self.cv, self.y, classifier=is_classifier(self.pipeline))
        self.splits = list(folds.split(self.x, self.y))
        self.n_classes = n_classes

    @property
    def sign(self) -> float:
        """scikit-learn negates errors so that greater is better; records read as the metric."""
        return -1.0 if self.scoring in trials.LOWER_IS_BETTER else 1.0

    def min_resources(self, rungs: int, factor: int) -> int:
        """Samples per candidate in halving's first rung (scikit-learn's 'exhaust' rule)."""
        smallest = 2 * self.cv * max(self.n_classes, 1)
        return max(smallest, len(self.y) // int(factor ** (rungs - 1)))

    def evaluate(
        self,
        params: dict[str, Any],
        *,
        trial: int,
        worker: str,
        iteration: int | None = None,
        resources: int | None = None,
        report: Report | None = None,
    ) -> trials.Trial:
        from sklearn.base import clone

        prefixed = {f"{STEP}__{k}": v for k, v in params.items()}
        scores: list[float] = []
        fit_times: list[float] = []
        score_times: list[float] = []
        state = "complete"
        for fold, (train, test) in enumerate(self._folds(resources)):
            try:
                model = clone(self.pipeline).set_params(**prefixed)
                started = time.perf_counter()
                model.fit(self.x.iloc[train], self.y.iloc[train])
                fitted = time.perf_counter()
                score = float(self._scorer(model, self.x.iloc[test], self.y.iloc[test]))
                score_times.append(time.perf_counter() - fitted)
                fit_times.append(fitted - started)
            except (ValueError, TypeError, ArithmeticError, MemoryError) as error:
                raise TrainingFailure(
                    "TrainingError", f"candidate {params}: {type(error).__name__}: {error}"
                ) from error
            scores.append(self.sign * score)
            last = fold == len(self.splits) - 1
            if report is not None and not last and report(fold, sum(scores) / len(scores)):
                state = "pruned"
                break
        import numpy as np

        complete = state == "complete"
        # NumPy's mean and std, as GridSearchCV computes them: the same sums in the same order,
        # so ties between candidates break the same way.
        mean, std = float(np.mean(scores)), float(np.std(scores))
        return trials.Trial(
            trial=trial,
            worker=worker,
            params=params,
            scoring=self.scoring,
            mean_score=mean if complete else None,
            std_score=std if complete else None,
            fold_scores=scores,
            fit_seconds=sum(fit_times) / len(fit_times),
            score_seconds=sum(score_times) / len(score_times),
            resources=resources,
            iteration=iteration,
            state=state,
        )

    def _folds(self, resources: int | None) -> list[tuple[Any, Any]]:
        if resources is None or resources >= len(self.y):
            return self.splits
        from sklearn.utils import resample

        fraction = resources / len(self.y)
        out = []
        for train, test in self.splits:
            parts = []
            for part in (train, test):
                labels = self.y.iloc[part] if self.task == "classification" else None
                parts.append(
                    resample(
                        part,
                        replace=False,
                        n_samples=max(int(fraction * len(part)), 1),
                        random_state=self.seed,
                        stratify=labels,
                    )
                )
            out.append((parts[0], parts[1]))
        return out
