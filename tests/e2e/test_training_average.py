"""`training.search.average_untuned`: when the search leaves the untuned LightGBM, the model averages the two.

A small synthetic regression file (random split) whose untuned LightGBM is made weak on purpose
(stumps at a high rate, 200 rows a leaf), so the search's regularised start beats it on CV beyond
one standard error; `train` runs in this process on the same training set with the key on and off.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Any]:
    from conveyor.runner import init_project, load_project, run_pipeline

    folder = tmp_path_factory.mktemp("average")
    rng = np.random.default_rng(11)
    rows = 1500
    x1, x2 = rng.normal(size=rows), rng.uniform(-2, 2, rows)
    level = rng.integers(0, 4, rows)
    y = 3 * np.sin(2 * x2) + x1 * x2 + np.array([0.0, 1.0, -1.0, 2.0])[level] + rng.normal(0, 0.3, rows)
    pd.DataFrame({"id": np.arange(rows), "x1": x1.round(4), "x2": x2.round(4), "kind": [f"k{i}" for i in level],
                  "y": y.round(4)}).to_csv(folder / "data.csv", index=False)
    init_project(folder / "data.csv", target="y", output=folder / "conveyor.yaml", entity="id")
    data = yaml.safe_load((folder / "conveyor.yaml").read_text())
    data["training"]["search"] = {"trials": 2, "budget_s": 600, "folds": 3}  # the untuned model, the regularised start
    data["training"]["lightgbm"] = {"learning_rate": 0.5, "num_leaves": 2, "min_child_samples": 200}
    (folder / "conveyor.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    config, workspace = load_project(folder)
    return config, workspace, run_pipeline(config, workspace, stop="dataset")["dataset"]


def _trained(project: tuple[Any, Any, Any], average: bool) -> tuple[Any, Any, float]:
    """The train result, the logged LightGBM model, and that model's r2 on the test split."""
    from conveyor.stages.training._metrics import regression_scores
    from conveyor.stages.training._tracking import client
    from conveyor.stages.training._train import load_split, train
    from conveyor.stages.training._versions import _load

    config, workspace, dataset = project
    training = config.training.model_copy(
        update={"search": config.training.search.model_copy(update={"average_untuned": average})})
    config = config.model_copy(update={"training": training})
    result = train(config, workspace, dataset).result
    model = _load(client(config, workspace), config, workspace, result.candidates["lightgbm"].model_id)
    _, test_df, _ = load_split(config, dataset)
    served = np.asarray(model.predict_frame(test_df)["prediction"], dtype=float)
    return result, model, regression_scores(test_df["y"].to_numpy(dtype=float), served)["r2"]


def test_the_search_choice_is_averaged_with_the_untuned_model_and_served_as_scored(project: tuple[Any, Any, Any]) -> None:
    from conveyor.stages.training._model import Averaged

    result, model, served_r2 = _trained(project, average=True)
    lgbm = result.candidates["lightgbm"]
    assert "lightgbm" not in result.kept_untuned and lgbm.cv_gain is not None and lgbm.cv_gain > 0  # the search left the untuned model
    assert lgbm.averaged and "averaged with untuned" in result.summary()
    assert isinstance(model.estimator, Averaged) and len(model.estimator.members) == 2
    chosen, untuned = (m.get_params() for m in model.estimator.members)
    assert (chosen["num_leaves"], untuned["num_leaves"], untuned["learning_rate"]) == (15, 2, 0.5)
    assert lgbm.metrics["r2"] == pytest.approx(served_r2, abs=1e-9)  # the logged model is the one scored
    assert lgbm.untuned_metrics is not None and lgbm.untuned_metrics["r2"] < lgbm.metrics["r2"]

    from conveyor.stages.training._tracking import client

    config, workspace, _ = project
    assert client(config, workspace).get_run(lgbm.run_id).data.params["averaged_with_untuned"] == "True"

def test_with_average_untuned_off_the_search_choice_alone_is_the_model(project: tuple[Any, Any, Any]) -> None:
    from conveyor.stages.training._model import Averaged

    averaged_result, _, averaged_r2 = _trained(project, average=True)
    result, model, served_r2 = _trained(project, average=False)
    lgbm = result.candidates["lightgbm"]
    assert not lgbm.averaged and "averaged" not in result.summary()
    assert not isinstance(model.estimator, Averaged) and model.estimator.get_params()["num_leaves"] == 15
    assert lgbm.metrics["r2"] == pytest.approx(served_r2, abs=1e-9)
    assert lgbm.params == averaged_result.candidates["lightgbm"].params  # the same search, the same choice
    assert served_r2 != pytest.approx(averaged_r2, abs=1e-6)
