"""`falkit lora`: train a LoRA from your pictures, then list, show and remove library entries."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from falkit.cli.common import EMULATOR_OPTION, JSON_OPTION, print_json, run, stderr
from falkit.cli.help import examples
from falkit.views import lora_json

if TYPE_CHECKING:
    from falkit.service import FalService
    from falkit.service.training import TrainingResult

T = TypeVar("T")
app = typer.Typer(
    help="Train LoRAs on your own pictures and manage the LoRA library.", no_args_is_help=True
)


@app.command(
    "train",
    epilog=examples(
        "falkit lora train ./photos --trigger-word TOK --name me",
        "falkit lora train photos.zip -t TOK --steps 500 --is-style",
        "falkit lora train https://example.com/photos.zip -t TOK --emulator",
    ),
)
def train(
    source: str = typer.Argument(
        ..., help="A folder of images (optional same-named .txt captions), a .zip, or a URL."
    ),
    trigger_word: str | None = typer.Option(
        None, "--trigger-word", "-t", help="Word that calls up the LoRA in prompts, e.g. TOK."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Name in the library (default: the trigger word)."
    ),
    steps: int = typer.Option(1000, "--steps", help="Training steps (1 to 10000)."),
    is_style: bool = typer.Option(
        False, "--is-style", help="Train a style rather than a subject (no masks or captions)."
    ),
    no_masks: bool = typer.Option(
        False, "--no-masks", help="Do not weight the loss with segmentation masks."
    ),
    json_out: bool = JSON_OPTION,
    emulator: bool = EMULATOR_OPTION,
) -> None:
    """Train a Flux LoRA and register it; use it with `falkit generate --lora NAME`."""
    params: dict[str, Any] = {
        "trigger_word": trigger_word,
        "name": name,
        "steps": steps,
        "is_style": is_style,
        "create_masks": not no_masks,
    }
    result = run(lambda: _train(source, params, emulator, quiet=json_out))
    if json_out:
        print_json(result.to_json())
        return
    sys.stdout.write(f"{result.local_path}\n")
    word = f" (trigger word {result.trigger_word})" if result.trigger_word else ""
    stderr().print(
        f"[green]done[/] LoRA [bold]{result.name}[/]{word} from job {result.job_id}; "
        f'try: falkit generate "photo of {result.trigger_word or "..."}" --lora {result.name}'
    )


async def _train(
    source: str, params: dict[str, Any], emulator: bool, *, quiet: bool
) -> TrainingResult:
    from falkit.cli.common import open_service
    from falkit.cli.interrupt import interruptible
    from falkit.cli.render import ProgressView
    from falkit.service.core import follow

    async with open_service(emulator) as service:
        with ProgressView(stderr(), quiet=quiet) as view:
            handle = await service.start_training(source, **params)
            view.job_id = handle.job_id
            result: TrainingResult = await interruptible(handle, view, follow(handle, view))
            return result


@app.command("list", epilog=examples("falkit lora list", "falkit lora list | cut -f1"))
def list_loras(json_out: bool = JSON_OPTION, emulator: bool = EMULATOR_OPTION) -> None:
    """Every LoRA in the library: name, trigger word, created, local file.

    In a pipe, one tab-separated line per LoRA."""
    records = run(lambda: _read(emulator, lambda s: s.list_loras()))
    if json_out:
        print_json([lora_json(r) for r in records])
        return
    from falkit.cli.records import LORA_COLUMNS, lora_rows
    from falkit.cli.table import print_table

    print_table(LORA_COLUMNS, lora_rows(records))


@app.command("show", epilog=examples("falkit lora show me", "falkit lora show me --json"))
def show(
    name: str = typer.Argument(..., help="The LoRA's name."),
    json_out: bool = JSON_OPTION,
    emulator: bool = EMULATOR_OPTION,
) -> None:
    """Everything recorded about one LoRA."""
    record = run(lambda: _read(emulator, lambda s: s.get_lora(name)))
    data = lora_json(record)
    if json_out:
        print_json(data)
        return
    from falkit.cli.records import format_fields, lora_fields

    sys.stdout.write(format_fields(lora_fields(record)))


@app.command("rm", epilog=examples("falkit lora rm me", "falkit lora rm me --keep-file"))
def remove(
    name: str = typer.Argument(..., help="The LoRA's name."),
    keep_file: bool = typer.Option(
        False, "--keep-file", help="Keep the downloaded .safetensors file."
    ),
    json_out: bool = JSON_OPTION,
    emulator: bool = EMULATOR_OPTION,
) -> None:
    """Remove a LoRA from the library (and delete its kept weights file)."""
    removed = run(lambda: _read(emulator, lambda s: s.remove_lora(name, delete_file=not keep_file)))
    if json_out:
        print_json({"name": name, "removed": removed})
    elif removed:
        sys.stdout.write(f"removed {name}\n")
    if not removed:
        stderr().print(f"[bold red]error:[/] no LoRA named {name!r}")
        raise typer.Exit(1)


async def _read(emulator: bool, action: Callable[[FalService], Awaitable[T]]) -> T:
    """Run one library action on a service that needs no key (the library is local)."""
    from falkit.cli.common import open_local_service

    async with open_local_service(emulator) as service:
        return await action(service)


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="lora")
