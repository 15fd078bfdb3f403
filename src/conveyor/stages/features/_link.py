"""The `features` stage of a project reading another project's feature repo (`features.repo`)."""

from __future__ import annotations

from conveyor.core.artifacts import Artifact, relative_to
from conveyor.core.config import Config
from conveyor.core.errors import FeatureStoreError
from conveyor.core.hashing import hash_json
from conveyor.core.workspace import Workspace
from conveyor.stages.features._names import feast_names, field_names
from conveyor.stages.features._repo import (
    ONLINE_STORE,
    REGISTRY,
    SOURCE,
    entity_layout,
    local_parts,
    offline_parts,
    store_repo,
)
from conveyor.stages.features._results import (
    FEATURES_VERSION,
    FeatureRepo,
)
from conveyor.stages.features._shared import fetch_offline, offline_root
from conveyor.stages.features._store import (
    feast_error,
    feast_logs,
    open_repo,
    registry_view,
)

__all__ = ["link_features", "repo_digest"]


def repo_digest(config: Config, workspace: Workspace) -> str:
    """With `features.repo`: the content hash of that project's registry, which every build of
    its store rewrites (views, materialized intervals); "" when it has none."""
    from conveyor.core.hashing import hash_file

    registry = store_repo(config, workspace) / REGISTRY
    return hash_file(registry) if registry.is_file() else ""


def link_features(config: Config, workspace: Workspace) -> Artifact[FeatureRepo]:
    """The `features` stage of a project reading another project's feature repo (`features.repo`):
    nothing is applied or written there; the repo must exist and hold the views, fields and
    entities this project reads. Its registry's hash makes the artifact's digest, so a rebuild of
    that store re-runs this project's training set and models."""
    import pyarrow.parquet as pq

    assert config.features.repo is not None
    folder = workspace.resolve(config.features.repo)
    where = f"features.repo {config.features.repo!r} ({folder})"
    if not folder.is_dir():
        raise FeatureStoreError(f"{where}: no such folder")
    if config.features.owner is None:
        raise FeatureStoreError(f"{where}: no conveyor.yaml there; point features.repo at a Conveyor project folder")
    repo = store_repo(config, workspace)
    layout = entity_layout(config)
    missing = [part for part in local_parts(config) if not (repo / part).is_file()]
    if missing:
        raise FeatureStoreError(
            f"{where}: its feature store is not built (missing feature_repo/{', feature_repo/'.join(missing)}); "
            f"run `conveyor run` in {folder}"
        )
    names = feast_names(config)
    fields = field_names(config)
    offline = offline_root(config, names.project)
    if offline is not None:
        fetch_offline(offline, repo, offline_parts(config))
    with feast_logs() as logs:
        store = open_repo(config, repo)
        try:
            view, _ = registry_view(store, names.service, fields, names.view, exact=False)
            keys = list(view.join_keys)
            if keys != [fields.feast_key]:
                raise FeatureStoreError(
                    f"{where}: its view {names.view!r} is keyed by {', '.join(keys)}, this project by "
                    f"{fields.feast_key!r} (schema.entity); the keys must be the same"
                )
            intervals = list(view.materialization_intervals)
            entity_ends = []
            for plan, entity in layout:
                held = {f.name for f in store.get_feature_view(entity.view).features}
                lacking = [n for n in [plan.last_event, *plan.outputs()] if entity.to_feast[n] not in held]
                if lacking:
                    raise FeatureStoreError(
                        f"{where}: its view {entity.view!r} lacks {', '.join(lacking)}; run `conveyor run` in {folder}"
                    )
                entity_ends += [end for _, end in store.get_feature_view(entity.view).materialization_intervals]
        except FeatureStoreError:
            raise
        except Exception as exc:  # a view or service the registry does not hold
            raise feast_error(f"{where}: its registry lacks what this project reads", exc, logs) from exc
    registry = repo_digest(config, workspace)
    digest = hash_json({"registry": registry, "schema": config.section("schema"),
                        "features": config.section("features"), "version": FEATURES_VERSION})
    start = min((s for s, _ in intervals), default=None)
    end = max((e for _, e in intervals), default=None)
    as_of = min(entity_ends) if entity_ends else end
    result = FeatureRepo(
        project=names.project,
        feature_view=names.view,
        feature_service=names.service,
        features=list(fields.features),
        materialized_from=start.isoformat() if start is not None else "",
        materialized_to=end.isoformat() if end is not None else "",
        online_store=relative_to(repo / ONLINE_STORE, workspace.root),
        feast_names={o: f for o, f in fields.to_feast.items() if o != f},
        source_rows=pq.ParquetFile(repo / SOURCE).metadata.num_rows,
        feast_log=logs[:20],
        entity_views={entity.view: plan.entity for plan, entity in layout},
        engineered=config.features.engineered(),
        online_as_of=as_of.isoformat() if as_of is not None else "",
        repo=str(folder.resolve()),
    )
    return Artifact("features", repo, digest, result, {"registry": registry})
