"""`falkit generate`: one prompt to images on disk, with live progress."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from falkit.cli.common import EMULATOR_OPTION, JSON_OPTION, print_json, run, stderr
from falkit.cli.help import FORMATS, IMAGE_MODELS, SIZE_PRESETS, examples, one_of
from falkit.cli.open_cmd import PREVIEW_OPTION

if TYPE_CHECKING:
    from falkit.request import ImageRequest
    from falkit.service import FalService, GenerationResult

EPILOG = examples(
    'falkit generate "a red fox in snow"',
    'falkit generate "a red fox in snow" -m flux-dev -s landscape_16_9 --steps 28 --seed 42',
    'falkit generate "a castle" -m sdxl -p negative_prompt="blurry, text" -p expand_prompt=true',
    'falkit generate "a castle" -m fal-ai/flux/dev/image-to-image -p image_url=https://...',
    'falkit generate "photo of TOK on a beach" --lora me:0.8 --open',
    'falkit generate "a red fox" --dry-run --json   (check and price, send nothing)',
    'falkit generate "a red fox" --timeout 30       (exit 4 if still running then)',
)


@dataclass(frozen=True)
class Options:
    """What to do around the job: where copies go, how long to wait, how to show results."""

    out: Path | None = None
    timeout: float | None = None
    json_out: bool = False
    dry_run: bool = False
    emulator: bool = False
    open: bool = False
    preview: bool = False


class StillRunning(Exception):
    """--timeout passed while the job was still at Fal (it goes on)."""

    def __init__(self, job_id: str, request_id: str | None, timeout: float) -> None:
        super().__init__(job_id)
        self.job_id, self.request_id, self.timeout = job_id, request_id, timeout


def generate(
    prompt: str = typer.Argument(..., help="What to draw."),
    model: str | None = typer.Option(
        None, "--model", "-m", help=f"{one_of(IMAGE_MODELS)}, or a fal-ai/... endpoint id."
    ),
    size: str | None = typer.Option(
        None, "--size", "-s", help=f"{one_of(SIZE_PRESETS)}, or WxH such as 1024x768."
    ),
    steps: int | None = typer.Option(None, "--steps", help="Inference steps (model default)."),
    guidance: float | None = typer.Option(
        None, "--guidance", help="Guidance scale; 3.5 to 4.5 suits Flux."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed for reproducible results."),
    num_images: int | None = typer.Option(
        None, "--num-images", "-n", help="Images to generate (1 by default)."
    ),
    output_format: str | None = typer.Option(None, "--format", help=f"{one_of(FORMATS)}."),
    lora: list[str] = typer.Option(
        [], "--lora", help="LoRA URL (or library name) with optional :SCALE; repeatable."
    ),
    param: list[str] = typer.Option(
        [],
        "--param",
        "-p",
        help="Any model parameter as NAME=VALUE (JSON values parsed), repeatable; "
        "`falkit models show MODEL` lists them.",
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Also copy the images here."),
    timeout: float | None = typer.Option(
        None,
        "--timeout",
        help="Stop waiting after SECONDS (exit 4); the job goes on, `jobs resume` fetches it.",
    ),
    open_images: bool = typer.Option(False, "--open", help="Open the images when done."),
    preview: bool = PREVIEW_OPTION,
    json_out: bool = JSON_OPTION,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Validate and show the request and cost; send nothing."
    ),
    emulator: bool = EMULATOR_OPTION,
) -> None:
    """Generate images from a prompt; saved paths go to stdout, progress to stderr."""
    flags: dict[str, Any] = {
        "model": model,
        "image_size": size,
        "num_inference_steps": steps,
        "guidance_scale": guidance,
        "seed": seed,
        "num_images": num_images,
        "output_format": output_format,
        "loras": list(lora) or None,
    }
    options = Options(out, timeout, json_out, dry_run, emulator, open_images, preview)
    try:
        run(lambda: _generate(prompt, flags, param, options))
    except StillRunning as still:
        _report_still_running(still, json_out)


async def _generate(prompt: str, flags: dict[str, Any], items: list[str], options: Options) -> None:
    from falkit.cli.common import open_service
    from falkit.cli.params import merge
    from falkit.request import ImageRequest

    request = ImageRequest.build(prompt, **merge(flags, items))  # bad input: exit 2, nothing sent
    if options.timeout is not None and not options.timeout > 0:
        from falkit.errors import ValidationError

        given = f"{options.timeout:g} is not a timeout"
        raise ValidationError.field("timeout", given, "seconds > 0")
    if options.dry_run:
        _print_dry_run(request, options.json_out)
        return
    async with open_service(options.emulator) as service:
        result = await _with_progress(service, request, options)
    _print_result(result, options)


async def _with_progress(
    service: FalService, request: ImageRequest, options: Options
) -> GenerationResult:
    from falkit.cli.interrupt import interruptible
    from falkit.cli.render import ProgressView
    from falkit.errors import FalTimeoutError
    from falkit.service.core import follow

    with ProgressView(stderr(), quiet=options.json_out) as view:
        handle = await service.start_image(request, out_dir=options.out)
        view.job_id = handle.job_id
        try:
            work = follow(handle, view, options.timeout)
            result: GenerationResult = await interruptible(handle, view, work)
        except FalTimeoutError as exc:
            assert options.timeout is not None
            raise StillRunning(handle.job_id, exc.request_id, options.timeout) from None
        return result


def _report_still_running(still: StillRunning, json_out: bool) -> None:
    from falkit.cli.common import EXIT_RUNNING

    if json_out:
        print_json({"job_id": still.job_id, "request_id": still.request_id, "status": "running"})
    else:
        at_fal = f" (request {still.request_id})" if still.request_id else ""
        stderr().print(
            f"[yellow]still running:[/] job {still.job_id}{at_fal} is not done after "
            f"{still.timeout:g}s; it goes on at Fal. Fetch its images with `falkit jobs resume`, "
            f"then `falkit open {still.job_id}`.",
            soft_wrap=True,
        )
    raise typer.Exit(EXIT_RUNNING)


def _print_dry_run(request: ImageRequest, json_out: bool) -> None:
    prepared = request.prepare()
    if json_out:
        print_json({"dry_run": True, **prepared.to_json()})
        return
    import json

    cost = "unknown" if prepared.estimated_cost is None else f"${prepared.estimated_cost:.4f}"
    sys.stdout.write(f"POST {prepared.endpoint_id}\n{json.dumps(prepared.arguments, indent=2)}\n")
    sys.stdout.write(f"estimated cost: {cost} (dry run: nothing sent)\n")


def _print_result(result: GenerationResult, options: Options) -> None:
    paths = [Path(p) for p in (result.copies or tuple(result.paths))]
    if options.json_out:
        print_json(result.to_json())
    else:
        for path in paths:
            sys.stdout.write(f"{path}\n")
        cost = "?" if result.cost_usd is None else f"${result.cost_usd:.4f}"
        stderr().print(f"[green]done[/] job {result.job_id} seed {result.seed} cost {cost}")
    _show(paths, options)


def _show(paths: list[Path], options: Options) -> None:
    from falkit.cli.common import reported

    with reported():
        if options.preview:
            from falkit.cli.open_cmd import show_previews

            show_previews(paths)
        if options.open:
            from falkit.cli.viewer import open_images

            open_images(paths)


def register(app: typer.Typer) -> None:
    app.command("generate", epilog=EPILOG)(generate)
