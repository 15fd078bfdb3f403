"""Drift benchmark: Conveyor's drift check against Evidently's `DataDriftPreset`, same data, one run.

Synthetic data with known truth: 15 numeric and 5 categorical columns per side, of which
four drift (a 1.3x spread, a 0.3 std mean shift, a pure shape change to a bimodal
distribution with the same mean and std, and a categorical column whose level shares are
reversed); the other 16 are drawn from the same distributions on both sides (normal,
lognormal, integer-valued, zero-inflated, with nulls, categorical). Each tool runs in a
process of its own, on data it generates from the same seed, so that its peak memory above
the data is its own:

    .venv/bin/python benchmarks/drift.py                       # 10k and 1M rows per side
    .venv/bin/python benchmarks/drift.py --rows 10000          # one size
    .venv/bin/python benchmarks/drift.py --evidently-python PATH/bin/python

Evidently lives in a virtualenv of its own (its pins clash with ours), by default
`.evidently-venv/` at the repository root:

    python -m venv .evidently-venv && .evidently-venv/bin/pip install 'evidently==0.7.23' 'pandas<3'

Timed: Conveyor's `compute_drift` (every rule, the verdict) and Evidently's `Report.run`;
neither renders HTML inside the timing. Conveyor's HTML report is rendered and measured
afterwards. Peak RSS above the data is the process's high-water mark during the check,
reset (``/proc/self/clear_refs``) once the data is built.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EVIDENTLY = ROOT / ".evidently-venv" / "bin" / "python"
LEVELS = np.array([f"L{i}" for i in range(8)], dtype=object)
LEVEL_P = np.array([0.3, 0.2, 0.15, 0.12, 0.09, 0.07, 0.04, 0.03])
DRIFTED = ["spread_x1.3", "shift_0.3std", "bimodal_shape", "cat_reversed"]
TARGETS = {"seconds_1m": 2.0, "ratio_1m": 30.0, "seconds_10k": 0.1, "peak_mb": 512.0, "html_kb": 500.0}


# --------------------------------------------------------------------------- #
# the data (numpy only: the Evidently virtualenv runs this module too)
# --------------------------------------------------------------------------- #
def _side(n: int, rng: np.random.Generator, drifted: bool) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    cols["spread_x1.3"] = rng.normal(10.0, 2.0 * (1.3 if drifted else 1.0), n)
    cols["shift_0.3std"] = rng.normal(0.3 if drifted else 0.0, 1.0, n)
    if drifted:  # same mean and std, two modes
        cols["bimodal_shape"] = np.where(rng.random(n) < 0.5, -np.sqrt(0.75), np.sqrt(0.75)) + rng.normal(0, 0.5, n)
    else:
        cols["bimodal_shape"] = rng.normal(0.0, 1.0, n)
    for i in range(4):
        cols[f"normal_{i}"] = rng.normal(i, 1.0 + i, n)
    for i in range(2):
        cols[f"lognormal_{i}"] = rng.lognormal(0.0, 0.5 + i / 2, n)
    cols["hour"] = rng.integers(0, 24, n).astype(float)
    cols["count"] = rng.poisson(3.0, n).astype(float)
    cols["zero_inflated"] = np.where(rng.random(n) < 0.3, 0.0, rng.exponential(2.0, n))
    gappy = rng.normal(5.0, 1.0, n)
    gappy[rng.random(n) < 0.1] = np.nan
    cols["with_nulls"] = gappy
    cols["uniform"] = rng.uniform(-1.0, 1.0, n)
    cols["cat_reversed"] = rng.choice(LEVELS, n, p=LEVEL_P[::-1] if drifted else LEVEL_P)
    for i in range(4):
        cols[f"cat_{i}"] = rng.choice(LEVELS[: 3 + i], n, p=np.full(3 + i, 1 / (3 + i)))
    return cols


def make_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[str], list[str]]:
    """(reference, current, numeric names, categorical names): 20 columns, 4 of them drifted."""
    reference = _side(n, np.random.default_rng(seed), drifted=False)
    current = _side(n, np.random.default_rng(seed + 1), drifted=True)
    categorical = [c for c in reference if c.startswith("cat_")]
    numeric = [c for c in reference if c not in categorical]
    return reference, current, numeric, categorical


# --------------------------------------------------------------------------- #
# workers: one tool, one size, one process
# --------------------------------------------------------------------------- #
def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    except OSError:
        pass


def _timed(run: Any) -> tuple[Any, float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - started, time.process_time() - cpu


def worker_conveyor(n: int, seed: int) -> dict[str, Any]:
    from conveyor.stages.monitoring._drift import compute_drift
    from conveyor.stages.monitoring._report import render_drift_html

    reference, current, numeric, categorical = make_data(n, seed)
    warm = 60_000  # imports (scipy, and Polars and pandas for large columns) happen here, not in the timing
    compute_drift({"x": reference["uniform"][:warm], "c": reference["cat_0"][:warm]},
                  {"x": current["uniform"][:warm], "c": current["cat_0"][:warm]}, numeric=["x"], categorical=["c"])
    data_mb = _status_mb("VmRSS")
    _reset_peak()
    report, seconds, cpu = _timed(lambda: compute_drift(reference, current, numeric=numeric, categorical=categorical))
    peak = _status_mb("VmHWM") - data_mb
    page, html_seconds, _ = _timed(lambda: render_drift_html(report, reference, current, title="benchmark"))
    return {
        "tool": "conveyor", "rows": n, "seconds": seconds, "cpu": cpu, "data_mb": data_mb, "peak_mb": peak,
        "detected": [f.name for f in report.features if f.drifted], "verdict": report.verdict,
        "rules": {f.name: [r.rule for r in f.rules] for f in report.features if f.drifted},
        "html_kb": len(page.encode()) / 1024, "html_seconds": html_seconds,
    }


def worker_evidently(n: int, seed: int) -> dict[str, Any]:
    import evidently
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference, current, numeric, categorical = make_data(n, seed)
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    ref = Dataset.from_pandas(pd.DataFrame(reference), data_definition=definition)
    cur = Dataset.from_pandas(pd.DataFrame(current), data_definition=definition)
    del reference, current
    data_mb = _status_mb("VmRSS")
    _reset_peak()
    snapshot, seconds, cpu = _timed(lambda: Report([DataDriftPreset()]).run(cur, ref))
    peak = _status_mb("VmHWM") - data_mb
    detected = []
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        value, threshold = float(metric["value"]), float(config["threshold"])
        if (value < threshold) if "p_value" in config["method"] else (value >= threshold):
            detected.append(config["column"])
    return {"tool": f"evidently {evidently.__version__}", "rows": n, "seconds": seconds, "cpu": cpu,
            "data_mb": data_mb, "peak_mb": peak, "detected": detected}


# --------------------------------------------------------------------------- #
# the run
# --------------------------------------------------------------------------- #
def _run_worker(python: str, tool: str, n: int, seed: int) -> dict[str, Any] | None:
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([python, __file__, "--worker", tool, "--rows", str(n), "--seed", str(seed)],
                          capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        print(f"{tool} at {n:,} rows failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def _table(results: list[dict[str, Any]]) -> None:
    header = ("rows/side", "tool", "compute s", "CPU s", "peak MB above data", "found (of 4)", "false alarms",
              "vs conveyor", "targets")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    by_size: dict[int, dict[str, dict[str, Any]]] = {}
    for r in results:
        by_size.setdefault(r["rows"], {})["conveyor" if r["tool"] == "conveyor" else "evidently"] = r
    for n, tools in sorted(by_size.items()):
        ours = tools.get("conveyor")
        for key in ("conveyor", "evidently"):
            r = tools.get(key)
            if r is None:
                continue
            found = sum(c in r["detected"] for c in DRIFTED)
            false = [c for c in r["detected"] if c not in DRIFTED]
            ratio, targets = "-", ""
            if key == "evidently" and ours is not None:
                ratio = f"{r['seconds'] / ours['seconds']:.1f}x ({r['cpu'] / ours['cpu']:.1f}x CPU)"
            if key == "conveyor":
                limit = TARGETS["seconds_1m"] if n >= 1_000_000 else TARGETS["seconds_10k"] if n <= 10_000 else None
                marks = []
                if limit is not None:
                    marks.append(f"<= {limit:g} s {_mark(r['seconds'] <= limit)}")
                if n >= 1_000_000 and "evidently" in tools:
                    speedup = tools["evidently"]["seconds"] / r["seconds"]
                    marks.append(f">= {TARGETS['ratio_1m']:g}x: {speedup:.1f}x {_mark(speedup >= TARGETS['ratio_1m'])}")
                marks.append(f"peak <= {TARGETS['peak_mb']:g} MB {_mark(r['peak_mb'] <= TARGETS['peak_mb'])}")
                marks.append(f"HTML {r['html_kb']:.0f} KB < {TARGETS['html_kb']:g} {_mark(r['html_kb'] < TARGETS['html_kb'])}")
                targets = "; ".join(marks)
            print(f"| {n:,} | {r['tool']} | {r['seconds']:.3f} | {r['cpu']:.2f} | {r['peak_mb']:.0f} | {found} | "
                  f"{len(false)}{' ' + ','.join(false) if false else ''} | {ratio} | {targets} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="rows per side (repeatable; default 10k and 1M)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--evidently-python", default=os.environ.get("EVIDENTLY_PYTHON", str(DEFAULT_EVIDENTLY)))
    parser.add_argument("--worker", choices=["conveyor", "evidently"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = args.rows or [10_000, 1_000_000]
    if args.worker:
        work = worker_conveyor if args.worker == "conveyor" else worker_evidently
        print(json.dumps(work(sizes[0], args.seed)))
        return 0
    if not Path(args.evidently_python).exists():
        print(f"no Evidently interpreter at {args.evidently_python}: create it with\n"
              f"  python -m venv .evidently-venv && .evidently-venv/bin/pip install 'evidently==0.7.23' 'pandas<3'\n"
              "or pass --evidently-python", file=sys.stderr)
        return 2
    print(f"load average before: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    results: list[dict[str, Any]] = []
    failed = False
    for n in sizes:
        for tool, python in (("conveyor", sys.executable), ("evidently", args.evidently_python)):
            result = _run_worker(python, tool, n, args.seed)
            failed |= result is None
            if result is not None:
                results.append(result)
                print(f"  {result['tool']} {n:,} rows: {result['seconds']:.2f} s, found {sorted(result['detected'])}",
                      flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}\n")
    print(f"drifted columns (truth): {', '.join(DRIFTED)}; 16 unchanged\n")
    _table(results)
    for r in results:
        if r["tool"] == "conveyor":
            print(f"\nconveyor {r['rows']:,} rows: verdict {r['verdict']}; rules fired {r['rules']}; "
                  f"HTML report {r['html_kb']:.0f} KB rendered in {r['html_seconds']:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
