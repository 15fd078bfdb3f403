"""Fast two-sample statistics on sorted numeric samples and on category counts.

Pure numpy (scipy only for p-values). Every numeric function takes samples that are sorted,
finite and non-empty, so that a column is sorted once per side and every statistic after
that is a merge, a binary search or a linear pass: at 1M rows a side, the sorts are most of
the cost (about 60 ms of CPU each here) and KS, Wasserstein, PSI and the point masses cost
about as much again together.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

NULL_LEVEL = "<null>"
_FAST_ROWS = 50_000
"""From this many values, sorts and counts go to Polars and pandas (half and a quarter of
numpy's and a Counter's CPU at 1M values); below, numpy's are quicker to start."""
PSI_EPS = 1e-4
PSI_BINS = 10

__all__ = [
    "NULL_LEVEL", "PSI_BINS", "PSI_EPS", "cdf_gap_stats", "chi2_homogeneity", "kolmogorov_p", "level_counts", "numeric_bin_shares",
    "point_masses", "proportion_p", "psi", "sorted_copy", "sorted_quantiles", "to_float", "to_labels",
]


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


def level_counts(values: np.ndarray | Sequence[Any]) -> dict[str, int]:
    """How many times each level occurs, levels labelled as ``to_labels`` does.

    Counted on the raw values (a hash per value, in C) and labelled per distinct value: a
    million strings take about 0.1 s, where labelling each value first takes ten times that.
    """
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        flat = values.ravel()
        n_null = 0
        if flat.dtype.kind == "f":
            null = np.isnan(flat)
            n_null = int(null.sum())
            flat = flat[~null]
        distinct, counts = np.unique(flat, return_counts=True)
        raw: dict[Any, int] = dict(zip(distinct.tolist(), counts.tolist(), strict=True))
        if n_null:
            raw[None] = n_null
    else:
        raw = _raw_counts(values)
    out: dict[str, int] = {}
    for key, count in raw.items():
        label = _label(key)
        out[label] = out.get(label, 0) + int(count)
    return out


def _raw_counts(values: np.ndarray | Sequence[Any]) -> dict[Any, int]:
    """How many times each raw value occurs (None and NaN together), in C: pandas' hash table
    for many values, a Counter for few; an unhashable value (a list or dict in a logged input)
    is labelled first."""
    if len(values) >= _FAST_ROWS:
        import pandas as pd

        try:
            counted = pd.Series(values, dtype=object, copy=False).value_counts(dropna=False, sort=False)
        except TypeError:
            pass
        else:
            return dict(zip(counted.index.tolist(), counted.tolist(), strict=True))
    items = values.ravel().tolist() if isinstance(values, np.ndarray) else values
    try:
        return Counter(items)
    except TypeError:
        return Counter(_label(v) for v in items)


def sorted_copy(values: np.ndarray) -> np.ndarray:
    """A sorted copy of a NaN-free float array (Polars' sort from ``_FAST_ROWS`` values: half
    numpy's CPU; the result may be read-only)."""
    if values.size >= _FAST_ROWS:
        import polars as pl

        out: np.ndarray = pl.Series(values).sort().to_numpy()
        return out
    return np.sort(values)


# --------------------------------------------------------------------------- #
# tests and distances
# --------------------------------------------------------------------------- #
def kolmogorov_p(d: float, n: int, m: int) -> float:
    """Asymptotic two-sample KS p-value (``kstwobign.sf``, by the special function it calls: the
    distribution's wrapper costs ten times the function): exact `kstwo` is 1 s per 1M-row column."""
    from scipy.special import kolmogorov

    p = float(kolmogorov(d * math.sqrt(n * m / (n + m))))
    return min(max(p, 0.0), 1.0)


def chi2_homogeneity(table: np.ndarray) -> tuple[float, float]:
    """Chi-square statistic and p-value of a 2 x K table of counts (no empty column): the same
    arithmetic as ``scipy.stats.chi2_contingency`` (Yates' correction when K is 2), without
    its argument checks and dispatch, which cost more than the test on a few levels."""
    from scipy.special import chdtrc

    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    dof = table.shape[1] - 1
    if dof == 0:
        return 0.0, 1.0
    observed = table
    if dof == 1:  # Yates: no correction larger than the difference
        diff = expected - observed
        observed = observed + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    stat = float(((observed - expected) ** 2 / expected).sum())
    return stat, float(min(max(chdtrc(dof, stat), 0.0), 1.0))


def proportion_p(k1: int, n1: int, k2: int, n2: int, *, one_sided: bool = False) -> float:
    """p-value of ``k2 / n2`` against ``k1 / n1`` (one-sided: the second share larger).

    Exact and conditional: given ``k1 + k2`` events, ``k2`` is binomial with the second
    sample's share of the rows under no change. The normal approximation understates the tail
    for small counts (a value holding 4 % of 500 rows), which raised false alarms four-fold.
    """
    from scipy.stats import binom

    if n1 == 0 or n2 == 0:
        return math.nan
    total, share = k1 + k2, n2 / (n1 + n2)
    if total == 0:
        return 1.0
    upper = float(binom.sf(k2 - 1, total, share))
    if one_sided:
        return upper
    return min(1.0, 2 * min(upper, float(binom.cdf(k2, total, share))))


def psi(ref_share: np.ndarray, cur_share: np.ndarray, eps: float = PSI_EPS) -> float:
    """Population stability index of two share vectors over the same bins."""
    r = np.clip(np.asarray(ref_share, dtype=float), eps, None)
    c = np.clip(np.asarray(cur_share, dtype=float), eps, None)
    return float(np.sum((c - r) * np.log(c / r)))


def cdf_gap_stats(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """KS D = max |F_ref - F_cur| and W1 = integral of |F_ref - F_cur| dx, in one merge.

    The two sorted samples are merged by a stable argsort (a single merge of two runs), the
    empirical CDFs are running counts along the merge, and W1 is identical to
    ``scipy.stats.wasserstein_distance`` (which sorts and searches again).
    """
    n, m = ref.size, cur.size
    pooled = np.concatenate([ref, cur])
    order = np.argsort(pooled, kind="stable")
    grid = pooled[order]
    del pooled
    # F_ref - F_cur after k merged values, i of them from ref: i/n - (k - i)/m = i (1/n + 1/m) - k/m
    gap = np.cumsum(order < n, dtype=np.int64).astype(float)
    del order
    gap *= 1.0 / n + 1.0 / m
    gap -= np.arange(1, n + m + 1, dtype=float) * (1.0 / m)
    np.abs(gap, out=gap)
    step = np.diff(grid)
    # not np.dot: a BLAS call spins OpenBLAS threads, 10 ms for 20k values on a busy 2-core machine
    w1 = float(np.multiply(gap[:-1], step).sum())
    if np.count_nonzero(step) == step.size:  # no ties: every merged value ends a run
        return float(gap.max()), w1
    # D at the end of each run of equal values (the CDFs' right limits); ties have step 0
    d = float(max(gap[-1], gap[:-1][step > 0].max(initial=0.0)))
    return d, w1


def sorted_quantiles(sorted_values: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """``np.quantile(..., method="linear")`` of an already sorted array, without re-partitioning it."""
    pos = qs * (sorted_values.size - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, sorted_values.size - 1)
    frac = pos - lo
    out: np.ndarray = sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac
    return out


def _run_ends(sorted_values: np.ndarray) -> np.ndarray:
    """The last index of each run of equal values in a sorted array."""
    ends = np.flatnonzero(sorted_values[1:] != sorted_values[:-1])
    return np.append(ends, sorted_values.size - 1)


def numeric_bin_shares(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shares per bin for PSI: reference deciles, or the distinct reference values when few.

    Both samples sorted, so every count is two binary searches per edge.
    """
    if np.count_nonzero(ref[1:] != ref[:-1]) + 1 <= PSI_BINS:
        # one bin per reference value plus one for values never seen there
        distinct = ref[_run_ends(ref)]
        count_r = np.diff(np.searchsorted(ref, distinct, side="right"), prepend=0)
        count_c = np.searchsorted(cur, distinct, side="right") - np.searchsorted(cur, distinct, side="left")
        count_r = np.append(count_r, 0)
        count_c = np.append(count_c, cur.size - count_c.sum())
    else:
        edges = np.unique(sorted_quantiles(ref, np.linspace(0.0, 1.0, PSI_BINS + 1)[1:-1]))
        count_r = np.diff(np.searchsorted(ref, edges, side="right"), prepend=0, append=ref.size)
        count_c = np.diff(np.searchsorted(cur, edges, side="right"), prepend=0, append=cur.size)
    return count_r / ref.size, count_c / cur.size


def point_masses(ref: np.ndarray, cur: np.ndarray, min_share: float) -> list[tuple[float, int, int]]:
    """(value, reference count, current count) of every value that holds at least ``min_share``
    of the current sample: a run of that many equal values in the sorted sample."""
    m = cur.size
    run = max(int(math.ceil(min_share * m)), 1)
    if run > m:
        return []
    heads = cur[: m - run + 1][cur[run - 1 :] == cur[: m - run + 1]]
    if heads.size == 0:
        return []
    values = heads[_run_ends(heads)]
    count_c = np.searchsorted(cur, values, side="right") - np.searchsorted(cur, values, side="left")
    count_r = np.searchsorted(ref, values, side="right") - np.searchsorted(ref, values, side="left")
    return [(float(v), int(r), int(c)) for v, r, c in zip(values, count_r, count_c, strict=True)]
