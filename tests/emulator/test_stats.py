"""GET /_emulator/stats and POST /_emulator/stats/reset: counters for out-of-process harnesses."""

from __future__ import annotations

import httpx

from falkit.emulator import EmulatorConfig, create_app

from .conftest import ClientFactory, engine_of, submit, wait_done

EMPTY_WEBHOOKS = {"attempts": 0, "delivered": 0, "failed": 0}


async def test_stats_count_submits_requests_and_jobs_by_state(make_client: ClientFactory) -> None:
    client = await make_client(latency=0.2, concurrency=1)
    empty = (await client.get("/_emulator/stats")).json()
    assert empty == {
        "submits": 0,
        "submits_by_endpoint": {},
        "requests": {},
        "webhooks": EMPTY_WEBHOOKS,
        "jobs": {"queued": 0, "running": 0, "completed": 0},
    }
    first = await submit(client, "fal-ai/flux/schnell", {"prompt": "a"})
    second = await submit(client, "fal-ai/flux/dev", {"prompt": "b"})
    await client.get(second["status_url"])
    stats = (await client.get("/_emulator/stats")).json()
    assert stats["submits"] == 2
    assert stats["submits_by_endpoint"] == {"fal-ai/flux/schnell": 1, "fal-ai/flux/dev": 1}
    assert stats["requests"] == {"submit": 2, "status": 1}  # its own route is not counted
    assert stats["jobs"] == {"queued": 1, "running": 1, "completed": 0}
    await wait_done(client, first["status_url"])
    await wait_done(client, second["status_url"])
    done = (await client.get("/_emulator/stats")).json()
    assert done["jobs"] == {"queued": 0, "running": 0, "completed": 2}
    assert done["requests"]["status"] >= 3


async def test_reset_zeroes_counters_and_keeps_jobs(make_client: ClientFactory) -> None:
    client = await make_client()
    handle = await submit(client, "fal-ai/flux/schnell", {"prompt": "a"})
    await wait_done(client, handle["status_url"])
    reset = await client.post("/_emulator/stats/reset")
    assert reset.status_code == 200
    body = reset.json()
    assert body["submits"] == 0
    assert body["requests"] == {}
    assert body["submits_by_endpoint"] == {}
    assert body["jobs"]["completed"] == 1  # jobs are kept: results stay fetchable
    assert (await client.get(handle["response_url"])).status_code == 200
    assert engine_of(client).stats.requests == {"result": 1}


async def test_stats_need_no_key_and_live_only_on_the_combined_app(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    keyless = await client.get("/_emulator/stats", headers={"Authorization": ""})
    assert keyless.status_code == 200
    assert (await client.get("/_emulator/stats/reset")).status_code == 405  # reset is POST only
    queue_only = create_app(EmulatorConfig(), root_role="queue")
    transport = httpx.ASGITransport(app=queue_only)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as root:
        assert (await root.get("/_emulator/stats")).status_code != 200


def test_in_process_snapshot_matches_the_route() -> None:
    from falkit.emulator.app import stats_body
    from falkit.emulator.engine import Engine

    engine = Engine(EmulatorConfig())
    engine.stats.count_submit("fal-ai/flux/dev")
    engine.stats.count("submit")
    engine.stats.webhooks_delivered = 2
    body = stats_body(engine)
    assert body["submits"] == 1
    assert body["requests"] == {"submit": 1}
    assert body["webhooks"] == {**EMPTY_WEBHOOKS, "delivered": 2}
