"""The ceiling for `benchmarks/serving.py`: FastAPI, orjson and one `lightgbm.Booster.predict` per request.

No validation, no missing-value rule, no encoder, no prediction log, no metrics: the body's rows
go straight into a float matrix (features in `BARE_FEATURES` order) and the booster (a text
model file, `BARE_MODEL`) predicts them on one thread. What a hand-written service would do.

    BARE_MODEL=model.txt BARE_FEATURES=a,b,c uvicorn bare_app:app --port 28001
"""

from __future__ import annotations

import os

import lightgbm as lgb
import numpy as np
import orjson
from fastapi import FastAPI, Request, Response

booster = lgb.Booster(model_file=os.environ["BARE_MODEL"])
features = os.environ["BARE_FEATURES"].split(",")
app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
async def predict(request: Request) -> Response:
    rows = orjson.loads(await request.body())["rows"]
    matrix = np.array([[row.get(name) for name in features] for row in rows], dtype=np.float64)
    predictions = booster.predict(matrix, num_threads=1)
    return Response(orjson.dumps({"predictions": predictions.tolist()}), media_type="application/json")
