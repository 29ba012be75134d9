"""How much a store asked of its database: statements sent and transactions committed.

A benchmark divides these by the jobs it ran ("SQL statements per job"); tests assert group
commit by comparing transactions with calls. Counting is one locked integer add per statement
(a ``before_cursor_execute`` listener), cheap next to the statement itself.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

_DATA_VERBS = ("SELECT", "INSERT", "UPDATE", "DELETE")


@dataclass(frozen=True)
class StoreStats:
    """A snapshot of a store's counters; subtract two to measure what happened in between."""

    statements: int = 0  # SELECT/INSERT/UPDATE/DELETE sent (an executemany counts once)
    transactions: int = 0  # write transactions committed
    operations: int = 0  # write operations applied (calls of write methods, chunks of bulk ones)

    def __sub__(self, other: StoreStats) -> StoreStats:
        return StoreStats(
            self.statements - other.statements,
            self.transactions - other.transactions,
            self.operations - other.operations,
        )


class Counters:
    """The live counters, bumped from the writer thread, reader threads and the event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._statements = 0
        self._transactions = 0
        self._operations = 0

    def snapshot(self) -> StoreStats:
        with self._lock:
            return StoreStats(self._statements, self._transactions, self._operations)

    def committed(self, operations: int) -> None:
        with self._lock:
            self._transactions += 1
            self._operations += operations

    def on_statement(self, statement: str) -> None:
        if statement.lstrip()[:6].upper() in _DATA_VERBS:
            with self._lock:
                self._statements += 1

    def listen(self, sync_engine: Any) -> None:
        """Count the data statements every connection of this engine sends."""
        from sqlalchemy import event

        def before_cursor_execute(
            _conn: Any, _cursor: Any, statement: str, *_rest: Any, **_kw: Any
        ) -> None:
            self.on_statement(statement)

        event.listen(sync_engine, "before_cursor_execute", before_cursor_execute)
