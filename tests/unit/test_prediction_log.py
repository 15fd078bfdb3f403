from __future__ import annotations

import threading
from pathlib import Path

from conveyor.stages.monitoring import PredictionLog


def test_appends_survive_a_new_reader_and_concurrent_writers(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "predictions")

    def write(worker: int) -> None:
        for i in range(50):
            log.append([{"request_id": f"{worker}-{i}-{j}", "prediction": j} for j in range(3)])

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = PredictionLog(tmp_path / "predictions").read()
    assert len(records) == 600 and len({r["request_id"] for r in records}) == 600
    assert [r["request_id"] for r in PredictionLog(tmp_path / "predictions").read(last=2)] == [
        records[-2]["request_id"], records[-1]["request_id"],
    ]


def test_a_torn_last_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.append([{"request_id": "a"}, {"request_id": "b"}])
    day = next(tmp_path.glob("*.jsonl"))
    with day.open("a") as handle:
        handle.write('{"request_id": "c", "predic')  # a crash in the middle of a write
    assert [r["request_id"] for r in log.read()] == ["a", "b"]
    assert log.count() == 2
