"""Each injected fault as a client sees it on a real socket, and what it did server-side."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from falkit.emulator import EmulatorServer, Fault

from .conftest import AUTH, submit, wait_done

BODY = {"prompt": "fault"}


@pytest.fixture
async def http(emu: EmulatorServer) -> httpx.AsyncClient:
    async with httpx.AsyncClient(base_url=emu.base_url, headers=AUTH) as client:
        yield client  # type: ignore[misc]


async def test_5xx_is_an_nginx_page_without_request_id(
    emu: EmulatorServer, http: httpx.AsyncClient
) -> None:
    emu.faults.add(Fault(route="submit", kind="5xx"))
    response = await http.post("/queue/fal-ai/flux/dev", json=BODY)
    assert response.status_code == 503
    assert "nginx" in response.text
    assert "x-fal-request-id" not in response.headers
    assert emu.stats.submits == 0
    assert (await http.post("/queue/fal-ai/flux/dev", json=BODY)).status_code == 200  # times=1
    assert emu.stats.submits == 1
    assert emu.stats.requests["submit"] == 2


async def test_5xx_with_request_id_is_json(emu: EmulatorServer, http: httpx.AsyncClient) -> None:
    emu.faults.add(Fault(route="status", kind="5xx_request_id", status=503))
    handle = await submit(http, "fal-ai/flux/dev", BODY)
    response = await http.get(handle["status_url"])
    assert response.status_code == 503
    assert response.headers["x-fal-request-id"]
    assert response.headers["x-fal-error-type"] == response.json()["error_type"]
    emu.faults.add(Fault(route="result", kind="5xx_request_id"))
    await wait_done(http, handle["status_url"])
    assert (await http.get(handle["response_url"])).status_code == 500


async def test_429_carries_retry_after(emu: EmulatorServer, http: httpx.AsyncClient) -> None:
    emu.faults.add(Fault(route="submit", kind="429", retry_after=0.5))
    response = await http.post("/queue/fal-ai/flux/dev", json=BODY)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "0.5"
    assert emu.stats.submits == 0


async def test_drop_before_closes_without_queueing(
    emu: EmulatorServer, http: httpx.AsyncClient
) -> None:
    emu.faults.add(Fault(route="submit", kind="drop_before"))
    with pytest.raises(httpx.TransportError):
        await http.post("/queue/fal-ai/flux/dev", json=BODY)
    assert emu.stats.requests["submit"] == 1
    assert emu.stats.submits == 0
    assert not emu.engine.jobs


async def test_drop_after_really_queues_the_job(
    emu: EmulatorServer, http: httpx.AsyncClient
) -> None:
    emu.faults.add(Fault(route="submit", kind="drop_after"))
    with pytest.raises(httpx.TransportError):
        await http.post("/queue/fal-ai/flux/dev", json=BODY)
    assert emu.stats.submits == 1
    (job,) = emu.engine.jobs.values()
    status = f"/queue/fal-ai/flux/requests/{job.id}/status"
    assert (await wait_done(http, status))["status"] == "COMPLETED"


async def test_drop_after_on_result_can_be_fetched_again(
    emu: EmulatorServer, http: httpx.AsyncClient
) -> None:
    handle = await submit(http, "fal-ai/flux/dev", BODY)
    await wait_done(http, handle["status_url"])
    emu.faults.add(Fault(route="result", kind="drop_after"))
    with pytest.raises(httpx.TransportError):
        await http.get(handle["response_url"])
    assert (await http.get(handle["response_url"])).status_code == 200


async def test_slow_delays_the_answer(emu: EmulatorServer, http: httpx.AsyncClient) -> None:
    emu.faults.add(Fault(route="jwks", kind="slow", delay=0.3))
    started = time.monotonic()
    response = await http.get("/rest/.well-known/jwks.json")
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3
    await http.get("/rest/.well-known/jwks.json")
    assert emu.faults.fired["slow"] == 1  # once: the second answer was not held


async def test_malformed_json_after_processing(
    emu: EmulatorServer, http: httpx.AsyncClient
) -> None:
    emu.faults.add(Fault(route="submit", kind="malformed_json"))
    response = await http.post("/queue/fal-ai/flux/dev", json=BODY)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert emu.stats.submits == 1


async def test_job_error_ends_completed_with_error(
    emu: EmulatorServer, http: httpx.AsyncClient
) -> None:
    emu.faults.add(Fault(route="submit", kind="job_error", error_type="request_timeout"))
    handle = await submit(http, "fal-ai/flux/dev", BODY)
    done = await wait_done(http, handle["status_url"] + "?logs=1")
    assert (done["error"], done["error_type"]) == ("Request timed out", "request_timeout")
    assert done["logs"][-1]["level"] == "ERROR"
    result = await http.get(handle["response_url"])
    assert result.status_code == 504
    assert result.headers["x-fal-error-type"] == "request_timeout"
    assert result.json() == {"detail": "Request timed out", "error_type": "request_timeout"}


async def test_times_probability_and_wildcard(emu: EmulatorServer, http: httpx.AsyncClient) -> None:
    emu.faults.add(Fault(route="submit", kind="5xx", probability=0.0, times=None))
    assert (await http.post("/queue/fal-ai/flux/dev", json=BODY)).status_code == 200
    emu.faults.clear()
    emu.faults.add(Fault(route="*", kind="429", times=3, retry_after=0))
    codes = [(await http.get("/rest/.well-known/jwks.json")).status_code for _ in range(4)]
    assert codes == [429, 429, 429, 200]
    assert len(emu.faults) == 0
    assert emu.faults.fired["429"] == 3


async def test_concurrent_faults_fire_exactly_times(
    emu: EmulatorServer, http: httpx.AsyncClient
) -> None:
    emu.faults.add(Fault(route="submit", kind="5xx", times=5))
    responses = await asyncio.gather(
        *(http.post("/queue/fal-ai/flux/dev", json=BODY) for _ in range(12))
    )
    assert sorted(r.status_code for r in responses) == [200] * 7 + [503] * 5
    assert emu.stats.submits == 7


async def test_drop_under_asgi_transport_raises_transport_error(client: httpx.AsyncClient) -> None:
    client.app.state.emulator.faults.add(Fault(route="submit", kind="drop_after"))  # type: ignore[attr-defined]
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post("/queue/fal-ai/flux/dev", json=BODY)
    assert client.app.state.emulator.stats.submits == 1  # type: ignore[attr-defined]


def test_fault_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault(route="submit", kind="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown route"):
        Fault(route="submits", kind="5xx")
    with pytest.raises(ValueError, match="probability"):
        Fault(route="submit", kind="5xx", probability=2)
    with pytest.raises(ValueError, match="times"):
        Fault(route="submit", kind="5xx", times=0)
