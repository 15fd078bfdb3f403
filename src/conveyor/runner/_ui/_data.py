"""What the project page shows, read from the workspace: stage records, quarantine files, the
registry (through training), the feature views (through features), drift reports, `/metrics`.

Everything here returns plain data (dicts and lists of strings and numbers); the templates
escape every value. The registry and the feature store are the slow reads (MLflow, Feast):
`Snapshot` keeps them until the files they come from change, so a page load reads JSON only.
"""

from __future__ import annotations

import csv
import json
import threading
import time
from pathlib import Path
from typing import Any

from conveyor.core.config import Config
from conveyor.core.workspace import Workspace
from conveyor.runner._commands import model_configs
from conveyor.runner._pipeline import result_types, stages_of

__all__ = ["Snapshot", "drift_history", "pipeline", "quality", "quarantine_rows", "reports", "service"]

QUARANTINE_ROWS = 500
"""Rows of one quarantine file the page shows (the file itself holds them all)."""


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _last_run(workspace: Workspace) -> dict[str, dict[str, Any]]:
    """The newest run record's entry of each stage (`ran`/`cached`, why)."""
    runs = sorted((workspace.state / "runs").glob("*.json"))
    for path in reversed(runs):
        data = _read_json(path)
        if data is not None:
            return {str(e.get("stage")): dict(e) for e in data.get("stages", []) if isinstance(e, dict)}
    return {}


def pipeline(config: Config, workspace: Workspace) -> list[dict[str, Any]]:
    """One row per stage of the project: status, when it last ran, for how long, its counts, the cache reason."""
    last = _last_run(workspace)
    types = result_types()
    rows = []
    for stage in stages_of(config):
        record = _read_json(workspace.state / "stages" / f"{stage.name}.json")
        entry = last.get(stage.name, {})
        row: dict[str, Any] = {"name": stage.name, "status": "not run", "finished_at": "", "seconds": None,
                               "summary": "", "why": "", "path": "", "digest": ""}
        if record is not None:
            artifact = dict(record.get("artifact", {}))
            row.update(finished_at=str(record.get("finished_at", ""))[:19].replace("T", " "),
                       seconds=record.get("seconds"), path=str(artifact.get("path", "")),
                       digest=str(artifact.get("digest", ""))[:16])
            result_type = types.get(str(artifact.get("kind")))
            if result_type is not None:
                try:
                    row["summary"] = result_type.model_validate(artifact.get("result", {})).summary()
                except ValueError:
                    row["summary"] = "(a record from another version of Conveyor)"
            exists = (workspace.root / row["path"]).exists() if row["path"] else False
            row["status"] = str(entry.get("status", "ran")) if exists else "output missing"
            if entry.get("status") == "ran":
                row["why"] = str(entry.get("why") or "first run")
            elif entry.get("status") == "cached":
                row["why"] = "inputs, config and code unchanged"
        rows.append(row)
    return rows


def quality(workspace: Workspace) -> dict[str, Any]:
    """Clean and quarantined counts of the last prepare, and the quarantine files."""
    record = _read_json(workspace.state / "stages" / "prepare.json") or {}
    result = dict(dict(record.get("artifact", {})).get("result", {}))
    files = sorted(p.name for p in workspace.quarantine.glob("*.csv")) if workspace.quarantine.is_dir() else []
    return {
        "clean": result.get("rows"),
        "quarantined": (result.get("quarantined") or 0) + (result.get("ingest_quarantined") or 0),
        "reasons": sorted(dict(result.get("quarantine_reasons", {})).items(), key=lambda kv: -int(kv[1])),
        "ingest_quarantined": result.get("ingest_quarantined") or 0,
        "files": files,
        "ran": bool(result),
    }


def quarantine_rows(workspace: Workspace, name: str) -> tuple[list[str], list[list[str]], bool] | None:
    """The header and first rows of one file of `data/quarantine/`, by its name as listed (None: no such file)."""
    if name not in quality(workspace)["files"]:
        return None
    with (workspace.quarantine / name).open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        rows: list[list[str]] = []
        for row in reader:
            if len(rows) == QUARANTINE_ROWS:
                return header, rows, True
            rows.append(row)
    return header, rows, False


def reports(workspace: Workspace) -> list[str]:
    """The HTML reports the page embeds: the EDA report and the latest drift report(s)."""
    names = ["eda.html"] if (workspace.reports / "eda.html").exists() else []
    latest = sorted(p.name for p in workspace.reports.glob("drift*.html") if not p.stem.split("-")[-1][:1].isdigit()) \
        if workspace.reports.is_dir() else []
    return names + latest


def drift_history(workspace: Workspace) -> list[dict[str, Any]]:
    """Every drift check of `reports/drift-*-<time>.json`, oldest first: drifted share, prediction PSI, performance."""
    points = []
    if not workspace.reports.is_dir():
        return []
    for path in sorted(workspace.reports.glob("drift*-*.json")):
        if not path.stem.split("-")[-1][:1].isdigit():
            continue  # drift-<model>.json: a copy of the latest
        data = _read_json(path)
        if data is None:
            continue
        prediction = _object(data.get("prediction"))
        performance = _object(data.get("performance"))
        points.append({
            "model": str(data.get("model", "")),
            "version": str(data.get("model_version", "")),
            "at": str(data.get("checked_at", ""))[:19].replace("T", " "),
            "verdict": str(data.get("verdict", "")),
            "drifted_share": _number(data.get("drifted_share")),
            "prediction_psi": _number(prediction.get("psi")),
            "n": _number(dict(data.get("window", {})).get("predictions")),
            "metric": str(performance.get("metric", "")),
            "performance": _number(performance.get("value")),
            "test_value": _number(performance.get("test_value")),
        })
    return points


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def service(url: str, previous: dict[str, Any] | None) -> dict[str, Any]:
    """The live service from its `/metrics`: requests, rate since `previous`, latency, batch sizes.

    `{"running": False}` when nothing answers at `url` within half a second.
    """
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    try:
        response = httpx.get(f"{url.rstrip('/')}/metrics", timeout=0.5)
    except httpx.HTTPError:
        return {"running": False, "url": url}
    if response.status_code != 200:
        return {"running": False, "url": url, "status": response.status_code}
    samples: dict[str, float] = {}
    model = ""
    buckets: dict[str, list[tuple[float, float]]] = {"conveyor_batch_rows": [], "conveyor_request_latency_seconds": []}
    try:
        families = list(text_string_to_metric_families(response.text))
    except ValueError:
        return {"running": False, "url": url, "status": "unreadable /metrics"}
    for family in families:
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if name == "conveyor_model_info" and value:
                model = f"{labels.get('name', '')} v{labels.get('version', '')}"
            elif name == "conveyor_requests_total" and labels.get("path") == "/predict":
                samples["requests"] = samples.get("requests", 0.0) + value
                if not str(labels.get("status", "")).startswith("2"):
                    samples["errors"] = samples.get("errors", 0.0) + value
            elif name in ("conveyor_predictions_total", "conveyor_model_reloads_total"):
                samples[name] = samples.get(name, 0.0) + value
            elif name.endswith("_bucket") and name[:-7] in buckets:
                if name[:-7] == "conveyor_request_latency_seconds" and labels.get("path") != "/predict":
                    continue
                buckets[name[:-7]].append((float(labels["le"]), value))
            elif name in ("conveyor_batch_rows_sum", "conveyor_batch_rows_count"):
                samples[name] = samples.get(name, 0.0) + value
    now = time.monotonic()
    requests = samples.get("requests", 0.0)
    rate = None
    if previous is not None and previous.get("url") == url and now > previous["at"]:
        rate = max(0.0, requests - previous["requests"]) / (now - previous["at"])
    batches = samples.get("conveyor_batch_rows_count", 0.0)
    return {
        "running": True, "url": url, "model": model, "at": now,
        "requests": requests, "errors": samples.get("errors", 0.0),
        "predictions": samples.get("conveyor_predictions_total", 0.0),
        "reloads": samples.get("conveyor_model_reloads_total", 0.0),
        "rate": rate,
        "latency_p50_ms": _quantile(buckets["conveyor_request_latency_seconds"], 0.5, 1000),
        "latency_p99_ms": _quantile(buckets["conveyor_request_latency_seconds"], 0.99, 1000),
        "batch_mean": samples.get("conveyor_batch_rows_sum", 0.0) / batches if batches else None,
        "batch_p99": _quantile(buckets["conveyor_batch_rows"], 0.99, 1),
    }


def _quantile(buckets: list[tuple[float, float]], q: float, scale: float) -> float | None:
    """The upper bound of the histogram bucket holding quantile `q` (summed over label sets)."""
    totals: dict[float, float] = {}
    for bound, count in buckets:
        totals[bound] = totals.get(bound, 0.0) + count
    ordered = sorted(totals.items())
    if not ordered or ordered[-1][1] == 0:
        return None
    wanted = q * ordered[-1][1]
    for bound, count in ordered:
        if count >= wanted:
            return None if bound == float("inf") else bound * scale
    return None


class Snapshot:
    """The slow reads (registry, feature views), kept until `mlflow.db` or the Feast registry changes."""

    def __init__(self, config: Config, workspace: Workspace) -> None:
        self.config = config
        self.workspace = workspace
        self._lock = threading.Lock()
        self._stamp: tuple[float, ...] | None = None
        self._models: list[dict[str, Any]] = []
        self._features: list[dict[str, Any]] = []
        self._errors: dict[str, str] = {}

    def _files_stamp(self) -> tuple[float, ...]:
        paths = [self.workspace.mlflow_db, self.workspace.feature_repo / "data" / "registry.pb",
                 self.workspace.state / "stages"]
        return tuple(p.stat().st_mtime if p.exists() else 0.0 for p in paths)

    def read(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
        """(models, feature views, errors by section), re-read when their files changed."""
        with self._lock:
            stamp = self._files_stamp()
            if stamp != self._stamp:
                self._errors = {}
                self._models = self._read_models()
                self._features = self._read_features()
                self._stamp = stamp
            return self._models, self._features, self._errors

    def _read_models(self) -> list[dict[str, Any]]:
        from conveyor.core.errors import ConveyorError
        from conveyor.stages.training import PromotionDecision, champion_history, list_versions

        if not self.workspace.mlflow_db.exists():
            return []
        models = []
        try:
            for own in model_configs(self.config, None):
                trained = _read_json(self.workspace.state / "stages" / f"train{_suffix(own)}.json") or {}
                experiment = str(dict(dict(trained.get("artifact", {})).get("result", {})).get("experiment_id", ""))
                versions = [{
                    "version": v.version, "aliases": v.aliases, "model": v.model, "created": v.created[:19].replace("T", " "),
                    "metrics": sorted(v.metrics.items()), "run_id": v.run_id, "training_set": v.training_set[:16],
                } for v in list_versions(own, self.workspace)]
                history = [c.model_dump() for c in champion_history(own, self.workspace)]
                models.append({"name": own.name, "experiment": experiment, "versions": versions,
                               "history": list(reversed(history))})
        except ConveyorError as error:
            self._errors["models"] = str(error)
        decisions = []
        records = sorted((self.workspace.state / "artifacts").glob("*.json"), key=lambda p: p.stat().st_mtime)
        for path in reversed(records):
            data = _read_json(path)
            if data is None or data.get("kind") != "promotion":
                continue
            try:
                decision = PromotionDecision.model_validate(data.get("result", {}))
            except ValueError:
                continue
            decisions.append({
                "at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(path.stat().st_mtime)),
                "promoted": decision.promoted, "summary": decision.summary(), "reasons": decision.reasons,
                "metric": decision.metric, "candidate": decision.candidate,
                "scores": sorted(decision.scores.items()),
            })
        if models:
            models[0]["decisions"] = decisions[:20]
        return models

    def _read_features(self) -> list[dict[str, Any]]:
        from conveyor.core.errors import ConveyorError
        from conveyor.stages.features import feature_views

        if not (self.workspace.state / "stages" / "features.json").exists():
            return []
        try:
            views = feature_views(self.config, self.workspace)
        except ConveyorError as error:
            self._errors["features"] = str(error)
            return []
        return [{
            "name": v.name, "entity": v.entity, "fields": v.fields, "source": v.source, "rows": v.source_rows,
            "ttl": "never expires" if v.ttl_seconds == 0 else f"{v.ttl_seconds / 3600:g} h",
            "online_as_of": v.online_as_of or "-", "models": v.models,
        } for v in views]


def _suffix(config: Config) -> str:
    return "" if config.model is None else f".{config.model}"
