"""A second real dataset, untouched by hand: classification with an entity key and no event time."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import httpx
import pytest

from tests.conftest import CREDIT_CSV, Server, conveyor, stage_result

pytestmark = pytest.mark.slow


def test_credit_default_init_and_run(tmp_path: Path) -> None:
    shutil.copy(CREDIT_CSV, tmp_path / CREDIT_CSV.name)
    conveyor("init", "--csv", CREDIT_CSV.name, "--target", "default.payment.next.month", "--entity", "ID", cwd=tmp_path)
    from conveyor.core import load_config

    config = load_config(tmp_path / "conveyor.yaml")
    assert config.schema.task == "classification"
    assert config.schema.event_time.kind == "ingest_time"
    assert config.schema.columns["LIMIT_BAL"].type == "float"  # "5e+05" in 4150 cells
    assert "ID" not in config.schema.features()
    conveyor("run", "--no-search", cwd=tmp_path)  # the search is tested on small data; its figures: benchmarks/
    train = stage_result(tmp_path, "train")
    assert train.split == "random" and train.primary_metric == "roc_auc"
    assert train.train_rows + train.test_rows == 30000
    auc = train.candidates["lightgbm"].metrics["roc_auc"]
    assert auc >= 0.76
    assert auc > train.candidates["baseline"].metrics["roc_auc"]
    promote = stage_result(tmp_path, "promote")
    assert promote.promoted and promote.champion == "1"

    # a classifier serves a label and the probability of the positive class, by entity or by row
    server = Server(tmp_path).start()
    try:
        with CREDIT_CSV.open(newline="") as handle:
            first = next(csv.DictReader(handle))
        features = httpx.get(f"{server.url}/health").json()["features"]
        row = {f: float(first[f]) if config.schema.columns[f].role == "numeric" else int(first[f]) for f in features}
        by_row = httpx.post(f"{server.url}/predict", json={"rows": [row]}).json()["predictions"][0]
        by_key = httpx.post(f"{server.url}/predict", json={"entities": [int(first["ID"])]}).json()["predictions"][0]
        assert by_row["prediction"] in (0, 1) and 0 <= by_row["probability"] <= 1
        assert by_row["probability"] == pytest.approx(by_key["probability"], rel=1e-9)
        assert by_row["prediction"] == by_key["prediction"] == int(by_row["probability"] >= 0.5)
    finally:
        server.stop()
