"""`conveyor.Project` drives the taxi example (zone entities, aggregates, on-demand features)
from Python, and `predict` answers what `conveyor serve` answers over HTTP for the same raw rows."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
import yaml

from tests.conftest import BIKE_CSV, TAXI_DIR, Server, conveyor

TAXI_CSV = TAXI_DIR / "nyc_taxi_trips.csv"


def _taxi_project(folder: Path) -> Path:
    """The taxi example as it is, with a small model (tests)."""
    folder.mkdir(parents=True)
    shutil.copy(TAXI_CSV, folder / TAXI_CSV.name)
    config = yaml.safe_load((TAXI_DIR / "conveyor.yaml").read_text())
    config["training"]["lightgbm"]["n_estimators"] = 100
    (folder / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def taxi_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """The taxi project run from Python, once for this module: (project, its first run's result)."""
    from conveyor import Project

    project = Project(_taxi_project(tmp_path_factory.mktemp("api-taxi") / "p"))
    return project, project.run(search=False)


@pytest.fixture(scope="module")
def taxi(taxi_run: tuple[Any, Any]) -> Any:
    return taxi_run[0]


@pytest.fixture(scope="module")
def server(taxi: Any) -> Iterator[Server]:
    running = Server(taxi.root).start()
    yield running
    running.stop()


def _json_rows(config: Any, n: int = 8) -> list[dict[str, Any]]:
    """The last `n` trips of the CSV as a client sends them: each column typed as conveyor.yaml says."""
    columns = config.schema.columns
    with TAXI_CSV.open(newline="") as handle:
        raw = list(csv.DictReader(handle))[-n:]

    def value(name: str, text: str) -> object:
        if text == "":
            return None
        column = columns[name]
        return float(text) if column.type == "float" or column.role == "numeric" else (
            int(text) if column.type == "integer" else text)

    return [{f: value(f, r[f]) for f in config.schema.features()} for r in raw]


def _same_hour(compare: Callable[[], None]) -> None:
    """Run `compare` within one UTC hour and weekday: the on-demand `pickup_hour` and
    `pickup_weekday` of a request are those of the time it is answered."""
    for _ in range(2):
        before = datetime.now(UTC)
        compare()
        after = datetime.now(UTC)
        if (before.hour, before.weekday()) == (after.hour, after.weekday()):
            return
    raise AssertionError("the hour changed twice during the comparison")


def test_run_from_python_returns_each_stage_typed(taxi_run: tuple[Any, Any]) -> None:
    taxi, result = taxi_run
    assert [s.name for s in result] == ["ingest", "prepare", "eda", "features", "dataset", "train", "promote"]
    assert result.ran == [s.name for s in result]  # a new project: every stage ran
    assert result["promote"].result.promoted and result["promote"].result.champion == "1"
    assert result["dataset"].artifact.path.exists() and result["train"].seconds > 0
    assert "champion = v1" in str(result)
    again = taxi.run(search=False)
    assert again.ran == [] and {s.status for s in again} == {"cached"}
    with pytest.raises(KeyError, match="no such stage"):
        again["serve"]


def test_predict_equals_the_http_answers(taxi: Any, server: Server) -> None:
    """The same raw rows, once through `Project.predict` (a Polars frame, then pandas) and once
    through POST /predict: the same predictions by the same model version (within 1e-9: the server
    answers with the compiled trees once they are ready, which sum the trees in another order than
    LightGBM; `Project.predict` with LightGBM); and not the champion's predictions on the rows
    without their zones' online features."""
    from conveyor.stages.training import load_champion

    rows = _json_rows(taxi.config)
    frame = pl.read_csv(TAXI_CSV, infer_schema_length=None).tail(len(rows))

    def compare() -> None:
        answer = httpx.post(f"{server.url}/predict", json={"rows": rows}, timeout=60)
        assert answer.status_code == 200, answer.text
        served = [p["prediction"] for p in answer.json()["predictions"]]
        predicted = taxi.predict(frame)
        assert predicted["prediction"].to_list() == pytest.approx(served, rel=1e-9)
        assert set(predicted["model_version"]) == {answer.json()["model"]["version"]} == {"1"}
        assert predicted.drop("prediction", "model_version").equals(frame)  # the input, with the answer added
        in_process = predicted["prediction"].to_list()  # the same predictor: the same bits
        assert list(taxi.predict(frame.to_pandas())["prediction"]) == in_process  # pandas in, pandas out
        assert taxi.predict(rows)["prediction"].to_list() == in_process  # row dicts, as the request sends them

    _same_hour(compare)
    unjoined = load_champion(taxi.config, taxi.workspace).model.predict_records(rows)["prediction"]
    assert taxi.predict(rows)["prediction"].to_list() != pytest.approx(list(unjoined), rel=1e-6)
    lines = sum(len(p.read_text().splitlines()) for p in (taxi.root / "predictions").glob("**/*.jsonl"))
    assert lines > 0  # the server logged its answers
    taxi.predict(rows)
    assert sum(len(p.read_text().splitlines()) for p in (taxi.root / "predictions").glob("**/*.jsonl")) == lines


def test_a_row_serve_would_refuse_is_an_error_naming_row_and_column(taxi: Any) -> None:
    from conveyor.core.errors import DataError

    rows = _json_rows(taxi.config, n=3)
    rows[2]["trip_distance"] = "far"
    with pytest.raises(DataError, match=r"row 2, column 'trip_distance': .*422"):
        taxi.predict(rows)
    with pytest.raises(DataError, match="finite"):
        taxi.predict(pl.DataFrame(_json_rows(taxi.config, n=2)).with_columns(trip_distance=pl.lit(float("nan"))))


def test_lineage_labels_monitor_models_and_frames(taxi_run: tuple[Any, Any], server: Server) -> None:
    taxi, result = taxi_run
    rows = _json_rows(taxi.config, n=40)
    answer = httpx.post(f"{server.url}/predict", json={"rows": rows}, timeout=60).json()
    ids = [p["request_id"] for p in answer["predictions"]]
    kinds = [step.kind for step in taxi.lineage(ids[0])]
    assert kinds[:3] == ["prediction", "model", "training_set"] and kinds[-1] == "source_file"
    assert [step.kind for step in taxi.lineage(version="1")][0] == "model"

    labels = pl.DataFrame({"request_id": [*ids, "no-such-id"], "fare_amount": [10.0] * (len(ids) + 1)})
    added = taxi.labels_add(labels)
    assert added.accepted == len(ids) and added.rejected == 1
    check = taxi.monitor()
    assert check.n_current >= len(ids) and check.model_version == "1"
    assert check.performance is not None and check.performance.n_labeled == len(ids)

    registry = taxi.models()
    assert registry.champion == "1" and [v.version for v in registry.versions] == ["1"]
    assert [(c.old, c.new) for c in registry.history] == [(None, "1")]

    training = taxi.training_set()
    assert {"pu_trips_24h", "pu_mean_fare_7d", "pickup_hour", "distance_vs_zone"} <= set(training.columns)
    clean = taxi.clean_data()
    assert clean.height == training.height == result["dataset"].result.rows


def test_models_predict_each_model_as_its_http_path(taxi_models: Path) -> None:
    """A project with `models:`: `model=` picks one, and answers as `/models/<name>/predict`."""
    from conveyor import Project
    from conveyor.core.errors import ConfigError

    project = Project(taxi_models)
    with pytest.raises(ConfigError, match="several models"):
        project.predict(_json_rows(project.config, n=2))
    server = Server(taxi_models).start()
    try:
        for model in ("fare", "tip"):
            own = project.config.for_model(model)
            rows = _json_rows(own)

            def compare(model: str = model, rows: list[dict[str, Any]] = rows) -> None:
                answer = httpx.post(f"{server.url}/models/{model}/predict", json={"rows": rows}, timeout=60).json()
                predicted = project.predict(rows, model=model)
                served = [p["prediction"] for p in answer["predictions"]]  # compiled trees: within 1e-9
                assert predicted["prediction"].to_list() == pytest.approx(served, rel=1e-9)
                assert set(predicted["model_version"]) == {answer["model"]["version"]}

            _same_hour(compare)
            assert project.models(model).name == f"nyc-taxi-{model}"
    finally:
        server.stop()


def test_init_writes_what_the_cli_writes(tmp_path: Path) -> None:
    from conveyor import Project
    from conveyor.core.errors import ConfigError

    head = "".join(BIKE_CSV.read_text().splitlines(keepends=True)[:1500])
    for folder in ("api", "cli"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "hour.csv").write_text(head)
    project = Project.init(tmp_path / "api" / "hour.csv", target="cnt", timestamp=["dteday", "hr"], name="bikes")
    conveyor("init", "--csv", "hour.csv", "--target", "cnt", "--timestamp", "dteday,hr", "--name", "bikes",
             cwd=tmp_path / "cli")
    assert project.root == (tmp_path / "api").resolve()
    assert (tmp_path / "api" / "conveyor.yaml").read_text() == (tmp_path / "cli" / "conveyor.yaml").read_text()
    assert project.config.schema.target == "cnt" and project.name == "bikes"
    assert project.config.schema.event_time.columns == ["dteday", "hr"]
    with pytest.raises(ConfigError, match="exists; pass force=True"):
        Project.init(tmp_path / "api" / "hour.csv", target="cnt")
