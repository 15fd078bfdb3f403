"""Feast names for hostile column names: safe, unique ignoring case, deterministic. No Feast needed."""

from __future__ import annotations

import re
from typing import Any

from conveyor.core.config import Config
from conveyor.stages.features._names import field_names

PAYLOAD = 'x", dtype=Float64 if __import__("os").system("touch /tmp/owned") else Float64), Field(name="y'
HOSTILE = [
    'a"b',
    "line\nbreak",
    "back\\slash",
    PAYLOAD,
    "température ☃",
    "n" * 200,
    "a b",
    "a-b",
    "a_b",
    "Temp",
    "temp",
    "event_timestamp_",
    "3rd",
    "",
    "_line2",
]


def hostile_config(features: list[str], key: str = 'the "key"\\', target: str = 'y "target"') -> Config:
    columns: dict[str, Any] = {key: {"type": "integer", "role": "id"}, "when": {"type": "datetime", "role": "event_time"}}
    columns.update({name: {"type": "float", "role": "numeric"} for name in features})
    columns[target] = {"type": "float", "role": "numeric"}
    return Config.model_validate({
        "name": "hostile",
        "source": {"path": "d.csv"},
        "schema": {
            "target": target,
            "task": "regression",
            "entity": {"key": key},
            "event_time": {"kind": "datetime", "columns": ["when"]},
            "columns": columns,
        },
    })


def test_every_name_is_safe_and_unique_ignoring_case() -> None:
    names = field_names(hostile_config(HOSTILE))
    safe = list(names.to_feast.values())
    assert set(names.to_feast) == {names.key, *HOSTILE}
    assert len({s.lower() for s in safe}) == len(safe)
    for name in safe:
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,59}", name), name
    assert names.to_original() == {s: o for o, s in names.to_feast.items()}


def test_plain_names_are_kept_and_others_are_hashed_deterministically() -> None:
    names = field_names(hostile_config(HOSTILE))
    assert names.to_feast["a_b"] == "a_b"  # kept, though `a b` comes first and sanitises to it
    assert names.to_feast["Temp"] == "Temp" and names.to_feast["temp"] != "temp"  # DuckDB folds case
    assert names.to_feast["a b"].startswith("a_b_") and names.to_feast["a-b"].startswith("a_b_")
    assert names.to_feast["3rd"].startswith("c_3rd_")
    assert len(names.to_feast["n" * 200]) <= 48
    assert field_names(hostile_config(HOSTILE)) == names
    reordered = field_names(hostile_config(list(reversed(HOSTILE)))).to_feast
    # only names that collide ignoring case depend on column order (the first one keeps its name)
    assert {o for o in HOSTILE if reordered[o] != names.to_feast[o]} == {"Temp", "temp"}


def test_reserved_names_are_never_used() -> None:
    names = field_names(hostile_config(["event_timestamp", "conveyor_row", "created"], key="Event_Timestamp2"))
    assert {"event_timestamp", "conveyor_row", "created"}.isdisjoint(s.lower() for s in names.to_feast.values())
    assert names.feast_key == "Event_Timestamp2"
