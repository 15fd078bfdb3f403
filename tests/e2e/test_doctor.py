"""`conveyor doctor` on the running team stack (PostgreSQL, Redis, the S3 API, the MLflow
server), and the same check before a run: a service down is one line naming it, exit non-zero;
a password never reaches the output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from tests.conftest import BIKE_CSV, BIKE_DIR, ROOT, free_port

TEAM_YAML = ROOT / "examples" / "team-stack" / "conveyor.yaml"
ROLES = ["source", "stores.mlflow", "stores.registry", "stores.online", "stores.offline", "stores.lock"]


def doctor(project: Path, env: dict[str, str], *args: str, command: str = "doctor") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", command, "-C", str(project), *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, **env},
    )


def lines_by_role(output: str) -> dict[str, tuple[str, str]]:
    """`status role detail` lines -> {role: (status, detail)}; every line must be one."""
    found: dict[str, tuple[str, str]] = {}
    for line in output.splitlines():
        status, role, detail = line.split(None, 2)
        assert role not in found, f"two lines for {role}:\n{output}"
        found[role] = (status, detail)
    return found


def team_project(folder: Path, offline_uri: str | None = None) -> Path:
    """The team-stack example's stores, on the bike CSV (a file source: no service)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(TEAM_YAML.read_text())
    config["source"] = {"kind": "csv", "path": str(BIKE_CSV)}
    config["name"] = "doctor-check"
    if offline_uri is not None:
        config["stores"]["offline"]["uri"] = offline_uri
    (folder / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit((parts.scheme, f"{userinfo}127.0.0.1:{port}", parts.path, parts.query, parts.fragment))


def pg_password(team_stack: dict[str, str]) -> str:
    password = urlsplit(team_stack["CONVEYOR_PG_DSN"]).password
    assert password, "the team stack's PostgreSQL user has a password (so that masking is tested)"
    return password


def test_example_names_every_store_by_environment_variable_only() -> None:
    config = yaml.safe_load(TEAM_YAML.read_text())
    assert config["source"] == {"kind": "postgres", "table": "bike", "dsn_env": "CONVEYOR_PG_DSN"}
    assert set(config["stores"]) == {"mlflow", "registry", "online", "offline", "lock"}

    def values(node: object) -> list[str]:
        if isinstance(node, dict):
            return [v for item in node.values() for v in values(item)]
        if isinstance(node, list):
            return [v for item in node for v in values(item)]
        return [str(node)]

    addresses = [v for v in values(config) if "://" in v or "@" in v or "127.0.0.1" in v]
    assert addresses == ["s3://conveyor/bike-team/offline"]  # a bucket and prefix, no endpoint or key


def test_all_up_is_one_ok_line_per_service(tmp_path: Path, team_stack: dict[str, str]) -> None:
    result = doctor(team_project(tmp_path / "p"), team_stack)
    assert result.returncode == 0, result.stdout + result.stderr
    found = lines_by_role(result.stdout)
    assert list(found) == ROLES
    assert found["source"][0] == "embedded"
    for role in ROLES[1:]:
        assert found[role][0] == "ok", result.stdout
    pg_port = str(urlsplit(team_stack["CONVEYOR_PG_DSN"]).port)
    assert found["stores.registry"][1].startswith("PostgreSQL 1")  # its version
    assert f":{pg_port}, database conveyor" in found["stores.registry"][1]
    assert "(CONVEYOR_PG_DSN)" in found["stores.lock"][1]
    assert found["stores.online"][1].startswith("Redis ") and "(REDIS_URL): key prefix conveyor:doctor_check," \
        in found["stores.online"][1]
    assert "bucket conveyor: prefix bike-team/offline" in found["stores.offline"][1]
    assert found["stores.mlflow"][1].startswith("MLflow 3.")
    assert pg_password(team_stack) not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("variable", "service", "roles"),
    [
        ("CONVEYOR_PG_DSN", "PostgreSQL", ["stores.registry", "stores.lock"]),
        ("REDIS_URL", "Redis", ["stores.online"]),
        ("AWS_ENDPOINT_URL", "S3", ["stores.offline"]),
        ("MLFLOW_TRACKING_URI", "MLflow", ["stores.mlflow"]),
    ],
)
def test_a_service_down_is_named_in_one_line(
    tmp_path: Path, team_stack: dict[str, str], variable: str, service: str, roles: list[str]
) -> None:
    closed = free_port()
    env = {**team_stack, variable: with_port(team_stack[variable], closed)}
    result = doctor(team_project(tmp_path / "p"), env)
    assert result.returncode == 1, result.stdout + result.stderr
    found = lines_by_role(result.stdout)
    for role in ROLES:
        status, detail = found[role]
        if role in roles:
            assert status == "down", result.stdout
            assert detail.startswith(f"{service} ") and f"127.0.0.1:{closed}" in detail, detail
            assert f"({variable})" in detail and detail.endswith("connection refused"), detail
        else:
            assert status in ("ok", "embedded"), result.stdout
    assert "Traceback" not in result.stderr
    assert pg_password(team_stack) not in result.stdout + result.stderr


def test_a_missing_bucket_is_named(tmp_path: Path, team_stack: dict[str, str]) -> None:
    result = doctor(team_project(tmp_path / "p", offline_uri="s3://no-such-bucket/offline"), team_stack)
    assert result.returncode == 1
    status, detail = lines_by_role(result.stdout)["stores.offline"]
    assert status == "missing"
    assert detail.endswith("bucket no-such-bucket does not exist (create it: aws s3 mb s3://no-such-bucket)"), detail


def test_a_missing_database_and_a_wrong_password_are_named_without_the_password(
    tmp_path: Path, team_stack: dict[str, str]
) -> None:
    project = team_project(tmp_path / "p")
    dsn = team_stack["CONVEYOR_PG_DSN"]
    password = pg_password(team_stack)
    no_database = doctor(project, {**team_stack, "CONVEYOR_PG_DSN": dsn.rsplit("/", 1)[0] + "/no_such_db"})
    assert no_database.returncode == 1
    assert lines_by_role(no_database.stdout)["stores.registry"] == (
        "down", f"PostgreSQL at 127.0.0.1:{urlsplit(dsn).port} (CONVEYOR_PG_DSN): database \"no_such_db\" does not exist"
    )
    wrong = "wrong-" + password
    bad_password = doctor(project, {**team_stack, "CONVEYOR_PG_DSN": dsn.replace(f":{password}@", f":{wrong}@")})
    assert bad_password.returncode == 1
    status, detail = lines_by_role(bad_password.stdout)["stores.lock"]
    assert status == "down" and 'password authentication failed for user "conveyor"' in detail, detail
    for result in (no_database, bad_password):
        assert password not in result.stdout + result.stderr
    assert wrong not in bad_password.stdout + bad_password.stderr


def test_an_unset_variable_is_named(tmp_path: Path, team_stack: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = subprocess.run(
        [sys.executable, "-m", "conveyor", "doctor", "-C", str(team_project(tmp_path / "p"))],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 1
    assert lines_by_role(result.stdout)["stores.mlflow"] == (
        "down", "MLflow (MLFLOW_TRACKING_URI): MLFLOW_TRACKING_URI is not set: export it "
                "(examples/team-stack/up prints the lines)")


def test_the_embedded_default_is_one_line_per_store(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "conveyor.yaml").write_text((BIKE_DIR / "conveyor.yaml").read_text())
    (project / BIKE_CSV.name).symlink_to(BIKE_CSV)
    result = doctor(project, {})
    assert result.returncode == 0, result.stdout + result.stderr
    found = lines_by_role(result.stdout)
    assert list(found) == ROLES
    assert {status for status, _ in found.values()} == {"embedded"}
    assert found["stores.mlflow"][1] == "MLflow embedded: SQLite mlflow.db and mlartifacts/ in the project"
    (project / BIKE_CSV.name).unlink()
    missing = doctor(project, {})
    assert missing.returncode == 1
    assert lines_by_role(missing.stdout)["source"][0] == "missing"


def test_a_run_or_serve_with_a_service_down_fails_in_one_line_before_any_stage(
    tmp_path: Path, team_stack: dict[str, str]
) -> None:
    project = team_project(tmp_path / "p")
    closed = free_port()
    result = doctor(project, {**team_stack, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{closed}"}, command="run")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: MLflow at http://127.0.0.1:{closed} (MLFLOW_TRACKING_URI): connection refused "
        "(conveyor doctor checks every service)"
    ]
    assert not (project / "data").exists()  # no stage ran
    env = {**team_stack, "CONVEYOR_PG_DSN": with_port(team_stack["CONVEYOR_PG_DSN"], closed)}
    serve = doctor(project, env, command="serve")
    assert serve.returncode == 1
    assert serve.stderr.splitlines() == [
        f"error: PostgreSQL at 127.0.0.1:{closed} (CONVEYOR_PG_DSN): connection refused "
        "(conveyor doctor checks every service)"
    ]
    assert pg_password(team_stack) not in serve.stdout + serve.stderr


def test_the_source_table_is_checked(team_stack: dict[str, str]) -> None:
    """A PostgreSQL source names its table: there, or missing (the example's `bike`, loaded by `up`)."""
    from conveyor.runner._doctor import _postgres

    there = _postgres("source", "CONVEYOR_PG_DSN", tables=["bike"], need_create=False)
    assert there.status == "ok" and there.detail.endswith("(CONVEYOR_PG_DSN): table bike"), there
    missing = _postgres("source", "CONVEYOR_PG_DSN", tables=["no_such_table"], need_create=False)
    assert missing.status == "missing" and missing.detail.endswith(": table no_such_table does not exist"), missing


def test_urls_are_masked() -> None:
    from conveyor.runner._doctor import mask_url

    assert mask_url("postgresql://u:s3cr%40t@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert mask_url("http://h:5000") == "http://h:5000"
    assert mask_url("postgresql://h/db?user=u&password=pw") == "postgresql://h/db?user=u&password=***"
