"""Every CLI command is documented in the README with an example."""

from __future__ import annotations

from pathlib import Path

from typer.main import get_command

from falkit.cli.app import app

README = (Path(__file__).parents[2] / "README.md").read_text()


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
