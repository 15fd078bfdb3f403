"""User errors: one clear message naming what and where, a non-zero exit, no traceback."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIKE_CSV, bike_rows, conveyor, make_bike_project, stage_result, write_csv


def _fails(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in result.stderr, result.stderr
    return result.stderr


def test_init_with_a_missing_target_column(tmp_path: Path) -> None:
    result = conveyor("init", "--csv", str(BIKE_CSV), "--target", "riders", "-o", str(tmp_path / "c.yaml"), check=False)
    _fails(result, "no column named 'riders'", "line 1", "cnt")
    assert not (tmp_path / "c.yaml").exists()


def test_ragged_rows_stop_the_ingest_with_line_numbers(tmp_path: Path) -> None:
    rows = bike_rows()[:200]
    project = make_bike_project(tmp_path / "p", rows)
    path = project / BIKE_CSV.name
    lines = path.read_text().splitlines()
    lines[5] += ",99"  # line 6: one field too many
    lines[9] = ",".join(lines[9].split(",")[:-2])  # line 10: two too few
    path.write_text("\n".join(lines) + "\n")
    result = conveyor("run", "-C", str(project), check=False)
    _fails(result, "line 6 has 18 fields", "line 10 has 15 fields", "on_bad_lines")
    assert not list(project.glob("data/raw/*.parquet"))  # nothing half-ingested


def test_bad_rows_are_quarantined_with_reasons_not_dropped(tmp_path: Path) -> None:
    rows = bike_rows()[:300]
    rows[3]["cnt"] = ""  # line 5: no target
    rows[10]["dteday"] = "2011-13-45"  # line 12: not a date
    rows[20]["temp"] = "warm"  # line 22: not a number
    rows[30]["hum"] = ""  # a missing feature value is kept as missing, not quarantined
    project = make_bike_project(tmp_path / "p", rows)
    path = project / BIKE_CSV.name
    lines = path.read_text().splitlines()
    lines[50] += ",1"  # line 51: ragged
    path.write_text("\n".join(lines) + "\n")
    config = yaml.safe_load((project / "conveyor.yaml").read_text())
    config["source"]["on_bad_lines"] = "quarantine"
    (project / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    conveyor("ingest", "-C", str(project))
    result = conveyor("prepare", "-C", str(project))
    assert "296 clean, 4 quarantined" in result.stdout  # 3 here, 1 ragged row at ingest
    record = stage_result(project, "prepare")
    with open(project / record.quarantine_file, newline="") as handle:
        quarantined = {int(r["_line"]): r for r in csv.DictReader(handle)}
    assert set(quarantined) == {5, 12, 22}
    assert "cnt: the target is missing" in quarantined[5]["_reason"]
    assert quarantined[12]["_reason"] == "dteday: '2011-13-45' is not a valid date"
    assert "temp" in quarantined[22]["_reason"] and quarantined[22]["temp"] == "warm"
    ragged = list((project / "data" / "quarantine").glob("ingest-*.csv"))
    with ragged[0].open(newline="") as handle:
        assert [(r["_line"], r["_reason"]) for r in csv.DictReader(handle)] == [("51", "18 fields, the header has 17")]
    import polars as pl

    clean = pl.read_parquet(next((project / "data" / "clean").glob("*.parquet")))
    assert clean.height == 296 and clean.filter(pl.col("_line") == 32)["hum"].to_list() == [None]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "empty"),
        (b"PK\x03\x04\x00\x00binary", "binary data"),
        (b"instant,dteday,cnt\n", "no data rows"),
    ],
)
def test_unreadable_files_are_named(tmp_path: Path, content: bytes, needle: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    result = conveyor("init", "--csv", str(bad), "--target", "cnt", "-o", str(tmp_path / "c.yaml"), check=False)
    _fails(result, str(bad), needle)


def test_a_config_typo_names_the_key_and_value(tmp_path: Path) -> None:
    project = make_bike_project(tmp_path / "p", bike_rows()[:50])
    text = (project / "conveyor.yaml").read_text()
    (project / "conveyor.yaml").write_text(text.replace("task: regression", "task: regresion").replace("  seed:", "  sed:"))
    result = conveyor("run", "-C", str(project), check=False)
    _fails(result, "schema.task", "'regresion'", "'regression' or 'classification'", "training.sed", "unknown key")


def test_no_project_file_and_no_champion_are_clear(tmp_path: Path) -> None:
    _fails(conveyor("run", "-C", str(tmp_path), check=False), "no project file", "conveyor init")
    project = make_bike_project(tmp_path / "p", bike_rows()[:50])
    _fails(conveyor("serve", "-C", str(project), check=False), "no model registry", "conveyor run")
    _fails(conveyor("train", "-C", str(project), check=False), "needs the output of", "conveyor run")
    _fails(conveyor("run", "-C", str(project), "--from", "fit", check=False), "no such stage")


def test_semicolon_delimited_file_with_blanks_and_scientific_notation(tmp_path: Path) -> None:
    text = "id;amount;when;label\n1;5e+05;2020-01-01 10:00:00;yes\n2;;2020-01-02 11:00:00;no\n3;1.5E3;2020-01-03 12:00:00;yes\n"
    (tmp_path / "d.csv").write_text(text * 1)
    conveyor("init", "--csv", "d.csv", "--target", "label", cwd=tmp_path)
    config = yaml.safe_load((tmp_path / "conveyor.yaml").read_text())
    assert config["source"]["delimiter"] == ";"
    assert config["schema"]["columns"]["amount"] == {"type": "float", "role": "numeric"}
    assert config["schema"]["event_time"] == {"kind": "datetime", "columns": ["when"], "format": None}
    assert config["schema"]["task"] == "classification"


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys, runpy; sys.argv=['conveyor','--help']\n"
        "try:\n    runpy.run_module('conveyor', run_name='__main__')\nexcept SystemExit: pass\n"
        "heavy=[m for m in ('feast','mlflow','pandas','sklearn','lightgbm','polars','fastapi','pyspark','lleaves','llvmlite')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in result.stdout, result.stdout


def test_ingest_is_content_addressed(tmp_path: Path) -> None:
    project = make_bike_project(tmp_path / "p", bike_rows()[:100])
    conveyor("ingest", "-C", str(project))
    first = sorted(project.glob("data/raw/*.parquet"))
    conveyor("ingest", "-C", str(project), "--force")  # same bytes: the same snapshot, not a second one
    assert sorted(project.glob("data/raw/*.parquet")) == first and len(first) == 1
    with (project / BIKE_CSV.name).open("a") as handle:
        handle.write(",".join(bike_rows()[100].values()) + "\n")
    conveyor("ingest", "-C", str(project))
    assert len(list(project.glob("data/raw/*.parquet"))) == 2  # new content, new snapshot; the old one stays


def test_a_source_without_the_target_column_names_file_line_and_column(tmp_path: Path) -> None:
    rows = [{k: v for k, v in r.items() if k != "cnt"} for r in bike_rows()[:50]]
    project = make_bike_project(tmp_path / "p", bike_rows()[:50])
    write_csv(project / BIKE_CSV.name, rows)
    result = conveyor("run", "-C", str(project), check=False)
    _fails(result, str(project / BIKE_CSV.name), "line 1", "'cnt'", "not in the header")
