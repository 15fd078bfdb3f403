"""`conveyor run` of the bike project on the team stack vs the embedded default, stage by stage.

    source <the team stack's env>   # MLFLOW_TRACKING_URI, CONVEYOR_PG_DSN, AWS_*, CONVEYOR_S3_BUCKET
    PYTHONPATH=src .venv/bin/python benchmarks/team_stack.py [--trials 0] [--repeat 1]

Two copies of `examples/bike-sharing` in a temporary folder, the same data and seed: one on the
embedded default (SQLite MLflow and Feast registry, local Parquet), one with a `stores:` section
(MLflow tracking server, Feast's SQL registry on PostgreSQL, offline Parquet in S3; the online
store stays SQLite). Each is run with `conveyor run` as a user would (a fresh process), one after
the other, never at once; then once more, all stages cached (what every later `conveyor run`
costs: the cache checks ask the tracking server and the registry). The seconds per stage are
those the runner records in `.conveyor/stages/<stage>.json`; wall time includes the process start.

`--trials 0` (the default) fits each candidate once without a search, so the train stage
measures tracking and logging, not Optuna on a busy CPU. The team project gets a unique name
(registered model names are global on the server).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIKE = ROOT / "examples" / "bike-sharing"
STAGES = ("ingest", "prepare", "eda", "features", "dataset", "train", "promote")
NEEDED = ("MLFLOW_TRACKING_URI", "CONVEYOR_PG_DSN", "AWS_ENDPOINT_URL", "CONVEYOR_S3_BUCKET")


def _project(folder: Path, name: str, trials: int, stores: dict[str, object] | None) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(BIKE / "bike_sharing_hourly.csv", folder)
    config = yaml.safe_load((BIKE / "conveyor.yaml").read_text())
    config["name"] = name
    config["training"]["search"] = {**config["training"].get("search", {}), "trials": trials}
    if stores is not None:
        config["stores"] = stores
    (folder / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def _run(project: Path) -> tuple[float, dict[str, float]]:
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "conveyor", "run", "-C", str(project)], capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"conveyor run failed in {project}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    seconds = {}
    for stage in STAGES:
        record = json.loads((project / ".conveyor" / "stages" / f"{stage}.json").read_text())
        seconds[stage] = float(record["seconds"])
    return wall, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=0, help="training.search.trials (0: no search)")
    parser.add_argument("--repeat", type=int, default=1, help="fresh projects per stack; medians are shown")
    args = parser.parse_args(argv)
    missing = [name for name in NEEDED if not os.environ.get(name)]
    if missing:
        print(f"the team stack's environment is missing {', '.join(missing)}: start it and export its lines")
        return 2
    stores = {
        "mlflow": {"tracking_uri_env": "MLFLOW_TRACKING_URI"},
        "registry": {"kind": "postgres", "dsn_env": "CONVEYOR_PG_DSN"},
        "offline": {"kind": "s3", "uri": f"s3://{os.environ['CONVEYOR_S3_BUCKET']}/benchmarks"},
    }
    fresh: dict[str, list[dict[str, float]]] = {"embedded": [], "team": []}
    walls: dict[str, list[float]] = {"embedded": [], "team": []}
    cached: dict[str, list[float]] = {"embedded": [], "team": []}
    with tempfile.TemporaryDirectory(prefix="conveyor-team-bench-") as tmp:
        for i in range(args.repeat):
            for stack in ("embedded", "team"):
                name = f"bench-{uuid.uuid4().hex[:8]}"
                project = _project(Path(tmp) / f"{stack}-{i}", name, args.trials, stores if stack == "team" else None)
                wall, seconds = _run(project)
                fresh[stack].append(seconds)
                walls[stack].append(wall)
                cached[stack].append(_run(project)[0])
                print(f"  {stack} run {i + 1}: {wall:.1f} s, cached re-run {cached[stack][-1]:.1f} s", flush=True)
    print(f"\n`conveyor run` of examples/bike-sharing (17,379 rows, trials={args.trials}), median of {args.repeat}")
    print(f"{'stage':<22} {'embedded s':>11} {'team s':>9} {'team / embedded':>16}")

    def row(label: str, a: float, b: float) -> None:
        ratio = f"{b / a:.2f}x" if a > 0 else "-"
        print(f"{label:<22} {a:11.2f} {b:9.2f} {ratio:>16}")

    for stage in STAGES:
        row(stage, statistics.median(s[stage] for s in fresh["embedded"]),
            statistics.median(s[stage] for s in fresh["team"]))
    row("all stages (recorded)", statistics.median(sum(s.values()) for s in fresh["embedded"]),
        statistics.median(sum(s.values()) for s in fresh["team"]))
    row("wall, first run", statistics.median(walls["embedded"]), statistics.median(walls["team"]))
    row("wall, all cached", statistics.median(cached["embedded"]), statistics.median(cached["team"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
