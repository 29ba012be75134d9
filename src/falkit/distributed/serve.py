"""`falkit serve` in a cluster: this replica queues jobs for workers and mirrors their events.

On a PostgreSQL library ``falkit serve`` is one replica of a cluster: the engine's
``dispatcher`` queues every job (dispatch.py) and its ``sink`` sends the events of what it
does itself (uploads, notes) to the bus. Unless ``--no-worker``, a worker runs in the same
process too, over a FalService of its own. On SQLite nothing changes (one process).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from falkit.errors import ServiceDisabledError, ValidationError

if TYPE_CHECKING:
    from falkit.distributed.worker import WorkerOptions
    from falkit.service.core import FalService


def is_cluster_database(database_url: str | None) -> bool:
    """Whether the library is a PostgreSQL database (one a cluster can share)."""
    if not database_url:
        return False
    from falkit.store.db import parse_url

    return parse_url(database_url).get_backend_name() == "postgresql"


@contextlib.asynccontextmanager
async def replica(
    service: FalService, *, worker: WorkerOptions | None, required: bool = False
) -> AsyncIterator[bool]:
    """Make ``service`` a cluster replica while the block runs (True), with a worker beside
    it when ``worker`` is given; on SQLite (False) nothing changes, or an error if
    ``required`` (``--no-worker`` means nothing without a shared database)."""
    if not is_cluster_database(service.settings.database_url):
        if required:
            raise ValidationError.field(
                "FALKIT_DATABASE_URL",
                "--no-worker needs the cluster's PostgreSQL database (workers take the jobs)",
                "postgresql://user@host/db",
            )
        yield False
        return
    if not service.enabled:
        raise ServiceDisabledError()
    from falkit.distributed.bus import EventBus
    from falkit.distributed.dispatch import ClusterDispatcher
    from falkit.distributed.worker import run_worker

    engine = await service.engine()
    bus = await EventBus(service.settings.database_url, "api").start()
    dispatcher = ClusterDispatcher(service, engine, bus)
    engine.sink, engine.dispatcher = bus.publish, dispatcher
    stop = asyncio.Event()
    running = None
    if worker is not None:
        running = asyncio.create_task(run_worker(service.settings, worker, stop))
    try:
        yield True
    finally:
        stop.set()
        if running is not None:
            await asyncio.gather(running, return_exceptions=True)
        await engine.aclose()
        await dispatcher.aclose()
        await bus.aclose()
