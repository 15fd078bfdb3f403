"""A new user's small CSV, end to end: a class that appears only late in time, and the Python API on a
feature named like one of its outputs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import yaml

from tests.conftest import conveyor

PREDICT = """
import json, sys
import conveyor
rows = json.loads(sys.argv[2])
answer = conveyor.Project(sys.argv[1]).predict(rows)
print(json.dumps({"predictions": answer["conveyor_prediction"].to_list(), "given": answer["prediction"].to_list(),
                  "feast": "feast" in sys.modules}))
"""


def _late_class_csv(path: Path) -> list[dict[str, object]]:
    """Rows in time order, the classes in blocks: `c` only in the last third (as a new product would)."""
    rows: list[dict[str, object]] = []
    for i in range(150):
        label = "a" if i < 50 else "b" if i < 100 else "c"
        x = {"a": 1.0, "b": 5.0, "c": 9.0}[label] + (i % 7) * 0.1
        rows.append({"day": (date(2020, 1, 1) + timedelta(days=i)).isoformat(), "x": x, "prediction": (i * 37) % 11, "label": label})
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def test_a_multiclass_target_whose_class_appears_late_trains_and_predicts_without_feast(tmp_path: Path) -> None:
    rows = _late_class_csv(tmp_path / "late.csv")
    conveyor("init", "--csv", "late.csv", "--target", "label", cwd=tmp_path)
    config = yaml.safe_load((tmp_path / "conveyor.yaml").read_text())
    assert config["schema"]["event_time"]["columns"] == ["day"]  # a time-ordered split and time-ordered folds
    config["training"]["search"] = {"trials": 2, "budget_s": 10.0, "folds": "auto"}
    config["training"]["lightgbm"]["n_estimators"] = 20
    (tmp_path / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    run = conveyor("run", cwd=tmp_path)  # the early folds train on "a" (and "b") only: this crashed LightGBM
    assert "champion = v1" in run.stdout, run.stdout

    features = [{"x": r["x"], "prediction": r["prediction"]} for r in rows[:3]]  # a feature named like an output
    answer = subprocess.run([sys.executable, "-c", PREDICT, str(tmp_path), json.dumps(features)],
                            capture_output=True, text=True, timeout=600, check=True)
    result = json.loads(answer.stdout.strip().splitlines()[-1])
    assert result["predictions"] == ["a", "a", "a"]
    assert result["given"] == [r["prediction"] for r in rows[:3]]  # the input column is not overwritten
    assert not result["feast"]  # no engineered features: the raw rows need no online store, nor Feast's import
