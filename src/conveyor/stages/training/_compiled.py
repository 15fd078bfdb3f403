"""A LightGBM booster's trees compiled to native code (lleaves, through LLVM), for serving.

LightGBM's predictor walks its trees node by node in a loop; lleaves turns each tree into code and
the forest into one function. On the bike champion (794 trees) 100 random rows took 0.9 ms compiled
against 5.7 ms in LightGBM (`Booster.predict` or `BoosterPredictor`; `benchmarks/compiled_predict.py`),
with values within about 1e-13 of LightGBM's, relative (the trees are summed in another order, so
not bit for bit). The price is the compile: about 36 s of CPU for those 794 trees. So:

- serving starts on LightGBM and compiles in a background thread (`TreeCompiler`), which runs
  lleaves in a child process at a lower priority (`_compile_apart`); each booster's compiled
  predictor replaces its LightGBM one when it is ready (`ConveyorModel.use_predictor`), and no
  request waits for it;
- the object code goes to a cache file named by a hash of the booster's model text, lleaves and
  llvmlite versions and the host CPU (the code is built for it), written atomically (a unique
  temporary file renamed into place). One process compiles a key under an `fcntl` lock on
  `<key>.lock`; the other workers, a restart or a hot swap back to a known model wait on that lock
  in their own background thread and load the file (0.15-0.2 s for the bike champion, the check
  below included);
- before a compiled predictor is used it must give LightGBM's values (within `TOLERANCE`) on rows
  built from the model's own split thresholds, categories and missing values: an objective,
  a tree kind or a version lleaves gets wrong keeps LightGBM, with the reason in the log (lleaves
  1.3 ignores the leaf models of `linear_tree`, for one: the check refuses those trees).

lleaves and llvmlite are imported here only, when a compile starts: `conveyor --help` and training
never load them. lleaves 1.3 needs llvmlite 0.44 (0.45 removed the legacy pass manager it uses).
Multiclass (softmax), binary, regression, categorical splits and missing values are supported.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: `conveyor.Project` imports this package, and no NumPy with it
    import numpy as np

__all__ = ["COMPILED", "LIGHTGBM", "TOLERANCE", "CompiledPredictor", "TreeCompiler", "compile_booster"]

log = logging.getLogger("conveyor.serving")

COMPILED = "compiled"
LIGHTGBM = "lightgbm"

TOLERANCE = 1e-9
"""Largest difference from LightGBM accepted, relative to the value (absolute below 1)."""

_PROBE_ROWS = 512
_SMALL_CODES = tuple(float(code) for code in range(-1, 8))
"""Besides the model's own values: small integers (category codes, unseen ones, -1) and zero."""

_ZERO_BAND = 1e-30
"""Thresholds this close to zero are not probed (see `_split_values`)."""

_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()


class CompiledPredictor:
    """`booster.predict(matrix)` through the compiled trees, for a float64, C-ordered 2-D matrix;
    the same shape of answer as `BoosterPredictor` (1-D, or rows x classes)."""

    kind = COMPILED

    def __init__(self, booster: Any, compiled: Any, columns: int) -> None:
        self.booster = booster  # `ConveyorModel` checks the predictor belongs to the booster it is asked for
        self._compiled = compiled
        self.columns = columns

    def accepts(self, matrix: np.ndarray) -> bool:
        """Only what lleaves reads in place: for any other matrix it takes the address of a converted
        copy it does not keep alive (`ndarray_to_ptr`); the model hands such input to LightGBM."""
        import numpy as np

        return (matrix.ndim == 2 and matrix.dtype == np.float64 and matrix.flags.c_contiguous
                and matrix.shape[1] == self.columns and 0 < matrix.shape[0] < 2**31 - 1)

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        found: np.ndarray = self._compiled.predict(matrix, n_jobs=1)  # the server's workers are the parallelism
        return found


def model_text(booster: Any) -> str:
    """The booster as LightGBM's model text, cut at the iteration `Booster.predict` uses by default."""
    best = int(booster.best_iteration)
    text: str = booster.model_to_string(num_iteration=best if best > 0 else -1)
    return text


def cache_key(text: str) -> str:
    """What the object code depends on: the model, the compiler's versions and the CPU it targets."""
    from importlib.metadata import version

    import llvmlite.binding as llvm

    llvm.initialize()
    llvm.initialize_native_target()
    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:  # LLVM cannot always read them; lleaves then compiles without
        features = ""
    digest = hashlib.sha256()
    for part in (version("lleaves"), version("llvmlite"), llvm.get_process_triple(), llvm.get_host_cpu_name(), features):
        digest.update(part.encode() + b"\0")
    digest.update(text.encode())
    return digest.hexdigest()[:32]


def compile_booster(booster: Any, folder: Path) -> tuple[CompiledPredictor, bool]:
    """The booster's compiled predictor, from `folder`'s cache or compiled into it (under its lock),
    and whether this call compiled it. Raises when lleaves cannot compile the model, or when its
    values differ from LightGBM's. A folder that cannot be written (a read-only project) is no
    cache: the trees are compiled for this process alone."""
    text = model_text(booster)
    key = cache_key(text)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        with tempfile.TemporaryDirectory(prefix="conveyor-compile-") as private:
            return _load_or_compile(booster, text, key, Path(private))
    with _locked(folder / f"{key}.lock"):
        return _load_or_compile(booster, text, key, folder)


def _load_or_compile(booster: Any, text: str, key: str, folder: Path) -> tuple[CompiledPredictor, bool]:
    import lleaves

    target = folder / f"{key}.o"
    compiled_now = not target.exists()
    with _model_file(text, folder) as model_file:
        if compiled_now:
            temporary = folder / f".{key}.{os.getpid()}.{threading.get_ident()}.tmp"
            try:
                _compile_apart(model_file, temporary)
                os.replace(temporary, target)
            finally:
                temporary.unlink(missing_ok=True)
        model = lleaves.Model(model_file=str(model_file))
        model.compile(cache=str(target))  # loads the object code (lleaves reads the file whole, here)
    predictor = CompiledPredictor(booster, model, int(booster.num_feature()))
    verify(predictor, booster, text)
    return predictor, compiled_now


_CHILD = """
import os, sys
if sys.platform == "linux":  # ended with the server: no orphan compile after a Ctrl-C (PR_SET_PDEATHSIG, SIGTERM)
    import ctypes
    ctypes.CDLL(None).prctl(1, 15)
os.nice(10)
import lleaves
lleaves.Model(model_file=sys.argv[1]).compile(cache=sys.argv[2])
"""
"""The compile, in a process of its own, at a lower priority than the server's requests."""


def _compile_apart(model_file: Path, out: Path) -> None:
    """Compile the model file's trees into object code at `out`, in a child process: lleaves builds
    the LLVM IR in Python (10 s of CPU of the 36 s for the 794-tree bike champion) and would hold the
    server's GIL against its requests that long; and a crash inside LLVM ends the child, not the server."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _CHILD, str(model_file), str(out)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0 or not out.exists():
        lines = done.stderr.strip().splitlines()
        raise RuntimeError(f"lleaves did not compile the trees (exit {done.returncode}): "
                           f"{lines[-1] if lines else 'no message'}")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One compile of a key at a time: across processes by `fcntl.flock` (released by the kernel
    when a holder dies), and across this process's threads by a lock of its own (flock is per open
    file, and two threads of one process must not both compile either)."""
    with _process_locks_guard:
        own = _process_locks.setdefault(str(path), threading.Lock())
    with own, path.open("a") as handle:
        try:
            import fcntl
        except ImportError:  # not on POSIX: one process at a time is not enforced
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def _model_file(text: str, folder: Path) -> Iterator[Path]:
    """The model text in a temporary file: lleaves reads its model (and, from a cache, its shape) from a file."""
    handle, name = tempfile.mkstemp(prefix=".model.", suffix=".txt", dir=folder)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def verify(predictor: CompiledPredictor, booster: Any, text: str) -> None:
    """Raise unless the compiled trees give LightGBM's values on rows made of the model's own split
    thresholds (and the values just above them), category codes, zero and missing values."""
    import numpy as np

    columns = predictor.columns
    rng = np.random.default_rng(0)
    values = _split_values(text, columns)
    probe = np.empty((_PROBE_ROWS, columns), dtype=np.float64)
    for column in range(columns):
        pool = np.concatenate([values[column], np.nextafter(values[column], np.inf), _SMALL_CODES, [np.nan]])
        probe[:, column] = rng.choice(pool, size=_PROBE_ROWS)
    expected = np.asarray(booster.predict(probe, num_threads=1), dtype=np.float64)  # its best iteration, as served
    found = predictor(probe)
    if found.shape != expected.shape:
        raise ValueError(f"the compiled trees answer in shape {found.shape}, LightGBM in {expected.shape}")
    gap = np.abs(found - expected) / np.maximum(1.0, np.abs(expected))
    if not np.all(np.isfinite(found) == np.isfinite(expected)) or np.nanmax(gap) > TOLERANCE:
        raise ValueError(f"the compiled trees differ from LightGBM by up to {np.nanmax(gap):.3g} "
                         f"(relative) on {_PROBE_ROWS} probe rows; more than {TOLERANCE:g} is not accepted")


_SPLIT = re.compile(r"^(split_feature|threshold|decision_type)=(.*)$", re.MULTILINE)


def _split_values(text: str, columns: int) -> list[np.ndarray]:
    """Per feature, the thresholds its numeric splits compare with, from the model text."""
    import numpy as np

    found: list[list[float]] = [[] for _ in range(columns)]
    tree: dict[str, list[str]] = {}
    for match in _SPLIT.finditer(text):
        tree[match.group(1)] = match.group(2).split()
        if len(tree) == 3:
            for feature, threshold, kind in zip(tree["split_feature"], tree["threshold"], tree["decision_type"]):
                if int(kind) & 1 == 0:  # numeric (bit 0 marks a categorical split, whose threshold is an index)
                    found[int(feature)].append(float(threshold))
            tree = {}
    # LightGBM takes |x| <= 1e-35 as zero (its split "at zero" has a threshold of -1e-35), lleaves
    # compares the number itself: they part on inputs that small but not zero, which data does not
    # hold; zero itself is probed
    return [np.unique([t for t in f if abs(t) > _ZERO_BAND]) for f in found]


class TreeCompiler:
    """Compiles a model's LightGBM boosters in a daemon thread and hands each one to the model as it
    is ready; the model keeps predicting with LightGBM until then, and for good if a compile fails.

    `state`: `compiling`, `compiled` (every booster), `lightgbm` (nothing compiled: the reason is in
    `reason`, logged once) or `none` (the model has no LightGBM booster)."""

    def __init__(
        self, model: Any, folder: Path, label: str,
        compile: Callable[[Any, Path], tuple[CompiledPredictor, bool]] = compile_booster,
    ) -> None:
        self.model, self.folder, self.label = model, folder, label
        self._compile = compile
        self.boosters: list[Any] = list(model.boosters())
        self.state = "compiling" if self.boosters else "none"
        self.reason: str | None = None
        self.compiled = 0
        """Boosters this process compiled (the others came from the cache)."""
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def predictor(self) -> str:
        """Which predictor answers now: `compiled` once every booster is, else `lightgbm` (or another, for
        a model without LightGBM)."""
        if self.state == COMPILED:
            return COMPILED
        return LIGHTGBM if self.boosters else "estimator"

    def start(self) -> TreeCompiler:
        if not self.boosters:
            self._done.set()
            return self
        self._thread = threading.Thread(target=self._run, name="conveyor-compile", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """True once the compile is over (compiled or not)."""
        return self._done.wait(timeout)

    def _run(self) -> None:
        try:
            found = []
            for booster in self.boosters:
                predictor, compiled_now = self._compile(booster, self.folder)
                self.compiled += int(compiled_now)
                found.append(predictor)
            for booster, predictor in zip(self.boosters, found):  # swapped together, once all are ready
                self.model.use_predictor(booster, predictor)
            self.state = COMPILED
            log.warning("conveyor: %s predicts with compiled trees (%d of %d compiled here, the rest from %s)",
                     self.label, self.compiled, len(self.boosters), self.folder)
        except Exception as exc:  # lleaves missing, an unsupported model, a full disk: LightGBM keeps answering
            self.reason = f"{type(exc).__name__}: {exc}"
            self.state = LIGHTGBM
            log.warning("conveyor: %s keeps LightGBM's predictor; compiling its trees failed: %s", self.label, self.reason)
        finally:
            self._done.set()
