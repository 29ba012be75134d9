"""`falkit generate`: one prompt to images on disk, with live progress."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from falkit.cli.common import EMULATOR_OPTION, JSON_OPTION, print_json, run, stderr

if TYPE_CHECKING:
    from falkit.request import ImageRequest
    from falkit.service import FalService, GenerationResult


def generate(
    prompt: str = typer.Argument(..., help="What to draw."),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Catalog name (see `falkit models`) or a fal-ai/... id."
    ),
    size: str | None = typer.Option(
        None, "--size", "-s", help="Preset (square_hd, landscape_16_9, ...) or WxH, e.g. 1024x768."
    ),
    steps: int | None = typer.Option(None, "--steps", help="Inference steps (model default)."),
    guidance: float | None = typer.Option(
        None, "--guidance", help="Guidance scale; 3.5 to 4.5 suits Flux."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed for reproducible results."),
    num_images: int = typer.Option(1, "--num-images", "-n", help="Images to generate."),
    output_format: str | None = typer.Option(None, "--format", help="jpeg or png."),
    lora: list[str] = typer.Option(
        [], "--lora", help="LoRA URL (or library name) with optional :SCALE; repeatable."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Also copy the images here."),
    timeout: float | None = typer.Option(
        None, "--timeout", help="Stop waiting after SECONDS; the job is left for `jobs resume`."
    ),
    json_out: bool = JSON_OPTION,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Validate and show the request and cost; send nothing."
    ),
    emulator: bool = EMULATOR_OPTION,
) -> None:
    """Generate images from a prompt; saved paths go to stdout, progress to stderr."""
    params: dict[str, Any] = {
        "model": model,
        "image_size": size,
        "num_inference_steps": steps,
        "guidance_scale": guidance,
        "seed": seed,
        "num_images": num_images,
        "output_format": output_format,
        "loras": list(lora) or None,
    }
    run(lambda: _generate(prompt, params, out, timeout, json_out, dry_run, emulator))


async def _generate(
    prompt: str,
    params: dict[str, Any],
    out: Path | None,
    timeout: float | None,
    json_out: bool,
    dry_run: bool,
    emulator: bool,
) -> None:
    from falkit.cli.common import open_service
    from falkit.request import ImageRequest

    request = ImageRequest.build(prompt, **params)  # bad input: exit 2 before anything else
    if timeout is not None and not timeout > 0:
        from falkit.errors import ValidationError

        raise ValidationError.field("timeout", f"{timeout:g} is not a timeout", "seconds > 0")
    if dry_run:
        _print_dry_run(request, json_out)
        return
    async with open_service(emulator) as service:
        result = await _with_progress(service, request, out, timeout, quiet=json_out)
    _print_result(result, json_out)


async def _with_progress(
    service: FalService,
    request: ImageRequest,
    out: Path | None,
    timeout: float | None,
    *,
    quiet: bool,
) -> GenerationResult:
    from falkit.cli.interrupt import interruptible
    from falkit.cli.render import ProgressView
    from falkit.service.core import follow

    with ProgressView(stderr(), quiet=quiet) as view:
        handle = await service.start_image(request, out_dir=out)
        view.job_id = handle.job_id
        result: GenerationResult = await interruptible(handle, view, follow(handle, view, timeout))
        return result


def _print_dry_run(request: ImageRequest, json_out: bool) -> None:
    prepared = request.prepare()
    if json_out:
        print_json({"dry_run": True, **prepared.to_json()})
        return
    import json

    cost = "unknown" if prepared.estimated_cost is None else f"${prepared.estimated_cost:.4f}"
    sys.stdout.write(f"POST {prepared.endpoint_id}\n{json.dumps(prepared.arguments, indent=2)}\n")
    sys.stdout.write(f"estimated cost: {cost} (dry run: nothing sent)\n")


def _print_result(result: GenerationResult, json_out: bool) -> None:
    if json_out:
        print_json(result.to_json())
        return
    for path in result.copies or tuple(result.paths):
        sys.stdout.write(f"{path}\n")
    cost = "?" if result.cost_usd is None else f"${result.cost_usd:.4f}"
    stderr().print(f"[green]done[/] job {result.job_id} seed {result.seed} cost {cost}")


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
