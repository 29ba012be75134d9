"""`falkit batch`: many images from a file of prompts times sweeps, within a budget, resumable.

`falkit batch INPUT [sweeps]` (the same as `falkit batch run INPUT`), `falkit batch resume ID`,
`falkit batch list`. Progress goes to stderr, the batch folder (or a JSON summary) to stdout.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from falkit.cli.common import EMULATOR_OPTION, JSON_OPTION, print_json, run, stderr
from falkit.cli.help import examples
from falkit.limits import MAX_LIST_LIMIT

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from falkit.events import BatchProgressEvent
    from falkit.service import FalService
    from falkit.service.batch import BatchResult

PLAIN_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal
MAX_LISTED_FAILURES = 20


class _RunByDefault(TyperGroup):
    """`falkit batch INPUT ...` runs INPUT: the first word is a subcommand only if it names one."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_RunByDefault,
    no_args_is_help=True,
    help="Generate many images: prompts from a file times sweeps, within a budget, resumable.",
)

CONCURRENCY_OPTION = typer.Option(
    None,
    "--concurrency",
    "-c",
    help="Jobs kept submitted at Fal at once (default 64, up to 10000).",
)
BUDGET_OPTION = typer.Option(
    None, "--budget", help="USD the batch may cost; refused if the estimate is higher."
)
OUT_OPTION = typer.Option(
    None, "--out", "-o", help="Batch folder (default FALKIT_HOME/batches/<id>)."
)
RETRY_OPTION = typer.Option(
    False, "--retry-failed", help="Send failed and cancelled jobs again (never 'unknown' ones)."
)


@app.command(
    "run",
    epilog=examples(
        "falkit batch prompts.txt --seeds 1-4 --budget 20",
        "falkit batch run prompts.jsonl --models flux-schnell,flux-dev --guidance 3,4.5",
        "falkit batch run prompts.csv --dry-run --emulator",
    ),
)
def run_batch(
    input_file: Path = typer.Argument(
        ..., metavar="INPUT", help="Prompts: .txt (one a line), .jsonl (request objects) or .csv."
    ),
    seeds: str | None = typer.Option(
        None, "--seeds", "--seed", help="Seeds to sweep: 1-8, 1,5,9 or 1-3,10."
    ),
    models: str | None = typer.Option(
        None, "--models", "--model", "-m", help="Models to sweep, e.g. flux-schnell,flux-dev."
    ),
    guidance: str | None = typer.Option(
        None, "--guidance", help="Guidance scales to sweep, e.g. 3,3.5,4.5."
    ),
    sizes: str | None = typer.Option(
        None, "--sizes", "--size", "-s", help="Sizes to sweep: presets or WxH, comma-separated."
    ),
    lora_scales: str | None = typer.Option(
        None, "--lora-scales", help="LoRA scales to sweep (applied to every LoRA), e.g. 0.6,0.8,1."
    ),
    steps: int | None = typer.Option(None, "--steps", help="Inference steps for every job."),
    num_images: int | None = typer.Option(None, "--num-images", "-n", help="Images per job."),
    output_format: str | None = typer.Option(None, "--format", help="jpeg or png."),
    lora: list[str] = typer.Option(
        [], "--lora", help="LoRA (URL, library name or file)[:SCALE] for jobs without LoRAs."
    ),
    concurrency: int | None = CONCURRENCY_OPTION,
    budget: float | None = BUDGET_OPTION,
    out: Path | None = OUT_OPTION,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Check everything, print the job count and cost; send nothing."
    ),
    retry_failed: bool = RETRY_OPTION,
    json_out: bool = JSON_OPTION,
    emulator: bool = EMULATOR_OPTION,
) -> None:
    """Generate every request of INPUT under every sweep combination; same command resumes."""
    defaults: dict[str, Any] = {
        "num_inference_steps": steps,
        "num_images": num_images,
        "output_format": output_format,
        "loras": list(lora) or None,
    }
    options: dict[str, Any] = {
        "seeds": seeds, "models": models, "guidance": guidance, "sizes": sizes,
        "lora_scales": lora_scales, "defaults": defaults, "budget": budget, "out_dir": out,
        "retry_failed": retry_failed,
    }  # fmt: skip
    if concurrency is not None:
        options["concurrency"] = concurrency
    if dry_run:
        result = run(lambda: _dry_run(input_file, options, emulator))
        _report_dry_run(result, json_out)
        return
    result = run(lambda: _run(emulator, json_out, lambda s, cb: s.generate_batch(
        input_file, on_progress=cb, **options)))  # fmt: skip
    _finish(result, json_out)


@app.command("resume", epilog=examples("falkit batch resume b_3f9c0d2a71e4b855"))
def resume(
    batch_id: str = typer.Argument(..., help="The batch id (printed when the batch started)."),
    concurrency: int | None = CONCURRENCY_OPTION,
    budget: float | None = BUDGET_OPTION,
    out: Path | None = OUT_OPTION,
    retry_failed: bool = RETRY_OPTION,
    json_out: bool = JSON_OPTION,
    emulator: bool = EMULATOR_OPTION,
) -> None:
    """Carry on a batch: skip finished jobs, reattach to running ones, submit the rest."""
    from falkit.service.batch import resume_batch

    result = run(
        lambda: _run(
            emulator,
            json_out,
            lambda s, cb: resume_batch(
                s,
                batch_id,
                concurrency=concurrency,
                budget=budget,
                out_dir=out,
                retry_failed=retry_failed,
                on_progress=cb,
            ),
        )
    )
    _finish(result, json_out)


@app.command("list", epilog=examples("falkit batch list", "falkit batch list --json"))
def list_batches(
    limit: int = typer.Option(
        20, "--limit", min=1, max=MAX_LIST_LIMIT, help="How many recent batches (at most 10000)."
    ),
    json_out: bool = JSON_OPTION,
    emulator: bool = EMULATOR_OPTION,
) -> None:
    """Recent batches with how many of their jobs are done."""
    rows = run(lambda: _list(limit, emulator))
    if json_out:
        print_json(rows)
        return
    for row in rows:
        counts = ", ".join(f"{v} {k}" for k, v in row["jobs"].items())
        sys.stdout.write(f"{row['batch_id']}  {row['created_at']:%Y-%m-%d %H:%M}  {counts}\n")
    if not rows:
        stderr().print("no batches yet")


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="batch")


# ---- running ----


async def _dry_run(input_file: Path, options: dict[str, Any], emulator: bool) -> BatchResult:
    from falkit.cli.common import open_local_service

    async with open_local_service(emulator) as service:  # the folder of the library it would use
        result: BatchResult = await service.generate_batch(input_file, dry_run=True, **options)
        return result


async def _run(emulator: bool, quiet: bool, start: Callable[[FalService, Any], Any]) -> BatchResult:
    from falkit.cli.common import open_service

    async with open_service(emulator) as service:
        with BatchView(stderr(), quiet=quiet) as view:
            try:
                result: BatchResult = await start(service, view.update)
            except (KeyboardInterrupt, asyncio.CancelledError):
                view.interrupted()
                raise
    return result


async def _list(limit: int, emulator: bool) -> list[dict[str, Any]]:
    from collections import Counter

    from falkit.cli.common import open_local_service

    async with open_local_service(emulator) as service:
        store = await service.store()
        rows = []
        for batch in await store.list_batches(limit=limit):
            jobs = await store.batch_jobs(batch.id)
            latest = {j.batch_index: j.status for j in jobs}  # retried jobs come later
            rows.append(
                {
                    "batch_id": batch.id,
                    "created_at": batch.created_at,
                    "total": batch.total_jobs,
                    "jobs": dict(Counter(latest.values())),
                    "folder": batch.out_dir,
                    "budget_usd": batch.budget_usd,
                }
            )
        return rows


# ---- rendering ----


class BatchView:
    """One overall line on stderr: done, running, queued, failed, spend, ETA.

    Live on a terminal (redrawn a few times a second); elsewhere a plain line every few seconds.
    """

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.progress: BatchProgressEvent | None = None
        self._live: Any = None
        self._printed = time.monotonic()

    def __enter__(self) -> BatchView:
        if not self.quiet and self.console.is_terminal:
            from rich.live import Live

            self._live = Live(
                get_renderable=self.render,
                console=self.console,
                refresh_per_second=4,
                transient=True,
            )
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()

    def update(self, progress: BatchProgressEvent) -> None:
        if self.progress is None and not self.quiet:
            self._print(f"batch {progress.batch_id}: {progress.total} jobs")
        self.progress = progress
        if self.quiet or self._live is not None:
            return
        now = time.monotonic()
        if now - self._printed >= PLAIN_EVERY:
            self._printed = now
            self.console.print(self.render())

    def interrupted(self) -> None:
        """Ctrl-C: the jobs at Fal keep running; say how to pick them up again."""
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self.progress is not None:
            self.console.print(
                f"interrupted; jobs already submitted keep running at Fal. Rerun the same "
                f"command or `falkit batch resume {self.progress.batch_id}` to carry on"
            )

    def _print(self, message: str) -> None:
        if self._live is not None:
            self._live.console.print(message)
        else:
            self.console.print(message)

    def render(self) -> Text:
        from rich.text import Text

        p = self.progress
        if p is None:
            return Text("preparing batch…", style="dim")
        text = Text()
        text.append(f"{p.done}/{p.total} done", style="green")
        text.append(f" · {p.running} running · {p.queued} queued · {p.pending} to submit")
        if p.downloading:
            text.append(f" · {p.downloading} downloading")
        if p.failed:
            text.append(f" · {p.failed} failed", style="red")
        text.append(f" · ${p.spent_usd:.4f} spent")
        eta = p.eta_seconds
        text.append(f" · ETA {_duration(eta)}" if eta is not None else " · ETA …", style="dim")
        return text


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _report_dry_run(result: BatchResult, json_out: bool) -> None:
    if json_out:
        print_json(result.to_json())
        return
    cost = "unknown" if result.estimated_cost is None else f"${result.estimated_cost:.4f}"
    sys.stdout.write(f"{result.total} jobs, estimated cost {cost} (dry run: nothing sent)\n")
    sys.stdout.write(f"batch {result.batch_id} -> {result.folder}\n")
    if result.budget_usd is not None and (result.estimated_cost or 0) > result.budget_usd:
        stderr().print(f"[yellow]over the budget of ${result.budget_usd:.4f}[/]")


def _finish(result: BatchResult, json_out: bool) -> None:
    """Print the summary; exit 1 unless every job completed."""
    if json_out:
        print_json(result.to_json())
    else:
        _report(stderr(), result)
        sys.stdout.write(f"{result.folder}\n")
    if not result.ok:
        raise typer.Exit(1)


def _report(console: Console, result: BatchResult) -> None:
    from rich.markup import escape

    style = "green" if result.ok else "yellow"
    console.print(
        f"[{style}]batch {result.batch_id}[/]: {result.completed}/{result.total} completed, "
        f"{result.failed} failed, {result.unknown} unknown, {result.pending} not submitted, "
        f"{result.unfinished} still at Fal; ${result.spent_usd:.4f} spent "
        f"in {result.elapsed:.1f}s"
    )
    if result.budget_stopped:
        console.print(
            f"[yellow]budget of ${result.budget_usd:.4f} reached:[/] {result.pending} jobs "
            f"left unsubmitted; rerun with a larger --budget to finish"
        )
    if result.stopped_by:
        console.print(f"[red]stopped submitting:[/] {escape(result.stopped_by)}")
    for failure in result.failures[:MAX_LISTED_FAILURES]:
        console.print(
            f"  #{failure.index} (line {failure.line}) {failure.job_id} {failure.status}: "
            f"{escape(failure.error)}",
            soft_wrap=True,
        )
    if len(result.failures) > MAX_LISTED_FAILURES:
        console.print(f"  … and {len(result.failures) - MAX_LISTED_FAILURES} more (manifest)")
    if not result.ok:
        console.print(
            f"rerun the same command or `falkit batch resume {result.batch_id}` to carry on"
        )
    for name, path in result.files.items():
        console.print(f"[dim]{name}:[/] {path}")
