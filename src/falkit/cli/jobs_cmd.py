"""`falkit jobs`: list, show, resume and cancel journaled jobs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

from falkit.cli.common import EMULATOR_OPTION, JSON_OPTION, print_json, run, stderr
from falkit.limits import MAX_LIST_LIMIT
from falkit.views import job_json

if TYPE_CHECKING:
    from falkit.store import JobRecord

app = typer.Typer(help="List, show, resume and cancel jobs.", no_args_is_help=True)


@app.command("list")
def list_jobs(
    search: str | None = typer.Option(None, "--search", help="Match prompt, model or id."),
    limit: int = typer.Option(
        20, "--limit", min=1, max=MAX_LIST_LIMIT, help="How many, newest first (at most 10000)."
    ),
    json_out: bool = JSON_OPTION,
    emulator: bool = EMULATOR_OPTION,
) -> None:
    """Recent jobs, newest first."""
    jobs = run(lambda: _list(search, limit, emulator))
    if json_out:
        print_json([job_json(j) for j in jobs])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for title in ("id", "status", "model", "created", "cost"):
        table.add_column(title, no_wrap=True)
    table.add_column("prompt", ratio=1)
    for job in jobs:
        cost = job.cost_usd if job.cost_usd is not None else job.estimated_cost
        table.add_row(
            job.id,
            job.status,
            job.model,
            f"{job.created_at:%m-%d %H:%M}",
            "" if cost is None else f"${cost:.4f}",
            (job.prompt or "")[:50],
        )
    Console().print(table)


async def _list(search: str | None, limit: int, emulator: bool) -> list[JobRecord]:
    from falkit.cli.common import open_local_service

    async with open_local_service(emulator) as service:
        return await service.list_jobs(search=search, limit=limit)


@app.command("show")
def show(
    job_id: str = typer.Argument(..., help="Job id (or prefix, or Fal request id)."),
    json_out: bool = JSON_OPTION,
    emulator: bool = EMULATOR_OPTION,
) -> None:
    """Everything recorded about one job."""
    job = run(lambda: _show(job_id, emulator))
    data = job_json(job)
    if json_out:
        print_json(data)
        return
    for key, value in data.items():
        if key != "images":
            sys.stdout.write(f"{key}: {value}\n")
    for img in data["images"]:
        sys.stdout.write(f"image: {img['path']} ({img['width']}x{img['height']})\n")


async def _show(job_id: str, emulator: bool) -> JobRecord:
    from falkit.cli.common import open_local_service

    async with open_local_service(emulator) as service:
        return await service.get_job(job_id)


@app.command("resume")
def resume(json_out: bool = JSON_OPTION, emulator: bool = EMULATOR_OPTION) -> None:
    """Finish interrupted jobs: reattach to submitted ones, never submit one twice."""
    outcomes = run(lambda: _resume(emulator, quiet=json_out))
    failures = [o for o in outcomes if isinstance(o, Exception)]
    if json_out:
        print_json([_outcome_json(o) for o in outcomes])
    else:
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                stderr().print(f"[red]failed:[/] {outcome}")
            else:
                for path in getattr(outcome, "paths", []):
                    sys.stdout.write(f"{path}\n")
        stderr().print(f"resumed {len(outcomes)} job(s), {len(failures)} failed")
    if failures:
        raise typer.Exit(1)


def _outcome_json(outcome: Any) -> dict[str, Any]:
    if isinstance(outcome, Exception):
        return {"status": "failed", "error": str(outcome)}
    to_json = getattr(outcome, "to_json", None)
    return to_json() if callable(to_json) else {"status": "completed"}


async def _resume(emulator: bool, *, quiet: bool) -> list[Any]:
    from falkit.cli.common import open_service
    from falkit.cli.render import ProgressView

    async with open_service(emulator) as service:
        with ProgressView(stderr(), quiet=quiet) as view:
            return await service.resume(on_progress=view)


@app.command("retry")
def retry(
    job_id: str = typer.Argument(..., help="A failed, cancelled or unknown job."),
    json_out: bool = JSON_OPTION,
    emulator: bool = EMULATOR_OPTION,
) -> None:
    """Submit a failed, cancelled or unknown job again as a new job (may be paid twice)."""
    result = run(lambda: _retry(job_id, emulator, quiet=json_out))
    if json_out:
        print_json(result.to_json())
        return
    for path in result.paths:
        sys.stdout.write(f"{path}\n")


async def _retry(job_id: str, emulator: bool, *, quiet: bool) -> Any:
    from falkit.cli.common import open_service
    from falkit.cli.render import ProgressView

    async with open_service(emulator) as service:
        with ProgressView(stderr(), quiet=quiet) as view:
            return await service.retry_job(job_id, on_progress=view)


@app.command("cancel")
def cancel(
    job_id: str = typer.Argument(..., help="Job id to cancel."),
    json_out: bool = JSON_OPTION,
    emulator: bool = EMULATOR_OPTION,
) -> None:
    """Cancel a queued or running job at Fal."""
    outcome = run(lambda: _cancel(job_id, emulator))
    if json_out:
        print_json({"job_id": job_id, "outcome": outcome})
    else:
        sys.stdout.write(f"{outcome}\n")


async def _cancel(job_id: str, emulator: bool) -> str:
    from falkit.cli.common import open_service

    async with open_service(emulator) as service:
        return await service.cancel_job(job_id)


VERDICTS = ("found", "released", "waiting")


@app.command("reconcile")
def reconcile(json_out: bool = JSON_OPTION, emulator: bool = EMULATOR_OPTION) -> None:
    """Settle `unknown` jobs with Fal's request history: reattach the ones that reached Fal,
    send once the ones that never did; the rest stay unknown (run it again later)."""
    done = run(lambda: _reconcile(emulator, quiet=json_out))
    unsettled = [v for v, o in done if v.verdict == "waiting" or isinstance(o, Exception)]
    if json_out:
        print_json(
            [{**(_outcome_json(o) if o is not None else {}), **_verdict_json(v)} for v, o in done]
        )
    else:
        for _, outcome in done:
            if isinstance(outcome, Exception):
                stderr().print(f"[red]failed:[/] {outcome}")
            for path in getattr(outcome, "paths", []):
                sys.stdout.write(f"{path}\n")
        counts = {name: sum(1 for v, _ in done if v.verdict == name) for name in VERDICTS}
        stderr().print(
            f"reconciled {len(done)} job(s): {counts['found']} found at Fal, "
            f"{counts['released']} never arrived (sent once), {counts['waiting']} still unknown"
        )
    if unsettled:
        raise typer.Exit(1)


def _verdict_json(verdict: Any) -> dict[str, Any]:
    return {
        "job_id": verdict.job_id,
        "verdict": verdict.verdict,
        "request_id": verdict.request_id,
        "message": verdict.message,
    }


async def _reconcile(emulator: bool, *, quiet: bool) -> list[Any]:
    from falkit.cli.common import open_service
    from falkit.cli.render import ProgressView

    async with open_service(emulator) as service:
        with ProgressView(stderr(), quiet=quiet) as view:
            return await service.reconcile(on_progress=view)
