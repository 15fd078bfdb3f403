"""`conveyor labels add` and the performance `monitor` computes from labels, on a real prediction log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.core import DataError, Workspace
from conveyor.core.config import Config
from conveyor.stages.monitoring import PredictionLog, add_labels
from conveyor.stages.monitoring._labels import LabelLog, score_labels
from tests.conftest import ROOT
from tests.unit.test_prediction_log import record


def _project(tmp_path: Path, task: str = "regression") -> tuple[Config, Workspace]:
    data = yaml.safe_load((ROOT / "examples" / "bike-sharing" / "conveyor.yaml").read_text())
    if task == "classification":
        data["schema"]["columns"]["holiday"]["role"] = "categorical"
        data["schema"]["target"], data["schema"]["task"] = "holiday", "classification"
        data["training"]["metric"] = None
    return Config.model_validate(data), Workspace.at(tmp_path)


def _log(workspace: Workspace, predictions: list[Any], probabilities: list[float | None] | None = None) -> None:
    probabilities = probabilities or [None] * len(predictions)
    PredictionLog(workspace.predictions).append(
        [record(f"r{i}", prediction=p, probability=q) for i, (p, q) in enumerate(zip(predictions, probabilities))]
    )


def test_bad_rows_are_set_aside_with_their_line_and_reason(tmp_path: Path) -> None:
    config, workspace = _project(tmp_path)
    _log(workspace, [10.0, 20.0, 30.0])
    labels = tmp_path / "labels.csv"
    labels.write_text('request_id;cnt\nr0;11\nr1;lots\nr9;5\n;7\nr2;inf\nr2;"x"");import os"\nr1;19.5\n')
    added = add_labels(config, workspace, labels)
    assert (added.rows, added.accepted, added.rejected) == (7, 2, 5)
    assert added.reasons == {"the label is not a number": 2, "no logged prediction has this request id": 1,
                             "no request id": 1, "the label is not a finite number": 1}
    assert added.first_rejected[0] == "line 3: the label is not a number ('lots')"
    assert LabelLog(workspace.labels()).read() == {"r0": 11.0, "r1": 19.5}
    rejected = (tmp_path / str(added.rejected_file)).read_text().splitlines()
    assert rejected[0] == "_line,_reason,request_id,cnt" and len(rejected) == 6
    assert rejected[-1].startswith("7,") and "import os" in rejected[-1]  # hostile text stays data
    again = tmp_path / "again.csv"  # a different label of a labeled request is refused, unless --replace
    again.write_text("request_id,cnt\nr0,12\n")
    refused = add_labels(config, workspace, again)
    assert (refused.accepted, refused.rejected) == (0, 1)
    assert refused.first_rejected == ["line 2: already labeled 11.0 (add with --replace to change it) ('12.0')"]
    assert LabelLog(workspace.labels()).read()["r0"] == 11.0
    replaced = add_labels(config, workspace, again, replace=True)
    assert (replaced.accepted, replaced.replaced, replaced.labeled_total) == (1, 1, 2)
    assert LabelLog(workspace.labels()).read()["r0"] == 12.0


def test_a_request_id_labeled_twice_differently_is_refused_on_both_lines(tmp_path: Path) -> None:
    config, workspace = _project(tmp_path)
    _log(workspace, [10.0, 20.0, 30.0])
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,cnt\nr0,11\nr1,21\nr2,31\nr1,22\nr2,31.0\n")
    added = add_labels(config, workspace, labels)
    assert (added.rows, added.accepted, added.rejected, added.skipped) == (5, 2, 2, 1)  # r2 agrees: once
    assert added.reasons == {"different labels for one request id in this file": 2}
    assert added.first_rejected == ["line 3: 'r1' has different labels on lines 3, 5 ('21.0')",
                                    "line 5: 'r1' has different labels on lines 3, 5 ('22.0')"]
    assert LabelLog(workspace.labels()).read() == {"r0": 11.0, "r2": 31.0}
    rejected = (tmp_path / str(added.rejected_file)).read_text().splitlines()
    assert [row.split(",")[0] for row in rejected[1:]] == ["3", "5"]


def test_adding_a_file_twice_adds_nothing(tmp_path: Path) -> None:
    config, workspace = _project(tmp_path)
    _log(workspace, [10.0, 20.0])
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,cnt\nr0,11\nr1,21\n")
    first = add_labels(config, workspace, labels)
    second = add_labels(config, workspace, labels)
    assert (first.accepted, first.skipped) == (2, 0)
    assert (second.accepted, second.skipped, second.rejected, second.labeled_total) == (0, 2, 0, 2)
    assert "2 already recorded (skipped)" in second.summary()
    assert len(LabelLog(workspace.labels()).path.read_text().splitlines()) == 2  # nothing appended twice


def test_a_file_without_the_columns_is_one_clear_error(tmp_path: Path) -> None:
    config, workspace = _project(tmp_path)
    _log(workspace, [1.0])
    labels = tmp_path / "labels.csv"
    labels.write_text("id,truth\nr0,3\n")
    with pytest.raises(DataError, match=r"line 1: no column 'request_id' \(the request ids\) and no column 'cnt' or 'label' \(the labels\); "
                       r"the header has 'id', 'truth'"):
        add_labels(config, workspace, labels)
    assert add_labels(config, workspace, labels, id_column="id", label_column="truth").accepted == 1
    labels.write_bytes(b"request_id,cnt\nr0,\xff\n")
    with pytest.raises(DataError, match="line 2: not UTF-8"):
        add_labels(config, workspace, labels)


def test_regression_scores_and_the_degradation_rule(tmp_path: Path) -> None:
    config, _ = _project(tmp_path)
    records = [record(f"r{i}", prediction=float(i)).to_dict() for i in range(40)]
    exact = {f"r{i}": float(i) for i in range(40)}
    perf = score_labels(config, records, exact, lambda: {"r2": 0.9})
    assert perf is not None and perf.value == pytest.approx(1.0) and perf.degraded is False
    noisy = {f"r{i}": float(i) + (8.0 if i % 2 else -8.0) for i in range(40)}
    perf = score_labels(config, records, noisy, lambda: {"r2": 0.9})
    assert perf is not None and perf.value is not None and perf.value < 0.81 and perf.degraded is True
    few = score_labels(config, records, {"r0": 0.0}, lambda: {"r2": 0.9})
    assert few is not None and few.value is None and few.degraded is None and "too few" in few.summary()
    assert score_labels(config, records, {}, None) is None


def test_boolean_classes_take_the_usual_spellings_and_give_accuracy_and_auc(tmp_path: Path) -> None:
    config, workspace = _project(tmp_path, "classification")
    predictions = [i % 3 == 0 for i in range(60)]
    probabilities = [0.9 if p else 0.2 for p in predictions]
    _log(workspace, predictions, probabilities)
    truth = ["yes" if i % 3 == 0 or i % 10 == 1 else "No" for i in range(60)]
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\n" + "".join(f"r{i},{t}\n" for i, t in enumerate(truth)) + "r1,maybe\n")
    added = add_labels(config, workspace, labels)
    assert added.accepted == 60 and added.reasons == {"the label is not a class of this model (true or false)": 1}
    records = PredictionLog(workspace.predictions).read()
    perf = score_labels(config, records, LabelLog(workspace.labels()).read(), lambda: {"roc_auc": 0.95})
    assert perf is not None and perf.metric == "roc_auc" and perf.n_labeled == 60
    expected_accuracy = sum((t == "yes") == p for t, p in zip(truth, predictions)) / 60
    assert perf.scores["accuracy"] == pytest.approx(expected_accuracy)
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score([t == "yes" for t in truth], probabilities)  # the logged probability is of `True`
    assert perf.value == pytest.approx(auc) and perf.degraded is (0.95 - auc > 0.1 * 0.95)
    flipped = {k: not v for k, v in LabelLog(workspace.labels()).read().items()}  # a model now wrong way round
    worse = score_labels(config, records, flipped, lambda: {"roc_auc": 0.95})
    assert worse is not None and worse.value == pytest.approx(1 - auc) and worse.degraded is True


def test_performance_is_scored_per_window_beside_the_overall_score(tmp_path: Path) -> None:
    from datetime import timedelta

    config, _ = _project(tmp_path)
    config = config.model_copy(update={"monitoring": config.monitoring.model_copy(update={"min_rows": 5})})
    start = datetime(2026, 11, 27, 22, 0, tzinfo=UTC)  # 2 h before midnight: two days at 1d, hours at 1h
    records = [record(f"r{i}", prediction=float(i), timestamp=start + timedelta(minutes=10 * i)).to_dict()
               for i in range(30)]
    labels = {f"r{i}": float(i) + (0.5 if i < 12 else 6.0 * (-1) ** i) for i in range(30) if i != 3}
    perf = score_labels(config, records, labels, lambda: {"r2": 0.99})
    assert perf is not None and perf.window == "1d" and perf.n_labeled == 29
    assert [(w.start, w.n_labeled) for w in perf.windows] == [("2026-11-27T00:00:00+00:00", 11),
                                                               ("2026-11-28T00:00:00+00:00", 18)]
    day1, day2 = perf.windows
    assert day1.value is not None and day2.value is not None and day1.value > 0.9 > day2.value  # it got worse
    hourly = config.model_copy(update={"monitoring": config.monitoring.model_copy(
        update={"min_rows": 5, "performance_window": "1h"})})
    perf = score_labels(hourly, records, labels, None)
    assert perf is not None and [w.n_labeled for w in perf.windows] == [5, 6, 6, 6, 6]  # r3 has no label
    assert perf.windows[0].start == "2026-11-27T22:00:00+00:00"
    weekly = config.model_copy(update={"monitoring": config.monitoring.model_copy(
        update={"min_rows": 40, "performance_window": "7d"})})
    perf = score_labels(weekly, records, labels, None)
    assert perf is not None and [(w.start, w.n_labeled, w.value) for w in perf.windows] == [
        ("2026-11-23T00:00:00+00:00", 29, None)]  # a Monday; too few labels to score: the count alone


@pytest.mark.parametrize("text", ["0d", "1m", "d", "1.5h", "10000d"])
def test_a_bad_performance_window_is_a_config_error(tmp_path: Path, text: str) -> None:
    from pydantic import ValidationError

    data = yaml.safe_load((ROOT / "examples" / "bike-sharing" / "conveyor.yaml").read_text())
    data.setdefault("monitoring", {})["performance_window"] = text
    with pytest.raises(ValidationError, match="performance_window"):
        Config.model_validate(data)
