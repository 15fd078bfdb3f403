"""The project lock, in real processes: a lock file (flock) and a PostgreSQL advisory lock.

Every wait here is on an event (a line a process prints, a process ending), never a sleep.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.core.config import Config
from conveyor.core.errors import ConfigError, LockError
from conveyor.core.locking import FileLock, PostgresLock, hold, lock_key
from conveyor.core.report import write_text

ROOT = Path(__file__).resolve().parents[2]

_TAKER = """
import sys
from pathlib import Path
from conveyor.core.locking import FileLock, PostgresLock, hold
kind, where, command = sys.argv[1:4]
target = FileLock(Path(where)) if kind == "file" else PostgresLock("CONVEYOR_PG_DSN", where)
with hold(target, command):
    print("acquired", flush=True)
    sys.stdin.readline()  # hold until the test closes stdin (or kills us)
print("released", flush=True)
"""


class Taker:
    """A process that takes a lock, says `acquired` on stdout, and holds it until stdin closes."""

    def __init__(self, kind: str, where: str, command: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _TAKER, kind, where, command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env,
        )
        self.lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self.pumps = [threading.Thread(target=self._pump, args=(name,), daemon=True) for name in ("stdout", "stderr")]
        for pump in self.pumps:
            pump.start()

    def _pump(self, name: str) -> None:
        stream = getattr(self.process, name)
        for line in stream:
            self.lines.put((name, line.rstrip("\n")))
        self.lines.put((name, None))  # end of stream

    def expect(self, text: str, timeout: float = 60) -> str:
        """The next line holding `text` (on either stream); fails with what came instead."""
        seen: list[str] = []
        ended = 0
        while ended < 2:
            try:
                name, line = self.lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no {text!r} within {timeout}s; saw {seen}")
            if line is None:
                ended += 1
                continue
            seen.append(f"{name}: {line}")
            if text in line:
                return line
        pytest.fail(f"the process ended (code {self.process.wait()}) without {text!r}; saw {seen}")

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert self.process.wait(timeout=60) == 0

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pump in self.pumps:
            pump.join()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None and not stream.closed:
                stream.close()


@pytest.fixture
def taker() -> Iterator[list[Taker]]:
    started: list[Taker] = []
    yield started
    for one in started:
        one.close()


def _start(started: list[Taker], kind: str, where: str, command: str) -> Taker:
    one = Taker(kind, where, command)
    started.append(one)
    return one


# --- lock file ---------------------------------------------------------------------------------


def test_a_second_taker_is_told_who_holds_the_lock_file_and_waits_for_it(tmp_path: Path, taker: list[Taker]) -> None:
    path = tmp_path / ".conveyor" / "lock"
    first = _start(taker, "file", str(path), "conveyor run")
    first.expect("acquired")
    with pytest.raises(LockError) as refused:
        with hold(FileLock(path), "conveyor promote", wait=False):
            pass
    message = str(refused.value)
    assert message.startswith(f"the project lock is held by `conveyor run` (pid {first.process.pid}, ")
    assert f"@{socket.gethostname()}) since " in message and "without --no-wait" in message
    assert "\n" not in message

    second = _start(taker, "file", str(path), "conveyor train")
    waiting = second.expect("waiting for the project lock")
    assert waiting.startswith(f"waiting for the project lock: held by `conveyor run` (pid {first.process.pid}, ")
    first.release()
    second.expect("acquired")  # woken by the release, not by a poll
    second.release()
    with hold(FileLock(path), "test", wait=False):  # free again; the file stays (never removed)
        assert path.exists()


def test_the_kernel_releases_the_lock_file_of_a_killed_holder(tmp_path: Path, taker: list[Taker]) -> None:
    path = tmp_path / "lock"
    holder = _start(taker, "file", str(path), "conveyor run")
    holder.expect("acquired")
    holder.process.send_signal(signal.SIGKILL)
    holder.process.wait()
    with hold(FileLock(path), "after", wait=False):  # no stale lock to clean up by hand
        pass


def test_the_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    target = FileLock(tmp_path / "lock")
    with hold(target, "outer", wait=False):
        with hold(target, "inner", wait=False):  # the same process: no self-deadlock
            pass
        with hold(target, "again", wait=False):
            pass


def test_report_writes_use_their_own_temporary_files(tmp_path: Path) -> None:
    """Concurrent writers of one file: each renames its own temporary file; no reader sees half."""
    target = tmp_path / "stages" / "train.json"
    texts = [f"{i:03d}" * 5000 for i in range(16)]
    start = threading.Barrier(len(texts))
    errors: list[BaseException] = []

    def write(text: str) -> None:
        start.wait()
        try:
            write_text(target, text)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(text,)) for text in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert target.read_text() in texts
    assert [p.name for p in target.parent.iterdir()] == ["train.json"]  # no temporary file left


# --- PostgreSQL advisory lock -----------------------------------------------------------------


def test_a_postgres_advisory_lock_serialises_two_takers_and_names_the_holder(
    team_stack: dict[str, str], taker: list[Taker], tmp_path: Path
) -> None:
    name = f"conveyor project lock-test-{tmp_path.name}"
    first = _start(taker, "postgres", name, "conveyor run")
    first.expect("acquired")
    with pytest.raises(LockError) as refused:
        with hold(PostgresLock("CONVEYOR_PG_DSN", name), "conveyor promote", wait=False):
            pass
    assert str(refused.value).startswith(
        f"the project lock is held by `conveyor run` (pid {first.process.pid}, "
    ), refused.value
    with hold(PostgresLock("CONVEYOR_PG_DSN", name + "-other"), "other", wait=False):
        pass  # another project's key is free

    second = _start(taker, "postgres", name, "conveyor train")
    waiting = second.expect("waiting for the project lock")
    assert f"held by `conveyor run` (pid {first.process.pid}, " in waiting
    first.release()
    second.expect("acquired")  # pg_advisory_lock returned: the server woke it
    second.release()


def test_postgres_releases_the_lock_of_a_killed_holder(team_stack: dict[str, str], taker: list[Taker],
                                                        tmp_path: Path) -> None:
    name = f"conveyor project killed-{tmp_path.name}"
    holder = _start(taker, "postgres", name, "conveyor run")
    holder.expect("acquired")
    holder.process.send_signal(signal.SIGKILL)
    holder.process.wait()
    after = _start(taker, "postgres", name, "conveyor run")
    after.expect("acquired")  # at once, or woken when the server ends the dead session
    after.release()


def test_a_lock_key_is_a_signed_64_bit_integer_stable_across_processes() -> None:
    key = lock_key("conveyor project bike-sharing")
    assert -(2**63) <= key < 2**63
    assert key == lock_key("conveyor project bike-sharing") != lock_key("conveyor project bike")


def test_an_unset_dsn_variable_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_NO_SUCH_DSN", raising=False)
    with pytest.raises(ConfigError, match=r"^stores\.lock\.dsn_env names CONVEYOR_NO_SUCH_DSN, which is not set"):
        with hold(PostgresLock("CONVEYOR_NO_SUCH_DSN", "x"), "test"):
            pass


def test_an_unreachable_lock_database_is_one_line_without_the_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("CONVEYOR_DEAD_DSN", f"postgresql://someone:s3cret@127.0.0.1:{port}/db")
    with pytest.raises(LockError) as failed:
        with hold(PostgresLock("CONVEYOR_DEAD_DSN", "x"), "test"):
            pass
    message = str(failed.value)
    assert message.startswith("cannot reach the PostgreSQL database $CONVEYOR_DEAD_DSN (stores.lock) for the project lock")
    assert "s3cret" not in message and "\n" not in message


# --- which lock a project takes ----------------------------------------------------------------


def _config(**stores: Any) -> Config:
    from conveyor.core.config import StoresConfig, load_config

    config = load_config(ROOT / "examples" / "bike-sharing" / "conveyor.yaml")
    return config.model_copy(update={"stores": StoresConfig.model_validate(stores)})


def test_the_project_lock_is_a_file_unless_a_postgres_database_is_named(tmp_path: Path) -> None:
    from conveyor.core.workspace import Workspace
    from conveyor.runner._lock import project_lock_target

    workspace = Workspace.at(tmp_path)
    assert project_lock_target(_config(), workspace) == FileLock(tmp_path.resolve() / ".conveyor" / "lock")
    shared = project_lock_target(_config(registry={"dsn_env": "REG_DSN"}), workspace)
    assert shared == PostgresLock("REG_DSN", "conveyor project bike-sharing", "project lock", "stores.registry")
    own = project_lock_target(_config(registry={"dsn_env": "REG_DSN"}, lock={"dsn_env": "LOCK_DSN"}), workspace)
    assert own == PostgresLock("LOCK_DSN", "conveyor project bike-sharing", "project lock", "stores.lock")


def test_the_registry_lock_follows_the_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.core.workspace import Workspace
    from conveyor.stages.training import registry_lock

    workspace = Workspace.at(tmp_path)
    mlflow = {"mlflow": {"tracking_uri_env": "CONVEYOR_TEST_URI"}}
    assert registry_lock(_config(), workspace) == FileLock(tmp_path.resolve() / ".mlflow.db.lock", "registry lock")
    monkeypatch.setenv("CONVEYOR_TEST_URI", f"sqlite:///{tmp_path}/team/shared.db")
    assert registry_lock(_config(**mlflow), workspace) == FileLock(
        tmp_path.resolve() / "team" / ".shared.db.lock", "registry lock")
    monkeypatch.setenv("CONVEYOR_TEST_URI", "http://127.0.0.1:5000")
    assert registry_lock(_config(**mlflow), workspace) == FileLock(
        tmp_path.resolve() / ".conveyor" / "registry.lock", "registry lock")
    assert registry_lock(_config(**mlflow, lock={"dsn_env": "LOCK_DSN"}), workspace) == PostgresLock(
        "LOCK_DSN", "conveyor registry bike-sharing", "registry lock", "stores.lock")
    monkeypatch.delenv("CONVEYOR_TEST_URI")
    with pytest.raises(ConfigError, match=r"^stores\.mlflow\.tracking_uri_env: the environment variable CONVEYOR_TEST_URI is not set"):
        registry_lock(_config(**mlflow), workspace)


@pytest.mark.parametrize("command", [["run"], ["ingest"], ["promote"], ["labels", "add", "labels.csv"], ["build", "--no-docker"]])
def test_every_command_that_writes_project_state_takes_the_project_lock(tmp_path: Path, command: list[str]) -> None:
    from tests.conftest import bike_rows, conveyor, make_bike_project

    project = make_bike_project(tmp_path / "p", bike_rows()[:50])
    with hold(FileLock(project / ".conveyor" / "lock"), "a test"):
        refused = conveyor(*command, "-C", str(project), "--no-wait", check=False)
    assert refused.returncode == 75, refused.stdout + refused.stderr
    assert refused.stderr.startswith(f"error: the project lock is held by `a test` (pid {os.getpid()}, "), refused.stderr
    assert not (project / "data").exists()  # nothing ran
