"""A large taxi-style CSV through the whole `conveyor run`: seconds per stage and peak memory.

    .venv/bin/python benchmarks/scale.py                 # 1,000,000 rows
    .venv/bin/python benchmarks/scale.py --rows 100000

The file is made from the shipped NYC taxi sample (tests/data/nyc_taxi_trips.csv): its rows
resampled with their pickup times spread over the month and small noise on the numbers, in a
temporary folder (never committed). Each measured command runs in a fresh process; its peak
RSS is that process's `ru_maxrss`. Beside Conveyor's online write, the same rows go through
Feast's own in-process `FeatureStore.materialize`, which is what a user would otherwise run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "nyc_taxi_trips.csv"


def make_csv(rows: int, out: Path, seed: int = 7) -> None:
    import numpy as np
    import polars as pl

    base = pl.read_csv(SAMPLE, infer_schema_length=0).drop("ehail_fee", "trip_type")
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, base.height, rows)
    frame = base[pick.tolist()]
    start = np.datetime64("2019-03-01T00:00:00")
    offsets = rng.integers(0, 31 * 24 * 3600, rows).astype("timedelta64[s]")
    pickup = (start + offsets).astype("datetime64[us]")
    duration = rng.integers(60, 3600, rows).astype("timedelta64[s]").astype("timedelta64[us]")
    fmt = "%Y-%m-%d %H:%M:%S"
    frame = frame.with_columns(
        pl.Series("tpep_pickup_datetime", pickup).dt.strftime(fmt),
        pl.Series("tpep_dropoff_datetime", pickup + duration).dt.strftime(fmt),
    )
    noise = pl.Series(rng.normal(1.0, 0.02, rows))
    for column in ("trip_distance", "fare_amount", "tip_amount"):
        frame = frame.with_columns((pl.col(column).cast(pl.Float64) * noise).round(2).cast(pl.String).alias(column))
    frame.write_csv(out)


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """Seconds, peak RSS (MiB) of that one child process (`wait4`), and its stdout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout = out.read()
        if child.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{stdout}\n{err.read()}")
    return seconds, usage.ru_maxrss / 1024, stdout


_MATERIALIZE = textwrap.dedent(
    """
    import json, os, shutil, sys, time
    from datetime import timedelta
    from pathlib import Path
    import pyarrow.parquet as pq, pyarrow.compute as pc
    from conveyor.core import Workspace, load_config
    from conveyor.stages.features._repo import feast_objects
    from conveyor.stages.features._store import open_store
    root = Path(sys.argv[1])
    # the same registry and source in a copy of the repo, with Feast's built-in SQLite online store
    copy = root / "feast-builtin"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(root / "feature_repo", copy / "feature_repo", ignore=shutil.ignore_patterns("online_store.db*"))
    config = load_config(root / "conveyor.yaml")
    data = config.model_dump(mode="json", by_alias=True)
    data["features"]["online_store"] = "feast-sqlite"
    config = type(config).model_validate(data)
    os.chdir(copy / "feature_repo")  # Feast's DuckDB store reads the relative source path from here
    store = open_store(config, Workspace.at(copy))
    store.apply(feast_objects(config).all())  # Feast's own online tables
    times = pq.read_table(copy / "feature_repo" / "data" / "source.parquet", columns=["event_timestamp"])
    bounds = pc.min_max(times["event_timestamp"])
    started = time.perf_counter()
    store.materialize(bounds["min"].as_py() - timedelta(seconds=1), bounds["max"].as_py() + timedelta(seconds=1))
    print(json.dumps({"seconds": time.perf_counter() - started}))
    shutil.rmtree(copy)
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="conveyor-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    csv = work / "taxi.csv"
    make_csv(args.rows, csv)
    conveyor = [sys.executable, "-m", "conveyor"]
    timed([*conveyor, "init", "--csv", str(csv), "--target", "fare_amount", "--timestamp", "tpep_pickup_datetime",
           "--drop", "total_amount", "--drop", "tpep_dropoff_datetime", "--name", "taxi-scale", "--force"], work)
    seconds, peak, _ = timed([*conveyor, "run", "--no-search"], work)
    runs = sorted((work / ".conveyor" / "runs").glob("*.json"))
    stages = json.loads(runs[-1].read_text())["stages"]
    m_seconds, m_peak, out = timed([sys.executable, "-c", _MATERIALIZE, str(work)], work)
    feast_seconds = json.loads(out.strip().splitlines()[-1])["seconds"]

    print(f"\n{args.rows:,} rows ({csv.stat().st_size / 1e6:.0f} MB CSV), {work}\n")
    print(f"{'step':<34}{'seconds':>10}")
    for stage in stages:
        print(f"{'conveyor ' + stage['stage']:<34}{stage.get('seconds', 0):>10.1f}")
    print(f"{'conveyor run (whole process)':<34}{seconds:>10.1f}   peak RSS {peak:,.0f} MiB")
    print(f"{'feast materialize, same rows':<34}{feast_seconds:>10.1f}   peak RSS {m_peak:,.0f} MiB "
          f"(process {m_seconds:.1f} s)")
    record = json.loads((work / ".conveyor" / "stages" / "features.json").read_text())
    online = record["artifact"]["result"]["online_write_seconds"]
    print(f"\nonline write of {args.rows:,} entities: conveyor {online:.1f} s (row store, bulk) vs "
          f"feast materialize {feast_seconds:.1f} s (built-in SQLite store): "
          f"{feast_seconds / online if online else float('nan'):.1f}x faster")


if __name__ == "__main__":
    main()
