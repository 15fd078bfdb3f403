"""The closed loop: `conveyor monitor --act` carries out the project's policy on what monitor found.

`monitoring.on_drift` and `monitoring.on_degraded` say what to do: `none`, `alert` (post the
finding to `monitoring.webhook`) or `retrain`. A retraining:

1. takes the labeled traffic (served inputs joined with `conveyor labels add` labels), oldest
   first, and splits it in time: the newest `monitoring.fresh_share` is kept out as fresh data,
   the older rest becomes new training rows;
2. writes a derived source snapshot, `.conveyor/loop/<time>/<source file>`: the source file's
   bytes unchanged, then one row per labeled served prediction (its inputs, its label as the
   target, its event time from when it was served). The normal stages run on it (ingest, prepare,
   features, dataset, train), so caching and lineage hold: the new model's training set walks back
   to this snapshot's bytes. The split of a retraining is random (`training.split: random`): a time
   split would put the newest rows, the traffic, all in its test split, and the fresh rows are the
   out-of-time test;
3. compares the challenger with the champion on the fresh rows (the training stage's `challenge` gate): `@champion`
   moves only if the challenger is better, by the registry's compare-and-set; running servers
   follow `@champion` (`serving.reload_s`);
4. records it all in `.conveyor/loop/<time>.json` (the trigger, the rows, the snapshot, the
   training set, both scores, the decision), shown by `conveyor models` and `conveyor lineage`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.artifacts import relative_to
from conveyor.core.config import Config
from conveyor.core.errors import ConfigError, ConveyorError
from conveyor.core.hashing import hash_file
from conveyor.core.report import write_text
from conveyor.core.workspace import Workspace

if TYPE_CHECKING:
    from conveyor.stages.monitoring import DriftCheck, LabeledRow

__all__ = ["LoopOutcome", "act_on", "loop_records"]


@dataclass
class LoopOutcome:
    """What `--act` did: the action, why, and the record it left."""

    action: str
    """`none`, `alert` or `retrain`."""
    why: str
    lines: list[str] = field(default_factory=list)
    record: Path | None = None
    promoted: bool | None = None
    champion: str | None = None


def _trigger(config: Config, check: DriftCheck) -> tuple[str, str]:
    """(action, why): the strongest action the policy asks for on what monitor found."""
    policy = config.monitoring
    found: list[tuple[str, str]] = []
    if check.verdict == "drift":
        found.append((policy.on_drift, "drift: " + ("; ".join(check.reasons[:3]) or "dataset drift")))
    if check.performance is not None and check.performance.degraded:
        found.append((policy.on_degraded, "degraded: " + check.performance.summary()))
    if not found:
        return "none", ""
    rank = {"none": 0, "alert": 1, "retrain": 2}
    action = max((a for a, _ in found), key=rank.__getitem__)
    return action, " and ".join(why for _, why in found)


def act_on(config: Config, workspace: Workspace, check: DriftCheck, *, search: bool = True) -> LoopOutcome:
    """Carry out `monitoring.on_drift` / `on_degraded` on one model's monitor result."""
    action, why = _trigger(config, check)
    outcome = LoopOutcome(action, why)
    if not why:
        outcome.lines.append("--act: no drift and no degradation: nothing to do")
        return outcome
    record: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"), "model": config.name, "action": action, "why": why,
        "checked_version": check.model_version, "verdict": check.verdict,
        "performance": None if check.performance is None else check.performance.model_dump(mode="json"),
    }
    if action == "none":
        outcome.lines.append(f"--act: {why}; the policy says none (monitoring.on_drift / on_degraded)")
        return outcome
    hook = config.monitoring.webhook
    if hook is not None and hook.secret_env is not None and not os.environ.get(hook.secret_env):
        raise ConfigError(f"monitoring.webhook.secret_env names {hook.secret_env}, which is not set; "
                          "export it or remove secret_env")  # before a retraining, not after it
    if action == "retrain":
        _retrain(config, workspace, why, record, outcome, search=search)
    _alert(config, record, outcome)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = workspace.state / "loop" / f"{stamp}.json"
    write_text(path, json.dumps(record, indent=2, default=str))
    outcome.record = path
    outcome.lines.append(f"recorded in {relative_to(path, workspace.root)}")
    return outcome


def _alert(config: Config, record: dict[str, Any], outcome: LoopOutcome) -> None:
    from conveyor.stages.monitoring import post_alert

    hook = config.monitoring.webhook
    if hook is None:
        record["alert"] = None
        outcome.lines.append("no monitoring.webhook: no alert posted")
        return
    payload = {"source": "conveyor", "project": config.name, **{k: record.get(k) for k in (
        "at", "action", "why", "checked_version", "verdict", "performance", "decision")}}
    delivery = post_alert(hook, payload)
    record["alert"] = {"delivered": delivery.delivered, "attempts": delivery.attempts, "status": delivery.status,
                       "error": delivery.error}
    outcome.lines.append(delivery.summary())


def _retrain(config: Config, workspace: Workspace, why: str, record: dict[str, Any], outcome: LoopOutcome,
             *, search: bool) -> None:
    from conveyor.runner._pipeline import run_pipeline
    from conveyor.stages.monitoring import labeled_traffic
    from conveyor.stages.training import challenge

    if config.model is not None:
        raise ConfigError(f"monitor --act: retraining {config.name} alone would change the stages every model of "
                          "`models:` shares; use on_drift/on_degraded: alert and retrain with `conveyor run`")
    if config.source.kind != "csv":
        raise ConfigError(f"monitor --act: retraining appends labeled traffic to a CSV source; source.kind is "
                          f"{config.source.kind!r} (use on_drift/on_degraded: alert and retrain with `conveyor run`)")
    rows = labeled_traffic(config, workspace)
    need = 2 * config.monitoring.min_rows
    cut = int(len(rows) * (1 - config.monitoring.fresh_share))
    if cut < config.monitoring.min_rows or len(rows) - cut < config.monitoring.min_rows:
        outcome.lines.append(f"--act: {why}; cannot retrain: {len(rows)} labeled predictions, too few to both train "
                             f"and compare on (at least {need}; add labels with `conveyor labels add`)")
        record["retrain"] = {"skipped": f"{len(rows)} labeled predictions (at least {need} needed)"}
        return
    older, fresh = rows[:cut], rows[cut:]
    snapshot = _snapshot(config, workspace, older)
    derived = _derived_config(config, workspace, snapshot, search=search)
    outcome.lines.append(f"retraining ({why}) on {relative_to(snapshot, workspace.root)}: the source plus "
                         f"{len(older)} labeled served rows; {len(fresh)} newer ones kept to compare on")
    artifacts = run_pipeline(derived, workspace, stop="train")
    decision = challenge(derived, workspace, artifacts["train"], artifacts["dataset"],
                         [r.inputs for r in fresh], [r.label for r in fresh], why)
    record["retrain"] = {
        "snapshot": relative_to(snapshot, workspace.root), "snapshot_digest": hash_file(snapshot),
        "source": config.source.path, "source_digest": hash_file(workspace.resolve(config.source.path or "")),
        "appended_rows": len(older), "fresh_rows": len(fresh),
        "appended": _span(older), "fresh": _span(fresh),
        "training_set": artifacts["dataset"].digest, "trained": artifacts["train"].digest,
    }
    record["decision"] = decision.model_dump(mode="json")
    outcome.promoted, outcome.champion = decision.promoted, decision.champion
    outcome.lines.append(decision.summary())


def _span(rows: list[LabeledRow]) -> dict[str, Any]:
    return {"first_request_id": rows[0].request_id, "last_request_id": rows[-1].request_id,
            "first_served": rows[0].timestamp, "last_served": rows[-1].timestamp}


def _derived_config(config: Config, workspace: Workspace, snapshot: Path, *, search: bool) -> Config:
    training = config.training.model_copy(update={"split": "random"})
    if not search:
        training = training.model_copy(update={"search": training.search.model_copy(update={"trials": 0})})
    source = config.source.model_copy(update={"path": relative_to(snapshot, workspace.root)})
    return config.model_copy(update={"source": source, "training": training})


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and kind == "integer" and value.is_integer():
        return str(int(value))
    return str(value)


def _event_cells(config: Config, served: datetime) -> dict[str, str]:
    """The event-time columns of a served row: when it was served (a `date_hour` hour column is
    left to the row's own input when the model reads it)."""
    event = config.schema.event_time
    cells: dict[str, str] = {}
    if event.kind == "date_parts":  # year, month (a number, or a name as the file writes it), day, hour
        month = config.schema.columns[event.columns[1]].type == "string"
        parts = [str(served.year), served.strftime("%B") if month else str(served.month), str(served.day),
                 str(served.hour)]
        return dict(zip(event.columns, parts, strict=False))
    for column in event.columns:
        spec = config.schema.columns.get(column)
        kind = spec.type if spec is not None else "datetime"
        fmt = (spec.format if spec is not None else None) or event.format  # as prepare will parse it
        if kind == "date":
            cells[column] = served.strftime(fmt) if fmt else served.date().isoformat()
        elif kind == "datetime":
            cells[column] = served.strftime(fmt) if fmt else served.replace(tzinfo=None).isoformat()
        elif kind == "time":
            cells[column] = served.strftime(fmt or "%H:%M:%S")
        else:
            cells[column] = str(served.hour)
    return cells


def _snapshot(config: Config, workspace: Workspace, rows: list[LabeledRow]) -> Path:
    """The source file's bytes, then one line per labeled served row, in a folder of its own."""
    source = workspace.resolve(config.source.path or "")
    if not source.exists():
        raise ConveyorError(f"{source}: source file not found (source.path in {workspace.config_file})")
    encoding, delimiter = config.source.encoding, config.source.delimiter
    original = source.read_bytes()
    header = next(csv.reader(io.StringIO(original.decode(encoding).split("\n", 1)[0]), delimiter=delimiter))
    types = {name: column.type for name, column in config.schema.columns.items()}
    target = config.schema.target
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    for row in rows:
        served = datetime.fromisoformat(row.timestamp)
        cells = _event_cells(config, served)
        values = {**cells, **{k: _cell(v, types.get(k, "")) for k, v in row.inputs.items()},
                  target: _cell(row.label, types.get(target, ""))}
        writer.writerow([values.get(name, "") for name in header])
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = workspace.state / "loop" / stamp / source.name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.write(original)
        if original and not original.endswith(b"\n"):
            handle.write(b"\n")
        handle.write(out.getvalue().encode(encoding))
    return path


def loop_records(config: Config, workspace: Workspace) -> list[dict[str, Any]]:
    """Every `--act` record of this model, oldest first."""
    folder = workspace.state / "loop"
    records = []
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("model") == config.name:
            data["_path"] = relative_to(path, workspace.root)
            records.append(data)
    return records
