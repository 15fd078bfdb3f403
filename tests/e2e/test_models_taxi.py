"""Two models in one project over the shared taxi feature views (`models:`): fare and tip, each
with its own feature service, registered model, gate and @champion, both served over HTTP at
`/models/<name>/predict`."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import TIP_FEATURES, Server, conveyor, stage_result

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def project(taxi_models: Path) -> Path:
    return taxi_models


@pytest.fixture(scope="module")
def server(project: Path) -> Iterator[Server]:
    running = Server(project).start()
    yield running
    running.stop()


def test_each_model_has_its_own_stages_service_and_champion(project: Path) -> None:
    from mlflow import MlflowClient

    from conveyor.core import Workspace

    features = stage_result(project, "features")
    assert features.model_services == {"fare": "nyc_taxi_fare_model", "tip": "nyc_taxi_tip_model"}
    mlflow = MlflowClient(tracking_uri=Workspace.at(project).mlflow_uri)
    for model in ("fare", "tip"):
        assert stage_result(project, f"promote.{model}").promoted
        champion = mlflow.get_model_version_by_alias(f"nyc-taxi-{model}", "champion")
        assert champion.tags["conveyor.feature_service"] == f"nyc_taxi_{model}_model"
    run = mlflow.get_run(stage_result(project, "train.tip").candidates["lightgbm"].run_id)
    assert sorted(run.data.params["features"].split(",")) == sorted(TIP_FEATURES)
    # the fare model does not read the tip (another model's target), nor the tip model the fare's other inputs
    fare_inputs = mlflow.get_run(stage_result(project, "train.fare").candidates["lightgbm"].run_id).data.params
    assert "tip_amount" not in fare_inputs["features"].split(",") and "pickup_hour" in fare_inputs["features"]


def _rows(project: Path, features: list[str], n: int = 3) -> list[dict[str, Any]]:
    columns = yaml.safe_load((project / "conveyor.yaml").read_text())["schema"]["columns"]
    with (project / "nyc_taxi_trips.csv").open(newline="") as handle:
        raw = list(csv.DictReader(handle))[-n:]

    def value(name: str, text: str) -> object:
        if text == "":
            return None
        column = columns[name]
        return float(text) if column["type"] == "float" or column["role"] == "numeric" else (
            int(text) if column["type"] == "integer" else text)

    return [{f: value(f, r[f]) for f in features} for r in raw]


def test_both_models_answer_at_their_own_path(project: Path, server: Server) -> None:
    """Each model's answer over HTTP is its champion's prediction on the row joined with its
    zones' online features and on-demand values (not the prediction without them); an unseen
    zone is a new zone; an unknown model is a 404 naming it."""
    from conveyor.core import Workspace
    from conveyor.core.config import load_config
    from conveyor.stages.features import OnlineFeatures, on_demand_values
    from conveyor.stages.training import load_champion

    config = load_config(project / "conveyor.yaml")
    workspace = Workspace.at(project)
    online = OnlineFeatures(config, workspace)
    health = httpx.get(f"{server.url}/health").json()
    assert {name: m["name"] for name, m in health["models"].items()} == {"fare": "nyc-taxi-fare", "tip": "nyc-taxi-tip"}
    for model in ("fare", "tip"):
        own = config.for_model(model)
        rows = _rows(project, own.schema.features())
        answer = httpx.post(f"{server.url}/models/{model}/predict", json={"rows": rows})
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"]["name"] == f"nyc-taxi-{model}"
        served = [p["prediction"] for p in answer.json()["predictions"]]
        champion = load_champion(own, workspace).model
        assert sorted(champion.features) == sorted(own.model_inputs())
        joined = [{**row, **found} for row, found in zip(rows, online.entity_features(rows), strict=True)]

        def expected(at: datetime, joined: list[dict[str, Any]] = joined, champion: Any = champion) -> list[float]:
            extra = on_demand_values(config, joined, event_time=at)
            return list(champion.predict_records([{**r, **e} for r, e in zip(joined, extra, strict=True)])["prediction"])

        now = datetime.now(UTC)
        assert served in (pytest.approx(expected(now), rel=1e-9),
                          pytest.approx(expected(now - timedelta(minutes=2)), rel=1e-9))
        if model == "fare":
            assert served != pytest.approx(champion.predict_records(rows)["prediction"], rel=1e-6)
            unseen = httpx.post(f"{server.url}/models/{model}/predict", json={"rows": [{**rows[0], "PULocationID": 99999}]})
            assert unseen.status_code == 200, unseen.text
        assert httpx.get(f"{server.url}/models/{model}/health").json()["model"]["name"] == f"nyc-taxi-{model}"
    unknown = httpx.post(f"{server.url}/models/duration/predict", json={"rows": []})
    assert unknown.status_code == 404 and "no model 'duration'" in unknown.json()["detail"]
    assert "fare, tip" in unknown.json()["detail"]
    assert httpx.post(f"{server.url}/predict", json={"rows": []}).status_code == 404


def test_monitor_models_and_lineage_per_model(project: Path, server: Server) -> None:
    """Monitoring, the registry and lineage in a project with `models:` (through `conveyor.Project`):
    each model's own log, reference, registered versions and chain; `model=` / `--for` picks one;
    a wrong name is one line."""
    from conveyor import Project
    from conveyor.core.config import load_config
    from conveyor.core.errors import ConfigError

    config = load_config(project / "conveyor.yaml")
    request_ids = {}
    for model in ("fare", "tip"):
        rows = _rows(project, config.for_model(model).schema.features(), n=40)
        answer = httpx.post(f"{server.url}/models/{model}/predict", json={"rows": rows})
        assert answer.status_code == 200, answer.text
        request_ids[model] = answer.json()["predictions"][0]["request_id"]
    logged = {m: sum(len(p.read_text().splitlines()) for p in (project / "predictions" / m).glob("**/*.jsonl"))
              for m in ("fare", "tip")}
    assert logged["fare"] >= 40 and logged["tip"] >= 40

    opened = Project(project)
    assert opened.model_names == ["fare", "tip"]
    for model in ("fare", "tip"):  # each model's check counts its own log, not the other's
        check = opened.monitor(model=model)
        summary = json.loads((project / "reports" / f"drift-{model}.json").read_text())
        window = summary["window"]
        assert window["predictions"] + sum(window["other_versions_skipped"].values()) == logged[model]
        assert summary["model"] == f"nyc-taxi-{model}" and check.n_current == window["predictions"]
        assert check.verdict == summary["verdict"], check.reasons
        assert set(config.for_model(model).schema.features()) <= {row.name for row in check.rows}, check.rows
    wrong = conveyor("monitor", "-C", str(project), "--for", "duration", check=False)
    assert wrong.returncode != 0 and "Traceback" not in wrong.stderr
    assert "no model 'duration'" in wrong.stderr and "fare, tip" in wrong.stderr

    for model in ("fare", "tip"):
        registry = opened.models(model)
        assert registry.name == f"nyc-taxi-{model}" and registry.champion == "1", registry
    with pytest.raises(ConfigError, match="several models"):
        opened.models()
    shown = opened.model_version(1, model="tip")
    assert shown.version == "1" and shown.feature_service == "nyc_taxi_tip_model", shown

    chain = opened.lineage(request_ids["tip"])
    assert [step.kind for step in chain][:3] == ["prediction", "model", "training_set"] and chain[-1].kind == "source_file"
    assert chain[0].path.startswith("predictions/tip") and chain[1].digest == "nyc-taxi-tip v1", chain
    by_version = opened.lineage(version="1", model="fare")
    assert by_version[0].digest == "nyc-taxi-fare v1" and by_version[1].kind == "training_set", by_version


def test_a_model_of_models_has_its_own_shadow(project: Path) -> None:
    """`serving.shadow: {tip: 1}`: the tip model's requests are also scored by its v1, logged in
    `predictions/tip/shadow/` with the champion's request ids; the fare model has no shadow.
    (`serving` is in no stage's cache key, so editing it leaves the shared project's stages cached.)"""
    from conveyor.core.records import PredictionRecord
    from conveyor.stages.monitoring import PredictionLog

    config_file = project / "conveyor.yaml"
    original = config_file.read_text()
    data = yaml.safe_load(original)
    data["serving"]["shadow"] = {"tip": 1}
    config_file.write_text(yaml.safe_dump(data, sort_keys=False))
    server = Server(project)
    try:
        server.start()
        from conveyor.core.config import load_config

        own = load_config(config_file).for_model("tip")
        answer = httpx.post(f"{server.url}/models/tip/predict", json={"rows": _rows(project, own.schema.features(), n=5)})
        assert answer.status_code == 200, answer.text
        fare = httpx.post(f"{server.url}/models/fare/predict",
                          json={"rows": _rows(project, load_config(config_file).for_model("fare").schema.features())})
        assert fare.status_code == 200, fare.text
    finally:
        server.stop()  # SIGTERM: the shadow queue drains on shutdown
        config_file.write_text(original)
    served = {p["request_id"]: p["prediction"] for p in answer.json()["predictions"]}
    shadowed: list[PredictionRecord] = PredictionLog(project / "predictions" / "tip" / "shadow").records()
    by_id = {r.request_id: r for r in shadowed}
    assert set(served) <= set(by_id)
    for request_id, prediction in served.items():  # v1 is the champion here: the same answer
        assert by_id[request_id].model_version == "1" and by_id[request_id].prediction == pytest.approx(prediction)
    assert not (project / "predictions" / "fare" / "shadow").exists()
