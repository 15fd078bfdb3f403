"""Stage contracts: what re-runs on which edit, a workspace that moves (read from `Project.run`'s
results, not from the `conveyor run` table)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import httpx
import pytest
import yaml

from conveyor import Project, RunResult
from tests.conftest import BIKE_CSV, Server, bike_rows, make_bike_project, stage_result

pytestmark = pytest.mark.slow

STAGES = ["ingest", "prepare", "eda", "features", "dataset", "train", "promote"]


def _statuses(result: RunResult) -> dict[str, str]:
    """Each stage's status in a run: `ran` or `cached`."""
    return {stage.name: stage.status for stage in result}


def _edit(project: Path, section: str, key: str, value: object) -> None:
    path = project / "conveyor.yaml"
    config = yaml.safe_load(path.read_text())
    config.setdefault(section, {})[key] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture(scope="module")
def small_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = make_bike_project(tmp_path_factory.mktemp("contracts") / "p", bike_rows()[:3000])
    first = Project(project).run()
    assert _statuses(first) == dict.fromkeys(STAGES, "ran"), first
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
    result = Project(small_project).run()
    assert _statuses(result) == {s: "ran" if s in reruns else "cached" for s in STAGES}, result
    assert all(result[s].why == "inputs changed" for s in reruns), result  # not forced, not a vanished output


def test_a_deleted_mlflow_run_or_a_moved_alias_is_noticed(small_project: Path) -> None:
    import mlflow

    project = Project(small_project)
    project.run()
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{small_project / 'mlflow.db'}")
    train = stage_result(small_project, "train")
    run_id = train.candidates["baseline"].run_id
    client.delete_run(run_id)
    result = project.run()
    assert result["train"].status == "ran", result
    assert result["train"].why == f"the baseline run {run_id} was deleted", result

    client.delete_registered_model_alias("bike-sharing", "champion")
    result = project.run()
    assert _statuses(result) == {s: "ran" if s == "promote" else "cached" for s in STAGES}, result
    assert result["promote"].why.startswith("@champion moved since this decision"), result
    assert client.get_model_version_by_alias("bike-sharing", "champion") is not None


def test_a_moved_workspace_is_cached_and_serves(small_project: Path, tmp_path: Path) -> None:
    Project(small_project).run()  # settle the earlier edits
    moved = tmp_path / "elsewhere" / "project"
    shutil.copytree(small_project, moved)
    source = moved / BIKE_CSV.name
    # the original folder disappears: nothing may still read it
    hidden = small_project.with_name(small_project.name + "-hidden")
    small_project.rename(hidden)
    try:
        project = Project(moved)
        assert _statuses(project.run()) == dict.fromkeys(STAGES, "cached")
        server = Server(moved).start()
        try:
            health = httpx.get(f"{server.url}/health").json()
            by_entity = httpx.post(f"{server.url}/predict", json={"entities": [1, 2]})
            assert by_entity.status_code == 200, by_entity.text
            request_id = by_entity.json()["predictions"][0]["request_id"]
        finally:
            server.stop()
        steps = project.lineage(request_id)
        sha = hashlib.sha256(source.read_bytes()).hexdigest()
        by_kind = {step.kind: step for step in steps}
        assert [step.kind for step in steps[:3]] == ["prediction", "model", "training_set"], steps
        assert {"features", "clean", "raw"} <= set(by_kind) and steps[-1].kind == "source_file", steps
        assert by_kind["prediction"].digest == request_id and by_kind["prediction"].depth == 0
        assert by_kind["model"].digest == f"bike-sharing v{health['model']['version']}"
        assert by_kind["source_file"].digest == sha
        for kind in ("training_set", "clean", "raw"):  # each record found in the moved folder, none [missing]
            assert by_kind[kind].path and (moved / by_kind[kind].path).exists(), by_kind[kind]
    finally:
        hidden.rename(small_project)
