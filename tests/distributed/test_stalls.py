"""A process frozen while it writes to the event bus (SIGSTOP, a VM stall) holds the bus's
lock in an open transaction: the server must end that session, or every other process's
events (progress, webhook deliveries, cancels) wait for it to wake."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from falkit.distributed import bus as bus_module
from falkit.distributed.bus import EventBus
from falkit.distributed.pg import SCHEMA, connect
from falkit.events import QueuedEvent
from tests.distributed.helpers import Cluster, completed, start_image, submitted, until

STALL = 0.5


async def test_a_frozen_event_writer_does_not_stop_the_others_events(cluster_db: str) -> None:
    frozen = await connect(cluster_db, "frozen", stall_timeout=STALL)
    transaction = frozen.transaction()
    await transaction.start()
    # What an event insert does first; then this process freezes before its COMMIT.
    await frozen.execute("SELECT pg_advisory_xact_lock($1)", bus_module._LOCK_KEY)

    live = await EventBus(cluster_db, "live").start()
    try:
        live.publish(QueuedEvent("j_stall", 3, "req-stall", seq=1))
        await asyncio.wait_for(live.flush(), 15)
    finally:
        await live.aclose()
    check = await connect(cluster_db, "check")
    try:
        rows = await check.fetch(f"SELECT type FROM {SCHEMA}.events WHERE job_id = 'j_stall'")
    finally:
        await check.close()
    assert [row["type"] for row in rows] == ["queued"]
    # The frozen process, woken, finds its session ended (its insert never committed).
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):
        await transaction.commit()
    await frozen.close()


async def test_a_worker_whose_queue_connection_drops_takes_jobs_again(cluster: Cluster) -> None:
    """The server restarted, a network cut: the worker opens its queue connection again; the
    job it was running ends once, and new jobs are taken."""
    worker = cluster.worker("w1")
    _, url_a = cluster.replica("a")
    running = await start_image(url_a, "a lighthouse, running as the queue drops", seed=12)
    await until(lambda: submitted(cluster, running))
    killed = await cluster.sql(
        "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity "
        "WHERE application_name = $1",
        f"falkit-worker-queue-{worker.pid}",
    )
    assert [row["done"] for row in killed] == [True]
    after = await start_image(url_a, "a lighthouse, after a lost queue connection", seed=11)
    for job_id in (running, after):
        done = await until(lambda job_id=job_id: completed(cluster, job_id), timeout=60)
        assert done["request_id"]
    assert cluster.emulator.stats()["submits"] == 2
    assert worker.process.poll() is None  # still running
    assert "queue connection lost" in worker.log.read_text()
