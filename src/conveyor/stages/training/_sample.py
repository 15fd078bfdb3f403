"""Training past memory: the training set read in the columns and rows a model needs.

Training reads the dataset stage's Parquet file in its model's inputs, the target, the event
time and the entity key only (the columns the split and the model read). Above
`training.max_rows` rows it reads a seeded, time-aware sample of exactly that many:

- the event times are cut into `_STRATA` strata of equal row counts (their quantiles), and
  each stratum gives its share of the sample, so every period is represented as in the data
  and the time split's test side (the latest `test_size` of the rows) keeps its share;
- within a stratum, the rows are those with the smallest hash of (entity key, event time)
  seeded by `training.seed`: the same rows on every run, whatever order the file holds them in.

The file is read by Polars' streaming engine (a pass over the needed columns, in bounded
memory); only the sampled rows come into memory. What was read is said everywhere a model is
shown: "trained on N of M rows" in the run table (when sampled), the MLflow runs' tag
`conveyor.trained_on`, and `conveyor models show`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.core.config import EVENT_TIMESTAMP, Config

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

__all__ = ["TRAINED_ON_TAG", "TrainingRows", "read_training_rows", "trained_on"]

TRAINED_ON_TAG = "conveyor.trained_on"
_STRATA = 100
"""Time strata of the sample (each at least one row of it)."""
_HASH = "__conveyor_hash"
_STRATUM = "__conveyor_stratum"
_ROW = "__conveyor_row"
_BOUND = "__conveyor_bound"


def _cuts(lazy: pl.LazyFrame, times: pl.Expr, strata: int) -> list[int]:
    """The event times' `strata`-quantiles ("lower": the value at floor((n - 1) q) of the sorted times).

    One sort of the one column, then the positions: 99 `quantile` expressions took 38 s at 50M rows
    (0.9 s this way), with the same cuts.
    """
    if strata <= 1:
        return []
    ordered = lazy.select(times.drop_nulls().sort()).collect(engine="streaming").to_series()
    n = len(ordered)
    if n == 0:
        return []
    cuts = ordered.gather([math.floor((n - 1) * (i / strata)) for i in range(1, strata)]).to_list()
    return sorted({int(c) for c in cuts})


@dataclass(frozen=True)
class TrainingRows:
    """The training set as training reads it: the needed columns, and all rows or a sample."""

    frame: pd.DataFrame
    total: int
    """Rows of the training set (the sample's `len(frame)` is at most `training.max_rows`)."""

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def sampled(self) -> bool:
        return self.rows < self.total


def trained_on(rows: int, total: int, max_rows: int | None) -> str:
    """`trained on N of M rows`, with why when N < M."""
    text = f"trained on {rows:,} of {total:,} rows"
    if rows < total:
        text += f" (a seeded, time-aware sample: training.max_rows {max_rows:,})"
    return text


def needed_columns(config: Config, available: list[str]) -> list[str]:
    """The model's inputs and target, and what the split orders by (event time, entity key)."""
    schema = config.schema
    wanted = dict.fromkeys([schema.entity.key, EVENT_TIMESTAMP, *config.model_inputs(), schema.target])
    present = set(available)
    # an absent column is left to the checks that name it (the encoder, the champion's features)
    return [c for c in wanted if c in present]


def read_training_rows(config: Config, path: Path) -> TrainingRows:
    """The training set's needed columns: every row up to `training.max_rows`, else a seeded, time-aware sample."""
    import pandas as pd
    import polars as pl

    lazy = pl.scan_parquet(path)
    columns = needed_columns(config, lazy.collect_schema().names())
    total = int(lazy.select(pl.len()).collect().item())  # from the file's metadata
    limit = config.training.max_rows
    if limit is None or total <= limit:
        return TrainingRows(pd.read_parquet(path, columns=columns), total)
    sample = _sample(lazy.select(columns), total, limit, config)
    return TrainingRows(sample.to_pandas(), total)


def _quotas(counts: list[int], limit: int) -> list[int]:
    """Each stratum's share of `limit` rows, proportional to its rows (largest remainders get one more)."""
    total = sum(counts)
    exact = [limit * n / total for n in counts]
    quotas = [min(n, math.floor(e)) for n, e in zip(counts, exact)]
    spare = limit - sum(quotas)
    for index in sorted(range(len(counts)), key=lambda i: (-(exact[i] - quotas[i]), i)):
        if spare <= 0:
            break
        if quotas[index] < counts[index]:
            quotas[index] += 1
            spare -= 1
    return quotas


def _sample(lazy: pl.LazyFrame, total: int, limit: int, config: Config) -> pl.DataFrame:
    """Exactly `limit` rows: per time stratum its share, the rows with the smallest seeded hashes."""
    import polars as pl

    key = config.schema.entity.key
    strata = max(1, min(_STRATA, limit))
    times = pl.col(EVENT_TIMESTAMP).dt.epoch("us")
    breaks = _cuts(lazy, times, strata)
    stratum = (times.cut(breaks, labels=[str(i) for i in range(len(breaks) + 1)]).to_physical()
               if breaks else pl.lit(0, dtype=pl.UInt32))
    hashed = lazy.with_row_index(_ROW).with_columns(
        pl.struct(key, EVENT_TIMESTAMP).hash(config.training.seed).alias(_HASH), stratum.alias(_STRATUM),
    )
    counts = dict(hashed.group_by(_STRATUM).agg(pl.len()).collect(engine="streaming").iter_rows())
    ids = sorted(counts)
    quotas = dict(zip(ids, _quotas([int(counts[i]) for i in ids], limit)))
    # a first streaming pass keeps each stratum's candidates (a hash below a bound that lets through
    # a few standard deviations more than its quota), so only about `limit` rows reach memory
    bounds = {i: min(1.0, (q + 6 * math.sqrt(q) + 20) / counts[i]) for i, q in quotas.items()}
    top = float(2**64)
    # the bounds joined as a small table: a `replace_strict` of them here made the streaming engine
    # fall back to reading every needed column of every row (10 GB at 50M taxi rows, 666 MiB now)
    bound = pl.LazyFrame({_STRATUM: list(bounds), _BOUND: [min(top - 1, b * top) for b in bounds.values()]},
                         schema={_STRATUM: pl.UInt32, _BOUND: pl.Float64})
    candidates = (
        hashed.join(bound, on=_STRATUM, how="inner")
        .filter(pl.col(_HASH).cast(pl.Float64) < pl.col(_BOUND)).drop(_BOUND)
        .collect(engine="streaming")
        .sort(_ROW)  # a join's output order is not the file's: the ranks' ties go by row order
    )
    quota = pl.col(_STRATUM).replace_strict(list(quotas), list(quotas.values()), return_dtype=pl.Int64)
    chosen = candidates.filter(
        pl.col(_HASH).rank("ordinal").over(_STRATUM) <= quota  # ties of the hash: by row order
    )
    return chosen.sort(_ROW).drop(_ROW, _HASH, _STRATUM)
