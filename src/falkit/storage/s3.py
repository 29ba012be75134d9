"""Images in an S3-compatible bucket, through obstore (the Rust ``object_store`` crate).

The endpoint, region and keys come from the standard variables (``AWS_ENDPOINT_URL``,
``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``), as for any S3 tool; plain
http is allowed only when the endpoint says so. Writes are create-only (``If-None-Match: *``),
reads are served through the API or as presigned URLs.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING, Any

from falkit.errors import FalkitError, LookupFailedError, ValidationError
from falkit.storage import Stored

if TYPE_CHECKING:
    from obstore.store import S3Store


class S3Storage:
    """``s3://bucket/prefix``: keys live under the prefix."""

    def __init__(self, url: str) -> None:
        bucket, _, prefix = url.split("://", 1)[1].partition("/")
        if not bucket:
            raise ValidationError.field("FALKIT_STORAGE_URL", f"{url!r} names no bucket")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.base = f"s3://{bucket}/" + (f"{self.prefix}/" if self.prefix else "")
        self._store: S3Store | None = None

    def store(self) -> S3Store:
        """The obstore client, made on first use (it reads the AWS_* variables then)."""
        if self._store is None:
            from obstore.store import S3Store

            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            options: dict[str, Any] = {
                "allow_http": bool(endpoint and endpoint.startswith("http:"))
            }
            self._store = S3Store(
                self.bucket,
                prefix=self.prefix or None,
                client_options=options,  # type: ignore[arg-type]
            )
        return self._store

    def location(self, key: str) -> str:
        return self.base + key

    def key_of(self, location: str) -> str | None:
        return location[len(self.base) :] if location.startswith(self.base) else None

    async def put_new(self, key: str, data: bytes, content_type: str) -> Stored:
        import obstore
        from obstore.exceptions import AlreadyExistsError

        attributes = {"Content-Type": content_type}
        try:
            await obstore.put_async(self.store(), key, data, mode="create", attributes=attributes)
        except AlreadyExistsError:
            return Stored(self.location(key), False, await self.get(key))
        except Exception as exc:
            raise FalkitError(f"cannot store {self.location(key)}: {_first_line(exc)}") from None
        return Stored(self.location(key), True, data)

    async def get(self, key: str) -> bytes:
        import obstore
        from obstore.exceptions import NotFoundError

        try:
            result = await obstore.get_async(self.store(), key)
            return bytes(await result.bytes_async())
        except (NotFoundError, FileNotFoundError):
            raise LookupFailedError(f"no such file: {key}") from None
        except Exception as exc:
            raise FalkitError(f"cannot read {self.location(key)}: {_first_line(exc)}") from None

    async def presign(self, key: str, seconds: int = 3600) -> str | None:
        import obstore

        url: str = await obstore.sign_async(self.store(), "GET", key, dt.timedelta(seconds=seconds))
        return url

    async def delete(self, key: str) -> bool:
        import obstore

        try:
            await obstore.delete_async(self.store(), key)
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise FalkitError(f"cannot delete {self.location(key)}: {_first_line(exc)}") from None
        return True


def _first_line(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0]
