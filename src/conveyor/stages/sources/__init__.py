"""Sources: reading raw data into immutable, content-addressed snapshots."""

from conveyor.stages.sources._csv import LINE_COLUMN
from conveyor.stages.sources._infer import infer_config
from conveyor.stages.sources._ingest import INGEST, RawSnapshot, ingest, source_digest
from conveyor.stages.sources._remote import infer_remote_config

__all__ = ["INGEST", "LINE_COLUMN", "RawSnapshot", "infer_config", "infer_remote_config", "ingest", "source_digest"]
