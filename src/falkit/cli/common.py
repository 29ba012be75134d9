"""What every command shares: running the service, exit codes, one-line errors, JSON output.

Exit codes: 0 success; 1 a job failed or Fal answered with an error; 2 invalid input or usage;
3 service disabled (no API key); 4 still running when `--timeout` passed (the job goes on);
130 interrupted.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from falkit.config import Settings
    from falkit.service import FalService

T = TypeVar("T")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DISABLED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_RUNNING = 4

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON document on stdout.")
EMULATOR_OPTION = typer.Option(
    False,
    "--emulator",
    envvar="FALKIT_EMULATOR",
    help="Run against an in-process offline emulator with a dummy key (placeholder images).",
)


class State:
    """Options of the root command."""

    debug: bool = False


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()


def exit_code_for(exc: BaseException) -> int:
    from falkit import errors

    if isinstance(exc, errors.ServiceDisabledError):
        return EXIT_DISABLED
    if isinstance(exc, errors.ValidationError) and exc.status_code is None:
        return EXIT_USAGE
    return EXIT_FAILED


def fail(exc: BaseException) -> typer.Exit:
    """Report an error in one line (a traceback only with --debug) and pick the exit code."""
    if State.debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    message = str(exc).strip() or exc.__class__.__name__
    stderr().print(f"[bold red]error:[/] {_escape(message)}", soft_wrap=True)
    return typer.Exit(exit_code_for(exc))


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """For commands that run nothing async: a falkit error inside is one line and a code."""
    from falkit.errors import FalkitError

    try:
        yield
    except FalkitError as exc:
        raise fail(exc) from None


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run a command's coroutine, turning falkit errors into one line and an exit code."""
    import asyncio

    from falkit.errors import FalkitError

    try:
        return asyncio.run(_guarded(main))
    except FalkitError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None


async def _guarded(main: Callable[[], Awaitable[T]]) -> T:
    return await main()


def settings_for(emulator_base: str | None, *, emulator: bool = False) -> Settings:
    """Settings from the environment, or pointed at a running emulator with its dummy key.

    Emulator runs keep their own library (FALKIT_HOME/emulator) so placeholder images and
    jobs never mix with real ones.
    """
    from falkit.config import EMULATOR_KEY, load_settings

    settings = load_settings()
    if emulator_base is None and not emulator:
        return settings
    home = settings.home / "emulator"
    if emulator_base is None:
        return settings.model_copy(update={"home": home, "database_url": None})
    return settings.with_urls(
        emulator_base, api_key=_secret(EMULATOR_KEY), home=home, database_url=None
    )


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


@contextlib.asynccontextmanager
async def open_service(emulator: bool) -> AsyncIterator[FalService]:
    """A FalService for one command; with --emulator, an in-process emulator serves it."""
    from falkit.service import FalService

    if not emulator:
        async with FalService(settings_for(None)) as service:
            yield service
        return
    from falkit.cli.bounds import env_seconds
    from falkit.emulator import EmulatorConfig, run_emulator

    latency = env_seconds("FALKIT_EMULATOR_LATENCY", 1.5)  # a bad value: one line, exit 2
    with run_emulator(EmulatorConfig(latency=latency)) as emu:
        stderr().print(
            "[yellow]Offline emulator:[/] images are placeholders, nothing is sent to Fal. "
            "With a real key (FAL_API_KEY), run the same command without --emulator."
        )
        async with FalService(settings_for(emu.base_url)) as service:
            yield service


@contextlib.asynccontextmanager
async def open_local_service(emulator: bool = False) -> AsyncIterator[FalService]:
    """A FalService for reading the library only (no key needed)."""
    from falkit.service import FalService

    async with FalService(settings_for(None, emulator=emulator)) as service:
        yield service
