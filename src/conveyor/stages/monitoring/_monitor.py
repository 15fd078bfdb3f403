"""Monitor: served traffic against the champion's training reference."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

from conveyor.core.artifacts import Artifact
from conveyor.core.config import Config
from conveyor.core.errors import MonitoringError
from conveyor.core.hashing import hash_file, hash_json
from conveyor.core.workspace import Workspace
from conveyor.stages.monitoring._log import PredictionLog
from conveyor.stages.monitoring._result import DriftCheck

__all__ = ["monitor"]


def monitor(config: Config, workspace: Workspace, *, window: int | None = None) -> Artifact[DriftCheck]:
    """Compare the logged inputs and predictions of the newest model version with its reference.

    Writes `reports/drift-<time>.json` and `.html` (and `drift.json`/`drift.html`, the latest).
    """
    import numpy as np
    import pandas as pd

    from conveyor.stages.monitoring._drift import DriftThresholds, compute_drift
    from conveyor.stages.monitoring._report import write_drift_report

    log = PredictionLog(workspace.predictions)
    records = log.read(last=window or config.monitoring.window)
    if not records:
        raise MonitoringError(
            f"no logged predictions in {workspace.predictions}; serve some traffic with `conveyor serve` first"
        )
    versions = Counter(str(r["model_version"]) for r in records)
    version = str(records[-1]["model_version"])
    current = [r for r in records if str(r["model_version"]) == version]
    reference_path = workspace.reference_file(config.name, version)
    if not reference_path.exists():
        raise MonitoringError(
            f"no training reference for {config.name} v{version} at {reference_path}; "
            "it is written when `conveyor promote` makes a champion"
        )
    schema = config.schema
    numeric, categorical = schema.numeric(), schema.categorical()
    reference = pd.read_parquet(reference_path)
    served = pd.DataFrame([r["inputs"] for r in current], columns=[*numeric, *categorical])
    ref_cols = {c: reference[c].to_numpy() for c in numeric} | {c: reference[c].tolist() for c in categorical}
    cur_cols = {c: pd.to_numeric(served[c], errors="coerce").to_numpy(dtype=float) for c in numeric} | {
        c: served[c].tolist() for c in categorical
    }
    output = "__probability" if "__probability" in reference.columns else "__prediction"
    key = output.removeprefix("__")
    prediction = None
    if schema.task == "regression" or key == "probability":
        prediction = (
            reference[output].to_numpy(dtype=float),
            np.asarray([r.get(key, np.nan) for r in current], dtype=float),
        )
    m = config.monitoring
    thresholds = DriftThresholds(psi=m.psi, p_value=m.p_value, drift_share=m.drift_share, min_rows=m.min_rows, severe_psi=m.severe_psi)
    result = compute_drift(
        ref_cols, cur_cols, numeric=numeric, categorical=categorical, prediction=prediction, thresholds=thresholds
    )
    stamp = datetime.now(UTC)
    workspace.ensure(workspace.reports)
    name = f"drift-{stamp.strftime('%Y%m%dT%H%M%S')}"
    summary = {
        "project": config.name,
        "model": config.name,
        "model_version": version,
        "checked_at": stamp.isoformat(),
        "window": {
            "predictions": len(current),
            "from": current[0]["timestamp"],
            "to": current[-1]["timestamp"],
            "other_versions_skipped": {v: n for v, n in versions.items() if v != version},
        },
        "reference": str(reference_path),
        "thresholds": thresholds.__dict__,
        **result.to_dict(),
    }
    text = json.dumps(summary, indent=2)
    for stem in (name, "drift"):
        (workspace.reports / f"{stem}.json").write_text(text, encoding="utf-8")
    html = write_drift_report(
        result, ref_cols, cur_cols, numeric=numeric, categorical=categorical,
        path=workspace.reports / f"{name}.html",
        title=f"{config.name} v{version}: drift of {len(current)} served predictions",
        prediction=prediction,
        thresholds=thresholds,
    )
    (workspace.reports / "drift.html").write_bytes(html.read_bytes())
    digest = hash_json(summary)
    check = DriftCheck(
        verdict=result.verdict,
        dataset_drift=result.dataset_drift,
        drifted_share=result.drifted_share,
        drifted=[f.name for f in result.features if f.drifted],
        prediction_drift=None if result.prediction is None else result.prediction.drifted,
        n_current=len(current),
        model_version=version,
        json_report=str(workspace.reports / f"{name}.json"),
        html_report=str(html),
    )
    return Artifact("drift", html, digest, check, {"reference": hash_file(reference_path)})


