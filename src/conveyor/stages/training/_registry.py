"""The promotion gate and the champion: MLflow's model registry with aliases, plus an audit trail.

The gate decides between models, not against one: every candidate was scored on the same
test split; the best servable one must beat the trivial model (mean / class prior) and the
current champion, re-scored on that split, by `promotion.min_improvement`, in the metric's
direction. Every move of `@champion` is recorded as a tag of the registered model (who, when,
why, old -> new version, figures), since MLflow keeps no history of aliases.

Moving `@champion` is a compare-and-set: the whole read-decide-move runs under the registry
lock (`registry_lock`: the shared PostgreSQL lock when configured, else a lock file next to a
SQLite registry), and the alias is re-read before the new version is registered, before the
move and after it. If it no longer points where the decision read it, the promotion is refused
in one line: the history can never show two moves from the same version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from conveyor.core.artifacts import Artifact, Result
from conveyor.core.config import Config
from conveyor.core.errors import TrainingError
from conveyor.core.hashing import hash_json
from conveyor.core.locking import FileLock, PostgresLock, hold
from conveyor.core.workspace import Workspace
from conveyor.stages.training._kept import register_kept
from conveyor.stages.training._metrics import METRICS, beats, evaluate, fresh_score
from conveyor.stages.training._tracking import (
    client,
    quiet,
    quiet_downloads,
    registry_db,
    store_path,
    tracking,
    tracking_uri,
)
from conveyor.stages.training._train import TrainingSetInput, TrainResult, load_split
from conveyor.stages.training._versions import (
    CHAMPION,
    Champion,
    VersionInfo,
    _load,
    _unmoved,
    _where,
    _write_reference,
    champion_number,
    champion_version,
    describe_version,
    list_versions,
    load_champion,
    load_version,
    version_model_id,
)
from conveyor.stages.training._versions import REFERENCE_ROWS as REFERENCE_ROWS

if TYPE_CHECKING:
    from conveyor.stages.training._model import ConveyorModel
    from conveyor.stages.training._seen import Unseen

__all__ = [
    "CHAMPION", "HISTORY_TAG", "AliasChange", "Champion", "PromotionDecision", "VersionInfo", "champion_history",
    "champion_number",
    "champion_version", "describe_version", "list_versions", "load_champion", "load_version", "promote",
    "registry_lock",
]

HISTORY_TAG = "conveyor.champion.history."
"""Registered-model tag prefix of the alias audit trail: `<prefix>0001`, `<prefix>0002`, ... (JSON)."""


class AliasChange(BaseModel):
    """One move of `@champion`: who, when, why, from which version to which, on what figures."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: str
    by: str
    old: str | None
    new: str
    why: str
    metric: str
    score: float
    previous_score: float | None = None


class PromotionDecision(Result):
    """What the gate decided, with the figures it decided on."""

    kind: ClassVar[str] = "promotion"

    metric: str
    greater_is_better: bool = True
    candidate: str
    """The best servable candidate on the test split."""
    candidate_score: float
    trivial_score: float | None = None
    baseline_score: float
    scores: dict[str, float] = {}
    """Every candidate's primary metric on the test split."""
    champion_version: str | None
    """The champion before this decision."""
    champion_score: float | None
    """That champion re-scored on this test split (None: no champion, or it could not be scored)."""
    champion_note: str | None = None
    """Why the previous champion could not be re-scored, when it could not."""
    compared_on: str = "test split"
    """Where the candidate met the champion: this test split, or (a champion `monitor --act`
    promoted) the fresh labeled rows it was promoted on."""
    candidate_compared_score: float | None = None
    """The candidate on the fresh labeled rows, or on the test rows neither model trained on, when
    it was compared there."""
    champion_seen_rows: int | None = None
    """Test rows the champion was trained on (None: not counted, or its training rows are unknown)."""
    promoted: bool
    reasons: list[str]
    """Why nothing was promoted (empty when promoted)."""
    champion: str | None
    """The champion after this decision."""
    change: AliasChange | None = None
    """The audit entry written to the registry when `@champion` moved."""

    def summary(self) -> str:
        note = f" ({self.champion_note})" if self.champion_note else ""
        if self.promoted:
            versus = f" vs trivial {self.trivial_score:.4f}" if self.trivial_score is not None else ""
            if self.champion_score is not None and self.candidate_compared_score is not None:
                versus += (f"; {self.candidate_compared_score:.4f} vs v{self.champion_version} "
                           f"{self.champion_score:.4f} on {self.compared_on}")
            elif self.champion_score is not None:
                versus += f", v{self.champion_version} {self.champion_score:.4f}"
            return f"champion = v{self.champion} ({self.candidate} {self.metric}={self.candidate_score:.4f}{versus}){note}"
        kept = f"champion stays v{self.champion}" if self.champion else "no champion"
        return f"{kept}: " + "; ".join(self.reasons) + note


def _who() -> str:
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def promote(
    config: Config, workspace: Workspace, trained: Artifact[TrainResult], training_set: Artifact[TrainingSetInput]
) -> Artifact[PromotionDecision]:
    """Register the best candidate and make it the champion only if it beats the trivial model
    and the current champion (re-scored on this test split) by `promotion.min_improvement`.
    """
    with quiet(), hold(registry_lock(config, workspace)):
        return _promote(config, workspace, trained, training_set)


def registry_lock(config: Config, workspace: Workspace) -> FileLock | PostgresLock:
    """The lock around a promotion's read-decide-move of this model's `@champion`.

    Shared by every project registering the same model name in the same registry: the
    PostgreSQL advisory lock when `stores.lock` (else `stores.registry`) names a database, else
    a lock file next to a SQLite registry (`.mlflow.db.lock`), else (a tracking server without a
    shared lock) `.conveyor/registry.lock`, which serialises this machine only.
    """
    stores = config.stores
    store, source = (stores.lock, "stores.lock") if stores.lock is not None else (stores.registry, "stores.registry")
    if store is not None:
        return PostgresLock(store.dsn_env, f"conveyor registry {config.name}", "registry lock", source)
    db = registry_db(tracking_uri(config, workspace))
    if db is not None:
        return FileLock(db.parent / f".{db.name}.lock", "registry lock")
    return FileLock(workspace.state / "registry.lock", "registry lock")


def _promote(
    config: Config, workspace: Workspace, trained: Artifact[TrainResult], training_set: Artifact[TrainingSetInput]
) -> Artifact[PromotionDecision]:
    from datetime import UTC, datetime

    result = trained.result
    metric, best = result.primary_metric, result.best
    candidate = result.candidates[best]
    scores = {n: c.metrics[metric] for n, c in result.candidates.items() if metric in c.metrics}
    score_new = scores[best]
    trivial = scores.get("trivial")
    margin = config.promotion.min_improvement
    way = "higher" if METRICS[metric].greater_is_better else "lower"
    mlflow_client = client(config, workspace)
    current = champion_version(mlflow_client, config.name)
    champion_score, note = (
        (None, None) if current is None else _score_champion(mlflow_client, config, workspace, current, training_set)
    )
    # A champion `monitor --act` promoted won on fresh labeled traffic, and was trained on rows of
    # this test split: it meets the candidate on those fresh rows, as it met its own challenger.
    compared_on, fresh = "this test split", None
    compared_score: float | None = score_new
    if current is not None and current.run_id != candidate.run_id:
        try:
            fresh = _fresh_rows(mlflow_client, current)
        except TrainingError as exc:  # not compared on another split either: the champion stays, and why
            compared_score, note = None, str(exc)
    if current is not None and fresh is not None:
        rows, truth = fresh
        champion, note = champion_model(mlflow_client, config, workspace, current)
        if champion is None:  # it cannot be scored on its own rows: the champion stays, and why
            champion_score, compared_score = None, None
        else:
            compared_score = fresh_score(_load(mlflow_client, config, workspace, candidate.model_id or ""), rows, truth,
                                         metric)
            champion_score = fresh_score(champion, rows, truth, metric)
            compared_on = f"the {len(rows)} fresh labeled rows v{current.version} was promoted on"
    reasons = []
    # a champion that trained on some of these test rows meets the candidate on the rows neither saw
    elsewhere, unseen = fresh is not None, None
    if (current is not None and fresh is None and champion_score is not None and compared_score is not None
            and current.run_id != candidate.run_id):
        unseen = _unseen(mlflow_client, config, workspace, current, candidate, training_set, metric)
        note = unseen.note or note
        if unseen.compared_on is not None:
            elsewhere, compared_on = True, unseen.compared_on
            champion_score, compared_score = unseen.champion_score, unseen.candidate_score
    if trivial is not None and not beats(metric, score_new, trivial, margin):
        reasons.append(
            f"no model beats the trivial one: best {best} {metric}={score_new:.4f} vs trivial {trivial:.4f} "
            f"({way} is better, margin {margin})"
        )
    share = candidate.beats_trivial
    if not reasons and share is not None and share < config.promotion.confidence:
        reasons.append(
            f"{best} {metric}={score_new:.4f} beats trivial {trivial:.4f} on only {share:.0%} of bootstrap resamples "
            f"of the test split (promotion.confidence {config.promotion.confidence:.0%}): it may be luck"
        )
    if unseen is not None and unseen.refusal is not None:
        reasons.append(unseen.refusal)
    elif current is not None and compared_score is None:
        reasons.append(f"champion v{current.version} was promoted on fresh labeled rows the candidate could not be "
                       "compared on: it stays")
    elif current is not None and champion_score is not None and compared_score is not None and not beats(
            metric, compared_score, champion_score, margin):
        reasons.append(
            f"{best} {metric}={compared_score:.4f} does not beat champion v{current.version}'s {champion_score:.4f} "
            f"on {compared_on} ({way} is better, margin {margin})"
        )
    if current is not None and current.run_id == candidate.run_id:
        reasons = ["this run is already the champion"]
    if unseen is not None and reasons == [unseen.refusal] and candidate.model_id is not None:
        kept = register_kept(mlflow_client, config, workspace, trained, best, training_set, read=_where(current),
                             write_reference=_write_reference)
        reasons[0] += (f"; the candidate is registered as v{kept} without the alias: `conveyor models promote {kept}` "
                       "makes it champion anyway")
    version = str(current.version) if current is not None else None
    change = None
    if not reasons:
        assert candidate.model_id is not None
        why = (
            f"{best} {metric}={score_new:.4f} beats trivial {trivial:.4f}" if trivial is not None else f"{best} {metric}={score_new:.4f}"
        )
        if current is not None and elsewhere:
            why += f" on the {result.split} test split, and champion v{current.version}'s {champion_score:.4f} with " \
                   f"{compared_score:.4f} on {compared_on} ({way} is better, margin {margin}"
        else:
            if current is not None:
                why += (
                    f" and champion v{current.version}'s {champion_score:.4f}" if champion_score is not None
                    else f"; champion v{current.version} replaced unscored"
                )
            why += f" on the {result.split} test split ({way} is better, margin {margin}"
        why += f"; beats trivial on {share:.0%} of bootstrap resamples)" if share is not None else ")"
        version = _register(mlflow_client, config, workspace, candidate.run_id, candidate.model_id, training_set,
                            read=_where(current))
        change = AliasChange(
            at=datetime.now(UTC).isoformat(timespec="seconds"), by=_who(), old=None if current is None else str(current.version),
            new=version, why=why, metric=metric, score=score_new if compared_score is None else compared_score,
            previous_score=champion_score,
        )
        _record(mlflow_client, config, version, best, candidate.metrics, change, trained, training_set)
        _unmoved(mlflow_client, config.name, version)  # re-read after the move: no other promotion overtook it
    decision = PromotionDecision(
        metric=metric, greater_is_better=METRICS[metric].greater_is_better, candidate=best, candidate_score=score_new,
        trivial_score=trivial, baseline_score=scores.get("baseline", float("nan")), scores=scores,
        champion_version=str(current.version) if current is not None else None, champion_score=champion_score,
        champion_note=note, compared_on=compared_on.removeprefix("this "),
        candidate_compared_score=compared_score if elsewhere else None,
        champion_seen_rows=None if unseen is None else unseen.seen,
        promoted=not reasons, reasons=reasons, champion=version, change=change,
    )
    digest = hash_json({"trained": trained.digest, "decision": decision.model_dump(mode="json")})
    return Artifact("promotion", store_path(config, workspace), digest, decision, {"trained": trained.digest})


def _record(
    mlflow_client: Any, config: Config, version: str, best: str, metrics: dict[str, float], change: AliasChange,
    trained: Artifact[TrainResult], training_set: Artifact[TrainingSetInput],
) -> None:
    """Lineage and metrics on the new version; the alias move appended to the model's history tags."""
    run = mlflow_client.get_run(trained.result.candidates[best].run_id)
    tags = {
        "conveyor.candidate": best,
        "conveyor.training_set": training_set.digest,
        "conveyor.feature_service": run.data.tags.get("conveyor.feature_service", ""),
        "conveyor.config": run.data.tags.get("conveyor.config", ""),
        "conveyor.run": run.info.run_id,
        "conveyor.primary_metric": change.metric,
        "conveyor.promoted_at": change.at,
        "conveyor.promoted_by": change.by,
        "conveyor.promotion_reason": change.why,
        **{f"test_{k}": f"{v:.6f}" for k, v in metrics.items()},
    }
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(config.name, version, key, value)
    registered = mlflow_client.get_registered_model(config.name)
    count = sum(1 for key in registered.tags if key.startswith(HISTORY_TAG))
    mlflow_client.set_registered_model_tag(config.name, f"{HISTORY_TAG}{count + 1:04d}", change.model_dump_json())


def champion_history(config: Config, workspace: Workspace) -> list[AliasChange]:
    """Every recorded move of `@champion`, oldest first."""
    from mlflow.exceptions import MlflowException

    try:
        registered = client(config, workspace).get_registered_model(config.name)
    except MlflowException:
        return []
    entries = sorted((k, v) for k, v in registered.tags.items() if k.startswith(HISTORY_TAG))
    history = []
    for _, value in entries:
        try:
            history.append(AliasChange.model_validate(json.loads(value)))
        except ValueError:
            continue  # a tag edited by hand: not ours to interpret
    return history


def _register(
    mlflow_client: Any, config: Config, workspace: Workspace, run_id: str, model_id: str,
    training_set: Artifact[TrainingSetInput], *, read: str | None,
) -> str:
    """A new registered version of the run's model, the champion alias on it, its reference.

    `read` is where `@champion` pointed when the decision was made: nothing is registered, and
    the alias does not move, unless it still points there.
    """
    from mlflow.exceptions import MlflowException

    _unmoved(mlflow_client, config.name, read)
    try:
        mlflow_client.get_registered_model(config.name)
    except MlflowException:
        mlflow_client.create_registered_model(config.name)
    with tracking(config, workspace):  # the registry resolves the logged model through the tracking URI
        created = mlflow_client.create_model_version(
            config.name, source=f"models:/{model_id}", run_id=run_id, model_id=model_id
        )
    version = str(created.version)
    _write_reference(mlflow_client, config, workspace, training_set, run_id, model_id, version)
    try:
        _unmoved(mlflow_client, config.name, read)
    except TrainingError:
        mlflow_client.delete_model_version(config.name, version)  # nothing points at it: leave no trace
        raise
    mlflow_client.set_registered_model_alias(config.name, CHAMPION, version)
    return version


FRESH_ROWS = "conveyor/fresh_rows.json"
"""The run artifact of a version `monitor --act` promoted: the fresh labeled rows it won on."""


def _keep_fresh_rows(mlflow_client: Any, name: str, version: str, run_id: str, rows: Sequence[Mapping[str, Any]],
                     truth: Sequence[Any]) -> None:
    """Keep the fresh labeled rows a retrained champion won on, with its run, for later gates."""
    mlflow_client.log_text(run_id, json.dumps({"rows": [dict(r) for r in rows], "truth": list(truth)}), FRESH_ROWS)
    mlflow_client.set_model_version_tag(name, version, "conveyor.fresh_rows", str(len(rows)))


def _fresh_rows(mlflow_client: Any, version: Any) -> tuple[list[dict[str, Any]], list[Any]] | None:
    """The fresh labeled rows a champion was promoted on by `monitor --act`, or None."""
    import tempfile

    from mlflow.exceptions import MlflowException

    if "conveyor.fresh_rows" not in (version.tags or {}):
        return None
    with tempfile.TemporaryDirectory() as staging:
        try:
            with quiet_downloads():
                path = Path(mlflow_client.download_artifacts(version.run_id, FRESH_ROWS, staging))
            data = json.loads(path.read_text(encoding="utf-8"))
        except (MlflowException, OSError, ValueError) as exc:
            raise TrainingError(f"champion v{version.version} was promoted on fresh labeled rows, and they cannot be "
                                f"read back from its run {version.run_id} ({exc}); it stays champion until the "
                                "alias is moved in the registry") from exc
    return list(data["rows"]), list(data["truth"])


def _unseen(
    mlflow_client: Any, config: Config, workspace: Workspace, current: Any, candidate: Any,
    training_set: Artifact[TrainingSetInput], metric: str,
) -> Unseen:
    """The test rows the champion trained on, and the comparison on those neither did (`_seen.py`)."""
    from conveyor.stages.training._seen import compare_unseen

    _, test_df, _ = load_split(config, training_set)
    return compare_unseen(
        mlflow_client, config, current, candidate.run_id, test_df, metric,
        lambda: _load(mlflow_client, config, workspace, version_model_id(current)),
        lambda: _load(mlflow_client, config, workspace, candidate.model_id or ""),
    )


def _score_champion(
    mlflow_client: Any, config: Config, workspace: Workspace, current: Any, training_set: Artifact[TrainingSetInput]
) -> tuple[float | None, str | None]:
    """The current champion's primary metric on today's test split, or None and why not.

    Only a champion that cannot be compared is a reason (its model cannot be loaded, or it reads
    features this training set has not): any other error is a bug and propagates."""
    from conveyor.stages.training._metrics import metric_for

    _, test_df, _ = load_split(config, training_set)
    model, why_not = champion_model(mlflow_client, config, workspace, current)
    if model is None:
        return None, why_not
    missing = [f for f in model.features if f not in test_df.columns]
    if missing:  # a champion from another schema cannot be compared: say why, in the decision
        return None, (f"champion v{current.version} could not be re-scored on this test split: "
                      f"its features {missing} are not in this training set")
    scores = evaluate(model, test_df, config.schema.target)
    metric = metric_for(config.training.metric, config.schema.task, None if model.classes is None else len(model.classes))
    value = scores.get(metric.name)
    return value, None if value is not None else f"champion v{current.version} has no {metric.name} on this split"


def champion_model(
    mlflow_client: Any, config: Config, workspace: Workspace, current: Any
) -> tuple[ConveyorModel | None, str | None]:
    """The champion's model, or None and the named reason it cannot be loaded here (no logged model
    behind the version, its files gone or unreadable, its code or format unknown to this install).
    Nothing else is caught: a programming error is a traceback, not "no champion to compare"."""
    import pickle

    from mlflow.exceptions import MlflowException

    try:
        return _load(mlflow_client, config, workspace, version_model_id(current)), None
    except (TrainingError, MlflowException, OSError, ImportError, pickle.UnpicklingError) as exc:
        return None, f"champion v{current.version} cannot be loaded: {type(exc).__name__}: {exc}"


