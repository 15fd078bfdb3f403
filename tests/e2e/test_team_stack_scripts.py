"""examples/team-stack/up and down as a user runs them, where they refuse before starting anything."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

UP = ROOT / "examples" / "team-stack" / "up"
DOWN = ROOT / "examples" / "team-stack" / "down"


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_STACK_")}  # no ports or folder of a stack
    env["CONVEYOR_PYTHON"] = sys.executable
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=300, env=env)


def test_a_port_in_use_stops_up_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(UP, "--dir", tmp_path / "stack", "--free-ports", "--redis-port", str(port))
    assert result.returncode == 1
    assert result.stdout == ""  # no export lines
    assert result.stderr.splitlines()[-1] == (
        f"up: port {port} (for Redis) is in use by another program: pick another with --redis-port N"
    )
    assert sorted(p.name for p in (tmp_path / "stack").iterdir()) == ["logs"]  # nothing started, no data made
    assert not list((tmp_path / "stack" / "logs").iterdir())


def test_a_bad_option_or_port_is_refused(tmp_path: Path) -> None:
    bad_port = run(UP, "--dir", tmp_path / "stack", "--pg-port", "99999")
    assert bad_port.returncode == 2 and bad_port.stderr.strip() == "up: 99999 is not a TCP port"
    unknown = run(DOWN, "--dir", tmp_path, "--everything")
    assert unknown.returncode == 2 and unknown.stderr.strip() == "down: unknown argument --everything"


def test_down_without_a_stack_stops_nothing(tmp_path: Path) -> None:
    result = run(DOWN, "--dir", tmp_path / "none")
    assert result.returncode == 0
    assert result.stderr.strip() == f"down: no team stack in {tmp_path / 'none'} (nothing to stop)"
