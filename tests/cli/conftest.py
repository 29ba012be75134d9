"""CLI fixtures: a real emulator and the environment pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from falkit.emulator import EmulatorConfig, run_emulator
from tests.integration.helpers import emulator_env


@pytest.fixture
def emu() -> Iterator[Any]:
    with run_emulator(EmulatorConfig(latency=0.05, concurrency=4)) as server:
        yield server


@pytest.fixture
def env(emu: Any, isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This process and any falkit subprocess talk to the emulator, with a private home."""
    variables = emulator_env(emu.base_url, isolated_env)
    for name, value in variables.items():
        if name.startswith(("FAL_", "FALKIT_")):
            monkeypatch.setenv(name, value)
    return variables
