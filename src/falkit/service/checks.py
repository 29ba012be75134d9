"""Checks on the local machine that must pass before a job is journaled or sent.

A paid job whose images cannot be written where the user asked is money lost: the folder is
checked first, so a mistyped ``--out`` costs nothing.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from falkit.errors import ValidationError


def check_out_dir(out_dir: Path | str | None, field: str = "out") -> Path | None:
    """The folder images will be copied to, if it is (or can become) a writable folder.

    Nothing is created: the folder itself, or the nearest folder above it that exists, must be
    a directory that accepts a new file (tried with an unnamed temporary file, which also
    catches read-only mounts and root's pseudo file systems, where permission bits say yes).
    """
    if out_dir is None:
        return None
    path = Path(out_dir).expanduser()
    existing, mode = _nearest_existing(path, field)
    if not stat.S_ISDIR(mode):
        what = "is not a folder" if existing == path else f"is under {existing}, not a folder"
        raise ValidationError.field(field, f"{path} {what}", "a folder (it is created if missing)")
    reason = _write_problem(existing)
    if reason is not None:
        raise ValidationError.field(
            field, f"cannot write to {existing} ({reason})", "a folder you can write to"
        )
    return path


def _nearest_existing(path: Path, field: str) -> tuple[Path, int]:
    """``path`` or the nearest folder above it that exists, and its mode (links followed)."""
    current = path
    while True:
        try:
            return current, current.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            if current.is_symlink():
                raise ValidationError.field(
                    field, f"{current} is a broken symbolic link", "a folder"
                ) from None
            if current.parent == current:
                raise ValidationError.field(field, f"{path} has no existing parent") from None
            current = current.parent
        except OSError as exc:  # a symlink loop, a name too long, an unreadable parent
            raise ValidationError.field(
                field, f"{current} cannot be used ({exc.strerror or exc})", "a folder"
            ) from None


def _write_problem(folder: Path) -> str | None:
    """Why a new file cannot be created in ``folder``, or None."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return "permission denied"
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
