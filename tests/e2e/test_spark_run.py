"""`engine: spark` end to end: `conveyor run` on the bike and taxi examples gives the Polars engine's
EDA report, model and answers; and the taxi example runs whole on a standalone Spark cluster.

Each example runs once per engine in this process (the Spark runs share the test worker's one
session); the search is off (`training.search.trials: 0`), so that the same training set gives
the same model on both engines.
"""

from __future__ import annotations

import math
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
from tests.e2e.test_spark_engine import SPARK, _assert_same, _spark_class, _wait, spark  # noqa: F401

TAXI_DIR = ROOT / "examples" / "nyc-taxi"
EXAMPLES = {"bike-sharing": BIKE_DIR, "nyc-taxi": TAXI_DIR}
PORTS = int(os.environ.get("CONVEYOR_SPARK_TEST_PORTS", "26100"))
"""The first of this module's 40 loopback ports (standalone master, worker, driver); CI's range by default."""


def _project(folder: Path, example: str, engine: str, section: dict[str, Any] | None = None) -> Path:
    source = EXAMPLES[example]
    config = yaml.safe_load((source / "conveyor.yaml").read_text(encoding="utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / config["source"]["path"], folder)
    config["engine"] = engine
    config["training"]["search"] = {"trials": 0}
    if engine == "spark":
        config["spark"] = section or SPARK
    (folder / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return folder


def _raw_rows(example: str, count: int = 40) -> Any:
    """Rows of the example's CSV as a client sends them (the latest ones: their entities are online)."""
    import polars as pl

    source = EXAMPLES[example]
    config = yaml.safe_load((source / "conveyor.yaml").read_text(encoding="utf-8"))
    types = {"integer": pl.Int64, "float": pl.Float64}  # numbers as numbers, as a client sends them
    numbers = {c: types[spec["type"]] for c, spec in config["schema"]["columns"].items() if spec["type"] in types}
    frame = pl.read_csv(source / config["source"]["path"], schema_overrides=numbers)
    return frame.tail(count).to_dicts()


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """Each example's project after `conveyor run` (no search) on each engine (Spark: the worker's session)."""
    from conveyor import Project

    request.getfixturevalue("spark")
    done = {}
    for example in EXAMPLES:
        for engine in ("polars", "spark"):
            project = _project(tmp_path_factory.mktemp(f"{example}-{engine}"), example, engine)
            Project(project).run(search=False)
            done[(example, engine)] = project
    return done


def _artifact(project: Path, stage: str) -> Any:
    from conveyor.core import Workspace
    from conveyor.runner import last_artifact

    artifact = last_artifact(Workspace.at(project), stage)
    assert artifact is not None, f"no {stage} in {project}"
    return artifact


def _same_answers(polars_project: Path, spark_project: Path, rows: list[dict[str, Any]]) -> None:
    """The champion's predictions for the same raw rows, through `Project.predict` (as `conveyor serve`)."""
    from conveyor import Project

    expected = Project(polars_project).predict(rows)
    got = Project(spark_project).predict(rows)
    assert got.height == expected.height == len(rows)
    for a, b in zip(got["prediction"].to_list(), expected["prediction"].to_list(), strict=True):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (a, b)


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_a_run_on_spark_serves_the_polars_engines_answers(example: str, runs: dict[tuple[str, str], Path]) -> None:
    import polars as pl
    from polars.testing import assert_frame_equal

    polars_project, spark_project = runs[(example, "polars")], runs[(example, "spark")]
    assert _artifact(spark_project, "ingest").result.reader == "spark"
    assert (_artifact(spark_project, "prepare").path).is_dir()  # Spark's folder of parts
    training = [pl.read_parquet(_artifact(p, "dataset").path) for p in (polars_project, spark_project)]
    assert_frame_equal(training[1], training[0])  # the same point-in-time training set
    trained = [_artifact(p, "train").result for p in (polars_project, spark_project)]
    assert trained[1].best == trained[0].best and trained[1].train_rows == trained[0].train_rows
    assert trained[1].candidates[trained[1].best].metrics == pytest.approx(trained[0].candidates[trained[0].best].metrics)
    assert _artifact(spark_project, "promote").result.champion is not None
    _same_answers(polars_project, spark_project, _raw_rows(example))


def _summaries(project: Path) -> tuple[Any, Any]:
    """The EDA summary and target checks of a project's clean data, by its own engine."""
    import polars as pl

    from conveyor.core import load_config
    from conveyor.stages.prep._eda import summarize_eda, target_checks
    from conveyor.stages.prep._eda_spark import summarize_on_spark

    config = load_config(project / "conveyor.yaml")
    clean = _artifact(project, "prepare")
    quarantined = clean.result.quarantined + clean.result.ingest_quarantined
    if config.engine == "spark":
        return summarize_on_spark(config, clean.path, quarantined)
    frame = pl.read_parquet(clean.path).drop("_line")
    schema = config.schema
    summary = summarize_eda(frame, target=schema.target, task=schema.task, numeric=schema.numeric(),
                            categorical=schema.categorical(), quarantined=quarantined)
    return summary, target_checks(frame, config)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_the_eda_report_on_spark_is_the_polars_engines(example: str, runs: dict[tuple[str, str], Path]) -> None:
    """Every figure of the report: the tables over every row (Spark's sums within 1e-9), the plots'
    data from the same seeded sample (equal), the target checks (equal)."""
    import numpy as np

    (summary, checks), (on_spark, spark_checks) = (_summaries(runs[(example, e)]) for e in ("polars", "spark"))
    assert on_spark.rows == summary.rows > 5_000 and on_spark.n_columns == summary.n_columns
    assert [c.name for c in on_spark.columns] == [c.name for c in summary.columns]
    for got, expected in zip(on_spark.columns, summary.columns):
        assert (got.dtype, got.role, got.missing, got.distinct, got.top) == (
            expected.dtype, expected.role, expected.missing, expected.distinct, expected.top), got.name
        for field in ("minimum", "mean", "maximum"):
            a, b = getattr(got, field), getattr(expected, field)
            assert (a is None and b is None) or _close(a, b), (got.name, field, a, b)
    assert [c for c, _ in on_spark.missing] == [c for c, _ in summary.missing]
    assert all(_close(a, b) for (_, a), (_, b) in zip(on_spark.missing, summary.missing))
    assert on_spark.sample_rows == summary.sample_rows
    for got_plot, expected_plot in zip([on_spark.target_distribution, *on_spark.features],
                                       [summary.target_distribution, *summary.features], strict=True):
        assert type(got_plot) is type(expected_plot) and got_plot.name == expected_plot.name
        if hasattr(got_plot, "values"):
            np.testing.assert_array_equal(got_plot.values, expected_plot.values)
        else:
            assert got_plot == expected_plot
    assert [c.name for c in on_spark.correlations] == [c.name for c in summary.correlations]
    assert [v for c in on_spark.correlations for v in (c.pearson, c.spearman)] == pytest.approx(
        [v for c in summary.correlations for v in (c.pearson, c.spearman)], rel=1e-9)
    for got_means, expected_means in zip(on_spark.level_means, summary.level_means, strict=True):
        assert (got_means.name, got_means.levels, got_means.total_levels) == (
            expected_means.name, expected_means.levels, expected_means.total_levels)
        # Polars' parallel group-by sums in no fixed order: the same means within float rounding
        assert got_means.means == pytest.approx(expected_means.means, rel=1e-9)
        assert got_means.eta == pytest.approx(expected_means.eta, rel=1e-9)
    if summary.heatmap is not None:
        assert on_spark.heatmap is not None and on_spark.heatmap[0] == summary.heatmap[0]
        np.testing.assert_allclose(on_spark.heatmap[1], summary.heatmap[1], rtol=1e-9)
    assert spark_checks == checks
    page = (runs[(example, "spark")] / "reports" / "eda.html").read_text(encoding="utf-8")
    assert "Target checks" in page and f"{summary.rows:,}" in page


def test_the_sample_is_the_polars_engines_sample(runs: dict[tuple[str, str], Path]) -> None:
    """The plots' rows when the data is larger than the sample: `DataFrame.sample(n, seed=0)`'s rows, in its order."""
    import polars as pl
    from polars.testing import assert_frame_equal

    from conveyor.stages.prep._eda_spark import _samples

    clean = _artifact(runs[("bike-sharing", "spark")], "prepare").path
    frame = pl.read_parquet(clean).drop("_line")
    plot, leak = _samples(clean, frame.columns, frame.height, 3_000, 5_000)
    assert_frame_equal(plot, frame.sample(n=3_000, seed=0))
    assert_frame_equal(leak, frame.sample(n=5_000, seed=0))


# --------------------------------------------------------------------------- a standalone cluster


def _master_state() -> dict[str, Any]:
    """The master's state, from its web UI's /json."""
    import httpx

    response = httpx.get(f"http://127.0.0.1:{PORTS + 1}/json/", timeout=5)
    response.raise_for_status()
    state: dict[str, Any] = response.json()
    return state


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Spark standalone master and one worker on 127.0.0.1, from the PySpark install."""
    logs = tmp_path_factory.mktemp("spark-cluster")
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(logs / "logs"),
           "SPARK_WORKER_DIR": str(logs / "work"), "PYSPARK_PYTHON": sys.executable}
    master_port, master_ui = PORTS, PORTS + 1
    master = _spark_class("org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(master_port),
                          "--webui-port", str(master_ui), env=env, log=logs / "master.log")
    processes = [master]
    try:
        _wait(_master_state, "the master answers on its web UI")
        url = f"spark://127.0.0.1:{master_port}"
        processes.append(_spark_class(
            "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--port", str(PORTS + 2),
            "--webui-port", str(PORTS + 3), "--cores", "2", "--memory", "1g", url, env=env, log=logs / "worker.log",
        ))
        _wait(lambda: [w for w in _master_state()["workers"] if w["state"] == "ALIVE"], "the worker registers")
        yield url
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_the_taxi_example_runs_whole_on_a_standalone_cluster(
    standalone: str, runs: dict[tuple[str, str], Path], tmp_path: Path
) -> None:
    """`conveyor run` against a real master: the app completes there; snapshot, clean rows, model and answers
    are the Polars engine's."""
    import polars as pl

    cluster = {"master": standalone, "app_name": "conveyor-cluster-run", "conf": {
        **SPARK["conf"], "spark.driver.port": PORTS + 10, "spark.blockManager.port": PORTS + 20,
        "spark.driver.host": "127.0.0.1", "spark.executor.memory": "512m", "spark.cores.max": 2,
    }}
    project = _project(tmp_path / "cluster", "nyc-taxi", "spark", cluster)
    result = subprocess.run([sys.executable, "-m", "conveyor", "run", "-C", str(project), "--no-search"],
                            capture_output=True, text=True, timeout=900,
                            env={**os.environ, "PYSPARK_PYTHON": sys.executable})
    assert result.returncode == 0, result.stdout + result.stderr
    apps = _wait(lambda: [a for a in _master_state()["completedapps"] if a["name"] == "conveyor-cluster-run"],
                 "the application is listed as completed", timeout=60)
    assert apps[0]["state"] == "FINISHED", apps
    polars_project = runs[("nyc-taxi", "polars")]

    def outputs(folder: Path) -> dict[str, Any]:
        ingest, prepare = _artifact(folder, "ingest"), _artifact(folder, "prepare")
        return {
            "raw": pl.read_parquet(ingest.path).sort("_line"), "raw_result": ingest.result, "ingest_quarantine": None,
            "clean": pl.read_parquet(prepare.path), "clean_result": prepare.result,
            "prepare_quarantine": None if prepare.result.quarantine_file is None
            else pl.read_csv(folder / prepare.result.quarantine_file, infer_schema=False),
        }

    _assert_same(outputs(polars_project), outputs(project))
    assert _artifact(project, "train").result.best == _artifact(polars_project, "train").result.best
    _same_answers(polars_project, project, _raw_rows("nyc-taxi"))
