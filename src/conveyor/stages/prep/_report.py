"""The `eda` stage: the exploratory report of the clean data, as a stage of its own.

It reads prepare's clean Parquet and writes `reports/eda.html`. Apart from prepare, it is
cached on its own (the clean data's digest, `schema`, its version) and can be run alone
(`conveyor eda`); the clean data never waits for matplotlib.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from conveyor.core.artifacts import Artifact, Result, relative_to
from conveyor.core.config import Config
from conveyor.core.hashing import hash_json
from conveyor.core.stage import Stage, Upstream
from conveyor.core.workspace import Workspace

__all__ = ["EDA", "EDA_VERSION", "EdaReport", "build_report"]

EDA_VERSION = 2
"""2: the "Target checks" section (leaks with their evidence, an unlearnable target)."""
_LINE = "_line"


@runtime_checkable
class CleanInput(Protocol):
    """What the report reads of prepare's result."""

    @property
    def quarantined(self) -> int: ...
    @property
    def ingest_quarantined(self) -> int: ...


class EdaReport(Result):
    """The exploratory report: one self-contained HTML file with its plots."""

    kind: ClassVar[str] = "eda"

    report: str
    rows: int
    columns: int

    def summary(self) -> str:
        return f"{self.report}: {self.rows} rows, {self.columns} columns"


def build_report(config: Config, workspace: Workspace, clean: Artifact[CleanInput]) -> Artifact[EdaReport]:
    """Write `reports/eda.html` from the clean data (tables from every row, plots from a sample)."""
    import polars as pl

    from conveyor.stages.prep._eda import target_checks, write_eda_report

    digest = hash_json({"clean": clean.digest, "schema": config.section("schema"),
                        "folds": _folds(config, workspace), "version": EDA_VERSION})
    if config.engine == "spark":  # the tables over every row by Spark, the plots from the same seeded sample
        return _on_spark(config, workspace, clean, digest)
    names = [n for n in pl.scan_parquet(clean.path).collect_schema().names() if n != _LINE]
    frame = pl.read_parquet(clean.path, columns=names)
    schema = config.schema
    workspace.ensure(workspace.reports)
    path = write_eda_report(
        frame,
        target=schema.target,
        task=schema.task,
        numeric=schema.numeric(),
        categorical=schema.categorical(),
        path=workspace.reports / "eda.html",
        title=f"{config.name}: exploratory data analysis",
        quarantined=clean.result.quarantined + clean.result.ingest_quarantined,
        checks=target_checks(frame, config),
    )
    result = EdaReport(report=relative_to(path, workspace.root), rows=frame.height, columns=frame.width)
    return Artifact("eda", path, digest, result, {"clean": clean.digest})


def _on_spark(config: Config, workspace: Workspace, clean: Artifact[CleanInput], digest: str) -> Artifact[EdaReport]:
    from conveyor.core.report import write_text
    from conveyor.stages.prep._eda import render_eda_html
    from conveyor.stages.prep._eda_spark import summarize_on_spark

    summary, checks = summarize_on_spark(config, clean.path, clean.result.quarantined + clean.result.ingest_quarantined)
    workspace.ensure(workspace.reports)
    path = write_text(workspace.reports / "eda.html",
                      render_eda_html(summary, f"{config.name}: exploratory data analysis", checks))
    result = EdaReport(report=relative_to(path, workspace.root), rows=summary.rows, columns=summary.n_columns)
    return Artifact("eda", path, digest, result, {"clean": clean.digest})


def _folds(config: Config, workspace: Workspace) -> int:
    """The one training key the report reads: a class needs this many rows (target checks)."""
    del workspace
    return config.training.search.min_folds


def _run(config: Config, workspace: Workspace, upstream: Upstream) -> Artifact[EdaReport]:
    return build_report(config, workspace, upstream.get("prepare", CleanInput))


EDA: Stage[EdaReport] = Stage(
    name="eda",
    needs=("prepare",),
    sections=("schema",),
    extra_key=lambda config, workspace: _folds(config, workspace),
    version=EDA_VERSION,
    result=EdaReport,
    run=_run,
    describe="EDA report with plots (matplotlib)",
    help="Write the exploratory report of the clean data (reports/eda.html): columns, missing values, target, plots.",
)
