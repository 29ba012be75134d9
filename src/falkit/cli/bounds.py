"""Bounds on command-line numbers that click's own ranges miss, and numbers read from the
environment by the CLI.

click's ``min``/``max`` let ``nan`` and ``inf`` through (every comparison with nan is false), so
a seconds option built on them would accept ``--wait-seconds nan``. These checks give the same
one-line usage error (exit 2) as any other bad option.
"""

from __future__ import annotations

import math
import os

import typer

MAX_SECONDS = 24 * 3600.0


def seconds(value: float | None) -> float | None:
    """A typer callback: a finite number of seconds from 0 to MAX_SECONDS (None: not given)."""
    return _seconds(value, positive=False)


def positive_seconds(value: float | None) -> float | None:
    """A typer callback: a finite number of seconds above 0 (a timeout; None: not given)."""
    return _seconds(value, positive=True)


def _seconds(value: float | None, *, positive: bool) -> float | None:
    if value is None:
        return None
    low_ok = value > 0 if positive else value >= 0
    if not math.isfinite(value) or not low_ok or value > MAX_SECONDS:
        low = "above 0" if positive else "from 0"
        raise typer.BadParameter(f"{value:g} is not a number of seconds {low} to {MAX_SECONDS:g}")
    return value


def env_seconds(name: str, default: float) -> float:
    """A number of seconds from the environment variable ``name``, or ValidationError naming it."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= MAX_SECONDS:
        from falkit.errors import ValidationError

        raise ValidationError.field(
            name, f"{raw[:40]!r} is not a number of seconds", f"0 to {MAX_SECONDS:g}; or unset it"
        )
    return value
