"""Opening the store: migrations from empty, a schema equal to the models, clear failures."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, column, insert, inspect, table, text

from falkit.errors import StoreError
from falkit.store import JobStore
from falkit.store.db import mask_url
from falkit.store.models import UTCDateTime, metadata
from falkit.store.schema import HEAD_REVISION, VERSION_TABLE, alembic_config, upgrade
from tests.processes import run
from tests.store.helpers import new_job, on_connection

TABLES = {"jobs", "images", "loras", "uploads", "batches"}


def _head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def _version(store: JobStore) -> list[str]:
    query = text(f"SELECT version_num FROM {VERSION_TABLE}")
    return await on_connection(store, lambda conn: [row[0] for row in conn.execute(query)])


async def _tables(store: JobStore) -> set[str]:
    return await on_connection(store, lambda conn: set(inspect(conn).get_table_names()))


async def test_migrates_from_empty_and_reopens_idempotently(empty_url: str) -> None:
    store = await JobStore.open(empty_url)
    try:
        assert await _tables(store) == TABLES | {VERSION_TABLE}
        assert await _version(store) == [_head()]
        job = await new_job(store)
    finally:
        await store.close()
    async with await JobStore.open(empty_url) as again:
        assert await _version(again) == [_head()]
        kept = await again.get_job(job.id)
        assert kept is not None
        assert kept.prompt == "a lighthouse at dusk"


async def test_schema_after_migrations_matches_the_models(empty_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    def diff(conn: Any) -> list[Any]:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
        )
        return list(compare_metadata(context, metadata))

    async with await JobStore.open(empty_url) as store:
        assert await on_connection(store, diff) == []


def test_migrations_form_one_append_only_chain() -> None:
    """One head, one base, each revision naming the one before it (no branches)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    revisions = list(script.walk_revisions())
    assert len(script.get_heads()) == 1
    assert [r.down_revision for r in revisions][-1] is None
    for newer, older in itertools.pairwise(revisions):
        assert newer.down_revision == older.revision


async def test_backend_settings(store: JobStore, backend: str) -> None:
    """SQLite: WAL, a busy timeout, foreign keys; PostgreSQL: real timestamptz columns."""
    if backend == "sqlite":
        pragmas = ("journal_mode", "busy_timeout", "foreign_keys")

        def read(conn: Any) -> list[Any]:
            return [conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in pragmas]

        for write in (False, True):  # a reader's connection and the writer's
            assert await on_connection(store, read, write=write) == ["wal", 30_000, 1]
    else:
        query = text(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'jobs' AND column_name = 'created_at'"
        )
        kind = await on_connection(store, lambda conn: conn.execute(query).scalar())
        assert kind == "timestamp with time zone"


async def test_open_creates_the_sqlite_folder_or_uses_the_server(
    backend: str, db_url: str, tmp_path: Path
) -> None:
    if backend == "sqlite":
        assert not (tmp_path / "lib").exists()
    async with await JobStore.open(db_url) as store:
        await new_job(store)
        assert store.dialect == backend
    if backend == "sqlite":
        assert (tmp_path / "lib" / "falkit.db").is_file()


def _unopenable(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("a file where a folder should be")
        return f"sqlite+aiosqlite:///{blocker / 'falkit.db'}"
    return "postgresql+asyncpg://falkit:s3cr3t-pw@127.0.0.1:1/falkit"


async def test_open_failure_names_the_fix_and_hides_the_password(
    backend: str, tmp_path: Path
) -> None:
    url = _unopenable(backend, tmp_path)
    with pytest.raises(StoreError) as caught:
        await JobStore.open(url)
    message = str(caught.value)
    assert message.startswith("cannot open database at ")
    assert "check FALKIT_DATABASE_URL" in message
    assert "s3cr3t-pw" not in message


@pytest.mark.parametrize(
    "url",
    ["mysql://u:p@h/db", "not a url at all", "mongodb://u:pw@h/db"],
)
def test_unsupported_urls_are_refused_before_connecting(url: str) -> None:
    with pytest.raises(StoreError, match="FALKIT_DATABASE_URL") as caught:
        asyncio.run(JobStore.open(url))
    assert ":p@" not in str(caught.value)
    assert ":pw@" not in str(caught.value)


def test_mask_url_hides_passwords_only() -> None:
    assert mask_url("postgresql+asyncpg://me:p@ss:w0rd@db:5432/x") == (
        "postgresql+asyncpg://me:***@db:5432/x"
    )
    assert mask_url("postgresql://me@db/x") == "postgresql://me@db/x"
    assert mask_url("sqlite+aiosqlite:////home/me/falkit.db") == (
        "sqlite+aiosqlite:////home/me/falkit.db"
    )


async def test_repr_names_the_database_but_never_the_password(backend: str, db_url: str) -> None:
    # The local server trusts loopback connections, so a password in the URL is accepted.
    url = db_url.replace("@127.0.0.1", ":unused-secret@127.0.0.1")
    async with await JobStore.open(url) as store:
        shown = f"{store!r} {store.url}"
    assert "unused-secret" not in shown
    assert ("falkit.db" if backend == "sqlite" else ":***@127.0.0.1") in shown


def test_importing_the_store_loads_no_database_code() -> None:
    """Front ends name the records cheaply; SQLAlchemy loads only when a store opens."""
    code = (
        "import sys, falkit.store as s; s.JobRecord; s.NewImage; "
        "print(any(m.startswith(('sqlalchemy', 'alembic', 'aiosqlite', 'asyncpg')) "
        "for m in sys.modules))"
    )
    out = run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_head_revision_constant_is_alembics_head() -> None:
    """The fast open compares with HEAD_REVISION: it must name the newest migration."""
    assert _head() == HEAD_REVISION


def test_opening_an_up_to_date_sqlite_store_imports_no_orm_or_alembic(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'falkit.db'}"
    asyncio.run(_open_and_close(url))  # creates and migrates the file
    code = """
import asyncio, sys
from falkit.store import JobStore

async def main(url):
    async with await JobStore.open(url) as store:
        job = await store.create_job(
            kind="image", model="m", endpoint_id="e", arguments={}, estimated_cost=None
        )
        await store.mark_submitting(job.id, submitter="child")
        assert (await store.get_job(job.id)).status == "submitting"

asyncio.run(main(sys.argv[1]))
heavy = ("alembic", "sqlalchemy.orm", "sqlalchemy.ext.asyncio", "aiosqlite", "mako")
print(sorted(name for name in heavy if name in sys.modules))
"""
    out = run([sys.executable, "-c", code, url], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


async def _open_and_close(url: str) -> None:
    store = await JobStore.open(url)
    await store.close()


async def test_migrates_from_revision_0001_to_head(empty_url: str, backend: str) -> None:
    """A library written by falkit 0.1 (revision 0001) is upgraded on open; its jobs stay."""
    await _run_on_new_database(empty_url, backend, _at_0001_with_a_job)
    async with await JobStore.open(empty_url) as store:
        assert await _version(store) == [HEAD_REVISION]
        old = await store.get_job("j_old")
        assert old is not None
        assert (old.prompt, old.status, old.submitter) == ("from 0001", "pending", None)
        claimed = await store.mark_submitting("j_old", submitter="upgraded")
        assert claimed.submitter == "upgraded"


def _at_0001_with_a_job(conn: Any) -> None:
    upgrade(conn, "0001")
    assert "submitter" not in {c["name"] for c in inspect(conn).get_columns("jobs")}
    old_jobs = table(
        "jobs",
        *(column(name) for name in ("id", "kind", "model", "endpoint_id", "prompt", "status")),
        column("arguments", JSON()),
        column("created_at", UTCDateTime()),
        column("updated_at", UTCDateTime()),
    )
    now = dt.datetime.now(dt.UTC)
    conn.execute(
        insert(old_jobs).values(
            id="j_old",
            kind="image",
            model="flux-schnell",
            endpoint_id="fal-ai/flux/schnell",
            prompt="from 0001",
            status="pending",
            arguments={"prompt": "from 0001"},
            created_at=now,
            updated_at=now,
        )
    )


async def _run_on_new_database(url: str, backend: str, fn: Callable[[Any], None]) -> None:
    """Run ``fn`` in a transaction on a database no store has opened (Alembic, raw rows)."""
    if backend == "sqlite":
        from sqlalchemy import create_engine

        path = Path(url.split(":///", 1)[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite:///{path}")
        with engine.begin() as conn:
            fn(conn)
        engine.dispose()
        return
    from sqlalchemy.ext.asyncio import create_async_engine

    async_engine = create_async_engine(url)
    async with async_engine.begin() as conn:
        await conn.run_sync(fn)
    await async_engine.dispose()


async def test_an_in_memory_store_works_on_its_one_connection() -> None:
    async with await JobStore.open("sqlite://") as store:
        job = await new_job(store)
        await store.set_status(job.id, "running")
        assert [j.status for j in await store.list_jobs()] == ["running"]
