"""Running the real CLI against an in-process emulator and judging how it ended.

Every run goes through ``typer.testing.CliRunner`` on ``falkit.cli.app.app`` with the
environment a user would have (FAL_API_KEY and FALKIT_*_URL pointing at the emulator), and is
judged by what a user sees: the exit code, stderr, and whether any request reached "Fal".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from falkit.cli.app import app
from falkit.emulator import EmulatorConfig, EmulatorServer, run_emulator
from tests.integration.helpers import emulator_env

RUNNER = CliRunner()
ALLOWED_EXITS = {0, 1, 2, 4}  # 4: --timeout passed, the job is still running at Fal


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    """One quick emulator for a module's runs (plain images: downloads cost nothing)."""
    config = EmulatorConfig(latency=0.0, training_seconds=0.0, plain_images=True)
    with run_emulator(config) as server:
        yield server


def cli_env(emulator: EmulatorServer, home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user pointed at the emulator (an in-process --emulator is quick)."""
    env = emulator_env(emulator.base_url, home)
    env["FALKIT_EMULATOR_LATENCY"] = "0"
    env.update(extra)
    return env


@dataclass(frozen=True)
class Outcome:
    """How one CLI run ended."""

    args: list[str]
    code: int
    stdout: str
    stderr: str
    requests: int  # requests the emulator saw during the run
    exception: BaseException | None

    def describe(self) -> str:
        return (
            f"falkit {' '.join(a[:60] for a in self.args)[:400]} -> exit {self.code}, "
            f"{self.requests} request(s)\nstderr: {self.stderr[-1500:]}"
        )


def total_requests(emulator: EmulatorServer) -> int:
    return sum(emulator.stats.requests.values())


def invoke(
    emulator: EmulatorServer, args: list[str], env: dict[str, str], stdin: str | None = None
) -> Outcome:
    before = total_requests(emulator)
    result = RUNNER.invoke(app, args, env=env, input=stdin)
    exception = None if isinstance(result.exception, SystemExit) else result.exception
    return Outcome(
        args, result.exit_code, result.stdout, result.stderr, total_requests(emulator) - before,
        exception,
    )  # fmt: skip


def error_lines(outcome: Outcome) -> list[str]:
    """Lines that report an error: falkit's ``error: …`` or click's usage error."""
    lines = outcome.stderr.splitlines()
    ours = [line for line in lines if line.startswith("error:")]
    usage = [line for line in lines if "Invalid value" in line or "No such option" in line]
    usage += [line for line in lines if "Missing argument" in line or "Got unexpected" in line]
    return ours or usage


def assert_well_behaved(outcome: Outcome) -> None:
    """The rules every run keeps, whatever it was given.

    Exit 0, 1, 2 or 4 (never a crash); no traceback; exit 2 sends nothing and says what is wrong
    in one falkit ``error:`` line (or click's usage error); exit 1 means Fal (the emulator)
    answered something, so at least one request went out, and the failure is reported (on
    stderr, or in the JSON summary with --json).
    """
    detail = outcome.describe()
    assert outcome.exception is None, f"{detail}\nraised {outcome.exception!r}"
    assert "Traceback" not in outcome.stderr + outcome.stdout, detail
    assert "internal error" not in outcome.stderr + outcome.stdout, detail  # a crash, caught
    assert outcome.code in ALLOWED_EXITS, detail
    if outcome.code == 2:
        assert outcome.requests == 0, detail
        lines = error_lines(outcome)
        assert lines, detail
        ours = [line for line in lines if line.startswith("error:")]
        assert len(ours) <= 1, detail
    if outcome.code == 4:
        assert outcome.requests > 0, detail  # only a job Fal accepted can still be running
    if outcome.code == 1:
        assert outcome.requests > 0, detail
        reported = error_lines(outcome) or "failed" in outcome.stderr
        json_summary = "--json" in outcome.args and outcome.stdout.lstrip().startswith(("{", "["))
        assert reported or json_summary, detail


def field_named(outcome: Outcome, *words: str) -> bool:
    """Whether the error names every one of ``words`` (a field, a variable, a file)."""
    text = " ".join(error_lines(outcome))
    return all(word in text for word in words)


Args = list[Any]
