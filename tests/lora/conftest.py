"""LoRA test fixtures: the shared emulator and service, and a small real dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import emu, service
from tests.lora.helpers import make_folder

__all__ = ["emu", "service"]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Five good training photos without captions."""
    return make_folder(tmp_path / "photos", 5)
