"""Serving latency: `conveyor serve` against `mlflow models serve` on the same champion model.

Trains the bike-sharing example in a temporary folder (or reuses `--workspace DIR`), starts
`conveyor serve` and `mlflow models serve` on the same champion, on free ports on
127.0.0.1; sends the same real CSV rows to each, one request at a time, and prints
median/p90/p99 latency, throughput, and whether the predictions agree.

    .venv/bin/python benchmarks/serving_latency.py [--requests 500] [--workspace DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "bike-sharing"
BIN = Path(sys.executable).parent  # the virtualenv's bin: conveyor, mlflow, uvicorn
MODEL_URI = "models:/bike-sharing@champion"
MLFLOW_SERVE = ["mlflow", "models", "serve", "--env-manager", "local", "-h", "127.0.0.1", "-m"]
FEATURES = ["season", "yr", "mnth", "hr", "holiday", "weekday", "workingday", "weathersit",
            "temp", "atemp", "hum", "windspeed"]
FLOATS = {"temp", "atemp", "hum", "windspeed"}
console = Console(highlight=False, width=None if sys.stdout.isatty() else 110)
THREADS_NOTE = (
    "LightGBM threads: both servers predict with n_jobs=1 (Conveyor logs its models that way; mlflow also runs "
    "with OMP_NUM_THREADS=1). Both write an access log; Conveyor also appends every prediction to "
    "<workspace>/predictions/ before answering."
)


@dataclass
class Result:
    server: str
    case: str
    seconds: list[float]  # per request
    wall: float  # whole loop, for requests/s
    predictions: list[float]

    def ms(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# kind: (port option, readiness paths, prediction path, the body's key for a list of feature rows)
API = {"conveyor": ("--port", ["/health"], "/predict", "rows"),
       "mlflow": ("-p", ["/ping", "/health"], "/invocations", "dataframe_records")}


@dataclass
class Server:
    name: str
    kind: str  # a key of API
    cmd: list[str]  # a program in the virtualenv's bin, then its arguments but the port
    env: dict[str, str]
    port: int = field(default_factory=lambda: free_port())

    @property
    def command(self) -> list[str]:
        return [str(BIN / self.cmd[0]), *self.cmd[1:], API[self.kind][0], str(self.port)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_rows(csv_path: Path) -> list[dict[str, Any]]:
    """Feature rows of the CSV, typed as JSON numbers; row i has entity key row_id = i + 1."""
    with csv_path.open(newline="") as handle:
        return [{k: (float if k in FLOATS else int)(line[k]) for k in FEATURES} for line in csv.DictReader(handle)]


def prepare_workspace(given: Path | None, tmp: Path) -> Path:
    if given is not None:
        if not (given / "mlflow.db").exists():
            raise SystemExit(f"{given}: no mlflow.db; run `conveyor run` there first")
        return given.resolve()
    for name in ("conveyor.yaml", "bike_sharing_hourly.csv"):
        shutil.copy(EXAMPLE / name, tmp / name)
    console.print(f"[bold]conveyor run[/] in {tmp} ...")
    done = subprocess.run([str(BIN / "conveyor"), "run"], cwd=tmp, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"conveyor run failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return tmp


@contextlib.contextmanager
def process(name: str, cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A server in its own process group (mlflow execs uvicorn in a child); always stopped."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)  # the group we created, whose id is our child's pid
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
        console.print(f"stopped {name} (pid {proc.pid}, exit {proc.returncode})", style="dim")


def wait_ready(name: str, proc: subprocess.Popen[bytes], urls: list[str], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            for url in urls:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return
            time.sleep(0.25)
    raise RuntimeError(f"{name} did not answer {urls} within {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def wait_compiled(url: str, timeout: float, answers: int = 20) -> str:
    """Wait until `conveyor serve` (at `url`, its /health) is no longer compiling its trees, so a benchmark
    measures the steady state: `answers` /health answers in a row, each on a new connection (with several
    workers, each answers for itself) not `compiling`. Returns the predictor the last one named."""
    deadline = time.monotonic() + timeout
    settled, predictor = 0, "?"
    while settled < answers:
        with contextlib.suppress(httpx.HTTPError):
            health = httpx.get(url, timeout=5.0).json()
            predictor = str(health.get("predictor", "?"))
            settled = settled + 1 if health.get("compile") != "compiling" else 0
            if settled:
                continue
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} still compiling its trees after {timeout:.0f}s")
        time.sleep(0.5)
    return predictor


def predictions_of(body: dict[str, Any]) -> list[float]:
    """Both servers answer {"predictions": [...]}: Conveyor with objects, MLflow with {"prediction": x}."""
    return [float(p["prediction"] if isinstance(p, dict) else p) for p in body["predictions"]]


def measure(client: httpx.Client, server_name: str, case: str, url: str, bodies: list[Any],
            warmup: list[Any], budget: float) -> Result:
    for body in warmup:
        client.post(url, json=body).raise_for_status()
    seconds: list[float] = []
    predictions: list[float] = []
    deadline = time.monotonic() + budget
    start = time.perf_counter()
    for body in bodies:
        t0 = time.perf_counter()
        response = client.post(url, json=body)
        seconds.append(time.perf_counter() - t0)
        if response.status_code != 200:
            raise RuntimeError(f"{server_name} {case}: HTTP {response.status_code}: {response.text[:500]}")
        predictions.extend(predictions_of(response.json()))
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server_name} {case}: over the {budget:.0f}s budget after {len(seconds)} requests")
    return Result(server_name, case, seconds, time.perf_counter() - start, predictions)


def report(results: list[Result], checks: list[tuple[str, float]], tolerance: float) -> bool:
    table = Table(title="sequential requests, keep-alive HTTP, 127.0.0.1", title_justify="left")
    for column in ("server", "case", "n", "median ms", "p90 ms", "p99 ms", "req/s", "median / conveyor's"):
        table.add_column(column, justify="left" if column in ("server", "case") else "right")
    conveyor = {r.case: r for r in results if r.server == "conveyor"}
    for r in results:
        ratio = "-"
        if r.server != "conveyor" and r.case in conveyor:
            ratio = f"{r.ms(0.5) / conveyor[r.case].ms(0.5):.2f}x"
        table.add_row(r.server, r.case, str(len(r.seconds)), f"{r.ms(0.5):.2f}", f"{r.ms(0.9):.2f}",
                      f"{r.ms(0.99):.2f}", f"{len(r.seconds) / r.wall:.0f}", ratio)
    console.print(table)
    ok = True
    for label, diff in checks:
        good = diff <= tolerance
        ok &= good
        verdict = "[green]ok[/]" if good else "[red]MISMATCH[/]"
        console.print(f"{label}: max |diff| = {diff:.3g} {verdict}")
    return ok


def max_diff(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))  # unequal lengths raise ValueError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="single-row requests per server (default 500)")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests first (default 20)")
    parser.add_argument("--batch-size", type=int, default=100, help="rows per batch request (default 100)")
    parser.add_argument("--workspace", type=Path, help="an existing folder where `conveyor run` was done")
    parser.add_argument("--startup-timeout", type=float, default=120.0, help="seconds for a server to answer")
    parser.add_argument("--compile-timeout", type=float, default=600.0,
                        help="seconds for conveyor serve to compile its trees (serving.compiled) before measuring")
    parser.add_argument("--budget", type=float, default=300.0, help="max seconds per measured case")
    args = parser.parse_args()
    if args.requests < 10:
        parser.error("--requests must be at least 10")

    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        workspace = prepare_workspace(args.workspace, Path(tmp))
        logs = Path(tmp)
        rows = load_rows(EXAMPLE / "bike_sharing_hourly.csv")
        rng = random.Random(0)
        picked = rng.sample(range(len(rows)), args.requests + args.warmup)
        warm_ids, ids = picked[: args.warmup], picked[args.warmup:]
        batches = [rng.sample(range(len(rows)), args.batch_size) for _ in range(max(1, args.requests // 10))]

        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        mlflow_env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{workspace}/mlflow.db", "OMP_NUM_THREADS": "1"}
        servers = [
            Server("conveyor", "conveyor", ["conveyor", "serve", "-C", str(workspace), "--host", "127.0.0.1"], env),
            Server("mlflow", "mlflow", [*MLFLOW_SERVE, MODEL_URI], mlflow_env),
        ]
        console.print(THREADS_NOTE)
        with contextlib.ExitStack() as stack:
            started = time.monotonic()
            procs = [stack.enter_context(process(s.name, s.command, s.env, workspace, logs / f"{s.port}.log"))
                     for s in servers]
            for s, proc in zip(servers, procs, strict=True):
                wait_ready(s.name, proc, [s.url + path for path in API[s.kind][1]], logs / f"{s.port}.log",
                           args.startup_timeout)
            predictor = wait_compiled(servers[0].url + "/health", args.compile_timeout)  # the steady state
            console.print(f"conveyor predicts with: {predictor}")
            console.print(f"servers up after {time.monotonic() - started:.1f}s; {args.requests} requests per case")

            plan = [("1 row", [[k] for k in ids], [[k] for k in warm_ids]),
                    (f"{args.batch_size} rows", batches, batches[:2])]
            results: list[Result] = []
            with httpx.Client(timeout=30.0) as client:
                for s, (case, chosen, warm) in ((s, p) for p in plan for s in servers):
                    _, _, path, key = API[s.kind]
                    bodies, warmup = ([{key: [rows[k] for k in i]} for i in ks] for ks in (chosen, warm))
                    results.append(measure(client, s.name, case, s.url + path, bodies, warmup, args.budget))
                entity = [{"entities": [k + 1]} for k in ids]
                results.append(measure(client, "conveyor", "1 entity (Feast)", servers[0].url + "/predict", entity,
                                       [{"entities": [k + 1]} for k in warm_ids], args.budget))
            if any(proc.poll() is not None for proc in procs):
                raise RuntimeError("a server exited during the benchmark")

        by = {(r.server, r.case): r.predictions for r in results}
        checks = [(f"{s.name} vs conveyor, {case}", max_diff(by[s.name, case], by["conveyor", case]))
                  for s in servers[1:] for case in ("1 row", f"{args.batch_size} rows")]
        checks.append(("conveyor: entity (online store) vs raw row",
                       max_diff(by["conveyor", "1 entity (Feast)"], by["conveyor", "1 row"])))
        return 0 if report(results, checks, tolerance=1e-6) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, ValueError, httpx.HTTPError, subprocess.SubprocessError, OSError) as exc:
        console.print(f"[red]benchmark failed:[/] {exc}")
        sys.exit(1)
