"""Contact sheet: peak memory and time of writing a batch's contact sheet and HTML page.

Builds a batch folder of real images the way a batch does (each image copied into `images/`
and its thumbnail made in `thumbs/` by `place_images`), then, for N = 400 and N = 2,000 cells,
runs a fresh process that writes the contact sheet (`write_sheet`, 10 columns as a batch
without sweeps gets) and the HTML page (`write_html`) from those thumbnails, and prints its
peak RSS (before writing and at the end) and the time taken.

    .venv/bin/python bench/contact_sheet.py
    BENCH_SIZES=400,2000,5000 .venv/bin/python bench/contact_sheet.py

BENCH_SHEET_MODULE=path/to/batch_output.py measures another version of the module (e.g. one
taken from `git show REV:src/falkit/service/batch_output.py`) on the same folder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

SIZES = [int(n) for n in os.environ.get("BENCH_SIZES", "400,2000").split(",")]
COLUMNS = 10
SOURCES = 12  # distinct source images, reused round-robin
SOURCE_SIDE = 768


def module() -> ModuleType:
    path = os.environ.get("BENCH_SHEET_MODULE")
    if not path:
        from falkit.service import batch_output

        return batch_output
    spec = importlib.util.spec_from_file_location("bench_batch_output", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = loaded
    spec.loader.exec_module(loaded)
    return loaded


def make_sources(folder: Path) -> list[Path]:
    """A few photo-like JPEGs (gradients and noise, so they compress like real output)."""
    from PIL import Image, ImageDraw, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(SOURCES):
        noise = Image.effect_noise((SOURCE_SIDE, SOURCE_SIDE), 40 + 5 * n).convert("RGB")
        tint = Image.linear_gradient("L").resize((SOURCE_SIDE, SOURCE_SIDE)).convert("RGB")
        image = Image.blend(noise, tint, 0.6).filter(ImageFilter.GaussianBlur(2))
        draw = ImageDraw.Draw(image)
        draw.ellipse((100 + 20 * n, 150, 500, 600 - 10 * n), fill=(40 * n % 255, 120, 200))
        path = folder / f"source-{n}.jpg"
        image.save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


def job(index: int, source: Path) -> Any:
    from falkit.store.records import ImageRecord, JobRecord

    now = dt.datetime.now(dt.UTC)
    data = source.read_bytes()
    image = ImageRecord(
        id=f"img_{index}", job_id=f"job_{index}", index=0, url="https://fal.media/x.jpg",
        local_path=str(source), sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
        width=SOURCE_SIDE, height=SOURCE_SIDE, content_type="image/jpeg", nsfw=False,
        created_at=now,
    )  # fmt: skip
    prompt = f"a lighthouse on a cliff at dusk, variation {index}"
    return JobRecord(
        id=f"job_{index}", kind="image", model="flux-schnell",
        endpoint_id="fal-ai/flux/schnell", arguments={"prompt": prompt, "seed": index % 4 + 1},
        status="completed", request_id=f"req_{index}", status_url=None, response_url=None,
        cancel_url=None, seed=index % 4 + 1, estimated_cost=0.003, cost_usd=0.003,
        billable_units=1.0, timings=None, output=None, error=None, error_type=None,
        queue_position=None, batch_id="b_bench", batch_index=index, created_at=now,
        submitted_at=now, completed_at=now, updated_at=now, images=(image,),
    )  # fmt: skip


def rows(out: Any, folder: Path, sources: list[Path], count: int) -> list[Any]:
    """The batch's rows, images placed (a no-op once they are)."""
    width = max(4, len(str(count - 1)))
    result = []
    for index in range(count):
        record = job(index, sources[index % len(sources)])
        paths = out.place_images(record, folder, width)
        label = f"variation {index} · seed {record.seed}"
        result.append(out.Row(index, index + 1, label, record, paths))
    return result


def peak_kb() -> int:
    """This process's peak RSS in KiB. On Linux, VmHWM: ru_maxrss would carry over the peak of
    the process that started this one (it survives fork and exec)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(folder: Path, count: int) -> None:
    out = module()
    sources = sorted((folder.parent / "sources").glob("source-*.jpg"))
    batch_rows = rows(out, folder, sources, count)
    before = peak_kb()
    start = time.perf_counter()
    out.write_html(folder, batch_rows, "falkit batch b_bench")
    out.write_sheet(folder, batch_rows, COLUMNS)
    elapsed = time.perf_counter() - start
    peak = peak_kb()
    pages = sorted(p.name for p in folder.glob("contact_sheet*.png"))
    print(json.dumps({"before_kb": before, "peak_kb": peak, "seconds": elapsed, "pages": pages}))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), int(sys.argv[3]))
        return
    with tempfile.TemporaryDirectory(prefix="falkit-bench-sheet-") as tmp:
        measure(Path(tmp))


def measure(root: Path) -> None:
    sources = make_sources(root / "sources")
    start = time.perf_counter()
    rows(module(), root / "batch", sources, max(SIZES))  # images and thumbnails, once
    print(f"placed {max(SIZES)} images and thumbnails in {time.perf_counter() - start:.1f} s")
    print(f"module: {os.environ.get('BENCH_SHEET_MODULE') or 'falkit.service.batch_output'}")
    print(f"{'cells':>6}  {'pages':>5}  {'peak RSS':>9}  {'before writing':>14}  {'time':>7}")
    for count in SIZES:
        for stale in (root / "batch").glob("contact_sheet*.png"):
            stale.unlink()
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(root / "batch"), str(count)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{count:>6}  {len(figures['pages']):>5}  {figures['peak_kb'] / 1024:>6.0f} MB"
            f"  {figures['before_kb'] / 1024:>11.0f} MB  {figures['seconds']:>5.2f} s"
        )


if __name__ == "__main__":
    main()
