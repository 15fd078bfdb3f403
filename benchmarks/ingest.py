"""Ingest + prepare against a plain `pandas.read_csv` of the same file: seconds and peak RSS.

    python benchmarks/ingest.py                 # 100k and 1M rows
    python benchmarks/ingest.py --rows 10000000  # one size, e.g. 10M rows (~1 GB)

The file is made in a temporary folder by repeating the rows of
tests/data/nyc_taxi_trips.csv (or `--source`); it is never kept. Every measurement runs in a
fresh process (started by a fresh wrapper, so `getrusage(RUSAGE_CHILDREN)` sees only that one
child); the time is measured inside the child, after its imports. Conveyor ingest + prepare
(what the targets compare with `pandas.read_csv`), pandas and Polars take turns, `--repeat`
rounds (default 3); each time shown is the median of its rounds and each RSS the largest, so
a burst of load from elsewhere on the machine lands on one round of one tool, not on the
ratio. Then, once, another process runs ingest + prepare followed by the `eda` stage (the HTML
report with its plots).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT / "tests" / "data" / "nyc_taxi_trips.csv"

CONVEYOR = """
import shutil, sys, time
from pathlib import Path
from conveyor.core import Workspace, load_config
from conveyor.runner import run_pipeline
import numpy, polars  # noqa: E401, F401  (imported before the clock starts, as pandas and numpy are in the baseline)
root = Path(sys.argv[1])
shutil.rmtree(root / "data", ignore_errors=True)  # no snapshot from an earlier round
workspace = Workspace.at(root)
config = load_config(workspace.config_file)
start = time.perf_counter()
run_pipeline(config, workspace, only="ingest", force=True)
run_pipeline(config, workspace, only="prepare", force=True)
prepared = time.perf_counter() - start
if len(sys.argv) > 2:
    start = time.perf_counter()
    run_pipeline(config, workspace, only="eda", force=True)
    print(time.perf_counter() - start, prepared)
else:
    print(prepared)
"""

PANDAS = """
import sys, time
import pandas as pd
start = time.perf_counter()
frame = pd.read_csv(sys.argv[1])
print(time.perf_counter() - start)
"""

POLARS = """
import sys, time
import polars as pl
start = time.perf_counter()
frame = pl.read_csv(sys.argv[1], infer_schema_length=10000)
print(time.perf_counter() - start)
"""

WRAPPER = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": done.returncode, "out": done.stdout, "err": done.stderr[-2000:], "rss_kb": rss_kb}))
"""


def measure(code: str, *args: str) -> tuple[float, float, float]:
    """(last number the child printed, its first number when it printed two, peak RSS of the child in MiB)."""
    wrapper = subprocess.run(
        [sys.executable, "-c", WRAPPER, sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    result = json.loads(wrapper.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"benchmark child failed:\n{result['err']}")
    numbers = [float(x) for x in result["out"].strip().splitlines()[-1].split()]
    return numbers[-1], (numbers[0] if len(numbers) > 1 else 0.0), result["rss_kb"] / 1024


def _summary(rounds: list[tuple[float, float]]) -> tuple[float, float]:
    """(median seconds, largest peak RSS) of one tool's rounds."""
    return statistics.median(s for s, _ in rounds), max(mb for _, mb in rounds)


def make_file(source: Path, rows: int, out: Path) -> int:
    lines = source.read_bytes().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    block = b"".join(body)
    with out.open("wb") as handle:
        handle.write(header)
        written = 0
        while written + len(body) <= rows:
            handle.write(block)
            written += len(body)
        handle.write(b"".join(body[: rows - written]))
    return out.stat().st_size


def make_project(folder: Path, csv_file: Path, source: Path) -> None:
    """conveyor.yaml from `conveyor init` on a sample of the source (not timed)."""
    sample = folder / "sample.csv"
    shutil.copy(source, sample)
    subprocess.run(
        [sys.executable, "-m", "conveyor", "init", "--csv", str(sample), "--target", "fare_amount",
         "--drop", "total_amount", "-o", str(folder / "conveyor.yaml"), "--force"],
        check=True, capture_output=True, text=True,
    )
    text = (folder / "conveyor.yaml").read_text(encoding="utf-8")
    (folder / "conveyor.yaml").write_text(text.replace("path: sample.csv", f"path: {csv_file.name}"), encoding="utf-8")
    sample.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="rows of the generated file (repeatable)")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--repeat", type=int, default=3, help="rounds per size (median time, largest RSS)")
    args = parser.parse_args()
    sizes = args.rows or [100_000, 1_000_000]
    print(f"{'rows':>10} {'MB':>7} | {'conveyor ingest+prepare':>23} | {'eda stage':>9} | {'pandas.read_csv':>17} | "
          f"{'polars.read_csv':>15} | {'conveyor / pandas':>17}")
    print(f"{'':>10} {'':>7} | {'s':>7} {'peak RSS MiB':>15} | {'s':>9} | {'s':>5} {'peak RSS MiB':>11} | {'s':>15} | "
          f"{'time':>8} {'RSS':>8}")
    for rows in sizes:
        with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
            folder = Path(tmp)
            csv_file = folder / "taxi.csv"
            size = make_file(args.source, rows, csv_file)
            make_project(folder, csv_file, args.source)
            rounds: dict[str, list[tuple[float, float]]] = {"conveyor": [], "pandas": [], "polars": []}
            for _ in range(args.repeat):
                for name, code, arg in (("conveyor", CONVEYOR, folder), ("pandas", PANDAS, csv_file),
                                        ("polars", POLARS, csv_file)):
                    seconds, _, mb = measure(code, str(arg))
                    rounds[name].append((seconds, mb))
            conv_s, conv_mb = _summary(rounds["conveyor"])
            pandas_s, pandas_mb = _summary(rounds["pandas"])
            polars_s, _ = _summary(rounds["polars"])
            _, eda_s, _ = measure(CONVEYOR, str(folder), "eda")
            print(f"{rows:>10,} {size / 1e6:>7.1f} | {conv_s:>7.2f} {conv_mb:>15.0f} | {eda_s:>9.2f} | {pandas_s:>5.2f} "
                  f"{pandas_mb:>11.0f} | {polars_s:>15.2f} | {conv_s / pandas_s:>7.2f}x {conv_mb / pandas_mb:>7.2f}x")
            sys.stdout.flush()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"(measured {started}; each number from a fresh process; times: median of {args.repeat} interleaved rounds)")


if __name__ == "__main__":
    main()
