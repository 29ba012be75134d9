"""Helpers for CLI tests: the app through Click's runner."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner, Result

from falkit.cli.app import app


def cli(*args: str, input: str | None = None) -> Result:
    """`falkit ARGS` through Click's runner, in this process."""
    return CliRunner().invoke(app, list(args), input=input)


def generate(*args: str) -> dict[str, Any]:
    """Run `falkit generate ARGS --json` and return its answer (the run must succeed)."""
    result = cli("generate", *args, "--json")
    assert result.exit_code == 0, result.output
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer
