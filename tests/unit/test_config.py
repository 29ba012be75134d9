"""Settings: key lookup order, .env, URLs, and the key never shown."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from falkit.config import load_settings, mask_key
from falkit.errors import ServiceDisabledError

KEY = "abcd1234-secret:0123456789abcdefWXYZ"


def test_no_key_disables_the_service() -> None:
    settings = load_settings()
    assert not settings.enabled
    assert "FAL_API_KEY" in str(ServiceDisabledError())


def test_lookup_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAL_KEY_ID", "id")
    monkeypatch.setenv("FAL_KEY_SECRET", "secret")
    assert load_settings().key == "id:secret"
    monkeypatch.setenv("FAL_KEY", "fal-key")
    assert load_settings().key == "fal-key"
    monkeypatch.setenv("FAL_API_KEY", "api-key")
    assert load_settings().key == "api-key"


def test_dotenv_is_read_and_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("FAL_API_KEY=from-dotenv\nFALKIT_QUEUE_URL=http://x/q/\n")
    settings = load_settings()
    assert settings.key == "from-dotenv"
    assert settings.queue_url == "http://x/q"
    monkeypatch.setenv("FAL_API_KEY", "from-env")
    assert load_settings().key == "from-env"


def test_home_and_database_default(isolated_env: Path) -> None:
    settings = load_settings()
    assert settings.home == isolated_env
    assert settings.db_url == f"sqlite+aiosqlite:///{isolated_env / 'falkit.db'}"


def test_key_never_in_repr_or_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FAL_API_KEY", KEY)
    settings = load_settings()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("falkit").debug("settings %s %r", settings, settings)
    for text in (repr(settings), str(settings), caplog.text, str(settings.model_dump())):
        assert KEY not in text
        assert "0123456789abcdef" not in text
    assert mask_key(KEY) == "key_…WXYZ"
