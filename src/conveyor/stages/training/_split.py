"""Train/test splits: by time when the data has an event time, else seeded and stratified."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.core.config import EVENT_TIMESTAMP, Config

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["split_frame"]


def split_frame(frame: pd.DataFrame, config: Config) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(train, test, how): the test set is the latest `test_size` share of rows by event time.

    Rows sharing the boundary timestamp all go to the test side, so nothing from the test
    period leaks into training.
    """
    training, schema = config.training, config.schema
    how = training.split
    if how == "auto":
        how = "random" if schema.event_time.kind == "ingest_time" else "time"
    if how == "time":
        import pandas as pd

        ordered = frame.sort_values([EVENT_TIMESTAMP, schema.entity.key], kind="stable", ignore_index=True)
        times = ordered[EVENT_TIMESTAMP]
        cut = times.iloc[int(len(ordered) * (1 - training.test_size))]
        # the rows before the first row at `cut`: two slices of the one sorted copy, no more copies
        boundary = int(times.searchsorted(cut, side="left"))
        train, test = ordered.iloc[:boundary], ordered.iloc[boundary:]
        test.index = pd.RangeIndex(len(test))
        return train, test, "time"
    from sklearn.model_selection import train_test_split

    stratify = frame[schema.target] if schema.task == "classification" else None
    train, test = train_test_split(
        frame, test_size=training.test_size, random_state=training.seed, stratify=stratify
    )
    return train.reset_index(drop=True), test.reset_index(drop=True), "random"
