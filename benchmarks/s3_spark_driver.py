"""The driver's memory when `engine: spark` ingests `source.kind: s3`: peak RSS of the `conveyor`
process while the parts under a prefix are listed, downloaded and read into one snapshot.

    .venv/bin/python benchmarks/s3_spark_driver.py                          # 1 and 10 parts of 200,000 rows
    .venv/bin/python benchmarks/s3_spark_driver.py --rows 100000 --parts 1 5 --format csv

An S3-API server (`moto_server`, in a process of its own on 127.0.0.1, so its copy of the
objects is not counted) holds taxi-style parts made by `benchmarks/scale.py`'s generator, as
CSV and as Parquet (all text, as a lake's raw drop). For each format and part count,
`conveyor run --to ingest` (`engine: spark`, `spark.master: local[1]`) runs in a fresh process;
its peak RSS is VmHWM polled from /proc, with any JVM it starts counted apart, beside the
snapshot's size as Arrow columns (what holding every row at once would take, at the least). If the driver
held the whole snapshot, the peak would grow with the part count; reading one part at a time,
it stays near the one-part figure. The results: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from scale import make_csv, run_measured  # noqa: E402

BUCKET = "conveyor-bench"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _moto(work: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """`moto_server` on a free loopback port; the AWS variables that point at it."""
    import httpx

    port = _free_port()
    binary = Path(sys.executable).parent / "moto_server"
    with (work / "moto.log").open("wb") as log:
        server = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(env["AWS_ENDPOINT_URL"], timeout=1)
            return server, env
        except httpx.TransportError:
            time.sleep(0.2)  # the server is starting: there is no event to wait on
    server.terminate()
    raise SystemExit(f"moto_server did not answer on port {port}:\n{(work / 'moto.log').read_text()}")


def _upload(env: dict[str, str], csv: Path, rows: int, parts: int, fmt: str, work: Path) -> str:
    """The first `parts` x `rows` rows of the CSV as parts under a prefix; its URI."""
    import boto3
    import polars as pl

    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_DEFAULT_REGION"])
    if BUCKET not in [b["Name"] for b in client.list_buckets().get("Buckets", [])]:
        client.create_bucket(Bucket=BUCKET)
    prefix = f"taxi-{fmt}-{parts}x{rows}/"
    lazy = pl.scan_csv(csv, infer_schema=False)
    for index in range(parts):
        local = work / f"part-{index:05d}.{fmt}"
        chunk = lazy.slice(index * rows, rows)
        chunk.sink_parquet(local) if fmt == "parquet" else chunk.sink_csv(local)
        client.upload_file(str(local), BUCKET, f"{prefix}{local.name}")
        local.unlink()
    return f"s3://{BUCKET}/{prefix}"


def _project(folder: Path, uri: str) -> Path:
    config = yaml.safe_load((ROOT / "examples" / "nyc-taxi" / "conveyor.yaml").read_text(encoding="utf-8"))
    for gone in ("ehail_fee", "trip_type"):  # the generator leaves them out
        config["schema"]["columns"].pop(gone)
    config["source"] = {"kind": "s3", "uri": uri, "on_bad_lines": "quarantine"}
    config["engine"] = "spark"
    config["spark"] = {"master": "local[1]", "conf": {"spark.ui.enabled": False}}
    folder.mkdir(parents=True)
    (folder / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return folder


def _snapshot_mib(project: Path) -> float:
    """The snapshot's rows as Arrow columns in memory (read here, in this process): what a driver
    holding every row at once would hold at the least."""
    import pyarrow.parquet as pq

    (snapshot,) = (project / "data" / "raw").glob("*.parquet")
    return float(pq.read_table(snapshot).nbytes) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows per part")
    parser.add_argument("--parts", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--format", nargs="+", default=["csv", "parquet"], choices=["csv", "parquet"])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="conveyor-s3-driver-"))
    server, env = _moto(work)
    try:
        csv = work / "taxi.csv"
        make_csv(args.rows * max(args.parts), csv)
        print(f"{'format':8} {'parts':>5} {'rows':>10} {'seconds':>8} {'snapshot MiB':>12} {'driver MiB':>10} "
              f"{'JVM MiB':>8}")
        for fmt in args.format:
            for parts in args.parts:
                uri = _upload(env, csv, args.rows, parts, fmt, work)
                project = _project(work / f"{fmt}-{parts}", uri)
                cmd = [sys.executable, "-m", "conveyor", "run", "-C", str(project), "--to", "ingest"]
                os.environ.update(env)
                seconds, peaks = run_measured(cmd, work)
                print(f"{fmt:8} {parts:>5} {parts * args.rows:>10,} {seconds:>8.1f} {_snapshot_mib(project):>12,.0f} "
                      f"{peaks['driver']:>10,.0f} {peaks['jvm']:>8,.0f}", flush=True)
                shutil.rmtree(project)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
