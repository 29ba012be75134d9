"""`falkit open JOB|last`: show a job's images with the system viewer, or inline."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from falkit.cli.common import EMULATOR_OPTION, JSON_OPTION, print_json, reported, run, stderr
from falkit.cli.help import JOB_REF, examples

if TYPE_CHECKING:
    from falkit.store import JobRecord

PREVIEW_OPTION = typer.Option(
    False,
    "--preview",
    help="Draw the images in this terminal (kitty, iTerm2/WezTerm or sixel; FALKIT_PREVIEW "
    "names the protocol when it is not detected).",
)


def open_job(
    job_id: str = typer.Argument("last", help=JOB_REF),
    preview: bool = PREVIEW_OPTION,
    json_out: bool = JSON_OPTION,
    emulator: bool = EMULATOR_OPTION,
) -> None:
    """Open a job's images with the system viewer, or draw them here with --preview.

    The viewer is xdg-open, open (macOS) or the Windows default; FALKIT_VIEWER names another
    command (each image's path is added as its last argument)."""
    job = run(lambda: _job(job_id, emulator))
    with reported():
        paths = image_paths(job)
        if preview:
            show_previews(paths)
        else:
            from falkit.cli.viewer import open_images

            open_images(paths)
    if json_out:
        print_json({"job_id": job.id, "images": [str(p) for p in paths]})
    else:
        for path in paths:
            sys.stdout.write(f"{path}\n")


async def _job(ref: str, emulator: bool) -> JobRecord:
    from falkit.cli.common import open_local_service

    async with open_local_service(emulator) as service:
        return await service.get_job(ref)


def image_paths(job: JobRecord) -> list[Path]:
    """The job's kept images; a job without any is an error that says why."""
    from falkit.errors import LookupFailedError

    if job.images:
        return [Path(img.local_path) for img in job.images]
    if job.status in ("completed",):
        raise LookupFailedError(f"job {job.id} completed without images")
    if job.finished:
        reason = f": {job.error}" if job.error else ""
        raise LookupFailedError(f"job {job.id} is {job.status}{reason}; it has no images")
    raise LookupFailedError(
        f"job {job.id} is {job.status}: no images yet; `falkit jobs resume` fetches them "
        "when it completes"
    )


def show_previews(paths: list[Path]) -> None:
    """Draw the images inline on stderr, or say on stderr why not (never an error)."""
    from falkit.cli.preview import detect, why_not, write_previews

    protocol = detect(os.environ)
    if protocol is None:
        stderr().print(f"no preview: {why_not(os.environ)}", soft_wrap=True)
        return
    write_previews(paths, protocol, sys.stderr)


def register(app: typer.Typer) -> None:
    app.command(
        "open",
        epilog=examples(
            "falkit open                  (the newest job)",
            "falkit open j_01jd5x3k",
            "falkit open last --preview   (kitty, iTerm2, WezTerm or a sixel terminal)",
            "FALKIT_VIEWER=feh falkit open last",
        ),
    )(open_job)
