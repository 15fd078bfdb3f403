"""`conveyor init` proposes entities: keys repeated on many rows, with an event time."""

from __future__ import annotations

import random
from pathlib import Path

import yaml

from conveyor.stages.sources import infer_config


def _csv(path: Path, rows: int = 1200, with_time: bool = True) -> Path:
    rng = random.Random(7)
    header = ["ts", "store_id", "zone", "amount", "units", "vendor", "y"]
    lines = [",".join(header if with_time else header[1:])]
    for i in range(rows):
        row = [
            f"2024-01-{1 + i // 48:02d} {(i // 2) % 24:02d}:{i % 2 * 30:02d}:00",
            str(rng.randrange(40)),  # 40 stores: 30 rows per store
            f"Z{rng.randrange(25):02d}",  # zone-like text codes
            f"{rng.random() * 100:.2f}",
            str(rng.randrange(60)),  # an integer measurement: 60 values, no key-like name
            str(rng.randrange(3)),  # 3 vendors: a category
            f"{rng.random():.3f}",
        ]
        lines.append(",".join(row if with_time else row[1:]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_repeated_keys_with_an_event_time_are_proposed_not_turned_on(tmp_path: Path) -> None:
    notes: list[str] = []
    entities: list[str] = []
    config = infer_config(_csv(tmp_path / "d.csv"), target="y", notes=notes, entities=entities)
    assert entities == ["store_id", "zone"]  # not the measurement `units`, not the 3 vendors
    assert config.features.entities == []  # a proposal only
    said = "\n".join(notes)
    assert "store_id: proposed for features.entities (40 distinct keys, 30.0 rows per key on average" in said
    assert "zone: proposed for features.entities (25 distinct keys, 48.0 rows per key" in said
    assert "with the event time ts" in said


def test_no_event_time_no_entity(tmp_path: Path) -> None:
    entities: list[str] = []
    infer_config(_csv(tmp_path / "d.csv", with_time=False), target="y", notes=[], entities=entities)
    assert entities == []


def test_init_writes_the_proposal_as_a_commented_block(tmp_path: Path) -> None:
    from conveyor.runner import init_project

    out = tmp_path / "p" / "conveyor.yaml"
    init_project(_csv(tmp_path / "d.csv"), target="y", output=out, notes=[])
    text = out.read_text()
    block = [line[2:] for line in text.splitlines() if line.startswith("# ") and "Proposed" not in line]
    start = block.index("features:")
    proposed = yaml.safe_load("\n".join(block[start:start + 5]))["features"]
    assert proposed["entities"] == ["store_id", "zone"]
    assert proposed["aggregates"][0] == {"entity": "store_id", "function": "count", "window": "24h",
                                         "name": "store_id_rows_24h"}
    assert yaml.safe_load(text)["features"]["entities"] == []
