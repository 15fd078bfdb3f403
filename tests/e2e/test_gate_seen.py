"""The gate never scores the champion on rows it trained on, and `@champion` moves by hand.

Real projects on a real MLflow registry (SQLite), each with a tiny search budget. The row counts
the gate reports are checked against an independent count: the champion's split and today's
split of the same training set, matched on the entity key and event timestamp.
"""

from __future__ import annotations

import csv
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from conveyor import Project
from conveyor.core.errors import ConveyorError
from tests.conftest import Server, conveyor, stage_artifact, stage_result

pytestmark = pytest.mark.slow

TINY_SEARCH = {"trials": 3, "timeout_s": 60, "folds": 3}


def _rows(count: int, seed: int, start_hour: int = 0) -> list[dict[str, object]]:
    """A noisy linear target over hourly event times from 2024-01-01 + `start_hour`."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 4))
    y = 3 * x[:, 0] - 2 * x[:, 1] + 1.5 * x[:, 2] + 0.5 * x[:, 3] + rng.normal(scale=1.0, size=count)
    base = np.datetime64("2024-01-01T00:00")
    return [{"when": str(base + np.timedelta64(start_hour + i, "h")).replace("T", " "),
             "a": round(float(x[i, 0]), 4), "b": round(float(x[i, 1]), 4), "c": round(float(x[i, 2]), 4),
             "d": round(float(x[i, 3]), 4), "y": round(float(y[i]), 4)} for i in range(count)]


def _write(path: Path, rows: list[dict[str, object]], append: bool = False) -> None:
    with path.open("a" if append else "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        if not append:
            writer.writeheader()
        writer.writerows(rows)


def _project(folder: Path, rows: list[dict[str, object]], **training: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "data.csv", rows)
    Project.init(folder / "data.csv", target="y", name="gate")
    _configure(folder, **training)
    return folder


def _configure(folder: Path, drop: list[str] | None = None, **training: object) -> None:
    config = yaml.safe_load((folder / "conveyor.yaml").read_text())
    config["training"]["search"] = dict(TINY_SEARCH)
    config["training"].update(training)
    if drop is not None:
        config["schema"]["drop"] = drop
    (folder / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _client(project: Path) -> object:
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def _seen_by_champion(project: Path, champion_run: str) -> tuple[int, int, int]:
    """(test rows, test rows the champion trained on, test rows neither trained on), counted here
    from the logged artifacts and today's split, not by the gate's code."""
    import pandas as pd

    from conveyor.core.config import load_config
    from conveyor.stages.training._split import split_frame

    client = _client(project)
    folder = project / "downloaded"
    champion = pd.read_parquet(client.download_artifacts(champion_run, "conveyor/train_rows.parquet", str(folder)))
    config = load_config(project / "conveyor.yaml")
    train, test, _ = split_frame(pd.read_parquet(stage_artifact(project, "dataset").path), config)
    key = config.schema.entity.key

    def ids(frame: pd.DataFrame) -> set[tuple[str, int]]:
        times = pd.to_datetime(frame["event_timestamp"] if "event_timestamp" in frame else frame["ts"], utc=True)
        times = times.astype("datetime64[ns, UTC]")
        keys = frame[key] if key in frame else frame["key"]
        return set(zip(keys.astype(str), times.astype("int64"), strict=True))

    test_ids, champion_ids, train_ids = ids(test), ids(champion), ids(train)
    seen = len(test_ids & champion_ids)
    neither = len(test_ids - champion_ids - train_ids)
    return len(test_ids), seen, neither


def test_every_candidate_logs_its_training_rows(tmp_path: Path) -> None:
    project = _project(tmp_path / "logged", _rows(300, 0), split="time")
    Project(project).run()
    train = stage_result(project, "train")
    import pandas as pd

    for name in ("baseline", "lightgbm"):
        path = _client(project).download_artifacts(train.candidates[name].run_id, "conveyor/train_rows.parquet",
                                                   str(tmp_path / name))
        rows = pd.read_parquet(path)
        assert list(rows.columns) == ["key", "ts"] and len(rows) == train.train_rows
    promote = stage_result(project, "promote")
    assert promote.promoted and promote.champion_seen_rows is None  # no champion before: nothing counted


def test_a_split_change_compares_on_the_rows_neither_model_trained_on(tmp_path: Path) -> None:
    """v1 (without feature c, a random half of the rows) is champion; then the split becomes the latest
    20 % by time: v1 trained on about half of those test rows, so both are scored on the rest."""
    project = _project(tmp_path / "resplit", _rows(1000, 1), split="random", test_size=0.5)
    _configure(project, drop=["c"])
    Project(project).run()
    first = stage_result(project, "promote")
    assert first.promoted and first.champion == "1", first.summary()
    champion_run = _client(project).get_model_version("gate", "1").run_id

    _configure(project, drop=[], split="time", test_size=0.2)
    Project(project).run()
    promote = stage_result(project, "promote")
    total, seen, neither = _seen_by_champion(project, champion_run)
    assert total == 200 and 60 < seen < 140 and neither == total - seen, (total, seen, neither)
    assert promote.champion_seen_rows == seen
    assert promote.compared_on == f"the {neither} test rows neither saw (champion v1 trained on {seen} of the 200 test rows)"
    assert promote.promoted and promote.champion == "2", promote.summary()
    assert promote.candidate_compared_score is not None and promote.champion_score is not None
    assert promote.candidate_compared_score > promote.champion_score  # the model that sees c is better
    assert f"on the {neither} test rows neither saw (champion v1 trained on {seen} of the 200" in promote.summary()
    assert promote.change is not None and "neither saw" in promote.change.why


def test_too_few_unseen_rows_keep_the_champion_and_say_how_to_replace_it(tmp_path: Path) -> None:
    """A random 80 % champion, then a time split: only about a fifth of the new test rows are unseen
    by both, under max(30, 20 %) of 60: no fair comparison, the champion stays, the candidate is
    registered without the alias, `models promote` moves @champion to it by hand, `models rollback`
    moves it back, and a running server swaps each time."""
    project = _project(tmp_path / "few", _rows(300, 2), split="random", test_size=0.2)
    Project(project).run()
    assert stage_result(project, "promote").champion == "1"
    champion_run = _client(project).get_model_version("gate", "1").run_id

    _configure(project, split="time", test_size=0.2)
    out = Project(project).run()
    promote = stage_result(project, "promote")
    total, seen, neither = _seen_by_champion(project, champion_run)
    assert total == 60 and neither < 30 and seen == total - neither, (total, seen, neither)
    assert not promote.promoted and promote.champion == "1" and promote.champion_seen_rows == seen
    reason = promote.reasons[0]
    assert reason.startswith(f"champion v1 trained on {seen} of the 60 test rows, and only {neither} test rows are "
                             "unseen by both (at least 30 needed"), reason
    assert reason.endswith("the candidate is registered as v2 without the alias: `conveyor models promote 2` "
                           "makes it champion anyway"), reason
    assert out["promote"].summary.startswith("champion stays v1: champion v1 trained on")
    registry = Project(project).models()
    assert registry.champion == "1" and [v.version for v in registry.versions] == ["2", "1"]

    # a running server follows: POST /admin/reload makes the swap a request to await, not a sleep
    config = yaml.safe_load((project / "conveyor.yaml").read_text())
    config["serving"]["admin_key_env"] = "GATE_TEST_ADMIN"
    (project / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    server = Server(project, env={"GATE_TEST_ADMIN": "k3y"})  # on a port the system picks

    def reload() -> object:
        return httpx.post(f"{server.url}/admin/reload", headers={"Authorization": "Bearer k3y"}).json()

    server.start()
    try:
        assert httpx.get(f"{server.url}/health").json()["model"]["version"] == "1"
        shown = conveyor("models", "promote", "2", "--reason", "reviewed the time split", "-C", str(project))
        assert "@champion v1 -> v2" in shown.stdout and "reviewed the time split" in shown.stdout
        # served after the move: swapped by this request, or already by the server's own alias poll
        assert reload()["model"] == {"name": "gate", "version": "2"}
        registry = Project(project).models()
        assert registry.champion == "2"
        last = registry.history[-1]
        assert (last.old, last.new, last.why, last.metric) == ("1", "2", "reviewed the time split", "r2")
        assert "@" in last.by and last.previous_score is not None

        conveyor("models", "rollback", "-C", str(project))
        # served after the move: swapped by this request, or already by the server's own alias poll
        assert reload()["model"] == {"name": "gate", "version": "1"}
        assert httpx.get(f"{server.url}/health").json()["model"]["version"] == "1"
    finally:
        server.stop()
    assert [(c.old, c.new) for c in Project(project).models().history] == [(None, "1"), ("1", "2"), ("2", "1")]


def test_appended_rows_put_champion_rows_in_the_test_split(tmp_path: Path) -> None:
    """Late rows of the early period appended to the CSV move the latest-20 % cut back into the
    period v1 trained on: v1 is compared with the challenger on the rows neither trained on."""
    project = _project(tmp_path / "appended", _rows(400, 3), split="time", test_size=0.2)
    Project(project).run()
    assert stage_result(project, "promote").champion == "1"
    champion_run = _client(project).get_model_version("gate", "1").run_id

    _write(project / "data.csv", _rows(200, 4, start_hour=0), append=True)  # rows of hours 0-199, late
    Project(project).run()
    promote = stage_result(project, "promote")
    total, seen, neither = _seen_by_champion(project, champion_run)
    assert seen > 0 and neither >= max(30, 0.2 * total), (total, seen, neither)
    assert promote.champion_seen_rows == seen
    assert promote.compared_on == (f"the {neither} test rows neither saw "
                                   f"(champion v1 trained on {seen} of the {total} test rows)")
    assert promote.champion_score is not None and promote.candidate_compared_score is not None


def test_promote_and_rollback_by_hand_keep_the_history(tmp_path: Path) -> None:
    project = _project(tmp_path / "manual", _rows(300, 5), split="random", test_size=0.2)
    _configure(project, drop=["c", "d"])
    Project(project).run()
    _configure(project, drop=[])
    Project(project).run()  # same split, a better model: the gate promotes v2
    opened = Project(project)
    assert opened.models().champion == "2"
    back = opened.rollback(reason="v2 misbehaves in production")
    assert (back.old, back.new, back.why) == ("2", "1", "v2 misbehaves in production")
    assert opened.models().champion == "1"
    again = conveyor("models", "rollback", "-C", str(project))  # `cd -`: back to v2
    assert "@champion v1 -> v2" in again.stdout and "rolled back from v1" in again.stdout
    registry = opened.models()
    assert registry.champion == "2"
    assert [(c.old, c.new) for c in registry.history] == [(None, "1"), ("1", "2"), ("2", "1"), ("1", "2")]
    assert registry.history[2].why == "v2 misbehaves in production" and registry.history[3].why == "rolled back from v1"
    assert opened.model_version(1).tags["conveyor.promotion_reason"] == "v2 misbehaves in production"

    with pytest.raises(ConveyorError, match=r"^no version '7' of model 'gate' in .*`conveyor models` lists them$"):
        opened.promote(7)
    with pytest.raises(ConveyorError, match=r"^v2 is already the @champion of 'gate': nothing to move$"):
        opened.promote("v2")
    failed = conveyor("models", "promote", "9", "-C", str(project), check=False)
    assert failed.returncode != 0
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no version '9' of model 'gate' in "), failed.stderr
    assert lines[0].endswith("; `conveyor models` lists them"), failed.stderr
    assert opened.models().champion == "2" and len(opened.models().history) == 4  # nothing moved


def test_a_champion_without_its_training_rows_is_compared_as_before_with_a_note(tmp_path: Path) -> None:
    """A champion logged before its training rows were kept (its artifact removed here): compared on
    the whole test split, as before, and the decision says its training rows are unknown."""
    from urllib.parse import unquote, urlparse

    project = _project(tmp_path / "older", _rows(300, 6), split="time", test_size=0.2)
    Project(project).run()
    assert stage_result(project, "promote").champion == "1"
    client = _client(project)
    run = client.get_run(client.get_model_version("gate", "1").run_id)
    kept = Path(unquote(urlparse(run.info.artifact_uri).path)) / "conveyor" / "train_rows.parquet"
    assert kept.is_file()
    kept.unlink()

    _configure(project, split="time", test_size=0.3)
    Project(project).run()
    promote = stage_result(project, "promote")
    assert promote.champion_seen_rows is None and promote.compared_on == "test split"
    assert promote.champion_note == ("champion v1's training rows are unknown (logged before "
                                     "conveyor/train_rows.parquet was kept): compared on the whole test split")
    assert promote.champion_score is not None and promote.champion_note in promote.summary()
