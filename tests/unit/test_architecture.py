"""The layers and the public surface, checked by machines."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is not installed"
    result = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


def test_exported_members() -> None:
    import conveyor
    import conveyor.core
    import conveyor.runner

    assert conveyor.__all__ == ["ConveyorError", "__version__"]
    for module in (conveyor.core, conveyor.runner):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_one_exception_root() -> None:
    from conveyor.core import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.ConveyorError)
