"""The features stages: `features` (apply + fill the online store) and `dataset` (the training set)."""

from __future__ import annotations

from conveyor.core.artifacts import Artifact
from conveyor.core.config import Config
from conveyor.core.stage import Stage, Upstream
from conveyor.core.workspace import Workspace
from conveyor.stages.features._results import (
    DATASET_VERSION,
    FEATURES_VERSION,
    CleanInput,
    FeatureRepo,
    TrainingSet,
)

__all__ = ["DATASET", "DATASET_VERSION", "FEATURES", "FEATURES_VERSION", "FeatureRepo", "TrainingSet"]


def _features(config: Config, workspace: Workspace, upstream: Upstream) -> Artifact[FeatureRepo]:
    from conveyor.stages.features._build import build_features
    from conveyor.stages.features._link import link_features

    if config.features.repo is not None:
        return link_features(config, workspace)  # another project's store: nothing built here
    return build_features(config, workspace, upstream.get("prepare", CleanInput))


def _dataset(config: Config, workspace: Workspace, upstream: Upstream) -> Artifact[TrainingSet]:
    from conveyor.stages.features._dataset import training_set

    return training_set(
        config, workspace, upstream.get("features", FeatureRepo), upstream.get("prepare", CleanInput)
    )


def _models_key(config: Config, workspace: Workspace) -> object:
    """`models:` only when declared: a one-model project's cache key is what it always was.
    With `features.repo`: also that project's registry hash, so a rebuild of its store is noticed."""
    models = config.section("models") or None
    if config.features.repo is None:
        return models
    from conveyor.stages.features._link import repo_digest

    return {"models": models, "registry": repo_digest(config, workspace)}


def _features_still_valid(config: Config, workspace: Workspace, artifact: Artifact[FeatureRepo]) -> str | None:
    from conveyor.stages.features._repo import local_parts, store_repo
    from conveyor.stages.features._shared import shared_parts_missing

    repo = store_repo(config, workspace)
    missing = [part for part in local_parts(config) if not (repo / part).is_file()]
    if missing:
        return f"the feature store lacks {', '.join(missing)}"
    return shared_parts_missing(config, artifact.result.feature_service) or _online_still_valid(
        config, workspace, artifact.result)


def _online_still_valid(config: Config, workspace: Workspace, result: FeatureRepo) -> str | None:
    """The online store is where this build wrote it: the same kind, and on Redis the generation
    it published still served (a flushed Redis, or a build of another checkout, re-runs the stage)."""
    if config.features.repo is not None:
        return None
    if config.stores.online is None:
        return "the online store was built on Redis; stores.online is gone" if result.online_generation else None
    if not result.online_generation:
        return "the online store was built on SQLite; stores.online moves it to Redis"
    from conveyor.stages.features._online import served_generation
    from conveyor.stages.features._repo import repo_config, store_repo

    served = served_generation(repo_config(config, store_repo(config, workspace)))
    if served != result.online_generation:
        return f"Redis serves generation {served or 'none'} of the online store, this build wrote {result.online_generation}"
    return None


FEATURES: Stage[FeatureRepo] = Stage(
    name="features",
    needs=("prepare",),
    sections=("schema", "features"),
    version=FEATURES_VERSION,
    result=FeatureRepo,
    run=_features,
    describe="apply + online store (Feast)",
    help="Apply the Feast objects (entity, source, view, service); write the latest row per entity online.",
    still_valid=_features_still_valid,
    extra_key=_models_key,
)

DATASET: Stage[TrainingSet] = Stage(
    name="dataset",
    needs=("features", "prepare"),
    sections=("schema",),
    version=DATASET_VERSION,
    result=TrainingSet,
    run=_dataset,
    describe="point-in-time training set (Feast)",
    help="Build the training set with Feast's point-in-time join; no row may be lost.",
)
