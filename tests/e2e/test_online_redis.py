"""`stores.online` end to end: the features stage writes to Redis, `conveyor serve` reads it over HTTP.

- The bike and taxi examples, built on the embedded SQLite store and then on the team stack's
  Redis: `/predict` by entity (and, for taxi, by raw rows, which read the zones' aggregates
  online) gives the same predictions, in a fresh server each time.
- Redis killed while a server runs (a private redis-server of this test, on a free port,
  killed by PID): `/predict` by entity answers 503 with the reason, `/health` is `degraded` and
  names Redis, raw-feature `/predict` of the bike model (which needs no online store) keeps
  answering; Redis started again on the same port: the same server process answers again.
- PostgreSQL (the Feast registry's database, `stores.registry`) stopped while a server runs:
  `/health` names it; `/predict` by entity reads only Redis and keeps answering.
"""

from __future__ import annotations

import concurrent.futures
import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import TAXI_DIR, Server, bike_rows, feature_row, make_bike_project
from tests.pg_server import PostgresServer
from tests.redis_server import RedisServer

pytestmark = pytest.mark.slow

BIKE_KEYS = [1, 17, 500, 1234, 2999]
TAXI_KEYS = [3, 250, 4000, 6400]


def _run(project: Path, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-m", "conveyor", "run", "-C", str(project), "--no-search"],
                            capture_output=True, text=True, timeout=900, env={**os.environ, **env})
    assert result.returncode == 0, f"conveyor run failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _on_redis(project: Path) -> None:
    config = yaml.safe_load((project / "conveyor.yaml").read_text())
    config["stores"] = {"online": {"kind": "redis", "url_env": "REDIS_URL"}}
    (project / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _predictions(server: Server, body: dict[str, Any], path: str = "/predict") -> list[tuple[Any, float]]:
    answer = httpx.post(f"{server.url}{path}", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return [(p.get("entity"), p["prediction"]) for p in answer.json()["predictions"]]


def _bike_raw() -> list[dict[str, Any]]:
    from conveyor.core.config import load_config

    features = load_config(Path(__file__).resolve().parents[2] / "examples" / "bike-sharing" / "conveyor.yaml")
    return [feature_row(r, features.schema.features()) for r in bike_rows()[3000:3005]]


def _served(project: Path, env: dict[str, str], bodies: list[dict[str, Any]]) -> list[list[tuple[Any, float]]]:
    server = Server(project, env=env).start()
    try:
        return [_predictions(server, body) for body in bodies]
    finally:
        server.stop()


@pytest.fixture(scope="module")
def bike(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[tuple[Any, float]]]]:
    """The bike example (3,000 rows) run on the embedded SQLite store, and its answers by entity and by rows."""
    project = make_bike_project(tmp_path_factory.mktemp("bike-redis") / "p", bike_rows()[:3000], name="bike-online")
    _run(project, {})
    answers = _served(project, {}, [{"entities": BIKE_KEYS}, {"rows": _bike_raw()}])
    _on_redis(project)
    return project, answers


def test_bike_on_the_team_redis_answers_as_on_sqlite(
    bike: tuple[Path, list[Any]], team_stack: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    import redis

    from conveyor import Project

    project, (by_entity, by_rows) = bike
    env = {"REDIS_URL": team_stack["REDIS_URL"]}
    monkeypatch.setenv("REDIS_URL", team_stack["REDIS_URL"])
    result = Project(project).run(search=False)  # the online store moved: features writes Redis, the model stays
    assert result["features"].status == "ran" and result["train"].status == "cached", result
    assert _served(project, env, [{"entities": BIKE_KEYS}, {"rows": _bike_raw()}]) == [by_entity, by_rows]
    client = redis.Redis.from_url(team_stack["REDIS_URL"])
    try:
        held = {k.decode() for k in client.scan_iter(match="conveyor:bike_online:*")}
        generation = client.get("conveyor:bike_online:generation").decode()
    finally:
        client.close()
    assert held == {"conveyor:bike_online:generation", "conveyor:bike_online:keys", "conveyor:bike_online:sequence",
                    f"conveyor:bike_online:g:{generation}:bike_online_bike_online_features"}
    written = "".join(p.read_text(errors="replace") for p in project.rglob("*")
                      if p.is_file() and p.suffix in (".yaml", ".json", ".jsonl", ".py", ".log"))
    assert team_stack["REDIS_URL"] not in written and "REDIS_URL" in written


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def test_redis_killed_mid_serve_is_a_503_and_the_same_server_recovers(
    bike: tuple[Path, list[Any]], private_redis: RedisServer,
) -> None:
    project, (by_entity, by_rows) = bike
    env = {"REDIS_URL": private_redis.url}
    _run(project, env)  # the features stage writes this Redis (it serves no generation yet)
    server = Server(project, env=env).start()
    try:
        assert server.process is not None
        pid = server.process.pid
        assert _predictions(server, {"entities": BIKE_KEYS}) == by_entity
        health = httpx.get(f"{server.url}/health").json()
        assert health["status"] == "ok" and health["services"] == {"redis": "ok"}

        private_redis.save()
        private_redis.kill()
        reason = f"online store unavailable: Redis at 127.0.0.1:{private_redis.port} refused the connection"
        with concurrent.futures.ThreadPoolExecutor(8) as pool:  # many at once: each fails fast, none hangs
            answers = list(pool.map(lambda _: httpx.post(f"{server.url}/predict", json={"entities": BIKE_KEYS},
                                                         timeout=10), range(16)))
        assert {a.status_code for a in answers} == {503}
        assert answers[0].json() == {"detail": reason, "service": "redis"}
        health = httpx.get(f"{server.url}/health").json()
        assert health["status"] == "degraded" and health["down"] == ["redis"]
        assert health["services"] == {"redis": reason}
        assert _predictions(server, {"rows": _bike_raw()}) == by_rows  # raw features need no online store

        private_redis.start()  # same port, same folder: the saved store is back
        assert _predictions(server, {"entities": BIKE_KEYS}) == by_entity
        health = httpx.get(f"{server.url}/health").json()
        assert health["status"] == "ok" and health["services"] == {"redis": "ok"} and "down" not in health
        assert server.process.pid == pid and server.process.poll() is None  # no restart
    finally:
        server.stop()


def _taxi_rows(project: Path, n: int = 4) -> list[dict[str, Any]]:
    config = yaml.safe_load((project / "conveyor.yaml").read_text())
    columns = config["schema"]["columns"]
    from conveyor.core.config import load_config

    features = load_config(project / "conveyor.yaml").schema.features()
    with (project / "nyc_taxi_trips.csv").open(newline="") as handle:
        raw = list(csv.DictReader(handle))[-n:]

    def value(name: str, text: str) -> object:
        if text == "":
            return None
        column = columns[name]
        return float(text) if column["type"] == "float" or column["role"] == "numeric" else (
            int(text) if column["type"] == "integer" else text)

    return [{f: value(f, r[f]) for f in features} for r in raw]


def test_taxi_entity_aggregates_on_the_team_redis_answer_as_on_sqlite(
    tmp_path: Path, team_stack: dict[str, str],
) -> None:
    import shutil

    project = tmp_path / "taxi"
    project.mkdir()
    shutil.copy(TAXI_DIR / "nyc_taxi_trips.csv", project / "nyc_taxi_trips.csv")
    config = yaml.safe_load((TAXI_DIR / "conveyor.yaml").read_text())
    config["name"] = "taxi-online"
    config.setdefault("training", {}).setdefault("lightgbm", {})["n_estimators"] = 50  # tests: a small model
    (project / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    _run(project, {})
    bodies = [{"entities": TAXI_KEYS}, {"rows": _taxi_rows(project)},
              {"rows": [{**_taxi_rows(project, 1)[0], "PULocationID": 99999}]}]  # an unseen zone
    on_sqlite = _served(project, {}, bodies)
    _on_redis(project)
    env = {"REDIS_URL": team_stack["REDIS_URL"]}
    _run(project, env)
    assert _served(project, env, bodies) == on_sqlite
    assert len({p for answer in on_sqlite for _, p in answer}) > 3  # not one constant answer


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.remove()


def test_postgres_down_mid_serve_is_named_by_health_and_entity_reads_go_on(
    bike: tuple[Path, list[Any]], private_redis: RedisServer, private_postgres: PostgresServer,
) -> None:
    """With `stores.registry` on PostgreSQL: the registry is read when the server starts, never per
    request, so `/predict` by entity (from Redis) keeps answering while PostgreSQL is down; `/health`
    is `degraded` naming it, and `ok` again when it returns, in the same server process."""
    project, (by_entity, _) = bike
    original = (project / "conveyor.yaml").read_text()
    config = yaml.safe_load(original)
    config["stores"]["registry"] = {"kind": "postgres", "dsn_env": "CONVEYOR_TEST_REGISTRY_DSN"}
    (project / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {"REDIS_URL": private_redis.url, "CONVEYOR_TEST_REGISTRY_DSN": private_postgres.dsn}
    try:
        _run(project, env)
        server = Server(project, env=env).start()
        try:
            assert server.process is not None
            health = httpx.get(f"{server.url}/health").json()
            assert health["status"] == "ok" and health["services"] == {"redis": "ok", "postgresql": "ok"}
            private_postgres.stop()
            health = httpx.get(f"{server.url}/health").json()
            assert health["status"] == "degraded" and health["down"] == ["postgresql"]
            assert health["services"] == {
                "redis": "ok",
                "postgresql": f"feature registry unavailable: PostgreSQL at 127.0.0.1:{private_postgres.port} "
                              "refused the connection",
            }
            assert _predictions(server, {"entities": BIKE_KEYS}) == by_entity
            private_postgres.start()
            health = httpx.get(f"{server.url}/health").json()
            assert health["status"] == "ok" and health["services"] == {"redis": "ok", "postgresql": "ok"}
            assert _predictions(server, {"entities": BIKE_KEYS}) == by_entity
            assert server.process.poll() is None
        finally:
            server.stop()
    finally:
        (project / "conveyor.yaml").write_text(original)
