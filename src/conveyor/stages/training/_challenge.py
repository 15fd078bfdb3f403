"""The closed loop's gate: a retrained challenger against the champion, on fresh labeled traffic.

`conveyor run`'s gate compares models on the training set's test split. A retraining triggered
by drift or degraded performance asks a different question: which model answers today's
traffic better? Both are scored on labeled served rows neither was trained on (the newest share
of the labeled traffic, `monitoring.fresh_share`). The challenger must also beat the trivial
model on its own test split, as every champion must. `@champion` moves only if the challenger
wins, by the same compare-and-set under the registry lock as `conveyor promote`, and the move
is recorded in the champion's history with the whole story (why it retrained, on what rows,
the two scores).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from conveyor.core.artifacts import Artifact, Result
from conveyor.core.config import Config
from conveyor.core.locking import hold
from conveyor.core.workspace import Workspace
from conveyor.stages.training._metrics import METRICS, beats, fresh_score
from conveyor.stages.training._registry import (
    AliasChange,
    _keep_fresh_rows,
    _record,
    _register,
    _who,
    champion_model,
    champion_version,
    registry_lock,
)
from conveyor.stages.training._tracking import client, quiet
from conveyor.stages.training._train import TrainingSetInput, TrainResult
from conveyor.stages.training._versions import _load, _unmoved, _where

__all__ = ["ChallengeDecision", "challenge"]


class ChallengeDecision(Result):
    """What the fresh-data gate decided, with the figures it decided on."""

    kind: ClassVar[str] = "challenge"

    metric: str
    greater_is_better: bool
    n_fresh: int
    candidate: str
    """The challenger: the best servable candidate of the retraining."""
    candidate_run: str
    challenger_score: float
    """The challenger's primary metric on the fresh labeled rows."""
    challenger_test_score: float
    trivial_test_score: float | None = None
    champion_version: str | None
    champion_score: float | None
    """The champion's primary metric on the same fresh rows (None: no champion, or not scorable)."""
    champion_note: str | None = None
    promoted: bool
    reasons: list[str]
    champion: str | None
    """The champion after this decision."""
    change: AliasChange | None = None

    def summary(self) -> str:
        versus = (f" vs champion v{self.champion_version} {self.champion_score:.4f}"
                  if self.champion_score is not None else "")
        figures = f"{self.candidate} {self.metric}={self.challenger_score:.4f}{versus} on {self.n_fresh} fresh labeled rows"
        if self.promoted:
            return f"champion = v{self.champion}: {figures}"
        return f"champion stays v{self.champion}: {figures}; " + "; ".join(self.reasons)


def challenge(
    config: Config, workspace: Workspace, trained: Artifact[TrainResult], training_set: Artifact[TrainingSetInput],
    fresh_rows: Sequence[Mapping[str, Any]], fresh_truth: Sequence[Any], why: str,
) -> ChallengeDecision:
    """Register the retrained best candidate and make it the champion only if it beats the
    champion on `fresh_rows` (model inputs as logged) by `promotion.min_improvement`, and the
    trivial model on its test split. `why` (the trigger) goes into the champion's history."""
    with quiet(), hold(registry_lock(config, workspace)):
        return _challenge(config, workspace, trained, training_set, fresh_rows, fresh_truth, why)


def _challenge(
    config: Config, workspace: Workspace, trained: Artifact[TrainResult], training_set: Artifact[TrainingSetInput],
    fresh_rows: Sequence[Mapping[str, Any]], fresh_truth: Sequence[Any], why: str,
) -> ChallengeDecision:
    result = trained.result
    metric, best = result.primary_metric, result.best
    candidate = result.candidates[best]
    assert candidate.model_id is not None
    margin = config.promotion.min_improvement
    way = "higher" if METRICS[metric].greater_is_better else "lower"
    mlflow_client = client(config, workspace)
    challenger_score = fresh_score(_load(mlflow_client, config, workspace, candidate.model_id), fresh_rows, fresh_truth, metric)
    current = champion_version(mlflow_client, config.name)
    champion_score: float | None = None
    note = None
    if current is not None:
        champion, note = champion_model(mlflow_client, config, workspace, current)  # None: say why, in the decision
        if champion is not None:  # a feature it reads that the rows lack is missing in them, as in serving
            champion_score = fresh_score(champion, fresh_rows, fresh_truth, metric)
    test_score = candidate.metrics[metric]
    trivial = result.candidates["trivial"].metrics.get(metric) if "trivial" in result.candidates else None
    reasons = []
    if trivial is not None and not beats(metric, test_score, trivial, margin):
        reasons.append(f"{best} {metric}={test_score:.4f} does not beat the trivial model's {trivial:.4f} "
                       f"on its test split ({way} is better)")
    if current is not None and champion_score is not None and not beats(metric, challenger_score, champion_score, margin):
        reasons.append(f"{best} {metric}={challenger_score:.4f} does not beat champion v{current.version}'s "
                       f"{champion_score:.4f} on {len(fresh_rows)} fresh labeled rows ({way} is better, margin {margin})")
    if current is not None and current.run_id == candidate.run_id:
        reasons = ["this run is already the champion"]
    version = _where(current)
    change = None
    if not reasons:
        versus = (f" beats champion v{current.version}'s {champion_score:.4f}" if current is not None and champion_score is not None
                  else "" if current is None else f" replaces champion v{current.version} unscored")
        text = (f"retrained ({why}): {best} {metric}={challenger_score:.4f}{versus} on {len(fresh_rows)} fresh labeled "
                f"rows ({way} is better, margin {margin}); test split {metric}={test_score:.4f}")
        version = _register(mlflow_client, config, workspace, candidate.run_id, candidate.model_id, training_set,
                            read=_where(current))
        change = AliasChange(
            at=datetime.now(UTC).isoformat(timespec="seconds"), by=_who(), old=_where(current), new=version,
            why=text, metric=metric, score=challenger_score, previous_score=champion_score,
        )
        _record(mlflow_client, config, version, best, candidate.metrics, change, trained, training_set)
        mlflow_client.set_model_version_tag(config.name, version, "conveyor.retrained", why)
        _keep_fresh_rows(mlflow_client, config.name, version, candidate.run_id, fresh_rows, fresh_truth)
        _unmoved(mlflow_client, config.name, version)
    return ChallengeDecision(
        metric=metric, greater_is_better=METRICS[metric].greater_is_better, n_fresh=len(fresh_rows), candidate=best,
        candidate_run=candidate.run_id, challenger_score=challenger_score, challenger_test_score=test_score,
        trivial_test_score=trivial, champion_version=_where(current), champion_score=champion_score,
        champion_note=note, promoted=not reasons, reasons=reasons, champion=version, change=change,
    )
