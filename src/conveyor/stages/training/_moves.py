"""Manual moves of `@champion`: `conveyor models promote VERSION` and `conveyor models rollback`.

The same compare-and-set as the gate: under the registry lock, the alias is read, checked
again just before the move, and after it; the move is appended to the model's history tags
(who, when, why), so the history shows manual moves next to the gate's.
"""

from __future__ import annotations

from typing import Any

from conveyor.core.config import Config
from conveyor.core.errors import TrainingError
from conveyor.core.locking import hold
from conveyor.core.workspace import Workspace
from conveyor.stages.training._registry import (
    CHAMPION,
    HISTORY_TAG,
    AliasChange,
    _who,
    champion_history,
    champion_version,
    registry_lock,
)
from conveyor.stages.training._tracking import client, quiet, where
from conveyor.stages.training._versions import _unmoved, _where

__all__ = ["move_champion", "previous_champion"]


def previous_champion(config: Config, workspace: Workspace) -> tuple[str, str]:
    """(now, before): where `@champion` points, and where it pointed before its latest move there.

    Like `cd -`: a rollback is itself a move, so rolling back twice returns to where it was.
    """
    current = champion_version(client(config, workspace), config.name)
    if current is None:
        raise TrainingError(f"model {config.name!r} has no @{CHAMPION} to roll back; run `conveyor run` first")
    now = str(current.version)
    for change in reversed(champion_history(config, workspace)):
        if change.new == now and change.old is not None:
            return now, change.old
    raise TrainingError(f"@{CHAMPION} of {config.name!r} (v{now}) has no previous champion in its history; "
                        "name one: `conveyor models promote VERSION`")


def move_champion(config: Config, workspace: Workspace, version: str, why: str, *,
                  expect: str | None = None) -> AliasChange:
    """Point `@champion` at `version` (a registered version number), recorded in the history.

    `expect`: where `@champion` must still point (a rollback decided on it), else a one-line refusal.
    """
    from datetime import UTC, datetime

    from mlflow.exceptions import MlflowException

    version = version.strip().lstrip("v")
    mlflow_client = client(config, workspace)
    with quiet(), hold(registry_lock(config, workspace)):
        try:
            found = mlflow_client.get_model_version(config.name, version) if version.isdigit() else None
        except MlflowException:
            found = None
        if found is None:
            raise TrainingError(f"no version {version!r} of model {config.name!r} in {where(config, workspace)}; "
                                "`conveyor models` lists them")
        current = champion_version(mlflow_client, config.name)
        read = _where(current)
        if expect is not None and read != expect:
            raise TrainingError(f"@{CHAMPION} of {config.name!r} moved to v{read} meanwhile; run it again")
        if read == version:
            raise TrainingError(f"v{version} is already the @{CHAMPION} of {config.name!r}: nothing to move")
        tags = found.tags or {}
        metric = tags.get("conveyor.primary_metric", "")
        score = _float(tags.get(f"test_{metric}"))
        if score is None:  # not recorded on the version: the score its last move into @champion recorded
            score = next((c.score for c in reversed(champion_history(config, workspace)) if c.new == version), None)
        previous = None if current is None else _float((current.tags or {}).get(f"test_{metric}"))
        change = AliasChange(
            at=datetime.now(UTC).isoformat(timespec="seconds"), by=_who(), old=read, new=version, why=why,
            metric=metric or "unknown", score=0.0 if score is None else score, previous_score=previous,
        )
        _unmoved(mlflow_client, config.name, read)
        mlflow_client.set_registered_model_alias(config.name, CHAMPION, version)
        registered = mlflow_client.get_registered_model(config.name)
        count = sum(1 for key in registered.tags if key.startswith(HISTORY_TAG))
        mlflow_client.set_registered_model_tag(config.name, f"{HISTORY_TAG}{count + 1:04d}", change.model_dump_json())
        for key, value in (("conveyor.promoted_at", change.at), ("conveyor.promoted_by", change.by),
                           ("conveyor.promotion_reason", why)):
            mlflow_client.set_model_version_tag(config.name, version, key, value)
        _unmoved(mlflow_client, config.name, version)
    return change


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None
