"""The parts of the library that are not jobs: named LoRAs, the uploads cache, and batches.

Writes here are rare (a LoRA trained, a batch started), but go through the same writer as the
journal, so one store has one writer; their sync operation functions sit at the bottom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from falkit.errors import ValidationError
from falkit.store import rows
from falkit.store.base import StoreBase
from falkit.store.models import batches, loras, uploads, utcnow
from falkit.store.records import BatchRecord, LoraRecord

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


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
        return await self._write(_add_lora, values, replace)

    async def get_lora(self, name: str) -> LoraRecord | None:
        return await self._read(rows.lora_row, name.strip())

    async def list_loras(self) -> list[LoraRecord]:
        """Every LoRA, by name."""
        return await self._read(_list, select(loras).order_by(loras.c.name), rows.lora_record)

    async def remove_lora(self, name: str) -> bool:
        """Forget a LoRA (its files are left alone); False if there was none by that name."""
        return await self._write(_remove_lora, name.strip())

    # ---- uploads ----

    async def remember_upload(self, sha256: str, url: str, size_bytes: int) -> None:
        """Remember where a file's content was uploaded, so it is uploaded once."""
        values = {"sha256": sha256, "url": url, "size_bytes": size_bytes, "created_at": utcnow()}
        await self._write(_remember_upload, values)

    async def find_upload(self, sha256: str) -> str | None:
        """The URL a file with this content hash was uploaded to, if any."""
        return await self._read(_find_upload, sha256)

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
        values = {
            "id": batch_id,
            "spec": dict(spec),
            "out_dir": out_dir,
            "budget_usd": budget_usd,
            "total_jobs": total_jobs,
            "created_at": utcnow(),
        }
        return await self._write(_create_batch, values)

    async def get_batch(self, batch_id: str) -> BatchRecord | None:
        return await self._read(rows.batch_row, batch_id)

    async def list_batches(self, limit: int = 20) -> list[BatchRecord]:
        """The most recent batches, newest first."""
        query = select(batches).order_by(batches.c.created_at.desc(), batches.c.id.desc())
        return await self._read(_list, query.limit(limit), rows.batch_record)


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError.field("name", "a LoRA needs a name")
    if len(name) > 200:
        raise ValidationError.field("name", "too long", allowed="at most 200 characters")
    return name


def _insert(conn: Connection, table: Any) -> Any:
    """An INSERT for this backend, with its ON CONFLICT clauses available."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def _add_lora(conn: Connection, values: dict[str, Any], replace: bool) -> LoraRecord:
    stmt = _insert(conn, loras).values(**values)
    if replace:
        stmt = stmt.on_conflict_do_update(index_elements=["name"], set_=values)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=["name"])
    row = conn.execute(stmt.returning(*loras.c)).first()
    if row is None:
        name = values["name"]
        raise ValidationError.field(
            "name",
            f"a LoRA named {name!r} already exists",
            allowed=f"another name, or `falkit lora remove {name}` first",
        )
    return rows.lora_record(row)


def _remove_lora(conn: Connection, name: str) -> bool:
    return conn.execute(delete(loras).where(loras.c.name == name)).rowcount > 0


def _remember_upload(conn: Connection, values: dict[str, Any]) -> None:
    stmt = _insert(conn, uploads).values(**values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["sha256"], set_=values))


def _find_upload(conn: Connection, sha256: str) -> str | None:
    url = conn.execute(select(uploads.c.url).where(uploads.c.sha256 == sha256)).scalar()
    return str(url) if url is not None else None


def _create_batch(conn: Connection, values: dict[str, Any]) -> BatchRecord:
    stmt = _insert(conn, batches).values(**values).on_conflict_do_nothing(index_elements=["id"])
    row = conn.execute(stmt.returning(*batches.c)).first()
    if row is not None:
        return rows.batch_record(row)
    stored = rows.batch_row(conn, values["id"])
    assert stored is not None  # the conflict was with this very row
    return stored


def _list(conn: Connection, query: Any, record: Any) -> list[Any]:
    return [record(row) for row in conn.execute(query)]
