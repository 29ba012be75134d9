"""Every CLI command is documented in the README with an example, and every example parses."""

from __future__ import annotations

import contextlib
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.main import get_command

from falkit.cli.app import app

README = (Path(__file__).parents[2] / "README.md").read_text()
_SHELL_BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)
_EAGER = {"--install-completion", "--show-completion"}  # they would act, not parse


def _commands(group: object, prefix: str) -> list[str]:
    out: list[str] = []
    for name, cmd in getattr(group, "commands", {}).items():
        full = f"{prefix} {name}"
        out.append(full)
        out.extend(_commands(cmd, full))
    return out


def test_every_command_has_a_readme_example() -> None:
    root = get_command(app)
    commands = _commands(root, "falkit")
    assert "falkit generate" in commands
    missing = [c for c in commands if f"{c} " not in README and f"{c}\n" not in README]
    assert not missing, f"README lacks an example for: {missing}"


def readme_invocations() -> list[list[str]]:
    """The arguments of every `falkit ...` command in the README's shell blocks."""
    found = []
    for block in _SHELL_BLOCK.findall(README):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            for segment in _segments(words):
                if "falkit" in segment:
                    found.append(segment[segment.index("falkit") + 1 :])
    return found


def _segments(words: list[str]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for word in words:
        if word in ("|", "&&", ";", "&", ">", "<"):
            out.append([])
        else:
            out[-1].append(word)
    return out


@pytest.mark.parametrize("args", readme_invocations(), ids=" ".join)
def test_every_readme_example_parses(args: list[str]) -> None:
    """Each example names real commands and options with values of the right kind."""
    root = get_command(app)
    if _EAGER & set(args):
        assert _EAGER & {opt for p in root.params for opt in p.opts}
        return
    with contextlib.suppress(typer.Exit):  # --version: parsed, printed
        _parse(root, args)


def _parse(command: Any, args: list[str]) -> None:
    ctx = command.make_context("falkit", list(args))
    while getattr(command, "commands", None) is not None:  # a group (typer vendors click)
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            return
        _, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(command.name, rest, parent=ctx)
