"""The falkit command line. Command modules import their heavy dependencies lazily."""

from __future__ import annotations

import sys

import typer

from falkit.cli import (
    batch_cmd,
    doctor_cmd,
    emulator_cmd,
    generate_cmd,
    jobs_cmd,
    keys_cmd,
    lora_cmd,
    mcp_cmd,
    models_cmd,
    open_cmd,
    serve_cmd,
    worker_cmd,
)
from falkit.cli.common import State

app = typer.Typer(
    name="falkit",
    help="Generate images with Fal.ai: live progress, every image kept with its prompt and seed.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, pwsh
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from falkit import __version__

        sys.stdout.write(f"falkit {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    State.debug = debug


generate_cmd.register(app)
models_cmd.register(app)
app.add_typer(jobs_cmd.app, name="jobs")
emulator_cmd.register(app)
lora_cmd.register(app)
batch_cmd.register(app)
mcp_cmd.register(app)
serve_cmd.register(app)
worker_cmd.register(app)
open_cmd.register(app)
keys_cmd.register(app)
doctor_cmd.register(app)


def main() -> None:
    """The `falkit` command: run, flush, and leave without tearing the interpreter down.

    By the time a command returns, its service is closed (jobs journaled, files synced,
    connections shut); tearing down the ~1,000 loaded modules would only add a tenth of a
    second to every command, so the process exits at once with the command's code.
    """
    import os

    # No pydantic plugin can apply to falkit's own models; looking for them costs ~10 ms.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        app()
        code = 0
    except SystemExit as leaving:
        code = _exit_code(leaving.code)
    _exit_now(code)


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    sys.stderr.write(f"{value}\n")
    return 1


def _exit_now(code: int) -> None:
    import contextlib
    import logging
    import os

    logging.shutdown()  # flush any log file a user configured
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
