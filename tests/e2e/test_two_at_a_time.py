"""Two `conveyor run` at once: in one project, and in two projects sharing one registry.

Real processes on a real MLflow registry. The concurrency is made deterministic with the
locks themselves: the test holds the registry lock, so a run stops at `promote` while it holds
the project lock, and each step waits for a line a process prints (an event), never a sleep.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.core import Workspace, load_config
from conveyor.core.locking import FileLock, PostgresLock, hold
from conveyor.stages.training import champion_history, list_versions, registry_lock
from tests.conftest import ROOT, bike_rows, conveyor, make_bike_project, stage_artifact, stage_result

pytestmark = pytest.mark.slow

ROWS = 3000


class Run:
    """`conveyor ARGS` in a process of its own; its output read line by line as it comes."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        environment = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200", **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "conveyor", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=environment, cwd=ROOT,
        )
        self.pid = self.process.pid
        self.out: list[str] = []
        self.err: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._pumps = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(self.process.stderr, self.err), daemon=True),
        ]
        for pump in self._pumps:
            pump.start()

    def _pump(self, stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def expect(self, text: str, timeout: float = 600) -> str:
        """Block until the process prints a line holding `text`; fail if it ends first."""
        ended = 0
        while ended < 2:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no {text!r} within {timeout}s:\n{self.output()}")
            if line is None:
                ended += 1
            elif text in line:
                return line.rstrip("\n")
        pytest.fail(f"ended (code {self.process.wait()}) without {text!r}:\n{self.output()}")

    def finish(self, timeout: float = 900) -> int:
        code = self.process.wait(timeout=timeout)
        for pump in self._pumps:
            pump.join()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return code

    def output(self) -> str:
        return "".join(self.out) + "".join(self.err)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.finish()


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.kill()


def _start(started: list[Run], *args: str, env: dict[str, str] | None = None) -> Run:
    run = Run(*args, env=env)
    started.append(run)
    return run


def _edit(project: Path, **changes: Any) -> None:
    """Change keys of the project file: `{"training": {"lightgbm": {"n_estimators": 200}}}` style."""
    config = yaml.safe_load((project / "conveyor.yaml").read_text())

    def merge(into: dict[str, Any], update: dict[str, Any]) -> None:
        for key, value in update.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    merge(config, changes)
    (project / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


WEAK = {"lightgbm": {"n_estimators": 5}}
"""The first training: a LightGBM too small to beat the linear baseline."""
STRONG = {"lightgbm": {"n_estimators": 200}}
"""The changed training section: a LightGBM that beats the first champion."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small bike project run once with the weak training: champion v1 (the baseline)."""
    project = make_bike_project(tmp_path_factory.mktemp("two") / "base", bike_rows()[:ROWS])
    _edit(project, training=WEAK)
    conveyor("run", "-C", str(project), "--no-search")
    assert stage_result(project, "promote").champion == "1"
    return project


def _history(project: Path) -> list[Any]:
    return champion_history(load_config(project / "conveyor.yaml"), Workspace.at(project))


def _one_move_per_version(history: list[Any]) -> None:
    olds = [change.old for change in history]
    assert len(olds) == len(set(olds)), f"two moves from one version: {[(c.old, c.new) for c in history]}"
    for before, after in zip(history, history[1:]):
        assert after.old == before.new, f"a move from v{after.old} after @champion went to v{before.new}"


def test_a_second_run_waits_for_the_first_and_names_it_and_only_one_promotes(
    trained: Path, tmp_path: Path, runs: list[Run]
) -> None:
    project = tmp_path / "bike"
    shutil.copytree(trained, project)
    _edit(project, training=STRONG)
    config, workspace = load_config(project / "conveyor.yaml"), Workspace.at(project)

    with hold(registry_lock(config, workspace), "pytest"):  # the first run will stop at promote
        first = _start(runs, "run", "-C", str(project), "--no-search")
        line = first.expect("waiting for the registry lock")
        assert "held by `pytest`" in line
        # the first run holds the project lock now: a second one is refused, or waits, naming it
        refused = conveyor("run", "-C", str(project), "--no-search", "--no-wait", check=False)
        assert refused.returncode == 75, refused.stdout + refused.stderr
        assert refused.stderr.startswith(
            f"error: the project lock is held by `conveyor run` (pid {first.pid}, "
        ), refused.stderr
        assert refused.stderr.count("\n") == 1 and " since " in refused.stderr
        second = _start(runs, "run", "-C", str(project), "--no-search")
        waiting = second.expect("waiting for the project lock")
        assert waiting.startswith(f"waiting for the project lock: held by `conveyor run` (pid {first.pid}, "), waiting
    assert first.finish() == 0, first.output()
    assert second.finish() == 0, second.output()

    assert "champion = v2" in "".join(first.out), first.output()
    promote_line = next(line for line in second.out if line.lstrip("│ ").startswith("promote"))
    assert "cached" in promote_line, second.output()  # the same decision: not made twice
    assert [v.version for v in list_versions(config, workspace)] == ["2", "1"]
    history = _history(project)
    assert [(c.old, c.new) for c in history] == [(None, "1"), ("1", "2")]
    _one_move_per_version(history)
    shown = conveyor("models", "-C", str(project)).stdout
    assert shown.count("v1 -> v2") == 1 and shown.count("none -> v1") == 1, shown


def _shared(trained: Path, folder: Path, name: str, stores: dict[str, Any]) -> list[Path]:
    """Two copies of the trained project, renamed alike and with the changed training section,
    on one shared registry (`stores`)."""
    projects = []
    for side in ("a", "b"):
        project = folder / side
        shutil.copytree(trained, project)
        _edit(project, name=name, training=STRONG, stores=stores)
        projects.append(project)
    return projects


def _one_promotion(projects: list[Path]) -> None:
    """One decision promoted v1, the other compared against v1 and kept it."""
    decisions = [stage_result(project, "promote") for project in projects]
    promoted = [d for d in decisions if d.promoted]
    kept = [d for d in decisions if not d.promoted]
    assert len(promoted) == 1 and len(kept) == 1, [d.summary() for d in decisions]
    assert promoted[0].champion_version is None and promoted[0].champion == "1"
    assert kept[0].champion_version == "1" and kept[0].champion == "1", kept[0].summary()
    config = load_config(projects[0] / "conveyor.yaml")
    assert [v.version for v in list_versions(config, Workspace.at(projects[0]))] == ["1"]
    for project in projects:  # the same registry, seen from both folders
        history = _history(project)
        assert [(c.old, c.new) for c in history] == [(None, "1")]
        _one_move_per_version(history)


def test_two_projects_on_one_sqlite_registry_promote_once(
    trained: Path, tmp_path: Path, runs: list[Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "bike-sharing"  # the same project name (and model name) in two folders; their stages up to train are cached
    env = {"CONVEYOR_TEST_REGISTRY": f"sqlite:///{tmp_path / 'registry' / 'shared.db'}"}
    (tmp_path / "registry").mkdir()
    projects = _shared(trained, tmp_path, name, {"mlflow": {"tracking_uri_env": "CONVEYOR_TEST_REGISTRY"}})
    monkeypatch.setenv("CONVEYOR_TEST_REGISTRY", env["CONVEYOR_TEST_REGISTRY"])  # to read the registry from here
    config, workspace = load_config(projects[0] / "conveyor.yaml"), Workspace.at(projects[0])
    lock = registry_lock(config, workspace)
    assert isinstance(lock, FileLock) and lock.path == (tmp_path / "registry" / ".shared.db.lock").resolve()
    with hold(lock, "pytest"):  # both runs train, then both wait to promote
        both = [_start(runs, "run", "-C", str(project), "--no-search", env=env) for project in projects]
        for run in both:
            assert "held by `pytest`" in run.expect("waiting for the registry lock")
    for run in both:
        assert run.finish() == 0, run.output()
    _one_promotion(projects)


def test_two_projects_with_a_postgres_lock_serialise_and_promote_once(
    team_stack: dict[str, str], trained: Path, tmp_path: Path, runs: list[Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As two machines would: nothing local is shared, only PostgreSQL (the lock) and the registry.
    The project name is unique to this test: the lock is keyed by it, in a database other tests share."""
    name = f"bike-{uuid.uuid4().hex[:8]}"
    env = {"CONVEYOR_TEST_REGISTRY": f"sqlite:///{tmp_path / 'registry' / 'shared.db'}"}
    (tmp_path / "registry").mkdir()
    stores = {"mlflow": {"tracking_uri_env": "CONVEYOR_TEST_REGISTRY"}, "lock": {"dsn_env": "CONVEYOR_PG_DSN"}}
    projects = _shared(trained, tmp_path, name, stores)
    monkeypatch.setenv("CONVEYOR_TEST_REGISTRY", env["CONVEYOR_TEST_REGISTRY"])
    config, workspace = load_config(projects[0] / "conveyor.yaml"), Workspace.at(projects[0])
    lock = registry_lock(config, workspace)
    assert isinstance(lock, PostgresLock)
    with hold(lock, "pytest"):
        first = _start(runs, "run", "-C", str(projects[0]), "--no-search", env=env)
        assert "held by `pytest`" in first.expect("waiting for the registry lock")
        refused = conveyor("ingest", "-C", str(projects[1]), "--no-wait", check=False)
        assert refused.returncode == 75
        assert f"the project lock is held by `conveyor run` (pid {first.pid}, " in refused.stderr, refused.stderr
        second = _start(runs, "run", "-C", str(projects[1]), "--no-search", env=env)
        waiting = second.expect("waiting for the project lock")
        assert f"held by `conveyor run` (pid {first.pid}, " in waiting, waiting
    for run in (first, second):
        assert run.finish() == 0, run.output()
    _one_promotion(projects)


def test_champion_moves_only_if_it_still_points_where_the_decision_read_it(trained: Path, tmp_path: Path) -> None:
    """Compare-and-set: a decision that read "no champion" while @champion is at v1 registers
    nothing and moves nothing (as when another promotion won in between)."""
    from conveyor.core.errors import TrainingError
    from conveyor.stages.training._registry import _register
    from conveyor.stages.training._tracking import client

    project = tmp_path / "bike"
    shutil.copytree(trained, project)
    config, workspace = load_config(project / "conveyor.yaml"), Workspace.at(project)
    train, dataset = stage_artifact(project, "train"), stage_artifact(project, "dataset")
    candidate = train.result.candidates["lightgbm"]
    before = [(v.version, v.aliases) for v in list_versions(config, workspace)]
    with pytest.raises(TrainingError) as refused:
        _register(client(config, workspace), config, workspace, candidate.run_id, candidate.model_id, dataset, read=None)
    assert str(refused.value) == ("another promotion moved @champion to v1 while this decision compared against "
                                  "no champion; run `conveyor promote` again")
    assert [(v.version, v.aliases) for v in list_versions(config, workspace)] == before == [("1", ["champion"])]
    assert [(c.old, c.new) for c in _history(project)] == [(None, "1")]
