"""The `source:` keys of PostgreSQL and S3 sources, and what never leaks from a connection string."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conveyor.core.config import SourceConfig
from conveyor.core.errors import ConfigError, DataError
from tests.conftest import BIKE_DIR


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "postgres", "table": "t"}, "needs source.dsn_env"),
        ({"kind": "postgres", "dsn_env": "X"}, "exactly one of source.table and source.query"),
        ({"kind": "postgres", "dsn_env": "X", "table": "t", "query": "SELECT 1"}, "exactly one of"),
        ({"kind": "postgres", "dsn_env": "X", "table": "t", "path": "a.csv"}, "source.path is for a source of kind csv"),
        ({"kind": "s3"}, "needs source.uri"),
        ({"kind": "s3", "uri": "s3://bucket/p/", "incremental": {"column": "u"}}, "source.incremental is for"),
        ({"kind": "csv"}, "needs source.path"),
        ({"kind": "csv", "path": "a.csv", "dsn_env": "X"}, "source.dsn_env is for"),
        ({"kind": "postgres", "dsn_env": "not a name", "table": "t"}, "pattern"),
        ({"kind": "s3", "uri": "https://bucket/key"}, "pattern"),
    ],
)
def test_source_keys_must_fit_the_kind(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SourceConfig.model_validate(fields)


def test_table_names_are_split_exactly() -> None:
    from conveyor.stages.sources._postgres import split_name

    assert split_name("bikes") == ("bikes",)
    assert split_name("Public.Bikes") == ("Public", "Bikes")  # exact: no case folding
    assert split_name('"my.schema"."odd""name; --"') == ("my.schema", 'odd"name; --')
    for bad in ("a.b.c", '"open', "a.", ".b"):
        with pytest.raises(ConfigError, match="source.table"):
            split_name(bad)


def test_a_postgres_project_file_keeps_only_its_own_keys(tmp_path: Path) -> None:
    from conveyor.core.config import dump_config, load_config

    data = yaml.safe_load((BIKE_DIR / "conveyor.yaml").read_text())
    data["source"] = {"kind": "postgres", "dsn_env": "CONVEYOR_PG_DSN", "table": "bikes", "incremental": {"column": "u"}}
    (tmp_path / "conveyor.yaml").write_text(yaml.safe_dump(data))
    config = load_config(tmp_path / "conveyor.yaml")
    dump_config(config, tmp_path / "again.yaml")
    written = yaml.safe_load((tmp_path / "again.yaml").read_text())["source"]
    assert written == {"kind": "postgres", "dsn_env": "CONVEYOR_PG_DSN", "table": "bikes", "on_bad_lines": "error",
                       "max_field_bytes": 1048576, "incremental": {"column": "u"}}
    assert load_config(tmp_path / "again.yaml") == config


def test_a_failed_connection_names_the_variable_not_the_password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import socket

    from conveyor.stages.sources._postgres import copy_rows

    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("SOURCES_TEST_DSN", f"postgresql://someone:s3cret-pw@127.0.0.1:{port}/db")
    source = SourceConfig(kind="postgres", dsn_env="SOURCES_TEST_DSN", table="bikes")
    with pytest.raises(DataError) as caught:
        copy_rows(source, tmp_path / "rows.csv")
    assert "s3cret-pw" not in str(caught.value) and "$SOURCES_TEST_DSN" in str(caught.value)
    assert "cannot connect" in str(caught.value)
    monkeypatch.setenv("SOURCES_TEST_DSN", "postgresql://someone:s3cret-pw@host/db?nonsense=1")
    with pytest.raises(DataError) as caught:
        copy_rows(source, tmp_path / "rows.csv")
    assert "s3cret-pw" not in str(caught.value) and "not a PostgreSQL connection string" in str(caught.value)
    monkeypatch.delenv("SOURCES_TEST_DSN")
    with pytest.raises(ConfigError, match="SOURCES_TEST_DSN is not set"):
        copy_rows(source, tmp_path / "rows.csv")
