"""A LightGBM booster's predictions through LightGBM's C API, without `Booster.predict`'s work per call.

`Booster.predict` builds a predictor object per call (two C calls, a deep copy of its keyword
arguments, the parameter string, the input checks) and LightGBM parses that parameter string
again in C; on a single row that is a third of the predict (0.09 ms -> 0.06 ms on the bike
champion's 794 trees). `BoosterPredictor` asks the same C functions `Booster.predict` ends in,
with the same arguments: `LGBM_BoosterPredictForMat` for a batch, and for one row
`LGBM_BoosterPredictForMatSingleRowFast`, whose configuration is parsed once. That configuration
holds the single-row buffers, so one thread at a time uses it (LightGBM's own tests give each
thread its own): a lock, uncontended in a server worker, keeps a model shared by threads safe.
The values are the same, bit for bit.

It reads `lightgbm.basic`'s loaded library; when that is not there as expected (another
LightGBM), `booster_predictor` gives None and the caller keeps `Booster.predict`.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from typing import Any

import numpy as np

__all__ = ["BoosterPredictor", "booster_predictor"]

_FLOAT64 = 1  # C_API_DTYPE_FLOAT64
_ROW_MAJOR = 1
_NORMAL = 0  # C_API_PREDICT_NORMAL: the objective's transform applied, as `Booster.predict` does by default


def booster_predictor(booster: Any, threads: int) -> BoosterPredictor | None:
    """A predictor of `booster` (a `lightgbm.Booster`) on `threads` threads, or None when it cannot be made."""
    try:
        return BoosterPredictor(booster, threads)
    except (ImportError, AttributeError, TypeError, ValueError):
        return None


class BoosterPredictor:
    """`booster.predict(matrix, num_threads=threads)` for a float64, C-ordered 2-D matrix."""

    def __init__(self, booster: Any, threads: int) -> None:
        from lightgbm.basic import _LIB, _safe_call  # type: ignore[attr-defined]  # the library Booster.predict calls

        self._lib, self._check = _LIB, _safe_call
        self.booster = booster  # keeps the handle alive as long as this predictor
        self._handle = booster._handle
        self._params = ctypes.c_char_p(f"num_threads={threads}".encode())
        self._iteration = int(booster.best_iteration)  # Booster.predict's default: the best iteration, or all (<= 0)
        self.columns = int(booster.num_feature())
        per_row = ctypes.c_int64(0)
        _safe_call(_LIB.LGBM_BoosterCalcNumPredict(
            self._handle, ctypes.c_int(1), ctypes.c_int(_NORMAL), ctypes.c_int(0), ctypes.c_int(self._iteration),
            ctypes.byref(per_row),
        ))
        self.per_row = int(per_row.value)
        fast = ctypes.c_void_p()
        _safe_call(_LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
            self._handle, ctypes.c_int(_NORMAL), ctypes.c_int(0), ctypes.c_int(self._iteration), ctypes.c_int(_FLOAT64),
            ctypes.c_int32(self.columns), self._params, ctypes.byref(fast),
        ))
        self._fast = fast
        self._fast_lock = threading.Lock()
        weakref.finalize(self, _LIB.LGBM_FastConfigFree, fast)

    def accepts(self, matrix: np.ndarray) -> bool:
        return (matrix.ndim == 2 and matrix.dtype == np.float64 and matrix.flags.c_contiguous
                and matrix.shape[1] == self.columns and 0 < matrix.shape[0] < 2**31)

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        rows = matrix.shape[0]
        out = np.empty(rows * self.per_row, dtype=np.float64)
        written = ctypes.c_int64(0)
        data = matrix.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        result = out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        if rows == 1:
            with self._fast_lock:
                self._check(self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                    self._fast, data, ctypes.byref(written), result,
                ))
        else:
            self._check(self._lib.LGBM_BoosterPredictForMat(
                self._handle, data, ctypes.c_int(_FLOAT64), ctypes.c_int32(rows), ctypes.c_int32(self.columns),
                ctypes.c_int(_ROW_MAJOR), ctypes.c_int(_NORMAL), ctypes.c_int(0), ctypes.c_int(self._iteration),
                self._params, ctypes.byref(written), result,
            ))
        if written.value != out.size:
            raise ValueError(f"LightGBM wrote {written.value} predictions for {rows} rows, not {out.size}")
        return out.reshape(rows, self.per_row) if self.per_row > 1 else out
