"""Training a split past the search's sample and the final fit's budget (a real project, real MLflow).

130,000 rows make a training split of 104,000: over `LARGE_FIT_ROWS`, so the final fit's clock
applies, and over the search's `sample_rows`. A budget far too small for the data makes the
clock end both LightGBM fits, which the run table, the MLflow run and the served model must
agree on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from conveyor import Project
from conveyor.stages.training._threads import LARGE_FIT_ROWS
from tests.conftest import stage_result

pytestmark = pytest.mark.slow

ROWS = 130_000


def _csv(path: Path) -> None:
    import polars as pl

    rng = np.random.default_rng(5)
    x = rng.normal(size=(ROWS, 3))
    y = np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] + rng.normal(0, 0.1, ROWS)
    start = np.datetime64("2024-01-01T00:00:00")
    when = (start + np.arange(ROWS).astype("timedelta64[m]")).astype(str)
    pl.DataFrame({"when": [w.replace("T", " ") for w in when], "a": x[:, 0].round(4), "b": x[:, 1].round(4),
                  "c": x[:, 2].round(4), "y": y.round(4)}).write_csv(path)


def test_a_large_split_searches_a_sample_and_its_fit_ends_at_the_budget_saying_so(tmp_path: Path) -> None:
    import mlflow

    folder = tmp_path / "large"
    folder.mkdir()
    _csv(folder / "data.csv")
    Project.init(folder / "data.csv", target="y", name="large")
    config = yaml.safe_load((folder / "conveyor.yaml").read_text())
    config["training"]["search"] = {"trials": 2, "budget_s": 600, "folds": 2, "sample_rows": 5_000}
    config["training"]["lightgbm"]["budget_s"] = 0.01  # the clock, not early stopping, ends every fit
    (folder / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    project = Project(folder)
    project.run()
    train = stage_result(folder, "train")
    assert train.train_rows >= LARGE_FIT_ROWS
    assert f"on a sample of 5,000 of {train.train_rows:,} training rows" in train.cv
    lightgbm = train.candidates["lightgbm"]
    assert lightgbm.trials == 2 and lightgbm.stopped_by == "trials"  # the sample's trials are cheap: both ran
    capped = [n for n in train.notes if "still improving when training.lightgbm.budget_s ran out" in n]
    assert capped, train.notes
    rounds = int(capped[0].rsplit(": ", 1)[1].split()[0])
    assert 1 <= rounds < 3000
    logged = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").get_run(lightgbm.run_id)
    assert int(logged.data.params["model.n_estimators"]) == rounds
    assert "cv_gain_over_untuned" in logged.data.metrics or lightgbm.cv_gain is None
    assert "untuned_test_r2" not in logged.data.metrics  # a sampled split skips the untuned refit

    answers = project.predict([{"when": "2024-04-01 00:00:00", "a": 0.5, "b": 1.0, "c": -1.0}])
    assert answers["prediction"].null_count() == 0
