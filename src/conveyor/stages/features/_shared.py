"""The feature store's shared parts (`stores.registry`, `stores.offline`): checks and the S3 copy.

With `stores.offline: {kind: s3, uri: s3://bucket/prefix}` the offline data of a project (the Feast
source `data/source.parquet` and each entity's `data/by_<entity>.parquet`) is written to
`s3://bucket/prefix/<feast project>/data/...`, and the registry's FileSources name those objects:
another machine sharing the registry finds the data there. The point-in-time join itself runs
here, in DuckDB, on a local copy in `feature_repo/data/` (DuckDB cannot read S3 without its
`httpfs` extension, which is not installable offline): a copy is fetched when it is missing or its
object changed (the object's ETag is kept beside the copy, `<file>.etag`). The endpoint, region
and keys come from the standard AWS environment variables, read by boto3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.core.config import Config
from conveyor.core.errors import FeatureStoreError

__all__ = ["fetch_offline", "offline_root", "push_offline", "shared_parts_missing"]


def offline_root(config: Config, project: str) -> str | None:
    """`s3://bucket/prefix/<feast project>`: where the offline files go; None when they stay local."""
    store = config.stores.offline
    if store is None:
        return None
    if store.kind != "s3":
        raise FeatureStoreError(
            "stores.offline: kind postgres is not supported yet; use {kind: s3, uri: s3://bucket/prefix} "
            "or leave stores.offline out (local Parquet)"
        )
    return f"{store.uri.rstrip('/')}/{project}"


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _client() -> Any:
    import boto3  # type: ignore[import-untyped, unused-ignore]

    return boto3.client("s3")


def _s3_error(what: str, uri: str, exc: Exception) -> FeatureStoreError:
    return FeatureStoreError(
        f"stores.offline: could not {what} {uri}: {type(exc).__name__}: {exc}; check the bucket exists and "
        "AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )


def _etag_file(path: Path) -> Path:
    return path.with_name(path.name + ".etag")


def push_offline(root: str, staging: Path, parts: list[str]) -> None:
    """Upload each offline file of a staged build (`data/source.parquet`, `data/by_*.parquet`) to `root`."""
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped, unused-ignore]

    client = _client()
    for part in parts:
        uri = f"{root}/{part}"
        bucket, key = _split(uri)
        try:
            client.upload_file(str(staging / part), bucket, key)
            etag = str(client.head_object(Bucket=bucket, Key=key)["ETag"])
        except (BotoCoreError, ClientError, OSError) as exc:
            raise _s3_error("write", uri, exc) from exc
        _etag_file(staging / part).write_text(etag, encoding="utf-8")


def fetch_offline(root: str, repo: Path, parts: list[str]) -> None:
    """The local copy of each offline file, fetched when missing or when its object changed."""
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped, unused-ignore]

    client = _client()
    for part in parts:
        uri = f"{root}/{part}"
        bucket, key = _split(uri)
        local = repo / part
        try:
            etag = str(client.head_object(Bucket=bucket, Key=key)["ETag"])
        except (BotoCoreError, ClientError) as exc:
            raise _s3_error("read", uri, exc) from exc
        marker = _etag_file(local)
        if local.is_file() and marker.is_file() and marker.read_text(encoding="utf-8") == etag:
            continue
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(local.name + ".download")
        try:
            client.download_file(bucket, key, str(tmp))
        except (BotoCoreError, ClientError, OSError) as exc:
            tmp.unlink(missing_ok=True)
            raise _s3_error("read", uri, exc) from exc
        tmp.replace(local)
        marker.write_text(etag, encoding="utf-8")


def shared_parts_missing(config: Config, service: str) -> str | None:
    """Why a cached `features` no longer holds on the shared stores (the registry lost the feature
    service, an offline object is gone), or None."""
    from conveyor.stages.features._names import feast_names
    from conveyor.stages.features._repo import offline_parts

    project = feast_names(config).project
    if config.stores.registry is not None and not _registry_holds(config, project, service):
        return f"the Feast registry on PostgreSQL holds no feature service {service!r} of project {project!r}"
    root = offline_root(config, project)
    if root is not None:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped, unused-ignore]

        client = _client()
        for part in offline_parts(config):
            bucket, key = _split(f"{root}/{part}")
            try:
                client.head_object(Bucket=bucket, Key=key)
            except ClientError:
                return f"the offline file {root}/{part} is gone"
            except BotoCoreError as exc:
                raise _s3_error("read", f"{root}/{part}", exc) from exc
    return None


def _registry_holds(config: Config, project: str, service: str) -> bool:
    """One query to the SQL registry's table (no Feast import): does it hold the service?"""
    import psycopg

    from conveyor.core.environment import from_env

    assert config.stores.registry is not None
    dsn = from_env(config.stores.registry.dsn_env, "stores.registry.dsn_env", "postgresql://user:password@host:5432/db")
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            found = conn.execute(
                "SELECT 1 FROM feature_services WHERE feature_service_name = %s AND project_id = %s",
                (service, project),
            ).fetchone()
    except psycopg.errors.UndefinedTable:
        return False
    except psycopg.Error as exc:
        raise FeatureStoreError(
            f"stores.registry: PostgreSQL is unreachable ({type(exc).__name__}); check the server and "
            f"{config.stores.registry.dsn_env}"
        ) from None
    return found is not None
