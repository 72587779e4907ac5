"""Ground truth that arrives after the prediction: ``POST /v2/models/{name}/feedback``.

Accepted bodies (one item, a list of them, or ``{"feedback": [...]}``)::

    {"id": "<request id>", "label": 1}                  row 0 of the request
    {"id": "<request id>", "labels": [1, 0, 2]}         rows 0, 1, 2 (also "label": [...])
    {"id": "<request id>", "row": 3, "label": 1}        one row of a larger request
    {"id": "<request id>", "reward": 1.0}               a business reward instead of, or
                                                        beside, a label (a list: one per row)

With capture on, every label row is persisted to the store (``labels/…``), whichever pod and
worker process receives it, and the aggregator joins it with the captured predictions of all
replicas: that join is the Deployment's live accuracy. The server also keeps a quick local
view: every answered request's predictions are remembered by id in a bounded LRU, and a label
for one of them updates a rolling window of this process's last ``window`` labelled rows
(``modelwerk_model_live_accuracy``/``_live_mae``). Feedback for an id this process does not
remember is unmatched *locally* only.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelwerk.runtime.artifacts import Task
from modelwerk.runtime.server.codec import MAX_ID_LENGTH, RequestError

MAX_FEEDBACK_ITEMS = 10_000
MAX_FEEDBACK_ROWS = 100_000
MAX_ROW = 2**31 - 1


@dataclass(frozen=True)
class FeedbackItem:
    """One validated feedback item: labels and/or rewards for some rows of a request."""

    request_id: str
    row: int | None
    """The one row labelled, or None: the labels cover rows 0, 1, … of the request."""
    labels: list[Any] | None
    rewards: list[float | None]

    @property
    def rows(self) -> list[int]:
        if self.row is not None:
            return [self.row]
        return list(range(len(self.labels) if self.labels is not None else len(self.rewards)))


def parse_feedback(doc: Any, task: Task) -> list[FeedbackItem]:
    """Validate a feedback body; a :class:`RequestError` (400) names what is wrong."""
    if isinstance(doc, dict) and "feedback" in doc:
        doc = doc["feedback"]
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise RequestError("no feedback given")
    if len(items) > MAX_FEEDBACK_ITEMS:
        raise RequestError(f"at most {MAX_FEEDBACK_ITEMS} feedback items per request")
    parsed = [_item(item, f"feedback[{i}]", task) for i, item in enumerate(items)]
    if sum(len(p.rows) for p in parsed) > MAX_FEEDBACK_ROWS:
        raise RequestError(f"at most {MAX_FEEDBACK_ROWS} labelled rows per request")
    return parsed


def _item(item: Any, where: str, task: Task) -> FeedbackItem:
    if not isinstance(item, dict):
        raise RequestError(f'{where} must be an object {{"id": ..., "label": ...}}')
    rid = item.get("id")
    if not isinstance(rid, str | int) or isinstance(rid, bool):
        raise RequestError(f"{where} needs the 'id' of the answered request (a string)")
    rid = str(rid)
    if not 0 < len(rid) <= MAX_ID_LENGTH:
        raise RequestError(f"{where}.id must have 1 to {MAX_ID_LENGTH} characters")
    row = item.get("row")
    if row is not None and (
        not isinstance(row, int) or isinstance(row, bool) or not 0 <= row <= MAX_ROW
    ):
        raise RequestError(f"{where}.row must be a row number from 0 to {MAX_ROW}")
    labels: list[Any] | None = None
    if "label" in item:
        labels = item["label"] if isinstance(item["label"], list) else [item["label"]]
    elif "labels" in item:
        if not isinstance(item["labels"], list):
            raise RequestError(f"{where}.labels must be a list, one label per row")
        labels = item["labels"]
    if labels is not None:
        if not labels:
            raise RequestError(f"{where} has an empty list of labels")
        for label in labels:
            _check_label(label, task, where)
    rewards = _rewards(item, where)
    if labels is None and rewards is None:
        raise RequestError(f"{where} needs a 'label' (or 'labels', one per row) or a 'reward'")
    count = 1 if row is not None else len(labels) if labels is not None else len(rewards or [])
    if row is not None and labels is not None and len(labels) != 1:
        raise RequestError(f"{where} names one row, so it takes one label")
    if rewards is None:
        rewards = [None] * count
    elif len(rewards) == 1 and count > 1:
        rewards = rewards * count
    elif len(rewards) != count:
        raise RequestError(f"{where} has {len(rewards)} rewards for {count} rows")
    return FeedbackItem(rid, row, labels, rewards)


def _check_label(label: Any, task: Task, where: str) -> None:
    if task == "regression":
        ok = isinstance(label, int | float) and not isinstance(label, bool)
        ok = ok and math.isfinite(label)
    else:
        ok = isinstance(label, str | int | float | bool) and not (
            isinstance(label, float) and not math.isfinite(label)
        )
    if not ok:
        raise RequestError(f"{where}: label {label!r} is not a valid {task} target")


def _rewards(item: dict[str, Any], where: str) -> list[float | None] | None:
    if "reward" not in item:
        return None
    given = item["reward"]
    values = given if isinstance(given, list) else [given]
    if not values:
        raise RequestError(f"{where} has an empty list of rewards")
    out: list[float | None] = []
    for value in values:
        if value is None:
            out.append(None)
            continue
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise RequestError(f"{where}: reward {value!r} is not a number")
        if not math.isfinite(value):
            raise RequestError(f"{where}: reward {value!r} is not a finite number")
        out.append(float(value))
    return out


# ---------------------------------------------------------------- the local view


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
    """This process's remembered predictions and its rolling live accuracy / MAE."""

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

    def check(self, items: list[FeedbackItem]) -> None:
        """Refuse labels that cannot belong to a request this process remembers."""
        for i, item in enumerate(items):
            remembered = self.lookup(item.request_id)
            if remembered is None or item.labels is None:
                continue
            where = f"feedback[{i}]"
            if item.row is None and len(remembered) != len(item.labels):
                raise RequestError(
                    f"{where}: request {item.request_id} had {len(remembered)} rows, "
                    f"but {len(item.labels)} labels came"
                )
            if item.row is not None and item.row >= len(remembered):
                raise RequestError(
                    f"{where}: request {item.request_id} had {len(remembered)} rows, "
                    f"so it has no row {item.row}"
                )

    def record(self, items: list[FeedbackItem]) -> FeedbackResult:
        """Match the labels of ``items`` (already checked) with remembered predictions."""
        matched = unmatched = correct = 0
        abs_error = 0.0
        with self._lock:
            for item in items:
                if item.labels is None:
                    continue
                predictions = (
                    self._remembered.pop(item.request_id, None)
                    if item.row is None
                    else self._remembered.get(item.request_id)
                )
                if predictions is None:
                    unmatched += len(item.labels)
                    continue
                chosen = predictions.tolist() if item.row is None else [predictions[item.row]]
                for prediction, label in zip(chosen, item.labels, strict=True):
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
