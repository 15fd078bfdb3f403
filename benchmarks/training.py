"""Training benchmark: Conveyor's `train` (search + fits) against a plain LightGBM fit.

For each shipped dataset it runs `conveyor init` (untouched: only the leaks init proposes are
dropped) and `conveyor run` in a temporary folder, in this process, then fits a plain
`lightgbm.LGBMRegressor()` / `LGBMClassifier()` (library defaults, `n_jobs=1`) on the same
training split and scores it on the same test split. It prints, per dataset: the search and
final-fit seconds per candidate, trials per second, MLflow logging overhead per trial, the
test metric of each, and the plain fit next to them.

    .venv/bin/python benchmarks/training.py                     # default budget (conveyor.yaml defaults)
    .venv/bin/python benchmarks/training.py --trials 8 --timeout 40 --datasets bike
    .venv/bin/python benchmarks/training.py --seed 7             # another split (random), folds and sampler
"""

from __future__ import annotations

import argparse
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
    "taxi": (ROOT / "tests" / "data" / "nyc_taxi_trips.csv", "fare_amount", []),
}


def _plain_lightgbm(config: Any, training_set: Any, metric: str) -> tuple[float, float]:
    """Seconds and test metric of LightGBM with library defaults (n_jobs=1) on the same split."""
    import lightgbm as lgb

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
    model.fit(x_train, y_train, categorical_feature=encoder.categorical_indices or "auto")
    seconds = time.perf_counter() - started
    output = model.predict(x_test) if schema.task == "regression" else model.predict_proba(x_test)
    return seconds, output_scores(schema.task, y_test, output)[metric]


def bench(name: str, folder: Path, trials: int | None, timeout: float | None, seed: int | None = None) -> list[tuple[str, ...]]:
    import yaml

    from conveyor.runner import init_project, load_project, run_pipeline

    csv, target, entity = DATASETS[name]
    shutil.copy(csv, folder / csv.name)
    init_project(folder / csv.name, target=target, output=folder / "conveyor.yaml", entity=entity[0] if entity else None)
    if trials is not None or timeout is not None or seed is not None:
        data = yaml.safe_load((folder / "conveyor.yaml").read_text())
        search = data["training"]["search"]
        search.update({k: v for k, v in (("trials", trials), ("timeout_s", timeout)) if v is not None})
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
    for cand_name, cand in result.candidates.items():
        rate = f"{cand.trials / cand.search_seconds:.2f}" if cand.trials and cand.search_seconds else "-"
        overhead = f"{cand.mlflow_seconds_per_trial * 1000:.0f}" if cand.mlflow_seconds_per_trial is not None else "-"
        rows.append((name, cand_name, f"{cand.search_seconds:.1f}", f"{cand.fit_seconds:.2f}", str(cand.trials), rate,
                     overhead, f"{cand.metrics.get(metric, float('nan')):.4f}"))
    seconds, score = _plain_lightgbm(config, artifacts["dataset"], metric)
    rows.append((name, "plain LightGBM (defaults, 1 thread)", "-", f"{seconds:.2f}", "-", "-", "-", f"{score:.4f}"))
    print(f"{name}: {result.split} split {result.train_rows}/{result.test_rows}, test {metric}; {result.threads}; "
          f"whole `conveyor run` {total:.0f}s; search ended by {result.search_stopped_by}", file=sys.stderr)
    return rows


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=list(DATASETS))
    parser.add_argument("--trials", type=int, default=None, help="training.search.trials (default: the config default)")
    parser.add_argument("--timeout", type=float, default=None, help="training.search.timeout_s")
    parser.add_argument("--seed", type=int, default=None, help="training.seed: split (random), folds, sampler, models")
    args = parser.parse_args()
    header = ("dataset", "candidate", "search s", "fit s", "trials", "trials/s", "MLflow ms/trial", "test metric")
    rows: list[tuple[str, ...]] = []
    for name in args.datasets:
        with tempfile.TemporaryDirectory(prefix=f"conveyor-bench-{name}-") as tmp:
            rows += bench(name, Path(tmp), args.trials, args.timeout, args.seed)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))


if __name__ == "__main__":
    main()
