"""The demo data end to end: init, run, serve in a real uvicorn process, HTTP, the log."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.conftest import (
    BIKE_CSV,
    Server,
    Stack,
    bike_rows,
    conveyor,
    feature_row,
    free_port,
    make_bike_project,
    stage_artifact,
    stage_result,
)

pytestmark = pytest.mark.slow


def test_init_infers_the_demo_schema(tmp_path: Path) -> None:
    out = tmp_path / "conveyor.yaml"
    conveyor("init", "--csv", str(BIKE_CSV), "--target", "cnt", "--timestamp", "dteday,hr", "--output", str(out))
    from conveyor.core import load_config

    config = load_config(out)
    schema = config.schema
    assert schema.task == "regression"
    assert schema.event_time.kind == "date_hour" and schema.event_time.columns == ["dteday", "hr"]
    assert schema.entity.generated and schema.entity.key == "row_id"
    assert schema.columns["instant"].role == "id"
    assert schema.columns["weathersit"].role == "categorical"
    assert schema.columns["temp"].type == "float"
    # the source path is written relative to the project file, so the folder can move
    assert (out.parent / config.source.path).resolve() == BIKE_CSV.resolve()


def test_champion_beats_baseline_on_the_latest_20_percent(bike_project: Path) -> None:
    train = stage_result(bike_project, "train")
    assert train.split == "time"
    lightgbm, baseline = train.candidates["lightgbm"].metrics, train.candidates["baseline"].metrics
    assert lightgbm["r2"] >= 0.85
    assert lightgbm["r2"] > baseline["r2"]
    frame = pd.read_parquet(stage_artifact(bike_project, "dataset").path).sort_values("event_timestamp")
    assert train.test_rows == pytest.approx(len(frame) * 0.2, abs=30)
    assert train.train_rows + train.test_rows == len(frame)


def test_champion_is_registered_in_mlflow(bike_project: Path) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{bike_project / 'mlflow.db'}")
    version = client.get_model_version_by_alias("bike-sharing", "champion")
    promote = stage_result(bike_project, "promote")
    assert promote.promoted and promote.champion == str(version.version)
    run = client.get_run(version.run_id)
    assert run.data.params["model"] == "lightgbm"
    assert run.data.metrics["test_r2"] >= 0.85
    assert {i.dataset.name for i in run.inputs.dataset_inputs} == {"bike-sharing-train", "bike-sharing-test"}
    artifacts = {a.path for a in client.list_artifacts(version.run_id)}
    assert {"plots", "reference"} <= artifacts
    mlflow.set_tracking_uri(f"sqlite:///{bike_project / 'mlflow.db'}")
    info = mlflow.models.get_model_info("models:/bike-sharing@champion")
    assert info.signature is not None and "temp" in info.signature.inputs.input_names()
    assert info.saved_input_example_info is not None


def test_training_set_comes_from_feast_without_losing_rows(bike_project: Path) -> None:
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(bike_project / "feature_repo"))
    views = {v.name: v for v in store.list_feature_views()}
    assert set(views) == {"bike_sharing_features"}
    assert {f.name for f in views["bike_sharing_features"].features} == {
        "season", "yr", "mnth", "hr", "holiday", "weekday", "workingday", "weathersit",
        "temp", "atemp", "hum", "windspeed",
    }
    dataset = stage_result(bike_project, "dataset")
    prepare = stage_result(bike_project, "prepare")
    assert dataset.rows == dataset.entity_rows == prepare.rows == 17379


def test_eda_report_is_offline_html_with_plots(bike_project: Path) -> None:
    html = (bike_project / "reports" / "eda.html").read_text()
    assert html.count("data:image/png;base64,") >= 4
    assert "http://" not in html and "https://" not in html
    checks = html[html.index("<h2>Target checks</h2>"):html.index("<h2>Columns</h2>")]
    assert "No feature reproduces the target" in checks  # init proposed the leaks; schema.drop left them out
    assert "Left out by schema.drop: casual, registered." in checks


def test_second_run_is_cached_and_from_reruns(bike_project: Path) -> None:
    from conveyor import Project

    project = Project(bike_project)
    again = project.run()
    assert [s.status for s in again] == ["cached"] * 7 and again.ran == [], again
    before = stage_result(bike_project, "promote").champion
    rerun = project.run(from_="train")
    assert rerun.ran == ["train", "promote"] and len(rerun) == 7, rerun
    assert rerun["train"].why == rerun["promote"].why == "forced", rerun
    promote = stage_result(bike_project, "promote")
    assert rerun["promote"].result == promote
    # the same data and seed give the same score: the gate wants better, not equal
    assert not promote.promoted and promote.champion == before
    assert any("does not beat champion" in reason for reason in promote.reasons)


def test_predictions_by_rows_and_by_entity_agree(bike_server: Server) -> None:
    rows = bike_rows()
    features = httpx.get(f"{bike_server.url}/health").json()["features"]
    keys = [1, 2, 500, 9000, 17379]  # row_id is the row's position in the file
    raw = [feature_row(rows[k - 1], features) for k in keys]
    assert raw[0]["windspeed"] == 0.0  # read as missing, in training and in serving alike
    by_rows = httpx.post(f"{bike_server.url}/predict", json={"rows": raw}).json()["predictions"]
    by_keys = httpx.post(f"{bike_server.url}/predict", json={"entities": keys}).json()["predictions"]
    assert [p["entity"] for p in by_keys] == keys
    for a, b in zip(by_rows, by_keys, strict=True):
        assert a["prediction"] == pytest.approx(b["prediction"], rel=1e-9)
    assert len({round(p["prediction"], 6) for p in by_rows}) == len(keys)


def test_prediction_log_holds_every_prediction(bike_server: Server) -> None:
    from conveyor.stages.monitoring import PredictionLog

    log = PredictionLog(bike_server.project / "predictions")
    before = log.count()
    features = httpx.get(f"{bike_server.url}/health").json()["features"]
    rows = [feature_row(r, features) for r in bike_rows()[100:137]]
    answer = httpx.post(f"{bike_server.url}/predict", json={"rows": rows}).json()
    single = httpx.post(f"{bike_server.url}/predict", json={"entities": [42]}).json()
    records = log.read()
    assert len(records) == before + 38
    logged = {r["request_id"]: r for r in records[-38:]}
    for served in answer["predictions"] + single["predictions"]:
        entry = logged[served["request_id"]]
        assert entry["prediction"] == served["prediction"]
        assert entry["model_version"] == answer["model"]["version"]
        assert set(entry["inputs"]) == set(features)


def test_wrong_types_and_missing_fields_are_422_naming_the_field(bike_server: Server) -> None:
    features = httpx.get(f"{bike_server.url}/health").json()["features"]
    good = feature_row(bike_rows()[0], features)
    wrong = httpx.post(f"{bike_server.url}/predict", json={"rows": [{**good, "temp": "warm"}]})
    assert wrong.status_code == 422
    assert wrong.json()["detail"][0]["loc"] == ["body", "rows", 0, "temp"]
    missing = {k: v for k, v in good.items() if k != "hum"}
    answer = httpx.post(f"{bike_server.url}/predict", json={"rows": [good, missing]})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "rows", 1, "hum"]
    assert answer.json()["detail"][0]["type"] == "missing"
    both = httpx.post(f"{bike_server.url}/predict", json={"rows": [good], "entities": [1]})
    assert both.status_code == 422 and "exactly one" in both.text
    assert httpx.post(f"{bike_server.url}/predict", json={"entities": ["x"]}).status_code == 422
    assert httpx.post(f"{bike_server.url}/predict", content=b"{not json").status_code == 422
    unknown = httpx.post(f"{bike_server.url}/predict", json={"entities": [10**9]})
    assert unknown.status_code == 404 and str(10**9) in unknown.text
    # a null is an explicit missing value, and is allowed
    assert httpx.post(f"{bike_server.url}/predict", json={"rows": [{**good, "hum": None}]}).status_code == 200


def test_metrics_are_prometheus_text(bike_server: Server) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    httpx.post(f"{bike_server.url}/predict", json={"entities": [7, 8, 9]}).raise_for_status()
    text = httpx.get(f"{bike_server.url}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"conveyor_requests", "conveyor_request_latency_seconds", "conveyor_prediction_value",
            "conveyor_predictions", "conveyor_model_info"} <= set(families)
    served = sum(s.value for s in families["conveyor_predictions"].samples if s.name.endswith("_total"))
    observed = next(s.value for s in families["conveyor_prediction_value"].samples if s.name.endswith("_count"))
    assert served >= 3 and observed == served
    ok = [s for s in families["conveyor_requests"].samples
          if s.name.endswith("_total") and s.labels["path"] == "/predict" and s.labels["status"] == "200"]
    assert ok and ok[0].value >= 1


def test_a_killed_server_loses_no_logged_prediction(bike_project: Path) -> None:
    from conveyor.stages.monitoring import PredictionLog

    log = PredictionLog(bike_project / "predictions")
    server = Server(bike_project).start()
    try:
        keys = list(range(300, 340))
        served = []
        for key in keys:
            served += httpx.post(f"{server.url}/predict", json={"entities": [key]}).json()["predictions"]
        server.kill()  # SIGKILL straight after the last answer
        logged = {r["request_id"] for r in log.read()}
        assert all(p["request_id"] in logged for p in served)
        restarted = Server(bike_project).start()
        try:
            again = httpx.post(f"{restarted.url}/predict", json={"entities": [keys[0]]}).json()["predictions"][0]
            after = {r["request_id"] for r in log.read()}
            assert logged | {again["request_id"]} == after
            assert again["prediction"] == pytest.approx(served[0]["prediction"])
        finally:
            restarted.stop()
    finally:
        server.stop()


def test_api_key_guards_predict_when_configured(bike_project: Path, tmp_path: Path) -> None:
    import shutil

    import yaml

    project = tmp_path / "secured"
    shutil.copytree(bike_project, project, ignore=shutil.ignore_patterns("predictions", "server-*.log"))
    config = yaml.safe_load((project / "conveyor.yaml").read_text())
    config["serving"]["api_key_env"] = "CONVEYOR_TEST_KEY"
    (project / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    # the workspace was copied: Feast and MLflow paths point at the original, which is still there
    server = Server(project, env={"CONVEYOR_TEST_KEY": "s3cret"}).start()
    try:
        body = {"entities": [5]}
        assert httpx.post(f"{server.url}/predict", json=body).status_code == 401
        assert httpx.post(f"{server.url}/predict", json=body, headers={"X-API-Key": "nope"}).status_code == 401
        ok = httpx.post(f"{server.url}/predict", json=body, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert httpx.get(f"{server.url}/health").status_code == 200
    finally:
        server.stop()


# --- the lifecycle on every stack -------------------------------------------------------------
#
# init, run, serve over HTTP, monitor, lineage, models and a hot swap, once on the embedded
# default and once on the team stack (MLflow server, Feast registry on PostgreSQL, offline data
# in S3): the `stack` fixture is the matrix, as Feast runs one universal test suite over stores.

@dataclass
class Lifecycle:
    stack: Stack
    project: Path
    name: str
    server: Server

    def client(self) -> Any:
        from mlflow import MlflowClient

        uri = self.stack.env["MLFLOW_TRACKING_URI"] if self.stack.shared else f"sqlite:///{self.project / 'mlflow.db'}"
        return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture(scope="module")
def lifecycle(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lifecycle]:
    import yaml

    os.environ.update(stack.env)  # other tests' in-process MLflow calls may have changed MLFLOW_TRACKING_URI

    project = make_bike_project(tmp_path_factory.mktemp(f"lifecycle-{stack.name}"))
    proposed = project / "proposed.yaml"
    conveyor("init", "--csv", str(project / BIKE_CSV.name), "--target", "cnt", "--timestamp", "dteday,hr",
             "--output", str(proposed))
    assert yaml.safe_load(proposed.read_text())["schema"]["target"] == "cnt"  # then edited, as the demo's file is
    name = stack.configure(project)
    config = yaml.safe_load((project / "conveyor.yaml").read_text())
    config["serving"]["reload_s"] = 0.5
    (project / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    conveyor("run", "-C", str(project))
    server = Server(project, env=stack.env).start()
    yield Lifecycle(stack, project, name, server)
    server.stop()


@pytest.fixture(autouse=True)
def _stack_environment(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lifecycle test runs its commands with its stack's variables, whatever ran before it."""
    if "lifecycle" in request.fixturenames:
        for name, value in request.getfixturevalue("lifecycle").stack.env.items():
            monkeypatch.setenv(name, value)


def test_lifecycle_run_trains_promotes_and_keeps_every_row(lifecycle: Lifecycle) -> None:
    project = lifecycle.project
    dataset, prepare = stage_result(project, "dataset"), stage_result(project, "prepare")
    assert dataset.rows == dataset.entity_rows == prepare.rows == 17379
    assert stage_result(project, "train").candidates["lightgbm"].metrics["r2"] >= 0.85
    promote = stage_result(project, "promote")
    assert promote.promoted and promote.champion is not None
    client = lifecycle.client()
    assert str(client.get_model_version_by_alias(lifecycle.name, "champion").version) == promote.champion
    registry = project / "feature_repo" / "data" / "registry.pb"
    if lifecycle.stack.shared:  # nothing of it in the project folder: all on the shared services
        import boto3

        assert not (project / "mlflow.db").exists() and not registry.exists()
        assert "MLflow server http://127.0.0.1" in (project / ".conveyor" / "mlflow-server").read_text()
        project_key = lifecycle.name.replace("-", "_")
        listed = boto3.client("s3").list_objects_v2(
            Bucket=lifecycle.stack.env["CONVEYOR_S3_BUCKET"], Prefix=f"conveyor-tests/{project_key}/")
        assert {o["Key"].rsplit("/", 1)[-1] for o in listed.get("Contents", [])} == {"source.parquet"}
        text = (project / "feature_repo" / "feature_store.yaml").read_text()
        assert "registry_type: sql" in text and "${CONVEYOR_PG_DSN}" in text
    else:
        assert (project / "mlflow.db").is_file() and registry.is_file()


def test_lifecycle_second_run_is_cached(lifecycle: Lifecycle) -> None:
    again = conveyor("run", "-C", str(lifecycle.project))
    assert again.stdout.count("cached") == 7, again.stdout


def test_lifecycle_serves_over_http(lifecycle: Lifecycle) -> None:
    url = lifecycle.server.url
    features = httpx.get(f"{url}/health").json()["features"]
    keys = [1, 500, 17379]
    by_rows = httpx.post(f"{url}/predict", json={"rows": [feature_row(bike_rows()[k - 1], features) for k in keys]})
    by_keys = httpx.post(f"{url}/predict", json={"entities": keys})
    assert by_rows.status_code == by_keys.status_code == 200, (by_rows.text, by_keys.text)
    for a, b in zip(by_rows.json()["predictions"], by_keys.json()["predictions"], strict=True):
        assert a["prediction"] == pytest.approx(b["prediction"], rel=1e-9)
    assert by_keys.json()["model"]["version"] == stage_result(lifecycle.project, "promote").champion


def test_lifecycle_monitor_models_and_lineage(lifecycle: Lifecycle) -> None:
    import hashlib

    project, url = lifecycle.project, lifecycle.server.url
    features = httpx.get(f"{url}/health").json()["features"]
    rows = [feature_row(r, features) for r in bike_rows()[1000:1400]]
    served = httpx.post(f"{url}/predict", json={"rows": rows}, timeout=60)
    served.raise_for_status()
    conveyor("monitor", "-C", str(project), "--window", "400")
    report = json.loads((project / "reports" / "drift.json").read_text())
    assert report["n_current"] == 400 and report["verdict"] in ("no drift", "drift")
    champion = stage_result(project, "promote").champion
    models = conveyor("models", "-C", str(project)).stdout
    assert "@champion" in models and champion in models
    request_id = served.json()["predictions"][0]["request_id"]
    out = conveyor("lineage", request_id, "-C", str(project)).stdout
    sha = hashlib.sha256((project / BIKE_CSV.name).read_bytes()).hexdigest()
    for needle in (request_id[:16], f"v{champion}", "training_set", "clean", "raw", sha[:16]):
        assert needle in out, out
    if lifecycle.stack.shared:
        assert "MLflow server http://127.0.0.1" in out


def test_lifecycle_server_follows_a_moved_champion(lifecycle: Lifecycle) -> None:
    """Hot swap: on `mlflow.db` the server watches the file; on an MLflow server it polls the alias."""
    url, name = lifecycle.server.url, lifecycle.name
    client = lifecycle.client()
    current = client.get_model_version_by_alias(name, "champion")
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    saved = os.environ.get("MLFLOW_TRACKING_URI")
    with _use_tracking_uri(client.tracking_uri):  # the registry resolves `models:/m-...` on the global URI
        model_id = current.model_id or current.source.removeprefix("models:/")  # a server wants it named
        new = str(client.create_model_version(name, source=current.source, run_id=current.run_id,
                                              model_id=model_id).version)
    if saved is not None:  # leaving the block unsets it
        os.environ["MLFLOW_TRACKING_URI"] = saved
    client.set_registered_model_alias(name, "champion", new)
    # the server's own poll (serving.reload_s, 10 s) makes the swap; it then loads the model from the
    # registry, which a loaded CI machine has stretched past 30 s: the bound is a hang guard, not a speed
    deadline = time.monotonic() + 180
    while httpx.get(f"{url}/health").json()["model"]["version"] != new:
        assert time.monotonic() < deadline, "the server did not follow @champion within 180 s"
        time.sleep(0.2)
    answer = httpx.post(f"{url}/predict", json={"entities": [7]})
    assert answer.status_code == 200 and answer.json()["model"]["version"] == new


def test_lifecycle_leaves_no_credential_behind(lifecycle: Lifecycle) -> None:
    """No connection string or key in the project folder (config, records, logs, Feast's files) or
    in any param or tag on the tracking server."""
    stack = lifecycle.stack
    secrets = {v for k, v in stack.env.items() if k in ("CONVEYOR_PG_DSN", "REDIS_URL", "AWS_SECRET_ACCESS_KEY")}
    assert len(secrets) == (3 if stack.shared else 0)
    found = []
    for path in lifecycle.project.rglob("*"):
        if path.is_file() and path.name != BIKE_CSV.name:
            data = path.read_bytes()
            found += [f"{path}: {s[:12]}..." for s in secrets if s.encode() in data]
    client = lifecycle.client()
    experiment = client.get_experiment_by_name(lifecycle.name)
    texts = []
    for run in client.search_runs([experiment.experiment_id]):
        texts += [*run.data.params.values(), *run.data.tags.values()]
    for version in client.search_model_versions(f"name = '{lifecycle.name}'"):
        texts += list(version.tags.values())
    texts += list(client.get_registered_model(lifecycle.name).tags.values())
    assert len(texts) > 20  # the runs' params and tags were read
    found += [f"MLflow: {s[:12]}..." for s in secrets for t in texts if s in t]
    assert not found, found


# --- the logged model outside Conveyor -------------------------------------------------------
#
# `python -I -S` with the virtualenv's site-packages put on sys.path by hand: no PYTHONPATH, no
# user site, and no `.pth` files, which is how an editable install of Conveyor is found. The
# third-party packages are all there; `import conveyor` fails, as in a clean virtualenv with
# only the model's requirements installed.

SITE_PACKAGES = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
WITHOUT_CONVEYOR = (
    f"import sys; sys.path.extend({SITE_PACKAGES!r}); import importlib.util; "
    "assert importlib.util.find_spec('conveyor') is None, 'conveyor is importable'"
)


def _isolated(code: str) -> list[str]:
    return [sys.executable, "-I", "-S", "-c", f"{WITHOUT_CONVEYOR}\n{code}"]


@dataclass
class Exported:
    model: Path  # the champion's MLflow model folder, copied out of the project
    rows: pd.DataFrame
    expected: list[float]  # what Conveyor's own serving path predicts for `rows`


@pytest.fixture(scope="module")
def exported(bike_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    import shutil
    from urllib.parse import urlparse

    import mlflow

    from conveyor.core import Workspace, load_config
    from conveyor.stages.training import load_champion

    uri = f"sqlite:///{bike_project / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias("bike-sharing", "champion")
    logged = client.get_logged_model(version.source.removeprefix("models:/"))
    model = tmp_path_factory.mktemp("exported") / "model"
    shutil.copytree(urlparse(logged.artifact_location).path, model)
    champion = load_champion(load_config(bike_project / "conveyor.yaml"), Workspace.at(bike_project))
    frame = pd.read_csv(BIKE_CSV)
    rows = frame.loc[::50, champion.model.features].reset_index(drop=True)  # ~350 rows, every season and hour
    assert (rows["windspeed"] == 0).any()  # the project's missing-value rule is part of the model
    expected = champion.model.predict_records(rows.to_dict("records"))["prediction"]
    return Exported(model, rows, expected)


def test_the_logged_model_predicts_where_conveyor_is_not_installed(exported: Exported, tmp_path: Path) -> None:
    (tmp_path / "rows.json").write_text(exported.rows.to_json(orient="split", index=False))
    code = (
        "import json, mlflow.pyfunc, pandas as pd\n"
        f"model = mlflow.pyfunc.load_model({str(exported.model)!r})\n"
        f"rows = pd.read_json({str(tmp_path / 'rows.json')!r}, orient='split')\n"
        "print(json.dumps({'conveyor': sys.modules['conveyor'].__file__,\n"
        "                  'prediction': model.predict(rows)['prediction'].tolist()}))\n"
    )
    result = subprocess.run(_isolated(code), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.splitlines()[-1])
    assert Path(answer["conveyor"]).is_relative_to(exported.model / "code")  # the model's own copy
    assert max(abs(a - b) for a, b in zip(answer["prediction"], exported.expected, strict=True)) == 0


def test_mlflow_models_serve_answers_where_conveyor_is_not_installed(exported: Exported, tmp_path: Path) -> None:
    # `mlflow models serve --env-manager local` runs `uvicorn` from PATH: this one is isolated too
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    uvicorn = _isolated("sys.argv[0] = 'uvicorn'; from uvicorn.main import main; main()")
    (bin_dir / "uvicorn").write_text(f'#!/bin/sh\nexec {shlex.join(uvicorn)} "$@"\n')
    (bin_dir / "uvicorn").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    port = free_port()
    command = _isolated("sys.argv[0] = 'mlflow'; from mlflow.cli import cli; cli()") + [
        "models", "serve", "-m", str(exported.model), "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port),
    ]
    log = tmp_path / "serve.log"
    with log.open("wb") as handle:
        server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"not ready in 90 s:\n{log.read_text()}"
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.25)
        body = {"dataframe_split": json.loads(exported.rows.to_json(orient="split", index=False))}
        answer = httpx.post(f"{url}/invocations", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        served = [p["prediction"] for p in answer.json()["predictions"]]
        assert max(abs(a - b) for a, b in zip(served, exported.expected, strict=True)) == 0
        assert "conveyor is importable" not in log.read_text()
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the group: mlflow and the uvicorn it started
        server.wait(timeout=30)


def test_loading_the_model_first_leaves_the_installed_conveyor_importable(exported: Exported, tmp_path: Path) -> None:
    """Where Conveyor is installed, the model's copy stands aside: `conveyor` is the package."""
    code = (
        "import json, sys, mlflow.pyfunc\n"
        f"model = mlflow.pyfunc.load_model({str(exported.model)!r}).unwrap_python_model()\n"
        "import conveyor, conveyor.cli\n"
        "from conveyor.stages.training import load_champion\n"
        "print(json.dumps([conveyor.__file__, sys.modules[type(model).__module__].__file__]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    package, model_module = json.loads(result.stdout.splitlines()[-1])
    import conveyor

    installed = Path(conveyor.__file__).parent
    assert Path(package).parent == installed
    assert Path(model_module).is_relative_to(installed)
