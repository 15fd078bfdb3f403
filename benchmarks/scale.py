"""A large taxi-style CSV through the whole `conveyor run`: seconds per stage and peak memory.

    .venv/bin/python benchmarks/scale.py                 # 1,000,000 rows
    .venv/bin/python benchmarks/scale.py --rows 100000
    .venv/bin/python benchmarks/scale.py --search        # `conveyor run` with the default search
    .venv/bin/python benchmarks/scale.py --engine polars spark --rows 1000000 10000000
    .venv/bin/python benchmarks/scale.py --engine spark --rows 50000000 --format parquet --driver-memory 4g

The file is made from the shipped NYC taxi sample (tests/data/nyc_taxi_trips.csv): its rows
resampled with their pickup times spread over the month and small noise on the numbers, in a
temporary folder (never committed). Each measured command runs in a fresh process; its peak
RSS is that process's VmHWM, polled from /proc (never `ru_maxrss`, which a child inherits from
this script's own RSS at the fork). Beside Conveyor's online write, the same rows go through
Feast's own in-process `FeatureStore.materialize`, which is what a user would otherwise run.

With `--engine`, the engines are compared instead, in one table: for each size, input format
(one CSV; Parquet: a folder of `--parts` parts on Spark, one file on Polars, whose engine reads
one file) and engine, `conveyor run --no-search` in a fresh process, its stage seconds (ingest,
prepare, eda, features, dataset, train: the run record) and the peak RSS (VmHWM, polled from
/proc) of the Python driver, of the JVM (Spark's driver, and on a local master its executors)
and of Spark's Python workers (the sum of their peaks); then Spark's overhead over Polars per
size, JVM start and session included. The results: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "nyc_taxi_trips.csv"


def make_csv(rows: int, out: Path, seed: int = 7, chunk: int = 2_000_000) -> None:
    """`rows` taxi-style rows, written `chunk` rows at a time (50M rows would not fit in memory at once)."""
    import numpy as np
    import polars as pl

    base = pl.read_csv(SAMPLE, infer_schema_length=0).drop("ehail_fee", "trip_type")
    rng = np.random.default_rng(seed)
    start = np.datetime64("2019-03-01T00:00:00")
    fmt = "%Y-%m-%d %H:%M:%S"
    with out.open("wb") as sink:
        for first in range(0, rows, chunk):
            n = min(chunk, rows - first)
            frame = base[rng.integers(0, base.height, n).tolist()]
            offsets = rng.integers(0, 31 * 24 * 3600, n).astype("timedelta64[s]")
            pickup = (start + offsets).astype("datetime64[us]")
            duration = rng.integers(60, 3600, n).astype("timedelta64[s]").astype("timedelta64[us]")
            frame = frame.with_columns(
                pl.Series("tpep_pickup_datetime", pickup).dt.strftime(fmt),
                pl.Series("tpep_dropoff_datetime", pickup + duration).dt.strftime(fmt),
            )
            noise = pl.Series(rng.normal(1.0, 0.02, n))
            for column in ("trip_distance", "fare_amount", "tip_amount"):
                frame = frame.with_columns(
                    (pl.col(column).cast(pl.Float64) * noise).round(2).cast(pl.String).alias(column))
            frame.write_csv(sink, include_header=first == 0)


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """Seconds, peak RSS (MiB, VmHWM polled from /proc) of that one child process, and its stdout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, text=True)
        peak = TreePeak(child.pid)
        _, status, _ = os.wait4(child.pid, 0)
        driver = peak.stop()["driver"]
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout = out.read()
        if child.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{stdout}\n{err.read()}")
    return seconds, driver, stdout


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


def make_parquet(csv: Path, out: Path, parts: int) -> None:
    """The CSV's rows (as text, the way a lake's raw drop holds them) as one Parquet file or a folder of parts."""
    import polars as pl

    lazy = pl.scan_csv(csv, infer_schema=False)
    if parts == 1:
        lazy.sink_parquet(out)
        return
    out.mkdir()
    rows = lazy.select(pl.len()).collect().item()
    step = -(-rows // parts)
    for index in range(parts):
        lazy.slice(index * step, step).sink_parquet(out / f"part-{index:05d}.parquet")


class TreePeak:
    """Peak RSS (VmHWM) of each process of a tree, read from /proc while it runs: the Python driver,
    the JVM (Spark's driver and, on a local master, its executors), and the Python workers."""

    def __init__(self, root: int) -> None:
        import threading

        self.root = root
        self.peaks: dict[int, tuple[str, int]] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                parents[int(entry.name)] = int(fields[1])
        tree, frontier = [self.root], [self.root]
        while frontier:
            frontier = [pid for pid, parent in parents.items() if parent in frontier]
            tree += frontier
        return tree

    def _poll(self) -> None:
        while not self._done.wait(0.25):
            for pid in self._tree():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                    name = Path(f"/proc/{pid}/comm").read_text().strip()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        kib = int(line.split()[1])
                        if kib > self.peaks.get(pid, ("", 0))[1]:
                            self.peaks[pid] = (name, kib)

    def stop(self) -> dict[str, float]:
        """MiB: `driver` (the Python process), `jvm`, `workers` (the sum of the other processes' peaks)."""
        self._done.set()
        self._thread.join()
        out = {"driver": 0.0, "jvm": 0.0, "workers": 0.0}
        for pid, (name, kib) in self.peaks.items():
            key = "driver" if pid == self.root else "jvm" if name == "java" else "workers"
            out[key] = max(out[key], kib / 1024) if key != "workers" else out[key] + kib / 1024
        return out


class Failed(Exception):
    """A measured command that exited non-zero: its status, its last stderr line, and its peaks so far."""

    def __init__(self, cmd: list[str], status: int, stdout: str, stderr: str, seconds: float,
                 peaks: dict[str, float]) -> None:
        lines = [line for line in stderr.splitlines() if line.strip()] or ["(no output)"]
        super().__init__(f"{' '.join(cmd)} failed (exit {status}):\n{stdout[-3000:]}\n{stderr[-3000:]}")
        self.status, self.line, self.seconds, self.peaks = status, lines[-1], seconds, peaks


def run_measured(cmd: list[str], cwd: Path) -> tuple[float, dict[str, float]]:
    """Seconds and the process tree's peaks (MiB) of one command in a fresh process (`Failed` if it fails)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, text=True)
        peak = TreePeak(child.pid)
        _, status, _ = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        # the peaks polled from /proc only: a child's `ru_maxrss` starts from its parent's RSS at the
        # fork (Linux keeps the pre-exec high-water mark), so after making 10M rows here it read 4.4 GB
        peaks = peak.stop()
        if os.waitstatus_to_exitcode(status) != 0:
            out.seek(0)
            err.seek(0)
            raise Failed(cmd, os.waitstatus_to_exitcode(status), out.read(), err.read(), seconds, peaks)
    return seconds, peaks


STAGES = ("ingest", "prepare", "eda", "features", "dataset", "train")


def measure(work: Path, csv: Path, rows: int, fmt: str, engine: str, args: argparse.Namespace) -> dict[str, Any]:
    """One `conveyor run --no-search` of the taxi-style rows, in one format, on one engine."""
    import yaml

    project = work / f"{engine}-{fmt}"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir()
    config = yaml.safe_load((work / "conveyor.yaml").read_text())
    if fmt == "csv":
        source = {**config["source"], "path": str(csv)}
    else:  # Spark reads a folder of parts; the Polars engine reads one file
        parquet = work / ("taxi-parts" if engine == "spark" else "taxi.parquet")
        if not parquet.exists():
            make_parquet(csv, parquet, args.parts if engine == "spark" else 1)
        source = {"kind": "parquet", "path": str(parquet)}
    config["source"] = source
    config["engine"] = engine
    if engine == "spark":
        conf: dict[str, Any] = {"spark.ui.enabled": False, "spark.driver.memory": args.driver_memory}
        if args.spark_port:
            conf |= {"spark.driver.port": args.spark_port, "spark.blockManager.port": args.spark_port + 40,
                     "spark.port.maxRetries": 30}
        config["spark"] = {"master": args.master, "conf": conf}
    (project / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    run = [sys.executable, "-m", "conveyor", "run", "-C", str(project), "--no-search"]
    failed = ""

    def recorded() -> dict[str, float]:
        runs = sorted((project / ".conveyor" / "runs").glob("*.json"))
        return {s["stage"]: s.get("seconds", 0.0) for s in json.loads(runs[-1].read_text())["stages"]} if runs else {}

    if not args.per_stage:
        try:
            seconds, peaks = run_measured(run, work)
        except Failed as exc:  # e.g. out of memory: a clear line is the result to report
            seconds, peaks, failed = exc.seconds, exc.peaks, f"exit {exc.status}: {exc.line}"
        stage_seconds = recorded()
    else:  # one fresh process per stage: which stage's driver (or JVM) holds the memory
        seconds, peaks, stage_seconds, stage_peaks = 0.0, {"driver": 0.0, "jvm": 0.0, "workers": 0.0}, {}, {}
        for stage in STAGES:
            try:
                took, stage_peaks[stage] = run_measured([*run, "--from", stage, "--to", stage], work)
            except Failed as exc:
                took, stage_peaks[stage], failed = exc.seconds, exc.peaks, f"{stage}: exit {exc.status}: {exc.line}"
            stage_seconds |= recorded()
            seconds += took
            peaks = {k: max(v, stage_peaks[stage][k]) for k, v in peaks.items()}
            print(f"    {stage:<9}{took:>8.1f} s  driver {stage_peaks[stage]['driver']:>7,.0f} MiB  "
                  f"JVM {stage_peaks[stage]['jvm']:>7,.0f} MiB  workers {stage_peaks[stage]['workers']:>7,.0f} MiB"
                  + (f"  FAILED {failed}" if failed else ""), flush=True)
            if failed:
                break
    shutil.rmtree(project, ignore_errors=True)
    return {"rows": rows, "format": fmt, "engine": engine, "seconds": seconds, **peaks, "failed": failed,
            **{s: stage_seconds.get(s, float("nan")) for s in STAGES}}


def print_table(results: list[dict[str, Any]]) -> None:
    head = f"{'rows':>11} {'input':<8}{'engine':<8}" + "".join(f"{s:>9}" for s in STAGES)
    print(head + f"{'run':>9}{'driver MiB':>12}{'JVM MiB':>10}{'workers':>9}")
    for r in results:
        print(f"{r['rows']:>11,} {r['format']:<8}{r['engine']:<8}" + "".join(f"{r[s]:>9.1f}" for s in STAGES)
              + f"{r['seconds']:>9.1f}{r['driver']:>12,.0f}{r['jvm']:>10,.0f}{r['workers']:>9,.0f}")
    for r in results:
        if r["failed"]:
            print(f"{r['rows']:,} {r['format']} {r['engine']} did not complete: {r['failed']}")
    for r in results:
        if r["engine"] == "spark" and r["rows"] >= 50_000_000:
            done = "completes" if not r["failed"] else f"does NOT complete ({r['failed']})"
            for what, mib in (("the conveyor (Python) driver", r["driver"]),
                              ("the JVM (Spark's driver; on a local master its executors too)", r["jvm"])):
                print(f"target, {r['rows']:,} rows on Spark ({done}): {what} peaks under 5 GB: "
                      f"{'met' if not r['failed'] and mib < 5 * 1024 else 'NOT met'} ({mib:,.0f} MiB)")
    for fmt in dict.fromkeys(r["format"] for r in results):
        by = {(r["rows"], r["engine"]): r for r in results if r["format"] == fmt}
        for rows in sorted({r for r, _ in by}):
            if (rows, "polars") in by and (rows, "spark") in by and not by[(rows, "polars")]["failed"]:
                p, s = by[(rows, "polars")], by[(rows, "spark")]
                stages = ", ".join(f"{st} {s[st] - p[st]:+.1f}" for st in STAGES)
                print(f"Spark's overhead at {rows:,} rows ({fmt}): {s['seconds'] - p['seconds']:+.1f} s for the run "
                      f"({s['seconds'] / p['seconds']:.1f}x Polars; JVM start and session included); per stage: {stages}")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def engines_main(args: argparse.Namespace, work: Path) -> None:
    conveyor = [sys.executable, "-m", "conveyor"]
    results = []
    print(f"load average before: {load_average()}", flush=True)
    for rows in args.rows:
        csv = work / f"taxi-{rows}.csv"
        if not (args.keep and csv.exists()):  # --keep: the same seed made it, reuse it
            make_csv(rows, csv)
        timed([*conveyor, "init", "--csv", str(csv), "--target", "fare_amount", "--timestamp", "tpep_pickup_datetime",
               "--drop", "total_amount", "--drop", "tpep_dropoff_datetime", "--name", "taxi-scale", "--force"], work)
        for fmt in args.format:
            for engine in args.engine:
                results.append(measure(work, csv, rows, fmt, engine, args))
                print(f"  {rows:,} {fmt} {engine}: {results[-1]['seconds']:.1f} s (load {load_average()})", flush=True)
        for leftover in (work / "taxi.parquet", work / "taxi-parts"):
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
        csv.unlink()
    print(f"\nconveyor run --no-search per engine (seconds per stage; peak RSS per process), "
          f"load average after: {load_average()}\n")
    print_table(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--search", action="store_true",
                        help="the single-engine run with the default search (else --no-search)")
    parser.add_argument("--engine", nargs="+", choices=("polars", "spark"),
                        help="compare the engines (one table: per size, format and engine, the stage seconds "
                             "and peak RSS); without it, the Polars run and Feast's materialize as before")
    parser.add_argument("--format", nargs="+", choices=("csv", "parquet"), default=["csv", "parquet"],
                        help="with --engine: the input as one CSV, and/or as Parquet (a folder of parts on Spark)")
    parser.add_argument("--parts", type=int, default=8, help="Parquet parts of the Spark input")
    parser.add_argument("--master", default="local[2]", help="spark.master of the Spark runs")
    parser.add_argument("--driver-memory", default="4g", help="spark.driver.memory of the Spark runs")
    parser.add_argument("--per-stage", action="store_true",
                        help="with --engine: each stage in its own fresh process (`run --from S --to S`), "
                             "printing each stage's peak RSS (driver, JVM, workers); the table's peaks are their maxima")
    parser.add_argument("--spark-port", type=int, help="the Spark driver's first port (else Spark's defaults)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="conveyor-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.engine:
        engines_main(args, work)
        return
    csv = work / "taxi.csv"
    make_csv(args.rows[0], csv)
    rows = args.rows[0]
    conveyor = [sys.executable, "-m", "conveyor"]
    timed([*conveyor, "init", "--csv", str(csv), "--target", "fare_amount", "--timestamp", "tpep_pickup_datetime",
           "--drop", "total_amount", "--drop", "tpep_dropoff_datetime", "--name", "taxi-scale", "--force"], work)
    seconds, peak, _ = timed([*conveyor, "run", *([] if args.search else ["--no-search"])], work)
    runs = sorted((work / ".conveyor" / "runs").glob("*.json"))
    stages = json.loads(runs[-1].read_text())["stages"]
    m_seconds, m_peak, out = timed([sys.executable, "-c", _MATERIALIZE, str(work)], work)
    feast_seconds = json.loads(out.strip().splitlines()[-1])["seconds"]

    print(f"\n{rows:,} rows ({csv.stat().st_size / 1e6:.0f} MB CSV), {work}\n")
    print(f"{'step':<34}{'seconds':>10}")
    for stage in stages:
        print(f"{'conveyor ' + stage['stage']:<34}{stage.get('seconds', 0):>10.1f}")
    how = "default search" if args.search else "--no-search"
    print(f"{'conveyor run (whole process, ' + how + ')':<34}{seconds:>10.1f}   peak RSS {peak:,.0f} MiB   "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'feast materialize, same rows':<34}{feast_seconds:>10.1f}   peak RSS {m_peak:,.0f} MiB "
          f"(process {m_seconds:.1f} s)")
    trained = json.loads((work / ".conveyor" / "stages" / "train.json").read_text())["artifact"]["result"]
    for name, candidate in trained["candidates"].items():
        score = candidate["metrics"].get(trained["primary_metric"])
        print(f"  {name:<9} test {trained['primary_metric']} {score:.4f}, fit {candidate['fit_seconds']:.1f} s, "
              f"search {candidate['search_seconds']:.1f} s ({candidate['trials']} trials)")
    for note in trained.get("notes", []):
        print(f"  note: {note}")
    record = json.loads((work / ".conveyor" / "stages" / "features.json").read_text())
    online = record["artifact"]["result"]["online_write_seconds"]
    print(f"\nonline write of {rows:,} entities: conveyor {online:.1f} s (row store, bulk) vs "
          f"feast materialize {feast_seconds:.1f} s (built-in SQLite store): "
          f"{feast_seconds / online if online else float('nan'):.1f}x faster")


if __name__ == "__main__":
    main()
