"""What a batch leaves in its folder: the images, a manifest, and a contact sheet.

```
<batch folder>/
  images/0007-a-red-fox-s3.jpg     one file per output image, named by batch index, prompt, seed
  thumbs/0007-a-red-fox-s3.jpg     its thumbnail (made as the job completes)
  manifest.jsonl, manifest.csv     one row per job: input line, parameters, seed, paths, sha256,
                                   cost, status, error (paths relative to the folder)
  contact_sheet.png                thumbnails in a grid, labelled with the parameters that vary
  index.html                       every image, linked relatively and labelled, for a browser
```

Images are copies of the library's files (which stay where every falkit image lives), placed
atomically; everything here can be rebuilt from the library at any time.
"""

from __future__ import annotations

import contextlib
import csv
import html
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

from falkit.service.downloads import slug

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from falkit.store import ImageRecord, JobRecord

THUMB = 256
LABEL_HEIGHT = 34
MAX_SHEET_CELLS = 2000
CSV_COLUMNS = (
    "index", "line", "job_id", "status", "model", "prompt", "seed", "image_size",
    "guidance_scale", "num_inference_steps", "loras", "label", "paths", "sha256",
    "cost_usd", "estimated_cost_usd", "error", "parameters",
)  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One job of a batch as the manifest and the contact sheet show it."""

    index: int
    line: int
    label: str
    job: JobRecord
    paths: tuple[str, ...]  # relative to the batch folder

    def to_json(self) -> dict[str, Any]:
        job = self.job
        return {
            "index": self.index,
            "line": self.line,
            "job_id": job.id,
            "request_id": job.request_id,
            "status": job.status,
            "model": job.model,
            "endpoint_id": job.endpoint_id,
            "prompt": job.prompt,
            "seed": job.seed,
            "label": self.label,
            "parameters": job.arguments,
            "images": [
                {"path": path, "sha256": img.sha256, "width": img.width, "height": img.height}
                for path, img in zip(self.paths, job.images, strict=False)
            ],
            "cost_usd": job.cost_usd,
            "estimated_cost_usd": job.estimated_cost,
            "error": job.error,
        }

    def csv_row(self) -> dict[str, Any]:
        args = self.job.arguments
        record = self.to_json()
        return {
            **{k: record[k] for k in ("index", "line", "job_id", "status", "model", "prompt")},
            "seed": self.job.seed,
            "image_size": _cell(args.get("image_size")),
            "guidance_scale": args.get("guidance_scale"),
            "num_inference_steps": args.get("num_inference_steps"),
            "loras": _cell(args.get("loras")),
            "label": self.label,
            "paths": ";".join(self.paths),
            "sha256": ";".join(img.sha256 for img in self.job.images),
            "cost_usd": self.job.cost_usd,
            "estimated_cost_usd": self.job.estimated_cost,
            "error": self.job.error,
            "parameters": json.dumps(args, sort_keys=True),
        }


def _cell(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


# ---- images ----


def image_name(job: JobRecord, image: ImageRecord, width: int) -> str:
    """``0007-a-red-fox-s3.jpg`` (``-1``, ``-2`` … for a job's further images)."""
    index = job.batch_index if job.batch_index is not None else 0
    extra = f"-{image.index}" if image.index else ""
    seed = f"-s{job.seed}" if job.seed is not None else ""
    suffix = Path(image.local_path).suffix
    return f"{index:0{width}d}-{slug(job.prompt or job.model, 32)}{seed}{extra}{suffix}"


def place_images(job: JobRecord, folder: Path, width: int) -> tuple[str, ...]:
    """Copy a completed job's images into ``folder/images`` and make their thumbnails (each
    once); the images' paths relative to the folder."""
    target_dir = folder / "images"
    target_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for image in job.images:
        target = target_dir / image_name(job, image, width)
        source = Path(image.local_path)
        if not target.exists() or target.stat().st_size != image.size_bytes:
            if not source.exists():
                continue  # deleted from the library since: nothing to show
            _copy(source, target)
        thumb = thumb_path(folder, f"images/{target.name}")
        if not thumb.exists():
            _make_thumb(target, thumb)
        out.append(f"images/{target.name}")
    return tuple(out)


def thumb_path(folder: Path, relative: str) -> Path:
    """Where the thumbnail of an image of the batch lives (``thumbs/<name>.jpg``)."""
    return folder / "thumbs" / (Path(relative).stem + ".jpg")


def _make_thumb(source: Path, target: Path) -> None:
    """A small JPEG of an image, for the contact sheet and the HTML page."""
    from PIL import Image

    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as img:
        img.draft("RGB", (THUMB, THUMB))
        thumb = img.convert("RGB")
    thumb.thumbnail((THUMB - 8, THUMB - 8))
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".thumb-", suffix=".part")
    os.close(fd)
    try:
        thumb.save(tmp, "JPEG", quality=85)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _copy(source: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".copy-", suffix=".part")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- manifest ----


def write_manifest(folder: Path, rows: list[Row]) -> tuple[Path, Path]:
    """manifest.jsonl and manifest.csv, each written atomically."""
    jsonl = "".join(json.dumps(row.to_json(), default=str) + "\n" for row in rows)
    jsonl_path = _write_text(folder / "manifest.jsonl", jsonl)
    csv_path = folder / "manifest.csv"
    with _atomic(csv_path) as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row.csv_row())
    return jsonl_path, csv_path


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[TextIO]:
    """A text file written to a temporary name and moved into place on success."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".write-", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_text(path: Path, text: str) -> Path:
    with _atomic(path) as handle:
        handle.write(text)
    return path


# ---- contact sheet ----


def write_html(folder: Path, rows: list[Row], title: str) -> Path:
    """index.html: every image linked relatively, captioned with its varying parameters."""
    figures = []
    for row in rows:
        caption = html.escape(row.label or f"#{row.index}")
        if not row.paths:
            reason = html.escape(row.job.error or row.job.status)
            figures.append(
                f'<figure class="missing"><div>{html.escape(row.job.status)}</div>'
                f"<figcaption>{caption}<br><small>{reason}</small></figcaption></figure>"
            )
        for path in row.paths:
            href = html.escape(quote(path))
            thumb = html.escape(quote(f"thumbs/{Path(path).stem}.jpg"))
            figures.append(
                f'<figure><a href="{href}"><img src="{thumb}" loading="lazy" alt="{caption}"></a>'
                f"<figcaption>{caption}</figcaption></figure>"
            )
    page = _PAGE.format(title=html.escape(title), figures="\n".join(figures))
    return _write_text(folder / "index.html", page)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 1em; background: #fafafa; }}
main {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 12px; }}
figure {{ margin: 0; background: #fff; padding: 6px; border: 1px solid #ddd; }}
img {{ width: 100%; height: auto; display: block; }}
.missing div {{ height: 160px; display: grid; place-items: center; background: #eee; }}
figcaption {{ margin-top: 4px; word-break: break-word; }}
</style></head>
<body><h1>{title}</h1><main>
{figures}
</main></body></html>
"""


def write_sheet(folder: Path, rows: list[Row], columns: int) -> Path:
    """contact_sheet.png: one cell per image (or failed job), labelled, in a grid."""
    from PIL import Image

    cells = [(row, path) for row in rows for path in (row.paths or (None,))][:MAX_SHEET_CELLS]
    columns = max(1, min(columns, len(cells) or 1))
    lines = math.ceil(len(cells) / columns) or 1
    cell_h = THUMB + LABEL_HEIGHT
    sheet = Image.new("RGB", (columns * THUMB, lines * cell_h), "white")
    font = _font()
    for n, (row, path) in enumerate(cells):
        x, y = (n % columns) * THUMB, (n // columns) * cell_h
        _paste_cell(sheet, (x, y), thumb_path(folder, path) if path else None, row, font)
    target = folder / "contact_sheet.png"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write-", suffix=".png")
    os.close(fd)
    try:
        sheet.save(tmp, "PNG", compress_level=1)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _paste_cell(
    sheet: PILImage.Image, at: tuple[int, int], path: Path | None, row: Row, font: Any
) -> None:
    from PIL import Image, ImageDraw

    draw = ImageDraw.Draw(sheet)
    x, y = at
    if path is not None and path.exists():
        with Image.open(path) as thumb:
            thumb.load()
            sheet.paste(thumb, (x + (THUMB - thumb.width) // 2, y + (THUMB - thumb.height) // 2))
    else:
        draw.rectangle((x + 4, y + 4, x + THUMB - 5, y + THUMB - 5), fill=(235, 235, 235))
        draw.text((x + 12, y + THUMB // 2 - 8), row.job.status, fill=(160, 30, 30), font=font)
    label = row.label or f"#{row.index}"
    for n, text in enumerate(_wrap(draw, label, font, THUMB - 8)[:2]):
        draw.text((x + 4, y + THUMB + 2 + n * 15), text, fill=(20, 20, 20), font=font)


def _font() -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=12)
    except (OSError, TypeError):  # Pillow built without FreeType
        return ImageFont.load_default()


def _wrap(draw: Any, text: str, font: Any, width: int) -> list[str]:
    """Greedy wrap on spaces; a word too long for a line is cut."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        trial = f"{current} {word}".strip()
        if draw.textlength(trial, font=font) <= width:
            current = trial
            continue
        if current:
            lines.append(current)
        current = word
        while draw.textlength(current, font=font) > width and len(current) > 1:
            current = current[:-1]
    if current:
        lines.append(current)
    return lines
