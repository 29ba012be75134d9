"""`falkit worker`: run jobs from the cluster's queue (PostgreSQL; see docs/deploy.md).

The worker machinery loads only when the command runs, so `falkit --help` stays fast.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from falkit.cli.common import run, stderr

if TYPE_CHECKING:
    from falkit.distributed.worker import WorkerOptions


def worker(
    concurrency: int = typer.Option(
        32, "--concurrency", "-c", min=1, max=10_000, help="Jobs this worker runs at once."
    ),
    heartbeat: float = typer.Option(
        10.0,
        "--heartbeat",
        min=1.0,
        max=600.0,
        help="Seconds without this worker's heartbeat before another worker takes its jobs.",
    ),
    webhook_grace: float = typer.Option(
        120.0,
        "--webhook-grace",
        min=0,
        help="With FALKIT_PUBLIC_URL: seconds a job waits for its webhook before it is followed.",
    ),
) -> None:
    """Run jobs from the queue shared through FALKIT_DATABASE_URL (PostgreSQL).

    Any number of workers (and `falkit serve --no-worker` replicas) share one database; a job
    whose worker dies is taken over by another once its heartbeat is missed. SIGTERM or
    Ctrl-C hands running jobs back to the queue. See docs/deploy.md.
    """
    from falkit.distributed.worker import WorkerOptions

    options = WorkerOptions(
        concurrency=concurrency, heartbeat=heartbeat, webhook_grace=webhook_grace
    )
    ran = run(lambda: _work(options))
    stderr().print(f"worker stopped: {ran} jobs run to their end")


async def _work(options: WorkerOptions) -> int:
    import asyncio
    import logging
    import signal

    from falkit.config import load_settings
    from falkit.distributed.pg import dsn
    from falkit.distributed.worker import run_worker

    settings = load_settings()
    dsn(settings.database_url)  # a missing or SQLite database is a one-line error, now
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("falkit.distributed").setLevel(logging.INFO)  # each job's run, on stderr
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sys.stdout.write(f"worker ready (concurrency {options.concurrency})\n")
    sys.stdout.flush()
    return await run_worker(settings, options, stop)


def register(app: typer.Typer) -> None:
    from falkit.cli.help import examples

    epilog = examples(
        "FALKIT_DATABASE_URL=postgresql://falkit@db/falkit falkit worker",
        "falkit worker --concurrency 64 --heartbeat 30",
    )
    app.command("worker", epilog=epilog)(worker)
