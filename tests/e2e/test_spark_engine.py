"""`engine: spark`: ingest and prepare on Apache Spark give the Polars engine's snapshot, clean rows,
quarantine lines and reasons, frame by frame; and a Spark that cannot start is one line.

One local Spark session serves every test of a test worker (the `spark` fixture); the tests run
the stages in-process, so the session is started once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import BIKE_DIR, ROOT

CORPUS = ROOT / "tests" / "data" / "bad_csv"
CASES: dict[str, dict[str, Any]] = {
    c["file"]: c for c in yaml.safe_load((CORPUS / "manifest.yaml").read_text(encoding="utf-8"))
}
TAXI_DIR = ROOT / "examples" / "nyc-taxi"

_PORT = int(os.environ.get("CONVEYOR_TEST_SPARK_PORT", "26000"))  # the first of 80 loopback ports
SPARK = {
    "master": "local[2]",
    "conf": {
        "spark.ui.enabled": False,
        "spark.driver.port": _PORT,
        "spark.blockManager.port": _PORT + 40,
        "spark.port.maxRetries": 30,
        "spark.sql.shuffle.partitions": 2,
    },
}
"""The tests' `spark:` section: loopback ports of this suite's range, no web UI."""

# Every path of the Spark reader, at a fraction of the corpus's time: ragged rows and bad bytes
# (explained on the driver), a quoted newline (the line-exact reader), a legacy code page, CR line
# ends, duplicates, Parquet. CONVEYOR_SPARK_CORPUS=all compares every file the Polars engine reads.
CORPUS_FILES = (
    [f for f, c in CASES.items() if c["expect"] == "ok" and f != "utf16_tabs.csv"]
    if os.environ.get("CONVEYOR_SPARK_CORPUS") == "all"
    else ["ragged_rows.csv", "mixed_encoding.csv", "embedded_newlines.csv", "cp1252.csv", "cr_only.csv",
          "duplicate_key_time.csv", "parquet_source.parquet"]
)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """The test worker's one Spark session (stopped at the end)."""
    from conveyor.core.config import SparkConfig
    from conveyor.stages.spark import spark_session, stop_session

    session = spark_session(SparkConfig.model_validate(SPARK), "tests")
    yield session
    stop_session()


def _project(folder: Path, source: Path, config: dict[str, Any], engine: str) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(source, folder / source.name)
    data = {**config, "engine": engine}
    data["source"] = {**config["source"], "path": source.name}
    if engine == "spark":
        data["spark"] = SPARK
    (folder / "conveyor.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return folder


def _run(project: Path) -> dict[str, Any]:
    """Ingest and prepare in this process; what each left, as frames."""
    import polars as pl

    from conveyor.core import Workspace, load_config
    from conveyor.stages.prep import prepare
    from conveyor.stages.sources import ingest

    config = load_config(project / "conveyor.yaml")
    workspace = Workspace.at(project)
    raw = ingest(config, workspace)
    clean = prepare(config, workspace, raw)

    def quarantine(file: str | None) -> pl.DataFrame | None:
        return None if file is None else pl.read_csv(project / file, infer_schema=False)

    return {
        "raw": pl.read_parquet(raw.path).sort("_line"),
        "raw_result": raw.result,
        "ingest_quarantine": quarantine(raw.result.quarantine_file),
        "clean": pl.read_parquet(clean.path),
        "clean_result": clean.result,
        "prepare_quarantine": quarantine(clean.result.quarantine_file),
    }


def _assert_same(polars: dict[str, Any], spark: dict[str, Any], reader: str = "spark") -> None:
    from polars.testing import assert_frame_equal

    assert_frame_equal(spark["raw"], polars["raw"])
    assert_frame_equal(spark["clean"], polars["clean"])  # values, types and row order
    for name in ("ingest_quarantine", "prepare_quarantine"):
        if polars[name] is None:
            assert spark[name] is None, spark[name]
        else:
            assert_frame_equal(spark[name], polars[name])  # lines, reasons and the rows' text
    p, s = polars["clean_result"], spark["clean_result"]
    named = {"quarantine_file"}  # named after each engine's own digest
    assert s.model_dump(exclude=named) == p.model_dump(exclude=named)  # the run table's counts, reasons, times
    assert spark["raw_result"].rows == polars["raw_result"].rows
    assert spark["raw_result"].quarantined == polars["raw_result"].quarantined
    assert spark["raw_result"].source_sha256 == polars["raw_result"].source_sha256
    assert spark["raw_result"].reader == reader


def _both(tmp_path: Path, source: Path, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    polars = _run(_project(tmp_path / "polars", source, config, "polars"))
    spark = _run(_project(tmp_path / "spark", source, config, "spark"))
    return polars, spark


@pytest.mark.parametrize("example", ["bike-sharing", "nyc-taxi"])
def test_shipped_examples_are_equal(example: str, spark: Any, tmp_path: Path) -> None:
    folder = ROOT / "examples" / example
    config = yaml.safe_load((folder / "conveyor.yaml").read_text(encoding="utf-8"))
    source = folder / config["source"]["path"]
    polars, on_spark = _both(tmp_path, source, config)
    assert on_spark["clean"].height > 5000
    _assert_same(polars, on_spark)


def _corpus_config(file: str, tmp_path: Path) -> dict[str, Any]:
    from conveyor.runner import init_project

    case = CASES[file]
    args = case["init"]
    options = dict(zip(args[::2], args[1::2], strict=True))
    work = tmp_path / "init"
    work.mkdir()
    shutil.copy(CORPUS / file, work / file)
    init_project(work / file, target=options["--target"], entity=options.get("--entity"), output=work / "conveyor.yaml")
    config: dict[str, Any] = yaml.safe_load((work / "conveyor.yaml").read_text(encoding="utf-8"))
    return config


@pytest.mark.parametrize("file", CORPUS_FILES)
def test_corpus_file_is_equal(file: str, spark: Any, tmp_path: Path) -> None:
    config = _corpus_config(file, tmp_path)
    polars, on_spark = _both(tmp_path, CORPUS / file, config)
    _assert_same(polars, on_spark)
    case = CASES[file]
    if case.get("ingest_quarantined") is not None and on_spark["ingest_quarantine"] is not None:
        assert sorted(int(x) for x in on_spark["ingest_quarantine"]["_line"]) == case["ingest_quarantined"]


def test_utf16_is_refused_with_one_line(spark: Any, tmp_path: Path) -> None:
    """UTF-16 cannot be split into lines as bytes: the Spark engine says so and how to convert it."""
    from conveyor.core.errors import DataError

    config = _corpus_config("utf16_tabs.csv", tmp_path)
    project = _project(tmp_path / "spark", CORPUS / "utf16_tabs.csv", config, "spark")
    with pytest.raises(DataError, match=r"source.encoding 'utf-16'.*iconv -f utf-16 -t utf-8.*engine: polars"):
        _run(project)


def test_a_folder_of_parts_is_one_source(spark: Any, tmp_path: Path) -> None:
    """Bike rows in three CSV parts and as a glob: `_file` names each row's part; bad rows name it too."""
    import polars as pl

    rows = (BIKE_DIR / "bike_sharing_hourly.csv").read_text(encoding="utf-8").splitlines()
    header, body = rows[0], rows[1:301]
    parts = tmp_path / "lake"
    parts.mkdir()
    for index in range(3):
        chunk = body[index * 100 : (index + 1) * 100]
        if index == 1:
            chunk[4] = chunk[4] + ",1"  # a ragged row: line 6 of part-1.csv
        (parts / f"part-{index}.csv").write_text("\n".join([header, *chunk]) + "\n", encoding="utf-8")
    (parts / "_SUCCESS").write_text("", encoding="utf-8")  # skipped, as Spark skips it
    config = yaml.safe_load((BIKE_DIR / "conveyor.yaml").read_text(encoding="utf-8"))
    config.update(engine="spark", spark=SPARK)
    config["source"] = {**config["source"], "path": "lake", "on_bad_lines": "quarantine"}
    project = tmp_path / "p"
    project.mkdir()
    shutil.move(parts, project / "lake")
    (project / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    result = _run(project)
    raw = result["raw"]
    assert raw.height == 299 and result["raw_result"].files == 3
    assert result["raw_result"].source_hashed == "listing"
    assert sorted(raw["_file"].unique()) == ["part-0.csv", "part-1.csv", "part-2.csv"]
    assert raw.filter(pl.col("_file") == "part-0.csv")["_line"].sort().to_list() == list(range(2, 102))
    bad = result["ingest_quarantine"]
    assert bad is not None and bad.select("_file", "_line").rows() == [("part-1.csv", "6")]
    assert bad["_reason"][0] == "18 fields, the header has 17"
    clean = result["clean"]
    assert clean.height == 299 and clean["row_id"].to_list() == list(range(1, 300))  # positions across parts

    config["source"]["path"] = "lake/part-*.csv"
    (project / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    again = _run(project)
    assert again["raw_result"].source_sha256 == result["raw_result"].source_sha256  # the same listing


# --------------------------------------------------------------------------- Spark that cannot start


def _spark_project(tmp_path: Path, master: str) -> Path:
    project = tmp_path / "p"
    project.mkdir()
    shutil.copy(BIKE_DIR / "bike_sharing_hourly.csv", project)
    config = yaml.safe_load((BIKE_DIR / "conveyor.yaml").read_text(encoding="utf-8"))
    config.update(engine="spark", spark={**SPARK, "master": master})
    (project / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return project


def _cli(project: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", "run", "-C", str(project), "--to", "ingest"],
        capture_output=True, text=True, timeout=300, env=env,
    )


def test_a_master_nobody_answers_at_is_one_line(tmp_path: Path) -> None:
    result = _cli(_spark_project(tmp_path, "spark://127.0.0.1:26099"))
    error = result.stderr.strip()
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert error.startswith("error: ") and "\n" not in error, error
    assert "spark.master: no Spark master answers at spark://127.0.0.1:26099" in error


def test_a_master_that_is_no_uri_is_a_config_error(tmp_path: Path) -> None:
    result = _cli(_spark_project(tmp_path, "spork://nowhere"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "spark.master" in result.stderr and "is not a Spark master URI" in result.stderr


def test_no_java_is_one_line(tmp_path: Path) -> None:
    """No `java` on PATH and no JAVA_HOME: one line, before any JVM is started."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(bin_dir)  # this Python, and no java
    result = _cli(_spark_project(tmp_path, "local[1]"), env=env)
    error = result.stderr.strip()
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert error.startswith("error: ") and "\n" not in error, error
    assert "engine: spark needs Java 17 or later" in error and "JAVA_HOME is not set" in error


# --------------------------------------------------------------------------- a standalone cluster

# The helpers of tests/e2e/test_spark_run.py's cluster: it runs the taxi example whole (`conveyor run`)
# on a standalone master and worker, and compares its snapshot, clean rows, model and answers.


def _spark_class(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    import pyspark

    script = Path(pyspark.__file__).parent / "bin" / "spark-class"
    with log.open("wb") as sink:
        return subprocess.Popen([str(script), *args], env=env, stdout=sink, stderr=subprocess.STDOUT)


def _wait(check: Any, what: str, timeout: float = 180) -> Any:
    import time

    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # the master's web server is not up yet
            last = exc
        time.sleep(0.5)  # polling a server's state: there is no event to wait on
    raise AssertionError(f"{what} within {timeout} s; last: {last}")
