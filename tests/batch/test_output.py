"""The batch folder's contact sheet and HTML pages, written straight from job records.

Real image files go through the real path (`place_images` copies them and makes their
thumbnails); the sheet is then read back pixel by pixel: every image is a flat colour, so each
cell of a page can be told apart from an empty position (white) and a job without images (grey).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import sys
from pathlib import Path

import pytest
from PIL import Image

from falkit.service.batch_output import (
    CELLS_PER_PAGE,
    LABEL_HEIGHT,
    THUMB,
    Row,
    html_pages,
    place_images,
    sheet_pages,
    write_html,
    write_sheet,
)
from falkit.store.records import ImageRecord, JobRecord, JobStatus
from tests.processes import run

CELL_H = THUMB + LABEL_HEIGHT
WHITE = (255, 255, 255)
GREY = (235, 235, 235)
ROOT = Path(__file__).resolve().parents[2]


def colour(index: int) -> tuple[int, int, int]:
    """A flat colour per job, far from white and from the grey of a job without images."""
    return (index * 7 % 200, index * 13 % 200, 40 + index % 3 * 60)


def image_record(index: int, n: int, path: Path, now: dt.datetime) -> ImageRecord:
    return ImageRecord(
        id=f"img_{index}_{n}", job_id=f"job_{index}", index=n, url=f"https://fal.media/{n}.png",
        local_path=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        size_bytes=path.stat().st_size, width=24, height=24, content_type="image/png",
        nsfw=False, created_at=now,
    )  # fmt: skip


def job_record(
    index: int, sources: list[Path], status: JobStatus = "completed", error: str | None = None
) -> JobRecord:
    now = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    images = tuple(image_record(index, n, path, now) for n, path in enumerate(sources))
    return JobRecord(
        id=f"job_{index}", kind="image", model="flux-schnell", endpoint_id="fal-ai/flux/schnell",
        arguments={"prompt": f"a red fox, take {index}", "seed": index % 4 + 1},
        status=status, request_id=f"req_{index}", status_url=None, response_url=None,
        cancel_url=None, seed=index % 4 + 1, estimated_cost=0.003,
        cost_usd=0.003 if status == "completed" else None, billable_units=None, timings=None,
        output=None, error=error, error_type=None, queue_position=None, batch_id="b_test",
        batch_index=index, created_at=now, submitted_at=now, completed_at=now, updated_at=now,
        images=images,
    )  # fmt: skip


def batch_rows(folder: Path, count: int, failed: frozenset[int] = frozenset()) -> list[Row]:
    """``count`` one-image jobs (those in ``failed`` without images), placed in ``folder``."""
    library = folder.parent / "library"
    library.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(count - 1)))
    rows = []
    for index in range(count):
        if index in failed:
            record = job_record(index, [], status="failed", error="runner disconnected")
            paths: tuple[str, ...] = ()
        else:
            source = library / f"{index}.png"
            if not source.exists():
                Image.new("RGB", (24, 24), colour(index)).save(source)
            record = job_record(index, [source])
            paths = place_images(record, folder, width)
        rows.append(Row(index, index + 1, f"seed {record.seed} · take {index}", record, paths))
    return rows


def cell_pixel(page: Image.Image, line: int, column: int) -> tuple[int, int, int]:
    """The colour at the middle of a grid position's picture."""
    pixel = page.getpixel((column * THUMB + THUMB // 2, line * CELL_H + THUMB // 2))
    assert isinstance(pixel, tuple)
    return (pixel[0], pixel[1], pixel[2])


def near(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    return all(abs(x - y) <= 6 for x, y in zip(a, b, strict=True))


def read_pages(folder: Path) -> list[Image.Image]:
    pages = []
    for path in sheet_pages(folder):
        with Image.open(path) as page:
            page.load()
            pages.append(page.convert("RGB"))
    return pages


def filled(page: Image.Image, columns: int) -> int:
    """How many grid positions of a page hold a cell (an image or a grey placeholder)."""
    lines = page.height // CELL_H
    return sum(
        cell_pixel(page, line, column) != WHITE
        for line in range(lines)
        for column in range(columns)
    )


def test_a_small_batch_is_one_page_as_before(tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    rows = batch_rows(folder, 14, failed=frozenset({5}))
    first = write_sheet(folder, rows, 4)
    assert first == folder / "contact_sheet.png"
    assert sheet_pages(folder) == [first]
    page = read_pages(folder)[0]
    assert page.size == (4 * THUMB, 4 * CELL_H)
    assert filled(page, 4) == 14
    for index in range(14):
        line, column = divmod(index, 4)
        expected = GREY if index == 5 else colour(index)
        assert near(cell_pixel(page, line, column), expected), index
    # every cell is labelled: dark text in the strip under its picture
    for index in (0, 5, 13):
        line, column = divmod(index, 4)
        strip = page.crop(
            (column * THUMB, line * CELL_H + THUMB, (column + 1) * THUMB, (line + 1) * CELL_H)
        )
        assert strip.convert("L").getextrema()[0] < 80, index


def test_900_cells_make_three_pages_of_400_400_and_100(tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    rows = batch_rows(folder, 900, failed=frozenset({3, 401, 899}))
    first = write_sheet(folder, rows, 10)
    names = [p.name for p in sheet_pages(folder)]
    assert names == ["contact_sheet.png", "contact_sheet-002.png", "contact_sheet-003.png"]
    assert first == folder / "contact_sheet.png"
    pages = read_pages(folder)
    heights = [40 * CELL_H, 40 * CELL_H, 10 * CELL_H]
    assert [p.size for p in pages] == [(10 * THUMB, height) for height in heights]
    assert [filled(p, 10) for p in pages] == [CELLS_PER_PAGE, CELLS_PER_PAGE, 100]
    # each page starts where the previous one stopped, failed jobs in their places
    for number, page in enumerate(pages):
        for offset in (0, 1, 9, 10, 99, 399):
            index = number * CELLS_PER_PAGE + offset
            if index >= 900:
                continue
            expected = GREY if index in (3, 401, 899) else colour(index)
            assert near(cell_pixel(page, *divmod(offset, 10)), expected), index


def test_cells_keep_their_column_when_the_grid_width_does_not_divide_a_page(
    tmp_path: Path,
) -> None:
    """Seven columns (a sweep of seven values): a grid line split between two pages stays in
    the same columns on both, so every column is still one sweep value."""
    folder = tmp_path / "batch"
    rows = batch_rows(folder, 900)
    write_sheet(folder, rows, 7)
    pages = read_pages(folder)
    assert len(pages) == 3
    assert [filled(p, 7) for p in pages] == [400, 400, 100]
    for number, page in enumerate(pages):
        top = number * CELLS_PER_PAGE // 7
        for index in range(number * CELLS_PER_PAGE, min(900, (number + 1) * CELLS_PER_PAGE)):
            if index % 37 and index % CELLS_PER_PAGE not in (0, 399):
                continue  # a sample, and both ends of every page
            line, column = divmod(index, 7)
            assert near(cell_pixel(page, line - top, column), colour(index)), index
    # page 2 starts with cell 400 in column 400 % 7 = 1, column 0 of that line left empty
    assert cell_pixel(pages[1], 0, 0) == WHITE
    assert near(cell_pixel(pages[1], 0, 1), colour(400))


def test_html_pages_link_every_page_and_every_image(tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    rows = batch_rows(folder, 900, failed=frozenset({7, 850}))
    index = write_html(folder, rows, "falkit batch b_test")
    write_sheet(folder, rows, 10)
    assert index == folder / "index.html"
    pages = html_pages(folder)
    assert [p.name for p in pages] == ["index.html", "index-002.html", "index-003.html"]
    sheets = {p.name for p in sheet_pages(folder)}
    images: list[str] = []
    for number, page in enumerate(pages, 1):
        text = page.read_text()
        navigation = re.findall(r'<a class="(sheet|page)"[^>]* href="([^"]+)"', text)
        assert {href for kind, href in navigation if kind == "sheet"} == sheets
        assert {href for kind, href in navigation if kind == "page"} == {p.name for p in pages}
        current = re.findall(r'aria-current="page" href="([^"]+)"', text)
        assert current == [page.name]
        linked = re.findall(r'<a href="([^"]+)"><img src="([^"]+)"', text)
        missing = text.count('<figure class="missing">')
        assert len(linked) + missing == (100 if number == 3 else CELLS_PER_PAGE)
        for href, thumb in linked:
            assert not href.startswith(("/", "http")), "links are relative to the folder"
            assert (folder / href).is_file()
            assert (folder / thumb).is_file()
        images += [href for href, _ in linked]
        assert "falkit batch b_test" in text
    expected = [path for row in rows for path in row.paths]
    assert images == expected, "every image, once, in batch order"
    assert len(expected) == 898
    labels = re.findall(r"<figcaption>([^<]+)", "".join(p.read_text() for p in pages))
    assert labels == [row.label for row in rows]
    for href in sheets:
        assert (folder / href).is_file()


def test_a_small_batch_has_one_html_page_linking_its_sheet(tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    rows = batch_rows(folder, 6)
    write_html(folder, rows, "small")
    [page] = html_pages(folder)
    text = page.read_text()
    assert re.findall(r'<a class="sheet" href="([^"]+)"', text) == ["contact_sheet.png"]
    assert '<a class="page"' not in text
    assert set(re.findall(r'<a href="([^"]+)"', text)) == {p for r in rows for p in r.paths}


def test_a_rerun_with_fewer_pages_removes_the_stale_ones(tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    rows = batch_rows(folder, 900)
    write_html(folder, rows, "big")
    write_sheet(folder, rows, 10)
    assert len(sheet_pages(folder)) == len(html_pages(folder)) == 3
    keep = [folder / "contact_sheet-notes.png", folder / "index-old.html"]  # not ours
    for path in keep:
        path.write_text("kept")

    write_html(folder, rows[:450], "smaller")
    write_sheet(folder, rows[:450], 10)
    assert [p.name for p in sheet_pages(folder)] == ["contact_sheet.png", "contact_sheet-002.png"]
    assert [p.name for p in html_pages(folder)] == ["index.html", "index-002.html"]
    assert not (folder / "contact_sheet-003.png").exists()
    assert not (folder / "index-003.html").exists()
    assert "index-003.html" not in (folder / "index.html").read_text()
    assert [filled(p, 10) for p in read_pages(folder)] == [400, 50]

    write_html(folder, rows[:3], "tiny")
    write_sheet(folder, rows[:3], 10)
    assert sheet_pages(folder) == [folder / "contact_sheet.png"]
    assert html_pages(folder) == [folder / "index.html"]
    assert all(path.read_text() == "kept" for path in keep)
    assert not list(folder.glob(".write-*")), "no temporary files left behind"


def test_an_empty_batch_still_gets_a_page(tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    assert write_sheet(folder, [], 10).is_file()
    assert write_html(folder, [], "empty").is_file()
    assert len(sheet_pages(folder)) == len(html_pages(folder)) == 1


_MEASURE = """
import json, sys
from pathlib import Path
from tests.batch.test_output import batch_rows, peak_kb
from falkit.service.batch_output import write_sheet

folder, count = Path(sys.argv[1]), int(sys.argv[2])
rows = batch_rows(folder, count)  # already placed: builds the records only
before = peak_kb()
write_sheet(folder, rows, 10)
print(json.dumps({"before_kb": before, "peak_kb": peak_kb()}))
"""


def peak_kb() -> int:
    """This process's peak RSS in KiB. On Linux, VmHWM: ru_maxrss would carry over the peak of
    the process that started this one (it survives fork and exec), here pytest's own."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure_peak_kb(folder: Path, count: int) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    done = run(
        [sys.executable, "-c", _MEASURE, str(folder), str(count)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=100, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["peak_kb"] > figures["before_kb"]
    return int(figures["peak_kb"])


@pytest.mark.skipif(sys.platform == "win32", reason="peak RSS is read on POSIX only")
def test_peak_memory_stays_flat_from_400_to_2000_cells(tmp_path: Path) -> None:
    """Each page is built from thumbs/, saved and released before the next: 2,000 cells (five
    pages) peak about where 400 cells (one page) do. The bound is generous; exact figures are
    in docs/benchmarks.md (bench/contact_sheet.py)."""
    folder = tmp_path / "batch"
    batch_rows(folder, 2000)  # images and thumbnails on disk, made here once
    small = measure_peak_kb(folder, 400)
    large = measure_peak_kb(folder, 2000)
    assert len(sheet_pages(folder)) == 5
    assert large < 1.5 * small, (small, large)
