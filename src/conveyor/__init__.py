"""Conveyor: a raw CSV to a monitored prediction API, on Feast, MLflow and FastAPI."""

from conveyor.core.errors import ConveyorError

__version__ = "0.1.0"

__all__ = ["ConveyorError", "__version__"]
