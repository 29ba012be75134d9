"""Training datasets against hostile files: zip bombs, FIFOs, devices, sockets, link loops.

The zip bombs are real archives; peak memory is measured in a fresh process (VmHWM from
/proc/self/status), so the bound says what `falkit lora train` would really use.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from falkit.errors import ValidationError
from falkit.service.dataset import MAX_RATIO, load_folder, load_path, load_zip
from tests.lora.helpers import image_bytes, make_folder, make_zip
from tests.processes import run

BOMB_MIB = 512
PEAK_BOUND_MIB = 200  # generous: the interpreter, Pillow and falkit take ~50 MiB
ONE_MIB = bytes(1024 * 1024)


def deflated_zeros(path: Path, name: str = "img0.png", mib: int = BOMB_MIB) -> Path:
    """A real zip whose one member is ``mib`` MiB of zeros (about 230 to 1 at level 1)."""
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open(name, "w") as member,
    ):
        for _ in range(mib):
            member.write(ONE_MIB)
    return path


def overstate_compressed_size(path: Path, factor: int) -> None:
    """Make the central directory claim the first member is ``factor`` times larger compressed
    than it is, so its declared ratio looks innocent (zipfile trusts the central directory)."""
    data = bytearray(path.read_bytes())
    at = data.index(b"PK\x01\x02")
    (compressed,) = struct.unpack_from("<I", data, at + 20)
    struct.pack_into("<I", data, at + 20, compressed * factor)
    path.write_bytes(bytes(data))


MEASURE = """
import json, sys
from pathlib import Path
from falkit.service.dataset import load_zip
try:
    load_zip(Path(sys.argv[1]))
    error = None
except Exception as exc:
    error = f"{type(exc).__name__}: {exc}"
status = open("/proc/self/status").read().split("\\n")
peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
print(json.dumps({"error": error, "peak_mib": peak // 1024}))
"""


def load_in_child(path: Path) -> dict[str, object]:
    """load_zip in a fresh interpreter: its error and its peak resident memory."""
    done = run(
        [sys.executable, "-c", MEASURE, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_a_zip_bomb_is_refused_before_it_is_read(tmp_path: Path) -> None:
    bomb = deflated_zeros(tmp_path / "photos.zip")
    assert bomb.stat().st_size < 3 * 1024**2  # 512 MiB in under 3 MiB
    result = load_in_child(bomb)
    assert "ValidationError" in str(result["error"])
    assert f"img0.png unpacks to more than {MAX_RATIO} times its compressed size" in str(
        result["error"]
    )
    assert int(str(result["peak_mib"])) < PEAK_BOUND_MIB, result


def test_a_zip_bomb_with_lying_headers_stops_while_streaming(tmp_path: Path) -> None:
    bomb = deflated_zeros(tmp_path / "photos.zip")
    overstate_compressed_size(bomb, factor=12)  # declared ratio ~19: passes the header check
    result = load_in_child(bomb)
    assert "img0.png unpacks to more than 20 times the archive's size" in str(result["error"])
    assert int(str(result["peak_mib"])) < PEAK_BOUND_MIB, result


def test_ordinary_deflated_zip_still_loads(tmp_path: Path) -> None:
    members = {f"{i}.png": image_bytes(i, "PNG", size=(300, 200)) for i in range(4)}
    members["0.txt"] = b"a caption " * 1000  # compresses well; small members have leeway
    path = tmp_path / "set.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    data = load_zip(path)
    assert len(data.images) == 4
    assert data.files["3.png"] == members["3.png"]


def test_files_that_are_neither_images_nor_captions_are_named_not_read(tmp_path: Path) -> None:
    members = {f"{i}.jpg": image_bytes(i) for i in range(4)}
    path = make_zip(tmp_path / "set.zip", {**members, "movie.mkv": b"\0" * 1000})
    with pytest.raises(ValidationError, match=r"movie\.mkv \(not a jpg"):
        load_zip(path)


def _special_folder(root: Path) -> Path:
    folder = make_folder(root / "photos", 4)
    os.mkfifo(folder / "pipe.jpg")
    (folder / "zero.png").symlink_to("/dev/zero")
    (folder / "loop_a.jpg").symlink_to("loop_b.jpg")
    (folder / "loop_b.jpg").symlink_to("loop_a.jpg")
    (folder / "gone.jpg").symlink_to(root / "nowhere.jpg")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock.webp"))
    sock.close()
    return folder


def test_special_files_in_a_folder_are_named_without_being_opened(tmp_path: Path) -> None:
    folder = _special_folder(tmp_path)
    outcome: list[BaseException] = []
    finished = threading.Event()

    def load() -> None:
        try:
            load_folder(folder)
        except BaseException as exc:
            outcome.append(exc)
        finished.set()

    threading.Thread(target=load, daemon=True).start()
    # Opening the FIFO or reading /dev/zero would never finish; a generous deadline says so.
    assert finished.wait(60), "load_folder blocked on a special file"
    (error,) = outcome
    assert isinstance(error, ValidationError)
    message = str(error)
    assert "\n" not in message
    for expected in (
        "pipe.jpg (a FIFO, not a regular file)",
        "zero.png (a character device, not a regular file)",
        "loop_a.jpg (a symbolic link loop)",
        "loop_b.jpg (a symbolic link loop)",
        "gone.jpg (a broken symbolic link)",
        "sock.webp (a socket, not a regular file)",
    ):
        assert expected in message
    assert "img00.jpg" not in message


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.symlink_to(p), "is a symbolic link loop"),
        (lambda p: p.symlink_to("/dev/zero"), "is a character device, not a folder or a .zip"),
        (lambda p: os.mkfifo(p), "is a FIFO, not a folder or a .zip"),
    ],
    ids=["loop", "dev_zero", "fifo"],
)
def test_a_special_source_is_refused_by_stat(tmp_path: Path, make: object, expected: str) -> None:
    source = tmp_path / "photos.zip"
    make(source)  # type: ignore[operator]
    with pytest.raises(ValidationError, match=expected):
        load_path(source)
