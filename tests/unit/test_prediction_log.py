from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conveyor.core.records import PredictionRecord
from conveyor.stages.monitoring import PredictionLog

NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


def record(request_id: str, **changes: Any) -> PredictionRecord:
    fields: dict[str, Any] = {
        "request_id": request_id, "timestamp": NOW, "model": "bike", "model_version": "2", "source": "rows",
        "inputs": {"temp": 0.5, "season": 2, "weather": None}, "prediction": 41.5,
    }
    return PredictionRecord(**{**fields, **changes})


def test_appends_survive_a_new_reader_and_concurrent_writers(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "predictions")

    def write(worker: int) -> None:
        for i in range(50):
            log.append([record(f"{worker}-{i}-{j}", prediction=j) for j in range(3)])

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = PredictionLog(tmp_path / "predictions").records()
    assert len(records) == 600 and len({r.request_id for r in records}) == 600
    assert [r.request_id for r in PredictionLog(tmp_path / "predictions").records(last=2)] == [
        records[-2].request_id, records[-1].request_id,
    ]
    assert [r["request_id"] for r in log.read(last=2)] == [records[-2].request_id, records[-1].request_id]


def test_a_record_round_trips_through_its_json_line(tmp_path: Path) -> None:
    rows = record("a")
    entity = record("b", source="entities", entity=17, prediction="yes", probability=0.75)
    log = PredictionLog(tmp_path)
    log.append([rows, entity])
    assert log.records() == [rows, entity]
    assert PredictionRecord.from_json(entity.to_json()) == entity
    line = json.loads(rows.to_json())
    assert line == {
        "request_id": "a", "prediction": 41.5, "timestamp": "2026-11-27T09:30:00+00:00", "model": "bike",
        "model_version": "2", "source": "rows", "inputs": {"temp": 0.5, "season": 2, "weather": None},
    }  # the log's line format: probability and entity only when there is one
    assert log.read()[1]["entity"] == 17 and log.read()[1]["probability"] == 0.75


def test_a_line_of_the_old_format_still_reads() -> None:
    old = ('{"request_id":"9f","prediction":12.5,"entity":3,"timestamp":"2026-11-26T10:00:00.123456+00:00",'
           '"model":"bike","model_version":"1","source":"entities","inputs":{"temp":0.1}}')
    parsed = PredictionRecord.from_json(old)
    assert parsed.entity == 3 and parsed.probability is None and parsed.timestamp.tzinfo is not None
    with pytest.raises(ValueError, match="source"):
        PredictionRecord.from_json(old.replace('"entities"', '"batch"'))
    with pytest.raises(ValueError, match="inputs"):
        PredictionRecord.from_json('{"request_id":"x"}')


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_records_are_standard_json_or_not_written(tmp_path: Path, bad: float) -> None:
    log = PredictionLog(tmp_path)
    with pytest.raises(ValueError, match="JSON compliant"):
        log.append([record("ok"), record("bad", inputs={"temp": bad})])
    with pytest.raises(ValueError, match="JSON compliant"):
        log.append([record("bad", prediction=bad)])
    assert log.read() == [] and not list(tmp_path.glob("*.jsonl"))  # all or nothing
    with pytest.raises(ValueError, match="NaN is not standard JSON"):
        PredictionRecord.from_json(record("x").to_json().replace("0.5", "NaN"))


def test_a_torn_last_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.append([record("a"), record("b")])
    day = next(tmp_path.glob("*.jsonl"))
    with day.open("a") as handle:
        handle.write('{"request_id": "c", "predic')  # a crash in the middle of a write
    assert [r["request_id"] for r in log.read()] == ["a", "b"]
    assert [r.request_id for r in log.records()] == ["a", "b"]
    assert log.count() == 2


def test_a_torn_tail_is_repaired_before_the_first_append_after_a_restart(tmp_path: Path) -> None:
    PredictionLog(tmp_path).append([record("a"), record("b")])
    day = next(tmp_path.glob("*.jsonl"))
    with day.open("ab") as handle:
        handle.write(record("torn").to_json().encode()[:40])  # the server died mid-write: no newline
    restarted = PredictionLog(tmp_path)  # a new process opens the log
    restarted.append([record("c")])
    restarted.append([record("d"), record("e")])
    assert [r.request_id for r in PredictionLog(tmp_path).records()] == ["a", "b", "c", "d", "e"]
    assert day.read_bytes().endswith(b"\n") and day.read_bytes().count(b"\n") == 6  # the torn line is ended


def test_a_complete_record_without_its_newline_is_kept(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    day = tmp_path / f"{datetime.now(UTC).strftime('%Y-%m-%d')}.jsonl"
    day.write_text(record("a").to_json() + "\n" + record("b").to_json())  # torn just before the newline
    PredictionLog(tmp_path).append([record("c")])
    assert [r.request_id for r in PredictionLog(tmp_path).records()] == ["a", "b", "c"]


def test_an_empty_file_needs_no_repair(tmp_path: Path) -> None:
    day = tmp_path / f"{datetime.now(UTC).strftime('%Y-%m-%d')}.jsonl"
    day.write_bytes(b"")
    PredictionLog(tmp_path).append([record("a")])
    assert day.read_text() == record("a").to_json() + "\n"


def test_the_fast_line_is_the_records_json(tmp_path: Path) -> None:
    import numpy as np

    records = [record("a"), record("b", source="entities", entity="k-1", prediction="yes", probability=0.25),
               record("c", prediction=np.float64(2.5), inputs={"temp": np.int64(3), "name": "é"})]
    log = PredictionLog(tmp_path)
    log.append(records)
    lines = next(tmp_path.glob("*.jsonl")).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [json.loads(r.to_json()) for r in records]
    assert [list(json.loads(line)) for line in lines] == [list(json.loads(r.to_json())) for r in records]


def test_a_window_is_read_from_the_ends_of_the_segments(tmp_path: Path) -> None:
    from datetime import timedelta

    days = [NOW - timedelta(days=2), NOW - timedelta(days=1)]
    for day_index, day in enumerate(days):
        for writer in ("w1", "w2"):
            lines = [record(f"{day_index}-{writer}-{i}", timestamp=day + timedelta(seconds=2 * i + (writer == "w2")))
                     for i in range(500)]
            (tmp_path / f"{day.strftime('%Y-%m-%d')}.{writer}.jsonl").write_text(
                "".join(r.to_json() + "\n" for r in lines))
    everything = PredictionLog(tmp_path).read()
    assert len(everything) == 2000
    stamps = [r["timestamp"] for r in everything]
    assert stamps == sorted(stamps)  # merged across writers, in time order
    for last in (1, 3, 999, 1000, 1001, 1500, 5000):
        assert PredictionLog(tmp_path).read(last=last) == everything[-last:], last
    assert PredictionLog(tmp_path).count() == 2000
    assert PredictionLog(tmp_path).find("0-w2-7") is not None and PredictionLog(tmp_path).find("nope") is None


@pytest.mark.parametrize("block", [1 << 20, 64])  # 64: lines cross the blocks read, forwards and backwards
def test_unreadable_lines_are_counted_with_their_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    from conveyor.stages.monitoring import _log

    monkeypatch.setattr(_log, "_BLOCK", block)
    log = PredictionLog(tmp_path / "predictions")
    log.append([record("a"), record("b")])
    path = log.segment()
    with path.open("ab") as handle:
        handle.write(b'{"request_id": "torn", "predic\n[1, 2]\n')  # a torn line ended by a later append; not an object
    log.append([record("c")])
    with path.open("ab") as handle:
        handle.write(b'{"request_id": "d", "pre')  # torn at the end
    reader = PredictionLog(tmp_path / "predictions")
    assert [d["request_id"] for d in reader.read()] == ["a", "b", "c"]
    assert reader.unreadable == [(path, 3), (path, 4), (path, 6)]
    assert [d["request_id"] for d in reader.read(last=2)] == ["b", "c"]
    assert reader.unreadable == [(path, 3), (path, 4), (path, 6)]  # passed over on the way back to b
    assert [d["request_id"] for d in reader.read(last=1)] == ["c"]
    assert reader.unreadable == [(path, 6)]  # only the part read
    PredictionLog(tmp_path / "predictions").append([record("e")])  # a restarted writer ends the torn line first
    assert [d["request_id"] for d in reader.read()] == ["a", "b", "c", "e"] and reader.unreadable[-1] == (path, 6)
