"""The bad-CSV corpus (`tests/data/bad_csv/`) through `conveyor init`, `ingest` and `prepare` (a few `run`).

Every file either succeeds with exactly the listed source lines quarantined (rows in = clean +
quarantined) or fails with one line naming where; never a traceback, never a silent retype.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, conveyor, stage_result

CORPUS = ROOT / "tests" / "data" / "bad_csv"
CASES: list[dict[str, Any]] = yaml.safe_load((CORPUS / "manifest.yaml").read_text(encoding="utf-8"))


def _no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


def _quarantined_lines(project: Path, file: str | None) -> dict[int, str]:
    if file is None:
        return {}
    with (project / file).open(newline="", encoding="utf-8") as handle:
        return {int(row["_line"]): row["_reason"] for row in csv.DictReader(handle)}


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 30
    assert all((CORPUS / case["file"]).is_file() for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_corpus_file(case: dict[str, Any], tmp_path: Path) -> None:
    source = tmp_path / case["file"]
    shutil.copy(CORPUS / case["file"], source)
    init = conveyor("init", "--csv", source.name, *case["init"], cwd=tmp_path, check=False)
    _no_traceback(init)
    if case["expect"] == "fail" and case["stage"] == "init":
        assert init.returncode != 0, init.stdout
        error = init.stderr.strip()
        assert error.startswith("error: ") and "\n" not in error, error  # one line
        for needle in case["message"]:
            assert needle in error, error
        assert not (tmp_path / "conveyor.yaml").exists()
        return
    assert init.returncode == 0, init.stderr
    config = yaml.safe_load((tmp_path / "conveyor.yaml").read_text(encoding="utf-8"))
    for key, value in case.get("source", {}).items():
        assert config["source"][key] == value, (key, config["source"])
    for column, kind in case.get("columns", {}).items():
        assert config["schema"]["columns"][column]["type"] == kind, (column, config["schema"]["columns"][column])
    if "event_time" in case:
        assert config["schema"]["event_time"]["columns"] == case["event_time"]
    for column, tokens in case.get("missing_tokens", {}).items():
        assert sorted(config["cleaning"]["missing_tokens"][column]) == sorted(tokens)

    if case.get("run"):
        # the whole pipeline on the cleaned rows; the search is not what the corpus tests
        _no_traceback(result := conveyor("run", "-C", str(tmp_path), "--no-search", check=False))
        assert result.returncode == 0, result.stderr
        assert "quarantined" in result.stdout
    else:  # one process: ingest then prepare, nothing after
        _no_traceback(result := conveyor("run", "-C", str(tmp_path), "--to", "prepare", check=False))
        assert result.returncode == 0, result.stderr
        assert not (tmp_path / "feature_repo").exists() and not (tmp_path / "reports" / "eda.html").exists()

    raw = stage_result(tmp_path, "ingest")
    clean = stage_result(tmp_path, "prepare")
    at_ingest = _quarantined_lines(tmp_path, raw.quarantine_file)
    at_prepare = _quarantined_lines(tmp_path, clean.quarantine_file)
    assert sorted(at_ingest) == case["ingest_quarantined"], at_ingest
    assert sorted(at_prepare) == case["prepare_quarantined"], at_prepare
    for line, reason in case.get("reasons", {}).items():
        assert at_prepare[int(line)] == reason
    assert raw.rows + raw.quarantined == case["rows"]  # every data row of the file is accounted for
    assert clean.rows + clean.quarantined == raw.rows
    assert clean.ingest_quarantined == raw.quarantined
    if "clean_rows" in case:
        assert clean.rows == case["clean_rows"]
    if "city" in case:
        import polars as pl

        clean_file = next((tmp_path / "data" / "clean").glob("*.parquet"))
        assert case["city"] in pl.read_parquet(clean_file)["city"].to_list()
