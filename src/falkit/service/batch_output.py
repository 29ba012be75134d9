"""What a batch leaves in its folder: the images, a manifest, and a contact sheet.

```
<batch folder>/
  images/0007-g4.5-a-red-fox-s3.jpg  one file per output image, named by batch index, the swept
                                   parameters that vary (model, size, guidance …), prompt, seed
  thumbs/0007-g4.5-a-red-fox-s3.jpg  its thumbnail (made as the job completes)
  manifest.jsonl, manifest.csv     one row per job: input line, parameters, seed, paths, sha256,
                                   cost, status, error (paths relative to the folder)
  contact_sheet.png                thumbnails in a grid, labelled with the parameters that vary:
  contact_sheet-002.png …          400 cells a page, each page built from thumbs/ and released
                                   before the next (memory stays flat whatever the batch size)
  index.html, index-002.html …     every image, linked relatively and labelled, for a browser;
                                   the same 400 cells a page as the sheet; every page links all
                                   pages of both
```

Images are copies of the library's files (which stay where every falkit image lives), placed
atomically; everything here can be rebuilt from the library at any time. A rerun that writes
fewer pages removes the pages left over from the earlier run."""

from __future__ import annotations

import contextlib
import csv
import html
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

from falkit.service.downloads import slug, temp_file

if TYPE_CHECKING:
    from PIL import Image as PILImage
    from PIL import ImageDraw as PILImageDraw

    from falkit.store import ImageRecord, JobRecord

THUMB = 256
LABEL_HEIGHT = 34
CELLS_PER_PAGE = 400  # per contact sheet page and per HTML page
SHEET_STEM = "contact_sheet"
HTML_STEM = "index"
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


def image_name(
    job: JobRecord, image: ImageRecord, width: int, varying: tuple[str, ...] = ()
) -> str:
    """``0007-flux-dev-g4.5-a-red-fox-s3.jpg``: batch index, the parameters that vary across
    the batch (``varying``: model, size, guidance, steps, LoRAs …), prompt and seed (``-1``,
    ``-2`` … for a job's further images), so two jobs of a sweep never look alike."""
    index = job.batch_index if job.batch_index is not None else 0
    extra = f"-{image.index}" if image.index else ""
    seed = f"-s{job.seed}" if job.seed is not None else ""
    swept = "".join(f"-{tag}" for tag in _swept_tags(job, varying))
    suffix = Path(image.local_path).suffix
    stem = slug(job.prompt or job.model, 32)
    return f"{index:0{width}d}{swept}-{stem}{seed}{extra}{suffix}"


_TAG_PREFIX = {"guidance_scale": "g", "num_inference_steps": "steps", "num_images": "n"}


def _swept_tags(job: JobRecord, varying: tuple[str, ...]) -> list[str]:
    """One short, file-name-safe tag per varying parameter (prompt and seed are named anyway)."""
    fields = {"model": job.model, **job.arguments}
    tags = []
    for key in varying:
        if key in ("prompt", "seed"):
            continue
        value = fields.get(key)
        if key == "loras" and isinstance(value, list):
            text = "+".join(_lora_tag(item) for item in value) or "nolora"
        elif isinstance(value, dict) and {"width", "height"} <= set(value):
            text = f"{value['width']}x{value['height']}"
        elif isinstance(value, float):
            text = f"{value:g}"
        else:
            text = "default" if value is None else str(value)
        tags.append(_safe(_TAG_PREFIX.get(key, "") + text)[:24])
    return tags


def _lora_tag(item: Any) -> str:
    if not isinstance(item, dict):
        return "lora"
    name = Path(str(item.get("path", "")).split("?")[0]).stem[:16] or "lora"
    return f"{name}-{float(item.get('scale', 1.0)):g}"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+]+", "-", text).strip("-.") or "x"


def place_images(
    job: JobRecord, folder: Path, width: int, varying: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """Copy a completed job's images into ``folder/images`` and make their thumbnails (each
    once); the images' paths relative to the folder."""
    target_dir = folder / "images"
    target_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for image in job.images:
        target = target_dir / image_name(job, image, width, varying)
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
    fd, tmp = temp_file(target.parent, ".thumb-")
    os.close(fd)
    try:
        thumb.save(tmp, "JPEG", quality=85)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _copy(source: Path, target: Path) -> None:
    fd, tmp = temp_file(target.parent, ".copy-")
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
    fd, tmp = temp_file(path.parent, ".write-")
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


# ---- contact sheet and HTML pages ----
#
# Both are paged by the same rule, so they agree without asking each other: the batch's cells
# (one per image, one per job without images) in order, CELLS_PER_PAGE to a page. Page 1 is
# contact_sheet.png / index.html; page k is contact_sheet-00k.png / index-00k.html and holds
# the same cells. A page of the sheet keeps each cell in the column it has in the whole grid,
# so the sweep's columns line up on every page even when the grid's width does not divide
# CELLS_PER_PAGE (a grid line then continues at the top of the next page).

Cell = tuple[Row, str | None]  # a job, and one of its images (None: a job without images)


def page_name(stem: str, number: int, suffix: str) -> str:
    """``contact_sheet.png`` for page 1, ``contact_sheet-002.png`` for page 2, …"""
    return f"{stem}{suffix}" if number == 1 else f"{stem}-{number:03d}{suffix}"


def sheet_pages(folder: Path) -> list[Path]:
    """The contact sheet's pages in the folder, in order (page 1 is ``contact_sheet.png``)."""
    return _pages_on_disk(folder, SHEET_STEM, ".png")


def html_pages(folder: Path) -> list[Path]:
    """The HTML pages in the folder, in order (page 1 is ``index.html``)."""
    return _pages_on_disk(folder, HTML_STEM, ".html")


def _cells(rows: list[Row]) -> list[Cell]:
    return [(row, path) for row in rows for path in (row.paths or (None,))]


def _page_ranges(cells: int) -> list[range]:
    """The cells of each page: at least one page, even for an empty batch."""
    starts = range(0, cells, CELLS_PER_PAGE)
    return [range(s, min(s + CELLS_PER_PAGE, cells)) for s in starts] or [range(0)]


def _pages_on_disk(folder: Path, stem: str, suffix: str) -> list[Path]:
    found = _numbered_pages(folder, stem, suffix)
    return [found[n] for n in sorted(found)]


def _numbered_pages(folder: Path, stem: str, suffix: str) -> dict[int, Path]:
    found: dict[int, Path] = {}
    for path in folder.glob(f"{stem}*{suffix}"):
        number = _page_number(path.name, stem, suffix)
        if number is not None:
            found[number] = path
    return found


def _page_number(name: str, stem: str, suffix: str) -> int | None:
    """The page a file name is (in the form page_name writes), else None."""
    if name == f"{stem}{suffix}":
        return 1
    middle = name.removeprefix(f"{stem}-").removesuffix(suffix)
    if middle.isdigit() and middle.isascii() and int(middle) >= 2:
        number = int(middle)
        return number if page_name(stem, number, suffix) == name else None
    return None


def _remove_stale(folder: Path, stem: str, suffix: str, pages: int) -> None:
    """Pages beyond the last one written (left by an earlier, larger run of the batch)."""
    for number, path in _numbered_pages(folder, stem, suffix).items():
        if number > pages:
            path.unlink(missing_ok=True)


def write_html(folder: Path, rows: list[Row], title: str) -> Path:
    """index.html (and index-002.html … past CELLS_PER_PAGE images): every image linked
    relatively and captioned with its varying parameters; every page links all the HTML pages
    and all the contact sheet's pages. Returns index.html."""
    cells = _cells(rows)
    ranges = _page_ranges(len(cells))
    pages = len(ranges)
    first = folder / page_name(HTML_STEM, 1, ".html")
    for number, span in enumerate(ranges, 1):
        figures = "\n".join(_figure(*cells[n]) for n in span)
        shown = f"\n<p>{span.start + 1}–{span.stop} of {len(cells)}</p>" if pages > 1 else ""
        page = _PAGE.format(
            title=html.escape(title), nav=_nav(number, pages), shown=shown, figures=figures
        )
        _write_text(folder / page_name(HTML_STEM, number, ".html"), page)
    _remove_stale(folder, HTML_STEM, ".html", pages)
    return first


def _figure(row: Row, path: str | None) -> str:
    caption = html.escape(row.label or f"#{row.index}")
    if path is None:
        reason = html.escape(row.job.error or row.job.status)
        return (
            f'<figure class="missing"><div>{html.escape(row.job.status)}</div>'
            f"<figcaption>{caption}<br><small>{reason}</small></figcaption></figure>"
        )
    href = html.escape(quote(path))
    thumb = html.escape(quote(f"thumbs/{Path(path).stem}.jpg"))
    return (
        f'<figure><a href="{href}"><img src="{thumb}" loading="lazy" alt="{caption}"></a>'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _nav(current: int, pages: int) -> str:
    """Links to every contact sheet page and, if there are several, every HTML page."""

    def link(kind: str, href: str, text: str, here: bool = False) -> str:
        mark = ' aria-current="page"' if here else ""
        return f'<a class="{kind}"{mark} href="{html.escape(quote(href))}">{text}</a>'

    if pages == 1:
        return f"<nav>{link('sheet', page_name(SHEET_STEM, 1, '.png'), 'Contact sheet')}</nav>"
    sheets = " ".join(
        link("sheet", page_name(SHEET_STEM, n, ".png"), str(n)) for n in range(1, pages + 1)
    )
    indexes = " ".join(
        link("page", page_name(HTML_STEM, n, ".html"), str(n), n == current)
        for n in range(1, pages + 1)
    )
    return f"<nav>Pages: {indexes}</nav>\n<nav>Contact sheet: {sheets}</nav>"


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 1em; background: #fafafa; }}
nav {{ margin: 0 0 .6em; }}
nav a {{ padding: 0 .25em; }}
nav a[aria-current] {{ font-weight: bold; text-decoration: none; color: inherit; }}
main {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 12px; }}
figure {{ margin: 0; background: #fff; padding: 6px; border: 1px solid #ddd; }}
img {{ width: 100%; height: auto; display: block; }}
.missing div {{ height: 160px; display: grid; place-items: center; background: #eee; }}
figcaption {{ margin-top: 4px; word-break: break-word; }}
</style></head>
<body><h1>{title}</h1>
{nav}{shown}
<main>
{figures}
</main></body></html>
"""


def write_sheet(folder: Path, rows: list[Row], columns: int) -> Path:
    """contact_sheet.png (and contact_sheet-002.png … past CELLS_PER_PAGE cells): one labelled
    cell per image (or job without images) in a grid ``columns`` wide, pasted from the
    thumbnails in ``thumbs/``. Each page is saved and released before the next is built, so
    memory does not grow with the batch. Pages left by an earlier, larger run are removed.
    Returns page 1."""
    cells = _cells(rows)
    columns = max(1, min(columns, len(cells) or 1))
    ranges = _page_ranges(len(cells))
    font = _font()
    for number, span in enumerate(ranges, 1):
        target = folder / page_name(SHEET_STEM, number, ".png")
        _write_sheet_page(folder, target, cells, span, columns, font)
    _remove_stale(folder, SHEET_STEM, ".png", len(ranges))
    return folder / page_name(SHEET_STEM, 1, ".png")


def _write_sheet_page(
    folder: Path, target: Path, cells: list[Cell], span: range, columns: int, font: Any
) -> None:
    """One page: the cells of ``span``, each in its column of the whole grid. The page's image
    lives only in this call."""
    from PIL import Image, ImageDraw

    top = span.start // columns
    lines = (span.stop - 1) // columns - top + 1 if span else 1
    cell_h = THUMB + LABEL_HEIGHT
    sheet = Image.new("RGB", (columns * THUMB, lines * cell_h), "white")
    try:
        draw = ImageDraw.Draw(sheet)
        for n in span:
            row, path = cells[n]
            x, y = (n % columns) * THUMB, (n // columns - top) * cell_h
            _paste_cell(sheet, draw, (x, y), thumb_path(folder, path) if path else None, row, font)
        fd, tmp = temp_file(folder, ".write-", ".png")
        os.close(fd)
        try:
            sheet.save(tmp, "PNG", compress_level=1)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    finally:
        sheet.close()


def _paste_cell(
    sheet: PILImage.Image,
    draw: PILImageDraw.ImageDraw,
    at: tuple[int, int],
    path: Path | None,
    row: Row,
    font: Any,
) -> None:
    from PIL import Image

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
