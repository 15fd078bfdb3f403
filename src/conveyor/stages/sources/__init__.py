"""Sources: reading raw data into immutable, content-addressed snapshots."""

from conveyor.stages.sources._csv import LINE_COLUMN
from conveyor.stages.sources._infer import infer_config
from conveyor.stages.sources._ingest import INGEST, RawSnapshot, ingest, source_digest

__all__ = ["INGEST", "LINE_COLUMN", "RawSnapshot", "infer_config", "ingest", "source_digest"]
