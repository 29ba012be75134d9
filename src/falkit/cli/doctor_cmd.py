"""`falkit doctor`: one line per check of the setup (key, home, database, Fal's URLs), with
the fix for each problem; exit 1 when something is wrong."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from falkit.cli.common import EMULATOR_OPTION, EXIT_FAILED, JSON_OPTION, print_json, run
from falkit.cli.help import examples

if TYPE_CHECKING:
    from falkit.cli.checks import Check

_MARK = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def doctor(
    timeout: float = typer.Option(
        5.0, "--timeout", min=0.1, max=120, help="Seconds to wait for each URL to answer."
    ),
    json_out: bool = JSON_OPTION,
    emulator: bool = EMULATOR_OPTION,
) -> None:
    """Check the setup, one line per check with the fix; exit 1 if one fails.

    Checks the key (masked) and where it comes from, FALKIT_HOME, the library database and its
    schema version, that each of Fal's base URLs answers, and that Fal accepts the key."""
    checks = run(lambda: _diagnose(timeout, emulator))
    if json_out:
        print_json({"ok": _healthy(checks), "checks": [c.to_json() for c in checks]})
    else:
        _print(checks)
    if not _healthy(checks):
        raise typer.Exit(EXIT_FAILED)


async def _diagnose(timeout: float, emulator: bool) -> list[Check]:
    from falkit.cli.checks import run_checks
    from falkit.cli.common import settings_for

    if not emulator:
        return await run_checks(settings_for(None), timeout)
    from falkit.emulator import EmulatorConfig, run_emulator

    with run_emulator(EmulatorConfig(latency=0.1)) as emu:
        return await run_checks(settings_for(emu.base_url), timeout)


def _healthy(checks: list[Check]) -> bool:
    return all(check.level != "fail" for check in checks)


def _print(checks: list[Check]) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    width = max(len(check.name) for check in checks)
    for check in checks:
        fix = f" — fix: {check.fix}" if check.fix else ""
        mark = f"[{_STYLE[check.level]}]{_MARK[check.level]}[/]"
        console.print(f"{mark} {check.name:<{width}}  {escape(check.detail + fix)}")
    bad = sum(1 for check in checks if check.level == "fail")
    summary = "all good" if not bad else f"{bad} problem{'s' if bad != 1 else ''}"
    sys.stdout.write(f"{summary}\n")


def register(app: typer.Typer) -> None:
    app.command(
        "doctor",
        epilog=examples("falkit doctor", "falkit doctor --json", "falkit doctor --emulator"),
    )(doctor)
