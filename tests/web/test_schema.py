"""schemathesis against /openapi.json: no 500, no answer outside the documented schema.

The server runs for real (uvicorn in a thread, the emulator behind it); each operation gets a
few generated requests, valid and not, and every answer must be documented: its status, its
content type, its headers and its body's schema. Kept CI-sized (``EXAMPLES`` per operation).
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from falkit.emulator import EmulatorConfig, run_emulator
from falkit.web.options import WebOptions
from tests.web.helpers import TOKEN, LiveServer, settings_for

EXAMPLES = int(os.environ.get("FALKIT_SCHEMA_EXAMPLES", "12"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def run_operation(operation: Any, base_url: str, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
        phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    def check(case: Any) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS)

    check()


@pytest.mark.timeout(600)
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
@pytest.mark.parametrize("token", [None, TOKEN], ids=["loopback", "token"])
def test_api_keeps_to_its_schema(token: str | None) -> None:
    with run_emulator(EmulatorConfig(latency=0.02, concurrency=8, training_seconds=0.05)) as emu:
        server = LiveServer(
            settings_for(emu.base_url),
            lambda url: WebOptions(api_token=token, max_upload_bytes=256 * 1024),
            spend_cap=5.0,
        )
        with server:
            document = httpx.get(f"{server.url}/openapi.json").json()
            schema = schemathesis.openapi.from_dict(document)
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            checked = 0
            for result in schema.get_all_operations():
                operation = result.ok()
                run_operation(operation, server.url, headers)
                checked += 1
            assert checked >= 15
            assert emu.stats.submits > 0  # valid requests got through to Fal, too
