"""Sources: reading raw data into immutable, content-addressed snapshots."""

from conveyor.stages.sources._csv import LINE_COLUMN, NULL_TOKENS
from conveyor.stages.sources._infer import infer_config
from conveyor.stages.sources._ingest import ingest, source_digest

__all__ = ["LINE_COLUMN", "NULL_TOKENS", "infer_config", "ingest", "source_digest"]
