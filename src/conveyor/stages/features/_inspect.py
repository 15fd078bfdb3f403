"""What the feature store holds, as the registry says: for `conveyor feature-views`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from conveyor.core.config import Config
from conveyor.core.errors import FeatureStoreError
from conveyor.core.workspace import Workspace

__all__ = ["ViewInfo", "feature_views"]


@dataclass(frozen=True)
class ViewInfo:
    """One Feast feature view of the project, with names as the data and training sets have them."""

    name: str
    entity: str
    """The entity column (the row key for the view of the schema's features)."""
    join_key: str
    fields: list[tuple[str, str, str]] = field(default_factory=list)
    """(name in training sets, Feast field name, Feast type), without Conveyor's internal fields."""
    source: str = ""
    """The view's source file, relative to `feature_repo/`."""
    source_rows: int = 0
    ttl_seconds: int = 0
    """0: values never expire."""
    online_as_of: str | None = None
    """The newest materialized instant: online values are this fresh."""
    age_seconds: float | None = None
    """How old `online_as_of` is now."""
    online: bool = True
    models: list[str] = field(default_factory=list)
    """The models reading the view (their FeatureService projects it): `models:` names, or the
    project's name for a one-model project."""


def feature_views(config: Config, workspace: Workspace) -> list[ViewInfo]:
    """The project's feature views from the Feast registry (the row-key view first)."""
    import pyarrow.parquet as pq

    from conveyor.stages.features._names import feast_names, field_names
    from conveyor.stages.features._repo import entity_layout, model_service_name, store_repo
    from conveyor.stages.features._store import feast_logs, open_store

    repo = store_repo(config, workspace)
    fields = field_names(config)
    originals = {**fields.to_original()}
    internal = set()
    entity_of = {}
    for plan, names in entity_layout(config):
        originals.update({f: o for o, f in names.to_feast.items()})
        originals[names.join_key] = plan.entity
        internal.add(names.to_feast[plan.last_event])
    with feast_logs():
        store = open_store(config, workspace, existing=True)
        try:
            views = list(store.list_feature_views())
            readers: dict[str, list[str]] = {}
            services = [(m, model_service_name(config, m)) for m in config.models] if config.models else [
                (config.name, feast_names(config).service)]
            for model, service in services:
                for projection in _projections(store, service):
                    readers.setdefault(projection, []).append(model)
        except Exception as exc:
            raise FeatureStoreError(f"could not read the registry of {repo}: {exc}") from exc
    now = datetime.now(UTC)
    infos = []
    for view in views:
        join_key = view.join_keys[0] if getattr(view, "join_keys", None) else ""
        entity_of[view.name] = originals.get(join_key, join_key)
        source = str(view.batch_source.path)
        path = Path(source) if Path(source).is_absolute() else repo / source
        rows = pq.ParquetFile(path).metadata.num_rows if path.is_file() else 0
        ends = [end for _, end in view.materialization_intervals]
        as_of = max(ends) if ends else None
        infos.append(
            ViewInfo(
                name=view.name,
                entity=entity_of[view.name],
                join_key=join_key,
                fields=[
                    (originals.get(f.name, f.name), f.name, str(f.dtype))
                    for f in view.features
                    if f.name not in internal
                ],
                source=source,
                source_rows=rows,
                ttl_seconds=int(view.ttl.total_seconds()) if view.ttl else 0,
                online_as_of=as_of.isoformat() if as_of is not None else None,
                age_seconds=round((now - as_of).total_seconds(), 1) if as_of is not None else None,
                online=bool(view.online),
                models=readers.get(view.name, []),
            )
        )
    return sorted(infos, key=lambda v: (v.entity != config.schema.entity.key, v.name))


def _projections(store: object, service: str) -> list[str]:
    """The view names a feature service reads; none when the registry has no such service (a
    project reading another project's repo has no service of its own per model)."""
    try:
        found = store.get_feature_service(service)  # type: ignore[attr-defined]
    except Exception:
        return []
    return [p.name for p in found.feature_view_projections]
