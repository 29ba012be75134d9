"""The falkit command line. Command modules import their heavy dependencies lazily."""

from __future__ import annotations

import typer

from falkit.cli import (
    batch_cmd,
    emulator_cmd,
    generate_cmd,
    jobs_cmd,
    lora_cmd,
    mcp_cmd,
    models_cmd,
)
from falkit.cli.common import State

app = typer.Typer(
    name="falkit",
    help="Generate images with Fal.ai: live progress, every image kept with its prompt and seed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
) -> None:
    State.debug = debug


generate_cmd.register(app)
models_cmd.register(app)
app.add_typer(jobs_cmd.app, name="jobs")
emulator_cmd.register(app)
lora_cmd.register(app)
batch_cmd.register(app)
mcp_cmd.register(app)


def main() -> None:
    app()
