"""`monitor` on a real workspace (no training): performance per window and unreadable log lines,
in the JSON report, the typed result and the HTML report."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import yaml

from conveyor.core import Workspace
from conveyor.core.config import Config
from conveyor.core.records import REFERENCE_PREDICTION
from conveyor.stages.monitoring import PredictionLog, monitor
from conveyor.stages.monitoring._labels import LabelLog
from tests.conftest import BIKE_NUMERIC, ROOT, bike_rows, conveyor
from tests.unit.test_prediction_log import record


def test_monitor_reports_performance_per_window_and_the_unreadable_lines(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "examples" / "bike-sharing" / "conveyor.yaml").read_text())
    config = Config.model_validate(data)
    workspace = Workspace.at(tmp_path)
    features = config.schema.features()
    rows = bike_rows()[:600]
    typed = [{f: float(r[f]) if f in BIKE_NUMERIC else int(r[f]) for f in features} for r in rows]
    reference = pl.DataFrame({**{f: [t[f] for t in typed[:400]] for f in features},
                              REFERENCE_PREDICTION: [float(r["cnt"]) for r in rows[:400]]})
    path = workspace.reference_file(config.name, "2")
    path.parent.mkdir(parents=True)
    reference.write_parquet(path)

    start = datetime(2026, 11, 25, 12, tzinfo=UTC)
    rng = random.Random(3)
    served = [record(f"r{i}", inputs=typed[400 + i], prediction=float(rows[400 + i]["cnt"]) + rng.gauss(0, 5),
                     timestamp=start + timedelta(hours=i // 5),
                     warnings={"season": "unseen category"} if i % 50 == 0 else None)
              for i in range(200)]  # five an hour for 40 hours
    log = PredictionLog(workspace.prediction_log())
    log.append(served[:100])
    segment = log.segment()
    with segment.open("ab") as handle:
        handle.write(b'{"request_id": "x", "pred\n')  # a torn line, ended by the next append
    log.append(served[100:])
    labels = [{"request_id": f"r{i}", "label": float(rows[400 + i]["cnt"])} for i in range(0, 200, 2)]
    LabelLog(workspace.labels()).append(labels)

    check = monitor(config, workspace, test_metrics=lambda version: {"r2": 0.9}).result
    summary = json.loads((tmp_path / "reports" / "drift.json").read_text())
    where = f"predictions/{segment.name}:101"
    assert summary["unreadable_lines"] == {"count": 1, "where": [where]}
    assert (check.unreadable, check.unreadable_at) == (1, [where])
    assert summary["unknown_values"] == check.unknown_values == {"season": {"unseen category": 4}}
    performance = summary["performance"]
    assert performance["n_labeled"] == 100 and performance["window"] == "1d" and performance["test_value"] == 0.9
    windows = performance["windows"]  # 40 hours from noon on the 25th: three days
    assert [(w["start"][:10], w["n_labeled"]) for w in windows] == [("2026-11-25", 30), ("2026-11-26", 60),
                                                                   ("2026-11-27", 10)]
    assert windows[0]["value"] is not None and windows[2]["value"] is None  # 10 labels: under min_rows (30)
    html = (tmp_path / "reports" / "drift.html").read_text()
    assert "<svg" in html and "test 0.9" in html and "r2 per 1d window" in html
    assert "Unreadable lines in the prediction log" in html and where in html

    (tmp_path / "conveyor.yaml").write_text(yaml.safe_dump(data, sort_keys=False))  # the CLI says it too
    shown = " ".join(conveyor("monitor", "-C", str(tmp_path)).stdout.split())  # rich wraps long lines
    assert f"1 unreadable lines in the prediction log were left out: {where}" in shown
    assert "season: 4 unseen category (answered as missing)" in shown
    assert "r2 per 1d" in shown and "2026-11-25 00:00" in shown and "2026-11-27 00:00" in shown
