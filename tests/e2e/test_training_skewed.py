"""A right-skewed price target: the champion is at least as good as LightGBM on log(price).

The shipped house-price-like file (`benchmarks/make_house_prices.py`), 1,200 rows, `init`
untouched but for a tiny search budget (trials, so the result is the same on every run).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import ROOT, conveyor, stage_artifact, stage_result

pytestmark = pytest.mark.slow

HOUSES = ROOT / "tests" / "data" / "house_prices.csv"


@pytest.fixture(scope="module")
def house_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("house")
    with HOUSES.open(newline="") as source, (folder / "houses.csv").open("w", newline="") as out:
        rows = list(csv.reader(source))
        csv.writer(out).writerows(rows[:1201])
    conveyor("init", "--csv", "houses.csv", "--target", "sale_price", "--entity", "house_id", "--name", "houses", cwd=folder)
    config = yaml.safe_load((folder / "conveyor.yaml").read_text())
    config["training"]["search"] = {"trials": 5, "budget_s": 300}
    (folder / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    conveyor("run", "-C", str(folder))
    return folder


def test_the_champion_of_a_skewed_target_matches_lightgbm_on_its_log(house_project: Path) -> None:
    import lightgbm as lgb

    from conveyor.core.cleaning import MissingValues
    from conveyor.runner import load_project
    from conveyor.stages.training._encoder import FeatureEncoder
    from conveyor.stages.training._metrics import regression_scores
    from conveyor.stages.training._train import load_split

    train = stage_result(house_project, "train")
    champion = train.candidates[train.best].metrics["r2"]
    config, _ = load_project(house_project)
    train_df, test_df, _ = load_split(config, stage_artifact(house_project, "dataset"))
    schema = config.schema
    encoder = FeatureEncoder(config.model_numeric(), schema.categorical(), MissingValues(config.cleaning.null_values))
    encoder.fit(train_df)
    reference = lgb.LGBMRegressor(n_jobs=1, verbose=-1, random_state=0)
    reference.fit(encoder.transform(train_df), np.log1p(train_df[schema.target].to_numpy(dtype=float)),
                  categorical_feature=encoder.categorical_indices or "auto")
    predicted = np.expm1(reference.predict(encoder.transform(test_df)))
    log_lightgbm = regression_scores(test_df[schema.target].to_numpy(dtype=float), predicted)["r2"]
    assert champion >= log_lightgbm, (train.summary(), log_lightgbm)
    # the log target was tried on CV: a trial of its own right after the untuned one (trial 1)
    from mlflow.tracking import MlflowClient

    from conveyor.core import Workspace

    client = MlflowClient(tracking_uri=f"sqlite:///{Workspace.at(house_project).mlflow_db}")
    trials = client.search_runs([train.experiment_id], "tags.`conveyor.candidate` = 'lightgbm' and params.target = 'log'")
    assert "1" in {run.data.tags.get("conveyor.trial") for run in trials}
