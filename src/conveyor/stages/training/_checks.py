"""Training's checks of the split before any fit: enough rows, a target worth learning."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.core.config import Config
from conveyor.core.errors import TrainingError

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.core.artifacts import Artifact
    from conveyor.stages.training._train import TrainingSetInput


def _check_target(config: Config, train: pd.DataFrame, test: pd.DataFrame) -> list[Any] | None:
    """One clear error before any fit: a constant target, one class, too few rows of a class."""
    target, task = config.schema.target, config.schema.task
    values = train[target].dropna()
    if task == "regression":
        if values.nunique() < 2:
            first = values.iloc[0] if len(values) else None
            shown = first.item() if first is not None and hasattr(first, "item") else first
            raise TrainingError(f"the target {target!r} is constant ({shown!r}) in the training split: nothing to learn")
        return None
    classes = sorted(values.unique().tolist(), key=str)
    if len(classes) < 2:
        raise TrainingError(
            f"the training split holds one class only ({classes}) of {target!r}; a classifier needs at least two"
        )
    search = config.training.search
    need = search.min_folds if search.trials > 0 else 2
    counts = values.astype(str).value_counts()
    rare = counts[counts < need]
    if len(rare):
        shown = ", ".join(f"{k!r}: {v}" for k, v in rare.items())
        raise TrainingError(
            f"too few rows per class of {target!r} in the training split ({shown}); each class needs at least "
            f"{need} (training.search.folds); add rows or merge rare classes"
        )
    if len(classes) == 2 and test[target].astype(str).nunique() < 2:
        raise TrainingError(
            f"the test split holds one class only of {target!r}, so it cannot rank the candidates; "
            "use more rows, or training.split: random (stratified)"
        )
    return [c.item() if hasattr(c, "item") else c for c in classes]


def _check_sizes(train_df: pd.DataFrame, test_df: pd.DataFrame, training_set: Artifact[TrainingSetInput]) -> None:
    if len(train_df) < 10 or len(test_df) < 2:
        raise TrainingError(
            f"too few rows to train and test: {len(train_df)} train, {len(test_df)} test (from {training_set.path})"
        )
