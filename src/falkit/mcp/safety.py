"""Which local files a chat assistant may make the server read.

A model acting on text it was shown (a web page, a document) could ask for any path, so reads are
bounded by the folders the user chose when starting the server, checked before anything is
uploaded. (What it may spend is the service's spend cap: falkit.service.budget.)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from falkit.errors import ValidationError


class AllowedDirs:
    """The folders whose files the tools may read (resolved: symlinks and `..` followed first)."""

    def __init__(self, dirs: Iterable[Path | str]) -> None:
        roots: list[Path] = []
        for folder in dirs:
            root = Path(folder).expanduser().resolve()
            if root not in roots:
                roots.append(root)
        self.roots = tuple(roots)

    def describe(self) -> str:
        return ", ".join(str(r) for r in self.roots) or "none"

    def contains(self, path: Path) -> bool:
        """Whether an already resolved path lies inside one of the roots."""
        return any(path == root or path.is_relative_to(root) for root in self.roots)

    def check(self, value: str | Path, *, field: str) -> Path:
        """The resolved path if it is inside an allowed folder, else ValidationError on ``field``.

        A folder is checked entry by entry too, so a symlink inside an allowed folder cannot
        lead out of it.
        """
        resolved = Path(os.path.expanduser(str(value))).resolve()
        if not self.contains(resolved):
            raise self._refusal(str(value), field)
        if resolved.is_dir():
            for entry in sorted(resolved.iterdir()):
                if not self.contains(entry.resolve()):
                    raise self._refusal(f"{value} (its entry {entry.name} leads outside)", field)
        return resolved

    def _refusal(self, shown: str, field: str) -> ValidationError:
        return ValidationError.field(
            field,
            f"{shown} is outside the folders this server may read",
            f"paths under {self.describe()} (the user adds folders with "
            "`falkit mcp --allow-dir DIR`), or an https URL",
        )
