"""`monitor --act`: the policy, the derived source snapshot, and what is recorded when it cannot retrain.
(The whole loop, with MLflow, Feast and a server, is tests/e2e/test_closed_loop.py.)"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from conveyor.core import load_config
from conveyor.core.config import Config
from conveyor.core.errors import ConfigError
from conveyor.core.workspace import Workspace
from conveyor.runner import act_on, loop_records
from conveyor.runner._loop import _snapshot, _trigger
from conveyor.stages.monitoring import DriftCheck, LabeledRow, Performance

ROOT = Path(__file__).resolve().parents[2]
BIKE = ROOT / "examples" / "bike-sharing"


def _config(**monitoring: Any) -> Config:
    config = load_config(BIKE / "conveyor.yaml")
    return config.model_copy(update={"monitoring": config.monitoring.model_copy(update=monitoring)})


def _check(drift: bool, degraded: bool | None) -> DriftCheck:
    performance = None if degraded is None else Performance(
        n_labeled=100, metric="r2", greater_is_better=True, value=0.5, test_value=0.8, degraded=degraded)
    return DriftCheck(verdict="drift" if drift else "no drift", dataset_drift=drift, drifted_share=0.5 if drift else 0,
                      drifted=["yr"] if drift else [], prediction_drift=False, n_current=100, model_version="1",
                      json_report="r.json", html_report="r.html", reasons=["yr: unseen levels"] if drift else [],
                      performance=performance)


@pytest.mark.parametrize(("on_drift", "on_degraded", "drift", "degraded", "action"), [
    ("retrain", "retrain", False, False, "none"),
    ("none", "none", True, True, "none"),
    ("alert", "none", True, None, "alert"),
    ("none", "alert", True, False, "none"),
    ("alert", "retrain", True, True, "retrain"),
    ("retrain", "alert", False, True, "alert"),
])
def test_the_policy_takes_the_strongest_action_asked_for(on_drift: str, on_degraded: str, drift: bool,
                                                         degraded: bool | None, action: str) -> None:
    found, why = _trigger(_config(on_drift=on_drift, on_degraded=on_degraded), _check(drift, degraded))
    assert found == action
    assert ("drift: yr: unseen levels" in why) == drift
    assert ("degraded: performance on 100 labeled predictions" in why) == bool(degraded)


def test_the_snapshot_is_the_source_then_the_labeled_rows(tmp_path: Path) -> None:
    config = _config()
    lines = (BIKE / "bike_sharing_hourly.csv").read_text().splitlines()[:20]
    (tmp_path / "bike_sharing_hourly.csv").write_text("\n".join(lines))  # no final newline: one is added
    inputs = {"season": 3, "yr": 1.0, "mnth": 7, "hr": 17, "holiday": 0, "weekday": 2, "workingday": 1,
              "weathersit": 1, "temp": 0.66, "atemp": 0.6212, "hum": None, "windspeed": 0.1045}
    rows = [LabeledRow("r1", "2026-12-07T03:43:46.881969+00:00", "1", inputs, 512.0),
            LabeledRow("r2", "2026-12-08T23:59:59+00:00", "1", {**inputs, "hr": 3}, 7)]
    path = _snapshot(config, Workspace(tmp_path), rows)
    assert path.parent.parent == tmp_path / ".conveyor" / "loop"
    text = path.read_text()
    assert text.startswith("\n".join(lines) + "\n")
    appended = list(csv.DictReader(text.splitlines()))[-2:]
    assert appended[0] == {"instant": "", "dteday": "2026-12-07", "season": "3", "yr": "1", "mnth": "7", "hr": "17",
                           "holiday": "0", "weekday": "2", "workingday": "1", "weathersit": "1", "temp": "0.66",
                           "atemp": "0.6212", "hum": "", "windspeed": "0.1045", "casual": "", "registered": "",
                           "cnt": "512"}
    assert appended[1]["dteday"] == "2026-12-08" and appended[1]["hr"] == "3" and appended[1]["cnt"] == "7"


def test_too_few_labels_is_said_and_recorded(tmp_path: Path) -> None:
    shutil.copy(BIKE / "conveyor.yaml", tmp_path / "conveyor.yaml")
    config = _config(on_drift="retrain")
    outcome = act_on(config, Workspace(tmp_path), _check(True, None))
    assert outcome.action == "retrain" and outcome.promoted is None
    assert any("cannot retrain: 0 labeled predictions, too few" in line for line in outcome.lines)
    assert "no monitoring.webhook: no alert posted" in outcome.lines
    [record] = loop_records(config, Workspace(tmp_path))
    assert record["retrain"] == {"skipped": "0 labeled predictions (at least 60 needed)"}
    assert record["why"] == "drift: yr: unseen levels" and record["alert"] is None
    assert json.loads((tmp_path / record["_path"]).read_text())["action"] == "retrain"


def test_nothing_found_records_nothing(tmp_path: Path) -> None:
    outcome = act_on(_config(on_drift="retrain"), Workspace(tmp_path), _check(False, False))
    assert outcome.action == "none" and outcome.record is None and not (tmp_path / ".conveyor").exists()


def test_retraining_needs_a_csv_source(tmp_path: Path) -> None:
    config = _config(on_drift="retrain")
    config = config.model_copy(update={"source": config.source.model_copy(update={"kind": "parquet"})})
    with pytest.raises(ConfigError, match="retraining appends labeled traffic to a CSV source"):
        act_on(config, Workspace(tmp_path), _check(True, None))


def test_an_unset_webhook_secret_stops_before_retraining(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.core.config import WebhookConfig

    monkeypatch.delenv("LOOP_UNSET_SECRET", raising=False)
    config = _config(on_drift="retrain",
                     webhook=WebhookConfig(url="http://127.0.0.1:30099/x", secret_env="LOOP_UNSET_SECRET"))
    with pytest.raises(ConfigError, match="LOOP_UNSET_SECRET, which is not set"):
        act_on(config, Workspace(tmp_path), _check(True, None))
    assert not (tmp_path / ".conveyor").exists()


def test_a_served_rows_event_time_cells_are_written_as_prepare_will_read_them() -> None:
    """The retraining snapshot gives each served row the time it was served, in each event-time
    column's own format: a `dd/mm/yyyy` date and an `HH.MM.SS` time, not ISO text prepare would refuse."""
    from datetime import UTC, datetime

    from conveyor.runner._loop import _event_cells

    data = _config().model_dump(mode="json", by_alias=True)
    data["schema"]["columns"]["dteday"]["format"] = "%d/%m/%Y"
    data["schema"]["columns"]["at"] = {"type": "time", "role": "event_time", "format": "%H.%M.%S"}
    data["schema"]["event_time"] = {"kind": "date_time", "columns": ["dteday", "at"]}
    config = Config.model_validate(data)
    served = datetime(2026, 12, 7, 18, 5, 9, tzinfo=UTC)
    assert _event_cells(config, served) == {"dteday": "07/12/2026", "at": "18.05.09"}


def test_a_served_rows_date_parts_are_its_year_month_name_and_day() -> None:
    from datetime import UTC, datetime

    from conveyor.runner._loop import _event_cells

    data = _config().model_dump(mode="json", by_alias=True)
    data["schema"]["columns"]["arrival_month"] = {"type": "string", "role": "categorical"}
    data["schema"]["columns"]["arrival_day"] = {"type": "integer", "role": "numeric"}
    data["schema"]["event_time"] = {"kind": "date_parts", "columns": ["yr", "arrival_month", "arrival_day", "hr"]}
    config = Config.model_validate(data)
    served = datetime(2026, 12, 7, 18, 5, 9, tzinfo=UTC)
    assert _event_cells(config, served) == {"yr": "2026", "arrival_month": "December", "arrival_day": "7", "hr": "18"}
