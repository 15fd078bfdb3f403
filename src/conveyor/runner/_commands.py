"""Use cases the CLI calls: init, serve, monitor, summaries. The CLI stays a thin shell."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.artifacts import Artifact
from conveyor.core.config import Config, SourceConfig, dump_config
from conveyor.core.errors import ConfigError, ConveyorError
from conveyor.core.workspace import Workspace
from conveyor.runner._load import load_project

if TYPE_CHECKING:
    from conveyor.stages.monitoring import DriftCheck, LabelsAdded

__all__ = ["add_labels_project", "init_project", "load_project", "model_configs", "monitor_project", "serve_project"]

_HEADER = """\
# Conveyor project file, written by `conveyor init` from {csv}.
# Review it: column types and roles were inferred from the data. Move leaking columns
# (ones only known after the target) to schema.drop. Every key is documented in docs/config.md.
"""


def init_project(
    csv: Path | None,
    *,
    target: str,
    output: Path,
    entity: str | None = None,
    timestamps: list[str] | None = None,
    drop: list[str] | None = None,
    name: str | None = None,
    force: bool = False,
    type_threshold: float | None = None,
    notes: list[str] | None = None,
    source: SourceConfig | None = None,
) -> Config:
    """Infer a project file from a CSV (or from `source`, a PostgreSQL table or query or S3
    objects, read the way ingest reads them) and write it to `output`.

    What init found and decided (values that will be quarantined, missing tokens, notation,
    why each column got its role) is appended to `notes` and written as comments at the top of
    the file, where the person reviewing it reads first.
    """
    import os

    from conveyor.stages.sources import infer_config, infer_remote_config

    if output.exists() and not force:
        raise ConfigError(f"{output} exists; pass --force to overwrite it")
    output.parent.mkdir(parents=True, exist_ok=True)
    found: list[str] = [] if notes is None else notes
    threshold: dict[str, Any] = {} if type_threshold is None else {"type_threshold": type_threshold}
    entities: list[str] = []
    if source is not None:
        config = infer_remote_config(source, target=target, entity=entity, timestamps=timestamps, drop=drop, name=name,
                                     notes=found, entities=entities, **threshold)
        origin = source.table or source.uri or "a query"
    else:
        assert csv is not None
        relative = os.path.relpath(csv.resolve(), output.parent.resolve())
        config = infer_config(
            csv, target=target, entity=entity, timestamps=timestamps, drop=drop, name=name, source_path=relative,
            notes=found, entities=entities, **threshold,
        )
        origin = csv.name
    header = _HEADER.format(csv=origin)
    if found:
        header += "#\n# What init found:\n" + "".join(f"#   {_one_line(note)}\n" for note in found)
    if entities:
        header += _entities_block(entities)
    dump_config(config, output, header=header + "\n")
    return config


def _entities_block(entities: list[str]) -> str:
    """The proposed entities as a commented `features:` block to uncomment: each entity gets its
    own feature view of aggregates over its earlier rows. Left off because an entity means nothing
    without aggregates a person chose (which columns, which windows) and because the server then
    asks for the entity keys in every request."""
    import json

    lines = ["#", "# Proposed entities: repeated keys with an event time (see the notes above). To use them,",
             "# replace the features: section below with this block and choose the aggregates (docs/config.md):",
             "# features:", f"#   entities: [{', '.join(json.dumps(e) for e in entities)}]", "#   aggregates:"]
    for column in entities:
        safe = "".join(c if c.isalnum() else "_" for c in column).strip("_").lower() or "key"
        lines.append(f'#   - {{entity: {json.dumps(column)}, function: count, window: 24h, name: {safe}_rows_24h}}')
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    """A note as one comment line: no line break of the data can end the comment early."""
    return " ".join(text.split())


def serve_project(
    config: Config, workspace: Workspace, host: str | None, port: int | None, workers: int | None = None
) -> None:
    from conveyor.runner._doctor import require
    from conveyor.runner._serve import serve_project as serve

    require(config, workspace, ["serve"])  # MLflow or the registry down: one line, not a traceback
    serve(config, workspace, host, port, workers)  # opens the champion, store and log before binding the port


def monitor_project(config: Config, workspace: Workspace, window: int | None) -> Artifact[DriftCheck]:
    from conveyor.stages.monitoring import monitor

    def test_metrics(version: str) -> dict[str, float]:
        """The checked version's scores on its test split, from the registry (for labeled traffic)."""
        from conveyor.stages.training import describe_version

        try:
            return describe_version(config, workspace, version).metrics
        except ConveyorError:
            return {}

    return monitor(config, workspace, window=window, test_metrics=test_metrics)


def add_labels_project(
    config: Config, workspace: Workspace, path: Path, id_column: str, label_column: str | None, replace: bool = False
) -> LabelsAdded:
    from conveyor.stages.monitoring import add_labels

    return add_labels(config, workspace, path, id_column=id_column, label_column=label_column, replace=replace)



def model_configs(config: Config, model: str | None, *, one: bool = False) -> list[Config]:
    """The Config of each model a command is about: the project's own, or each of `models:`.

    `model` picks one of `models:` (a ConfigError names them when it is not one, or when the
    project has a single model); `one`: the command acts on a single model, so a project with
    several models must name it.
    """
    if not config.models:
        if model is not None:
            raise ConfigError(f"--for {model}: this project has one model ({config.name}); --for picks one of "
                              "`models:` in a project that has several")
        return [config]
    names = ", ".join(config.models)
    if model is None:
        if one and len(config.models) > 1:
            raise ConfigError(f"this project has several models ({names}); say which with --for MODEL")
        return [config.for_model(m) for m in config.models]
    if model not in config.models:
        raise ConfigError(f"--for {model}: no model {model!r} in models: (the project has {names})")
    return [config.for_model(model)]
