"""Seeing results: `falkit open` with the viewer command injected (FALKIT_VIEWER),
`generate --open`, and inline previews (the escape sequences written for each protocol)."""

from __future__ import annotations

import base64
import io
import re
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from falkit.cli.preview import detect, iterm, kitty, render, sixel
from tests.cli.helpers import cli, generate

VIEWER = """
import sys
with open(sys.argv[1], "a") as out:
    out.write(sys.argv[2] + "\\n")
"""


@pytest.fixture
def viewed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """FALKIT_VIEWER is a script that records each path it is asked to open."""
    script, record = tmp_path / "viewer.py", tmp_path / "viewed.txt"
    script.write_text(VIEWER)
    monkeypatch.setenv("FALKIT_VIEWER", f"{sys.executable} {script} {record}")
    return record


def lines_of(record: Path, count: int) -> list[str]:
    """The viewer's record once it has ``count`` lines (a slow viewer is left running)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if record.exists() and len(record.read_text().splitlines()) >= count:
            break
        time.sleep(0.05)
    return record.read_text().splitlines()


def test_open_last_opens_every_image_with_the_viewer(env: dict[str, str], viewed: Path) -> None:
    job = generate("two moons", "-n", "2")
    result = cli("open", "last")
    assert result.exit_code == 0, result.output
    paths = [img["path"] for img in job["images"]]
    assert lines_of(viewed, 2) == paths
    assert result.stdout.splitlines() == paths


def test_open_by_prefix_and_generate_open(env: dict[str, str], viewed: Path) -> None:
    first = generate("a lighthouse")
    second = cli("generate", "a red kite", "--open", "--out", str(viewed.parent / "out"))
    assert second.exit_code == 0, second.output
    (copy,) = second.stdout.splitlines()
    assert lines_of(viewed, 1) == [copy]  # the copy the user asked for
    assert cli("open", first["job_id"][:-8]).exit_code == 0
    assert lines_of(viewed, 2)[1] == first["images"][0]["path"]


def test_open_failures_name_the_fix(
    env: dict[str, str], viewed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = generate("a fox")
    monkeypatch.setenv("FALKIT_VIEWER", "false")
    failed = cli("open", "last")
    assert failed.exit_code == 1
    assert "FALKIT_VIEWER" in failed.stderr
    monkeypatch.setenv("FALKIT_VIEWER", "/no/such/viewer")
    assert "cannot run the image viewer" in cli("open", "last").stderr
    Path(job["images"][0]["path"]).unlink()
    gone = cli("open", "last")
    assert gone.exit_code == 1
    assert "is gone" in gone.stderr
    assert cli("open", "j_nothing").exit_code == 1


# ---- previews ----


@pytest.mark.parametrize(
    ("variables", "protocol"),
    [
        ({"KITTY_WINDOW_ID": "1", "TERM": "xterm-256color"}, "kitty"),
        ({"TERM": "xterm-kitty"}, "kitty"),
        ({"TERM_PROGRAM": "iTerm.app"}, "iterm"),
        ({"TERM_PROGRAM": "WezTerm"}, "iterm"),
        ({"LC_TERMINAL": "iTerm2", "TERM": "screen"}, "iterm"),
        ({"TERM": "foot"}, "sixel"),
        ({"TERM": "mlterm"}, "sixel"),
        ({"TERM": "xterm-256color"}, None),
        ({}, None),
        ({"TERM": "xterm-kitty", "FALKIT_PREVIEW": "off"}, None),
        ({"TERM": "xterm", "FALKIT_PREVIEW": "sixel"}, "sixel"),
    ],
)
def test_protocol_detected_from_the_environment(
    variables: dict[str, str], protocol: str | None
) -> None:
    assert detect(variables) == protocol


def _png_image(tmp_path: Path, size: tuple[int, int] = (700, 350)) -> Path:
    path = tmp_path / "picture.jpg"
    Image.new("RGB", size, (200, 30, 40)).save(path, "JPEG")
    return path


def test_kitty_sequence(tmp_path: Path) -> None:
    text = render(_png_image(tmp_path), "kitty")
    chunks = re.findall(r"\x1b_G([^;]*);([^\x1b]*)\x1b\\", text)
    assert "".join(f"\x1b_G{k};{d}\x1b\\" for k, d in chunks) == text
    assert chunks[0][0].startswith("a=T,f=100,m=")
    assert [k.endswith("m=1") for k, _ in chunks] == [True] * (len(chunks) - 1) + [False]
    assert all(len(data) <= 4096 for _, data in chunks)
    with Image.open(io.BytesIO(base64.b64decode("".join(d for _, d in chunks)))) as img:
        assert (img.format, img.size) == ("PNG", (512, 256))  # scaled down to 512


def test_iterm_sequence(tmp_path: Path) -> None:
    text = render(_png_image(tmp_path), "iterm")
    match = re.fullmatch(r"\x1b\]1337;File=([^:]*):([A-Za-z0-9+/=]+)\x07", text)
    assert match is not None
    args = dict(part.split("=", 1) for part in match[1].split(";"))
    assert args["inline"] == "1"
    assert base64.b64decode(args["name"]) == b"picture.jpg"
    data = base64.b64decode(match[2])
    assert int(args["size"]) == len(data)
    assert data.startswith(b"\x89PNG")
    assert iterm(b"abc", "x").endswith(":YWJj\x07")


def test_sixel_sequence() -> None:
    red = Image.new("RGB", (6, 6), (255, 0, 0))
    assert sixel(red) == '\x1bPq"1;1;6;6#0;2;100;0;0#0!6~-\x1b\\'
    blue = Image.new("RGB", (3, 7), (0, 0, 255))
    assert sixel(blue) == '\x1bPq"1;1;3;7#0;2;0;0;100#0~~~-#0@@@-\x1b\\'
    two = Image.new("RGB", (4, 6), (255, 255, 255))
    two.putpixel((0, 0), (0, 0, 0))
    text = sixel(two)
    assert text.count("#") == 4  # two palette entries, two colour runs
    assert text.endswith("-\x1b\\")
    assert kitty(b"").startswith("\x1b_Ga=T,f=100,m=0;")


def test_sixel_of_a_real_picture_has_a_band_per_six_rows(tmp_path: Path) -> None:
    text = render(_png_image(tmp_path, (500, 100)), "sixel")
    assert text.startswith('\x1bPq"1;1;384;77')
    assert text.endswith("\x1b\\")
    assert text.count("-") == 13  # ceil(77 / 6)
    assert all(32 <= ord(ch) < 127 for ch in text.replace("\x1b", ""))


def test_generate_preview_writes_the_sequence_to_stderr(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERM", "xterm-kitty")
    result = cli("generate", "a fox", "--preview")
    assert result.exit_code == 0, result.output
    assert "\x1b_Ga=T,f=100" in result.stderr
    assert "\x1b" not in result.stdout  # stdout keeps the paths for scripts


def test_open_preview_and_no_protocol(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    generate("a fox")
    monkeypatch.setenv("FALKIT_PREVIEW", "sixel")
    assert '\x1bPq"1;1;' in cli("open", "last", "--preview").stderr
    monkeypatch.delenv("FALKIT_PREVIEW")
    monkeypatch.setenv("TERM", "dumb")
    plain = cli("open", "last", "--preview")
    assert plain.exit_code == 0
    assert "no preview" in plain.stderr
    assert "FALKIT_PREVIEW" in plain.stderr
    assert "\x1b" not in plain.stderr


def test_sixel_of_a_picture_of_many_colours() -> None:
    noisy = Image.effect_noise((384, 288), 80).convert("RGB")
    text = sixel(noisy)
    assert text.count("-") == 48
