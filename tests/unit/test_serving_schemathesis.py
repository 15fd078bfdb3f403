"""Property-based tests of the OpenAPI contract (schemathesis): no 5xx, every answer fits the schema.

A bounded number of generated requests per operation, against the app on tiny in-test parts
(the same as test_serving_app.py), through ASGI: valid and invalid bodies alike.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="pip install -e '.[test]' (schemathesis)")
from hypothesis import HealthCheck, settings  # noqa: E402  # installed with schemathesis

from conveyor.stages.monitoring import PredictionLog  # noqa: E402
from conveyor.stages.serving import ServiceParts, create_app  # noqa: E402
from tests.unit.test_serving_app import TinyModel, TinyStore, tiny_config  # noqa: E402

LOG = Path(tempfile.mkdtemp(prefix="conveyor-schemathesis-"))
APP = create_app(tiny_config(max_batch=20), ServiceParts(TinyModel(), TinyStore(), PredictionLog(LOG)))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_5xx_and_answers_fit_the_schema(case: Any) -> None:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    case.call_and_validate(checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                   response_schema_conformance])
