"""`make demo`: the whole lifecycle on the bundled bike-sharing data, as a user would run it.

init -> run (ingest, prepare, eda, features, dataset, train, promote) -> serve -> real HTTP requests ->
monitor -> stop the server -> a short summary. The workspace is `build/demo/`, made anew.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORK = ROOT / "build" / "demo"
CSV = HERE / "bike_sharing_hourly.csv"
CONVEYOR = [sys.executable, "-m", "conveyor"]
console = Console(highlight=False)


def step(title: str) -> None:
    console.rule(f"[bold cyan]{title}")


def conveyor(*args: str) -> None:
    console.print(f"[dim]$ conveyor {' '.join(args)}[/]")
    subprocess.run([*CONVEYOR, *args], check=True, cwd=ROOT)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the server did not answer on {url} within {timeout:.0f}s")


def feature_rows(features: list[str], skip: int, count: int) -> list[dict[str, object]]:
    with CSV.open(newline="") as handle:
        rows = list(csv.DictReader(handle))[skip : skip + count]
    numeric = {"temp", "atemp", "hum", "windspeed", "mnth", "hr"}
    return [{f: (float(r[f]) if f in numeric else int(r[f])) for f in features} for r in rows]


def main() -> None:
    started = time.perf_counter()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)

    step("1. conveyor init: a project file inferred from the CSV")
    conveyor("init", "--csv", str(CSV.relative_to(ROOT)), "--target", "cnt", "--name", "bike-sharing",
             "--output", str((WORK / "conveyor.yaml").relative_to(ROOT)))
    console.print("the project file is used as init wrote it: init itself proposed dropping the leaking "
                  "[bold]casual[/]/[bold]registered[/] columns (casual + registered == cnt on every row).\n")

    step("2. conveyor run: ingest -> prepare -> eda -> features (Feast) -> dataset -> train (MLflow) -> promote")
    conveyor("run", "-C", str(WORK.relative_to(ROOT)))

    step("3. conveyor serve, and real requests to it")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([*CONVEYOR, "serve", "-C", str(WORK), "--port", str(port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ready(url, server)
        health = httpx.get(f"{url}/health").json()
        features = health["features"]
        with httpx.Client(base_url=url, timeout=30) as client:
            # the last 500 hours of 2012, by raw features, in batches of 100
            rows = feature_rows(features, 17379 - 500, 500)
            served = 0
            for i in range(0, len(rows), 100):
                answer = client.post("/predict", json={"rows": rows[i : i + 100]})
                answer.raise_for_status()
                served += len(answer.json()["predictions"])
            latencies = []
            for key in range(16000, 16200):  # one entity at a time, features from the online store
                t0 = time.perf_counter()
                client.post("/predict", json={"entities": [key]}).raise_for_status()
                latencies.append((time.perf_counter() - t0) * 1000)
                served += 1
            bad = client.post("/predict", json={"rows": [{**rows[0], "temp": "warm"}]})
            metrics = client.get("/metrics").text
        latencies.sort()
        console.print(f"served {served} predictions by model v{health['model']['version']}; "
                      f"single-entity latency median {latencies[len(latencies) // 2]:.1f} ms, "
                      f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.1f} ms")
        console.print(f"a wrong type is a {bad.status_code}: {bad.json()['detail'][0]['loc']} "
                      f"{bad.json()['detail'][0]['msg']}")
        console.print("/metrics: " + ", ".join(line for line in metrics.splitlines()
                                               if line.startswith("conveyor_predictions_total")))
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()

    step("4. conveyor monitor: served traffic (late 2012) vs the training reference")
    result = subprocess.run([*CONVEYOR, "monitor", "-C", str(WORK)], cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(result.returncode)

    step("Summary")
    from conveyor.core import Workspace
    from conveyor.runner import last_artifact

    workspace = Workspace.at(WORK)
    train_artifact, promote_artifact = last_artifact(workspace, "train"), last_artifact(workspace, "promote")
    assert train_artifact is not None and promote_artifact is not None
    train, promote = train_artifact.result, promote_artifact.result
    drift = json.loads((WORK / "reports" / "drift.json").read_text())
    table = Table(title=f"bike-sharing: {train.split} split, {train.train_rows} train / "
                        f"{train.test_rows} test rows", title_justify="left")
    table.add_column("model")
    metric_names = list(train.candidates[train.best].metrics)
    for name in metric_names:
        table.add_column(f"test {name}", justify="right")
    for name, candidate in train.candidates.items():
        table.add_row(name, *[f"{candidate.metrics[m]:.4f}" for m in metric_names])
    console.print(table)
    rel = os.path.relpath
    console.print(f"champion: models:/bike-sharing@champion = v{promote.champion}")
    console.print(f"drift verdict: [bold]{drift['verdict']}[/] ({drift['window']['predictions']} predictions)")
    console.print(f"EDA report:    {rel(WORK / 'reports' / 'eda.html')}")
    console.print(f"drift report:  {rel(WORK / 'reports' / 'drift.html')}")
    console.print(f"MLflow UI:     .venv/bin/mlflow ui --backend-store-uri sqlite:///{rel(WORK / 'mlflow.db')}")
    console.print(f"Feast repo:    cd {rel(WORK / 'feature_repo')} && ../../../.venv/bin/feast feature-views list")
    console.print(f"predictions:   {rel(WORK / 'predictions')}/")
    console.print(f"demo finished in {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
