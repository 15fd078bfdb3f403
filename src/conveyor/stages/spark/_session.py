"""One Spark session per process, started from the `spark:` section and reused by every stage.

Starting a session costs 10-20 s (a JVM, then the cluster's executors), so the session is kept
for the life of the process and reused while the `spark:` section is the same. Whatever can
be checked before the JVM starts is checked first, so that a missing Java, a master URI
nobody answers at, or a cluster that gives the application no executors is one line naming
the setting, not a JVM stack trace.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.config import SparkConfig
from conveyor.core.errors import ConfigError, EngineError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["active_session", "spark_session", "stop_session"]

_DEFAULTS: dict[str, str] = {
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    # a folder of parts without `_SUCCESS`: Polars reads it as one table
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    # Spark 4 decodes only UTF-8/16/32 and latin-1 unless told to use every charset Java knows (cp1252 ...)
    "spark.sql.legacy.javaCharsets": "true",
    # timestamps as Parquet's INT64 microseconds, what Polars writes and reads (not the legacy INT96)
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # rows per Arrow batch a task hands to Polars: fewer, larger batches (the rules' plan is built per batch)
    "spark.sql.execution.arrow.maxRecordsPerBatch": "100000",
}
"""Conveyor's defaults; `spark.conf` overrides them (the session time zone is always UTC)."""

_STARTUP_TIMEOUT_S = 120.0
"""How long a cluster may take to give the application its first executor."""

_lock = threading.Lock()
_current: tuple[tuple[Any, ...], SparkSession] | None = None


def _key(spark: SparkConfig) -> tuple[Any, ...]:
    """What a session is reused for: the same master and conf (the app's name is the first project's)."""
    return (spark.master, tuple(sorted((k, str(v)) for k, v in spark.conf.items())))


def active_session() -> SparkSession | None:
    """The session this process started, if any (None: no Spark has been loaded)."""
    return _current[1] if _current is not None else None


def stop_session() -> None:
    """Stop the process's session (a new `spark:` section, or the end of a test run)."""
    global _current
    with _lock:
        if _current is not None:
            _current[1].stop()
            _current = None


def spark_session(spark: SparkConfig, project: str) -> SparkSession:
    """The process's session for this `spark:` section: started once, then reused.

    A different section (another master, other conf) stops the old session first: a JVM holds
    one SparkContext.
    """
    global _current
    app_name = spark.app_name or f"conveyor-{project}"
    key = _key(spark)
    with _lock:
        if _current is not None:
            if _current[0] == key and not _stopped(_current[1]):
                return _current[1]
            _current[1].stop()
            _current = None
        session = _start(spark, app_name)
        if _current is None:
            import atexit

            atexit.register(stop_session)  # the cluster then lists the application as finished
        _current = (key, session)
        return session


def _stopped(session: SparkSession) -> bool:
    jsc = session.sparkContext._jsc
    return jsc is None or bool(jsc.sc().isStopped())


def _start(spark: SparkConfig, app_name: str) -> SparkSession:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EngineError(
            "engine: spark needs PySpark, which is not installed; pip install 'conveyor[spark]' (or set engine: polars)"
        ) from None
    _check_java()
    _check_master(spark.master)
    local = spark.master.startswith("local")
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    if "PYSPARK_PYTHON" not in os.environ and "spark.pyspark.python" not in spark.conf:
        # the Python workers of mapInArrow must be this interpreter (Polars, Conveyor installed)
        os.environ["PYSPARK_PYTHON"] = sys.executable
    builder = SparkSession.builder.master(spark.master).appName(app_name)
    defaults = dict(_DEFAULTS)
    if local:
        # Spark's 200 shuffle partitions, coalesced by adaptive execution to its advisory size (64 MB) rather
        # than to the most tasks: a small file gets a task or two per shuffle, 50M rows about a hundred.
        # A fixed few per core put 12.5M sorted rows in one partition, and caching that one block
        # ran the 4 GB heap out of memory in prepare.
        defaults |= {"spark.sql.adaptive.enabled": "true",
                     "spark.sql.adaptive.coalescePartitions.parallelismFirst": "false"}
    for name, value in {**defaults, **{k: _conf_text(v) for k, v in spark.conf.items()}}.items():
        builder = builder.config(name, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # py4j and PySpark errors: one line naming the setting
        raise _startup_error(spark.master, exc) from None
    session.sparkContext.setLogLevel("ERROR")
    session.conf.set("spark.sql.session.timeZone", "UTC")  # event times are UTC, whatever `conf` says
    if not local:
        _wait_for_executors(session, spark.master)
    return session


def _conf_text(value: str | int | float | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _check_java() -> None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return
    if shutil.which("java") is None:
        where = f"JAVA_HOME={home} has no bin/java" if home else "JAVA_HOME is not set"
        raise EngineError(
            f"engine: spark needs Java 17 or later, and there is no `java` on PATH ({where}); "
            "install a JDK (apt-get install openjdk-17-jre-headless) or set engine: polars"
        )


def _check_master(master: str) -> None:
    """A standalone master (`spark://host:port[,host:port]`) must accept a TCP connection."""
    if not master.startswith("spark://"):
        return
    failures = []
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"spark.master: {master!r} is not spark://HOST:PORT (e.g. spark://127.0.0.1:7077)")
        try:
            with socket.create_connection((host, int(port)), timeout=5):
                return
        except OSError as exc:
            failures.append(f"{host}:{port} ({exc.strerror or exc})")
    raise ConfigError(
        f"spark.master: no Spark master answers at {master} ({'; '.join(failures)}); "
        "start the master or fix spark.master in conveyor.yaml"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("at ", "Traceback", "JVM stacktrace")):
            return line[:300]
    return type(exc).__name__


def _startup_error(master: str, exc: BaseException) -> Exception:
    text = str(exc)
    if "Could not parse Master URL" in text or "Master URL" in text:
        return ConfigError(f"spark.master: Spark cannot use {master!r} ({_first_line(exc)})")
    if "JAVA_GATEWAY_EXITED" in text or "Java gateway process exited" in text:
        return EngineError(
            "engine: spark: the Java process of Spark exited at start (is Java 17+ installed, and is "
            f"spark.conf valid?): {_first_line(exc)}"
        )
    return EngineError(f"spark.master: the Spark session could not start on {master}: {_first_line(exc)}")


def _wait_for_executors(session: SparkSession, master: str) -> None:
    """A tiny job: a cluster that accepts the app but never gives it an executor is an error, not a hang."""
    context = session.sparkContext
    group = "conveyor-startup-check"
    done = threading.Event()
    failure: list[BaseException] = []

    def probe() -> None:
        try:
            context.setJobGroup(group, "startup check", interruptOnCancel=True)
            session.range(1).count()
        except BaseException as exc:  # reported below, as one line
            failure.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    if not done.wait(_STARTUP_TIMEOUT_S):
        context.cancelJobGroup(group)
        session.stop()
        raise EngineError(
            f"spark.master: the cluster at {master} gave the application no executor within "
            f"{_STARTUP_TIMEOUT_S:.0f} s; does a worker have the cores and memory asked for "
            "(spark.executor.cores, spark.executor.memory in spark.conf)?"
        )
    if failure:
        session.stop()
        raise EngineError(f"spark.master: the cluster at {master} refused the application: {_first_line(failure[0])}")
