"""A private PostgreSQL 15 for tests that stop and restart it (the shared team stack's must stay up).

initdb and the server run as the `postgres` user (initdb refuses root); it listens on a free
port of 127.0.0.1 with its socket in its own folder. `stop` is an immediate shutdown (as a crash:
no checkpoint), `start` again on the same port and data directory brings the same databases back.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(*args: str) -> subprocess.CompletedProcess[str]:
    command = list(args) if shutil.which("runuser") is None else ["runuser", "-u", "postgres", "--", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args[:1])} failed ({done.returncode}): {done.stdout}{done.stderr}")
    return done


class PostgresServer:
    """In a folder of its own under /tmp (the postgres user cannot enter pytest's root-only tmp_path);
    `remove` deletes it."""

    def __init__(self) -> None:
        folder = Path(tempfile.mkdtemp(prefix="conveyor-test-pg-"))
        folder.chmod(0o755)
        shutil.chown(folder, "postgres", "postgres")
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        _as_postgres(str(BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust")

    def start(self) -> PostgresServer:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.folder} -c fsync=off"
        _as_postgres(str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"), "-o", options,
                     "-w", "start")
        return self

    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().splitlines()[0])

    def stop(self, mode: str = "immediate") -> None:
        if (self.data / "postmaster.pid").exists():
            _as_postgres(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        self.stop("fast")
        shutil.rmtree(self.folder, ignore_errors=True)
