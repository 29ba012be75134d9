"""Image storage writes once: a folder (the default) and an S3 bucket (moto's server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from falkit.config import load_settings
from falkit.errors import LookupFailedError
from falkit.storage import open_storage


async def test_a_folder_keeps_the_first_write(tmp_path: Path) -> None:
    storage = open_storage(load_settings(home=tmp_path))
    first = await storage.put_new("2026-12-01/a.png", b"first", "image/png")
    second = await storage.put_new("2026-12-01/a.png", b"second", "image/png")
    assert (first.written, second.written) == (True, False)
    assert second.data == b"first" == (tmp_path / "images/2026-12-01/a.png").read_bytes()
    assert storage.key_of(first.location) == "2026-12-01/a.png"
    assert list((tmp_path / "images/2026-12-01").iterdir()) == [
        tmp_path / "images/2026-12-01/a.png"
    ]
    assert await storage.presign("2026-12-01/a.png") is None
    assert await storage.delete("2026-12-01/a.png") is True
    assert await storage.delete("2026-12-01/a.png") is False  # gone already
    with pytest.raises(LookupFailedError):
        await storage.get("2026-12-01/a.png")


async def test_a_bucket_keeps_the_first_write(moto: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in moto.env.items():
        monkeypatch.setenv(name, value)
    storage = open_storage(load_settings())
    key = "2026-12-01/unit-test.png"
    first = await storage.put_new(key, b"first", "image/png")
    second = await storage.put_new(key, b"second", "image/png")
    assert (first.written, second.written) == (True, False)
    assert first.location == f"s3://falkit-images/library/{key}"
    assert storage.key_of(first.location) == key
    assert await storage.get(key) == b"first"
    assert moto.versions("2026-12-01/unit-test") == {f"library/{key}": 1}
    url = await storage.presign(key)
    assert url is not None
    assert url.startswith(moto.url)
    with pytest.raises(LookupFailedError):
        await storage.get("2026-12-01/none.png")
    assert await storage.delete(key) is True
    await storage.delete(key)  # gone already: no error (a bucket cannot tell)
    with pytest.raises(LookupFailedError):
        await storage.get(key)
