"""A file of a few dozen rows trains, and the run says its test split is too small to trust."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import conveyor, stage_result


def test_a_40_row_file_trains_and_says_its_8_test_rows_are_noise(tmp_path: Path) -> None:
    rows = [f"2024-01-{1 + i % 28:02d} {i % 24:02d}:00:00,{i % 7},{i % 3 * 1.5:.1f},{2 * (i % 7) + i % 3:.1f}"
            for i in range(40)]
    (tmp_path / "small.csv").write_text("when,a,b,y\n" + "\n".join(rows) + "\n", encoding="utf-8")
    conveyor("init", "small.csv", "--target", "y", cwd=tmp_path)
    output = " ".join(conveyor("run", "--no-search", cwd=tmp_path).stdout.split())  # the table wraps by width
    trained = stage_result(tmp_path, "train")
    assert trained.test_rows == 8
    said = trained.notes[0]
    assert said.startswith("only 8 test rows: these scores, and the promotion gate that reads them, are noise-sized")
    assert "only 8 test rows" in output
