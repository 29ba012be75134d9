"""Opening images with the system viewer: xdg-open, open (macOS), the Windows file association.

FALKIT_VIEWER replaces it with any command (split like a shell line); the image's path is
added as its last argument, once per image. A viewer that is still running after a moment
(one that stays open until its window closes) is left running on its own.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from falkit.errors import FalkitError

VIEWER_ENV = "FALKIT_VIEWER"
SETTLE_SECONDS = 3.0  # how long to wait for a viewer to report a failure
_HINT = f"set {VIEWER_ENV} to a command that opens an image file, e.g. {VIEWER_ENV}=eog"


class ViewerError(FalkitError):
    """The image viewer could not be started or said it failed."""


def viewer_command(env: Mapping[str, str] | None = None) -> list[str]:
    """The viewer's argv (without the image); empty on Windows: the file association."""
    env = os.environ if env is None else env
    custom = env.get(VIEWER_ENV, "").strip()
    if custom:
        return shlex.split(custom)
    if sys.platform == "darwin":
        return ["open"]
    if sys.platform == "win32":
        return []
    return ["xdg-open"]


def open_images(paths: Sequence[Path], env: Mapping[str, str] | None = None) -> None:
    """Open each image with the viewer; ViewerError naming the fix when that fails."""
    missing = [path for path in paths if not path.is_file()]
    if missing:
        raise ViewerError(
            f"{missing[0]} is gone (deleted or moved since the job ran); "
            "`falkit jobs show` lists what was recorded"
        )
    command = viewer_command(env)
    for path in paths:
        if command:
            _launch([*command, str(path)])
        else:
            _open_windows(path)


def _launch(argv: list[str]) -> None:
    import tempfile

    with tempfile.TemporaryFile() as said:  # not a pipe: a viewer left open may write on
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=said,
                start_new_session=True,
            )
        except OSError as exc:
            raise ViewerError(
                f"cannot run the image viewer {argv[0]!r}: {exc.strerror}; {_HINT}"
            ) from None
        try:
            code = proc.wait(timeout=SETTLE_SECONDS)
        except subprocess.TimeoutExpired:
            return  # a viewer that stays open: leave it to the user
        said.seek(0)
        last = said.read().decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
    if code != 0:
        raise ViewerError(f"the image viewer {argv[0]!r} failed (exit {code}: {last[0]}); {_HINT}")


def _open_windows(path: Path) -> None:
    if sys.platform == "win32":
        try:
            os.startfile(path)
        except OSError as exc:
            raise ViewerError(f"Windows cannot open {path}: {exc}; {_HINT}") from None
