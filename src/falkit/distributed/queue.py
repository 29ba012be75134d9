"""The work queue: PgQueuer 1.x in the ``falkit_cluster`` schema (installed by migration 0004).

One task kind does a job's whole run (``run_job``: submit once, follow or wait for the
webhook, finish), keyed by the job id so a job is queued at most once at a time; training
jobs are run_job tasks too (only their finisher differs). ``expand_batch`` turns a journaled
batch into run_job tasks, so a batch of 10,000 jobs is one small request at the front end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from falkit.distributed.pg import SCHEMA

if TYPE_CHECKING:
    import asyncpg
    from pgqueuer import Queries
    from pgqueuer.domain.settings import DBSettings

RUN_JOB = "falkit.run_job"
EXPAND_BATCH = "falkit.expand_batch"
CHANNEL = "falkit_queue"
ENQUEUE_CHUNK = 1000


def queue_settings() -> DBSettings:
    """PgQueuer's names in our schema, whatever PGQUEUER_* variables say."""
    from pgqueuer.domain.settings import DBSettings

    return DBSettings(db_schema=SCHEMA, channel=CHANNEL, prefix="")


def queries_for(connection: asyncpg.Connection) -> Queries:
    """PgQueuer's queries over one connection (its driver serializes use of it)."""
    from pgqueuer import AsyncpgDriver, Queries
    from pgqueuer.adapters.persistence.qb import (
        QueryBuilderEnvironment,
        QueryQueueBuilder,
        QuerySchedulerBuilder,
    )

    settings = queue_settings()
    return Queries(
        AsyncpgDriver(connection),
        qbe=QueryBuilderEnvironment(settings),
        qbq=QueryQueueBuilder(settings),
        qbs=QuerySchedulerBuilder(settings),
    )


async def enqueue_jobs(queries: Queries, job_ids: Sequence[str]) -> int:
    """Queue a run of each job unless one is queued or running already; how many were new."""
    added = 0
    for start in range(0, len(job_ids), ENQUEUE_CHUNK):
        chunk = list(job_ids[start : start + ENQUEUE_CHUNK])
        ids = await queries.enqueue(
            [RUN_JOB] * len(chunk),
            [job_id.encode() for job_id in chunk],
            [0] * len(chunk),
            dedupe_key=[f"job:{job_id}" for job_id in chunk],
            on_conflict="skip",
        )
        added += sum(1 for job_id in ids if job_id is not None)
    return added


async def enqueue_batch(queries: Queries, batch_id: str) -> bool:
    """Queue the expansion of a journaled batch into its jobs' runs (once at a time)."""
    ids = await queries.enqueue(
        [EXPAND_BATCH], [batch_id.encode()], [1], dedupe_key=[f"batch:{batch_id}"],
        on_conflict="skip",
    )  # fmt: skip
    return ids[0] is not None
