"""Labels: the true outcomes of served predictions, joined by request id, and the performance they show.

`conveyor labels add FILE` reads a CSV of request ids (from the prediction answers) and true
values, checks every row against the prediction log and the model's task, and appends the good
ones to `labels/labels.jsonl` (`labels/<model>/` for a model of `models:`), one JSON object per
line, in one `O_APPEND` write. Adding a file twice adds nothing (a label already recorded with
the same value is skipped); a different label for a labeled request id is refused unless
`--replace`, and a file that labels one request id twice differently is refused on both lines.
`POST /labels` on the server goes through the same checks (`record_labels`). Rejected rows go to `labels/rejected-<time>.csv` with their line and reason; nothing is
dropped silently. `conveyor monitor` scores the labeled predictions of the checked version
against the champion's test score (`performance`).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict
from pydantic_core import from_json, to_json

from conveyor.core.artifacts import Result, relative_to
from conveyor.core.config import NULL_TOKENS, Config
from conveyor.core.errors import DataError
from conveyor.core.workspace import Workspace
from conveyor.stages.monitoring._log import PredictionLog

__all__ = ["LabelLog", "LabelsAdded", "Performance", "PerformanceWindow", "add_labels", "label_text", "record_labels", "score_labels"]

_TRUE = {"true", "yes", "t", "1", "1.0"}
_FALSE = {"false", "no", "f", "0", "0.0"}
_SHOW = 60

GREATER_IS_BETTER = {"r2": True, "rmse": False, "mae": False, "accuracy": True, "roc_auc": True}
"""The metrics monitoring computes on labeled traffic, and their direction."""


class LabelLog:
    """`labels.jsonl` of one model: appended whole per `add`, read with the last label per request id winning."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "labels.jsonl"

    def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        payload = b"".join(to_json(dict(row)) + b"\n" for row in rows)
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    def read(self) -> dict[str, Any]:
        """request id -> label (the latest); a torn last line is skipped."""
        labels: dict[str, Any] = {}
        if not self.path.exists():
            return labels
        with self.path.open("rb") as handle:
            for line in handle:
                try:
                    data = from_json(line)
                except ValueError:
                    continue
                if isinstance(data, dict) and "request_id" in data:
                    labels[str(data["request_id"])] = data.get("label")
        return labels


class LabelsAdded(Result):
    """What `conveyor labels add` did with one file."""

    kind: ClassVar[str] = "labels"

    file: str
    rows: int
    accepted: int
    rejected: int
    skipped: int = 0
    """Labels already recorded with the same value, and agreeing repeats within the file: nothing to add."""
    replaced: int = 0
    """Labels that changed an earlier one (`--replace`)."""
    reasons: dict[str, int]
    """How many rows each reason rejected."""
    first_rejected: list[str]
    """The first rejected rows: line, reason and value."""
    rejected_file: str | None
    labeled_total: int
    """Request ids with a label in the log after this file."""

    def summary(self) -> str:
        text = f"{self.accepted} of {self.rows} labels added from {self.file}"
        if self.replaced:
            text += f" ({self.replaced} replacing an earlier label)"
        if self.skipped:
            text += f", {self.skipped} already recorded (skipped)"
        if self.rejected:
            text += f", {self.rejected} rejected (" + ", ".join(f"{k}: {v}" for k, v in self.reasons.items()) + ")"
        return text


def _short(value: str) -> str:
    return repr(value if len(value) <= _SHOW else value[: _SHOW - 3] + "...")


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line, fields) of a small CSV (UTF-8, BOM allowed; `,` `;` tab or `|`)."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not UTF-8 text; save the labels as UTF-8 CSV") from None
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t|", key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [name.strip() for name in next(reader)]
        rows = []
        for fields in reader:
            if any(f.strip() for f in fields):
                rows.append((reader.line_num, fields))
    except StopIteration:
        raise DataError(f"{path}: the file is empty; expected a header with a request id and a label column") from None
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: {exc}") from None
    return header, rows


def _model_output_kind(predictions: Sequence[Any]) -> str:
    """`bool`, `number` or `text`: what the model's logged predictions are."""
    if predictions and all(isinstance(p, bool) for p in predictions):
        return "bool"
    if predictions and all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in predictions):
        return "number"
    return "text"


def class_key(value: Any) -> str:
    """A class label compared as text: `True` -> `true`, `5.0` -> `5`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _parse_label(text: str, task: str, kind: str) -> tuple[Any, str | None]:
    """(the label, None) or (None, what is wrong: the reason without the value)."""
    value = text.strip()
    if value in NULL_TOKENS:
        return None, "no label"
    if task == "regression":
        try:
            number = float(value)
        except ValueError:
            return None, "the label is not a number"
        return (number, None) if math.isfinite(number) else (None, "the label is not a finite number")
    if kind == "bool":
        lowered = value.lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE, None
        return None, "the label is not a class of this model (true or false)"
    if kind == "number":
        try:
            number = float(value)
        except ValueError:
            return None, "the label is not a class of this model (its classes are numbers)"
        return (int(number) if number.is_integer() else number), None
    return value, None


def add_labels(
    config: Config, workspace: Workspace, path: Path, *, id_column: str = "request_id", label_column: str | None = None,
    replace: bool = False,
) -> LabelsAdded:
    """Check a CSV of labels against the prediction log and append the good rows (see the module)."""
    header, rows = _read_rows(path)
    wanted = [label_column] if label_column else [config.schema.target, "label"]
    found = [c for c in wanted if c in header]
    missing = [] if id_column in header else [f"{id_column!r} (the request ids)"]
    if not found:
        missing.append(" or ".join(map(repr, wanted)) + " (the labels)")
    if missing:
        raise DataError(
            f"{path}, line 1: no column {' and no column '.join(missing)}; the header has "
            f"{', '.join(map(repr, header))} (name them with --id and --label)"
        )
    label_column = found[0]
    id_at, label_at = header.index(id_column), header.index(label_column)
    given = [(line, fields[id_at].strip() if id_at < len(fields) else "",
              fields[label_at] if label_at < len(fields) else "", fields) for line, fields in rows]
    return record_labels(config, workspace, given, header=header, source=str(path), where="line", replace=replace)


def record_labels(
    config: Config, workspace: Workspace, given: Sequence[tuple[int, str, str, list[str]]], *, header: list[str],
    source: str, where: str = "line", replace: bool = False,
) -> LabelsAdded:
    """Check labels (line, request id, label text, the row's fields) and append the good ones.

    A request id that a file labels twice with different values is refused on each of its lines;
    agreeing repeats count once. A label already recorded with the same value is skipped; with a
    different value it is refused, unless `replace`. Rejected rows go to `rejected-<time>.csv`.
    """
    logged = {str(r["request_id"]): r for r in PredictionLog(workspace.prediction_log(config.model)).read()
              if "request_id" in r}
    kind = _model_output_kind([r.get("prediction") for r in logged.values()])
    folder = workspace.labels(config.model)
    labels = LabelLog(folder)
    recorded = labels.read()
    stamp = datetime.now(UTC)
    rejected: list[tuple[int, str, str, list[str]]] = []  # line, reason, value, fields
    valid: dict[str, list[tuple[int, Any, list[str]]]] = {}  # request id -> (line, label, fields), in file order
    for line, request_id, text, fields in given:
        if not request_id:
            rejected.append((line, "no request id", "", fields))
            continue
        if request_id not in logged:
            rejected.append((line, "no logged prediction has this request id", request_id, fields))
            continue
        label, why = _parse_label(text, config.schema.task, kind)
        if why is not None:
            rejected.append((line, why, text, fields))
            continue
        valid.setdefault(request_id, []).append((line, label, fields))
    accepted: list[dict[str, Any]] = []
    skipped = replaced = 0
    for request_id, seen in valid.items():
        values = {_same(label) for _, label, _ in seen}
        if len(values) > 1:
            lines = ", ".join(str(line) for line, _, _ in seen)
            for line, label, fields in seen:
                rejected.append((line, f"{request_id!r} has different labels on {where}s {lines}", str(label), fields))
            continue
        skipped += len(seen) - 1  # agreeing repeats count once
        line, label, fields = seen[0]
        if request_id in recorded and recorded[request_id] is not None:
            if _same(recorded[request_id]) == _same(label):
                skipped += 1
                continue
            if not replace:
                rejected.append((line, f"already labeled {recorded[request_id]!r} (add with --replace to change it)",
                                 str(label), fields))
                continue
            replaced += 1
        accepted.append({"request_id": request_id, "label": label, "added_at": stamp.isoformat(),
                         "file": Path(source).name, "line": line})
    rejected.sort(key=lambda r: r[0])
    labels.append(accepted)
    rejected_file = None
    if rejected:
        rejected_file = folder / f"rejected-{stamp.strftime('%Y%m%dT%H%M%S%f')}.csv"
        folder.mkdir(parents=True, exist_ok=True)
        with rejected_file.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([f"_{where}", "_reason", *header])
            for line, why, value, fields in rejected:
                writer.writerow([line, f"{why}: {_short(value)}" if value else why, *fields])
    return LabelsAdded(
        file=source, rows=len(given), accepted=len(accepted), rejected=len(rejected), skipped=skipped,
        replaced=replaced, reasons=dict(Counter(_reason_kind(why) for _, why, _, _ in rejected)),
        first_rejected=[f"{where} {line}: {why}" + (f" ({_short(value)})" if value else "")
                        for line, why, value, _ in rejected[:3]],
        rejected_file=relative_to(rejected_file, workspace.root) if rejected_file else None,
        labeled_total=len(labels.read()),
    )


def _same(label: Any) -> str:
    """A label compared across files and repeats: `11` and `11.0` agree, `True` and `true` too."""
    return class_key(label)


def _reason_kind(why: str) -> str:
    """The reason without the request id or lines, to count rejections by kind."""
    if "has different labels on" in why:
        return "different labels for one request id in this file"
    if why.startswith("already labeled"):
        return "already labeled with another value (--replace changes it)"
    return why


def label_text(value: Any) -> str:
    """A label from JSON as the text a CSV would hold: `true`, `3`, `2.5`, `""` for null."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class PerformanceWindow(BaseModel):
    """The labeled predictions served in one time window (`monitoring.performance_window`), scored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: str
    """ISO time (UTC) the window starts; it ends where the next would start."""
    n_labeled: int
    value: float | None
    """The primary metric; None when fewer than `monitoring.min_rows` of its predictions are labeled."""


class Performance(BaseModel):
    """The champion's primary metric on labeled served predictions, beside its test score."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_labeled: int
    metric: str
    greater_is_better: bool
    value: float | None
    """None when fewer than `monitoring.min_rows` predictions are labeled."""
    test_value: float | None
    """The champion's score on its test split (MLflow), when recorded."""
    degraded: bool | None
    """Worse than the test score by more than `monitoring.performance_drop` of it; None: cannot tell."""
    scores: dict[str, float] = {}
    window: str = "1d"
    """The length of the windows of `windows` (`monitoring.performance_window`)."""
    windows: list[PerformanceWindow] = []
    """The primary metric per time window of serving (UTC), oldest first, with its labeled rows."""

    def summary(self) -> str:
        if self.value is None:
            return f"performance: {self.n_labeled} labeled predictions, too few to score"
        test = "" if self.test_value is None else f" (test {self.test_value:.4f})"
        verdict = {True: "degraded", False: "holds", None: "no test score to compare"}[self.degraded]
        return f"performance on {self.n_labeled} labeled predictions: {self.metric} {self.value:.4f}{test}: {verdict}"


@dataclass
class _Pairs:
    truth: list[Any] = field(default_factory=list)
    predicted: list[Any] = field(default_factory=list)
    probability: list[float | None] = field(default_factory=list)


def window_seconds(text: str) -> int:
    """`1h` -> 3600, `1d` -> 86400, `7d` -> 604800 (`monitoring.performance_window`)."""
    return int(text[:-1]) * {"h": 3600, "d": 86400, "w": 604800}[text[-1]]


_MONDAY = 4 * 86400  # 1970-01-05, a Monday: windows of whole days start at midnight UTC, weeks on Mondays


def window_start(timestamp: str, seconds: int) -> datetime | None:
    """The start (UTC) of the window of `seconds` that `timestamp` falls in; None if it is not a time."""
    try:
        moment = datetime.fromisoformat(timestamp)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    offset = _MONDAY if seconds % 86400 == 0 else 0
    epoch = int(moment.timestamp()) - offset
    return datetime.fromtimestamp(epoch - epoch % seconds + offset, UTC)


def score_labels(
    config: Config, records: Sequence[Mapping[str, Any]], labels: Mapping[str, Any],
    test_metrics: Callable[[], Mapping[str, float]] | None = None,
) -> Performance | None:
    """Performance of `records` (one model version's logged predictions) that have a label, overall and
    per time window; None without any."""
    pairs = _Pairs()
    seconds = window_seconds(config.monitoring.performance_window)
    windows: dict[datetime | None, _Pairs] = {}
    for record in records:
        request_id = str(record.get("request_id"))
        if request_id in labels and labels[request_id] is not None:
            for into in (pairs, windows.setdefault(window_start(str(record.get("timestamp")), seconds), _Pairs())):
                into.truth.append(labels[request_id])
                into.predicted.append(record.get("prediction"))
                into.probability.append(record.get("probability"))
    if not pairs.truth:
        return None
    task = config.schema.task
    scores = _scores(task, pairs) if len(pairs.truth) >= config.monitoring.min_rows else {}
    default = "r2" if task == "regression" else ("roc_auc" if "roc_auc" in scores else "accuracy")
    metric = config.training.metric if config.training.metric in GREATER_IS_BETTER and (
        not scores or config.training.metric in scores) else default
    greater = GREATER_IS_BETTER[metric]
    value = scores.get(metric)
    test = (test_metrics() if test_metrics is not None else {}).get(metric)
    degraded = None
    if value is not None and test is not None:
        worse = (test - value) if greater else (value - test)
        degraded = bool(worse > config.monitoring.performance_drop * abs(test))
    series = []
    for start, window in sorted(((k, v) for k, v in windows.items() if k is not None), key=lambda kv: kv[0]):
        enough = len(window.truth) >= config.monitoring.min_rows
        series.append(PerformanceWindow(start=start.isoformat(), n_labeled=len(window.truth),
                                        value=_scores(task, window).get(metric) if enough else None))
    return Performance(n_labeled=len(pairs.truth), metric=metric, greater_is_better=greater, value=value,
                       test_value=test, degraded=degraded, scores=scores,
                       window=config.monitoring.performance_window, windows=series)


def _scores(task: str, pairs: _Pairs) -> dict[str, float]:
    """Every metric of the task on labeled pairs (r2, rmse, mae; accuracy, and roc_auc for two classes)."""
    import numpy as np  # only with labels: a monitor without them pays nothing
    from sklearn import metrics

    if task == "regression":
        truth = np.asarray(pairs.truth, dtype=float)
        predicted = np.asarray([math.nan if p is None else float(p) for p in pairs.predicted], dtype=float)
        if len(truth) < 2 or np.isnan(predicted).any():
            return {}
        return {"r2": float(metrics.r2_score(truth, predicted)),
                "rmse": float(np.sqrt(metrics.mean_squared_error(truth, predicted))),
                "mae": float(metrics.mean_absolute_error(truth, predicted))}
    truth_keys = [class_key(t) for t in pairs.truth]
    predicted_keys = [class_key(p) for p in pairs.predicted]
    scores = {"accuracy": float(np.mean([t == p for t, p in zip(truth_keys, predicted_keys)]))}
    positive = _positive_class(predicted_keys, pairs.probability)
    classes = set(truth_keys) | set(predicted_keys)
    if positive is not None and len(classes) == 2 and len(set(truth_keys)) == 2:
        y = np.asarray([t == positive for t in truth_keys], dtype=int)
        scores["roc_auc"] = float(metrics.roc_auc_score(y, np.asarray(pairs.probability, dtype=float)))
    return scores


def _positive_class(predicted: Sequence[str], probability: Sequence[float | None]) -> str | None:
    """The class a binary model's logged probability is about: one it predicts with probability above 0.5."""
    if any(p is None for p in probability):
        return None
    for label, p in zip(predicted, probability):
        if p is not None and p > 0.5:
            return label
    return None
