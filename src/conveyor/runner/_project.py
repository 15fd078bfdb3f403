"""`conveyor.Project`: a Conveyor project from Python (a notebook, a script, a test).

Every method is a use case the CLI also has, on the same runner and stage functions: `init`
writes the project file as `conveyor init` does, `run` walks the stages as `conveyor run` does
(under the same project lock), `predict` answers as `conveyor serve` does for the same raw rows
(the online and on-demand features joined by serving's own code, `open_champion` and
serving's `predict_rows`), and the rest reads what the runs left: the clean data and the
training set as Polars frames, the registry, lineage, monitoring.

Nothing heavy is imported until a method needs it: `import conveyor` stays light.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from conveyor.core.artifacts import Artifact
from conveyor.core.config import Config, load_config
from conveyor.core.errors import ConfigError, ConveyorError
from conveyor.core.workspace import Workspace
from conveyor.runner._commands import add_labels_project, init_project, model_configs, monitor_project
from conveyor.runner._lineage import LineageStep, lineage_of_model, lineage_of_prediction
from conveyor.runner._lock import project_lock
from conveyor.runner._pipeline import Event, last_artifact, run_pipeline, stages_of

if TYPE_CHECKING:
    import polars as pl

    from conveyor.runner._doctor import Check
    from conveyor.runner._serve import ChampionModel, ChampionReloader, EngineeredModel
    from conveyor.stages.features import ViewInfo
    from conveyor.stages.monitoring import DriftCheck, LabelsAdded
    from conveyor.stages.training import AliasChange, VersionInfo

__all__ = ["ModelRegistry", "Project", "RunResult", "StageRun", "without_search"]

CONFIG_FILE = "conveyor.yaml"


@dataclass(frozen=True)
class StageRun:
    """One stage of a run: whether it ran or its cached output was reused, and what it made.

    `summary` is the line the `conveyor run` table shows; `result` is the stage's typed result
    (`CleanData`, `TrainingSet`, `TrainResult`, `PromotionDecision`, ...), `artifact` its file
    or folder with the digest lineage follows.
    """

    name: str
    status: Literal["ran", "cached"]
    seconds: float
    """Time spent running it (0.0 when cached)."""
    summary: str
    artifact: Artifact[Any]
    why: str = ""
    """Why a stage that had run before ran again (`inputs changed`, `forced`, ...); empty otherwise."""

    @property
    def result(self) -> Any:
        """The stage's typed result (a frozen pydantic model)."""
        return self.artifact.result


@dataclass(frozen=True)
class RunResult:
    """What `Project.run` did, stage by stage, in order.

    >>> result = project.run(search=False)          # doctest: +SKIP
    >>> result["promote"].result.promoted            # doctest: +SKIP
    True
    >>> [s.name for s in result if s.status == "ran"]  # doctest: +SKIP
    ['train', 'promote']
    """

    project: str
    stages: tuple[StageRun, ...]

    def __iter__(self) -> Iterator[StageRun]:
        return iter(self.stages)

    def __len__(self) -> int:
        return len(self.stages)

    def __getitem__(self, name: str) -> StageRun:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"{name!r}: this run has no such stage; it has {', '.join(s.name for s in self.stages)}")

    @property
    def ran(self) -> list[str]:
        """The stages that ran (the others were cached)."""
        return [s.name for s in self.stages if s.status == "ran"]

    def __str__(self) -> str:
        width = max((len(s.name) for s in self.stages), default=0)
        lines = [f"{self.project}: {len(self.stages)} stages"]
        for s in self.stages:
            state = s.status if not s.why or s.why == "forced" else f"{s.status} ({s.why})"
            took = f"{s.seconds:.1f}s" if s.status == "ran" else "-"
            lines.append(f"  {s.name:<{width}}  {state:<8} {took:>7}  {s.summary}")
        return "\n".join(lines)


@dataclass(frozen=True)
class ModelRegistry:
    """A model's registered versions (newest first), its champion and every move of `@champion`."""

    name: str
    versions: tuple[VersionInfo, ...]
    champion: str | None
    """The version `@champion` points to (None: nothing promoted yet)."""
    history: tuple[AliasChange, ...] = field(default=())
    """Each move of `@champion`: when, by whom, from which version to which, and why."""

    def __str__(self) -> str:
        lines = [f"{self.name}: {len(self.versions)} version{'' if len(self.versions) == 1 else 's'}, champion {'v' + self.champion if self.champion else '-'}"]
        lines += [f"  v{v.version}  {v.summary}" for v in self.versions]
        lines += [f"  @champion {'v' + c.old if c.old else 'none'} -> v{c.new} at {c.at} by {c.by}: {c.why}"
                  for c in self.history]
        return "\n".join(lines)


def without_search(config: Config) -> Config:
    """The same project with `training.search.trials: 0` (`--no-search`; a cache key of its own)."""
    training = config.training
    search = training.search.model_copy(update={"trials": 0})
    return config.model_copy(update={"training": training.model_copy(update={"search": search})})


class Project:
    """A Conveyor project: the folder holding `conveyor.yaml` and everything its runs leave.

    >>> from conveyor import Project
    >>> project = Project.init("hour.csv", target="cnt", path="bikes")   # doctest: +SKIP
    >>> project.run(search=False)                                        # doctest: +SKIP
    >>> project.predict([{"temp": 0.3, "hr": 8, ...}])                   # doctest: +SKIP
    shape: (1, 14) ... prediction | model_version

    Opening a project reads nothing but its file; each method loads what it needs.
    """

    def __init__(self, path: str | Path = ".") -> None:
        """Open the project in `path`: its folder, or its `conveyor.yaml`."""
        root = Path(path)
        if root.name == CONFIG_FILE or root.is_file():
            root = root.parent
        if not (root / CONFIG_FILE).is_file():
            raise ConfigError(f"no {CONFIG_FILE} in {root.resolve()}; create one with Project.init(csv, target=...) "
                              "or `conveyor init`")
        self.workspace = Workspace.at(root)
        self._served: dict[str | None, tuple[Config, ChampionModel | EngineeredModel, ChampionReloader]] = {}

    def __repr__(self) -> str:
        return f"Project({str(self.root)!r})"

    @classmethod
    def init(
        cls,
        csv: str | Path,
        *,
        target: str,
        entity: str | None = None,
        timestamp: str | Sequence[str] | None = None,
        drop: Sequence[str] = (),
        name: str | None = None,
        path: str | Path | None = None,
        force: bool = False,
    ) -> Project:
        """Infer `conveyor.yaml` from a CSV (or Parquet) file, as `conveyor init` does, and open the project.

        `path` is the project folder (default: the CSV's folder); `timestamp` one datetime column,
        or a date then an hour column; `drop` columns that leak the target; `force` overwrites an
        existing project file. What init found is written as comments at the top of the file.

        >>> project = Project.init("hour.csv", target="cnt", drop=["casual", "registered"],
        ...                        path="/tmp/bikes", force=True)             # doctest: +SKIP
        >>> project.config.schema.task                                     # doctest: +SKIP
        'regression'
        """
        source = Path(csv)
        if not source.is_file():
            raise ConfigError(f"Project.init: no file {source.resolve()}; give the path of a CSV or Parquet file")
        folder = Path(path) if path is not None else source.parent
        if (folder / CONFIG_FILE).exists() and not force:
            raise ConfigError(f"{folder / CONFIG_FILE} exists; pass force=True to overwrite it, or open it with "
                              f"Project({str(folder)!r})")
        timestamps = [timestamp] if isinstance(timestamp, str) else list(timestamp or [])
        init_project(source, target=target, output=folder / CONFIG_FILE, entity=entity, timestamps=timestamps,
                     drop=list(drop), name=name, force=force)
        return cls(folder)

    @property
    def root(self) -> Path:
        """The project folder."""
        return self.workspace.root

    @property
    def config(self) -> Config:
        """The project file, validated (read again on each access: an edit is seen at once)."""
        return load_config(self.workspace.config_file)

    @property
    def name(self) -> str:
        return self.config.name

    def run(
        self, *, to: str | None = None, from_: str | None = None, search: bool = True, force: bool = False,
    ) -> RunResult:
        """Run the stages as `conveyor run` does: unchanged ones are cached; holds the project lock.

        `to` stops after a stage (`to="prepare"`), `from_` runs a stage and every later one again,
        `search=False` skips the hyperparameter search (`--no-search`), `force` runs every stage.

        >>> result = project.run(search=False)    # doctest: +SKIP
        >>> print(result)                          # doctest: +SKIP
        bike-sharing: 7 stages
          ingest   ran       0.4s  17379 rows ...
        """
        config = self.config
        with project_lock(config, self.workspace, "Project.run"):
            config = self.config  # read again under the lock: the file may have changed meanwhile
            if not search:
                config = without_search(config)
            if force and from_ is None:
                from_ = stages_of(config)[0].name
            done: list[StageRun] = []

            def on_event(event: Event) -> None:
                if event.status in ("ran", "cached") and event.artifact is not None:
                    done.append(StageRun(event.stage, "ran" if event.status == "ran" else "cached", event.seconds,
                                         event.artifact.result.summary(), event.artifact, event.why))

            run_pipeline(config, self.workspace, start=from_, stop=to, on_event=on_event)
        return RunResult(config.name, tuple(done))

    def predict(self, data: Any, *, model: str | None = None) -> Any:
        """Predict raw rows exactly as `conveyor serve` answers them, without logging them.

        `data` is a Polars or pandas DataFrame, a list of row dicts, or one dict; its columns are
        the features of `conveyor.yaml` (others are ignored, as by POST /predict). The answer is a
        frame (pandas for pandas, else Polars): `data` with `prediction` (and `probability` for
        classification) and `model_version` columns (`conveyor_prediction`, ... where `data` has
        a column of that name, which is kept as given). The champion reads the online store's
        features of each row's entities and the on-demand features, as the service does; a new
        `@champion` is picked up on the next call. `model` names one of `models:`.

        >>> project.predict(pl.read_csv("hour.csv").head(3))   # doctest: +SKIP
        shape: (3, 19) ... prediction | model_version
        """
        import polars as pl

        from conveyor.stages.serving import predict_rows

        frame, rows, as_pandas = _rows_of(data)
        config = self.config
        own = model_configs(config, model, one=True)[0]
        served = self._champion(config, own.model)
        outputs = predict_rows(own, served, rows) if rows else {"prediction": []}
        flags = outputs.pop("warnings", [])

        def out(name: str) -> str:  # an input column of that name (a feature called `prediction`) is kept
            return f"conveyor_{name}" if name in frame.columns else name

        columns = [pl.Series(out(name), values) for name, values in outputs.items()]
        if any(flags):  # what the service flags in `warnings`: values training never saw, answered as missing
            text = [None if not flag else ", ".join(f"{k}: {v}" for k, v in flag.items()) for flag in flags]
            columns.append(pl.Series(out("warnings"), text, dtype=pl.String))
        version = pl.lit(served.version, dtype=pl.String).alias(out("model_version"))
        answer = frame.with_columns(*columns, version)
        return answer.to_pandas() if as_pandas else answer

    def _champion(self, config: Config, model: str | None) -> ChampionModel | EngineeredModel:
        """The served champion of the project (or of one of `models:`), kept between calls."""
        from conveyor.runner._serve import open_champion

        cached = self._served.get(model)
        if cached is None or cached[0] != config:  # first call, or conveyor.yaml changed
            served, reload = open_champion(config, self.workspace, model)
            self._served[model] = (config, served, reload)
            return served
        _, served, reload = cached
        moved = reload()  # the serving reloader: a look at the registry's file, a load only when it changed
        if moved is not None:
            self._served[model] = (config, moved, reload)
            return moved
        return served

    def monitor(self, *, window: int | None = None, model: str | None = None) -> DriftCheck:
        """Compare the served traffic with the training reference, as `conveyor monitor` does.

        Writes the JSON and HTML reports and returns the check: `verdict`, `rows` (per feature),
        `reasons`, `html_report`, and `performance` when labels were added.
        """
        own = model_configs(self.config, model, one=True)[0]
        return monitor_project(own, self.workspace, window).result

    def labels_add(
        self, labels: str | Path | Any, *, id_column: str = "request_id", label_column: str | None = None,
        model: str | None = None, replace: bool = False,
    ) -> LabelsAdded:
        """Add true outcomes of served predictions (`conveyor labels add`): a CSV path or a frame.

        Rows whose request id is not in the prediction log are set aside with their reason
        (`first_rejected`, `rejected_file`); `monitor()` then scores the labeled predictions.
        `replace=True` changes labels already recorded (without it, a different label is refused).
        """
        own = model_configs(self.config, model, one=True)[0]
        with project_lock(own, self.workspace, "Project.labels_add"):
            if isinstance(labels, (str, Path)):
                return add_labels_project(own, self.workspace, Path(labels), id_column, label_column, replace)
            frame, _, _ = _rows_of(labels)
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "labels.csv"
                frame.write_csv(path)
                return add_labels_project(own, self.workspace, path, id_column, label_column, replace)

    @property
    def model_names(self) -> list[str]:
        """The names of `models:` (empty for a project with one model: its methods need no `model=`)."""
        return list(self.config.models)

    def models(self, model: str | None = None) -> ModelRegistry:
        """The registered versions (newest first), the champion, and the history of `@champion`.

        `model` names one of `models:` (a project with several models must name it).

        >>> registry = project.models()                          # doctest: +SKIP
        >>> registry.champion, [v.version for v in registry.versions]   # doctest: +SKIP
        ('2', ['2', '1'])
        """
        from conveyor.stages.training import champion_history, list_versions

        own = model_configs(self.config, model, one=True)[0]
        versions = list_versions(own, self.workspace)
        champion = next((v.version for v in versions if "champion" in v.aliases), None)
        history = champion_history(own, self.workspace) if versions else []
        return ModelRegistry(own.name, tuple(versions), champion, tuple(history))

    def model_version(self, version: str | int, *, model: str | None = None) -> VersionInfo:
        """Exactly what made one registered version (`conveyor models show VERSION`): its run,
        candidate, training-set digest, Feast feature service, config digest, test metrics and tags.

        `version` is a number (`3`, `"3"` or `"v3"`); a version not in the registry is a clear error.
        """
        from conveyor.stages.training import describe_version

        own = model_configs(self.config, model, one=True)[0]
        return describe_version(own, self.workspace, str(version).lstrip("v"))

    def promote(self, version: str | int, *, reason: str | None = None, model: str | None = None) -> AliasChange:
        """Point `@champion` at a registered version by hand (`conveyor models promote VERSION`).

        The same registry lock and compare-and-set as the gate; the move is appended to the
        history with who, when and `reason`. Running servers follow `@champion` and swap.
        A version not in the registry is a clear error.
        """
        from conveyor.stages.training import move_champion

        own = model_configs(self.config, model, one=True)[0]
        return move_champion(own, self.workspace, str(version), reason or "promoted by hand")

    def rollback(self, *, reason: str | None = None, model: str | None = None) -> AliasChange:
        """Point `@champion` back at the version it pointed to before its latest move
        (`conveyor models rollback`); recorded in the history like any move. Rolling back twice
        returns to where it was, as `cd -` does."""
        from conveyor.stages.training import move_champion, previous_champion

        own = model_configs(self.config, model, one=True)[0]
        now, back = previous_champion(own, self.workspace)
        return move_champion(own, self.workspace, back, reason or f"rolled back from v{now}", expect=now)

    def feature_views(self) -> list[ViewInfo]:
        """The Feast feature views (`conveyor features list`), the row-key view first: each one's
        entity, fields (name in the training set, Feast name, Feast type), source file and rows,
        TTL, online freshness (`online_as_of`, `age_seconds`) and the models reading it."""
        from conveyor.stages.features import feature_views

        return feature_views(self.config, self.workspace)

    def write_alerts(self, folder: str | Path = "alerts") -> tuple[Path, Path]:
        """Write Prometheus alerting rules and a Grafana dashboard for the service (`conveyor alerts`);
        returns the paths of `prometheus-rules.yml` and `grafana-dashboard.json`."""
        from conveyor.stages.monitoring import write_alerts

        return write_alerts(self.config, Path(folder))

    def doctor(self) -> list[Check]:
        """Check every service the project uses (`conveyor doctor`): the source, MLflow, the registry,
        the online and offline stores, the lock; one `Check` each (`role`, `status`, `detail`, `ok`)."""
        from conveyor.runner._doctor import check_services

        return check_services(self.config, self.workspace)

    def lineage(
        self, request_id: str | None = None, *, version: str | None = None, model: str | None = None,
    ) -> list[LineageStep]:
        """From a served prediction's request id (or a model `version`) back to the source file's bytes.

        Each step has a `depth`, a `kind` (prediction, model, training_set, clean, raw,
        source_file), a `digest`, a `path` in the project and a one-line `summary`.
        """
        if (request_id is None) == (version is None):
            raise ConveyorError("Project.lineage: give a request_id or version= (one of them)")
        config = self.config
        if request_id is not None:  # every model's log is searched: a request id is unique
            model_configs(config, model)  # a wrong `model` is still an error
            return lineage_of_prediction(config, self.workspace, request_id)
        own = model_configs(config, model, one=True)[0]
        return lineage_of_model(own, self.workspace, str(version).lstrip("v"))

    def clean_data(self) -> pl.DataFrame:
        """The clean data of the last `prepare` (typed; quarantined rows are not in it)."""
        return self._frame("prepare", "clean data")

    def training_set(self) -> pl.DataFrame:
        """The last training set: the clean rows with every feature, engineered ones included, point in time."""
        return self._frame("dataset", "training set")

    def _frame(self, stage: str, what: str) -> pl.DataFrame:
        import polars as pl

        artifact = last_artifact(self.workspace, stage)
        if artifact is None:
            raise ConveyorError(f"no {what} in {self.root}: `{stage}` has not run; run Project.run() first")
        return pl.read_parquet(artifact.path)


def _rows_of(data: Any) -> tuple[pl.DataFrame, list[dict[str, Any]], bool]:
    """`data` as a Polars frame, its rows as dicts, and whether it came as a pandas frame."""
    import polars as pl

    if isinstance(data, pl.DataFrame):
        return data, data.to_dicts(), False
    if type(data).__module__.partition(".")[0] == "pandas" and hasattr(data, "columns"):
        frame = pl.from_pandas(data)
        return frame, frame.to_dicts(), True
    rows = [data] if isinstance(data, Mapping) else data
    if not isinstance(rows, Sequence) or isinstance(rows, (str, bytes)) or not all(isinstance(r, Mapping) for r in rows):
        raise ConveyorError(f"expected a Polars or pandas DataFrame, a list of row dicts or one dict, "
                            f"not {type(data).__name__}")
    listed = [dict(row) for row in rows]
    return pl.from_dicts(listed, infer_schema_length=None) if listed else pl.DataFrame(), listed, False
