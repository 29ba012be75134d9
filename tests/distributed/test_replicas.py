"""Replicas share jobs: webhooks on any replica, SSE on any replica, no event lost."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.distributed.helpers import Cluster, completed, start_image, until

HISTORY = "SELECT seq, type FROM falkit_cluster.events WHERE job_id = $1 ORDER BY seq"


async def test_a_webhook_on_the_replica_that_did_not_submit_completes_the_job(
    cluster: Cluster, harness: Any
) -> None:
    port = harness.cluster.free_port()
    cluster.public_url = f"http://127.0.0.1:{port}"  # Fal calls replica B
    _, url_b = cluster.replica("b", port)
    _, url_a = cluster.replica("a")
    cluster.worker("w1", "--webhook-grace", "600")  # only the webhook can finish it in time
    job_id = await start_image(url_a, "a lighthouse, webhook on B", seed=9)
    await until(lambda: completed(cluster, job_id), timeout=30)
    stats = cluster.emulator.stats()
    assert stats["submits"] == 1
    assert stats["webhooks"]["delivered"] >= 1
    polled = {k: v for k, v in stats["requests"].items() if "status" in k or "result" in k}
    assert not any(polled.values()), polled  # finished from the delivery: no status, no result
    async with httpx.AsyncClient(base_url=url_b, timeout=30) as client:
        assert (await client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "completed"


async def test_sse_on_b_follows_a_job_started_on_a_through_a_lost_listen_connection(
    cluster: Cluster,
) -> None:
    cluster.worker("w1")
    replica_b, url_b = cluster.replica("b")
    _, url_a = cluster.replica("a")
    job_id = await start_image(url_a, "a lighthouse, streamed on B", seed=10)
    seen: list[dict[str, Any]] = []
    first = asyncio.Event()
    reading = asyncio.create_task(_stream(url_b, job_id, seen, first))
    await asyncio.wait_for(first.wait(), 30)
    killed = await cluster.sql(
        "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity "
        "WHERE application_name = $1",
        f"falkit-api-listen-{replica_b.pid}",
    )
    assert [row["done"] for row in killed] == [True]
    await asyncio.wait_for(reading, 60)
    table = [(row["seq"], row["type"]) for row in await cluster.sql(HISTORY, job_id)]
    assert [(e["seq"], e["type"]) for e in seen] == table
    assert seen[-1]["type"] == "completed"
    assert len({e["seq"] for e in seen}) == len(seen)
    # Last-Event-ID replays the rest from the table, on the other replica.
    middle = seen[len(seen) // 2]["seq"]
    rest: list[dict[str, Any]] = []
    await _stream(url_a, job_id, rest, asyncio.Event(), last_event_id=middle)
    assert [e["seq"] for e in rest] == [seq for seq, _ in table if seq > middle]


async def _stream(
    url: str, job_id: str, seen: list[dict[str, Any]], first: asyncio.Event, last_event_id: int = 0
) -> None:
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id else {}
    async with (
        httpx.AsyncClient(base_url=url, timeout=60) as client,
        client.stream("GET", f"/api/v1/jobs/{job_id}/events", headers=headers) as answer,
    ):
        assert answer.status_code == 200
        async for line in answer.aiter_lines():
            if line.startswith("data:"):
                seen.append(json.loads(line[5:]))
                first.set()
