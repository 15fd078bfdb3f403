"""Stage contracts through the CLI: what re-runs on which edit, a workspace that moves."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import BIKE_CSV, Server, bike_rows, conveyor, make_bike_project, stage_result

pytestmark = pytest.mark.slow

STAGES = ["ingest", "prepare", "eda", "features", "dataset", "train", "promote"]


def _statuses(stdout: str) -> dict[str, str]:
    """The status column of the `conveyor run` table, by stage."""
    found = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if len(cells) >= 2 and cells[0] in STAGES:
            found[cells[0]] = cells[1].split(" ")[0]
    return found


def _edit(project: Path, section: str, key: str, value: object) -> None:
    path = project / "conveyor.yaml"
    config = yaml.safe_load(path.read_text())
    config.setdefault(section, {})[key] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture(scope="module")
def small_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = make_bike_project(tmp_path_factory.mktemp("contracts") / "p", bike_rows()[:3000])
    first = conveyor("run", "-C", str(project))
    assert set(_statuses(first.stdout).values()) == {"ran"}, first.stdout
    return project


@pytest.mark.parametrize(
    ("section", "key", "value", "reruns"),
    [
        ("serving", "port", 8123, []),
        ("monitoring", "psi", 0.25, []),
        ("promotion", "min_improvement", 0.001, ["promote"]),
        ("training", "seed", 7, ["train", "promote"]),
        ("cleaning", "null_values", {"hum": [0]}, ["prepare", "eda", "features", "dataset", "train", "promote"]),
        ("source", "on_bad_lines", "quarantine", STAGES),
    ],
)
def test_an_edit_reruns_exactly_the_stages_that_read_it(
    small_project: Path, section: str, key: str, value: object, reruns: list[str]
) -> None:
    _edit(small_project, section, key, value)
    statuses = _statuses(conveyor("run", "-C", str(small_project)).stdout)
    assert statuses == {s: "ran" if s in reruns else "cached" for s in STAGES}


def test_a_deleted_mlflow_run_or_a_moved_alias_is_noticed(small_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.setenv("COLUMNS", "250")  # the run table on one line per stage, reasons unwrapped
    conveyor("run", "-C", str(small_project))
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{small_project / 'mlflow.db'}")
    train = stage_result(small_project, "train")
    client.delete_run(train.candidates["baseline"].run_id)
    out = conveyor("run", "-C", str(small_project)).stdout
    assert _statuses(out)["train"] == "ran" and "was deleted" in out, out

    client.delete_registered_model_alias("bike-sharing", "champion")
    out = conveyor("run", "-C", str(small_project)).stdout
    assert _statuses(out) == {s: "ran" if s == "promote" else "cached" for s in STAGES}, out
    assert "moved since this decision" in out
    assert client.get_model_version_by_alias("bike-sharing", "champion") is not None


def test_a_moved_workspace_is_cached_and_serves(small_project: Path, tmp_path: Path) -> None:
    conveyor("run", "-C", str(small_project))  # settle the earlier edits
    moved = tmp_path / "elsewhere" / "project"
    shutil.copytree(small_project, moved)
    source = moved / BIKE_CSV.name
    # the original folder disappears: nothing may still read it
    hidden = small_project.with_name(small_project.name + "-hidden")
    small_project.rename(hidden)
    try:
        statuses = _statuses(conveyor("run", "-C", str(moved)).stdout)
        assert statuses == dict.fromkeys(STAGES, "cached")
        server = Server(moved).start()
        try:
            health = httpx.get(f"{server.url}/health").json()
            by_entity = httpx.post(f"{server.url}/predict", json={"entities": [1, 2]})
            assert by_entity.status_code == 200, by_entity.text
            request_id = by_entity.json()["predictions"][0]["request_id"]
        finally:
            server.stop()
        out = conveyor("lineage", request_id, "-C", str(moved)).stdout
        sha = hashlib.sha256(source.read_bytes()).hexdigest()
        for needle in (request_id[:16], f"v{health['model']['version']}", "training_set", "clean", "raw", sha[:16]):
            assert needle in out, out
    finally:
        hidden.rename(small_project)
