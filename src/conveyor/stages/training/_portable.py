"""The model's own code, logged with it, so the model loads where Conveyor is not installed.

The pickled `ConveyorModel` refers to `training._model`, `training._encoder`, `core.cleaning`
and, for a model of a log-transformed target, `training._target`; its LightGBM predict imports
`training._booster`. They import only MLflow, NumPy, pandas, LightGBM (the model's own) and the
standard library, so a copy of those files, under package files that import nothing, is all an
environment with the model's pip requirements needs to unpickle the model and predict. MLflow
logs the copy as the model's `code/` folder (`code_paths`) and puts that folder first on
`sys.path` when it loads the model.

The copy keeps the package name `conveyor`, as the pickle names it. Where Conveyor is
installed, the copy's `conveyor/__init__.py` imports the installed package in its place, so
loading a model never hides the real one from a later `import conveyor...`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["model_code", "sys_path_kept"]

_MODULES = (
    "core/cleaning.py", "stages/training/_booster.py", "stages/training/_encoder.py", "stages/training/_model.py",
    "stages/training/_target.py",
)
"""What the pickle and the predict import, relative to the package folder (checked by tests that
load each kind of model where `import conveyor` fails, and that read every `conveyor` import of
the copy and every module a logged pickle names)."""

_MARKER = "MODEL_CODE.txt"
"""Present in a copy's `conveyor/` folder and in no installed Conveyor."""

_PACKAGE_INIT = '''\
"""A copy of the few Conveyor modules a logged model unpickles; not the Conveyor package.

Where Conveyor is installed, importing `conveyor` imports that package instead of this copy.
"""

import os
import sys
from importlib.machinery import PathFinder
from importlib.util import module_from_spec


def _installed():
    """The spec of an installed `conveyor`: on sys.path outside any model's copy, or from
    another finder (an editable install); None if there is none."""
    def copy(entry):
        return os.path.isfile(os.path.join(entry or os.curdir, "conveyor", "{marker}"))

    spec = PathFinder.find_spec(__name__, [entry for entry in sys.path if not copy(entry)])
    for finder in sys.meta_path:
        if spec is not None:
            break
        if finder is not PathFinder and hasattr(finder, "find_spec"):
            spec = finder.find_spec(__name__, None)
    return spec if spec is not None and spec.loader is not None else None


_spec = _installed()
if _spec is not None:
    _module = module_from_spec(_spec)
    sys.modules[__name__] = _module  # the import statement returns what sys.modules holds
    _spec.loader.exec_module(_module)
'''.replace("{marker}", _MARKER)

_MARKER_TEXT = """\
The Conveyor modules that a model logged by Conveyor {version} needs to load, and nothing else.
MLflow puts the folder above this one on sys.path when it loads the model (code_paths).
"""


def model_code(folder: Path) -> Path:
    """Write the copy into `folder/conveyor` and return that folder, for `code_paths`."""
    from conveyor._version import __version__

    source = Path(__file__).resolve().parents[2]  # the package folder: stages/training/_portable.py
    package = folder / "conveyor"
    for relative in _MODULES:
        target = package / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((source / relative).read_bytes())
    for sub in ("core", "stages", "stages/training"):
        (package / sub / "__init__.py").write_text("")
    (package / "__init__.py").write_text(_PACKAGE_INIT)
    (package / _MARKER).write_text(_MARKER_TEXT.format(version=__version__))
    return package


@contextlib.contextmanager
def sys_path_kept() -> Iterator[None]:
    """`sys.path` as it was, after the block.

    MLflow puts a model's `code/` folder first on `sys.path` whenever it loads the model (also
    while logging it, to check the input example) and leaves it there. This process imported
    `conveyor` already, so the copy is never used here; one more entry per load would only
    slow every later import.
    """
    before = list(sys.path)
    try:
        yield
    finally:
        sys.path[:] = before
