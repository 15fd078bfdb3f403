"""The Apache Spark session of `engine: spark`, shared by the data stages (sources, prep).

PySpark is imported only when a session is asked for, so `engine: polars` (the default) and
`conveyor --help` never load it.
"""

from conveyor.stages.spark._names import column, positional
from conveyor.stages.spark._session import active_session, spark_session, stop_session

__all__ = ["active_session", "column", "positional", "spark_session", "stop_session"]
