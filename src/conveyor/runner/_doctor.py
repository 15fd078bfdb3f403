"""`conveyor doctor`: one line per service a project uses, and the same check before a stage.

Each configured service (the source's database or bucket, `stores:` MLflow server, Feast
registry, online store, offline store, lock) is asked for its version and for what the project
will use there (a database, a table, a bucket and prefix), with short timeouts. A service that
is down, or lacks what the project needs, gives one line naming it, its address (never a
password) and the environment variable it came from. The embedded default says so in one line
per store. `require` runs the checks a set of stages needs and raises `ServiceError` with the
failing lines, so a run stops in one line instead of a driver's traceback. Drivers (psycopg,
redis, boto3) are imported only when a check needs them.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import SplitResult, unquote, urlsplit

from conveyor.core.config import Config, MlflowStore, PostgresStore, RedisStore, S3Store
from conveyor.core.errors import ServiceError
from conveyor.core.stage import MODEL_STAGE_SEPARATOR
from conveyor.core.workspace import Workspace
from conveyor.stages.features import feast_names

__all__ = ["Check", "check_services", "mask_url", "require", "roles_for"]

TIMEOUT_S = 3.0
"""How long a check waits for a service to answer."""

REGISTRY_NOTE = "Feast SQL registry"

Status = Literal["ok", "embedded", "down", "missing"]


@dataclass(frozen=True)
class Check:
    role: str
    """What the project uses the service for: `source`, `stores.mlflow`, `stores.online`, ..."""
    status: Status
    """ok / embedded: usable; down: unreachable or refusing; missing: reachable, but lacks something."""
    detail: str
    """One line: the service, its version and address, the environment variable, what it holds or lacks."""

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "embedded")

    def line(self) -> str:
        return f"{self.role}: {self.detail}"


STAGE_ROLES: dict[str, tuple[str, ...]] = {
    "ingest": ("source",),
    "features": ("stores.registry", "stores.online", "stores.offline"),
    "dataset": ("stores.registry", "stores.offline"),
    "train": ("stores.mlflow",),
    "promote": ("stores.mlflow",),
    "serve": ("stores.mlflow", "stores.registry"),
}
"""The services each stage (and `serve`) cannot start without. `serve` starts without the online
store (its /health and entity lookups say when Redis is down, and recover when it returns).
Every stage also runs under the project lock (`stores.lock`, else the registry's database)."""

ROLES = ("source", "stores.mlflow", "stores.registry", "stores.online", "stores.offline", "stores.lock")


def roles_for(stages: Iterable[str]) -> tuple[str, ...]:
    """The roles the given stages (`train.fare` counts as `train`) need, in `ROLES` order."""
    bases = {name.split(MODEL_STAGE_SEPARATOR, 1)[0] for name in stages}
    wanted = {role for base in bases for role in STAGE_ROLES.get(base, ())}
    if bases - {"serve"}:  # every stage runs under the project lock
        wanted.add("stores.lock")
    return tuple(role for role in ROLES if role in wanted)


def require(config: Config, workspace: Workspace, stages: Iterable[str]) -> None:
    """Raise ServiceError (one line per failing service) unless every shared service the stages
    need answers; the embedded default needs nothing."""
    roles = [role for role in roles_for(stages) if _shared(config, role)]
    if not roles:
        return
    failed = [check for check in check_services(config, workspace, roles) if not check.ok]
    if failed:
        lines = list(dict.fromkeys(check.detail for check in failed))  # one server behind two roles: once
        raise ServiceError("\n".join(lines) + " (conveyor doctor checks every service)")


def check_services(config: Config, workspace: Workspace, roles: Iterable[str] = ROLES) -> list[Check]:
    """One Check per role (see `ROLES`), in that order."""
    checks: list[Check] = []
    for role in roles:
        checks.append(_ROLE_CHECKS[role](config, workspace))
    return checks


# ---- the roles --------------------------------------------------------------------------------


def _shared(config: Config, role: str) -> bool:
    if role == "source":
        return str(config.source.kind) in ("postgres", "s3")
    if role == "stores.lock":
        return _lock_store(config) is not None
    return getattr(config.stores, role.removeprefix("stores.")) is not None


def _lock_store(config: Config) -> PostgresStore | None:
    """`stores.lock`, else `stores.registry`'s database (as the lock itself does), else none."""
    return config.stores.lock or config.stores.registry


def _check_source(config: Config, workspace: Workspace) -> Check:
    source: Any = config.source
    kind = str(source.kind)
    if kind == "postgres":
        table = getattr(source, "table", None)
        return _postgres("source", source.dsn_env, tables=[table] if table else [], need_create=False)
    if kind == "s3":
        return _s3("source", _source_uri(source), must_exist=True)
    path = workspace.resolve(source.path)
    if path.exists():
        return Check("source", "embedded", f"{kind.upper()} file {source.path} (no service)")
    return Check("source", "missing", f"{kind.upper()} file {path} does not exist: fix source.path in conveyor.yaml")


def _source_uri(source: Any) -> str:
    """The S3 source's `s3://bucket/key-or-prefix` (`source.uri`)."""
    return str(getattr(source, "uri", None) or "s3://")


def _check_mlflow(config: Config, workspace: Workspace) -> Check:
    store = config.stores.mlflow
    if store is None:
        return Check("stores.mlflow", "embedded", "MLflow embedded: SQLite mlflow.db and mlartifacts/ in the project")
    return _mlflow(store)


def _check_registry(config: Config, workspace: Workspace) -> Check:
    store = config.stores.registry
    if store is None:
        return Check("stores.registry", "embedded", "Feast registry embedded: feature_repo/data/registry.pb")
    return _postgres("stores.registry", store.dsn_env, tables=[], need_create=True, note=REGISTRY_NOTE)


def _check_online(config: Config, workspace: Workspace) -> Check:
    store = config.stores.online
    if store is None:
        return Check("stores.online", "embedded", f"online store embedded: {config.features.online_store} in feature_repo/")
    return _redis(store, f"conveyor:{feast_names(config).project}")


def _check_offline(config: Config, workspace: Workspace) -> Check:
    store = config.stores.offline
    if store is None:
        return Check("stores.offline", "embedded", "offline store embedded: Parquet files in the project")
    if isinstance(store, S3Store):
        return _s3("stores.offline", store.uri, must_exist=False)
    return _postgres("stores.offline", store.dsn_env, tables=[], need_create=True, note="offline tables")


def _check_lock(config: Config, workspace: Workspace) -> Check:
    store = _lock_store(config)
    if store is None:
        return Check("stores.lock", "embedded", "project lock embedded: a lock file in .conveyor/ (one machine)")
    return _postgres("stores.lock", store.dsn_env, tables=[], need_create=False, note="advisory lock")


_ROLE_CHECKS: dict[str, Callable[[Config, Workspace], Check]] = {
    "source": _check_source,
    "stores.mlflow": _check_mlflow,
    "stores.registry": _check_registry,
    "stores.online": _check_online,
    "stores.offline": _check_offline,
    "stores.lock": _check_lock,
}


# ---- the services -----------------------------------------------------------------------------


def mask_url(url: str) -> str:
    """`scheme://user:secret@host/...` -> `scheme://user:***@host/...`; also masks `password=`
    query/keyword values. Nothing else of the URL changes."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    masked = SplitResult(parts.scheme, netloc, parts.path, parts.query, parts.fragment).geturl()
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1***", masked)


def _secrets(url: str) -> list[str]:
    """The password in a URL (raw and percent-decoded), to scrub from a driver's message."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    found = [password, unquote(password)] if password else []
    found += re.findall(r"(?i)password=([^&\s]+)", url)
    return [secret for secret in found if secret]


def _reason(exc: BaseException, secrets: list[str]) -> str:
    """A driver's exception as a short reason: `connection refused`, `timed out`, its first line."""
    text = str(exc) or type(exc).__name__
    lower = text.lower()
    if "connection refused" in lower or isinstance(exc, ConnectionRefusedError):
        reason = "connection refused"
    elif "timed out" in lower or "timeout" in lower or isinstance(exc, TimeoutError):
        reason = "timed out"
    elif "name or service not known" in lower or "could not translate host name" in lower:
        reason = "unknown host"
    else:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        reason = lines[0] if lines else type(exc).__name__
        reason = re.sub(r"^connection failed: connection to server at [^:]+:\s*", "", reason)
        reason = reason.split("FATAL:", 1)[-1].strip()
    for secret in secrets:
        reason = reason.replace(secret, "***")
    return reason[:200]


def _env(role: str, name: str, service: str) -> tuple[str | None, Check | None]:
    value = os.environ.get(name)
    if value:
        return value, None
    return None, Check(role, "down", f"{service} ({name}): {name} is not set: export it "
                                     "(examples/team-stack/up prints the lines)")


def _postgres(role: str, dsn_env: str, *, tables: list[str], need_create: bool, note: str = "") -> Check:
    dsn, unset = _env(role, dsn_env, "PostgreSQL")
    if dsn is None:
        assert unset is not None
        return unset
    parts = urlsplit(dsn) if "://" in dsn else None
    where = f"{parts.hostname}:{parts.port or 5432}" if parts and parts.hostname else "(libpq keywords)"
    head = f"PostgreSQL at {where} ({dsn_env})"
    try:
        import psycopg
    except ImportError:
        return Check(role, "down", f"{head}: psycopg is not installed: pip install 'conveyor[team]'")
    try:
        with psycopg.connect(dsn, connect_timeout=int(TIMEOUT_S), autocommit=True) as conn:
            row = conn.execute(
                "SELECT split_part(current_setting('server_version'), ' ', 1), current_database(), current_user, "
                "has_schema_privilege(current_user, 'public', 'CREATE')"
            ).fetchone()
            assert row is not None
            version, database, user, can_create = row
            absent = [
                table for table in tables
                if conn.execute("SELECT to_regclass(%s) IS NULL", (table,)).fetchone() == (True,)
            ]
            if note == REGISTRY_NOTE:  # Feast makes its tables on the first `conveyor features`
                made = conn.execute("SELECT to_regclass('feast_metadata') IS NOT NULL").fetchone() == (True,)
                note += ", tables present" if made else ", tables not made yet (`conveyor features` makes them)"
    except Exception as exc:  # any driver failure is this service's line
        return Check(role, "down", f"{head}: {_reason(exc, _secrets(dsn))}")
    head = f"PostgreSQL {version} at {where}, database {database}, user {user} ({dsn_env})"
    if absent:
        return Check(role, "missing", f"{head}: table {', '.join(absent)} does not exist")
    if need_create and not can_create:
        return Check(role, "missing", f"{head}: user {user} may not CREATE in schema public "
                                      f"(GRANT CREATE ON SCHEMA public TO {user})")
    uses = f"table {', '.join(tables)}" if tables else note or "reachable"
    return Check(role, "ok", f"{head}: {uses}")


def _redis(store: RedisStore, prefix: str) -> Check:
    """`prefix`: where the project's keys live (the online store's `conveyor:<Feast project>`)."""
    role = "stores.online"
    url, unset = _env(role, store.url_env, "Redis")
    if url is None:
        assert unset is not None
        return unset
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 6379}"
    database = parts.path.strip("/") or "0"
    head = f"Redis at {where} ({store.url_env})"
    try:
        import redis
    except ImportError:
        return Check(role, "down", f"{head}: redis is not installed: pip install 'conveyor[team]'")
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_S, socket_timeout=TIMEOUT_S)
        try:
            info: dict[str, Any] = client.info("server")  # type: ignore[assignment]  # sync client: a dict
            version = info.get("redis_version", "?")
            keys = client.dbsize()
        finally:
            client.close()
    except Exception as exc:
        return Check(role, "down", f"{head}: {_reason(exc, _secrets(url))}")
    return Check(role, "ok", f"Redis {version} at {where}, database {database} ({store.url_env}): "
                             f"key prefix {prefix}, {keys} keys in the database")


def _s3(role: str, uri: str, *, must_exist: bool) -> Check:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    where = mask_url(endpoint) if endpoint else "AWS"
    source = " (AWS_ENDPOINT_URL)" if endpoint else ""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    head = f"S3 at {where}{source}, bucket {bucket or '?'}"
    if not bucket:
        return Check(role, "missing", f"{head}: no bucket named ({uri})")
    try:  # by name: boto3 publishes no types (Any either way)
        boto3 = importlib.import_module("boto3")
        boto_config = importlib.import_module("botocore.config")
    except ImportError:
        return Check(role, "down", f"{head}: boto3 is not installed: pip install 'conveyor[team]'")
    try:
        client = boto3.client("s3", config=boto_config.Config(
            connect_timeout=TIMEOUT_S, read_timeout=TIMEOUT_S, retries={"max_attempts": 1}))
        listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            return Check(role, "missing", f"{head}: bucket {bucket} does not exist (create it: aws s3 mb s3://{bucket})")
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return Check(role, "missing", f"{head}: no permission to list s3://{bucket}/{prefix} ({code})")
        if type(exc).__name__ == "NoCredentialsError":
            return Check(role, "down", f"{head}: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
        cause = getattr(exc, "kwargs", {}).get("error", exc)  # botocore's EndpointConnectionError wraps it
        return Check(role, "down", f"{head}: {_reason(cause, [])}")
    server = listed.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("server", "").split(" ")[0]
    head = f"S3 ({server}) at {where}{source}, bucket {bucket}" if server else head
    if must_exist and not listed.get("KeyCount"):
        return Check(role, "missing", f"{head}: no object at s3://{bucket}/{prefix}")
    return Check(role, "ok", f"{head}: prefix {prefix or '/'}")


def _mlflow(store: MlflowStore) -> Check:
    role = "stores.mlflow"
    uri, unset = _env(role, store.tracking_uri_env, "MLflow")
    if uri is None:
        assert unset is not None
        return unset
    shown = mask_url(uri)
    head = f"MLflow at {shown} ({store.tracking_uri_env})"
    if uri.startswith("sqlite:///"):  # a shared database file (one machine, or a shared disk)
        db = Path(unquote(uri.removeprefix("sqlite:///").split("?", 1)[0]))
        if not db.parent.is_dir():
            return Check(role, "missing", f"{head}: the folder {db.parent} does not exist")
        return Check(role, "ok", f"{head}: database file {db.name} ({'exists' if db.exists() else 'made on first use'})")
    if not uri.startswith(("http://", "https://")):
        return Check(role, "missing", f"{head}: not an http(s) tracking server URI nor a sqlite:/// database")
    import urllib.error

    base = uri.rstrip("/")
    try:
        version = _http_get(base + "/version").strip() or "?"
        for path in ("experiments/search", "registered-models/search"):  # both read the backend store
            json.loads(_http_get(f"{base}/api/2.0/mlflow/{path}?max_results=1"))
    except urllib.error.HTTPError as exc:
        return Check(role, "down", f"{head}: HTTP {exc.code} from the server (is its backend store up?)")
    except Exception as exc:
        return Check(role, "down", f"{head}: {_reason(getattr(exc, 'reason', exc), _secrets(uri))}")
    return Check(role, "ok", f"MLflow {version} at {shown} ({store.tracking_uri_env}): tracking and registry answer")


def _http_get(url: str) -> str:
    import urllib.request

    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    parts = urlsplit(url)
    if parts.username:  # basic auth from the URI, sent as a header, never shown
        import base64

        token = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        request.full_url = SplitResult(parts.scheme, netloc, parts.path, parts.query, parts.fragment).geturl()
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 (http(s) only, checked)
        return str(response.read().decode("utf-8", "replace"))
