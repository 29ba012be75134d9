"""Inline image previews in terminals that draw images: kitty, iTerm2 (and WezTerm), sixel.

The protocol is taken from the environment the terminal sets (KITTY_WINDOW_ID, TERM,
TERM_PROGRAM, LC_TERMINAL); FALKIT_PREVIEW=kitty|iterm|sixel names it when detection cannot
(over ssh, in tmux), or `off`. Previews are small (at most 512 pixels wide; sixel 384), and
every escape sequence is plain ASCII, so they go to stderr like the progress: stdout keeps the
paths (or JSON) for scripts.
"""

from __future__ import annotations

import base64
import functools
import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from PIL import Image as PILImage

PREVIEW_ENV = "FALKIT_PREVIEW"
PROTOCOLS = ("kitty", "iterm", "sixel")
MAX_SIDE = {"kitty": 512, "iterm": 512, "sixel": 384}
_KITTY_CHUNK = 4096
_SIXEL_TERMS = ("foot", "mlterm", "yaft", "contour", "xterm-sixel")


def detect(env: Mapping[str, str]) -> str | None:
    """The image protocol this terminal speaks, or None."""
    forced = env.get(PREVIEW_ENV, "").strip().lower()
    if forced:
        return forced if forced in PROTOCOLS else None
    term = env.get("TERM", "")
    program = env.get("TERM_PROGRAM", "")
    if env.get("KITTY_WINDOW_ID") or term == "xterm-kitty" or program == "ghostty":
        return "kitty"
    if program in ("iTerm.app", "WezTerm") or env.get("LC_TERMINAL") == "iTerm2":
        return "iterm"
    if "sixel" in term or term.startswith(_SIXEL_TERMS):
        return "sixel"
    return None


def why_not(env: Mapping[str, str]) -> str:
    """Why no preview was drawn, and what to do."""
    forced = env.get(PREVIEW_ENV, "").strip().lower()
    if forced and forced != "off" and forced not in PROTOCOLS:
        return f"{PREVIEW_ENV}={forced} is not one of {', '.join(PROTOCOLS)}, off"
    if forced == "off":
        return f"previews are off ({PREVIEW_ENV}=off)"
    term = env.get("TERM", "") or "unset"
    return (
        f"this terminal (TERM={term}) does not announce kitty, iTerm2 or sixel images; "
        f"set {PREVIEW_ENV}=kitty|iterm|sixel if it draws one, or use `falkit open`"
    )


def write_previews(paths: list[Path], protocol: str, out: TextIO) -> None:
    """Draw each image inline, one under the other."""
    for path in paths:
        out.write(render(path, protocol))
        out.write("\n")
    out.flush()


def render(path: Path, protocol: str) -> str:
    """The escape sequence that draws the image at ``path`` with ``protocol``."""
    image = _thumbnail(path, MAX_SIDE[protocol])
    if protocol == "sixel":
        return sixel(image)
    png = _png(image)
    return kitty(png) if protocol == "kitty" else iterm(png, path.name)


def _thumbnail(path: Path, side: int) -> PILImage.Image:
    from PIL import Image

    with Image.open(path) as img:
        img.draft("RGB", (side, side))
        small = img.convert("RGB")
    small.thumbnail((side, side))
    return small


def _png(image: PILImage.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def kitty(png: bytes) -> str:
    """Kitty graphics protocol: transmit and display PNG data (a=T, f=100) in 4 KiB chunks."""
    data = base64.b64encode(png).decode("ascii")
    chunks = [data[i : i + _KITTY_CHUNK] for i in range(0, len(data), _KITTY_CHUNK)] or [""]
    parts = []
    for index, chunk in enumerate(chunks):
        more = 1 if index < len(chunks) - 1 else 0
        keys = f"a=T,f=100,m={more}" if index == 0 else f"m={more}"
        parts.append(f"\x1b_G{keys};{chunk}\x1b\\")
    return "".join(parts)


def iterm(data: bytes, name: str) -> str:
    """iTerm2 inline image (OSC 1337 File=…, inline=1), also drawn by WezTerm."""
    label = base64.b64encode(name.encode("utf-8")).decode("ascii")
    body = base64.b64encode(data).decode("ascii")
    args = f"name={label};size={len(data)};inline=1;preserveAspectRatio=1"
    return f"\x1b]1337;File={args}:{body}\x07"


def sixel(image: PILImage.Image, colors: int = 255) -> str:
    """DEC sixel: a palette of up to ``colors`` colours, then bands of six pixel rows, each
    band one run-length-encoded line per colour present in it."""
    indexed = image.convert("RGB").quantize(colors=colors)
    width, height = indexed.size
    pixels = indexed.tobytes()
    palette = indexed.getpalette() or []
    used = len(palette) // 3
    out = [f'\x1bPq"1;1;{width};{height}']
    for index in range(used):
        red, green, blue = (round(c * 100 / 255) for c in palette[3 * index : 3 * index + 3])
        out.append(f"#{index};2;{red};{green};{blue}")
    for top in range(0, height, 6):
        rows = [pixels[(top + dy) * width : (top + dy + 1) * width] for dy in range(6)]
        out.append(_sixel_band([row for row in rows if row], width))
    out.append("\x1b\\")
    return "".join(out)


_OFFSET = bytes((value + 63) % 256 for value in range(256))  # sixel bits -> '?'..'~'
_RUN = re.compile(rb"(.)\1{3,}", re.DOTALL)


@functools.cache
def _mask(color: int, dy: int) -> bytes:
    """A translation table: ``color`` becomes its bit for row ``dy`` of a band, others 0."""
    table = bytearray(256)
    table[color] = 1 << dy
    return bytes(table)


def _sixel_band(rows: list[bytes], width: int) -> str:
    """One band (up to six rows of palette indexes) as sixel data, ending with '-'."""
    lines = []
    for color in sorted(set(b"".join(rows))):
        bits = 0
        for dy, row in enumerate(rows):
            bits |= int.from_bytes(row.translate(_mask(color, dy)), "big")
        data = bits.to_bytes(width, "big").translate(_OFFSET)
        runs = _RUN.sub(lambda m: b"!%d%s" % (len(m[0]), m[1]), data)
        lines.append(f"#{color}" + runs.decode("ascii"))
    return "$".join(lines) + "-"
