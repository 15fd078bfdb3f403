"""The memory guard: a stage about to run the machine out of memory stops with one line (exit 71).

The guard is exercised for real: a child process allocates memory until the machine's available
memory falls under a floor set just below what is available now, and the guard stops it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.core.memory import EXIT_OUT_OF_MEMORY, floor_bytes, memory
from tests.conftest import ROOT, bike_rows, make_bike_project

pytestmark = pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="the guard reads /proc (Linux)")

_ALLOCATE = """
import sys, time
from conveyor.core.memory import guard
held = []
with guard("features", "polars", interval=0.02):
    for _ in range(int(sys.argv[1])):
        block = bytearray(50 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])  # touch every page: resident, not just reserved
        held.append(block)
        time.sleep(0.02)
print("allocated everything")
"""


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT), **extra}


def test_memory_reads_the_machine() -> None:
    now = memory()
    assert now is not None
    assert 0 < now.available <= now.total
    assert now.rss > 10 * 1024 * 1024  # this interpreter, with pytest loaded
    assert now.where in ("machine", "container")


def test_floor_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    gib = 1024**3
    monkeypatch.delenv("CONVEYOR_MEMORY_FLOOR_MB", raising=False)
    assert floor_bytes(24 * gib) == gib  # 5 %, at most 1 GiB
    assert floor_bytes(2 * gib) == 256 * 1024 * 1024  # at least 256 MiB
    assert floor_bytes(8 * gib) == 8 * gib // 20
    monkeypatch.setenv("CONVEYOR_MEMORY_FLOOR_MB", "300")
    assert floor_bytes(24 * gib) == 300 * 1024 * 1024
    monkeypatch.setenv("CONVEYOR_MEMORY_FLOOR_MB", "0")
    assert floor_bytes(24 * gib) == 0
    monkeypatch.setenv("CONVEYOR_MEMORY_FLOOR_MB", "lots")  # a bad value keeps the default
    assert floor_bytes(24 * gib) == gib


def test_an_allocation_past_the_floor_stops_with_one_line() -> None:
    now = memory()
    assert now is not None
    floor_mb = now.available // (1024 * 1024) - 400  # 400 MiB of headroom, then the guard
    result = subprocess.run([sys.executable, "-c", _ALLOCATE, "40"], capture_output=True, text=True, timeout=120,
                            env=_env(CONVEYOR_MEMORY_FLOOR_MB=str(floor_mb)))  # 40 x 50 MiB: 2 GiB asked
    assert result.returncode == EXIT_OUT_OF_MEMORY, result.stderr
    assert "allocated everything" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith("conveyor: error: out of memory: the features stage (engine: polars) holds ")
    assert "set `engine: spark`" in lines[0] and "CONVEYOR_MEMORY_FLOOR_MB" in lines[0]


def test_the_same_allocation_under_the_floor_completes() -> None:
    result = subprocess.run([sys.executable, "-c", _ALLOCATE, "4"], capture_output=True, text=True, timeout=120,
                            env=_env(CONVEYOR_MEMORY_FLOOR_MB="256"))
    assert result.returncode == 0, result.stderr
    assert "allocated everything" in result.stdout


def test_a_stopped_stage_runs_again_and_the_ones_before_stay_done(tmp_path: Path) -> None:
    project = make_bike_project(tmp_path / "p", bike_rows()[:300])
    run = [sys.executable, "-m", "conveyor", "run", "-C", str(project), "--to", "eda"]
    first = subprocess.run([*run[:-2], "--to", "prepare"], capture_output=True, text=True, env=_env(), timeout=300)
    assert first.returncode == 0, first.stderr
    # a floor above any machine's memory: the first stage that runs (eda; the others are cached) stops
    stopped = subprocess.run(run, capture_output=True, text=True, timeout=300,
                             env=_env(CONVEYOR_MEMORY_FLOOR_MB=str(10**9)))
    assert stopped.returncode == EXIT_OUT_OF_MEMORY, stopped.stdout + stopped.stderr
    assert "out of memory: the eda stage (engine: polars)" in stopped.stderr
    assert "the stages before eda stay done and eda runs again next time" in stopped.stderr
    assert not (project / ".conveyor" / "stages" / "eda.json").exists()
    again = subprocess.run([*run, "--no-wait"], capture_output=True, text=True, env=_env(), timeout=300)
    assert again.returncode == 0, again.stderr  # the lock died with the stopped process
    log = json.loads(sorted((project / ".conveyor" / "runs").glob("*.json"))[-1].read_text())
    assert [(s["stage"], s["status"]) for s in log["stages"]] == [
        ("ingest", "cached"), ("prepare", "cached"), ("eda", "ran")]
    assert (project / ".conveyor" / "stages" / "eda.json").exists()


# --------------------------------------------------------------------------- a container's limit
# A real memory cgroup (v1's `memory` controller or v2's `memory.max`) with a limit, the child
# moved into it before it starts: what a container's limit is to the guard.

_WRITE_FILES = """
import os, sys
from conveyor.core.memory import guard, memory
chunk = os.urandom(1024 * 1024)
with guard("ingest", "polars", interval=0.02):
    for n in range(3):  # 3 x 400 MiB written and read back: page cache, well past the limit
        path = os.path.join(sys.argv[1], f"part-{n}")
        with open(path, "wb") as out:
            for _ in range(400):
                out.write(chunk)
        with open(path, "rb") as back:
            while back.read(8 * 1024 * 1024):
                pass
print("wrote everything", memory().where)
"""


def _cgroup(tmp_name: str, limit: int) -> Path | None:
    """A new memory cgroup limited to `limit` bytes, or None where this process may not make one."""
    candidates = [(Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes")]
    if "memory" in (Path("/sys/fs/cgroup/cgroup.subtree_control").read_text() if
                    Path("/sys/fs/cgroup/cgroup.subtree_control").exists() else ""):
        candidates.append((Path("/sys/fs/cgroup"), "memory.max"))
    for root, limit_file in candidates:
        folder = root / tmp_name
        try:
            folder.mkdir()
        except OSError:
            continue
        try:
            (folder / limit_file).write_text(str(limit))
            return folder
        except OSError:
            folder.rmdir()
    return None


def _run_in(folder: Path, code: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    def enter() -> None:  # in the child, before it starts Python: "0" is the writing process itself
        (folder / "cgroup.procs").write_text("0")

    try:
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=180,
                              env=_env(**env), preexec_fn=enter)
    finally:
        folder.rmdir()  # empty once the child has exited


@pytest.fixture
def cgroup_name(tmp_path: Path) -> str:
    name = f"conveyor-test-{os.getpid()}-{tmp_path.name}"
    if _cgroup(name + "-probe", 64 * 1024 * 1024) is None:
        pytest.skip("this process may not create a memory cgroup (not root, or no writable cgroup mount)")
    for root in (Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup")):
        with contextlib.suppress(OSError):
            (root / (name + "-probe")).rmdir()
    return name


def test_a_containers_limit_stops_the_stage_under_its_floor(cgroup_name: str) -> None:
    folder = _cgroup(cgroup_name, 640 * 1024 * 1024)
    assert folder is not None
    result = _run_in(folder, _ALLOCATE, "40")  # 2 GiB asked in a 640 MiB container; floor 256 MiB
    assert result.returncode == EXIT_OUT_OF_MEMORY, (result.returncode, result.stderr)
    assert "allocated everything" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "and the container has " in lines[0] and "of 0.6 GiB left, under the 0.2 GiB floor" in lines[0]


def test_a_containers_page_cache_is_not_counted_as_used(cgroup_name: str, tmp_path: Path) -> None:
    folder = _cgroup(cgroup_name, 640 * 1024 * 1024)
    assert folder is not None
    result = _run_in(folder, _WRITE_FILES, str(tmp_path))  # 1.2 GB of file data through a 640 MiB container
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert result.stdout.split() == ["wrote", "everything", "container"]
