"""`falkit lora`: registered by its own issue's work."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Nothing yet."""
