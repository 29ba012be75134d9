"""Tables on stdout: tab-separated full values in a pipe, wrapped columns in a terminal.

When stdout is not a terminal, each row is one line of tab-separated cells with their full
values and no header (as `gh` does), so `falkit jobs list | grep fox` and `cut -f1` work
whatever the width; tabs and line breaks inside a value become spaces. In a terminal, a Rich
table whose cells wrap: no column is dropped and no value is cut with an ellipsis. `--json`
gives every field of every row.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

#: A cell: its full value, or (full value for pipes, shorter form for the terminal).
Cell = str | tuple[str, str]
_BREAKS = re.compile(r"[\t\r\n\v\f]+")


@dataclass(frozen=True)
class Column:
    """A column's title and alignment."""

    title: str
    right: bool = False
    keep: bool = False
    """Keep values whole when the terminal is narrow (short ids, names): others wrap first."""


def is_terminal(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def print_table(columns: Sequence[Column], rows: Sequence[Sequence[Cell]]) -> None:
    """Rows on stdout: a wrapped table in a terminal, tab-separated full values otherwise."""
    if is_terminal():
        _print_rich(columns, rows)
    else:
        write_tsv(sys.stdout, rows)


def write_tsv(out: TextIO, rows: Sequence[Sequence[Cell]]) -> None:
    for row in rows:
        out.write("\t".join(_one_line(_full(cell)) for cell in row) + "\n")
    out.flush()


def _print_rich(columns: Sequence[Column], rows: Sequence[Sequence[Cell]]) -> None:
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True)
    for index, column in enumerate(columns):
        widest = max((len(_shown(row[index])) for row in rows), default=0)
        table.add_column(
            column.title,
            overflow="fold",
            justify="right" if column.right else "left",
            min_width=min(max(widest, len(column.title)), 32) if column.keep else None,
        )
    for row in rows:
        table.add_row(*(escape(_shown(cell)) for cell in row))
    Console(highlight=False).print(table)


def _full(cell: Cell) -> str:
    return cell[0] if isinstance(cell, tuple) else cell


def _shown(cell: Cell) -> str:
    return cell[1] if isinstance(cell, tuple) else cell


def _one_line(text: str) -> str:
    return _BREAKS.sub(" ", text)
