"""The public Python API: `conveyor`'s curated names, imported lazily, and its clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("feast", "mlflow", "pandas", "polars", "numpy", "sklearn", "lightgbm", "fastapi", "pyarrow", "lleaves", "llvmlite")


def test_exported_members() -> None:
    """`conveyor` hands on exactly these names; each one resolves and is listed by dir()."""
    import conveyor

    assert sorted(conveyor.__all__) == ["ConveyorError", "ModelRegistry", "Project", "RunResult", "StageRun",
                                        "__version__"]
    for name in conveyor.__all__:
        assert getattr(conveyor, name) is not None, name
        assert name in dir(conveyor), name
    assert conveyor.Project.__module__ == "conveyor.runner._project"
    with pytest.raises(AttributeError, match="no attribute 'Projekt'"):
        conveyor.Projekt  # noqa: B018


def test_import_and_project_class_import_nothing_heavy() -> None:
    """`import conveyor` and `conveyor.Project` load no Feast, MLflow, pandas, Polars, NumPy:
    a method imports what it needs when it is called."""
    code = ("import sys, conveyor\nconveyor.Project, conveyor.RunResult\n"
            f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in result.stdout, result.stdout


def test_a_folder_without_a_project_file_is_a_clear_error(tmp_path: Path) -> None:
    from conveyor import Project
    from conveyor.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"no conveyor.yaml in .*Project.init"):
        Project(tmp_path)
    with pytest.raises(ConfigError, match="no file"):
        Project.init(tmp_path / "missing.csv", target="y")


def test_run_result_by_name_and_in_order(tmp_path: Path) -> None:
    from conveyor import RunResult, StageRun
    from conveyor.core.artifacts import Artifact, Result

    def stage(name: str, status: str) -> StageRun:
        return StageRun(name, status, 1.5 if status == "ran" else 0.0, f"{name} done",  # type: ignore[arg-type]
                        Artifact("x", tmp_path, "0" * 64, Result()), "inputs changed" if status == "ran" else "")

    result = RunResult("p", (stage("ingest", "cached"), stage("prepare", "ran")))
    assert result["prepare"].seconds == 1.5 and result.ran == ["prepare"] and len(result) == 2
    assert [s.name for s in result] == ["ingest", "prepare"]
    assert "ran (inputs changed)" in str(result) and "prepare done" in str(result)
    with pytest.raises(KeyError, match="it has ingest, prepare"):
        result["train"]
