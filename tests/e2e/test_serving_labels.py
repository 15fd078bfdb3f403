"""POST /labels over real HTTP (uvicorn on 127.0.0.1): the admin key, and the checks of `labels add`.

The service is the tiny model of the app's unit tests with the real prediction log, and the
runner's `LabelRecorder` (monitoring's checks and label log) in a real workspace.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from conveyor.core.workspace import Workspace
from conveyor.runner._serve import LabelRecorder
from conveyor.stages.monitoring import PredictionLog
from conveyor.stages.monitoring._labels import LabelLog
from conveyor.stages.serving import ServiceParts, create_app
from tests.e2e.test_serving_log_full import uvicorn_server
from tests.unit.test_serving_app import TinyModel, TinyStore, row, tiny_config

ADMIN = "adm1n-key"


def test_labels_are_pushed_with_the_admin_key_and_checked_like_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TINY_ADMIN", ADMIN)
    config = tiny_config()
    config = config.model_copy(update={"serving": config.serving.model_copy(update={"admin_key_env": "TINY_ADMIN"})})
    workspace = Workspace.at(tmp_path)
    log = PredictionLog(workspace.prediction_log())
    app = create_app(config, ServiceParts(TinyModel(), TinyStore(), log, labels=LabelRecorder(config, workspace)))
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with uvicorn_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        served = client.post("/predict", json={"rows": [row(), row(temp=2.0), row(temp=3.0)]}).json()["predictions"]
        a, b, c = (p["request_id"] for p in served)

        body = {"labels": [{"request_id": a, "label": 16}]}
        assert client.post("/labels", json=body).status_code == 401
        assert client.post("/labels", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
        assert not LabelLog(workspace.labels()).path.exists()  # nothing recorded without the key

        pushed = client.post("/labels", headers=admin, json={"labels": [
            {"request_id": a, "label": 16}, {"request_id": b, "label": 24.5}, {"request_id": b, "label": 25},
            {"request_id": c, "label": 33}, {"request_id": c, "label": 33.0}, {"request_id": "nope", "label": 1},
            {"request_id": a, "label": "lots"},
        ]})
        assert pushed.status_code == 200, pushed.text
        report = pushed.json()
        assert (report["rows"], report["accepted"], report["rejected"], report["skipped"]) == (7, 2, 4, 1)
        assert report["reasons"] == {"different labels for one request id in this file": 2,
                                     "no logged prediction has this request id": 1, "the label is not a number": 1}
        assert report["first_rejected"][0] == f"item 2: {b!r} has different labels on items 2, 3 ('24.5')"
        assert (tmp_path / report["rejected_file"]).read_text().startswith("_item,_reason,request_id,label")
        assert LabelLog(workspace.labels()).read() == {a: 16.0, c: 33.0}

        again = client.post("/labels", headers=admin, json={"labels": [{"request_id": a, "label": 16},
                                                                       {"request_id": c, "label": 30}]}).json()
        assert (again["accepted"], again["skipped"], again["rejected"]) == (0, 1, 1)
        assert "already labeled 33.0" in again["first_rejected"][0]
        replaced = client.post("/labels", headers=admin, json={"labels": [{"request_id": c, "label": 30}],
                                                               "replace": True}).json()
        assert (replaced["accepted"], replaced["replaced"], replaced["labeled_total"]) == (1, 1, 2)
        assert LabelLog(workspace.labels()).read() == {a: 16.0, c: 30.0}

        malformed = client.post("/labels", headers=admin, json={"labels": [{"id": a}]})
        assert malformed.status_code == 422 and "request_id" in malformed.text


def test_labels_are_off_without_an_admin_key(tmp_path: Path) -> None:
    workspace = Workspace.at(tmp_path)
    config = tiny_config()
    app = create_app(config, ServiceParts(TinyModel(), TinyStore(), PredictionLog(workspace.prediction_log()),
                                          labels=LabelRecorder(config, workspace)))
    with uvicorn_server(app) as url:
        answer = httpx.post(f"{url}/labels", json={"labels": [{"request_id": "x", "label": 1}]},
                            headers={"Authorization": "Bearer anything"})
    assert answer.status_code == 404 and "serving.admin_key_env" in answer.json()["detail"]
