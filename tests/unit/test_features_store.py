"""The feature stage on real Feast: hostile column names, a project that moves, the bulk online write.

No mocks: each test builds a real Feast repo (file registry, DuckDB offline, SQLite online) in a
temporary project from a clean Parquet made the way `prepare` makes it.
"""

from __future__ import annotations

import ast
import math
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from conveyor.core.artifacts import Artifact
from conveyor.core.config import EVENT_TIMESTAMP, Config
from conveyor.core.workspace import Workspace
from conveyor.stages.features import FeatureRepo, OnlineFeatures, build_features, feast_names, training_set
from conveyor.stages.features._repo import feast_objects
from conveyor.stages.features._store import feast_logs, open_store
from tests.unit.test_features_names import HOSTILE, hostile_config

MARKER = Path("/tmp/conveyor-features-owned")
PAYLOAD = f'x", dtype=Float64 if __import__("os").system("touch {MARKER}") else Float64), Field(name="y'
FEATURES = [*(PAYLOAD if "__import__" in name else name for name in HOSTILE if name != "event_timestamp_"), "s"]
KEY = 'the "key"\\\n'
TARGET = 'y "target"'
T0 = datetime(2024, 3, 1, tzinfo=UTC)


@dataclass(frozen=True)
class _CleanResult:
    """What the features stage reads of prepare's result (the `CleanInput` protocol)."""

    rows: int


def _config(key_type: str = "integer") -> Config:
    base = hostile_config([n for n in FEATURES if n != "s"], key=KEY, target=TARGET)
    data = base.model_dump(mode="json", by_alias=True)
    data["schema"]["columns"]["s"] = {"type": "string", "role": "categorical"}
    data["schema"]["columns"][KEY]["type"] = key_type
    return Config.model_validate(data)


def _value(feature: int, entity: int, step: int) -> float | None:
    if (feature + entity + step) % 7 == 0:
        return None  # some gaps, including in the latest row of some entities
    return round(feature * 100 + entity + step / 10, 3)


def _clean(folder: Path, entities: int = 40, steps: int = 3, key_type: str = "integer") -> Artifact:
    """What `prepare` writes: key, event_timestamp (UTC), features, target, _line."""
    rows: list[dict[str, Any]] = []
    line = 2
    for step in range(steps):
        for entity in range(1, entities + 1):
            if step > 0 and entity % 5 == 0:
                continue  # some entities have fewer rows
            row: dict[str, Any] = {
                KEY: entity if key_type == "integer" else f"k-{entity}",
                EVENT_TIMESTAMP: T0 + timedelta(hours=step * 24 + entity % 3),
            }
            for index, name in enumerate(FEATURES):
                row[name] = _value(index, entity, step) if name != "s" else f"v{(entity + step) % 4}"
            row[TARGET] = float(entity * 10 + step)
            row["_line"] = line
            line += 1
            rows.append(row)
    schema: dict[str, Any] = {KEY: pl.Int64 if key_type == "integer" else pl.String, EVENT_TIMESTAMP: pl.Datetime("us", "UTC")}
    schema.update({name: pl.Float64 for name in FEATURES})
    schema.update({"s": pl.String, TARGET: pl.Float64, "_line": pl.Int64})
    frame = pl.DataFrame(rows, schema=schema)
    path = folder / "data" / "clean" / "c0ffee.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)
    return Artifact("clean", path, "c0ffee" * 10, _CleanResult(frame.height))


def _expected_latest(clean: Path) -> dict[Any, dict[str, Any]]:
    frame = pl.read_parquet(clean).sort([KEY, EVENT_TIMESTAMP])
    latest: dict[Any, dict[str, Any]] = {}
    for row in frame.iter_rows(named=True):
        latest[row[KEY]] = {name: row[name] for name in FEATURES}
    return latest


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b) or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Workspace, Artifact, Artifact]:
    MARKER.unlink(missing_ok=True)
    root = tmp_path_factory.mktemp("hostile")
    config = _config()
    workspace = Workspace.at(root)
    clean = _clean(root)
    features = build_features(config, workspace, clean)
    return config, workspace, clean, features


def test_hostile_headers_run_no_code(hostile: tuple[Config, Workspace, Artifact, Artifact]) -> None:
    config, workspace, _, features = hostile
    assert not MARKER.exists()
    assert features.result.features == config.schema.features() and features.result.feature_service
    # the file written for people parses, and the payload is only ever inside a string literal
    tree = ast.parse((workspace.feature_repo / "definitions.py").read_text(encoding="utf-8"))
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "__import__" not in calls
    assert not MARKER.exists()


def test_hostile_headers_training_set_has_original_names_and_values(
    hostile: tuple[Config, Workspace, Artifact, Artifact],
) -> None:
    config, workspace, clean, features = hostile
    dataset = training_set(config, workspace, features, clean)
    got = pl.read_parquet(dataset.path)
    source = pl.read_parquet(clean.path)
    assert got.columns == [KEY, EVENT_TIMESTAMP, *FEATURES, TARGET]
    assert dataset.result.rows == dataset.result.entity_rows == source.height
    # each entity row's event time is its own feature row's: the point-in-time join returns that row
    want = source.sort([EVENT_TIMESTAMP, KEY]).select(got.columns)
    assert got.equals(want, null_equal=True)
    assert not MARKER.exists()


def test_hostile_headers_online_rows_by_original_names(hostile: tuple[Config, Workspace, Artifact, Artifact]) -> None:
    config, workspace, clean, features = hostile
    online = OnlineFeatures(config, workspace)
    assert online.key == KEY and online.features == FEATURES
    expected = _expected_latest(clean.path)
    keys = [*sorted(expected), 10_000]
    rows = online.get(keys)
    assert rows[-1] is None  # unknown key
    for key, row in zip(keys, rows[:-1]):
        assert row is not None and set(row) == set(FEATURES)
        assert all(_same(row[n], expected[key][n]) for n in FEATURES), (key, row, expected[key])
    assert features.result.online_entities == len(expected)
    newest = pl.read_parquet(clean.path)[EVENT_TIMESTAMP].max()
    assert features.result.materialized_to == newest.isoformat() and online.as_of == newest
    assert not MARKER.exists()


def test_a_moved_project_reads_its_new_place(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    old, new = tmp_path / "old", tmp_path / "elsewhere" / "new"
    config = _config(key_type="string")
    clean = _clean(old, key_type="string")
    capfd.readouterr()
    features = build_features(config, Workspace.at(old), clean)
    assert capfd.readouterr().out == ""  # Feast printed nothing (materialize would have)
    before = OnlineFeatures(config, Workspace.at(old)).get(["k-1", "k-7", "k-40"])
    repo_files = [p.read_text(encoding="utf-8") for p in (old / "feature_repo").glob("*.*") if p.suffix in (".yaml", ".py")]
    assert repo_files and not any(str(old) in text for text in repo_files)

    new.parent.mkdir(parents=True)
    shutil.move(str(old), str(new))
    workspace = Workspace.at(new)
    moved = Artifact(clean.kind, new / clean.path.relative_to(old), clean.digest, clean.result, clean.inputs)
    dataset = training_set(config, workspace, features, moved)
    assert dataset.path.is_relative_to(new)
    got = pl.read_parquet(dataset.path)
    assert got.height == pl.read_parquet(moved.path).height
    assert OnlineFeatures(config, workspace).get(["k-1", "k-7", "k-40"]) == before
    assert not old.exists()  # nothing read (or created) the old place

    # the repo's own feature_store.yaml opens the moved store too (feast CLI, `FeatureStore(repo_path)`)
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(workspace.feature_repo))
    assert [v.name for v in store.list_feature_views()] == [feast_names(config).view]


def _online_rows(workspace: Workspace, config: Config) -> int:
    names = feast_names(config)
    with sqlite3.connect(workspace.feature_repo / "data" / "online_store.db") as conn:
        table = f"{names.project}_{names.view}".replace('"', '""')
        return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


def _materialize(config: Config, workspace: Workspace, features: Artifact) -> None:
    """Empty the online store, then fill it with Feast's own `materialize` over the whole data."""
    (workspace.feature_repo / "data" / "online_store.db").unlink()
    store = open_store(config, workspace)
    store.apply(feast_objects(config).all())  # recreates the empty online tables
    start = datetime.fromisoformat(features.result.materialized_from) - timedelta(seconds=1)
    end = datetime.fromisoformat(features.result.materialized_to) + timedelta(seconds=1)
    with feast_logs():
        store.materialize(start, end)


@pytest.mark.parametrize("key_type", ["integer", "string"])
def test_bulk_online_write_reads_as_feast_materialize_into_feasts_own_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key_type: str
) -> None:
    """The row store, bulk-written, answers `get_online_features` exactly as Feast's built-in
    SQLite store filled by Feast's `materialize`, and as Feast's `materialize` into the row store."""
    config = _config(key_type)
    workspace = Workspace.at(tmp_path)
    clean = _clean(tmp_path, entities=60, steps=4, key_type=key_type)
    features = build_features(config, workspace, clean)
    keys: list[Any] = list(range(0, 62)) if key_type == "integer" else [f"k-{i}" for i in range(0, 62)]
    bulk_read = OnlineFeatures(config, workspace).get(keys)
    assert _online_rows(workspace, config) == 60  # one row per entity
    assert bulk_read[0] is None and bulk_read[61] is None and all(r is not None for r in bulk_read[1:61])
    assert sum(v is None for r in bulk_read[1:61] for v in r.values()) > 0  # gaps stay nulls

    # materialize reads the FileSource through DuckDB, which takes the registry's relative path
    # against the working directory (Feast's CLI chdirs to the repo for the same reason)
    monkeypatch.chdir(workspace.feature_repo)
    _materialize(config, workspace, features)  # Feast's proto path into the row store
    assert OnlineFeatures(config, workspace).get(keys) == bulk_read

    data = config.model_dump(mode="json", by_alias=True)
    data["features"]["online_store"] = "feast-sqlite"
    feast_config = Config.model_validate(data)
    _materialize(feast_config, workspace, features)  # Feast's own store and its materialize
    assert OnlineFeatures(feast_config, workspace).get(keys) == bulk_read


def test_feast_logs_touch_only_the_feast_logger() -> None:
    import logging
    import sys

    logger = logging.getLogger("feast.some.module")
    stdout, filters, propagate = sys.stdout, list(__import__("warnings").filters), logging.getLogger("feast").propagate
    with feast_logs() as outer:
        with feast_logs() as inner:
            logger.warning("careful %s", "there")
        logger.error("outer only")
    logger.warning("after")  # not captured
    assert inner == ["warning: careful there"]
    assert outer == ["warning: careful there", "error: outer only"]
    assert sys.stdout is stdout and list(__import__("warnings").filters) == filters
    assert logging.getLogger("feast").propagate == propagate and not logging.getLogger("feast").handlers


def test_a_store_never_built_is_an_error_not_an_empty_store(tmp_path: Path) -> None:
    from conveyor.core.errors import FeatureStoreError

    config = _config()
    workspace = Workspace.at(tmp_path)
    (workspace.feature_repo / "data").mkdir(parents=True)
    (workspace.feature_repo / "data" / "registry.db").write_bytes(b"")  # what Conveyor 0.1 left
    with pytest.raises(FeatureStoreError, match="conveyor run --from features"):
        OnlineFeatures(config, workspace)
    clean = _clean(tmp_path)
    fake = Artifact("features", workspace.feature_repo, "f" * 64, _repo_result(config))
    with pytest.raises(FeatureStoreError, match="never built"):
        training_set(config, workspace, fake, clean)
    assert sorted(p.name for p in (workspace.feature_repo / "data").iterdir()) == ["registry.db"]


def test_a_failed_build_leaves_the_previous_store_working(tmp_path: Path) -> None:
    from conveyor.core.errors import FeatureStoreError

    config = _config()
    workspace = Workspace.at(tmp_path)
    clean = _clean(tmp_path, entities=10, steps=1)
    features = build_features(config, workspace, clean)
    before = OnlineFeatures(config, workspace).get([1, 2, 3])
    broken = tmp_path / "broken.parquet"
    pl.read_parquet(clean.path).drop(FEATURES[0]).write_parquet(broken)
    with pytest.raises(FeatureStoreError, match="could not build the feature store"):
        build_features(config, workspace, Artifact("clean", broken, "0" * 64, _CleanResult(10)))
    assert OnlineFeatures(config, workspace).get([1, 2, 3]) == before
    assert training_set(config, workspace, features, clean).result.rows == 10


def test_a_store_built_for_other_features_is_an_error(tmp_path: Path) -> None:
    from conveyor.core.errors import FeatureStoreError

    config = _config()
    workspace = Workspace.at(tmp_path)
    clean = _clean(tmp_path, entities=5, steps=1)
    features = build_features(config, workspace, clean)
    data = config.model_dump(mode="json", by_alias=True)
    data["schema"]["columns"][FEATURES[0]]["role"] = "ignore"
    fewer = Config.model_validate(data)
    with pytest.raises(FeatureStoreError, match="built for other features"):
        OnlineFeatures(fewer, workspace)
    with pytest.raises(FeatureStoreError, match="built for other features"):
        training_set(fewer, workspace, features, clean)


def _repo_result(config: Config) -> FeatureRepo:
    names = feast_names(config)
    return FeatureRepo(
        project=names.project, feature_view=names.view, feature_service=names.service,
        features=config.schema.features(), materialized_from="", materialized_to="", online_store="",
    )
