"""What `training.max_rows` costs: the train stage's seconds and the process's peak RSS by rows trained on.

    .venv/bin/python benchmarks/training_rows.py                      # 1M-row taxi-style set; 250k, 500k, 1M
    .venv/bin/python benchmarks/training_rows.py --rows 2000000 --limits 500000 1000000 2000000

One taxi-style training set (`scale.py`'s generator, its engineered features included) is
built once; then `conveyor run --from train --no-search` runs in a fresh process per limit,
with `training.max_rows` set to it (the limit equal to the rows: every row, no sample). Each
line is that process's peak RSS (`wait4`) and the train stage's seconds; the slope per million
rows is what the default of `training.max_rows` is chosen from (docs/config.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import make_csv, timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--limits", type=int, nargs="+", default=[250_000, 500_000, 1_000_000])
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    import yaml

    work = args.keep or Path(tempfile.mkdtemp(prefix="conveyor-training-rows-"))
    work.mkdir(parents=True, exist_ok=True)
    csv = work / "taxi.csv"
    make_csv(args.rows, csv)
    conveyor = [sys.executable, "-m", "conveyor"]
    timed([*conveyor, "init", "--csv", str(csv), "--target", "fare_amount", "--timestamp", "tpep_pickup_datetime",
           "--drop", "total_amount", "--drop", "tpep_dropoff_datetime", "--name", "taxi-rows", "--force"], work)
    timed([*conveyor, "run", "--to", "dataset"], work)
    path = work / "conveyor.yaml"
    config = yaml.safe_load(path.read_text())
    results = []
    for limit in args.limits:
        config["training"]["max_rows"] = limit
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        seconds, peak, _ = timed([*conveyor, "run", "--from", "train", "--no-search"], work)
        record = json.loads(sorted((work / ".conveyor" / "runs").glob("*.json"))[-1].read_text())
        train = next(s for s in record["stages"] if s["stage"] == "train")
        results.append((min(limit, args.rows), train.get("seconds", 0.0), seconds, peak))
        print(f"  {limit:,}: {peak:,.0f} MiB", flush=True)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"\n{args.rows:,}-row training set; conveyor run --from train --no-search; load average {load}\n")
    print(f"{'rows trained on':>16}{'train s':>10}{'process s':>11}{'peak RSS MiB':>14}")
    for rows, train_s, process_s, peak in results:
        print(f"{rows:>16,}{train_s:>10.1f}{process_s:>11.1f}{peak:>14,.0f}")
    if len(results) >= 2:
        (r0, _, _, p0), (r1, _, _, p1) = results[0], results[-1]
        slope = (p1 - p0) / (r1 - r0) * 1e6
        print(f"\npeak RSS grows {slope:,.0f} MiB per million rows trained on (from {r0:,} to {r1:,})")


if __name__ == "__main__":
    main()
