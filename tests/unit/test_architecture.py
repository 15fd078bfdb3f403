"""The layers and the public surface, checked by machines."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is not installed"
    result = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout


PUBLIC = {
    "conveyor": ["ConveyorError", "ModelRegistry", "Project", "RunResult", "StageRun", "__version__"],
    "conveyor.cli": ["app", "cli"],
    "conveyor.runner": [
        "STAGES", "Event", "LineageStep", "ModelRegistry", "Project", "RunResult", "StageRun", "add_labels_project", "cache_key", "init_project", "last_artifact", "lineage_of_model",
        "lineage_of_prediction", "load_project", "model_configs", "monitor_project", "project_lock", "run_pipeline",
        "serve_project",
        "stage_names",
        "stages_of",
        "without_search",
        "LoopOutcome", "act_on", "loop_records",
        "prefect_steps",  # the body of the flow file `conveyor schedule prefect -o` writes
    ],
    "conveyor.stages.sources": [
        "INGEST", "LINE_COLUMN", "RawSnapshot", "infer_config", "infer_remote_config", "ingest", "source_digest",
    ],
    "conveyor.stages.prep": ["EDA", "EVENT_TIMESTAMP", "PREPARE", "CleanData", "EdaReport", "clean_frame", "prepare"],
    "conveyor.stages.features": [
        "DATASET", "FEATURES", "FeatureRepo", "OnlineFeatures", "TrainingSet", "UnknownEntityError", "ViewInfo",
        "build_features", "feast_names", "feature_columns", "feature_views", "on_demand_values", "training_set",
        "write_repo",
    ],
    "conveyor.stages.training": [
        "CHAMPION", "PROMOTE", "TRAIN", "AliasChange", "Candidate", "Champion", "PromotionDecision", "TrainResult",
        "VersionInfo", "champion_history", "describe_version", "list_versions", "load_champion", "load_version", "promote",
        "registry_lock", "train",
        "champion_number", "on_server", "where",  # the MLflow server (stores.mlflow): hot swap, lineage
        "ChallengeDecision", "challenge",
        "move_champion", "previous_champion",  # models promote / rollback
    ],
    "conveyor.stages.monitoring": [
        "DriftCheck", "LabelsAdded", "Performance", "PredictionLog", "add_labels", "label_text", "monitor", "record_labels",
        "AlertDelivery", "GAUGES", "LabeledRow", "gauge_samples", "labeled_traffic", "monitor_gauges", "post_alert",
        "write_alerts",
    ],
    "conveyor.stages.serving": [
        "MAX_BODY_MB", "FeatureReader", "ModelsApp", "PredictionSink", "RequestModels", "ServedModel", "ServiceParts",
        "create_app", "create_models_app", "predict_rows", "request_models", "serve",
    ],
}


def test_exported_members() -> None:
    """Each package hands on exactly its curated names: nothing leaks, nothing is forgotten."""
    import importlib

    for name, expected in PUBLIC.items():
        module = importlib.import_module(name)
        assert sorted(module.__all__) == sorted(expected), name
        for member in module.__all__:
            assert hasattr(module, member), f"{name}.{member}"


def test_core_exports() -> None:
    import conveyor.core

    for name in conveyor.core.__all__:
        assert hasattr(conveyor.core, name), name


def test_mypy_strict_passes_on_src() -> None:
    exe = shutil.which("mypy", path=str(Path(sys.executable).parent))
    assert exe, "mypy is not installed (pip install -e '.[test]')"
    result = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr


def test_one_exception_root() -> None:
    from conveyor.core import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.ConveyorError)
