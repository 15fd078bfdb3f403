"""The champion's predict in this process: LightGBM (`Booster.predict`, `BoosterPredictor`) against its
trees compiled by lleaves (`serving.compiled`), on random rows of the project's CSV.

Loads `@champion` of a project where `conveyor run` was done, compiles each of its boosters into a
temporary cache (the compile's wall and CPU time), loads them again from that cache (what a second
worker or a restart does), then times the model's predict of `--rows` random rows (encoded by the
model's own encoder, as serving hands them over) `--repeats` times with each predictor, and the
largest difference between them, relative to the value.

    .venv/bin/python benchmarks/compiled_predict.py --workspace DIR [--csv FILE] [--rows 100] [--repeats 300] [--cache DIR]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

EXAMPLE_CSV = Path(__file__).resolve().parents[1] / "examples" / "bike-sharing" / "bike_sharing_hourly.csv"


def cpu_s() -> float:
    """CPU seconds of this process and its finished children (the compile runs in one)."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def timed_ms(call: Any, matrices: list[np.ndarray]) -> tuple[float, float]:
    """Median and p99 of one call per matrix, ms (after one warm-up call)."""
    call(matrices[0])
    seconds = []
    for matrix in matrices:
        start = time.perf_counter()
        call(matrix)
        seconds.append(time.perf_counter() - start)
    seconds.sort()
    return statistics.median(seconds) * 1000, seconds[int(0.99 * (len(seconds) - 1))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True, help="a project folder where `conveyor run` was done")
    parser.add_argument("--csv", type=Path, default=EXAMPLE_CSV, help="rows to predict (default: the bike example's)")
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--cache", type=Path, help="a cache folder to keep between runs (default: a temporary one)")
    args = parser.parse_args()

    from conveyor.runner import load_project
    from conveyor.stages.training import load_champion
    from conveyor.stages.training._compiled import compile_booster

    config, workspace = load_project(args.workspace)
    champion = load_champion(config, workspace, threads=1)
    model = champion.model
    boosters = model.boosters()
    trees = [b.num_trees() for b in boosters]
    print(f"{champion.name} v{champion.version}: {len(boosters)} booster(s), trees {trees}, {len(model.features)} features")

    frame = pd.read_csv(args.csv)
    rng = np.random.default_rng(0)
    matrices = []
    for _ in range(args.repeats):
        picked = frame.iloc[rng.choice(len(frame), args.rows, replace=False)]
        matrices.append(np.ascontiguousarray(model.encoder.transform(picked[model.features]), dtype=np.float64))

    predict = model._predict if model.task == "regression" else model._predict_proba
    lightgbm = [np.asarray(predict(m)) for m in matrices]  # LightGBM's, through BoosterPredictor
    booster_ms = timed_ms(lambda m: [b.predict(m, num_threads=1) for b in boosters], matrices)
    predictor_ms = timed_ms(predict, matrices)  # the model's own path: one BoosterPredictor per booster

    with tempfile.TemporaryDirectory(prefix="conveyor-compiled-") as temporary:
        cache = args.cache or temporary
        wall, cpu = time.perf_counter(), cpu_s()
        compiled = [compile_booster(b, Path(cache)) for b in boosters]
        wall, cpu = time.perf_counter() - wall, cpu_s() - cpu
        fresh = sum(f for _, f in compiled)
        print(f"compile: {wall:.1f} s wall, {cpu:.1f} s CPU (includes the check on probe rows; "
              f"{fresh} of {len(boosters)} compiled, the rest from the cache)")
        load = time.perf_counter()
        again = [compile_booster(b, Path(cache)) for b in boosters]
        load = time.perf_counter() - load
        assert not any(fresh for _, fresh in again), "the second load compiled"
        print(f"load from the cache: {load * 1000:.0f} ms for {len(boosters)} booster(s)")
        for booster, (predictor, _) in zip(boosters, compiled, strict=True):
            model.use_predictor(booster, predictor)
        answers = [np.asarray(predict(m)) for m in matrices]
        compiled_ms = timed_ms(predict, matrices)

    gap = max(float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)))) for a, b in zip(answers, lightgbm, strict=True))
    print(f"{args.rows} random rows, {args.repeats} calls, one thread:")
    print(f"  Booster.predict (every booster)       median {booster_ms[0]:.3f} ms  p99 {booster_ms[1]:.3f} ms")
    print(f"  model predict, BoosterPredictor       median {predictor_ms[0]:.3f} ms  p99 {predictor_ms[1]:.3f} ms")
    print(f"  model predict, compiled trees         median {compiled_ms[0]:.3f} ms  p99 {compiled_ms[1]:.3f} ms")
    print(f"  largest difference, relative: {gap:.2e}")


if __name__ == "__main__":
    main()
