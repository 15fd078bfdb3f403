"""Leakage checks: pure numpy functions, shared by `conveyor init` and the EDA report.

A column that reproduces the target is only known once the target is: a model that uses it
scores beautifully in training and is useless in serving. `find_leaks` names such columns,
each with the evidence:

- an exact arithmetic identity: `a + b == target` or `a - b == target` for a pair of numeric
  columns on 99 % of rows (bike sharing: casual + registered == cnt), or a sum of columns with
  coefficients +1/-1, to the cent, on most rows (taxi: fare_amount == total_amount - extra -
  mta_tax - tip_amount - ...); the columns the target is a part of (coefficient +1) are flagged;
- a single column that predicts the target near-perfectly (|correlation| >= 0.995 for a
  numeric target, ROC AUC >= 0.995 for a two-class one);
- a column filled exactly when the target is set (or when it is one class).

The caller turns its frame into `LeakInputs` (numpy arrays), so this module imports no
dataframe library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Leak", "LeakInputs", "find_leaks"]

_SHARE = 0.99
"""Share of rows a missingness pattern (or a pair identity) must hold on to count."""
_IDENTITY_SHARE = 0.6
"""Share of complete rows a sum of columns must equal the target on, to the cent: real files have
exceptions (NYC taxi, March 2019: the congestion surcharge is left out of the total on 29 % of rows),
and columns unrelated to the target never match it exactly on most rows."""
_MIN_LEVELS = 10
"""An identity must hold over at least this many distinct target values (not only on zeros)."""
_NEAR_PERFECT = 0.995
_MIN_ROWS = 20


@dataclass(frozen=True)
class Leak:
    column: str
    evidence: str


@dataclass(frozen=True)
class LeakInputs:
    """What leak detection reads of a frame, as numpy arrays of one length (one per row)."""

    target: str
    task: str
    labels: np.ndarray
    """The target as text (object array), None where it is missing."""
    values: np.ndarray | None
    """The target as floats (NaN where missing), or None when it is not mostly numbers."""
    filled: dict[str, np.ndarray] = field(default_factory=dict)
    """Each candidate column, in order: True where it holds a value."""
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    """The candidate columns that are mostly numbers: floats, NaN where missing."""


def _close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import numpy as np

    close: np.ndarray = np.abs(a - b) <= 0.0051 + 1e-9 * np.maximum(np.abs(a), np.abs(b))
    return close


def _pair_identities(target: str, t: np.ndarray, cols: dict[str, np.ndarray]) -> list[Leak]:
    import numpy as np

    leaks: list[Leak] = []
    names = list(cols)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            x, y = cols[a], cols[b]
            mask = ~(np.isnan(t) | np.isnan(x) | np.isnan(y))
            if mask.sum() < _MIN_ROWS or np.allclose(x[mask], 0) or np.allclose(y[mask], 0):
                continue
            for text, value, flagged in (
                (f"{a} + {b} == {target}", x + y, (a, b)),
                (f"{a} - {b} == {target}", x - y, (a,)),
                (f"{b} - {a} == {target}", y - x, (b,)),
            ):
                ok = _close(value, t) & mask
                held, total = int(ok.sum()), int(mask.sum())
                if held >= _SHARE * total and len(np.unique(t[ok])) >= _MIN_LEVELS:
                    evidence = f"{text} on {held} of {total} rows"
                    leaks += [Leak(c, evidence) for c in flagged]
                    break
    return leaks


def _modal_share(residual: np.ndarray) -> tuple[float, float]:
    """The most common residual (to the cent) and the share of rows that have it."""
    import numpy as np

    values, counts = np.unique(np.round(residual, 2), return_counts=True)
    top = int(np.argmax(counts))
    return float(values[top]), float(counts[top]) / len(residual)


def _sum_identity(target: str, t: np.ndarray, cols: dict[str, np.ndarray]) -> list[Leak]:
    """target == a +/- b +/- c ... (coefficients +1/-1), to the cent, on most complete rows.

    Greedy from an anchor (a column correlated with the target): add the +/-1 term after which
    most rows share one residual value, while that share grows; then the terms that bring that
    value to 0 (near-constant columns such as a flat tax); then count the rows matched exactly.
    """
    import numpy as np

    names = [n for n, v in cols.items() if np.isnan(v).mean() <= 0.05]  # a sparse column would empty the rows
    if len(names) < 2:
        return []
    x = np.column_stack([cols[n] for n in names])
    mask = ~(np.isnan(t) | np.isnan(x).any(axis=1))
    if mask.sum() < _MIN_ROWS:
        return []
    xm, tm = x[mask], t[mask]
    spread = xm.std(axis=0)
    corr = np.array([
        abs(float(np.corrcoef(xm[:, j], tm)[0, 1])) if spread[j] > 0 else 0.0 for j in range(len(names))
    ])
    best: tuple[int, dict[int, float]] = (0, {})
    for anchor in np.argsort(-corr)[:3]:
        if corr[anchor] < 0.5:
            break
        terms = {int(anchor): 1.0}
        residual = tm - xm[:, anchor]
        share = _modal_share(residual)[1]
        while len(terms) < len(names):
            options = [(_modal_share(residual - sign * xm[:, j])[1], j, sign)
                       for j in range(len(names)) if j not in terms and spread[j] > 0 for sign in (1.0, -1.0)]
            if not options:
                break
            new_share, j, sign = max(options)
            if new_share <= share + 1e-9:
                break
            terms[j], residual, share = sign, residual - sign * xm[:, j], new_share
        # a constant offset left: columns that are (nearly) that constant; only worth it when most rows
        # already share one residual (else no identity can hold on enough rows, and this is the slow part)
        for _ in range(len(names) if share >= _IDENTITY_SHARE / 2 else 0):
            offset = _modal_share(residual)[0]
            if abs(offset) < 0.005:
                break
            shifted = [(abs(_modal_share(residual - s * xm[:, j])[0]), j, s) for j in range(len(names)) if j not in terms
                       for s in (1.0, -1.0)]
            fits = [fit for fit in shifted if fit[0] < abs(offset) - 1e-9]
            if not fits:
                break
            _, j, sign = min(fits)
            terms[j], residual = sign, residual - sign * xm[:, j]
        exact = _close(residual, np.zeros_like(residual))
        if int(exact.sum()) > best[0] and len(np.unique(tm[exact])) >= _MIN_LEVELS:
            best = (int(exact.sum()), terms)
    held, terms = best
    if len(terms) < 2 or held < _IDENTITY_SHARE * len(tm):
        return []
    text = " ".join(f"{'+' if c > 0 else '-'} {names[j]}" for j, c in terms.items()).lstrip("+ ")
    evidence = f"{target} == {text} (to the cent) on {held} of {len(tm)} rows"
    return [Leak(names[j], evidence) for j, c in terms.items() if c > 0]


def _single_feature(target: str, t: np.ndarray, cols: dict[str, np.ndarray], two_class: bool) -> list[Leak]:
    import numpy as np

    leaks = []
    for name, x in cols.items():
        mask = np.isfinite(t) & np.isfinite(x)  # inf and NaN are no evidence (prepare sets them aside)
        if mask.sum() < _MIN_ROWS or np.nanstd(x[mask]) == 0:
            continue
        if two_class:
            from scipy.stats import rankdata

            ranks = rankdata(x[mask])
            positive = t[mask] == np.max(t[mask])
            n_pos, n_neg = int(positive.sum()), int((~positive).sum())
            if n_pos == 0 or n_neg == 0:
                continue
            auc = (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
            if max(auc, 1 - auc) >= _NEAR_PERFECT:
                leaks.append(Leak(name, f"{name} alone separates the classes of {target}: ROC AUC {max(auc, 1 - auc):.4f}"))
        else:
            r = float(np.corrcoef(x[mask], t[mask])[0, 1])
            if abs(r) >= _NEAR_PERFECT:
                leaks.append(Leak(name, f"{name} alone predicts {target}: correlation {r:.4f} on {int(mask.sum())} rows"))
    return leaks


def _missingness(inputs: LeakInputs) -> list[Leak]:
    import numpy as np

    target, labels = inputs.target, inputs.labels
    target_set = np.asarray([v is not None for v in labels], dtype=bool)
    levels: list[str] = np.unique(labels[target_set]).tolist() if inputs.task == "classification" else []
    leaks = []
    for name, filled in inputs.filled.items():
        share = filled.mean() if len(filled) else 0.0
        if share in (0.0, 1.0):
            continue
        if not target_set.all() and (filled == target_set).mean() >= _SHARE:
            leaks.append(Leak(name, f"{name} is filled on {int((filled & target_set).sum())} of {int(target_set.sum())} "
                                    f"rows where {target} is set and on {int((filled & ~target_set).sum())} where it is not"))
            continue
        for label in levels:
            is_label = labels == label
            if (filled[target_set] == is_label[target_set]).mean() >= _SHARE:
                leaks.append(Leak(name, f"{name} is filled exactly when {target} is {label!r} "
                                        f"({int((filled & is_label).sum())} of {int(is_label.sum())} rows)"))
                break
    return leaks


def find_leaks(inputs: LeakInputs) -> list[Leak]:
    """Columns of `inputs.filled` that reproduce the target, each with its evidence (first finding per column)."""
    import numpy as np

    found: dict[str, Leak] = {}

    def add(leaks: list[Leak]) -> None:
        for leak in leaks:
            found.setdefault(leak.column, leak)

    target, task = inputs.target, inputs.task
    add(_missingness(inputs))
    t = inputs.values
    if t is None and task == "classification":
        levels = sorted({v for v in inputs.labels if v is not None})
        if len(levels) == 2:
            t = np.asarray([np.nan if v is None else float(v == levels[1]) for v in inputs.labels], dtype=float)
    if t is None:
        return [found[n] for n in inputs.filled if n in found]
    cols = {n: v for n, v in inputs.numeric.items() if n in inputs.filled}
    two_class = task == "classification" and len(np.unique(t[~np.isnan(t)])) == 2
    if task == "regression":
        add(_pair_identities(target, t, cols))
        add(_sum_identity(target, t, {n: v for n, v in cols.items() if n not in found}))
    if task == "regression" or two_class:
        add(_single_feature(target, t, cols, two_class))
    return [found[n] for n in inputs.filled if n in found]
