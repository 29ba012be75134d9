"""What `falkit jobs list / show / cancel` read from the library and print."""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from falkit.cli.common import print_json
from falkit.views import job_json

if TYPE_CHECKING:
    from falkit.store import JobRecord


@dataclass(frozen=True)
class JobFilter:
    """`jobs list` options, as the user typed them."""

    search: str | None = None
    status: str | None = None
    model: str | None = None
    since: str | None = None
    limit: int = 20


@dataclass(frozen=True)
class Listing:
    jobs: list[JobRecord]
    short_ids: dict[str, str]


async def fetch_jobs(chosen: JobFilter, emulator: bool, *, short_ids: bool) -> Listing:
    """The matching jobs, newest first, and (for a terminal) the short prefix of each id."""
    from falkit.cli.common import open_local_service

    since = _since(chosen.since)
    model = _model(chosen.model)
    async with open_local_service(emulator) as service:
        jobs = await service.list_jobs(
            search=chosen.search, limit=chosen.limit, status=chosen.status, model=model, since=since
        )
        short: dict[str, str] = {}
        if short_ids and jobs:
            store = await service.store()
            short = await store.id_prefixes([job.id for job in jobs])
    return Listing(jobs, short)


def _since(text: str | None) -> dt.datetime | None:
    from falkit.cli.records import parse_since

    return None if text is None else parse_since(text).astimezone(dt.UTC)


def _model(name: str | None) -> str | None:
    """A catalog model by short name or endpoint id is kept under its short name."""
    if name is None:
        return None
    from falkit.catalog import get_model

    spec = get_model(name.strip())
    return spec.name if spec is not None else name.strip()


def print_jobs(listing: Listing, json_out: bool) -> None:
    from falkit.cli.records import JOB_COLUMNS, job_rows
    from falkit.cli.table import print_table

    if json_out:
        print_json([job_json(job) for job in listing.jobs])
        return
    print_table(JOB_COLUMNS, job_rows(listing.jobs, listing.short_ids))
    if not listing.jobs:
        from falkit.cli.common import stderr

        stderr().print("no jobs match")


def print_job(job: JobRecord, json_out: bool) -> None:
    from falkit.cli.records import format_fields, job_fields

    if json_out:
        print_json(job_json(job))
        return
    sys.stdout.write(format_fields(job_fields(job)))


async def cancel(ref: str, emulator: bool) -> tuple[str, str]:
    """(job id, Fal's cancel outcome) for a job reference."""
    from falkit.cli.common import open_service

    async with open_service(emulator) as service:
        job = await service.get_job(ref)
        return job.id, await service.cancel_job(job.id)


def print_cancel(job_id: str, outcome: str, json_out: bool) -> None:
    from falkit.cli.records import cancel_sentence

    if json_out:
        print_json({"job_id": job_id, "outcome": outcome})
    else:
        sys.stdout.write(cancel_sentence(job_id, outcome) + "\n")
