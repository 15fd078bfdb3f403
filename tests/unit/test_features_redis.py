"""The online store on Redis (`stores.online`), on a real redis-server of the test's own.

Same projects as tests/unit/test_features_store.py (hostile column names, integer and string
keys), built on Redis and on the SQLite row store: the same rows come back. A rebuild leaves no
stale key and is never seen half-written; two projects share one Redis; a Redis that goes away
is one line, and the same reader works again when it returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.core.config import Config
from conveyor.core.errors import ServiceUnavailable
from conveyor.core.workspace import Workspace
from conveyor.stages.features import OnlineFeatures, build_features, feast_names
from conveyor.stages.features._store import feast_logs, open_store
from tests.redis_server import RedisServer
from tests.unit.test_features_store import _clean, _config

URL_ENV = "CONVEYOR_TEST_REDIS_URL"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_env(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> RedisServer:
    monkeypatch.setenv(URL_ENV, redis_server.url)
    return redis_server


def _on_redis(config: Config, name: str | None = None) -> Config:
    data = config.model_dump(mode="json", by_alias=True)
    data["stores"] = {"online": {"kind": "redis", "url_env": URL_ENV}}
    if name is not None:
        data["name"] = name
    return Config.model_validate(data)


def _keys(server: RedisServer, prefix: str) -> set[str]:
    client: Any = server.client()
    try:
        return {k.decode() for k in client.scan_iter(match=f"{prefix}:*")}
    finally:
        client.close()


@pytest.mark.parametrize("key_type", ["integer", "string"])
def test_redis_rows_are_the_sqlite_rows(tmp_path: Path, redis_env: RedisServer, key_type: str) -> None:
    sqlite_config = _config(key_type)
    config = _on_redis(sqlite_config)
    clean = _clean(tmp_path / "sqlite", entities=60, steps=4, key_type=key_type)
    build_features(sqlite_config, Workspace.at(tmp_path / "sqlite"), clean)
    features = build_features(config, Workspace.at(tmp_path / "redis"), clean)
    keys: list[Any] = list(range(0, 62)) if key_type == "integer" else [f"k-{i}" for i in range(0, 62)]
    expected = OnlineFeatures(sqlite_config, Workspace.at(tmp_path / "sqlite")).get(keys)
    online = OnlineFeatures(config, Workspace.at(tmp_path / "redis"))
    assert online.get(keys) == expected
    assert expected[0] is None and expected[61] is None and sum(r is None for r in expected) == 2
    assert features.result.online_entities == 60 and features.result.online_generation
    assert features.result.online_store == f"redis:conveyor:{feast_names(config).project}"
    assert not (tmp_path / "redis" / "feature_repo" / "data" / "online_store.db").exists()
    # Feast's own read through the store's OnlineStore interface gives the same values
    refs = list(online._refs)
    with feast_logs():
        store = open_store(config, Workspace.at(tmp_path / "redis"), existing=True)
        result = store.get_online_features(features=refs, entity_rows={online._feast_key: keys}).to_dict()
    via_feast = [{name: result[safe][i] for name, safe in online._columns} for i in range(len(keys))]
    assert [None if all(v is None for v in r.values()) else r for r in via_feast] == expected
    # the URL is read from the environment, never written
    written = "".join(p.read_text(errors="replace") for p in (tmp_path / "redis").rglob("*") if p.is_file()
                      and p.suffix in (".yaml", ".py", ".json", ".jsonl"))
    assert URL_ENV in written and f"127.0.0.1:{redis_env.port}" not in written


def test_feast_writes_through_the_interface_read_as_bulk_writes(tmp_path: Path, redis_env: RedisServer,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Feast's `materialize` (protos, `online_write_batch`) into the Redis store gives the rows the bulk write gave."""
    from datetime import datetime, timedelta

    config = _on_redis(_config(), name="materialized")
    workspace = Workspace.at(tmp_path)
    features = build_features(config, workspace, _clean(tmp_path, entities=30, steps=3))
    keys = list(range(0, 32))
    bulk = OnlineFeatures(config, workspace).get(keys)
    prefix = f"conveyor:{feast_names(config).project}"
    client: Any = redis_env.client()
    client.delete(*client.smembers(f"{prefix}:keys"), f"{prefix}:generation", f"{prefix}:keys")
    client.close()
    monkeypatch.chdir(workspace.feature_repo)  # materialize reads the source path relative to the cwd
    with feast_logs():
        store = open_store(config, workspace)
        start = datetime.fromisoformat(features.result.materialized_from) - timedelta(seconds=1)
        end = datetime.fromisoformat(features.result.materialized_to) + timedelta(seconds=1)
        store.materialize(start, end)
    assert OnlineFeatures(config, workspace).get(keys) == bulk


def test_a_rebuild_leaves_no_stale_key_and_is_never_seen_half_written(tmp_path: Path, redis_env: RedisServer) -> None:
    import polars as pl

    from conveyor.stages.features._online import publish_online, served_generation
    from conveyor.stages.features.redis_store import RedisRowOnlineStore, next_generation

    config = _on_redis(_config(), name="rebuilt")
    workspace = Workspace.at(tmp_path)
    clean = _clean(tmp_path, entities=20, steps=2)
    first = build_features(config, workspace, clean)
    prefix = f"conveyor:{feast_names(config).project}"
    table = f"{feast_names(config).project}_{feast_names(config).view}"
    g1 = first.result.online_generation
    assert _keys(redis_env, prefix) == {f"{prefix}:generation", f"{prefix}:keys", f"{prefix}:sequence", f"{prefix}:g:{g1}:{table}"}
    online = OnlineFeatures(config, workspace)
    before = online.get(list(range(1, 21)))

    # a new generation being written is not served: readers see the old rows until the switch
    with feast_logs():
        store = open_store(config, workspace, existing=True)
        view = store.get_feature_view(feast_names(config).view)
        latest = pl.read_parquet(workspace.feature_repo / "data" / "source.parquet")
        join_key = view.entity_columns[0].name
        changed = latest.with_columns(pl.col(c).fill_null(0.0) * 0 + 7.0 for c in latest.columns
                                      if latest.schema[c] == pl.Float64)
        g2 = next_generation(URL_ENV, prefix)
        RedisRowOnlineStore().write_frame(store.config, view, changed.unique(join_key, keep="last"), join_key,
                                          "event_timestamp", g2)
        assert online.get(list(range(1, 21))) == before
        assert served_generation(store.config) == g1
        publish_online(store, g2)
    after = online.get(list(range(1, 21)))  # the same reader, no restart: the new generation whole
    assert after != before and all(v == 7.0 for r in after if r for k, v in r.items() if isinstance(v, float))
    assert _keys(redis_env, prefix) == {f"{prefix}:generation", f"{prefix}:keys", f"{prefix}:sequence", f"{prefix}:g:{g2}:{table}"}

    # a whole rebuild by the features stage: again one generation, the old one unlinked
    second = build_features(config, workspace, clean)
    g3 = second.result.online_generation
    assert g3 not in (g1, g2)
    assert _keys(redis_env, prefix) == {f"{prefix}:generation", f"{prefix}:keys", f"{prefix}:sequence", f"{prefix}:g:{g3}:{table}"}
    assert online.get(list(range(1, 21))) == before
    # a request over the keys one call takes (4,000): read in parts, in order, views side by side
    many = [str(k) for k in range(1, 9_002)]
    wide = online._rows.read([(table, many), (table, ["3", "99999"]), (table, [])])
    assert [len(part) for part in wide] == [9_001, 2, 0]
    assert [r is not None for r in wide[0][:22]] == [True] * 20 + [False] * 2 and not any(wide[0][20:])
    assert wide[1][0] == wide[0][2] and wide[1][1] is None


def test_two_builds_at_once_never_serve_the_older_one(tmp_path: Path, redis_env: RedisServer) -> None:
    """Builds A (older) and B (newer) overlap: B's publish does not delete a generation being written
    by a later build, and A, publishing after B, is refused instead of serving older rows."""
    from conveyor.core.errors import FeatureStoreError
    from conveyor.stages.features._online import served_generation
    from conveyor.stages.features.redis_store import RedisRowOnlineStore, next_generation

    config = _on_redis(_config(), name="raced")
    workspace = Workspace.at(tmp_path)
    build_features(config, workspace, _clean(tmp_path, entities=8, steps=1))
    prefix = f"conveyor:{feast_names(config).project}"
    table = f"{feast_names(config).project}_{feast_names(config).view}"
    with feast_logs():
        store = open_store(config, workspace, existing=True)
        view = store.get_feature_view(feast_names(config).view)
    import polars as pl

    latest = pl.read_parquet(workspace.feature_repo / "data" / "source.parquet")
    join_key = view.entity_columns[0].name
    redis_store = RedisRowOnlineStore()
    older, newer = next_generation(URL_ENV, prefix), next_generation(URL_ENV, prefix)
    assert int(older) < int(newer)
    for generation in (older, newer):
        redis_store.write_frame(store.config, view, latest, join_key, "event_timestamp", generation)
    third = next_generation(URL_ENV, prefix)  # a build that started later still writing: published by neither
    redis_store.write_frame(store.config, view, latest, join_key, "event_timestamp", third)
    redis_store.publish(store.config, newer)
    assert served_generation(store.config) == newer
    assert f"{prefix}:g:{third}:{table}" in _keys(redis_env, prefix)
    with pytest.raises(FeatureStoreError, match=f"already serves a newer build \\(generation {newer}"):
        redis_store.publish(store.config, older)
    assert served_generation(store.config) == newer
    client: Any = redis_env.client()
    client.sadd(f"{prefix}:keys", f"{prefix}:g:1a24e6017ab15a3a4:{table}")  # an id of no number: stale
    client.hset(f"{prefix}:g:1a24e6017ab15a3a4:{table}", "1", "{}")
    client.close()
    redis_store.publish(store.config, third)
    assert _keys(redis_env, prefix) == {f"{prefix}:generation", f"{prefix}:keys", f"{prefix}:sequence", f"{prefix}:g:{third}:{table}"}


def test_two_projects_share_one_redis(tmp_path: Path, redis_env: RedisServer) -> None:
    from conveyor.stages.features.redis_store import RedisRowOnlineStore

    one, two = _on_redis(_config(), name="first-project"), _on_redis(_config(), name="second-project")
    build_features(one, Workspace.at(tmp_path / "one"), _clean(tmp_path / "one", entities=10, steps=1))
    build_features(two, Workspace.at(tmp_path / "two"), _clean(tmp_path / "two", entities=25, steps=2))
    keys = list(range(1, 26))
    first = OnlineFeatures(one, Workspace.at(tmp_path / "one")).get(keys)
    second = OnlineFeatures(two, Workspace.at(tmp_path / "two")).get(keys)
    assert sum(r is not None for r in first) == 10 and sum(r is not None for r in second) == 25
    assert _keys(redis_env, "conveyor:first_project") and _keys(redis_env, "conveyor:second_project")
    # rebuilding, then tearing down one project leaves the other's keys and rows as they were
    held = _keys(redis_env, "conveyor:second_project")
    build_features(one, Workspace.at(tmp_path / "one"), _clean(tmp_path / "one", entities=10, steps=1))
    with feast_logs():
        store = open_store(one, Workspace.at(tmp_path / "one"), existing=True)
        RedisRowOnlineStore().teardown(store.config, [], [])
    assert _keys(redis_env, "conveyor:first_project") == set()
    assert _keys(redis_env, "conveyor:second_project") == held
    assert OnlineFeatures(two, Workspace.at(tmp_path / "two")).get(keys) == second


def test_redis_down_is_one_line_and_the_same_reader_recovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        monkeypatch.setenv(URL_ENV, server.url)
        config = _on_redis(_config(), name="flaky")
        workspace = Workspace.at(tmp_path)
        build_features(config, workspace, _clean(tmp_path, entities=12, steps=1))
        online = OnlineFeatures(config, workspace)
        before = online.get([1, 2, 3])
        assert online.health() == {"redis": None}
        server.save()
        server.kill()
        reason = f"online store unavailable: Redis at 127.0.0.1:{server.port} refused the connection"
        with pytest.raises(ServiceUnavailable) as raised:
            online.get([1, 2, 3])
        assert str(raised.value) == reason and raised.value.service == "redis"
        assert online.health() == {"redis": reason}
        server.start()  # same port, same folder: the saved data is back
        assert online.get([1, 2, 3]) == before
        assert online.health() == {"redis": None}
        # a Redis back without the data (restarted empty): still one line, naming what to run
        server.client().flushall()  # type: ignore[attr-defined]
        with pytest.raises(ServiceUnavailable, match=r"holds no features under 'conveyor:flaky'; run `conveyor run"):
            online.get([1])
    finally:
        server.stop()


def test_an_unset_url_variable_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.core.errors import FeatureStoreError

    monkeypatch.delenv(URL_ENV, raising=False)
    config = _on_redis(_config(), name="unset")
    with pytest.raises(FeatureStoreError, match=f"the environment variable {URL_ENV} is not set"):
        build_features(config, Workspace.at(tmp_path), _clean(tmp_path, entities=3, steps=1))


def test_a_stuck_redis_fails_a_read_within_the_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Redis that accepts but never answers (SIGSTOP) fails a read after the read timeout, once
    (no retry after a timeout), and the same reader answers when it goes on (SIGCONT)."""
    import signal

    from conveyor.stages.features.redis_store import READ_TIMEOUT_S

    server = RedisServer(tmp_path / "redis").start()
    try:
        monkeypatch.setenv(URL_ENV, server.url)
        config = _on_redis(_config(), name="stuck")
        workspace = Workspace.at(tmp_path)
        build_features(config, workspace, _clean(tmp_path, entities=5, steps=1))
        online = OnlineFeatures(config, workspace)
        before = online.get([1, 2])
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        try:
            # a stopped server never answers: the read gives up after its timeout, and says so
            with pytest.raises(ServiceUnavailable,
                               match=f"Redis at 127.0.0.1:{server.port} did not answer within {READ_TIMEOUT_S:g} s"):
                online.get([1, 2])
        finally:
            server.process.send_signal(signal.SIGCONT)
        assert online.get([1, 2]) == before
    finally:
        server.stop()
