"""Expectations on the real datasets the demo and the tests read."""

from __future__ import annotations

import hashlib

import polars as pl
import pytest

from tests.conftest import BIKE_CSV, CREDIT_CSV

PINNED = {
    BIKE_CSV: "b03a2d02e8c10f435c43c7f0b358b7e34a003afea53dbc37f0183f2763295133",
    CREDIT_CSV: "a0f0ab49d6326671d6cd83be5c88dcf18007025fe9a53ecd699119c871176ca1",
}


@pytest.mark.parametrize("path", list(PINNED), ids=lambda p: p.name)
def test_checksums_are_pinned(path) -> None:
    assert hashlib.sha256(path.read_bytes()).hexdigest() == PINNED[path]


def test_bike_sharing_quirks_the_demo_relies_on() -> None:
    frame = pl.read_csv(BIKE_CSV)
    assert frame.shape == (17379, 17)
    assert (frame["casual"] + frame["registered"] == frame["cnt"]).all()  # the leak the demo drops
    assert (frame["windspeed"] == 0).sum() == 2180  # read as missing by the example project's cleaning rule (examples/bike-sharing/conveyor.yaml)
    assert frame["yr"].value_counts().sort("yr")["count"].to_list() == [8645, 8734]


def test_credit_default_quirks() -> None:
    import re

    limit_bal = [line.split(",")[1] for line in CREDIT_CSV.read_text().splitlines()[1:]]
    assert sum(bool(re.fullmatch(r"\d+e\+0\d", v)) for v in limit_bal) == 4150  # scientific notation
    frame = pl.read_csv(CREDIT_CSV, infer_schema_length=None)
    assert frame.height == 30000 and frame["ID"].n_unique() == 30000
    assert frame["default.payment.next.month"].mean() == pytest.approx(0.2212, abs=1e-3)
