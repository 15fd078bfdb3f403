"""Drift statistics between a reference sample and a current sample.

Pure functions on numpy arrays / sequences (numpy + scipy only).

* Numeric columns: two-sample Kolmogorov-Smirnov with the asymptotic
  Kolmogorov p-value (``kstwobign``; ``ks_2samp`` is far too slow on large
  columns), PSI on 10 reference-quantile bins, effect = Wasserstein distance
  divided by the reference standard deviation.
* Categorical columns: levels compared as strings (nulls are the level
  ``"<null>"``), chi-square test of homogeneity on the 2 x K contingency table
  (a goodness-of-fit test against the reference shares ignores the sampling
  noise of the reference and is badly miscalibrated), PSI over the levels,
  effect = Jensen-Shannon distance (base 2).
* A feature drifts only when the test is significant AND the PSI is material:
  with large samples a p-value alone flags negligible shifts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

NULL_LEVEL = "<null>"
PSI_EPS = 1e-4
PSI_BINS = 10

__all__ = [
    "DriftThresholds", "FeatureDrift", "DriftReport", "numeric_drift", "categorical_drift",
    "compute_drift", "psi", "ks_asymptotic", "to_labels", "to_float",
]


@dataclass(frozen=True)
class DriftThresholds:
    psi: float = 0.2  # PSI at or above this is a material shift
    p_value: float = 0.01  # test p-value below this is significant
    drift_share: float = 0.3  # dataset drift when this share of features drifts
    min_rows: int = 30  # fewer current rows than this: verdict "insufficient data"
    severe_psi: float = 1.0  # one feature this far from its reference is dataset drift on its own


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: str  # "numeric" | "categorical" | "prediction"
    test: str  # "ks" | "chi2"
    statistic: float  # KS D, or chi-square statistic
    p_value: float
    psi: float
    effect: float  # numeric: Wasserstein / reference std; categorical: JS distance
    drifted: bool  # p_value < thresholds.p_value AND psi >= thresholds.psi
    reference_missing: float  # share of nulls in reference
    current_missing: float
    n_reference: int  # rows used by the test (numeric: non-null; categorical: all)
    n_current: int


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (plain Python types, NaN -> None)."""
        data: dict[str, Any] = _clean(asdict(self))
        return data


# --------------------------------------------------------------------------- #
# conversions
# --------------------------------------------------------------------------- #
def _is_null(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, (float, np.floating)):
        return bool(np.isnan(v))
    # pandas.NA / pandas.NaT / numpy NaT without importing pandas
    if type(v).__name__ in ("NAType", "NaTType"):
        return True
    if isinstance(v, (np.datetime64, np.timedelta64)):
        return bool(np.isnat(v))
    return False


def to_float(values: np.ndarray | Sequence[Any]) -> np.ndarray:
    """1-D float array with None / pandas NA turned into NaN."""
    arr = np.asarray(values)
    if arr.dtype.kind in "biuf":
        return arr.astype(float, copy=False).ravel()
    obj = arr.astype(object).ravel()
    return np.array([np.nan if _is_null(v) else float(v) for v in obj], dtype=float)


def _label(v: Any) -> str:
    if _is_null(v):
        return NULL_LEVEL
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def to_labels(values: np.ndarray | Sequence[Any]) -> np.ndarray:
    """Categorical values as a string array; 1, 1.0 and "1" are one level."""
    arr = np.asarray(values)
    if arr.dtype.kind in "biuUS":
        return arr.astype(str).ravel()
    if arr.dtype.kind == "f":
        arr = arr.ravel()
        out = arr.astype(str).astype(object)
        null = np.isnan(arr)
        whole = ~null & np.isfinite(arr) & (arr == np.floor(arr)) & (np.abs(arr) < 2**63)
        out[whole] = arr[whole].astype(np.int64).astype(str)
        out[null] = NULL_LEVEL
        return out.astype(str)
    return np.array([_label(v) for v in arr.astype(object).ravel()], dtype=str)


# --------------------------------------------------------------------------- #
# statistics
# --------------------------------------------------------------------------- #
def _cdf_gap(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pooled sorted grid and |F_ref - F_cur| evaluated on it (via searchsorted)."""
    grid = np.sort(np.concatenate([ref_sorted, cur_sorted]))
    cdf_ref = np.searchsorted(ref_sorted, grid, side="right") / ref_sorted.size
    cdf_cur = np.searchsorted(cur_sorted, grid, side="right") / cur_sorted.size
    return grid, np.abs(cdf_ref - cdf_cur)


def _kolmogorov_p(d: float, n: int, m: int) -> float:
    from scipy.stats import kstwobign

    p = float(kstwobign.sf(d * math.sqrt(n * m / (n + m))))
    return min(max(p, 0.0), 1.0)


def ks_asymptotic(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic D and asymptotic (Kolmogorov) p-value.

    Both inputs must be sorted, NaN-free and non-empty.
    """
    _, gap = _cdf_gap(ref_sorted, cur_sorted)
    d = float(gap.max())
    return d, _kolmogorov_p(d, ref_sorted.size, cur_sorted.size)


def psi(ref_share: np.ndarray, cur_share: np.ndarray, eps: float = PSI_EPS) -> float:
    """Population stability index of two share vectors over the same bins."""
    r = np.clip(np.asarray(ref_share, dtype=float), eps, None)
    c = np.clip(np.asarray(cur_share, dtype=float), eps, None)
    return float(np.sum((c - r) * np.log(c / r)))


def _numeric_bin_shares(ref_sorted: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shares per bin: reference deciles, or the distinct values when few."""
    distinct = np.unique(ref_sorted)
    if distinct.size <= PSI_BINS:
        # one bin per reference value plus one for values never seen there
        k = distinct.size
        idx_r = np.searchsorted(distinct, ref_sorted)
        pos = np.minimum(np.searchsorted(distinct, cur), k - 1)
        idx_c = np.where(distinct[pos] == cur, pos, k)
        bins = k + 1
    else:
        qs = np.linspace(0.0, 1.0, PSI_BINS + 1)[1:-1]
        edges = np.unique(np.quantile(ref_sorted, qs))
        idx_r = np.searchsorted(edges, ref_sorted, side="right")
        idx_c = np.searchsorted(edges, cur, side="right")
        bins = edges.size + 1
    ref_share = np.bincount(idx_r, minlength=bins) / ref_sorted.size
    cur_share = np.bincount(idx_c, minlength=bins) / cur.size
    return ref_share, cur_share


def _missing_share(n_null: int, n_total: int) -> float:
    return n_null / n_total if n_total else math.nan


def _is_drifted(p: float, psi_value: float, thresholds: DriftThresholds) -> bool:
    if math.isnan(p) or math.isnan(psi_value):
        return False
    return bool(p < thresholds.p_value and psi_value >= thresholds.psi)


_NO_STATS = (math.nan, math.nan, math.nan, math.nan)


def _numeric_stats(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float, float, float]:
    """KS D, its p-value, PSI and Wasserstein / reference std of two sorted finite samples."""
    if ref.size < 2 or cur.size < 2:
        return _NO_STATS
    # KS D and the Wasserstein-1 distance share one pass over the CDFs:
    # W1 = integral |F_ref - F_cur| dx, identical to
    # scipy.stats.wasserstein_distance (which sorts and searches again).
    grid, gap = _cdf_gap(ref, cur)
    stat = float(gap.max())
    std = float(np.std(ref))
    effect = float(np.dot(gap[:-1], np.diff(grid))) / std if std > 0 else 0.0
    return stat, _kolmogorov_p(stat, ref.size, cur.size), psi(*_numeric_bin_shares(ref, cur)), effect


def _categorical_stats(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float, float, float]:
    """Chi-square statistic, its p-value, PSI and Jensen-Shannon distance of two label arrays."""
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chi2_contingency

    if ref.size < 2 or cur.size < 2:
        return _NO_STATS
    levels, inverse = np.unique(np.concatenate([ref, cur]), return_inverse=True)
    k = levels.size
    counts_r = np.bincount(inverse[: ref.size], minlength=k)
    counts_c = np.bincount(inverse[ref.size :], minlength=k)
    share_r, share_c = counts_r / ref.size, counts_c / cur.size
    if k < 2:
        return 0.0, 1.0, psi(share_r, share_c), 0.0
    res = chi2_contingency(np.vstack([counts_r, counts_c]))
    return float(res[0]), float(res[1]), psi(share_r, share_c), float(jensenshannon(share_r, share_c, base=2))


def _feature(name: str, kind: str, test: str, stats: tuple[float, float, float, float],
             thresholds: DriftThresholds, missing: tuple[float, float], n: tuple[int, int]) -> FeatureDrift:
    stat, p, psi_value, effect = stats
    return FeatureDrift(
        name=name,
        kind=kind,
        test=test,
        statistic=stat,
        p_value=p,
        psi=psi_value,
        effect=effect,
        drifted=_is_drifted(p, psi_value, thresholds),
        reference_missing=missing[0],
        current_missing=missing[1],
        n_reference=n[0],
        n_current=n[1],
    )


def numeric_drift(
    name: str,
    reference: np.ndarray | Sequence[Any],
    current: np.ndarray | Sequence[Any],
    thresholds: DriftThresholds = DriftThresholds(),
    kind: str = "numeric",
) -> FeatureDrift:
    """KS + PSI + normalised Wasserstein drift of one numeric column."""
    ref_all, cur_all = to_float(reference), to_float(current)
    ref_ok, cur_ok = np.isfinite(ref_all), np.isfinite(cur_all)  # inf counts as missing
    ref, cur = np.sort(ref_all[ref_ok]), np.sort(cur_all[cur_ok])
    missing = (_missing_share(int((~ref_ok).sum()), ref_all.size), _missing_share(int((~cur_ok).sum()), cur_all.size))
    return _feature(name, kind, "ks", _numeric_stats(ref, cur), thresholds, missing, (int(ref.size), int(cur.size)))


def categorical_drift(
    name: str,
    reference: np.ndarray | Sequence[Any],
    current: np.ndarray | Sequence[Any],
    thresholds: DriftThresholds = DriftThresholds(),
) -> FeatureDrift:
    """Chi-square homogeneity + PSI + Jensen-Shannon drift of one categorical column."""
    ref, cur = to_labels(reference), to_labels(current)
    missing = (_missing_share(int((ref == NULL_LEVEL).sum()), ref.size),
               _missing_share(int((cur == NULL_LEVEL).sum()), cur.size))
    stats = _categorical_stats(ref, cur)
    return _feature(name, "categorical", "chi2", stats, thresholds, missing, (int(ref.size), int(cur.size)))


def _column(data: Mapping[str, Any], name: str, side: str) -> Any:
    if name not in data:
        raise KeyError(f"column {name!r} missing from the {side} data")
    return data[name]


def _prediction_drift(reference: np.ndarray, current: np.ndarray, kind: str,
                      thresholds: DriftThresholds) -> FeatureDrift:
    if kind == "categorical":
        return replace(categorical_drift("prediction", reference, current, thresholds), kind="prediction")
    return numeric_drift("prediction", reference, current, thresholds, kind="prediction")


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
    """Per-feature drift, prediction drift and the dataset verdict."""
    if prediction_kind not in ("numeric", "categorical"):
        raise ValueError(f"prediction_kind must be 'numeric' or 'categorical', got {prediction_kind!r}")
    features: list[FeatureDrift] = []
    n_ref = n_cur = 0
    for name in numeric + categorical:
        ref_col, cur_col = _column(reference, name, "reference"), _column(current, name, "current")
        n_ref, n_cur = max(n_ref, len(ref_col)), max(n_cur, len(cur_col))
        if name in categorical:
            features.append(categorical_drift(name, ref_col, cur_col, thresholds))
        else:
            features.append(numeric_drift(name, ref_col, cur_col, thresholds))

    pred: FeatureDrift | None = None
    if prediction is not None:
        n_ref, n_cur = max(n_ref, len(prediction[0])), max(n_cur, len(prediction[1]))
        pred = _prediction_drift(*prediction, prediction_kind, thresholds)
    drifted_share = sum(f.drifted for f in features) / len(features) if features else math.nan
    dataset_drift, verdict = _verdict(features, pred, drifted_share, n_cur, thresholds)
    return DriftReport(
        features=features,
        prediction=pred,
        drifted_share=drifted_share,
        dataset_drift=dataset_drift,
        verdict=verdict,
        n_reference=n_ref,
        n_current=n_cur,
    )


def _verdict(features: list[FeatureDrift], pred: FeatureDrift | None, drifted_share: float, n_current: int,
             thresholds: DriftThresholds) -> tuple[bool | None, str]:
    """Dataset drift and the verdict: too few rows, enough drifted features, one severe, or the prediction."""
    if n_current < thresholds.min_rows:
        return None, "insufficient data"
    share_hit = bool(features) and drifted_share >= thresholds.drift_share
    severe = any(f.drifted and f.psi >= thresholds.severe_psi for f in features)
    dataset_drift = bool(share_hit or severe or (pred is not None and pred.drifted))
    return dataset_drift, "drift" if dataset_drift else "no drift"
