"""How the drift thresholds (`monitoring.*`) were chosen: each rule's figure on unchanged data
against its figure on the changes it must catch.

For each rule's effect size it prints the 99th percentile over repetitions where the current
sample is drawn from the reference (no change: the noise a threshold must stay above at that
size), the median figure of the planted change (what it must catch), the threshold, and the
share of repetitions where the whole rule (test and threshold) fired on unchanged data.

    .venv/bin/python benchmarks/drift_thresholds.py            # 500, 5k and 1M rows, ~1 minute
    .venv/bin/python benchmarks/drift_thresholds.py --reps 50
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

from conveyor.stages.monitoring._drift import DriftThresholds, FeatureDrift, categorical_drift, numeric_drift
from conveyor.stages.monitoring._stats import point_masses

THR = DriftThresholds()
LEVELS = np.array([f"L{i}" for i in range(8)], dtype=object)
LEVEL_P = np.array([0.3, 0.2, 0.15, 0.12, 0.09, 0.07, 0.04, 0.03])
Maker = Callable[[np.random.Generator, int], np.ndarray]


def _growth(f: FeatureDrift, ref: np.ndarray, cur: np.ndarray) -> float:
    """The largest growth of one value's share, whether or not the rule's test is significant."""
    r, c = np.sort(ref[np.isfinite(ref)]), np.sort(cur[np.isfinite(cur)])
    return max([k_c / c.size - k_r / r.size for _, k_r, k_c in point_masses(r, c, 0.005)], default=0.0)


def _spike(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=n)
    x[rng.random(n) < 0.05] = 0.0
    return x


def _gaps(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=n)
    x[rng.random(n) < 0.3] = np.nan
    return x


def _unseen(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.choice(LEVELS, n, p=LEVEL_P)
    x[rng.random(n) < 0.05] = "never-seen"
    return x


# rule, figure, reference maker, changed maker, check
CASES: list[tuple[str, str, Maker, Maker, Callable[..., FeatureDrift], float, Callable[..., float]]] = [
    ("wasserstein", "W1/std, 1.25x spread", lambda r, n: r.normal(size=n), lambda r, n: r.normal(scale=1.25, size=n),
     numeric_drift, THR.wasserstein, lambda f, *_: f.effect),
    ("wasserstein", "W1/std, lognormal, 1.25x", lambda r, n: r.lognormal(size=n), lambda r, n: 1.25 * r.lognormal(size=n),
     numeric_drift, THR.wasserstein, lambda f, *_: f.effect),
    ("psi", "PSI, 1.25x spread", lambda r, n: r.normal(size=n), lambda r, n: r.normal(scale=1.25, size=n),
     numeric_drift, THR.psi, lambda f, *_: f.psi),
    ("point_mass", "growth of one value, 5% spike", lambda r, n: r.normal(size=n), _spike,
     numeric_drift, THR.point_mass, _growth),
    ("point_mass", "growth, 24-valued hour", lambda r, n: r.integers(0, 24, n).astype(float),
     lambda r, n: np.where(r.random(n) < 0.05, 7.0, r.integers(0, 24, n)), numeric_drift, THR.point_mass, _growth),
    ("missing", "missing share change, 30% nulls", lambda r, n: r.normal(size=n), _gaps,
     numeric_drift, THR.missing, lambda f, *_: abs(f.current_missing - f.reference_missing)),
    ("js", "Jensen-Shannon, shares reversed", lambda r, n: r.choice(LEVELS, n, p=LEVEL_P),
     lambda r, n: r.choice(LEVELS, n, p=LEVEL_P[::-1]), categorical_drift, THR.js, lambda f, *_: f.effect),
    ("unseen", "unseen share, 5% new level", lambda r, n: r.choice(LEVELS, n, p=LEVEL_P), _unseen,
     categorical_drift, THR.unseen, lambda f, *_: f.unseen_share),
]


def _measure(make_ref: Maker, make_cur: Maker, check: Callable[..., FeatureDrift], rule: str,
             figure: Callable[..., float], n: int, reps: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    ref = make_ref(rng, max(n, 20_000))
    null, fired = [], 0
    for _ in range(reps):
        cur = ref[rng.integers(0, ref.size, n)]  # unchanged: drawn from the reference
        f = check("x", ref, cur, THR)
        value = figure(f, ref, cur)
        null.append(0.0 if value is None or np.isnan(value) else value)
        fired += any(r.rule == rule for r in f.rules)
    changed = []
    for _ in range(max(3, reps // 20)):
        cur = make_cur(rng, n)
        changed.append(figure(check("x", ref, cur, THR), ref, cur))
    return {"p99": float(np.quantile(null, 0.99)), "changed": float(np.median(changed)), "alarms": fired / reps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="repetitions at 500 and 5k rows (1M: a tenth)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("| rule | figure | threshold | rows | no change: 99th pct | no change: rule fired | planted change |")
    print("|---|---|---|---|---|---|---|")
    for rule, label, make_ref, make_cur, check, threshold, figure in CASES:
        for n in (500, 5_000, 1_000_000):
            reps = args.reps if n < 1_000_000 else max(args.reps // 40, 3)
            m = _measure(make_ref, make_cur, check, rule, figure, n, reps, args.seed)
            print(f"| {rule} | {label} | {threshold:g} | {n:,} | {m['p99']:.4f} | {100 * m['alarms']:.1f}% of {reps} | "
                  f"{m['changed']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
