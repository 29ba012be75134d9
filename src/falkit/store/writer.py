"""Group commit: queued write operations applied in batches, one transaction per batch.

Thousands of jobs each writing a few journal rows would otherwise queue one by one on SQLite's
write lock, paying a transaction (and an fsync) each. Instead every write of a store is an
``Op``: a small sync function over a SQLAlchemy Core ``Connection`` plus the future its caller
awaits. One writer (a thread for SQLite, a task for PostgreSQL) takes whatever has queued up
while the previous batch ran, applies it in one transaction, then resolves every future.

The contract an operation function keeps: it either succeeds, or raises a ``FalkitError``
(not found, not pending, …) before it has changed anything. Such an answer is that caller's
outcome and the batch goes on. Any other exception (a constraint, a lost connection, a bug)
rolls the batch back, and its operations are re-run one transaction each, so only the failing
caller sees the failure; a lost connection is the exception (see ``run_batch``). Operations
are applied in the order they were queued.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from falkit.errors import FalkitError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from falkit.store.stats import Counters

# How much one transaction may hold: an operation weighs 1, a bulk insert its row count. This
# bounds how long a batch holds SQLite's write lock, which other processes wait for.
MAX_BATCH = 500

Outcome = tuple[bool, Any]  # (True, result) or (False, exception)
IDLE_IN_TRANSACTION = "idle-in-transaction timeout"
"""PostgreSQL's words when it ends a session left idle inside a transaction."""


class Op:
    """One queued write: what to run, and where its caller waits for the outcome."""

    __slots__ = ("args", "fn", "future", "loop", "weight")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        future: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
        weight: int = 1,
    ) -> None:
        self.fn = fn
        self.args = args
        self.future = future
        self.loop = loop
        self.weight = weight


def new_op(fn: Callable[..., Any], args: tuple[Any, ...], weight: int) -> Op:
    """An operation for the running event loop's caller."""
    loop = asyncio.get_running_loop()
    return Op(fn, args, loop.create_future(), loop, weight)


def fits(batch_weight: int, op: Op) -> bool:
    """Whether ``op`` may join a batch of this weight (a first op always may)."""
    return batch_weight == 0 or batch_weight + op.weight <= MAX_BATCH


def run_batch(
    conn: Connection, ops: Sequence[Op], counters: Counters, *, again: bool = True
) -> list[Outcome]:
    """Apply ``ops`` in one transaction; on failure, each in its own. One outcome per op.

    A connection lost before the transaction could have committed (its COMMIT never sent, or
    the server ending a session left idle in it) runs the batch once more on a new one
    (SQLAlchemy reconnects on the next use). A COMMIT lost on the way may have been applied:
    each op fails then, and nothing is run again.
    """
    try:
        transaction = conn.begin()
    except Exception as exc:  # e.g. the write lock stayed busy: nothing ran, all share it
        _rollback(conn)
        if again and (conn.invalidated or _lost(exc)):
            return run_batch(conn, ops, counters, again=False)
        return [(False, exc)] * len(ops)
    committing = False
    try:
        outcomes: list[Outcome] = []
        for op in ops:
            try:
                outcomes.append((True, op.fn(conn, *op.args)))
            except FalkitError as exc:  # an answer, not a failure: nothing was written
                outcomes.append((False, exc))
        committing = True
        transaction.commit()
    except Exception as exc:
        _rollback(conn)
        if conn.invalidated or _lost(exc):
            if again and (not committing or rolled_back_by_server(exc)):
                return run_batch(conn, ops, counters, again=False)
            return [(False, exc)] * len(ops)
        if len(ops) == 1:
            return [(False, exc)]
        return [run_batch(conn, [op], counters, again=again)[0] for op in ops]
    counters.committed(len(ops))
    return outcomes


def _lost(exc: BaseException) -> bool:
    return bool(getattr(exc, "connection_invalidated", False))


def rolled_back_by_server(exc: BaseException) -> bool:
    """Whether PostgreSQL said it ended the session for sitting idle inside its transaction
    (``idle_in_transaction_session_timeout``): that transaction certainly did not commit."""
    cause: BaseException | None = exc
    for _ in range(4):  # SQLAlchemy's error, the adapted one, the driver's
        if cause is None:
            break
        if IDLE_IN_TRANSACTION in str(cause):
            return True
        cause = getattr(cause, "orig", None) or cause.__cause__
    return False


def _rollback(conn: Connection) -> None:
    with contextlib.suppress(Exception):  # a dead connection: it is replaced afterwards
        conn.rollback()


def settle(ops: Sequence[Op], outcomes: Sequence[Outcome]) -> None:
    """Resolve each op's future on its own loop (from any thread): one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Op, Outcome]]] = defaultdict(list)
    for op, outcome in zip(ops, outcomes, strict=True):
        by_loop[op.loop].append((op, outcome))
    for loop, pairs in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody is waiting
            loop.call_soon_threadsafe(resolve, pairs)


def resolve(pairs: Sequence[tuple[Op, Outcome]]) -> None:
    """Hand each outcome to its waiting caller (a caller that gave up is skipped)."""
    for op, (ok, value) in pairs:
        if op.future.done():
            continue
        if ok:
            op.future.set_result(value)
        else:
            op.future.set_exception(value)
