"""Monitor: served traffic against the champion's training reference.

``check_drift`` is the computation (logged records and reference columns in, a
``DriftResult`` out; no files), ``drift_summary`` is the JSON it becomes, and ``monitor``
reads the log and the reference and writes the reports.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.artifacts import Artifact, relative_to
from conveyor.core.config import EVENT_TIMESTAMP, Config
from conveyor.core.errors import MonitoringError
from conveyor.core.hashing import hash_file, hash_json
from conveyor.core.records import REFERENCE_PREDICTION, REFERENCE_PROBABILITY
from conveyor.core.workspace import Workspace
from conveyor.stages.monitoring._labels import LabelLog, score_labels
from conveyor.stages.monitoring._log import PredictionLog
from conveyor.stages.monitoring._result import DriftCheck, DriftRow

if TYPE_CHECKING:
    import numpy as np

    from conveyor.stages.monitoring._drift import DriftReport, DriftThresholds

__all__ = ["DriftResult", "check_drift", "drift_summary", "monitor", "newest_version"]

MAX_SHOWN = 20
"""At most this many unreadable lines are named in a report (all are counted)."""
OUTPUTS = (REFERENCE_PROBABILITY, REFERENCE_PREDICTION)  # the model's output columns in a reference, preferred first


@dataclass(frozen=True)
class DriftResult:
    """One check of a model version's served traffic against its training reference."""

    version: str  # the model version checked: that of the newest record
    n_current: int  # its records in the window
    first: str | None  # timestamps of its first and last record
    last: str | None
    skipped: dict[str, int]  # records of other versions in the window, per version
    reference: dict[str, Any]  # the compared columns, reference side
    current: dict[str, Any]  # ... and served side
    prediction: tuple[np.ndarray, np.ndarray] | None  # model output: reference, served
    thresholds: DriftThresholds
    report: DriftReport


def newest_version(records: Sequence[Mapping[str, Any]]) -> str:
    """The model version of the last logged record: the one a monitor checks."""
    if not records:
        raise MonitoringError("no logged predictions to check")
    return str(records[-1]["model_version"])


def _number(value: Any) -> float:
    """A logged input as a float; a missing or non-numeric value is NaN."""
    if value is None or isinstance(value, (list, dict)):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _thresholds(config: Config) -> DriftThresholds:
    from conveyor.stages.monitoring._drift import DriftThresholds

    m = config.monitoring
    return DriftThresholds(psi=m.psi, p_value=m.p_value, drift_share=m.drift_share, min_rows=m.min_rows,
                           severe_psi=m.severe_psi, wasserstein=m.wasserstein, js=m.js, missing=m.missing,
                           point_mass=m.point_mass, unseen=m.unseen)


def _prediction_pair(reference: Mapping[str, Any], current: list[Mapping[str, Any]],
                     task: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The model output on the reference and as served: the probability when there is one,
    else the prediction of a regression; None for a classifier's labels. The reference holds
    the model's outputs on its held-out test rows only (null on the rows it was fitted on)."""
    import numpy as np

    output = next((c for c in OUTPUTS if c in reference), None)
    if output is None or (task != "regression" and output != REFERENCE_PROBABILITY):
        return None
    key = output.removeprefix("__")
    served = np.asarray([_number(r.get(key)) for r in current], dtype=float)
    held_out = np.asarray(reference[output], dtype=float)
    return held_out[~np.isnan(held_out)], served


def check_drift(records: Sequence[Mapping[str, Any]], reference: Mapping[str, Any], config: Config) -> DriftResult:
    """Drift of the newest model version's logged inputs and outputs against ``reference``
    (its training set: one sequence per column, plus ``__prediction``/``__probability``).
    Records of other versions are counted, not compared. Pure: reads and writes nothing."""
    import numpy as np

    from conveyor.stages.monitoring._drift import compute_drift

    version = newest_version(records)
    current = [r for r in records if str(r["model_version"]) == version]
    numeric, categorical = config.schema.numeric(), config.schema.categorical()
    if absent := [c for c in [*numeric, *categorical] if c not in reference]:
        raise MonitoringError(f"the training reference of v{version} lacks the feature(s) {absent}")
    inputs = [r.get("inputs") or {} for r in current]
    logged = set().union(*inputs)  # every field some record has: a feature absent from all is a schema change
    cur_cols: dict[str, Any] = {c: np.asarray([_number(i.get(c)) for i in inputs], dtype=float)
                                for c in numeric if c in logged}
    cur_cols |= {c: [i.get(c) for i in inputs] for c in categorical if c in logged}
    # new in traffic: a field the project's schema does not know (entity columns and engineered inputs are known)
    known = {*config.schema.columns, *config.model_inputs(), config.schema.target, config.schema.entity.key,
             EVENT_TIMESTAMP}
    cur_cols |= {c: [i.get(c) for i in inputs] for c in sorted(logged - known)}
    ref_cols = {c: reference[c] for c in [*numeric, *categorical]}
    prediction = _prediction_pair(reference, current, config.schema.task)
    thresholds = _thresholds(config)
    report = compute_drift(ref_cols, cur_cols, numeric=numeric, categorical=categorical,
                           prediction=prediction, thresholds=thresholds)
    skipped = Counter(str(r["model_version"]) for r in records if str(r["model_version"]) != version)
    return DriftResult(version, len(current), current[0].get("timestamp"), current[-1].get("timestamp"),
                       dict(skipped), ref_cols, cur_cols, prediction, thresholds, report)


def drift_summary(result: DriftResult, config: Config, reference_path: Path, checked_at: datetime) -> dict[str, Any]:
    """The JSON record of one check (``reports/drift-<time>.json``)."""
    return {
        "project": config.name,
        "model": config.name,
        "model_version": result.version,
        "checked_at": checked_at.isoformat(),
        "window": {
            "predictions": result.n_current,
            "from": result.first,
            "to": result.last,
            "other_versions_skipped": result.skipped,
        },
        "reference": str(reference_path),
        "thresholds": asdict(result.thresholds),
        **result.report.to_dict(),
    }


def _read_reference(path: Path, config: Config) -> dict[str, Any]:
    """The reference columns a check needs that the file has: numeric ones and the model's
    outputs as float arrays (null -> NaN), categorical ones as lists."""
    import polars as pl

    numeric = {*config.schema.numeric(), *OUTPUTS}
    frame = pl.scan_parquet(path)
    available = set(frame.collect_schema().names())
    wanted = [c for c in [*config.schema.numeric(), *config.schema.categorical(), *OUTPUTS] if c in available]
    data = frame.select(wanted).collect()
    return {c: data[c].cast(pl.Float64, strict=False).to_numpy() if c in numeric else data[c].to_list() for c in wanted}


def _write_reports(
    workspace: Workspace, stem: str, summary: dict[str, Any], html: str, latest: str = "drift"
) -> tuple[Path, Path]:
    """``reports/<stem>.json`` and ``.html``, copied to ``<latest>.json`` and ``.html``;
    returns the paths of the stamped pair."""
    from conveyor.core.report import write_text

    text = json.dumps(summary, indent=2)
    for name in (stem, latest):
        write_text(workspace.reports / f"{name}.json", text)
        write_text(workspace.reports / f"{name}.html", html)
    return workspace.reports / f"{stem}.json", workspace.reports / f"{stem}.html"


def monitor(
    config: Config, workspace: Workspace, *, window: int | None = None,
    test_metrics: Callable[[str], Mapping[str, float]] | None = None,
) -> Artifact[DriftCheck]:
    """Compare the logged inputs and predictions of the newest model version with its reference.

    Writes `reports/drift-<time>.json` and `.html` (and `drift.json`/`drift.html`, the latest).
    A model of `models:` (`config` from `Config.for_model`) reads its own log, `predictions/<model>/`,
    and writes `reports/drift-<model>-<time>.*` and `drift-<model>.*`. With labels (`conveyor
    labels add`), the checked version's labeled predictions are scored against its test score,
    `test_metrics(version)` (the runner reads it from the registry).
    """
    from conveyor.stages.monitoring._report import render_drift_html

    folder = workspace.prediction_log(config.model)
    log = PredictionLog(folder)
    records = log.read(last=window or config.monitoring.window)
    unreadable = [f"{relative_to(path, workspace.root)}:{line}" for path, line in log.unreadable]
    if not records:
        raise MonitoringError(
            f"no logged predictions in {folder}; serve some traffic with `conveyor serve` first"
        )
    version = newest_version(records)
    reference_path = workspace.reference_file(config.name, version)
    if not reference_path.exists():
        raise MonitoringError(
            f"no training reference for {config.name} v{version} at {reference_path}; "
            "it is written when `conveyor promote` makes a champion"
        )
    result = check_drift(records, _read_reference(reference_path, config), config)
    current = [r for r in records if str(r.get("model_version")) == version]
    performance = score_labels(config, current, LabelLog(workspace.labels(config.model)).read(),
                               (lambda: test_metrics(version)) if test_metrics is not None else None)
    stamp = datetime.now(UTC)
    summary = drift_summary(result, config, reference_path, stamp)
    summary["performance"] = None if performance is None else performance.model_dump(mode="json")
    summary["unreadable_lines"] = {"count": len(unreadable), "where": unreadable[:MAX_SHOWN]}
    unknown = unknown_values(current)
    summary["unknown_values"] = unknown
    title = f"{config.name} v{version}: drift of {result.n_current} served predictions"
    html = render_drift_html(result.report, result.reference, result.current, title=title,
                             prediction=result.prediction, thresholds=result.thresholds, performance=performance,
                             unreadable=unreadable, unreadable_shown=MAX_SHOWN)
    latest = "drift" if config.model is None else f"drift-{config.model}"
    json_path, html_path = _write_reports(
        workspace, f"{latest}-{stamp.strftime('%Y%m%dT%H%M%S')}", summary, html, latest
    )
    check = _check(result, json_path, html_path).model_copy(update={
        "performance": performance, "unreadable": len(unreadable), "unreadable_at": unreadable[:MAX_SHOWN],
        "unknown_values": unknown})
    return Artifact("drift", html_path, hash_json(summary), check, {"reference": hash_file(reference_path)})


def unknown_values(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Feature -> why -> how many served values serving flagged as never seen in training (`warnings`)."""
    counts: dict[str, Counter[str]] = {}
    for record in records:
        warnings = record.get("warnings")
        if isinstance(warnings, Mapping):
            for feature, why in warnings.items():
                counts.setdefault(str(feature), Counter())[str(why)] += 1
    return {feature: dict(kinds) for feature, kinds in sorted(counts.items())}


def _check(result: DriftResult, json_path: Path, html_path: Path) -> DriftCheck:
    """What the CLI prints and acts on (``--fail-on-drift`` reads ``verdict``)."""
    report = result.report
    return DriftCheck(
        verdict=report.verdict,
        dataset_drift=report.dataset_drift,
        drifted_share=report.drifted_share,
        drifted=[f.name for f in report.features if f.drifted],
        prediction_drift=None if report.prediction is None else report.prediction.drifted,
        n_current=result.n_current,
        model_version=result.version,
        json_report=str(json_path),
        html_report=str(html_path),
        n_reference=report.n_reference,
        rows=_rows(report),
        reasons=report.reasons,
        new_fields=report.schema.new,
    )


def _rows(report: DriftReport) -> list[DriftRow]:
    compared = [*report.features, *([report.prediction] if report.prediction is not None else [])]
    rows = [DriftRow.of(f.name, f.test, f.p_value, f.psi, f.drifted, effect=f.effect,
                        missing=(f.reference_missing, f.current_missing), rules=[r.detail for r in f.rules],
                        output=f.kind == "prediction")
            for f in compared]
    return sorted(rows, key=lambda r: (not r.drifted, -(r.psi or 0.0)))
