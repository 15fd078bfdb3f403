"""A private redis-server for tests that stop and restart Redis (the shared team stack's must stay up).

Started on a free port of 127.0.0.1, no automatic persistence; `kill` sends SIGKILL to its PID
(a crash), `start` again on the same port and folder reloads what `save` wrote, as a Redis with
persistence comes back after a restart.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.conftest import free_port


class RedisServer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        import redis

        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.folder), "--dbfilename", "dump.rdb"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 30
        try:
            while True:
                try:
                    if client.ping():
                        return self
                except redis.exceptions.BusyLoadingError:
                    pass
                except redis.exceptions.ConnectionError:
                    if self.process.poll() is not None:
                        raise AssertionError(f"redis-server exited ({self.process.returncode})") from None
                if time.monotonic() > deadline:
                    raise AssertionError(f"redis-server not answering on port {self.port} after 30 s")
                time.sleep(0.02)  # polling a port that is not open yet: nothing to await
        finally:
            client.close()

    def client(self) -> object:
        import redis

        return redis.Redis(port=self.port, socket_connect_timeout=1)

    def save(self) -> None:
        import redis

        client = redis.Redis(port=self.port)
        client.save()
        client.close()

    def kill(self) -> None:
        """SIGKILL by PID: Redis gone at once, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
