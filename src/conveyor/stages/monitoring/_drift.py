"""Drift between a reference sample and a current sample: per-feature rules and a verdict.

Pure functions on numpy arrays / sequences (numpy + scipy only; the statistics are in
``_stats``). Every rule pairs a test (is the change real?) with an effect size and a
threshold (is it large enough to matter?): with large samples a p-value alone flags
negligible shifts, with small ones an effect size alone flags noise.

Rules, each reported with its figure when it fires:

* ``wasserstein`` (numeric): KS p-value (asymptotic Kolmogorov) below ``p_value`` and the
  Wasserstein distance over the reference standard deviation at least ``wasserstein``. One
  figure for a change of location, spread or shape (a 1.25x spread is about 0.2); the
  location (mean shift in reference stds) and spread (std ratio) are given beside it.
* ``psi``: the test significant and the PSI (numeric: reference deciles; categorical: the
  levels) at least ``psi``.
* ``js`` (categorical): chi-square homogeneity p-value below ``p_value`` and the
  Jensen-Shannon distance (base 2) at least ``js``.
* ``point_mass`` (numeric): one value's share of the non-null values grew by at least
  ``point_mass`` (a spike: a default filled in, a stuck sensor), significant after a
  Bonferroni correction over the values examined.
* ``unseen`` (categorical): the share of rows whose level the reference never had exceeds
  the share expected from the reference's rare levels (Good-Turing) by at least ``unseen``,
  significantly.
* ``missing``: the share of nulls changed by at least ``missing`` (two-proportion test).
* ``schema``: a compared feature absent from the current data; fields present in the
  current data that the reference does not know are listed in ``DriftReport.schema``.

The dataset drifts when at least ``drift_share`` of the features drift, when one feature's
data broke (missing, unseen, schema) or moved very far (PSI at least ``severe_psi``), when a
field is new, or when the prediction drifts.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ._stats import (
    NULL_LEVEL,
    PSI_BINS,
    PSI_EPS,
    cdf_gap_stats,
    chi2_homogeneity,
    kolmogorov_p,
    level_counts,
    numeric_bin_shares,
    point_masses,
    proportion_p,
    psi,
    sorted_copy,
    to_float,
    to_labels,
)

__all__ = [
    "DriftThresholds", "FeatureDrift", "DriftReport", "Rule", "SchemaChange", "numeric_drift", "categorical_drift",
    "compute_drift", "psi", "ks_asymptotic", "to_labels", "to_float", "NULL_LEVEL", "PSI_BINS", "PSI_EPS",
]

DATA_RULES = ("missing", "unseen", "schema")
"""Rules that say the data broke rather than moved: one is dataset drift on its own."""
EXAMPLES = 5
"""Unseen levels named per feature."""
_PARALLEL_ROWS = 200_000
"""Features are checked on a thread each (numpy sorts release the GIL) from this many rows."""


@dataclass(frozen=True)
class DriftThresholds:
    psi: float = 0.2  # PSI at or above this is a material shift
    p_value: float = 0.01  # test p-value below this is significant
    drift_share: float = 0.3  # dataset drift when this share of features drifts
    min_rows: int = 30  # fewer current rows than this: verdict "insufficient data"
    severe_psi: float = 1.0  # one feature this far from its reference is dataset drift on its own
    wasserstein: float = 0.1  # Wasserstein distance / reference std (numeric)
    js: float = 0.1  # Jensen-Shannon distance, base 2 (categorical)
    missing: float = 0.05  # change of the share of nulls (0.05: 0 % -> 5 %)
    point_mass: float = 0.03  # growth of one value's share (0.03: 0 % -> 3 %)
    unseen: float = 0.01  # share of rows with a level the reference never had, beyond the expected


@dataclass(frozen=True)
class Rule:
    """One rule that fired on a feature: its name, its figure, the threshold it passed, in words."""

    rule: str
    value: float
    threshold: float
    detail: str


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: str  # "numeric" | "categorical" | "prediction"
    test: str  # "ks" | "chi2"
    statistic: float  # KS D, or chi-square statistic
    p_value: float
    psi: float
    effect: float  # numeric: Wasserstein / reference std; categorical: JS distance
    drifted: bool  # some rule fired
    reference_missing: float  # share of nulls in reference
    current_missing: float
    n_reference: int  # rows used by the test (numeric: non-null; categorical: all)
    n_current: int
    rules: tuple[Rule, ...] = ()  # the rules that fired, strongest evidence first
    location: float = math.nan  # numeric: (current mean - reference mean) / reference std
    spread: float = math.nan  # numeric: current std / reference std
    unseen_share: float = math.nan  # categorical: share of current rows with a level not in the reference
    unseen_examples: tuple[str, ...] = ()  # ... the most frequent of those levels


@dataclass(frozen=True)
class SchemaChange:
    missing: list[str] = field(default_factory=list)  # compared features absent from the current data
    new: list[str] = field(default_factory=list)  # current fields the reference does not have

    @property
    def changed(self) -> bool:
        return bool(self.missing or self.new)


def _clean(value: Any) -> Any:
    """Recursively turn numpy types into Python ones and NaN/inf into None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class DriftReport:
    features: list[FeatureDrift]  # per feature
    prediction: FeatureDrift | None  # drift of the model output, if given
    drifted_share: float
    dataset_drift: bool | None  # None when insufficient data
    verdict: str  # "drift" | "no drift" | "insufficient data"
    n_reference: int
    n_current: int
    schema: SchemaChange = field(default_factory=SchemaChange)
    reasons: list[str] = field(default_factory=list)  # why the verdict is what it is

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (plain Python types, NaN -> None)."""
        data: dict[str, Any] = _clean(asdict(self))
        return data


# --------------------------------------------------------------------------- #
# numeric
# --------------------------------------------------------------------------- #
def ks_asymptotic(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic D and asymptotic (Kolmogorov) p-value.

    Both inputs must be sorted, NaN-free and non-empty.
    """
    d, _ = cdf_gap_stats(ref_sorted, cur_sorted)
    return d, kolmogorov_p(d, ref_sorted.size, cur_sorted.size)


def _fmt_value(v: float) -> str:
    return f"{v:.6g}"


def _point_mass_rule(ref: np.ndarray, cur: np.ndarray, thr: DriftThresholds) -> Rule | None:
    """The value whose share grew most, when it grew by ``point_mass`` or more, significantly."""
    candidates = point_masses(ref, cur, thr.point_mass)
    best: Rule | None = None
    for value, k_ref, k_cur in candidates:
        growth = k_cur / cur.size - k_ref / ref.size
        if growth < thr.point_mass or (best is not None and growth <= best.value):
            continue
        if proportion_p(k_ref, ref.size, k_cur, cur.size, one_sided=True) * len(candidates) >= thr.p_value:
            continue
        best = Rule("point_mass", growth, thr.point_mass,
                    f"value {_fmt_value(value)}: {100 * k_ref / ref.size:.1f}% -> {100 * k_cur / cur.size:.1f}% "
                    f"of values (+{100 * growth:.1f} points >= {100 * thr.point_mass:g})")
    return best


def _numeric_rules(ref: np.ndarray, cur: np.ndarray, thr: DriftThresholds) -> dict[str, Any]:
    """Statistics and fired distribution rules of two sorted finite samples."""
    out: dict[str, Any] = {"statistic": math.nan, "p_value": math.nan, "psi": math.nan, "effect": math.nan,
                           "location": math.nan, "spread": math.nan, "rules": []}
    if ref.size < 2 or cur.size < 2:
        return out
    d, w1 = cdf_gap_stats(ref, cur)
    p = kolmogorov_p(d, ref.size, cur.size)
    std_r, mean_r = float(np.std(ref)), float(np.mean(ref))
    std_c, mean_c = float(np.std(cur)), float(np.mean(cur))
    effect = w1 / std_r if std_r > 0 else 0.0
    location = (mean_c - mean_r) / std_r if std_r > 0 else math.nan
    spread = std_c / std_r if std_r > 0 else math.nan
    psi_value = psi(*numeric_bin_shares(ref, cur))
    out |= {"statistic": d, "p_value": p, "psi": psi_value, "effect": effect, "location": location, "spread": spread}
    rules: list[Rule] = []
    if p < thr.p_value and effect >= thr.wasserstein:
        rules.append(Rule("wasserstein", effect, thr.wasserstein,
                          f"Wasserstein/std {effect:.3f} >= {thr.wasserstein:g} (location {location:+.2f} std, "
                          f"spread x{spread:.2f}; KS p {p:.2g})"))
    if p < thr.p_value and psi_value >= thr.psi:
        rules.append(Rule("psi", psi_value, thr.psi, f"PSI {psi_value:.3f} >= {thr.psi:g} (KS p {p:.2g})"))
    if (mass := _point_mass_rule(ref, cur, thr)) is not None:
        rules.append(mass)
    out["rules"] = rules
    return out


def _missing_rule(nulls: tuple[int, int], totals: tuple[int, int], thr: DriftThresholds) -> Rule | None:
    (k_r, k_c), (n_r, n_c) = nulls, totals
    if n_r == 0 or n_c == 0:
        return None
    share_r, share_c = k_r / n_r, k_c / n_c
    change = share_c - share_r
    if abs(change) < thr.missing or proportion_p(k_r, n_r, k_c, n_c) >= thr.p_value:
        return None
    return Rule("missing", abs(change), thr.missing,
                f"missing {100 * share_r:.1f}% -> {100 * share_c:.1f}% ({100 * change:+.1f} points)")


def _missing_share(n_null: int, n_total: int) -> float:
    return n_null / n_total if n_total else math.nan


def _prepare_numeric(values: np.ndarray | Sequence[Any]) -> tuple[np.ndarray, int, int]:
    """The sorted finite values, the number of nulls (NaN, None, inf) and of rows."""
    arr = to_float(values)
    ok = np.isfinite(arr)
    finite = sorted_copy(arr[ok] if not ok.all() else arr)
    return finite, int(arr.size - finite.size), int(arr.size)


def numeric_drift(
    name: str,
    reference: np.ndarray | Sequence[Any],
    current: np.ndarray | Sequence[Any],
    thresholds: DriftThresholds = DriftThresholds(),
    kind: str = "numeric",
) -> FeatureDrift:
    """KS, PSI, normalised Wasserstein, point masses and missing share of one numeric column."""
    ref, null_r, n_r = _prepare_numeric(reference)
    cur, null_c, n_c = _prepare_numeric(current)
    stats = _numeric_rules(ref, cur, thresholds)
    rules: list[Rule] = stats.pop("rules")
    if (missing := _missing_rule((null_r, null_c), (n_r, n_c), thresholds)) is not None:
        rules.insert(0, missing)
    return FeatureDrift(
        name=name, kind=kind, test="ks", **stats, drifted=bool(rules),
        reference_missing=_missing_share(null_r, n_r), current_missing=_missing_share(null_c, n_c),
        n_reference=int(ref.size), n_current=int(cur.size), rules=tuple(rules),
    )


# --------------------------------------------------------------------------- #
# categorical
# --------------------------------------------------------------------------- #
def _unseen_rule(counts_r: dict[str, int], counts_c: dict[str, int], n_r: int, n_c: int,
                 thr: DriftThresholds) -> tuple[float, tuple[str, ...], Rule | None]:
    """Share of current rows with a level the reference lacks, its examples, and the rule."""
    from scipy.stats import binom

    unseen = {k: v for k, v in counts_c.items() if k not in counts_r and k != NULL_LEVEL}
    k_unseen = sum(unseen.values())
    share = k_unseen / n_c if n_c else math.nan
    examples = tuple(k for k, _ in sorted(unseen.items(), key=lambda kv: (-kv[1], kv[0]))[:EXAMPLES])
    if not k_unseen or not n_r:
        return share, examples, None
    # Good-Turing: levels seen once in the reference say how much mass it has not seen yet
    singletons = sum(1 for k, v in counts_r.items() if v == 1 and k != NULL_LEVEL)
    expected = (singletons + 1) / (n_r + 1)
    excess = share - expected
    p = float(binom.sf(k_unseen - 1, n_c, expected))
    if excess < thr.unseen or p >= thr.p_value:
        return share, examples, None
    shown = ", ".join(repr(e)[:40] for e in examples) + (", ..." if len(unseen) > EXAMPLES else "")
    return share, examples, Rule("unseen", share, thr.unseen,
                                 f"{100 * share:.1f}% of rows have {len(unseen)} level(s) never seen in the "
                                 f"reference: {shown}")


def _categorical_stats(counts_r: dict[str, int], counts_c: dict[str, int]) -> tuple[float, float, float, float]:
    """Chi-square statistic, its p-value, PSI and Jensen-Shannon distance of two level counts."""
    from scipy.spatial.distance import jensenshannon

    n_r, n_c = sum(counts_r.values()), sum(counts_c.values())
    if n_r < 2 or n_c < 2:
        return math.nan, math.nan, math.nan, math.nan
    levels = sorted(set(counts_r) | set(counts_c))
    c_r = np.array([counts_r.get(k, 0) for k in levels], dtype=float)
    c_c = np.array([counts_c.get(k, 0) for k in levels], dtype=float)
    share_r, share_c = c_r / n_r, c_c / n_c
    if len(levels) < 2:
        return 0.0, 1.0, psi(share_r, share_c), 0.0
    stat, p = chi2_homogeneity(np.vstack([c_r, c_c]))
    return stat, p, psi(share_r, share_c), float(jensenshannon(share_r, share_c, base=2))


def categorical_drift(
    name: str,
    reference: np.ndarray | Sequence[Any],
    current: np.ndarray | Sequence[Any],
    thresholds: DriftThresholds = DriftThresholds(),
) -> FeatureDrift:
    """Chi-square homogeneity, PSI, Jensen-Shannon, unseen levels and missing share of one categorical column."""
    thr = thresholds
    counts_r, counts_c = level_counts(reference), level_counts(current)
    n_r, n_c = sum(counts_r.values()), sum(counts_c.values())
    null_r, null_c = counts_r.get(NULL_LEVEL, 0), counts_c.get(NULL_LEVEL, 0)
    stat, p, psi_value, js = _categorical_stats(counts_r, counts_c)
    rules: list[Rule] = []
    if (missing := _missing_rule((null_r, null_c), (n_r, n_c), thr)) is not None:
        rules.append(missing)
    share, examples, unseen = _unseen_rule(counts_r, counts_c, n_r, n_c, thr)
    if unseen is not None:
        rules.append(unseen)
    if p < thr.p_value and js >= thr.js:
        rules.append(Rule("js", js, thr.js, f"Jensen-Shannon {js:.3f} >= {thr.js:g} (chi2 p {p:.2g})"))
    if p < thr.p_value and psi_value >= thr.psi:
        rules.append(Rule("psi", psi_value, thr.psi, f"PSI {psi_value:.3f} >= {thr.psi:g} (chi2 p {p:.2g})"))
    return FeatureDrift(
        name=name, kind="categorical", test="chi2", statistic=stat, p_value=p, psi=psi_value, effect=js,
        drifted=bool(rules), reference_missing=_missing_share(null_r, n_r),
        current_missing=_missing_share(null_c, n_c), n_reference=n_r, n_current=n_c, rules=tuple(rules),
        unseen_share=share, unseen_examples=examples,
    )


# --------------------------------------------------------------------------- #
# the dataset
# --------------------------------------------------------------------------- #
def _absent(name: str, kind: str, n_reference: int, thr: DriftThresholds) -> FeatureDrift:
    """A compared feature the current data does not have at all."""
    rule = Rule("schema", 1.0, 0.0, "missing in traffic: the field is absent from every current row")
    return FeatureDrift(name=name, kind=kind, test="ks" if kind == "numeric" else "chi2", statistic=math.nan,
                        p_value=math.nan, psi=math.nan, effect=math.nan, drifted=True,
                        reference_missing=math.nan, current_missing=1.0, n_reference=n_reference, n_current=0,
                        rules=(rule,))


def _prediction_drift(reference: np.ndarray, current: np.ndarray, kind: str,
                      thresholds: DriftThresholds) -> FeatureDrift:
    if kind == "categorical":
        return replace(categorical_drift("prediction", reference, current, thresholds), kind="prediction")
    return numeric_drift("prediction", reference, current, thresholds, kind="prediction")


def _workers(n_rows: int, n_features: int) -> int:
    if n_rows < _PARALLEL_ROWS or n_features < 2:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, n_features))


def compute_drift(
    reference: Mapping[str, np.ndarray | Sequence[Any]],
    current: Mapping[str, np.ndarray | Sequence[Any]],
    *,
    numeric: list[str],
    categorical: list[str],
    prediction: tuple[np.ndarray, np.ndarray] | None = None,
    prediction_kind: str = "numeric",
    thresholds: DriftThresholds = DriftThresholds(),
) -> DriftReport:
    """Per-feature drift, prediction drift, schema changes and the dataset verdict.

    A listed feature absent from ``current`` is a schema change (it drifts); a column of
    ``current`` that is neither listed nor in ``reference`` is a new field.
    """
    if prediction_kind not in ("numeric", "categorical"):
        raise ValueError(f"prediction_kind must be 'numeric' or 'categorical', got {prediction_kind!r}")
    names = [*numeric, *categorical]
    if absent := [c for c in names if c not in reference]:
        raise KeyError(f"column(s) {absent} missing from the reference data")
    schema = SchemaChange(missing=[c for c in names if c not in current],
                          new=[c for c in current if c not in reference and c not in names])
    n_ref = max((len(reference[c]) for c in names), default=0)
    n_cur = max((len(current[c]) for c in names if c in current), default=0)

    def check(name: str) -> FeatureDrift:
        kind = "categorical" if name in categorical else "numeric"
        if name not in current:
            return _absent(name, kind, len(reference[name]), thresholds)
        if kind == "categorical":
            return categorical_drift(name, reference[name], current[name], thresholds)
        return numeric_drift(name, reference[name], current[name], thresholds)

    workers = _workers(n_ref + n_cur, len(names))
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            features = list(pool.map(check, names))
    else:
        features = [check(name) for name in names]

    pred: FeatureDrift | None = None
    if prediction is not None:
        n_ref, n_cur = max(n_ref, len(prediction[0])), max(n_cur, len(prediction[1]))
        pred = _prediction_drift(*prediction, prediction_kind, thresholds)
    drifted_share = sum(f.drifted for f in features) / len(features) if features else math.nan
    dataset_drift, verdict, reasons = _verdict(features, pred, drifted_share, n_cur, schema, thresholds)
    return DriftReport(
        features=features,
        prediction=pred,
        drifted_share=drifted_share,
        dataset_drift=dataset_drift,
        verdict=verdict,
        n_reference=n_ref,
        n_current=n_cur,
        schema=schema,
        reasons=reasons,
    )


def _verdict(features: list[FeatureDrift], pred: FeatureDrift | None, drifted_share: float, n_current: int,
             schema: SchemaChange, thresholds: DriftThresholds) -> tuple[bool | None, str, list[str]]:
    """Dataset drift, the verdict and its reasons: too few rows, enough drifted features, one
    broken or severe feature, a new field, or the prediction."""
    if n_current < thresholds.min_rows and not schema.missing:
        return None, "insufficient data", [f"{n_current} current rows, fewer than min_rows {thresholds.min_rows}"]
    reasons: list[str] = []
    n_drifted = sum(f.drifted for f in features)
    if features and drifted_share >= thresholds.drift_share:
        reasons.append(f"{n_drifted} of {len(features)} features drifted "
                       f"({100 * drifted_share:.0f}% >= {100 * thresholds.drift_share:.0f}%)")
    for f in features:
        for rule in f.rules:
            if rule.rule in DATA_RULES:
                reasons.append(f"{f.name}: {rule.detail}")
        if f.drifted and f.psi >= thresholds.severe_psi:
            reasons.append(f"{f.name}: PSI {f.psi:.2f} >= severe_psi {thresholds.severe_psi:g}")
    if schema.new:
        reasons.append(f"new in traffic, unknown to the reference: {schema.new}")
    if pred is not None and pred.drifted:
        reasons.append("prediction: " + "; ".join(r.detail for r in pred.rules))
    return bool(reasons), "drift" if reasons else "no drift", reasons
