"""Endpoint ids are checked segment by segment, and no URL built from one leaves its base.

The key rides on every request under the configured Fal URLs; an id like ``fal-ai/../../x``
would otherwise POST it to another path of the same host (httpx resolves dot segments).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from falkit.catalog import get_model, is_endpoint_id
from falkit.client import FalClient
from falkit.client.endpoints import EndpointId, check_under, rebuild_handle
from falkit.emulator import EmulatorConfig, EmulatorServer, run_emulator
from falkit.errors import ValidationError
from tests.integration.helpers import emulator_settings

BAD_IDS = [
    "fal-ai/../admin",
    "fal-ai/flux/../../admin",
    "../fal-ai/flux",
    "fal-ai/./flux",
    "fal-ai/.../flux",
    "fal-ai/%2e%2e/flux",
    "fal-ai/%2F/flux",
    "fal-ai/flux%20dev",
    "fal-ai/flux dev",
    "fal-ai//flux",
    "fal-ai/flux?x=1",
    "fal-ai/flux#x",
    "fal-ai\\flux",
    "workflows/../x/y",
    "1234-..",
    "fal-ai",
    "",
    "fal-ai/" + "a" * 300,
]
GOOD_IDS = [
    "fal-ai/flux/dev",
    "fal-ai/flux-pro/v1.1",
    "workflows/me/my-flow/run",
    "1234-myapp",
    "owner/app.v2~x",
]


@pytest.mark.parametrize("endpoint_id", BAD_IDS)
def test_bad_ids_are_refused_everywhere(endpoint_id: str) -> None:
    with pytest.raises(ValidationError, match="endpoint_id"):
        EndpointId.parse(endpoint_id)
    if "/" in endpoint_id.strip():
        assert not is_endpoint_id(endpoint_id)
    with pytest.raises(ValidationError, match="model"):
        get_model(endpoint_id)


@pytest.mark.parametrize("endpoint_id", GOOD_IDS)
def test_good_ids_pass(endpoint_id: str) -> None:
    EndpointId.parse(endpoint_id)


@pytest.mark.parametrize(
    ("base", "url", "ok"),
    [
        ("https://queue.fal.run", "https://queue.fal.run/fal-ai/flux/dev", True),
        ("https://queue.fal.run", "https://queue.fal.run/fal-ai/../x", True),  # still under
        ("https://queue.fal.run", "https://queue.fal.run/../x", True),  # the host's root
        ("http://127.0.0.1:9/queue", "http://127.0.0.1:9/queue/../run/x", False),
        ("http://127.0.0.1:9/queue", "http://127.0.0.1:9/queue2/x", False),
        ("http://127.0.0.1:9/queue", "http://127.0.0.1:9/queue/a/./b", True),
        ("https://queue.fal.run", "https://queue.fal.run.evil.example/x", False),
    ],
)
def test_a_built_url_must_stay_under_its_base(base: str, url: str, ok: bool) -> None:
    if ok:
        assert check_under(base, url) == url
    else:
        with pytest.raises(ValidationError, match="leaves"):
            check_under(base, url)


@pytest.mark.parametrize("request_id", ["..", ".", "a/b", "%2e%2e", "", "x" * 200])
def test_request_ids_are_one_safe_segment(request_id: str) -> None:
    with pytest.raises(ValidationError, match="request_id"):
        rebuild_handle("https://queue.fal.run", "fal-ai/flux/dev", request_id)


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with run_emulator(EmulatorConfig(latency=0.0)) as server:
        yield server


@pytest.fixture
async def client(emu: EmulatorServer) -> AsyncIterator[FalClient]:
    async with FalClient(emulator_settings(emu.base_url)) as fal:
        yield fal


@pytest.mark.parametrize("endpoint_id", BAD_IDS[:12])
async def test_the_client_sends_nothing_for_a_bad_id(
    emu: EmulatorServer, client: FalClient, endpoint_id: str
) -> None:
    before = sum(emu.stats.requests.values())
    with pytest.raises(ValidationError):
        await client.submit(endpoint_id, {"prompt": "x"})
    with pytest.raises(ValidationError):
        await client.run(endpoint_id, {"prompt": "x"})
    assert sum(emu.stats.requests.values()) == before


async def test_submit_and_run_still_reach_the_queue(emu: EmulatorServer, client: FalClient) -> None:
    handle = await client.submit("fal-ai/flux/schnell", {"prompt": "x"})
    assert handle.status_url.startswith(f"{emu.base_url}/queue/fal-ai/flux/")
    output = await client.run("fal-ai/flux/schnell", {"prompt": "x"})
    assert output.data["images"]
