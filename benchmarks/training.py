"""Training benchmark: Conveyor's `train` (search + fits) against a plain LightGBM fit, on seeds.

For each shipped dataset it runs `conveyor init` (untouched: only the leaks init proposes are
dropped) and `conveyor run` in a temporary folder, in this process, then fits a plain
`lightgbm.LGBMRegressor()` / `LGBMClassifier()` (library defaults, `n_jobs=1`) on the same
training split and scores it on the same test split. It prints, per dataset and seed: the
search and final-fit seconds per candidate, trials (pruned), what the search bought (CV gain of
the chosen parameters over the untuned ones), the test metric of each, and the plain fit next to
them; then, per dataset, whether every seed's champion reached the floor (`FLOORS`). The load
average is printed beside the figures: the machine may be shared.

    .venv/bin/python benchmarks/training.py                     # default budget (conveyor.yaml defaults)
    .venv/bin/python benchmarks/training.py --trials 8 --timeout 40 --datasets bike
    .venv/bin/python benchmarks/training.py --seeds 42 7 123     # every seed must reach the floor
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATASETS: dict[str, tuple[Path, str, list[str]]] = {
    "bike": (ROOT / "examples" / "bike-sharing" / "bike_sharing_hourly.csv", "cnt", []),
    "credit": (ROOT / "tests" / "data" / "credit_card_default.csv", "default.payment.next.month", ["ID"]),
    "taxi": (ROOT / "examples" / "nyc-taxi" / "nyc_taxi_trips.csv", "fare_amount", []),
    "house": (ROOT / "tests" / "data" / "house_prices.csv", "sale_price", ["house_id"]),
}
FLOORS = {"bike": 0.916, "credit": 0.785, "taxi": 0.92, "house": None}
"""The held-out primary metric (r2, ROC AUC) every seed's champion must reach; None: LightGBM with
default parameters fitted on log(target), on the same split (a right-skewed positive target)."""
SEARCH_SECONDS = {"bike": 15.0}
"""The longest the whole search (all candidates) may take, on a quiet 2-core machine."""


def _plain_lightgbm(config: Any, training_set: Any, metric: str, log: bool = False) -> tuple[float, float]:
    """Seconds and test metric of LightGBM with library defaults (n_jobs=1) on the same split
    (`log`: fitted on log1p(target), predictions turned back with expm1)."""
    import lightgbm as lgb
    import numpy as np

    from conveyor.core.cleaning import MissingValues
    from conveyor.stages.training._encoder import FeatureEncoder
    from conveyor.stages.training._metrics import class_index
    from conveyor.stages.training._search import output_scores
    from conveyor.stages.training._train import load_split

    schema = config.schema
    train_df, test_df, _ = load_split(config, training_set)
    encoder = FeatureEncoder(schema.numeric(), schema.categorical(), MissingValues(config.cleaning.null_values)).fit(train_df)
    x_train, x_test = encoder.transform(train_df), encoder.transform(test_df)
    if schema.task == "regression":
        y_train, y_test = train_df[schema.target].to_numpy(dtype=float), test_df[schema.target].to_numpy(dtype=float)
        model: Any = lgb.LGBMRegressor(n_jobs=1, verbose=-1)
    else:
        classes = sorted(train_df[schema.target].dropna().unique().tolist(), key=str)
        y_train, y_test = class_index(train_df[schema.target], classes), class_index(test_df[schema.target], classes)
        model = lgb.LGBMClassifier(n_jobs=1, verbose=-1)
    started = time.perf_counter()
    model.fit(x_train, np.log1p(y_train) if log else y_train, categorical_feature=encoder.categorical_indices or "auto")
    seconds = time.perf_counter() - started
    output = model.predict(x_test) if schema.task == "regression" else model.predict_proba(x_test)
    if log:
        output = np.expm1(output)
    return seconds, output_scores(schema.task, y_test, output)[metric]


def bench(name: str, folder: Path, trials: int | None, timeout: float | None, seed: int | None = None
          ) -> tuple[list[tuple[str, ...]], float, float, float]:
    """The rows of one dataset and seed, the champion's test metric, the whole search's seconds and the floor."""
    import yaml

    from conveyor.runner import init_project, load_project, run_pipeline

    csv, target, entity = DATASETS[name]
    shutil.copy(csv, folder / csv.name)
    init_project(folder / csv.name, target=target, output=folder / "conveyor.yaml", entity=entity[0] if entity else None)
    if trials is not None or timeout is not None or seed is not None:
        data = yaml.safe_load((folder / "conveyor.yaml").read_text())
        search = data["training"]["search"]
        search.update({k: v for k, v in (("trials", trials), ("budget_s", timeout)) if v is not None})
        if seed is not None:
            data["training"]["seed"] = seed
        (folder / "conveyor.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    config, workspace = load_project(folder)
    started = time.perf_counter()
    artifacts = run_pipeline(config, workspace)
    total = time.perf_counter() - started
    result = artifacts["train"].result
    metric = result.primary_metric
    rows = []
    shown_seed = str(config.training.seed)
    load = f"{os.getloadavg()[0]:.1f}"
    for cand_name, cand in result.candidates.items():
        gain = "-" if cand.cv_gain is None else f"{cand.cv_gain:+.4f}"
        chosen = " *" if cand_name == result.best else ""
        rows.append((name, shown_seed, cand_name + chosen, f"{cand.search_seconds:.1f}", f"{cand.fit_seconds:.2f}",
                     f"{cand.trials} ({cand.pruned}), {cand.stopped_by}" if cand.trials else "-", gain,
                     f"{cand.metrics.get(metric, float('nan')):.4f}", load))
    seconds, score = _plain_lightgbm(config, artifacts["dataset"], metric)
    rows.append((name, shown_seed, "plain LightGBM (defaults, 1 thread)", "-", f"{seconds:.2f}", "-", "-",
                 f"{score:.4f}", load))
    floor = FLOORS[name]
    if floor is None:
        seconds, floor = _plain_lightgbm(config, artifacts["dataset"], metric, log=True)
        rows.append((name, shown_seed, "plain LightGBM on log(target) (defaults)", "-", f"{seconds:.2f}", "-", "-",
                     f"{floor:.4f}", load))
    search_seconds = sum(c.search_seconds for c in result.candidates.values())
    print(f"{name} seed {shown_seed}: {result.split} split {result.train_rows}/{result.test_rows}, test {metric}; "
          f"{result.cv}; {result.threads}; whole `conveyor run` {total:.0f}s; search {search_seconds:.1f}s ended by "
          f"{result.search_stopped_by}; load average {os.getloadavg()}", file=sys.stderr)
    return rows, result.candidates[result.best].metrics[metric], search_seconds, floor


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=list(DATASETS))
    parser.add_argument("--trials", type=int, default=None, help="training.search.trials (default: the config default)")
    parser.add_argument("--timeout", type=float, default=None, help="training.search.budget_s")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 123],
                        help="training.seed values: split (random), folds, sampler, models")
    args = parser.parse_args()
    header = ("dataset", "seed", "candidate (* champion)", "search s", "fit s", "trials (pruned), ended by",
              "CV gain over untuned", "test metric", "load avg")
    rows: list[tuple[str, ...]] = []
    verdicts: list[str] = []
    for name in args.datasets:
        scores, searches, short = [], [], []
        for seed in args.seeds:
            with tempfile.TemporaryDirectory(prefix=f"conveyor-bench-{name}-") as tmp:
                found, score, seconds, floor = bench(name, Path(tmp), args.trials, args.timeout, seed)
            rows += found
            scores.append(score)
            searches.append(seconds)
            short += [f"seed {seed}: {score:.4f} < {floor:.4f}"] if score < floor else []
        shown = FLOORS[name] if FLOORS[name] is not None else "LightGBM on log(target), same split"
        verdict = f"{name}: champion {min(scores):.4f}-{max(scores):.4f} over seeds {args.seeds}, floor {shown}: " + (
            "every seed at or above" if not short else "BELOW: " + ", ".join(short))
        verdict += f"; search {min(searches):.1f}-{max(searches):.1f}s"
        if name in SEARCH_SECONDS:
            verdict += f" (target <= {SEARCH_SECONDS[name]:.0f}s on a quiet machine)"
        verdicts.append(verdict)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
    for verdict in verdicts:
        print(verdict)


if __name__ == "__main__":
    main()
