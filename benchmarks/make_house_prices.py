"""Write tests/data/house_prices.csv: a synthetic, house-price-like regression file (shipped; no download).

A right-skewed positive target (the sale price: multiplicative effects of size, quality, age
and a 60-level neighbourhood, with log-normal noise), the shape of the Kaggle house-price data
where a plain LightGBM falls behind one fitted on log(price). Deterministic (seeded):

    .venv/bin/python benchmarks/make_house_prices.py [--rows 3000] [--out tests/data/house_prices.csv]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def house_prices(rows: int, seed: int = 0) -> dict[str, list[object]]:
    rng = np.random.default_rng(seed)
    neighbourhoods = [f"N{i:02d}" for i in range(60)]
    effect = rng.normal(scale=0.35, size=len(neighbourhoods))
    weights = rng.dirichlet(np.full(len(neighbourhoods), 0.7))
    hood = rng.choice(len(neighbourhoods), size=rows, p=weights)
    quality = np.clip(np.round(rng.normal(6, 1.5, rows)), 1, 10).astype(int)
    area = np.round(np.exp(rng.normal(7.2, 0.35, rows)) + 40 * quality).astype(int)
    lot = np.round(np.exp(rng.normal(9.1, 0.5, rows))).astype(int)
    built = rng.integers(1880, 2010, rows)
    bedrooms = np.clip(np.round(area / 450 + rng.normal(0, 0.7, rows)), 1, 8).astype(int)
    garage = np.clip(rng.poisson(1.6, rows), 0, 4)
    style = rng.choice(["1Story", "2Story", "1.5Fin", "SLvl", "Split"], size=rows, p=[0.5, 0.3, 0.1, 0.06, 0.04])
    log_price = (
        6.7 + 0.09 * quality + 0.55 * np.log(area) + 0.08 * np.log(lot) + 0.004 * (built - 1950)
        + 0.05 * garage + effect[hood] + np.where(style == "2Story", 0.05, 0.0)
        + 0.02 * quality * (built > 1990) + rng.normal(0, 0.13, rows)
    )
    price = np.round(np.exp(log_price) / 100) * 100
    lot_shown: list[object] = [int(v) if rng.random() > 0.05 else "" for v in lot]  # some lots unknown
    return {
        "house_id": list(range(1, rows + 1)), "neighbourhood": [neighbourhoods[i] for i in hood], "style": style.tolist(),
        "overall_quality": quality.tolist(), "living_area": area.tolist(), "lot_area": lot_shown,
        "year_built": built.tolist(), "bedrooms": bedrooms.tolist(), "garage_cars": garage.tolist(),
        "sale_price": price.astype(int).tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "house_prices.csv")
    args = parser.parse_args()
    columns = house_prices(args.rows)
    with args.out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(zip(*columns.values(), strict=True))
    print(f"wrote {args.rows} rows to {args.out}")


if __name__ == "__main__":
    main()
