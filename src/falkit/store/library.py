"""The parts of the library that are not jobs: named LoRAs, the uploads cache, and batches."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from falkit.errors import ValidationError
from falkit.store.base import StoreBase, rowcount
from falkit.store.models import Batch, Lora, Upload, utcnow
from falkit.store.records import BatchRecord, LoraRecord


class LibraryMixin(StoreBase):
    """LoRAs by name, uploads by content hash, batches by id."""

    # ---- LoRAs ----

    async def add_lora(
        self,
        *,
        name: str,
        url: str,
        trigger_word: str | None,
        config_url: str | None,
        local_path: str | None,
        job_id: str | None,
        params: dict[str, Any],
        replace: bool = False,
    ) -> LoraRecord:
        """Register a LoRA under a name; an existing name is an error unless ``replace``."""
        name = _check_name(name)
        if not url or not url.strip():
            raise ValidationError.field("url", "a LoRA needs the URL of its weights")
        values = {
            "name": name,
            "url": url,
            "trigger_word": trigger_word,
            "config_url": config_url,
            "local_path": local_path,
            "job_id": job_id,
            "params": dict(params),
            "created_at": utcnow(),
        }
        stmt = self._insert(Lora).values(**values)
        if replace:
            stmt = stmt.on_conflict_do_update(index_elements=["name"], set_=values)
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=["name"])
        async with self._write() as session:
            if rowcount(await session.execute(stmt)) == 0:
                raise ValidationError.field(
                    "name",
                    f"a LoRA named {name!r} already exists",
                    allowed=f"another name, or `falkit lora remove {name}` first",
                )
            lora = await session.get_one(Lora, name, populate_existing=True)
            return lora.to_record()

    async def get_lora(self, name: str) -> LoraRecord | None:
        async with self._read() as session:
            lora = await session.get(Lora, name.strip())
            return lora.to_record() if lora else None

    async def list_loras(self) -> list[LoraRecord]:
        """Every LoRA, by name."""
        async with self._read() as session:
            rows = await session.scalars(select(Lora).order_by(Lora.name))
            return [lora.to_record() for lora in rows]

    async def remove_lora(self, name: str) -> bool:
        """Forget a LoRA (its files are left alone); False if there was none by that name."""
        async with self._write() as session:
            result = await session.execute(delete(Lora).where(Lora.name == name.strip()))
            return rowcount(result) > 0

    # ---- uploads ----

    async def remember_upload(self, sha256: str, url: str, size_bytes: int) -> None:
        """Remember where a file's content was uploaded, so it is uploaded once."""
        values = {"sha256": sha256, "url": url, "size_bytes": size_bytes, "created_at": utcnow()}
        stmt = self._insert(Upload).values(**values)
        stmt = stmt.on_conflict_do_update(index_elements=["sha256"], set_=values)
        async with self._write() as session:
            await session.execute(stmt)

    async def find_upload(self, sha256: str) -> str | None:
        """The URL a file with this content hash was uploaded to, if any."""
        async with self._read() as session:
            url: str | None = await session.scalar(
                select(Upload.url).where(Upload.sha256 == sha256)
            )
            return url

    # ---- batches ----

    async def create_batch(
        self,
        *,
        batch_id: str,
        spec: dict[str, Any],
        out_dir: str | None,
        budget_usd: float | None,
        total_jobs: int,
    ) -> BatchRecord:
        """Record a batch; if it exists already (a resumed batch), the stored one is returned."""
        if not batch_id or not batch_id.strip():
            raise ValidationError.field("batch_id", "must not be empty")
        stmt = self._insert(Batch).values(
            id=batch_id,
            spec=dict(spec),
            out_dir=out_dir,
            budget_usd=budget_usd,
            total_jobs=total_jobs,
            created_at=utcnow(),
        )
        async with self._write() as session:
            await session.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))
            batch = await session.get_one(Batch, batch_id, populate_existing=True)
            return batch.to_record()

    async def get_batch(self, batch_id: str) -> BatchRecord | None:
        async with self._read() as session:
            batch = await session.get(Batch, batch_id)
            return batch.to_record() if batch else None

    async def list_batches(self, limit: int = 20) -> list[BatchRecord]:
        """The most recent batches, newest first."""
        query = select(Batch).order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit)
        async with self._read() as session:
            return [batch.to_record() for batch in await session.scalars(query)]


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError.field("name", "a LoRA needs a name")
    if len(name) > 200:
        raise ValidationError.field("name", "too long", allowed="at most 200 characters")
    return name
