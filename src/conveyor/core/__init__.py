"""Core: configuration, errors, workspace paths, artifacts and hashes. Imports nothing heavy."""

from conveyor.core.artifacts import Artifact, Result
from conveyor.core.cleaning import MissingValues
from conveyor.core.config import CONFIG_FILE, Config, dump_config, load_config
from conveyor.core.errors import (
    ConfigError,
    ConveyorError,
    DataError,
    FeatureStoreError,
    MonitoringError,
    ServingError,
    TrainingError,
)
from conveyor.core.hashing import hash_file, hash_json, short
from conveyor.core.stage import Stage, Upstream
from conveyor.core.workspace import Workspace

__all__ = [
    "CONFIG_FILE",
    "Artifact",
    "Config",
    "ConfigError",
    "ConveyorError",
    "DataError",
    "FeatureStoreError",
    "MissingValues",
    "MonitoringError",
    "Result",
    "ServingError",
    "Stage",
    "TrainingError",
    "Upstream",
    "Workspace",
    "dump_config",
    "hash_file",
    "hash_json",
    "load_config",
    "short",
]
