"""`stores:`: values read from the environment at run time, one line when unset, never written out."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conveyor.core.config import load_config
from conveyor.core.environment import from_env, redact, sqlalchemy_url
from conveyor.core.errors import ConfigError, FeatureStoreError
from conveyor.core.workspace import Workspace
from tests.conftest import BIKE_DIR

DSN = "postgresql://alice:pa55word@db.example:5432/features"


def _config(tmp_path: Path, stores: dict[str, object]) -> Path:
    data = yaml.safe_load((BIKE_DIR / "conveyor.yaml").read_text())
    data["stores"] = stores
    (tmp_path / "conveyor.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return tmp_path / "conveyor.yaml"


def test_an_unset_variable_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_TEST_UNSET", raising=False)
    with pytest.raises(ConfigError) as caught:
        from_env("CONVEYOR_TEST_UNSET", "stores.registry.dsn_env", "postgresql://...")
    message = str(caught.value)
    assert "\n" not in message
    assert "stores.registry.dsn_env" in message and "CONVEYOR_TEST_UNSET is not set" in message
    monkeypatch.setenv("CONVEYOR_TEST_UNSET", "  ")
    with pytest.raises(ConfigError):
        from_env("CONVEYOR_TEST_UNSET", "stores.registry.dsn_env", "postgresql://...")


def test_redact_keeps_host_and_path_only() -> None:
    assert redact(DSN) == "postgresql://db.example:5432/features"
    assert redact("https://u:p@mlflow.example/?token=x") == "https://mlflow.example/"
    assert "pa55word" not in redact(DSN) and "alice" not in redact(DSN)


def test_sqlalchemy_url_takes_libpq_uris_and_refuses_others_without_showing_them() -> None:
    assert sqlalchemy_url(DSN) == "postgresql+psycopg://alice:pa55word@db.example:5432/features"
    assert sqlalchemy_url("postgres://h/db") == "postgresql+psycopg://h/db"
    with pytest.raises(ConfigError) as caught:
        sqlalchemy_url("mysql://root:pa55word@h/db")
    assert "pa55word" not in str(caught.value)


def test_the_tracking_uri_comes_from_the_named_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.stages.training._tracking import store_path, tracking_uri, where

    config = load_config(_config(tmp_path, {"mlflow": {"tracking_uri_env": "CONVEYOR_TEST_MLFLOW"}}))
    workspace = Workspace.at(tmp_path)
    monkeypatch.delenv("CONVEYOR_TEST_MLFLOW", raising=False)
    with pytest.raises(ConfigError, match="CONVEYOR_TEST_MLFLOW is not set"):
        tracking_uri(config, workspace)
    monkeypatch.setenv("CONVEYOR_TEST_MLFLOW", "http://bob:secret@mlflow.example:5000")
    assert tracking_uri(config, workspace) == "http://bob:secret@mlflow.example:5000"
    assert where(config, workspace) == "the MLflow server http://mlflow.example:5000"
    marker = store_path(config, workspace)  # what train and promote records point at
    assert marker == tmp_path / ".conveyor" / "mlflow-server" and "secret" not in marker.read_text()
    embedded = load_config(_config(tmp_path, {}))
    assert tracking_uri(embedded, workspace) == workspace.mlflow_uri
    assert store_path(embedded, workspace) == workspace.mlflow_db


def test_the_sql_registry_url_is_built_at_run_time_and_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.stages.features._repo import local_parts, registry_config, write_repo

    config = load_config(_config(tmp_path, {"registry": {"kind": "postgres", "dsn_env": "CONVEYOR_TEST_DSN"},
                                            "offline": {"kind": "s3", "uri": "s3://team/conveyor"}}))
    monkeypatch.setenv("CONVEYOR_TEST_DSN", DSN)
    settings = registry_config(config, tmp_path / "feature_repo")
    assert settings["registry_type"] == "sql"
    assert settings["path"] == "postgresql+psycopg://alice:pa55word@db.example:5432/features"
    write_repo(config, Workspace.at(tmp_path))
    text = (tmp_path / "feature_repo" / "feature_store.yaml").read_text()
    assert "pa55word" not in text and "db.example" not in text
    assert "registry_type: sql" in text and "path: ${CONVEYOR_TEST_DSN}" in text
    # nothing shared is expected as a local file: the registry is in PostgreSQL, the offline data in S3
    assert local_parts(config) == ("data/online_store.db",)
    monkeypatch.delenv("CONVEYOR_TEST_DSN")
    with pytest.raises(ConfigError, match="CONVEYOR_TEST_DSN is not set"):
        registry_config(config, tmp_path / "feature_repo")


def test_a_postgres_offline_store_is_refused_in_one_line(tmp_path: Path) -> None:
    from conveyor.stages.features._shared import offline_root

    config = load_config(_config(tmp_path, {"offline": {"kind": "postgres", "dsn_env": "CONVEYOR_TEST_DSN"}}))
    with pytest.raises(FeatureStoreError, match="kind postgres is not supported yet"):
        offline_root(config, "bike_sharing")
    s3 = load_config(_config(tmp_path, {"offline": {"kind": "s3", "uri": "s3://team/conveyor/"}}))
    assert offline_root(s3, "bike_sharing") == "s3://team/conveyor/bike_sharing"


def test_a_container_gets_the_stores_variables_by_name(tmp_path: Path) -> None:
    from conveyor.runner._build import serving_env_names

    config = load_config(_config(tmp_path, {"mlflow": {"tracking_uri_env": "TEAM_MLFLOW"},
                                            "registry": {"kind": "postgres", "dsn_env": "TEAM_PG"}}))
    assert serving_env_names(config) == ["TEAM_MLFLOW", "TEAM_PG"]
    assert serving_env_names(load_config(_config(tmp_path, {}))) == []


def test_talking_to_a_tracking_server_does_not_import_feast() -> None:
    """Feast's MLflow request-header plugin would import all of Feast before the first request."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from conveyor.stages.training._tracking import _without_feast_header_provider\n"
        "_without_feast_header_provider()\n"
        "from mlflow.tracking.request_header.registry import resolve_request_headers\n"
        "headers = resolve_request_headers()\n"
        "print('feast' in sys.modules, 'User-Agent' in headers)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
