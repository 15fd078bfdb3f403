"""Serving throughput and tails under concurrency: `conveyor serve`, a bare app and `mlflow models serve`, with wrk.

Trains the bike-sharing example in a temporary folder (or reuses `--workspace DIR`), starts
`conveyor serve` with its defaults (validation, the prediction log, metrics and micro-batching
all on, `serving.workers: auto`, as shipped), the bare ceiling (`bare_app.py`: FastAPI, orjson
and one `Booster.predict` per request on one worker, nothing else) and `mlflow models serve`
on the same champion (Conveyor measured once /health no longer says `compiling`: the steady state,
on the compiled trees of `serving.compiled`), then for each server:

- wrk, 8 connections, `--duration` s: single-row bodies, then 100-row bodies (real CSV rows,
  rotated by a Lua script); requests/s, rows/s, p50/p99 from wrk's `--latency`, and the CPU
  time the server's processes (every worker) spent per request (Linux /proc), which does not
  depend on the load the way the rates do;
- (Conveyor) a burst: one client's latency before, during the first second after, and the
  time until it is back under 1.5x its pre-burst median (a batching policy must not keep it high).

Prints the table, the ratios to MLflow and to the bare app, and the targets (single rows:
>= 20x MLflow's req/s, p99 <= 10 ms; 100 rows: >= 1.0x the bare app's rows/s, p99 <= 30 ms;
back within 1 s after a burst). Needs `wrk` (`apt-get install -y wrk`). The machine's load
average is printed with the table: on a shared machine, read the figures with it, and the
ratios (same run) before the absolute numbers. Each server runs in a session of its own; with
the kernel's `sched_autogroup` on, a loaded machine gives each session one share of the CPUs,
whatever its number of workers, and the table says so.

    .venv/bin/python benchmarks/serving.py [--workspace DIR] [--duration 10] [--workers N] [--port-base 28000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving_latency import (  # noqa: E402  # the same servers, workspace and rows as the latency benchmark
    BIN,
    EXAMPLE,
    MLFLOW_SERVE,
    MODEL_URI,
    console,
    load_rows,
    prepare_workspace,
    process,
    wait_compiled,
    wait_ready,
)

LUA = r"""
local bodies = {}
for line in io.lines(os.getenv("WRK_BODIES")) do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
"""


@dataclass
class Cell:
    server: str
    case: str
    rows: int
    rps: float
    p50: float
    p99: float
    errors: int
    cpu_ms: float
    """CPU time of the server's processes (all workers) per request during the cell, ms."""

    @property
    def rows_per_s(self) -> float:
        return self.rps * self.rows


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, bodies: Path, script: Path, *, connections: int, seconds: float, threads: int = 2) -> dict[str, float]:
    done = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{round(seconds)}s", "--latency", "--timeout", "5s", "-s", str(script),
         url],
        capture_output=True, text=True, env={**os.environ, "WRK_BODIES": str(bodies)}, timeout=seconds + 60,
    )
    out = done.stdout
    if done.returncode != 0 or "Requests/sec" not in out:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{out}\n{done.stderr}")
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in match.groups())
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": _ms(re.search(r"\s50%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"\s99%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "errors": errors,
    }


def write_bodies(path: Path, key: str, rows: list[dict[str, object]], size: int, count: int, seed: int) -> Path:
    rng = random.Random(seed)
    with path.open("w") as out:
        for _ in range(count):
            out.write(json.dumps({key: rng.sample(rows, size)}, separators=(",", ":")) + "\n")
    return path


def after_burst(url: str, body: dict[str, object], bodies: Path, script: Path) -> dict[str, float]:
    """One client's latency before a burst (64 connections, 3 s), in the second after it, and the recovery time."""
    with httpx.Client(timeout=10) as client:
        for _ in range(50):
            client.post(url, json=body)
        before = []
        for _ in range(300):
            t0 = time.perf_counter()
            client.post(url, json=body).raise_for_status()
            before.append(time.perf_counter() - t0)
        base = statistics.median(before)
        burst = threading.Thread(target=wrk, args=(url, bodies, script), kwargs={"connections": 64, "seconds": 3})
        burst.start()
        burst.join()
        ended = time.perf_counter()
        after: list[tuple[float, float]] = []
        while time.perf_counter() - ended < 2.0:
            t0 = time.perf_counter()
            client.post(url, json=body).raise_for_status()
            after.append((t0 - ended, time.perf_counter() - t0))
    first = [s for at, s in after if at < 1.0]
    recovered = next((at for i, (at, _) in enumerate(after)
                      if statistics.median([s for _, s in after[i:i + 20]]) <= 1.5 * base), float("inf"))
    return {"before_ms": 1000 * base, "after_ms": 1000 * statistics.median(first), "recovered_s": recovered}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="an existing folder where `conveyor run` was done")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk cell (default 10)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument("--workers", default=None, help="conveyor serve --workers (default: serving.workers, auto)")
    parser.add_argument("--port-base", type=int, default=0, help="ports from here on (default: free ports)")
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--compile-timeout", type=float, default=600.0,
                        help="seconds for conveyor serve to compile its trees (serving.compiled) before measuring")
    args = parser.parse_args()
    args.load_before = os.getloadavg()  # the machine's own load: the run itself keeps every core busy
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        tmpdir = Path(tmp)
        workspace = prepare_workspace(args.workspace, tmpdir)
        rows = load_rows(EXAMPLE / "bike_sharing_hourly.csv")
        script = tmpdir / "post.lua"
        script.write_text(LUA)
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        mlflow_env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{workspace}/mlflow.db", "OMP_NUM_THREADS": "1"}
        workers = ["--workers", args.workers] if args.workers else []
        bare_env = {**env, **bare_model(workspace, tmpdir), "OMP_NUM_THREADS": "1"}
        servers = [
            ("conveyor", ["conveyor", "serve", "-C", str(workspace), *workers], "--port", "/predict", "rows", env,
             "/health"),
            ("bare", ["uvicorn", "--app-dir", str(Path(__file__).resolve().parent), "--log-level", "warning",
                      "bare_app:app", "--host", "127.0.0.1"], "--port", "/predict", "rows", bare_env, "/health"),
            ("mlflow", [*MLFLOW_SERVE, MODEL_URI], "-p", "/invocations", "dataframe_records", mlflow_env, "/ping"),
        ]
        cells: list[Cell] = []
        burst: dict[str, float] = {}
        for index, (name, cmd, port_opt, path, key, server_env, ready) in enumerate(servers):
            port = args.port_base + index if args.port_base else _free_port()
            log = tmpdir / f"{name}.log"
            command = [str(BIN / cmd[0]), *cmd[1:], port_opt, str(port)]
            with process(name, command, server_env, workspace, log) as proc:
                wait_ready(name, proc, [f"http://127.0.0.1:{port}{ready}"], log, args.startup_timeout)
                if name == "conveyor":  # measured in the steady state: after the trees are compiled (or failed to)
                    args.predictor = wait_compiled(f"http://127.0.0.1:{port}/health", args.compile_timeout)
                    console.print(f"conveyor predicts with: {args.predictor}")
                url = f"http://127.0.0.1:{port}{path}"
                for size in (1, 100):
                    bodies = write_bodies(tmpdir / f"{name}-{size}.jsonl", key, rows, size, 500, seed=size)
                    wrk(url, bodies, script, connections=args.connections, seconds=2)  # warm-up
                    spent = group_cpu_ms(proc.pid)
                    got = wrk(url, bodies, script, connections=args.connections, seconds=args.duration)
                    spent = (group_cpu_ms(proc.pid) - spent) / max(1.0, got["rps"] * args.duration)
                    cells.append(Cell(name, f"{size} row{'s' if size > 1 else ''}, {args.connections} clients", size,
                                      got["rps"], got["p50"], got["p99"], int(got["errors"]), spent))
                if name == "conveyor":
                    burst = after_burst(url, {key: [rows[0]]}, tmpdir / f"{name}-1.jsonl", script)
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited during the benchmark:\n{log.read_text()[-2000:]}")
        return report(cells, burst, args)


def bare_model(workspace: Path, tmpdir: Path) -> dict[str, str]:
    """The champion's booster as a text model file, and its features in order, for the bare app."""
    from conveyor.runner import load_project
    from conveyor.stages.training import load_champion

    config, ws = load_project(workspace)
    model = load_champion(config, ws).model
    estimator = getattr(model.estimator, "regressor", model.estimator)  # a log-target model: its booster
    path = tmpdir / "bare-model.txt"
    estimator.booster_.save_model(str(path))
    return {"BARE_MODEL": str(path), "BARE_FEATURES": ",".join(model.features)}


def group_cpu_ms(group: int) -> float:
    """CPU time (user + system) used so far by the live processes of a process group, ms (Linux /proc)."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group:
                ticks += int(fields[11]) + int(fields[12])
    return 1000 * ticks / os.sysconf("SC_CLK_TCK")


def _autogroup() -> bool:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def report(cells: list[Cell], burst: dict[str, float], args: argparse.Namespace) -> int:
    load, before = os.getloadavg(), args.load_before
    table = Table(title=f"wrk, {args.duration:.0f} s per cell, 127.0.0.1; conveyor --workers {args.workers or 'default'}, "
                  f"predictor {getattr(args, 'predictor', '?')}; "
                  f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores "
                  f"(before the run: {before[0]:.2f})",
                  title_justify="left")
    for column in ("server", "case", "req/s", "rows/s", "p50 ms", "p99 ms", "cpu ms/req", "errors", "vs mlflow",
                   "vs bare"):
        table.add_column(column, justify="left" if column in ("server", "case") else "right")
    mlflow = {c.rows: c for c in cells if c.server == "mlflow"}
    bare = {c.rows: c for c in cells if c.server == "bare"}
    for c in cells:
        ratio = f"{c.rps / mlflow[c.rows].rps:.2f}x" if c.server != "mlflow" and c.rows in mlflow else "-"
        to_bare = f"{c.rps / bare[c.rows].rps:.2f}x" if c.server != "bare" and c.rows in bare else "-"
        table.add_row(c.server, c.case, f"{c.rps:.0f}", f"{c.rows_per_s:.0f}", f"{c.p50:.2f}", f"{c.p99:.2f}",
                      f"{c.cpu_ms:.2f}", str(c.errors), ratio, to_bare)
    console.print(table)
    if _autogroup() and before[0] > (os.cpu_count() or 1) / 2:  # other work was running when the run began
        console.print("[yellow]note[/]: the kernel shares the CPUs between sessions (sched_autogroup) and the machine "
                      "is loaded: each server (its own session) gets one share whatever its number of workers, so "
                      "rows/s follow the CPU per request (cpu ms/req) more than the workers")
    ours = {c.rows: c for c in cells if c.server == "conveyor"}
    checks = [
        ("1 row: req/s >= 20x mlflow", ours[1].rps >= 20 * mlflow[1].rps, f"{ours[1].rps / mlflow[1].rps:.2f}x"),
        ("1 row: p99 <= 10 ms", ours[1].p99 <= 10, f"{ours[1].p99:.1f} ms"),
        ("100 rows: rows/s >= 1.0x the bare app", ours[100].rows_per_s >= bare[100].rows_per_s,
         f"{ours[100].rows_per_s / bare[100].rows_per_s:.2f}x"),
        ("100 rows: p99 <= 30 ms", ours[100].p99 <= 30, f"{ours[100].p99:.1f} ms"),
        ("no errors", all(c.errors == 0 for c in cells), str(sum(c.errors for c in cells))),
    ]
    if burst:
        console.print(f"after a burst (64 connections, 3 s): one client's median {burst['before_ms']:.2f} ms before, "
                      f"{burst['after_ms']:.2f} ms in the first second after; back under 1.5x in "
                      f"{burst['recovered_s']:.2f} s")
        checks.append(("back to pre-burst latency within 1 s", burst["recovered_s"] <= 1.0,
                       f"{burst['recovered_s']:.2f} s"))
    ok = True
    for label, good, figure in checks:
        ok &= good
        console.print(f"{label}: {figure} {'[green]met[/]' if good else '[red]NOT met[/]'}")
    return 0 if ok else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
