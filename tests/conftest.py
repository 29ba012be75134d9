"""Shared fixtures. Every test runs with a private FALKIT_HOME and no real Fal key."""

from __future__ import annotations

from pathlib import Path

import pytest

_FAL_VARS = (
    "FAL_API_KEY",
    "FAL_KEY",
    "FAL_KEY_ID",
    "FAL_KEY_SECRET",
    "FALKIT_DATABASE_URL",
    "FALKIT_QUEUE_URL",
    "FALKIT_RUN_URL",
    "FALKIT_REST_URL",
    "FALKIT_CDN_URL",
    "FALKIT_API_URL",
    "FALKIT_RECONCILE_AFTER",
    "FALKIT_EMULATOR",
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test sees the developer's key, home or .env; each gets its own FALKIT_HOME."""
    for name in _FAL_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "falkit-home"
    monkeypatch.setenv("FALKIT_HOME", str(home))
    monkeypatch.setenv("FALKIT_CONFIG_DIR", str(tmp_path / "falkit-config"))  # no real key file
    monkeypatch.chdir(tmp_path)
    return home
