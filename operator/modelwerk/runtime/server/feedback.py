"""Live accuracy from ground truth that arrives after the prediction.

Every answered request's predictions are remembered by request id in a bounded LRU. A later
``{"id": ..., "label": ...}`` is matched against them; each matched row updates a rolling
window of the last ``window`` labelled rows: the fraction correct (classification) or the mean
absolute error (regression). Feedback for an id that is unknown (never seen, already labelled,
or evicted from the LRU) counts as unmatched.

Per process: with several workers, or several pods behind a Service, feedback must reach the
process that answered the request (otherwise it is unmatched); the counters
``modelwerk_model_feedback_total`` can still be summed across processes.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelwerk.runtime.artifacts import Task


@dataclass(frozen=True)
class FeedbackResult:
    received: int
    matched: int
    unmatched: int
    correct: int
    abs_error: float


def _same(prediction: Any, label: Any) -> bool:
    if isinstance(prediction, int | float | np.number) and isinstance(label, int | float):
        return float(prediction) == float(label)
    return str(prediction) == str(label)


class FeedbackTracker:
    def __init__(self, task: Task, capacity: int, window: int) -> None:
        self.task = task
        self.capacity = capacity
        self._remembered: OrderedDict[str, np.ndarray] = OrderedDict()
        self._window: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()

    def remember(self, request_id: str, predictions: np.ndarray) -> None:
        with self._lock:
            self._remembered[request_id] = predictions
            self._remembered.move_to_end(request_id)
            if len(self._remembered) > self.capacity:
                self._remembered.popitem(last=False)

    def lookup(self, request_id: str) -> np.ndarray | None:
        with self._lock:
            return self._remembered.get(request_id)

    def record(self, items: list[tuple[str, list[Any]]]) -> FeedbackResult:
        """Match ``(request id, labels)`` pairs; labels are already checked for count and type."""
        matched = unmatched = correct = 0
        abs_error = 0.0
        with self._lock:
            for request_id, labels in items:
                predictions = self._remembered.pop(request_id, None)
                if predictions is None or len(predictions) != len(labels):
                    unmatched += len(labels)
                    continue
                for prediction, label in zip(predictions.tolist(), labels, strict=True):
                    if self.task == "classification":
                        value = 1.0 if _same(prediction, label) else 0.0
                        correct += int(value)
                    else:
                        value = abs(float(prediction) - float(label))
                        abs_error += value
                    self._window.append(value)
                    matched += 1
        return FeedbackResult(matched + unmatched, matched, unmatched, correct, abs_error)

    @property
    def labelled(self) -> int:
        return len(self._window)

    @property
    def value(self) -> float | None:
        """Rolling accuracy (classification) or MAE (regression); None before any label."""
        with self._lock:
            if not self._window:
                return None
            return math.fsum(self._window) / len(self._window)
