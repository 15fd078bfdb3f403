"""Where a project's artifacts live on disk, relative to its `conveyor.yaml`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Workspace"]


@dataclass(frozen=True)
class Workspace:
    """The folder holding conveyor.yaml and everything a run leaves behind."""

    root: Path

    @classmethod
    def at(cls, root: Path) -> Workspace:
        return cls(root.resolve())

    @property
    def config_file(self) -> Path:
        return self.root / "conveyor.yaml"

    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def clean(self) -> Path:
        return self.root / "data" / "clean"

    @property
    def quarantine(self) -> Path:
        return self.root / "data" / "quarantine"

    @property
    def training_sets(self) -> Path:
        return self.root / "data" / "training"

    @property
    def reference(self) -> Path:
        return self.root / "data" / "reference"

    @property
    def feature_repo(self) -> Path:
        return self.root / "feature_repo"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.mlflow_db}"

    @property
    def mlartifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    def labels(self, model: str | None = None) -> Path:
        """The labels of served predictions: `labels/`, or `labels/<model>/` for a model of `models:`."""
        return self.root / "labels" if model is None else self.root / "labels" / model

    def prediction_log(self, model: str | None = None) -> Path:
        """The prediction log's folder: `predictions/`, or `predictions/<model>/` for a model of `models:`."""
        return self.predictions if model is None else self.predictions / model

    @property
    def state(self) -> Path:
        """Run records and stage cache: `.conveyor/`."""
        return self.root / ".conveyor"

    @property
    def compiled(self) -> Path:
        """Serving's cache of compiled trees (object code by model hash): `.conveyor/compiled/`."""
        return self.state / "compiled"

    def reference_file(self, model: str, version: str | int) -> Path:
        """The training reference of one model version: its features and predictions."""
        return self.reference / f"{model}-v{version}.parquet"

    def resolve(self, relative: str) -> Path:
        """A path from the project file, taken relative to the workspace."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.root / path

    def ensure(self, *dirs: Path) -> None:
        for folder in dirs:
            folder.mkdir(parents=True, exist_ok=True)
