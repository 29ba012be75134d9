"""`falkit jobs`: list, show, resume and cancel journaled jobs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

from falkit.cli.common import EMULATOR_OPTION, JSON_OPTION, print_json, run, stderr
from falkit.cli.help import JOB_REF, JOB_STATUSES, examples, one_of
from falkit.limits import MAX_LIST_LIMIT

if TYPE_CHECKING:
    from falkit.store import JobRecord

app = typer.Typer(help="List, show, resume and cancel jobs.", no_args_is_help=True)


@app.command(
    "list",
    epilog=examples(
        "falkit jobs list",
        "falkit jobs list | grep fox    (piped: tab-separated full values, no header)",
        "falkit jobs list --status failed --since 2d",
        "falkit jobs list --model flux-dev --search lighthouse --json",
    ),
)
def list_jobs(
    search: str | None = typer.Option(None, "--search", help="Match prompt, model or id."),
    status: str | None = typer.Option(
        None, "--status", help=f"Only jobs in this state: {one_of(JOB_STATUSES)}."
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Only jobs of this model (name or fal-ai/... id)."
    ),
    since: str | None = typer.Option(
        None, "--since", help="Only jobs created since 30m, 2h, 3d, 1w, today or a date."
    ),
    limit: int = typer.Option(
        20, "--limit", min=1, max=MAX_LIST_LIMIT, help="How many, newest first (at most 10000)."
    ),
    json_out: bool = JSON_OPTION,
    emulator: bool = EMULATOR_OPTION,
) -> None:
    """Recent jobs, newest first: id, status, model, created, cost, prompt.

    In a terminal, a table whose columns wrap, with each id cut to its shortest unique prefix
    (usable wherever a job id is taken); in a pipe, tab-separated lines with full values."""
    from falkit.cli.jobs_view import JobFilter, fetch_jobs, print_jobs
    from falkit.cli.table import is_terminal

    chosen = JobFilter(search, status, model, since, limit)
    listing = run(lambda: fetch_jobs(chosen, emulator, short_ids=is_terminal() and not json_out))
    print_jobs(listing, json_out)


@app.command("show", epilog=examples("falkit jobs show last", "falkit jobs show j_01jd5x3k --json"))
def show(
    job_id: str = typer.Argument(..., help=JOB_REF),
    json_out: bool = JSON_OPTION,
    emulator: bool = EMULATOR_OPTION,
) -> None:
    """Everything recorded about one job: status, prompt, parameters, cost, images."""
    from falkit.cli.jobs_view import print_job

    print_job(run(lambda: _show(job_id, emulator)), json_out)


async def _show(job_id: str, emulator: bool) -> JobRecord:
    from falkit.cli.common import open_local_service

    async with open_local_service(emulator) as service:
        return await service.get_job(job_id)


@app.command("resume", epilog=examples("falkit jobs resume", "falkit jobs resume --json"))
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


@app.command("retry", epilog=examples("falkit jobs retry last", "falkit jobs retry j_01jd5x3k"))
def retry(
    job_id: str = typer.Argument(..., help="A failed, cancelled or unknown job. " + JOB_REF),
    json_out: bool = JSON_OPTION,
    emulator: bool = EMULATOR_OPTION,
) -> None:
    """Submit a failed or cancelled job again as a new job (paid again). An unknown job is
    reconciled first: reattached if it reached Fal, sent itself if it never did."""
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


@app.command("cancel", epilog=examples("falkit jobs cancel last", "falkit jobs cancel j_01jd5x3k"))
def cancel(
    job_id: str = typer.Argument(..., help=JOB_REF),
    json_out: bool = JSON_OPTION,
    emulator: bool = EMULATOR_OPTION,
) -> None:
    """Cancel a queued or running job at Fal (`--json` gives Fal's own outcome code)."""
    from falkit.cli.jobs_view import cancel as cancel_job
    from falkit.cli.jobs_view import print_cancel

    found, outcome = run(lambda: cancel_job(job_id, emulator))
    print_cancel(found, outcome, json_out)


VERDICTS = ("found", "released", "waiting")


@app.command("reconcile", epilog=examples("falkit jobs reconcile", "falkit jobs reconcile --json"))
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
