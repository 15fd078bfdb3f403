"""Training past memory: the training set is read in the columns a model needs, and above
`training.max_rows` as a seeded, time-aware sample of exactly that many rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.conftest import BIKE_DIR


def _config(tmp_path: Path, **training: Any) -> Any:
    from conveyor.core import load_config

    data = yaml.safe_load((BIKE_DIR / "conveyor.yaml").read_text(encoding="utf-8"))
    data["training"] = {**data["training"], **training}
    path = tmp_path / "conveyor.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_config(path)


def _training_set(tmp_path: Path, rows: int = 17_000, shuffled: bool = False) -> Path:
    """A bike-like training set: an hourly event time, the model's inputs, the target, and a column no model reads."""
    from datetime import UTC, datetime, timedelta

    import numpy as np
    import polars as pl

    rng = np.random.default_rng(7)
    start = datetime(2011, 1, 1, tzinfo=UTC)
    frame = pl.DataFrame({
        "row_id": np.arange(1, rows + 1),
        "event_timestamp": [start + timedelta(hours=i) for i in range(rows)],
        **{c: rng.integers(0, 4, rows) for c in ("season", "yr", "holiday", "weekday", "workingday", "weathersit")},
        **{c: rng.random(rows) for c in ("mnth", "hr", "temp", "atemp", "hum", "windspeed")},
        "cnt": rng.integers(0, 900, rows),
        "unused": ["x" * 20] * rows,
    }).with_columns(pl.col("event_timestamp").cast(pl.Datetime("us", "UTC")))
    if shuffled:
        frame = frame.sample(fraction=1.0, shuffle=True, seed=3)
    path = tmp_path / ("shuffled.parquet" if shuffled else "training_set.parquet")
    frame.write_parquet(path)
    return path


def test_every_row_below_the_limit_in_the_needed_columns_only(tmp_path: Path) -> None:
    import pandas as pd

    from conveyor.stages.training._sample import read_training_rows

    path = _training_set(tmp_path)
    config = _config(tmp_path)
    read = read_training_rows(config, path)
    assert not read.sampled and read.rows == read.total == 17_000
    assert "unused" not in read.frame.columns
    assert set(read.frame.columns) == {"row_id", "event_timestamp", *config.model_inputs(), "cnt"}
    whole = pd.read_parquet(path)
    pd.testing.assert_frame_equal(read.frame, whole[read.frame.columns.tolist()])


def test_above_the_limit_a_seeded_time_aware_sample(tmp_path: Path) -> None:
    import polars as pl

    from conveyor.stages.training._sample import read_training_rows

    path = _training_set(tmp_path)
    config = _config(tmp_path, max_rows=1_000)
    read = read_training_rows(config, path)
    assert read.sampled and read.rows == 1_000 and read.total == 17_000
    ids = read.frame["row_id"].tolist()
    assert ids == sorted(ids) and len(set(ids)) == 1_000  # in the file's order, no row twice
    # time-aware: each tenth of the period gives its tenth of the sample (strata of 170 rows, 10 each)
    tenths = pl.Series(ids).cut([1_700 * k for k in range(1, 10)], labels=[str(k) for k in range(10)])
    assert sorted(tenths.value_counts()["count"].to_list()) == [100] * 10
    again = read_training_rows(config, path)
    assert again.frame["row_id"].tolist() == ids  # seeded
    shuffled = read_training_rows(config, _training_set(tmp_path, shuffled=True))
    assert sorted(shuffled.frame["row_id"].tolist()) == ids  # the same rows whatever the file's order
    other = read_training_rows(_config(tmp_path, max_rows=1_000, seed=43), path)
    assert len(set(other.frame["row_id"]) & set(ids)) < 200  # another seed, other rows
    # the time split of the sample: its latest fifth is the latest fifth of the period
    from conveyor.stages.training._split import split_frame

    train, test, how = split_frame(read.frame, config)
    assert how == "time" and len(test) == 200 and test["row_id"].min() > 13_500


@pytest.mark.parametrize(("counts", "limit"), [([5, 5, 5], 7), ([1, 1000, 3], 100), ([10], 10)])
def test_quotas_add_up_to_the_limit(counts: list[int], limit: int) -> None:
    from conveyor.stages.training._sample import _quotas

    quotas = _quotas(counts, limit)
    assert sum(quotas) == limit and all(0 <= q <= n for q, n in zip(quotas, counts))


def test_max_rows_is_validated(tmp_path: Path) -> None:
    from conveyor.core.errors import ConfigError

    with pytest.raises(ConfigError, match="max_rows"):
        _config(tmp_path, max_rows=10)
    assert _config(tmp_path, max_rows=None).training.max_rows is None


@pytest.mark.parametrize("n", [1, 2, 7, 99, 100, 101, 1_000, 12_345])
def test_the_strata_cuts_are_polars_lower_quantiles(n: int) -> None:
    import polars as pl

    from conveyor.stages.training._sample import _cuts

    rng = np.random.default_rng(n)
    micros = rng.integers(0, 10**15, n)
    values = [None if i % 11 == 3 else int(v) for i, v in enumerate(micros)]  # nulls are not counted
    frame = pl.DataFrame({"t": values}, schema={"t": pl.Int64}).lazy()
    expected = frame.select([pl.col("t").quantile(i / 100, "lower").alias(str(i)) for i in range(1, 100)]).collect()
    want = sorted({int(c) for c in expected.row(0) if c is not None})
    assert _cuts(frame, pl.col("t"), 100) == want
    assert _cuts(frame, pl.col("t"), 1) == []
