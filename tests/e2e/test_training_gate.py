"""The promotion gate decides between models, on data built so the right answer is known.

Every project here uses a tiny search budget (3 trials), so the file runs in about a minute.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from conveyor import Project
from tests.conftest import Server, conveyor, stage_result

pytestmark = pytest.mark.slow

TINY_SEARCH = {"trials": 3, "timeout_s": 60, "folds": 3}


def _write(path: Path, columns: dict[str, np.ndarray]) -> None:
    names = list(columns)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for row in zip(*(columns[n] for n in names)):
            writer.writerow(row)


def _project(folder: Path, columns: dict[str, np.ndarray], target: str, **training: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "data.csv", columns)
    Project.init(folder / "data.csv", target=target, name="gate")
    config = yaml.safe_load((folder / "conveyor.yaml").read_text())
    config["training"]["search"] = dict(TINY_SEARCH)
    config["training"].update(training)
    (folder / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def _linear_data(rows: int = 500, seed: int = 0) -> dict[str, np.ndarray]:
    """A noisy linear target: nothing for trees to find that a linear model does not see better."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    y = 3 * x[:, 0] - 2 * x[:, 1] + 1.5 * x[:, 2] + 0.5 * x[:, 3] + rng.normal(scale=2.0, size=rows)
    return {"a": x[:, 0].round(4), "b": x[:, 1].round(4), "c": x[:, 2].round(4), "d": x[:, 3].round(4), "y": y.round(4)}


@pytest.fixture(scope="module")
def linear_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = _project(tmp_path_factory.mktemp("linear"), _linear_data(), "y")
    Project(project).run()
    return project


def test_the_linear_model_wins_becomes_champion_and_serves(linear_project: Path) -> None:
    train = stage_result(linear_project, "train")
    assert set(train.candidates) == {"trivial", "baseline", "lightgbm"}
    assert train.best == "baseline", train.summary()
    assert train.candidates["baseline"].trials == 3 and train.candidates["lightgbm"].trials == 3
    promote = stage_result(linear_project, "promote")
    assert promote.promoted and promote.candidate == "baseline" and promote.champion == "1", promote.summary()
    assert promote.scores["baseline"] > promote.scores["lightgbm"] and promote.scores["baseline"] > promote.scores["trivial"]
    assert promote.change is not None and promote.change.old is None and promote.change.new == "1"

    server = Server(linear_project).start()
    try:
        health = httpx.get(f"{server.url}/health").json()
        assert health["model"]["version"] == "1"
        answer = httpx.post(f"{server.url}/predict", json={"rows": [{"a": 1.0, "b": 0.0, "c": 0.0, "d": 0.0}]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"][0]["prediction"] == pytest.approx(3.0, abs=1.0)
    finally:
        server.stop()


def test_a_second_equal_run_keeps_the_champion(linear_project: Path) -> None:
    first = stage_result(linear_project, "train")
    out = Project(linear_project).run(from_="train")
    assert out.ran == ["train", "promote"], out
    again = stage_result(linear_project, "train")
    for name in ("baseline", "lightgbm"):  # seeded search: the same hyperparameters and metrics
        assert again.candidates[name].params == first.candidates[name].params
        assert again.candidates[name].metrics == first.candidates[name].metrics
        assert again.candidates[name].run_id != first.candidates[name].run_id
    promote = stage_result(linear_project, "promote")
    assert not promote.promoted and promote.champion == "1"
    assert promote.champion_score == pytest.approx(promote.candidate_score)
    assert any("does not beat champion v1" in reason for reason in promote.reasons), promote.reasons
    assert promote.summary().startswith("champion stays v1: ") and out["promote"].summary == promote.summary()


def test_models_lists_versions_history_and_lineage(linear_project: Path) -> None:
    project = Project(linear_project)
    registry = project.models()
    assert registry.name == "gate" and registry.champion == "1", registry
    assert [(v.version, v.model, v.aliases) for v in registry.versions] == [("1", "baseline", ["champion"])]
    assert [(c.old, c.new) for c in registry.history] == [(None, "1")]
    shown = project.model_version("v1")
    train = stage_result(linear_project, "train")
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{linear_project / 'mlflow.db'}")
    version = client.get_model_version("gate", "1")
    assert shown.run_id == version.run_id and shown.feature_service == "gate_model", shown
    assert shown.training_set == version.tags["conveyor.training_set"] and shown.config == version.tags["conveyor.config"]
    assert shown.metrics == registry.versions[0].metrics and "r2" in shown.metrics, shown
    assert len(version.tags["conveyor.training_set"]) == 64 and len(version.tags["conveyor.config"]) == 64
    assert version.tags["conveyor.feature_service"] == "gate_model"
    registered = client.get_registered_model("gate")
    history = [k for k in registered.tags if k.startswith("conveyor.champion.history.")]
    assert history == ["conveyor.champion.history.0001"]
    logged = client.get_logged_model(train.candidates["lightgbm"].model_id)
    assert logged.tags["conveyor.training_set"] == version.tags["conveyor.training_set"]
    trials = client.search_runs(
        [train.experiment_id], f"tags.mlflow.parentRunId = '{train.candidates['lightgbm'].run_id}'"
    )
    assert len(trials) == 3 and all("cv_r2" in t.data.metrics for t in trials)


def test_lower_is_better_metric_picks_the_lower_error(linear_project: Path) -> None:
    """The same project with `training.metric: rmse`: the lower error wins, and the champion,
    re-scored in rmse, is compared the right way round (an equal model does not replace it)."""
    config = yaml.safe_load((linear_project / "conveyor.yaml").read_text())
    config["training"]["metric"] = "rmse"
    (linear_project / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    out = Project(linear_project).run()
    train = stage_result(linear_project, "train")
    assert train.primary_metric == "rmse" and not train.greater_is_better
    rmse = {n: c.metrics["rmse"] for n, c in train.candidates.items()}
    assert train.best == min(("baseline", "lightgbm"), key=rmse.__getitem__) == "baseline"
    promote = stage_result(linear_project, "promote")
    assert promote.metric == "rmse" and promote.champion_score == pytest.approx(rmse["baseline"])
    assert not promote.promoted and promote.champion == "1", promote.summary()
    assert "(lower better)" in train.summary() and out["train"].result == train


def test_a_random_target_gets_no_champion_and_one_clear_line(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    columns = {name: rng.normal(size=400).round(4) for name in ("a", "b", "c")}
    columns["y"] = rng.normal(size=400).round(4)
    project = _project(tmp_path / "random", columns, "y")
    out = Project(project).run()
    promote = stage_result(project, "promote")
    assert not promote.promoted and promote.champion is None
    assert out["promote"].summary.startswith("no champion:"), out
    assert promote.summary().startswith("no champion: ") and "trivial" in promote.summary()
    assert promote.trivial_score is not None and promote.reasons, promote
    served = conveyor("serve", "-C", str(project), check=False)
    assert served.returncode != 0 and "no model 'gate' has the alias @champion" in served.stderr


def test_init_proposes_the_leaks_and_refuses_a_constant_target(tmp_path: Path) -> None:
    from tests.conftest import BIKE_CSV

    out = conveyor("init", "--csv", str(BIKE_CSV), "--target", "cnt", "-o", str(tmp_path / "bike.yaml"))
    config = yaml.safe_load((tmp_path / "bike.yaml").read_text())
    assert config["schema"]["drop"] == ["casual", "registered"]
    assert "casual + registered == cnt on 17379 of 17379 rows" in (tmp_path / "bike.yaml").read_text()
    assert "proposed for schema.drop" in out.stderr  # init writes its findings to stderr

    taxi = Path(__file__).resolve().parents[1] / "data" / "nyc_taxi_trips.csv"
    conveyor("init", "--csv", str(taxi), "--target", "fare_amount", "-o", str(tmp_path / "taxi.yaml"))
    assert yaml.safe_load((tmp_path / "taxi.yaml").read_text())["schema"]["drop"] == ["total_amount"]

    _write(tmp_path / "flat.csv", {"x": np.arange(30), "y": np.ones(30, dtype=int)})
    failed = conveyor("init", "--csv", "flat.csv", "--target", "y", cwd=tmp_path, check=False)
    assert failed.returncode != 0
    assert failed.stderr.strip().splitlines() == ["error: the target 'y' has one value only ('1' in 30 rows): "
                                                  "nothing to learn; a classifier needs at least two classes"]


def test_the_monitoring_reference_holds_held_out_predictions_only(linear_project: Path) -> None:
    """Prediction drift compares served predictions with the champion's predictions on its test
    split: rows it was fitted on have none (in-sample predictions track the target too closely)."""
    import pandas as pd

    from conveyor.core import Workspace

    train = stage_result(linear_project, "train")
    reference = pd.read_parquet(Workspace.at(linear_project).reference_file("gate", "1"))
    assert len(reference) == train.train_rows + train.test_rows  # every row's features
    predicted = reference["__prediction"].notna()
    assert predicted.sum() == train.test_rows > 0
    # they are the champion's predictions on its test split: they reproduce its test score
    held_out = reference[predicted]
    rmse = float(((held_out["y"] - held_out["__prediction"]) ** 2).mean() ** 0.5)
    assert rmse == pytest.approx(train.candidates["baseline"].metrics["rmse"], rel=1e-6)


def _gate(project: Path) -> tuple[Any, Any, Any, Any]:
    from conveyor.runner import load_project
    from tests.conftest import stage_artifact

    config, workspace = load_project(project)
    return config, workspace, stage_artifact(project, "train"), stage_artifact(project, "dataset")


def test_a_champion_that_cannot_be_loaded_is_named_not_a_traceback(linear_project: Path) -> None:
    """The expected failures of re-scoring the champion are reasons in the decision, each named."""
    from types import SimpleNamespace

    from conveyor.stages.training._registry import _score_champion, client

    config, workspace, _, dataset = _gate(linear_project)
    mlflow_client = client(config, workspace)
    gone = SimpleNamespace(version="7", model_id="m-00000000000000000000000000000000", source="")
    score, why = _score_champion(mlflow_client, config, workspace, gone, dataset)
    assert score is None and why is not None
    assert why.startswith("champion v7 cannot be loaded: MlflowException") and "m-0000" in why
    nameless = SimpleNamespace(version="8", model_id=None, source="runs:/abc/model")
    score, why = _score_champion(mlflow_client, config, workspace, nameless, dataset)
    assert score is None and why == ("champion v8 cannot be loaded: TrainingError: model version 8 names no logged "
                                     "model (source 'runs:/abc/model')")


def test_a_bug_while_re_scoring_the_champion_is_a_traceback(linear_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any other error while re-scoring propagates: it is not turned into "no champion to compare"."""
    from conveyor.stages.training import _registry, champion_number, promote

    config, workspace, train, dataset = _gate(linear_project)
    before = champion_number(config, workspace)
    assert before is not None

    def broken(*_args: object, **_kwargs: object) -> dict[str, float]:
        raise ZeroDivisionError("a bug in a metric")

    monkeypatch.setattr(_registry, "evaluate", broken)  # a fault injected where the champion is scored
    with pytest.raises(ZeroDivisionError, match="a bug in a metric"):
        promote(config, workspace, train, dataset)
    assert champion_number(config, workspace) == before  # nothing moved
    monkeypatch.undo()
    decision = promote(config, workspace, train, dataset).result  # the same call, without the bug
    assert decision.champion_note is None and decision.champion_score is not None
