"""The rows a model was trained on, kept with its run, so a gate never scores it on them.

The gate re-scores the champion on today's test split. When the split changed (random to time),
rows were appended (a time split's latest share then holds rows the champion trained on), or a
champion was retrained, some of those test rows are in the champion's own training split, and
its score there is inflated. So every candidate run logs the entity key and event timestamp of
its training rows (`conveyor/train_rows.parquet`), and the gate counts the test rows the
champion trained on:

- none: the champion is compared on the whole test split, as always;
- some: the candidate and the champion are both scored on the test rows NEITHER trained on,
  if there are at least `UNSEEN_MIN_ROWS` of them and `UNSEEN_MIN_SHARE` of the test split;
  fewer: the champion stays, with the reason and the way out (`conveyor models promote VERSION`);
- a champion without the artifact (logged before it existed): compared as always, with a note
  that its training rows are unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.config import EVENT_TIMESTAMP, Config

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from conveyor.stages.training._model import ConveyorModel

__all__ = ["TRAIN_ROWS", "UNSEEN_MIN_ROWS", "UNSEEN_MIN_SHARE", "Unseen", "compare_unseen", "log_train_rows"]

TRAIN_ROWS = "conveyor/train_rows.parquet"
"""The run artifact of every candidate: the entity key and event timestamp of its training rows."""
UNSEEN_MIN_ROWS = 30
UNSEEN_MIN_SHARE = 0.2
"""The gate compares a challenger with a champion that trained on some test rows on the rows
neither saw only when there are at least max(`UNSEEN_MIN_ROWS`, `UNSEEN_MIN_SHARE` x test rows)
of them: fewer rows make a metric too noisy to replace a champion on (30 is the usual floor of
a stable mean; a fifth of the split keeps the comparison about the same period)."""


def _row_keys(frame: pd.DataFrame, config: Config) -> pd.DataFrame:
    """The entity key (as text) and event timestamp (UTC, ns) of each row: what identifies it."""
    import pandas as pd

    key = config.schema.entity.key
    return pd.DataFrame({
        "key": frame[key].astype(str).to_numpy(),
        # as a column, not `to_numpy()`: a zoned column becomes an object array of Timestamps, built
        # one by one (3.4 s of a 1M-row train stage)
        "ts": pd.to_datetime(frame[EVENT_TIMESTAMP], utc=True).astype("datetime64[ns, UTC]").reset_index(drop=True),
    })


def log_train_rows(mlflow: Any, config: Config, train_df: pd.DataFrame) -> None:
    """Log the training split's row keys with the active run (skipped without key or timestamp)."""
    import tempfile

    if config.schema.entity.key not in train_df.columns or EVENT_TIMESTAMP not in train_df.columns:
        return
    with tempfile.TemporaryDirectory(prefix="conveyor-train-rows-") as folder:
        path = Path(folder) / Path(TRAIN_ROWS).name
        _row_keys(train_df, config).to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=str(Path(TRAIN_ROWS).parent))


def _champion_rows(mlflow_client: Any, run_id: str) -> pd.DataFrame | None:
    """The training rows logged with a run, or None when it has none (logged before they were kept)."""
    import tempfile

    import pandas as pd
    from mlflow.exceptions import MlflowException

    from conveyor.stages.training._tracking import quiet_downloads

    with tempfile.TemporaryDirectory(prefix="conveyor-train-rows-") as staging:
        try:
            with quiet_downloads():
                path = Path(mlflow_client.download_artifacts(run_id, TRAIN_ROWS, staging))
            return pd.read_parquet(path)
        except (MlflowException, OSError, ValueError):
            return None


def seen_mask(test_df: pd.DataFrame, train_rows: pd.DataFrame, config: Config) -> np.ndarray:
    """For each test row: was it one of these training rows?"""
    import numpy as np

    keys = _row_keys(test_df, config)
    seen = keys.merge(train_rows[["key", "ts"]].drop_duplicates(), on=["key", "ts"], how="left", indicator=True)
    return np.asarray(seen["_merge"].to_numpy() == "both")


def unseen_needed(test_rows: int) -> int:
    """The fewest unseen test rows the gate compares on (see `UNSEEN_MIN_SHARE`)."""
    import math

    return max(UNSEEN_MIN_ROWS, math.ceil(UNSEEN_MIN_SHARE * test_rows))


@dataclass(frozen=True)
class Unseen:
    """What the gate does about the test rows the champion trained on."""

    seen: int | None
    """Test rows the champion trained on (None: its training rows are unknown)."""
    test_rows: int
    note: str | None = None
    """Said in the decision: its training rows are unknown."""
    compared_on: str | None = None
    """Where the two were compared instead of the whole test split (None: the whole split)."""
    champion_score: float | None = None
    candidate_score: float | None = None
    refusal: str | None = None
    """Why the champion stays without a comparison (too few unseen rows)."""


def compare_unseen(
    mlflow_client: Any, config: Config, current: Any, candidate_run: str, test_df: pd.DataFrame, metric: str,
    load_champion: Callable[[], ConveyorModel], load_candidate: Callable[[], ConveyorModel],
) -> Unseen:
    """Count the test rows the champion trained on; when some, score both on the rows neither did."""
    rows = _champion_rows(mlflow_client, current.run_id)
    total = len(test_df)
    version = current.version
    if rows is None:
        return Unseen(None, total, note=f"champion v{version}'s training rows are unknown (logged before "
                                        f"{TRAIN_ROWS} was kept): compared on the whole test split")
    if config.schema.entity.key not in test_df.columns or EVENT_TIMESTAMP not in test_df.columns:
        return Unseen(None, total, note=f"the test split has no {config.schema.entity.key!r}/{EVENT_TIMESTAMP} "
                                        f"to match v{version}'s training rows on")
    seen = seen_mask(test_df, rows, config)
    count = int(seen.sum())
    if count == 0:
        return Unseen(0, total)
    candidate_rows = _champion_rows(mlflow_client, candidate_run)
    neither = ~seen
    if candidate_rows is not None:
        neither &= ~seen_mask(test_df, candidate_rows, config)
    free = int(neither.sum())
    trained_on = f"champion v{version} trained on {count} of the {total} test rows"
    needed = unseen_needed(total)
    if free < needed:
        return Unseen(count, total, refusal=(
            f"{trained_on}, and only {free} test rows are unseen by both (at least {needed} needed: "
            f"max({UNSEEN_MIN_ROWS}, {UNSEEN_MIN_SHARE:.0%} of the test split)), so its score there is inflated and "
            f"no fair comparison is possible: it stays"))
    subset = test_df[neither].reset_index(drop=True)
    target = config.schema.target
    try:
        champion = load_champion()
        missing = [f for f in champion.features if f not in subset.columns]
        if missing:
            raise ValueError(f"its features {missing} are not in this training set")
        from conveyor.stages.training._metrics import evaluate

        champion_score = evaluate(champion, subset, target).get(metric)
        candidate_score = evaluate(load_candidate(), subset, target).get(metric)
    except Exception as exc:  # e.g. a class missing from the subset: no fair comparison
        return Unseen(count, total, refusal=(
            f"{trained_on}; the {free} rows neither saw could not be scored ({type(exc).__name__}: {exc}): it "
            "stays"))
    if champion_score is None or candidate_score is None:
        return Unseen(count, total, refusal=f"{trained_on}; no {metric} on the {free} rows neither saw: it stays")
    return Unseen(count, total, compared_on=f"the {free} test rows neither saw ({trained_on})",
                  champion_score=float(champion_score), candidate_score=float(candidate_score))
