"""The logged model's own code (`code/conveyor`): every kind of model Conveyor logs loads and
predicts where Conveyor is not installed, with the numbers Conveyor's serving path gives."""

from __future__ import annotations

import ast
import json
import pickletools
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conveyor.stages.training._encoder import FeatureEncoder
from conveyor.stages.training._estimators import LogTarget, fit, make_lightgbm, make_linear
from conveyor.stages.training._model import Averaged, ConveyorModel
from conveyor.stages.training._portable import model_code

# `python -I -S` with the virtualenv's site-packages put on sys.path by hand: no PYTHONPATH and no
# `.pth` files (how an editable install is found), so `import conveyor` fails, as in a clean
# virtualenv holding only the model's requirements (as tests/e2e/test_bike_lifecycle.py does).
SITE_PACKAGES = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
WITHOUT_CONVEYOR = (
    f"import sys; sys.path.extend({SITE_PACKAGES!r}); import importlib.util; "
    "assert importlib.util.find_spec('conveyor') is None, 'conveyor is importable'"
)


def _data() -> tuple[pd.DataFrame, np.ndarray, FeatureEncoder, np.ndarray]:
    rng = np.random.default_rng(8)
    rows = 400
    frame = pd.DataFrame({"x": rng.normal(size=rows), "z": rng.normal(size=rows),
                          "c": [f"L{i}" for i in rng.integers(0, 5, rows)]})
    frame.loc[::9, "x"] = np.nan
    y = np.exp(1 + 0.6 * frame["x"].fillna(0).to_numpy() + 0.3 * frame["z"].to_numpy() + rng.normal(0, 0.2, rows))
    encoder = FeatureEncoder(["x", "z"], ["c"]).fit(frame)
    return frame, y, encoder, encoder.transform(frame)


def _lightgbm(params: dict[str, Any], seed: int = 1) -> Any:
    return make_lightgbm("regression", {"n_estimators": 30, **params}, seed=seed, threads=1)


KINDS: dict[str, Callable[[FeatureEncoder, np.ndarray, np.ndarray], Any]] = {
    "lightgbm": lambda e, x, y: fit(_lightgbm({}), x, y, e),
    "lightgbm, log target": lambda e, x, y: fit(_lightgbm({"target": "log"}), x, y, e),
    "linear, log target": lambda e, x, y: fit(make_linear("regression", e, {"target": "log"}, 1), x, y, e),
    "averaged, one member of a log target": lambda e, x, y: Averaged(
        [fit(_lightgbm({}), x, y, e), fit(_lightgbm({"target": "log", "num_leaves": 5}, seed=2), x, y, e)]),
    "classifier": lambda e, x, y: fit(make_lightgbm("classification", {"n_estimators": 30}, seed=1, threads=1),
                                      x, (y > np.median(y)).astype(int), e),
}


@dataclass
class Logged:
    folders: dict[str, Path]  # kind -> the logged MLflow model folder
    rows: pd.DataFrame
    expected: dict[str, dict[str, list[Any]]]  # kind -> what Conveyor's own serving path predicts


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Logged:
    import mlflow
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    from conveyor.stages.training._logging import _log_model
    from conveyor.stages.training._tracking import _environment_kept, _quiet_loggers

    root = tmp_path_factory.mktemp("portable")
    frame, y, encoder, x = _data()
    rows = frame.iloc[::7].reset_index(drop=True)
    folders, expected = {}, {}
    with _quiet_loggers(), _environment_kept(), _use_tracking_uri(f"sqlite:///{root / 'mlflow.db'}"):
        # the artifacts here too, not in the default `./mlruns`
        experiment = mlflow.create_experiment("portable", (root / "artifacts").as_uri())
        for number, (kind, make) in enumerate(KINDS.items()):
            estimator = make(encoder, x, y)
            classification = kind == "classifier"
            model = ConveyorModel(encoder, estimator, "classification" if classification else "regression",
                                  ["low", "high"] if classification else None)
            expected[kind] = model.predict_records(rows.to_dict("records"))
            with mlflow.start_run(experiment_id=experiment):
                info = _log_model(mlflow, model, frame.head(5), {})
            folders[kind] = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(root / str(number))))
    return Logged(folders, rows, expected)


def test_every_kind_of_logged_model_predicts_where_conveyor_is_not_installed(logged: Logged, tmp_path: Path) -> None:
    (tmp_path / "rows.json").write_text(json.dumps(logged.rows.to_dict("list")))  # exact floats, NaN as NaN
    folders = {kind: str(folder) for kind, folder in logged.folders.items()}
    code = (
        f"{WITHOUT_CONVEYOR}\n"
        "import json, traceback, mlflow.pyfunc, pandas as pd\n"
        f"rows = pd.DataFrame(json.loads(open({str(tmp_path / 'rows.json')!r}).read()))\n"
        "answers = {}\n"
        f"for kind, folder in {folders!r}.items():\n"
        "    try:\n"
        "        out = mlflow.pyfunc.load_model(folder).predict(rows)\n"
        "        answers[kind] = {'conveyor': sys.modules['conveyor'].__file__,\n"
        "                         'outputs': {name: out[name].tolist() for name in out.columns}}\n"
        "    except Exception:\n"
        "        answers[kind] = {'error': traceback.format_exc().strip().splitlines()[-1]}\n"
        "    for name in [m for m in sys.modules if m == 'conveyor' or m.startswith('conveyor.')]:\n"
        "        del sys.modules[name]  # the next model imports its own copy\n"
        "print(json.dumps(answers))\n"
    )
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.splitlines()[-1])
    errors = {kind: answer["error"] for kind, answer in answers.items() if "error" in answer}
    assert not errors, errors
    for kind, answer in answers.items():
        assert Path(answer["conveyor"]).is_relative_to(logged.folders[kind] / "code"), kind  # the model's own copy
        expected = logged.expected[kind]
        assert set(answer["outputs"]) == set(expected), kind
        assert answer["outputs"]["prediction"] == expected["prediction"], kind
        if "probability" in expected:
            assert max(abs(a - b) for a, b in zip(answer["outputs"]["probability"], expected["probability"],
                                                  strict=True)) == 0, kind


def test_the_copy_holds_every_conveyor_module_a_logged_model_names(logged: Logged, tmp_path: Path) -> None:
    """What a pickle names and what the copied modules import (at the top or in a function) is in the copy."""
    named: set[str] = set()
    for folder in logged.folders.values():
        for _, arg, _ in pickletools.genops((folder / "python_model.pkl").read_bytes()):
            if isinstance(arg, str) and arg.startswith("conveyor."):
                named.add(arg.split(" ")[0])  # GLOBAL's argument is "module name"
    assert {"conveyor.stages.training._model", "conveyor.stages.training._target"} <= named
    copy = model_code(tmp_path)
    copied = {".".join(("conveyor", *path.relative_to(copy).with_suffix("").parts)).removesuffix(".__init__")
              for path in copy.rglob("*.py")}
    for path in copy.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("conveyor."):
                named.add(node.module)
            elif isinstance(node, ast.Import):
                named.update(a.name for a in node.names if a.name.startswith("conveyor."))
    assert named <= copied, sorted(named - copied)
    assert LogTarget.__module__ == "conveyor.stages.training._target"


def test_a_model_pickled_with_the_log_target_at_its_old_place_still_loads_with_conveyor() -> None:
    """Models logged before the log target had its own module name `_estimators.LogTarget`."""
    import pickle

    frame, y, encoder, x = _data()
    model = ConveyorModel(encoder, fit(_lightgbm({"target": "log"}), x, y, encoder), "regression")
    data = pickle.dumps(model, protocol=2)  # GLOBAL ops: the module spelled out, easy to rewrite
    old = data.replace(b"conveyor.stages.training._target\nLogTarget",
                       b"conveyor.stages.training._estimators\nLogTarget")
    assert old != data
    rows = frame.head(20).to_dict("records")
    assert pickle.loads(old).predict_records(rows) == model.predict_records(rows)
