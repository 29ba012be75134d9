"""Images in a folder (FALKIT_HOME/images by default), each linked into place once."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from falkit.errors import LookupFailedError
from falkit.storage import Stored


class LocalStorage:
    """A folder; ``put_new`` writes a synced temporary file and hard-links it to its name,
    which fails (and keeps the file there) when the name is taken."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def location(self, key: str) -> str:
        return str(self.root / key)

    def key_of(self, location: str) -> str | None:
        try:
            return Path(location).resolve().relative_to(self.root.resolve()).as_posix()
        except (ValueError, OSError):
            return None

    async def put_new(self, key: str, data: bytes, content_type: str) -> Stored:
        return await asyncio.to_thread(self._put_new, key, data)

    def _put_new(self, key: str, data: bytes) -> Stored:
        from falkit.service.downloads import temp_file

        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = temp_file(target.parent, ".write-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.link(tmp, target)
        except FileExistsError:
            return Stored(str(target), False, target.read_bytes())
        finally:
            Path(tmp).unlink(missing_ok=True)
        return Stored(str(target), True, data)

    async def get(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread((self.root / key).read_bytes)
        except OSError:
            raise LookupFailedError(f"no such file: {key}") from None

    async def presign(self, key: str, seconds: int = 3600) -> str | None:
        return None

    async def delete(self, key: str) -> bool:
        try:
            await asyncio.to_thread((self.root / key).unlink)
        except FileNotFoundError:
            return False
        return True
