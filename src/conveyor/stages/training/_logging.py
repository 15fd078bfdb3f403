"""What every candidate's MLflow run logs besides its metrics: the split as datasets, the model."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from conveyor.core.hashing import hash_json
from conveyor.stages.training._portable import model_code, sys_path_kept
from conveyor.stages.training._tracking import pip_requirements

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.stages.training._model import ConveyorModel
    from conveyor.stages.training._train import _Data


def _log_datasets(mlflow: Any, data: _Data) -> None:
    if not data.datasets:
        data.datasets.extend((_dataset(data, frame, suffix), context) for frame, suffix, context in
                             ((data.train_df, "train", "training"), (data.test_df, "test", "testing")))
    for dataset, context in data.datasets:
        mlflow.log_input(dataset, context=context)


def _dataset(data: _Data, frame: pd.DataFrame, suffix: str) -> Any:
    """An MLflow `PandasDataset` of one side of the split, its schema read without a pass per cell.

    MLflow infers a pandas schema cell by cell in Python (minutes for 1M rows) and hashes the
    rows for its digest. Here the column types come from the first rows, whether a column is
    required from a vectorised null check of every row, and the digest from the training
    set's content hash, the side and the row count.
    """
    from mlflow.data.dataset_source_registry import get_registered_sources
    from mlflow.data.pandas_dataset import PandasDataset
    from mlflow.types.schema import ColSpec, Schema
    from mlflow.types.utils import _infer_schema

    name, target = data.config.name, data.config.schema.target
    digest = hash_json({"training_set": data.training_set.digest, "side": suffix, "rows": len(frame)})[:8]

    class _Split(PandasDataset):
        @cached_property
        def schema(self) -> Any:
            head = _infer_schema(frame.head(1000))
            nulls = frame.isna().any()
            specs = [ColSpec(c.type, c.name, required=not bool(nulls[c.name]))  # type: ignore[arg-type]
                     for c in head.inputs]
            return Schema(specs)  # type: ignore[arg-type]

    # a local file: MLflow registers two equivalent local sources and warns when it has to choose
    local: Any = next(s for s in get_registered_sources() if getattr(s, "__name__", "") == "LocalArtifactDatasetSource")
    source = local(str(data.training_set.path))
    return _Split(frame, source=source, targets=target, name=f"{name}-{suffix}", digest=digest)


def _log_model(mlflow: Any, model: ConveyorModel, example: pd.DataFrame, tags: dict[str, str]) -> Any:
    """The pyfunc with its own code (`code/conveyor`) and pinned requirements: it loads and
    serves (`mlflow models serve`) where those are installed and Conveyor is not."""
    import tempfile
    from pathlib import Path

    from mlflow.models import infer_signature

    signature = infer_signature(example, model.predict(None, example))
    with tempfile.TemporaryDirectory(prefix="conveyor-model-code-") as folder, sys_path_kept():
        return mlflow.pyfunc.log_model(
            name="model", python_model=model, signature=signature, input_example=example,
            pip_requirements=pip_requirements(), code_paths=[str(model_code(Path(folder)))], tags=tags,
        )


def _plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None
