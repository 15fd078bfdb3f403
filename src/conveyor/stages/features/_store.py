"""Feast, in process: apply, materialize, point-in-time training sets, online reads."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import warnings
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.artifacts import Artifact, relative_to
from conveyor.core.config import EVENT_TIMESTAMP, Config
from conveyor.core.errors import FeatureStoreError
from conveyor.core.hashing import hash_json, short
from conveyor.core.workspace import Workspace
from conveyor.stages.features._repo import feast_names, write_repo
from conveyor.stages.features._stage import DATASET_VERSION, FEATURES_VERSION, CleanInput, FeatureRepo, TrainingSet

if TYPE_CHECKING:
    from feast import FeatureStore

__all__ = ["OnlineFeatures", "build_features", "training_set"]


@contextlib.contextmanager
def _quiet() -> Any:
    """Feast prints progress with colours and warns about its own internals; keep our output clean."""
    import feast  # noqa: F401  # importing it adds warning filters of its own: do that before ours

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        previous = logging.getLogger("feast").level
        logging.getLogger("feast").setLevel(logging.ERROR)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        finally:
            logging.getLogger("feast").setLevel(previous)


def _store(workspace: Workspace) -> FeatureStore:
    with _quiet():
        from feast import FeatureStore

        return FeatureStore(repo_path=str(workspace.feature_repo))


def _load_definitions(path: Path) -> list[Any]:
    from feast import Entity, FeatureService, FeatureView, FileSource

    spec = importlib.util.spec_from_file_location("conveyor_feast_definitions", path)
    if spec is None or spec.loader is None:
        raise FeatureStoreError(f"{path}: cannot load the generated Feast definitions")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    kinds = (Entity, FileSource, FeatureView, FeatureService)
    return [obj for obj in vars(module).values() if isinstance(obj, kinds)]


def build_features(config: Config, workspace: Workspace, clean: Artifact[CleanInput]) -> Artifact[FeatureRepo]:
    """Generate the Feast repo, apply it, and materialize the clean data to the online store."""
    digest = hash_json(
        {"clean": clean.digest, "schema": config.section("schema"), "features": config.section("features"),
         "version": FEATURES_VERSION}
    )
    definitions = write_repo(config, workspace, clean.path)
    names = feast_names(config)
    with _quiet():
        try:
            objects = _load_definitions(definitions)
            store = _store(workspace)
            store.apply(objects)
            start, end = _time_range(clean.path)
            store.materialize(start - timedelta(seconds=1), end + timedelta(seconds=1))
        except FeatureStoreError:
            raise
        except Exception as exc:  # Feast raises many unrelated types
            raise FeatureStoreError(
                f"Feast could not apply or materialize {workspace.feature_repo}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    result = FeatureRepo(
        project=names.project,
        feature_view=names.view,
        feature_service=names.service,
        features=config.schema.features(),
        materialized_from=start.isoformat(),
        materialized_to=end.isoformat(),
        online_store=relative_to(workspace.feature_repo / "data" / "online_store.db", workspace.root),
    )
    return Artifact("features", workspace.feature_repo, digest, result, {"clean": clean.digest})


def _time_range(path: Path) -> tuple[Any, Any]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    column = pq.read_table(path, columns=[EVENT_TIMESTAMP])[EVENT_TIMESTAMP]
    bounds = pc.min_max(column)
    return bounds["min"].as_py(), bounds["max"].as_py()


def training_set(
    config: Config, workspace: Workspace, features: Artifact[FeatureRepo], clean: Artifact[CleanInput]
) -> Artifact[TrainingSet]:
    """The training set, built by Feast's point-in-time join, written to `data/training/`.

    Labels and event times come from the clean data (the "entity dataframe"); every feature
    comes through Feast. Rows in and rows out are counted: a join that loses a row is an error.
    """
    import pandas as pd

    schema = config.schema
    key, target = schema.entity.key, schema.target
    digest = hash_json(
        {"features": features.digest, "clean": clean.digest, "target": target, "version": DATASET_VERSION}
    )
    out = workspace.training_sets / f"{short(digest)}.parquet"
    entity_df = pd.read_parquet(clean.path, columns=[key, EVENT_TIMESTAMP, target])
    store = _store(workspace)
    with _quiet():
        try:
            service = store.get_feature_service(features.result.feature_service)
            frame = store.get_historical_features(entity_df=entity_df, features=service).to_df()
        except Exception as exc:
            raise FeatureStoreError(
                f"Feast could not build the training set from {workspace.feature_repo}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    if len(frame) != len(entity_df):
        raise FeatureStoreError(
            f"the point-in-time join returned {len(frame)} rows for {len(entity_df)} entity rows; "
            "refusing to train on a silently changed training set"
        )
    frame = frame.sort_values([EVENT_TIMESTAMP, key], kind="stable").reset_index(drop=True)
    frame = frame[[key, EVENT_TIMESTAMP, *schema.features(), target]]
    workspace.ensure(workspace.training_sets)
    frame.to_parquet(out.with_suffix(".tmp"), index=False)
    out.with_suffix(".tmp").replace(out)
    result = TrainingSet(rows=len(frame), entity_rows=len(entity_df), columns=[str(c) for c in frame.columns])
    return Artifact("training_set", out, digest, result, {"features": features.digest, "clean": clean.digest})


class OnlineFeatures:
    """Reads feature rows for entity keys from the online store, for serving."""

    def __init__(self, config: Config, workspace: Workspace) -> None:
        self.key = config.schema.entity.key
        self.features = config.schema.features()
        self._store = _store(workspace)
        with _quiet():
            try:
                self._service = self._store.get_feature_service(feast_names(config).service)
            except Exception as exc:
                raise FeatureStoreError(
                    f"no feature service in {workspace.feature_repo}; run `conveyor run` first ({exc})"
                ) from exc

    def get(self, keys: list[Any]) -> list[dict[str, Any] | None]:
        """One feature row per key, in order; None where the store knows no such entity."""
        # no _quiet() here: this runs in server threads, where swapping stdout is not safe
        result = self._store.get_online_features(
            features=self._service, entity_rows=[{self.key: k} for k in keys]
        ).to_dict()
        rows: list[dict[str, Any] | None] = []
        for index in range(len(keys)):
            row = {name: result[name][index] for name in self.features}
            rows.append(None if all(v is None for v in row.values()) else row)
        return rows
