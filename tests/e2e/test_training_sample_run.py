"""`training.max_rows` on the bike example: the model is trained on a sample, and everything says so."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import conveyor, make_bike_project, stage_result


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    project = make_bike_project(tmp_path_factory.mktemp("bike-sampled"))
    config = yaml.safe_load((project / "conveyor.yaml").read_text(encoding="utf-8"))
    config["training"]["max_rows"] = 2_000
    (project / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return project, conveyor("run", "-C", str(project), "--no-search").stdout


def test_the_run_table_and_the_result_say_trained_on_n_of_m(sampled: tuple[Path, str]) -> None:
    project, output = sampled
    said = "trained on 2,000 of 17,379 rows (a seeded, time-aware sample: training.max_rows 2,000)"
    trained = stage_result(project, "train")
    assert trained.train_rows + trained.test_rows == 2_000
    assert trained.notes[0] == said
    assert "trained on 2,000 of 17,379 rows" in " ".join(output.split())  # the run table (wrapped by width)
    dataset = stage_result(project, "dataset")
    assert dataset.rows == 17_379  # the training set itself is whole


def test_the_mlflow_runs_and_models_show_say_it(sampled: tuple[Path, str]) -> None:
    from mlflow.tracking import MlflowClient

    project, _ = sampled
    trained = stage_result(project, "train")
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    for name in ("trivial", "baseline", "lightgbm"):
        tags = client.get_run(trained.candidates[name].run_id).data.tags
        assert tags["conveyor.trained_on"].startswith("trained on 2,000 of 17,379 rows"), (name, tags)
    shown = conveyor("models", "show", "1", "-C", str(project)).stdout
    line = next(x for x in shown.splitlines() if x.strip().startswith("rows"))
    assert "trained on 2,000 of 17,379 rows" in line, shown
