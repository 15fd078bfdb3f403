"""The column-wise serving path gives the very numbers of the per-row one it replaced."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, Histogram

from conveyor.stages.serving._metrics import observe_many
from conveyor.stages.training._encoder import FeatureEncoder
from conveyor.stages.training._estimators import make_lightgbm
from conveyor.stages.training._model import ConveyorModel


def _data(task: str, classes: int = 2) -> tuple[FeatureEncoder, np.ndarray, np.ndarray, list[dict[str, object]]]:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"x": rng.normal(size=400), "y": rng.normal(size=400), "c": rng.choice(["a", "b", "c"], 400)})
    encoder = FeatureEncoder(["x", "y"], ["c"]).fit(frame)
    matrix = encoder.transform(frame)
    signal = frame["x"].to_numpy() + (frame["c"] == "a").to_numpy()
    target = signal if task == "regression" else np.digitize(signal, np.quantile(signal, np.linspace(0, 1, classes + 1)[1:-1]))
    rows: list[dict[str, object]] = frame.head(50).to_dict("records")  # type: ignore[assignment]
    rows[3]["x"] = None
    rows[4]["c"] = "never seen"
    return encoder, matrix, target, rows


@pytest.mark.parametrize(("task", "classes"), [("regression", 0), ("classification", 2), ("classification", 3)])
def test_one_booster_predict_per_batch_gives_the_estimators_numbers(task: str, classes: int) -> None:
    encoder, matrix, target, rows = _data(task, classes)
    estimator = make_lightgbm(task, {"n_estimators": 30}, seed=1, threads=1)
    estimator.fit(matrix, target, categorical_feature=encoder.categorical_indices)
    labels = None if task == "regression" else [f"k{i}" for i in range(classes)]
    model = ConveyorModel(encoder, estimator, task, labels)
    model.set_threads(1)
    served = model.predict_records(rows)
    x = encoder.transform(pd.DataFrame(rows))
    if task == "regression":
        assert served["prediction"] == [float(v) for v in estimator.predict(x)]
    else:
        proba = estimator.predict_proba(x)
        assert served["prediction"] == [labels[i] for i in proba.argmax(axis=1)]  # type: ignore[index]
        expected = proba[:, 1] if classes == 2 else proba.max(axis=1)
        assert served["probability"] == [float(p) for p in expected]
    # pickled (as MLflow logs it) after serving: the lookup tables stay behind, the numbers do not move
    again = pickle.loads(pickle.dumps(model))
    assert "_tables_" not in again.encoder.__dict__
    assert again.predict_records(rows) == served


def test_a_histogram_observed_per_batch_counts_as_one_observe_per_value() -> None:
    buckets = (0, 1, 2, 5, 10, float("inf"))
    one = Histogram("one", "one", buckets=buckets, registry=CollectorRegistry())
    many = Histogram("many", "many", buckets=buckets, registry=CollectorRegistry())
    values = [0.0, 0.5, 1.0, 1.0000001, 2, 4.9, 5, 7, 10, 11, 1e9, -3]
    for value in values:
        one.observe(value)
    observe_many(many, values)

    def samples(histogram: Histogram) -> dict[str, float]:
        return {s.name.split("_", 1)[1] + str(s.labels): s.value for metric in histogram.collect() for s in metric.samples
                if not s.name.endswith("_created")}

    assert samples(one) == pytest.approx(samples(many))


def test_the_log_takes_nan_as_text_and_refuses_it_as_a_number(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from conveyor.core.records import PredictionRecord
    from conveyor.stages.monitoring._log import PredictionLog

    def record(inputs: dict[str, object]) -> PredictionRecord:
        return PredictionRecord(request_id="r", timestamp=datetime.now(UTC), model="m", model_version="1",
                                source="rows", inputs=inputs, prediction=1.5)

    log = PredictionLog(tmp_path)
    log.append([record({"c": "NaN", "d": "-Infinity"})])
    assert [r.inputs for r in log.records()] == [{"c": "NaN", "d": "-Infinity"}]
    with pytest.raises(ValueError, match="JSON compliant"):
        log.append([record({"c": "NaN", "x": float("nan")})])


def test_a_batch_serialized_at_once_writes_the_lines_one_at_a_time_would() -> None:
    from datetime import UTC, datetime

    from conveyor.core.records import PredictionRecord
    from conveyor.stages.monitoring._log import _batch_lines, _line

    now = datetime.now(UTC)
    records = [
        PredictionRecord(request_id=f"r{i}", timestamp=now, model="m", model_version="1", source="entities",
                         inputs={"x": i / 3, "c": text, "none": None, "flag": True}, prediction=i * 1.5,
                         probability=0.25 if i % 2 else None, entity=i)
        for i, text in enumerate(["a", "é \n \"q\"", "}", "{", "", "x"])
    ]
    one_by_one = b"".join(_line(r, {}) for r in records)
    assert _batch_lines(records, {}) == one_by_one
    assert [PredictionRecord.from_json(line).inputs for line in one_by_one.decode().splitlines()] == [
        r.inputs for r in records]
    tricky = [*records, PredictionRecord(request_id="t", timestamp=now, model="m", model_version="1", source="rows",
                                         inputs={"c": "a},{b"}, prediction=1.0)]
    assert _batch_lines(tricky, {}) is None  # a text holding the separator: line by line
